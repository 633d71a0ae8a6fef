"""Resolving a job's input data from its config: the folder, and the seeded demo world when asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kamml.config import Config, is_uri
from kamml.data import Dataset, input_paths, load_data
from kamml.data.contract import TABLES
from kamml.data.dataset import changed_inputs, input_stamps
from kamml.errors import ConfigError, DataError
from kamml.io import hold_lock
from kamml.text import counted

__all__ = [
    "check_data_given",
    "ensure_generated",
    "job_data",
    "job_source",
    "stamped_job_data",
    "uri_sources",
]

log = logging.getLogger(__name__)


def _entries(folder: Path, prefix: str) -> list[str]:
    """Names in `folder` starting with `prefix` in any case of letters (as the readers find tables)."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.name.lower().startswith(prefix))
    except OSError:  # no folder yet
        return []


def _has_transactions(config: Config, folder: Path) -> bool:
    """Whether a transactions table is given: `data.transactions`, or a file or parts folder in `folder`.

    In any case of letters and any format: a user's ``Transactions.csv`` was missed, so a synthetic world
    was written beside it and every later job on the folder failed on two transactions tables.
    """
    return config.data.transactions is not None or bool(_entries(folder, "transactions"))


def _refuse_overwrite(folder: Path, tables: list[str], files: list[str], setting: str) -> None:
    """A DataError naming a source of `tables` (any case or format) or one of `files` already in `folder`.

    The user's data is never replaced, nor given a second source of a table beside it.
    """
    taken = [
        n for t in tables for n in _entries(folder, t) if n.lower() == t or n.lower().startswith(f"{t}.")
    ]
    taken += [n for f in files for n in _entries(folder, f) if n.lower() == f]
    if taken:
        raise DataError(
            f"{setting}: {folder} holds no transactions table but already holds {taken[0]}, which "
            f"generating would write over or beside; give the transactions table, or remove {setting}"
        )


#: How long a job waits for another one generating the same data folder (seconds).
GENERATE_LOCK_SECONDS = 1800.0
#: The lock file, inside the data folder (hidden from the readers, as every dot file is).
GENERATE_LOCK = ".kamml-generate.lock"


def ensure_generated(config: Config) -> None:
    """Fill `data.path` when no transactions table is given, so the shipped configs work on a fresh clone.

    The synthetic world when `data.generate` is set, or a packaged dataset when `data.builtin` is; never
    when `data.transactions` names a table, and never over a file already in a folder kamml has not
    generated into (its lock file marks one it has: a world left half written by a stopped job is
    written again). One job at a time generates (that lock): a second job waits, then finds the data
    written, and the transactions are written last, so a job never reads a world that is half there.
    """
    gen, path = config.data.generate, config.data.path
    if path is None or config.data.transactions is not None:
        return
    if config.data.builtin is None and gen is None:
        return
    if is_uri(path):  # Path("hdfs:///crm/kamml") is a local folder "hdfs:/crm/kamml" in the working folder
        setting = "data.builtin" if config.data.builtin is not None else "data.generate"
        raise ConfigError(
            f"'{setting}' writes its tables into data.path, a local folder; 'data.path' {path} is a URI: "
            f"remove {setting} (the tables there are read through Spark), or give a local data.path"
        )
    if _has_transactions(config, Path(path)):
        return
    if config.data.builtin is None and gen is not None:  # before writing a world every job would refuse
        from kamml.datasets.synthetic import check_ends_by_today

        check_ends_by_today(gen.years, "'data.generate.years'")
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {folder}: {exc.strerror or exc}") from None

    if not (folder / GENERATE_LOCK).exists():  # never generated here: a user's folder stays untouched
        _check_free(config, folder)
    with generate_lock(folder):
        if not _has_transactions(config, folder):  # written by the job this one waited for
            _generate(config, folder)


@contextmanager
def generate_lock(folder: Path) -> Iterator[None]:
    """Hold the data folder's generate lock for the block (one job or `kamml generate` writes at a time).

    Waits for another holder up to `GENERATE_LOCK_SECONDS`, then raises a DataError naming the lock.
    """

    def timed_out() -> DataError:
        return DataError(
            f"another kamml job has been generating the data in {folder} for over "
            f"{GENERATE_LOCK_SECONDS / 60:.0f} minutes (lock {folder / GENERATE_LOCK}): retry when it ends"
        )

    waiting = f"waiting for another kamml job generating the data in {folder}"
    with hold_lock(folder / GENERATE_LOCK, waiting, GENERATE_LOCK_SECONDS, timed_out):
        yield


def _check_free(config: Config, folder: Path) -> None:
    """A DataError when generating the config's data would write over a file already in `folder`."""
    if config.data.builtin is not None:
        _refuse_overwrite(folder, ["transactions"], [], "data.builtin")
    elif config.data.generate is not None:
        from kamml.datasets.synthetic import TABLES

        _refuse_overwrite(folder, list(TABLES), ["world.json"], "data.generate")


def _generate(config: Config, path: Path) -> None:
    """Write the config's packaged dataset or synthetic world into `path` (see `ensure_generated`)."""
    gen = config.data.generate
    # no `_check_free` here: under the lock, files in a folder kamml generated into are its own (a world
    # left without its transactions by a stopped job is written again, not refused for good)
    if config.data.builtin is not None:
        from kamml.datasets import load_cdnow
        from kamml.io import write_table

        tx = load_cdnow(sample=config.data.builtin == "cdnow_sample").drop(
            columns="master_id", errors="ignore"
        )
        log.info("no transactions in %s: writing the packaged %s log", path, config.data.builtin)
        write_table(tx, Path(path) / "transactions.parquet")
        return
    if gen is None:
        return
    from kamml.datasets import synthetic

    log.info(
        "no transactions in %s: generating the synthetic world (%s, seed %d)",
        path,
        counted(gen.accounts, "account"),
        gen.seed,
    )
    synthetic.generate(gen.accounts, gen.seed, years=gen.years).write(path)


def job_data(config: Config, source: Any = None) -> Dataset:
    """The validated dataset of a job: `source` when given, else `data.path` (generated if configured).

    Without `data.path`, the tables the config names one by one (`data.transactions` required). Each
    data-quality note is logged (INFO): a scheduled `kamml score` or `kamml train` keeps only its log, and
    the notes say what the job accepted (refunds, repeats dropped, accounts missing from the accounts table).
    """
    remote: dict[str, str] = {}
    if source is None:
        check_data_given(config)
        ensure_generated(config)
        source = job_source(config)
        remote = uri_sources(config) if isinstance(source, Mapping) else {}
    data = load_data(source, config)
    data.remote = remote
    for note in data.quality.notes:
        log.info("data-quality note: %s", note)
    return data


def stamped_job_data(config: Config, source: Any = None) -> tuple[Dataset, Callable[[], None]]:
    """`job_data`, and a check that its input files are still the ones it read (a DataError if not).

    The files are stamped before anything is read (`kamml.data.dataset.input_stamps`); data the job generates
    (`data.generate`) is stamped as written. Parquet inputs are read lazily, stage by stage, so a job
    calls the check before it registers a model or publishes outputs.
    """
    given = source if source is not None else config.data.path
    inputs = input_paths(given, config)
    stamps = input_stamps(inputs)  # before anything is read
    data = job_data(config, source)
    if not stamps:  # generated by the job (`data.generate`): stamped as written
        inputs = input_paths(given, config)
        stamps = input_stamps(inputs)

    def unchanged() -> None:
        _check_inputs_unchanged(inputs, stamps)

    return data, unchanged


def _check_inputs_unchanged(inputs: Mapping[str, Path], stamps: Mapping[str, tuple[int, int, int]]) -> None:
    """A DataError when an input file changed since the job stamped it (`kamml.data.dataset.input_stamps`).

    Parquet inputs are read lazily: an export that replaced transactions.parquet while the backtest
    ran gave training and scoring the new rows and validation, the fingerprint and the report the old
    ones (an audit: 772 of 1,500 accounts scored without history, exit 0).
    """
    changed = changed_inputs(stamps, inputs)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise DataError(
            f"input files changed while the job ran ({shown}): its stages read different data, so no "
            "model is registered and nothing is published; run it again once the export is complete"
        )


def uri_sources(config: Config) -> dict[str, str]:
    """The config's data settings written as URIs, by key (``path``, ``transactions``, ...), as written."""
    keys = ("path", *TABLES)
    return {key: str(getattr(config.data, key)) for key in keys if is_uri(getattr(config.data, key))}


def job_source(config: Config) -> Any:
    """What a job reads: ``data.path``, or with engine spark the config's URI tables read by Spark.

    ``data.path: hdfs:///crm/kamml`` (or a ``data.<table>`` URI) was refused by `load_data`, which reads
    local files only; on Spark the folder goes through `kamml.spark.remote_tables` (each table URI through
    `kamml.spark.remote_table`). On DuckDB the URI goes to `load_data`, which refuses it, naming it and
    engine spark. Local and URI settings together are refused: a local data.<table> beside a URI data.path
    has no local folder to be read relative to.
    """
    uris = uri_sources(config)
    if not uris or config.engine.name != "spark":
        return config.data.path
    local = [key for key in ("path", *TABLES) if getattr(config.data, key) is not None and key not in uris]
    if local:
        first = next(iter(uris))
        raise DataError(
            f"'data.{first}' {uris[first]} is a URI, read by Spark, and 'data.{local[0]}' "
            f"{getattr(config.data, local[0])} a local path: give the data settings all as URIs or all as "
            "local paths"
        )
    from kamml.engine import connect
    from kamml.spark.remote import remote_table, remote_tables

    backend = connect(config.engine)  # one for every table: load_data copied another's through the driver
    tables = remote_tables(uris["path"], config, backend=backend) if "path" in uris else {}
    for name, uri in uris.items():
        if name != "path":
            tables[name] = remote_table(uri, name, config, backend=backend)
    return tables


def check_data_given(config: Config) -> None:
    """A ConfigError when the config says nowhere where the data is (no data.path, no data.transactions)."""
    if config.data.path is None and config.data.transactions is None:
        raise ConfigError("no data: pass --data DIR or set data.path (or data.transactions) in the config")
