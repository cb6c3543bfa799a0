"""An LSTM next-transaction model over each account's ordered history.

Each account's rows, ordered by (trans_date, trans_id), form a sequence. Every step is described by
its signed log amount (direction * log1p(amount)), its transaction kind (an embedding over the kinds
seen in training; unseen or missing kinds share the 'other' entry), log1p of the days since the
previous step and its rank among the account's steps that day, the day of the month and the weekday
(cyclic), the balance (signed log) and its relative change, and whether the step had a counterparty
and whether that counterparty was new.

At step t the LSTM has read steps < t (the first step of a sequence reads a learned start input) and
predicts step t in four factors: the kind (softmax over the LSTM state); given the actual kind,
whether its counterparty is new (Bernoulli, for steps with a counterparty); and given the kind and
the counterparty, the signed log amount and log1p of the days since the previous step (Gaussians with
predicted mean and log-variance). Beside the LSTM state and the kind's embedding, the heads read the
recurrence of the kind in the sequence so far (the last amount of the kind, the one before, the days
since, the gap its last interval predicts), and the amount and timing heads the same for the kind and
counterparty: an LSTM state of a few dozen numbers does not keep a standing order's exact amount or
day, and the amount is predicted as a change from the last one. A row's raw score is the surprise of
what actually happened, the sum of the four negative log-likelihoods; `explain` shows the parts, each
beside what the model expected (the most likely kind, the expected amount and gap, the chance of a
new payee).

`fit` trains on fixed-length windows of the training accounts' sequences (at most `max_windows`,
drawn deterministically) with Adam and calibrates on the rows of a share of accounts held out from
training, scored over their whole sequences. `raw_score` reads each account's `history` rows (up to
`lookback_days` before the frame) before the frame's rows, so a month's first transactions are
predicted from the account's recent past; accounts are batched by sequence length and run without
gradients in float32 on the CPU. Torch runs on one thread by default (`threads`): the per-step
matrices are small, and on two cores shared with other work two threads were several times slower.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from .base import Detector, NotFittedError, flag, numeric, text
from .wording import KIND_NAMES, kind_label, money

PARTS: tuple[str, ...] = ("amount", "kind", "timing", "payee")
PART_LABELS: dict[str, str] = {
    "amount": "amount given the kind of transaction",
    "kind": "kind of transaction",
    "timing": "days since the previous transaction",
    "payee": "new or known payee",
}
OTHER_KIND = "other"
EXPECTED: tuple[str, ...] = (
    "likely_kind",
    "likely_probability",
    "actual_probability",
    "amount_mean",
    "gap_mean",
    "payee_probability",
)
"""What `_predict` reports beside the surprises, per row."""
INPUTS: tuple[str, ...] = (
    "signed_log_amount",
    "log_gap",
    "same_day_rank",
    "first_transaction",
    "day_of_month_sin",
    "day_of_month_cos",
    "weekday_sin",
    "weekday_cos",
    "balance_change",
    "signed_log_balance",
    "new_payee",
    "has_payee",
)
"""The numeric inputs of a step (standardised with the training means and spreads)."""

CONTEXT = 12
"""Context values the amount and timing heads read (see `Steps.context`)."""
KIND_CONTEXT = 6
"""The first context values, about the kind only, which the payee head reads."""
MIN_AMOUNT_STD = 0.02
"""Smallest predicted spread of the signed log amount (about 2 %): repeated amounts stay finite."""
MIN_GAP_STD = 0.25
"""Smallest predicted spread of log1p(days since the previous step)."""
LOGVAR_GAIN = 3.0
"""Log-variances are this multiple of a head output, so a near-exact repeat is a few units away."""
LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Steps:
    """A frame (and its history) as ordered account sequences, with every step's inputs and targets.

    Rows are sorted by (account_id, trans_date, trans_id); `order[i]` is the position in the
    concatenated history + frame of sorted row i and `scored` marks the frame's rows.
    """

    order: np.ndarray
    scored: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    kind: np.ndarray
    inputs: np.ndarray
    amount: np.ndarray
    days: np.ndarray
    gap: np.ndarray
    has_gap: np.ndarray
    new_payee: np.ndarray
    has_payee: np.ndarray
    context: np.ndarray
    """Per step, `_recurrence` of the account's steps of the same kind, then of the same kind and
    counterparty (the amount and timing heads read both, the payee head the first only)."""

    def __len__(self) -> int:
        return len(self.order)


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The mart columns the model reads, as plain arrays."""
    dates = pd.to_datetime(frame["trans_date"]) if "trans_date" in frame.columns else pd.Series(pd.NaT, frame.index)
    return {
        "account": np.nan_to_num(numeric(frame, "account_id"), nan=-1.0).astype(np.int64),
        "trans_id": np.nan_to_num(numeric(frame, "trans_id"), nan=0.0).astype(np.int64),
        "day": dates.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64),
        "kind": text(frame, "transaction_kind"),
        "direction": numeric(frame, "direction"),
        "amount": numeric(frame, "amount"),
        "balance_before": numeric(frame, "balance_before"),
        "balance_after": numeric(frame, "balance_after"),
        "days_since_previous": numeric(frame, "days_since_previous_txn"),
        "new_payee": flag(frame, "is_new_counterparty"),
        "payee": text(frame, "counterparty_account"),
        "has_payee": _has_payee(frame),
    }


def _has_payee(frame: pd.DataFrame) -> np.ndarray:
    """Whether each row has a counterparty (is_new_counterparty is missing exactly where it has none)."""
    if "is_new_counterparty" in frame.columns:
        return frame["is_new_counterparty"].notna().to_numpy(dtype=bool)
    return text(frame, "counterparty_account") != ""


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def _cyclic(values: np.ndarray, period: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    angle = 2.0 * np.pi * values / period
    return np.sin(angle), np.cos(angle)


def sequences(frame: pd.DataFrame, history: pd.DataFrame | None, vocabulary: tuple[str, ...]) -> Steps:
    """Order `history` + `frame` into account sequences and compute every step's inputs and targets.

    History rows of accounts absent from `frame`, and rows of `frame` repeated in `history`, are dropped.
    """
    parts = [_columns(frame)]
    if history is not None and len(history):
        earlier = _columns(history)
        keep = np.isin(earlier["account"], parts[0]["account"]) & ~np.isin(earlier["trans_id"], parts[0]["trans_id"])
        parts.insert(0, {name: values[keep] for name, values in earlier.items()})
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    scored_flag = np.zeros(len(columns["account"]), dtype=bool)
    scored_flag[len(columns["account"]) - len(frame) :] = True
    order = np.lexsort((columns["trans_id"], columns["day"], columns["account"]))
    values = {name: column[order] for name, column in columns.items()}
    count = len(order)

    account = values["account"]
    boundary = np.ones(count, dtype=bool)
    boundary[1:] = account[1:] != account[:-1]
    starts = np.flatnonzero(boundary)
    lengths = np.diff(np.append(starts, count))

    index = {kind: position for position, kind in enumerate(vocabulary)}
    codes, uniques = pd.factorize(values["kind"])
    kind = np.asarray([index.get(kind, 0) for kind in uniques] + [0], dtype=np.int64)[codes]

    direction = np.where(values["direction"] < 0, -1.0, 1.0)
    amount = direction * np.log1p(np.fmax(np.nan_to_num(values["amount"], nan=0.0), 0.0))
    day = values["day"]
    gap = np.empty(count, dtype=np.float64)
    gap[1:] = day[1:] - day[:-1]
    gap[boundary] = values["days_since_previous"][boundary]
    has_gap = np.isfinite(gap) & (gap >= 0)
    log_gap = np.where(has_gap, np.log1p(np.where(has_gap, gap, 0.0)), 0.0)

    dates = day.astype("datetime64[D]")
    month_start = dates.astype("datetime64[M]")
    day_of_month = (dates - month_start.astype("datetime64[D]")).astype(np.float64)
    month_days = ((month_start + 1).astype("datetime64[D]") - month_start.astype("datetime64[D]")).astype(np.float64)
    weekday = ((day + 3) % 7).astype(np.float64)
    before = np.nan_to_num(values["balance_before"], nan=0.0)
    after = np.nan_to_num(values["balance_after"], nan=0.0)
    change = _signed_log1p((after - before) / np.fmax(np.abs(before), 100.0))
    new_payee = values["new_payee"] & values["has_payee"]
    payee = np.where(values["has_payee"], pd.factorize(values["payee"])[0] + 1, 0)
    same_kind = previous_in_group(account, kind)
    same_payee = previous_in_group(account, kind * (int(payee.max(initial=0)) + 1) + payee)
    context = np.column_stack([*_recurrence(same_kind, day, amount), *_recurrence(same_payee, day, amount)]).astype(
        np.float32
    )
    new_day = boundary.copy()
    new_day[1:] |= day[1:] != day[:-1]
    day_starts = np.flatnonzero(new_day)
    same_day_rank = np.arange(count) - np.repeat(day_starts, np.diff(np.append(day_starts, count)))
    inputs = np.column_stack(
        [
            amount,
            log_gap,
            np.log1p(same_day_rank),
            (~has_gap).astype(np.float64),
            *_cyclic(day_of_month, month_days),
            *_cyclic(weekday, 7.0),
            change,
            _signed_log1p(after),
            new_payee.astype(np.float64),
            values["has_payee"].astype(np.float64),
        ]
    ).astype(np.float32)
    return Steps(
        order=order,
        scored=scored_flag[order],
        starts=starts,
        lengths=lengths,
        kind=kind,
        inputs=inputs,
        amount=amount.astype(np.float32),
        days=np.where(has_gap, gap, np.nan),
        gap=log_gap.astype(np.float32),
        has_gap=has_gap,
        new_payee=new_payee,
        has_payee=values["has_payee"],
        context=context,
    )


def _recurrence(previous: np.ndarray, day: np.ndarray, amount: np.ndarray) -> list[np.ndarray]:
    """Context from each step's previous step of its group (`previous`, -1: none) and the one before that.

    Whether there is a previous one, its signed log amount, log1p of the days from it to the step
    before this one, whether there is one before that, that one's signed log amount, and the gap to
    the step the group's last interval predicts (its day plus that interval, minus the step before's
    day), signed log1p.
    """
    seen = previous >= 0
    last = np.maximum(previous, 0)
    before = np.where(seen, previous[last], -1)
    twice = before >= 0
    step_before = np.maximum(np.arange(len(day)) - 1, 0)
    since = np.where(seen, day[step_before] - day[last], 0)
    due = np.where(twice, 2 * day[last] - day[np.maximum(before, 0)] - day[step_before], 0)
    return [
        seen,
        np.where(seen, amount[last], 0.0),
        np.log1p(np.fmax(since, 0)),
        twice,
        np.where(twice, amount[np.maximum(before, 0)], 0.0),
        _signed_log1p(due.astype(np.float64)),
    ]


def previous_in_group(account: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per sorted row, the position of the same account's previous row of the same group (-1: none)."""
    order = np.lexsort((np.arange(len(account)), group, account))
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (account[order][1:] == account[order][:-1]) & (group[order][1:] == group[order][:-1])
    out = np.full(len(order), -1, dtype=np.int64)
    out[order[1:][same[1:]]] = order[:-1][same[1:]]
    return out


@dataclass(frozen=True)
class Batch:
    """Windows of steps: padded inputs (cell t holds step t-1's inputs) and the targets of the valid cells.

    The targets, `context` and `rows` are flat over the valid cells in row-major order (window by
    window), the order of `hidden[valid]`.
    """

    kind_in: torch.Tensor
    inputs: torch.Tensor
    valid: torch.Tensor
    kind: torch.Tensor
    amount: torch.Tensor
    gap: torch.Tensor
    gap_mask: torch.Tensor
    payee: torch.Tensor
    payee_mask: torch.Tensor
    context: torch.Tensor
    rows: np.ndarray
    """The sorted row each valid cell predicts."""


def gather(steps: Steps, starts: np.ndarray, lengths: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> Batch:
    """The windows [starts[i], starts[i] + lengths[i]) of sorted rows, padded to the longest."""
    width = int(lengths.max()) if len(lengths) else 0
    total = int(lengths.sum())
    window = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.repeat(starts, lengths) + position
    previous = np.where(position > 0, rows - 1, rows)

    def padded(values: np.ndarray, dtype: Any) -> torch.Tensor:
        out = np.zeros((len(starts), width, *values.shape[1:]), dtype=dtype)
        out[window, position] = values
        return torch.from_numpy(out)

    def flat(values: np.ndarray, dtype: Any) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values[rows], dtype=dtype))

    return Batch(
        kind_in=padded(steps.kind[previous], np.int64),
        inputs=padded(((steps.inputs[previous] - mean) / scale).astype(np.float32), np.float32),
        valid=padded(np.ones(total, dtype=bool), bool),
        kind=flat(steps.kind, np.int64),
        amount=flat(steps.amount, np.float32),
        gap=flat(steps.gap, np.float32),
        gap_mask=flat(steps.has_gap, np.float32),
        payee=flat(steps.new_payee, np.float32),
        payee_mask=flat(steps.has_payee, np.float32),
        context=flat(steps.context, np.float32),
        rows=rows,
    )


class SequenceModel(nn.Module):
    """LSTM over step inputs; a kind head, a payee head given the kind, amount and gap heads given both."""

    def __init__(self, kinds: int, inputs: int, hidden: int, embedding: int, targets: np.ndarray) -> None:
        super().__init__()
        self.embedding = nn.Embedding(kinds, embedding)
        self.start = nn.Parameter(torch.zeros(embedding + inputs))
        self.lstm = nn.LSTM(embedding + inputs, hidden, batch_first=True)
        self.kind_head = nn.Linear(hidden, kinds)
        self.payee_head = nn.Sequential(
            nn.Linear(hidden + embedding + KIND_CONTEXT, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        self.given_payee = nn.Sequential(
            nn.Linear(hidden + embedding + CONTEXT, hidden), nn.Tanh(), nn.Linear(hidden, 4)
        )
        self.register_buffer("targets", torch.as_tensor(targets, dtype=torch.float32))
        """amount mean and spread, gap mean and spread: the scales the heads predict in."""

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per valid cell: kind logits, amount and gap means and log-variances, payee logit."""
        step = torch.cat([self.embedding(batch.kind_in), batch.inputs], dim=-1)
        start = self.start.expand(step.shape[0], 1, step.shape[-1])
        hidden = self.lstm(torch.cat([start, step[:, 1:]], dim=1))[0][batch.valid]
        amount_mean, amount_scale, gap_mean, gap_scale = self.targets
        (
            seen,
            last_amount,
            since,
            twice,
            before_amount,
            due,
            seen_payee,
            payee_amount,
            since_payee,
            twice_payee,
            before_payee_amount,
            due_payee,
        ) = batch.context.unbind(-1)
        context = torch.stack(
            [
                seen,
                seen * (last_amount - amount_mean) / amount_scale,
                since,
                twice,
                twice * (before_amount - last_amount),
                due,
                seen_payee,
                seen_payee * (payee_amount - last_amount),
                since_payee,
                twice_payee,
                twice_payee * (before_payee_amount - payee_amount),
                due_payee,
            ],
            dim=-1,
        )
        kind = torch.cat([hidden, self.embedding(batch.kind)], dim=-1)
        heads = self.given_payee(torch.cat([kind, context], dim=-1))
        return {
            "kind_logits": self.kind_head(hidden),
            "amount_mean": seen * (torch.where(seen_payee > 0, payee_amount, last_amount) + heads[..., 0])
            + (1.0 - seen) * (amount_mean + amount_scale * heads[..., 0]),
            "amount_logvar": torch.clamp(LOGVAR_GAIN * heads[..., 1], min=2.0 * math.log(MIN_AMOUNT_STD)),
            "gap_mean": gap_mean + gap_scale * heads[..., 2],
            "gap_logvar": torch.clamp(
                2.0 * torch.log(gap_scale) + LOGVAR_GAIN * heads[..., 3], min=2.0 * math.log(MIN_GAP_STD)
            ),
            "payee_logit": self.payee_head(torch.cat([kind, context[..., :KIND_CONTEXT]], dim=-1)).squeeze(-1),
        }


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op thread count set to `count` (all cores when 0) inside the block, restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count if count > 0 else os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _gaussian_nll(value: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (LOG_2PI + logvar + (value - mean) ** 2 * torch.exp(-logvar))


def surprise(outputs: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """The four negative log-likelihoods per valid cell, in `PARTS` order (0 where a part is absent)."""
    logits = outputs["kind_logits"]
    kind = torch.logsumexp(logits, dim=-1) - logits.gather(-1, batch.kind.unsqueeze(-1)).squeeze(-1)
    amount = _gaussian_nll(batch.amount, outputs["amount_mean"], outputs["amount_logvar"])
    gap = _gaussian_nll(batch.gap, outputs["gap_mean"], outputs["gap_logvar"]) * batch.gap_mask
    payee = (
        nn.functional.binary_cross_entropy_with_logits(outputs["payee_logit"], batch.payee, reduction="none")
        * batch.payee_mask
    )
    return torch.stack([amount, kind, gap, payee], dim=-1)


class LstmDetector(Detector):
    """Surprise of each transaction under an LSTM next-transaction model of its account's sequence."""

    name = "lstm"
    lookback_days = 60

    def __init__(
        self,
        random_state: int = 0,
        hidden: int = 32,
        embedding: int = 8,
        epochs: int = 8,
        window: int = 64,
        batch_size: int = 128,
        learning_rate: float = 1e-2,
        max_windows: int = 4_096,
        holdout_share: float = 0.1,
        calibration_rows: int = 200_000,
        batch_cells: int = 262_144,
        threads: int = 1,
    ) -> None:
        super().__init__(random_state)
        self.hidden = hidden
        self.embedding = embedding
        self.epochs = epochs
        self.window = window
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_windows = max_windows
        self.holdout_share = holdout_share
        self.calibration_rows = calibration_rows
        self.batch_cells = batch_cells
        self.threads = threads
        self.vocabulary_: tuple[str, ...] | None = None
        self.input_mean_: np.ndarray | None = None
        self.input_scale_: np.ndarray | None = None
        self.targets_: np.ndarray | None = None
        self.state_dict_: dict[str, torch.Tensor] | None = None
        self.part_medians_: np.ndarray | None = None
        self._network: SequenceModel | None = None

    def _build(self) -> SequenceModel:
        assert self.vocabulary_ is not None and self.targets_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        return SequenceModel(len(self.vocabulary_), len(INPUTS), self.hidden, self.embedding, self.targets_)

    def network(self) -> SequenceModel:
        """The fitted model (rebuilt from `state_dict_` after unpickling); `NotFittedError` before `fit`."""
        if self.state_dict_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(frame) first")
        if self._network is None:
            network = self._build()
            network.load_state_dict(self.state_dict_)
            self._network = network.eval()
        return self._network

    def fit(self, frame: pd.DataFrame) -> Self:
        """Train on windows of the training accounts' sequences; calibrate on the held-out accounts' rows."""
        with torch_threads(self.threads):
            return self._fit(frame)

    def _fit(self, frame: pd.DataFrame) -> Self:
        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        kinds = text(frame, "transaction_kind")
        self.vocabulary_ = (OTHER_KIND, *sorted(set(kinds.tolist()) - {"", OTHER_KIND}))
        accounts = np.unique(numeric(frame, "account_id"))
        held = max(1, int(round(self.holdout_share * len(accounts)))) if len(accounts) > 1 else 0
        held_out = np.isin(numeric(frame, "account_id"), rng.permutation(accounts)[:held])
        train = frame.loc[~held_out] if held else frame
        steps = sequences(train, None, self.vocabulary_)

        self.input_mean_ = steps.inputs.mean(axis=0)
        self.input_scale_ = np.where(steps.inputs.std(axis=0) > 1e-6, steps.inputs.std(axis=0), 1.0).astype(np.float32)
        gaps = steps.gap[steps.has_gap]
        self.targets_ = np.array(
            [
                steps.amount.mean(),
                max(float(steps.amount.std()), 1e-3),
                gaps.mean() if len(gaps) else 0.0,
                max(float(gaps.std()), 1e-3) if len(gaps) else 1.0,
            ],
            dtype=np.float32,
        )
        network = self._build()
        self._train(network, steps, rng)
        self.state_dict_ = {key: value.detach().clone() for key, value in network.state_dict().items()}
        self._network = network.eval()

        predicted = self._predict(frame.loc[held_out] if held else frame, None)
        if len(predicted["parts"]) > self.calibration_rows:
            keep = np.sort(rng.permutation(len(predicted["parts"]))[: self.calibration_rows])
            predicted = {name: values[keep] for name, values in predicted.items()}
        reference = predicted["parts"].sum(axis=1)
        self.part_medians_ = self._part_medians(predicted)
        self.calibrate(reference)
        self.training_rows_ = int(len(steps))
        self.calibration_rows_ = int(len(reference))
        return self

    def _windows(self, steps: Steps, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Windows of at most `window` steps cutting every sequence (a random first cut per account)."""
        starts, lengths = [], []
        offsets = rng.integers(1, self.window + 1, size=len(steps.starts))
        for begin, length, offset in zip(steps.starts, steps.lengths, offsets, strict=True):
            cuts = (
                np.arange(0, length, self.window)
                if offset >= length
                else np.r_[0, np.arange(offset, length, self.window)]
            )
            ends = np.append(cuts[1:], length)
            starts.append(begin + cuts)
            lengths.append(ends - cuts)
        start, length = np.concatenate(starts), np.concatenate(lengths)
        if len(start) > self.max_windows:
            keep = np.sort(rng.choice(len(start), size=self.max_windows, replace=False))
            start, length = start[keep], length[keep]
        return start, length

    def _train(self, network: SequenceModel, steps: Steps, rng: np.random.Generator) -> None:
        assert self.input_mean_ is not None and self.input_scale_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        starts, lengths = self._windows(steps, rng)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        total = self.epochs * -(-len(starts) // self.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))
        )
        network.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(starts))
            for first in range(0, len(order), self.batch_size):
                chosen = order[first : first + self.batch_size]
                batch = gather(steps, starts[chosen], lengths[chosen], self.input_mean_, self.input_scale_)
                parts = surprise(network(batch), batch)
                loss = parts.sum(dim=-1).mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimizer.step()
                schedule.step()

    def holdout_accounts(self, frame: pd.DataFrame) -> np.ndarray:
        """The accounts `fit(frame)` held out from training and calibrated on (the same draw from `random_state`)."""
        accounts = np.unique(numeric(frame, "account_id"))
        held = max(1, int(round(self.holdout_share * len(accounts)))) if len(accounts) > 1 else 0
        return np.random.default_rng(self.random_state).permutation(accounts)[:held]

    def fine_tune(
        self, frame: pd.DataFrame, admitted: np.ndarray, max_windows: int, learning_rate: float, random_state: int = 0
    ) -> int:
        """One pass of Adam at `learning_rate` over at most `max_windows` windows of `frame`'s account sequences.

        Only windows whose every row is `admitted` (a boolean per row of `frame`) are trained on, so a row
        left out is neither predicted nor read. Updates the model in place; returns the windows trained on.
        """
        self.network()
        assert self.vocabulary_ is not None and self.input_mean_ is not None and self.input_scale_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        rng = np.random.default_rng(random_state)
        steps = sequences(frame, None, self.vocabulary_)
        starts, lengths = self._windows(steps, rng)
        refused = np.concatenate([[0], np.cumsum(~np.asarray(admitted, dtype=bool)[steps.order])])
        clean = np.flatnonzero(refused[starts + lengths] == refused[starts])
        if len(clean) > max_windows:
            clean = np.sort(rng.choice(clean, size=max_windows, replace=False))
        if not len(clean):
            return 0
        with torch_threads(self.threads):
            network = self._build()
            network.load_state_dict(self.state_dict_)
            optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
            network.train()
            order = rng.permutation(clean)
            for first in range(0, len(order), self.batch_size):
                chosen = order[first : first + self.batch_size]
                batch = gather(steps, starts[chosen], lengths[chosen], self.input_mean_, self.input_scale_)
                loss = surprise(network(batch), batch).sum(dim=-1).mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimizer.step()
        self.state_dict_ = {key: value.detach().clone() for key, value in network.state_dict().items()}
        self._network = network.eval()
        return len(clean)

    def _predict(self, frame: pd.DataFrame, history: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """Per row of `frame` (in its order): the four surprises, where each applies, and the expectations."""
        network = self.network()
        assert self.vocabulary_ is not None and self.input_mean_ is not None and self.input_scale_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        steps = sequences(frame, history, self.vocabulary_)
        parts = np.zeros((len(steps), len(PARTS)), dtype=np.float32)
        expected = np.zeros((len(steps), len(EXPECTED)), dtype=np.float32)
        by_length = np.argsort(-steps.lengths, kind="stable")
        with torch_threads(self.threads), torch.inference_mode():
            first = 0
            while first < len(by_length):
                width = int(steps.lengths[by_length[first]])
                chosen = by_length[first : first + max(1, self.batch_cells // width)]
                first += len(chosen)
                batch = gather(steps, steps.starts[chosen], steps.lengths[chosen], self.input_mean_, self.input_scale_)
                outputs = network(batch)
                parts[batch.rows] = surprise(outputs, batch).numpy()
                probabilities = torch.softmax(outputs["kind_logits"], dim=-1)
                likely_probability, likely = probabilities.max(dim=-1)
                columns = [
                    likely.to(torch.float32),
                    likely_probability,
                    probabilities.gather(-1, batch.kind.unsqueeze(-1)).squeeze(-1),
                    outputs["amount_mean"],
                    outputs["gap_mean"],
                    torch.sigmoid(outputs["payee_logit"]),
                ]
                expected[batch.rows] = torch.stack(columns, dim=-1).numpy()
        scored = np.flatnonzero(steps.scored)
        back = np.empty(len(frame), dtype=np.int64)
        back[steps.order[scored] - (len(steps) - len(frame))] = scored
        applies = np.column_stack(
            [np.ones(len(back), dtype=bool), np.ones(len(back), dtype=bool), steps.has_gap[back], steps.has_payee[back]]
        )
        out = {name: expected[back, column].astype(np.float64) for column, name in enumerate(EXPECTED)}
        out["likely_kind"] = expected[back, 0].astype(np.int64)
        return {"parts": parts[back].astype(np.float64), "applies": applies, "days": steps.days[back], **out}

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """The surprise of each row of `frame`: the sum of its four negative log-likelihoods, in frame order."""
        self.network()
        if not len(frame):
            return np.zeros(0)
        return self._predict(frame, history)["parts"].sum(axis=1)

    def _part_medians(self, predicted: dict[str, np.ndarray]) -> np.ndarray:
        """Each part's median surprise over the rows it applies to (the level `explain` ranks parts against)."""
        parts, applies = predicted["parts"], predicted["applies"]
        return np.array(
            [float(np.median(parts[applies[:, part], part])) if applies[:, part].any() else 0.0 for part in range(4)]
        )

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row: the calibrated score and the parts ranked by surprise above their usual level.

        Each part is compared with its median surprise on the calibration rows (a typical amount is
        predicted to within a few per cent, a typical kind less surely), so `part` names the factor
        furthest above its usual level; `surprise` is the part's negative log-likelihood itself. To
        explain some rows of a scored frame, pass the frame's other rows with the history: the model
        reads every earlier row of the account.
        """
        self.network()
        if not len(frame):
            return []
        assert self.vocabulary_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        assert self.part_medians_ is not None  # noqa: S101 - narrows the type: fit() sets these before use
        predicted = self._predict(frame, history)
        parts, applies = predicted["parts"], predicted["applies"]
        scores = self.calibrator().cdf(parts.sum(axis=1))
        excess = np.where(applies, parts - self.part_medians_, -np.inf)
        kinds = kind_label(frame)
        names = np.asarray([_readable(kind) for kind in self.vocabulary_], dtype=object)
        amount = numeric(frame, "amount")
        days = predicted["days"]
        payee = flag(frame, "is_new_counterparty")
        out: list[dict[str, Any]] = []
        for row in range(len(frame)):
            ranked = [part for part in np.argsort(-excess[row], kind="stable") if applies[row, part]]
            features = []
            for part in ranked[:top]:
                name = PARTS[part]
                value, typical, sentence = _reason(name, row, kinds[row], names, predicted, amount, days, payee)
                features.append(
                    {
                        "feature": f"lstm_{name}",
                        "label": PART_LABELS[name],
                        "surprise": round(float(parts[row, part]), 3),
                        "value": value,
                        "typical": typical,
                        "text": sentence,
                    }
                )
            out.append(
                {
                    "detector": self.name,
                    "score": round(float(scores[row]), 4),
                    "part": PARTS[ranked[0]],
                    "features": features,
                }
            )
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_network"] = None
        return state


def _readable(kind: str) -> str:
    if kind == OTHER_KIND:
        return "other transaction"
    return KIND_NAMES.get(kind, kind.replace("_", " "))


def _crowns(signed_log: float) -> float:
    return float(np.expm1(abs(signed_log)))


def _days(value: float) -> str:
    return "the same day" if value < 0.5 else ("1 day" if round(value) == 1 else f"{value:,.0f} days")


def _reason(
    part: str,
    row: int,
    kind: str,
    names: np.ndarray,
    predicted: dict[str, np.ndarray],
    amount: np.ndarray,
    days: np.ndarray,
    payee: np.ndarray,
) -> tuple[Any, Any, str]:
    """The actual value, the expected value and a sentence for one part of one row."""
    if part == "amount":
        typical = round(_crowns(predicted["amount_mean"][row]), 2)
        value = round(float(amount[row]), 2) if np.isfinite(amount[row]) else None
        sentence = (
            f"{kind} of {money(amount[row])} was unexpected for this account's sequence: "
            f"its history predicted about {money(round(typical) if typical >= 10 else typical)}"
        )
        return value, typical, sentence
    if part == "kind":
        likely = str(names[predicted["likely_kind"][row]])
        actual_probability = predicted["actual_probability"][row]
        likely_probability = predicted["likely_probability"][row]
        if likely == kind:
            sentence = f"a {kind} was less likely than usual at this point of the account's sequence ({actual_probability:.0%})"
        else:
            sentence = (
                f"a {kind} was unexpected at this point of the account's sequence ({actual_probability:.1%}): "
                f"its history made a {likely} most likely ({likely_probability:.0%})"
            )
        return kind, likely, sentence
    if part == "timing":
        typical = round(float(np.expm1(max(predicted["gap_mean"][row], 0.0))), 1)
        value = None if not np.isfinite(days[row]) else int(days[row])
        after = "on the same day as" if value == 0 else f"{_days(float(days[row]))} after"
        sentence = (
            f"{kind} came {after} the account's previous transaction: its history predicted about {_days(typical)}"
        )
        return value, typical, sentence
    probability = predicted["payee_probability"][row]
    new = bool(payee[row])
    sentence = (
        f"{kind} to a {'new' if new else 'known'} payee was unexpected for this account: its history put the "
        f"chance of a new payee at {probability:.0%}"
    )
    return ("yes" if new else "no"), ("yes" if probability >= 0.5 else "no"), sentence
