"""Input and state checks shared by every kamml estimator (BTYD and LightGBM models alike)."""

from __future__ import annotations

from numbers import Real
from typing import NoReturn

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.validation import check_array, check_is_fitted

from kamml.errors import ModelError, Problem, SchemaError

__all__ = ["KammlEstimator", "NotFittedModelError", "check_fitted", "check_sample_weight"]


class KammlEstimator(BaseEstimator):
    """sklearn's parameter checks, and true/false refused where a number goes.

    sklearn's ``Interval(Integral, ...)`` and ``Interval(Real, ...)`` take True as 1: a config's
    ``n_estimators: true`` trained one tree and ``learning_rate: true`` a rate of 1, without a word.
    """

    def _validate_params(self) -> None:
        for name, constraints in getattr(self, "_parameter_constraints", {}).items():
            value = getattr(self, name, None)
            if isinstance(value, bool | np.bool_) and any(isinstance(c, Interval) for c in constraints):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be a number, not {value!r}"
                )
        super()._validate_params()


class NotFittedModelError(ModelError, NotFittedError):
    """A kamml model was used before `fit`: both a `ModelError` and sklearn's `NotFittedError`."""


def check_fitted(estimator: BaseEstimator, attribute: str) -> None:
    """Raise `NotFittedModelError` when `estimator` lacks its fitted `attribute`.

    A fitted estimator passes on a plain attribute lookup: sklearn's check (its tags each time) was
    about a tenth of a one-row request's Python time over its ~11 calls. Anything else goes to sklearn.
    """
    if not isinstance(estimator, type) and hasattr(estimator, "fit") and hasattr(estimator, attribute):
        return
    try:
        check_is_fitted(estimator, attribute)
    except NotFittedError as exc:
        raise NotFittedModelError(str(exc)) from None


def check_sample_weight(sample_weight: ArrayLike | None, n_samples: int) -> NDArray[np.float64] | None:
    """Validate `sample_weight`; None stays None (unweighted).

    One finite number >= 0 per row (a scalar applies to every row), not all zero; a break raises a
    `SchemaError` (a ValueError) naming ``sample_weight``, the rule, and the rows and values that break it.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, Real):
        sample_weight = np.full(n_samples, float(sample_weight))
    try:
        weights = check_array(
            sample_weight,
            ensure_2d=False,
            dtype=np.float64,
            input_name="sample_weight",
            ensure_all_finite=False,
        )
    except (TypeError, ValueError) as exc:  # numpy's "could not convert string to float" named no argument
        _refuse_weights(f"must be one number per row of X: {exc}")
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        _refuse_weights(f"one weight per row of X: got shape {weights.shape}, expected ({n_samples},)")
    for bad, rule in (
        (~np.isfinite(weights), "must be finite (no NaN or infinity)"),
        (weights < 0, "must be >= 0"),
    ):
        if bad.any():
            _refuse_weights(rule, bad, weights)
    if not np.any(weights > 0):
        _refuse_weights("every weight is zero: at least one must be non-zero")
    return np.asarray(weights, dtype=np.float64)


def _refuse_weights(
    rule: str, bad: NDArray[np.bool_] | None = None, weights: NDArray[np.float64] | None = None
) -> NoReturn:
    """Raise the `SchemaError` of one broken rule of ``sample_weight`` (with its rows when given)."""
    shown = () if bad is None or weights is None else tuple(weights[bad][:5])
    n_rows = 0 if bad is None else int(bad.sum())
    raise SchemaError([Problem(table="sample_weight", column=None, rule=rule, n_rows=n_rows, examples=shown)])
