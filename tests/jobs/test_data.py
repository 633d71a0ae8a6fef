from pathlib import Path

import pytest

from kamml.config import Config, load_config
from kamml.errors import ConfigError, DataError
from kamml.jobs.data import ensure_generated, job_data


def test_demo_world_is_generated_once(tmp_path):
    cfg = Config.from_dict(
        {"data": {"path": str(tmp_path / "demo"), "generate": {"accounts": 150, "seed": 1}}}
    )
    ensure_generated(cfg)
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert "transactions.parquet" in files
    stamp = (tmp_path / "demo" / "transactions.parquet").stat().st_mtime_ns
    data = job_data(cfg)  # present now: not regenerated
    assert (tmp_path / "demo" / "transactions.parquet").stat().st_mtime_ns == stamp
    assert data.transactions.count().execute() > 0


def test_no_data_path_is_a_config_error():
    with pytest.raises(ConfigError, match="no data"):
        job_data(Config())


def test_builtin_cdnow_is_written_once(tmp_path):
    cfg = Config.from_dict({"data": {"path": str(tmp_path / "cd"), "builtin": "cdnow_sample"}})
    data = job_data(cfg)
    assert (tmp_path / "cd" / "transactions.parquet").is_file()
    assert data.transactions.count().execute() == 6_919


def _user_folder(tmp_path):
    """A data folder with the user's own accounts table and transactions under another name."""
    import pandas as pd

    folder = tmp_path / "mydata"
    folder.mkdir()
    pd.DataFrame({"account_id": [1, 2]}).to_parquet(folder / "accounts.parquet")
    tx = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-02", "2024-02-03"]), "amount": [5.0, 7.0]}
    )
    tx.to_parquet(folder / "sales.parquet")
    return folder


def test_generate_leaves_a_configured_transactions_table_alone(tmp_path):
    folder = _user_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cfg = Config.from_dict(
        {"data": {"path": str(folder), "transactions": "sales.parquet", "generate": {"accounts": 50}}}
    )
    data = job_data(cfg)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert data.transactions.count().execute() == 2


def test_generate_refuses_to_write_over_a_users_table(tmp_path):
    folder = _user_folder(tmp_path)
    (folder / "sales.parquet").unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cfg = Config.from_dict({"data": {"path": str(folder), "generate": {"accounts": 50}}})
    with pytest.raises(DataError, match=r"data.generate: .* accounts.parquet"):
        ensure_generated(cfg)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_users_transactions_in_any_case_or_format_are_read_not_generated_beside(tmp_path):
    """A ``Transactions.csv`` was missed: a world was written beside it, then every job failed on two."""
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "Transactions.csv").write_text("account_id,ts,amount\n1,2024-01-05,10\n1,2024-02-05,20\n")
    cfg = Config.from_dict({"data": {"path": str(folder), "generate": {"accounts": 50, "years": 1}}})
    data = job_data(cfg)
    assert sorted(p.name for p in folder.iterdir()) == ["Transactions.csv"]
    assert data.transactions.count().execute() == 2


def test_generate_refuses_years_that_run_past_today_before_writing(tmp_path):
    """``data.generate.years: 100`` wrote a world up to 2123, then the job refused its rows as "in the
    future", and every later job read the same world and failed the same way."""
    cfg = Config.from_dict(
        {"data": {"path": str(tmp_path / "d"), "generate": {"accounts": 50, "years": 100}}}
    )
    with pytest.raises(
        ConfigError, match=r"'data\.generate\.years': 100 years from 2023-01-01 end on 2123-01-01"
    ):
        ensure_generated(cfg)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "name", ["accounts.csv", "Accounts.parquet", "REFERRALS.tsv", "activities", "World.json"]
)
def test_generate_refuses_a_folder_with_any_table_of_the_world_in_any_case_or_format(tmp_path, name):
    folder = tmp_path / "mydata"
    folder.mkdir()
    if "." in name:
        (folder / name).write_text("account_id\n1\n")
    else:  # a folder of parts
        (folder / name).mkdir()
    cfg = Config.from_dict({"data": {"path": str(folder), "generate": {"accounts": 50}}})
    with pytest.raises(DataError, match=rf"data.generate: .* already holds {name}, which generating would"):
        ensure_generated(cfg)
    assert [p.name for p in folder.iterdir()] == [name]  # nothing written, not even the lock


def test_transactions_named_alone_are_read_without_data_path(tmp_path, monkeypatch):
    """docs/config.md: data.transactions overrides path; alone it was refused with "no data"."""
    folder = _user_folder(tmp_path)
    absolute = Config.from_dict({"data": {"transactions": str(folder / "sales.parquet")}})
    assert job_data(absolute).transactions.count().execute() == 2
    monkeypatch.chdir(tmp_path)  # a relative path without data.path: from the folder the command runs in
    relative = Config.from_dict(
        {"data": {"transactions": "mydata/sales.parquet", "accounts": "mydata/accounts.parquet"}}
    )
    data = job_data(relative)
    assert data.accounts is not None
    assert data.inputs["transactions"] == Path("mydata/sales.parquet")


def test_a_job_waits_for_another_generating_the_world_and_does_not_generate_again(tmp_path, monkeypatch):
    """A job started while another generated read the transactions alone, without the other tables."""
    import fcntl
    import threading
    import time

    from kamml.datasets import synthetic
    from kamml.jobs.data import GENERATE_LOCK

    folder = tmp_path / "demo"
    cfg = Config.from_dict({"data": {"path": str(folder), "generate": {"accounts": 150, "seed": 1}}})
    world = synthetic.generate(150, 1, years=1.0)
    written: list[str] = []
    real = synthetic._atomic
    monkeypatch.setattr(
        synthetic, "_atomic", lambda path, write: written.append(path.name) or real(path, write)
    )
    folder.mkdir()
    errors: list[BaseException] = []

    def second_job() -> None:
        try:
            ensure_generated(cfg)
        except BaseException as exc:
            errors.append(exc)

    with (folder / GENERATE_LOCK).open("a+") as first:  # the first job generating
        fcntl.flock(first.fileno(), fcntl.LOCK_EX)
        waiting = threading.Thread(target=second_job)
        waiting.start()
        time.sleep(0.6)
        assert waiting.is_alive()  # it waits, and reads nothing yet
        world.write(folder)
    waiting.join(timeout=60)
    assert not waiting.is_alive()
    assert errors == []
    assert written[-1] == "transactions.parquet"  # last: finding them means finding the whole world
    assert written.count("transactions.parquet") == 1  # the second job did not generate again


def test_a_world_a_stopped_job_left_without_its_transactions_is_written_again(tmp_path):
    """The transactions come last: a job stopped before them left tables every later job refused."""
    folder = tmp_path / "demo"
    cfg = Config.from_dict({"data": {"path": str(folder), "generate": {"accounts": 150, "seed": 1}}})
    ensure_generated(cfg)
    (folder / "transactions.parquet").unlink()  # as a stop before the last file leaves it
    ensure_generated(cfg)
    assert (folder / "transactions.parquet").is_file()


def test_a_data_folder_under_the_home_folder_is_generated_and_read_there(tmp_path, monkeypatch):
    """``data.path: ~/demo`` wrote the world into a folder named ``~`` here, then read ~/demo (not found)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    yaml = "data:\n  path: ~/demo\n  generate: {accounts: 60, seed: 3}\noutput:\n  dir: ~/out\n"
    (work / "job.yaml").write_text(yaml, encoding="utf-8")
    cfg = load_config(work / "job.yaml")
    assert (cfg.data.path, cfg.output.dir) == (home / "demo", home / "out")
    data = job_data(cfg)
    assert data.transactions.count().execute() > 0
    assert (home / "demo" / "transactions.parquet").is_file()
    assert not (work / "~").exists()


def test_generating_logs_the_world_size_with_separators(tmp_path, monkeypatch, caplog):
    """'generating the synthetic world (1234 accounts, ...)' read without separators; a seed is a name."""
    import kamml.datasets.synthetic as synthetic

    class Unwritten:
        def write(self, path):
            return None

    monkeypatch.setattr(synthetic, "generate", lambda *args, **kwargs: Unwritten())
    cfg = Config.from_dict(
        {"data": {"path": str(tmp_path / "demo"), "generate": {"accounts": 1234, "seed": 12345}}}
    )
    with caplog.at_level("INFO", logger="kamml"):
        ensure_generated(cfg)
    assert "generating the synthetic world (1,234 accounts, seed 12345)" in caplog.text


def test_a_job_logs_each_data_quality_note_not_only_their_count(tmp_path, caplog):
    """`kamml score` in a CRM's nightly job logged "5 data-quality notes" and none of them: accounts
    deleted from the accounts table scored without their attributes, and a file delivered twice lost
    its repeats, with no word in the job's log (only `kamml validate` printed them)."""
    import pandas as pd

    folder = tmp_path / "crm"
    folder.mkdir()
    tx = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3, 3],
            "account_id": [1, 2, 7, 7],
            "ts": pd.to_datetime(["2024-01-02", "2024-02-03", "2024-03-04", "2024-03-04"]),
            "amount": [10.0, 20.0, 30.0, 30.0],
        }
    )
    tx.to_parquet(folder / "transactions.parquet")
    pd.DataFrame({"account_id": [1, 2]}).to_parquet(folder / "accounts.parquet")
    with caplog.at_level("INFO", logger="kamml"):
        data = job_data(Config.from_dict({"data": {"path": str(folder)}}))
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert len(data.quality.notes) >= 2
    for note in data.quality.notes:
        assert f"data-quality note: {note}" in infos
    assert any("transactions of accounts missing from the accounts table" in line for line in infos)
    assert any("duplicate transaction ids" in line for line in infos)


def test_a_data_uri_is_never_generated_into(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``data.generate`` with ``data.path: hdfs:///crm/kamml`` wrote the world into a folder ``hdfs:``."""
    monkeypatch.chdir(tmp_path)
    for setting in ({"generate": {"accounts": 30}}, {"builtin": "cdnow_sample"}):
        config = Config.from_dict({"data": {"path": "hdfs:///crm/kamml", **setting}})
        with pytest.raises(
            ConfigError,
            match=r"^'data\.(generate|builtin)' writes its tables into data\.path, a local folder; "
            r"'data\.path' hdfs:///crm/kamml is a URI: remove data\.(generate|builtin) ",
        ):
            ensure_generated(config)
    assert list(tmp_path.iterdir()) == []


def test_a_uri_beside_a_local_data_setting_names_both_keys_quoted() -> None:
    """Refused before Spark is reached, naming quoted the two keys that cannot be read together."""
    from kamml.jobs.data import job_source

    config = Config.from_dict(
        {"engine": {"name": "spark"}, "data": {"path": "s3a://bucket/kamml", "accounts": "accounts.parquet"}}
    )
    with pytest.raises(
        DataError,
        match=r"^'data\.path' s3a://bucket/kamml is a URI, read by Spark, and 'data\.accounts' "
        r"accounts\.parquet a local path: give the data settings all as URIs or all as local paths$",
    ):
        job_source(config)
