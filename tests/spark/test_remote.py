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

    (tmp_path / "truth.parquet").write_text("")  # not a table
    with pytest.raises(DataError, match=r"no transactions table in file:.*it holds: truth\.parquet"):
        remote_tables(tmp_path.as_uri(), config)
    with pytest.raises(DataError, match="the folder cannot be listed"):
        remote_tables((tmp_path / "gone").as_uri(), config)


def test_a_local_folder_or_another_engine_is_refused(config: Config, world_path: Path) -> None:
    from kamml.spark.remote import remote_tables

    with pytest.raises(ConfigError, match="give a local folder to load_data itself"):
        remote_tables(str(world_path), config)
    with pytest.raises(ConfigError, match=r"engine\.name must be 'spark', got 'duckdb'"):
        remote_tables(world_path.as_uri(), Config.from_dict({}))


def _folder(tmp_path: Path, world_path: Path) -> Path:
    """A data folder of the world's tables in the other Parquet layouts the local reader takes."""
    import shutil

    data = tmp_path / "data"
    (data / "transactions").mkdir(parents=True)  # a folder of parts named as the table
    shutil.copy(world_path / "transactions.parquet", data / "transactions" / "part-0.parquet")
    (data / "transactions" / "_SUCCESS").write_text("")
    shutil.copy(world_path / "accounts.parquet", data / "Accounts.PQ")  # another ending, in capitals
    (data / "referrals.parquet").mkdir()  # a folder named as the file, as Spark writes it
    shutil.copy(world_path / "referrals.parquet", data / "referrals.parquet" / "part-0.snappy.parquet")
    return data


def test_the_local_readers_parquet_layouts_are_read(config: Config, tmp_path: Path, world_path: Path) -> None:
    """A folder ``transactions/`` of parts, ``Accounts.PQ`` or a folder ``referrals.parquet/``: the local
    reader takes each, and remote_tables looked for ``<table>.parquet`` alone (no transactions found)."""
    from kamml.spark.remote import remote_tables

    data = _folder(tmp_path, world_path)
    tables = remote_tables(data.as_uri(), config)
    assert sorted(tables) == ["accounts", "referrals", "transactions"]
    local = load_data(data, Config.from_dict({}))
    remote = load_data(tables, config)
    for name in ("transactions", "accounts", "referrals"):
        got, want = getattr(remote, name), getattr(local, name)
        assert int(got.count().execute()) == int(want.count().execute()), name


def test_a_csv_table_is_named_and_refused(config: Config, tmp_path: Path, world_path: Path) -> None:
    """A CSV file, or a folder of CSV parts, for a table: Spark would read it as Parquet (or pass it over)."""
    from kamml.spark.remote import remote_tables

    data = _folder(tmp_path, world_path)
    (data / "activities.csv.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"activities: activities\.csv\.gz in file:.* is CSV.*Parquet only"):
        remote_tables(data.as_uri(), config)
    (data / "activities.csv.gz").unlink()
    (data / "accounts").mkdir()
    (data / "Accounts.PQ").rename(data / "accounts" / "part-0.parquet")
    (data / "accounts" / "part-1.csv").write_text("account_id\n1\n")
    with pytest.raises(DataError, match=r"accounts: folder file:.*accounts holds part-1\.csv.*Parquet only"):
        remote_tables(data.as_uri(), config)


def test_two_layouts_of_one_table_are_refused_as_locally(
    config: Config, tmp_path: Path, world_path: Path
) -> None:
    from kamml.spark.remote import remote_tables

    data = _folder(tmp_path, world_path)
    (data / "TRANSACTIONS.parquet").write_bytes((world_path / "transactions.parquet").read_bytes())
    with pytest.raises(DataError, match=r"transactions: more than one source in") as local:
        load_data(data, Config.from_dict({}))
    assert "TRANSACTIONS.parquet, transactions" in str(local.value)
    with pytest.raises(
        DataError,
        match=r"transactions: more than one source in file:.*"
        r"\(TRANSACTIONS\.parquet, transactions\); keep one",
    ):
        remote_tables(data.as_uri(), config)


def test_kamml_validate_reads_a_data_uri_through_spark(
    config: Config, tmp_path: Path, world_path: Path
) -> None:
    """``data.path: hdfs:///...`` with engine spark: the jobs refused it ("not from a URI")."""
    from typer.testing import CliRunner

    from kamml.cli import app

    cfg = tmp_path / "kamml.yaml"
    engine = "engine: {name: spark, spark: {master: 'local[1]'}}\n"
    cfg.write_text(f"data: {{path: '{world_path.as_uri()}'}}\n{engine}")
    result = CliRunner().invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    local = CliRunner().invoke(app, ["validate", "--data", str(world_path)])
    # the same data-quality summary, each table named by the URI Spark read it from
    assert _report(result.output) == _report(local.output.replace(str(world_path), world_path.as_uri()))
    assert "Data check passed" in result.output
    cfg.write_text(
        f"data: {{path: '{world_path.as_uri()}', accounts: '{world_path}/accounts.parquet'}}\n{engine}"
    )
    mixed = CliRunner().invoke(app, ["validate", "--config", str(cfg)])
    assert mixed.exit_code != 0
    assert (
        f"'data.path' {world_path.as_uri()} is a URI, read by Spark, and 'data.accounts' "
        f"{world_path}/accounts.parquet a local path: give the data settings all as URIs or all as local "
        "paths\n"
    ) in mixed.output


def test_a_job_records_the_data_uri_it_read(config: Config, world_path: Path) -> None:
    """The run's config names the URI it read: tables read by Spark were "not the tables the config names"."""
    from kamml.jobs.data import job_data
    from kamml.jobs.train import recorded_source

    cfg = Config.from_dict({"engine": LOCAL1, "data": {"path": world_path.as_uri()}})
    assert recorded_source(cfg, job_data(cfg)) is cfg


def _report(output: str) -> list[str]:
    """A command's output less kamml's log lines (they name the files and the engine)."""
    return [line for line in output.splitlines() if " INFO kamml." not in line]


def test_a_folder_and_a_table_uri_are_read_on_one_backend(config: Config, world_path: Path, caplog) -> None:
    """`data.path` and `data.accounts` as URIs: each call opened its own Ibis backend, and `load_data`
    copied the tables of the second through the driver ("lives on another backend ... copying it")."""
    from kamml.jobs.data import job_source

    data = {"path": world_path.as_uri(), "accounts": (world_path / "accounts.parquet").as_uri()}
    cfg = Config.from_dict({"engine": LOCAL1, "data": data})
    tables = job_source(cfg)
    assert len({id(t.table.get_backend()) for t in tables.values()}) == 1
    with caplog.at_level("WARNING"):
        load_data(tables, cfg)
    assert "another backend" not in caplog.text


def test_kamml_validate_reads_data_given_as_a_uri_as_it_reads_a_data_path_uri(
    config: Config, tmp_path: Path, world_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--data file:///...`` was refused ("the command line takes local paths"): a user had to edit
    data.path. It reads as data.path does, and the config's data.generate writes nothing (its data/demo)."""
    from typer.testing import CliRunner

    from kamml.cli import app

    monkeypatch.chdir(tmp_path)
    engine = "engine: {name: spark, spark: {master: 'local[1]'}}\n"
    given = tmp_path / "given.yaml"
    given.write_text(f"data: {{path: data/demo, generate: {{accounts: 30}}}}\n{engine}")
    by_flag = CliRunner().invoke(app, ["validate", "--config", str(given), "--data", world_path.as_uri()])
    assert by_flag.exit_code == 0, by_flag.output
    configured = tmp_path / "configured.yaml"
    configured.write_text(f"data: {{path: '{world_path.as_uri()}'}}\n{engine}")
    by_config = CliRunner().invoke(app, ["validate", "--config", str(configured)])
    assert _report(by_flag.output) == _report(by_config.output)
    assert world_path.as_uri() in by_flag.output  # each table named by the URI Spark read it from
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("command", "more"),
    [
        ("validate", []),
        ("backtest", []),
        ("train", []),
        ("run", []),
        ("score", ["--model", "model", "--out", "scores.parquet"]),
    ],
)
def test_every_command_reads_data_given_as_a_uri_through_spark(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, more: list[str]
) -> None:
    """Each command that takes ``--data`` lists a URI folder with Spark (`remote_tables`'s own error)."""
    from typer.testing import CliRunner

    from kamml.cli import app

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "crm"
    data.mkdir()
    (data / "truth.parquet").write_text("")  # not a table
    (tmp_path / "model").mkdir()  # a folder `kamml score` finds a model in (an unknown one is told first)
    (tmp_path / "model" / "MLmodel").write_text("")
    cfg = tmp_path / "spark.yaml"
    cfg.write_text(
        "engine: {name: spark, spark: {master: 'local[1]'}}\ntracking: {uri: sqlite:///mlruns.db}\n"
    )
    result = CliRunner().invoke(app, [command, "--config", str(cfg), "--data", data.as_uri(), *more])
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert f"no transactions table in {data.as_uri()}" in said
    assert "it holds: truth.parquet" in said


@pytest.mark.slow
def test_kamml_score_on_spark_scores_data_given_as_a_uri_as_the_local_folder(
    config: Config, trained: Any, world_path: Path, tmp_path: Path
) -> None:
    """``kamml score --data file:///...`` on Spark scores what the same folder given as a path does."""
    import pandas as pd
    import yaml
    from typer.testing import CliRunner

    from kamml.cli import app

    tracked, _, result = trained
    tree = tracked.model_dump(mode="json")
    tree["engine"] = LOCAL1
    tree["data"]["path"] = None
    path = tmp_path / "spark.yaml"
    path.write_text(yaml.safe_dump(tree))
    lines, tables = [], []
    for given in (str(world_path), world_path.as_uri()):
        out = tmp_path / f"scores{len(lines)}.parquet"
        args = ["score", "-m", result.model_uri, "-c", str(path), "-o", str(out), "--data", given]
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.output
        lines.append(" ".join(done.output.split()).replace(str(out), "OUT"))
        tables.append(pd.read_parquet(out).set_index("account_id").sort_index())
    said = [line[line.index("accounts scored at") :] for line in lines]
    assert said[0] == said[1]
    pd.testing.assert_frame_equal(tables[0], tables[1])
