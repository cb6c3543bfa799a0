"""The `analyst` schema: views of the flagged transactions, alerts and labels with personal data masked.

What is masked, and how:

- account, client and counterparty account → a pseudonym: the first 16 hex digits of HMAC-SHA256 under the
  masking key of `<domain>:<value>` (domains `account`, `client` and `counterparty`, whose value is
  `<bank>/<account>`), so one customer keeps one pseudonym across rows and runs, and the same number in two
  domains gets two pseudonyms; the counterparty account is replaced by its pseudonym in the reason texts as well;
- the owner's birth number → an age band (`30-39`, `under 20`, `80+`) at the transaction's date, from the
  feature mart's `client_age_years` (decoded from the birth number by the dbt staging model);
- district names are kept; the sex encoded in the birth number is left out.

The masking key is `ADS_MASKING_KEY` (a secret, 32 characters or more), else derived with HKDF-SHA256 from the
model signing key (`ADS_MODEL_SIGNING_KEY`, else its key file in `$ADS_HOME/keys/`, mode 0600). It is kept in
`ads_private.masking_key`, which only the database owner reads; the views read it with their owner's rights, and
the HMAC is computed in SQL (`ads_private.hmac_sha256`, built on Postgres's own `sha256`, as pgcrypto may be
missing). The analyst may call the hashing functions, but without the key they are of no use.

Each view calls `ads_private.audit_read`, a SECURITY DEFINER function that records a `read_masked` row in
`ops.audit` (by the session's role) the first time a session reads that view, and notes it in the server log.
A read in a transaction that is rolled back leaves the server-log line only; a read-only transaction cannot
record, so its read of a view is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import psycopg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import sql

from ads_assets.lib.alerting import ensure_alerts_table
from ads_assets.lib.registry import MIN_SIGNING_KEY_LENGTH, model_signing_key
from ads_assets.lib.security.audit import AUDIT_TABLE, READ_MASKED, ensure_audit_table
from ads_assets.lib.tables import ensure_anomaly_schema
from ads_assets.settings import SettingsError

MASKING_KEY_VARIABLE = "ADS_MASKING_KEY"
ANALYST_SCHEMA = "analyst"
PRIVATE_SCHEMA = "ads_private"
PSEUDONYM_LENGTH = 16
FLAGGED_VIEW = "flagged_transactions"
ALERTS_VIEW = "alerts"
LABELS_VIEW = "labels"
VIEWS = (FLAGGED_VIEW, ALERTS_VIEW, LABELS_VIEW)
ANALYST_FUNCTIONS = (
    "hmac_sha256(bytea, bytea)",
    "pseudonym(bytea, text, text)",
    "masked_text(bytea, text, text, text)",
    "age_band(integer)",
    "audit_read(text)",
)
"""The functions of `ads_private` the analyst views call, which the analyst role may therefore execute."""
_HKDF_INFO = b"ads-masking-key/1"

PRIVATE_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {private};
REVOKE ALL ON SCHEMA {private} FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {private}.masking_key (
    id int PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {private}.read_sessions (
    session text NOT NULL,
    view_name text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session, view_name)
);
CREATE OR REPLACE FUNCTION {private}.hmac_sha256(key bytea, message bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    block bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
    inner_pad bytea;
    outer_pad bytea;
BEGIN
    block := block || decode(repeat('00', 64 - length(block)), 'hex');
    inner_pad := block;
    outer_pad := block;
    FOR i IN 0..63 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(block, i) # 54);
        outer_pad := set_byte(outer_pad, i, get_byte(block, i) # 92);
    END LOOP;
    RETURN sha256(outer_pad || sha256(inner_pad || message));
END
$$;
CREATE OR REPLACE FUNCTION {private}.pseudonym(key bytea, domain text, value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT pg_catalog.left(
        pg_catalog.encode({private}.hmac_sha256(key, pg_catalog.convert_to(domain || ':' || value, 'UTF8')), 'hex'),
        {length}
    )
$$;
CREATE OR REPLACE FUNCTION {private}.masked_text(key bytea, content text, bank text, account text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN account IS NULL OR account = '' THEN content
        ELSE pg_catalog.replace(
            content,
            'account ' || account,
            'account ' || {private}.pseudonym(key, 'counterparty', coalesce(bank, '') || '/' || account)
        )
    END
$$;
CREATE OR REPLACE FUNCTION {private}.age_band(age integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN age < 20 THEN 'under 20'
        WHEN age >= 80 THEN '80+'
        ELSE (age / 10 * 10)::text || '-' || (age / 10 * 10 + 9)::text
    END
$$;
CREATE OR REPLACE FUNCTION {private}.audit_read(view_name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    session_key text;
BEGIN
    IF NOT view_name = ANY ({views}) THEN
        RAISE EXCEPTION 'not an analyst view: %', view_name;
    END IF;
    SELECT pid::text || '@' || backend_start::text INTO session_key
    FROM pg_stat_activity WHERE pid = pg_backend_pid();
    INSERT INTO {private}.read_sessions (session, view_name) VALUES (session_key, view_name)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        INSERT INTO {audit} (action, by, details)
        VALUES ({read_masked}, session_user, jsonb_build_object('view', {analyst} || '.' || view_name));
        RAISE LOG 'ADS audit: % read masked view %.%', session_user, {analyst}, view_name;
    END IF;
    RETURN true;
END
$$;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {private} FROM PUBLIC;
"""
).format(
    private=sql.Identifier(PRIVATE_SCHEMA),
    length=sql.Literal(PSEUDONYM_LENGTH),
    views=sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(map(sql.Literal, VIEWS))),
    audit=sql.Identifier(*AUDIT_TABLE),
    read_masked=sql.Literal(READ_MASKED),
    analyst=sql.Literal(ANALYST_SCHEMA),
)

VIEWS_DDL = sql.SQL(
    """
CREATE SCHEMA IF NOT EXISTS {analyst};
DROP VIEW IF EXISTS {analyst}.{flagged}, {analyst}.{alerts}, {analyst}.{labels};
CREATE VIEW {analyst}.{flagged} WITH (security_barrier) AS
SELECT
    scores.trans_id,
    scores.month,
    scores.trans_date,
    {private}.pseudonym(masking.key, 'account', scores.account_id::text) AS account_pseudonym,
    {private}.pseudonym(masking.key, 'client', features.client_id::text) AS client_pseudonym,
    {private}.age_band(features.client_age_years) AS client_age_band,
    client_district.a2 AS client_district,
    account_district.a2 AS account_district,
    features.transaction_kind,
    features.direction,
    features.amount,
    features.signed_amount,
    features.counterparty_bank,
    {private}.pseudonym(
        masking.key, 'counterparty', coalesce(features.counterparty_bank, '') || '/' || nullif(features.counterparty_account, '')
    ) AS counterparty_pseudonym,
    scores.score,
    scores.rule_hits,
    scores.detector_scores,
    masked.reasons ->> 'sentence' AS reason,
    masked.reasons,
    labels.label,
    scores.model_version,
    scores.scored_at
FROM anomaly.transaction_scores AS scores
CROSS JOIN {private}.masking_key AS masking
LEFT JOIN marts.fct_transaction_features AS features ON features.trans_id = scores.trans_id
LEFT JOIN raw.fin_district AS client_district ON client_district.district_id = features.client_district_id
LEFT JOIN raw.fin_district AS account_district ON account_district.district_id = features.account_district_id
LEFT JOIN anomaly.labels AS labels ON labels.trans_id = scores.trans_id
CROSS JOIN LATERAL (
    SELECT {private}.masked_text(
        masking.key, scores.reasons::text, features.counterparty_bank, features.counterparty_account
    )::jsonb AS reasons
) AS masked
WHERE scores.is_anomaly AND (SELECT {private}.audit_read({flagged_name}));
CREATE VIEW {analyst}.{alerts} WITH (security_barrier) AS
SELECT
    alerts.kind,
    alerts.severity,
    alerts.subject,
    {private}.masked_text(
        masking.key, alerts.message, features.counterparty_bank, features.counterparty_account
    ) AS message,
    (alerts.details - 'account_id' - 'reasons') || jsonb_strip_nulls(jsonb_build_object(
        'account_pseudonym', {private}.pseudonym(masking.key, 'account', alerts.details ->> 'account_id')
    )) AS details,
    alerts.raised_at,
    alerts.delivery_status
FROM anomaly.alerts AS alerts
CROSS JOIN {private}.masking_key AS masking
LEFT JOIN marts.fct_transaction_features AS features
    ON alerts.kind = 'high_severity_anomaly' AND features.trans_id = (alerts.details ->> 'trans_id')::bigint
WHERE (SELECT {private}.audit_read({alerts_name}));
CREATE VIEW {analyst}.{labels} WITH (security_barrier) AS
SELECT labels.trans_id, labels.label, labels.note, labels.by, labels.at
FROM anomaly.labels AS labels
WHERE (SELECT {private}.audit_read({labels_name}));
"""
).format(
    analyst=sql.Identifier(ANALYST_SCHEMA),
    private=sql.Identifier(PRIVATE_SCHEMA),
    flagged=sql.Identifier(FLAGGED_VIEW),
    alerts=sql.Identifier(ALERTS_VIEW),
    labels=sql.Identifier(LABELS_VIEW),
    flagged_name=sql.Literal(FLAGGED_VIEW),
    alerts_name=sql.Literal(ALERTS_VIEW),
    labels_name=sql.Literal(LABELS_VIEW),
)


def masking_key(value: str | None = None) -> bytes:
    """The key of the pseudonyms: `value`, else `ADS_MASKING_KEY`, else one derived (HKDF-SHA256) from the model
    signing key.

    Raises SettingsError, without the key in the message, when the key given is shorter than 32 bytes.
    """
    configured = value or os.environ.get(MASKING_KEY_VARIABLE)
    if configured:
        key = configured.encode("utf-8")
        if len(key) < MIN_SIGNING_KEY_LENGTH:
            raise SettingsError(
                f"{MASKING_KEY_VARIABLE} is too short: {len(key)} bytes, at least {MIN_SIGNING_KEY_LENGTH} are needed"
            )
        return key
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return hkdf.derive(model_signing_key().secret)


def pseudonym(key: bytes, domain: str, value: str) -> str:
    """The pseudonym the analyst views show for `value` in `domain` (`account`, `client`, `counterparty`)."""
    digest = hmac.new(key, f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_LENGTH]


def publish_analyst_views(connection: psycopg.Connection, key: bytes) -> None:
    """Create or refresh `ads_private` (key, hashing, read audit) and the `analyst` views, in one transaction.

    Needs the tables the views read: `anomaly.transaction_scores`, `marts.fct_transaction_features` and
    `raw.fin_district` (`anomaly.labels`, `anomaly.alerts` and `ops.audit` are created when missing).
    """
    with connection.transaction(), connection.cursor() as cursor:
        ensure_anomaly_schema(cursor)
        ensure_alerts_table(cursor)
        ensure_audit_table(cursor)
        cursor.execute(PRIVATE_DDL)
        cursor.execute(
            sql.SQL(
                "INSERT INTO {}.masking_key (id, key) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key, changed_at = now() "
                "WHERE masking_key.key IS DISTINCT FROM EXCLUDED.key"
            ).format(sql.Identifier(PRIVATE_SCHEMA)),
            (key,),
        )
        cursor.execute(VIEWS_DDL)
