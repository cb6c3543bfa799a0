"""dbt: the staging → intermediate → marts models that turn raw relations into per-transaction features."""
