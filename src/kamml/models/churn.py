"""`ChurnModel`: the probability that an account makes no purchase in the next ``horizon_days`` days.

LightGBM with the binary objective ranks accounts; its probabilities are then calibrated on a later
snapshot by centred isotonic regression (Oron & Flournoy 2017): isotonic regression (pool adjacent
violators) of the held-out labels on the held-out probabilities, with each pooled block replaced by the
point (weighted mean score, block rate) and straight lines between those points. Unlike the step function
of plain isotonic regression it is strictly increasing between the first and last block, so it keeps the
model's ranking (ROC AUC) while fixing its level. The map is stored as two arrays (``calibration_x_``,
``calibration_y_``) and applied with `numpy.interp`, never as a pickled sklearn object (DESIGN §5).

With a ``blend_feature`` (the bundle uses BG/NBD's expected purchases, ``btyd_expected_purchases``), the
score is a blend of two rankers: LightGBM's logit and minus the log of that feature, each standardised
on the held-out snapshot, with the blend's weight (0, 0.1, ..., 1) the one that ranks the held-out
snapshot's churn best (ROC AUC; 0 when nothing beats LightGBM alone, and then nothing changes). A
structural model of purchase timing and the trees err differently, so the blend ranks better than either
where both carry signal. A blended score is calibrated by a logistic map (Platt scaling) fitted on the
held-out snapshot instead of the isotonic one: the blend spreads the scores thinly, and an isotonic map
is steep there, so the refitted model's slightly different scores moved its probabilities too far (on
the CDNOW sample, Brier 0.1675 against 0.1569 with the logistic map). The refitted model's logit is
standardised on the held-out rows again (no labels used). Seven numbers, stored with the model. A held-out
snapshot the blend separates gets the logistic map through the centred isotonic end rates instead
(its slope has no finite best value).

Where the feature is missing (accounts without a history) the blend's weights are renormalised over the
part that is present: the score is LightGBM's standardised logit alone, on the same standardised scale as
the blend, in the weight's choice, the logistic map's fit and prediction alike. Counting the missing part
as its mean instead would shrink LightGBM's part by (1 - weight), so the further the blend leans on the
feature, the closer those rows would come to one probability (at weight 1, all of them the same).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.base import ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from kamml.models._lgbm import FloatArray, LGBMModel, ModelInputError, fill_nan, floor_missing, stored_number
from kamml.text import counted

__all__ = ["BLEND_WEIGHTS", "ChurnModel", "centered_isotonic"]

logger = logging.getLogger(__name__)

#: The blend weights `ChurnModel` tries on the held-out snapshot (the blend feature's share).
BLEND_WEIGHTS = tuple(i / 10 for i in range(11))
#: LightGBM's probabilities are clipped to [eps, 1 - eps] before their logit is taken.
_EPS = 1e-9


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
        An end block whose rows are all of one class has rate (k + 1/2) / (n + 1) over its effective
        count n (k of them churned), kept within its neighbour's rate: a finite sample never shows
        certainty, and a CRM's log-odds of a probability stay finite (an audit found 0.0 and 1.0 where
        the accounts' true chance of no purchase was 0.001 to 0.032).
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(score) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    keep = w > 0
    score, y, w = score[keep], y[keep], w[keep]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    fitted = iso.fit(score, y, sample_weight=w).predict(score)
    blocks, codes = np.unique(fitted, return_inverse=True)
    total = np.bincount(codes, weights=w)
    centres = np.bincount(codes, weights=w * score) / total
    n = total**2 / np.bincount(codes, weights=w * w)  # the effective count: any scale of weights
    rates = np.where((blocks <= 0.0) | (blocks >= 1.0), (blocks * n + 0.5) / (n + 1.0), blocks)
    if len(rates) > 1:  # still increasing: only the end blocks can be certain
        rates[0] = min(rates[0], rates[1])
        rates[-1] = max(rates[-1], rates[-2])
    return np.asarray(centres, dtype=np.float64), np.asarray(rates, dtype=np.float64)


def _logistic_fit(score: FloatArray, y: FloatArray, w: FloatArray) -> dict[str, float]:
    """Intercept and slope of the weighted logistic regression of binary `y` on `score` (Newton steps).

    Where `score` separates the classes the slope has no finite best value (`_separated_fit`).
    """
    separated = _separated_fit(score, y, w)
    if separated is not None:
        return separated
    X = np.column_stack([np.ones_like(score), score])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -30.0, 30.0)))
        gradient = X.T @ (w * (y - p))
        hessian = (X * (w * p * (1.0 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return {"intercept": float(beta[0]), "slope": float(beta[1])}


def _separated_fit(score: FloatArray, y: FloatArray, w: FloatArray) -> dict[str, float] | None:
    """The logistic map through the centred isotonic map's two points when `score` separates the classes.

    Separated: among rows of positive weight the classes' scores overlap at most at one value. Newton's
    steps then ran to a slope of thousands and called nearly every account certain (1e-13 from 0 or
    1); instead the curve passes through each class's weighted mean score at its `centered_isotonic`
    rate, (k + 1/2) / (n + 1), so no finite sample shows certainty there. None when not separated.
    """
    keep = w > 0
    s, churned, weight = score[keep], y[keep] > 0.5, w[keep]
    if churned.all() or not churned.any() or s.min() == s.max():
        return None
    if not (s[~churned].max() <= s[churned].min() or s[churned].max() <= s[~churned].min()):
        return None
    points = []
    for rows, k in ((~churned, 0.0), (churned, 1.0)):
        n = float(np.sum(weight[rows]) ** 2 / np.sum(weight[rows] ** 2))  # effective count
        rate = (k * n + 0.5) / (n + 1.0)
        points.append((float(np.average(s[rows], weights=weight[rows])), np.log(rate / (1.0 - rate))))
    (x0, logit0), (x1, logit1) = points
    slope = (logit1 - logit0) / (x1 - x0)
    return {"intercept": float(logit0 - slope * x0), "slope": float(slope)}


#: The blend's stored numbers and whether each must be > 0 (`ChurnModel._fit_blend`, `_logistic_fit`).
_BLEND_NUMBERS = {
    "floor": True,
    "logit_mean": False,
    "logit_std": True,
    "feature_mean": False,
    "feature_std": True,
    "weight": True,
    "intercept": False,
    "slope": False,
}


def _stored_blend(blend: Mapping[str, Any]) -> dict[str, float]:
    """A saved blend checked: every number `predict_proba` uses, finite, a weight up to 1 (ValueError)."""
    missing = sorted(set(_BLEND_NUMBERS) - set(blend))
    if missing:
        raise ValueError(f"ChurnModel state's blend lacks {missing}")
    out = {str(k): float(v) for k, v in blend.items()}
    for key, positive in _BLEND_NUMBERS.items():
        stored_number(out[key], f"blend {key}", positive=positive)
    if out["weight"] > 1:
        raise ValueError(f"blend weight must be at most 1, got {out['weight']!r}")
    return out


def _spread(values: FloatArray, weights: FloatArray) -> float:
    """Weighted standard deviation of `values`, or 1 when it is 0 (a constant part is left unscaled)."""
    mean = np.average(values, weights=weights)
    std = float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))
    return std if std > 0 else 1.0


class ChurnModel(ClassifierMixin, LGBMModel):
    """Probability of no purchase in the horizon, by LightGBM (binary) with calibration on a later snapshot.

    `fit` takes the churn label (1 = no purchase in the horizon, as in ``build_labels(...)["churned"]``;
    any two labels work, the larger one sorted last is the positive class). With a ``snapshot`` array of
    two or more snapshots, the latest is held out: early stopping and the calibration map use it, then
    the model is refitted on every row; the earlier snapshots, which the first model learns from, must
    hold both classes (else `ModelInputError`); a latest snapshot of one class is not held out (a
    warning says so), as if fitted without snapshots. Without one the map is the identity (LightGBM's own
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
        The objective is ``binary``. A key that is no LightGBM parameter or alias (``num_leave``) is
        refused at `fit` (sklearn's ``InvalidParameterError``, naming the close LightGBM names).
    n_estimators : int, default 500
    learning_rate : float, default 0.05
    num_threads : int, default 2
    random_state : int, default 42
    early_stopping_rounds : int or None, default 50
    blend_feature : str or None, default None
        A feature column (higher = more purchases expected, such as ``btyd_expected_purchases``) whose
        minus log is blended with LightGBM's logit before calibration, with a weight chosen on the
        held-out snapshot (module docs). Values below a tenth of its held-out mean count as that floor;
        missing ones leave the row to LightGBM alone (its standardised logit, through the same logistic
        map). Every fit checks it names a numeric feature column (`ModelInputError`), even one without a
        held-out snapshot, where no blend is fitted. None: no blend.
    monotone : dict of str to int, optional
        Monotone constraints by feature name, as for `kamml.models.ClvModel`.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels; ``predict_proba(X)[:, 1]`` is the probability of ``classes_[1]`` (churn).
    calibration_x_, calibration_y_ : ndarray
        Breakpoints of the calibration map from the score (LightGBM's probability, or the blend) to
        the calibrated probability.
    blend_ : dict or None
        The fitted blend: ``weight``, ``floor`` of the feature, the mean and standard deviation of both
        standardised parts (``logit_mean``, ``logit_std``, ``feature_mean``, ``feature_std``) and the
        logistic calibration map (``intercept``, ``slope``); None when there is no blend (no feature, no
        held-out snapshot, or weight 0). With a blend, ``calibration_x_`` and ``calibration_y_`` are the
        identity and unused.
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

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LGBMModel._parameter_constraints,
        "blend_feature": [str, None],
    }
    _objectives: ClassVar[tuple[str, ...]] = ("binary",)
    target_words: ClassVar[str] = "churn probability"

    classes_: NDArray[Any]
    calibration_x_: FloatArray
    calibration_y_: FloatArray
    blend_: dict[str, float] | None

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
        blend_feature: str | None = None,
        monotone: dict[str, int] | None = None,
    ):
        self.horizon_days = horizon_days
        self.params = params
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds
        self.blend_feature = blend_feature
        self.monotone = monotone

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
        if sample_weight is not None and len(labels) != len(sample_weight):  # one weight per row of X
            raise ModelInputError(f"X has {len(sample_weight):,} rows but y has {len(labels):,}")
        present = classes if sample_weight is None else np.unique(labels[sample_weight > 0])
        if len(classes) > 2:
            raise ModelInputError(
                f"Only binary classification is supported. The type of the target is "
                f"{type_of_target(labels, input_name='y')} ({len(classes):,} classes: {classes[:5].tolist()})"
            )
        if len(present) < 2:
            raise ModelInputError(
                "ChurnModel needs both churned and retained accounts, but only one class is present "
                "(with positive weight) in y"
            )
        self.classes_ = classes
        return np.asarray(labels == classes[1], dtype=np.float64)

    def _validating(
        self, target: FloatArray, weight: FloatArray | None, held_out: NDArray[np.bool_] | None
    ) -> NDArray[np.bool_] | None:
        """No held-out snapshot when the latest holds one class (among rows of positive weight).

        Its log loss stops early stopping after a round or two and no calibration map can be fitted on
        it: the probabilities came out nearly constant (0.31 to 0.35, AUC 0.61 against 0.86). Fitted as
        without snapshots instead, with LightGBM's own probabilities, and a warning.
        """
        if held_out is None:
            return None
        rows = held_out if weight is None else held_out & (weight > 0)
        if len(np.unique(target[rows])) >= 2:
            return held_out
        logger.warning(
            "ChurnModel: the latest snapshot holds one class only, so it cannot validate or calibrate; "
            "trained on every row without a held-out snapshot (LightGBM's own probabilities)"
        )
        return None

    def _check_trainable(
        self, target: FloatArray, weight: FloatArray | None, held_out: NDArray[np.bool_] | None
    ) -> None:
        """A ModelInputError when the snapshots before the held-out one hold one class only.

        The first model learns those rows alone: from one class it learns a constant, the held-out
        snapshot's calibration map is then one block, and every probability the same value.
        """
        if held_out is None:
            return
        earlier = ~held_out if weight is None else ~held_out & (weight > 0)
        present = np.unique(target[earlier])
        if len(present) >= 2:
            return
        held = (
            f"have only class {self.classes_.tolist()[int(present[0])]!r} among those of positive weight"
            if len(present)
            else "all have zero weight"
        )
        raise ModelInputError(
            f"ChurnModel needs both classes before the latest snapshot: its {int((~held_out).sum()):,} "
            f"earlier rows (every snapshot but the latest, which is held out for early stopping and "
            f"calibration) {held}, so the first model would learn a constant and every calibrated "
            "probability would be one value; give more snapshots with both churned and retained accounts, "
            "or fit without snapshot"
        )

    def _calibrate(
        self,
        raw: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None,
        matrix: FloatArray | None = None,
    ) -> None:
        """Blend and logistic map, or the centred isotonic map alone, fitted on the held-out snapshot."""
        self.blend_ = None
        w = np.ones_like(y) if sample_weight is None else sample_weight
        if len(np.unique(y[w > 0])) < 2:
            logger.warning("ChurnModel: the latest snapshot has one class only; calibration skipped")
            self._identity()
            return
        if self.blend_feature is not None and matrix is not None:
            self.blend_ = self._fit_blend(raw, self._blend_column(matrix), y, w)
            if self.blend_ is not None:  # a smooth map: the blend spreads scores thinly, isotonic is steep
                self.blend_.update(_logistic_fit(self._score(raw, matrix), y, w))
                self._identity_map()
                return
        self.calibration_x_, self.calibration_y_ = centered_isotonic(raw, y, sample_weight)
        if len(self.calibration_x_) < 2:
            logger.warning(
                "ChurnModel: the held-out scores do not rank churn at all; calibrated probabilities "
                "are constant"
            )
        logger.info("ChurnModel: calibration map with %s", counted(len(self.calibration_x_), "breakpoint"))

    def _calibrate_in_sample(
        self, matrix: FloatArray, y: FloatArray, sample_weight: FloatArray | None
    ) -> None:
        """No held-out snapshot: keep LightGBM's own probabilities (in-sample isotonic would overfit)."""
        self.blend_ = None
        self._identity()

    def _refitted(self, held_out: FloatArray, sample_weight: FloatArray | None) -> None:
        """Standardise the refitted model's logit on the held-out rows, as the first model's was.

        The blend's weight and logistic map were fitted on the first model's held-out scores; the refitted
        model's logits can sit on another scale, which would shift the blend against the feature part, so
        the logit part is re-centred and re-scaled on the same rows (no labels are used).
        """
        if self.blend_ is None:
            return
        w = np.ones(len(held_out)) if sample_weight is None else sample_weight
        logit = self._logit(self._raw_predict(held_out))
        self.blend_["logit_mean"] = float(np.average(logit, weights=w))
        self.blend_["logit_std"] = _spread(logit, w)

    # ---- the blend: LightGBM's logit with minus the log of a purchase-expectation feature

    def _fit_start(self, matrix: FloatArray, target: FloatArray, weight: FloatArray | None) -> None:
        """Check the blend feature on every fit, with a held-out snapshot or without (where it is unused)."""
        if self.blend_feature is not None:
            self._blend_index()

    def _blend_index(self) -> int:
        """The blend feature's position among the fitted columns; a ModelInputError when it has none."""
        names = self.feature_names_
        if self.blend_feature not in names:
            shown = ", ".join(repr(n) for n in names[:20])
            if len(names) > 20:
                shown += f", ... ({len(names)} in all)"
            raise ModelInputError(
                f"ChurnModel: blend_feature {self.blend_feature!r} is not among the feature columns "
                f"({shown}); name one of them, or None for no blend"
            )
        if self.blend_feature in self.categories_:
            raise ModelInputError(
                f"ChurnModel: blend_feature {self.blend_feature!r} is a categorical column; the blend "
                "takes minus the log of a numeric purchase expectation"
            )
        return names.index(str(self.blend_feature))

    def _blend_column(self, matrix: FloatArray) -> FloatArray:
        """The blend feature's column of a prepared matrix."""
        return matrix[:, self._blend_index()]

    @staticmethod
    def _logit(p: FloatArray) -> FloatArray:
        """log(p / (1 - p)) with p clipped away from 0 and 1."""
        q = np.clip(p, _EPS, 1.0 - _EPS)
        return np.log(q) - np.log1p(-q)

    @staticmethod
    def _minus_log(x: FloatArray, floor: float) -> FloatArray:
        """-log(max(x, floor)); NaN where x is missing."""
        return np.where(np.isnan(x), np.nan, -np.log(floor_missing(x, floor)))

    def _fit_blend(
        self, raw: FloatArray, x: FloatArray, y: FloatArray, w: FloatArray
    ) -> dict[str, float] | None:
        """The blend weight of `BLEND_WEIGHTS` that ranks the held-out churn best, or None (weight 0)."""
        positive = x[np.isfinite(x) & (x > 0) & (w > 0)]  # zero weight counts as absent
        if positive.size == 0:
            logger.info("ChurnModel: %s has no positive held-out value; no blend", self.blend_feature)
            return None
        floor = float(0.1 * positive.mean())
        logit, part = self._logit(raw), self._minus_log(x, floor)
        known = ~np.isnan(part)
        state = {
            "floor": floor,
            "logit_mean": float(np.average(logit, weights=w)),
            "logit_std": _spread(logit, w),
            "feature_mean": float(np.average(part[known], weights=w[known])),
            "feature_std": _spread(part[known], w[known]),
        }
        best_auc, best = -np.inf, 0.0
        for weight in BLEND_WEIGHTS:
            auc = roc_auc_score(y, self._blend(logit, part, {**state, "weight": weight}), sample_weight=w)
            if auc > best_auc + 1e-12:  # a larger weight must rank strictly better
                best_auc, best = auc, weight
        base = roc_auc_score(y, logit, sample_weight=w)
        logger.info(
            "ChurnModel: blend weight %.1f of %s (held-out AUC %.4f, LightGBM alone %.4f)",
            best,
            self.blend_feature,
            best_auc,
            base,
        )
        return None if best == 0.0 else {**state, "weight": best}

    @staticmethod
    def _blend(logit: FloatArray, part: FloatArray, state: Mapping[str, float]) -> FloatArray:
        """(1 - weight) x standardised logit + weight x standardised feature part (the logit if missing).

        Where the feature is missing the weights are renormalised over the part present, so the row
        keeps LightGBM's ranking on the blend's standardised scale instead of (1 - weight) of it.
        """
        z_logit = (logit - state["logit_mean"]) / state["logit_std"]
        z_part = (part - state["feature_mean"]) / state["feature_std"]
        blended = (1.0 - state["weight"]) * z_logit + state["weight"] * z_part
        return np.where(np.isnan(part), z_logit, blended)

    def _score(self, raw: FloatArray, matrix: FloatArray) -> FloatArray:
        """The score the calibration map takes: LightGBM's probability, or the fitted blend."""
        blend = getattr(self, "blend_", None)
        if blend is None:
            return raw
        part = self._minus_log(self._blend_column(matrix), blend["floor"])
        return self._blend(self._logit(raw), part, blend)

    def _start_contributions(self, matrix: FloatArray, contrib: FloatArray) -> FloatArray:
        """Contributions to the score the calibration map takes, so their signs say what raises churn.

        Without a blend that score is LightGBM's own (log-odds, as given). With one it is the blend:
        LightGBM's part scaled by (1 - weight) / its spread, and the blend feature's standardised part,
        its deviation from the held-out mean, credited to that feature. Where the feature is missing the
        score is LightGBM's alone, scaled by 1 / its spread, so the contributions add up to the score less
        one constant for rows with the feature and another for rows without. A decreasing logistic map
        (never fitted in practice: more expected purchases mean less churn) turns the signs round.
        """
        blend = getattr(self, "blend_", None)
        if blend is None:
            return contrib
        column = self._blend_index()
        part = self._minus_log(matrix[:, column], blend["floor"])
        share = np.where(np.isnan(part), 1.0, 1.0 - blend["weight"])
        out = contrib * (share / blend["logit_std"])[:, None]
        z_part = fill_nan((part - blend["feature_mean"]) / blend["feature_std"], 0.0)
        out[:, column] += blend["weight"] * z_part
        return out if blend.get("slope", 1.0) >= 0 else -out

    def _identity(self) -> None:
        """Identity map on LightGBM's probabilities, no blend."""
        self.blend_ = None
        self._identity_map()

    def _identity_map(self) -> None:
        """Identity breakpoints (unused while a blend, which has its own logistic map, is set)."""
        self.calibration_x_ = np.array([0.0, 1.0])
        self.calibration_y_ = np.array([0.0, 1.0])

    def _extra_state(self) -> dict[str, Any]:
        """Classes and calibration breakpoints."""
        return {
            "classes": self.classes_.tolist(),
            "calibration_x": self.calibration_x_.tolist(),
            "calibration_y": self.calibration_y_.tolist(),
            "blend": self.blend_,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore classes and calibration breakpoints."""
        self.classes_ = np.asarray(state["classes"])
        x = np.asarray(state["calibration_x"], dtype=np.float64)
        p = np.asarray(state["calibration_y"], dtype=np.float64)
        if (
            len(self.classes_) != 2
            or x.ndim != 1
            or x.shape != p.shape
            or not len(x)
            or not (np.isfinite(x).all() and np.isfinite(p).all())
            or (np.diff(x) < 0).any()
            or (p < 0).any()
            or (p > 1).any()
        ):
            raise ValueError(
                "ChurnModel state needs two classes and calibration_x and calibration_y of one length, "
                "finite, x increasing and y within 0 and 1"
            )
        self.calibration_x_, self.calibration_y_ = x, p
        blend = state.get("blend")  # models saved before the blend existed have none
        self.blend_ = None if blend is None else _stored_blend(blend)

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
        matrix = self._prepare(X, horizon_days)
        raw = self._raw_predict(matrix)
        if self.blend_ is None:
            p = np.interp(raw, self.calibration_x_, self.calibration_y_)
        else:
            linear = self.blend_["intercept"] + self.blend_["slope"] * self._score(raw, matrix)
            p = 1.0 / (1.0 + np.exp(-np.clip(linear, -30.0, 30.0)))
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, *, horizon_days: int | None = None) -> NDArray[Any]:
        """The more likely label of each row (``classes_[1]`` when its probability is above 0.5)."""
        p = self.predict_proba(X, horizon_days=horizon_days)[:, 1]
        return np.asarray(self.classes_[(p > 0.5).astype(int)])
