"""`load_data` and `validate`: from the user's tables to a validated `Dataset` on one Ibis backend.

Nothing downstream ever sees unvalidated data: `load_data` reads every table, checks it against the
contract in the engine, raises `SchemaError` with every hard problem at once, and otherwise returns the
canonical tables with the data-quality summary.
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from kamml.config import Config, DataConfig, EngineConfig, is_uri
from kamml.data.contract import TABLES, column_mapping
from kamml.data.quality import (
    QualityReport,
    after_end_notes,
    amount_notes,
    attribute_notes,
    gap_notes,
    hours_notes,
    relationship_notes,
    spelling_notes,
)
from kamml.data.readers import (
    TABLE_KINDS,
    TABLE_SUFFIXES,
    RemoteTable,
    backend_errors,
    engine_message,
    find_table_source,
    read_raw,
    source_files,
    unreadable_hint,
)
from kamml.data.validation import validate_tables
from kamml.engine import check_utc_session, connect, engine_errors, engine_failure
from kamml.errors import ConfigError, DataError, SchemaError
from kamml.text import counted

__all__ = [
    "Dataset",
    "changed_inputs",
    "check_not_a_table_name",
    "input_paths",
    "input_stamps",
    "load_data",
    "validate",
]

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Validated input tables on one Ibis backend, with their data-quality summary.

    Attributes
    ----------
    transactions : ibis Table
        ``account_id`` (int64, or string when any account key is text), ``ts`` (timestamp, naive UTC),
        ``amount`` (float64), ``quantity`` (float64; when absent 1.0, 0.0 on a refund row), and when
        given ``product`` (string) and ``transaction_id`` (int64 or string; a row repeating another in
        every column is dropped, rows that share an id but differ are kept).
    accounts : ibis Table or None
        ``account_id``, optional ``created_at`` (timestamp) and ``owner`` (string), then the other
        static attributes as given (numbers recognised when read from CSV).
    referrals : ibis Table or None
        ``referrer_id``, ``referred_id``, ``ts``.
    activities : ibis Table or None
        ``account_id``, ``ts``, ``hours`` (float64), optional ``kind`` (string).
    end : pandas.Timestamp
        Exclusive end of observed time: config ``data.end`` + 1 day, else the day after the last
        transaction.
    quality : QualityReport
        Soft problems and table statistics.
    backend : ibis.BaseBackend
        The connection holding every table.
    inputs : dict of str to Path
        Table name -> the file, folder of parts or glob it was read from (tables given as files only), so
        writers can refuse to write over an input (`kamml.io.check_not_input`).
    remote : dict of str to str
        The config's data settings (``path``, ``<table>``) given as URIs that a job read through Spark
        (`kamml.jobs.data.job_source`), so the run records where its data was; empty otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> from kamml.data import load_data
    >>> tx = pd.DataFrame({"account_id": [1, 2], "ts": ["2024-01-02", "2024-03-04"], "amount": [10.0, 5.0]})
    >>> data = load_data({"transactions": tx})
    >>> data.end
    Timestamp('2024-03-05 00:00:00')
    >>> data.to_pandas("transactions").columns.tolist()
    ['account_id', 'ts', 'amount', 'quantity']
    """

    transactions: ir.Table = field(repr=False)
    accounts: ir.Table | None = field(repr=False)
    referrals: ir.Table | None = field(repr=False)
    activities: ir.Table | None = field(repr=False)
    end: pd.Timestamp
    quality: QualityReport = field(repr=False)
    backend: ibis.BaseBackend = field(repr=False)
    inputs: dict[str, Path] = field(default_factory=dict, repr=False)
    remote: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tables(self) -> dict[str, ir.Table]:
        """The tables that were given, by name."""
        named = {name: getattr(self, name) for name in TABLES}
        return {name: table for name, table in named.items() if table is not None}

    def to_pandas(self, name: str) -> pd.DataFrame:
        """Execute one table into pandas (for small data and tests; features stay in the engine).

        Raises
        ------
        KeyError
            `name` is not one of the four tables, or that table was not given.
        """
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        table = getattr(self, name)
        if table is None:
            raise KeyError(f"the dataset has no {name} table")
        return table.execute()


def _configs(config: Config | DataConfig | None) -> tuple[DataConfig, EngineConfig]:
    if config is None:
        return DataConfig(), EngineConfig()
    if isinstance(config, Config):
        return config.data, config.engine
    return config, EngineConfig()


def _config_path(value: str, folder: Path | None) -> str:
    """A table path from the config: relative to the data folder when it exists there, else as given."""
    path = Path(value).expanduser()
    if not path.is_absolute() and folder is not None:
        inside = folder / path
        # a glob (exports/tx_*.csv) too: it was matched from the working directory, maybe other files
        if inside.exists() or (any(ch in value for ch in "*?[") and glob.glob(str(inside), recursive=True)):
            return str(inside)
    return str(path)


def _check_not_uri(what: str, source: Any) -> None:
    """Refuse a table given as a URI, named as written (`DataError`): the tables are read from local paths.

    The readers list, check and stamp the files on the driver, so ``s3a://bucket/data`` was looked for
    through `Path`, as ``s3a:/bucket/data``: "data not found: s3a:/bucket/data (/cwd/s3a:/bucket/data: a
    relative path is read from the folder the command runs in)", neither what was written nor the cause.
    A local file whose name only looks like a URI is read.
    """
    if not is_uri(source):
        return
    text = str(source)
    local = re.sub(r"^file:(//(?=/))?", "", text) if text.lower().startswith("file:") else None
    hint = (
        f"give the path itself ({local})"
        if local
        else "copy the tables to a local folder, or mount the store"
    )
    raise DataError(
        f"cannot read {what} from {text}: kamml reads the data tables from local files and folders (a "
        f"store mounted as one, such as /dbfs/..., too), not from a URI; {hint}; or read it with Spark: "
        "with engine name spark in the config, kamml's jobs read a URI in data.path or data.<table> "
        "through kamml.spark.remote_tables (in Python: load_data(remote_tables(uri, config), config))"
    )


def _own_table(folder: Path | None, name: str) -> Path | None:
    """The data folder's own file for table `name`, or None (none, no folder, or more than one)."""
    if folder is None:
        return None
    try:
        return find_table_source(folder, name)
    except DataError:
        return None


def _resolve_sources(source: Any, data: DataConfig, *, warn: bool = True) -> dict[str, Any]:
    """Which object or path holds each table (transactions required).

    `warn`: say when a configured table passes over the folder's own; off where only the paths are
    looked up (`input_paths`), so a job that checks its outputs first says it once, when it reads.
    """
    if source is None:
        source = data.path
    if source is None:
        if data.transactions is None:
            raise DataError(
                "no data given: pass a folder, a file or a dict of tables, or set data.path or "
                "data.transactions"
            )
        source = {}  # every table from its own data.<table> path
    folder: Path | None = None
    sources: dict[str, Any] = {}
    if isinstance(source, Mapping):
        unknown = sorted(str(k) for k in source if k not in TABLES)
        if unknown:
            raise DataError(
                f"unknown table name {', '.join(map(repr, unknown))}; tables: {', '.join(TABLES)}"
            )
        sources = {k: v for k, v in source.items() if v is not None}
    elif isinstance(source, pd.DataFrame | ir.Table):
        sources = {"transactions": source}
    elif isinstance(source, str | Path):
        _check_not_uri("the data", source)
        path = Path(source).expanduser()
        if path.is_dir():
            folder = path
            for name in TABLES:
                if getattr(data, name) is None:
                    found = find_table_source(path, name)
                    if found is not None:
                        sources[name] = found
        elif path.exists() or any(ch in str(source) for ch in "*?["):
            sources = {"transactions": source}
        else:
            # a relative path is read from the working folder, not the config file's: say where it looked
            where = (
                ""
                if path.is_absolute()
                else f" ({path.absolute()}: a relative path is read from the folder the command runs in)"
            )
            raise DataError(f"data not found: {path}{where}")
    else:
        raise DataError(f"cannot read data from a {type(source).__name__}; give a folder, a file or a dict")
    for name in TABLES:
        configured = getattr(data, name)
        if configured is not None and name not in sources:
            _check_not_uri(name, configured)  # before `Path` folds its "//"
            sources[name] = _config_path(configured, folder)
            own = _own_table(folder, name)
            if warn and own is not None and Path(own).resolve() != Path(sources[name]).resolve():
                log.warning(  # a new drop in the folder was passed over for the config's table, silently
                    "%s: data.%s in the config (%s) is read, not %s in the data folder %s",
                    name,
                    name,
                    sources[name],
                    own,
                    folder,
                )
    for name, value in sources.items():
        _check_not_uri(name, value)
    if "transactions" not in sources:
        where = f" in {folder}" if folder is not None else ""
        raise DataError(
            f"no transactions table{where}: expected a file transactions.parquet, transactions.csv or "
            f"another of the kinds kamml reads ({TABLE_KINDS}), or a folder transactions/ of parts (or "
            "set data.transactions in the config)"
        )
    return sources


#: Days between the last transaction and a configured ``data.end`` beyond which a warning is logged.
FAR_END_DAYS = 365

#: Days without a transaction before a configured ``data.end`` from which the data's own pace is asked.
STALL_MIN_DAYS = 14

#: A pause before ``data.end`` this many times the longest of the year before it is warned of.
STALL_FACTOR = 2


def _check_end(data: DataConfig) -> None:
    """Refuse a ``data.end`` after today (`ConfigError`): it would score at a day that has not come.

    A transaction dated after today is already refused; an end after today passed, and every account
    was scored at a cutoff in the future as if it had lapsed (``end: 2031-01-01`` scored at 2031-01-02
    with mean p_churn 1.0 and exit 0). Today is the UTC date, as for the transactions.
    """
    if data.end is None:
        return
    today = pd.Timestamp.now(tz="UTC").date()
    if data.end > today:
        raise ConfigError(
            f"data.end {data.end} is after today ({today}): the data cannot cover a day that has not "
            "come; set data.end to the last day the data covers, or remove it (the data then ends the day "
            "after its last transaction)"
        )


def _warn_far_end(end: pd.Timestamp, last: pd.Timestamp | None, transactions: ir.Table) -> None:
    """Warn when a configured end lies far after the last transaction: a year, or far beyond the data's pace.

    A whole year without a single transaction in the data is far more likely a mistyped ``data.end`` or a
    stale extract than a quiet year; at such an end every account looks lapsed. A fixed year, not a
    multiple of the horizon: the data is read before (and without) the model's settings. A shorter pause
    is warned of when it is at least `STALL_MIN_DAYS` and `STALL_FACTOR` times the longest pause of the
    year before the last transaction: a weekly job whose export stalled while ``data.end`` moved on read
    90 days of silence as churn (the total value fell by 69 %) without a word.
    """
    if last is None:
        return
    last_day = last.floor("D")
    gap = (end - pd.Timedelta(days=1) - last_day).days
    shown = (end - pd.Timedelta(days=1)).date()
    if gap > FAR_END_DAYS:
        log.warning(
            "data.end %s is %d days after the last transaction (%s): every account will look lapsed at "
            "the end; is data.end right, or is the data stale?",
            shown,
            gap,
            last_day.date(),
        )
        return
    if gap < STALL_MIN_DAYS:
        return
    longest = _longest_pause(transactions, last_day)
    if longest is not None and gap >= STALL_FACTOR * longest:
        log.warning(
            "data.end %s is %d days after the last transaction (%s), and in the year before it the "
            "transactions never paused more than %d day%s: is the export complete? Accounts read as "
            "lapsed over the missing days",
            shown,
            gap,
            last_day.date(),
            longest,
            "" if longest == 1 else "s",
        )


def _longest_pause(transactions: ir.Table, last_day: pd.Timestamp) -> int | None:
    """Most days between two successive days with transactions in the year up to `last_day` (None: < 2 days).

    One query of at most 366 distinct days, made only when ``data.end`` lies weeks after the data.
    """
    start = (last_day - pd.Timedelta(days=FAR_END_DAYS)).to_pydatetime()
    recent = transactions.filter(transactions.ts >= start)
    days = recent.select(day=recent.ts.date()).distinct().execute()["day"]
    if len(days) < 2:
        return None
    return int(pd.to_datetime(days).sort_values().diff().max().days)


def input_paths(source: Any, config: Config | DataConfig | None = None) -> dict[str, Path]:
    """Table name -> the file, folder of parts or glob each table of a job would be read from.

    The same resolution as `load_data` (a folder's ``transactions.parquet`` ..., ``data.<table>`` from
    the config), without reading anything, so outputs can be checked against the inputs before any work.
    Tables given as frames or Ibis tables are left out, and a source that cannot be resolved (a data
    folder not generated yet) gives no paths: reading it reports the problem.
    """
    data_cfg, _ = _configs(config)
    try:
        sources = _resolve_sources(source, data_cfg, warn=False)
    except DataError:
        return {}
    return _paths(sources)


def input_stamps(paths: Mapping[str, Path]) -> dict[str, tuple[int, int, int]]:
    """Size, modification time and inode of every file behind `paths` (a folder's parts, a glob's matches).

    Parquet inputs are read lazily, stage by stage: a file an export replaced while a job ran fed its
    later stages another dataset than the one validated and fingerprinted (`changed_inputs`).
    """
    stamps: dict[str, tuple[int, int, int]] = {}
    for path in paths.values():
        for file in source_files(path):  # the files the readers read, so Spark's _SUCCESS is not one
            try:
                st = file.stat()
            except OSError:  # gone: absent from the stamps, so a comparison names it
                continue
            stamps[str(file)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return stamps


def changed_inputs(before: Mapping[str, tuple[int, int, int]], paths: Mapping[str, Path]) -> list[str]:
    """The input files added, removed or rewritten since `before` (`input_stamps`), sorted."""
    now = input_stamps(paths)
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def check_not_a_table_name(path: str | Path, source: Any) -> None:
    """Refuse an output the data folder `source` would read as one of its tables next time (`DataError`).

    ``--out data/accounts.csv`` beside ``data/accounts.parquet`` made every later job on the folder fail
    ("more than one source"), and ``data/referrals.csv`` where there was none was read as the referrals;
    so was an output inside a folder of that name (``data/referrals/out.csv``).
    `source` that is not a folder (a file, frames, None) checks nothing.
    """
    if not isinstance(source, str | Path) or not Path(source).expanduser().is_dir():
        return
    folder = Path(source).expanduser().resolve()
    out = Path(path).expanduser().resolve()
    if folder not in out.parents:
        return
    # its first step inside the folder: the output itself, or a folder of parts it would land in
    # (``data/accounts/part.parquet`` made a new accounts table of the allocation)
    first = out.relative_to(folder).parts[0]
    for name in TABLES:
        lower = first.lower()  # the folder's tables are found in any case of letters
        if lower == name or any(lower == f"{name}{suffix}" for suffix in TABLE_SUFFIXES):
            raise DataError(
                f"cannot write {path}: in the data folder {folder} it would be read as the {name} table "
                "next time; write the output elsewhere"
            )


def _paths(sources: Mapping[str, Any]) -> dict[str, Path]:
    """The sources that are paths, expanded (``~``)."""
    return {name: Path(src).expanduser() for name, src in sources.items() if isinstance(src, str | Path)}


def _backend_of(sources: Mapping[str, Any]) -> ibis.BaseBackend | None:
    """The backend of the first Ibis table given, so user tables are used where they live."""
    for value in sources.values():
        value = value.table if isinstance(value, RemoteTable) else value
        if isinstance(value, ir.Table):
            try:
                return value.get_backend()
            except ibis.common.exceptions.IbisError:
                continue
    return None


def _notes_of(notes: list[Any], table: str, start: str) -> list[Any]:
    """The data-quality notes on `table` whose rule starts with `start`."""
    return [n for n in notes if n.table == table and n.rule.startswith(start)]


def _check_ids_meet(notes: list[Any], stats: dict[str, Any]) -> None:
    """A DataError when no account of the accounts table has a transaction: ids written two ways.

    Each table alone is valid, so this surfaced only as two notes while every account was scored twice,
    once from each table (``000123`` in one file and ``123`` or ``123.0`` in the other).
    """
    if "accounts" not in stats:
        return
    rows = stats["accounts"].rows or 0
    orphans = _notes_of(notes, "accounts", "accounts without transactions")
    if not rows or not orphans or orphans[0].n_rows < rows:
        return
    missing = _notes_of(notes, "transactions", "transactions of accounts")
    shown_tx = ", ".join(repr(v) for v in (missing[0].examples if missing else ())[:3])
    shown_acc = ", ".join(repr(v) for v in orphans[0].examples[:3])
    raise DataError(
        f"accounts.account_id and transactions.account_id share no id: none of the {rows:,} accounts has a "
        f"transaction (accounts: {shown_acc}; transactions: {shown_tx}); are the ids written two ways, "
        "with leading zeros, as 123.0, or with another prefix?"
    )


def _check_referral_ids_meet(notes: list[Any], stats: dict[str, Any], transactions: ir.Table) -> None:
    """A DataError when no referral names a known account on either side: ids written two ways.

    A CRM export writing ``00117`` for billing's ``117`` passed with two notes (referrals from and to
    unknown accounts) while every referral feature and label was 0 for every account.
    """
    rows = stats["referrals"].rows if "referrals" in stats else 0
    if not rows:
        return
    unknown = {side: _notes_of(notes, "referrals", f"referrals {side} unknown") for side in ("from", "to")}
    if any(not found or found[0].n_rows < rows for found in unknown.values()):
        return
    known = transactions.select("account_id").distinct().order_by("account_id").limit(3)
    with engine_errors():
        shown_tx = ", ".join(repr(v) for v in known.to_pyarrow().column("account_id").to_pylist())

    def shown(side: str) -> str:
        return ", ".join(repr(v) for v in unknown[side][0].examples[:3])

    raise DataError(
        "referrals.referrer_id and referred_id share no id with the transactions or the accounts table: "
        f"none of the {counted(rows, 'referral')} names a known account (referrers: {shown('from')}; "
        f"referred: {shown('to')}; transactions: {shown_tx}); are the ids written two ways, with leading "
        "zeros, as 123.0, or with another prefix? As given, every referral feature and label would be 0 "
        "for every account (leave the referrals table out if it is not about these accounts)"
    )


def _cache(table: ir.Table, name: str) -> ir.Table:
    """Compute a table once (a DuckDB temp table that can spill to disk, a persisted Spark frame).

    An input the engine cannot read whole (a CSV that is not UTF-8) is a `DataError` naming the table.
    """
    try:
        return table.cache()
    except NotImplementedError:
        log.debug("%s: the backend cannot cache tables; it stays a lazy expression", name)
        return table
    except backend_errors() as exc:
        failure = engine_failure(exc)  # the engine's memory, not the input: an EngineError
        if failure is not None:
            raise failure from None
        message = engine_message(exc)
        raise DataError(f"{name}: cannot read the input: {message}{unreadable_hint(message)}") from None


def load_data(
    source: str | Path | Mapping[str, Any] | pd.DataFrame | ir.Table | None,
    config: Config | DataConfig | None = None,
    *,
    backend: ibis.BaseBackend | None = None,
) -> Dataset:
    """Read, validate and type the input tables (DESIGN §2).

    Parameters
    ----------
    source : str, Path, mapping, DataFrame or ibis Table
        A folder holding ``transactions`` and optionally ``accounts``, ``referrals``, ``activities``
        (each one file of the kinds in ``kamml.data.readers.TABLE_SUFFIXES``, ``.parquet``, ``.csv``,
        ``.tsv``, ``.txt`` ..., or a folder of Parquet or CSV parts; file names in any case); a mapping of
        table name to
        DataFrame, path, glob or Ibis table; or one transactions file, glob, frame or table. None reads
        ``config.data.path``, or without it the tables the config names (``data.transactions`` ...).
    config : Config or DataConfig, optional
        ``data`` gives per-table paths, column names (``columns``), ``end`` and ``csv_delimiter``;
        ``engine`` picks the backend when `backend` is not given.
    backend : ibis.BaseBackend, optional
        Connection to put the tables on. Default: the backend of a given Ibis table, else
        `kamml.engine.connect` with the config's engine.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        A table cannot be read at all (missing or empty file, unknown format, no transactions).
    SchemaError
        The tables break the contract; carries one `Problem` per broken rule, for every table.
    ConfigError
        ``data.columns`` names a column the contract does not know, or ``data.end`` is after today.
    EngineError
        The engine ran out of memory (``engine.memory_limit``) while reading or checking the tables.

    Notes
    -----
    Tables parsed from CSV text, and transactions with duplicate ids, are computed once and cached on the
    backend (a DuckDB temporary table, which spills to ``engine.temp_directory`` under
    ``engine.memory_limit``; a persisted Spark frame). Parquet and frames stay lazy views.
    """
    with engine_errors():  # out of memory in the checks and quality notes too
        return _load(source, config, backend=backend, materialize=True)


def _load(
    source: Any,
    config: Config | DataConfig | None,
    *,
    backend: ibis.BaseBackend | None,
    materialize: bool,
) -> Dataset:
    """`load_data`, optionally without caching the costly tables (a check only needs the counts)."""
    data_cfg, engine_cfg = _configs(config)
    _check_end(data_cfg)
    sources = _resolve_sources(source, data_cfg)
    mappings = {name: column_mapping(name, getattr(data_cfg.columns, name)) for name in TABLES}
    if backend is None:
        backend = _backend_of(sources) or connect(engine_cfg)
    check_utc_session(backend)
    raws = {
        name: read_raw(src, name, backend, delimiter=data_cfg.csv_delimiter, mapping=mappings[name])
        for name, src in sources.items()
        if name in TABLES
    }
    configured_end = pd.Timestamp(data_cfg.end) + pd.Timedelta(days=1) if data_cfg.end is not None else None
    result = validate_tables(raws, mappings, end=configured_end)
    if result.problems:
        raise SchemaError(result.problems)
    if configured_end is not None:
        end, end_source = configured_end, "config data.end"
        _warn_far_end(configured_end, result.max_ts, result.tables["transactions"])
    else:
        assert result.max_ts is not None  # an empty transactions table is a hard problem
        end, end_source = result.max_ts.floor("D") + pd.Timedelta(days=1), "the last transaction"
    tables = dict(result.tables)
    try:  # the first whole scan of a lazily read file may be here (Spark): a bad row is a reading error
        if materialize:
            for name in sorted(result.costly):
                tables[name] = _cache(tables[name], name)
        notes = result.notes + relationship_notes(
            tables["transactions"], tables.get("accounts"), tables.get("referrals"), tables.get("activities")
        )
        notes += spelling_notes(tables["transactions"], tables.get("accounts"))
        notes += amount_notes(tables["transactions"])
        notes += gap_notes(tables["transactions"]) + hours_notes(tables.get("activities"), result.max_ts)
        notes += attribute_notes(tables.get("accounts"))
        if configured_end is None:  # with data.end, later rows were errors already
            notes += after_end_notes(tables, end)
    except backend_errors() as exc:
        failure = engine_failure(exc)
        raise failure or DataError(f"cannot read the input tables: {engine_message(exc)}") from None
    _check_ids_meet(notes, result.stats)
    _check_referral_ids_meet(notes, result.stats, tables["transactions"])
    report = QualityReport(result.stats, notes, end, end_source)
    log.info(
        "validated %s: %s transactions, data end %s (exclusive), %s",
        ", ".join(tables),
        f"{result.stats['transactions'].rows:,}",
        end.date(),
        counted(len(notes), "data-quality note"),
    )
    return Dataset(
        transactions=tables["transactions"],
        accounts=tables.get("accounts"),
        referrals=tables.get("referrals"),
        activities=tables.get("activities"),
        end=end,
        quality=report,
        backend=backend,
        inputs=_paths(sources),
    )


def validate(
    source: str | Path | Mapping[str, Any] | pd.DataFrame | ir.Table | None,
    config: Config | DataConfig | None = None,
    *,
    backend: ibis.BaseBackend | None = None,
) -> QualityReport:
    """Check the input tables against the contract and return the data-quality summary.

    Same arguments as `load_data`. Raises `SchemaError` (all problems at once) on hard errors and
    `DataError` when a table cannot be read. Tables read from CSV are read whole, as `load_data` reads
    them: the checks read only the columns they need, so a byte that is not UTF-8 in another column
    passed here and stopped the job.
    """
    with engine_errors():
        return _load(source, config, backend=backend, materialize=True).quality
