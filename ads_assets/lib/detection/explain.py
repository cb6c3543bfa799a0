"""Reasons for every flagged transaction, as JSON-serializable dicts an analyst can read.

`explain_rows(ensemble, frame)` scores `frame` (or takes an existing `Scored`) and, for each flagged
row (or every row), returns:

- `sentence`: one plain sentence with real numbers, e.g. "cash withdrawal of 52,000 is 14 times this
  account's 90-day median (3,700)": the reason of the strongest rule that fired when that rule is
  strong (severity >= 0.5) or the rules carry most of the score, else the clause of the feature that
  pushed the Isolation Forest hardest;
- `rules`: every rule that fired, most severe first, with severity and reason;
- `features`: the top features of the ML detector that contributed most (by SHAP value for the
  Isolation Forest, by distance for LOF, by surprise for the LSTM), each with the feature's value and
  the account's typical value in mart units (crowns, counts, days) and a plain clause;
- `detectors`: each part's own score and its contribution to the ensemble score, with the features
  (`Detector.explain`) of the ML detector that carries the row;
- identifiers (trans_id, account_id, trans_date, trans_month), `score` and `flagged`.

Every ML detector explains itself through the detector contract; nothing here knows which detectors
exist. SHAP convention (the Isolation Forest): values come from `shap.TreeExplainer` on the fitted IsolationForest, which explains
the trees' expected isolation path length (a long path means normal). They are negated here, so a
POSITIVE value pushes the row TOWARD ANOMALOUS and a negative value toward normal; the values of a
row sum (with the explainer's base value) to its negated path length, i.e. they are additive in the
forest's raw anomaly score. Each flagged row is explained by the ML detector that carries most of its ML
part, when that detector found it unusual (`_explain_led`); the other detectors list their score,
evidence and contribution without features. So explaining one month's flagged rows (about 1 % of the
month) takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .features import FEATURES_BY_NAME, with_frame_context
from .wording import iso_date, iso_dates, kind_label, money, plural, times

if TYPE_CHECKING:
    from .ensemble import EnsembleDetector, Scored

TOP_FEATURES = 3
EXPLAINED_EVIDENCE = 1.0
"""A detector explains only rows it found at least this unusual: as rare as 1 training row in 10."""
RULE_SENTENCE = 0.5
"""The sentence quotes the strongest rule when its severity reaches this or the rules carry most of the score."""


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if np.isfinite(number) else None


def _ratio(value: float, typical: float) -> float:
    return value / typical if typical and np.isfinite(typical) and typical > 0 else float("nan")


def _clause(feature: str, row: pd.Series, kind: str, value: float, typical: float) -> str:
    """The plain-language clause behind one model feature for one row."""
    amount = money(float(row.get("amount", np.nan)))
    date = iso_date(row.get("trans_date"))
    ratio = _ratio(value, typical)
    clauses: dict[str, Callable[[], str]] = {
        "amount_vs_median": lambda: (
            f"{kind} of {amount} is {times(ratio)} this account's 90-day median ({money(typical)})"
            if ratio >= 1
            else f"{kind} of {amount} is a small fraction (1/{1 / ratio:,.0f}) of this account's 90-day median ({money(typical)})"
        ),
        "amount_vs_max": lambda: (
            f"{kind} of {amount} is {times(ratio)} the largest {kind} of the previous 90 days ({money(typical)})"
        ),
        "amount_zscore": lambda: (
            f"{kind} of {amount} is {times(ratio)} this account's 90-day mean ({money(typical)})"
            if ratio >= 1
            else f"{kind} of {amount} is far below this account's 90-day mean ({money(typical)})"
        ),
        "history_depth": lambda: (
            f"first {kind} of this account in 90 days"
            if not value
            else f"{kind} of {amount} after {plural(value, kind)} in the previous 90 days"
        ),
        "same_day_kind_count": lambda: f"{plural(value, kind)} by this account on {date}",
        "day_kind_count_vs_usual": lambda: (
            f"{plural(value, kind)} by this account on {date}, against {typical:,.2f} on its usual day"
        ),
        "same_day_count": lambda: (
            f"{kind} of {amount}, one of {plural(value, 'transaction')} by this account on {date}"
        ),
        "week_count": lambda: (
            f"{kind} of {amount}, one of {plural(value, 'transaction')} by this account in the 7 days to {date}"
        ),
        "day_spend_vs_usual": lambda: (
            f"{kind} of {amount}: the account spent {money(value)} on {date}, {times(ratio)} its usual spending day "
            f"({money(typical)})"
        ),
        "month_spend_vs_usual": lambda: (
            f"{kind} of {amount}: the account has spent {money(value)} this month, {times(ratio)} its usual month "
            f"({money(typical)})"
        ),
        "new_payee": lambda: (
            f"first {kind} of {amount} ({_ratio(value, typical):.1f} district monthly salaries) to a payee this "
            f"account never paid"
        ),
        "new_payee_vs_usual": lambda: (
            f"first {kind} of {amount} to a payee this account never paid, {times(ratio)} its usual {kind} "
            f"({money(typical)})"
        ),
        "history_spread": lambda: (
            f"{kind} of {amount} against a 90-day history of this kind with median {money(typical)} and largest "
            f"{money(value)}"
        ),
        "payment_vs_largest": lambda: (
            f"payment of {amount} is {times(ratio)} the account's largest earlier payment ({money(typical)})"
        ),
        "days_since_previous": lambda: f"{kind} of {amount} after {value:,.0f} days without any transaction",
        "balance_change": lambda: f"{kind} of {amount} moves the balance from {money(typical)} to {money(value)}",
        "overdraft": lambda: f"{kind} of {amount} leaves the account overdrawn at {money(value)}",
        "log_amount": lambda: (
            f"{kind} of {amount}, {times(ratio)} what accounts of this district usually move in a {kind} ({money(typical)})"
            if ratio >= 1
            else f"{kind} of {amount}"
        ),
        "balance_level": lambda: f"{kind} of {amount} leaves a balance of {money(value)} (before: {money(typical)})",
        "kind_rarity": lambda: (
            f"{kind} of {amount}: a kind of transaction the bank rarely sees ({value:.2%} of transactions)"
        ),
        "amount_vs_peers": lambda: (
            f"{kind} of {amount} is {times(ratio)} the usual {kind} at accounts of this district ({money(typical)})"
        ),
        "amount_vs_payee_peers": lambda: (
            f"payment of {amount} is {times(ratio)} what other accounts usually pay this payee ({money(typical)})"
            if ratio >= 1
            else f"payment of {amount} is far below what other accounts usually pay this payee ({money(typical)})"
        ),
        "payee_reach": lambda: (
            f"{kind} of {amount} to a payee no other account pays"
            if not value
            else f"{kind} of {amount} to a payee {plural(value, 'account')} pay"
        ),
        "payee_amount_change": lambda: (
            f"{kind} of {amount} to a payee this account pays regularly, at a new amount (usually {money(typical)})"
        ),
        "month_kind_count_vs_usual": lambda: (
            f"{plural(value, kind)} by this account this month, against {typical:,.1f} in its usual month"
        ),
        "month_kind_amount_vs_usual": lambda: (
            f"{kind} of {amount}: {money(value)} of {kind}s this month, {times(ratio)} the account's usual "
            f"month ({money(typical)})"
        ),
        "week_kind_count_vs_usual": lambda: (
            f"{plural(value, kind)} by this account in the 7 days to {date}, against {typical:,.1f} in its usual week"
        ),
        "identical_posting": lambda: f"{kind} of {amount} on {date} repeats an identical posting made earlier that day",
        "ledger_gap": lambda: (
            f"balance after this {kind} of {amount} is off by {money(value)} from the previous balance plus the amount"
        ),
        "amount_vs_salary": lambda: (
            f"{kind} of {amount} is {_ratio(value, typical):.1f} average monthly salaries of the owner's district"
        ),
    }
    try:
        return clauses[feature]()
    except (KeyError, ValueError, ZeroDivisionError, OverflowError):
        return (
            f"{kind} of {amount}: unusual {FEATURES_BY_NAME[feature].label if feature in FEATURES_BY_NAME else feature}"
        )


def _sentence(clause: str) -> str:
    clause = clause.strip()
    return clause[:1].upper() + clause[1:] + ("" if clause.endswith(".") else ".")


def _contributions(
    rules_score: float, ml_score: float, evidence: dict[str, float], weights: dict[str, float]
) -> dict[str, float]:
    """Shares of -log(1 - evidence) of the rules and of each ML detector."""
    rules_part = -np.log1p(-min(rules_score, 1 - 1e-12))
    ml_part = -np.log1p(-min(ml_score, 1 - 1e-12))
    total = rules_part + ml_part
    if total <= 0:
        return {"rules": 0.0, **{name: 0.0 for name in evidence}}
    weighted = {name: weights.get(name, 1.0) * max(value, 0.0) for name, value in evidence.items()}
    weighted_total = sum(weighted.values())
    shares = {"rules": round(float(rules_part / total), 4)}
    for name, value in weighted.items():
        share = value / weighted_total if weighted_total > 0 else 1.0 / max(len(weighted), 1)
        shares[name] = round(float(ml_part / total * share), 4)
    return shares


def _with_text(item: dict[str, Any], row: pd.Series, kind: str) -> dict[str, Any]:
    """A detector's feature entry with a plain clause, when the detector did not write one."""
    if item.get("text") or item.get("feature") not in FEATURES_BY_NAME:
        return item
    value = item.get("value")
    typical = item.get("typical")
    number = float(value) if value is not None else float("nan")
    usual = float(typical) if typical is not None else float("nan")
    return {**item, "text": _clause(item["feature"], row, kind, number, usual)}


def _leading_ml(evidence: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Per row, the ML detector with the largest weighted evidence: the one that carries most of the ML part."""
    names = list(evidence)
    if not names:
        return np.array([], dtype=object)
    weighted = np.column_stack([weights.get(name, 1.0) * np.maximum(evidence[name], 0.0) for name in names])
    return np.asarray(names, dtype=object)[np.argmax(weighted, axis=1)]


def _explain_led(
    detector: Any,
    rows: pd.DataFrame,
    evidence: np.ndarray,
    leads: np.ndarray,
    top: int,
    history: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    """The detector's own explanation of the rows it carries, no features for the others.

    It explains a row when it carries most of the row's ML part (`leads`) and found it unusual (evidence >=
    EXPLAINED_EVIDENCE). The row's sentence quotes that detector; the others list their score, evidence and
    contribution, and spare the costliest part of a month's reasons (SHAP, for the forest).
    """
    explained: list[dict[str, Any]] = [{"features": []} for _ in range(len(rows))]
    chosen = np.flatnonzero((evidence >= EXPLAINED_EVIDENCE) & leads)
    if len(chosen):
        for position, item in zip(chosen, detector.explain(rows.iloc[chosen], top=top, history=history), strict=True):
            explained[int(position)] = item
    return explained


def explain_rows(
    ensemble: EnsembleDetector,
    frame: pd.DataFrame,
    scored: Scored | None = None,
    only_flagged: bool = True,
    top: int = TOP_FEATURES,
    history: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One JSON-serializable explanation per flagged row of `frame` (or per row), in frame order."""
    context = with_frame_context(frame.reset_index(drop=True))
    if scored is None:
        scored = ensemble.score_frame(context, history)
    table = scored.table
    positions = np.flatnonzero(table["flagged"].to_numpy()) if only_flagged else np.arange(len(table))
    if not len(positions):
        return []
    subset = context.iloc[positions]
    others = context.drop(index=context.index[positions])
    earlier = others if history is None else pd.concat([history, others], ignore_index=True)
    evidence_of = {name: values[positions] for name, values in scored.evidence.items()}
    leads = _leading_ml(evidence_of, ensemble.weights)
    own = {
        detector.name: _explain_led(
            detector,
            subset,
            evidence_of[detector.name],
            leads == detector.name,
            top,
            earlier if detector.lookback_days else None,
        )
        for detector in ensemble.detectors
    }
    kinds = kind_label(subset)
    dates = iso_dates(subset, "trans_date")
    months = iso_dates(subset, "trans_month")
    out: list[dict[str, Any]] = []
    for index, position in enumerate(positions):
        row = subset.iloc[index]
        record = table.iloc[int(position)]
        evidence = {name: float(values[int(position)]) for name, values in scored.evidence.items()}
        contributions = _contributions(
            float(record["rules_score"]), float(record["ml_score"]), evidence, ensemble.weights
        )
        detectors: dict[str, dict[str, Any]] = {"rules": {"score": round(float(record["rules_score"]), 4)}}
        for name, explained in own.items():
            detectors[name] = {
                "score": round(float(record[f"{name}_score"]), 4),
                "evidence": round(evidence[name], 3),
                "features": [_with_text(item, row, kinds[index]) for item in explained[index].get("features", [])],
            }
        detectors["ml"] = {"score": round(float(record["ml_score"]), 4)}
        for name, share in contributions.items():
            detectors.setdefault(name, {})["contribution"] = share
        leading = max(own, key=lambda name: contributions.get(name, 0.0), default=None)
        features = detectors[leading]["features"] if leading else []
        fired = scored.rules.fired(int(position))
        if fired and (fired[0]["severity"] >= RULE_SENTENCE or contributions["rules"] >= 0.5 or not features):
            sentence = _sentence(fired[0]["reason"])
        elif features and features[0].get("text"):
            sentence = _sentence(features[0]["text"])
        else:
            sentence = _sentence(
                f"{kinds[index]} of {money(float(row.get('amount', np.nan)))} scored unusual by the detectors"
            )
        out.append(
            {
                "trans_id": int(row["trans_id"]),
                "account_id": int(row["account_id"]),
                "trans_date": dates[index],
                "trans_month": months[index],
                "transaction_kind": str(row.get("transaction_kind", "")),
                "amount": _finite(row.get("amount")),
                "score": round(float(record["score"]), 4),
                "flagged": bool(record["flagged"]),
                "sentence": sentence,
                "rules": fired,
                "leading_detector": leading,
                "features": features,
                "detectors": detectors,
            }
        )
    return out


def explanation_frame(explanations: list[dict[str, Any]]) -> pd.DataFrame:
    """Explanations as a table: one row per explained transaction, nested parts as JSON text."""
    import json

    rows = []
    for item in explanations:
        rows.append(
            {
                **{
                    key: item[key]
                    for key in ("trans_id", "account_id", "trans_date", "trans_month", "score", "sentence")
                },
                "rules": json.dumps(item["rules"]),
                "features": json.dumps(item["features"]),
                "detectors": json.dumps(item["detectors"]),
            }
        )
    return pd.DataFrame(rows)
