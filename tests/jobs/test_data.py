import pytest

from kamml.config import Config
from kamml.errors import ConfigError
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
