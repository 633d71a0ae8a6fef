"""The command line: exit codes, one-line reasons on stderr, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from kamml import stopping
from kamml.cli import app, handle_errors
from kamml.config import Config
from kamml.features import training_cutoffs

runner = CliRunner()


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"kamml {version('kamml')} (Python ")


def test_help_lists_only_working_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("generate", "validate"):
        assert command in result.output


COMMANDS = ("", "generate", "validate", "train", "run", "score", "allocate", "backtest", "benchmark")


@pytest.mark.parametrize("command", [*COMMANDS, "benchmark cdnow"])
def test_help_shows_every_flag_as_a_flag(command):
    """``--help <bool>`` in every help text read as if it took a value (``--help true`` is refused)."""
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output


@pytest.mark.parametrize("command", ["validate", "backtest", "train", "score", "run"])
def test_data_help_says_a_file_is_taken(command):
    """``--data`` takes the transactions table's own file too; two commands' help said "Folder" only."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "transactions table's own file" in " ".join(result.output.split())


def test_benchmark_help_says_the_dates_format_and_range():
    """`benchmark cdnow --help` read "Last day of the calibration period." with no format or range."""
    result = runner.invoke(app, ["benchmark", "cdnow", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "calibration period (YYYY-MM-DD, after 1997-04-01, on or before 1998-06-02)" in text
    assert "(YYYY-MM-DD, at least 28 days after the calibration end, up to 1998-06-30)" in text


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        (
            "backtest",
            "--horizon-days",
            f"Default: time.horizon_days ({Config().time.horizon_days} unless the config sets it).",
        ),
        (
            "allocate",
            "--hours",
            f"default: allocation.hours, {Config().allocation.hours:,.0f} unless the config sets it",
        ),
    ],
)
def test_help_says_an_options_default(command, option, default):
    """`backtest --horizon-days` read "Prediction horizon in days." and `allocate --hours` "The team's
    hours" with no period: an operator could not tell what a job without the option uses. The figures
    are the config's own defaults, so the help cannot drift from them."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert option in text
    assert default in text


def test_generate_then_validate(tmp_path):
    out = tmp_path / "world"
    result = runner.invoke(app, ["generate", "--accounts", "300", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("transactions", "accounts", "referrals", "activities", "truth"):
        assert (out / f"{name}.parquet").is_file()
    result = runner.invoke(app, ["validate", "--data", str(out)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output


def test_generate_over_a_world_needs_force(tmp_path):
    """It replaced the folder's world without a word (the default --out is the demo's data)."""
    out = tmp_path / "world"
    runner.invoke(app, ["generate", "--accounts", "100", "--seed", "3", "--out", str(out)])
    before = (out / "transactions.parquet").read_bytes()
    again = runner.invoke(app, ["generate", "--accounts", "50", "--seed", "4", "--out", str(out)])
    assert again.exit_code == 3, again.output
    assert "already holds transactions.parquet" in again.output
    assert "--force" in again.output
    assert (out / "transactions.parquet").read_bytes() == before
    forced = runner.invoke(app, ["generate", "--accounts", "50", "--seed", "4", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (out / "transactions.parquet").read_bytes() != before
    (out / "accounts.parquet").rename(out / "accounts.csv")  # another format: two sources after writing
    other = runner.invoke(app, ["generate", "--accounts", "50", "--out", str(out), "--force"])
    assert other.exit_code == 3
    assert "holds accounts.csv: remove it" in other.output


def test_generate_into_a_folder_under_the_home_folder_by_its_tilde(tmp_path, monkeypatch):
    """``--out=~/demo`` (no shell expands it there) wrote the world into a folder named ``~`` here."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "--accounts", "30", "--out=~/demo"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "demo" / "transactions.parquet").is_file()
    assert not (tmp_path / "~").exists()


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


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("time: {cutoff: 2025-13-01}", "time.cutoff", "2025-13-01"),
        ("data: {end: 2025-02-30}", "data.end", "2025-02-30"),
    ],
)
def test_a_date_that_is_no_day_in_the_config_exits_2_in_one_line(tmp_path, text, key, value):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(text + "\n")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2, result.output  # was a ValueError traceback and exit 1
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"kamml: error: {cfg}: '{key}' must be a date (YYYY-MM-DD), got '{value}' (")


@pytest.mark.parametrize(
    ("models", "says"),
    [
        ("{clv: {nonsense_param: 3}}", "unknown key 'models.clv.nonsense_param'"),
        # refused only by run and train before (check_model_settings), not by validate
        (
            "{clv: {offset_weight: '0.5'}}",
            "'models.clv.offset_weight' must be a finite number >= 0, got '0.5'",
        ),
        # the estimators' words, "models.clv: ClvModel supports objective tweedie or poisson, not 'binary'"
        ("{clv: {objective: binary}}", "'models.clv.objective' must be tweedie or poisson, got 'binary'"),
        ("{churn: {monotone: {spend_90d: 2}}}", "'models.churn.monotone.spend_90d' must be 1, -1 or 0"),
    ],
)
def test_an_unknown_model_parameter_exits_2_before_any_data(tmp_path, models, says):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"models: {models}\n")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "no data" not in result.output  # refused when the config is read


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


def test_a_setting_lightgbm_refuses_is_one_line_on_stderr_without_lightgbm_s_own(tmp_path):
    """``reg_alpha: -1`` printed "[LightGBM] [Fatal] Check failed: (lambda_l1) >= (0.0) at ...cpp"
    (LightGBM's C++ writes it to stderr) above kamml's error, from the config's one-round check."""
    cfg = tmp_path / "t.yaml"
    cfg.write_text("models:\n  clv:\n    reg_alpha: -1\n")
    done = subprocess.run(
        [sys.executable, "-m", "kamml", "validate", "--config", str(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"kamml: error: {cfg}: 'models.clv.reg_alpha' must be >= 0, got -1\n"


def test_python_dash_m_kamml_runs_the_command(tmp_path):
    """`python -m kamml` is the `kamml` command: it had no __main__ module ("cannot be directly executed")."""
    module = [sys.executable, "-m", "kamml"]
    done = subprocess.run(
        [*module, "generate", "--out", str(tmp_path / "w"), "--accounts", "30"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "w" / "transactions.parquet").is_file()
    bad = subprocess.run([*module, "no-such-command"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("kamml: error: No such command 'no-such-command'")


def test_a_reader_that_stopped_early_ends_the_command_as_sigpipe_not_as_bad_data(tmp_path):
    """``kamml generate | head -1``: the world was written, then the next line's write said "Broken pipe",
    exit 3 (bad data); a writer whose reader has gone ends as a shell reports SIGPIPE, 141."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kamml", "generate", "--out", str(tmp_path / "w"), "--accounts", "30"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr.splitlines()[-1] == "kamml: error: stdout was closed (broken pipe): stopped"
    assert "Traceback" not in done.stderr
    assert (tmp_path / "w" / "transactions.parquet").is_file()


@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_a_command_started_with_stdout_or_stderr_closed_exits_with_its_own_code(tmp_path, closed):
    """A scheduler's ``>&-`` or ``2>&-``: Python then has no sys.stdout or sys.stderr, and a command that
    had done its work ended in exit 1 (an AttributeError flushing stdout, or asking stderr isatty)."""
    kamml = [sys.executable, "-m", "kamml"]

    def started_closed(*args: str) -> subprocess.CompletedProcess[str]:
        shell = f'exec {closed}; exec "$@"'
        out = subprocess.DEVNULL if closed == "2>&-" else None
        err = subprocess.PIPE if closed == ">&-" else None
        return subprocess.run(
            ["sh", "-c", shell, "sh", *kamml, *args], stdout=out, stderr=err, text=True, check=False
        )

    made = started_closed("generate", "--out", str(tmp_path / "w"), "--accounts", "30")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "w" / "transactions.parquet").is_file()
    missing = started_closed("validate", "--data", str(tmp_path / "nowhere"))
    assert missing.returncode == 3, missing.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["allocate", "--scores", "s.csv", "--hours", "-5", "--out", "a.csv"], "Invalid value for '--hours'"),
        (["allocate", "--scores", "s.csv", "--hours", "nan", "--out", "a.csv"], "finite number of hours"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["generate", "--accounts", "ten"], "Invalid value for '--accounts'"),
        (["score", "--model", "m"], "Missing option '--out'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, reason):
    """The README's promise holds for a bad option too: one `kamml: error:` line, no box, exit 2."""
    proc = _run_python(f"import sys; sys.argv = ['kamml', *{args!r}]; from kamml.cli import main; main()")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("kamml: error: ")
    assert reason in lines[0]
    assert "--help" in lines[0]


def test_no_arguments_prints_the_help():
    proc = _run_python("import sys; sys.argv = ['kamml']; from kamml.cli import main; main()")
    assert proc.returncode == 2
    assert "Usage: kamml" in proc.stdout + proc.stderr
    assert "kamml: error" not in proc.stderr


def test_a_path_that_is_not_utf8_is_a_usage_error_not_a_traceback(tmp_path):
    """A folder name in Latin-1 bytes reached pyarrow as text it cannot encode: a traceback, exit 1."""
    import os

    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/lat\xe9")
    proc = subprocess.run(
        [sys.executable, "-m", "kamml", "generate", "--accounts", "30", "--out", out],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Invalid value for '--out'" in proc.stderr
    assert "lat\\xe9" in proc.stderr  # the byte named
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "uri", ["s3a://bucket/scores.parquet", "hdfs:///crm/out/scores", "file:///tmp/s.csv"]
)
def test_a_uri_path_option_is_refused_not_mangled(uri):
    """A path option is a local path: Path("s3a://bucket/x") is "s3a:/bucket/x", so a Spark job wrote
    to a path without its bucket; the command line now says to use the Python API for such targets."""
    result = runner.invoke(app, ["generate", "--accounts", "30", "--out", uri])
    assert result.exit_code == 2, result.output
    assert "is a URI" in result.output
    assert "kamml.spark" in result.output


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


def test_allocate_with_a_huge_budget_says_it_in_one_short_line(tmp_path):
    """--hours 1e300 printed the budget as 301 digits with 100 separators (and so did the chart)."""
    scores = pd.DataFrame({"account_id": [1, 2, 3], "clv": [100.0, 50.0, 0.0], "p_churn": [0.2, 0.3, 0.5]})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    out, curve = tmp_path / "alloc.csv", tmp_path / "curve.csv"
    args = ["allocate", "--scores", str(tmp_path / "scores.csv"), "--hours", "1e300", "--out", str(out)]
    result = runner.invoke(app, [*args, "--curve", str(curve)])
    assert result.exit_code == 0, result.output
    (line,) = [text for text in result.output.splitlines() if text.startswith("3 accounts")]
    assert line.startswith("3 accounts, 80.25 of 1e+300 hours, expected gain ")
    assert len(line) < 200
    assert pd.read_csv(curve)["feasible"].all()


def test_a_horizon_flag_beyond_a_century_is_the_flags_error_not_the_config_files(tmp_path):
    """It read "default.yaml: 'time.horizon_days': ... (got 100000)", a value the file does not hold."""
    result = runner.invoke(app, ["backtest", "--config", "default", "--horizon-days", "100000"])
    assert result.exit_code == 2
    assert "--horizon-days: at most 36,525 days (a century), got 100,000" in result.output
    assert "default.yaml" not in result.output


def test_allocate_takes_the_horizon_from_the_scores_and_refuses_a_flag_that_contradicts_it(tmp_path):
    """Without --config a 30-day scores table got 180 days' effort scales (4 h at the median, not 0.67 h)."""
    scores = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4],
            "clv": [400.0, 100.0, 25.0, 0.0],  # k: 2, 1 and 0.5 times the scale at the median 100, 0.25 at 0
            "p_churn": [0.2, 0.5, 0.1, 0.3],
            "horizon_days": 30,
        }
    )
    scores.to_csv(tmp_path / "s.csv", index=False)
    base = ["allocate", "--scores", str(tmp_path / "s.csv"), "--hours", "10", "--out"]

    def scales(out: Path) -> pd.Series:
        return pd.read_csv(out).set_index("account_id")["effort_scale"].sort_index()

    result = runner.invoke(app, [*base, str(tmp_path / "a.csv")])
    assert result.exit_code == 0, result.output
    month = 4.0 * 30 / 180
    assert scales(tmp_path / "a.csv").tolist() == pytest.approx([2 * month, month, 0.5 * month, 0.25 * month])
    assert "assumes" not in result.output  # no warning: the scores say their horizon

    result = runner.invoke(app, [*base, str(tmp_path / "b.csv"), "--horizon-days", "90"])
    assert result.exit_code == 2, result.output
    assert "horizon_days (--horizon-days) is 90 days but the scores are over 30 days" in result.output
    assert not (tmp_path / "b.csv").exists()

    # scores of an older kamml: the flag gives their horizon; without it, 180 days and a warning
    scores.drop(columns="horizon_days").to_csv(tmp_path / "old.csv", index=False)
    old = ["allocate", "--scores", str(tmp_path / "old.csv"), "--hours", "10", "--out"]
    result = runner.invoke(app, [*old, str(tmp_path / "c.csv"), "--horizon-days", "30"])
    assert result.exit_code == 0, result.output
    assert scales(tmp_path / "c.csv").tolist() == pytest.approx(scales(tmp_path / "a.csv").tolist())
    assert "assumes" not in result.output
    result = runner.invoke(app, [*old, str(tmp_path / "d.csv")])
    assert result.exit_code == 0, result.output
    assert scales(tmp_path / "d.csv").tolist() == pytest.approx([8.0, 4.0, 2.0, 1.0])  # today's 180 days
    assert "assumes 180 days" in result.output
    assert "--horizon-days N" in result.output
    result = runner.invoke(app, [*old, str(tmp_path / "e.csv"), "--horizon-days", "100000"])
    assert result.exit_code == 2
    assert "--horizon-days: at most 36,525 days (a century), got 100,000" in result.output


def test_allocate_missing_column_is_a_schema_error(tmp_path):
    pd.DataFrame({"account_id": [1], "clv": [1.0]}).to_csv(tmp_path / "s.csv", index=False)
    result = runner.invoke(
        app,
        ["allocate", "--scores", str(tmp_path / "s.csv"), "--hours", "5", "--out", str(tmp_path / "a.csv")],
    )
    assert result.exit_code == 3
    assert "scores.p_churn" in result.output
    assert not (tmp_path / "a.csv").exists()


def test_allocate_empty_scores_exits_3_and_writes_nothing(tmp_path):
    pd.DataFrame({"account_id": [], "clv": [], "p_churn": []}).to_parquet(tmp_path / "empty.parquet")
    out = tmp_path / "al.csv"
    result = runner.invoke(
        app, ["allocate", "--scores", str(tmp_path / "empty.parquet"), "--hours", "500", "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    assert "no accounts in the scores" in result.output
    assert not out.exists()


def test_allocate_scores_not_in_utf8_exit_3_naming_the_file(tmp_path):
    """A Latin-1 scores CSV got Python's codec error; it is bad data (exit 3), said of the file."""
    scores = tmp_path / "s.csv"
    scores.write_bytes("account_id,clv,p_churn,region\n1,10,0.5,Zürich\n".encode("latin-1"))
    out = tmp_path / "a.csv"
    result = runner.invoke(app, ["allocate", "--scores", str(scores), "--hours", "5", "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert f"cannot read the scores file {scores}: it is not UTF-8 text (line 2" in result.output
    assert "codec" not in result.output
    assert not out.exists()


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
    (tmp_path / "inf.yaml").write_text("allocation:\n  floor_hours: .inf\n")
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "inf.yaml")])
    assert result.exit_code == 2, result.output
    assert "'allocation.floor_hours' must be a finite number >= 0, got inf" in result.output
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


# ---------------------------------------------------------------- dates, cutoffs and output paths


@pytest.mark.parametrize("command", ["score", "backtest"])
@pytest.mark.parametrize(
    ("cutoff", "says"),
    [
        ("garbage", "--cutoff 'garbage' is not a date"),
        ("01/07/2025", "is not a date written YYYY-MM-DD"),  # pandas read it as January 7th
        ("today", "is not a date written YYYY-MM-DD"),
        ("2025-06-01T12:30:00+05:00", "time of day 07:30:00 UTC"),
        ("2025-06-01 12:30", "time of day 12:30:00"),  # not silently truncated to the day
    ],
)
def test_a_cutoff_that_is_not_a_date_exits_2_before_any_work(world_path, tmp_path, command, cutoff, says):
    args = ["--data", str(world_path), "--cutoff", cutoff]
    if command == "score":
        args += ["--model", "models:/no-such-model@champion", "--out", str(tmp_path / "s.parquet")]
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_backtest_snapshots_days_after_the_first_purchase_exit_as_a_settings_error(world_path):
    """Gamma-Gamma's "at least 10 repeat buyers" ended it with exit 5, naming no snapshot or setting."""
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 1}})
    first = pd.read_parquet(world_path / "transactions.parquet", columns=["ts"])["ts"].min().normalize()
    snapshot = first + pd.Timedelta(days=5)
    config = _yaml(world_path.parent / "early-gg.yaml", cfg)
    cutoff = str((snapshot + pd.Timedelta(days=90)).date())
    args = ["backtest", "--data", str(world_path), "--cutoff", cutoff, "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"training snapshot {snapshot.date()} holds" in result.output
    assert "Traceback" not in result.output


def test_backtest_before_every_purchase_says_so_and_names_the_snapshots(world_path):
    cfg = Config.from_dict({"time": {"horizon_days": 90, "snapshots": 2, "step_days": 60}})
    first = pd.read_parquet(world_path / "transactions.parquet", columns=["ts"])["ts"].min().normalize()
    cutoff = first + pd.Timedelta(days=91)  # snapshots on the day after the first purchase and before it
    cuts = training_cutoffs(cutoff, 90, 2, 60)  # accounts exist then, purchases do not
    config = _yaml(world_path.parent / "early.yaml", cfg)
    args = ["backtest", "--data", str(world_path), "--cutoff", str(cutoff.date()), "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "hold no purchase history before their cutoffs" in result.output
    for cut in cuts:
        assert str(cut.date()) in result.output
    args[args.index("--cutoff") + 1] = str(first.date())  # outside the data: the cutoff and the span named
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"test cutoff {first.date()} is on or before the day of the first purchase" in result.output


@pytest.mark.slow
def test_score_after_the_data_end_is_refused_and_at_the_end_is_not(trained, world_path, tmp_path):
    cfg, data, result = trained
    config = _yaml(tmp_path / "cfg.yaml", cfg)
    base = ["score", "--model", result.model_uri, "--data", str(world_path), "--config", str(config)]
    late = (data.end + pd.Timedelta(days=31)).date()
    refused = runner.invoke(app, [*base, "--cutoff", str(late), "--out", str(tmp_path / "late.parquet")])
    assert refused.exit_code == 2, refused.output
    assert f"cutoff {late} is after the data end {data.end.date()}" in refused.output
    assert not (tmp_path / "late.parquet").exists()
    at_end = runner.invoke(
        app, [*base, "--cutoff", str(data.end.date()), "--out", str(tmp_path / "s.parquet")]
    )
    assert at_end.exit_code == 0, at_end.output
    assert (pd.read_parquet(tmp_path / "s.parquet")["cutoff"] == data.end).all()


def test_score_over_an_input_table_exits_3_before_any_work(tracked_config, world_path, tmp_path):
    """`--out DATA/transactions.parquet --data DATA` replaced the input (exit 0); the next run failed."""
    import shutil

    config = _yaml(tmp_path / "cfg.yaml", tracked_config())
    copy = tmp_path / "world"
    shutil.copytree(world_path, copy)
    before = (copy / "transactions.parquet").read_bytes()
    out = copy / "transactions.parquet"
    model = str(tmp_path / "no-model")  # refused before the model is looked for
    args = ["score", "--model", model, "--data", str(copy), "--config", str(config)]
    refused = runner.invoke(app, [*args, "--out", str(out)])
    assert refused.exit_code == 3, refused.output
    assert f"kamml: error: cannot write {out}: it is the transactions table the job reads" in refused.output
    assert out.read_bytes() == before


def test_backtest_json_over_an_input_table_exits_3_before_any_work(world_path, tmp_path):
    """`backtest --json DATA/accounts.parquet` replaced the accounts table with the metrics (exit 0)."""
    import shutil

    copy = tmp_path / "world"
    shutil.copytree(world_path, copy)
    out = copy / "accounts.parquet"
    before = out.read_bytes()
    refused = runner.invoke(app, ["backtest", "--data", str(copy), "--json", str(out)])
    assert refused.exit_code == 3, refused.output
    assert f"kamml: error: cannot write {out}: it is the accounts table the job reads" in refused.output
    assert out.read_bytes() == before


def test_backtest_json_named_as_a_table_of_the_data_folder_exits_3_before_any_work(world_path, tmp_path):
    """`backtest --json DATA/referrals.csv` (no referrals there) was read as the referrals next time."""
    import shutil

    copy = tmp_path / "world"
    copy.mkdir()
    shutil.copy(world_path / "transactions.parquet", copy)
    out = copy / "referrals.csv"
    refused = runner.invoke(app, ["backtest", "--data", str(copy), "--json", str(out)])
    assert refused.exit_code == 3, refused.output
    assert "it would be read as the referrals table next time" in refused.output
    assert not out.exists()


def test_backtest_json_over_the_config_file_exits_3_before_any_work(world_path, tmp_path):
    """`backtest --config c.yaml --json c.yaml` replaced the config with the metrics (exit 0)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  path: {world_path}\n", encoding="utf-8")
    before = cfg.read_bytes()
    refused = runner.invoke(app, ["backtest", "--config", str(cfg), "--json", str(cfg)])
    assert refused.exit_code == 3, refused.output
    assert f"cannot write {cfg}" in refused.output
    assert cfg.read_bytes() == before


def test_ctrl_c_inside_a_duckdb_query_is_an_interrupt_not_a_traceback():
    """Ctrl-C in a query raised DuckDB's "Query interrupted" (a RuntimeError): traceback, exit 1."""
    import typer

    from kamml.cli import _call
    from kamml.errors import DataError

    def query():
        try:
            raise RuntimeError("Query interrupted")
        except RuntimeError as exc:
            raise DataError("transactions: cannot read") from exc

    with pytest.raises(typer.Exit) as stop:
        _call(query, (), {})
    assert stop.value.exit_code == 130
    with pytest.raises(ValueError, match="other"):
        _call(lambda: (_ for _ in ()).throw(ValueError("other")), (), {})


def test_ctrl_c_while_duckdb_reads_a_registered_table_is_an_interrupt_not_a_traceback():
    """Ctrl-C while DuckDB counted a registered Arrow table's rows (`benchmark cdnow --sample`, 2.5 s in)
    came as its InvalidInputException naming the KeyboardInterrupt in text only: traceback, exit 1."""
    import duckdb
    import typer

    from kamml.cli import _call

    def query():
        raise duckdb.InvalidInputException(
            "Invalid Input Error: counting the rows of the object registered as 'kamml_transactions_94873' "
            "failed: KeyboardInterrupt: "
        )

    with pytest.raises(typer.Exit) as stop:
        _call(query, (), {})
    assert stop.value.exit_code == 130
    with pytest.raises(duckdb.InvalidInputException):  # another failure of the same kind stays one
        _call(lambda: (_ for _ in ()).throw(duckdb.InvalidInputException("failed: ValueError: x")), (), {})


def test_pyspark_warning_of_a_transfer_cancelled_by_ctrl_c_is_silenced():
    import warnings

    from kamml.cli import _quiet_cancelled_transfers

    head = "toPandas attempted Arrow optimization because 'spark.sql.execution.arrow.pyspark.enabled' is set"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        _quiet_cancelled_transfers()
        warnings.warn(f"{head} ...\n: [SPARK_JOB_CANCELLED] Job 127 cancelled ...", UserWarning, stacklevel=1)
        warnings.warn(f"{head} ...\n: java.lang.IllegalStateException: a real failure", stacklevel=1)
    assert [str(w.message).rsplit(": ", 1)[-1] for w in shown] == ["a real failure"]


def test_ctrl_c_inside_a_spark_job_is_an_interrupt_not_a_traceback():
    """PySpark's SIGINT handler cancels the jobs and raises KeyboardInterrupt; the waiting call then
    failed with a Py4J error of the whole Java trace, printed as a bug (exit 1)."""
    import typer

    from kamml.cli import _call

    def job(reason: str):
        def run():
            try:
                raise KeyboardInterrupt  # PySpark's handler, after cancelAllJobs()
            except KeyboardInterrupt:
                raise RuntimeError(f"An error occurred while calling o280.getResult.\n: {reason}") from None

        return run

    cancelled = (
        "org.apache.spark.SparkException: [SPARK_JOB_CANCELLED] Job 185 cancelled as part of "
        "cancellation of all jobs"
    )
    for reason in (cancelled, "something the Java side said"):  # cancelled, or any error while handling ^C
        with pytest.raises(typer.Exit) as stop:
            _call(job(reason), (), {})
        assert stop.value.exit_code == 130

    def cancelled_elsewhere():  # no ^C here: the jobs were cancelled by someone else (the Spark UI)
        raise RuntimeError(f"An error occurred while calling o1.getResult.\n: {cancelled}")

    with pytest.raises(typer.Exit) as stop:
        _call(cancelled_elsewhere, (), {})
    assert stop.value.exit_code == 130


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--seed", "-1"], "seed"), (["--years", "1e9"], "years"), (["--years", "inf"], "years")],
)
def test_generate_refuses_a_negative_seed_and_endless_years(tmp_path, args, says):
    """They were a ValueError, 'year out of range' or an OverflowError from deep inside: exit 1."""
    result = runner.invoke(app, ["generate", "--accounts", "10", "--out", str(tmp_path / "w"), *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    from kamml.datasets import synthetic
    from kamml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.generate\.seed"):
        synthetic.generate(10, seed=-1)
    with pytest.raises(ConfigError, match=r"data\.generate\.years"):
        synthetic.generate(10, years=float("inf"))


@pytest.mark.parametrize("years", ["nan", "0.05", "101"])
def test_generate_years_out_of_range_names_the_range(tmp_path, years):
    """``--years nan`` read "Input should be less than or equal to 100", as if it were too large."""
    result = runner.invoke(
        app, ["generate", "--accounts", "10", "--out", str(tmp_path / "w"), "--years", years]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert f"must be a number of years from 0.1 to 100, got {years}" in said
    assert not (tmp_path / "w").exists()


def test_generate_refuses_years_that_run_past_today(tmp_path):
    """``--years 100`` wrote a world up to 2123 that `kamml validate` and every job refused: its rows
    after today are "in the future"."""
    result = runner.invoke(
        app, ["generate", "--accounts", "10", "--out", str(tmp_path / "w"), "--years", "100"]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert "100 years from 2023-01-01 end on 2123-01-01, after today" in said
    assert "kamml refuses rows dated in the future" in said
    assert not (tmp_path / "w").exists()


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path):
    """A Latin-1 comment raised UnicodeDecodeError: a traceback and exit 1."""
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("# caf\xe9\ntime:\n  horizon_days: 90\n".encode("latin-1"))
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    assert "a config must be UTF-8 text" in result.output


def test_benchmark_json_over_the_packaged_cdnow_file_exits_3_before_any_work(monkeypatch):
    """`benchmark cdnow --json` accepted the packaged CDNOW file it reads (the next load: corrupt)."""
    from importlib import resources

    import kamml.cli
    import kamml.evaluation.benchmark

    calls: list[str] = []
    monkeypatch.setattr(kamml.evaluation.benchmark, "benchmark_cdnow", lambda *a, **k: calls.append("run"))
    monkeypatch.setattr(kamml.cli, "_write_json", lambda *a: calls.append("write"))  # never the real file
    packaged = Path(str(resources.files("kamml.datasets").joinpath("files/CDNOW_sample.txt.gz")))
    refused = runner.invoke(app, ["benchmark", "cdnow", "--sample", "--json", str(packaged)])
    assert refused.exit_code == 3, refused.output
    assert "CDNOW_sample.txt" in refused.output
    assert calls == []


@pytest.mark.parametrize("command", [["benchmark", "cdnow", "--sample"], ["backtest"]])
def test_a_json_path_ending_in_a_slash_is_refused_as_a_folder(monkeypatch, tmp_path, command):
    """``--json out/`` with no folder out wrote the JSON into a file named ``out``."""
    import kamml.evaluation.backtest
    import kamml.evaluation.benchmark

    calls: list[str] = []
    monkeypatch.setattr(kamml.evaluation.benchmark, "benchmark_cdnow", lambda *a, **k: calls.append("run"))
    monkeypatch.setattr(kamml.evaluation.backtest, "backtest", lambda *a, **k: calls.append("run"))
    refused = runner.invoke(app, [*command, "--json", f"{tmp_path}/out/"])
    assert refused.exit_code == 2, refused.output
    assert "--json" in refused.output, refused.output
    assert "names a folder" in refused.output, refused.output
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def test_backtest_json_writes_null_for_a_nan_metric(monkeypatch, tmp_path):
    """An AUC of a one-class backtest is NaN: it was written as a bare NaN, which JSON.parse refuses."""
    import json
    from types import SimpleNamespace

    import kamml.evaluation.backtest
    import kamml.jobs.data

    metrics = {"churn": {"kamml": {"auc": float("nan"), "brier": 0.25}}}
    result = SimpleNamespace(to_text=lambda: "backtest", to_dict=lambda: metrics)
    monkeypatch.setattr(kamml.jobs.data, "job_data", lambda *a: None)
    monkeypatch.setattr(kamml.evaluation.backtest, "backtest", lambda *a: result)
    out = tmp_path / "bt.json"
    done = runner.invoke(app, ["backtest", "--data", str(tmp_path), "--json", str(out)])
    assert done.exit_code == 0, done.output

    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    parsed = json.loads(out.read_text(encoding="utf-8"), parse_constant=refuse)
    assert parsed == {"churn": {"kamml": {"auc": None, "brier": 0.25}}}


def test_backtest_json_to_dash_is_the_json_alone_on_stdout(world_path, tmp_path):
    """``--json -`` wrote a file named ``-`` and stdout mixed the text table with "wrote -"."""
    import json

    done = subprocess.run(
        [sys.executable, "-m", "kamml", "backtest", "--data", str(world_path), "--json", "-"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "-").exists()
    assert set(json.loads(done.stdout)) >= {"value", "churn"}
    assert "a baseline does better on" in done.stderr  # the text table, for a person reading the log


def _yaml(path: Path, cfg: Config) -> Path:
    """`cfg` written as a YAML config file (the sections the commands read)."""
    import yaml

    tree = cfg.model_dump(mode="json", include={"time", "models", "tracking"})
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture
def scores_file(tmp_path: Path) -> Path:
    """A small valid scores table."""
    path = tmp_path / "scores.parquet"
    pd.DataFrame(
        {"account_id": [1, 2, 3], "clv": [100.0, 50.0, 10.0], "p_churn": [0.2, 0.5, 0.1]}
    ).to_parquet(path)
    return path


def _allocate(scores: Path, *extra: str) -> Any:
    return runner.invoke(app, ["allocate", "--scores", str(scores), "--hours", "10", *extra])


def test_allocate_to_an_existing_folder_or_under_a_file_exits_3_in_one_line(scores_file, tmp_path):
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "afile").write_text("")
    for out, says in (
        (tmp_path / "dir.csv", "it is an existing folder"),
        (tmp_path / "afile" / "x.csv", "is a file"),
    ):
        result = _allocate(scores_file, "--out", str(out))
        assert result.exit_code == 3, result.output
        assert says in result.output
        assert "Traceback" not in result.output


def test_allocate_paths_under_the_home_folder_by_their_tilde(scores_file, tmp_path, monkeypatch):
    """``--out=~/a.csv`` (no shell expands it there) wrote into a folder named ``~`` here, as generate did."""
    home = tmp_path / "home"
    home.mkdir()
    scores_file.rename(home / "scores.parquet")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app,
        ["allocate", "--scores=~/scores.parquet", "--hours", "10", "--out=~/a.csv", "--curve=~/c.csv"],
    )
    assert result.exit_code == 0, result.output
    for name in ("a.csv", "c.csv", "c.png"):
        assert (home / name).is_file(), name
    assert not (tmp_path / "~").exists()


def test_allocate_checks_the_curve_path_before_writing_the_allocation(scores_file, tmp_path):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "alloc.csv"
    for curve in (tmp_path / "afile" / "c.csv", tmp_path / "c.txt"):
        result = _allocate(scores_file, "--out", str(out), "--curve", str(curve))
        assert result.exit_code == 3, result.output
        assert not out.exists()  # nothing half written
    (tmp_path / "c.png").mkdir()  # the plot beside the curve
    result = _allocate(scores_file, "--out", str(out), "--curve", str(tmp_path / "c.csv"))
    assert result.exit_code == 3, result.output
    assert "c.png" in result.output
    assert not out.exists()
    ok = _allocate(scores_file, "--out", str(out), "--curve", str(tmp_path / "curve.csv"))
    assert ok.exit_code == 0, ok.output
    assert out.is_file()
    assert (tmp_path / "curve.csv").is_file()
    assert (tmp_path / "curve.png").is_file()


@pytest.mark.parametrize(
    ("stage", "code"),
    [("draw", 3), ("render", 4)],
)
def test_a_curve_chart_that_fails_leaves_every_output_as_it_was(
    scores_file, tmp_path, monkeypatch, stage, code
):
    """The chart was drawn after both tables were written (an input audit), then rendered after them: a
    failure (or a SIGTERM) in its 0.3 s left a new allocation and curve beside the old chart, with "nothing
    half written was kept" said on a stop. It is drawn and rendered first now."""
    from matplotlib.figure import Figure

    from kamml.errors import DataError
    from kamml.report import plots

    out, curve = tmp_path / "alloc.csv", tmp_path / "curve.csv"
    assert _allocate(scores_file, "--out", str(out), "--curve", str(curve)).exit_code == 0
    before = {p: p.read_bytes() for p in (out, curve, curve.with_suffix(".png"))}
    error = (
        DataError("budget curve has no feasible budget to plot") if stage == "draw" else MemoryError("canvas")
    )

    def fail(*_: Any, **__: Any) -> Any:
        raise error

    if stage == "draw":
        monkeypatch.setattr(plots, "budget_curve_figure", fail)
    else:
        monkeypatch.setattr(Figure, "savefig", fail)
    result = _allocate(scores_file, "--out", str(out), "--curve", str(curve), "--hours", "5")
    assert result.exit_code == code, result.output
    assert {p: p.read_bytes() for p in before} == before


def test_allocate_refuses_scores_whose_stakes_add_up_past_the_largest_float(tmp_path):
    """Accounts of clv 1e308: each stake finite, the plan's totals inf ("expected gain inf", or a budget
    curve "below the floors"); now a named error and nothing written."""
    scores = tmp_path / "huge.parquet"
    pd.DataFrame({"account_id": range(10), "clv": [1e308] * 9 + [5.0], "p_churn": 0.1}).to_parquet(scores)
    out = tmp_path / "alloc.csv"
    result = _allocate(scores, "--out", str(out))
    assert result.exit_code == 3, result.output
    assert (
        "scores.clv: the accounts' stakes (from clv, p_churn and referral_value) add up past" in result.output
    )
    assert "Traceback" not in result.output
    assert not out.exists()


def test_allocate_refuses_one_file_for_two_of_scores_out_and_curve(scores_file, tmp_path, monkeypatch):
    """--out equal to --curve wrote the curve over the allocation, and --out equal to --scores replaced
    the input, both with exit 0; refused before any work, naming both options."""
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "scores.csv"
    pd.read_parquet(scores_file).to_csv(csv, index=False)
    before = csv.read_bytes()
    (tmp_path / "link.csv").symlink_to(csv)
    cases = [
        (scores_file, ["--out", "x.csv", "--curve", str(tmp_path / "x.csv")], "--out and --curve"),
        (csv, ["--out", "scores.csv"], "--scores and --out"),
        (csv, ["--out", "a.csv", "--curve", "./scores.csv"], "--scores and --curve"),
        (tmp_path / "link.csv", ["--out", str(csv)], "--scores and --out"),
    ]
    for scores, extra, says in cases:
        result = _allocate(scores, *extra)
        assert result.exit_code == 3, result.output
        assert f"{says} name the same file" in result.output
        assert "Traceback" not in result.output
    assert csv.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "scores.csv", "scores.parquet"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_allocate_where_no_file_can_be_created_exits_3(scores_file):
    result = _allocate(scores_file, "--out", "/proc/x.csv")
    assert result.exit_code == 3, result.output
    assert "cannot write /proc/x.csv" in result.output


@pytest.mark.parametrize("name", ["a_spark.csv", "a_spark", "a_spark.parquet.csv"])
def test_allocate_on_spark_refuses_a_name_other_than_parquet_before_any_work(
    scores_file, tmp_path, monkeypatch, name
):
    import types

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("allocate_spark must not start")

    monkeypatch.setitem(sys.modules, "kamml.spark", types.SimpleNamespace(allocate_spark=no_work))
    config = tmp_path / "spark.yaml"
    config.write_text("engine: {name: spark}\n")
    result = _allocate(scores_file, "--config", str(config), "--out", str(tmp_path / name))
    assert result.exit_code == 3, result.output  # wrote a folder of Parquet parts named a_spark.csv/, exit 0
    assert result.output.strip() == (
        f"kamml: error: cannot write {tmp_path / name}: on Spark the allocation is a folder of Parquet parts "
        "(name it *.parquet)"
    )
    assert not (tmp_path / name).exists()


def test_spark_outputs_refuse_an_existing_file_and_a_bad_curve_name_before_any_work(
    scores_file, tmp_path, monkeypatch
):
    """A file at --out was replaced by a folder of parts with exit 0 (a folder is replaced, by design)."""
    import types

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("allocate_spark must not start")

    monkeypatch.setitem(sys.modules, "kamml.spark", types.SimpleNamespace(allocate_spark=no_work))
    config = tmp_path / "spark.yaml"
    config.write_text("engine: {name: spark}\n")
    target = tmp_path / "plan.parquet"
    target.write_text("keep")
    result = _allocate(scores_file, "--config", str(config), "--out", str(target))
    assert result.exit_code == 3, result.output
    assert "it is a file, and on Spark the allocation is a folder" in result.output
    assert target.read_text() == "keep"
    curve = _allocate(
        scores_file, "--config", str(config), "--out", str(tmp_path / "b.parquet"), "--curve", "c.txt"
    )
    assert curve.exit_code != 0, curve.output
    assert "c.txt" in curve.output


def test_generate_into_an_existing_file_exits_3(tmp_path):
    target = tmp_path / "transactions.parquet"
    target.write_text("keep")
    result = runner.invoke(app, ["generate", "--accounts", "10", "--out", str(target)])
    assert result.exit_code == 3, result.output
    assert "it is a file, not a folder" in result.output
    assert target.read_text() == "keep"


def test_an_os_error_becomes_one_line_and_exit_code_3(capsys):
    @handle_errors
    def write_somewhere() -> None:
        open("/", "w").close()  # the real OS refusal: a folder opened for writing

    with pytest.raises(typer.Exit) as info:
        write_somewhere()
    assert info.value.exit_code == 3
    err = capsys.readouterr().err
    assert err == "kamml: error: Is a directory: /\n"


def _out_of_memory() -> Exception:
    import duckdb

    return duckdb.OutOfMemoryException("Out of Memory Error: could not allocate")


def _locked() -> Exception:
    import sqlalchemy

    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))


def _not_a_database() -> Exception:
    from mlflow.exceptions import MlflowException

    return MlflowException("(sqlite3.DatabaseError) file is not a database")


@pytest.mark.parametrize(
    ("make", "code", "says"),
    [
        (
            _out_of_memory,
            4,
            "DuckDB ran out of memory (Out of Memory Error: could not allocate): raise",
        ),
        (
            _locked,
            5,
            "is locked by another process (a training job, or an MLflow UI or script",
        ),
        (_not_a_database, 5, "is not an MLflow store"),
    ],
)
def test_out_of_memory_and_a_broken_store_are_one_line_wherever_they_surface(make, code, says, capsys):
    """A training run logging into a locked store, DuckDB at its limit in any query: tracebacks, exit 1."""

    @handle_errors
    def job() -> None:
        raise make()

    with pytest.raises(typer.Exit) as info:
        job()
    assert info.value.exit_code == code
    err = capsys.readouterr().err
    assert err.startswith("kamml: error: ")
    assert err.count("\n") == 1
    assert says in err


@pytest.mark.parametrize(("given", "got"), [("2.5", "2.5"), ("many", "'many'"), ("nan", "nan"), ("0", "0")])
def test_accounts_that_are_no_whole_number_in_range_say_the_config_words(tmp_path, given, got):
    """``--accounts 2.5`` read "Input should be a valid integer, unable to parse string as an integer",
    where ``data.generate.accounts: 2.5`` and ``--accounts 0`` say `accounts_problem`'s rule and range."""
    result = runner.invoke(app, ["generate", "--accounts", given, "--out", str(tmp_path / "w")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert f"'--accounts' / '-n': must be a whole number of accounts from 1 to 2,000,000, got {got}" in said
    assert not (tmp_path / "w").exists()


def test_a_world_too_big_for_the_memory_is_a_config_error_with_exit_2(tmp_path, monkeypatch):
    """``generate --accounts`` past any machine's memory ended in numpy's MemoryError traceback (exit 1),
    then in an engine failure (exit 4, "out of memory"); it is now refused by the world's size bound."""
    result = runner.invoke(app, ["generate", "--accounts", str(10**15), "--out", str(tmp_path / "w")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert "'--accounts'" in said
    assert "must be a whole number of accounts from 1 to 2,000,000, got 1,000,000,000,000,000" in said
    assert "n_accounts" not in said  # the Python name, which the command line does not have
    assert not (tmp_path / "w").exists()
    import kamml.config

    # accounts x years: no --years reaches the bound by today at 2,000,000 accounts, so it is lowered
    monkeypatch.setattr(kamml.config, "GENERATE_MAX_ACCOUNT_YEARS", 1_000)
    longer = runner.invoke(
        app, ["generate", "--accounts", "500", "--years", "3", "--out", str(tmp_path / "w")]
    )
    assert longer.exit_code == 2, longer.output
    assert longer.output.startswith("kamml: error: --accounts and --years: 500 accounts over 3 years")
    assert not (tmp_path / "w").exists()


def test_an_unknown_error_still_shows_its_traceback():
    @handle_errors
    def job() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        job()


def test_an_exit_a_native_library_swallowed_after_sigterm_is_still_exit_143(monkeypatch, capsys):
    """DuckDB turns the SIGTERM handler's SystemExit into RuntimeError('Query interrupted')."""
    import signal

    @handle_errors
    def query() -> None:
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(stopping, "_SIGNALS", [signal.SIGTERM])
    with pytest.raises(typer.Exit) as stopped:
        query()
    assert stopped.value.exit_code == 143
    assert "kamml: error: stopped by SIGTERM" in capsys.readouterr().err
    monkeypatch.setattr(stopping, "_SIGNALS", [])
    with pytest.raises(typer.Exit) as stopped:  # without SIGTERM: Ctrl-C (kamml never interrupts DuckDB)
        query()
    assert stopped.value.exit_code == 130
    assert "kamml: error: interrupted" in capsys.readouterr().err


def test_a_command_that_returns_after_a_sigterm_exits_143(monkeypatch, capsys):
    """The handler's exit dropped after the job's last safe point: the command returned, exit 0."""
    import signal

    @handle_errors
    def command() -> None:
        stopping.request(signal.SIGTERM)  # as the handler does; its SystemExit was lost

    monkeypatch.setattr(stopping, "_SIGNALS", [])
    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 143
    assert "kamml: error: stopped by SIGTERM (after its last safe point)" in capsys.readouterr().err


def test_validate_reads_a_transactions_table_named_in_the_config_without_data_path(world_path, tmp_path):
    """Only `data.transactions` in the config: it was refused with "no data: ... set data.path"."""
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  transactions: {world_path / 'transactions.parquet'}\n")
    result = runner.invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output


def test_data_given_on_the_command_line_is_the_configs_data_path(tmp_path, monkeypatch):
    """`kamml train --data D` logged data.path '' and a config.yaml without D: the run did not say where."""
    from kamml.cli import _with_data
    from kamml.config import Config

    monkeypatch.chdir(tmp_path)
    cfg = Config.from_dict({"data": {"path": "elsewhere"}})
    assert _with_data(cfg, None) is cfg
    given = _with_data(cfg, Path("here"))
    assert given.data.path == tmp_path / "here"
    assert cfg.data.path == Path("elsewhere")  # the loaded config is left as it was


@pytest.mark.parametrize("name", ["accounts.csv", "referrals.csv", "activities.csv"])
def test_score_to_a_table_name_in_the_data_folder_exits_3_before_any_work(world_path, tmp_path, name):
    """`--out DATA/accounts.csv` beside accounts.parquet broke every later job on the folder."""
    import shutil

    copy = tmp_path / "world"
    shutil.copytree(world_path, copy)
    if name == "referrals.csv":  # a table the folder did not have: the scores would be read as it
        (copy / "referrals.parquet").unlink()
    out = copy / name
    refused = runner.invoke(
        app, ["score", "--model", "models:/none@champion", "--data", str(copy), "--out", str(out)]
    )
    assert refused.exit_code == 3, refused.output
    table = name.split(".")[0]
    assert f"it would be read as the {table} table next time" in refused.output
    assert not out.exists()
    fine = runner.invoke(app, ["validate", "--data", str(copy)])
    assert fine.exit_code == 0, fine.output


def test_allocate_does_not_write_into_the_configs_data_tables(scores_file, world_path, tmp_path):
    """`kamml score` refused these; `kamml allocate --out DATA/accounts.csv` broke the data folder."""
    import shutil

    copy = tmp_path / "world"
    shutil.copytree(world_path, copy)
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data:\n  path: {copy}\n")
    cases = [
        (["--out", str(copy / "accounts.csv")], "it would be read as the accounts table next time"),
        (["--out", str(copy / "transactions.parquet")], "it is the transactions table the job reads"),
        (["--out", str(tmp_path / "a.csv"), "--curve", str(copy / "activities.csv")], "activities table"),
        # a new folder of parts: the allocation was written there and read as the accounts table next time
        (["--out", str(copy / "Accounts" / "part.parquet")], "it would be read as the accounts table"),
    ]
    for extra, says in cases:
        result = _allocate(scores_file, "--config", str(config), *extra)
        assert result.exit_code == 3, result.output
        assert says in result.output
    assert not (copy / "accounts.csv").exists()
    assert not (copy / "Accounts").exists()
    assert not (tmp_path / "a.csv").exists()
    assert runner.invoke(app, ["validate", "--data", str(copy)]).exit_code == 0
    fine = _allocate(scores_file, "--config", str(config), "--out", str(tmp_path / "a.csv"))
    assert fine.exit_code == 0, fine.output


def test_score_refuses_explain_top_with_explain_all(tmp_path):
    """Both were accepted and --explain-top silently ignored."""
    out = tmp_path / "s.csv"
    result = runner.invoke(
        app, ["score", "--model", "m", "--out", str(out), "--explain-top", "5", "--explain-all"]
    )
    assert result.exit_code == 2
    assert "--explain-top 5 and --explain-all ask for two things" in result.output
    assert not out.exists()


def test_mlflows_traceback_of_a_store_failure_kamml_names_is_dropped():
    """A full disk printed SQLAlchemy's 40-line traceback (MLflow's log) before kamml's one-line error."""
    import logging
    import sqlite3
    import sys

    from kamml.cli import _no_store_traceback

    def record_of(error: Exception) -> logging.LogRecord:
        try:
            raise error
        except Exception:
            info = sys.exc_info()
        return logging.LogRecord("mlflow.store.db.utils", logging.ERROR, __file__, 1, "caught", None, info)

    full = record_of(sqlite3.OperationalError("disk I/O error"))
    assert _no_store_traceback(full)  # the line stays
    assert full.exc_info is None
    other = record_of(ValueError("a bug"))
    assert _no_store_traceback(other)
    assert other.exc_info is not None  # any other error keeps its traceback


@pytest.mark.slow
def test_train_stops_before_registering_when_an_input_is_replaced(
    tracked_config, world_path, tmp_path, monkeypatch, mlflow_at_session_store
):
    """`kamml run` checked its inputs before registering; `kamml train` alone registered a model fitted
    partly on the new rows of an export that landed mid-job, and exited 0."""
    import os
    import shutil

    from mlflow import MlflowClient

    import kamml.jobs.train

    world = tmp_path / "world"
    shutil.copytree(world_path, world)
    name = f"kamml-train-swapped-{tmp_path.name}"
    config = _yaml(tmp_path / "cfg.yaml", tracked_config(experiment=name, model_name=name))
    real_train = kamml.jobs.train.train

    def train_while_the_export_lands(data, cfg, **kwargs):
        tx = pd.read_parquet(world / "transactions.parquet")
        tx.iloc[::2].to_parquet(world / "new.parquet")
        os.replace(world / "new.parquet", world / "transactions.parquet")  # atomic, as an export
        return real_train(data, cfg, **kwargs)

    monkeypatch.setattr(kamml.jobs.train, "train", train_while_the_export_lands)
    result = runner.invoke(app, ["train", "--config", str(config), "--data", str(world)])
    assert result.exit_code == 3, result.output
    assert "input files changed while the job ran" in result.output
    assert "transactions.parquet" in result.output
    assert not MlflowClient().search_registered_models(filter_string=f"name = '{name}'")


def test_the_mlflow_ui_hint_names_the_environments_mlflow_when_it_is_not_on_path(monkeypatch, tmp_path):
    """`make demo` printed `mlflow ui ...`, which a shell without the venv activated does not find."""
    from kamml.cli import _mlflow_command

    beside = Path(sys.executable).parent
    monkeypatch.setenv("PATH", str(tmp_path))  # no mlflow on it
    hint = _mlflow_command()
    assert hint != "mlflow"
    assert Path(hint).name.startswith("mlflow")
    assert Path(hint).exists()  # relative to the working folder, or absolute
    monkeypatch.setenv("PATH", str(beside))
    assert _mlflow_command() == "mlflow"


def test_the_browse_hint_of_a_tracking_server_is_its_address_not_mlflow_ui():
    """``mlflow ui --backend-store-uri http://...`` was the hint for a server, which mlflow ui refuses."""
    from kamml.cli import _browse_hint

    assert _browse_hint("http://mlflow.corp:5000") == "browse it at http://mlflow.corp:5000"
    assert "Databricks workspace" in _browse_hint("databricks")
    assert "mlflow ui" not in _browse_hint("databricks-uc://profile")
    local = _browse_hint("sqlite:///mlruns.db")
    assert local.endswith(" ui --backend-store-uri sqlite:///mlruns.db")
    # a store in a folder with a space: one argument to the shell, not two
    spaced = _browse_hint("sqlite:////home/ann/My Work/mlruns.db")
    assert spaced.endswith(" ui --backend-store-uri 'sqlite:////home/ann/My Work/mlruns.db'")


@pytest.mark.slow
def test_train_with_promote_makes_the_new_version_champion(
    tracked_config, world_path, tmp_path, mlflow_at_session_store
):
    """`--promote` takes the alias when the gate would not (here a tie: the same data and seed)."""
    from mlflow import MlflowClient

    name = f"kamml-promote-{tmp_path.name}"
    config = _yaml(tmp_path / "cfg.yaml", tracked_config(experiment=name, model_name=name))
    base = ["train", "--config", str(config), "--data", str(world_path)]
    first = runner.invoke(app, base)
    assert first.exit_code == 0, first.output
    tie = runner.invoke(app, base)
    assert "(not promoted:" in tie.output
    forced = runner.invoke(app, [*base, "--promote"])
    assert forced.exit_code == 0, forced.output
    assert (
        f"registry   models:/{name}/3 (champion: promoted as asked (--promote), over the gate's"
        in forced.output
    )
    assert str(MlflowClient().get_model_version_by_alias(name, "champion").version) == "3"


def test_generate_force_stopped_midway_never_leaves_a_mixed_world(tmp_path, monkeypatch):
    """A --force generate stopped after its first file left the new accounts beside the old transactions,
    and `kamml validate` passed the mix (a CLI audit)."""
    import kamml.datasets.synthetic as synthetic

    out = tmp_path / "world"
    assert runner.invoke(app, ["generate", "-n", "100", "--seed", "3", "--out", str(out)]).exit_code == 0
    old_accounts = (out / "accounts.parquet").read_bytes()
    real, calls = synthetic.write_parquet, []

    def fail_on_second(frame, path):
        calls.append(path)
        if len(calls) == 2:  # as SIGTERM or a full disk after accounts.parquet was replaced
            raise OSError(28, "No space left on device", str(path))
        return real(frame, path)

    monkeypatch.setattr(synthetic, "write_parquet", fail_on_second)
    result = runner.invoke(app, ["generate", "-n", "100", "--seed", "4", "--out", str(out), "--force"])
    assert result.exit_code == 3
    assert (out / "accounts.parquet").read_bytes() != old_accounts  # replaced before the failure
    assert not (out / "transactions.parquet").exists()  # so no job reads a half-replaced world


def test_a_stop_during_a_spark_query_exits_143_when_the_jvm_is_gone(monkeypatch):
    """SIGTERM to the process group (systemd, timeout) ends Spark's JVM too, and the Py4JJavaError the
    stopped query left asks the JVM for its text: handle_errors caught _call's typer.Exit and printed a
    traceback, exit 1 (a CLI audit)."""
    import signal
    import types

    class Py4JJavaError(Exception):
        def __str__(self) -> str:  # py4j's asks the JVM for the Java exception's text
            raise ConnectionRefusedError(111, "Connection refused")

    @handle_errors
    def command() -> None:
        stopping.request(signal.SIGTERM)  # as the handler does
        raise Py4JJavaError()

    monkeypatch.setattr(stopping, "_SIGNALS", [])
    monkeypatch.setitem(sys.modules, "pyspark", sys.modules.get("pyspark") or types.ModuleType("pyspark"))
    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 143


TEARDOWN = """
import os, signal, time
from concurrent.futures import ThreadPoolExecutor
import kamml.cli as cli

pool = ThreadPoolExecutor(1)   # an idle worker, as MLflow's artifact upload pool leaves after `kamml run`
pool.submit(int).result()

class Scheduler:               # a SIGTERM that lands while the interpreter tears down
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)

scheduler = Scheduler()
cli.app = lambda *args, **kwargs: 0   # a command that finished: outputs published, run complete
cli.main()
"""


def test_a_finished_command_is_not_killed_during_the_interpreters_teardown():
    """`kamml run` left MLflow's idle artifact thread, so `_exit_now` fell back to `sys.exit`: 2 s of
    teardown in which a scheduler's SIGTERM killed the finished job raw (exit 143, no message)."""
    proc = subprocess.run([sys.executable, "-c", TEARDOWN], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)


def test_generate_waits_for_another_job_generating_in_the_same_folder(tmp_path, monkeypatch):
    """`kamml generate` took no lock: beside a job generating the demo's data (`ensure_generated`) it
    wrote its tables over the other's, and the folder held a mix of two worlds."""
    import fcntl

    import kamml.jobs.data as jobs_data

    out = tmp_path / "world"
    out.mkdir()
    monkeypatch.setattr(jobs_data, "GENERATE_LOCK_SECONDS", 0.3)
    with (out / jobs_data.GENERATE_LOCK).open("a+") as other:  # another job generating there
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        result = runner.invoke(app, ["generate", "-n", "100", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 3
    assert "another kamml job has been generating the data in" in result.output
    assert not (out / "accounts.parquet").exists()
    result = runner.invoke(app, ["generate", "-n", "100", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_kamml_runs_store_line_shows_no_password():
    """`kamml run` printed its store whole, a ``postgresql://user:password@...`` URI's password included,
    into the output a scheduler keeps (a tracking audit)."""
    from kamml.cli import _store_line

    line = _store_line("postgresql://kamml:s3cret@db:5432/mlflow", "abc123")
    assert "s3cret" not in line
    assert line.startswith("MLflow       postgresql://kamml:***@db:5432/mlflow (run abc123); ")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["generate", "--accounts", "30", "--out", ""], "--out"),
        (["validate", "--data", " "], "--data"),
        (["validate", "--config", ""], "--config"),
        (["score", "--model", "m", "--out", ""], "--out"),
        (["score", "--model", "", "--out", "s.csv"], "--model"),  # was "no model at :", exit 5
        (["score", "--model", " ", "--out", "s.csv"], "--model"),
        (["allocate", "--scores", "", "--out", "a.csv"], "--scores"),
        (["allocate", "--scores", "s.csv", "--out", "a.csv", "--curve", ""], "--curve"),
        (["backtest", "--json", ""], "--json"),
    ],
)
def test_an_empty_path_option_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch, args, option):
    """``--out "$OUT"`` with OUT unset: click read "" as ".", so `generate` wrote a world into the folder
    the command ran in, ``--data ""`` read that folder as the data, and the others failed naming ".".
    """
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"'{option}'" in result.output
    assert "is empty" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--calibration-end", "97-10-01"),
        ("--holdout-end", "1998-02-30"),
        ("--holdout-end", "1998-06-30T12:00"),
    ],
)
def test_benchmark_names_the_option_of_a_date_that_is_not_one(flag, value):
    """The reason read "calibration end '97-10-01' is not a date", not the option to fix."""
    result = runner.invoke(app, ["benchmark", "cdnow", "--sample", flag, value])
    assert result.exit_code == 2, result.output
    assert flag in result.output, result.output
    assert repr(value) in result.output, result.output


def test_the_score_line_reads_the_total_clv_in_any_unit_of_the_amounts():
    """`kamml score` printed the total clv in whole units: in amounts of millions 0.00042 read "0"."""
    from kamml.cli import scored_text

    cut = pd.Timestamp("2026-01-01")
    line = scored_text(1200, cut, "with models:/kamml/3", 0.00042, 0.31234)
    assert (
        line
        == "1,200 accounts scored at 2026-01-01 with models:/kamml/3: total clv 0.000420, mean p_churn 0.312"
    )
    assert "total clv 1,234,568," in scored_text(2, cut, "on Spark with m", 1234567.8, 0.5)


def test_score_without_a_config_says_the_variable_replaces_kammls_default_store(
    world_path, tmp_path, monkeypatch
):
    """With MLFLOW_TRACKING_URI exported and no --config, the error said the variable replaced "the
    config's tracking.uri", a config no one gave (a tracking audit)."""
    missing = tmp_path / "none.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    out = tmp_path / "scores.csv"
    refused = runner.invoke(
        app, ["score", "--model", "models:/kamml@champion", "--data", str(world_path), "--out", str(out)]
    )
    assert refused.exit_code == 5, refused.output
    said = " ".join(refused.output.split())
    assert "the MLFLOW_TRACKING_URI environment variable, which replaces kamml's default tracking.uri" in said
    assert "the config's" not in said
    assert not missing.exists()
    assert not out.exists()


def test_readme_command_table_lists_every_command_with_its_options():
    """README's command table names each command and exactly the long options its --help has."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    rows = re.findall(r"^\| `kamml ([a-z ]+?) ?(\[?--[^`]*)?` \|", readme, flags=re.MULTILINE)
    documented = {name: set(re.findall(r"--[a-z][a-z-]*", options)) for name, options in rows}

    def commands(group: Any, prefix: str = "") -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group, such as `benchmark`
                found.update(commands(command, f"{prefix}{name} "))
            else:
                opts = {o for p in command.params for o in p.opts if o.startswith("--")} - {"--help"}
                found[prefix + name] = opts
        return found

    assert documented == commands(typer.main.get_command(app))


def test_benchmark_takes_a_config_file(monkeypatch, tmp_path):
    """DESIGN §10: every command takes --config; `benchmark cdnow` did not: settings could not be compared."""
    from types import SimpleNamespace

    import kamml.evaluation.benchmark

    seen: list[Any] = []
    result = SimpleNamespace(to_text=lambda: "benchmark", to_dict=lambda: {}, protocol={})
    monkeypatch.setattr(
        kamml.evaluation.benchmark, "benchmark_cdnow", lambda *a, **k: seen.append(k["config"]) or result
    )
    path = tmp_path / "mine.yaml"
    path.write_text("models:\n  seed: 7\n")
    done = runner.invoke(app, ["benchmark", "cdnow", "--sample", "--config", str(path)])
    assert done.exit_code == 0, done.output
    assert seen[0].models.seed == 7
    assert result.protocol == {"config": str(path)}  # the JSON says these are not the published settings
    refused = runner.invoke(app, ["benchmark", "cdnow", "--config", str(path), "--json", str(path)])
    assert refused.exit_code != 0, refused.output
    assert "mine.yaml" in refused.output, refused.output
    missing = runner.invoke(app, ["benchmark", "cdnow", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code != 0, missing.output
    assert "config file not found" in missing.output, missing.output
    assert len(seen) == 1


@pytest.mark.slow
def test_benchmark_reads_its_config_once_so_a_piped_one_is_used_whole(caplog):
    """`kamml benchmark cdnow --config <(envsubst < job.yaml)`: the file was read for the settings, then
    again for the check of its time window, which found the pipe empty, took it for a config setting
    nothing and said nothing of the 90-day horizon the benchmark did not use."""
    import json
    import os

    read, write = os.pipe()
    os.write(write, b"time:\n  snapshots: 2\n  horizon_days: 90\nmodels:\n  clv: {n_estimators: 20}\n")
    os.close(write)
    args = ["benchmark", "cdnow", "--sample", "--holdout-end", "1997-12-31", "--json", "-"]
    try:
        with caplog.at_level("WARNING", logger="kamml.evaluation.benchmark"):
            done = runner.invoke(app, [*args, "--config", f"/dev/fd/{read}"])
    finally:
        os.close(read)
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout)["protocol"]["training_snapshots"]) == 2  # the pipe's settings
    assert "time.horizon_days 90 not used" in caplog.text  # and so is the window checked


@pytest.mark.parametrize("command", ["validate", "score"])
def test_unmapped_columns_without_a_config_say_that_no_config_was_given(tmp_path, command):
    """A user whose config maps their columns and who forgot --config read only "map yours" advice."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "transactions.csv").write_text("customer,order_date,total\n1,2024-03-05,10\n")
    (tmp_path / "model").mkdir()  # a folder `kamml score` finds a model in (an unknown one is told first)
    (tmp_path / "model" / "MLmodel").write_text("")
    args = {"validate": [], "score": ["--model", str(tmp_path / "model"), "--out", str(tmp_path / "s.csv")]}
    result = runner.invoke(app, [command, "--data", str(data), *args[command]])
    assert result.exit_code == 3, result.output
    assert "missing required column" in result.output
    assert "no --config was given" in result.output
    mapped = tmp_path / "c.yaml"
    mapped.write_text("data: {columns: {transactions: {account_id: id}}}\n")
    result = runner.invoke(app, [command, "--data", str(data), "--config", str(mapped), *args[command]])
    assert "missing required column" in result.output
    assert "no --config was given" not in result.output  # a config was given: its mapping is at fault


def test_the_no_config_line_is_for_commands_that_read_the_users_tables(capsys):
    """`kamml benchmark cdnow --config` maps no data: a contract problem there needs no such advice."""
    import typer

    from kamml.errors import Problem, SchemaError

    problem = Problem("transactions", "ts", "missing required column; columns found: when")

    @handle_errors
    def benchmark(config=None):
        raise SchemaError([problem])

    @handle_errors
    def score(data=None, config=None):
        raise SchemaError([problem])

    for command, kwargs, advised in ((benchmark, {}, False), (score, {"data": None}, True)):
        with pytest.raises(typer.Exit):
            command(config=None, **kwargs)  # typer passes every parameter by name
        assert ("no --config was given" in capsys.readouterr().err) is advised


#: Each command that reads the input tables, with what else it needs to start.
DATA_COMMANDS = {
    "validate": [],
    "backtest": [],
    "train": [],
    "run": [],
    "score": ["--model", "models:/kamml@champion", "--out", "scores.parquet"],
}


@pytest.mark.parametrize("uri", ["s3a://bucket/kamml", "hdfs:///crm/kamml", "dbfs:/crm/kamml"])
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_a_data_uri_on_duckdb_names_the_flag_and_engine_spark(command, uri, tmp_path, monkeypatch):
    """``--data hdfs:///crm/kamml`` was refused as a path ("the command line takes local paths", or
    ``dbfs:/`` as data not found) although the jobs read such a URI in data.path through Spark; on DuckDB
    it stays refused, naming the flag and the engine that reads it, before any work."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [command, "--data", uri, *DATA_COMMANDS[command]])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"--data {uri} is a URI" in said
    assert "engine: {name: spark}" in said
    assert "Traceback" not in said
    assert list(tmp_path.iterdir()) == []  # no data generated, no output folder, no store


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_a_data_uri_beside_a_local_table_of_the_config_names_both_before_spark_starts(
    command, tmp_path, monkeypatch
):
    """``--data`` a URI and the config's ``data.accounts`` a local file: nothing reads the two together."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "kamml.spark.remote", None)  # Spark must not be reached
    config = tmp_path / "spark.yaml"
    config.write_text("engine: {name: spark}\ndata: {accounts: accounts.parquet}\n")
    args = [command, "--data", "s3a://bucket/kamml", "--config", str(config), *DATA_COMMANDS[command]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "--data s3a://bucket/kamml is a URI" in said
    assert "the config's 'data.accounts' accounts.parquet a local path: give data.accounts as a URI" in said


def test_a_data_uri_is_the_configs_data_path_and_nothing_is_generated_into_it():
    """``--data`` a URI with engine spark: the job reads it as a data.path URI (`jobs.data.job_source`),
    and data.generate (the packaged spark config's) is dropped: it wrote into data.path, a local folder."""
    from kamml.cli import _data_source
    from kamml.config import load_config

    cfg = load_config("spark")
    given, source = _data_source(cfg, "hdfs:///crm/kamml/")
    assert source is None  # read through the config, as a data.path URI is
    assert given.data.path == "hdfs:///crm/kamml/"
    assert given.data.generate is None
    assert given.data.builtin is None
    assert cfg.data.generate is not None  # the loaded config is left as it was
    local, path = _data_source(cfg, "data/mine")
    assert local is cfg
    assert path == Path("data/mine")
    assert _data_source(cfg, None) == (cfg, None)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        "models:/kamml-test/99",
        "runs:/0123456789abcdef/model",
        "no-such-folder",
        "models:/m-0123456789abcdef",  # a logged model's id, a stage, a file:// URI: found only when loaded
        "models:/kamml-test/Production",
        "file:///no-such-folder",
        "runs:/{run}/modle",  # the run is there, the model's path in it is not
    ],
)
def test_score_names_a_mistyped_model_before_reading_the_data(trained, world_path, tmp_path, model):
    """A wrong version, run id or folder was told only after the whole data load (the model loaded beside
    it): with data that cannot be read, the data's error hid it. The model is found first, so its error
    is the one told, with the words it has when the data are fine."""
    cfg, _, result = trained
    model = model.format(run=result.run_id)
    config = _yaml(tmp_path / "cfg.yaml", cfg)
    args = ["score", "--model", model, "--config", str(config), "--out", str(tmp_path / "s.parquet")]
    with_data = runner.invoke(app, [*args, "--data", str(world_path)])
    assert with_data.exit_code == 5, with_data.output
    assert "cannot load the model" in with_data.output or "no model at" in with_data.output
    no_data = runner.invoke(app, [*args, "--data", str(tmp_path / "not-there")])
    assert no_data.exit_code == 5, no_data.output
    assert no_data.output == with_data.output
    from kamml.errors import ModelError
    from kamml.tracking import load_model

    with pytest.raises(ModelError) as loading:  # the words a loaded model's failure has
        load_model(model, cfg.tracking)
    assert no_data.output.strip() == f"kamml: error: {loading.value}"
    assert not (tmp_path / "s.parquet").exists()
