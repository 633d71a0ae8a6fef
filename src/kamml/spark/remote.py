"""Data tables on a Hadoop store (``hdfs://``, ``s3a://``, ``abfs://``), read by Spark itself for `load_data`.

kamml's readers list, check and stamp the input files on the driver, which sees no Hadoop store, so
`kamml.data.load_data` refuses a URI. Here Spark lists and reads the tables: each contract table stored
in a Parquet layout the local reader takes (``<table>.parquet`` or ``.pq``, a file or a folder of parts
as Spark writes them, or a folder ``<table>/`` of parts, in any case of letters) becomes an Ibis table
on kamml's Spark backend, and `load_data` then validates them in Spark as it validates local files.
Only Parquet: a CSV's reading rules (its delimiter, decimal comma and encoding sniffed from its first
bytes) need the file on the driver, so a CSV table is a `DataError` naming it.

For example, on a cluster (docs/spark.md)::

    data = load_data(remote_tables("hdfs:///crm/kamml", config), config)
"""

from __future__ import annotations

import logging
from typing import Any

from kamml.config import URI_SCHEME, Config, load_config
from kamml.data.contract import TABLES
from kamml.data.readers import (
    TABLE_KINDS,
    RemoteTable,
    is_csv_name,
    is_hidden,
    is_parquet_name,
    more_than_one_source,
    table_entries,
)
from kamml.errors import ConfigError, DataError
from kamml.spark.session import _fs

__all__ = ["remote_table", "remote_tables"]

log = logging.getLogger(__name__)


def remote_tables(
    folder: str, config: Config | None = None, *, backend: Any = None
) -> dict[str, RemoteTable]:
    """The data tables under the folder URI `folder`, as Ibis tables on kamml's Spark backend.

    Parameters
    ----------
    folder : str
        A folder any Hadoop file system the session reaches holds (``hdfs:///crm/kamml``,
        ``s3a://bucket/kamml``, or ``file:///...``), with ``transactions`` and, optionally, ``accounts``,
        ``referrals`` and ``activities`` as the local reader finds them, in Parquet: ``<table>.parquet``
        or ``.pq`` (a file, or a folder of parts), or a folder ``<table>/`` of parts, in any case of letters.
    config : Config, optional
        Its ``engine`` must be ``spark`` (the session is `kamml.engine.connect`'s: the active one, or one
        started from ``engine.spark``). Default: the packaged ``spark`` config.
    backend : ibis backend, optional
        The PySpark backend to read on (default: a new one on that session). Tables read together by
        several calls (a folder and a table given on its own) must share one: `load_data` copies a table
        of another backend object through the driver.

    Returns
    -------
    dict of str to RemoteTable
        Table name to table (``.table``, an Ibis table, and ``.uri``, where Spark reads it), for
        ``load_data(tables, config)``, which names each by its URI; the tables not in the folder left out.

    Raises
    ------
    kamml.errors.ConfigError
        When `folder` is no URI (a local folder goes to `load_data` as it is) or the engine is not Spark.
    kamml.errors.DataError
        When the folder holds no transactions table (naming what it does hold), a table in CSV or two
        sources of one table (naming them), or a folder of parts with no Parquet part or another kind.
    """
    config, text, backend, fs, hadoop_path = _open(folder, config, backend)
    entries = _entries(fs, hadoop_path, text)
    listed = dict(entries) if isinstance(entries, list) else {}
    found: dict[str, RemoteTable] = {}
    for name in TABLES:
        matches = table_entries(listed.items(), name)
        if len(matches) > 1:
            raise DataError(more_than_one_source(name, text, matches))
        if matches:
            found[name] = _read(
                backend, fs, hadoop_path, f"{text}/{matches[0]}", name, is_dir=listed[matches[0]]
            )
    if "transactions" not in found:
        raise DataError(
            f"no transactions table in {text}: remote_tables reads the tables {', '.join(TABLES)} as "
            "<table>.parquet or .pq (a file or a folder of parts) or a folder <table>/ of Parquet parts"
            f"{_listing(entries)}"
        )
    return found


def remote_table(uri: str, name: str, config: Config | None = None, *, backend: Any = None) -> RemoteTable:
    """Table `name` at `uri` (a Parquet file or a folder of Parquet parts), as an Ibis table on Spark.

    For one table given on its own (``data.accounts: hdfs:///crm/accounts.parquet``); the rules and
    errors of `remote_tables` (its `backend` too), a missing path a `DataError` naming it.
    """
    config, text, backend, fs, hadoop_path = _open(uri, config, backend)
    try:
        is_dir = bool(fs.getFileStatus(hadoop_path(text)).isDirectory())
    except Exception as exc:  # a Py4J error: no such file, or no right to see it
        raise DataError(f"{name}: cannot read {text} ({_first_line(exc)})") from None
    return _read(backend, fs, hadoop_path, text, name, is_dir=is_dir)


def _open(folder: str, config: Config | None, backend: Any) -> tuple[Config, str, Any, Any, Any]:
    """The config, the URI without a trailing ``/``, the Spark backend (else kamml's) and its file system."""
    from kamml.engine import connect

    config = config if config is not None else load_config("spark")
    if config.engine.name != "spark":
        raise ConfigError(
            f"remote_tables reads {folder} with Spark: engine.name must be 'spark', "
            f"got '{config.engine.name}'"
        )
    text = str(folder).rstrip("/")
    if not URI_SCHEME.match(text):
        raise ConfigError(
            f"remote_tables takes a folder URI (hdfs://, s3a://, abfs://, file://), got {folder!r}: give a "
            "local folder to load_data itself"
        )
    backend = backend if backend is not None else connect(config.engine)
    fs, hadoop_path = _fs(backend._session, text)
    return config, text, backend, fs, hadoop_path


def _read(backend: Any, fs: Any, hadoop_path: Any, uri: str, name: str, *, is_dir: bool) -> RemoteTable:
    """Table `name` at `uri` read by Spark, once its layout is checked: Parquet, as the local reader's."""
    shown = uri.rsplit("/", 1)[-1]
    where = uri.rsplit("/", 1)[0]
    if is_csv_name(shown):
        raise DataError(
            f"{name}: {shown} in {where} is CSV: remote_tables reads Parquet only (a CSV's delimiter, "
            "decimal comma and encoding are sniffed from its first bytes on the driver); write the table "
            "as Parquet, or copy the folder to a local one for load_data"
        )
    if not is_dir and not is_parquet_name(shown):
        raise DataError(
            f"{name}: {uri} is not a Parquet file (.parquet, .pq): remote_tables reads Parquet only"
        )
    if is_dir:
        _check_parts(_parts(fs, hadoop_path, uri), name, uri)
    table = backend.read_parquet(uri)  # a view of its own name: a later read replaces none
    log.info("%s: %s (read by Spark)", name, uri)
    return RemoteTable(table, uri)


def _check_parts(parts: list[str], name: str, folder: str) -> None:
    """A DataError when a folder of parts holds no Parquet part, a CSV part or a part of another kind."""
    csv = [p for p in parts if is_csv_name(p)]
    others = [p for p in parts if not (is_csv_name(p) or is_parquet_name(p))]
    if csv or others:
        kind = "CSV parts" if csv else f"files of kinds kamml does not read (it reads {TABLE_KINDS})"
        raise DataError(
            f"{name}: folder {folder} holds {_some(csv or others)}, {kind}: remote_tables reads Parquet "
            "only, as Spark reads every part of the folder as Parquet; convert them or move them out (files "
            "named _x or .x, such as Spark's _SUCCESS, are skipped)"
        )
    if not parts:
        raise DataError(f"{name}: folder {folder} holds no Parquet parts (files named _x or .x are skipped)")


def _parts(fs: Any, hadoop_path: Any, folder: str) -> list[str]:
    """The files below `folder` as paths from it, less those Spark skips (``_SUCCESS``, ``.crc``, ...)."""
    found: list[str] = []
    stack = [("", hadoop_path(folder))]
    while stack:
        prefix, path = stack.pop()
        for status in fs.listStatus(path):
            child = str(status.getPath().getName())
            if is_hidden([child]):
                continue
            if status.isDirectory():
                stack.append((f"{prefix}{child}/", status.getPath()))
            else:
                found.append(f"{prefix}{child}")
    return sorted(found)


def _entries(fs: Any, hadoop_path: Any, folder: str) -> list[tuple[str, bool]] | str:
    """The folder's entries (name, is a folder), or why it cannot be listed."""
    try:
        statuses = fs.listStatus(hadoop_path(folder))
    except Exception as exc:  # a Py4J error: no such folder, or no right to list it
        return _first_line(exc)
    return sorted((str(s.getPath().getName()), bool(s.isDirectory())) for s in statuses)


def _listing(entries: list[tuple[str, bool]] | str) -> str:
    """``; it holds: a, b, ...`` (up to 10 names), or why the folder cannot be listed."""
    if isinstance(entries, str):
        return f"; the folder cannot be listed ({entries})"
    return f"; it holds: {_some([n for n, _ in entries], 10) or 'nothing'}"


def _some(names: list[str], most: int = 5) -> str:
    """Up to `most` names, and how many more."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _first_line(exc: BaseException) -> str:
    """An exception's first line, cut at 200 characters (a Py4J error's Java stack trace is long)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
