"""Access control: the ADS roles and the analyst's masked views."""
