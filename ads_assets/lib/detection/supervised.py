"""The supervised detector: what analysts confirmed as fraud, learned with gradient boosting.

Unsupervised detectors cannot see a fraud whose amount, timing and payee are ordinary for the
customer; it is unusual only because of who else was defrauded. This detector learns from analyst
labels, which arrive as the frame's `analyst_label` column ('confirmed', 'false_positive' or missing):
confirmed rows are the positives, every other row a negative (unlabelled rows are mostly normal).

Label risk features, counted over the `RISK_WINDOW_DAYS` (28) days that end `DELAY_DAYS` (7) before
the row's day, i.e. on transactions dated in [day - 35, day - 7):

- `payee_fraud_payments`: payments to the row's payee (counterparty bank and account) confirmed as
  fraud, whichever account made them;
- `payee_fraud_share`: their share of all payments to that payee in the window;
- `account_frauds`: the account's transactions confirmed as fraud.

A label counts whenever it was given, but only on a transaction dated before day - `DELAY_DAYS`, so a
row's own label never feeds its features, and training rows see what scored rows will see: the labels
of a week ago. The features are counted over the rows at hand (the frame, plus `history` when
scoring), so `history` must hold every account's rows of the `lookback_days` before the frame, with
their labels. Beside them the model reads the ordinary model features (`features.MODEL_FEATURES`).

The model is a HistGradientBoostingClassifier; its log-odds of fraud is the raw score. It learns from
the rows dated before the frame's last `DELAY_DAYS` days (whose labels may not have arrived yet) and is
calibrated on those last days' rows, which it did not learn from. With fewer than `MIN_CONFIRMED`
confirmed rows to learn from it stays dormant: every row gets the same raw score, hence no evidence.
Model features that cannot be computed take their neutral value, as in the other detectors.

`explain` leads with the label risk that applies ("payee received 14 payments confirmed as fraud in the
4 weeks before 1998-05-03 (70% of its payments then)", then the account's), followed by the model
features whose neutral value would lower the row's log-odds most (`contributions`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from .base import NotFittedError, numeric, text
from .features import FEATURES_BY_NAME, MODEL_FEATURES, describe
from .iforest import finite
from .pipelines import FeatureDetector
from .wording import iso_dates, plural

LABEL_COLUMN = "analyst_label"
CONFIRMED = "confirmed"
DELAY_DAYS = 7
RISK_WINDOW_DAYS = 28
DEFAULT_FEATURES: tuple[str, ...] = tuple(feature.name for feature in MODEL_FEATURES)
RISK_FEATURES: dict[str, str] = {
    "payee_fraud_payments": "payments to this payee confirmed as fraud in the weeks before",
    "payee_fraud_share": "share of this payee's payments confirmed as fraud in the weeks before",
    "account_frauds": "the account's transactions confirmed as fraud in the weeks before",
}
"""The label risk features and their labels for analysts."""
POOL_COLUMNS = ("trans_id", "trans_date", "account_id", "direction", "counterparty_bank", "counterparty_account")


def confirmed(frame: pd.DataFrame) -> np.ndarray:
    """True for the rows analysts confirmed as fraud."""
    return text(frame, LABEL_COLUMN) == CONFIRMED


def day_numbers(frame: pd.DataFrame) -> np.ndarray:
    """Each row's `trans_date` as days since 1970-01-01."""
    return pd.to_datetime(frame["trans_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)


def payees(frame: pd.DataFrame) -> np.ndarray:
    """The payee of each outgoing row ('bank/account'), '' for incoming rows and rows without a counterparty."""
    account = text(frame, "counterparty_account")
    paying = (account != "") & (numeric(frame, "direction") < 0)
    return np.where(paying, text(frame, "counterparty_bank") + "/" + account, "")


def trailing_sums(
    pool_key: np.ndarray,
    pool_day: np.ndarray,
    pool_weight: np.ndarray,
    key: np.ndarray,
    day: np.ndarray,
    first: int,
    last: int,
) -> np.ndarray:
    """Per query (key, day): the total `pool_weight` of the pool rows with that key dated in [day - first, day - last).

    Keys are non-negative integer codes; a query whose key is negative gets 0.
    """
    if not len(day):
        return np.zeros(0)
    if not len(pool_day):
        return np.zeros(len(day))
    origin = min(int(pool_day.min()), int(day.min())) - first
    span = max(int(pool_day.max()), int(day.max())) - origin + 1
    order = np.lexsort((pool_day, pool_key))
    ordered = pool_key[order] * span + (pool_day[order] - origin)
    totals = np.concatenate(([0.0], np.cumsum(pool_weight[order], dtype=np.float64)))
    query = key * span + (day - origin)
    sums = totals[np.searchsorted(ordered, query - last)] - totals[np.searchsorted(ordered, query - first)]
    return np.where(key >= 0, sums, 0.0)


def label_pool(frame: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """The rows whose labels the risk features count: `history` and `frame`, each transaction once."""
    wanted = (*POOL_COLUMNS, LABEL_COLUMN)
    if history is None or not len(history):
        return frame[[column for column in wanted if column in frame.columns]]
    parts = [part[[column for column in wanted if column in part.columns]] for part in (history, frame)]
    pool = pd.concat(parts, ignore_index=True)
    return pool.drop_duplicates("trans_id", keep="last") if "trans_id" in pool.columns else pool


def risk_features(
    frame: pd.DataFrame,
    history: pd.DataFrame | None = None,
    delay_days: int = DELAY_DAYS,
    window_days: int = RISK_WINDOW_DAYS,
) -> pd.DataFrame:
    """The label risk features (`RISK_FEATURES`) of each row of `frame`, from the labels of `history` and `frame`."""
    pool = label_pool(frame, history)
    first, last = delay_days + window_days, delay_days
    pool_day, day = day_numbers(pool), day_numbers(frame)
    fraud = confirmed(pool).astype(np.float64)

    payee_keys = np.concatenate([payees(pool), payees(frame)])
    payee_codes = np.where(payee_keys == "", -1, pd.factorize(payee_keys)[0])
    pool_payee, payee = payee_codes[: len(pool)], payee_codes[len(pool) :]
    paying = (pool_payee >= 0).astype(np.float64)
    payee_frauds = trailing_sums(pool_payee, pool_day, fraud * paying, payee, day, first, last)
    payee_payments = trailing_sums(pool_payee, pool_day, paying, payee, day, first, last)

    account_codes, _ = pd.factorize(np.concatenate([numeric(pool, "account_id"), numeric(frame, "account_id")]))
    account_frauds = trailing_sums(
        account_codes[: len(pool)], pool_day, fraud, account_codes[len(pool) :], day, first, last
    )
    share = np.divide(payee_frauds, payee_payments, out=np.zeros(len(frame)), where=payee_payments > 0)
    return pd.DataFrame(
        {"payee_fraud_payments": payee_frauds, "payee_fraud_share": share, "account_frauds": account_frauds},
        index=frame.index,
    )


def window_words(days: int) -> str:
    """'the 4 weeks' for 28 days, 'the 10 days' for 10."""
    return f"the {plural(days // 7, 'week')}" if days % 7 == 0 else f"the {plural(days, 'day')}"


class SupervisedDetector(FeatureDetector):
    """Gradient boosting over label risk features and model features, learned from analysts' confirmed frauds."""

    name = "supervised"
    uses_labels: ClassVar[bool] = True
    MIN_CONFIRMED: ClassVar[int] = 20
    """Confirmed frauds the detector needs to learn from; with fewer it is dormant."""
    DELAY_DAYS: ClassVar[int] = DELAY_DAYS
    RISK_WINDOW_DAYS: ClassVar[int] = RISK_WINDOW_DAYS
    lookback_days: ClassVar[int] = DELAY_DAYS + RISK_WINDOW_DAYS

    def __init__(
        self,
        random_state: int = 0,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
    ) -> None:
        super().__init__(features, random_state=random_state)
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.model_: HistGradientBoostingClassifier | None = None
        self.confirmed_count_ = 0

    @property
    def dormant(self) -> bool:
        """Fitted without enough confirmed frauds: every row scores the same."""
        return self.is_fitted and self.model_ is None

    def inputs(
        self, frame: pd.DataFrame, history: pd.DataFrame | None = None, features: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The model's inputs of every row: the label risk features, then the model features (neutral where none)."""
        risk = risk_features(frame, history, self.DELAY_DAYS, self.RISK_WINDOW_DAYS)
        features = self.feature_frame(frame) if features is None else features
        neutral = {name: FEATURES_BY_NAME[name].fill for name in self.features}
        return pd.concat([risk, features.fillna(neutral).set_axis(frame.index)], axis=1)

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn from the settled rows of `frame` (all training rows, labelled frauds included); calibrate on the rest."""
        day = day_numbers(frame)
        settled = day < day.max(initial=0) + 1 - self.DELAY_DAYS
        target = confirmed(frame)
        self.confirmed_count_ = int(target[settled].sum())
        if self.confirmed_count_ < self.MIN_CONFIRMED:
            self.model_ = None
            self.calibrate(np.zeros(max(len(frame), 1)))
            return self
        features = self.fit_peers(frame)
        inputs = self.inputs(frame, features=features)
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(inputs.loc[settled], target[settled])
        reference = ~settled if (~settled).any() else settled
        self.calibrate(self.model_.decision_function(inputs.loc[reference]))
        return self

    def raw_score(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        """Log-odds that each row is a fraud (0 for all rows while dormant); `history` feeds the label risk features."""
        self.calibrator()
        if not len(frame) or self.model_ is None:
            return np.zeros(len(frame))
        return self.model_.decision_function(self.inputs(frame, history))

    def contributions(self, inputs: pd.DataFrame) -> np.ndarray:
        """Per row and model feature: how far the log-odds fall when the feature is set to its neutral value."""
        if self.model_ is None:
            raise NotFittedError("SupervisedDetector has no model: it is dormant or not fitted")
        names = list(self.features)
        base = self.model_.decision_function(inputs)
        values = inputs.to_numpy(dtype=np.float64, copy=True)
        columns = [inputs.columns.get_loc(name) for name in names]
        neutral = np.repeat(values[np.newaxis], len(names), axis=0)
        for index, (column, name) in enumerate(zip(columns, names, strict=True)):
            neutral[index, :, column] = FEATURES_BY_NAME[name].fill
        occluded = self.model_.decision_function(
            pd.DataFrame(neutral.reshape(-1, values.shape[1]), columns=inputs.columns)
        )
        return base[np.newaxis, :] - occluded.reshape(len(names), len(inputs))

    def explain(self, frame: pd.DataFrame, top: int = 3, history: pd.DataFrame | None = None) -> list[dict[str, Any]]:
        """Per row: the label risk features that apply (payee, account), then the features that raised its odds most."""
        calibrator = self.calibrator()
        if not len(frame):
            return []
        if self.model_ is None:
            reason = (
                f"no analyst labels to learn from yet: {plural(self.confirmed_count_, 'confirmed fraud')}, "
                f"{self.MIN_CONFIRMED} needed"
            )
            scores = calibrator.cdf(np.zeros(len(frame)))
            return [
                {"detector": self.name, "score": round(float(score), 4), "features": [], "text": reason}
                for score in scores
            ]
        context = self.context(frame)
        inputs = self.inputs(context, history)
        scores = calibrator.cdf(self.model_.decision_function(inputs))
        pushes = self.contributions(inputs)
        shown = {name: describe(context, name) for name in self.features}
        risk_items = self._risk_items(inputs, iso_dates(context, "trans_date"))
        out: list[dict[str, Any]] = []
        for row in range(len(frame)):
            listed = risk_items[row][:top]
            for column in np.argsort(-pushes[:, row], kind="stable"):
                if len(listed) >= top or pushes[column, row] <= 0:
                    break
                name = self.features[column]
                value, typical = shown[name]
                listed.append(
                    {
                        "feature": name,
                        "label": FEATURES_BY_NAME[name].label,
                        "log_odds": round(float(pushes[column, row]), 4),
                        "value": finite(value[row]),
                        "typical": finite(typical[row]),
                    }
                )
            out.append({"detector": self.name, "score": round(float(scores[row]), 4), "features": listed})
        return out

    def _risk_items(self, inputs: pd.DataFrame, dates: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per row, the label risk features that apply, each with its sentence."""
        window = window_words(self.RISK_WINDOW_DAYS)
        cutoff = pd.to_datetime(pd.Series(dates)).dt.normalize() - pd.Timedelta(days=self.DELAY_DAYS)
        before = cutoff.dt.strftime("%Y-%m-%d").fillna("").to_numpy(dtype=object)
        payee_frauds = inputs["payee_fraud_payments"].to_numpy()
        share = inputs["payee_fraud_share"].to_numpy()
        account_frauds = inputs["account_frauds"].to_numpy()
        items: list[list[dict[str, Any]]] = []
        for row in range(len(inputs)):
            found: list[dict[str, Any]] = []
            if payee_frauds[row] > 0:
                found.append(
                    {
                        "feature": "payee_fraud_payments",
                        "label": RISK_FEATURES["payee_fraud_payments"],
                        "value": int(payee_frauds[row]),
                        "share": round(float(share[row]), 4),
                        "text": (
                            f"payee received {plural(payee_frauds[row], 'payment')} confirmed as fraud in {window} "
                            f"before {before[row]} ({share[row]:.0%} of its payments then)"
                        ),
                    }
                )
            if account_frauds[row] > 0:
                found.append(
                    {
                        "feature": "account_frauds",
                        "label": RISK_FEATURES["account_frauds"],
                        "value": int(account_frauds[row]),
                        "text": (
                            f"the account had {plural(account_frauds[row], 'transaction')} confirmed as fraud in "
                            f"{window} before {before[row]}"
                        ),
                    }
                )
            items.append(found)
        return items
