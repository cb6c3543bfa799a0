"""Dagster objects by domain. Beta and preview APIs used here (backfill policies) are deliberate."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
