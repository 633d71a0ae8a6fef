"""`ClvModel`: an account's value (net spend) over the next ``horizon_days`` days, by LightGBM tweedie.

Most accounts spend nothing in a horizon and a few spend a lot, so the target is a zero-inflated,
heavy-tailed amount: the tweedie objective (a compound Poisson-gamma with a log link) models exactly that
(DESIGN §5). Its baselines are BG/NBD x Gamma-Gamma and last-period spend.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval

from kamml.models._lgbm import LGBMValueRegressor

__all__ = ["ClvModel"]


class ClvModel(RegressorMixin, LGBMValueRegressor):
    """Expected account value over a horizon, from point-in-time features, by LightGBM (tweedie).

    Parameters
    ----------
    horizon_days : int, default 180
        Length of the label window the model is trained for; `predict` refuses any other.
    params : dict, optional
        Extra LightGBM parameters, overriding kamml's defaults (``num_leaves=15``,
        ``min_data_in_leaf=40``, ``feature_fraction=0.8``, ``bagging_fraction=0.8``, ``lambda_l2=1``,
        ``tweedie_variance_power=1.3``), which act on the target in its label unit (``label_unit_``), so
        that amounts in cents, dollars or millions fit one model. Aliases are understood; ``objective``
        may be ``tweedie`` or ``poisson``. A key that is no LightGBM parameter or alias (``num_leave``)
        is refused at `fit` (sklearn's ``InvalidParameterError``, naming the close LightGBM names), as
        in a config.
    n_estimators : int, default 500
        Boosting rounds (the upper bound when early stopping is on).
    learning_rate : float, default 0.05
    num_threads : int, default 2
        LightGBM threads (``models.threads`` in the config).
    random_state : int, default 42
        LightGBM ``seed``; with ``deterministic=True`` the same data and seed give the same model.
    early_stopping_rounds : int or None, default 50
        Patience of early stopping on the latest snapshot when `fit` gets ``snapshot``.
    calibrate_total : bool, default True
        Scale predictions so the held-out snapshot's predicted total matches its actual total.
    offset_feature : str or None, default None
        A feature column holding a prior value over the horizon (the bundle uses ``btyd_value``, BG/NBD x
        Gamma-Gamma): boosting then starts each row from ``offset_weight * log(value)`` instead of one
        constant (shifted so that its mean matches the target's), so the trees learn a correction to
        the prior. The prior carries what trees cannot:
        accounts beyond the training range (longer dormant, older) keep its extrapolation. Values below
        ``offset_floor_share`` (0.1) of the feature's mean positive training value, and missing ones,
        count as that floor.
    offset_weight : float, default 0.5
        How much of the prior's log the start takes (1: the prior itself, up to a constant).
    monotone : dict of str to int, optional
        Feature name -> 1 (the prediction never falls as the feature rises, all else equal), -1 (never
        rises) or 0, as LightGBM's ``monotone_constraints`` with its ``intermediate`` method; names
        must be training columns and not categorical. None: unconstrained (the bundle constrains the
        money features, `kamml.models.bundle.default_monotone`).

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The model refitted on every row.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Set only when X was a DataFrame with string column names.
    feature_names_ : list of str
        Feature names (``x0``, ``x1``, ... for arrays).
    categories_ : dict of str to list
        Levels of each categorical column seen in `fit`.
    horizon_days_ : int
    best_iteration_ : int
        Rounds of the final model (from early stopping when a snapshot was held out).
    validation_score_ : dict of str to float
        Metric on the held-out snapshot at the best iteration (empty without one), on the target in its
        label unit (y / ``label_unit_``), so comparable across currencies.
    scale_ : float
        Total scaling applied to predictions (1 without a held-out snapshot).
    label_unit_ : float
        The training target's weighted mean. LightGBM learns y / ``label_unit_``: its L2 penalty and
        least leaf hessian are absolute and tweedie's hessians scale with the labels, so in a small unit
        (amounts in millions) they held every leaf near 0. Raw scores and ``pred_contrib`` are in this
        unit: a prediction is ``label_unit_ * exp(raw) * scale_``.
    offset_floor_, offset_mean_ : float or None
        The offset's floor and its mean start over the training rows (None without an offset); the
        explanations credit each row's start minus that mean to the offset feature.
    start_shift_ : float
        The constant added to the offset's start so that its weighted mean, in label units, is the
        target's (0 without an offset).

    See Also
    --------
    kamml.models.ChurnModel, kamml.models.InfluenceModel, kamml.models.BetaGeo

    Examples
    --------
    >>> import numpy as np
    >>> from kamml.models.clv import ClvModel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = rng.poisson(np.exp(X[:, 0])) * 10.0
    >>> model = ClvModel(horizon_days=90, n_estimators=50).fit(X, y)
    >>> model.predict(X[:2], horizon_days=90).shape
    (2,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LGBMValueRegressor._parameter_constraints,
        "offset_feature": [str, None],
        "offset_weight": [Interval(Real, 0, None, closed="left")],
    }
    _default_params: ClassVar[dict[str, Any]] = {"tweedie_variance_power": 1.3}
    _objectives: ClassVar[tuple[str, ...]] = ("tweedie", "poisson")
    target_words: ClassVar[str] = "value"

    def __init__(
        self,
        *,
        horizon_days: int = 180,
        params: dict[str, Any] | None = None,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_threads: int = 2,
        random_state: int = 42,
        early_stopping_rounds: int | None = 50,
        calibrate_total: bool = True,
        offset_feature: str | None = None,
        offset_weight: float = 0.5,
        monotone: dict[str, int] | None = None,
    ):
        self.horizon_days = horizon_days
        self.params = params
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds
        self.calibrate_total = calibrate_total
        self.offset_feature = offset_feature
        self.offset_weight = offset_weight
        self.monotone = monotone
