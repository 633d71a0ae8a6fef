"""Read input tables onto one Ibis backend without pulling them into memory.

A table can come from a pandas DataFrame, a CSV or Parquet file, a glob of files, a folder of Parquet
(or CSV) parts, or an Ibis table. Files stay where they are: DuckDB or Spark reads them lazily, CSV with
every column as text (so text in a number column is counted by the validator, not a reader crash) and
Parquet with its own types. pandas frames are normalised first (mixed objects become text, time zones
become UTC) so that pyarrow never fails on them, then registered on the backend.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import glob
import gzip
import hashlib
import io
import json
import logging
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as ibis_dt
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kamml.data.contract import TABLES, Kind, column_mapping
from kamml.engine import engine_failure
from kamml.errors import DataError, Problem, SchemaError
from kamml.io import (
    PARQUET_SUFFIXES,
    binary_kind,
    clean_name,
    is_hidden,
    is_parquet_name,
    parquet_not_utf8,
    visible_files,
)

__all__ = [
    "TABLE_KINDS",
    "TABLE_SUFFIXES",
    "RawTable",
    "RemoteTable",
    "backend_errors",
    "delimiter_problem",
    "engine_message",
    "find_table_source",
    "frame_to_arrow",
    "is_attribute_type",
    "is_csv_name",
    "is_hidden",
    "is_parquet_name",
    "more_than_one_source",
    "read_raw",
    "read_table",
    "table_entries",
    "unreadable_hint",
    "untyped_null",
    "visible_files",
]

log = logging.getLogger(__name__)

#: CSV file endings, each also gzipped; a ``.tsv`` is read at tabs (unless data.csv_delimiter says otherwise).
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
_TAB_SUFFIXES = (".tsv", ".tsv.gz")
#: The endings (in any case of letters) of the files kamml reads a table from: found in a data folder by
#: `find_table_source`, given directly, matched by a glob or as a folder's parts alike.
TABLE_SUFFIXES = (*PARQUET_SUFFIXES, *CSV_SUFFIXES)
#: The kinds of table file, as every message that names them lists them.
TABLE_KINDS = ", ".join(TABLE_SUFFIXES)
_GLOB_CHARS = "*?["
_DELIMITER_HINTS = {";": "';'", "|": "'|'", "\t": "a tab", ",": "','"}


def untyped_null(dtype: ibis_dt.DataType) -> bool:
    """Whether a column has Parquet's null type, as pyarrow writes a column holding only nulls.

    DuckDB reads it as a type Ibis does not know (NULL), Spark as int32, made Ibis' null by `_untyped_nulls`.
    It is a column of missing values, as an all-None pandas column or an empty CSV column is, not a column
    of a wrong type.
    """
    if dtype.is_null():
        return True
    raw = getattr(dtype, "raw_type", None)
    return bool(dtype.is_unknown() and raw is not None and str(raw).strip('"').upper() == "NULL")


def is_attribute_type(dtype: ibis_dt.DataType) -> bool:
    """Whether the static features read an accounts column of this type (number, yes/no, text, null)."""
    return bool(dtype.is_numeric() or dtype.is_boolean() or dtype.is_string() or untyped_null(dtype))


@dataclass
class RawTable:
    """One input table as read, before validation.

    Attributes
    ----------
    name : str
        Contract table name (transactions, accounts, ...).
    table : ibis Table or None
        The table on the backend; None when its header alone is fatally broken.
    origin : str
        Where it came from, for messages ("data/transactions.csv", "DataFrame", ...).
    text : bool
        Every column was read as text (CSV), so numbers and dates are parsed by the validator.
    from_file : bool
        Read lazily from files: errors while scanning them are reading errors (`DataError`).
    problems : list of Problem
        Header problems found while reading (duplicated column names, wrong delimiter).
    delimiter : str or None
        The field delimiter a CSV was read with (None for other sources).
    zoned : frozenset of str or None
        The time-zone-aware timestamp columns of Parquet files and DataFrames (engines read them as naive
        UTC, Spark's Ibis types alike); None where the types do not say (Ibis tables, CSV text).
    """

    name: str
    table: ir.Table | None
    origin: str
    text: bool = False
    from_file: bool = False
    problems: list[Problem] = field(default_factory=list)
    delimiter: str | None = None
    zoned: frozenset[str] | None = None


@dataclass(frozen=True)
class RemoteTable:
    """An Ibis table that Spark reads from files at a URI (`kamml.spark.remote_tables`), and that URI.

    Read as the Ibis table, and checked and named as a file read on Spark: a data-quality summary showed
    "[Ibis table]" for it, a read error named no file, and Parquet text that is not UTF-8 passed unchecked.
    """

    table: ir.Table = field(repr=False)
    uri: str


def read_table(
    source: Any, name: str, backend: ibis.BaseBackend, *, delimiter: str | None = None
) -> ir.Table:
    """Read one table as is (no validation, no renaming) onto `backend`.

    Parameters
    ----------
    source : str, Path, pandas.DataFrame or ibis Table
        A CSV or Parquet file, a glob of them, a folder of parts, a frame or an Ibis table.
    name : str
        Table name, used in messages and in the backend's temporary table name.
    backend : ibis.BaseBackend
        The connection that holds every table of a dataset (see `kamml.engine.connect`).
    delimiter : str, optional
        CSV field delimiter; "," when not given.

    Returns
    -------
    ibis Table
        The raw table; CSV columns are all strings.

    Raises
    ------
    DataError
        The source is missing, empty or not a readable table.
    SchemaError
        Its header is broken (duplicated column names, a delimiter that looks wrong).
    """
    raw = read_raw(source, name, backend, delimiter=delimiter)
    if raw.problems:
        raise SchemaError(raw.problems)
    assert raw.table is not None
    return raw.table


def read_raw(
    source: Any,
    name: str,
    backend: ibis.BaseBackend,
    *,
    delimiter: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> RawTable:
    """Read one table and collect its header problems instead of raising them (see `read_table`).

    `mapping` (kamml name -> the user's column, `column_mapping`) says which columns kamml reads; without
    it, the contract's own names. A problem of a column it does not read (Parquet parts disagreeing on its
    time zone) does not stop the run.
    """
    if isinstance(source, pd.DataFrame):
        if source.shape[1] == 0 and not any(level is not None for level in source.index.names):
            return RawTable(
                name, None, "DataFrame", problems=[Problem(name, None, "no columns (an empty DataFrame)")]
            )
        arrow, problems = frame_to_arrow(source, name, ids=_kind_columns(name, mapping, Kind.ID))
        table = _register(backend, name, arrow, nan_is_null=True)
        return RawTable(name, table, "DataFrame", problems=problems, zoned=_frame_zoned(source))
    if isinstance(source, RemoteTable):
        raw = read_raw(source.table, name, backend, delimiter=delimiter, mapping=mapping)
        return replace(raw, origin=source.uri, from_file=True)
    if isinstance(source, ir.Table):
        table = _adopt(source, name, backend)
        dups = _duplicates(table.columns)  # "quantity" and "Quantity ": one was read, the other dropped
        problems = [_duplicate_problem(name, dups, list(table.columns))] if dups else []
        return RawTable(name, table, "Ibis table", problems=problems)
    if isinstance(source, (str, Path)):
        read, numbers = _read_columns(name, mapping), _number_columns(name, mapping)
        return _read_path(str(source), name, backend, delimiter, read, numbers)
    raise DataError(
        f"{name}: cannot read a {type(source).__name__}; give a DataFrame, an Ibis table, "
        f"or the path of a table file ({TABLE_KINDS}), a glob or a folder of parts"
    )


#: The unread table files already warned about (`find_table_source`).
_SAID_UNREAD: set[tuple[str, str, tuple[str, ...]]] = set()


def find_table_source(folder: Path, name: str) -> Path | None:
    """The file or folder holding table `name` inside a data folder, or None when there is none.

    Looks for ``name`` with one of the `TABLE_SUFFIXES` (``name.parquet``, ``name.csv``, ...) and a folder
    of parts ``name/``, or one named as those files are (Spark writes ``name.parquet/``), in any case of
    letters. A hidden file (``.name.csv``) is not looked at, as a folder of parts skips it.

    Raises
    ------
    DataError
        More than one candidate exists, so which one is meant is ambiguous.
    """
    try:
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        entries = []
    matched = set(table_entries(((p.name, p.is_dir()) for p in entries), name))
    found = [p for p in entries if p.name in matched]
    if len(found) > 1:
        raise DataError(more_than_one_source(name, folder, [p.name for p in found]))
    if not found:
        # accounts.xlsx or accounts.csv.zip: the table was taken as not given, without a word (a data audit)
        unread = [p.name for p in entries if p.name.lower().startswith(f"{name.lower()}.") and p.is_file()]
        said = (str(folder), name, tuple(unread))
        if unread and said not in _SAID_UNREAD:  # once: a job resolves its sources several times
            _SAID_UNREAD.add(said)
            log.warning(
                "%s: %s in %s is not a format kamml reads (%s, or a folder of parts): the table is taken "
                "as not given",
                name,
                ", ".join(unread),
                folder,
                TABLE_KINDS,
            )
    return found[0] if found else None


def table_entries(entries: Iterable[tuple[str, bool]], name: str) -> list[str]:
    """The names among a data folder's `entries` (name, is a folder) that hold table `name`.

    ``name`` with one of the `TABLE_SUFFIXES` (a file, or a folder of parts named so), or a folder ``name``,
    in any case of letters; the local reader (`find_table_source`) and `kamml.spark.remote_tables` alike.
    """
    # in any case: Accounts.csv or activities.CSV (as Windows and spreadsheet exports name them) were
    # passed over without a word, as if the folder had no such table
    files = {f"{name}{suffix}".lower() for suffix in TABLE_SUFFIXES}
    # a folder too where a file is looked for: Spark's ``df.write.parquet("data/transactions.parquet")``
    # writes one, and the table was "not found" beside it (and its accounts.parquet/ passed over)
    return [n for n, is_dir in entries if n.lower() in files or (n.lower() == name.lower() and is_dir)]


def more_than_one_source(name: str, folder: object, names: Iterable[str]) -> str:
    """The message of a data folder holding table `name` more than once (`table_entries`)."""
    return f"{name}: more than one source in {folder} ({', '.join(names)}); keep one"


def _read_columns(name: str, mapping: Mapping[str, str] | None) -> frozenset[str] | None:
    """The name keys (`_name_key`) of the columns kamml reads from table `name`; None: every column.

    A contract table's are its columns as mapped (``data.columns``); other columns are dropped, or kept as
    accounts attributes, where no feature reads a date. A table the contract does not know: every column.
    """
    if name not in TABLES:
        return None
    used = mapping if mapping is not None else column_mapping(name)
    return frozenset(_name_key(column) for column in used.values())


def _number_columns(name: str, mapping: Mapping[str, str] | None) -> frozenset[str]:
    """The name keys of table `name`'s columns that validation parses as numbers (amount, quantity, hours)."""
    return _kind_columns(name, mapping, Kind.FLOAT)


def _kind_columns(name: str, mapping: Mapping[str, str] | None, kind: Kind) -> frozenset[str]:
    """The name keys of table `name`'s contract columns of `kind` (ids, numbers), as `mapping` maps them."""
    spec = TABLES.get(name)
    if spec is None:
        return frozenset()
    used = mapping if mapping is not None else column_mapping(name)
    own = {c.name for c in spec.columns if c.kind == kind}
    return frozenset(_name_key(column) for contract, column in used.items() if contract in own)


def _value_columns(name: str, read: frozenset[str] | None) -> frozenset[str] | None:
    """The name keys of the columns whose values kamml reads: `read`, or every column (None) for accounts.

    An accounts column the contract does not name is an attribute, a number, yes/no or text feature
    (`is_attribute_type`), so a type problem there is one of a column kamml reads; only a date is no
    feature, which the time-zone check (`_unread_apart`) takes into account with `read` alone.
    """
    spec = TABLES.get(name)
    return None if spec is not None and spec.keep_extra else read


# --- paths -------------------------------------------------------------------------------------------


def _read_path(
    source: str,
    name: str,
    backend: ibis.BaseBackend,
    delimiter: str | None,
    read: frozenset[str] | None,
    numbers: frozenset[str] = frozenset(),
) -> RawTable:
    """Read a file, a glob or a folder of parts (`read`, `numbers`: see `_read_files`)."""
    path = Path(source).expanduser()
    if any(ch in source for ch in _GLOB_CHARS):
        files = source_files(source)
        if not files:
            hidden = (
                ""
                if not glob.glob(str(path), recursive=True)
                else ": names starting with _ or . are not data"
            )
            raise DataError(f"{name}: no file matches {source}{hidden}")
        base = _glob_base(path)
        _check_part_kinds(files, name, f"{source} matches", base)
        keys = _partition_keys(files, name, f"{source} matches", base)
        return _read_files(files, source, name, backend, delimiter, base, keys, read, numbers)
    if path.is_dir():
        parts = visible_files(path)
        _check_part_kinds(parts, name, f"folder {path} holds", path)
        parquet, csv = [p for p in parts if _is_parquet(p)], [p for p in parts if _is_csv(p)]
        if parquet and csv:  # the CSV parts were dropped without a word
            raise DataError(
                f"{name}: folder {path} holds both Parquet ({parquet[0].name}, ...) and CSV "
                f"({csv[0].name}, ...) parts: keep one format"
            )
        files = parquet or csv
        if not files:
            raise DataError(f"{name}: folder {path} holds no table files ({TABLE_KINDS})")
        keys = _partition_keys(files, name, f"folder {path} holds", path)
        return _read_files(files, str(path), name, backend, delimiter, path, keys, read, numbers)
    if not path.exists():
        raise DataError(f"{name}: file not found: {path}")
    return _read_files([path], str(path), name, backend, delimiter, path.parent, (), read, numbers)


def source_files(source: str | Path) -> list[Path]:
    """The files a table's source stands for: a glob's matches, a folder's visible parts, or the file."""
    path = Path(source).expanduser()
    if any(ch in str(source) for ch in _GLOB_CHARS):
        return _glob_files(path)
    if path.is_dir():
        return visible_files(path)
    return [path]


def _glob_base(pattern: Path) -> Path:
    """A glob's fixed folder: its path up to the first part with a wildcard (``data/tx`` of ``data/tx/*``)."""
    fixed = next((i for i, part in enumerate(pattern.parts) if any(ch in part for ch in _GLOB_CHARS)), 0)
    return Path(*pattern.parts[:fixed]) if fixed else Path()


def _glob_files(pattern: Path) -> list[Path]:
    """A glob's files by a folder's rule (`visible_files`), as Spark reads a glob.

    A match named ``_x`` or ``.x``, or under such a folder below the glob's fixed part, is skipped (Spark's
    ``_SUCCESS`` failed as "neither Parquet nor CSV"), and a matched folder stands for its visible files.
    """
    base = _glob_base(pattern)
    found: set[Path] = set()
    for match in map(Path, glob.glob(str(pattern), recursive=True)):
        if is_hidden(match.relative_to(base).parts):
            continue
        if match.is_dir():
            found.update(visible_files(match))
        elif match.is_file():
            found.add(match)
    return sorted(found)


def _name_key(name: object) -> str:
    """A name as kamml matches column names: ignoring case, surrounding spaces, invisible characters."""
    return clean_name(str(name)).lower()


def _shown(path: Path, base: Path) -> str:
    """A part's path as a message names it: from `base` where it lies below it, else whole."""
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


#: The rule a table's parts keep in folders of key=value partitions, as every message states it.
_PARTITION_RULE = "a table's parts are either all in key=value folders (of the same keys) or none"


def _partition_keys(files: list[Path], name: str, where: str, base: Path) -> tuple[str, ...]:
    """The partition keys of a table's parts: the ``key=value`` folders below `base`, the same for every part.

    A DataError names two parts of different layouts: ``part-0.parquet`` beside ``y=1/part-0.parquet``
    was read whole on DuckDB while Spark, handed the folder, read the partition's rows alone (and a y
    column), without a word; ``y=1/`` beside ``m=2/`` lost both columns on DuckDB and failed on Spark.
    `where` begins the message ("folder data/tx holds", "data/tx/* matches").
    """
    first: tuple[tuple[str, ...], Path] | None = None
    for path in files:
        folders = path.relative_to(base).parts[:-1] if path.is_relative_to(base) else ()
        keyed = ["=" in folder for folder in folders]
        keys = tuple(f.split("=", 1)[0] for f in folders) if any(keyed) else ()
        if first is None:
            first = keys, path
            twice = _duplicates(keys)
            if twice:  # DuckDB failed in a raw Ibis error ("Duplicate column name 'y'")
                key = next(k for k in keys if _name_key(k) == twice[0])  # as the path writes it
                raise DataError(
                    f"{name}: {where} {path.relative_to(base)}, whose path names key {key} twice: a "
                    "partition folder's key is one column, once in a path; rename one of the folders"
                )
        # a part below plain folders and key=value ones (a/y=1/) is in neither layout: named alone
        odd = [path] if any(keyed) and not all(keyed) else [first[1], path] if keys != first[0] else []
        if odd:
            named = " and ".join(_shown(p, base) for p in odd)
            raise DataError(
                f"{name}: {where} {named}: {_PARTITION_RULE}, else the engines read different "
                "rows and columns (Spark passes over a folder's parts outside its key=value folders); move "
                "the parts into key=value folders of the same keys, or out of them"
            )
    return first[0] if first else ()


#: The rule a partition folder's key and the files' columns keep, as the message states it.
_KEY_RULE = "a column is either a partition folder's key or a column inside the files, not both"


def _check_keys_not_columns(name: str, layout: _Layout, files: list[Path], columns: list[list[str]]) -> None:
    """A DataError for a partition key that is also a column of a part (`columns[i]` are `files[i]`'s).

    Both engines put the folder's value in every row (region=EU/ made a file's US rows EU) without a
    word; a key spelled otherwise (Region=EU/ beside region) failed on DuckDB and was the folder's on Spark.
    """
    _check_folders_above(name, layout, columns)
    keys = {_name_key(k): k for k in layout.keys}
    for path, names in zip(files, columns, strict=True):
        both = next((c for c in names if _name_key(c) in keys), None)
        if both is None:
            continue
        key = keys[_name_key(both)]
        value = next(f for f in path.relative_to(layout.base).parts if f.split("=", 1)[0] == key)
        raise DataError(
            f"{name}: {layout.base} holds {path.relative_to(layout.base)}, a file with a column "
            f"{clean_name(both)} in the partition folder {value}/: {_KEY_RULE}, else the folder's value "
            "replaces the file's own in every row; rename the folder's key or the files' column, or drop "
            "the column from the files"
        )


#: The rule a key=value folder above a table's folder keeps, as the message states it.
_ABOVE_RULE = "a key=value folder above a table's folder names no column of the table"


def _check_folders_above(name: str, layout: _Layout, columns: list[list[str]]) -> None:
    """A DataError for a key=value folder above `layout.base` whose key is a partition key or a file column.

    DuckDB, reading partitions, takes the value of every key=value folder of a path: data/y=0/tx/y=1/
    read y = 0, and data/region=EU/tx/y=1/ put EU in every row of files holding region (US), while
    Spark reads only below its basePath. Without partition keys neither engine reads a folder's value.
    """
    if not layout.keys:
        return
    named = {_name_key(k): f"{k}, a partition folder's key below it" for k in layout.keys}
    for names in columns:
        named.update({_name_key(c): f"{clean_name(c)}, a column in its files" for c in names})
    base = Path(os.path.abspath(layout.base))  # as Ibis hands it to DuckDB: a relative path made absolute
    for folder in base.parts:
        key = folder.split("=", 1)[0] if "=" in folder else ""
        column = named.get(_name_key(key)) if key else None
        if column is not None:
            raise DataError(
                f"{name}: a key=value folder above the table's parts ({folder}/ in {base}) names "
                f"the column {column}: {_ABOVE_RULE}, else DuckDB reads the folder's value in every row "
                "(Spark the table's own); rename or move the folder"
            )


#: How many of a table's files of other kinds a message names before "and N more".
_NAMED_FILES = 5


def _check_part_kinds(parts: list[Path], name: str, where: str, base: Path) -> None:
    """A DataError naming a table's visible parts that are not of a kind kamml reads (`TABLE_SUFFIXES`).

    `where` begins the message ("folder data/tx holds", "data/tx/* matches"); parts are named from `base`.

    A ``part-3.json`` or ``part-2.csv.bz2`` beside the CSV parts was dropped without a word on DuckDB (its
    rows lost), and a Parquet folder's was read by Spark as Parquet and failed in a Java stack trace.
    Spark's and Hadoop's markers are hidden (`is_hidden`) and never get here.
    """
    others = [p for p in parts if not (_is_parquet(p) or _is_csv(p))]
    if not others:
        return
    shown = [_shown(p, base) for p in others[:_NAMED_FILES]]
    more = len(others) - len(shown)
    listed = ", ".join(shown[:-1]) + " and " + shown[-1] if more == 0 and len(shown) > 1 else ", ".join(shown)
    listed += f" and {more} more" if more else ""
    raise DataError(
        f"{name}: {where} {listed}, which kamml does not read: a table's parts are each one of these "
        f"kinds ({TABLE_KINDS}), and files named _x or .x (Spark's _SUCCESS, .crc files) are skipped; "
        "convert them to one of these kinds (or move them out) so that no rows are left out"
    )


def _is_parquet(path: Path) -> bool:
    return is_parquet_name(path.name)


def _is_csv(path: Path) -> bool:
    return is_csv_name(path.name)


def is_csv_name(name: str) -> bool:
    """Whether a file name ends as CSV (`CSV_SUFFIXES`, any case of letters)."""
    return name.lower().endswith(CSV_SUFFIXES)


def _read_files(
    files: list[Path],
    origin: str,
    name: str,
    backend: ibis.BaseBackend,
    delimiter: str | None,
    base: Path,
    keys: tuple[str, ...],
    read: frozenset[str] | None = None,
    numbers: frozenset[str] = frozenset(),
) -> RawTable:
    """Read files of one format (all Parquet or all CSV) as one table.

    `keys` are the partition folders' keys below `base` (`_partition_keys`), read as columns after the
    files' own on both engines, and no other ``key=value`` folder of the paths. `read`: the name keys of
    the columns kamml reads (`_read_columns`; None: every one), `numbers` those it parses as numbers.
    """
    _check_no_copies(files, name)
    kinds = {"parquet" if _is_parquet(p) else "csv" if _is_csv(p) else "other" for p in files}
    layout = _Layout(base, keys)
    if kinds == {"parquet"}:
        return _read_parquet(files, origin, name, backend, layout, read, numbers)
    if kinds == {"csv"}:
        return _read_csv(files, origin, name, backend, delimiter, layout)
    if kinds == {"parquet", "csv"}:
        raise DataError(f"{name}: {origin} mixes Parquet and CSV files; keep one format")
    odd = next(p for p in files if not (_is_parquet(p) or _is_csv(p)))
    raise DataError(f"{name}: {odd} is not a format kamml reads ({TABLE_KINDS})")


@dataclass(frozen=True)
class _Layout:
    """Where a table's parts lie: the folder read (or a glob's fixed one) and its partition keys below it."""

    base: Path
    keys: tuple[str, ...]

    def duckdb(self, table: ir.Table, columns: Iterable[str]) -> ir.Table:
        """The files' `columns`, then the keys in folder order, as Spark reads them.

        DuckDB, told to read partitions, takes every ``key=value`` folder of a path as a column, those
        above `base` too (data/run=3/tx/ gained a run column), and orders them by name. One naming a column
        of the table gave it its value, and is refused before (`_check_folders_above`).
        """
        if not self.keys:
            return table
        written = set(columns)
        own = [c for c in table.columns if c in written and c not in self.keys]
        return table.select(*own, *self.keys)

    def spark_options(self) -> dict[str, str]:
        """Spark's basePath, below which it reads the partition folders as columns.

        Given files or a glob without it, Spark read none: ``tx/*`` over ``tx/y=1/`` lost y.
        """
        return {"basePath": str(self.base)} if self.keys else {}


def _check_no_copies(files: list[Path], name: str) -> None:
    """A DataError for two parts with the same bytes: a copied part counts each of its rows twice.

    Only parts of equal size are read (in chunks) and hashed, so a folder of distinct parts costs
    one ``stat`` each. Parts without rows are left out: an empty partition's files (no bytes, a CSV
    header alone, a Parquet file of no rows) are all alike.
    """
    by_size: dict[int, list[Path]] = {}
    for path in files:
        size = path.stat().st_size
        if size > 0:
            by_size.setdefault(size, []).append(path)
    for same in by_size.values():
        if len(same) < 2:
            continue
        seen: dict[str, Path] = {}
        for path in same:
            if not _has_rows(path):
                continue
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            first = seen.setdefault(digest.hexdigest(), path)
            if first != path:
                raise DataError(
                    f"{name}: {first} and {path} hold the same bytes: a copied part would count every "
                    "row twice; remove one"
                )


def backend_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a backend raises when it cannot read or scan input files (DuckDB, Spark, Arrow)."""
    import duckdb

    errors: list[type[BaseException]] = [duckdb.Error, OSError, pa.ArrowException]
    try:
        from pyspark.errors import PySparkException

        errors.append(PySparkException)
    except ImportError:
        pass
    try:
        from py4j.protocol import Py4JJavaError

        errors.append(Py4JJavaError)
    except ImportError:
        pass
    return tuple(errors)


_USEFUL = (
    "original line",
    "expected number of columns",
    "does not match the number of columns",
    "line:",
    "not utf-8",
    "maximum line size",
    "malformed csv record",
)
_SHOWN_CHARS = 200


def engine_message(error: BaseException | str) -> str:
    """The gist of an engine's (often long, multi-line) error: its first line and the lines that locate it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    extra = [line.lstrip("* ") for line in lines[1:] if any(k in line.lower() for k in _USEFUL)]
    return "; ".join(_shorten(line) for line in [lines[0], *extra[:3]])


def unreadable_hint(message: str, files: Iterable[Path] = ()) -> str:
    """What to do about an engine's read error, where kamml knows: text not UTF-8, or mixed line endings.

    `files` are the files read; each is looked at only here, on a failed read (`_mixed_line_endings`,
    `parquet_not_utf8`: DuckDB named the file and a value, not the column).
    """
    if "invalid string encoding found in parquet file" in message.lower():
        parquet = [path for path in files if not _is_csv(path)]
        for path in parquet:
            reason = parquet_not_utf8(path)
            if reason:
                return f"; {path}: {reason}" if len(parquet) > 1 else f"; {reason}"
        return "; save its text columns as UTF-8 (kamml reads Parquet text as UTF-8)"
    if "utf-8" in message.lower():
        return "; save the file as UTF-8 (kamml reads CSV as UTF-8)"
    for path in files:
        if _is_csv(path) and _mixed_line_endings(path):
            return (
                f"; {path} mixes Windows (CRLF) and Unix (LF) line endings, which DuckDB cannot read "
                "(rows appended by another tool?): save it with one kind, e.g. in a text editor, or "
                "with dos2unix"
            )
    return ""


def _mixed_line_endings(path: Path) -> bool:
    """Whether a CSV file has lines ending in CRLF and lines ending in LF alone (read in chunks).

    Only on a failed read: a spreadsheet's CRLF file with LF line breaks inside quoted cells reads fine.
    """
    crlf = lf = False
    last = b""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                # every CRLF whose LF is in this chunk, one split between two chunks included
                pairs = (last + chunk).count(b"\r\n")
                crlf = crlf or pairs > 0
                lf = lf or chunk.count(b"\n") > pairs
                if crlf and lf:
                    return True
                last = chunk[-1:]
    except (OSError, EOFError):
        return False
    return False


def _check_ctrl_z(files: list[Path], name: str) -> None:
    """A DataError for a CSV file ending in Ctrl-Z (0x1A), the end-of-file mark of old DOS and Windows tools.

    DuckDB read it as a row of one field ("Expected Number of Columns: 3 Found: 1") or as part of the last
    value (6 and the byte, an unparseable amount; a product name with an invisible byte, read without a word).
    Only the last bytes of each uncompressed file are read.
    """
    for path in files:
        if path.name.lower().endswith(".gz"):
            continue
        try:
            with path.open("rb") as handle:
                handle.seek(max(path.stat().st_size - 16, 0))
                tail = handle.read()
        except OSError:
            continue  # the read names it
        if tail.rstrip(b"\r\n").endswith(b"\x1a"):
            raise DataError(
                f"{name}: {path} ends with a Ctrl-Z byte (0x1A), an old DOS end-of-file mark, which the "
                "engines read as data: remove it (save the file again from a text editor or spreadsheet)"
            )


def _shorten(line: str) -> str:
    """A line of an engine's message cut to `_SHOWN_CHARS` (it may quote a whole 2 MB input line)."""
    if len(line) <= _SHOWN_CHARS:
        return line
    return f"{line[:_SHOWN_CHARS]}..."


def _read_parquet(
    files: list[Path],
    origin: str,
    name: str,
    backend: ibis.BaseBackend,
    layout: _Layout,
    read: frozenset[str] | None = None,
    numbers: frozenset[str] = frozenset(),
) -> RawTable:
    """Parquet keeps its types; duplicated field names are reported from the first file's schema.

    Parts that disagree on a date column's time zone are a problem where kamml reads the column (`read`);
    one it does not read is read as DuckDB merges it, naive values as UTC, on Spark too (`_spark_parquet`).
    """
    empty = [p for p in files if p.stat().st_size == 0]
    if empty:
        raise DataError(f"{name}: empty file: {empty[0]}")
    problems: list[Problem] = []
    schema = _parquet_schema(files[0], name)
    dups = _duplicates(schema.names)
    if dups:
        problems.append(_duplicate_problem(name, dups, schema.names))
    paths = [str(p) for p in files]
    schemas = [schema, *(_parquet_schema(p, name) for p in files[1:])]  # every part's footer
    values = _value_columns(name, read)
    _check_durations(files, schemas, name, values)
    _check_keys_not_columns(name, layout, files, [schema.names for schema in schemas])
    zones, unread = _unread_apart(_zone_disagreements(files, schemas, name, origin, layout.base), read)
    problems.extend(zones)
    try:
        _check_booleans_merge(files, schemas, name, values)
        if backend.name == "duckdb":
            # parts are matched by column name: one lacking a column (written before it was added) gives
            # nulls there, and differing types meet in a common one that validation then checks
            table = _known_timestamps(
                backend.read_parquet(
                    paths,
                    table_name=_temp_name(name),
                    union_by_name=True,
                    hive_partitioning=bool(layout.keys),
                )
            )
            table = layout.duckdb(table, (c for schema in schemas for c in schema.names))
        else:
            if problems:  # Spark refused the file as unreadable ("COLUMN_ALREADY_EXISTS"), or the parts as
                raise SchemaError(problems)  # types it cannot merge, not as a broken contract
            _check_spark_timestamps(files, schemas, name, read)  # first: it says how to write them
            casts = _spark_casts(files, schemas, name, apart=unread, read=values, numbers=numbers)
            tname = _temp_name(name)
            frame = _spark_parquet(backend._session, files, schemas, layout.spark_options(), casts)
            frame.createOrReplaceTempView(tname)
            table = _untyped_nulls(backend.table(tname), schemas)
    except backend_errors() as exc:
        raise engine_failure(exc) or DataError(
            f"{name}: cannot read {origin}: {engine_message(exc)}"
        ) from None
    merged = _duplicates(table.columns)
    if merged and not dups:
        # parts whose names differ in surrounding spaces ("quantity" and "quantity ") are matched as two
        # columns, each null in the other's rows: one was read, the other dropped without a word (a
        # purchase's 5 units became 1, an account's size went missing)
        where = f"{origin}: its parts spell it differently"
        problems.append(_duplicate_problem(name, merged, list(table.columns), where=where))
    # a zone in any part: the files' own types say it, where Ibis types Spark's instants as naive
    zoned = _zoned([f for schema in schemas for f in schema])
    return RawTable(name, table, origin, text=False, from_file=True, problems=problems, zoned=zoned)


def _zone_disagreements(
    files: list[Path], schemas: list[pa.Schema], name: str, origin: str, base: Path
) -> list[Problem]:
    """A problem for each column that some Parquet parts store time-zone-aware and others naive or as dates.

    The engines read the naive part's values as UTC (DuckDB without a word), while they may be local times:
    two exports of one table from systems set up differently. It is the rule of a text column mixing values
    with a UTC offset and values without one (validation's "mixed time zones"). Zoned parts in different
    zones are instants, each converted to UTC, and stay fine.
    """
    kinds: dict[str, dict[bool, list[tuple[Path, pa.DataType]]]] = {}
    shown: dict[str, str] = {}
    for path, schema in zip(files, schemas, strict=True):
        for field_ in schema:
            kind = field_.type
            if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
                key = _name_key(field_.name)
                shown.setdefault(key, field_.name)
                zoned = _zoned_type(kind)
                kinds.setdefault(key, {}).setdefault(zoned, []).append((path, kind))
    problems: list[Problem] = []
    for key, by_zone in kinds.items():
        if len(by_zone) == 2:
            aware = _parts_typed(by_zone[True], base, "time-zone-aware")
            naive = _parts_typed(by_zone[False], base, "without a zone")
            rule = (
                f"the Parquet parts of {origin} disagree on its time zone: {aware} and {naive}, whose values "
                "would be taken as UTC and may be local times; write every part with the same type: all "
                "time-zone-aware or all naive"
            )
            problems.append(Problem(name, shown[key], rule))
    return problems


def _unread_apart(
    problems: list[Problem], read: frozenset[str] | None
) -> tuple[list[Problem], frozenset[str]]:
    """The problems of columns kamml reads, and the name keys of the others, whose values it never reads.

    The others are said at debug level, as validation says the columns the contract does not use.
    """
    unread = [p for p in problems if read is not None and _name_key(p.column) not in read]
    for problem in unread:
        log.debug("%s.%s: not read by kamml, so not checked: %s", problem.table, problem.column, problem.rule)
    return [p for p in problems if p not in unread], frozenset(_name_key(p.column) for p in unread)


def _spark_parquet(
    session: Any,
    files: list[Path],
    schemas: list[pa.Schema],
    options: dict[str, str],
    casts: dict[str, str | None],
) -> Any:
    """Spark's frame of the parts; `casts` (`_spark_casts`): columns of differing types, as one type.

    Spark reads the files kamml found, as DuckDB does: handed the folder or the glob, it read its own (a
    ** glob as one folder deep: rows lost). It takes one part's schema unless told to merge them, and then
    dropped the columns other parts added. It cannot merge differing types (a zoned column with a naive
    or date one, int32 with int64, a part's column of only nulls, which it reads as int32, with any other),
    so such parts are read in groups of one type and put together by name, each such column cast to the
    type DuckDB merges it to (naive values as UTC beside zoned ones). A group's column of only nulls is
    nulls of that type, or of the type Spark reads the typed parts' column in (a cast of None). A column of
    nanosecond timestamps, one kamml does not read (`_check_spark_timestamps` refused the others), is read
    as its int64 and made a timestamp floored to microseconds (`_spark_nanos`).
    """
    from pyspark.sql import functions as spark_functions

    groups: dict[tuple[str, ...], list[int]] = {}
    for i, schema in enumerate(schemas):
        kinds = tuple(sorted(f"{f.name}:{_spark_kind(f.type)}" for f in schema if _name_key(f.name) in casts))
        groups.setdefault(kinds, []).append(i)
    read: list[tuple[Any, set[str]]] = []
    for members in groups.values():
        first = schemas[members[0]]
        same_names = all(schemas[i].names == first.names for i in members[1:])
        merge = {} if same_names else {"mergeSchema": "true"}
        nanos = {column: zoned for i in members for column, zoned in _nanos(files[i], schemas[i]).items()}
        paths = [str(files[i]) for i in members]
        frame = _spark_nanos(_spark_read(session, paths, options | merge, bool(nanos)), nanos)
        read.append((frame, {_name_key(f.name) for f in first if pa.types.is_null(f.type)}))
    typed = {
        _name_key(field_.name): field_.dataType
        for frame, untyped in read
        for field_ in frame.schema
        if _name_key(field_.name) in casts and _name_key(field_.name) not in untyped
    }
    frames = []
    for frame, untyped in read:
        for column in (c for c in frame.columns if _name_key(c) in casts):
            key = _name_key(column)
            value = spark_functions.lit(None) if key in untyped else frame[column]
            frame = frame.withColumn(column, value.cast(casts[key] or typed[key]))
        frames.append(frame)
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result


#: Spark's setting that reads a nanosecond timestamp as its int64, which it cannot read otherwise.
_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def _spark_read(session: Any, paths: list[str], options: dict[str, str], nanos: bool) -> Any:
    """Spark's frame of Parquet `paths`; with `nanos`, nanosecond timestamps are read as their int64.

    Spark fails on them in its schema inference (``Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false))``),
    and `_NANOS_AS_LONG` is a session setting, no reader option (Spark 4.0). So the schema is inferred in
    a session of its own (`SparkSession.newSession`: the same context, its own SQL settings, those of
    `session` copied) with the setting on, and given to the read on `session`, which then reads the int64.
    Setting it on `session` for that moment, as kamml did, changed what a read of another thread on the
    same session got.
    """
    if not nanos:
        return session.read.options(**options).parquet(*paths)
    from pyspark.errors import PySparkException

    own = session.newSession()
    for key, value in session.conf.getAll.items():  # the caller's SQL settings: Parquet's infer alike
        if key.startswith("spark.sql."):
            with contextlib.suppress(PySparkException):  # a static one cannot be set: it is shared
                own.conf.set(key, value)
    own.conf.set(_NANOS_AS_LONG, "true")
    schema = own.read.options(**options).parquet(*paths).schema
    return session.read.options(**options).schema(schema).parquet(*paths)


def _spark_nanos(frame: Any, nanos: dict[str, bool]) -> Any:
    """`frame`'s nanosecond columns (read as int64, `_spark_read`) as timestamps floored to microseconds.

    As DuckDB's zoned ones (`floor_to_microseconds`): an instant where `nanos` says the column is zoned,
    else naive (the session's time zone is UTC, `kamml.engine.connect`), kept on its own day.
    """
    from pyspark.sql import functions as spark_functions

    for column, zoned in nanos.items():
        if column not in frame.columns:
            continue
        exact = frame[column].cast("decimal(20,0)") / 1000  # as a double, 23:59:59.999999999 was midnight
        micros = spark_functions.floor(exact).cast("bigint")
        stamp = spark_functions.timestamp_micros(micros)
        frame = frame.withColumn(column, stamp if zoned else stamp.cast("timestamp_ntz"))
    return frame


def _parts_typed(parts: list[tuple[Path, pa.DataType]], base: Path, what: str) -> str:
    """How many parts, a few names and their types: ``1 without a zone (b.parquet: date32[day])``."""
    names = ", ".join(_shown(path, base) for path, _ in parts[:3]) + (", ..." if len(parts) > 3 else "")
    types = ", ".join(dict.fromkeys(str(kind) for _, kind in parts))
    return f"{len(parts):,} {what} ({names}: {types})"


def _zoned(fields: Iterable[pa.Field]) -> frozenset[str]:
    """The time-zone-aware timestamp columns among Arrow `fields` (`RawTable.zoned`)."""
    return frozenset(f.name for f in fields if _zoned_type(f.type))


def _zoned_type(kind: pa.DataType) -> bool:
    """Whether an Arrow type is a time-zone-aware timestamp (an instant, whatever its zone)."""
    return bool(pa.types.is_timestamp(kind) and kind.tz is not None)


def _untyped_nulls(table: ir.Table, schemas: list[pa.Schema]) -> ir.Table:
    """Columns every part wrote with Parquet's null type as nulls of Ibis' null type, as on DuckDB.

    Spark reads such a column (pyarrow's type of a column holding only nulls) as int32: an optional
    created_at or contract_end of only nulls, read on DuckDB as missing values, was a wrong type on Spark.
    """
    kinds: dict[str, set[bool]] = {}
    for schema in schemas:
        for field_ in schema:
            kinds.setdefault(field_.name, set()).add(pa.types.is_null(field_.type))
    nulls = {c: ibis.null() for c in table.columns if kinds.get(c) == {True}}
    return table.mutate(**nulls) if nulls else table


def _parquet_schema(path: Path, name: str) -> pa.Schema:
    """One Parquet file's schema, from its footer."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: {path} is not a readable Parquet file: {engine_message(exc)}") from None


def _has_rows(path: Path) -> bool:
    """Whether a part holds rows: a Parquet file by its footer, a CSV file by a second non-blank line."""
    if _is_parquet(path):
        try:
            return bool(pq.ParquetFile(path).metadata.num_rows)
        except (pa.ArrowException, OSError):
            return True  # unreadable: the read says so
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            lines = (line for line in handle if line.strip())
            return next(lines, None) is not None and next(lines, None) is not None
    except (OSError, EOFError):
        return True


def _check_spark_timestamps(
    files: list[Path], schemas: list[pa.Schema], name: str, read: frozenset[str] | None
) -> None:
    """Spark cannot read nanosecond timestamps (pandas' default in Parquet): say which column, and how.

    Spark's own error ("Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false))") named no column, and it
    hid whatever else validation would have said about the table. Only columns kamml reads (`read`: name
    keys, None: every column; an accounts date is no attribute) are refused: an export's other column
    is read floored to microseconds (`_spark_nanos`), where it stopped the run and DuckDB read the table.
    """
    for path, schema in zip(files, schemas, strict=True):
        nanos = [column for column in _nanos(path, schema) if _reads(read, column)]
        if nanos:
            raise DataError(
                f"{name}: {path} stores {', '.join(nanos)} as nanosecond timestamps, which Spark cannot "
                "read: write them in microseconds (pandas: to_parquet(..., coerce_timestamps='us', "
                "allow_truncated_timestamps=True)) or use engine duckdb, which reads them"
            )


def _nanos(path: Path, schema: pa.Schema) -> dict[str, bool]:
    """A Parquet part's nanosecond timestamp columns, which Spark cannot read: name -> time-zone-aware.

    INT96 columns, which pyarrow reports as nanoseconds, are Spark's own default timestamps and read fine
    (a Spark table's Parquet was refused).
    """
    nanos = {
        f.name: _zoned_type(f.type) for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    }
    if not nanos:
        return nanos
    stored = pq.ParquetFile(path).metadata.schema
    int96 = {stored.column(i).path for i in range(len(stored)) if stored.column(i).physical_type == "INT96"}
    return {column: zoned for column, zoned in nanos.items() if column not in int96}


def _check_durations(
    files: list[Path], schemas: list[pa.Schema], name: str, read: frozenset[str] | None
) -> None:
    """A DataError for a duration column kamml reads: DuckDB and Spark read its int64 ticks as plain numbers.

    A pandas timedelta column written to Parquet (an amount of 1 s) read as 1,000,000,000 without a word;
    the same column in a frame is text, so an amount of durations was an unparseable number there. One
    kamml does not read (`read`: name keys, None: every column) is read as its ticks on both engines alike.
    """
    for path, schema in zip(files, schemas, strict=True):
        for field_ in schema:
            if pa.types.is_duration(field_.type) and _reads(read, field_.name):
                raise DataError(
                    f"{name}: {path} stores {field_.name} as a duration ({field_.type}), which the engines "
                    "read as a count of its ticks: write it as a number in the unit you mean (pandas: "
                    ".dt.total_seconds(), or / pd.Timedelta(days=1) for days) or leave it out"
                )


def _reads(read: frozenset[str] | None, column: str) -> bool:
    """Whether kamml reads `column`'s values, `read` being the name keys it reads (None: every column)."""
    return read is None or _name_key(column) in read


def _spark_casts(
    files: list[Path],
    schemas: list[pa.Schema],
    name: str,
    *,
    apart: frozenset[str],
    read: frozenset[str] | None,
    numbers: frozenset[str] = frozenset(),
) -> dict[str, str | None]:
    """The columns Spark reads in groups and casts (`_spark_parquet`): name key -> Spark type.

    Spark cannot merge parts whose column types differ (not even int32 and int64: Spark 4.0 fails, merging
    schemas or not). A column kamml reads of numbers (two export tools: int64 and double amounts), of
    dates beside naive timestamps, or of text beside numbers (beside whole numbers only, unless validation
    parses it as numbers: in `numbers`), is cast to the type DuckDB merges it to (`_spark_read_common`),
    which validation checks; of other types (a date beside a number, text beside a date) it is a DataError
    naming it and two parts. One it does not read (not in `read`, or in `apart`:
    the unread columns of `_unread_apart`) is cast to the type DuckDB merges it to (`_spark_common`),
    where there is one; else it is the same DataError. A column some parts wrote with Parquet's null type
    (only nulls) takes the other parts' type, as on DuckDB: None where they are of one type, which Spark
    reads it in.
    """
    seen: dict[str, dict[pa.DataType, tuple[Path, pa.DataType]]] = {}
    for path, schema in zip(files, schemas, strict=True):
        for field_ in schema:
            seen.setdefault(field_.name, {}).setdefault(_spark_kind(field_.type), (path, field_.type))
    casts: dict[str, str | None] = {}
    for column, kinds in seen.items():
        typed = {kind: part for kind, part in kinds.items() if not pa.types.is_null(kind)}
        if len(typed) < 2:
            if typed and len(kinds) > len(typed):  # only nulls in some parts, one type in the others
                casts[_name_key(column)] = None
            continue
        unread = _name_key(column) in apart or not _reads(read, column)
        number = _name_key(column) in numbers
        common = _spark_common(list(typed)) if unread else _spark_read_common(list(typed), number=number)
        if common is None:
            (first, first_type), (other, other_type) = list(typed.values())[:2]
            raise DataError(
                f"{name}: the Parquet parts disagree on column {column}'s type: {first} has {first_type}, "
                f"{other} has {other_type}; Spark cannot merge them: rewrite the parts with one schema (the "
                "DuckDB engine reads them as one)"
            )
        casts[_name_key(column)] = common
    return casts


def _spark_read_common(kinds: list[pa.DataType], *, number: bool = False) -> str | None:
    """The Spark type DuckDB merges a column kamml reads to: numbers, dates and timestamps, text and numbers.

    Text beside numbers (one export tool's amount as text, another's as double) is text on both engines,
    which validation parses as any text column. Each engine writes a fractional number as text its own way
    (1e+20 and 1.0E20, 12345678.0 and 1.2345678E7, inf and Infinity), both exact (text that reads back as
    the number), so in a column validation parses as numbers (`number`: amount, quantity, hours) they
    are the same values; elsewhere (an id, an attribute) the texts would differ, so only whole numbers,
    written alike, are read beside text there. Yes/no is left out (`_check_booleans_merge` refuses it beside
    another type on both engines), and so is text beside dates, whose text the engines write with or
    without an offset. A date beside a zoned timestamp never gets here (the parts disagree on its time
    zone, a SchemaError).
    """
    if any(pa.types.is_boolean(k) for k in kinds):
        return None
    if all(pa.types.is_timestamp(k) or pa.types.is_date(k) for k in kinds):
        return _spark_common(kinds)
    if any(pa.types.is_string(k) for k in kinds):
        alike = _numeric if number else pa.types.is_integer  # numbers whose text validation reads alike
        return "string" if all(alike(k) or pa.types.is_string(k) for k in kinds) else None
    return _spark_number(kinds)


def _spark_common(kinds: list[pa.DataType]) -> str | None:
    """The Spark type DuckDB merges columns of these Spark kinds (`_spark_kind`) to; None: DuckDB cannot.

    Dates and timestamps meet in a timestamp (an instant where a part is zoned, naive values as UTC),
    yes/no and numbers in a number (true as 1), these and text in text (true as "true"). DuckDB fails on
    the others (a date beside a number, a list beside text), so Spark is given no type for them.
    """
    if all(pa.types.is_timestamp(k) or pa.types.is_date(k) for k in kinds):
        return "timestamp" if any(_zoned_type(k) for k in kinds) else "timestamp_ntz"
    if all(_numeric(k) for k in kinds):
        return _spark_number(kinds)
    if all(_numeric(k) or pa.types.is_string(k) for k in kinds):
        return "string"
    return None


def _spark_number(kinds: list[pa.DataType]) -> str | None:
    """The Spark type DuckDB merges numbers (and yes/no) of these Arrow kinds to; None: not all numbers.

    As DuckDB 1.x's union_by_name does (checked type by type): a double anywhere makes a double, else a
    float32 a float (DuckDB's FLOAT, beside int64 parts too); else a decimal a decimal of the decimals'
    largest whole digits and scale (the scale cut where they pass 38 digits), widened for the whole
    numbers' digits up to 38 (exact: ids of decimal(38,0) beside int64 stay whole); else whole numbers
    the widest signed type, an unsigned one in the signed type twice its width (uint64 beside a signed
    type in DuckDB's HUGEINT, Ibis' decimal(38, 0); beside unsigned ones Spark's own decimal(20,0) of a
    uint64). A decimal beyond 38 digits DuckDB reads as a double.
    """
    if not kinds or not all(_numeric(k) for k in kinds):
        return None
    if any(pa.types.is_float64(k) for k in kinds):
        return "double"
    if any(pa.types.is_floating(k) for k in kinds):
        return "float"
    decimals = [k for k in kinds if pa.types.is_decimal(k)]
    if any(k.precision > 38 for k in decimals):
        return "double"
    if decimals:
        whole = max(k.precision - k.scale for k in decimals)
        scale = min(max(k.scale for k in decimals), 38 - whole)  # decimals give up places past 38 digits
        whole = max(_whole_digits(k) for k in kinds)  # whole numbers widen it up to 38 digits
        return f"decimal({min(38, whole + scale)},{scale})"
    unsigned = all(pa.types.is_unsigned_integer(k) or pa.types.is_boolean(k) for k in kinds)
    if unsigned and any(pa.types.is_uint64(k) for k in kinds):
        return "decimal(20,0)"  # DuckDB's UBIGINT, as Spark reads a uint64 column
    return _SPARK_INTEGERS[max(_bits(k) for k in kinds)]


#: Spark's integer type of so many bits (a uint64's 128: DuckDB's HUGEINT, as Ibis types it).
_SPARK_INTEGERS = {8: "tinyint", 16: "smallint", 32: "int", 64: "bigint", 128: "decimal(38,0)"}


def _bits(kind: pa.DataType) -> int:
    """The bits of the signed type holding a yes/no or whole-number Arrow kind (an unsigned one: twice)."""
    if pa.types.is_boolean(kind):
        return 8
    return int(kind.bit_width) * (2 if pa.types.is_unsigned_integer(kind) else 1)


def _whole_digits(kind: pa.DataType) -> int:
    """The digits before the point a number kind needs in a decimal, as DuckDB counts them (int64: 19)."""
    if pa.types.is_decimal(kind):
        return int(kind.precision - kind.scale)
    if pa.types.is_boolean(kind):
        return 1
    signed = 0 if pa.types.is_unsigned_integer(kind) else 1
    return len(str(2 ** (int(kind.bit_width) - signed)))


def _numeric(kind: pa.DataType) -> bool:
    """Whether an Arrow type is a number or yes/no, which DuckDB merges into a number."""
    return bool(
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
    )


def _check_booleans_merge(
    files: list[Path], schemas: list[pa.Schema], name: str, read: frozenset[str] | None
) -> None:
    """A DataError for a column kamml reads that is yes/no in one Parquet part and of another type in another.

    DuckDB merged them in silence (true/false as 1/0 beside a part's quantities of 3), while one file of
    yes/no quantities is a wrong type; Spark, which cannot merge them, gets the same error. One kamml does
    not read (`read`: name keys, None: every column) is read as DuckDB merges it, on Spark too
    (`_spark_casts`).
    """
    seen: dict[str, tuple[pa.DataType, Path]] = {}
    for path, schema in zip(files, schemas, strict=True):
        for field_ in schema:
            if pa.types.is_null(field_.type) or not _reads(read, field_.name):  # only nulls, or unread
                continue
            first = seen.setdefault(field_.name, (field_.type, path))
            if pa.types.is_boolean(first[0]) != pa.types.is_boolean(field_.type):
                raise DataError(
                    f"{name}: the Parquet parts disagree on column {field_.name}'s type: {first[1]} has "
                    f"{first[0]}, {path} has {field_.type}; read as one column, the yes/no values would "
                    "take the other type (true as 1): rewrite the parts with one type"
                )


def _spark_kind(kind: pa.DataType) -> pa.DataType:
    """An Arrow type as Spark reads it: dictionary-encoded and large text are plain text to Spark.

    A time-zone-aware timestamp is an instant whatever its zone (Parquet stores it adjusted to UTC), so
    parts at tz=UTC and at +02:00 are one type: they were refused as types Spark cannot merge. Seconds,
    milliseconds and microseconds are one type too (Spark's timestamp, or timestamp_ntz where naive), read
    at their own unit and merged: parts at ms and at us were refused. Nanoseconds stay apart: Spark reads
    them only as INT96 (`_check_spark_timestamps`), an instant to Spark even where pyarrow says naive. A
    duration is Parquet's int64 (pyarrow's type lives in the file's metadata): Spark reads its ticks.
    """
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_duration(kind):
        return pa.int64()
    if pa.types.is_timestamp(kind) and kind.unit != "ns":
        return pa.timestamp("us", tz="UTC" if _zoned_type(kind) else None)
    if _zoned_type(kind):
        return pa.timestamp(kind.unit, tz="UTC")
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    return kind


def _known_timestamps(table: ir.Table) -> ir.Table:
    """Time-zone-aware nanosecond timestamps (pandas' default Parquet of a tz-aware column) as UTC ones.

    DuckDB reads them as TIMESTAMPTZ_NS, which Ibis does not know (its type is "unknown", so the column
    was refused as the wrong type); as microsecond UTC timestamps they are validated like any other.
    """
    zoned = {
        column: floor_to_microseconds(table[column])
        for column, dtype in table.schema().items()
        if dtype.is_unknown() and "TIMESTAMPTZ_NS" in str(getattr(dtype, "raw_type", "")).upper()
    }
    return table.mutate(**zoned) if zoned else table


@ibis.udf.scalar.builtin(name="epoch_ns")
def _epoch_ns(value) -> ibis_dt.Int64():  # type: ignore[valid-type]  # no annotation: any timestamp type
    """DuckDB's nanoseconds since 1970-01-01 UTC of a (nanosecond, naive or zoned) timestamp."""


@ibis.udf.scalar.builtin(name="divide")
def _int_divide(value: ibis_dt.Int64(), by: ibis_dt.Int64()) -> ibis_dt.Int64():  # type: ignore[valid-type]
    """DuckDB's integer division (truncating towards zero; Ibis's ``//`` divides as doubles)."""


@ibis.udf.scalar.builtin(name="make_timestamp")
def _from_epoch_us(value: ibis_dt.Int64()) -> ibis_dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB's naive timestamp of microseconds since 1970-01-01 (no session time zone involved)."""


def floor_to_microseconds(value: ir.Value) -> ir.TimestampValue:
    """A DuckDB nanosecond timestamp (naive, or zoned as an instant) as a naive UTC microsecond one, floored.

    DuckDB's cast rounds to the nearest microsecond, so an "end of day" stamp (23:59:59.999999999, pandas'
    and Parquet's nanoseconds) became the next midnight: a purchase crossed into the next day, past a
    cutoff into the label window, or past the data end. Flooring keeps it on its own day.
    """
    ns = _epoch_ns(value)
    us = _int_divide(ns, 1000)  # exact, towards zero (a double has 53 bits): floor the negative ones
    return _from_epoch_us(ibis.ifelse(ns % 1000 < 0, us - 1, us))


def _read_csv(
    files: list[Path],
    origin: str,
    name: str,
    backend: ibis.BaseBackend,
    delimiter: str | None,
    layout: _Layout,
) -> RawTable:
    """CSV is read with every column as text; the header is read here to catch duplicates and delimiters."""
    tabs = [p for p in files if p.name.lower().endswith(_TAB_SUFFIXES)]
    commas = [p for p in files if not p.name.lower().endswith(_TAB_SUFFIXES)]
    if delimiter is None and tabs and commas:  # the .tsv parts were read at commas: "different headers"
        raise DataError(
            f"{name}: {origin} mixes tab-separated ({_first(tabs)}) and comma-separated ({_first(commas)}) "
            "files: a table's files must be of one kind, read at one delimiter; export them all as .tsv or "
            "all as .csv"
        )
    delim = delimiter or ("\t" if tabs else ",")
    written = [p for p in files if _has_bytes(p)]
    if not written:
        return _empty_csv(files[0], origin, name, backend)
    files = written  # a 0-byte part (an empty partition's file) holds no rows and no header
    _check_ctrl_z(files, name)
    problems: list[Problem] = []
    header = _csv_header(files[0], name, delim)
    for path in files[1:]:
        other = _csv_header(path, name, delim)
        if [c.lower() for c in other] != [c.lower() for c in header]:
            raise DataError(
                f"{name}: the CSV files have different headers: {files[0]} has {', '.join(header)}; "
                f"{path} has {', '.join(other)}"
            )
    _check_keys_not_columns(name, layout, files[:1], [header])  # every part has this header
    # empty names (a spreadsheet's trailing ",,,") are no duplicates: each is named by its position below
    dups = _duplicates(h for h in header if clean_name(h))
    if dups:
        problems.append(_duplicate_problem(name, dups, header, where=str(files[0])))
    if len(header) == 1:
        hint = _delimiter_hint(header[0], delim)
        if hint:
            problems.append(Problem(name, header[0], f"only one column found: {hint}"))
            return RawTable(name, None, origin, text=True, from_file=True, problems=problems)
    names = _unique_names([_column_name(h, i + 1) for i, h in enumerate(header)])
    paths = [str(p) for p in files]
    try:
        if backend.name == "duckdb":
            # the header read above fixes the columns, so DuckDB's sniffer cannot guess another layout and
            # a row with a wrong number of fields is an error instead of a silently shifted table
            table = backend.read_csv(
                paths,
                table_name=_temp_name(name),
                columns=dict.fromkeys(names, "VARCHAR"),
                delim=delim,
                header=True,
                quote='"',
                escape='"',
                hive_partitioning=bool(layout.keys),
            )
            table = layout.duckdb(table, names)
        elif backend.name == "pyspark":
            # RFC 4180 as on DuckDB: a quote inside a quoted field is doubled ("24"" monitor"), and a
            # backslash is text; Spark's default escape is the backslash. Quoted line breaks need
            # multiLine, which reads each file in one task, so they are not read here (docs/spark.md).
            table = _read_csv_spark(backend, paths, _temp_name(name), delim, names, layout)
        else:
            table = backend.read_csv(paths, table_name=_temp_name(name))
    except backend_errors() as exc:
        message = engine_message(exc)
        hint = unreadable_hint(message, files if backend.name == "duckdb" else ())  # Spark reads CRLF+LF
        raise engine_failure(exc) or DataError(
            f"{name}: cannot read {origin} as CSV: {message}{hint}"
        ) from None
    return RawTable(name, table, origin, text=True, from_file=True, problems=problems, delimiter=delim)


def _first(files: list[Path]) -> str:
    """The first file's name, and "..." when there are more: a message's example of a kind of file."""
    return files[0].name + (", ..." if len(files) > 1 else "")


def _read_csv_spark(
    backend: ibis.BaseBackend,
    paths: list[str],
    table_name: str,
    delimiter: str,
    names: list[str],
    layout: _Layout,
) -> ir.Table:
    """CSV files as a Spark view of text columns, every row parsed whole (a row of another width fails).

    Ibis's ``read_csv`` cannot pass ``columnPruning``: with it (Spark's default) a query that reads some
    columns parses only those, so a row with too few or too many fields was padded with nulls or cut to
    them, read as a null id or passing the checks where DuckDB refuses the file. The columns take `names`,
    as on DuckDB: Spark renamed a name written twice (amount, AMOUNT as amount2, AMOUNT3), so beside the
    duplicated name a "missing required column" was reported that DuckDB did not report.
    """
    reader = backend._session.read.options(
        header=True,
        inferSchema=False,
        sep=delimiter,
        quote='"',
        escape='"',
        mode="FAILFAST",
        columnPruning=False,
        **layout.spark_options(),
    )
    frame = reader.csv(paths)
    if len(frame.columns) == len(names) + len(layout.keys):
        frame = frame.toDF(*names, *frame.columns[len(names) :])
    frame.createOrReplaceTempView(table_name)
    return backend.table(table_name)


def _has_bytes(path: Path) -> bool:
    """Whether a CSV file holds more than a UTF-8 BOM and blank lines, once unzipped.

    A gzip of nothing, a BOM alone (a spreadsheet's "CSV UTF-8" of an empty sheet) or a lone line break
    is as empty as a 0-byte file: they were refused ("empty file") where a 0-byte optional table was a
    note. An unreadable file counts as holding bytes, so that reading it names the problem.
    """
    if path.stat().st_size == 0:
        return False
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            chunk = handle.read(1 << 16).removeprefix(b"\xef\xbb\xbf")
            while chunk:
                if chunk.strip():
                    return True
                chunk = handle.read(1 << 16)
    except (OSError, EOFError):
        return True
    return False


def _empty_csv(path: Path, origin: str, name: str, backend: ibis.BaseBackend) -> RawTable:
    """A 0-byte CSV: a table of no rows with the contract's required columns, as a header-only file.

    An export with nothing to say may leave no header either; validation then reports it as any empty
    table: a note for an optional table, an error for transactions.
    """
    spec = TABLES.get(name)
    if spec is None:
        raise DataError(f"{name}: empty file: {path}")
    columns = [c.name for c in spec.columns if c.required]
    arrow = pa.table({c: pa.array([], type=pa.string()) for c in columns})
    return RawTable(name, _register(backend, name, arrow), origin, text=True, from_file=True)


def _csv_header(path: Path, name: str, delimiter: str) -> list[str]:
    """The header row of a CSV file, read with Python's csv module (BOM and quotes handled)."""
    line = ""
    blank = 0
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
            for line in handle:
                if line.strip():
                    break
                blank += 1
    except (OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot read {path}: {exc}") from None
    if not line.strip():
        raise DataError(f"{name}: empty file: {path}")
    if blank:  # the engines take the first line as the header: the real one became a row of data
        raise DataError(
            f"{name}: {path} starts with {blank} blank line{'s' if blank > 1 else ''} before its header "
            f"row: remove {'them' if blank > 1 else 'it'}, so that the header is the first line"
        )
    marker = line.rstrip("\r\n")  # not strip(): "sep=\t" names a tab
    if marker[:4].lower() == "sep=" and len(marker) == 5:  # Excel's delimiter line: the header is the next
        sep = marker[4]
        also = (
            ""
            if sep == delimiter
            else f", and set data.csv_delimiter in the config (csv_delimiter: {json.dumps(sep)})"
        )
        raise DataError(
            f"{name}: {path} starts with the line {json.dumps(marker)} (a spreadsheet's delimiter hint) "
            f"before its header row: remove it, so that the header is the first line{also}"
        )
    if "\x00" in line:  # UTF-16 or UTF-32 text: every ASCII character comes with NUL bytes
        # a .gz's own bytes are gzip's: the text read is inside (it was "gzip-compressed, not CSV text")
        kind = None if opener is gzip.open else binary_kind(path)
        if kind is not None:
            raise DataError(f"{name}: {path} is {kind}, not CSV text: rename it to its format, or export CSV")
        raise DataError(f"{name}: {path} is not UTF-8 (UTF-16?): save it as UTF-8 text")
    row = next(csv.reader(io.StringIO(line), delimiter=delimiter))
    return [c.strip() for c in row]


def _delimiter_hint(column: str, delimiter: str, *, only: bool = True) -> str | None:
    """Say the delimiter looks wrong when a header field holds another common delimiter.

    `only`: the field is the header's only one; else it is one of several while the contract's columns
    are missing (a semicolon header with a comma inside one name split into two fields).
    """
    for other, label in _DELIMITER_HINTS.items():
        # a comma is a delimiter only in a header of one field (a comma file read with the config's ";",
        # which applies to every table, or a .tsv of commas): among several it is part of a name
        if other != delimiter and other in column and (only or other != ","):
            shown = "tab" if delimiter == "\t" else repr(delimiter)
            written = json.dumps(other)  # YAML reads "\t" as a tab; '\t' (Python's repr) is two characters
            found = (
                f"the header contains {label} but no {shown}" if only else f"the column name contains {label}"
            )
            return (
                f"{found}, so the delimiter looks wrong; "
                f"set data.csv_delimiter in the config (e.g. csv_delimiter: {written})"
            )
    return None


def delimiter_problem(raw: RawTable) -> Problem | None:
    """A wrong-delimiter problem for a CSV table whose required columns are missing, when a name shows why.

    Only a header of one field got the hint: ``account_id;ts;amount;"net, EUR"`` splits at its comma
    into two fields, and three "missing required column" problems said nothing of the delimiter.
    """
    if raw.delimiter is None or raw.table is None:
        return None
    for column in raw.table.columns:
        hint = _delimiter_hint(column, raw.delimiter, only=False)
        if hint is not None:
            return Problem(raw.name, column, f"required columns missing: {hint}")
    columns = list(raw.table.columns)
    if len(columns) == 1 and len(columns[0].split()) > 1 and raw.delimiter != " ":
        # text aligned with blanks (CDNOW's own file) is one column to a CSV reader: it is not delimited
        return Problem(
            raw.name,
            columns[0],
            "required columns missing: the header is one column of names separated by blanks (text "
            "aligned with spaces, not delimited text); convert it to CSV first, e.g. "
            f'pandas.read_csv(path, sep=r"\\s+").to_csv("{raw.name}.csv", index=False)',
        )
    return None


def _duplicates(names: Iterable[str]) -> list[str]:
    """Column names that occur more than once (ignoring case and surrounding spaces, as SQL engines do)."""
    seen: dict[str, int] = {}
    for n in names:
        key = _name_key(n)
        seen[key] = seen.get(key, 0) + 1
    return [k for k, count in seen.items() if count > 1]


def _duplicate_problem(name: str, dups: list[str], names: list[str], where: str = "") -> Problem:
    found = ", ".join(map(str, names))
    place = f" in {where}" if where else ""
    return Problem(
        name,
        dups[0] if len(dups) == 1 else ", ".join(dups),
        f"duplicated column name{'s' if len(dups) > 1 else ''}{place} (columns: {found})",
    )


def _temp_name(name: str) -> str:
    return f"kamml_{name}_{uuid.uuid4().hex[:10]}"


# --- frames and Ibis tables --------------------------------------------------------------------------


def _register(
    backend: ibis.BaseBackend, name: str, arrow: pa.Table, *, nan_is_null: bool = False
) -> ir.Table:
    """Put an Arrow table on the backend as a temporary table (DuckDB) or a temporary view (Spark).

    With `nan_is_null` (a pandas frame's table, whose missing floats Arrow holds as nulls), a float NaN
    on Spark is made null again: Ibis hands the table to Spark through pandas, which turned the nulls
    into NaN, and validation then could not tell a frame's missing value from a file's NaN.
    """
    tname = _temp_name(name)
    if backend.name == "duckdb":
        # a zero-copy view on the Arrow table (DuckDB keeps a reference to it)
        backend.con.register(tname, arrow)
        return backend.table(tname)
    create_view = getattr(backend, "create_view", None)
    if create_view is None:
        return backend.create_table(tname, arrow)
    # integers with nulls travel as text: through pandas they became floats with NaN, which Spark read
    # into its long column as nulls only (every value of a frame's Int64 quantity or attribute lost)
    gappy = {
        field.name: field.type
        for field in arrow.schema
        if pa.types.is_integer(field.type) and arrow.column(field.name).null_count
    }
    for column in gappy:
        i = arrow.schema.get_field_index(column)
        arrow = arrow.set_column(i, column, arrow.column(i).cast(pa.string()))
    view = create_view(tname, ibis.memtable(arrow))  # Spark: a temporary view on the in-memory table
    if gappy:
        view = view.mutate(**{c: view[c].cast(ibis.dtype(kind)) for c, kind in gappy.items()})
    floats = [column for column, dtype in view.schema().items() if dtype.is_floating()] if nan_is_null else []
    if not floats:
        return view
    return view.mutate(
        **{c: ibis.ifelse(view[c].isnan(), ibis.null(view[c].type()), view[c]) for c in floats}
    )


def _adopt(table: ir.Table, name: str, backend: ibis.BaseBackend) -> ir.Table:
    """Use an Ibis table on `backend` as is, or copy it there (with a warning) from another backend."""
    try:
        own = table.get_backend()
    except ibis.common.exceptions.IbisError:
        own = None
    if own is backend:
        return table
    if own is not None:
        log.warning(
            "%s: the Ibis table lives on another backend (%s); copying it to %s", name, own.name, backend.name
        )
    return _register(backend, name, table.to_pyarrow())


def frame_to_arrow(
    frame: pd.DataFrame, name: str = "table", *, ids: frozenset[str] = frozenset()
) -> tuple[pa.Table, list[Problem]]:
    """Convert a DataFrame to Arrow without ever failing on odd values.

    Named index levels become columns; column names become stripped strings; tz-aware datetimes become
    naive UTC; object columns of mixed values become text (so the validator reports them as unparseable
    rather than pyarrow crashing); values pyarrow cannot hold become text.

    Parameters
    ----------
    frame : pandas.DataFrame
        The user's table.
    name : str
        Table name for problems.
    ids : frozenset of str
        The name keys of the id columns (as `data.columns` maps them), read by the Parquet file rules:
        durations are refused, and a uint64 above int64 stays a number, for validation to refuse.

    Returns
    -------
    pyarrow.Table
        One column per frame column; duplicated names get a suffix " (2)", " (3)", ...
    list of Problem
        Duplicated column names, if any.
    """
    if any(level is not None for level in frame.index.names):
        frame = frame.reset_index()
    names = [_column_name(c, i) for i, c in enumerate(frame.columns)]
    problems: list[Problem] = []
    dups = _duplicates(names)
    if dups:
        problems.append(_duplicate_problem(name, dups, names))
    arrays = [
        _id_to_arrow(frame.iloc[:, i], name, names[i])
        if _name_key(names[i]) in ids
        else _to_arrow(frame.iloc[:, i])
        for i in range(frame.shape[1])
    ]
    return pa.Table.from_arrays(arrays, names=_unique_names(names)), problems


def _frame_zoned(frame: pd.DataFrame) -> frozenset[str]:
    """The time-zone-aware datetime columns of `frame` (`RawTable.zoned`) by their `frame_to_arrow` names.

    `frame_to_arrow` makes them naive UTC, so its Arrow types no longer say which had a zone.
    """
    if any(level is not None for level in frame.index.names):
        frame = frame.reset_index()
    names = _unique_names([_column_name(c, i) for i, c in enumerate(frame.columns)])
    return frozenset(n for n, dtype in zip(names, frame.dtypes, strict=True) if _zoned_dtype(dtype))


def _zoned_dtype(dtype: Any) -> bool:
    """Whether a pandas dtype is a time-zone-aware datetime (numpy-backed or Arrow-backed)."""
    if isinstance(dtype, pd.DatetimeTZDtype):
        return True
    return isinstance(dtype, pd.ArrowDtype) and _zoned_type(dtype.pyarrow_dtype)


def _unique_names(names: list[str]) -> list[str]:
    """Names made unique (ignoring case) by suffixes " (2)", " (3)", ...; the first keeps its name."""
    unique: list[str] = []
    seen: dict[str, int] = {}
    for n in names:
        key = n.lower()
        seen[key] = seen.get(key, 0) + 1
        unique.append(n if seen[key] == 1 else f"{n} ({seen[key]})")
    return unique


def _column_name(column: Any, position: int) -> str:
    text = " ".join(map(_text, column)) if isinstance(column, tuple) else _text(column)
    return clean_name(text) or f"unnamed_{position}"


def _id_to_arrow(series: pd.Series, table: str, column: str) -> pa.Array:
    """An id column as a Parquet file of it reads: durations refused, uint64 beyond int64 a number.

    A frame's timedelta ids were text codes ('0 days 00:00:01') and its uint64 ids above 2**63 - 1 text
    codes, where the same column in a Parquet file is refused (`_check_durations`, validation's
    "id outside int64"). Other columns keep `_to_arrow`'s reading (an attribute's text is a category).
    """
    kind = _duration_kind(series)
    if kind is not None:
        raise DataError(
            f"{table}: the DataFrame stores {column} as a duration ({kind}), which the engines read as a "
            "count of its ticks, as in a Parquet file of it: ids are whole numbers or text, so pass the ids "
            "themselves"
        )
    return _to_arrow(series, wide_ids=True)


def _duration_kind(series: pd.Series) -> str | None:
    """The dtype of a column of durations (numpy or Arrow timedeltas, or timedelta objects), else None."""
    dtype = series.dtype
    if pd.api.types.is_timedelta64_dtype(dtype):
        return str(dtype)
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_duration(dtype.pyarrow_dtype):
        return str(dtype)
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) == "timedelta":
        return "timedelta objects"
    return None


def _to_arrow(series: pd.Series, *, wide_ids: bool = False) -> pa.Array:
    """One column as an Arrow array that DuckDB and Spark accept (`wide_ids`: see `_supported`)."""
    s = series.reset_index(drop=True)
    if isinstance(s.dtype, pd.SparseDtype):
        s = pd.Series(s.to_numpy())
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if s.dtype == object:
        s = _normalise_objects(s)
    elif (
        isinstance(s.dtype, pd.PeriodDtype | pd.IntervalDtype)
        or pd.api.types.is_timedelta64_dtype(s.dtype)
        or pd.api.types.is_complex_dtype(s.dtype)
    ):
        s = _as_text(s)
    try:
        array = pa.Array.from_pandas(s)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        array = pa.Array.from_pandas(_as_text(s), type=pa.string())
    return _supported(array, s, wide_ids=wide_ids)


def _supported(array: pa.Array, series: pd.Series, *, wide_ids: bool = False) -> pa.Array:
    """Replace Arrow types the engines do not take (null, float16, unsigned 64-bit, durations, ...).

    A uint64 beyond int64 becomes text, or with `wide_ids` (an id column) decimal(20,0), as Spark reads a
    Parquet uint64, which validation refuses as beyond int64 on both engines.
    """
    typ = array.type
    if pa.types.is_null(typ):
        return pa.nulls(len(array), type=pa.string())
    if pa.types.is_float16(typ):
        return array.cast(pa.float64())
    if pa.types.is_uint64(typ):
        top = pa.compute.max(array).as_py()
        if top is None or top <= 2**63 - 1:
            return array.cast(pa.int64())
        if wide_ids:
            return array.cast(pa.decimal128(20, 0))
        return pa.Array.from_pandas(_as_text(series), type=pa.string())
    if pa.types.is_dictionary(typ):
        return array.dictionary_decode()
    scalar_types = (
        pa.types.is_boolean,
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_decimal,
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_timestamp,
        pa.types.is_date,
    )
    if not any(check(typ) for check in scalar_types):
        return pa.Array.from_pandas(_as_text(series), type=pa.string())
    if pa.types.is_decimal(typ) and typ.precision > 38:
        return pa.Array.from_pandas(_as_text(series), type=pa.string())
    return array


def _is_null(value: Any) -> bool:
    """A scalar null (None, NaN, NaT, pd.NA); containers are never null."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value)) if pd.api.types.is_scalar(value) else False
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    """A value as valid UTF-8 text (lone surrogates and undecodable bytes become U+FFFD)."""
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    else:
        text = str(value)
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _as_text(series: pd.Series) -> pd.Series:
    """Every non-null value as its text; nulls stay null."""
    return pd.Series([None if _is_null(v) else _text(v) for v in series], dtype=object)


def _normalise_objects(series: pd.Series) -> pd.Series:
    """An object column as one clean type: numbers, booleans, UTC datetimes or text."""
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        return pd.Series([None if _is_null(v) else v for v in series], dtype=object)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal", "boolean"):
        return series
    if kind in ("datetime", "datetime64", "date"):
        values = [v for v in series if not _is_null(v)]
        aware = [getattr(v, "tzinfo", None) is not None for v in values]
        if all(aware) and values:
            return pd.to_datetime(series, utc=True).dt.tz_localize(None)
        if not any(aware):
            try:
                return pd.to_datetime(series)
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
                return _as_text(series)
        return _as_text(series)  # some with and some without a time zone: the validator reports it
    return _as_text(series)
