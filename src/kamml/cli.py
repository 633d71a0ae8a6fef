"""The `kamml` command line: thin Typer commands that call kamml's jobs and library functions.

Every command exits 0 on success and, on a `KammlError`, prints a one-line reason (plus the list of
problems for bad data) on stderr and exits with that error's code, never with a traceback. A file the
operating system refuses to read or write (`OSError`) exits like bad data, with code 3. The engine out
of memory (exit 4, as Python's own `MemoryError`) and an MLflow store that is locked or not a store
(exit 5) are named wherever a query or an MLflow call meets them (`_named_failure`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from kamml import stopping
from kamml.errors import ConfigError, DataError, KammlError, SchemaError
from kamml.text import counted

if TYPE_CHECKING:
    import pandas as pd

    from kamml.config import Config

#: The metavar of a flag: none (typer with click 8.2+ showed "<bool>", and "--force true" is refused).
FLAG = ""


class _FlagHelp:
    """``--help`` shown as the flag it is, with no metavar (typer's own showed ``--help <bool>``)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = FLAG
        return option


class _Command(_FlagHelp, TyperCommand):
    """A command whose ``--help`` reads as a flag (`_FlagHelp`)."""


class _Group(_FlagHelp, TyperGroup):
    """A group of commands whose ``--help`` reads as a flag (`_FlagHelp`)."""


app = typer.Typer(
    name="kamml",
    cls=_Group,
    help="Where should the sales team's hours go? Models of account value, churn and referral influence, "
    "turned into an allocation of sales hours.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("kamml.cli")


def _fail(message: str, code: int) -> None:
    """Print `kamml: error: ...` on stderr and exit with `code`."""
    typer.echo(f"kamml: error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn kamml's named errors (and a file the system refuses) into a clean message and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _call(func, args, kwargs)
        except typer.Exit:  # _call's own exit (a stop, Ctrl-C): a RuntimeError, not a failure to name
            raise
        except SchemaError as exc:
            head = f"{counted(len(exc.problems), 'problem')} in the input data"
            typer.echo(f"kamml: error: {head}", err=True)
            for problem in exc.problems:
                typer.echo(f"  - {problem}", err=True)
            if _unmapped_without_config(exc, kwargs):
                typer.echo(f"  {_NO_CONFIG}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KammlError as exc:
            _fail(str(exc), exc.exit_code)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_gone():  # `kamml generate | head -1`
                _fail("stdout was closed (broken pipe): stopped", 128 + signal.SIGPIPE)
            named = _named_failure(exc)  # a refused connection to Spark's JVM is the engine's, not a file
            if named is not None:
                _fail(str(named), named.exit_code)
            _fail(_os_reason(exc), DataError.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except MemoryError as exc:  # numpy's (`generate --accounts 1000000000000`) came as a traceback
            reason = str(exc) or "Python could not allocate the memory it needed"
            _fail(f"out of memory: {reason}; ask for less, or run on a machine with more memory", 4)
        except Exception as exc:
            named = _named_failure(exc)
            if named is None:  # a bug: the traceback is what a report needs
                raise
            _fail(str(named), named.exit_code)

    return wrapper  # type: ignore[return-value]


_NO_CONFIG = (
    "no --config was given: the tables were read with kamml's defaults, which map no column; give the "
    "config whose data.columns maps yours with --config FILE"
)


def _unmapped_without_config(exc: SchemaError, kwargs: Mapping[str, Any]) -> bool:
    """A data table lacks a contract column in a command that reads --data and was given no --config.

    A user whose config maps their columns and who forgot --config (`kamml score` after `kamml run
    --config mine.yaml`) read only advice to map columns they had mapped already.
    """
    from kamml.data.contract import TABLES

    if "data" not in kwargs or "config" not in kwargs or kwargs["config"] is not None:
        return False  # commands that read the user's tables (a benchmark's --config maps no data)
    return any(p.table in TABLES and p.rule.startswith("missing required column") for p in exc.problems)


def _call(func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """`func(*args, **kwargs)`; after SIGTERM, whatever the signal's exit became is that exit.

    A query running in DuckDB when the signal came swallows the handler's SystemExit and raises
    "Query interrupted" (a RuntimeError, or a DataError once a reader wrapped it): the job still
    stopped because it was told to, with its staged outputs removed on the way. One Python dropped
    (`kamml.stopping`) after the job's last safe point ends the command with that exit all the same.
    """
    try:
        result = func(*args, **kwargs)
    except typer.Exit:
        raise
    except SystemExit:
        signum = stopping.requested()
        if signum is not None:  # the handler's own exit: said on stderr, as every other stop
            typer.echo(f"kamml: error: stopped by {signal.Signals(signum).name}", err=True)
        raise
    except BaseException as exc:
        signum = stopping.requested()
        if signum is not None:
            _fail(f"stopped by {signal.Signals(signum).name}; nothing half written was kept", 128 + signum)
        if _interrupted(exc):  # Ctrl-C inside a query: the engine's error, not KeyboardInterrupt
            _fail("interrupted", 130)
        raise
    signum = stopping.requested()
    if signum is not None:  # the handler's exit was dropped (in a garbage collector's callback)
        _fail(f"stopped by {signal.Signals(signum).name} (after its last safe point)", 128 + signum)
    return result


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone; if so it is sent to /dev/null from now on.

    A reader that stops early (``| head -1``, ``| grep -q``) made the next line's write fail, which
    ended the command as bad data ("Broken pipe", exit 3) after it had done its work; a shell reports
    such a writer as ended by SIGPIPE (141). Python's own final flush then has nowhere to fail.
    """
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(event & select.POLLERR for _, event in poller.poll(0))
        if gone:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
    except (AttributeError, OSError, ValueError):  # no file behind stdout (a test's capture), no poll
        return False
    return gone


def _interrupted(exc: BaseException) -> bool:
    """Whether `exc` is how an engine reports Ctrl-C inside a query, itself or in the errors it wraps.

    DuckDB raises "Query interrupted"; on Spark, PySpark's own SIGINT handler cancels every job and
    raises KeyboardInterrupt, and the call waiting for the job then fails with "[SPARK_JOB_CANCELLED]
    ... cancellation of all jobs" while handling it (a Py4J error with the whole Java trace). Ctrl-C
    while DuckDB calls into Python (counting a registered Arrow table's rows) comes as its error with
    "failed: KeyboardInterrupt" in the text alone, no exception chained.
    """
    from kamml.errors import exception_chain

    for error in exception_chain(exc):
        said = str(error)
        if isinstance(error, KeyboardInterrupt) or "query interrupted" in said.lower():
            return True
        if "failed: KeyboardInterrupt" in said:
            return True
        if "SPARK_JOB_CANCELLED" in said and "cancellation of all jobs" in said:
            return True
    return False


def _named_failure(exc: Exception) -> KammlError | None:
    """The engine out of memory, or an MLflow store locked or not a store, as kamml's error; else None.

    Both can surface from any query or MLflow call of a job (a training run logging while the MLflow UI
    holds the store, DuckDB at its memory limit in a quality check), so they are named here once rather
    than around every call. Only modules a command has already imported are consulted.
    """
    if "duckdb" in sys.modules or "pyspark" in sys.modules:
        from kamml.engine import engine_failure

        failure = engine_failure(exc)
        if failure is not None:
            return failure
    if "mlflow" in sys.modules or "sqlalchemy" in sys.modules:  # MLflow's store errors are SQLAlchemy's
        from kamml.tracking.store import store_error

        return store_error(exc)
    return None


def _os_reason(exc: OSError) -> str:
    """One line for an operating-system error: its reason and the file(s) it concerns."""
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {' -> '.join(files)}" if files else reason


def _cutoff_option(value: str | None, name: str = "--cutoff") -> pd.Timestamp | None:
    """A date option parsed before any work (a ConfigError for garbage or a time of day); None stays None."""
    if value is None:
        return None
    from kamml.features._context import as_cutoff

    return as_cutoff(value, name)


def _horizon_option(days: int | None) -> int | None:
    """``--horizon-days`` checked against the config's bound, said of the flag (it blamed the config file)."""
    if days is not None:
        from kamml.config import MAX_DAYS

        if days > MAX_DAYS:
            raise ConfigError(f"--horizon-days: at most {MAX_DAYS:,} days (a century), got {days:,}")
    return days


def _print_version(value: bool) -> None:
    """`--version`: kamml's version, and the Python it runs on, then exit."""
    if value:
        from kamml import __version__

        typer.echo(f"kamml {__version__} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every step (DEBUG).", metavar=FLAG)
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print kamml's version and exit.",
            callback=_print_version,
            is_eager=True,
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """Where should the sales team's hours go."""
    _setup_logging(logging.DEBUG if verbose else logging.INFO)
    _quiet_cancelled_transfers()


def _quiet_cancelled_transfers() -> None:
    """Silence PySpark's warning that an Arrow transfer failed when it failed because the jobs were cancelled.

    After Ctrl-C (PySpark's handler cancels every job) ``toPandas`` warned with the whole Java trace
    before kamml's "interrupted"; the same warning for any other failure still shows.
    """
    import warnings

    cancelled = r"(?s)toPandas attempted Arrow optimization.*SPARK_JOB_CANCELLED"
    warnings.filterwarnings("ignore", message=cancelled, category=UserWarning)


def _setup_logging(level: int) -> None:
    """Log to stderr: rich on a terminal, plain timestamped lines otherwise (batch jobs, CI)."""
    root = logging.getLogger("kamml")
    root.setLevel(level)
    root.handlers.clear()
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.getLogger("mlflow.store.db.utils").addFilter(_no_store_traceback)


def _no_store_traceback(record: logging.LogRecord) -> bool:
    """Drop the traceback MLflow logs with a store failure that kamml names itself on one line (exit 5).

    A full disk printed SQLAlchemy's 40-line traceback before kamml's error; MLflow's one-line message
    stays, and other errors keep their tracebacks.
    """
    if record.exc_info and record.exc_info[1] is not None:
        from kamml.tracking.store import store_error

        if store_error(record.exc_info[1], "") is not None:
            record.exc_info, record.exc_text = None, None
    return True


#: Accounts whose drivers `kamml score` names by default (the most value at stake first).
_EXPLAIN_TOP = 20_000


def path_option(value: str | Path) -> Path:
    """A path option's text as a Path; empty or blank text is refused (click read "" as ".").

    ``--out "$OUT"`` with OUT unset wrote `generate`'s world into the folder the command ran in, and
    ``--data ""`` read that folder as the data. Given with ``metavar="<path>"``: the help reads as before.
    A leading ``~`` is the home folder, as in the config's paths: ``--out=~/a.csv``, which no shell
    expands, wrote `score`'s and `allocate`'s tables into a folder named ``~`` in the working folder.
    A name that is not UTF-8 (Latin-1 bytes from an old file server) is refused: Arrow and DuckDB
    take UTF-8 paths only. So is a URI (``s3a://bucket/x``), which a Path cut to ``s3a:/bucket/x``
    (``--data`` takes one for Spark to read: `data_option`).
    """
    if isinstance(value, Path):  # a default
        return value
    if not value.strip():
        raise typer.BadParameter("is empty: give a path")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value.strip()):  # Path made s3a://b/x s3a:/b/x: no bucket
        raise typer.BadParameter(
            f"{value} is a URI; this option takes a local path (only --data takes a URI, with engine "
            "spark): for hdfs://, s3a:// or abfs:// scores and outputs use the Python API (kamml.spark's "
            "score_spark and allocate_spark, docs/spark.md) or examples/spark/score_job.py"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding in the name: pyarrow failed with a traceback
        shown = os.fsencode(value).decode("utf-8", "backslashreplace")
        raise typer.BadParameter(f"{shown} is not UTF-8 text: rename it, or give another path") from None
    return Path(value).expanduser()


def data_option(value: str | Path) -> str:
    """``--data``'s text: a URI (``hdfs:///crm/kamml``) as written, for Spark to read; else a path option.

    A URI was refused with the other path options, so a user had to write it into data.path instead;
    whether the engine can read it is known once the config is loaded (`_data_source`).
    """
    from kamml.config import is_uri

    if isinstance(value, str) and is_uri(value.strip()):
        return value.strip()
    return str(path_option(value))


def model_option(value: str) -> str:
    """A model URI option's text; empty or blank is refused as a usage error, as an empty path is.

    ``--model "$MODEL"`` with MODEL unset failed late, as a missing model, with "no model at :" (exit 5).
    """
    if not value.strip():
        raise typer.BadParameter("is empty: give a model URI or folder")
    return value


#: ``--json -``: the JSON on stdout, alone (the command's text table then goes to stderr).
STDOUT = Path("-")


def json_option(value: str | Path) -> Path:
    """A ``--json`` path, where ``-`` is stdout (`STDOUT`) and ``./-`` a file of that name.

    ``--json -`` wrote a file named ``-`` in the working folder, and stdout held the text table. A path
    ending in a slash names a folder: ``--json out/`` wrote the JSON into a file named ``out``.
    """
    if value == "-":
        return STDOUT
    if isinstance(value, str) and value.rstrip().endswith(("/", os.sep)):
        raise typer.BadParameter(
            f"{value} ends in a slash, so names a folder: name a file, such as {value}metrics.json"
        )
    path = path_option(value)
    return Path.cwd() / path if path == STDOUT else path


def json_opt(text: str) -> Any:
    """The ``--json`` option of a command (`json_option`)."""
    return typer.Option("--json", parser=json_option, metavar="<path>", help=f"{text} ('-': stdout).")


def path_opt(*names: str, text: str) -> Any:
    """A `typer.Option` of a path: `path_option` refuses empty text, and the help reads ``<path>``."""
    return typer.Option(*names, parser=path_option, metavar="<path>", help=text)


ConfigOpt = Annotated[
    Path | None,
    path_opt(
        "--config",
        "-c",
        text="YAML config file (see docs/config.md), or the name of one kamml ships: default (the demo), "
        "cdnow, spark.",
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        parser=data_option,
        metavar="<path>",
        help="Folder of the input tables (transactions[, accounts, referrals, activities]), or the "
        "transactions table's own file (or a quoted glob of its parts); with engine spark also a folder "
        "URI (hdfs://, s3a://, file://) that Spark reads; default: data.path.",
    ),
]
PromoteOpt = Annotated[
    bool,
    typer.Option(
        "--promote",
        help="Make the new version the champion whatever the gate decides (the reason says what it would "
        "have done).",
        metavar=FLAG,
    ),
]


def _refuse_a_world_there(out: Path, force: bool) -> None:
    """Exit 3 when `out` holds another source of a world's table, or a world and no --force."""
    from kamml.data.readers import find_table_source
    from kamml.datasets import synthetic

    sources = [p for p in (find_table_source(out, name) for name in synthetic.TABLES) if p is not None]
    other = [p.name for p in sources if p.name not in {f"{n}.parquet" for n in synthetic.TABLES}]
    if other:  # not replaced by the Parquet files: the folder would hold two sources of a table
        _fail(f"{out} holds {', '.join(other)}: remove it, or give another --out", DataError.exit_code)
    held = [p.name for p in sources] + (["world.json"] if (out / "world.json").exists() else [])
    if held and not force:  # the default --out is the demo's data, which its champion learned on
        _fail(
            f"{out} already holds {', '.join(held)}: pass --force to replace them, or give another --out",
            DataError.exit_code,
        )


def _accounts(value: str | int) -> int:
    """`generate --accounts`: 1 to 2,000,000, the rule and words of ``data.generate.accounts``.

    10**15 was refused as "n_accounts (data.generate.accounts) ...", a name the command line does not have,
    and 2.5 or "many" as click's "Input should be a valid integer" with no range. 5000.0 is 5000, as there.
    """
    from kamml.config import accounts_problem

    number: object = value
    for kind in (int, float):  # "2.5" and "nan" are said as numbers, "many" as text
        try:
            number = kind(value)
            break
        except ValueError:
            continue
    problem = accounts_problem(number)
    if problem is not None:
        raise typer.BadParameter(problem)
    return int(number)  # type: ignore[call-overload]  # a whole number: `accounts_problem`


def _years(value: float) -> float:
    """`generate --years`: 0.1 to 100 ending by today (click's range named the upper bound for ``nan``).

    The rule and words of ``data.generate.years`` (`kamml.config.years_problem`).
    """
    from kamml.config import years_problem

    problem = years_problem(value)
    if problem is not None:
        raise typer.BadParameter(problem)
    from kamml.datasets import synthetic

    try:  # a world running past today was written, then refused by `kamml validate` and every job
        synthetic.check_ends_by_today(value, "--years")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--years: ")) from None
    return value


@app.command(cls=_Command)
@handle_errors
def generate(
    accounts: Annotated[
        int,
        typer.Option(
            "--accounts", "-n", parser=_accounts, metavar="<int>", help="Number of accounts, up to 2,000,000."
        ),
    ] = 5_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same world.")] = 42,
    out: Annotated[
        Path,
        path_opt("--out", "-o", text="Folder to write the Parquet tables into."),
    ] = Path("data/demo"),
    years: Annotated[
        float,
        typer.Option(
            callback=_years, help="Years of history from 2023-01-01, from 0.1 up to today.", metavar="FLOAT"
        ),
    ] = 3.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the tables of a world already in --out.", metavar=FLAG)
    ] = False,
) -> None:
    """Write a synthetic B2B world: its four tables, truth and effort as Parquet, and world.json."""
    from kamml.allocation.summary import accounts_text
    from kamml.config import world_size_problem
    from kamml.datasets import synthetic
    from kamml.io import check_output_dir
    from kamml.jobs.data import generate_lock

    size = world_size_problem(accounts, years)
    if size is not None:  # before the folder is made: the world's memory grows with both flags
        _fail(f"--accounts and --years: {size}", ConfigError.exit_code)
    check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create {out}: {exc.strerror or exc}", DataError.exit_code)
    # the jobs' lock (`kamml.jobs.data.ensure_generated`): two writers in one folder mixed their tables
    with generate_lock(out):
        _refuse_a_world_there(out, force)
        world = synthetic.generate(accounts, seed, years=years)
        # the transactions are the world's commit mark (written last): a replaced world loses its old
        # ones first, so a write stopped midway leaves no transactions beside the new tables
        (out / "transactions.parquet").unlink(missing_ok=True)
        paths = world.write(out)
    for name, path in paths.items():
        typer.echo(f"{name:<13} {path}")
    typer.echo(
        f"{accounts_text(accounts)}, {len(world.transactions):,} transactions, "
        f"{world.start.date()} .. {world.end.date()} (exclusive) -> {out}"
    )


@app.command(cls=_Command)
@handle_errors
def validate(
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check input tables against the data contract and print the data-quality summary."""
    from kamml.config import load_config
    from kamml.data import validate as validate_data
    from kamml.jobs.data import check_data_given, ensure_generated, job_source

    cfg, source = _data_source(load_config(config), data)
    if source is None:
        check_data_given(cfg)
        ensure_generated(cfg)
    report = validate_data(source if source is not None else job_source(cfg), cfg)
    typer.echo(report.to_text())


def _check_json_out(path: Path | None, inputs: dict[str, Path], data: Any = None) -> None:
    """Refuse a `--json` path before any work: not writable, an input file, or named as a table of `data`.

    ``--json DATA/referrals.csv`` was read as the data folder's referrals table by the next job.
    """
    from kamml.data.dataset import check_not_a_table_name
    from kamml.io import check_not_input, check_writable

    if path is not None and path != STDOUT:
        check_writable(path)
        check_not_input(path, inputs)
        check_not_a_table_name(path, data)


def _config_input(config: Path | None) -> dict[str, Path]:
    """The config file as one of the job's inputs, so no output replaces it."""
    return {} if config is None else {"config": Path(config)}


def _write_json(payload: dict[str, Any], path: Path | None) -> None:
    """Write a JSON result atomically when a path is given; `STDOUT` prints it."""
    if path is None:
        return
    from kamml.io import atomic_path, json_text

    if path == STDOUT:
        typer.echo(json_text(payload))
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(payload) + "\n", encoding="utf-8")
    typer.echo(f"wrote {path}")


@app.command(cls=_Command)
@handle_errors
def backtest(
    config: ConfigOpt = None,
    data: DataOpt = None,
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="Test cutoff (YYYY-MM-DD); default: time.cutoff, else the data end minus the horizon."
        ),
    ] = None,
    horizon_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Prediction horizon in days. Default: time.horizon_days (180 unless the config sets it).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        json_opt("Write the metrics as JSON here"),
    ] = None,
) -> None:
    """Temporal backtest of kamml's models beside the baselines on your data."""
    from kamml.config import load_config
    from kamml.data import input_paths
    from kamml.evaluation.backtest import backtest as run_backtest
    from kamml.jobs.data import job_data

    cut = _cutoff_option(cutoff)
    overrides: dict[str, Any] = {}
    if _horizon_option(horizon_days) is not None:
        overrides["time"] = {"horizon_days": horizon_days}
    cfg, given = _data_source(load_config(config, overrides), data)
    source = given if given is not None else cfg.data.path
    _check_json_out(json_out, {**input_paths(source, cfg), **_config_input(config)}, source)
    result = run_backtest(job_data(cfg, given), cfg, cut)
    typer.echo(result.to_text(), err=json_out == STDOUT)  # stdout holds the JSON alone
    _write_json(result.to_dict(), json_out)


@app.command(cls=_Command)
@handle_errors
def allocate(
    scores: Annotated[
        Path,
        path_opt("--scores", "-s", text="Scores table (.parquet or .csv)."),
    ],
    out: Annotated[
        Path,
        path_opt("--out", "-o", text="Allocation table to write (.parquet or .csv)."),
    ],
    hours: Annotated[
        float | None,
        typer.Option(
            help="The team's hours over the scores' horizon (default: allocation.hours, 2,000 unless the "
            "config sets it).",
        ),
    ] = None,
    config: ConfigOpt = None,
    curve: Annotated[
        Path | None,
        path_opt(text="Also write the budget curve here (.parquet/.csv, plus a .png)."),
    ] = None,
    horizon_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The horizon in days the scores predict over, for scores without a horizon_days column "
            "(an older kamml's); it must equal that column where there is one. Default: the column, else "
            "time.horizon_days set in --config, else 180 days with a warning.",
        ),
    ] = None,
) -> None:
    """Recommend sales hours per account from a scores table, under the team's capacity."""
    from kamml.allocation import allocate_file
    from kamml.allocation.allocate import check_distinct_paths
    from kamml.config import load_config
    from kamml.data import input_paths
    from kamml.data.dataset import check_not_a_table_name
    from kamml.io import check_not_input, check_output_path, check_writable
    from kamml.jobs.outputs import claim_outputs

    # before any work: --out equal to --curve or --scores overwrote one with the other, with exit 0
    check_distinct_paths({"--scores": scores, "--out": out, "--curve": curve}, outputs=2)
    _horizon_option(horizon_days)
    if hours is not None and not (math.isfinite(hours) and hours >= 0):  # nan read as "below 0"
        reason = f"a finite number of hours >= 0 is needed, got {hours:g}"
        _fail(f"Invalid value for '--hours': {reason} (see 'kamml allocate --help')", 2)
    cfg = load_config(config)
    # the config's data tables are never written over, nor named so the folder reads them next time
    inputs = input_paths(cfg.data.path, cfg)
    outputs = [out] if curve is None else [out, curve, curve.with_suffix(".png")]
    for written in outputs:
        check_not_input(written, inputs)
        check_not_a_table_name(written, cfg.data.path)
    on_spark = cfg.engine.name == "spark"
    if on_spark:
        _check_spark_output(out, "the allocation is")
    for target in (None if on_spark else out, curve):  # every output before any work
        if target is not None:
            check_output_path(target)
    if curve is not None:
        check_writable(curve.with_suffix(".png"))
    png = None if curve is None else curve.with_suffix(".png")
    with claim_outputs([out, curve, png]):
        # the chart is drawn and rendered before any table is written: a failure or a stop while it
        # rendered (most of the time the PNG takes) left both tables new beside the old chart
        drawn: list[bytes] = []

        def draw(table: object, curve_table: pd.DataFrame | None) -> dict[Path, bytes]:
            """The chart's PNG bytes by its path (none without --curve), drawn before anything is written."""
            if png is None or curve_table is None:
                return {}
            import pandas as pd

            from kamml.report.html import plan_horizon_days
            from kamml.report.plots import budget_curve_figure, figure_png

            # the plan's horizon names the hours' span on the chart: given, else the plan's own
            days = horizon_days
            if days is None and isinstance(table, pd.DataFrame):
                days = plan_horizon_days(table, {})
            figure = budget_curve_figure(curve_table, horizon_days=days)
            drawn.append(figure_png(figure, png))
            return {png: drawn[-1]}

        if on_spark:
            from kamml.allocation.allocate import DEFAULT_FRACTIONS
            from kamml.io import write_together
            from kamml.spark import allocate_spark

            fractions = None if curve is None else DEFAULT_FRACTIONS
            result = allocate_spark(
                str(scores),
                hours,
                cfg,
                out,
                horizon_days=horizon_days,
                curve=fractions,
                before_write=lambda table: draw(None, table),  # drawn before anything is written
            )
            if curve is not None and result.curve is not None:  # the curve and its chart together
                write_together({curve: result.curve}, {png: drawn[0]} if png is not None and drawn else None)
            summary, n_accounts = result.summary, int(result.summary.get("n_accounts", 0))
            where = f"{result.path} (Parquet parts, on Spark)"
        else:  # the allocation, the curve and its chart are renamed into place together
            table = allocate_file(
                scores, hours, out, cfg, curve_path=curve, horizon_days=horizon_days, before_write=draw
            )
            summary, n_accounts, where = table.attrs.get("allocation", {}), len(table), str(out)
    from kamml.allocation.summary import plan_line

    typer.echo(f"{plan_line(summary, n_accounts)} -> {where}")


def _check_spark_output(out: Path, what: str) -> None:
    """Refuse, before any work, a Spark output not named *.parquet or, when local, not writable.

    Spark writes a folder of Parquet parts; an unwritable place failed with a Java traceback after the job.
    """
    from kamml.io import check_output_dir

    if out.suffix.lower() != ".parquet":
        _fail(f"cannot write {out}: on Spark {what} a folder of Parquet parts (name it *.parquet)", 3)
    if "://" not in str(out):
        if out.exists() and not out.is_dir():  # a folder of parts is replaced whole; a file never was
            _fail(
                f"cannot write {out}: it is a file, and on Spark {what} a folder; "
                "remove it or write elsewhere",
                3,
            )
        check_output_dir(out.parent)


def _data_source(cfg: Config, data: str | None) -> tuple[Config, Path | None]:
    """The config and the job's source for ``--data``: a local path as given, a URI as ``data.path``.

    A URI is read as a config's ``data.path`` URI is (`kamml.jobs.data.job_source`: Spark lists and reads
    it), so the config gets it as its path and the job no source of its own; ``data.generate`` and
    ``data.builtin`` are dropped, as they write into a local data.path. Only engine spark reads a URI,
    and not beside a local ``data.<table>`` of the config: either is a ConfigError naming the flag.
    """
    from kamml.config import is_uri
    from kamml.data.contract import TABLES

    if data is None:
        return cfg, None
    if not is_uri(data):
        return cfg, Path(data)
    if cfg.engine.name != "spark":
        raise ConfigError(
            f"--data {data} is a URI, which only engine spark reads (through kamml.spark.remote_tables): "
            f"set engine: {{name: spark}} in the --config file (engine.name is '{cfg.engine.name}'), or "
            "give a local folder or file"
        )
    for name in TABLES:
        value = getattr(cfg.data, name)
        if value is not None and not is_uri(value):
            raise ConfigError(
                f"--data {data} is a URI, read by Spark, and the config's 'data.{name}' {value} a local "
                f"path: give data.{name} as a URI too (or remove it), or give --data a local folder"
            )
    section = cfg.data.model_copy(update={"path": data, "generate": None, "builtin": None})
    return cfg.model_copy(update={"data": section}), None


def _with_data(cfg: Any, data: Path | None) -> Any:
    """The config with ``data.path`` set to ``--data`` when given, so the run records where its data was."""
    if data is None:
        return cfg
    section = cfg.data.model_copy(update={"path": data.expanduser().resolve()})
    return cfg.model_copy(update={"data": section})


@app.command(cls=_Command)
@handle_errors
def train(
    config: ConfigOpt = None,
    data: DataOpt = None,
    promote: PromoteOpt = False,
) -> None:
    """Backtest, train and log one MLflow run; register the model and apply the champion gate."""
    from kamml.config import load_config
    from kamml.jobs.data import stamped_job_data
    from kamml.jobs.train import train as run_train

    cfg, source = _data_source(load_config(config), data)
    cfg = _with_data(cfg, source)
    dataset, unchanged = stamped_job_data(cfg, source)
    # the inputs as validated, checked before the model is registered (Parquet is read lazily)
    result = run_train(dataset, cfg, before_register=lambda bundle, features: unchanged(), promote=promote)
    typer.echo(result.backtest.to_text())
    typer.echo(f"run id     {result.run_id}")
    typer.echo(f"model URI  {result.model_uri}")
    p = result.promotion
    status = "champion" if p.promoted else "not promoted"
    typer.echo(f"registry   models:/{p.name}/{p.version} ({status}: {p.reason})")


@app.command(cls=_Command)
@handle_errors
def score(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            parser=model_option,
            metavar="<uri>",
            help="Model URI: models:/NAME@champion, models:/NAME/3, runs:/ID/model, or a local folder.",
        ),
    ],
    out: Annotated[
        Path,
        path_opt("--out", "-o", text="Scores table to write (.parquet or .csv)."),
    ],
    data: DataOpt = None,
    cutoff: Annotated[
        str | None, typer.Option(help="Scoring date (YYYY-MM-DD); default: time.cutoff, else the data end.")
    ] = None,
    config: ConfigOpt = None,
    explain_top: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Name drivers for this many accounts with the most value at stake (0: none; "
            f"default {_EXPLAIN_TOP:,}).",
        ),
    ] = None,
    explain_all: Annotated[
        bool, typer.Option("--explain-all", help="Name drivers for every account (slower).", metavar=FLAG)
    ] = False,
) -> None:
    """Score every account at the cutoff with a trained model (features rebuilt as the model needs)."""
    from kamml.config import load_config
    from kamml.data import input_paths
    from kamml.data.dataset import check_not_a_table_name
    from kamml.io import check_not_input, check_output_path
    from kamml.jobs.data import job_data
    from kamml.jobs.outputs import claim_outputs

    if explain_all and explain_top is not None:
        _fail(f"--explain-top {explain_top} and --explain-all ask for two things: give one", 2)
    top = None if explain_all else (_EXPLAIN_TOP if explain_top is None else explain_top)
    cut_option = _cutoff_option(cutoff)
    cfg, source = _data_source(load_config(config), data)
    given = source if source is not None else cfg.data.path
    inputs = input_paths(given, cfg)  # never written over
    spark = cfg.engine.name == "spark"
    if spark:
        _check_spark_output(out, "the scores are")
        check_not_input(out, inputs)
        check_not_a_table_name(out, given)
        from kamml.spark import score_spark  # it finds the model in cfg's tracking store itself
        from kamml.spark.score import scores_totals

        _locate_scoring_model(model, cfg)  # a mistyped version or run id before the data are read
        dataset = job_data(cfg, source)
        cut = _scoring_cutoff(cut_option, cfg, dataset)
        with claim_outputs([out]):  # the totals too: another job's scores may replace these once released
            folder = score_spark(model, dataset, cut, out, cfg, explain_top=top)
            count, clv, churn, uri = scores_totals(folder, cfg)
        typer.echo(
            f"{scored_text(count, cut, f'on Spark with {uri}', clv, churn)} -> {folder} (Parquet parts)"
        )
        return
    check_output_path(out, inputs)
    check_not_a_table_name(out, given)
    # a mistyped version, run id or folder is told before the data are read (it was told after them, or
    # not at all when they could not be read); the model (its artifacts, the bundle's parsing) then loads
    # in a thread while the engine validates the data: DuckDB works outside the GIL, and the two took 6 s
    # and 11 s one after the other
    _locate_scoring_model(model, cfg)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kamml-model") as pool:
        loading = pool.submit(_load_scoring_model, model, cfg)
        dataset = job_data(cfg, source)
        loaded = loading.result()
    from kamml.jobs.score import score_to_file  # imports MLflow: after the thread has

    cut = _scoring_cutoff(cut_option, cfg, dataset)
    with claim_outputs([out]):
        table = score_to_file(loaded, dataset, cut, out, cfg, explain_top=top)
    line = scored_text(
        len(table), cut, f"with {table['model_uri'].iat[0]}", table["clv"].sum(), table["p_churn"].mean()
    )
    typer.echo(f"{line} -> {out}")


def scored_text(count: int, cutoff: pd.Timestamp, how: str, clv_total: float, p_churn_mean: float) -> str:
    """`kamml score`'s line: accounts, cutoff, model, and the total clv as money reads (0.00042, not 0)."""
    from kamml.allocation.summary import accounts_text, amount

    return (
        f"{accounts_text(count)} scored at {cutoff.date()} {how}: total clv {amount(clv_total)}, "
        f"mean p_churn {p_churn_mean:.3f}"
    )


def _scoring_cutoff(option: pd.Timestamp | None, cfg: Any, dataset: Any) -> pd.Timestamp:
    """The scoring date: --cutoff, else time.cutoff, else the data end; checked (`check_scoring_cutoff`)."""
    from kamml.features._context import check_scoring_cutoff

    return check_scoring_cutoff(dataset, option or cfg.time.cutoff or dataset.end)


def _locate_scoring_model(uri: str, cfg: Any) -> None:
    """Check that `uri` names a model in the configured store, without loading it (`locate_model`)."""
    from kamml.tracking import locate_model

    locate_model(uri, cfg.tracking)


def _load_scoring_model(uri: str, cfg: Any) -> Any:
    """The model behind `uri`, looked up in the configured store (a `LoadedModel`)."""
    from kamml.tracking import resolve_model

    return resolve_model(uri, cfg.tracking)


@app.command(cls=_Command)
@handle_errors
def run(
    config: ConfigOpt = None,
    data: DataOpt = None,
    promote: PromoteOpt = False,
) -> None:
    """The main job: validate, train (MLflow run, registry), score, allocate, write the report."""
    from kamml.config import load_config
    from kamml.jobs.run import run as run_job
    from kamml.tracking import tracking_uri

    cfg, source = _data_source(load_config(config), data)
    cfg = _with_data(cfg, source)
    result = run_job(cfg, source, echo=typer.echo, promote=promote)
    typer.echo("")
    typer.echo(f"report       {result.outputs['report']}")
    csv = result.outputs.get("allocation_csv")
    typer.echo(f"allocation   {result.outputs['allocation']}" + (f" (and {csv.name})" if csv else ""))
    typer.echo(f"scores       {result.outputs['scores']}")
    typer.echo(_store_line(tracking_uri(cfg.tracking), result.training.run_id))


def _store_line(uri: str, run_id: str) -> str:
    """`kamml run`'s line naming the store and run, and how to browse it; a password in `uri` as ``***``.

    A scheduler keeps the job's output: a ``postgresql://user:password@host/db`` store was printed whole.
    """
    from kamml.tracking.store import without_password

    shown = without_password(uri)
    return f"MLflow       {shown} (run {run_id}); {_browse_hint(shown)}"


def _browse_hint(uri: str) -> str:
    """How to look at the runs of the store `uri`: its own address for a server, else ``mlflow ui``.

    ``mlflow ui --backend-store-uri http://...`` was the hint for a tracking server too, which it
    refuses (a server is browsed at its address; Databricks in its workspace).
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else uri.lower()
    if scheme in ("http", "https"):
        return f"browse it at {uri}"
    if scheme.startswith("databricks"):
        return "browse it in the Databricks workspace (Experiments)"
    # quoted for the shell: a store in a folder with a space ("My Work") was split into two arguments
    command = f"{shlex.quote(_mlflow_command())} ui --backend-store-uri {shlex.quote(uri)}"
    return f"browse with:\n             {command}"


def _mlflow_command() -> str:
    """``mlflow``, or the one beside this Python when it is not on PATH (``make demo``'s venv, not activated).

    The hint said ``mlflow ui``, which a shell without the venv on PATH does not find.
    """
    if shutil.which("mlflow"):
        return "mlflow"
    beside = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if beside is None:
        return "mlflow"
    try:
        return str(Path(beside).relative_to(Path.cwd()))
    except ValueError:
        return beside


benchmark_app = typer.Typer(cls=_Group, help="Benchmarks on public data.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("cdnow", cls=_Command)
@handle_errors
def benchmark_cdnow(
    calibration_end: Annotated[
        str,
        typer.Option(
            help="Last day of the calibration period (YYYY-MM-DD, after 1997-04-01, on or before 1998-06-02)."
        ),
    ] = "1997-09-30",
    holdout_end: Annotated[
        str,
        typer.Option(
            help="Last day of the holdout period (YYYY-MM-DD, at least 28 days after the calibration end, up "
            "to 1998-06-30)."
        ),
    ] = "1998-06-30",
    sample: Annotated[bool, typer.Option(help="Use the 2,357-customer sample.", metavar=FLAG)] = False,
    json_out: Annotated[
        Path | None,
        json_opt("Write the metrics as JSON here"),
    ] = None,
    config: Annotated[
        Path | None,
        path_opt(
            "--config",
            "-c",
            text="YAML config (or a packaged one's name: default, cdnow, spark) whose features, models and "
            "engine sections (and time.snapshots, time.step_days where set) the models train with; the data "
            "and the time window are the benchmark's, and the JSON's protocol names the file. Default: the "
            "benchmark's own settings.",
        ),
    ] = None,
) -> None:
    """Compare kamml with BG/NBD x Gamma-Gamma on CDNOW (classic split by default)."""
    from kamml.config import load_config
    from kamml.datasets.cdnow import packaged_paths
    from kamml.evaluation.benchmark import benchmark_cdnow as run
    from kamml.evaluation.benchmark import benchmark_config, warn_unused_window

    # read once (a config on a pipe, `--config <(envsubst < job.yaml)`, is empty the second time), and
    # before any work: a config that cannot be read fails first
    own = None if config is None else load_config(config)
    settings = benchmark_config(config, own=own)
    _check_json_out(json_out, {**packaged_paths(), **_config_input(config)})
    warn_unused_window(config, calibration_end, holdout_end, own=own)
    result = run(calibration_end, holdout_end, sample=sample, config=settings)
    if config is not None:  # the JSON of a run with other settings is not the published figures'
        result.protocol["config"] = str(config)
    typer.echo(result.to_text(), err=json_out == STDOUT)  # stdout holds the JSON alone
    _write_json(result.to_dict(), json_out)


def main() -> None:
    """Entry point of the `kamml` console script: run the command, then end the process at once.

    After the command, its exit handlers (logging's, MLflow's) and the flush of stdout and stderr, the
    process ends with `os._exit`: the interpreter's own teardown of a thousand modules and native pools
    took 1.5-2 s of a one-minute scoring job and writes nothing. When another thread still runs, or the
    exit carries a message rather than a code, Python exits as usual. SIGTERM ends the job as an exit
    with code 143, so its staged outputs and temporary files are removed on the way out.
    """
    code: Any
    _open_closed_streams()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        result = app(prog_name="kamml", standalone_mode=False)
    except typer.TyperException as exc:  # Typer's click: a bad option or command, or no arguments
        if type(exc).__name__ == "NoArgsIsHelpError":  # `kamml` or `kamml benchmark` alone: the help
            exc.show()  # type: ignore[attr-defined]
        else:  # one line, as every other failure
            typer.echo(f"kamml: error: {_usage_reason(exc)}", err=True)
        code = exc.exit_code
    except typer.Abort:
        typer.echo("kamml: aborted", err=True)
        code = 1
    except SystemExit as exc:
        code = exc.code
    else:
        code = result if isinstance(result, int) else 0  # an Exit's code, or a command's None
    if code is not None and not isinstance(code, int):
        sys.exit(code)
    _exit_now(code or 0)


def _open_closed_streams() -> None:
    """Open stdout and stderr on /dev/null where the process started with them closed (``>&-``, ``2>&-``).

    Python leaves them None: kamml's last flush, logging's isatty and MLflow's message on registering a
    model failed on that (exit 1, a trained model left unregistered), and the next file opened took the
    free descriptor, where a library's console output would have gone into it.
    """
    import os

    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_WRONLY)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            setattr(sys, name, open(fd, "w", encoding="utf-8", closefd=False))  # noqa: SIM115


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM (a scheduler stopping the job) as an exit, so files being written are cleaned up.

    Recorded first (`kamml.stopping`): an exception a native library made of the exit is that exit,
    and one Python dropped is raised again at the job's next safe point.
    """
    stopping.request(signum)
    raise SystemExit(128 + signum)


def _usage_reason(exc: typer.TyperException) -> str:
    """Click's message for a bad option or command, with where to read about the command."""
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and exc.exit_code == 2:  # a usage error (click's UsageError)
        message += f" (see '{ctx.command_path} --help')"
    return message


def _exit_now(code: int) -> None:
    """Run the atexit handlers, flush stdout and stderr, and end the process with `code`."""
    import atexit
    import contextlib
    import os
    import threading

    # idle executor workers (MLflow's artifact pool after `kamml run`) end now, as the interpreter's
    # own exit hook would, so that a finished job is not left in 2 s of teardown where a SIGTERM kills
    # it without a word (an audit: exit 143 after the outputs were published)
    pools = sys.modules.get("concurrent.futures.thread")
    end_pools = getattr(pools, "_python_exit", None)
    if end_pools is not None:
        end_pools()
    if threading.active_count() > 1:  # a thread the interpreter would wait for
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
