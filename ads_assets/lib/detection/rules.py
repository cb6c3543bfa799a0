"""Named rules for the things that are certain, each with a severity and a plain reason.

A rule reads mart columns only and returns, per row, a severity in [0, 1] (0 = not hit) and, for the
rows it hits, a reason an analyst can check against the ledger, with the real numbers. Severities of
CERTAIN (0.95) and above are facts about the ledger, not judgements of behaviour, and the ensemble
ranks them above everything else; rules that judge behaviour stay at or below UNCERTAIN_MAX (0.9).

- `ledger_break` (certain): the balance after the transaction does not follow from the account's
  previous balance and the amount (`ledger_gap` beyond LEDGER_TOLERANCE, 0.50: real Berka balances
  carry +-0.10 rounding). 0.95..1 with the size of the gap. On the real PKDD'99 extract it fires
  exactly where the file is cut mid-day (1994-03-31: an interest credit is missing, the fee after
  it is off by that interest).
- `duplicate_posting`: a second (third, ...) posting of the same amount, type and counterparty on the
  same account and day; the first posting (lowest trans_id) is not hit. A payment to a named
  counterparty posted twice is certain (0.95); identical cash or card withdrawals happen legitimately
  (two withdrawals of 500 at a machine), so they only get 0.35.
- `amount_beyond_history`: the amount is far beyond the account's 90-day history of the same kind,
  judged against how much that history varies (and how much the kind varies at least: cash is
  discretionary, standing orders repeat): 10x a standing payment that never changed scores high,
  10x the largest of a cash history that already spans 1..8x does not. Reduced for a thin history
  (two earlier transactions; none with a single one, which is too often an account's small opening
  deposit) and for immaterial amounts, judged against the account's own usual amount of the kind and
  against district monthly salaries: five times a customer's usual payment is material however small
  it is next to salaries. An amount that is exactly the
  usual, specific (non-round) amount times 10 or 100, or exactly a tenth of it, is certain: a typing
  error, an extra or missing zero. Only where amounts repeat, though (standing orders, pensions,
  salaries, fees, or an account whose history of the kind is one amount): a cash withdrawal or an
  interest credit that happens to be ten times the last one is a coincidence, judged like any other.
- `burst`: many withdrawals of one kind (cash, card) on one day, beyond the account's habit (a day
  may hold 1 + a tenth of the kind's 90-day count; two or more beyond that, at least four in all),
  raised when the day's spending is also far above the account's usual spending day. The severity
  rises with the evidence without a ceiling short of 0.9 (about 0.4 at two beyond the habit, 0.65 at
  four, 0.8 at six), so a day far beyond the habit ranks above a merely busy one instead of tying
  with it.
- `overdraft`: a debit that takes the account materially below zero by itself (the overdraft it adds,
  in district monthly salaries: from OVERDRAFT_SALARIES[0], full at [1]). Real Berka accounts dip
  below zero rarely and by little (at most about half a monthly salary on the PKDD'99 extract), so
  a withdrawal or payment that overdraws the account by several salaries is spending beyond its
  means. A debit on an account already overdrawn adds only its own amount and counts
  ALREADY_OVERDRAWN_WEIGHT as much: the account's first plunge is the event, not what follows it.
- `new_payee_large`: a first payment to a counterparty the account never paid, large in itself
  (from half to two district monthly salaries) or 1.5..4x the account's largest earlier payment
  (weighted by its size, so a first 300 after earlier payments of 50 is weak). A one-off transfer
  counts fully; a new standing-order kind (household, insurance, loan) 0.6.

`RuleSet.evaluate(frame)` returns every rule's severities and (on demand) reasons;
`RuleSet.score(frame)` combines them as a noisy-OR, 1 - prod(1 - severity).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .base import flag, numeric, text
from .features import SPENDING_KINDS, salary, with_frame_context
from .wording import iso_dates, kind_label, money, plural, times

CERTAIN = 0.95
"""A rule severity at or above this is certain: the ensemble ranks such rows above every other row."""
UNCERTAIN_MAX = 0.9
"""The highest severity of rules that judge behaviour (amounts, bursts, payees): never certain."""

LEDGER_TOLERANCE = 0.5
"""Crowns: a ledger gap up to this is rounding, not a break."""

OVERDRAFT_SALARIES = (0.75, 3.0)
"""District monthly salaries of overdraft one debit adds: where the `overdraft` rule starts, where it is full."""

ALREADY_OVERDRAWN_WEIGHT = 0.4
"""How much an `overdraft` hit counts when the account was below zero before the debit."""

KIND_SPREAD: dict[str, float] = {
    "cash_withdrawal": 0.35,
    "card_withdrawal": 0.35,
    "cash_credit": 0.35,
    "interest_credited": 0.5,
    "sanction_interest": 0.5,
    "remittance_to_other_bank": 0.1,
    "collection_from_other_bank": 0.1,
    "other_credit": 0.35,
    "other_debit": 0.35,
}
"""log10(largest / median) a kind's amounts span at least, whatever a short history shows: cash is
discretionary and interest follows the balance, while standing orders, pensions and fees repeat."""

DISCRETIONARY_SPREAD = 0.3
"""Kinds whose KIND_SPREAD reaches this have discretionary amounts (cash, card, interest, other)."""
REPEATED_SPREAD = 0.02
"""log10(largest / median) up to which a history of two or more amounts repeats one amount (within 5 %)."""


@dataclass
class RuleResult:
    """One rule's verdict on every row of a frame; reasons are written on demand."""

    rule: str
    severity: np.ndarray
    explain: Callable[[int], str] = field(repr=False, default=lambda row: "")

    @property
    def hits(self) -> np.ndarray:
        return self.severity > 0

    def reason(self, row: int) -> str | None:
        """The reason for row `row` (a position), None when the rule did not hit it."""
        return self.explain(row) if self.severity[row] > 0 else None

    @property
    def reasons(self) -> np.ndarray:
        """Object array: the reason of each hit row, None elsewhere."""
        out = np.full(len(self.severity), None, dtype=object)
        for row in np.flatnonzero(self.severity > 0):
            out[row] = self.explain(int(row))
        return out


class Rule(ABC):
    """A named, explainable check over mart rows."""

    name: str = "rule"
    description: str = ""

    @abstractmethod
    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        """Severity and reason of every row (`frame` carries `features.with_frame_context` columns)."""

    def _result(self, frame: pd.DataFrame, severity: np.ndarray, reason: Callable[[int], str]) -> RuleResult:
        severity = np.clip(np.nan_to_num(np.asarray(severity, dtype=np.float64), nan=0.0), 0.0, 1.0)
        return RuleResult(self.name, severity, reason)


class LedgerBreak(Rule):
    name = "ledger_break"
    description = "The balance after the transaction does not follow from the previous balance and the amount."

    def __init__(self, tolerance: float = LEDGER_TOLERANCE) -> None:
        self.tolerance = tolerance

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        gap = np.nan_to_num(numeric(frame, "ledger_gap"), nan=0.0)
        size = np.abs(gap)
        with np.errstate(divide="ignore"):
            growth = np.clip(np.log10(np.maximum(size, 1.0)) / 3, 0, 1)
            severity = np.where(size > self.tolerance, CERTAIN + (1 - CERTAIN) * growth, 0)
        after = numeric(frame, "balance_after")
        kinds = kind_label(frame)
        amount = numeric(frame, "amount")

        def reason(row: int) -> str:
            return (
                f"balance after this {kinds[row]} of {money(amount[row])} is {money(after[row])}, but the "
                f"account's previous balance and the amount give {money(after[row] - gap[row])}: the ledger is "
                f"off by {'+' if gap[row] > 0 else '-'}{money(abs(gap[row]))} (a posting missing or mistyped)"
            )

        return self._result(frame, severity, reason)


class DuplicatePosting(Rule):
    name = "duplicate_posting"
    description = "The same amount, type and counterparty posted again on the same account and day."

    def __init__(self, counterparty_severity: float = CERTAIN, cash_severity: float = 0.35) -> None:
        self.counterparty_severity = counterparty_severity
        self.cash_severity = cash_severity

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        rank = numeric(frame, "posting_rank")
        repeated = flag(frame, "is_duplicate_posting") & (rank >= 1)
        payee = text(frame, "counterparty_account")
        bank = text(frame, "counterparty_bank")
        has_payee = payee != ""
        severity = np.where(repeated, np.where(has_payee, self.counterparty_severity, self.cash_severity), 0.0)
        amount = numeric(frame, "amount")
        kinds = kind_label(frame)
        dates = iso_dates(frame, "trans_date")

        def reason(row: int) -> str:
            target = f" to account {payee[row]} at bank {bank[row]}" if has_payee[row] else ""
            ordinal = {1: "second", 2: "third"}.get(int(rank[row]), f"{int(rank[row]) + 1}th")
            return (
                f"{ordinal} identical {kinds[row]} of {money(amount[row])}{target} posted on {dates[row]}: "
                f"the same amount, type and counterparty were already posted that day"
            )

        return self._result(frame, severity, reason)


class AmountBeyondHistory(Rule):
    name = "amount_beyond_history"
    description = "The amount is far beyond the account's 90-day history of the same kind, given how much it varies."

    def __init__(self, start: float = 1.5, width: float = 4.0) -> None:
        self.start = start
        self.width = width

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        amount = numeric(frame, "amount")
        count = np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0)
        median = numeric(frame, "kind_amount_median_90d")
        largest = numeric(frame, "kind_amount_max_90d")
        valid = (count >= 1) & (median > 0) & (largest > 0) & (amount > 0)
        safe_median, safe_largest = np.where(valid, median, 1.0), np.where(valid, largest, 1.0)
        safe_amount = np.where(valid, amount, 1.0)
        spread = np.where(valid, np.log10(safe_largest / safe_median), 0.0)
        above = np.where(valid, np.log10(safe_amount / safe_largest), 0.0)
        codes, kinds_seen = pd.factorize(text(frame, "transaction_kind"))
        prior = np.asarray([KIND_SPREAD.get(kind, 0.0) for kind in kinds_seen] + [0.0])[codes]
        tolerance = 0.15 + 0.5 * np.fmax(spread, prior)
        high = (above / tolerance - self.start) / self.width
        confidence = np.select([count >= 3, count >= 2], [1.0, 0.75], 0.0)
        materiality = self.materiality(amount, median, largest, above, salary(frame))
        severity = np.clip(high, 0, 1) * confidence * UNCERTAIN_MAX * materiality
        repeats = (prior < DISCRETIONARY_SPREAD) | ((count >= 2) & (spread <= REPEATED_SPREAD))
        shifted = np.where(repeats, self._power_of_ten(safe_amount, safe_median, count), 0)
        severity = np.where(valid, np.fmax(severity, np.where(shifted != 0, CERTAIN, 0.0)), 0.0)
        kinds = kind_label(frame)

        def reason(row: int) -> str:
            history = f"{plural(count[row], kinds[row])} of the previous 90 days"
            if shifted[row] > 0:
                return (
                    f"{kinds[row]} of {money(amount[row])} is exactly {10 ** shifted[row]:,} times this account's usual "
                    f"{money(median[row])} (the 90-day median of its {history}): an extra zero?"
                )
            if shifted[row] < 0:
                return (
                    f"{kinds[row]} of {money(amount[row])} is exactly 1/{10 ** -shifted[row]:,} of this account's usual "
                    f"{money(median[row])} (the 90-day median of its {history}): a missing digit?"
                )
            if count[row] <= 1:
                return (
                    f"{kinds[row]} of {money(amount[row])} is {times(amount[row] / largest[row])} the only "
                    f"{kinds[row]} of the previous 90 days ({money(largest[row])})"
                )
            return (
                f"{kinds[row]} of {money(amount[row])} is {times(amount[row] / median[row])} this account's "
                f"90-day median ({money(median[row])}) and {times(amount[row] / largest[row])} the largest of "
                f"its {history} ({money(largest[row])})"
            )

        return self._result(frame, severity, reason)

    @staticmethod
    def materiality(
        amount: np.ndarray, median: np.ndarray, largest: np.ndarray, above: np.ndarray, salaries: np.ndarray
    ) -> np.ndarray:
        """0.6..1: how much the departure matters, against the account's own usual amount and the district's salary.

        A departure of the account's own usual amount counts like one of a district monthly salary, so five
        times a customer's usual payment is material even where it is small next to salaries.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.abs(np.where(above > 0, amount - largest, median - amount))
            relative = np.where(median > 0, excess / median, 0.0)
        return np.clip(0.6 + np.fmax(excess / salaries, 0.5 * relative), 0.6, 1.0)

    @staticmethod
    def _power_of_ten(amount: np.ndarray, usual: np.ndarray, count: np.ndarray) -> np.ndarray:
        """+k where the amount is exactly the usual amount times 10^k (k >= 1), -k for 10^-k, else 0.

        Exact to the cent, and only for a specific usual amount (three or more significant digits,
        such as 636.80, not 500 or 1,900), where a power of ten cannot be a coincidence of round
        numbers. A missing digit needs two earlier transactions, so a single earlier error is not
        taken as the usual amount.
        """
        nearest = np.rint(np.log10(amount / usual))
        expected = usual * 10.0**nearest
        exact = np.abs(amount - expected) <= 1e-6 * np.maximum(amount, expected) + 1e-9
        enough = np.where(nearest < 0, count >= 2, count >= 1)
        candidate = exact & enough & (nearest != 0)
        cents = np.abs(np.rint(np.where(candidate, usual, 1.0) * 100)).astype(np.int64)
        for _ in range(18):
            cents = np.where((cents % 10 == 0) & (cents > 0), cents // 10, cents)
        specific = cents >= 100
        return np.where(candidate & specific, nearest, 0).astype(np.int64)


class Burst(Rule):
    name = "burst"
    description = "Many withdrawals of one kind on one day, beyond what the account's habit explains."

    def __init__(self, minimum: int = 4, habit_days: float = 10.0, margin: float = 2.0, steepness: float = 1.5) -> None:
        self.minimum = minimum
        self.habit_days = habit_days
        self.margin = margin
        self.steepness = steepness

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        kinds = text(frame, "transaction_kind")
        spending = np.isin(kinds, list(SPENDING_KINDS))
        count = numeric(frame, "same_day_kind_count")
        history = np.nan_to_num(numeric(frame, "kind_txn_count_90d"), nan=0.0)
        allowed = 1.0 + history / self.habit_days
        excess = count - allowed
        ratio = np.nan_to_num(numeric(frame, "day_spend_ratio"), nan=0.0)
        with np.errstate(divide="ignore"):
            boost = 0.2 * np.clip(np.log2(np.maximum(ratio, 1.0)) / 3, 0, 1)
        hit = spending & (count >= self.minimum) & (excess >= self.margin)
        evidence = (excess - self.margin + 1) / 4 + 0.15 + boost
        severity = np.where(hit, UNCERTAIN_MAX * (1.0 - np.exp(-self.steepness * evidence)), 0.0)
        day_spend = numeric(frame, "day_spend")
        usual = numeric(frame, "usual_daily_spend_90d")
        amount = numeric(frame, "amount")
        dates = iso_dates(frame, "trans_date")
        labels = kind_label(frame)

        def reason(row: int) -> str:
            usual_text = f" (usual spending day {money(usual[row])})" if np.isfinite(usual[row]) else ""
            return (
                f"{labels[row]} of {money(amount[row])}, one of {plural(count[row], labels[row])} on {dates[row]} "
                f"spending {money(day_spend[row])} that day{usual_text}; the account made {int(history[row])} in "
                f"the previous 90 days"
            )

        return self._result(frame, severity, reason)


class Overdraft(Rule):
    name = "overdraft"
    description = "A debit that by itself takes the account several monthly salaries below zero."

    def __init__(
        self, start_salaries: float = OVERDRAFT_SALARIES[0], full_salaries: float = OVERDRAFT_SALARIES[1]
    ) -> None:
        self.start_salaries = start_salaries
        self.full_salaries = full_salaries

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        before = numeric(frame, "balance_before")
        after = numeric(frame, "balance_after")
        debit = numeric(frame, "direction") < 0
        added = np.nan_to_num(np.maximum(-after, 0.0) - np.maximum(-before, 0.0), nan=0.0)
        salaries = np.where(debit, added, 0.0) / salary(frame)
        weight = np.where(before < 0, ALREADY_OVERDRAWN_WEIGHT, 1.0)
        severity = UNCERTAIN_MAX * weight * _log_scale(salaries, self.start_salaries, self.full_salaries)
        amount = numeric(frame, "amount")
        labels = kind_label(frame)

        def reason(row: int) -> str:
            return (
                f"{labels[row]} of {money(amount[row])} takes the balance from {money(before[row])} to "
                f"{money(after[row])}: {money(added[row])} overdrawn, {salaries[row]:.1f} district monthly salaries "
                f"below zero"
            )

        return self._result(frame, severity, reason)


class NewPayeeLarge(Rule):
    name = "new_payee_large"
    description = "A first payment to a new counterparty, large against the account's earlier payments or in itself."

    def __init__(
        self,
        minimum_ratio: float = 1.5,
        full_ratio: float = 4.0,
        minimum_salaries: float = 0.5,
        full_salaries: float = 2.0,
        standing_weight: float = 0.6,
    ) -> None:
        self.minimum_ratio = minimum_ratio
        self.full_ratio = full_ratio
        self.minimum_salaries = minimum_salaries
        self.full_salaries = full_salaries
        self.standing_weight = standing_weight

    def evaluate(self, frame: pd.DataFrame) -> RuleResult:
        new = flag(frame, "is_new_counterparty") & (numeric(frame, "direction") < 0)
        amount = numeric(frame, "amount")
        largest = numeric(frame, "max_previous_payment")
        paid_before = largest > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nan_to_num(np.where(paid_before, amount / largest, 0.0), nan=0.0, posinf=0.0)
        salaries = amount / salary(frame)
        by_ratio = _log_scale(ratio, self.minimum_ratio, self.full_ratio) * np.clip(0.25 + salaries, 0.25, 1.0)
        by_size = _log_scale(salaries, self.minimum_salaries, self.full_salaries)
        categories = text(frame, "category")
        weight = np.where(np.isin(categories, ["", "unspecified"]), 1.0, self.standing_weight)
        evidence = np.fmax(np.where(paid_before, by_ratio, 0.0), by_size)
        severity = np.where(new, UNCERTAIN_MAX * evidence * weight, 0.0)
        payee = text(frame, "counterparty_account")
        bank = text(frame, "counterparty_bank")
        labels = kind_label(frame)

        def reason(row: int) -> str:
            target = f"account {payee[row]} at bank {bank[row]}"
            size = f"{money(amount[row])} ({salaries[row]:.1f} district monthly salaries)"
            if not paid_before[row]:
                compared = "the account's first payment to anyone"
            elif ratio[row] < 1:
                compared = f"the account's largest earlier payment was {money(largest[row])}"
            else:
                compared = f"{times(ratio[row])} the account's largest earlier payment ({money(largest[row])})"
            return f"first {labels[row]} to {target}, a payee never paid before: {size}, {compared}"

        return self._result(frame, severity, reason)


def _log_scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 at or below `low`, 1 at or above `high`, log-linear between."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (np.log(np.maximum(values, 1e-12)) - np.log(low)) / (np.log(high) - np.log(low))
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)


def default_rules() -> list[Rule]:
    return [LedgerBreak(), DuplicatePosting(), AmountBeyondHistory(), Burst(), Overdraft(), NewPayeeLarge()]


@dataclass
class RuleReport:
    """Every rule's verdict on a frame."""

    results: dict[str, RuleResult] = field(default_factory=dict)

    def severities(self) -> pd.DataFrame:
        """One column of severities per rule."""
        return pd.DataFrame({name: result.severity for name, result in self.results.items()})

    def strongest(self) -> np.ndarray:
        """The highest rule severity of each row."""
        if not self.results:
            return np.zeros(0)
        return np.max(np.vstack([result.severity for result in self.results.values()]), axis=0)

    def combined(self) -> np.ndarray:
        """Noisy-OR of the rules' severities: 1 - prod(1 - severity)."""
        if not self.results:
            return np.zeros(0)
        keep = np.ones_like(next(iter(self.results.values())).severity)
        for result in self.results.values():
            keep = keep * (1.0 - result.severity)
        return 1.0 - keep

    def fired(self, row: int) -> list[dict[str, Any]]:
        """The rules that hit `row`, most severe first, each with severity and reason."""
        hits = [
            {"rule": name, "severity": round(float(result.severity[row]), 4), "reason": result.reason(row)}
            for name, result in self.results.items()
            if result.severity[row] > 0
        ]
        return sorted(hits, key=lambda hit: -hit["severity"])


class RuleSet:
    """A list of rules evaluated together."""

    name = "rules"

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules = default_rules() if rules is None else list(rules)

    def evaluate(self, frame: pd.DataFrame) -> RuleReport:
        context = with_frame_context(frame)
        return RuleReport({rule.name: rule.evaluate(context) for rule in self.rules})

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.evaluate(frame).combined()

    def explain(self, frame: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
        report = self.evaluate(frame)
        return [{"detector": self.name, "rules": report.fired(row)[:top]} for row in range(len(frame))]
