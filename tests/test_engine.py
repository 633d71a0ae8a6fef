"""The engine connection: DuckDB settings from the config, Spark, and clear errors when it cannot start."""

from __future__ import annotations

import gc
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from kamml.config import EngineConfig
from kamml.engine import connect, java_available, unreachable_master
from kamml.errors import EngineError


def _setting(con, name: str):
    return con.raw_sql(f"SELECT current_setting('{name}')").fetchall()[0][0]


def test_duckdb_is_the_default():
    con = connect()
    assert con.name == "duckdb"
    assert _setting(con, "TimeZone") == "UTC"


def test_duckdb_settings_from_the_config(tmp_path):
    spill = tmp_path / "spill" / "here"
    con = connect(EngineConfig(threads=1, memory_limit="256MB", temp_directory=str(spill)))
    assert _setting(con, "threads") == 1
    assert _setting(con, "memory_limit") in {"256.0 MiB", "244.1 MiB", "256.0 MB"}
    own = Path(_setting(con, "temp_directory"))
    assert own.parent == spill  # a folder of its own inside the configured one
    assert own.name.startswith("kamml-duckdb-")
    assert spill.is_dir()


def test_duckdb_spills_to_a_folder_of_its_own_removed_with_the_connection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DuckDB's default was .tmp here
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))
    (tmp_path / "system-tmp").mkdir()
    first, second = connect(EngineConfig(threads=1)), connect(EngineConfig(threads=1))
    spill = Path(_setting(first, "temp_directory"))
    assert spill.parent == tmp_path / "system-tmp"
    assert spill != Path(_setting(second, "temp_directory"))  # two jobs never share spill files
    first.raw_sql("SET memory_limit = '30MB'")
    first.raw_sql("CREATE TABLE t AS SELECT hash(i) AS h, i FROM range(3000000) t(i) ORDER BY h")
    assert any(spill.iterdir())  # it did spill there
    assert not (tmp_path / ".tmp").exists()
    raw = first.con  # DuckDB's own connection, kept after the backend: its spill folder stays with it
    del first
    gc.collect()
    raw.execute("CREATE TABLE t2 AS SELECT hash(i) AS h, i FROM range(3000000) t(i) ORDER BY h")
    assert spill.exists()
    del raw
    gc.collect()
    assert not spill.exists()


def test_a_stop_while_connecting_leaves_no_spill_folder(tmp_path, monkeypatch):
    """SIGTERM's exit raised inside connect, before the folder's finalizer existed, stranded the folder."""
    import ibis

    def stopped(**settings):
        raise SystemExit(143)

    monkeypatch.setattr(ibis.duckdb, "connect", stopped)
    with pytest.raises(SystemExit):
        connect(EngineConfig(threads=1, temp_directory=str(tmp_path / "spill")))
    assert list((tmp_path / "spill").iterdir()) == []


def test_a_relative_temp_directory_is_taken_from_the_working_directory_at_connect(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    con = connect(EngineConfig(threads=1, temp_directory="spill"))
    spill = Path(_setting(con, "temp_directory"))
    assert spill.is_absolute()
    assert spill.parent == tmp_path / "spill"
    monkeypatch.chdir(tmp_path.parent)  # a later change of folder does not strand it
    del con
    gc.collect()
    assert not spill.exists()


def test_a_temp_directory_under_the_home_folder_is_there_not_in_a_folder_named_tilde(tmp_path, monkeypatch):
    """``engine.temp_directory: ~/spill`` (a YAML value no shell expands) made ./~/spill in the working
    folder, as data.path and output.dir did before they took ``~`` as the home folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    con = connect(EngineConfig(threads=1, temp_directory="~/spill"))
    assert Path(_setting(con, "temp_directory")).parent == home / "spill"
    assert list(work.iterdir()) == []


def test_a_spill_folder_that_cannot_be_made_is_an_engine_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(
        EngineError, match=r"^'engine\.temp_directory': the folder .*file/spill.* cannot be created"
    ):
        connect(EngineConfig(temp_directory=str(blocker / "spill")))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_where_no_spill_folder_can_be_made_is_an_engine_error(monkeypatch):
    """/proc exists, so the parent is there, but not even root can make a folder in it."""
    with pytest.raises(
        EngineError, match=r"^'engine\.temp_directory': no spill folder for DuckDB in '/proc': "
    ):
        connect(EngineConfig(temp_directory="/proc"))
    monkeypatch.setattr(tempfile, "tempdir", "/proc")  # the system's temporary folder, when none is set
    with pytest.raises(EngineError, match=r"^no spill folder for DuckDB in '/proc': "):
        connect(EngineConfig())


def test_missing_pyspark_is_an_engine_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(EngineError, match=r"pip install 'kamml\[spark\]'"):
        connect(EngineConfig(name="spark"))


def test_java_is_looked_up_on_java_home_and_path(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not java_available()
    (tmp_path / "bin").mkdir()
    java = tmp_path / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert java_available()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert java_available()


def test_missing_java_is_an_engine_error(monkeypatch, tmp_path):
    SparkSession = pytest.importorskip("pyspark.sql").SparkSession

    if SparkSession.getActiveSession() is not None:
        pytest.skip("a Spark session is already running in this process, so no JVM has to start")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="needs Java 17"):
        connect(EngineConfig(name="spark"))


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_standalone_master_nobody_answers_is_refused_at_once(monkeypatch):
    """Spark retried an unreachable spark:// master for over a minute, then said "stopped SparkContext"."""
    SparkSession = pytest.importorskip("pyspark.sql").SparkSession

    # as in a fresh process (the Spark tests before this one leave a session running, which is reused)
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    port = _closed_port()
    master = f"spark://127.0.0.1:{port},localhost:{port}"
    with pytest.raises(EngineError) as got:
        connect(EngineConfig(name="spark", spark={"master": master}))
    said = str(got.value)
    assert f"no standalone master answers at {master}" in said
    assert f"127.0.0.1:{port}: Connection refused" in said
    assert "engine.spark.master" in said


def test_only_standalone_masters_with_a_port_are_probed():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        closed = _closed_port()
        assert unreachable_master(f"spark://127.0.0.1:{closed},127.0.0.1:{port}") is None  # one answers
        assert unreachable_master(f"spark://[::1]:{closed}") is not None
    for master in ("local[2]", "yarn", "k8s://https://10.0.0.1:443", "spark://host-without-port"):
        assert unreachable_master(master) is None  # Spark's to judge


@pytest.mark.spark
def test_yarn_without_its_configuration_folder_says_what_is_missing():
    """Spark printed the reason on the console only; kamml's line named the master but not the setting."""
    import os
    import subprocess

    script = (
        "from kamml.config import EngineConfig\n"
        "from kamml.engine import connect\n"
        "from kamml.errors import EngineError\n"
        "try:\n"
        "    connect(EngineConfig(name='spark', spark={'master': 'yarn'}))\n"
        "except EngineError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HADOOP_CONF_DIR", "YARN_CONF_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("ERROR"))
    assert "master 'yarn' needs HADOOP_CONF_DIR or YARN_CONF_DIR in the environment" in line


@pytest.mark.spark
def test_spark_session_from_the_config():
    con = connect(
        EngineConfig(
            name="spark", spark={"master": "local[1]", "conf": {"spark.sql.shuffle.partitions": "2"}}
        )
    )
    assert con.name == "pyspark"
    session = con._session
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert con.raw_sql("SELECT 1 AS x").toPandas()["x"].tolist() == [1]
    again = connect(EngineConfig(name="spark"))
    assert again._session is session  # the active session is reused


def test_duckdb_out_of_memory_while_reading_is_an_engine_error_not_bad_data(world_path):
    """At a tiny memory_limit the scan of a sound Parquet file failed as 'cannot read' (exit 3)."""
    from kamml.config import Config
    from kamml.data import load_data

    cfg = Config.from_dict({"engine": {"memory_limit": "512KB", "threads": 1}})
    with pytest.raises(EngineError, match=r"DuckDB ran out of memory .*raise engine\.memory_limit"):
        load_data(world_path, cfg)


def test_duckdb_out_of_memory_while_building_features_is_an_engine_error(world_path):
    """fetch_by_account let DuckDB's OutOfMemoryException through (a traceback from the CLI)."""
    from kamml.data import load_data
    from kamml.features import build_features

    data = load_data(world_path, None)
    data.backend.raw_sql("SET memory_limit='4MB'")
    data.backend.raw_sql("SET threads=1")
    with pytest.raises(EngineError, match=r"DuckDB ran out of memory .*raise engine\.memory_limit"):
        build_features(data, data.end)


def test_engine_failure_names_only_out_of_memory():
    import duckdb

    from kamml.engine import engine_failure

    assert engine_failure(duckdb.OutOfMemoryException("Out of Memory Error: x")) is not None
    assert engine_failure(duckdb.IOException("No files found")) is None
    spark = engine_failure(RuntimeError("An error occurred ... java.lang.OutOfMemoryError: Java heap space"))
    assert spark is not None
    assert "engine.spark.driver_memory" in str(spark)


def test_spark_jvm_gone_is_an_engine_error(monkeypatch):
    """Local Spark out of memory ends the JVM: Python sees a Py4J network error or a shut-down context."""
    import sys
    import types

    from kamml.engine import engine_failure

    monkeypatch.setitem(sys.modules, "pyspark", sys.modules.get("pyspark") or types.ModuleType("pyspark"))

    class Py4JNetworkError(Exception):
        pass

    try:
        try:
            raise Py4JNetworkError("An error occurred while trying to connect to the Java server")
        except Py4JNetworkError as inner:
            raise ConnectionRefusedError(111, "Connection refused") from inner  # the clean-up's
    except ConnectionRefusedError as exc:
        error = engine_failure(exc)
    assert error is not None
    assert error.exit_code == 4
    assert "engine.spark.driver_memory" in str(error)
    shut = RuntimeError("Job 0 cancelled because SparkContext was shut down")
    assert engine_failure(shut) is not None
    assert engine_failure(ConnectionRefusedError(111, "Connection refused")) is None  # not from Py4J


def test_a_spark_start_failure_keeps_the_java_reason():
    """Only Py4J's first line was kept: the reason (INVALID_DRIVER_MEMORY) was in the Java log alone."""
    from kamml.engine import _java_reason

    text = (
        "An error occurred while calling None.org.apache.spark.api.java.JavaSparkContext.\n"
        ": org.apache.spark.SparkIllegalArgumentException: [INVALID_DRIVER_MEMORY] System memory 314572800"
        " must be at least 471859200.\n"
        "\tat org.apache.spark.memory.UnifiedMemoryManager$.getMaxMemory(UnifiedMemoryManager.scala:226)\n"
    )
    reason = _java_reason(RuntimeError(text))
    assert reason.startswith("An error occurred while calling")
    assert "[INVALID_DRIVER_MEMORY] System memory 314572800 must be at least 471859200." in reason
    assert "UnifiedMemoryManager" not in reason
    assert _java_reason(RuntimeError("one line")) == "one line"
    nested = (  # a bad engine.spark.conf value: the reason is the last "Caused by" of the trace
        "Error while instantiating 'org.apache.spark.sql.internal.SessionStateBuilder':\n"
        "JVM stacktrace:\n"
        "java.lang.IllegalArgumentException: Error while instantiating "
        "'org.apache.spark.sql.internal.SessionStateBuilder':\n"
        "\tat org.apache.spark.sql.SparkSession$.instantiateSessionState(SparkSession.scala:1255)\n"
        "Caused by: java.lang.IllegalArgumentException: "
        "spark.sql.shuffle.partitions should be int, but was abc\n"
        "\t... 18 more\n"
    )
    reason = _java_reason(RuntimeError(nested))
    assert reason == (
        "Error while instantiating 'org.apache.spark.sql.internal.SessionStateBuilder'; "
        "caused by: spark.sql.shuffle.partitions should be int, but was abc"
    )


@pytest.mark.spark
def test_a_driver_memory_the_jvm_refuses_names_the_setting():
    """Java's gateway message alone did not say which setting stopped the JVM (`driver_memory: 1q`)."""
    import subprocess
    import sys

    script = (
        "from kamml.config import EngineConfig\n"
        "from kamml.engine import connect\n"
        "from kamml.errors import EngineError\n"
        "try:\n"
        "    connect(EngineConfig(name='spark', spark={'master': 'local[1]', 'driver_memory': '1q'}))\n"
        "except EngineError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("ERROR"))
    assert "engine.spark.driver_memory ('1q'" in line


def test_a_memory_limit_duckdb_cannot_read_is_a_config_error():
    """It was an EngineError, exit 4: the code of an engine out of memory, not of a setting to fix."""
    from kamml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"DuckDB refuses the engine settings \(engine\.memory_limit\)"):
        connect(EngineConfig(memory_limit="lots"))


@pytest.mark.spark
def test_an_error_of_python_code_in_a_spark_job_keeps_its_traceback():
    """A PythonException that carries no kamml error is a bug: `engine_errors` lets it through as it is."""
    from pyspark.errors.exceptions.captured import PythonException
    from pyspark.sql import functions as F  # noqa: N812

    from kamml.engine import engine_errors, spark_job_failure

    session = connect(EngineConfig(name="spark", spark={"master": "local[1]"}))._session

    @F.udf("double")
    def broken(x: int) -> float:
        return x / 0

    with pytest.raises(PythonException) as caught, engine_errors("computing"):
        session.range(1).select(broken("id")).collect()
    assert "ZeroDivisionError" in str(caught.value)
    assert spark_job_failure(caught.value, "computing") is None


@pytest.mark.spark
@pytest.mark.parametrize("doing", [None, "computing"])
def test_a_kamml_error_of_a_spark_worker_is_itself_with_or_without_doing(doing):
    """Without `doing`, `engine_errors` let Spark's PythonException through: kamml's error was JSON in it."""
    from pyspark.sql import functions as F  # noqa: N812

    from kamml.engine import engine_errors, told_to_driver
    from kamml.models._lgbm import ModelInputError

    session = connect(EngineConfig(name="spark", spark={"master": "local[1]"}))._session

    @F.udf("double")
    def refusing(x: int) -> float:
        with told_to_driver():
            raise ModelInputError(f"features column 'recency': {x} is not a number")

    with pytest.raises(ModelInputError) as caught, engine_errors(doing):
        session.range(1).select(refusing("id")).collect()
    assert type(caught.value) is ModelInputError
    assert str(caught.value) == "features column 'recency': 0 is not a number"
