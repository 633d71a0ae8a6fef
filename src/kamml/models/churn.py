"""`ChurnModel`: the probability that an account makes no purchase in the next ``horizon_days`` days.

LightGBM with the binary objective ranks accounts; its probabilities are then calibrated on a later
snapshot by centred isotonic regression (Oron & Flournoy 2017): isotonic regression (pool adjacent
violators) of the held-out labels on the held-out probabilities, with each pooled block replaced by the
point (weighted mean score, block rate) and straight lines between those points. Unlike the step function
of plain isotonic regression it is strictly increasing between the first and last block, so it keeps the
model's ranking (ROC AUC) while fixing its level. The map is stored as two arrays (``calibration_x_``,
``calibration_y_``) and applied with `numpy.interp`, never as a pickled sklearn object (DESIGN §5).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.base import ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from kamml.models._lgbm import FloatArray, LGBMModel, ModelInputError

__all__ = ["ChurnModel", "centered_isotonic"]

logger = logging.getLogger(__name__)


def centered_isotonic(
    score: FloatArray, y: FloatArray, sample_weight: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Breakpoints of the centred isotonic regression of binary `y` on `score`, for `numpy.interp`.

    Parameters
    ----------
    score : ndarray of shape (n,)
        Uncalibrated probabilities (or any increasing score).
    y : ndarray of shape (n,)
        Outcomes in {0, 1}.
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    x, p : ndarray
        Increasing block centres (weighted mean score of each pooled block) and the block rates;
        ``numpy.interp(s, x, p)`` is the calibrated probability of score ``s`` (clamped beyond the ends).
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(score) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    keep = w > 0
    score, y, w = score[keep], y[keep], w[keep]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    fitted = iso.fit(score, y, sample_weight=w).predict(score)
    blocks, codes = np.unique(fitted, return_inverse=True)
    centres = np.bincount(codes, weights=w * score) / np.bincount(codes, weights=w)
    return np.asarray(centres, dtype=np.float64), np.asarray(blocks, dtype=np.float64)


class ChurnModel(ClassifierMixin, LGBMModel):
    """Probability of no purchase in the horizon, by LightGBM (binary) with calibration on a later snapshot.

    `fit` takes the churn label (1 = no purchase in the horizon, as in ``build_labels(...)["churned"]``;
    any two labels work, the larger one sorted last is the positive class). With a ``snapshot`` array of
    two or more snapshots, the latest is held out: early stopping and the calibration map use it, then
    the model is refitted on every row. Without one the map is the identity (LightGBM's own
    probabilities, usually well calibrated in-sample but not across snapshots). The map is learnt from
    the first model's held-out scores and applied to the refitted model's; when the churn rate drifts
    steadily, the refitted model (which has seen the latest snapshot) already moves part of the way, so
    the map can over-correct the level a little.

    Parameters
    ----------
    horizon_days : int, default 180
        Length of the label window the model is trained for; prediction refuses any other.
    params : dict, optional
        Extra LightGBM parameters, overriding kamml's defaults (``num_leaves=15``,
        ``min_data_in_leaf=40``, ``feature_fraction=0.8``, ``bagging_fraction=0.8``, ``lambda_l2=1``).
        The objective is ``binary``.
    n_estimators : int, default 500
    learning_rate : float, default 0.05
    num_threads : int, default 2
    random_state : int, default 42
    early_stopping_rounds : int or None, default 50

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels; ``predict_proba(X)[:, 1]`` is the probability of ``classes_[1]`` (churn).
    calibration_x_, calibration_y_ : ndarray
        Breakpoints of the calibration map from raw to calibrated probability.
    booster_, n_features_in_, feature_names_in_, feature_names_, categories_, horizon_days_,
    best_iteration_, validation_score_
        As for `kamml.models.ClvModel`.

    See Also
    --------
    kamml.models.ClvModel, kamml.models.BetaGeo

    References
    ----------
    Oron, A. P. & Flournoy, N. (2017). Centered isotonic regression: point and interval estimation for
    dose-response studies. Statistics in Biopharmaceutical Research 9(3), 258-267.

    Examples
    --------
    >>> import numpy as np
    >>> from kamml.models.churn import ChurnModel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3))
    >>> y = (rng.random(600) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(int)
    >>> snapshot = np.repeat([1, 2, 3], 200)
    >>> model = ChurnModel(n_estimators=100).fit(X, y, snapshot=snapshot)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {**LGBMModel._parameter_constraints}
    _objectives: ClassVar[tuple[str, ...]] = ("binary",)

    classes_: NDArray[Any]
    calibration_x_: FloatArray
    calibration_y_: FloatArray

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
    ):
        self.horizon_days = horizon_days
        self.params = params
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds

    def __sklearn_tags__(self) -> Any:
        """Declare a binary-only classifier."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _encode_target(self, y: Any, sample_weight: FloatArray | None) -> FloatArray:
        """Check the labels are binary and encode ``classes_[1]`` as 1."""
        labels = column_or_1d(check_array(y, ensure_2d=False, dtype=None, input_name="y"), warn=True)
        check_classification_targets(labels)
        classes = np.unique(labels)
        present = classes if sample_weight is None else np.unique(labels[sample_weight > 0])
        if len(classes) > 2:
            raise ModelInputError(
                f"Only binary classification is supported. The type of the target is "
                f"{type_of_target(labels, input_name='y')} ({len(classes)} classes: {classes[:5].tolist()})"
            )
        if len(present) < 2:
            raise ModelInputError(
                "ChurnModel needs both churned and retained accounts, but only one class is present "
                "(with positive weight) in y"
            )
        self.classes_ = classes
        return np.asarray(labels == classes[1], dtype=np.float64)

    def _calibrate(self, raw: FloatArray, y: FloatArray, sample_weight: FloatArray | None) -> None:
        """Centred isotonic map fitted on the held-out snapshot (identity when it has one class)."""
        w = np.ones_like(y) if sample_weight is None else sample_weight
        if len(np.unique(y[w > 0])) < 2:
            logger.warning("ChurnModel: the latest snapshot has one class only; calibration skipped")
            self._identity()
            return
        self.calibration_x_, self.calibration_y_ = centered_isotonic(raw, y, sample_weight)
        if len(self.calibration_x_) < 2:
            logger.warning(
                "ChurnModel: the held-out scores do not rank churn at all; calibrated probabilities "
                "are constant"
            )
        logger.info("ChurnModel: calibration map with %d breakpoints", len(self.calibration_x_))

    def _calibrate_in_sample(
        self, matrix: FloatArray, y: FloatArray, sample_weight: FloatArray | None
    ) -> None:
        """No held-out snapshot: keep LightGBM's own probabilities (in-sample isotonic would overfit)."""
        self._identity()

    def _identity(self) -> None:
        """Identity map."""
        self.calibration_x_ = np.array([0.0, 1.0])
        self.calibration_y_ = np.array([0.0, 1.0])

    def _extra_state(self) -> dict[str, Any]:
        """Classes and calibration breakpoints."""
        return {
            "classes": self.classes_.tolist(),
            "calibration_x": self.calibration_x_.tolist(),
            "calibration_y": self.calibration_y_.tolist(),
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore classes and calibration breakpoints."""
        self.classes_ = np.asarray(state["classes"])
        self.calibration_x_ = np.asarray(state["calibration_x"], dtype=np.float64)
        self.calibration_y_ = np.asarray(state["calibration_y"], dtype=np.float64)

    def predict_raw(self, X: Any, *, horizon_days: int | None = None) -> FloatArray:
        """LightGBM's uncalibrated probability of ``classes_[1]`` (for diagnostics)."""
        return self._raw_predict(self._prepare(X, horizon_days))

    def predict_proba(self, X: Any, *, horizon_days: int | None = None) -> FloatArray:
        """Calibrated class probabilities, columns in the order of ``classes_`` (churn is column 1).

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Features with the columns seen in `fit`, in the same order.
        horizon_days : int, optional
            The horizon the caller expects; `ModelError` when it is not the one the model was trained on.

        Returns
        -------
        numpy.ndarray of shape (n_samples, 2)
        """
        p = np.interp(
            self.predict_raw(X, horizon_days=horizon_days), self.calibration_x_, self.calibration_y_
        )
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, *, horizon_days: int | None = None) -> NDArray[Any]:
        """The more likely label of each row (``classes_[1]`` when its probability is above 0.5)."""
        p = self.predict_proba(X, horizon_days=horizon_days)[:, 1]
        return np.asarray(self.classes_[(p > 0.5).astype(int)])
