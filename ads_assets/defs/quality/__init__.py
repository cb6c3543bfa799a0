"""Data quality: asset checks on the raw relations and the feature table, and the data-quality report asset."""

from ads_assets.defs.quality.checks import build_feature_checks, relation_quality_checks
from ads_assets.defs.quality.report import quality_report

quality_checks = [*relation_quality_checks]
feature_quality_checks = [build_feature_checks()]
quality_assets = [quality_report]

__all__ = ["feature_quality_checks", "quality_assets", "quality_checks"]
