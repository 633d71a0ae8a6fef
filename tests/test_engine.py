"""The engine connection: DuckDB settings from the config, Spark, and clear errors when it cannot start."""

from __future__ import annotations

import sys

import pytest

from kamml.config import EngineConfig
from kamml.engine import connect, java_available
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
    assert _setting(con, "temp_directory") == str(spill)
    assert spill.is_dir()


def test_bad_duckdb_setting_is_an_engine_error():
    with pytest.raises(EngineError, match="DuckDB rejected"):
        connect(EngineConfig(memory_limit="lots"))


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
