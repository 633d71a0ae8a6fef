"""Fixtures shared by the Spark parity tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pytest


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
