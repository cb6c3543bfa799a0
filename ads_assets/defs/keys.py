"""The keys of the assets that other assets, jobs and sensors name, defined once."""

import dagster as dg

FEATURES_KEY = dg.AssetKey(["marts", "fct_transaction_features"])
MISSING_PAYMENTS_KEY = dg.AssetKey(["marts", "fct_missing_payments"])
LABELS_KEY = dg.AssetKey(["anomaly", "labels"])
MODELS_KEY = dg.AssetKey(["detection", "anomaly_models"])
SELECTION_KEY = dg.AssetKey(["detection", "model_selection"])
SCORES_KEY = dg.AssetKey(["anomaly", "transaction_scores"])
QUALITY_REPORT_KEY = dg.AssetKey(["quality", "report"])
ANOMALY_REPORT_KEY = dg.AssetKey(["anomaly", "report"])
