"""Data tables on a Hadoop store (``hdfs://``, ``s3a://``, ``abfs://``), read by Spark itself for `load_data`.

kamml's readers list, check and stamp the input files on the driver, which sees no Hadoop store, so
`kamml.data.load_data` refuses a URI. Here Spark lists and reads the tables: each contract table stored as
``<folder>/<table>.parquet`` (one file, or a folder of parts as Spark writes them) becomes an Ibis table on
kamml's Spark backend, and `load_data` then validates them in Spark as it validates local files. Only
Parquet: a CSV's reading rules (its delimiter, decimal comma and encoding sniffed from its first bytes)
need the file on the driver.

>>> from kamml.spark.remote import remote_tables  # doctest: +SKIP
>>> data = load_data(remote_tables("hdfs:///crm/kamml", config), config)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from kamml.config import Config, load_config
from kamml.data.contract import TABLES
from kamml.errors import ConfigError, DataError
from kamml.spark.session import _fs

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["remote_tables"]

log = logging.getLogger(__name__)

#: A URI's scheme, two characters at least (``C:`` is a drive), as `kamml.data.dataset` tells them.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def remote_tables(folder: str, config: Config | None = None) -> dict[str, ir.Table]:
    """The data tables under the folder URI `folder`, as Ibis tables on kamml's Spark backend.

    Parameters
    ----------
    folder : str
        A folder any Hadoop file system the session reaches holds (``hdfs:///crm/kamml``,
        ``s3a://bucket/kamml``, or ``file:///...``), with ``transactions.parquet`` and, optionally,
        ``accounts.parquet``, ``referrals.parquet`` and ``activities.parquet`` (files or folders of parts).
    config : Config, optional
        Its ``engine`` must be ``spark`` (the session is `kamml.engine.connect`'s: the active one, or one
        started from ``engine.spark``). Default: the packaged ``spark`` config.

    Returns
    -------
    dict of str to ibis Table
        Table name to table, for ``load_data(tables, config)``; the tables not in the folder left out.

    Raises
    ------
    kamml.errors.ConfigError
        When `folder` is no URI (a local folder goes to `load_data` as it is) or the engine is not Spark.
    kamml.errors.DataError
        When the folder holds no ``transactions.parquet``, naming what it does hold.
    """
    from kamml.engine import connect

    config = config if config is not None else load_config("spark")
    if config.engine.name != "spark":
        raise ConfigError(
            f"remote_tables reads {folder} with Spark: engine.name must be 'spark', "
            f"got '{config.engine.name}'"
        )
    text = str(folder).rstrip("/")
    if not _SCHEME.match(text):
        raise ConfigError(
            f"remote_tables takes a folder URI (hdfs://, s3a://, abfs://, file://), got {folder!r}: give a "
            "local folder to load_data itself"
        )
    backend = connect(config.engine)
    session = backend._session
    fs, hadoop_path = _fs(session, text)
    found: dict[str, ir.Table] = {}
    for name in TABLES:
        path = f"{text}/{name}.parquet"
        if not fs.exists(hadoop_path(path)):
            continue
        found[name] = backend.read_parquet(path)  # a view of its own name: a later read replaces none
        log.info("%s: %s (read by Spark)", name, path)
    if "transactions" not in found:
        raise DataError(
            f"no transactions.parquet in {text}: remote_tables reads <folder>/<table>.parquet for the tables "
            f"{', '.join(TABLES)} (Parquet only){_listing(fs, hadoop_path, text)}"
        )
    return found


def _listing(fs: object, hadoop_path: object, folder: str) -> str:
    """``; it holds: a, b, ...`` (up to 10 names), or why the folder cannot be listed."""
    try:
        names = sorted(str(s.getPath().getName()) for s in fs.listStatus(hadoop_path(folder)))  # type: ignore[attr-defined, operator]
    except Exception as exc:  # a Py4J error: no such folder, or no right to list it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"; the folder cannot be listed ({first[:200]})"
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"; it holds: {shown or 'nothing'}"
