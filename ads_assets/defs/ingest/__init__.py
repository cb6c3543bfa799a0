"""Ingestion: the eight Berka relations into the `raw` schema."""
