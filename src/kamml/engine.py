"""The compute engine: one Ibis backend connection that holds every table of a dataset.

DuckDB is the embedded default (out of core: it spills under `memory_limit` to a folder of its own for
each connection, in `temp_directory` or the system's temporary folder); Spark is for data that lives on
a cluster. Both are configured by the ``engine`` section of the config.

An engine that runs out of memory while reading, validating or computing features is an `EngineError`
naming the setting to change (`engine_failure`, `engine_errors`), not a crash or a "cannot read" of
data that is fine.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis

from kamml.config import EngineConfig
from kamml.errors import ConfigError, EngineError, KammlError, Problem, SchemaError, exception_chain

__all__ = [
    "KammlWorkerError",
    "check_utc_session",
    "connect",
    "engine_errors",
    "engine_failure",
    "spark_job_failure",
    "told_to_driver",
    "worker_error",
]

log = logging.getLogger(__name__)


def connect(engine: EngineConfig | None = None) -> ibis.BaseBackend:
    """Open the Ibis backend named by the config (DuckDB in memory by default, or Spark).

    Parameters
    ----------
    engine : EngineConfig, optional
        ``name`` "duckdb" (default) with optional ``threads``, ``memory_limit`` and ``temp_directory``;
        or "spark" with ``spark.master``, ``spark.driver_memory`` and any ``spark.conf``. An active Spark
        session is reused as it is.

    Returns
    -------
    ibis.BaseBackend
        A DuckDB backend (session time zone UTC) or a PySpark backend.

    Raises
    ------
    EngineError
        The engine cannot start: pyspark is not installed, Java is missing, or a setting is rejected.

    Examples
    --------
    >>> from kamml.config import EngineConfig
    >>> con = connect(EngineConfig(threads=1, memory_limit="512MB"))
    >>> con.name
    'duckdb'
    """
    engine = engine or EngineConfig()
    if engine.name == "spark":
        return _connect_spark(engine)
    return _connect_duckdb(engine)


_UTC_NAMES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "z", "+00:00", "uct", "universal", "zulu"})


def check_utc_session(backend: ibis.BaseBackend) -> None:
    """An EngineError when the backend's session time zone is not UTC.

    kamml reads every time as UTC, but the engines convert zoned times (a Parquet TIMESTAMPTZ, text with
    an offset) into their session's zone: on a connection set to New York, a purchase at 01:00 UTC on
    a cutoff day moved to the evening before, into the cutoff's features. kamml's own connections are
    UTC (Ibis sets DuckDB's); a connection or an active Spark session given to kamml is checked here.
    """
    if backend.name == "duckdb":
        zone = str(backend.raw_sql("SELECT current_setting('TimeZone')").fetchall()[0][0])
        fix = "con.raw_sql(\"SET TimeZone = 'UTC'\")"
    elif backend.name == "pyspark":
        zone = str(backend._session.conf.get("spark.sql.session.timeZone"))
        fix = "spark.conf.set('spark.sql.session.timeZone', 'UTC')"
    else:
        return
    if zone.strip().lower() not in _UTC_NAMES:
        raise EngineError(
            f"the {backend.name} session's time zone is {zone}: kamml reads every time as UTC, and the "
            f"engine would convert zoned times into {zone}, moving events across cutoffs; set it to UTC "
            f"first ({fix})"
        )


def _connect_duckdb(engine: EngineConfig) -> ibis.BaseBackend:
    import duckdb

    settings: dict[str, Any] = {}
    if engine.threads is not None:
        settings["threads"] = engine.threads
    if engine.memory_limit is not None:
        settings["memory_limit"] = engine.memory_limit
    spill = _spill_folder(engine.temp_directory)
    settings["temp_directory"] = spill
    try:
        backend = ibis.duckdb.connect(**settings)
        # with DuckDB's own connection, which code may keep after the backend; also at a normal exit
        weakref.finalize(backend.con, shutil.rmtree, spill, ignore_errors=True)
    except BaseException as exc:  # a setting refused, or a stop (SIGTERM, Ctrl-C) while connecting
        shutil.rmtree(spill, ignore_errors=True)  # no finalizer owns the folder yet: it was left behind
        if isinstance(exc, duckdb.Error):
            keys = ", ".join(f"engine.{k}" for k in settings if k != "temp_directory") or "engine"
            raise ConfigError(  # a setting to change (exit 2), not the engine failing (exit 4)
                f"DuckDB refuses the engine settings ({keys}): {exc}"
            ) from None
        raise
    log.debug("connected to DuckDB %s with %s", backend.version, settings)
    return backend


def _spill_folder(parent: str | None) -> str:
    """A new folder for one connection's spill files, in `parent` (created) or the system's temp folder.

    DuckDB's own default is ``.tmp`` in the working directory: a job started in a read-only folder
    cannot spill, the files stay in whatever folder the job ran from (an empty one after an
    out-of-memory exit), and older DuckDB releases (1.1.3 in duckdb/duckdb#15173) mixed up the files of
    two jobs spilling there at once. The folder goes when the connection does or the process exits
    normally; a killed job leaves it behind (in the system's temporary folder by default, which the
    system clears). A relative `parent` is taken from the working directory now, and a leading ``~`` is
    the home folder (a YAML value no shell expands: ``~/spill`` made a folder named ``~`` in the working one).
    """
    if parent is not None:
        parent = os.path.abspath(os.path.expanduser(parent))
        try:
            Path(parent).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(
                f"'engine.temp_directory': the folder {parent!r} cannot be created: {exc}"
            ) from None
    try:
        return tempfile.mkdtemp(prefix="kamml-duckdb-", dir=parent)
    except OSError as exc:
        if parent:
            raise EngineError(
                f"'engine.temp_directory': no spill folder for DuckDB in {parent!r}: {exc}"
            ) from None
        raise EngineError(f"no spill folder for DuckDB in {tempfile.gettempdir()!r}: {exc}") from None


def engine_failure(exc: BaseException) -> EngineError | None:
    """An `EngineError` naming the setting to change when `exc` is the engine out of memory, else None.

    DuckDB raises ``OutOfMemoryException`` when a query needs more than ``engine.memory_limit`` (and
    cannot spill), Spark a ``java.lang.OutOfMemoryError`` inside a Py4J error. Either can come from any
    query: reading, validation, the quality checks, features, labels.
    """
    duckdb = sys.modules.get("duckdb")
    text = str(exc)
    if (duckdb is not None and isinstance(exc, duckdb.OutOfMemoryException)) or "Out of Memory Error" in text:
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
        return EngineError(
            f"DuckDB ran out of memory ({first}): raise engine.memory_limit in the config (or remove it: "
            "DuckDB's default is 80% of the RAM), or set engine.temp_directory on a disk with room to spill; "
            "fewer engine.threads also lowers the peak"
        )
    if "java.lang.OutOfMemoryError" in text:
        return EngineError(
            "Spark ran out of memory (java.lang.OutOfMemoryError): raise engine.spark.driver_memory, or "
            "the executors' memory (spark.executor.memory in engine.spark.conf)"
        )
    if "pyspark" in sys.modules and _jvm_gone(exc):
        said = text.splitlines()[0] if text else ""
        return EngineError(
            f"Spark's JVM ended during the job ({type(exc).__name__}: {said}), most likely out of "
            "memory (local mode ends the whole JVM then, or the system killed it): "
            "raise engine.spark.driver_memory, or the executors' memory (spark.executor.memory in "
            "engine.spark.conf)"
        )
    return None


def _jvm_gone(exc: BaseException) -> bool:
    """Whether `exc` says Spark's JVM is gone: Py4J cannot reach it, or Spark shut its context down.

    In local mode a task out of memory ends the whole JVM, and Python then sees whichever comes first:
    a Py4J network error, a refused connection from inside Py4J, or jobs cancelled because the
    SparkContext was shut down, none of which names the memory.
    """
    for error in exception_chain(exc):
        name = type(error).__name__
        try:
            said = str(error)
        except Exception:  # py4j's Py4JJavaError asks the JVM for its text: gone, it cannot say
            return True
        if name == "Py4JNetworkError" or "SparkContext was shut down" in said:
            return True
        if isinstance(error, ConnectionError) and _raised_in(error, "py4j"):
            return True
    return False


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether a frame of `exc`'s traceback is in `package` (a connection refused to Py4J's socket)."""
    tb = exc.__traceback__
    while tb is not None:
        if f"{os.sep}{package}{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def engine_errors(doing: str | None = None) -> Iterator[None]:
    """Turn the engine running out of memory inside the block into an `EngineError` (`engine_failure`).

    With `doing` (what kamml is doing, as "writing the features to PATH"), a Spark job failing inside the
    block is one too (`spark_job_failure`): a read or write that failed in Spark's job came out as a Py4J
    error with the whole Java stack, a traceback in the CLI. With or without `doing`, a kamml error a Spark
    worker raised (`told_to_driver`) is raised as itself (`worker_error`).
    """
    try:
        yield
    except KammlError:
        raise
    except Exception as exc:
        error: KammlError | None = engine_failure(exc)
        if error is None:
            error = worker_error(exc) if doing is None else spark_job_failure(exc, doing)
        if error is None:
            raise
        raise error from None


def spark_job_failure(exc: BaseException, doing: str) -> KammlError | None:
    """An `EngineError` naming `doing` and Spark's first line of the cause when `exc` is a Spark job's error.

    A Spark job's error is one the JVM raised: a Py4J ``Py4JJavaError`` (a ``SparkException`` such as an
    input file deleted or replaced after loading: ``[FAILED_READ_FILE.FILE_NOT_EXIST] ...``) or one PySpark
    converts from it (``AnalysisException`` and the other captured errors). A kamml error a worker raised
    (`told_to_driver`: text no model reads as a number) is returned as itself (`worker_error`). None for
    anything else, and for kamml's own Python code failing inside Spark otherwise (a ``PythonException``):
    a bug, whose traceback is what a report needs.
    """
    if "pyspark" not in sys.modules:
        return None
    py4j = sys.modules.get("py4j.protocol")
    captured = sys.modules.get("pyspark.errors.exceptions.captured")
    java = py4j is not None and isinstance(exc, py4j.Py4JJavaError)
    if not (java or (captured is not None and isinstance(exc, captured.CapturedException))):
        return None
    try:
        text = str(exc)  # Py4J asks the JVM for the Java exception's text
    except Exception:
        return None
    told = _worker_error_in(text)
    if told is not None:
        return told
    if "PythonException" in text or type(exc).__name__ == "PythonException":
        return None
    return EngineError(f"Spark failed while {doing}: {_first_cause_line(text, type(exc).__name__)}")


class KammlWorkerError(RuntimeError):
    """A kamml error raised in a Spark worker, as one line of JSON the driver reads back (`worker_error`)."""


@contextlib.contextmanager
def told_to_driver() -> Iterator[None]:
    """Inside a Spark worker: a kamml error leaves as a `KammlWorkerError` carrying its class and message.

    Spark hands the driver a worker's error as the text of its traceback only (a ``PythonException``);
    this keeps what kamml said readable there, so the user gets the error the local scorer raises.
    """
    try:
        yield
    except KammlError as exc:
        kind = type(exc)
        payload: dict[str, Any] = {"module": kind.__module__, "name": kind.__qualname__, "message": str(exc)}
        if isinstance(exc, SchemaError):
            payload["problems"] = [
                [p.table, p.column, p.rule, p.n_rows, list(p.examples)] for p in exc.problems
            ]
        raise KammlWorkerError(json.dumps(payload, default=str)) from None


#: The last line of a worker's traceback that `told_to_driver` raised (JSON keeps it one line).
_WORKER_LINE = re.compile(r"^(?:[\w.]+\.)?KammlWorkerError: (\{.*\})\s*$", re.MULTILINE)


def worker_error(exc: BaseException) -> KammlError | None:
    """The kamml error a Spark worker raised (`told_to_driver`) inside pyspark's `exc`, None otherwise.

    For a caller running a lazy frame of kamml's themselves (``kamml.spark.score_frame_spark(...)``
    collected or written): ``except Exception as e: raise worker_error(e) or e``. `engine_errors` does
    this around kamml's own jobs, with or without its `doing`.
    """
    if not type(exc).__module__.startswith(("pyspark", "py4j")):
        return None
    try:
        text = str(exc)
    except Exception:  # Py4J asks the JVM for the text
        return None
    return _worker_error_in(text)


def _worker_error_in(text: str) -> KammlError | None:
    """The kamml error whose `KammlWorkerError` line is the last in a Spark error's `text`, or None."""
    found = _WORKER_LINE.findall(text)
    if not found:
        return None
    try:
        return _rebuilt(json.loads(found[-1]))
    except (ValueError, TypeError, KeyError, ImportError, AttributeError):
        return None


def _rebuilt(payload: dict[str, Any]) -> KammlError | None:
    """The kamml error `payload` describes (its class, or the nearest one taking a message)."""
    module, name, message = payload["module"], payload["name"], str(payload["message"])
    if module.split(".")[0] != "kamml":
        return None
    kind = getattr(sys.modules.get(module) or importlib.import_module(module), name, None)
    if not (isinstance(kind, type) and issubclass(kind, KammlError)):
        return None
    if issubclass(kind, SchemaError) and payload.get("problems") is not None:
        return kind([Problem(t, c, r, int(n), tuple(e)) for t, c, r, n, e in payload["problems"]])
    # FeatureMismatchError builds its message from columns: its parent class carries the message as is
    plain = next(k for k in kind.__mro__ if issubclass(k, KammlError) and "__init__" not in vars(k))
    return plain(message)


#: A Java exception's class before its message ("org.apache.spark.SparkException: "), left off.
_JAVA_CLASS = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ")


def _first_cause_line(text: str, kind: str) -> str:
    """Spark's own first line of a job error's cause, without Py4J's "An error occurred while calling".

    A Py4J error's text is that line, then ": org.apache.spark.SparkException: [ERROR_CLASS] message" and
    the Java stack; a captured error's is the message first.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("An error occurred while calling")]
    first = lines[0].lstrip(": ") if lines else kind
    return _JAVA_CLASS.sub("", first) or first


def _java_reason(exc: BaseException) -> str:
    """The first line of a Py4J error and the Java exception behind it, without the stack trace.

    Py4J's first line only says which call failed ("An error occurred while calling None.org.apache
    .spark.api.java.JavaSparkContext."); the reason ("[INVALID_DRIVER_MEMORY] System memory 314572800
    must be at least 471859200") is the Java exception's own line after it.
    """
    lines = [line.strip() for line in str(exc).splitlines()]
    head = next((line for line in lines if line), type(exc).__name__)
    skip = ("at ", "JVM stacktrace:", "Caused by:", "...")  # PySpark's captured errors repeat the head
    cause = next(
        (ln.lstrip(": ") for ln in lines[1:] if ln and not ln.startswith(skip) and head not in ln), ""
    )
    reason = f"{head} {cause}".strip() if cause else head
    # the root cause is the last "Caused by:" of the Java trace ("spark.sql.shuffle.partitions should
    # be int, but was abc" behind "Error while instantiating ...SessionStateBuilder")
    root = next((ln for ln in reversed(lines) if ln.startswith("Caused by:")), "")
    kind, sep, message = root.removeprefix("Caused by:").strip().partition(": ")
    root = message if sep and kind.startswith("java.") else f"{kind}{sep}{message}"
    return f"{reason.rstrip(':')}; caused by: {root}" if root and root not in reason else reason


def java_available() -> bool:
    """Whether a Java runtime can be found (JAVA_HOME or `java` on PATH), which Spark needs."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


NO_PYSPARK = "engine 'spark' needs pyspark: install it with pip install 'kamml[spark]'"


def check_engine_installed(engine: EngineConfig) -> None:
    """An `EngineError` now when the engine's package is not installed, before a job makes any folder.

    Only looks the package up (no import, no session): Java and the session are checked on connecting.
    """
    if engine.name == "spark" and importlib.util.find_spec("pyspark") is None:
        raise EngineError(NO_PYSPARK)


def unreachable_master(master: str, timeout_s: float = 5.0) -> str | None:
    """Why no standalone master of `master` (``spark://h1:7077,h2:7077``) accepts a connection, or None.

    None also for any other master (local, yarn, k8s) and for a URL Spark itself should judge (no port).
    Spark tries an unreachable master three times for 20 s each before failing with "Cannot call methods
    on a stopped SparkContext", which does not say what was wrong.
    """
    if not master.startswith("spark://"):
        return None
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.strip().rpartition(":")
        host = host.strip("[]")  # an IPv6 address: spark://[::1]:7077
        if not host or not port.isdigit():
            return None
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return None
        except OSError as exc:
            reasons.append(f"{address.strip()}: {exc.strerror or exc}")
    return "; ".join(reasons)


def _yarn_hint(master: str) -> str:
    """What a YARN master needs that Python can see is missing (Spark says it only on the console)."""
    configured = os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")
    if master.startswith("yarn") and not configured:
        return (
            "; master 'yarn' needs HADOOP_CONF_DIR or YARN_CONF_DIR in the environment (the folder of the "
            "cluster's core-site.xml and yarn-site.xml)"
        )
    return ""


def _connect_spark(engine: EngineConfig) -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(NO_PYSPARK) from None
    session = SparkSession.getActiveSession()
    if session is None:
        if not java_available():
            raise EngineError(
                "engine 'spark' needs Java 17 or later: install a JDK and set JAVA_HOME or put java on PATH"
            )
        spark = engine.spark
        unreachable = unreachable_master(spark.master)
        if unreachable is not None:  # Spark retried for over a minute, then said "stopped SparkContext"
            raise EngineError(
                f"Spark could not start: no standalone master answers at {spark.master} ({unreachable}); "
                "start the master, or check engine.spark.master (host and port, e.g. spark://host:7077)"
            )
        # executors must run this interpreter, so the workers see the same packages
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(spark.master)
            .appName("kamml")
            .config("spark.driver.memory", spark.driver_memory)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
        )
        for key, value in spark.conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # Py4J and the JVM raise many kinds; all mean "cannot start"
            reason = _java_reason(exc)
            if "gateway process exited" in reason.lower():  # the JVM refused its settings at launch
                reason += (
                    "; the JVM did not start: see the Java error printed above, and check "
                    f"engine.spark.master ({spark.master!r}), engine.spark.driver_memory "
                    f"({spark.driver_memory!r}, e.g. '2g') and engine.spark.conf"
                )
                reason += _yarn_hint(spark.master)
            raise EngineError(f"Spark could not start ({spark.master}): {reason}") from None
        log.info("started Spark %s on %s", session.version, spark.master)
    else:
        log.info("reusing the active Spark session (%s)", session.sparkContext.master)
    try:
        return ibis.pyspark.connect(session)
    except Exception as exc:  # same reason as above
        raise EngineError(
            f"cannot connect Ibis to Spark: {_java_reason(exc)}; check engine.spark.conf"
        ) from None
