"""`InfluenceModel`: the referral value an account brings in over the next ``horizon_days`` days.

The target (``referral_value`` of `kamml.features.build_labels`) is the spend, within the horizon, of the
accounts this account refers during it: zero for almost everyone and large for a few influencers, so the
learner is LightGBM with a tweedie (default) or poisson objective. Its baseline is the past referral rate.

Boosting starts from a referral prior (``prior_weight``): an account's referral rate shrunk toward the
book's, (referrals made + a) / (days since its first purchase + b) with a gamma prior (a, b) fitted by
moments on the training rows, times BG/NBD's P(alive). The labels are so sparse that early stopping keeps
a few dozen trees, which moved little from a constant start: the prior carries the ranking the data hold
(docs/models.md, "Referral influence on small books").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from kamml.models._lgbm import FloatArray, LGBMValueRegressor, stored_number

__all__ = ["InfluenceModel", "referral_window_ratio"]

log = logging.getLogger(__name__)

#: Referrals observed at an age for their mean spend there to be read (fewer: the tail's rate).
MIN_SEEN = 20
#: Days at the end of the observed ages whose pooled spend rate is carried to older ages.
TAIL_DAYS = 28
#: The feature columns of the referral prior: referrals made, days since the first purchase, P(alive).
PRIOR_COLUMNS = ("referrals_made", "days_since_first", "btyd_p_alive")


class InfluenceModel(RegressorMixin, LGBMValueRegressor):
    """Expected referral value over a horizon, by LightGBM (tweedie or poisson).

    Parameters
    ----------
    horizon_days : int, default 180
        Length of the label window the model is trained for; `predict` refuses any other.
    objective : {"tweedie", "poisson"}, default "tweedie"
        LightGBM objective (both use a log link and accept zeros).
    params : dict, optional
        Extra LightGBM parameters, overriding kamml's defaults (``num_leaves=15``,
        ``min_data_in_leaf=40``, ``feature_fraction=0.8``, ``bagging_fraction=0.8``, ``lambda_l2=1``,
        ``tweedie_variance_power=1.5``: referral value is even more zero-inflated than spend). An
        ``objective`` there (or an alias) other than the `objective` argument is refused at `fit`. A key
        that is no LightGBM parameter or alias (``num_leave``) is refused at `fit` (sklearn's
        ``InvalidParameterError``, naming the close LightGBM names).
    n_estimators : int, default 500
    learning_rate : float, default 0.05
    num_threads : int, default 2
    random_state : int, default 42
    early_stopping_rounds : int or None, default 50
    calibrate_total : bool, default True
        Scale predictions so the held-out snapshot's predicted total matches its actual total.
    monotone : dict of str to int, optional
        Monotone constraints by feature name, as for `kamml.models.ClvModel`.
    prior_weight : float, default 0.5
        Boosting starts each row from ``prior_weight * log(prior)`` (shifted so that its mean matches the
        target's; below a tenth of its mean, the prior counts as that floor), the prior being
        (referrals_made + a) / (days_since_first + b) x btyd_p_alive (module docs). 0, or training
        columns without those three (as in sklearn's checks, on arrays), start from a constant.

    Attributes
    ----------
    booster_, n_features_in_, feature_names_in_, feature_names_, categories_, horizon_days_,
    best_iteration_, validation_score_, scale_, label_unit_
        As for `kamml.models.ClvModel`.
    prior_ : tuple of (float, float) or None
        The gamma prior (a, b) of the referral rate per day, or None without a referral prior.

    See Also
    --------
    kamml.models.ClvModel

    Examples
    --------
    >>> import numpy as np
    >>> from kamml.models.influence import InfluenceModel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = rng.poisson(0.2 * np.exp(X[:, 1])) * 50.0
    >>> InfluenceModel(objective="poisson", n_estimators=50).fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LGBMValueRegressor._parameter_constraints,
        "objective": [StrOptions({"tweedie", "poisson"})],
        "prior_weight": [Interval(Real, 0, None, closed="left")],
    }
    _default_params: ClassVar[dict[str, Any]] = {"tweedie_variance_power": 1.5}
    _objectives: ClassVar[tuple[str, ...]] = ("tweedie", "poisson")
    target_words: ClassVar[str] = "referral value"

    def __init__(
        self,
        *,
        horizon_days: int = 180,
        objective: str = "tweedie",
        params: dict[str, Any] | None = None,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_threads: int = 2,
        random_state: int = 42,
        early_stopping_rounds: int | None = 50,
        calibrate_total: bool = True,
        monotone: dict[str, int] | None = None,
        prior_weight: float = 0.5,
    ):
        self.horizon_days = horizon_days
        self.objective = objective
        self.params = params
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds
        self.calibrate_total = calibrate_total
        self.monotone = monotone
        self.prior_weight = prior_weight

    prior_: tuple[float, float] | None

    def _objective(self) -> str:
        """The chosen objective."""
        return self.objective

    # ---- the referral prior: the offset of `LGBMValueRegressor`, computed from three feature columns

    def _fit_start(self, matrix: FloatArray, target: FloatArray, weight: FloatArray | None) -> None:
        """The gamma prior of the referral rate on the training rows, then the offset's floor and shift."""
        self.prior_ = self._fit_prior(matrix, weight) if self.prior_weight > 0 else None
        super()._fit_start(matrix, target, weight)

    def _fit_prior(self, matrix: FloatArray, weight: FloatArray | None) -> tuple[float, float] | None:
        """(a, b) of a gamma prior of the rate per day by moments; None without the columns or referrals.

        None too where no row is alive by BG/NBD (the prior would be 0 everywhere). The mean rate m is
        the referrals over the days; the spread of the accounts' own rates beyond the Poisson noise of
        their counts gives the prior's variance v: a = m b and b = m / v.
        """
        if not all(column in self.feature_names_ for column in PRIOR_COLUMNS):
            return None
        refs, days, alive = self._prior_inputs(matrix)
        if not np.any(alive > 0):
            return None
        w = np.ones_like(refs) if weight is None else weight
        exposure = w * days
        if not (float(np.dot(w, refs)) > 0 and float(exposure.sum()) > 0):
            return None
        mean = float(np.dot(w, refs) / exposure.sum())
        spread = float(np.average((refs / days - mean) ** 2, weights=exposure))
        variance = max(spread - mean / float(np.average(days, weights=w)), mean * mean * 1e-6)
        b = mean / variance
        return mean * b, b

    def _prior_inputs(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Referrals made (missing: 0), days since the first purchase (at least 1), P(alive) (missing: 0)."""
        refs, days, alive = (matrix[:, self.feature_names_.index(column)] for column in PRIOR_COLUMNS)
        return np.nan_to_num(refs), np.maximum(np.nan_to_num(days), 1.0), np.nan_to_num(alive)

    def _offset_spec(self) -> tuple[str, float] | None:
        """The prior's first column (its drivers' share goes there) and weight; None without a prior."""
        if getattr(self, "prior_", None) is None:
            return None
        return PRIOR_COLUMNS[0], float(self.prior_weight)

    def _offset_column(self, matrix: FloatArray, name: str) -> FloatArray:
        """The referral prior of each row (the offset `LGBMValueRegressor` takes the log of)."""
        assert self.prior_ is not None
        a, b = self.prior_
        refs, days, alive = self._prior_inputs(matrix)
        return (refs + a) / (days + b) * alive

    def _extra_state(self) -> dict[str, Any]:
        """The value regressor's state and the referral prior (a, b)."""
        prior = None if self.prior_ is None else list(self.prior_)
        return {**super()._extra_state(), "referral_prior": prior}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore the referral prior first (the offset's state depends on it); none in older models."""
        prior = state.get("referral_prior")
        self.prior_ = None
        if prior is not None:
            a, b = (stored_number(v, "referral_prior", positive=True) for v in prior)
            self.prior_ = (a, b)
        super()._load_extra_state(state)


def referral_window_ratio(spend: np.ndarray, seen: np.ndarray, h: int, H: int) -> float | None:
    """How many times an H-day window's referral value is an h-day window's, from referral timing.

    `spend` and `seen` are referred accounts' spend by days since their referral and how many
    referrals were observed at each age (`kamml.features.referrals.referral_spend_by_age`, at least
    max(h, H) long). With referrals arriving at a steady rate, a window of W days holds the sum over
    u < W of S(u), S the mean spend of a referred account in its first u + 1 days: the ratio is H / h
    when referred accounts spend only on their first day and (H / h)^2 when they spend at a steady
    rate, and it is kept between those two (the measured spend of few referrals is noisy). Ages seen by
    fewer than `MIN_SEEN` referrals take the pooled rate of the last `TAIL_DAYS` ages seen. None (the
    caller keeps H / h) when fewer than `MIN_SEEN` referrals were seen for the shorter window's days,
    or they spent nothing in it.
    """
    if h == H:
        return 1.0
    n, short = max(h, H), min(h, H)
    spend, seen = np.asarray(spend, float)[:n], np.asarray(seen, float)[:n]
    if len(spend) < n or len(seen) < n:
        raise ValueError(f"spend and seen must cover {n} days (the longer window), got {len(spend)}")
    known = int(np.sum(seen >= MIN_SEEN))  # seen falls with age, so the ages read are a prefix
    if known < short:
        log.info(
            "referral value carried from %d to %d days in proportion to time: %d referrals seen for %d "
            "days before the cutoff (%d needed to read when referred accounts spend)",
            h,
            H,
            int(seen[short - 1]),
            short,
            MIN_SEEN,
        )
        return None
    rate = np.zeros(n)
    rate[:known] = spend[:known] / seen[:known]
    tail = slice(max(0, known - TAIL_DAYS), known)
    rate[known:] = spend[tail].sum() / seen[tail].sum()
    cumulative = np.cumsum(rate)
    within_h, within_H = float(cumulative[:h].sum()), float(cumulative[:H].sum())
    if not (within_h > 0 and within_H > 0):
        return None
    lo, hi = sorted((H / h, (H / h) ** 2))
    ratio = float(np.clip(within_H / within_h, lo, hi))
    log.info(
        "referral value carried from %d to %d days by x%.3f (in proportion to time: x%.3f), from when "
        "referred accounts spent after their referral (%d days read, older ages at the last %d days' rate)",
        h,
        H,
        ratio,
        H / h,
        known,
        TAIL_DAYS,
    )
    return ratio
