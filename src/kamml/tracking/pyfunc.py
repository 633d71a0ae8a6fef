"""The MLflow pyfunc around a `ModelBundle`: feature rows in, the scores table's model columns out.

Logged as "models from code" (`_model_code.py` builds it), so MLflow stores no pickle: the bundle is an
artifact folder of JSON and LightGBM text files, and this class is rebuilt from source at load time.
Predictions are row-independent (the bundle's own BG/NBD fit is used, never a refit on the request's
rows), so one row over REST, a chunk in a batch job and a Spark partition all get the same answer.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from kamml.data.validation import NULL_MARKERS
from kamml.errors import KammlError, ModelError, Problem
from kamml.io import TEMPORAL_INFERRED, TEMPORAL_TYPES
from kamml.models._lgbm import SMALL_FRAME_ROWS
from kamml.models.bundle import PREDICTION_COLUMNS, ModelBundle, check_unique_columns

__all__ = ["BUNDLE_ARTIFACT", "NOT_AN_ID_RULE", "OUTPUT_COLUMNS", "KammlPyfunc", "as_frame", "score_frame"]

#: Name of the bundle folder among the pyfunc's artifacts.
BUNDLE_ARTIFACT = "bundle"
#: Columns `predict` returns after the optional account_id: the bundle's prediction columns.
OUTPUT_COLUMNS = PREDICTION_COLUMNS


def score_frame(bundle: ModelBundle, rows: Any, top_drivers: int = 3) -> pd.DataFrame:
    """Scores for feature rows with an optional ``account_id`` column, in the rows' order and index.

    The row-independent prediction the pyfunc serves: the bundle's stored BG/NBD fit is used. Without
    an ``account_id`` column, an index (or index level) named account_id (as `kamml.build_features`
    returns) gives it; a missing id is a `ModelError` (`_check_ids`). `rows` is a DataFrame, or what
    `as_frame` reads as one.
    """
    frame = as_frame(rows)
    check_unique_columns(frame)  # before an empty frame's answer: refused however many rows
    ids = None
    if "account_id" in frame.columns:
        ids = frame["account_id"].to_numpy()
    elif "account_id" in frame.index.names:  # the index, or one level of a MultiIndex
        ids = frame.index.get_level_values("account_id").to_numpy()
    if len(frame) == 0:  # nothing to score, however it was sent
        # ids from a column or the index, as for rows: an empty segment's answer has the columns of any
        columns = _empty_answer()
    else:
        if ids is not None:
            _check_ids(ids)
        _check_feature_rows(bundle, frame)
        columns = bundle.score_columns(frame, refit_btyd=False, top_drivers=top_drivers)
    if ids is not None:
        columns = {"account_id": _integer_ids(ids), **columns}
    index = _answer_index(frame.index, columns)
    if len(frame) > SMALL_FRAME_ROWS:
        return pd.DataFrame(columns, index=index)
    # a request's few rows: its own copies of the arrays, one block each (pandas' copying into
    # consolidated blocks was ~0.1 ms of a one-row request); the same frame to every reader
    owned = {name: v.copy() if isinstance(v, np.ndarray) else v for name, v in columns.items()}
    return pd.DataFrame(owned, index=index, copy=False)


def _check_feature_rows(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    """A named `ModelError` for rows holding none of the model's feature columns: raw table rows.

    A CRM's transactions or accounts rows were refused as 55 missing columns, with advice that the
    accounts table had dropped its columns. A column in another case or with spaces counts as given:
    the missing-columns error names those (`kamml.errors.FeatureMismatchError`).
    """
    columns = frame.columns
    if any(c in columns for c in bundle.features):  # a request's usual case: at the first feature
        return
    needed = [c for c in bundle.features if not c.startswith("btyd_")]  # the bundle adds btyd_ itself
    given = {str(c).strip().lower() for c in frame.columns}
    if not needed or any(c.lower() in given for c in needed):
        return
    names = [str(c) for c in frame.columns]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise ModelError(
        f"features: the rows hold none of the model's {len(needed)} feature columns (they have "
        f"{shown or 'no columns'}): the model scores one row per account of the features "
        "kamml.build_features(data, cutoff, config) makes from the tables (their names and types are in "
        "the model's input_example.json and MLmodel metadata.feature_types), not rows of an input table "
        "such as transactions or accounts"
    )


def _empty_answer() -> dict[str, np.ndarray]:
    """The prediction columns of no rows, typed as rows' answers are (floats, text, whole days).

    Untyped (all object), a batch's empty chunk made ``horizon_days`` and the ids object when
    concatenated with the others, against the signature's double and long.
    """
    empty = {name: np.empty(0, dtype=np.float64) for name in OUTPUT_COLUMNS}
    return {**empty, "drivers": np.empty(0, dtype=object), "horizon_days": np.empty(0, dtype=np.int64)}


def _answer_index(index: pd.Index, columns: Mapping[str, Any]) -> pd.Index:
    """The rows' own index, so ``rows["clv"] = model.predict(rows)["clv"]`` lands on the right rows.

    A fresh 0..n-1 index put every account's score on another row of a frame indexed by account_id (an
    audit). Levels named like an answer column (account_id) lose their name: pandas refuses to group or
    merge on a name that is both a column and an index level.
    """
    if any(name in columns for name in index.names):
        return index.set_names([None if name in columns else name for name in index.names])
    return index


def as_frame(rows: Any) -> pd.DataFrame:
    """Feature rows as a DataFrame: a dict of single values or a Series is one row, never columns.

    pandas refuses a dict of scalars ("you must pass an index") and reads a Series as one column, which
    failed as 55 missing columns. A dict whose values are all lists is columns, and a list of row
    dicts is rows, as pandas reads them; rows without column names (an array, a list of lists) and
    anything else are a `ModelError` saying to pass a DataFrame. No rows (``[]``) are an empty frame.
    """
    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, pd.Series):  # one row, e.g. frame.iloc[i]; its name is not read as an id
        return pd.DataFrame([rows.to_dict()])
    if isinstance(rows, Mapping):
        _refuse_request_body(rows)
        columns = bool(rows) and all(
            pd.api.types.is_list_like(v) and not isinstance(v, Mapping) for v in rows.values()
        )
        rows = dict(rows) if columns else [{key: _scalar(value) for key, value in rows.items()}]
    elif isinstance(rows, (list, tuple)) and rows and all(isinstance(row, Mapping) for row in rows):
        rows = [{key: _scalar(value) for key, value in row.items()} for row in rows]
    elif not isinstance(rows, (list, tuple, np.ndarray)):
        raise ModelError(
            "feature rows must be a pandas DataFrame (or a dict or Series of one row), "
            f"got {type(rows).__name__}"
        )
    elif rows.size if isinstance(rows, np.ndarray) else len(rows):
        # an array or a list of lists (REST's {"inputs": [[...]]}): pandas numbers the columns 0, 1, ...
        shape = rows.shape if isinstance(rows, np.ndarray) else f"{len(rows)} items"
        raise ModelError(
            f"feature rows without column names ({type(rows).__name__}, {shape}): the "
            "model reads its columns by name; pass a DataFrame or records with the columns of its "
            "input_example.json (MLmodel metadata.feature_types), as kamml.build_features makes them"
        )
    try:
        return pd.DataFrame(rows)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot read the feature rows as a table ({exc}); pass a pandas DataFrame") from exc


#: The keys of a body MLflow's server takes at /invocations (the rows under one, beside ``params``).
_REQUEST_KEYS = frozenset({"dataframe_split", "dataframe_records", "inputs", "instances"})


def _refuse_request_body(rows: Mapping[Any, Any]) -> None:
    """A named `ModelError` for a REST request's body given to `predict` in Python.

    ``predict(json.load(open("serving_input_example.json")))`` read the body as one row with a column
    ``dataframe_split`` and was refused as 55 missing columns; its ``params`` would be dropped unread.
    """
    keys = set(rows)
    formats = sorted(keys & _REQUEST_KEYS)
    if formats and keys <= _REQUEST_KEYS | {"params"}:
        raise ModelError(
            f"the feature rows are a REST request's body ({', '.join(formats)}): in Python pass the rows "
            "themselves (a DataFrame, or a list of row dicts) and params=... as predict's argument"
        )


def _scalar(value: Any) -> Any:
    """A 0-d array as its value, as MLflow's server hands over each value of a request's inputs.

    So it reads ``{"inputs": [records]}`` and ``{"inputs": {column: value}}`` (one row), where a category
    arrived as an array and was refused.
    """
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


#: What pandas infers of object ids that hold no list or object (`_check_ids`).
_PLAIN_IDS = frozenset(
    {"string", "integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"}
)


def _check_ids(ids: np.ndarray) -> None:
    """A named `ModelError` for a missing ``account_id``: every row given one needs it, exactly as sent.

    A CRM matches the answer to its accounts by id. Where one is null, pandas (and MLflow's server,
    parsing the request) turns the others into floats, so an id beyond 2**53 came back with other digits.
    A list or an object (JSON's ``[8]``, ``{"id": 8}``) is no id: it was scored and echoed back; nor is
    ``""`` or ``" "`` (the tables' "null or empty id"), nor a null marker such as "NULL" or "nan"
    (`_missing_texts`). Float ids are `_check_float_ids`'.
    """
    # what the ids hold, inferred once in C: each scan in Python took 0.05-0.15 s of 1M ids
    inferred = pd.api.types.infer_dtype(ids, skipna=True) if ids.dtype == object else ""
    if ids.dtype == object and inferred not in _PLAIN_IDS:
        nested = np.flatnonzero([pd.api.types.is_list_like(i) for i in ids])
        if len(nested):
            rows = ", ".join(str(i) for i in nested[:5])
            problem = Problem(
                "features",
                "account_id",
                f"must be one id (a number or text) per row; row(s) {rows} hold a list or an object",
                len(nested),
            )
            raise ModelError(str(problem))
    _check_yes_no_ids(ids, inferred)
    _check_id_kinds(ids, inferred)
    missing, markers = pd.isna(ids), np.zeros(len(ids), dtype=bool)
    if ids.dtype.kind == "U" or inferred in _TEXT_IDS:  # "" and " " are no id, as the tables read them
        blank, markers = _missing_texts(ids)
        missing = missing | blank
    if missing.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(missing)[:5])
        problem = Problem(
            "features",
            "account_id",
            f"missing in row(s) {rows}; give every row its account's id, or leave the column out "
            "(the answer keeps the rows' order)",
            int(missing.sum()),
        )
        raise ModelError(str(problem))
    if markers.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(markers)[:5])
        rule = "a null marker where an id goes (the id is missing, as the input tables read it)"
        examples = tuple(ids[markers][:3])
        problem = Problem("features", "account_id", f"{rule}; row(s) {rows}", int(markers.sum()), examples)
        raise ModelError(str(problem))
    _check_float_ids(ids, inferred)
    _check_decimal_ids(ids, inferred)


#: What pandas infers of object ids that are no id (dates, times, durations, bytes, complex numbers).
_NOT_IDS = TEMPORAL_INFERRED | {"interval", "bytes", "complex"}
#: What pandas infers of object ids that may hold one of those beside ids (`_check_id_kinds`).
_MIXED_IDS = frozenset({"mixed", "mixed-integer"})
#: The Python types of those values (`kamml.io.TEMPORAL_TYPES`, and intervals, bytes, complex numbers).
_NOT_ID_TYPES = (*TEMPORAL_TYPES, pd.Interval, bytes, complex)
NOT_AN_ID_RULE = (
    "not an id (an id is a whole number or a text, as the input tables and the scores read an account_id; "
    "dates, times, durations, bytes and complex numbers are refused there too)"
)


def _check_id_kinds(ids: np.ndarray, inferred: str) -> None:
    """A named `ModelError` for ids of dates, times, durations, bytes or complex numbers.

    The input tables refuse such an account_id ("wrong type: expected whole numbers or text"); the
    pyfunc scored the rows and echoed them back as accounts. Typed arrays cost one look at their dtype,
    object ones pandas' inference (made once, `_check_ids`), and only a mix a scan.
    """
    if ids.dtype.kind in "mMcSV":
        bad = np.ones(len(ids), dtype=bool)
    elif ids.dtype == object and inferred in _NOT_IDS:
        bad = ~pd.isna(ids)
    elif ids.dtype == object and inferred in _MIXED_IDS:
        bad = np.array([isinstance(i, _NOT_ID_TYPES) for i in ids], dtype=bool)
    else:
        return
    if bad.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
        examples = tuple(ids[bad][:3])
        problem = Problem(
            "features", "account_id", f"{NOT_AN_ID_RULE}; row(s) {rows}", int(bad.sum()), examples
        )
        raise ModelError(str(problem))


#: What pandas infers of object ids that may hold text (`_missing_texts`).
_TEXT_IDS = frozenset({"string", "mixed", "mixed-integer", "mixed-integer-float"})
#: What pandas infers of object ids that may hold a yes/no value (`_check_yes_no_ids`).
_YES_NO_IDS = frozenset({"boolean", "mixed", "mixed-integer"})


def _check_yes_no_ids(ids: np.ndarray, inferred: str) -> None:
    """A named `ModelError` for a yes/no id (JSON's ``true``): the tables refuse a boolean account_id.

    The server scored it and echoed it back as an account. Scanned only where pandas infers booleans
    or a mix, so text and number ids cost nothing more.
    """
    if ids.dtype.kind == "b":
        bad = np.ones(len(ids), dtype=bool)
    elif inferred in _YES_NO_IDS:  # pandas' inference of object ids (`_check_ids`)
        bad = np.array([isinstance(i, bool | np.bool_) for i in ids], dtype=bool)
    else:
        return
    if bad.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
        rule = "a yes/no value where an id goes (an id is a whole number or a text)"
        problem = Problem(
            "features", "account_id", f"{rule}; row(s) {rows}", int(bad.sum()), tuple(ids[bad][:3])
        )
        raise ModelError(str(problem))


#: The blanks whose presence at either end makes the input tables strip an id's text of every blank
#: (`kamml.data.validation._trim`): "NULL\r" stays an id there, " NULL\r" is a null marker.
_ID_SPACES = " \t\n"
#: The longest null marker (`_missing_texts` looks up only texts no longer).
_LONGEST_MARKER = max(map(len, NULL_MARKERS))


def _missing_texts(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where text ids are blank, and where a null marker ("NULL", " nan "): as the input tables read them.

    `kamml score` refuses both in its tables ("null or empty id", "a null marker where an id goes"), and
    the server echoed them as accounts. One loop: about 0.1 s of 1M text ids and a few us of one (pandas'
    ``.str`` took 0.5 s of 1M, and its arrays 0.26 ms of a one-row request).
    """
    blank, markers = np.zeros(len(ids), dtype=bool), np.zeros(len(ids), dtype=bool)
    for row, value in enumerate(ids):
        if isinstance(value, str):
            text = value.strip() if value[:1] in _ID_SPACES or value[-1:] in _ID_SPACES else value
            if len(text) <= _LONGEST_MARKER:
                if not text:
                    blank[row] = True
                elif text.upper() in NULL_MARKERS:
                    markers[row] = True
    return blank, markers


def _integer_ids(ids: np.ndarray) -> np.ndarray:
    """Whole float ids as integers (7.0 is 7, -0.0 is 0): the signature's long, as the tables read them.

    JSON's ids 1 and 3 beside a 2.0 (pandas, and MLflow's server, read the three as floats) came back 1.0,
    2.0, 3.0: not the ids sent, nor the type the signature states. `_check_ids` has refused any float
    that is not whole or is beyond 2**53; text stays as sent ("7.0" is a code to the CRM that sent it).
    """
    if ids.dtype.kind == "f":
        return ids.astype(np.int64)
    if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=True) in _FLOAT_IDS | _DECIMAL_IDS:
        numbers = float | np.floating | decimal.Decimal
        return np.array([int(i) if isinstance(i, numbers) else i for i in ids], dtype=object)
    return ids


#: What pandas infers of object ids that may hold a float (`_check_float_ids`).
_FLOAT_IDS = frozenset({"floating", "mixed-integer-float", "mixed"})
#: `_check_float_ids`' rules: an id with a fraction, and one a float may have rounded.
_PART_ID = (
    "not a whole number (an id is a whole number or a text, as the input tables and the scores read it; "
    "send a code such as 3.5 as text)"
)
_BIG_FLOAT_ID = (
    "a number beyond 2**53 read as a float (sent with a decimal point, or beside one): a float holds no "
    "more digits, so it may not be the id sent; send ids as whole numbers or text"
)


def _check_float_ids(ids: np.ndarray, inferred: str) -> None:
    """A named `ModelError` for an id sent as a number with a fraction, or as a float beyond 2**53.

    The input tables and `kamml allocate` refuse 3.5 as an id, and the server echoed it; beside it (or
    beside 3.0) pandas reads every id of the request as a float, so 2**60 + 1 came back as 2**60.
    """
    if ids.dtype.kind == "f":
        floats, rows = ids.astype(np.float64), np.arange(len(ids))
    elif inferred in _FLOAT_IDS:  # pandas' inference of object ids (`_check_ids`)
        rows = np.flatnonzero([isinstance(i, float | np.floating) for i in ids])
        floats = ids[rows].astype(np.float64)
    else:
        return
    with np.errstate(invalid="ignore"):
        part = ~np.isfinite(floats) | (floats != np.round(floats))
    big = ~part & (np.abs(floats) >= 2.0**53)
    if part.any():
        bad, rule = part, _PART_ID
    elif big.any():
        bad, rule = big, _BIG_FLOAT_ID
    else:
        return
    where = ", ".join(str(i) for i in rows[bad][:5])
    problem = Problem(
        "features", "account_id", f"{rule}; row(s) {where}", int(bad.sum()), tuple(floats[bad][:3])
    )
    raise ModelError(str(problem))


#: What pandas infers of object ids that may hold a Decimal (`_check_decimal_ids`).
_DECIMAL_IDS = frozenset({"decimal", "mixed", "mixed-integer"})


def _check_decimal_ids(ids: np.ndarray, inferred: str) -> None:
    """A named `ModelError` for a Decimal id with a fraction, as the tables refuse it ("not a whole number").

    The tables read a whole Decimal id as the whole number (`_integer_ids` answers it so); the pyfunc
    scored Decimal("1.5") and echoed it back. A Decimal holds every digit, so no 2**53 rule applies.
    """
    if ids.dtype != object or inferred not in _DECIMAL_IDS:
        return
    rows = np.flatnonzero([isinstance(i, decimal.Decimal) for i in ids])
    bad = np.array([not (i.is_finite() and i == i.to_integral_value()) for i in ids[rows]], dtype=bool)
    if bad.any():
        where = ", ".join(str(i) for i in rows[bad][:5])
        problem = Problem(
            "features", "account_id", f"{_PART_ID}; row(s) {where}", int(bad.sum()), tuple(ids[rows][bad][:3])
        )
        raise ModelError(str(problem))


class KammlPyfunc(PythonModel):
    """kamml's model bundle as an MLflow pyfunc: `predict(feature rows) -> scores`.

    Input: one row per account with the columns of the bundle's feature specification (as built by
    `kamml.build_features`), plus an optional ``account_id`` (a column, or the index when it is named
    account_id, as build_features returns it; never null, blank or a null marker such as "NULL", nor a
    date, duration, bytes or a complex number, and a number only whole and, as a float, below 2**53).
    Output: account_id (when given, as sent but for a whole float, given as the integer), clv, p_churn,
    referral_value, p_alive, expected_purchases, effort_scale (hours that move 63 % of the
    account's value at stake, from the fitted effort response; NaN without one), effort_uplift (that
    response's rise of the purchase rate of a fully served account, the allocation's growth weight;
    NaN without one) and drivers (the top drivers of each model in words). A missing number is None
    (JSON null over REST; NaN is not JSON), so in pandas a column holding one is of object dtype.
    The optional param ``top_drivers`` (default 3) sets how many drivers are named. No cutoff or
    model_uri, as the scores file has: the rows carry no date and MLflow tells a pyfunc no URI of its own,
    so the caller records both (docs/tracking.md, "REST for the CRM").
    """

    def __init__(self) -> None:
        self.bundle: ModelBundle | None = None

    def load_context(self, context: Any) -> None:
        """Load the bundle from the model's artifacts (JSON and LightGBM text, no pickle).

        The models' TreeSHAP tables are built here, so the first request asking for drivers does not
        wait for them.
        """
        self.bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])
        for model in (self.bundle.clv, self.bundle.churn, self.bundle.influence):
            if model is not None:
                model.prepare_explanations()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score feature rows: a DataFrame, or a dict or Series of one row (`as_frame`)."""
        if self.bundle is None:
            raise ModelError("the kamml pyfunc has no bundle: load it with mlflow.pyfunc.load_model")
        try:
            top = _top_drivers((params or {}).get("top_drivers", 3))
            return json_ready(score_frame(self.bundle, model_input, top_drivers=top))
        except KammlError as exc:  # a bad request (rows, values, params): MLflow's server answers HTTP 400
            raise MlflowException.invalid_parameter_value(str(exc)) from exc


def _top_drivers(value: Any) -> int:
    """The ``top_drivers`` param as a count of drivers, 0 or more; anything else is a named `ModelError`."""
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        count = -1
    if isinstance(value, bool) or count < 0 or (count != value and str(count) != str(value).strip()):
        raise ModelError(f"params top_drivers must be a whole number of drivers, 0 or more (got {value!r})")
    return count


def json_ready(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` with every missing or infinite number as None, so MLflow's server answers valid JSON.

    MLflow writes a float NaN as a bare ``NaN``, which JSON does not have: a CRM's parser (JavaScript's
    JSON.parse, Jackson, Go) rejects the whole answer. A column with such a value becomes object dtype
    (numbers and None, JSON null); columns without one keep their dtype.
    """
    out = scores.copy()
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_float_dtype(column.dtype):
            bad = ~np.isfinite(column.to_numpy(dtype=float))
            if bad.any():
                values = column.to_numpy(dtype=object)
                values[bad] = None
                out[name] = values
    return out
