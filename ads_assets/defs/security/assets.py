"""The analyst views asset: roles and masked views refreshed after every scoring."""

import dagster as dg

from ads_assets.defs.keys import LABELS_KEY, SCORES_KEY
from ads_assets.defs.resources import PostgresResource
from ads_assets.defs.security.resource import AnalystAccessResource
from ads_assets.lib.security.analyst import ANALYST_SCHEMA, VIEWS, masking_key, publish_analyst_views
from ads_assets.lib.security.roles import ensure_roles

ANALYST_VIEWS_KEY = dg.AssetKey([ANALYST_SCHEMA, "views"])


@dg.asset(key=ANALYST_VIEWS_KEY, deps=[SCORES_KEY, LABELS_KEY], group_name="security", kinds={"postgres"})
def analyst_views(
    context: dg.AssetExecutionContext, postgres: PostgresResource, analyst_access: AnalystAccessResource
) -> dg.MaterializeResult:
    """The masked views of schema `analyst` (`flagged_transactions`, `alerts`, `labels`: pseudonyms under a keyed
    hash for accounts, clients and counterparties, age bands for birth numbers) and the roles `ads_loader`,
    `ads_scorer` and `ads_analyst` with their grants, created or refreshed once the scores exist. On the embedded
    Postgres every role logs in without a password; elsewhere a role logs in when `ADS_<ROLE>_PASSWORD` is set.
    """
    with postgres.connect() as connection:
        publish_analyst_views(connection, masking_key(analyst_access.masking_key))
        report = ensure_roles(connection, analyst_access.passwords(), trusted_local=postgres.database_url is None)
    for note in report.notes:
        context.log.warning(note)
    return dg.MaterializeResult(
        metadata={
            "views": ", ".join(f"{ANALYST_SCHEMA}.{view}" for view in VIEWS),
            "roles": ", ".join(report.roles),
            "roles_that_log_in": ", ".join(report.login),
        }
    )
