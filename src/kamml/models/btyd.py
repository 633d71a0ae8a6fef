"""BG/NBD and Gamma-Gamma models ("buy till you die"), fitted by maximum likelihood with numpy and scipy.

`BetaGeo` is the BG/NBD model of Fader, Hardie & Lee (2005) for repeat purchasing in non-contractual
settings: while alive a customer buys at a Poisson rate lambda ~ Gamma(r, alpha), and after each purchase
drops out with probability p ~ Beta(a, b). `GammaGamma` (Fader, Hardie & Lee 2005b; Fader & Hardie
2013) models the mean value of a customer's repeat purchases. Both are sklearn-style estimators: the
constructor stores options only, `fit` sets the attributes ending in ``_``.

Input conventions are the usual BTYD (RFM) ones, computed per customer at a cutoff:

- ``frequency``: number of repeat purchases (distinct purchase periods minus one), a whole number >= 0;
- ``recency``: time of the last purchase since the first one (0 when frequency is 0), 0 <= recency <= T;
- ``T``: age, time from the first purchase to the cutoff;
- ``monetary``: mean value of the repeat purchases (the first purchase excluded).

Time may be in any unit (CDNOW is usually analysed in weeks); horizons use the same unit. Likelihoods
are computed in log space (``gammaln``, ``betaln``, ``logaddexp``) and optimised in log-parameter space
with their analytic gradient by L-BFGS-B. Rows with identical inputs are evaluated once (the data are
compressed to unique rows with summed weights), so a million customers fit in seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, polygamma
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import assert_all_finite, check_non_negative, validate_data

from kamml.errors import Problem, SchemaError
from kamml.models._checks import KammlEstimator, NotFittedModelError, check_fitted, check_sample_weight
from kamml.text import counted

__all__ = ["BetaGeo", "GammaGamma", "NotFittedModelError", "convergence_noted"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


#: Where fits that did not converge note their detail instead of warning (`convergence_noted`), with
#: the thread that asked: a context variable, so each thread and asyncio task has its own, and a
#: thread that inherits its starter's context (free-threaded Python 3.14) warns as before.
_NOTES: ContextVar[tuple[int, list[str]] | None] = ContextVar("kamml_btyd_convergence_notes", default=None)


@contextlib.contextmanager
def convergence_noted() -> Iterator[list[str]]:
    """Within it, a fit that does not converge appends its detail to the list given, and does not warn.

    The detail is the ConvergenceWarning's message without the model's name and the advice to the
    estimator's caller (max_iter, tol, penalizer): for callers that set none of those and say it their
    own way (kamml's jobs log one line per fit, `kamml.models.btyd_features.fit_btyd`).
    """
    notes: list[str] = []
    token = _NOTES.set((threading.get_ident(), notes))
    try:
        yield notes
    finally:
        _NOTES.reset(token)


#: Bounds of the log-parameters during optimisation: keeps exp() finite when the data push a
#: parameter towards 0 or infinity (for example b when nobody ever drops out).
_LOG_BOUND = 30.0

#: A stalled line search counts as converged when a Newton step would move no log-parameter further
#: than this (0.01 % of each parameter: below the sampling error of a fit on up to 1e8 customers).
_PRECISION_STEP = 1e-4

#: Evaluation of the alive-customer expectation (see `_expected_alive_purchases`): the power series is
#: used up to s = t / (alpha + T) = 0.6; beyond, the trapezoid rule in logit(p) with this step and
#: these tails (in units of e-folds) runs over chunks of this many matrix cells.
_SERIES_MAX_S = 0.6
_SERIES_MAX_TERMS = 400
_QUAD_STEP = 0.4
_QUAD_TAIL = 28.0
_QUAD_CHUNK = 1_000_000
_QUAD_MAX_GRID = 50_000
#: From this n * s = (r + x) t / (alpha + T) on, quadrature sums the integrand itself
#: (`_alive_purchases_direct`): the exact corrections of `_alive_purchases_quadrature` are of size n s,
#: and their rounding (about 1e-16 n s) became the answer, negative from n s of about 1e16. Only for
#: a >= `_DIRECT_MIN_A`: below, that rounding is small against the answer (about n s^(1 - a)), and
#: the direct sum (over thousands of e-folds of the density's tail) was not checked there.
_DIRECT_MIN_NS = 1e6
_DIRECT_MIN_A = 0.1


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------


def _weights_or_ones(sample_weight: ArrayLike | None, n_samples: int) -> FloatArray:
    """Checked row weights; all ones when none are given (the likelihood always sums weights)."""
    weights = check_sample_weight(sample_weight, n_samples)
    return np.ones(n_samples, dtype=np.float64) if weights is None else weights


def _select_columns(X: Any, columns: Sequence[str], model: str) -> Any:
    """Pick the model's columns from a DataFrame by name (any order, extra columns ignored)."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise SchemaError(
                [
                    Problem(
                        table="X",
                        column=c,
                        rule=f"missing column; {model} needs columns {', '.join(columns)}",
                    )
                    for c in missing
                ]
            )
        return X[list(columns)]
    return X


def _validate_array(estimator: BaseEstimator, X: Any, *, reset: bool, nonnegative: bool) -> FloatArray:
    """X as a finite float64 2-D array with the estimator's columns (picked by name from a DataFrame)."""
    columns = estimator.columns
    X = _select_columns(X, columns, type(estimator).__name__)
    arr: FloatArray = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
    if arr.shape[1] != len(columns):
        # With the right columns the BTYD rules name the column with NaN, infinity or negatives (sklearn's
        # own finite check named none); otherwise refuse them here.
        assert_all_finite(arr, input_name="X")
        if nonnegative:
            check_non_negative(arr, f"{type(estimator).__name__} (X: {', '.join(columns)})")
    return arr


def _check_n_columns(estimator: BaseEstimator, arr: FloatArray) -> None:
    """Raise a ValueError when X does not have exactly the estimator's columns."""
    columns = estimator.columns
    if arr.shape[1] != len(columns):
        raise ValueError(  # "feature(s)": scikit-learn's check_fit2d_1feature looks for "1 feature(s)"
            f"X has {arr.shape[1]} feature(s), but {type(estimator).__name__} needs "
            f"{counted(len(columns), 'column')}: " + ", ".join(columns)
        )


def _problem(column: str, rule: str, bad: NDArray[np.bool_], shown: FloatArray) -> Problem:
    """One broken rule with its row count and a few offending values."""
    return Problem(table="X", column=column, rule=rule, n_rows=int(bad.sum()), examples=tuple(shown[bad][:5]))


def _check_rfm(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> None:
    """Check the BTYD rules on frequency, recency and T; raise one `SchemaError` listing every break."""
    problems: list[Problem] = []
    for name, values in (("frequency", frequency), ("recency", recency), ("T", T)):
        bad = ~np.isfinite(values)
        if bad.any():
            rule = "must be finite (no NaN or infinity)"
            if name == "T" and np.isnan(values[bad]).all():  # `build_features` rows of no purchase day
                rule += "; an account with no purchase day before the cutoff has no T: drop those rows first"
            problems.append(_problem(name, rule, bad, values))
    if problems:
        raise SchemaError(problems)
    checks = (
        ("frequency", frequency < 0, frequency, "Negative values in data: must be >= 0"),
        ("frequency", frequency != np.floor(frequency), frequency, "must be a whole number of purchases"),
        ("recency", recency < 0, recency, "Negative values in data: must be >= 0"),
        ("T", T < 0, T, "Negative values in data: must be >= 0"),
        ("recency", recency > T, recency, "must be <= T (the last purchase cannot be after the cutoff)"),
        ("recency", (frequency == 0) & (recency != 0), recency, "must be 0 when frequency is 0"),
        # repeat purchases at the first purchase's instant make the likelihood unbounded (alpha -> 0)
        ("recency", (frequency > 0) & (recency == 0), recency, "must be > 0 when frequency is > 0"),
    )
    for name, bad, shown, rule in checks:
        if bad.any():
            problems.append(_problem(name, rule, bad, shown))
    if problems:
        raise SchemaError(problems)


def _broadcast_float(*arrays: ArrayLike) -> list[FloatArray]:
    """Broadcast array-likes (scalars, lists, Series) to float64 arrays of one common shape."""
    converted = [np.asarray(a, dtype=np.float64) for a in arrays]
    return [np.array(a, dtype=np.float64) for a in np.broadcast_arrays(*converted)]


def _compress(rows: FloatArray, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Unique rows of a 2-D array and the summed weights of their duplicates (hash based, O(n)).

    Columns are factorised one at a time and their codes combined pairwise, so the combined key never
    exceeds n * n and cannot overflow int64 for any realistic n.
    """
    n_rows, n_cols = rows.shape
    if n_rows == 0:
        return rows, weights
    codes, _ = pd.factorize(rows[:, 0])
    for j in range(1, n_cols):
        col_codes, uniques = pd.factorize(rows[:, j])
        codes, _ = pd.factorize(codes.astype(np.int64) * len(uniques) + col_codes)
    n_unique = int(codes.max()) + 1
    unique_rows = np.empty((n_unique, n_cols), dtype=np.float64)
    unique_rows[codes] = rows
    unique_weights = np.bincount(codes, weights=weights, minlength=n_unique).astype(np.float64)
    return unique_rows, unique_weights


def _dot(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Inner product of two vectors without BLAS.

    OpenBLAS threads its ddot, and on a busy machine waking those threads costs milliseconds per call
    (measured: 8 ms for 30,000 elements against 0.03 ms for einsum), which dominated the fit.
    """
    return float(np.einsum("i,i->", a, b))


def _minimize(
    objective: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    tol: float,
    max_iter: int,
    model: str,
    names: Sequence[str],
    ridges: Mapping[frozenset[str], str],
) -> Any:
    """Minimise a smooth objective with its gradient by L-BFGS-B; warn when it did not converge.

    A line search that finds no lower value (L-BFGS-B's "ABNORMAL") is convergence when the objective
    is at its rounding floor there: no bound active, the Hessian positive definite and the Newton step
    below `_PRECISION_STEP` in every log-parameter (`_at_precision`). Otherwise the warning says why:
    out of iterations, the parameters that ran to a bound, or the parameters along which the likelihood
    is flat where it stopped (the Hessian's direction of least curvature; `ridges` says what a known
    pair means), or a stall that is none of these.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(x0)
    result = minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, "gtol": tol, "ftol": tol * 1e-4},
    )
    searched_out = result.status == 2 and str(result.message).startswith("ABNORMAL")
    x, grad = result.x, result.jac
    usable = np.all(np.isfinite(x)) and np.all(np.isfinite(grad)) and not _at_bound(x).any()
    hessian = _hessian(objective, x) if searched_out and usable else None
    if hessian is not None and _at_precision(hessian, grad):
        logger.debug(
            "%s: the line search stopped at the objective's rounding floor after %d iterations (gradient "
            "%.2g, Newton step below %g): converged",
            model,
            result.nit,
            float(np.max(np.abs(grad))),
            _PRECISION_STEP,
        )
        result.success = True
    if not result.success:
        reason, advice = _why(result, names, ridges, hessian, searched_out)
        detail = _stopped(result, max_iter, searched_out)
        detail += f"; {reason}" if reason else ""
        noted = _NOTES.get()
        if noted is not None and noted[0] == threading.get_ident():
            noted[1].append(detail)
        else:
            warnings.warn(f"{model} {detail}; {advice}", ConvergenceWarning, stacklevel=3)
    logger.debug("%s: %d iterations, %s", model, result.nit, result.message)
    return result


def _stopped(result: Any, max_iter: int, searched_out: bool) -> str:
    """How a fit that did not converge stopped, in words (scipy's own message is logged at DEBUG only).

    L-BFGS-B's messages ("ABNORMAL: ", "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT") read as error
    codes in a job's log and report, whose reader cannot act on them.
    """
    said = f"stopped after {counted(int(result.nit), 'iteration')}"
    if result.status == 1 and result.nit >= max_iter:
        return f"{said}, its limit, without converging"
    if result.status == 1:
        return f"{said} without converging: it ran out of evaluations of its likelihood"
    if searched_out:
        return f"{said} without converging: it could not improve its fit any further"
    return f"{said} without converging"


def _why(
    result: Any,
    names: Sequence[str],
    ridges: Mapping[frozenset[str], str],
    hessian: FloatArray | None,
    searched_out: bool,
) -> tuple[str, str]:
    """The reason ('' when none is known) and the advice of a fit that did not converge (`_minimize`)."""
    penalizer = "a small penalizer (which biases the parameters)"
    at_bound = [name for name, bound in zip(names, _at_bound(result.x), strict=True) if bound]
    if at_bound:
        return (
            f"{' and '.join(at_bound)} ran to the bound exp(+-{_LOG_BOUND:g}): the data fit a limit of the "
            "model where a parameter has no finite best value",
            f"{penalizer} keeps it finite",
        )
    if not searched_out:
        return "", f"raise max_iter, loosen tol or add {penalizer}"
    flat = None if hessian is None else _flat_direction(hessian, names)
    if flat:
        meaning = ridges.get(frozenset(flat))
        return (
            f"the likelihood is flat where it stopped: {' and '.join(flat)} move together without changing "
            f"it{f' ({meaning})' if meaning else ''}",
            f"{penalizer} picks one point",
        )
    gradient = float(np.max(np.abs(result.jac)))
    return "", f"the largest gradient is still {gradient:.2g}: loosen tol or add {penalizer}"


def _at_bound(x: FloatArray) -> NDArray[np.bool_]:
    """Which log-parameters L-BFGS-B left at a bound of +-`_LOG_BOUND` (or within 1e-6 of it)."""
    return np.abs(x) >= _LOG_BOUND - 1e-6


def _hessian(objective: Callable[[FloatArray], tuple[float, FloatArray]], x: FloatArray) -> FloatArray | None:
    """The objective's Hessian at `x` by central differences of its gradient (None when not finite)."""
    n = x.size
    hessian = np.empty((n, n))
    for j in range(n):
        delta = 1e-4 * max(1.0, abs(float(x[j])))
        shift = np.zeros(n)
        shift[j] = delta
        hessian[:, j] = (objective(x + shift)[1] - objective(x - shift)[1]) / (2 * delta)
    hessian = (hessian + hessian.T) / 2
    return hessian if np.all(np.isfinite(hessian)) else None


def _at_precision(hessian: FloatArray, grad: FloatArray) -> bool:
    """Whether a point where the line search stalled is a minimum to within `_PRECISION_STEP`.

    It is when the Hessian there is positive definite and the Newton step moves no log-parameter by more
    than `_PRECISION_STEP`: the line search failed because the objective's decrease is below its
    rounding, not because the fit is unfinished.
    """
    try:
        np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return False
    step = np.linalg.solve(hessian, grad)
    return bool(np.max(np.abs(step)) <= _PRECISION_STEP)


def _flat_direction(hessian: FloatArray, names: Sequence[str]) -> list[str]:
    """The parameters that span the Hessian's least-curved direction, when that direction is flat.

    Flat: its curvature is below 1e-4 of the largest in size. The parameters named are those with a
    weight of 0.3 or more in it; empty when no direction is flat.
    """
    values, vectors = np.linalg.eigh(hessian)
    if abs(values[0]) > 1e-4 * np.max(np.abs(values)):
        return []
    return [name for name, weight in zip(names, vectors[:, 0], strict=True) if abs(weight) >= 0.3]


def _whole(value: Any) -> bool:
    """True for a whole number (3 or 3.0), not a bool."""
    try:
        return not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        return False


def _tags_for_rfm(tags: Any) -> Any:
    """Tags shared by the BTYD estimators: non-negative, dense, finite inputs and no target."""
    tags.input_tags.positive_only = True
    tags.input_tags.sparse = False
    tags.input_tags.allow_nan = False
    tags.target_tags.required = False
    return tags


# --------------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------------


def _bgnbd_nll(
    log_params: FloatArray,
    ux: FloatArray,
    x_index: NDArray[np.intp],
    recency: FloatArray,
    T: FloatArray,
    weights: FloatArray,
    penalizer: float,
) -> tuple[float, FloatArray]:
    """Mean negative BG/NBD log-likelihood and its gradient with respect to the log-parameters.

    Terms that depend on the frequency only (``gammaln``, ``betaln``, ``digamma``) are computed once
    per distinct frequency ``ux`` and gathered through ``x_index``; only logs and one ``logaddexp``
    run per row.
    """
    r, alpha, a, b = np.exp(log_params)
    total = weights.sum()
    w_x = np.bincount(x_index, weights=weights, minlength=len(ux))  # total weight per distinct x
    repeat = ux > 0
    ux_m1 = np.where(repeat, ux - 1.0, 0.0)

    # Per distinct x: log Gamma(r+x)/Gamma(r) + r log(alpha), log B(a, b+x)/B(a, b), log B(a+1, b+x-1)/B(a, b)
    log_beta_ab = betaln(a, b)
    c1 = gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
    c2 = betaln(a, b + ux) - log_beta_ab
    c3 = np.where(repeat, betaln(a + 1.0, b + ux_m1) - log_beta_ab, -np.inf)

    rx = r + ux[x_index]
    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + recency)
    term2 = c2[x_index] - rx * log_at
    term3 = c3[x_index] - rx * log_atx
    mix = np.logaddexp(term2, term3)
    share2 = np.exp(term2 - mix)  # posterior weight of "still alive at T"
    share3 = 1.0 - share2

    loglik = _dot(w_x, c1) + _dot(weights, mix)

    # Gradient with respect to (r, alpha, a, b).
    ws2 = np.bincount(x_index, weights=weights * share2, minlength=len(ux))
    ws3 = w_x - ws2
    psi_abx = digamma(a + b + ux)
    g_r = _dot(w_x, digamma(r + ux) - digamma(r) + np.log(alpha))
    g_r -= _dot(weights, share2 * log_at + share3 * log_atx)
    g_alpha = r / alpha * total - _dot(weights, rx * (share2 / (alpha + T) + share3 / (alpha + recency)))
    d_ab_a = digamma(a) - digamma(a + b)
    d_ab_b = digamma(b) - digamma(a + b)
    g_a = _dot(ws2, digamma(a) - psi_abx) + _dot(ws3, digamma(a + 1.0) - psi_abx) - total * d_ab_a
    psi_b3 = np.where(repeat, digamma(b + ux_m1), 0.0)
    g_b = _dot(ws2, digamma(b + ux) - psi_abx) + _dot(ws3, psi_b3 - psi_abx) - total * d_ab_b

    params = np.array([r, alpha, a, b])
    grad = np.array([g_r, g_alpha, g_a, g_b]) * params  # chain rule: d/d log(theta) = theta d/d theta
    value = -loglik / total + penalizer * _dot(params, params)
    grad = -grad / total + 2.0 * penalizer * params**2
    return value, grad


def _bgnbd_loglik_rows(
    params: Sequence[float], frequency: FloatArray, recency: FloatArray, T: FloatArray
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005) in log space."""
    r, alpha, a, b = params
    repeat = frequency > 0
    x_m1 = np.where(repeat, frequency - 1.0, 0.0)
    c1 = gammaln(r + frequency) - gammaln(r) + r * np.log(alpha)
    term2 = betaln(a, b + frequency) - betaln(a, b) - (r + frequency) * np.log(alpha + T)
    term3 = np.where(
        repeat,
        betaln(a + 1.0, b + x_m1) - betaln(a, b) - (r + frequency) * np.log(alpha + recency),
        -np.inf,
    )
    out: FloatArray = c1 + np.logaddexp(term2, term3)
    return out


def _log_odds_dead(
    params: Sequence[float], frequency: FloatArray, recency: FloatArray, T: FloatArray
) -> FloatArray:
    """Log of P(dead at T) / P(alive at T) given the history; -inf for customers without repeats."""
    r, alpha, a, b = params
    repeat = frequency > 0
    x_m1 = np.where(repeat, frequency - 1.0, 1.0)
    with np.errstate(divide="ignore"):
        log_odds = (
            np.log(a) - np.log(b + x_m1) + (r + frequency) * (np.log(alpha + T) - np.log(alpha + recency))
        )
    out: FloatArray = np.where(repeat, log_odds, -np.inf)
    return out


def _alive_purchases_series(
    n: FloatArray, a: float, c: FloatArray, s: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """The alive-customer expectation by its power series in -s; also says where the sum is trustworthy.

    With 2F1 in Pfaff's form the bracket of `_expected_alive_purchases` is
    sum_{k>=1} (n)_k (a)_{k-1} s^k (-1)^(k+1) / ((c)_k k!) times c, whose first term is n s (the
    purchases of an immortal customer); no division by a - 1 is needed. A row is trusted when the sum
    converged and did not cancel badly (sum of |terms| <= 1e5 |sum|); the others go to quadrature.
    """
    by_row = _series_by_row(n, a, c, s)
    if by_row is not None:
        return by_row
    u = n * s
    total = u.copy()
    abs_total = np.abs(u)
    done = np.zeros(u.shape, dtype=bool)
    with np.errstate(all="ignore"):
        for k in range(1, _SERIES_MAX_TERMS):
            ratio = -(n + k) * (a + k - 1.0) / ((c + k) * (k + 1.0)) * s
            u = np.where(done, 0.0, u * ratio)
            total += u
            abs_total += np.abs(u)
            done |= (np.abs(u) <= 1e-17 * np.abs(total)) & (np.abs(ratio) < 0.8)
            done |= ~np.isfinite(total) | (abs_total > 1e5 * np.abs(total))  # hopeless: leave to quadrature
            if done.all():
                break
        ok = done & np.isfinite(total) & (total > 0) & (abs_total <= 1e5 * total)
    return total, ok


_SERIES_ROW_LIMIT = 8
"""Up to this many rows the series is summed per row in Python floats: numpy's per-call overhead on
one-element arrays made a one-row REST request spend a millisecond here."""


def _series_by_row(
    n: FloatArray, a: float, c: FloatArray, s: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]] | None:
    """`_alive_purchases_series` for a few rows, term by term in floats (same terms, same stopping rules)."""
    if n.size > _SERIES_ROW_LIMIT:
        return None
    totals = np.empty(n.size)
    trusted = np.zeros(n.size, dtype=bool)
    for i, (n_i, c_i, s_i) in enumerate(zip(n.tolist(), c.tolist(), s.tolist(), strict=True)):
        u = n_i * s_i
        total, abs_total, done = u, abs(u), False
        for k in range(1, _SERIES_MAX_TERMS):
            ratio = -(n_i + k) * (a + k - 1.0) / ((c_i + k) * (k + 1.0)) * s_i
            u *= ratio
            total += u
            abs_total += abs(u)
            if (abs(u) <= 1e-17 * abs(total) and abs(ratio) < 0.8) or not math.isfinite(total):
                done = True
                break
            if abs_total > 1e5 * abs(total):
                done = True
                break
        totals[i] = total
        trusted[i] = done and math.isfinite(total) and total > 0 and abs_total <= 1e5 * total
    return totals, trusted


def _alive_purchases_quadrature(n: float, a: float, bx: float, s: FloatArray) -> FloatArray:
    """The alive-customer expectation for rows sharing n = r + x and bx = b + x, by quadrature over p.

    E = E_p[(1 - (1 + p s)^-n) / p] with p ~ Beta(a, bx): the Euler integral of the 2F1 term. In
    y = logit(p) the integrand is analytic in a strip and decays exponentially, so the trapezoid rule
    converges geometrically. Subtracting ns (1 - p) + g(1) p, whose expectation is exact, makes the
    integrand vanish at both ends, so a short window around the density and the rate's transition
    suffices even when the Beta density has a heavy tail (small a or small bx).
    """
    y_mode = float(np.log(a) - np.log(bx))
    sd = float(np.sqrt(polygamma(1, a) + polygamma(1, bx)))  # sd of logit(p) under Beta(a, bx)
    h = min(_QUAD_STEP, sd / 2.0)
    # The log-density a*y - (a+bx)*log(1+e^y) is concave: tangents 2 sd from the mode bound its tails.
    y1, y2 = y_mode - 2.0 * sd, y_mode + 2.0 * sd
    lo_dens = y1 - _QUAD_TAIL / (a - (a + bx) * float(expit(y1)))
    hi_dens = y2 + _QUAD_TAIL / ((a + bx) * float(expit(y2)) - a)
    ns = n * s
    y_rate = -np.log(ns)  # where p * n * s = 1: the rate's transition
    lo = max(lo_dens, min(y_mode, float(y_rate.min())) - _QUAD_TAIL)
    hi = min(hi_dens, max(y_mode, float(y_rate.max()), 0.0) + _QUAD_TAIL)

    if (hi_dens - lo_dens) / h <= _QUAD_MAX_GRID:
        # Normalise on the grid over the whole density: no betaln round-off, which ns would amplify.
        grid = lo_dens + h * np.arange(int(np.ceil((hi_dens - lo_dens) / h)) + 1)
        log_p = -np.logaddexp(0.0, -grid)
        log_w = a * log_p - bx * np.logaddexp(0.0, grid)
        log_w -= log_w.max()
        w = np.exp(log_w)
        w[[0, -1]] *= 0.5
        log_w -= np.log(w.sum())
        keep = (grid >= lo - h) & (grid <= hi + h)
        log_w, log_p = log_w[keep], log_p[keep]
    else:  # a density too spread out to grid (a or bx near 0): normalise with betaln
        grid = lo + h * np.arange(int(np.ceil((hi - lo) / h)) + 1)
        log_p = -np.logaddexp(0.0, -grid)
        log_w = a * log_p - bx * np.logaddexp(0.0, grid) - betaln(a, bx) + np.log(h)
    w, p = np.exp(log_w), np.exp(log_p)
    w_over_p = np.exp(log_w - log_p)

    g1 = -np.expm1(-n * np.log1p(s))  # g(1)
    out: FloatArray = ns * (bx / (a + bx) - _dot(w, 1.0 - p)) + g1 * (a / (a + bx) - _dot(w, p))
    rows = max(1, _QUAD_CHUNK // p.size)
    for start in range(0, s.size, rows):
        buf = np.multiply.outer(s[start : start + rows], p)
        np.log1p(buf, out=buf)
        buf *= -n
        np.expm1(buf, out=buf)
        out[start : start + rows] -= buf @ w_over_p
    return out


def _alive_purchases_direct(n: float, a: float, bx: float, s: FloatArray) -> FloatArray | None:
    """The alive-customer expectation for rows with a large n s, by the trapezoid rule on the integrand.

    E = E_p[h(p)], h(p) = (1 - (1 + p s)^-n) / p <= n s, summed as it is over a grid in y = logit(p)
    that runs from the Beta density's lower tail or, below the rate's transition (p n s = 1, where h
    levels off at n s and the integrand decays as the density does), `_QUAD_TAIL` e-folds further, up
    to the density's upper tail. Nothing of size n s is added and taken away, so the sum keeps its
    relative precision however large n s is. None when that grid would exceed `_QUAD_MAX_GRID` points
    (a density too spread out, a near 0): `_alive_purchases_quadrature` then takes the rows.
    """
    y_mode = float(np.log(a) - np.log(bx))
    sd = float(np.sqrt(polygamma(1, a) + polygamma(1, bx)))
    h = min(_QUAD_STEP, sd / 2.0)
    y1, y2 = y_mode - 2.0 * sd, y_mode + 2.0 * sd
    lo_slope, hi_slope = a - (a + bx) * float(expit(y1)), (a + bx) * float(expit(y2)) - a
    if not (lo_slope > 0 and hi_slope > 0):  # a and bx too far apart to bound the tails in floats
        return None
    lo, hi = y1 - _QUAD_TAIL / lo_slope, y2 + _QUAD_TAIL / hi_slope
    y_rate = float(-np.log(n * s.max()))  # the lowest transition
    if y_rate < y_mode:
        # below it the integrand is n s times the density, whose log falls at least at this slope
        rate_slope = a - (a + bx) * float(expit(y_rate))
        lo = min(lo, y_rate - _QUAD_TAIL / rate_slope)
    if not (np.isfinite(lo) and np.isfinite(hi)) or (hi - lo) / h > _QUAD_MAX_GRID:
        return None
    grid = lo + h * np.arange(int(np.ceil((hi - lo) / h)) + 1)
    log_p = -np.logaddexp(0.0, -grid)
    log_w = a * log_p - bx * np.logaddexp(0.0, grid)
    w = np.exp(log_w - log_w.max())
    w[[0, -1]] *= 0.5
    w /= w.sum()
    out = np.empty(s.size)
    rows = max(1, _QUAD_CHUNK // grid.size)
    for start in range(0, s.size, rows):
        s_rows = s[start : start + rows]
        u = np.exp(np.add.outer(np.log(s_rows), log_p))  # p s
        with np.errstate(invalid="ignore"):
            f = np.where(u > 0, -np.expm1(-n * np.log1p(u)) / u, n)  # h(p) / s, n at p s = 0
        out[start : start + rows] = s_rows * (f @ w)
    return out


def _expected_alive_purchases(
    params: Sequence[float], t: FloatArray, frequency: FloatArray, T: FloatArray
) -> FloatArray:
    """E[purchases in (T, T+t]] for a customer known to be alive at T (the BG/NBD bracket term).

    In closed form (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
    z = t/(alpha+T+t). `scipy.special.hyp2f1` returns NaN, and in places silently wrong finite values
    (relative errors up to 1e12 were measured against mpmath, e.g. r=1.5, alpha=0.1, a=0.2, b=40,
    x=50, T=200, t=500), once -t/(alpha+T) < -1 or the parameters are large. So the same 2F1 is
    evaluated here by its own power series when s = t/(alpha+T) <= 0.6 and by quadrature of its Euler
    integral otherwise (or where the series cancels); both agree with mpmath to about 1e-9 relative or
    better over wide parameter ranges, have no 0/0 at a = 1, and stay finite for large x and T.
    """
    r, alpha, a, b = params
    shape = np.broadcast_shapes(t.shape, frequency.shape, T.shape)
    t_, x, T_ = (np.broadcast_to(v, shape).ravel() for v in (t, frequency, T))
    out = np.zeros(t_.shape, dtype=np.float64)
    s = t_ / (alpha + T_)
    todo = np.flatnonzero(s > 0)
    small = todo[s[todo] <= _SERIES_MAX_S]
    if small.size:
        values, ok = _alive_purchases_series(r + x[small], a, a + b + x[small] - 1.0, s[small])
        out[small[ok]] = values[ok]
        todo = np.concatenate([small[~ok], todo[s[todo] > _SERIES_MAX_S]])
    if todo.size:
        order = todo[np.argsort(x[todo], kind="stable")]
        for group in np.split(order, np.flatnonzero(np.diff(x[order])) + 1):
            x0 = float(x[group[0]])
            large = ((r + x0) * s[group] >= _DIRECT_MIN_NS) & (a >= _DIRECT_MIN_A)
            direct = _alive_purchases_direct(r + x0, a, b + x0, s[group[large]]) if large.any() else None
            if direct is not None:
                out[group[large]] = direct
                group = group[~large]
            if group.size:
                out[group] = _alive_purchases_quadrature(r + x0, a, b + x0, s[group])
    return out.reshape(shape)


class BetaGeo(KammlEstimator):
    """BG/NBD model of repeat purchasing, fitted by maximum likelihood; predicts future purchases.

    Each customer buys at a Poisson rate lambda while alive and becomes inactive after any purchase with
    probability p; lambda ~ Gamma(r, alpha) and p ~ Beta(a, b) across customers. Fitting maximises the
    likelihood of each customer's (frequency, recency, T) over (r, alpha, a, b), in log space with the
    analytic gradient. Identical rows are evaluated once, so weights and duplicated rows give one fit.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * (r**2 + alpha**2 + a**2 + b**2)`` added to the mean negative
        log-likelihood (as in lifetimes); a small value stabilises fits on small or degenerate data. It
        is not scale-free: alpha is in the time unit of recency and T, so the same value pulls a fit in
        days (alpha ~ 30) far harder than one in weeks (alpha ~ 4): on the CDNOW sample 0.001 moves
        (r, alpha, a, b) from (0.243, 4.41, 0.79, 2.43) to (0.207, 3.08, 0.53, 1.33) in weeks. Compare
        the fit with and without it before relying on it.
    horizon : float, default 1.0
        Length of the prediction window of `predict`, in the time unit of recency and T.
    tol : float, default 1e-7
        Projected-gradient tolerance of L-BFGS-B on the mean negative log-likelihood in log-parameter
        space (the relative function tolerance is ``tol * 1e-4``).
    max_iter : int, default 500
        Maximum number of L-BFGS-B iterations.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
        Weighted log-likelihood at the fitted parameters, in the convention of Fader, Hardie & Lee
        (2005) (-9582.4 on the CDNOW sample), without the penalty.
    n_iter_ : int
        Number of optimiser iterations.
    n_features_in_ : int
        Always 3 (frequency, recency, T).
    feature_names_in_ : ndarray of str
        ``["frequency", "recency", "T"]`` when fitted on a DataFrame.

    See Also
    --------
    GammaGamma : mean value of repeat purchases, combined with BetaGeo for customer value.

    Notes
    -----
    `fit` and `predict` take X as an (n, 3) array in the order frequency, recency, T, or a DataFrame with
    those columns (any order, other columns ignored). Frequency must be a whole number >= 0, recency and
    T >= 0, recency <= T, and recency 0 when frequency is 0; a break raises `kamml.errors.SchemaError`
    (a ValueError) naming the column, the rule, how many rows break it and a few values. The other
    methods take the columns as separate arrays (or scalars) that broadcast, checked the same way.

    P(alive) is 1 for a customer without repeat purchases (in BG/NBD dropout can only follow a purchase),
    so ``1 - p_alive`` is a poor churn score; `p_zero_purchases` is the fair BG/NBD churn baseline.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting your customers" the easy way: an
    alternative to the Pareto/NBD model. Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> import numpy as np
    >>> from kamml.models.btyd import BetaGeo
    >>> X = np.array([[0, 0, 30], [2, 20, 30], [5, 28, 30], [1, 3, 30], [0, 0, 10], [3, 9, 12]])
    >>> model = BetaGeo(horizon=10.0).fit(X)
    >>> sorted(model.params_)
    ['a', 'alpha', 'b', 'r']
    >>> model.predict(X).shape
    (6,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "penalizer": [Interval(Real, 0, None, closed="left")],
        "horizon": [Interval(Real, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")

    def __init__(
        self, *, penalizer: float = 0.0, horizon: float = 1.0, tol: float = 1e-7, max_iter: int = 500
    ) -> None:
        self.penalizer = penalizer
        self.horizon = horizon
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Any:
        """Declare non-negative, dense, finite inputs and no target."""
        return _tags_for_rfm(super().__sklearn_tags__())

    def _columns_of(self, arr: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Frequency, recency and T of a validated array, checked against the BTYD rules."""
        _check_n_columns(self, arr)
        frequency, recency, T = arr[:, 0], arr[:, 1], arr[:, 2]
        _check_rfm(frequency, recency, T)
        return frequency, recency, T

    def fit(self, X: Any, y: Any = None, sample_weight: ArrayLike | None = None) -> BetaGeo:
        """Estimate r, alpha, a, b by maximum likelihood from each customer's frequency, recency and T.

        Parameters
        ----------
        X : array-like of shape (n_customers, 3) or DataFrame
            Frequency, recency and T per customer (see the class Notes for the rules).
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_customers,), optional
            Non-negative weight of each row (for example, how many customers share that row). A weight
            of k gives exactly the fit of k copies of the row.

        Returns
        -------
        BetaGeo
            The fitted estimator.
        """
        self._validate_params()
        arr = _validate_array(self, X, reset=True, nonnegative=True)
        weights = _weights_or_ones(sample_weight, arr.shape[0])
        frequency, recency, T = self._columns_of(arr)
        keep = weights > 0
        if not (T[keep] > 0).any():  # a flat likelihood: any parameters "fit", the start came back
            raise SchemaError(
                [
                    Problem(
                        "X",
                        "T",
                        "no customer has been observed for any time (every T is 0): "
                        "BG/NBD has nothing to fit",
                        int(keep.sum()),
                    )
                ]
            )
        rows, counts = _compress(np.column_stack([frequency, recency, T])[keep], weights[keep])
        ux, x_index = np.unique(rows[:, 0], return_inverse=True)
        logger.debug("BetaGeo: %d rows compressed to %d unique rows", len(frequency), len(rows))

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            return _bgnbd_nll(theta, ux, x_index, rows[:, 1], rows[:, 2], counts, float(self.penalizer))

        result = _minimize(
            objective,
            np.zeros(4),
            float(self.tol),
            int(self.max_iter),
            "BetaGeo",
            ("r", "alpha", "a", "b"),
            {
                frozenset({"r", "alpha"}): "every customer buys at about one rate",
                frozenset({"a", "b"}): "every customer drops out with about one probability",
            },
        )
        r, alpha, a, b = (float(v) for v in np.exp(result.x))
        if not (rows[:, 0] > 0).any():
            warnings.warn(
                "BetaGeo: no customer has a repeat purchase (every frequency is 0), so the fit predicts "
                f"almost no purchases (r = {r:.3g}) and a and b, which only repeat purchases inform, are "
                "left at their start value 1",
                UserWarning,
                stacklevel=2,
            )
        self.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
        self.log_likelihood_ = float(
            _dot(counts, _bgnbd_loglik_rows((r, alpha, a, b), rows[:, 0], rows[:, 1], rows[:, 2]))
        )
        self.n_iter_ = int(result.nit)
        return self

    def _params(self) -> tuple[float, float, float, float]:
        """Fitted (r, alpha, a, b); raises `NotFittedModelError` before `fit`."""
        check_fitted(self, "params_")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def predict(self, X: Any) -> FloatArray:
        """Expected number of purchases of each customer in the next `horizon` time units.

        Parameters
        ----------
        X : array-like of shape (n_customers, 3) or DataFrame
            Frequency, recency and T per customer.

        Returns
        -------
        ndarray of shape (n_customers,)
            Conditional expected purchases in (T, T + horizon].
        """
        check_fitted(self, "params_")
        frequency, recency, T = self._columns_of(_validate_array(self, X, reset=False, nonnegative=True))
        return self.conditional_expected_purchases(float(self.horizon), frequency, recency, T)

    def score(self, X: Any, y: Any = None, sample_weight: ArrayLike | None = None) -> float:
        """Mean BG/NBD log-likelihood per customer of X under the fitted parameters (higher is better).

        The per-customer likelihood of the fit (`_bgnbd_loglik_rows`, what `fit` maximises), averaged
        with `sample_weight` when given; so ``cross_val_score(BetaGeo(), X)`` compares held-out
        customers' likelihoods. Comparable between fits on the same rows, not between datasets.

        Parameters
        ----------
        X : array-like of shape (n_customers, 3) or DataFrame
            Frequency, recency and T per customer.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_customers,), optional
            Non-negative weight of each row, as in `fit`.

        Returns
        -------
        float
            The (weighted) mean log-likelihood, without the fit's penalty.
        """
        params = self._params()
        frequency, recency, T = self._columns_of(_validate_array(self, X, reset=False, nonnegative=True))
        weights = _weights_or_ones(sample_weight, frequency.shape[0])
        keep = weights > 0
        rows = _bgnbd_loglik_rows(params, frequency[keep], recency[keep], T[keep])
        return float(_dot(weights[keep], rows) / weights[keep].sum())

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected number of purchases in (T, T + t] given a customer's history (Fader, Hardie & Lee 2005).

        Parameters
        ----------
        t : float or array-like
            Length of the future window, in the time unit of recency and T; >= 0.
        frequency, recency, T : float or array-like
            The customer's history; arrays broadcast against each other and `t`.

        Returns
        -------
        ndarray
            E[X(T, T+t) | frequency, recency, T], of the broadcast shape.
        """
        params = self._params()
        t_arr, frequency_arr, recency_arr, T_arr = _broadcast_float(t, frequency, recency, T)
        _check_rfm(frequency_arr, recency_arr, T_arr)
        _check_window(t_arr)
        log_odds = _log_odds_dead(params, frequency_arr, recency_arr, T_arr)
        return _conditional_expected(params, log_odds, t_arr, frequency_arr, T_arr)

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """Probability that each customer is still active at T given the history (Fader, Hardie & Lee 2008).

        Parameters
        ----------
        frequency, recency, T : float or array-like
            The customer's history; arrays broadcast against each other.

        Returns
        -------
        ndarray
            P(alive at T | frequency, recency, T); exactly 1 where frequency is 0.
        """
        params = self._params()
        frequency_arr, recency_arr, T_arr = _broadcast_float(frequency, recency, T)
        _check_rfm(frequency_arr, recency_arr, T_arr)
        out: FloatArray = expit(-_log_odds_dead(params, frequency_arr, recency_arr, T_arr))
        return out

    def p_zero_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Probability of no purchase at all in (T, T + t]: the BG/NBD churn score for a horizon t.

        P(X(T, T+t) = 0 | x, t_x, T) = (1 - P(alive)) + P(alive) * ((alpha+T)/(alpha+T+t))^(r+x): a dead
        customer never buys again, and an alive one with rate lambda ~ Gamma(r+x, alpha+T) buys nothing
        in t with probability exp(-lambda t).

        Parameters
        ----------
        t : float or array-like
            Length of the future window, >= 0.
        frequency, recency, T : float or array-like
            The customer's history; arrays broadcast against each other and `t`.

        Returns
        -------
        ndarray
            The probability, of the broadcast shape.
        """
        params = self._params()
        t_arr, frequency_arr, recency_arr, T_arr = _broadcast_float(t, frequency, recency, T)
        _check_rfm(frequency_arr, recency_arr, T_arr)
        _check_window(t_arr)
        log_odds = _log_odds_dead(params, frequency_arr, recency_arr, T_arr)
        return _p_zero(params, log_odds, t_arr, frequency_arr, T_arr)

    def history_scores(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """`conditional_expected_purchases`, `p_alive` and `p_zero_purchases` at once, the same numbers.

        One validation and one log-odds of death for the three (the BTYD feature columns), as each
        alone checked and computed them again: a third of the time of a one-row request's BTYD columns.
        """
        params = self._params()
        t_arr, frequency_arr, recency_arr, T_arr = _broadcast_float(t, frequency, recency, T)
        _check_rfm(frequency_arr, recency_arr, T_arr)
        _check_window(t_arr)
        log_odds = _log_odds_dead(params, frequency_arr, recency_arr, T_arr)
        expected = _conditional_expected(params, log_odds, t_arr, frequency_arr, T_arr)
        alive: FloatArray = expit(-log_odds)
        return expected, alive, _p_zero(params, log_odds, t_arr, frequency_arr, T_arr)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Expected purchases of a new customer in their first t time units (Fader, Hardie & Lee 2005).

        Parameters
        ----------
        t : float or array-like
            Time since the first purchase, >= 0 (the first purchase itself is not counted).

        Returns
        -------
        ndarray
            E[X(t)] for each t.
        """
        params = self._params()
        (t_arr,) = _broadcast_float(t)
        _check_window(t_arr)
        zeros = np.zeros_like(t_arr)
        out: FloatArray = _expected_alive_purchases(params, t_arr, zeros, zeros)
        return np.where(t_arr == 0, 0.0, out)


def _conditional_expected(
    params: Sequence[float], log_odds: FloatArray, t: FloatArray, frequency: FloatArray, T: FloatArray
) -> FloatArray:
    """E[X(T, T+t)] from the log-odds of death (`BetaGeo.conditional_expected_purchases`); 0 at t = 0."""
    alive = expit(-log_odds)
    out: FloatArray = alive * _expected_alive_purchases(params, t, frequency, T)
    return np.where(t == 0, 0.0, out)


def _p_zero(
    params: Sequence[float], log_odds: FloatArray, t: FloatArray, frequency: FloatArray, T: FloatArray
) -> FloatArray:
    """P(no purchase in (T, T+t]) from the log-odds of death (`BetaGeo.p_zero_purchases`); 1 at t = 0."""
    r, alpha, _, _ = params
    log_silent = (r + frequency) * (np.log(alpha + T) - np.log(alpha + T + t))
    # the sum of two probabilities keeps a small P0's precision; at t = 0 it is P(dead) + P(alive), which
    # came out 1 ulp above 1 or 2 ulp below it
    out: FloatArray = np.minimum(expit(log_odds) + expit(-log_odds) * np.exp(log_silent), 1.0)
    return np.where(t == 0, 1.0, out)


def _check_window(t: FloatArray) -> None:
    """A future window length must be finite and >= 0 (named `t`: the argument, not a column of X)."""
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        rule = "window length must be finite and >= 0"
        raise SchemaError(
            [Problem(table="t", column=None, rule=rule, n_rows=int(bad.sum()), examples=tuple(t[bad][:5]))]
        )


# --------------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------------


def _weighted_median(values: FloatArray, weights: FloatArray) -> float:
    """The weighted median of positive `values` (the lower one where the weights split evenly)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _gamma_gamma_nll(
    log_params: FloatArray,
    ux: FloatArray,
    x_index: NDArray[np.intp],
    monetary: FloatArray,
    weights: FloatArray,
    penalizer: float,
) -> tuple[float, FloatArray]:
    """Mean negative Gamma-Gamma log-likelihood of mean repeat values and its log-parameter gradient.

    For x repeat purchases of mean value m: log f = log Gamma(px+q) - log Gamma(px) - log Gamma(q)
    + q log(gamma) + (px-1) log m + px log x - (px+q) log(gamma + m x). The special functions depend on
    x only, so they are computed once per distinct frequency ``ux`` (gathered through ``x_index``).
    """
    p, q, gamma = np.exp(log_params)
    total = weights.sum()
    w_x = np.bincount(x_index, weights=weights, minlength=len(ux))
    x = ux[x_index]
    px_u = p * ux
    log_m = np.log(monetary)
    log_gmx = np.log(gamma + monetary * x)
    per_x = gammaln(px_u + q) - gammaln(px_u) + px_u * np.log(ux)
    loglik = _dot(w_x, per_x) + _dot(weights, (p * x - 1.0) * log_m - (p * x + q) * log_gmx)
    loglik += total * (q * np.log(gamma) - gammaln(q))
    psi_pxq = digamma(px_u + q)
    g_p = _dot(w_x, ux * (psi_pxq - digamma(px_u) + np.log(ux))) + _dot(weights * x, log_m - log_gmx)
    g_q = _dot(w_x, psi_pxq) + total * (np.log(gamma) - digamma(q)) - _dot(weights, log_gmx)
    g_gamma = total * q / gamma - _dot(weights, (p * x + q) / (gamma + monetary * x))
    params = np.array([p, q, gamma])
    grad = np.array([g_p, g_q, g_gamma]) * params
    value = -loglik / total + penalizer * _dot(params, params)
    return value, -grad / total + 2.0 * penalizer * params**2


class GammaGamma(KammlEstimator):
    """Gamma-Gamma model of spend per purchase; predicts each customer's expected mean order value.

    A customer's purchase values are Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers, so the
    mean of x repeat purchases carries information about that customer's mean spend. The model assumes
    spend is independent of purchase frequency. Fitting uses only customers with frequency > 0 and
    monetary > 0 (the others have no repeat purchase value to learn from, or a refund-dominated one).

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * (p**2 + q**2 + gamma**2)`` added to the mean negative log-likelihood,
        with gamma in units of the (weighted) median order value, so that the fit does not depend on
        the currency the values are in.
    tol : float, default 1e-7
        Projected-gradient tolerance of L-BFGS-B in log-parameter space.
    max_iter : int, default 500
        Maximum number of L-BFGS-B iterations.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``p``, ``q``, ``gamma``.
    log_likelihood_ : float
        Weighted log-likelihood of the rows used, without the penalty.
    n_iter_ : int
        Number of optimiser iterations.
    n_features_in_ : int
        Always 2 (frequency, monetary).
    feature_names_in_ : ndarray of str
        ``["frequency", "monetary"]`` when fitted on a DataFrame.

    See Also
    --------
    BetaGeo : expected purchases, combined with this model by `customer_lifetime_value`.

    Notes
    -----
    X is an (n, 2) array in the order frequency, monetary, or a DataFrame with those columns. Frequency
    must be a whole number >= 0; monetary must be finite. Rows with frequency 0 or monetary <= 0 are
    ignored by `fit`; `predict` gives them the population mean ``p * gamma / (q - 1)`` when frequency is
    0 (infinite when q <= 1).

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: using iso-value curves for customer
    base analysis. Journal of Marketing Research 42(4), 415-430.
    Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma model of monetary value.

    Examples
    --------
    >>> import numpy as np
    >>> from kamml.models.btyd import GammaGamma
    >>> X = np.array([[1, 20.0], [3, 35.0], [2, 18.5], [6, 60.0], [1, 12.0], [4, 41.0], [0, 0.0]])
    >>> model = GammaGamma().fit(X)
    >>> model.predict(X).shape
    (7,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "penalizer": [Interval(Real, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    columns: ClassVar[tuple[str, ...]] = ("frequency", "monetary")

    def __init__(self, *, penalizer: float = 0.0, tol: float = 1e-7, max_iter: int = 500) -> None:
        self.penalizer = penalizer
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Any:
        """Declare dense, finite inputs and no target."""
        tags = _tags_for_rfm(super().__sklearn_tags__())
        tags.input_tags.positive_only = False  # monetary may be negative (refunds); such rows are skipped
        return tags

    def _columns_of(self, arr: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Frequency and monetary of a validated array, checked."""
        _check_n_columns(self, arr)
        frequency, monetary = arr[:, 0], arr[:, 1]
        _check_value_inputs(frequency, monetary)
        return frequency, monetary

    def fit(self, X: Any, y: Any = None, sample_weight: ArrayLike | None = None) -> GammaGamma:
        """Estimate p, q, gamma by maximum likelihood from the mean repeat-purchase values.

        Parameters
        ----------
        X : array-like of shape (n_customers, 2) or DataFrame
            Frequency (repeat purchases) and monetary (their mean value) per customer.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_customers,), optional
            Non-negative weight of each row; a weight of k gives the fit of k copies of the row.

        Returns
        -------
        GammaGamma
            The fitted estimator.
        """
        self._validate_params()
        arr = _validate_array(self, X, reset=True, nonnegative=False)
        weights = _weights_or_ones(sample_weight, arr.shape[0])
        frequency, monetary = self._columns_of(arr)
        used = (frequency > 0) & (monetary > 0) & (weights > 0)
        if not used.any():
            raise SchemaError(
                [
                    Problem(
                        table="X",
                        column="frequency",
                        rule="GammaGamma needs at least one row with frequency > 0 and monetary > 0 "
                        "(and a positive weight)",
                    )
                ]
            )
        if not used.all():
            logger.info(
                "GammaGamma: fitting on %s of %s rows (frequency > 0, monetary > 0)",
                f"{int(used.sum()):,}",
                f"{used.size:,}",
            )
        rows, counts = _compress(np.column_stack([frequency, monetary])[used], weights[used])
        ux, x_index = np.unique(rows[:, 0], return_inverse=True)
        m_u = rows[:, 1]
        # fitted in units of the median order value, so the fit does not depend on the currency: from
        # gamma = 1, order values of 1e7 and more (yen, cents) ran into the flat ridge of large p
        # and stopped there, reporting success
        unit = _weighted_median(m_u, counts)
        scaled = m_u / unit

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            return _gamma_gamma_nll(theta, ux, x_index, scaled, counts, float(self.penalizer))

        result = _minimize(
            objective,
            np.zeros(3),
            float(self.tol),
            int(self.max_iter),
            "GammaGamma",
            ("p", "q", "gamma"),
            {
                frozenset({"q", "gamma"}): "every customer spends at about one mean",
                frozenset({"p", "gamma"}): "each customer's orders are of about one value",
            },
        )
        p, q, gamma_in_units = (float(v) for v in np.exp(result.x))
        gamma = gamma_in_units * unit
        self.params_ = {"p": p, "q": q, "gamma": gamma}
        unpenalized, _ = _gamma_gamma_nll(np.log([p, q, gamma]), ux, x_index, m_u, counts, 0.0)
        self.log_likelihood_ = -unpenalized * float(counts.sum())
        self.n_iter_ = int(result.nit)
        return self

    def predict(self, X: Any) -> FloatArray:
        """Expected mean order value of each customer given their repeat purchases.

        Parameters
        ----------
        X : array-like of shape (n_customers, 2) or DataFrame
            Frequency and monetary per customer.

        Returns
        -------
        ndarray of shape (n_customers,)
            E[M | frequency, monetary].
        """
        check_fitted(self, "params_")
        frequency, monetary = self._columns_of(_validate_array(self, X, reset=False, nonnegative=False))
        return self.conditional_expected_value(frequency, monetary)

    def score(self, X: Any, y: Any = None, sample_weight: ArrayLike | None = None) -> float:
        """Mean Gamma-Gamma log-likelihood per customer of X's mean repeat values (higher is better).

        Over the rows `fit` learns from (frequency > 0, monetary > 0; the others carry no repeat value),
        averaged with `sample_weight` when given: the likelihood `fit` maximises (`_gamma_gamma_nll`),
        without its penalty. It is a density of the values, so it depends on their currency; compare
        fits on the same rows, as ``cross_val_score(GammaGamma(), X)`` does.

        Parameters
        ----------
        X : array-like of shape (n_customers, 2) or DataFrame
            Frequency and monetary per customer.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_customers,), optional
            Non-negative weight of each row, as in `fit`.

        Returns
        -------
        float
            The (weighted) mean log-likelihood of the rows with a repeat value.

        Raises
        ------
        SchemaError
            When no row has frequency > 0 and monetary > 0 (with a positive weight).
        """
        check_fitted(self, "params_")
        frequency, monetary = self._columns_of(_validate_array(self, X, reset=False, nonnegative=False))
        weights = _weights_or_ones(sample_weight, frequency.shape[0])
        used = (frequency > 0) & (monetary > 0) & (weights > 0)
        if not used.any():
            raise SchemaError(
                [
                    Problem(
                        table="X",
                        column="frequency",
                        rule="GammaGamma.score needs at least one row with frequency > 0 and monetary > 0 "
                        "(and a positive weight)",
                    )
                ]
            )
        ux, x_index = np.unique(frequency[used], return_inverse=True)
        p = self.params_
        log_params = np.log([p["p"], p["q"], p["gamma"]])
        nll, _ = _gamma_gamma_nll(log_params, ux, x_index, monetary[used], weights[used], 0.0)
        return -float(nll)

    def conditional_expected_value(self, frequency: ArrayLike, monetary: ArrayLike) -> FloatArray:
        """Expected mean order value given x repeat purchases of mean value m (Fader & Hardie 2013).

        E[M | p, q, gamma, x, m] = (p * gamma + p * x * m) / (p * x + q - 1): a weighted average of the
        population mean p * gamma / (q - 1) and the customer's observed mean m, weighted by x.

        Parameters
        ----------
        frequency, monetary : float or array-like
            Repeat purchases and their mean value; arrays broadcast against each other. Where
            frequency is 0 the population mean applies. A mean that is not positive (repeat orders
            netted to nothing by refunds, which `fit` skips: the model is one of positive order values)
            counts as 0, the formula's limit as m falls to 0: x such orders pull the expectation toward
            0 as x orders of mean m pull it toward m, so it never rises as m falls.

        Returns
        -------
        ndarray
            The expected mean order value, of the broadcast shape.
        """
        check_fitted(self, "params_")
        p, q, gamma = self.params_["p"], self.params_["q"], self.params_["gamma"]
        frequency_arr, monetary_arr = _broadcast_float(frequency, monetary)
        _check_value_inputs(frequency_arr, monetary_arr)
        monetary_arr = np.where(frequency_arr > 0, np.maximum(monetary_arr, 0.0), 0.0)
        denominator = p * frequency_arr + q - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = (p * gamma + p * frequency_arr * monetary_arr) / denominator
        return np.where(denominator > 0, out, np.inf)

    def customer_lifetime_value(
        self,
        beta_geo: BetaGeo,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        monetary: ArrayLike,
        *,
        t: float,
        n_periods: int = 1,
        discount_rate: float = 0.0,
    ) -> FloatArray:
        """Expected value of each customer's purchases in (T, T + t]: BG/NBD purchases x expected value.

        The window is cut into `n_periods` equal periods; the expected purchases of period i are
        discounted by (1 + discount_rate) ** i. With the defaults this is simply
        ``beta_geo.conditional_expected_purchases(t, ...) * conditional_expected_value(...)``, the
        BG/NBD x Gamma-Gamma value baseline.

        Parameters
        ----------
        beta_geo : BetaGeo
            A fitted BG/NBD model on the same customers and time unit.
        frequency, recency, T, monetary : array-like
            Each customer's history.
        t : float
            Length of the window, in the time unit of recency and T.
        n_periods : int, default 1
            Number of discounting periods in the window.
        discount_rate : float, default 0.0
            Discount rate per period.

        Returns
        -------
        ndarray
            Expected (discounted) value in the window; 0 where no purchase is expected (t = 0), also
            where the mean order value is infinite (q <= 1).
        """
        rate_ok = np.isfinite(discount_rate) and discount_rate >= 0  # NaN passed `< 0`: NaN values
        t_ok = np.ndim(t) == 0 and np.isfinite(t) and t >= 0  # an array failed: "truth value ... ambiguous"
        if not _whole(n_periods) or n_periods < 1 or not rate_ok or not t_ok:
            raise ValueError(
                "need a whole n_periods >= 1, a finite discount_rate >= 0 and a finite t >= 0; got "
                f"n_periods={n_periods!r}, discount_rate={discount_rate!r}, t={t!r}"
            )
        n_periods = int(n_periods)
        value = self.conditional_expected_value(frequency, monetary)
        edges = np.linspace(0.0, t, n_periods + 1)
        cumulative = [beta_geo.conditional_expected_purchases(edge, frequency, recency, T) for edge in edges]
        total: FloatArray = np.zeros(np.broadcast_shapes(value.shape, cumulative[0].shape))
        for i in range(1, n_periods + 1):
            total = total + (cumulative[i] - cumulative[i - 1]) / (1.0 + discount_rate) ** i
        # no purchase expected (t = 0) is no value, also where the mean order value is infinite (q <= 1)
        with np.errstate(invalid="ignore"):
            out: FloatArray = np.where(total == 0, 0.0, total * value)
        return out


def _check_value_inputs(frequency: FloatArray, monetary: FloatArray) -> None:
    """Check the Gamma-Gamma inputs: finite values and a whole, non-negative frequency."""
    problems: list[Problem] = []
    for name, values in (("frequency", frequency), ("monetary", monetary)):
        bad = ~np.isfinite(values)
        if bad.any():
            problems.append(_problem(name, "must be finite (no NaN or infinity)", bad, values))
    if not problems:
        if (bad := frequency < 0).any():
            problems.append(_problem("frequency", "Negative values in data: must be >= 0", bad, frequency))
        if (bad := frequency != np.floor(frequency)).any():
            problems.append(_problem("frequency", "must be a whole number of purchases", bad, frequency))
    if problems:
        raise SchemaError(problems)
