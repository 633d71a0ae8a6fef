"""examples/spark/score_job.py, the job docs/spark.md submits to a cluster: its flags are checked before any
work and its errors end it with one line and kamml's exit code (the run itself: test_spark_job.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[2] / "examples" / "spark" / "score_job.py"


def job() -> ModuleType:
    """The example script as a module, so its `main` runs in this process."""
    spec = importlib.util.spec_from_file_location("score_job", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # pandas read it as January 7th, and the job scored at that day
        (["--cutoff", "01/07/2025"], "--cutoff '01/07/2025' is not a date written YYYY-MM-DD"),
        # pandas' DateParseError came as a traceback after the data were read and validated
        (["--cutoff", "2025-13-01"], "--cutoff '2025-13-01'"),
        # refused by the allocation after every account was scored and the scores written
        (["--hours", "-5"], "--hours: a finite number of hours >= 0 is needed, got -5"),
        (["--hours", "nan"], "--hours: a finite number of hours >= 0 is needed, got nan"),
        (["--explain-top", "-1"], "--explain-top: a whole number >= 0 is needed, got -1"),
    ],
)
def test_bad_flags_stop_the_job_before_any_work(flags, said, tmp_path, capsys):
    config = tmp_path / "kamml.yaml"
    config.write_text("engine: {name: spark}\n")
    out = tmp_path / "out"
    missing = str(tmp_path / "missing")  # the flag is refused before the data or the model are looked at
    argv = ["--config", str(config), "--model", missing, "--data", missing, "--out", str(out), *flags]
    with pytest.raises(SystemExit) as stop:
        job().main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_named_error_ends_the_job_with_one_line_and_its_exit_code(tmp_path, capsys):
    """A ConfigError came as a Python traceback with exit 1, where kamml's commands say one line."""
    argv = ["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        job().main(argv)
    assert stop.value.code == 2  # ConfigError's, as `kamml` exits
    err = capsys.readouterr().err
    assert err.startswith("score_job.py: error: config file not found: ")
    assert err.count("\n") == 1


def test_a_data_uri_is_read_by_spark_and_a_local_folder_as_it_is(tmp_path):
    """`--data hdfs:///crm/kamml` (docs/spark.md's example) went to load_data, which reads local files only:
    a URI goes through `kamml.spark.remote_tables` (here refused for its engine, before any Spark work)."""
    from kamml.config import Config
    from kamml.errors import ConfigError

    script = job()
    assert script.tables(tmp_path, Config.from_dict({})) == tmp_path
    for uri in ("hdfs:///crm/kamml", "dbfs:/crm/kamml", "s3a://bucket/kamml"):
        with pytest.raises(ConfigError, match=f"remote_tables reads {uri} with Spark"):
            script.tables(uri, Config.from_dict({}))
