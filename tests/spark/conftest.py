"""Fixtures shared by the Spark parity tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pytest

from kamml.config import Config

#: The engine of the small Spark tests: one core, two shuffle partitions.
LOCAL1 = {"name": "spark", "spark": {"master": "local[1]", "conf": {"spark.sql.shuffle.partitions": "2"}}}


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[Any, Any]]:
    """DuckDB and one local[2] Spark session for the module, stopped at its end."""
    pytest.importorskip("pyspark")
    from kamml.config import EngineConfig, SparkConfig
    from kamml.engine import connect, java_available

    if not java_available():
        pytest.fail("Spark parity needs Java 17 (it is on every CI machine)")
    spark = SparkConfig(master="local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    backend = connect(EngineConfig(name="spark", spark=spark))
    yield ibis.duckdb.connect(threads=1), backend
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[1] Spark session for the module (`LOCAL1`), stopped at its end; a module may define its own."""
    pytest.importorskip("pyspark")
    from kamml.engine import java_available
    from kamml.spark import spark_session

    if not java_available():
        pytest.fail("the Spark tests need Java 17 (it is on every CI machine)")
    yield spark_session(Config.from_dict({"engine": LOCAL1}))
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
