"""Metrics of the temporal backtest (DESIGN §8, §10): value ranking and calibration, churn discrimination.

Value metrics judge a forecast of each account's spend over a horizon. Most accounts spend nothing, so
MAE flatters a forecast of zero: ranking (normalised Gini, Spearman, top-decile and top-quintile capture),
totals (aggregate error, decile MAPE) and RMSE are what tell models apart. Churn metrics judge a
probability: ROC AUC and PR AUC for ranking, Brier score and a calibration table for level.

Ties in a forecast are common (every account without history gets the same score), and sorting them
in input order would reward or punish a model for the order of the rows. The Gini, the top-share
captures and the deciles are therefore expected values under random tie-breaking: inside a group of
tied forecasts the cumulative actual value grows linearly, as it does on average over all orders of the
group. Spearman gives tied forecasts their average rank, and PR AUC is scikit-learn's average
precision (tied scores form one threshold): neither depends on the order of the rows either, but
neither is that expectation.

All functions are pure numpy/scipy/sklearn and accept array-likes (lists, numpy arrays, Series) of
equal length, paired by position, except two pandas Series with different indexes: kamml's frames are
keyed by account_id, so those are paired by index label (`_pair`):

- the same labels in another order (``labels["value"]`` beside ``scores["clv"].sample(frac=1)``):
  the forecast is aligned to the actuals' order, so the result is that of the rows matched by label;
- different labels: a ValueError saying how many labels of each are missing in the other. That
  includes a Series with a RangeIndex (0 .. n-1, positions, as ``pd.Series(model.predict(X))`` has)
  beside one indexed by account_id: nothing says its positions follow the other's rows, so it is
  refused (the message names the RangeIndex) rather than paired by position; pass ``.to_numpy()``
  (pairing by position, as a numpy array always is) or give both the same index;
- a duplicated label in either index, when the indexes differ: a ValueError (no one-to-one match).

Series with identical indexes, and any input that is not a Series, are paired by position as before.

A metric the inputs leave undefined (a Gini of equal actuals, a share of a total of 0 or below 0, an
AUC of one outcome) is NaN, and says why in an `UndefinedMetricWarning` naming the input and the rule.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from kamml.io import float_values
from kamml.text import counted

__all__ = [
    "UndefinedMetricWarning",
    "aggregate_error",
    "calibration_table",
    "churn_metrics",
    "decile_mape",
    "decile_table",
    "decile_wape",
    "mae",
    "normalized_gini",
    "rmse",
    "spearman",
    "top_capture",
    "value_metrics",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


class UndefinedMetricWarning(UserWarning):
    """A metric is NaN because its inputs leave it undefined; the message names the input and the rule."""


def _describe_index(index: pd.Index) -> str:
    """How an index reads in a message: a RangeIndex is named (positions, not account ids)."""
    if isinstance(index, pd.RangeIndex):
        span = f"{index[0]} .. {index[-1]}" if len(index) else "empty"
        return f"a RangeIndex ({span}: row positions, not account ids)"
    return f"an index of {len(index):,} labels" + (f" ({index.name})" if index.name is not None else "")


def _aligned(y_true: pd.Series, y_pred: pd.Series, pred_name: str) -> pd.Series:
    """`y_pred` in the order of `y_true`'s index labels; a ValueError when they do not match one to one."""
    for name, index in (("y_true", y_true.index), (pred_name, y_pred.index)):
        if not index.is_unique:
            raise ValueError(
                f"y_true and {pred_name} are Series with different indexes, paired by label, but {name}'s "
                f"index repeats {int(index.duplicated().sum()):,} labels; pass .to_numpy() to pair by "
                "position"
            )
    missing_pred = y_true.index.difference(y_pred.index)
    missing_true = y_pred.index.difference(y_true.index)
    if len(missing_pred) or len(missing_true):
        raise ValueError(
            f"y_true and {pred_name} are Series indexed by different labels: {len(missing_pred):,} of "
            f"y_true's {len(y_true):,} are not in {pred_name} and {len(missing_true):,} of {pred_name}'s "
            f"{len(y_pred):,} are not in y_true (y_true has {_describe_index(y_true.index)}, {pred_name} "
            f"{_describe_index(y_pred.index)}); pairs are made by index label (account_id) when both are "
            "Series: give both the same index, or pass .to_numpy() to pair by position"
        )
    return y_pred.reindex(y_true.index)


def _floats(values: ArrayLike, name: str) -> FloatArray:
    """`values` as a float array, or a ValueError naming `name` when they are not numbers.

    numpy reads a timedelta or a datetime as nanoseconds and a complex number as its real part: a
    wrong column passed as a forecast gave a number rather than an error (a metrics audit).
    """
    return float_values(values, name, leave_out=" of both inputs", hint="; pass the amounts or probabilities")


def _pair(y_true: ArrayLike, y_pred: ArrayLike, pred_name: str = "y_pred") -> tuple[FloatArray, FloatArray]:
    """Both inputs as finite 1-D float arrays of one non-zero length, or a ValueError naming the problem.

    Two pandas Series with different indexes are paired by label (the module docstring says how).
    """
    if (
        isinstance(y_true, pd.Series)
        and isinstance(y_pred, pd.Series)
        and not y_true.index.equals(y_pred.index)
    ):
        y_pred = _aligned(y_true, y_pred, pred_name)
    a = _floats(y_true, "y_true")
    b = _floats(y_pred, pred_name)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"y_true and {pred_name} must be 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.shape[0]} values but {pred_name} has {b.shape[0]}")
    if a.size == 0:
        raise ValueError("metrics need at least one account, got empty arrays")
    for name, values in (("y_true", a), (pred_name, b)):
        _refuse_non_finite(values, name)
    return a, b


def _at(where: IntArray) -> str:
    """The first positions of `where` as a message gives them: "position 3", "positions 3, 8, ..."."""
    shown = ", ".join(str(int(i)) for i in where[:5]) + (", ..." if where.size > 5 else "")
    return f"position{'' if where.size == 1 else 's'} {shown}"


def _refuse_non_finite(values: FloatArray, name: str) -> None:
    """A ValueError naming how many of `values` are missing or infinite, and where.

    It read "contains NaN or infinite values (1)", with neither the positions nor what to do.
    """
    missing, infinite = np.flatnonzero(np.isnan(values)), np.flatnonzero(np.isinf(values))
    parts = [
        f"{counted(where.size, kind + ' value')} ({_at(where)})"
        for kind, where in (("missing (NaN, None or pd.NA)", missing), ("infinite", infinite))
        if where.size
    ]
    if parts:
        raise ValueError(
            f"{name} has {' and '.join(parts)}: every account needs a finite number; drop those accounts "
            "or fill them (from both inputs alike) before measuring"
        )


def _unit_scaled(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, int]:
    """Both arrays divided by 2 ** e, the power of two above their largest magnitude, and e.

    So that no sum overflows (an audit: two accounts of 1e308 summed to inf, and the top-decile capture
    read 0.0). Dividing by a power of two is exact, so results are as before wherever the sums fit.
    """
    largest = float(max(np.max(np.abs(a)), np.max(np.abs(b))))
    exponent = int(np.frexp(largest)[1]) if largest > 0 else 0
    return np.ldexp(a, -exponent), np.ldexp(b, -exponent), exponent


def _unit_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """`_pair`, then `_unit_scaled`: the inputs of a metric that does not change with the unit."""
    a, b, _ = _unit_scaled(*_pair(y_true, y_pred))
    return a, b


def _ranked_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """`_pair` with the actuals in their own unit (`_unit_scaled`) and the forecast as it is.

    For the metrics that use the forecast only for its order: scaled by the forecast's size too, actuals
    of 1e-30 beside forecasts of 1e300 underflowed to 0, and forecasts of 1e-300 beside 1e308 to a tie.
    """
    a, b = _pair(y_true, y_pred)
    return _unit_scaled(a, np.zeros(1))[0], b


def _zero_below(a: FloatArray) -> float:
    """The size under which a sum of `a`'s values is 0 to rounding (n x machine epsilon x sum of |a|).

    Refunds that net to nothing sum to about 1e-17, not 0: ``[0.1, 0.2, -0.3]`` gave an aggregate
    error of 2.5e18, and a bottom decile netting to -9e-13 a decile MAPE of 6.6e11 (a metrics audit).
    """
    return float(a.size * np.finfo(np.float64).eps * np.abs(a).sum())


def _undefined(metric: str, reason: str, verb: str = "is") -> float:
    """NaN with an `UndefinedMetricWarning` saying why: a bare NaN named neither the input nor the rule.

    scipy's spearmanr and scikit-learn's AUCs warn where these give NaN; kamml said nothing (an audit).
    """
    warnings.warn(f"{metric} {verb} NaN: {reason}", UndefinedMetricWarning, stacklevel=3)
    return math.nan


def _zero_total(why: str) -> str:
    """The reason a metric on y_true's total is NaN when that total is 0 (to rounding)."""
    return f"y_true's values sum to 0 (to rounding; refunds that net out purchases too), and {why}"


def _negative_total(why: str) -> str:
    """The reason a share of y_true's total is NaN when that total is below 0."""
    return (
        f"y_true's values sum to less than 0 (refunds outweigh purchases), and {why}: a share of a "
        "negative total has no meaning (its sign flips, and a part can exceed the whole)"
    )


def _all_equal(name: str, values: FloatArray) -> str:
    """The reason a ranking metric is NaN when `name`'s values are all equal."""
    return f"{name}'s {values.size:,} values are all equal, so they give no order to rank by"


def _expected_cumulative(y_true: FloatArray, y_pred: FloatArray) -> FloatArray:
    """Expected cumulative actual value after the top i accounts by forecast, for i = 0..n.

    Accounts are ordered by forecast, highest first; inside a group of equal forecasts the expectation
    over random orders grows linearly from the group's start to its end.
    """
    n = y_true.size
    order = np.argsort(-y_pred, kind="stable")
    pred_sorted, true_sorted = y_pred[order], y_true[order]
    starts = np.r_[0, np.flatnonzero(np.diff(pred_sorted) != 0) + 1]
    sizes = np.diff(np.r_[starts, n])
    sums = np.add.reduceat(true_sorted, starts)
    before = np.r_[0.0, np.cumsum(sums)[:-1]]
    position = np.arange(n + 1)
    group = np.clip(np.searchsorted(starts, position, side="right") - 1, 0, len(starts) - 1)
    return np.asarray(
        before[group] + (position - starts[group]) / sizes[group] * sums[group], dtype=np.float64
    )


def _sorted_pred_cumulative(y_pred: FloatArray) -> FloatArray:
    """Cumulative forecast after the top i accounts by forecast, i = 0..n (ties do not matter here)."""
    return np.r_[0.0, np.cumsum(np.sort(y_pred)[::-1])]


def _gini(y_true: FloatArray, y_pred: FloatArray) -> float:
    """Unnormalised Gini of `y_true` ordered by `y_pred` (expected under random tie-breaking).

    The mean of the cumulative captured share minus the diagonal's, summed on the centred values
    (``y - mean``) so nothing cancels: as ``sum(C_i) / (n T) - (n + 1) / (2n)`` it left about 1e-16
    where the answer is 0, and a ratio of two such remainders read -19.5 when all actuals were equal.
    """
    n = y_true.size
    total = float(y_true.sum())
    if abs(total) <= _zero_below(y_true):
        return math.nan
    cumulative = _expected_cumulative(y_true - total / n, y_pred)[1:]
    return float(cumulative.sum() / total / n)


def normalized_gini(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised Gini: how well `y_pred` orders accounts by actual value, 1 perfect, 0 random, -1 reversed.

    The Gini of the actual values sorted by the forecast (the area between the cumulative-capture curve
    and the diagonal) divided by the Gini of the perfect ordering. Tied forecasts count at their
    expected value under random tie-breaking, so a constant forecast scores 0 (to rounding, 1e-15).

    Returns NaN, with an `UndefinedMetricWarning`, when the actual values are all equal (nothing to rank)
    or sum to 0.

    Examples
    --------
    >>> normalized_gini([1, 0, 0, 0], [4, 3, 2, 1])
    1.0
    >>> round(normalized_gini([1, 0, 0, 0], [1, 1, 0, 0]), 4)
    0.6667
    """
    a, b = _ranked_pair(y_true, y_pred)
    if np.all(a == a[0]):  # nothing to rank
        return _undefined("gini", _all_equal("y_true", a))
    best = _gini(a, a)
    if math.isnan(best) or best == 0:
        return _undefined("gini", _zero_total("the Gini measures shares of that total"))
    return float(np.clip(_gini(a, b) / best, -1.0, 1.0))  # |G(b)| <= G(a): only rounding passes it


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); NaN, with a warning, when a side is constant."""
    a, b = _pair(y_true, y_pred)
    if a.size < 2:
        return _undefined("spearman", f"it needs at least 2 accounts, got {a.size}")
    for name, values in (("y_true", a), ("y_pred", b)):
        if np.all(values == values[0]):
            return _undefined("spearman", _all_equal(name, values))
    return float(stats.spearmanr(a, b).statistic)


def top_capture(y_true: ArrayLike, y_pred: ArrayLike, share: float = 0.1) -> float:
    """Share of the total actual value held by the top `share` of accounts ranked by forecast.

    The top ``share * n`` accounts are taken (a fractional last account counts in proportion), ties at
    their expected value under random tie-breaking. NaN, with a warning, when the actual total is 0 or
    below 0 (refunds outweighing purchases: a share of a negative total flips its sign).

    Examples
    --------
    >>> top_capture([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], share=0.1)
    0.5
    """
    # a bool is a number to Python: True read as 1.0, the whole book's capture
    if isinstance(share, (bool, np.bool_)) or not isinstance(share, numbers.Real) or not 0 < share <= 1:
        raise ValueError(f"share must be a number in (0, 1] (a fraction of the accounts), got {share!r}")
    a, b = _ranked_pair(y_true, y_pred)
    cumulative = _expected_cumulative(a, b)
    captured = float(np.interp(share * a.size, np.arange(a.size + 1), cumulative))
    if abs(float(a.sum())) <= _zero_below(a):
        return _undefined("top_capture", _zero_total("the capture is a share of that total"))
    if float(a.sum()) < 0:  # the top account's 5 of a total of -5 read a capture of -1.0
        return _undefined("top_capture", _negative_total("the capture is a share of that total"))
    return captured / float(a.sum())


def aggregate_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """(predicted total - actual total) / |actual total|: above 0 over-forecasts; NaN when the total is 0.

    Over the size of the total, so that the sign says over or under where refunds outweigh purchases:
    over a negative total, -5 predicted against -10 read -0.5, an under-forecast (an evaluation audit).
    """
    a, b = _unit_pair(y_true, y_pred)
    if abs(float(a.sum())) <= _zero_below(a):
        return _undefined("aggregate_error", _zero_total("the error is relative to that total"))
    return float(b.sum() - a.sum()) / abs(float(a.sum()))


def _errors(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, int]:
    """The errors ``y_pred - y_true`` divided by 2 ** e, and e: 0, or 1 when a difference overflows.

    An error past the float range (1.5e308 against -1.5e308) is kept as its half, exactly, rather than
    inf: the RMSE of one such account among a hundred is 3e307.
    """
    a, b = _pair(y_true, y_pred)
    with np.errstate(over="ignore"):
        error = b - a
    if np.all(np.isfinite(error)):
        return error, 0
    return b * 0.5 - a * 0.5, 1


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error, scaled by the largest error first: no square overflows or underflows."""
    error, exponent = _errors(y_true, y_pred)
    largest = float(np.max(np.abs(error), initial=0.0))
    if largest == 0.0:
        return largest
    return float(np.ldexp(largest * float(np.sqrt(np.mean((error / largest) ** 2))), exponent))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error (flatters a forecast of zero when most accounts spend nothing).

    In units of the largest error first, so that the sum does not overflow; in units of the largest
    value, a 1e-20 error beside equal values of 1e300 was lost (a metrics audit).
    """
    error, exponent = _errors(y_true, y_pred)
    error, _, unit = _unit_scaled(error, np.zeros(1))
    return float(np.ldexp(np.mean(np.abs(error)), exponent + unit))


def decile_table(y_true: ArrayLike, y_pred: ArrayLike) -> pd.DataFrame:
    """Predicted and actual totals in the ten deciles of forecast value, decile 1 the highest.

    Accounts are sorted by forecast, highest first, and cut at positions round(n * k / 10); actual totals
    of deciles that split a group of tied forecasts are expectations under random tie-breaking. With
    fewer than ten accounts the empty deciles are left out.

    Returns
    -------
    pandas.DataFrame
        Columns ``decile`` (1-10), ``n``, ``predicted_total``, ``actual_total``, ``predicted_mean``,
        ``actual_mean``, ``ape`` (|predicted - actual| / actual, NaN when actual is 0), ``actual_share``
        (of the overall actual total; NaN when that total is 0 or below 0) and
        ``cumulative_actual_share``.
    """
    a, b, exponent = _unit_scaled(*_pair(y_true, y_pred))  # summed unscaled, 1e308s read inf and NaN
    table = _deciles(a, b)
    for column in ("predicted_total", "actual_total", "predicted_mean", "actual_mean"):
        table[column] = np.ldexp(table[column].to_numpy(), exponent)
    return table


def _deciles(a: FloatArray, b: FloatArray) -> pd.DataFrame:
    """`decile_table` of paired arrays."""
    n = a.size
    bounds = np.round(np.arange(11) * n / 10).astype(int)
    actual_cum = _expected_cumulative(a, b)[bounds]
    pred_cum = _sorted_pred_cumulative(b)[bounds]
    counts = np.diff(bounds)
    actual = np.diff(actual_cum)
    predicted = np.diff(pred_cum)
    total = float(a.sum())
    zero = _zero_below(a)  # a decile netting to 0 is 0 to rounding, not -9e-13
    actual = np.where(np.abs(actual) > zero, actual, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ape = np.where(actual != 0, np.abs(predicted - actual) / np.abs(actual), np.nan)
        share = actual / total if total > zero else np.full(10, np.nan)  # of a negative total: none
    table = pd.DataFrame(
        {
            "decile": np.arange(1, 11),
            "n": counts,
            "predicted_total": predicted,
            "actual_total": actual,
            "predicted_mean": predicted / np.maximum(counts, 1),
            "actual_mean": actual / np.maximum(counts, 1),
            "ape": ape,
            "actual_share": share,
            "cumulative_actual_share": np.cumsum(share),
        }
    )
    return table[table["n"] > 0].reset_index(drop=True)


def decile_mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error of predicted vs actual totals over the deciles of forecast value.

    Deciles as in `decile_table`; a decile whose actual total is 0 has no percentage error and is left
    out of the mean. NaN, with a warning, when every decile's actual total is 0.
    """
    ape = _deciles(*_unit_pair(y_true, y_pred))["ape"].to_numpy()
    ape = ape[~np.isnan(ape)]  # an error past the float range is inf, not a decile that bought nothing
    if not ape.size:
        return _undefined(
            "decile_mape", "every decile's actual total is 0 (y_true), so none has a percentage error"
        )
    return float(ape.mean())


def decile_wape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Sum over the deciles of forecast value of |predicted - actual| totals, over the actual total.

    `decile_mape`'s companion for sparse books: each decile weighs by what it bought and none is left
    out. Where most accounts buy nothing, a bottom decile that bought $18 against $873 predicted is a
    4,750 % error that set decile MAPE to 4.9 for a model whose other deciles were within 3-68 %, while a
    rival's decile that bought nothing was left out of its mean. NaN, with a warning, when the actual
    total is 0.
    """
    a, b = _unit_pair(y_true, y_pred)
    table = _deciles(a, b)
    actual = float(table["actual_total"].sum())
    if abs(actual) <= _zero_below(a):
        return _undefined("decile_wape", _zero_total("the error is relative to that total"))
    return float(np.abs(table["predicted_total"] - table["actual_total"]).sum() / abs(actual))


def value_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Every value metric of DESIGN §10 in one dict (the keys of the backtest JSON).

    Keys: gini, spearman, top10_capture, top20_capture, decile_mape, decile_wape, aggregate_error, rmse,
    mae.
    """
    return {
        "gini": normalized_gini(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "top10_capture": top_capture(y_true, y_pred, 0.1),
        "top20_capture": top_capture(y_true, y_pred, 0.2),
        "decile_mape": decile_mape(y_true, y_pred),
        "decile_wape": decile_wape(y_true, y_pred),
        "aggregate_error": aggregate_error(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
    }


def _binary(y_true: ArrayLike, p: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Labels in {0, 1} and probabilities in [0, 1], or a ValueError."""
    a, b = _pair(y_true, p, pred_name="p")
    other = ~((a == 0) | (a == 1))
    if other.any():
        found = np.unique(a[other])
        shown = ", ".join(f"{v:g}" for v in found[:5]) + (", ..." if found.size > 5 else "")
        raise ValueError(
            f"y_true must hold 0/1 (or boolean) outcomes, 1 for churned: {int(other.sum()):,} of its "
            f"{a.size:,} values are not: {shown} ({_at(np.flatnonzero(other))}); recode them to 0 and 1"
        )
    outside = (b < 0) | (b > 1)
    if outside.any():
        raise ValueError(
            f"p must hold probabilities in [0, 1]: {int(outside.sum()):,} of its {b.size:,} values are "
            f"outside it ({_at(np.flatnonzero(outside))}; p runs from {b.min():g} to {b.max():g})"
        )
    return a, b


def churn_metrics(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Discrimination and calibration of churn probabilities.

    Keys: ``roc_auc`` (ties count one half), ``pr_auc`` (average precision), ``brier`` (mean squared
    error of the probability), ``log_loss`` (probabilities clipped to [1e-15, 1 - 1e-15] first, so a
    certain wrong answer costs about 34.5, not infinity; scikit-learn now clips at machine epsilon
    instead, so its figure for p exactly 0 or 1 differs) and ``base_rate`` (share of churned accounts).
    ROC and PR AUC are NaN, with one warning, when only one outcome occurs.
    """
    a, b = _binary(y_true, p)
    both = 0 < a.sum() < a.size
    if not both:
        outcome = "1 (churned)" if a[0] == 1 else "0 (not churned)"
        reason = (
            f"every one of y_true's {a.size:,} accounts is {outcome}, and both need accounts of each outcome"
        )
        _undefined("roc_auc and pr_auc", reason, "are")
    return {
        "roc_auc": float(roc_auc_score(a, b)) if both else math.nan,
        "pr_auc": float(average_precision_score(a, b)) if both else math.nan,
        "brier": float(brier_score_loss(a, b)),
        "log_loss": float(log_loss(a, np.clip(b, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "base_rate": float(a.mean()),
    }


def _quantiles(p: FloatArray, bins: int) -> FloatArray:
    """`np.quantile` of `p` at k / bins (linear), its positions k (n - 1) / bins in exact integer arithmetic.

    numpy's float positions land a few ulps off a block of ties (24.999999999999996 for 25), so the
    block's quantile read 0.6799999999999999 for 0.68: the bin's edges missed its probability.
    """
    s = np.sort(p)
    low, rest = np.divmod(np.arange(bins + 1) * (s.size - 1), bins)
    high = np.minimum(low + 1, s.size - 1)
    return np.asarray(s[low] + (s[high] - s[low]) * (rest / bins), dtype=np.float64)


MAX_UNIFORM_BINS = 2**52
"""Most equal-width bins: beyond, neighbouring edges k / bins are no longer told apart in floats."""


def calibration_table(
    y_true: ArrayLike,
    p: ArrayLike,
    bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> pd.DataFrame:
    """Mean predicted probability beside the observed rate, per probability bin (a calibration curve).

    Parameters
    ----------
    y_true : array-like of 0/1
    p : array-like of probabilities
    bins : int, default 10
        Number of bins. More bins than accounts cost nothing: only the bins that hold accounts (at most
        one per account) are computed, never every edge (``bins=10**9`` allocated 16 GB of edges). With
        ``"uniform"`` the bins keep their width 1 / bins, up to `MAX_UNIFORM_BINS` (a ValueError above);
        with ``"quantile"`` more bins than accounts are taken as one per account (bins = the number of
        accounts), since further quantile edges only cut the space between two accounts: the accounts
        are grouped as they would be, only the edges between them differ.
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width bins on [0, 1], or bins holding equal numbers of accounts (edges are the quantiles
        of `p`; a probability that several quantiles share, a block of ties, is a bin of its own).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin``, ``p_low``, ``p_high`` (bin edges, the last bin closed),
        ``n``, ``mean_predicted``, ``observed_rate``.
    """
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1, got {bins!r}")
    a, b = _binary(y_true, p)
    if strategy == "uniform":
        if bins > MAX_UNIFORM_BINS:
            raise ValueError(
                f"bins must be at most 2**52 ({MAX_UNIFORM_BINS:,}) with strategy 'uniform', got {bins:,}: "
                "beyond, the edges k / bins are no longer distinct numbers"
            )
        which = _uniform_bin(b, int(bins))
        used, inverse = np.unique(which, return_inverse=True)
        low, high = used / bins, (used + 1) / bins  # as np.arange(bins + 1) / bins gives them
    elif strategy == "quantile":
        # a probability several quantiles share (a block of ties: isotonic calibration's flat steps)
        # is a bin of its own, [v, the next float): merged away, it joined the next accounts' bin
        quantiles, repeats = np.unique(_quantiles(b, min(int(bins), b.size)), return_counts=True)
        edges = np.unique(np.r_[quantiles, np.nextafter(quantiles[repeats > 1], np.inf)])
        if edges.size == 1:
            edges = np.r_[edges, edges]
        which = np.clip(np.searchsorted(edges[1:-1], b, side="right"), 0, edges.size - 2)
        used, inverse = np.unique(which, return_inverse=True)
        low = edges[:-1][used]
        high = np.where(edges[1:] == np.nextafter(edges[:-1], np.inf), edges[:-1], edges[1:])[used]  # [v, v]
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    counts = np.bincount(inverse, minlength=used.size)
    return pd.DataFrame(
        {
            "bin": used,
            "p_low": low,
            "p_high": high,
            "n": counts,
            "mean_predicted": np.bincount(inverse, weights=b, minlength=used.size) / counts,
            "observed_rate": np.bincount(inverse, weights=a, minlength=used.size) / counts,
        }
    )


def _uniform_bin(p: FloatArray, bins: int) -> NDArray[np.int64]:
    """The equal-width bin of each probability: how many edges k / bins (0 < k < bins) lie at or below it.

    From ``floor(p * bins)``, moved by one where rounding put it on the wrong side of an edge, so that
    each account lands where a search of the edges ``np.arange(bins + 1) / bins`` puts it, with no
    array of the edges (a billion bins were two arrays of 8 GB).
    """
    k = np.clip(np.floor(p * bins), 0, bins - 1).astype(np.int64)
    while True:
        up = (k + 1 < bins) & ((k + 1) / bins <= p)
        down = (k > 0) & (k / bins > p)
        if not (up.any() or down.any()):
            return k
        k = k + up - down
