"""The command line: exit codes, one-line reasons on stderr, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kamml.cli import app

runner = CliRunner()


def test_help_lists_only_working_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("generate", "validate"):
        assert command in result.output


def test_generate_then_validate(tmp_path):
    out = tmp_path / "world"
    result = runner.invoke(app, ["generate", "--accounts", "300", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("transactions", "accounts", "referrals", "activities", "truth"):
        assert (out / f"{name}.parquet").is_file()
    result = runner.invoke(app, ["validate", "--data", str(out)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output


def test_generate_is_deterministic(tmp_path):
    for name in ("a", "b"):
        runner.invoke(app, ["generate", "--accounts", "200", "--seed", "9", "--out", str(tmp_path / name)])
    first = pd.read_parquet(tmp_path / "a" / "transactions.parquet")
    second = pd.read_parquet(tmp_path / "b" / "transactions.parquet")
    pd.testing.assert_frame_equal(first, second)


def test_validate_bad_data_exits_3_without_traceback(tmp_path):
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-01,abc\n2,not a date,3\n")
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert "transactions.amount" in result.output
    assert "transactions.ts" in result.output


def test_unknown_config_key_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  pth: x\n")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown key 'data.pth'" in result.output


def test_missing_data_folder_is_a_clean_error(tmp_path):
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_console_script_runs_as_a_process(tmp_path):
    """The installed `kamml` entry point: stderr carries the reason, stdout stays clean."""
    exe = Path(sys.executable).parent / "kamml"
    (tmp_path / "transactions.csv").write_text("")
    proc = subprocess.run(
        [str(exe), "validate", "--data", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert proc.stderr.startswith("kamml: error:")
    assert "Traceback" not in proc.stderr


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_exit_now_runs_exit_handlers_and_flushes_piped_output():
    proc = _run_python(
        "import atexit\n"
        "from kamml.cli import _exit_now\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "print('written', end=' ')\n"
        "_exit_now(3)\n"
        "print('never')\n"
    )
    assert proc.returncode == 3
    assert proc.stdout == "written handler ran\n"


def test_exit_now_waits_for_a_running_thread():
    proc = _run_python(
        "import threading, time\n"
        "from kamml.cli import _exit_now\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "_exit_now(0)\n"
    )
    assert proc.returncode == 0
    assert proc.stdout == "thread done\n"


@pytest.mark.slow
def test_console_script_success_writes_everything(tmp_path):
    exe = Path(sys.executable).parent / "kamml"
    proc = subprocess.run(
        [str(exe), "generate", "--out", str(tmp_path / "w"), "--accounts", "30"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert (tmp_path / "w" / "transactions.parquet").is_file()


def test_allocate_writes_table_and_budget_curve(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    n = 50
    scores = pd.DataFrame(
        {
            "account_id": np.arange(n),
            "cutoff": pd.Timestamp("2025-01-01"),
            "clv": rng.lognormal(6, 1, n),
            "p_churn": rng.uniform(0, 1, n),
            "referral_value": rng.lognormal(3, 1, n),
            "p_alive": rng.uniform(0, 1, n),
            "expected_purchases": rng.uniform(0, 5, n),
            "model_uri": "test",
        }
    )
    scores.to_parquet(tmp_path / "scores.parquet")
    out = tmp_path / "alloc.csv"
    curve = tmp_path / "curve.csv"
    result = runner.invoke(
        app,
        [
            "allocate",
            "--scores",
            str(tmp_path / "scores.parquet"),
            "--hours",
            "60",
            "--out",
            str(out),
            "--curve",
            str(curve),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["recommended_hours"].sum() == pytest.approx(60, rel=1e-6)
    assert list(table.columns[:9]) == [
        "account_id",
        "rank",
        "tier",
        "stake",
        "recommended_hours",
        "expected_gain",
        "marginal_gain_per_hour",
        "reasons",
        "owner",
    ]
    assert curve.with_suffix(".png").stat().st_size > 1000


def test_allocate_missing_column_is_a_schema_error(tmp_path):
    pd.DataFrame({"account_id": [1], "clv": [1.0]}).to_csv(tmp_path / "s.csv", index=False)
    result = runner.invoke(
        app,
        ["allocate", "--scores", str(tmp_path / "s.csv"), "--hours", "5", "--out", str(tmp_path / "a.csv")],
    )
    assert result.exit_code == 3
    assert "scores.p_churn" in result.output
    assert not (tmp_path / "a.csv").exists()


def test_allocate_bad_capacity_and_overflowing_stake_exit_cleanly(tmp_path):
    scores = pd.DataFrame({"account_id": [1, 2], "clv": [10.0, 20.0], "p_churn": [0.5, 0.5], "owner": [7, 8]})
    scores.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "a.csv"
    args = ["allocate", "--scores", str(tmp_path / "s.csv"), "--hours", "5", "--out", str(out)]
    (tmp_path / "nan.yaml").write_text("allocation:\n  capacity: {'7': .nan}\n")
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "nan.yaml")])
    assert result.exit_code == 2, result.output
    assert "allocation.capacity" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "typo.yaml").write_text("allocation:\n  capacity: {'7': 1, '9': 1}\n")
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "typo.yaml")])
    assert result.exit_code == 2, result.output
    assert "'9'" in result.output
    scores.assign(effort_uplift=[0.5, 1e308]).to_parquet(tmp_path / "s.parquet")
    result = runner.invoke(
        app, ["allocate", "--scores", str(tmp_path / "s.parquet"), "--hours", "5", "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    assert "scores.effort_uplift" in result.output
    assert "overflows" in result.output
    assert not out.exists()
