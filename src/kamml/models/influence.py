"""`InfluenceModel`: the referral value an account brings in over the next ``horizon_days`` days.

The target (``referral_value`` of `kamml.features.build_labels`) is the spend, within the horizon, of the
accounts this account refers during it: zero for almost everyone and large for a few influencers, so the
learner is LightGBM with a tweedie (default) or poisson objective. Its baseline is the past referral rate.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import StrOptions

from kamml.models._lgbm import LGBMValueRegressor

__all__ = ["InfluenceModel"]


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
