"""kamml.spark.remote: tables under a folder URI, read by Spark, load as the same folder's local files do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.errors import ConfigError, DataError

from .conftest import LOCAL1

pytestmark = [pytest.mark.spark]


@pytest.fixture(scope="module")
def config(spark: Any) -> Config:
    """The Spark config of the module's local[1] session (conftest's `spark`)."""
    return Config.from_dict({"engine": LOCAL1})


def test_a_folder_uri_loads_as_the_folder_itself(config: Config, world_path: Path) -> None:
    """`load_data` refuses a URI (its readers list files on the driver); Spark reads the same tables."""
    from kamml.spark.remote import remote_tables

    with pytest.raises(DataError, match="not from a URI"):
        load_data(world_path.as_uri(), config)
    tables = remote_tables(world_path.as_uri() + "/", config)
    assert sorted(tables) == ["accounts", "activities", "referrals", "transactions"]
    remote = load_data(tables, config)
    local = load_data(world_path, Config.from_dict({}))
    assert remote.backend.name == "pyspark"
    assert remote.end == local.end
    for name in ("transactions", "accounts", "referrals", "activities"):
        got, want = getattr(remote, name), getattr(local, name)
        assert int(got.count().execute()) == int(want.count().execute()), name
    totals = [float(d.transactions.amount.sum().execute()) for d in (remote, local)]
    assert totals[0] == pytest.approx(totals[1], rel=1e-12)


def test_a_folder_without_transactions_is_named_with_what_it_holds(config: Config, tmp_path: Path) -> None:
    from kamml.spark.remote import remote_tables

    (tmp_path / "accounts.csv").write_text("account_id\n1\n")
    with pytest.raises(DataError, match=r"no transactions\.parquet in file:.*it holds: accounts\.csv"):
        remote_tables(tmp_path.as_uri(), config)
    with pytest.raises(DataError, match="the folder cannot be listed"):
        remote_tables((tmp_path / "gone").as_uri(), config)


def test_a_local_folder_or_another_engine_is_refused(config: Config, world_path: Path) -> None:
    from kamml.spark.remote import remote_tables

    with pytest.raises(ConfigError, match="give a local folder to load_data itself"):
        remote_tables(str(world_path), config)
    with pytest.raises(ConfigError, match=r"engine\.name must be 'spark', got 'duckdb'"):
        remote_tables(world_path.as_uri(), Config.from_dict({}))
