"""Shared machinery of kamml's LightGBM models: input handling, training, explanations and JSON state.

`ClvModel`, `ChurnModel` and `InfluenceModel` are thin subclasses of `LGBMModel`. What they share:

- Inputs: a pandas DataFrame (float columns and ``category`` / string columns) or any 2-D numeric array.
  Category levels seen in `fit` are stored in ``categories_`` and re-applied at predict time, so the
  integer codes LightGBM sees always mean the same level; a level unseen in `fit` is treated as missing.
- Training: `lightgbm.train` with deterministic settings (``deterministic``, ``seed``, ``num_threads``,
  ``force_col_wise``, ``verbosity=-1``). When `fit` gets a ``snapshot`` array with at least two distinct
  values, a first model is trained on the earlier snapshots and validated on the latest one (early
  stopping and the model's calibration use it); then the model is refitted on every row with the best
  number of iterations. Rows of zero weight count as absent when the held-out snapshot is chosen: when
  the latest snapshots weigh nothing, the latest one with weight is held out (a warning says so), and
  with a single snapshot of positive weight there is no held-out one. LightGBM itself still sees them:
  they shape its histogram bins and count in ``min_data_in_leaf`` and bagging, so unlike scikit-learn's
  convention a fit with zero weights is not the fit without those rows (an audit: 30 % of rows at weight
  0 moved most predictions by over 1 %); drop such rows to leave them out.
- Horizon: a model knows the ``horizon_days`` its labels were built with and refuses another one.
- Explanations: the TreeSHAP values of LightGBM's ``pred_contrib``, in raw-score units, computed from
  per-leaf tables (`kamml.models._treeshap`; ``pred_contrib`` itself for trees too deep for them).
- State: `to_dict` / `from_dict` hold the LightGBM model text and JSON-able arrays, never a pickle.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, Literal, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.validation import check_array, column_or_1d, validate_data

from kamml.config import inert_lightgbm_parameter, to_plain, unknown_lightgbm_parameters
from kamml.errors import ModelError
from kamml.io import TEMPORAL_INFERRED, TEMPORAL_TYPES
from kamml.models._checks import KammlEstimator, check_fitted, check_sample_weight
from kamml.text import counted

__all__ = [
    "FORMAT_VERSION",
    "LGBMModel",
    "ModelInputError",
    "PreparedFeatures",
    "as_float",
    "canonical_params",
    "check_dated_categories",
    "column_arrays",
    "constraint_count",
    "is_categorical",
    "is_true",
    "per_feature_counts",
    "per_feature_keys",
    "per_feature_problem",
    "stored_number",
    "unseen_levels",
]

logger = logging.getLogger(__name__)


#: Thread counts already warned about in this process (a job fits many models with one count).
_WARNED_THREADS: set[int] = set()


def _usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _warn_more_threads_than_cores(threads: int) -> None:
    """Warn once per count when LightGBM would run more threads than the process has cores.

    OpenMP threads beyond the cores wait on each other at every histogram step (LightGBM's docs: set
    num_threads to the number of real cores), so a config written for a bigger machine trains slower.
    """
    cores = _usable_cores()
    if threads > cores and threads not in _WARNED_THREADS:
        _WARNED_THREADS.add(threads)
        logger.warning(
            "LightGBM num_threads (models.threads) is %d but this process may use %d CPU core%s: threads "
            "beyond the cores slow training down; set it to %d or less",
            threads,
            cores,
            "" if cores == 1 else "s",
            cores,
        )


FloatArray = NDArray[np.float64]

#: Version of the `to_dict` layout; `from_dict` refuses other versions.
FORMAT_VERSION = 1

#: Below this many rows a predict call runs on one thread.
SMALL_PREDICT_ROWS = 2_000
#: The largest float64: where `np.nan_to_num` puts an infinity.
FLOAT_MAX = float(np.finfo(np.float64).max)

#: LightGBM parameter aliases for the parameters kamml sets or controls itself (LightGBM docs,
#: "Parameters"), so that a user's ``min_child_samples`` replaces kamml's ``min_data_in_leaf`` instead of
#: both reaching LightGBM with a conflict warning.
_ALIASES: dict[str, tuple[str, ...]] = {
    "objective": ("objective_type", "app", "application", "loss"),
    "num_iterations": (
        "num_iteration",
        "n_iter",
        "num_tree",
        "num_trees",
        "num_round",
        "num_rounds",
        "nrounds",
        "num_boost_round",
        "n_estimators",
        "max_iter",
    ),
    "learning_rate": ("shrinkage_rate", "eta"),
    "num_leaves": ("num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes"),
    "num_threads": ("num_thread", "nthread", "nthreads", "n_jobs"),
    "seed": ("random_seed", "random_state"),
    "deterministic": (),
    "min_data_in_leaf": ("min_data_per_leaf", "min_data", "min_child_samples", "min_samples_leaf"),
    "min_sum_hessian_in_leaf": (
        "min_sum_hessian_per_leaf",
        "min_sum_hessian",
        "min_hessian",
        "min_child_weight",
    ),
    "bagging_fraction": ("sub_row", "subsample", "bagging"),
    "bagging_freq": ("subsample_freq",),
    "feature_fraction": ("sub_feature", "colsample_bytree"),
    "lambda_l1": ("reg_alpha", "l1_regularization"),
    "lambda_l2": ("reg_lambda", "lambda", "l2_regularization"),
    "early_stopping_round": ("early_stopping_rounds", "early_stopping", "n_iter_no_change"),
    "metric": ("metrics", "metric_types"),
    "verbosity": ("verbose",),
    "force_col_wise": (),
    "force_row_wise": (),
    "monotone_constraints": ("mc", "monotone_constraint", "monotonic_cst"),
    "monotone_constraints_method": ("mc_method", "monotone_constraining_method"),
    "linear_tree": ("linear_trees",),
}

#: LightGBM's methods of enforcing monotone constraints (it accepts any other text and uses ``basic``).
MONOTONE_METHODS = ("basic", "intermediate", "advanced")
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in (name, *aliases)}

#: Settings every kamml LightGBM model starts from; a model's own defaults and the user's ``params``
#: override them. min_data_in_leaf >= 20, bagging and L2 keep small, noisy snapshots from overfitting.
#: max_depth 5 keeps the 15 leaves in bushy trees rather than long chains (depth 7 on average, up to 13,
#: without it): TreeSHAP's cost grows with the square of the depth, and on CDNOW's eight calibration
#: ends the shallower trees lost to BTYD on 6 metric-ends of 48 against 7 (docs/models.md).
_BASE_PARAMS: dict[str, Any] = {
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 40,
    "min_sum_hessian_in_leaf": 1e-3,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
}

#: The estimator parameters that are dicts: `LGBMModel.set_params` takes ``<name>__<key>`` for one key.
_DICT_PARAMS = ("params", "monotone")

#: Column names LightGBM accepts as they are (it refuses JSON special characters in feature names).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ModelInputError(ModelError, ValueError):
    """X, y or sample weights do not fit the model: other features, bad targets, a single class.

    Also an argument out of its range, such as a negative number of drivers (`check_count`).
    """


def check_count(value: Any, name: str, minimum: int = 0) -> int:
    """`value` as an int >= `minimum` (a count of drivers); else a `ModelInputError` naming `name`.

    An int or numpy integer, not True/False and not 2.5. The rule of the REST endpoint's
    ``top_drivers`` (`kamml.tracking.pyfunc`): a whole number, 0 (no drivers) or more.
    """
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or int(value) < minimum:
        raise ModelInputError(f"{name} must be a whole number of drivers, {minimum} or more (got {value!r})")
    return int(value)


def stored_number(value: Any, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """A number read back from a saved state: finite (> 0, >= 0 as asked), else a ValueError naming it.

    A hand-edited or damaged bundle.json loaded and then scored NaN, negative or certain values silently
    (a ``scale`` of NaN made every clv NaN; ``churn_shift`` Infinity made every p_churn 1).
    """
    number = float(value)
    if not np.isfinite(number) or (positive and number <= 0) or (nonnegative and number < 0):
        bound = " > 0" if positive else " >= 0" if nonnegative else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def is_true(value: Any) -> bool:
    """A LightGBM boolean parameter as LightGBM reads it: True, a non-zero number, or "true"/"1" text."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "+")
    return bool(value) if isinstance(value, (bool, int, float, np.integer, np.floating)) else False


def constraint_count(value: Any) -> int:
    """How many values a positional LightGBM parameter holds (a list, or "1,0,-1" text)."""
    return len(value.split(",") if isinstance(value, str) else value)


#: LightGBM's parameters other than ``monotone_constraints`` that hold one value per training column, in
#: the columns' order (main names): another length fails training, with LightGBM's "Check failed:
#: (static_cast<size_t>(num_col)) == (config_.max_bin_by_feature.size())".
PER_FEATURE_PARAMS = (
    "max_bin_by_feature",
    "feature_contri",
    "cegb_penalty_feature_lazy",
    "cegb_penalty_feature_coupled",
)


def per_feature_keys(params: Mapping[str, Any]) -> dict[str, str]:
    """The keys of `params` that set one of `PER_FEATURE_PARAMS` (``fc`` too), each with its main name."""
    return {key: main for main in PER_FEATURE_PARAMS for key in params if key in lightgbm_names(main)}


def per_feature_counts(params: Mapping[str, Any]) -> dict[str, int]:
    """How many values each key of `params` setting one of `PER_FEATURE_PARAMS` holds.

    None and an empty list (``[]``, ``""``: LightGBM's default, unset) are left out; one number is one value.
    """
    counts = {
        key: 1 if isinstance(value, (int, float)) else constraint_count(value)
        for key in per_feature_keys(params)
        if (value := params[key]) is not None and not (isinstance(value, str) and not value.strip())
    }
    return {key: count for key, count in counts.items() if count > 0}


def per_feature_problem(params: Mapping[str, Any], n_features: int) -> tuple[str, str, int] | None:
    """(key, main name, count) of the first `PER_FEATURE_PARAMS` value whose length is not `n_features`."""
    names = per_feature_keys(params)
    for key, count in per_feature_counts(params).items():
        if count != n_features:
            return key, names[key], count
    return None


def canonical_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """LightGBM parameters with the aliases kamml controls replaced by their main name.

    Raises `ValueError` when two keys are aliases of one parameter (LightGBM would pick one silently).
    """
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        name = _CANONICAL.get(key, key)
        if name in out:
            raise ValueError(f"LightGBM parameter {name!r} is given twice in params (as aliases)")
        out[name] = value
    return out


#: LightGBM's refusal of a parameter's type (``num_leaves: 7.5``), naming it and the type it wanted.
LIGHTGBM_TYPE = re.compile(r'Parameter (\w+) should be of type (\w+), got "')
#: LightGBM's refusal of a parameter's range ("Check failed: (lambda_l1) >= (0.0)").
_LIGHTGBM_CHECK = re.compile(r"Check failed: \((\w+)\) (>=|>|<=|<) \(([-+0-9.e]+)\)")
#: LightGBM's refusal of the smallest value of a list parameter (``max_bin_by_feature: [-3, 4]``).
_LIGHTGBM_LEAST = re.compile(
    r"Check failed: \(\*\(std::min_element\(config_\.(\w+)\.begin\(\), config_\.\w+\.end\(\)\)\)\) "
    r"(>=|>|<=|<) \(([-+0-9.e]+)\)"
)
#: LightGBM's refusal of a true/false parameter's value (``linear_tree: yes``): no type named.
_LIGHTGBM_SWITCH = re.compile(r'Parameter (\w+) should be "true"/"\+" or "false"/"-", got "')
#: LightGBM's types in the config's words.
_LIGHTGBM_TYPES = {"int": "a whole number", "double": "a number", "bool": "true or false", "string": "text"}


def lightgbm_refusal(reason: str, given: Iterable[Any]) -> tuple[str, str, str] | None:
    """LightGBM's refusal of one parameter as (the key `given` named it by, LightGBM's main name, the rule).

    LightGBM names the parameter by its main name (``num_leaves`` for ``num_leaf``, ``lambda_l1`` for
    ``reg_alpha``) and writes neither the key given nor its value; the rule is in the config's words
    ("a whole number", ">= 0"). One reading for the config's models sections (`kamml.models.bundle`) and
    the estimators' ``params`` at fit. None when the message is of another kind, or no key of `given`
    names the parameter (one of kamml's defaults).
    """
    typed = LIGHTGBM_TYPE.search(reason)
    checked = _LIGHTGBM_CHECK.search(reason)
    switch = _LIGHTGBM_SWITCH.search(reason)
    least = _LIGHTGBM_LEAST.search(reason)
    if typed is not None:
        param, rule = typed[1], _LIGHTGBM_TYPES.get(typed[2], f"of LightGBM's type {typed[2]}")
    elif switch is not None:
        param, rule = switch[1], _LIGHTGBM_TYPES["bool"]
    elif checked is not None:
        param, rule = checked[1], f"{checked[2]} {float(checked[3]):g}"
    elif least is not None:
        param, rule = least[1], f"{least[2]} {float(least[3]):g} in every value"
    else:
        return None
    names = lightgbm_names(param)
    key = next((str(k) for k in given if k in names), None)
    return None if key is None else (key, param, rule)


def lightgbm_whole(key: str, value: Any) -> Any:
    """A whole float of one of LightGBM's int parameters as its int (``num_leaves: 31.0``); else as given.

    LightGBM refused 31.0 ("Parameter num_leaves should be of type int, got "31.0"") where the config
    reads ``n_estimators: 2.0`` as 2: the models section (`kamml.models.bundle`) and every model's
    `LGBMModel.lgb_params` apply it, so a YAML ``31.0`` and ``ClvModel(params={"num_leaves": 31.0})``
    train the model ``31`` trains. 31.5, inf and true stay as given, for LightGBM's refusal.
    """
    if isinstance(value, float) and value.is_integer() and lightgbm_int(key):
        return int(value)
    return value


@functools.cache
def lightgbm_int(key: str) -> bool:
    """Whether LightGBM reads the parameter `key` (a main name or an alias) as an int, as its parser says.

    LightGBM lists no parameter types; its parser names the type it wanted for a value with a fraction
    ("Parameter min_data_in_leaf should be of type int"), without training. False when it cannot say.
    """
    quiet = "" if key in lightgbm_names("verbosity") else "verbosity=-1 "  # its parser logs at info
    try:
        with quiet_fatal():
            lgb.basic._get_sample_count(1, f"{quiet}{key}=0.5")
    except lgb.basic.LightGBMError as exc:
        typed = LIGHTGBM_TYPE.search(str(exc))
        return typed is not None and typed[2] == "int"
    except (AttributeError, TypeError):  # a LightGBM without the call
        return False
    return False


def lightgbm_parses(params: Mapping[str, Any]) -> None:
    """LightGBM's own error for a value its parser refuses (``num_leaves: 1``), without its stderr line.

    A direct fit printed LightGBM's "[LightGBM] [Fatal] Check failed ..." line above the estimator's
    `InvalidParameterError`; read here, under `quiet_fatal`, in microseconds and before the data are
    read, the line stays off stderr where no other thread runs (a script; a notebook's kernel runs
    threads, so there it still shows). Only what the parser checks (types and ranges): what needs the
    data (``max_bin_by_feature`` per column) is met when training starts, LightGBM's own error as before.
    """
    try:
        text = lgb.basic._param_dict_to_str(dict(params))
    except (AttributeError, TypeError, ValueError):  # a LightGBM without the call, or a value it cannot write
        return
    with quiet_fatal():
        lgb.basic._get_sample_count(1, text)


def lightgbm_names(param: str) -> set[str]:
    """A LightGBM parameter's main name and aliases, as LightGBM lists them (the name alone if it cannot)."""
    try:
        return set(lgb.basic._ConfigAliases.get(param)) | {param}
    except (AttributeError, TypeError, ValueError):  # a LightGBM without its list of aliases
        return {param}


#: How LightGBM's C++ starts the line it writes to stderr before it raises (`quiet_fatal`).
_FATAL = b"[LightGBM] [Fatal] "


@contextlib.contextmanager
def quiet_fatal() -> Iterator[None]:
    """Keep LightGBM's "[LightGBM] [Fatal] ..." line of the one-round check off stderr; the rest passes.

    LightGBM's C++ writes a fatal message straight to the process's stderr (fd 2) before it raises it,
    past ``verbosity=-1`` and `lightgbm.register_logger` (its callback gets the other levels only), so
    ``kamml validate`` printed "Check failed ... config_auto.cpp" above kamml's one-line error. fd 2 is the
    whole process's: it is pointed at a temporary file only while no other Python thread runs (the
    command line), which none then can write to meanwhile, and what else came is written back after.
    """
    if threading.active_count() > 1:
        yield
        return
    with tempfile.TemporaryFile() as caught:
        _flush_stderr()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr (closed): nothing to keep clean
            saved = None
        if saved is not None:
            os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                _write_stderr(_without_fatal(caught.read()))


def _flush_stderr() -> None:
    """Write out what Python holds for stderr, before fd 2 is pointed elsewhere or back."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # None, or closed
        sys.stderr.flush()


def _without_fatal(text: bytes) -> bytes:
    """`text` without LightGBM's fatal lines and the empty line its checks end with."""
    kept, dropped = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(_FATAL) or (dropped and not line.strip()):
            dropped = True
            continue
        kept.append(line)
        dropped = False
    return b"".join(kept)


def _write_stderr(data: bytes) -> None:
    """Write `data` to fd 2 whole (a write may take part of it)."""
    while data:
        data = data[os.write(2, data) :]


def _lgb_names(names: list[str]) -> list[str]:
    """Feature names to hand to LightGBM: the real ones when safe and unique, else Column_i."""
    cleaned = [n if _SAFE_NAME.match(n) else re.sub(r"[^A-Za-z0-9_.\-]", "_", n) for n in names]
    if len(set(cleaned)) < len(cleaned):
        return [f"Column_{i}" for i in range(len(names))]
    return cleaned


def _fitted_state(model: Any) -> dict[str, Any]:
    """A model's fitted attributes (sklearn's trailing underscore), to put back after a failed fit."""
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


def _restore_state(model: Any, state: dict[str, Any]) -> None:
    """Put back `state` (`_fitted_state`), dropping fitted attributes the failed fit added."""
    for name in list(_fitted_state(model)):
        if name not in state:
            delattr(model, name)
    vars(model).update(state)


#: What `pandas.api.types.infer_dtype` calls an object column holding only numbers (missing values aside).
_NUMBER_KINDS = frozenset({"integer", "floating", "mixed-integer-float", "decimal"})


def is_categorical(series: pd.Series) -> bool:
    """True for columns kamml encodes as LightGBM categories: category, string and object dtypes.

    An object column of numbers only (``Decimal`` from a SQL ``DECIMAL``, Python ints and floats) is a
    number, not a category: as levels, every new value at scoring was unseen, so read as missing.
    """
    dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype):
        return pd.api.types.infer_dtype(series, skipna=True) not in _NUMBER_KINDS
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)


def _levels(series: pd.Series) -> list[Any]:
    """Category levels of a column as plain Python values (declared levels for category dtype)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        levels = series.cat.categories
    else:
        levels = pd.Index(pd.unique(series.dropna()))
        with contextlib.suppress(TypeError):  # mixed types: keep the order of appearance
            levels = levels.sort_values()
    return [v.item() if isinstance(v, np.generic) else v for v in levels.tolist()]


#: What `pandas.api.types.infer_dtype` says of a text column holding only single values (no list, dict).
_SCALAR_KINDS = frozenset(
    {"string", "empty", "integer", "floating", "mixed-integer-float", "decimal", "boolean", "categorical"}
)


def _check_category_values(column: Any, name: str) -> None:
    """A `ModelInputError` naming the column and rows of a value that is not one category.

    JSON gives a list or an object where a CRM sent one: it failed deep in pandas or numpy (an unhashable
    type, an ambiguous truth value), which MLflow's server answered with a generic 400 and a stack trace.
    Dates, durations and bytes are refused too, as fit refuses them (a date column, levels JSON cannot
    hold): scoring read each as an unseen level, a missing value, with at most a warning.
    """
    found = not_categories(column)
    if found is not None:
        bad, reason = found
        values = _object_values(column)
        rows = ", ".join(str(i) for i in bad[:5])
        kinds = " and ".join(sorted({type(values[i]).__name__ for i in bad}))
        rule = CATEGORY_RULE.format(type=f"{kinds} value(s) in row(s) {rows} ({counted(len(bad), 'row')})")
        raise ModelInputError(f"column {name!r} {rule}{reason}")


def not_categories(column: Any) -> tuple[NDArray[np.intp], str] | None:
    """Positions of a category column's values that are no single category, and the reason; None if none.

    Lists and dicts (reason ""), else dates, durations or bytes (`DATED_CATEGORY_REASON`,
    `BYTES_CATEGORY_REASON`): what the models refuse (`_check_category_values`). The batch scorer names
    them as a `kamml.errors.Problem` before the models read the column, as Spark's schema check does.
    """
    if _category_kind(column) in _SCALAR_KINDS:  # fast, in C: the usual case
        return None
    bad, reason = _no_single_category(_object_values(column))
    return (bad, reason) if len(bad) else None


def _object_values(column: Any) -> NDArray[Any]:
    """A column's values (a Series, an array or a list) as an object array."""
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object)
    return np.asarray(column, dtype=object)


def _no_single_category(values: NDArray[Any]) -> tuple[NDArray[np.intp], str]:
    """Positions among object `values` of lists and dicts (reason ""), else of dates, durations or bytes."""
    bad = np.flatnonzero([not pd.api.types.is_scalar(v) for v in values])
    return (bad, "") if len(bad) else _not_categories(values)


def dated_dtype(column: pd.Series) -> str | None:
    """The dtype of a column typed as dates, durations or periods (of its levels for a category dtype).

    Such a column is no category column whatever its values, as fit refuses it (`_temporal`) and Spark's
    schema check refuses a timestamp column: the batch scorer refuses one with no date in it too
    (every value NaT), which the models read as missing values. None for any other dtype.
    """
    dtype = column.cat.categories.dtype if isinstance(column.dtype, pd.CategoricalDtype) else column.dtype
    return str(dtype) if _temporal_dtype(dtype) else None


def check_dated_categories(
    frame: pd.DataFrame, columns: Mapping[str, Any], categories: Iterable[str]
) -> None:
    """A `ModelInputError` naming a category column typed as dates, durations or periods with no value.

    Every value NaT reads as a missing value (in the objects `column_arrays` makes of a few rows, and in
    a larger frame's Series), so the models scored the column as missing where fit and batch scoring
    (`kamml.jobs.score.category_type_problem`) refuse it by its type. `columns` is `column_arrays(frame)`:
    a few rows' dtype is looked up only when their first value is NaT (~13 us a column otherwise). A
    column holding dates is left to `_check_category_values`, which names their rows, as batch does.
    """
    for name in categories:
        column = columns.get(name)
        if column is None:  # named by the missing-columns check
            continue
        if isinstance(column, np.ndarray):  # a few rows as objects: NaT first, or no such column
            if not (len(column) and column[0] is pd.NaT):
                continue
            column = frame.iloc[:, list(columns).index(name)]
        dtype = dated_dtype(column)
        if dtype is not None and not column.notna().any():
            raise ModelInputError(
                f"column {name!r} {CATEGORY_RULE.format(type=dtype)}{DATED_CATEGORY_REASON}"
            )


def _temporal_dtype(dtype: Any) -> bool:
    """Whether `dtype` is one of dates, durations or periods (`dated_dtype`, `_temporal`)."""
    return bool(
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def _not_categories(values: NDArray[Any]) -> tuple[NDArray[np.intp], str]:
    """Positions among object `values` of dates, durations or bytes (missing ones aside), and the reason."""
    odd = np.array([isinstance(v, _NOT_CATEGORY_TYPES) for v in values], dtype=bool)
    bad = np.flatnonzero(odd & ~pd.isna(values))  # NaT is a datetime, and a missing value
    dated = any(isinstance(values[i], TEMPORAL_TYPES) for i in bad)
    return bad, DATED_CATEGORY_REASON if dated else BYTES_CATEGORY_REASON


def _category_kind(column: Any) -> str:
    """What pandas infers of a category column's values (of its levels for a category dtype)."""
    if isinstance(column, pd.Series) and isinstance(column.dtype, pd.StringDtype):
        return "string"  # text only: no inference
    if isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
        return pd.api.types.infer_dtype(column.cat.categories, skipna=True)
    return pd.api.types.infer_dtype(column, skipna=True)


#: What scoring says of a category column holding values that are not single categories (both engines).
CATEGORY_RULE = "must hold one category (text) per row as it was in fit, got {type}"
#: Why a date or a duration in a category column is refused (the Spark scorer's schema check says it too).
DATED_CATEGORY_REASON = (
    ": dates and durations are neither numbers nor categories, and fit refuses them: send the category "
    "as text"
)
#: Why bytes in a category column are refused (fit refuses them as levels the model cannot save).
BYTES_CATEGORY_REASON = ": bytes are not categories, and fit refuses them: send the category as text"


def _scores_text(scores: dict[str, float]) -> str:
    """The held-out metrics for a log line: "held-out tweedie 3.853", not a dict of 16-digit floats."""
    if not scores:
        return "no held-out metric"
    return "held-out " + ", ".join(f"{name} {value:.4g}" for name, value in scores.items())


#: Rows of a text column, at least, whose values must all be unseen for `_warn_all_unseen` to speak.
UNSEEN_WARNING_ROWS = 20


def _warn_all_unseen(column: Any, codes: FloatArray, levels: list[Any], name: str) -> None:
    """Log a warning when no value of a text column (of many) is one of the levels seen in fit.

    Each unseen value is read as missing, which is right for a new industry or two; all of them unseen
    means the column changed its spelling or coding ("Retail" became "retail", names became codes) and
    the models silently lost the feature.
    """
    if len(codes) < UNSEEN_WARNING_ROWS or not np.isnan(codes).all():  # the usual case, at once
        return
    given = pd.Series(np.asarray(column, dtype=object)).dropna()
    if len(given) < UNSEEN_WARNING_ROWS:
        return
    values = given.astype(str).unique()[:3]
    logger.warning(
        "column %r: none of its %s values is a level seen in fit (e.g. %s; fit saw %s): all are read as "
        "missing. Did its spelling or coding change?",
        name,
        f"{len(given):,}",
        ", ".join(map(repr, values)),
        ", ".join(map(repr, levels[:3])) + (", ..." if len(levels) > 3 else ""),
    )


def unseen_levels(column: Any, levels: list[Any], name: str = "") -> NDArray[np.bool_]:
    """Which values of a category column are given but none of the fitted `levels`, as predict reads them.

    The model scores them as missing values (LightGBM's branch for levels outside its splits); a batch
    job names them (`kamml.jobs.score.unseen_level_notes`). Other spellings of a fitted number match it.
    """
    codes = _category_codes(column, levels, name)
    return np.isnan(codes) & np.asarray(pd.notna(np.asarray(column, dtype=object)), dtype=bool)


def _category_codes(column: Any, levels: list[Any], name: str = "") -> FloatArray:
    """Integer codes of `column` among the fitted `levels` (NaN for a missing or unseen level).

    A value that is not a single category (a list, a dict) raises `ModelInputError` naming the column.
    """
    _check_category_values(column, name)
    if len(column) <= SMALL_FRAME_ROWS:  # a REST request: a dict lookup is ~50x cheaper than a Categorical
        index = {level: float(code) for code, level in enumerate(levels)}
        codes = np.array([index.get(v, np.nan) if pd.notna(v) else np.nan for v in column], dtype=np.float64)
    else:
        found = pd.Categorical(column, categories=levels).codes
        codes = np.where(found < 0, np.nan, found).astype(np.float64)
    return _match_number_spellings(column, codes, levels)


def _number_key(value: Any) -> str | None:
    """One spelling of a number given as a number or as its plain text: 3, 3.0, "3" and "3.0" give "3".

    None for anything else (a word, a bool, a missing value), and for text a number would not print as
    (" 3", "03", "3e0"): codes with leading zeros are names, not numbers.
    """
    if isinstance(value, bool | np.bool_) or value is None:
        return None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not np.isfinite(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        key = _number_key(number)
        return key if value in (key, repr(number)) else None
    return None


def _match_number_spellings(column: Any, codes: FloatArray, levels: list[Any]) -> FloatArray:
    """Codes for values that name a fitted level by another spelling of the same number, else unchanged.

    A JSON client may send 3 where fit saw the text "3", or "3" where it saw the number 3 (a CRM that
    writes every field as text): both are the fitted level, not an unseen one read as missing. Only
    levels whose number is spelled once among the levels are matched.
    """
    if not np.isnan(codes).any():  # every value is a fitted level (a request's usual case): no keys needed
        return codes
    keys: dict[str, float | None] = {}
    for code, level in enumerate(levels):
        key = _number_key(level)
        if key is not None:
            keys[key] = None if key in keys else float(code)  # two levels one number: match neither
    if not keys:  # no level is a number (industries, regions): the usual case, at once
        return codes
    unmatched = np.isnan(codes) & pd.notna(np.asarray(column, dtype=object))  # missing stays missing
    if not unmatched.any():
        return codes
    matched = {key: code for key, code in keys.items() if code is not None}
    # the texts that name each level's number: its own spelling and Python's float one ("3" and "3.0")
    texts = {**{f"{key}.0": code for key, code in matched.items() if "." not in key}, **matched}
    rows = np.flatnonzero(unmatched)
    values = pd.Series(np.asarray(column, dtype=object)[rows], dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # in C: the usual case
        text = np.ones(len(values), dtype=bool)
    else:
        text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    found = np.full(len(rows), np.nan)
    if text.any():  # one hash lookup per value: a million unseen codes cost no float() each
        found[text] = values[text].map(texts).to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = ~text & values.map(_is_number).to_numpy(dtype=bool)
    if numbers.any():  # numbers sent for text levels: a key per distinct number
        keyed = {value: _number_key(value) for value in pd.unique(values[numbers])}  # no bool among them
        found[numbers] = [matched.get(keyed[v] or "", np.nan) for v in values[numbers]]
    codes = codes.copy()
    codes[rows] = found
    return codes


def _is_number(value: Any) -> bool:
    """A number that is not a bool (True == 1 in Python, but a bool names no numbered level)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


SMALL_FRAME_ROWS = 64
"""Frames up to this many rows are converted to arrays in one step (`column_arrays`)."""


def column_arrays(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame's columns by name: arrays for a small frame, converted in one step, else the Series.

    Selecting columns of a one-row frame costs ~10 us each in pandas; one object conversion of the whole
    row costs about as much as two. Large frames keep their Series (categoricals stay categorical).
    """
    if len(frame) <= SMALL_FRAME_ROWS:
        return dict(zip(map(str, frame.columns), frame.to_numpy(dtype=object).T, strict=True))
    return {str(name): frame[name] for name in frame.columns}


def fill_nan(x: FloatArray, value: float) -> FloatArray:
    """`np.nan_to_num(x, nan=value)` of a float64 array: in three ufuncs for a few rows.

    nan_to_num's own overhead (~20 us) was more than a one-row request needs; for many rows it is the
    faster one. Infinities become the largest floats either way.
    """
    if x.size > SMALL_FRAME_ROWS:
        return np.nan_to_num(x, nan=value)
    return np.where(np.isnan(x), value, np.minimum(np.maximum(x, -FLOAT_MAX), FLOAT_MAX))


def floor_missing(x: FloatArray, floor: float) -> FloatArray:
    """``np.maximum(np.nan_to_num(x, nan=floor), floor)`` in two ufuncs (the same bits, infinities too).

    nan_to_num alone was ~20-45 us a call, more than the rest of a one-row request's offset or blend.
    """
    return np.fmax(np.minimum(x, FLOAT_MAX), floor)


def as_float(column: Any, name: str = "") -> FloatArray:
    """A column (array or Series, None/NA as missing) as float64 with NaN for missing values.

    A value that is not a number raises `ModelInputError` naming the column; so do dates and durations,
    which numpy would turn into nanosecond counts (a CRM's ``now - last_activity`` scored as 8.6e13 days).
    """
    try:
        if _temporal(column):
            raise TypeError(
                "dates and durations are not numbers (send the number of days, as the features do)"
            )
        if isinstance(column, pd.Series):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        try:
            return np.asarray(column, dtype=np.float64)
        except TypeError:  # pd.NA among objects
            return pd.Series(column).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(
            f"column {name!r} must be numeric as it was in fit, got {_dtype_of(column)}: {exc}"
            f"{_first_non_number(column)}"
        ) from None


def _first_non_number(column: Any) -> str:
    """`` (row i: value)`` for the first value of `column` that is not a number; "" when none is found.

    In a batch the error named the column and the value's text, not which row held it (a tracking audit).
    """
    values = (
        column.to_numpy(dtype=object) if isinstance(column, pd.Series) else np.asarray(column, dtype=object)
    )
    for i, value in enumerate(values.ravel()):
        if value is None or value is pd.NA:
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return f" (row {i}: {value!r})"
    return ""


def _temporal(column: Any) -> bool:
    """Whether a column holds dates, times or durations (typed, or as objects): numpy casts them to ns."""
    dtype = getattr(column, "dtype", None)
    if dtype is None:
        return False
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(column, skipna=True)
        if inferred in _MIXED:  # numbers beside a numpy date or duration object, which numpy casts too
            return any(isinstance(value, TEMPORAL_TYPES) for value in column)
        return inferred in TEMPORAL_INFERRED
    return _temporal_dtype(dtype)


def _values_of(column: pd.Series) -> Any:
    """A column's values, or its levels for a category column (dates as levels are dates too)."""
    return column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column


#: What pandas infers of objects of several kinds, among which a date may hide (`_temporal` looks).
_MIXED = frozenset({"mixed", "mixed-integer", "mixed-integer-float"})
#: The single values no category is: what fit refuses in a category column (`_check_category_values`).
_NOT_CATEGORY_TYPES = (*TEMPORAL_TYPES, bytes, bytearray)


def _dtype_of(column: Any) -> str:
    """The dtype of a column for an error message (the inferred one for object arrays)."""
    if isinstance(column, pd.Series) and column.dtype != object:
        return str(column.dtype)
    return pd.api.types.infer_dtype(column, skipna=True)


def no_autolog() -> contextlib.AbstractContextManager[Any]:
    """MLflow's autologging off while kamml trains its own boosters.

    A user's ``mlflow.autolog()`` patched ``lightgbm.train`` and made one stray run per booster (21 per
    `train` job, beside kamml's own run). Nothing to do when MLflow is not loaded: autologging is off.
    """
    mlflow_utils = sys.modules.get("mlflow.utils.autologging_utils")
    if mlflow_utils is None or getattr(mlflow_utils, "_AUTOLOGGING_GLOBALLY_DISABLED", False):
        return contextlib.nullcontext()
    context: contextlib.AbstractContextManager[Any] = mlflow_utils.disable_autologging()
    return context


#: Seconds between two progress lines of a LightGBM training (`TrainingProgress`).
PROGRESS_SECONDS = 30.0


class TrainingProgress:
    """A LightGBM callback that logs a line at most every `every` seconds while a booster trains.

    A million accounts' training frame takes minutes per model; without it a log stays silent that long
    and an operator cannot tell a working job from a stuck one. The line names the model, the round
    reached, the most rounds it may take, and the held-out metric when there is one.
    """

    order = 30  # LightGBM sorts callbacks by this: after recording (20), beside early stopping (30)

    def __init__(self, name: str, rounds: int, every: float | None = None) -> None:
        self.name, self.rounds = name, rounds
        self.every = PROGRESS_SECONDS if every is None else every
        self.start = self.last = time.monotonic()

    def __call__(self, env: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        scores = ", ".join(
            f"{metric} {value:.6g}" for _, metric, value, _ in env.evaluation_result_list or []
        )
        logger.info(
            "%s: round %d of at most %d after %.0f s%s",
            self.name,
            env.iteration + 1,
            self.rounds,
            now - self.start,
            f" (held-out {scores})" if scores else "",
        )


@dataclass(frozen=True)
class PreparedFeatures:
    """Feature rows converted by `LGBMModel.prepare`: the float matrix and the layout it was built for."""

    matrix: FloatArray
    layout: tuple[Any, ...]


#: The start of LightGBM's early-stopping error when the parameters give it no metric to watch.
NO_EVAL_METRIC = "at least one dataset and eval metric is required"


def no_metric_message(model: str, metric: Any) -> str:
    """Why early stopping cannot run: LightGBM computes no metric for ``metric`` ("none", or a typo)."""
    return (
        f"{model}: LightGBM computes no evaluation metric for metric={metric!r}, and early stopping "
        "watches one on the latest snapshot: leave metric out (the objective's own), name one LightGBM "
        "knows (such as tweedie, poisson, l2, binary_logloss, auc), or set early_stopping_rounds to None"
    )


class LGBMModel(KammlEstimator):
    """Base of kamml's LightGBM estimators; subclasses set the objective, target handling and calibration.

    Subclasses define ``__init__`` with their keyword parameters (at least those of
    `_parameter_constraints`), ``_default_params``, and may override `_encode_target`,
    `_calibrate`, `_extra_state` and `_load_extra_state`.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "horizon_days": [Interval(Integral, 1, None, closed="left")],
        "params": [dict, None],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "num_threads": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, 2**31 - 1, closed="both")],
        "early_stopping_rounds": [Interval(Integral, 1, None, closed="left"), None],
        "monotone": [dict, None],
    }

    #: Objective and settings of the subclass on top of `_BASE_PARAMS`.
    _default_params: ClassVar[dict[str, Any]] = {}
    #: Objectives a user may choose through ``params``; the first is the default.
    _objectives: ClassVar[tuple[str, ...]] = ()
    #: What the model predicts, in the words of its log lines (a report lists its warnings).
    target_words: ClassVar[str] = "prediction"

    horizon_days: int
    params: dict[str, Any] | None
    n_estimators: int
    learning_rate: float
    num_threads: int
    random_state: int
    early_stopping_rounds: int | None
    monotone: dict[str, int] | None

    booster_: lgb.Booster
    n_features_in_: int
    feature_names_in_: NDArray[Any]
    feature_names_: list[str]
    categories_: dict[str, list[Any]]
    horizon_days_: int
    best_iteration_: int
    validation_score_: dict[str, float]

    def __sklearn_tags__(self) -> Any:
        """Declare that missing values are accepted (LightGBM routes them) and inputs are dense."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = False
        return tags

    # ----------------------------------------------------------------------------------------------
    # parameters
    # ----------------------------------------------------------------------------------------------

    def _objective(self) -> str:
        """The LightGBM objective of this model (subclasses with an ``objective`` argument override)."""
        return self._objectives[0]

    def lgb_params(self) -> dict[str, Any]:
        """The full LightGBM parameter dict this model trains with (without the number of rounds).

        Layers, later ones winning: kamml's base settings, the model's defaults, the keyword arguments
        (``learning_rate``, ``random_state`` as ``seed``, ``num_threads``), the user's ``params`` (a whole
        float of an int parameter as its int, `lightgbm_whole`); then ``deterministic``, ``force_col_wise``
        and ``verbosity=-1`` are always set.
        """
        # a whole float of an int parameter (num_leaves=31.0) as its int, as the config reads it; a copy:
        # `params` stays as given (scikit-learn's get_params returns what was set)
        user = canonical_params(
            {key: lightgbm_whole(key, value) for key, value in (self.params or {}).items()}
        )
        if "early_stopping_round" in user:
            raise ValueError("set early stopping with the early_stopping_rounds argument, not in params")
        objective = user.get("objective", self._objective())
        given = getattr(self, "objective", None)  # InfluenceModel's argument: params overrode it silently
        if given is not None and objective != given:
            raise ValueError(
                f"{type(self).__name__} has objective={given!r} and {objective!r} in params: give the "
                "objective once, as the objective argument"
            )
        if objective not in self._objectives:
            raise ValueError(
                f"{type(self).__name__} supports objective {' or '.join(self._objectives)}, not {objective!r}"
            )
        monotone = self._monotone_directions()
        if monotone and "monotone_constraints" in user:
            raise ValueError(
                "give monotone constraints by feature name in monotone (models.<model>.monotone in the "
                "config), not also as LightGBM's monotone_constraints (or its alias mc) in the params"
            )
        if monotone and is_true(user.get("linear_tree")):
            raise ValueError(
                "monotone constraints do not hold with linear_tree: LightGBM applies them to the splits "
                "only, not to the linear models in the leaves; drop one of them"
            )
        method = user.get("monotone_constraints_method")
        if method is not None and method not in MONOTONE_METHODS:
            raise ValueError(
                f"monotone_constraints_method must be one of {', '.join(MONOTONE_METHODS)}, got {method!r}"
            )
        merged: dict[str, Any] = {
            **_BASE_PARAMS,
            **self._default_params,
            # intermediate: constrains less than basic at a small cost (on the CDNOW sample it ranked
            # better, docs/models.md); only set when there are constraints
            **({"monotone_constraints_method": "intermediate"} if monotone else {}),
            "objective": objective,
            "learning_rate": float(self.learning_rate),
            "seed": int(self.random_state),
            "num_threads": int(self.num_threads),
            **user,
        }
        merged.pop("num_iterations", None)
        if merged.get("force_row_wise"):
            merged.pop("force_col_wise", None)
        else:
            merged["force_col_wise"] = True
        merged.update(deterministic=True, verbosity=-1)
        return merged

    def _check_param_names(self) -> None:
        """Refuse a ``params`` key that is no LightGBM parameter or alias (``num_leave``, ``nonsense``).

        LightGBM only warns about a name it does not know, a warning ``verbosity=-1`` hides, and trains
        with the default in its place. The check is the config's (`kamml.config.
        unknown_lightgbm_parameters`); raised at `fit`, as sklearn validates parameters, as sklearn's
        `InvalidParameterError` (a ValueError and a TypeError).
        """
        self._refuse_unknown_params(self.params or {}, repr, "params key")

    def _refuse_unknown_params(self, keys: Iterable[str], key: Callable[[str], str], noun: str) -> None:
        """An `InvalidParameterError` naming the `keys` of ``params`` that LightGBM does not know."""
        name = type(self).__name__
        arguments = {
            arg: f"an argument of {name}: {name}({arg}=...)"
            for arg in self.get_params(deep=False)
            if arg != "params"
        }
        message = unknown_lightgbm_parameters(keys, key=key, noun=noun, elsewhere=arguments)
        if message is None:
            message = inert_lightgbm_parameter(keys, key=lambda given: f"{noun} {key(given)}")
        if message is not None:
            raise InvalidParameterError(f"{name}: {message}")

    def set_params(self, **params: Any) -> Self:
        """Set parameters as sklearn does; ``params__<key>`` and ``monotone__<feature>`` set one key of those.

        That is how `GridSearchCV` and a `Pipeline` reach a LightGBM setting without an argument of its
        own (``params__num_leaves``); sklearn's own method failed on it with "'dict' object has no
        attribute 'set_params'". The dicts are copied (the caller's stay as they were), a whole dict given
        in the same call is the base its keys go into, and a ``params__`` key LightGBM does not know is
        refused by name before anything is set.
        """
        keyed: dict[str, dict[str, Any]] = {}
        rest: dict[str, Any] = {}
        for given, value in params.items():
            head, nested, sub = given.partition("__")
            if nested and head in _DICT_PARAMS:
                keyed.setdefault(head, {})[sub] = value
            else:
                rest[given] = value
        if "params" in keyed:
            self._refuse_unknown_params(keyed["params"], lambda n: repr(f"params__{n}"), "parameter")
        super().set_params(**rest)
        for head, values in keyed.items():
            setattr(self, head, {**(getattr(self, head) or {}), **values})
        return self

    def _monotone_directions(self) -> dict[str, int]:
        """`monotone` checked: feature name -> 1 (prediction never falls as it rises), -1 or 0."""
        raw = getattr(self, "monotone", None) or {}
        bad = {k: v for k, v in raw.items() if isinstance(v, bool) or v not in (-1, 0, 1)}
        if bad:
            raise ValueError(
                f"monotone directions must be 1 (the prediction rises with the feature), -1 (falls) or 0, "
                f"got {bad}"
            )
        return {str(k): int(v) for k, v in raw.items() if v != 0}

    def _monotone_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with ``monotone_constraints`` in the fitted feature order, from `monotone` by name.

        A name that is not a training column (whatever its direction: a slip, as in a config), or a
        categorical one with a direction, is a `ModelInputError`; so are positional ``monotone_constraints``
        from ``params`` of another length (LightGBM aborts the process on them), and the other
        per-column parameters of another length (`_check_per_feature`).
        """
        monotone = self._monotone_directions()
        unknown = sorted({str(name) for name in self.monotone or {}} - set(self.feature_names_))
        if unknown:
            raise ModelInputError(
                f"{type(self).__name__}: monotone names features that are not training columns: {unknown}"
            )
        if not monotone:
            positional = params.get("monotone_constraints")
            count = None if positional is None else constraint_count(positional)
            if count is not None and count != len(self.feature_names_):
                raise ModelInputError(
                    f"{type(self).__name__}: LightGBM's monotone_constraints in the params has "
                    f"{count} values for {len(self.feature_names_)} features; give them by name "
                    "in monotone instead"
                )
            self._check_per_feature()
            return params
        categorical = sorted(set(monotone) & set(self.categories_))
        if categorical:
            raise ModelInputError(
                f"{type(self).__name__}: monotone names categorical features, which have no order: "
                f"{categorical}"
            )
        self._check_per_feature()
        return {**params, "monotone_constraints": [monotone.get(n, 0) for n in self.feature_names_]}

    def _check_per_feature(self) -> None:
        """A `ModelInputError` when a per-column parameter of ``params`` misses the training columns' count.

        LightGBM's own "Check failed" for `PER_FEATURE_PARAMS` of another length named no key.
        """
        found = per_feature_problem(self.params or {}, len(self.feature_names_))
        if found is not None:
            key, main, count = found
            also = "" if key == main else f" (LightGBM's {main})"
            raise ModelInputError(
                f"{type(self).__name__}: params key {key!r}{also} has {counted(count, 'value')} for "
                f"{len(self.feature_names_)} features; LightGBM reads one per training column, in their order"
            )

    def _num_rounds(self) -> int:
        """Boosting rounds: ``num_iterations`` (or an alias) in ``params``, else ``n_estimators``.

        One in ``params`` must be a whole number (3.0 and "3" too; below 1 LightGBM refuses it); true,
        false or 2.5 is an `InvalidParameterError` naming the key, as ``n_estimators=True`` is: ``int()``
        read true as 1 round and 2.5 as 2, without a word.
        """
        given = canonical_params(self.params)
        if "num_iterations" not in given:
            return int(self.n_estimators)
        value = given["num_iterations"]
        key = next(k for k in self.params or {} if _CANONICAL.get(k, k) == "num_iterations")
        try:
            number = None if isinstance(value, bool | np.bool_) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not number.is_integer():
            raise InvalidParameterError(
                f"{type(self).__name__}: params key {key!r} (boosting rounds) must be a whole number, "
                f"got {value!r}"
            )
        return int(number)

    # ----------------------------------------------------------------------------------------------
    # inputs
    # ----------------------------------------------------------------------------------------------

    def _check_names(self, X: Any, *, reset: bool) -> None:
        """Feature-name and feature-count checks of sklearn, raised as `ModelInputError`."""
        try:
            validate_data(self, X, reset=reset, skip_check_array=True)
        except ValueError as exc:
            raise ModelInputError(str(exc)) from None

    def _to_matrix(self, X: Any, *, reset: bool) -> FloatArray:
        """X as a float matrix for LightGBM: categories as stable integer codes, unseen levels as NaN."""
        if isinstance(X, pd.DataFrame):
            self._check_names(X, reset=reset)
            if reset:
                if X.shape[1] == 0:  # LightGBM's own error spoke of a "forced splits file"
                    raise ModelInputError(f"{type(self).__name__}: X has no feature columns")
                dated = [str(name) for i, name in enumerate(X.columns) if _temporal(_values_of(X.iloc[:, i]))]
                if dated:  # as_float's "must be numeric as it was in fit" read wrongly in fit itself
                    raise ModelInputError(
                        f"{type(self).__name__}: columns {dated} hold dates or durations, which are neither "
                        "numbers nor categories: send the number of days, as the features do"
                    )
                self.feature_names_ = (
                    [str(c) for c in self.feature_names_in_]
                    if hasattr(self, "feature_names_in_")
                    else [f"x{i}" for i in range(X.shape[1])]
                )
                self.categories_ = {
                    name: _levels(X.iloc[:, i])
                    for i, name in enumerate(self.feature_names_)
                    if is_categorical(X.iloc[:, i])
                }
                self._check_saveable_levels()
            # checked to be the fitted columns in order; named as in fit (x0, x1, ... for unnamed ones)
            named = X.set_axis(self.feature_names_, axis=1)
            columns = column_arrays(named)
            check_dated_categories(named, columns, self.categories_)
            return self._columns_matrix(columns, len(X))
        if not reset and self.categories_:
            raise ModelInputError(
                f"{type(self).__name__} was fitted with categorical columns {sorted(self.categories_)}; "
                "pass a DataFrame with the same columns"
            )
        # no rows predict as nothing, as a 0-row DataFrame does; fit still refuses them (sklearn's checks)
        rows = 1 if reset else 0
        matrix = np.asarray(
            check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=rows),
            dtype=np.float64,
        )
        self._check_names(matrix, reset=reset)
        if reset:
            self.feature_names_ = [f"x{i}" for i in range(matrix.shape[1])]
            self.categories_ = {}
        return matrix

    def _check_saveable_levels(self) -> None:
        """A ModelInputError naming a categorical column whose levels JSON cannot hold (bytes, tuples).

        `to_dict` and `ModelBundle.save` write the levels as JSON: they failed only then, after the
        training, with a TypeError that named no column.
        """
        for name, levels in self.categories_.items():
            odd = [v for v in levels if not isinstance(v, str | bool | int | float)]
            if odd:
                raise ModelInputError(
                    f"{type(self).__name__}: column {name!r} has category levels the model cannot save "
                    f"as JSON (e.g. {odd[0]!r}, a {type(odd[0]).__name__}): give text, numbers or true/false "
                    "levels"
                )

    def _columns_matrix(self, columns: Mapping[str, Any], rows: int) -> FloatArray:
        """The float matrix of the fitted feature columns, taken by name from `columns` (arrays or Series).

        Categories become their fitted codes; a missing, non-numeric or infinite column is named.
        """
        names = self.feature_names_
        absent = [name for name in names if name not in columns]
        if absent:
            raise ModelInputError(f"{type(self).__name__}: missing feature columns {absent}")
        matrix = np.empty((rows, len(names)), dtype=np.float64)
        numbers = rows <= SMALL_FRAME_ROWS and self._small_numbers(matrix, columns, rows)
        for i, name in enumerate(names):
            if numbers and name not in self.categories_:
                continue
            if name in self.categories_:
                matrix[:, i] = _category_codes(columns[name], self.categories_[name], name)
                _warn_all_unseen(columns[name], matrix[:, i], self.categories_[name], name)
                continue
            matrix[:, i] = as_float(columns[name], name)
        infinite = np.isinf(matrix).any(axis=0)
        if infinite.any():  # named with its first row, as a non-number is (`_first_non_number`)
            bad = [names[i] for i in np.flatnonzero(infinite)]
            row = int(np.flatnonzero(np.isinf(matrix[:, names.index(bad[0])]))[0])
            raise ModelInputError(
                f"{type(self).__name__}: infinite values in feature columns {bad} (row {row} of "
                f"{bad[0]!r}): a feature must be a finite number, or missing (NaN)"
            )
        return matrix

    def _small_numbers(self, matrix: FloatArray, columns: Mapping[str, Any], rows: int) -> bool:
        """Fill `matrix`'s numeric columns of a few rows in one conversion; False leaves them to `as_float`.

        Each column alone cost ~1 us (a request's ~60). The cast is the one `as_float` makes; any
        column it cannot take (not an array of the rows, a text, pd.NA) falls back, for its named error.
        """
        positions = [i for i, name in enumerate(self.feature_names_) if name not in self.categories_]
        arrays = [columns[self.feature_names_[i]] for i in positions]
        if not all(
            isinstance(a, np.ndarray)
            and a.shape == (rows,)
            and a.dtype.kind not in "mM"
            and not (a.dtype.kind == "O" and _temporal(a))
            for a in arrays
        ):
            return False  # dates and durations too: numpy casts them to counts; `as_float` names them
        try:
            block = np.array(arrays, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        matrix[:, positions] = block.T
        return True

    def prepare_columns(
        self, columns: Mapping[str, Any], rows: int, horizon_days: int | None = None
    ) -> PreparedFeatures:
        """`prepare` from feature columns by name (arrays or Series, e.g. `column_arrays` plus computed ones).

        Saves assembling a DataFrame (the bundle adds its BTYD columns this way); extra columns are
        ignored.
        """
        self._check_ready(horizon_days)
        return PreparedFeatures(self._columns_matrix(columns, rows), self._layout())

    def _predict_threads(self, matrix: FloatArray) -> int:
        """Threads for one predict call: one for small inputs, otherwise as many as training used.

        Waking OpenMP threads costs more than a REST request's whole prediction. A thread count in
        ``params`` (``num_threads`` or an alias such as ``n_jobs``) wins over `num_threads`, as it does
        in training.
        """
        if len(matrix) < SMALL_PREDICT_ROWS:
            return 1
        given = canonical_params(self.params).get("num_threads")
        return int(self.num_threads if given is None else given)

    def _layout(self) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[Any, ...]], ...]]:
        """Feature names and category levels: what a prepared matrix must have been built for."""
        cats = tuple(sorted((k, tuple(v)) for k, v in self.categories_.items()))
        return tuple(self.feature_names_), cats

    def prepare(self, X: Any, horizon_days: int | None = None) -> PreparedFeatures:
        """X converted once for prediction, reusable by every model fitted on the same columns.

        The bundle's three models share one feature layout; converting the rows once instead of four
        times (three predictions and the explanations) is most of a one-row request's time.
        """
        return PreparedFeatures(self._prepare(X, horizon_days), self._layout())

    def accepts(self, prepared: PreparedFeatures) -> bool:
        """Whether `prepared` was built for this model's feature names and category levels."""
        return prepared.layout == self._layout()

    def _check_ready(self, horizon_days: int | None) -> None:
        """Refuse an unfitted model or a horizon other than the one it was trained on."""
        check_fitted(self, "booster_")
        if horizon_days is None:
            return
        whole = isinstance(horizon_days, int | np.integer) and not isinstance(horizon_days, bool)
        if not whole or horizon_days != self.horizon_days_:  # int() let 180.9 and "180" pass as 180
            raise ModelError(
                f"{type(self).__name__} was trained for a {self.horizon_days_}-day horizon and cannot "
                f"predict a {horizon_days!r}-day one; train a model with that horizon_days (a whole "
                "number of days)"
            )

    def _prepare(self, X: Any, horizon_days: int | None = None) -> FloatArray:
        """Check fitted state and horizon, then convert X for prediction."""
        self._check_ready(horizon_days)
        if isinstance(X, PreparedFeatures):
            if not self.accepts(X):
                raise ModelInputError(
                    f"{type(self).__name__}: the prepared rows were built for other feature columns"
                )
            return X.matrix
        return self._to_matrix(X, reset=False)

    # ----------------------------------------------------------------------------------------------
    # hooks for subclasses
    # ----------------------------------------------------------------------------------------------

    def _encode_target(self, y: Any, sample_weight: FloatArray | None) -> FloatArray:
        """The training target as floats (subclasses validate and encode)."""
        raise NotImplementedError

    def _calibrate(
        self,
        raw: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None,
        matrix: FloatArray | None = None,
    ) -> None:
        """Fit the calibration from held-out predictions ``raw`` of the held-out rows ``matrix``."""

    def _calibrate_in_sample(
        self, matrix: FloatArray, y: FloatArray, sample_weight: FloatArray | None
    ) -> None:
        """Set the calibration when there is no held-out snapshot (after the final model is trained)."""

    def _refitted(self, held_out: FloatArray, sample_weight: FloatArray | None) -> None:
        """Adjust label-free state to the refitted model, given the held-out rows (after the refit)."""

    def _extra_state(self) -> dict[str, Any]:
        """JSON-able fitted state of the subclass (calibration, classes)."""
        return {}

    def _check_trainable(
        self, target: FloatArray, weight: FloatArray | None, held_out: NDArray[np.bool_] | None
    ) -> None:
        """Refuse a target LightGBM cannot learn from, before it fails with a bare error (none here)."""

    def _validating(
        self, target: FloatArray, weight: FloatArray | None, held_out: NDArray[np.bool_] | None
    ) -> NDArray[np.bool_] | None:
        """The held-out mask to use, or None when its target cannot validate this model (any here)."""
        return held_out

    def _fit_start(self, matrix: FloatArray, target: FloatArray, weight: FloatArray | None) -> None:
        """Set up `_init_score` from the training rows before any boosting (no starting score here)."""

    def _init_score(self, matrix: FloatArray) -> FloatArray | None:
        """A per-row starting score in raw units that boosting corrects (None: LightGBM's own start)."""
        return None

    def _training_target(self, target: FloatArray) -> FloatArray:
        """The target as LightGBM learns it (as given here)."""
        return target

    def _booster_predict(
        self, booster: lgb.Booster, matrix: FloatArray, num_iteration: int | None = None
    ) -> FloatArray:
        """`booster`'s prediction after its link function, from `_init_score` when there is one."""
        threads = self._predict_threads(matrix)
        start = self._init_score(matrix)
        if start is None:
            return np.asarray(
                booster.predict(matrix, num_iteration=num_iteration, num_threads=threads), dtype=np.float64
            )
        raw = booster.predict(matrix, num_iteration=num_iteration, raw_score=True, num_threads=threads)
        return self._link(np.asarray(raw, dtype=np.float64) + start)

    def _link(self, raw: FloatArray) -> FloatArray:
        """The inverse link from raw score to prediction: exp, the log link of the value models.

        They are the only models with a starting score.
        """
        return np.exp(raw)

    def _start_contributions(self, matrix: FloatArray, contrib: FloatArray) -> FloatArray:
        """Per-feature contributions with the starting score's part added (no starting score: as given)."""
        return contrib

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `_extra_state` wrote."""

    # ----------------------------------------------------------------------------------------------
    # training
    # ----------------------------------------------------------------------------------------------

    def _dataset(
        self,
        X: FloatArray,
        y: FloatArray,
        weight: FloatArray | None,
        reference: lgb.Dataset | None = None,
    ) -> lgb.Dataset:
        """A LightGBM Dataset with kamml's feature names and categorical columns."""
        cats = [i for i, name in enumerate(self.feature_names_) if name in self.categories_]
        return lgb.Dataset(
            X,
            label=y,
            weight=weight,
            init_score=self._init_score(X),
            feature_name=_lgb_names(self.feature_names_),
            categorical_feature=cats,
            reference=reference,
            free_raw_data=True,
        )

    def _check_label_horizon(self, X: Any, y: Any) -> None:
        """A ModelInputError when X or y says its labels cover another window than ``horizon_days``.

        `kamml.features.build_training_frame` records the window in ``attrs["horizon_days"]``; a model
        fitted to 90-day labels with the default 180 recorded 180 days, then refused ``predict`` at 90
        and scored at 180 with half the value.
        """
        for name, values in (("X", X), ("y", y)):
            labelled = getattr(values, "attrs", {}).get("horizon_days")
            if labelled is not None and int(labelled) != int(self.horizon_days):
                raise ModelInputError(
                    f"{name}'s labels cover {int(labelled)} days (attrs['horizon_days'], from "
                    f"build_training_frame), but {type(self).__name__} has horizon_days={self.horizon_days}: "
                    f"set horizon_days={int(labelled)}, or build the frame with time.horizon_days "
                    f"{self.horizon_days}"
                )

    @contextlib.contextmanager
    def _refusal_named(self) -> Iterator[None]:
        """LightGBM's refusal of a ``params`` value as an `InvalidParameterError` naming the key as given.

        LightGBM said ``Parameter num_leaves should be of type int, got "31.5"`` for ``num_leaf: 31.5``
        (its main name, not the key given) as its own LightGBMError, no ValueError as scikit-learn's
        estimators raise for a bad parameter at fit. The reading is the config's (`lightgbm_refusal`);
        another LightGBM error passes as it is.
        """
        try:
            yield
        except lgb.basic.LightGBMError as exc:
            params = self.params or {}
            refused = lightgbm_refusal(str(exc), params)
            if refused is None:
                raise
            key, param, rule = refused
            main = "" if key == param else f" (LightGBM's {param})"
            raise InvalidParameterError(
                f"{type(self).__name__}: params key {key!r}{main} must be {rule}, got {params[key]!r}"
            ) from None

    def _train(
        self,
        params: dict[str, Any],
        X: FloatArray,
        y: FloatArray,
        weight: FloatArray | None,
        rounds: int,
        valid: tuple[FloatArray, FloatArray, FloatArray | None] | None = None,
    ) -> lgb.Booster:
        """Train one booster, with early stopping on `valid` when given and enabled.

        Logged: the start and the end (debug), and progress every `PROGRESS_SECONDS` (`TrainingProgress`).
        """
        name = type(self).__name__
        logger.debug(
            "%s: training on %s rows x %d features, up to %d rounds%s",
            name,
            f"{X.shape[0]:,}",
            X.shape[1],
            rounds,
            f", held out {valid[0].shape[0]:,} rows" if valid is not None else "",
        )
        start = time.monotonic()
        train_set = self._dataset(X, self._training_target(y), weight)
        progress = TrainingProgress(name, rounds)
        if valid is None:
            with no_autolog(), self._refusal_named():
                booster = lgb.train(params, train_set, num_boost_round=rounds, callbacks=[progress])
            logger.debug(
                "%s: %d rounds in %.1f s", name, booster.current_iteration(), time.monotonic() - start
            )
            return booster
        valid_set = self._dataset(valid[0], self._training_target(valid[1]), valid[2], reference=train_set)
        record: dict[str, Any] = {}
        callbacks: list[Any] = [lgb.record_evaluation(record), progress]
        if self.early_stopping_rounds is not None:
            callbacks.append(
                lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)
            )
        with no_autolog(), self._refusal_named():
            try:
                booster = lgb.train(
                    params,
                    train_set,
                    num_boost_round=rounds,
                    valid_sets=[valid_set],
                    valid_names=["latest_snapshot"],
                    callbacks=callbacks,
                )
            except ValueError as exc:
                if NO_EVAL_METRIC not in str(exc):
                    raise
                raise ValueError(no_metric_message(name, params.get("metric"))) from None
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        logger.debug(
            "%s: best round %d of %d in %.1f s",
            name,
            best,
            booster.current_iteration(),
            time.monotonic() - start,
        )
        self.validation_score_ = {
            metric: float(values[best - 1]) for metric, values in record.get("latest_snapshot", {}).items()
        }
        return booster

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        snapshot: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> Self:
        """Train the model; with `snapshot`, validate on the latest snapshot, calibrate, then refit on all.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Features; ``category`` and string columns are categorical (an object column of numbers
            only, such as ``Decimal`` from SQL, is a number), NaN means missing. Category levels are
            text, numbers or true/false, as JSON holds them (dates and bytes are refused). A fit that
            raises leaves a fitted model as it was.
        y : array-like of shape (n_samples,)
            Target over the next ``horizon_days`` days.
        snapshot : array-like of shape (n_samples,), optional
            The snapshot (cutoff date) of each row, as in `kamml.features.build_training_frame`. With
            two or more distinct snapshots the latest is held out for early stopping and calibration,
            then the model is refitted on every row with the best number of iterations.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights. A snapshot whose rows all weigh 0 is not held out (its metric
            would be 0 / 0): the latest snapshot with weight is, with a logged warning. Rows of weight
            0 still shape LightGBM's bins and leaf counts (module docs): drop them to leave them out.
            Weights are absolute, not relative: LightGBM's L2 penalty and least leaf hessian are sums
            over rows, so weights of 1 / n (or 1,000) fit another model than weights of 1. Keep them
            near 1 per row (a row's count, or a share times the number of rows).

        Returns
        -------
        self
        """
        state = _fitted_state(self)
        try:
            return self._fit(X, y, snapshot, sample_weight)
        except BaseException:
            _restore_state(self, state)  # a failed refit leaves the model as it was, not half refitted
            raise

    def _fit(self, X: Any, y: Any, snapshot: ArrayLike | None, sample_weight: ArrayLike | None) -> Self:
        """`fit`'s work; `fit` restores the fitted state when it raises."""
        self._validate_params()
        self._check_param_names()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        params = self.lgb_params()
        with self._refusal_named():  # before the data are read, and without LightGBM's own stderr line
            lightgbm_parses(params)
        _warn_more_threads_than_cores(int(params["num_threads"]))
        rounds = self._num_rounds()
        matrix = self._to_matrix(X, reset=True)
        params = self._monotone_params(params)
        n_rows = matrix.shape[0]
        if n_rows < 2:
            plural = "" if n_rows == 1 else "s"  # "1 sample": the wording sklearn's estimator checks look for
            raise ModelInputError(f"{type(self).__name__} needs at least 2 rows, got {n_rows} sample{plural}")
        weight = check_sample_weight(sample_weight, n_rows)
        target = self._encode_target(y, weight)
        if target.shape[0] != n_rows:
            raise ModelInputError(f"X has {n_rows:,} rows but y has {target.shape[0]:,}")
        self._check_label_horizon(X, y)
        self.horizon_days_ = int(self.horizon_days)
        self.validation_score_ = {}
        self.best_iteration_ = rounds

        held_out = self._validating(target, weight, self._held_out(snapshot, n_rows, weight))
        self._check_trainable(target, weight, held_out)
        self._fit_start(matrix, target, weight)
        if held_out is not None:
            keep = ~held_out
            w_fit = None if weight is None else weight[keep]
            w_val = None if weight is None else weight[held_out]
            first = self._train(
                params,
                matrix[keep],
                target[keep],
                w_fit,
                rounds,
                valid=(matrix[held_out], target[held_out], w_val),
            )
            if self.early_stopping_rounds is not None and first.best_iteration > 0:
                self.best_iteration_ = int(first.best_iteration)
                self._warn_if_stopped_at_once(rounds)
            raw = self._booster_predict(first, matrix[held_out], num_iteration=self.best_iteration_)
            self._calibrate(raw, target[held_out], w_val, matrix[held_out])
            logger.info(
                "%s: %s earlier rows, validated on the latest snapshot's %s; best iteration %d of %d; %s",
                type(self).__name__,
                f"{int(keep.sum()):,}",
                f"{int(held_out.sum()):,}",
                self.best_iteration_,
                rounds,
                _scores_text(self.validation_score_),
            )
        self.booster_ = self._train(params, matrix, target, weight, self.best_iteration_)
        if held_out is None:
            self._calibrate_in_sample(matrix, target, weight)
        else:
            self._refitted(matrix[held_out], w_val)
        return self

    def _warn_if_stopped_at_once(self, rounds: int) -> None:
        """Warn when early stopping kept one tree: the held-out snapshot saw no gain from a second.

        Such a model is nearly a constant (one tree of `num_leaves` values), so its ranking and the
        drivers named from it carry little; with the INFO log alone it went unnoticed.
        """
        if self.best_iteration_ == 1 and rounds > 1:
            logger.warning(
                "%s: early stopping kept 1 tree of %d: no second tree improved the held-out snapshot "
                "(%s), so the model gives nearly the same %s to every account and the reasons it names "
                "say little. Try a lower learning_rate, more training rows or snapshots, or "
                "early_stopping_rounds=None",
                type(self).__name__,
                rounds,
                _scores_text(self.validation_score_),
                self.target_words,
            )

    def _held_out(
        self, snapshot: ArrayLike | None, n_rows: int, weight: FloatArray | None = None
    ) -> NDArray[np.bool_] | None:
        """Mask of the rows of the latest snapshot, or None when there is nothing earlier to train on.

        Rows of zero weight count as absent: a latest snapshot that weighs nothing cannot validate
        (LightGBM's metric on it is NaN and early stopping kept one tree), so the latest snapshot with
        weight is held out, with any later rows (their zero weight keeps them out of its metric).
        """
        if snapshot is None:
            return None
        snaps = pd.Index(np.asarray(snapshot).ravel())
        if len(snaps) != n_rows:
            raise ModelInputError(f"snapshot has {len(snaps):,} values for {n_rows:,} rows")
        if snaps.hasnans:
            raise ModelInputError("snapshot must not contain missing values")
        if snaps.nunique() < 2:
            logger.info("%s: one snapshot only; no held-out validation", type(self).__name__)
            return None
        weighted = snaps if weight is None else snaps[weight > 0]
        if weighted.nunique() < 2:
            logger.warning(
                "%s: only snapshot %s has rows of positive weight; no held-out validation",
                type(self).__name__,
                weighted.max(),
            )
            return None
        if weighted.max() < snaps.max():
            logger.warning(
                "%s: every row after snapshot %s has zero weight, so that snapshot, the latest with "
                "weight, is held out",
                type(self).__name__,
                weighted.max(),
            )
        latest = np.asarray(snaps >= weighted.max(), dtype=bool)
        if (~latest).sum() < 2:
            logger.info(
                "%s: fewer than 2 rows before the latest snapshot; no held-out validation",
                type(self).__name__,
            )
            return None
        return latest

    # ----------------------------------------------------------------------------------------------
    # prediction and explanation
    # ----------------------------------------------------------------------------------------------

    def _raw_predict(self, matrix: FloatArray) -> FloatArray:
        """The booster's prediction (after its link function) for a prepared matrix."""
        return self._booster_predict(self.booster_, matrix)

    def explain(
        self, X: Any, top: int = 3, *, horizon_days: int | None = None, by: Literal["up", "size"] = "up"
    ) -> pd.DataFrame:
        """The features pushing each row's prediction up the most, from LightGBM's ``pred_contrib``.

        Contributions are TreeSHAP values in raw-score units (log of the expected value for the value
        models; for churn, the score its calibration map takes: log-odds, or the blend's units); only
        positive ones are listed, so a row may have fewer drivers. ``by="size"`` lists the largest by
        absolute value instead, of either sign.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Features, as in `fit`.
        top : int, default 3
            How many drivers per row, >= 1; more than the model has features gives one column pair
            per feature (as the REST endpoint's ``top_drivers`` names at most every feature).
        horizon_days : int, optional
            Refused when it differs from the horizon the model was trained on.
        by : {"up", "size"}, default "up"
            The largest positive contributions, or the largest by absolute value.

        Returns
        -------
        pandas.DataFrame
            Indexed like X (a RangeIndex for arrays), columns ``driver_1``, ``contribution_1``, ...,
            ``driver_{k}``, ``contribution_{k}`` with k = min(top, number of features); a row with
            fewer drivers (``by="up"`` lists positive contributions only) has None with contribution NaN.
        """
        top = check_count(top, "top", minimum=1)
        names, values = self.top_contributions(X, top, horizon_days=horizon_days, by=by)
        rows = names.shape[0]
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(rows)
        columns: dict[str, Any] = {}
        for j in range(names.shape[1]):  # min(top, features): no columns that no feature could fill
            columns[f"driver_{j + 1}"] = names[:, j]
            columns[f"contribution_{j + 1}"] = values[:, j]
        return pd.DataFrame(columns, index=index)

    def top_contributions(
        self,
        X: Any,
        top: int = 3,
        *,
        horizon_days: int | None = None,
        by: Literal["up", "size"] = "up",
    ) -> tuple[NDArray[np.object_], FloatArray]:
        """`explain` as arrays: feature names (None where none is left) and contributions, rows x top.

        `by` "up" keeps the largest positive contributions (what raises the prediction), "size" the
        largest by absolute value, either sign (what moves it most); zero contributions are never listed.
        """
        if by not in ("up", "size"):
            raise ValueError(f"by must be 'up' or 'size', got {by!r}")
        top = check_count(top, "top")
        matrix = self._prepare(X, horizon_days)
        contrib = self._contributions(matrix)[:, : len(self.feature_names_)]
        contrib = self._start_contributions(matrix, contrib)
        k = min(int(top), contrib.shape[1])
        key = -contrib if by == "up" else -np.abs(contrib)
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(contrib, order, axis=1)
        names = np.asarray(self.feature_names_, dtype=object)[order]
        kept = values > 0 if by == "up" else values != 0
        names[~kept] = None
        return names, np.where(kept, values, np.nan)

    def prepare_explanations(self) -> None:
        """Build the booster's TreeSHAP tables and load their compiled kernels now, not at the first call.

        A server calls it when it loads the model, so the first request that asks for drivers does not
        wait for them (about 0.5 s for a few hundred trees, 1.5 s more where no compiled kernel is cached).
        """
        check_fitted(self, "booster_")
        self._contributions(np.zeros((1, len(self.feature_names_))))  # builds and caches the tables

    def _contributions(self, matrix: FloatArray) -> FloatArray:
        """LightGBM's ``pred_contrib`` values (features, then the expected value) of prepared rows.

        Computed from the booster's leaf tables (`kamml.models._treeshap`: the same TreeSHAP values,
        four to six times faster on depth-5 trees) when the trees allow, else by ``pred_contrib`` itself.
        """
        from kamml.models._treeshap import contributions, leaf_tables

        threads = self._predict_threads(matrix)
        tables = leaf_tables(self.booster_, matrix.shape[1])
        if tables is not None:
            return contributions(tables, matrix, threads)
        values = self.booster_.predict(matrix, pred_contrib=True, num_threads=threads)
        return np.asarray(values, dtype=np.float64)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        """LightGBM feature importance (``gain`` or ``split``) by feature name, largest first."""
        check_fitted(self, "booster_")
        values = self.booster_.feature_importance(importance_type=importance_type)
        return pd.Series(values, index=self.feature_names_, name=importance_type).sort_values(ascending=False)

    # ----------------------------------------------------------------------------------------------
    # JSON state
    # ----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as a JSON-able dict: LightGBM model text, features, categories, calibration.

        No pickle anywhere: `from_dict` rebuilds an estimator giving identical predictions.
        """
        check_fitted(self, "booster_")
        return {
            "model": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "params": self._json_params(),
            "horizon_days": self.horizon_days_,
            "n_features_in": self.n_features_in_,
            "feature_names": list(self.feature_names_),
            "feature_names_in": hasattr(self, "feature_names_in_"),
            "categories": {k: list(v) for k, v in self.categories_.items()},
            "best_iteration": self.best_iteration_,
            "validation_score": dict(self.validation_score_),
            "booster": self.booster_.model_to_string(),
            **self._extra_state(),
        }

    def _json_params(self) -> dict[str, Any]:
        """`get_params` as JSON can hold it: numpy numbers as Python's, `monotone` with text names.

        A grid search's np.int64 passed every check and then broke `to_dict` and `ModelBundle.save`.
        """
        params: dict[str, Any] = to_plain(self.get_params(deep=False))
        if params.get("monotone"):
            params["monotone"] = {str(k): int(v) for k, v in params["monotone"].items()}
        return params

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from `to_dict` output; refuses another model class or format version."""
        kind = state.get("model")
        if kind != cls.__name__:
            raise ModelError(f"{cls.__name__}.from_dict got the state of a {kind!r} model")
        version = state.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"{cls.__name__} state has format version {version!r}; this kamml reads {FORMAT_VERSION}"
            )
        try:
            model = cls(**state["params"])
        except TypeError as exc:  # a setting this kamml does not know (monotone, to an older one)
            raise ModelError(
                f"{cls.__name__} state has settings this kamml does not know ({exc}); it was saved by a "
                "newer kamml: score with that version"
            ) from None
        model.booster_ = lgb.Booster(model_str=state["booster"])
        model.horizon_days_ = int(state["horizon_days"])
        model.n_features_in_ = int(state["n_features_in"])
        model.feature_names_ = [str(n) for n in state["feature_names"]]
        width = model.booster_.num_feature()
        if len(model.feature_names_) != width or model.n_features_in_ != width or model.horizon_days_ < 1:
            raise ValueError(
                f"{cls.__name__} state names {len(model.feature_names_)} features (n_features_in "
                f"{model.n_features_in_}) for a LightGBM model of {width}, horizon_days "
                f"{model.horizon_days_}: they must agree, and the horizon be 1 day or more"
            )
        if state["feature_names_in"]:
            model.feature_names_in_ = np.asarray(model.feature_names_, dtype=object)
        model.categories_ = {str(k): list(v) for k, v in state["categories"].items()}
        stray = sorted(set(model.categories_) - set(model.feature_names_))
        if stray:
            raise ValueError(f"{cls.__name__} state has category levels of columns it lacks: {stray}")
        model.best_iteration_ = int(state["best_iteration"])
        model.validation_score_ = {str(k): float(v) for k, v in state.get("validation_score", {}).items()}
        model._load_extra_state(state)
        return model


class LGBMValueRegressor(LGBMModel):
    """Base of the value regressors (tweedie or poisson, log link): non-negative targets, total scaling.

    With ``calibrate_total=True`` the predictions are multiplied by ``scale_``, an actual total divided by
    a predicted total, clipped to [0.5, 2]. With a held-out snapshot these are the latest snapshot's
    totals under the first model (trained on the earlier snapshots): that carries the drift in level
    between snapshots into the forecast. Without one they are the training rows' totals under the final
    model. Either way it also corrects the tweedie objective's known bias in the total: for a variance
    power above 1 the log-link score equations weight residuals by mu^(1 - p), so, unlike poisson, the
    fitted total need not equal the actual total.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LGBMModel._parameter_constraints,
        "calibrate_total": ["boolean"],
    }

    #: Bounds of the total scaling, so that one odd snapshot cannot swing the forecast wildly.
    scale_bounds: ClassVar[tuple[float, float]] = (0.5, 2.0)
    #: Smallest value the offset feature counts with, as a share of its mean positive value in training.
    offset_floor_share: ClassVar[float] = 0.1

    calibrate_total: bool
    scale_: float
    label_unit_: float
    start_shift_: float
    offset_floor_: float | None
    offset_mean_: float | None

    # ---- the offset: boosting starts from offset_weight x log(a value feature) instead of a constant

    def _offset_spec(self) -> tuple[str, float] | None:
        """(feature name, weight) of the offset, or None (subclasses without the parameters have none)."""
        name = getattr(self, "offset_feature", None)
        return None if name is None else (str(name), float(getattr(self, "offset_weight", 1.0)))

    def _offset_column(self, matrix: FloatArray, name: str) -> FloatArray:
        """The offset feature's column of a prepared matrix."""
        if name not in self.feature_names_:
            raise ModelInputError(
                f"{type(self).__name__}: offset_feature {name!r} is not among the feature columns"
            )
        if name in self.categories_:  # its codes are no value to start boosting from
            raise ModelInputError(
                f"{type(self).__name__}: offset_feature {name!r} is a categorical column; the offset "
                "takes the log of a positive value"
            )
        return matrix[:, self.feature_names_.index(name)]

    def _fit_start(self, matrix: FloatArray, target: FloatArray, weight: FloatArray | None) -> None:
        """The label unit, and the offset's floor, mean and shift on the training rows.

        The unit is the target's weighted mean (positive: `_check_trainable` ran first). LightGBM learns
        y / unit from a start whose weighted total matches it, so one fit serves dollars, cents or
        millions alike: its L2 penalty and least leaf hessian are absolute, and tweedie's hessians grow
        as the labels' scale to the power 2 - p, so in a small unit they held every leaf near 0 (CDNOW
        in millions of dollars kept one tree and forecast 43 times the spend).
        """
        largest = float(target.max())  # the mean of y / its largest: the sum of y may overflow a float
        self.label_unit_ = float(np.average(target / largest, weights=weight)) * largest
        self.offset_floor_ = self.offset_mean_ = None
        self.start_shift_ = 0.0
        spec = self._offset_spec()
        if spec is None:
            return
        x = self._offset_column(matrix, spec[0])
        positive = x[np.isfinite(x) & (x > 0)]
        if positive.size == 0:
            raise ModelInputError(
                f"{type(self).__name__}: offset_feature {spec[0]!r} has no positive value in training"
            )
        self.offset_floor_ = float(self.offset_floor_share * positive.mean())
        start = self._offset_start(matrix)
        self.offset_mean_ = float(np.average(start, weights=weight))
        share = np.full(start.size, 1.0 / start.size) if weight is None else weight / weight.sum()
        # minus the log of exp(start)'s weighted mean, without overflow: then its mean is 1, as the labels'
        self.start_shift_ = -self.offset_mean_ - float(logsumexp(start - self.offset_mean_, b=share))

    def _offset_start(self, matrix: FloatArray) -> FloatArray:
        """offset_weight x log(the offset feature), at least its floor; missing values count as the floor."""
        spec = self._offset_spec()
        assert spec is not None
        assert self.offset_floor_ is not None
        return spec[1] * np.log(floor_missing(self._offset_column(matrix, spec[0]), self.offset_floor_))

    def _init_score(self, matrix: FloatArray) -> FloatArray | None:
        """The offset start in label units (`_fit_start`), or None without an offset."""
        if self._offset_spec() is None or self.offset_floor_ is None:
            return None
        return self._offset_start(matrix) + self.start_shift_

    def _booster_predict(
        self, booster: lgb.Booster, matrix: FloatArray, num_iteration: int | None = None
    ) -> FloatArray:
        """The booster's prediction of y / unit, back in the target's unit."""
        return super()._booster_predict(booster, matrix, num_iteration) * self.label_unit_

    def _training_target(self, target: FloatArray) -> FloatArray:
        """The target in its label unit (`_fit_start`): y / ``label_unit_``."""
        return target / self.label_unit_

    def _start_contributions(self, matrix: FloatArray, contrib: FloatArray) -> FloatArray:
        """The offset's deviation from its training mean credited to the offset feature."""
        spec = self._offset_spec()
        if spec is None or self.offset_floor_ is None or self.offset_mean_ is None:
            return contrib
        out = contrib.copy()
        out[:, self.feature_names_.index(spec[0])] += self._offset_start(matrix) - self.offset_mean_
        return out

    def __sklearn_tags__(self) -> Any:
        """Declare a non-negative target (tweedie and poisson need y >= 0)."""
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _encode_target(self, y: Any, sample_weight: FloatArray | None) -> FloatArray:
        """Check the target is finite and non-negative (a column vector is accepted with a warning)."""
        target = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        target = column_or_1d(target, warn=True)
        if np.any(target < 0):
            raise ModelInputError(
                f"{type(self).__name__} needs a non-negative target (Negative values in y: "
                f"{int((target < 0).sum()):,} rows); floor refunds at 0 as build_labels does"
            )
        return np.asarray(target, dtype=np.float64)

    def _check_trainable(
        self, target: FloatArray, weight: FloatArray | None, held_out: NDArray[np.bool_] | None
    ) -> None:
        """A ModelInputError when no row to train on has a positive target: tweedie and poisson need one.

        With `held_out` the first model learns only the rows before the latest snapshot, so those must
        have some (a referral programme that started inside the latest snapshot's window has none).
        """
        mass = target if weight is None else target * weight
        name = type(self).__name__
        if not np.any(mass > 0):
            raise ModelInputError(
                f"{name} needs some positive target to learn from: all {len(target):,} rows have y = 0 "
                "(or zero weight)"
            )
        if held_out is not None and not np.any(mass[~held_out] > 0):
            raise ModelInputError(
                f"{name} needs some positive target before the latest snapshot: its "
                f"{int((~held_out).sum()):,} earlier rows all have y = 0 (or zero weight), so nothing can "
                "be learnt before the held-out snapshot; give more snapshots with a positive target, or "
                "fit without snapshot"
            )

    def _calibrate(
        self,
        raw: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None,
        matrix: FloatArray | None = None,
    ) -> None:
        """Scale factor matching the predicted total of `raw` to the actual total of `y`."""
        self.scale_ = 1.0
        if not self.calibrate_total:
            return
        w = np.ones_like(y) if sample_weight is None else sample_weight
        unit = self.label_unit_  # totals in label units: in the amounts' own they may overflow a float
        predicted, actual = float(np.dot(w, raw / unit)), float(np.dot(w, y / unit))
        low, high = self.scale_bounds
        if predicted > 0 and actual > 0:
            self.scale_ = float(np.clip(actual / predicted, low, high))
            if self.scale_ in (low, high):  # at 2.0 it read as any other factor, without a word
                logger.warning(
                    "%s: the latest training snapshot's actual %s totals %.3g times what the earlier "
                    "snapshots predicted for it, but the model's correction of its total stops at %g times "
                    "(the total scale's clip), so the predicted %s is likely too %s (a level moving faster "
                    "than that, or a few large values); the ranking of accounts by it holds, but take its "
                    "amounts, and their weight in the plan, as rough",
                    type(self).__name__,
                    self.target_words,
                    actual / predicted,
                    self.scale_,
                    self.target_words,
                    "low" if self.scale_ == high else "high",
                )
        elif predicted > 0 and actual == 0:  # the strongest drop of all: it was left at 1, uncorrected
            self.scale_ = float(low)
            logger.warning(
                "%s: nothing was spent (or referred) in the latest snapshot's label window against a "
                "predicted %.4g: total scale at its lower bound %.2g",
                type(self).__name__,
                predicted * unit,
                low,
            )
        logger.info("%s: total scale %.4f from the latest snapshot", type(self).__name__, self.scale_)

    def _calibrate_in_sample(
        self, matrix: FloatArray, y: FloatArray, sample_weight: FloatArray | None
    ) -> None:
        """No held-out snapshot: match the predicted total on the training rows to their actual total."""
        self._calibrate(self._raw_predict(matrix), y, sample_weight)

    def _extra_state(self) -> dict[str, Any]:
        """The total scale, the label unit, and the offset's floor, mean (None without one) and shift."""
        return {
            "scale": self.scale_,
            "label_unit": self.label_unit_,
            "offset_floor": self.offset_floor_,
            "offset_mean": self.offset_mean_,
            "start_shift": self.start_shift_,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore the total scale, the label unit and the offset's floor, mean and shift.

        A model saved before the label unit learnt y itself from the bare offset:
        unit 1 and shift 0 score it as it was.
        """
        self.scale_ = stored_number(state["scale"], "scale", positive=True)
        self.label_unit_ = stored_number(state.get("label_unit", 1.0), "label_unit", positive=True)
        self.start_shift_ = stored_number(state.get("start_shift", 0.0), "start_shift")
        floor, mean = state.get("offset_floor"), state.get("offset_mean")
        self.offset_floor_ = None if floor is None else stored_number(floor, "offset_floor", positive=True)
        self.offset_mean_ = None if mean is None else stored_number(mean, "offset_mean")
        if self._offset_spec() is not None and self.offset_floor_ is None:
            raise ValueError(f"{type(self).__name__} state has an offset_feature but no offset_floor")

    def predict(self, X: Any, *, horizon_days: int | None = None) -> FloatArray:
        """Expected value over the horizon for each row (>= 0).

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Features with the columns seen in `fit`, in the same order.
        horizon_days : int, optional
            The horizon the caller expects; `ModelError` when it is not the one the model was trained on.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
        """
        matrix = self._prepare(X, horizon_days)
        return self._raw_predict(matrix) * self.scale_
