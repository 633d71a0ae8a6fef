"""Reading a scores file as the allocation reads it: CSV, Parquet, or a Spark run's folder of Parquet parts.

`read_scores` matches column names as the input tables match theirs (`scores_renames`), refuses a column
named twice (`repeated_name_problems`) and a CSV that is not comma-separated UTF-8 text, and reads ids as
the input tables read them (000947 keeps its zeros, 450.0 is 450: `lossless_integers`). Kept apart from
the planning of `kamml.allocation.allocate`, which imports it (never the other way round): the scores'
column names live here for both, and `kamml.spark.allocation` shares the same rules.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kamml.config import NA_TEXTS
from kamml.errors import DataError, Problem, SchemaError
from kamml.io import (
    OUTSIDE_INT64_RULE,
    WHOLE_FLOAT_PATTERN,
    binary_kind,
    clean_name,
    is_parquet_name,
    parquet_not_utf8,
    utf8_text,
    visible_files,
)

__all__ = [
    "CSV_ID_COLUMNS",
    "HORIZON_COLUMN",
    "INT64_MAX",
    "INTEGER_TEXT",
    "MISSING_TEXTS",
    "OPTIONAL_COLUMNS",
    "OUTSIDE_INT64_RULE",
    "REQUIRED_COLUMNS",
    "SCORING_COLUMNS",
    "integer_ids",
    "lossless_integers",
    "outside_int64",
    "parquet_name_problems",
    "plain_values",
    "read_scores",
    "refuse_repeated_names",
    "repeated_name_problems",
    "scores_renames",
    "text_ids",
    "text_owners",
    "whole_float_ids",
]

REQUIRED_COLUMNS = ("account_id", "clv", "p_churn")
"""Columns of the scores table that the allocation cannot do without."""

HORIZON_COLUMN = "horizon_days"
"""The scores' column with the horizon in days their predictions (and so the plan's hours) are over."""

OPTIONAL_COLUMNS = ("referral_value", "p_alive", "owner", "drivers", "effort_scale", "effort_uplift")
"""Columns of the scores table that the allocation reads when present (besides cutoff and model_uri)."""

#: Columns of a model's scores that one scoring shares across its rows: a table mixing values of one
#: is several scorings joined (`kamml.allocation.allocate.warn_mixed_scorings`).
SCORING_COLUMNS = ("cutoff", "model_uri")


def scores_renames(names: Sequence[Any]) -> dict[str, str]:
    """Column names to read as the scores column they spell but for case, outer spaces or invisible marks.

    As the input tables match theirs (`kamml.io.clean_name`): a BOM kept before account_id by a tool
    reading a CSV as utf-8, ' clv' after 'account_id, clv', 'P_Churn'. A column named exactly so wins, and
    two that could both be it are left for the missing-column error, not one picked.
    """
    known = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *SCORING_COLUMNS, HORIZON_COLUMN)
    texts = [n for n in names if isinstance(n, str)]
    found: dict[str, list[str]] = {}
    for name in texts:
        key = clean_name(name).lower()
        if name not in known and key in known and key not in texts:
            found.setdefault(key, []).append(name)
    return {alike[0]: key for key, alike in found.items() if len(alike) == 1}


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores table: a Parquet or CSV file (by extension), or a folder of Parquet parts.

    A folder is what a Spark run writes as ``scores.parquet``. DataError if it cannot be read. Ids are
    read as the input tables read them, from either format (`_ids_as_in_the_tables`).
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if source.is_dir() and suffix == ".parquet":
        try:
            return _ids_as_in_the_tables(_renamed(_parquet_frame(source, "scores folder")))
        except SchemaError:  # a ValueError too: its columns break a rule
            raise
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the scores folder {source}: {exc}") from None
    if source.is_dir():
        raise DataError(
            f"scores {source} is a folder not named *.parquet: give the scores file, or the folder of "
            "Parquet parts a Spark run wrote (scores.parquet)"
        )
    if not source.is_file():
        raise DataError(f"scores file not found: {source}")
    if suffix in (".parquet", ".csv") and _is_empty(source):
        raise DataError(
            f"the scores file {source} is empty (no header, no rows): a scores table has a header naming "
            "account_id, clv and p_churn (and any other scores) and one row per account; check the step "
            "that wrote it"
        )
    try:
        if suffix == ".parquet":
            return _ids_as_in_the_tables(_renamed(_parquet_frame(source, "scores file")))
        if suffix == ".csv":
            hint = _separator_hint(source)
            if hint:  # read, a ';'-separated file is one column named like the whole header
                raise DataError(f"cannot read the scores file {source}: {hint}")
            return _read_csv_ids_as_text(source)
    except SchemaError:  # a ValueError too: the file was read, and its columns break a rule
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the scores file {source}: {exc}") from None
    raise DataError(f"cannot read {source}: scores must be a .parquet or .csv file")


def _is_empty(source: Path) -> bool:
    """Whether a scores file holds nothing: no bytes, or (a CSV) only blank lines and a BOM.

    pandas said "No columns to parse from file" and pyarrow "Could not open Parquet input source
    '<Buffer>'". A CSV is read up to its first line that is not blank, so a large file costs one line.
    """
    if source.stat().st_size == 0:
        return True
    if source.suffix.lower() != ".csv":
        return False
    with source.open(encoding="utf-8-sig", errors="replace") as handle:
        return all(not line.strip() for line in handle)


def _parquet_frame(source: Path, what: str) -> pd.DataFrame:
    """Read a Parquet scores file or folder with pandas, text that is not UTF-8 named by its column.

    pandas stopped at such text in a raw ``ArrowException`` ("Wrapping 2\ufffd failed"), not a ValueError.
    """
    try:
        return pd.read_parquet(source)
    except pa.ArrowException as exc:
        problems = parquet_name_problems(source)  # pyarrow's raw "Multiple matches for FieldRef.Name(clv)"
        if problems:
            raise SchemaError(problems) from None
        reason = parquet_not_utf8(source)
        if reason is None and isinstance(exc, OSError | ValueError):
            raise  # read_scores words these
        raise DataError(f"cannot read the {what} {source}: {reason or exc}") from None


def parquet_name_problems(source: Path) -> list[Problem]:
    """`repeated_name_problems` of a Parquet file, or of the first of a folder's parts with any.

    pyarrow and Spark stop at a column named twice in their raw words; shared with `kamml.spark`. A
    folder's parts are its visible Parquet files as the readers see them (`kamml.io.visible_files`): a
    failed writer's ``_temporary/`` part is no part of it.
    """
    parts = [source] if source.is_file() else [p for p in visible_files(source) if is_parquet_name(p.name)]
    for part in parts:
        try:
            names = pq.read_schema(part).names
        except (pa.ArrowException, OSError, ValueError):  # not Parquet: the caller words it
            continue
        problems = repeated_name_problems(names)
        if problems:
            return problems
    return []


#: Why two columns are one scores column though spelled differently (`repeated_name_problems`).
ALIKE_NAMES_RULE = "scores names match ignoring case, outer spaces and invisible marks"


def repeated_name_problems(names: Sequence[Any]) -> list[Problem]:
    """One `Problem` per scores column named more than once, as written or but for case (shared with Spark).

    A name repeated as written is refused whatever the column (pandas renamed a CSV's second clv clv.1;
    Parquet and Spark cannot tell them apart). 'clv' beside 'CLV' or ' clv' is refused for the columns the
    allocation reads, which are matched so (`scores_renames`): pandas planned on 'clv', and Spark, whose
    names ignore case, refused the file; other columns, not read, may differ by case.
    """
    known = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *SCORING_COLUMNS, HORIZON_COLUMN)
    texts = [str(n) for n in names]
    groups: dict[tuple[bool, str], list[str]] = {}  # a read column by its matched name, others as written
    for name in texts:
        key = clean_name(name).lower()
        groups.setdefault((True, key) if key in known else (False, name), []).append(name)
    problems = []
    for (_, key), alike in groups.items():
        if len(alike) < 2:
            continue
        if len(set(alike)) == 1:
            problems.append(
                Problem("scores", alike[0], f"duplicated column name ({len(alike)} columns); keep one")
            )
        else:
            listed = ", ".join(map(repr, alike))
            rule = f"duplicated column name ({len(alike)} columns: {listed}; {ALIKE_NAMES_RULE}); keep one"
            problems.append(Problem("scores", key, rule))
    return sorted(problems, key=lambda p: str(p.column))


def refuse_repeated_names(names: Sequence[Any]) -> None:
    """SchemaError naming each scores column named more than once (`repeated_name_problems`)."""
    problems = repeated_name_problems(names)
    if problems:
        raise SchemaError(problems)


def _separator_hint(source: Path) -> str:
    """Why a scores CSV cannot be read: another file type named .csv, or a header not comma-separated."""
    kind = binary_kind(source)
    if kind is not None:  # its bytes read as a header "separated by tabs" otherwise
        return f"it is {kind}, not CSV text; give it a name with its own extension (a Parquet file: .parquet)"
    with source.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
    for sep, name in ((";", "';'"), ("\t", "tabs")):
        if sep in header and "," not in header:
            return (
                f"its header is separated by {name}, not commas ({header.strip()[:80]!r}); a scores CSV is "
                "comma-separated, as kamml writes it (a spreadsheet in a European locale saves ';')"
            )
    return ""


#: Id columns of a scores or allocation CSV that are read as text: `lossless_integers` decides their type.
CSV_ID_COLUMNS = ("account_id", "owner")

#: An integer's text as Python writes it (no leading zero, no sign but a minus, no spaces).
INTEGER_TEXT = r"0|-?[1-9][0-9]*"


#: Texts pandas' CSV reader takes for a missing value (its default ``na_values``), less "NA": an id or
#: owner written so in a scores file (CSV or Parquet) is missing. "NA" is also a code (North America),
#: an id the input tables accept (`kamml.data.validation.NULL_MARKERS`): read as missing here, a run's
#: own scores with an account "NA" could not be allocated again.
MISSING_TEXTS = NA_TEXTS - {"NA"}


def _read_csv_ids_as_text(source: Path) -> pd.DataFrame:
    """A scores or allocation CSV with `CSV_ID_COLUMNS` read as text, so ids like 000947 keep their zeros."""
    # round_trip: the numbers as written (pandas' faster parser moved the last digit of 1 in 4 clv values,
    # so a plan from the scores CSV differed from the plan from the same scores in Parquet)
    with source.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        header = next((row for row in csv.reader(handle) if row), [])  # pandas skips blank lines too
    refuse_repeated_names(header)  # pandas renames a second clv to clv.1, and the first was planned on
    renames = scores_renames(header)
    ids = [name for name in header if renames.get(name, name) in CSV_ID_COLUMNS]
    # pandas' missing texts for every column, less "NA" for the ids (`MISSING_TEXTS`)
    na_values = {name: sorted(MISSING_TEXTS if name in ids else MISSING_TEXTS | {"NA"}) for name in header}
    options: dict[str, Any] = {
        "dtype": dict.fromkeys(ids, str),
        "float_precision": "round_trip",
        "keep_default_na": False,
        "na_values": na_values,
        # index_col=False: a row with a value more than the header (a trailing ',') made pandas take the
        # first column as the index, every column shifted by one (clv read as the ids)
        "index_col": False,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(source, **options)
        except pd.errors.ParserError:
            # rows of other widths (',' on some, ',,' on others, or none on the first): pandas' raw
            # "Expected 4 fields in line 3, saw 5"; a value past the header is named, empty ones pass
            _refuse_values_past_the_header(source, len(header))
            frame = pd.read_csv(source, usecols=range(len(header)), **options)
        except UnicodeDecodeError:  # Python's "'utf-8' codec can't decode byte 0xfc in position 41"
            raise DataError(f"cannot read the scores file {source}: {_not_utf8(source)}") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):  # pandas dropped values
        _refuse_values_past_the_header(source, len(header))
    frame = frame.rename(columns=renames)
    if "cutoff" in frame and frame["cutoff"].dtype == object:  # CSV keeps no type: dates read back as dates
        frame["cutoff"] = _dates_or_text(frame["cutoff"])
    return _ids_as_in_the_tables(frame)


def _not_utf8(source: Path) -> str:
    """Why a CSV that failed to decode is refused: its first line that is not UTF-8, and what to do.

    Read only after pandas failed; lines are decoded one at a time (a UTF-8 character never spans one).
    """
    where = ""
    with source.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                guess = "UTF-16" if b"\x00" in line else "Latin-1 or Windows-1252"
                where = f" (line {number} holds the byte 0x{line[exc.start]:02x}: {guess}?)"
                break
    return f"it is not UTF-8 text{where}; save it as UTF-8 (kamml reads and writes CSV as UTF-8)"


def _refuse_values_past_the_header(source: Path, n_columns: int) -> None:
    """DataError naming the first line with a value beyond the header's columns; empty ones (',,') pass.

    Read only when pandas warned that rows are longer than the header, so a large file is not read twice.
    """
    with source.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        rows = csv.reader(handle)
        next((row for row in rows if row), None)  # the header
        for row in rows:
            if any(value.strip() for value in row[n_columns:]):
                raise DataError(
                    f"cannot read the scores file {source}: line {rows.line_num} has {len(row)} values but "
                    f"the header names {n_columns} columns ({row[n_columns:][:3]!r} past the last); "
                    "give every value a column name, or remove the values past the header"
                )


def _renamed(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its columns named as the scores columns they spell (`scores_renames`).

    SchemaError for names repeated but for case ('clv' beside 'CLV'): the columns read are matched so.
    """
    refuse_repeated_names(list(frame.columns))
    renames = scores_renames(list(frame.columns))
    return frame.rename(columns=renames) if renames else frame


def _dates_or_text(texts: pd.Series) -> pd.Series:
    """`texts` as timestamps when every one is an ISO date or time (one time zone or none), else as given."""
    try:
        dates = pd.to_datetime(texts, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):  # several time zones: kept as text
        return texts
    return dates if dates.notna().sum() == texts.notna().sum() else texts


def whole_float_ids(ids: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Object ids with whole floats and Decimals as integers (1.0 is id 1, as in a CSV), and where not whole.

    An object column of 1 and 1.0 was two accounts, written "1" and "1.0"; 1.5 was an account too. A
    Decimal (a Parquet decimal as pandas reads it) is read as the input tables read a decimal id:
    Decimal("2.0") is id 2, Decimal("2.5") is not whole; one beyond int64 is kept for `outside_int64`.
    """

    def whole(v: Any) -> Any:
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return int(v)
        if isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value() and _in_int64(v):
            return int(v)
        return v  # a Decimal beyond int64 kept, for `outside_int64` to refuse

    def fraction(v: Any) -> bool:
        if isinstance(v, Decimal):
            return bool(v.is_finite() and v != v.to_integral_value())
        return isinstance(v, float | np.floating) and math.isfinite(v) and not float(v).is_integer()

    return ids.map(whole), ids.map(fraction)


#: The largest id kamml keeps: ids are int64 in the joins, where a uint64 above it wraps or fails.
INT64_MAX = 2**63 - 1


#: What pandas infers for an object column holding no Decimal (`outside_int64` looks no further).
_NO_DECIMALS = frozenset({"string", "integer", "floating", "mixed-integer-float", "empty"})


def outside_int64(ids: pd.Series) -> pd.Series:
    """Where a typed id (uint64, or a Decimal read by `whole_float_ids`) lies beyond int64.

    The input tables refuse such ids (a Parquet uint64 or decimal account_id); the allocation planned on
    them and wrote ids the features' int64 joins cannot hold. Text beyond int64 is a code, as a CSV's
    (`lossless_integers`).
    """
    if pd.api.types.is_unsigned_integer_dtype(ids):
        return ids.gt(INT64_MAX).fillna(False).astype(bool)
    if ids.dtype != object or pd.api.types.infer_dtype(ids, skipna=True) in _NO_DECIMALS:
        return pd.Series(False, index=ids.index)
    return ids.map(lambda v: isinstance(v, Decimal) and v.is_finite() and not _in_int64(v))


def _in_int64(value: Decimal) -> bool:
    """Whether a finite Decimal lies within int64's range."""
    return -INT64_MAX - 1 <= value <= INT64_MAX


def _ids_as_in_the_tables(frame: pd.DataFrame) -> pd.DataFrame:
    """account_id and owner written as text (any scores file) read as the input tables read ids.

    Spaces around an id are the export's: " 1" is account 1 (and then a repeated id), not a second
    account; whole numbers become integers (`lossless_integers`). An account id "119.0" (a float id
    column saved as text) is 119, "007" stays a code, and a float account_id column of whole numbers
    (pandas reads ids with gaps so) is integers: the allocation wrote 450.0, an id a CRM import does not
    match. A Parquet file kept " 1" and "1" as two accounts where a CSV had one (an input audit), and
    an id "" or "NULL" as an account where a CSV read none (`MISSING_TEXTS`).
    """
    for column in CSV_ID_COLUMNS:
        if column not in frame.columns:
            continue
        if column == "owner":  # a Parquet binary owner: its text, then stripped and typed as text owners
            frame[column] = text_owners(frame[column])
        ids = frame[column]
        if pd.api.types.infer_dtype(ids, skipna=True) == "string":
            frame[column] = text_ids(ids, owners=column == "owner")
        elif column == "account_id":
            frame[column] = integer_ids(ids)
    return frame


def text_ids(ids: pd.Series, *, owners: bool = False) -> pd.Series:
    """Ids (or `owners`) held as text, read as the input tables read them: stripped, typed, "" missing.

    Spaces around an id are the export's (" 1" is account 1), `MISSING_TEXTS` ("", "NULL") are no id,
    an account id "119.0" is 119, and whole numbers become integers (`lossless_integers`). Shared by the
    files read and the scores given in memory, so a frame and the file written from it read alike.
    """
    texts = ids.astype(object).where(ids.isna(), ids.astype(str).str.strip())
    texts[texts.isin(MISSING_TEXTS)] = None  # as a CSV reads them: no id
    if not owners:  # an owner "101.0" is rep "101" already (`rep_name`)
        whole = texts.str.fullmatch(WHOLE_FLOAT_PATTERN).eq(True)  # no id: not a match (NaN)
        texts = texts.where(~whole, texts.str.split(".").str[0])
    return lossless_integers(texts, allow_missing=owners)


def integer_ids(ids: pd.Series) -> pd.Series:
    """Account ids of whole floats or Decimals as integers (450.0 is id 450), uint64 ones within int64 int64.

    Shared by the files read (`_ids_as_in_the_tables`) and the scores given in memory, whose float ids
    the allocation table wrote 450.0 (a CSV's "450.0", an id a CRM import does not match). Ids beyond
    int64 are left as they are, for `outside_int64` to refuse.
    """
    if pd.api.types.is_unsigned_integer_dtype(ids) and not outside_int64(ids).any():
        return ids.astype("Int64" if ids.hasnans else np.int64)
    if pd.api.types.is_float_dtype(ids):
        values = ids.to_numpy(dtype=float, na_value=np.nan)
        present = values[~np.isnan(values)]
        if len(present) and np.all(present == np.round(present)) and np.all(np.abs(present) < 2**53):
            return ids.astype("Int64") if len(present) < len(values) else ids.astype(np.int64)
        return ids
    if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=True) not in ("string", "integer"):
        return whole_float_ids(ids)[0]
    return ids


def lossless_integers(texts: pd.Series, *, allow_missing: bool = False) -> pd.Series:
    """`texts` (ids read from a CSV as text) as integers when no id changes by it, else unchanged.

    Integers when every present value is the text of its own integer (no leading zero, sign other than
    a minus, space, decimal point or underscore; within int64): int64, or nullable Int64 when values are
    missing and `allow_missing` (owners). So plain numeric ids keep the integer type a CSV reader gives
    them, and ``000947`` stays ``000947`` instead of becoming 947.

    Examples
    --------
    >>> lossless_integers(pd.Series(["947", "12"])).tolist()
    [947, 12]
    >>> lossless_integers(pd.Series(["000947", "12"])).tolist()
    ['000947', '12']
    """
    present = texts.dropna()
    if present.empty or (len(present) < len(texts) and not allow_missing):
        return texts
    words = present.astype(str)
    if not words.str.fullmatch(INTEGER_TEXT).all():
        return texts
    try:
        numbers = words.astype(np.int64)
    except (OverflowError, ValueError):  # beyond int64
        return texts
    if not (numbers.astype(str) == words).all():  # belt and braces: nothing changed on the way
        return texts
    if len(present) == len(texts):
        return numbers
    nullable = pd.Series(pd.NA, index=texts.index, dtype="Int64", name=texts.name)
    nullable[numbers.index] = numbers  # not through float64, which would round ids beyond 2**53
    return nullable


def text_owners(owners: pd.Series) -> pd.Series:
    """Owners with binary values as their UTF-8 text (the accounts table reads a binary owner as text).

    Bytes that are not UTF-8 stay as they are, for `kamml.allocation.allocate.check_scores` to refuse by name.
    """
    if plain_values(owners) or not owners.map(lambda v: isinstance(v, bytes | bytearray)).any():
        return owners  # typed or plain texts (inferred in C): no per-value look at a million owners
    return owners.map(lambda v: _decoded(v) if isinstance(v, bytes | bytearray) else v)


def _decoded(value: bytes | bytearray) -> str | bytes | bytearray:
    """`value`'s UTF-8 text ("" for b"", which ``utf8_text(v) or v`` kept as bytes), else `value` itself."""
    text = utf8_text(value)
    return value if text is None else text


#: What pandas infers for a column of plain numbers or texts: no value in it needs a look of its own.
_PLAIN_KINDS = frozenset({"string", "integer", "floating", "decimal", "mixed-integer-float", "empty"})


def plain_values(series: pd.Series) -> bool:
    """Whether `series` holds only numbers or only texts (typed, or inferred in C): no lists, no yes/no.

    Saves the per-value look of the scores checks on a million owners' texts.
    """
    return series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) in _PLAIN_KINDS
