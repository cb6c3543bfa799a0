"""Access control for ADS's Postgres: the loader, scorer and analyst roles, the analyst's masked views, and the
audit of who labelled, exported or read masked data."""
