"""The SparkSession kamml computes on, Ibis expressions as Spark DataFrames, and atomic folder writes.

`spark_session` reuses the active session (a notebook, Databricks, ``spark-submit``) or starts one from the
config's ``engine.spark`` section through `kamml.engine.connect`, which also sets the UTC session time
zone and points ``PYSPARK_PYTHON`` at the running interpreter. `to_spark` turns an Ibis expression on the
PySpark backend into a lazy `pyspark.sql.DataFrame`, so features are never collected to the driver.
`write_atomic` writes a DataFrame as Parquet parts into a hidden temporary folder next to the target and
renames it into place through the Hadoop file system of the target path (local, HDFS, DBFS ...).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kamml.config import URI_SCHEME, Config, EngineConfig
from kamml.engine import connect, spark_job_failure
from kamml.errors import ConfigError, DataError, EngineError
from kamml.io import is_parquet_name

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "case_sensitive",
    "check_local_parquet",
    "features_frame",
    "read_parquet",
    "spark_session",
    "to_spark",
    "write_atomic",
]

log = logging.getLogger(__name__)


def _engine(config: Config | EngineConfig | None) -> EngineConfig:
    """The engine section of a config, switched to Spark."""
    if isinstance(config, Config):
        engine = config.engine
    elif isinstance(config, EngineConfig):
        engine = config
    else:
        engine = EngineConfig()
    return engine if engine.name == "spark" else engine.model_copy(update={"name": "spark"})


def spark_session(config: Config | EngineConfig | None = None) -> SparkSession:
    """The active SparkSession, or one started from ``engine.spark`` (master, driver memory, conf).

    Raises
    ------
    kamml.errors.EngineError
        When pyspark is not installed, Java is missing or Spark cannot start.
    """
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        return session
    connect(_engine(config))
    session = SparkSession.getActiveSession()
    if session is None:  # pragma: no cover - connect either starts a session or raises
        raise EngineError("Spark did not start")
    return session


def case_sensitive(session: SparkSession) -> bool:
    """Whether Spark tells column names apart by case (``spark.sql.caseSensitive``; off by default)."""
    return str(session.conf.get("spark.sql.caseSensitive", "false")).lower() == "true"


def check_local_parquet(source: str, what: str, hint: str) -> None:
    """DataError for a local path (or ``file:`` URI) missing or a file not named Parquet; a remote one passes.

    `what` names the table ("features table"), `hint` says what the caller reads. Checked before Spark reads
    it: Spark's own refusal was a raw AnalysisException ([PATH_NOT_FOUND]) or "Job aborted" over footers.
    """
    if URI_SCHEME.match(source) and not source.startswith("file:"):  # hdfs://, s3a://: Spark's to find
        return
    local = Path(source.removeprefix("file://").removeprefix("file:"))
    if not local.exists():
        raise DataError(f"{what} not found: {local} ({hint})")
    if local.is_file() and not is_parquet_name(local.name):
        raise DataError(f"cannot read the {what} {local} on Spark: not Parquet; {hint}")


def read_parquet(session: SparkSession, source: str, what: str, hint: str) -> DataFrame:
    """The Parquet file or folder at `source` read by Spark; a DataError naming it and Spark's first line.

    A remote path that does not exist, an empty folder or one of markers only came out of Spark as a raw
    AnalysisException or Py4J error with the whole Java stack (`check_local_parquet` first).
    """
    check_local_parquet(source, what, hint)
    try:
        return session.read.parquet(source)
    except Exception as exc:  # pyspark's AnalysisException or a Py4J error, told as one DataError
        failure = spark_job_failure(exc, f"reading the {what} {source}")  # Spark's first line of the cause
        if failure is None:
            raise
        raise DataError(f"{failure}; {hint}") from None


def to_spark(expr: ir.Table) -> DataFrame:
    """A lazy Spark DataFrame computing `expr`, an Ibis table expression on the PySpark backend."""
    backend = expr._find_backend()
    if backend.name != "pyspark":
        raise ConfigError(
            f"the Spark jobs need tables on the Spark engine (engine: {{name: spark}}), got {backend.name}"
        )
    backend._run_pre_execute_hooks(expr)  # registers in-memory tables and UDFs the expression uses
    return _numbers_as_declared(backend._session.sql(backend.compile(expr)), expr.schema())


def _numbers_as_declared(frame: DataFrame, schema: Any) -> DataFrame:
    """`frame` with every column Spark typed DECIMAL, where Ibis declares a float or integer, cast to it.

    Spark SQL reads a literal such as ``1.0`` as DECIMAL(2,1), while Ibis takes it for float64 and so
    drops a cast to float64 as a no-op: counts built as sums of 1.0 (frequency, orders_30d, ...) reached
    pandas as columns of Python Decimals although `finish_expr` casts every number to float64.
    """
    from ibis.backends.pyspark.datatypes import PySparkType
    from pyspark.sql import types as T  # noqa: N812

    columns, changed = [], False
    for field in frame.schema.fields:
        declared = schema[field.name]
        column = spark_column(field.name)
        if isinstance(field.dataType, T.DecimalType) and (declared.is_floating() or declared.is_integer()):
            column, changed = column.cast(PySparkType.from_ibis(declared)).alias(field.name), True
        columns.append(column)
    return frame.select(*columns) if changed else frame


def spark_column(name: str) -> Any:
    """Spark column `name` taken as it is spelled: quoted, a backtick in it doubled (a dot in it is no path).

    Quoted without the doubling, an accounts column named seg`ment stopped the Spark features with
    Spark's INVALID_ATTRIBUTE_NAME_SYNTAX.
    """
    from pyspark.sql import functions as F  # noqa: N812

    return F.col("`" + name.replace("`", "``") + "`")


def owner_text(frame: DataFrame, column: str = "owner") -> Any:
    """An owner column as the rep names the in-memory path writes (`kamml.allocation.allocate.owner_column`).

    A whole float is its integer (Java wrote 12345678.0 as "1.2345678E7", a rep the config's capacity
    never names) and a yes/no owner is "True" or "False" (Java: "true"), as Python writes them.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    value = spark_column(column)
    kind = frame.schema[column].dataType
    if isinstance(kind, T.BooleanType):
        return F.when(value, F.lit("True")).when(~value, F.lit("False"))
    if isinstance(kind, T.DoubleType | T.FloatType):
        whole = (value == F.floor(value)) & (F.abs(value) < F.lit(2.0**53))
        text = F.when(whole, value.cast("long").cast("string")).otherwise(value.cast("string"))
        return F.when(~F.isnan(value), text)  # NaN: no owner
    return value.cast("string")


def features_frame(data: Any, cutoff: Any, config: Config | None = None) -> DataFrame:
    """The feature set of `kamml.build_features` as a lazy Spark DataFrame, account_id a column.

    `data` is a `kamml.data.Dataset` loaded with ``engine: {name: spark}``. Numbers are float64, text
    columns (static attributes) strings; nothing is collected to the driver. A ``features.static_columns``
    without an accounts table to apply it to is warned about, as by `build_features`.
    """
    from kamml.features.build import _note_unused_static_columns, check_config, features_expr

    config = check_config(config)
    _note_unused_static_columns(data, config)
    return to_spark(features_expr(data, cutoff, config))


def _fs(session: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop FileSystem holding `path` and a function making Hadoop paths."""
    jvm = session.sparkContext._jvm
    assert jvm is not None
    hadoop_path: Callable[[str], Any] = jvm.org.apache.hadoop.fs.Path
    conf = session.sparkContext._jsc.hadoopConfiguration()
    return hadoop_path(path).getFileSystem(conf), hadoop_path


#: The hidden folders kamml's writers make beside a target ``<name>``: parts being written (``tmp``), the
#: prepared rows of an allocation (``staging``) and the old folder during the swap (``old``). Their names
#: end in the writer: the pid and start time (ms) of the driver's JVM and its host, so that the next
#: write can tell a folder left by a killed job (its JVM gone) from one a live job is writing.
_LABELS = ("tmp", "staging", "old")
_WRITER_NAME = (
    r"(?P<label>tmp|staging|old)-[0-9a-f]{12}-(?P<pid>[0-9]+)-(?P<start>[0-9]+)-(?P<host>[A-Za-z0-9-]+)"
)


def _writer(session: SparkSession) -> str:
    """``<pid>-<start ms>-<host>`` of this driver's JVM (start 0 where the platform does not say)."""
    jvm = session.sparkContext._jvm
    assert jvm is not None
    current = jvm.java.lang.ProcessHandle.current()
    start = current.info().startInstant()
    millis = int(start.get().toEpochMilli()) if start.isPresent() else 0
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:60] or "host"
    return f"{int(current.pid())}-{millis}-{host}"


def temp_sibling(path: str | Path, label: str = "tmp", session: SparkSession | None = None) -> str:
    """A hidden, unique folder name next to `path` (same file system, so a rename moves it in place).

    With `session`, the name ends in the writer (`_writer`), so that `remove_stale_siblings` of a later
    write can remove it if this job is killed before it does.
    """
    text = str(path).rstrip("/")
    head, _, name = text.rpartition("/")
    hidden = f".{name}.{label}-{uuid.uuid4().hex[:12]}"
    if session is not None:
        try:
            hidden = f"{hidden}-{_writer(session)}"
        except Exception as exc:  # a JVM or gateway that will not say: a name without the writer
            log.debug("cannot name the writer of %s: %s", hidden, exc)
    return f"{head}/{hidden}" if head else hidden


def _writer_alive(session: SparkSession, pid: int, start: int, host: str) -> bool | None:
    """Whether the JVM named in a hidden folder's name still runs; None when it ran on another host."""
    if host != _writer(session).split("-", 2)[2]:
        return None
    jvm = session.sparkContext._jvm
    assert jvm is not None
    found = jvm.java.lang.ProcessHandle.of(pid)
    if not found.isPresent() or not found.get().isAlive():
        return False
    began = found.get().info().startInstant()
    if start and began.isPresent():  # the pid reused by another process (a container's JVM has the same)
        return abs(int(began.get().toEpochMilli()) - start) < 2000
    return True


def remove_stale_siblings(session: SparkSession, path: str | Path) -> None:
    """Remove the hidden folders a killed kamml writer left beside `path` (`temp_sibling`'s names).

    Only folders whose name says which JVM made them, on this host, and whose JVM is gone: a live
    writer's folder, one written from another host (its JVM cannot be asked), one of an older kamml
    (no writer in its name) and any other name are left alone, those with a log line. A killed job's
    ``old`` folder, the previous output moved aside for the swap, is put back when `path` is missing
    (it died between the two renames) and removed otherwise. Best effort: a file system that cannot
    list the folder (or any other failure) is logged and the write goes on.
    """
    try:
        _remove_stale_siblings(session, path)
    except Exception as exc:  # Py4J's or the file system's errors: the write itself may still work
        log.warning(
            "could not look for hidden folders left beside %s by jobs that did not finish: %s", path, exc
        )


def _remove_stale_siblings(session: SparkSession, path: str | Path) -> None:
    """`remove_stale_siblings` without its guard."""
    target = str(path).rstrip("/")
    fs, hpath = _fs(session, target)
    dst = hpath(target)
    parent = dst.getParent()
    if parent is None or not fs.exists(parent):
        return
    prefix = re.escape(f".{dst.getName()}.")
    ours = re.compile(f"^{prefix}{_WRITER_NAME}$")
    unknown = re.compile(f"^{prefix}({'|'.join(_LABELS)})-[0-9a-f]{{12}}$")
    olds = []
    for status in fs.listStatus(parent):
        folder = status.getPath()
        name = folder.getName()
        match = ours.match(name)
        if match is None:
            if unknown.match(name):
                log.warning(
                    "left %s alone: it names no writer; remove it if no job writes %s", folder, target
                )
            continue
        alive = _writer_alive(session, int(match["pid"]), int(match["start"]), match["host"])
        if alive is None:
            log.warning(
                "left %s alone: its job ran on %s; remove it if no job writes %s",
                folder,
                match["host"],
                target,
            )
        elif alive:
            log.info("left %s alone: its job is still running", folder)
        elif match["label"] == "old":
            olds.append((status.getModificationTime(), folder))
        else:
            fs.delete(folder, True)
            log.info("removed %s, left by a job that did not finish", folder)
    for _, folder in sorted(olds, key=lambda item: item[0], reverse=True):  # newest first
        if not fs.exists(dst) and fs.rename(folder, dst):
            log.warning("put back %s from %s, moved aside by a job that did not finish", target, folder)
        else:
            fs.delete(folder, True)
            log.info("removed %s, left by a job that did not finish", folder)


def replace_path(session: SparkSession, source: str, target: str) -> None:
    """Move the folder `source` to `target`, replacing what is there (the old one is removed last).

    Readers see the old folder or the new one, never a half-written one; on a store whose rename is a
    copy (S3) the swap is only as atomic as the store allows.
    """
    fs, hpath = _fs(session, target)
    dst = hpath(target)
    old = None
    if fs.exists(dst):
        old = hpath(temp_sibling(target, "old", session))
        if not fs.rename(dst, old):
            raise OSError(f"cannot move the old {target} aside")
    parent = dst.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    if not fs.rename(hpath(source), dst):
        if old is not None:
            fs.rename(old, dst)
        raise OSError(f"cannot move {source} to {target}")
    if old is not None:
        fs.delete(old, True)


def remove_path(session: SparkSession, path: str) -> None:
    """Delete a folder (recursively) if it exists."""
    fs, hpath = _fs(session, path)
    target = hpath(path)
    if fs.exists(target):
        fs.delete(target, True)


#: Job groups of the `write_parts` calls running in this process: the jobs `abandon_path` may cancel.
_WRITE_GROUPS: set[str] = set()
_WRITE_GROUPS_LOCK = threading.Lock()


def _running_write_groups() -> list[str]:
    """The job groups of kamml's writes still running (a copy)."""
    with _WRITE_GROUPS_LOCK:
        return sorted(_WRITE_GROUPS)


def abandon_path(session: SparkSession, path: str, wait_s: float = 30.0) -> None:
    """Stop kamml's running writes, then delete `path`: the cleanup of a write that failed or was stopped.

    A SIGTERM reaches Python while the JVM is still writing; deleting the folder then left the running
    tasks to write their parts into it again. The job groups of kamml's writes (`write_parts`) are
    cancelled and waited for (at most `wait_s` seconds) before the folder is removed; other jobs of the
    session are left alone (every job was cancelled, a notebook's own ones on a shared cluster too). An
    interrupt that lands inside a Py4J call leaves that connection broken and the next call can fail
    once while Py4J reconnects, so each step is tried a few times; a cleanup that still fails is logged
    and never hides the error that stopped the write.
    """
    context = session.sparkContext

    def cancel_and_wait() -> None:
        groups = _running_write_groups()
        for group in groups:
            context.cancelJobGroup(group)
        deadline = time.monotonic() + wait_s
        while set(groups) & set(_running_write_groups()) and time.monotonic() < deadline:
            time.sleep(0.1)

    for step in (cancel_and_wait, lambda: remove_path(session, path)):
        for attempt in range(3):
            try:
                step()
                break
            except Exception as exc:  # Py4J's network errors, or the JVM's own
                if attempt == 2:
                    log.warning("could not clean up %s after a stopped write: %s", path, exc)
                    return
                time.sleep(0.5)


def write_text(session: SparkSession, path: str, text: str) -> None:
    """Write a small text file (a JSON summary) through the Hadoop file system of `path`."""
    fs, hpath = _fs(session, path)
    stream = fs.create(hpath(path), True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def write_parts(frame: DataFrame, path: str, wait_s: float = 30.0) -> None:
    """``frame.write.mode("error").parquet(path)``, run by a helper thread that a stop of this one waits for.

    A stop (Ctrl-C, a SIGTERM raised as an exception) reaches Python while the JVM runs the write call,
    which goes on without it: the caller's cleanup removed the folder and the JVM created it again a
    moment later (it had not yet started the job that `abandon_path` cancels). Here the call runs in
    its own thread under a job group of its own; on a stop, that group's jobs are cancelled until the
    call has ended (at most `wait_s` seconds), and only then is the stop raised to the caller.
    """
    from pyspark import InheritableThread

    context = frame.sparkSession.sparkContext
    group = f"kamml-write-{uuid.uuid4().hex[:12]}"

    def write() -> None:
        context.setJobGroup(group, f"kamml writes {path}", interruptOnCancel=True)
        frame.write.mode("error").parquet(path)

    class Writer(InheritableThread):
        running = threading.Event()
        done = threading.Event()
        error: BaseException | None = None

        def run(self) -> None:
            self.running.set()
            try:
                super().run()  # the local properties of the caller's JVM thread, then `write`
            except BaseException as exc:  # raised again in the caller's thread
                self.error = exc
            finally:
                with _WRITE_GROUPS_LOCK:
                    _WRITE_GROUPS.discard(group)
                self.done.set()

    thread = Writer(write, name=group, daemon=True)
    try:
        with _WRITE_GROUPS_LOCK:
            _WRITE_GROUPS.add(group)
        thread.start()
        while not thread.done.wait(0.1):
            pass
    except BaseException:
        now = time.monotonic()
        while not thread.done.is_set() and time.monotonic() < now + wait_s:
            if not thread.running.is_set() and time.monotonic() > now + 1.0:
                break  # stopped before the thread began
            with contextlib.suppress(Exception):  # a Py4J connection broken by the stop: tried again
                context.cancelJobGroup(group)
            thread.done.wait(0.2)
        if not thread.running.is_set():  # never began: nothing of it for `abandon_path` to wait for
            with _WRITE_GROUPS_LOCK:
                _WRITE_GROUPS.discard(group)
        raise
    if thread.error is not None:
        raise thread.error


def write_atomic(frame: DataFrame, path: str | Path, *, extra: dict[str, str] | None = None) -> str:
    """Write `frame` as a folder of Parquet parts at `path`, atomically (temporary folder, then rename).

    `extra` maps file names to text written into the folder beside the parts (names starting with ``_``
    are ignored by Parquet readers). Returns the path written.
    """
    session = frame.sparkSession
    target = str(path)
    remove_stale_siblings(session, target)
    tmp = temp_sibling(target, session=session)
    try:
        write_parts(frame, tmp)
        for name, text in (extra or {}).items():
            write_text(session, f"{tmp}/{name}", text)
        replace_path(session, tmp, target)
    except BaseException:
        abandon_path(session, tmp)
        raise
    log.info("wrote %s", target)
    return target
