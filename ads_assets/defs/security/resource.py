"""The secrets of analyst access, read by Dagster from the environment (`EnvVar`), never written to its config."""

import os

import dagster as dg

from ads_assets.lib.security.analyst import MASKING_KEY_VARIABLE
from ads_assets.lib.security.roles import ANALYST, LOADER, PASSWORD_VARIABLES, SCORER


class AnalystAccessResource(dg.ConfigurableResource):
    """The masking key of the analyst views (`ADS_MASKING_KEY`; None: derived from the model signing key) and the
    passwords of the ADS roles (`ADS_LOADER_PASSWORD`, `ADS_SCORER_PASSWORD`, `ADS_ANALYST_PASSWORD`; None: the
    role logs in without one on the embedded Postgres, else not at all)."""

    masking_key: str | None = None
    loader_password: str | None = None
    scorer_password: str | None = None
    analyst_password: str | None = None

    def passwords(self) -> dict[str, str | None]:
        return {LOADER: self.loader_password, SCORER: self.scorer_password, ANALYST: self.analyst_password}


def _secret(variable: str) -> dg.EnvVar | None:
    return dg.EnvVar(variable) if os.environ.get(variable) else None


def analyst_access_resource() -> AnalystAccessResource:
    return AnalystAccessResource(
        masking_key=_secret(MASKING_KEY_VARIABLE),
        loader_password=_secret(PASSWORD_VARIABLES[LOADER]),
        scorer_password=_secret(PASSWORD_VARIABLES[SCORER]),
        analyst_password=_secret(PASSWORD_VARIABLES[ANALYST]),
    )
