"""Data quality of the raw relations: GX suites validated in Postgres, volume and freshness, Data Docs.

Plain Python with no Dagster import; `ads_assets.defs.quality` wraps it in asset checks and an asset.
"""

from ads_assets.lib.quality.evaluate import CheckEvaluation, RelationQuality, evaluate_relation, relation_checks
from ads_assets.lib.quality.gx_bridge import GxValidator, SuiteOutcome
from ads_assets.lib.quality.parameters import Span
from ads_assets.lib.quality.suites import Severity, SuiteSpec, load_suite_spec, raw_suite_specs

__all__ = [
    "CheckEvaluation",
    "GxValidator",
    "RelationQuality",
    "Severity",
    "Span",
    "SuiteOutcome",
    "SuiteSpec",
    "evaluate_relation",
    "load_suite_spec",
    "raw_suite_specs",
    "relation_checks",
]
