"""`InfluenceModel`: the referral value an account brings in over the next ``horizon_days`` days.

The target (``referral_value`` of `kamml.features.build_labels`) is the spend, within the horizon, of the
accounts this account refers during it: zero for almost everyone and large for a few influencers, so the
learner is LightGBM with a tweedie (default) or poisson objective. Its baseline is the past referral rate.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import StrOptions

from kamml.models._lgbm import LGBMValueRegressor

__all__ = ["InfluenceModel", "referral_window_ratio"]

log = logging.getLogger(__name__)

#: Referrals observed at an age for their mean spend there to be read (fewer: the tail's rate).
MIN_SEEN = 20
#: Days at the end of the observed ages whose pooled spend rate is carried to older ages.
TAIL_DAYS = 28


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

    Attributes
    ----------
    booster_, n_features_in_, feature_names_in_, feature_names_, categories_, horizon_days_,
    best_iteration_, validation_score_, scale_, label_unit_
        As for `kamml.models.ClvModel`.

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

    def _objective(self) -> str:
        """The chosen objective."""
        return self.objective


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
