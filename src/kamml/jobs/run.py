"""The main job: validate, train (MLflow run and registry), score every account, allocate, report.

Scores and the plan come from the champion: the new version when the registry gate promoted it, else the
standing champion (said on the console), so a worse model never drives the allocation a CRM reads.

Each stage logs its progress and ends with a one-line summary; the warnings logged (and said on the
console) until the report is written are listed in it, for a scheduled job's reader who opens only the
report. Outputs land in ``output.dir``:
scores.parquet, allocation.parquet and allocation.csv (for a CRM import), budget_curve.csv and .png,
backtest.json and report.html, then manifest.json. They are written as one set (`kamml.jobs.outputs`):
the folder is locked for the whole job, every file is staged and moved into place only when all are
written, and the manifest (run, model, cutoff, each file's hash) is written last, so a killed job never
leaves half a file or a mix of two runs behind a manifest. The same files, the manifest included (sealed
in the staging folder), are logged on the training run before they are published, and publishing is the
job's last step: a job whose MLflow logging fails leaves the last published set in place, and one whose
publish fails marks its run failed at the stage ``publish``.

With ``engine: spark`` scoring and allocation run on Spark and nothing per account reaches the driver:
scores.parquet and allocation.parquet are folders of Parquet parts (renamed into place whole), there is
no allocation.csv, the report is drawn from the plan grouped by tier and owner plus the top accounts, and
the budget curve comes from the same distributed passes (every budget's team price searched at once).
Only the small outputs (report, curve, backtest, summary) are logged on the training run. An earlier
in-memory run's allocation.csv in the folder is removed, so no stale plan is left beside the new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kamml import stopping
from kamml.allocation import plan_and_curve
from kamml.allocation.allocate import (
    DEFAULT_FRACTIONS,
    check_capacity_reps,
    check_floors_fit,
    check_settings,
    owner_counts,
)
from kamml.allocation.stake import resolve_weights
from kamml.allocation.summary import accounts_text, amount, plan_line, rep_price_span
from kamml.config import Config
from kamml.data import Dataset, input_paths
from kamml.data.dataset import check_not_a_table_name
from kamml.engine import check_engine_installed
from kamml.errors import ConfigError, DataError, InfeasibleError, KammlError
from kamml.features import build_features
from kamml.features.build import rfm_only
from kamml.io import atomic_path, check_not_input, check_output_dir, check_writable, json_text, write_table
from kamml.jobs.data import check_data_given, stamped_job_data
from kamml.jobs.outputs import JOB_OUTPUTS, OutputSet
from kamml.jobs.score import account_owners, score
from kamml.jobs.train import TrainResult, check_time_window, cutoffs, train
from kamml.models.btyd_features import btyd_columns, fit_btyd, rfm_arrays
from kamml.models.bundle import ModelBundle, check_model_settings
from kamml.models.effort import EffortResponse, config_rule
from kamml.report.html import render_report
from kamml.report.plots import plot_budget_curve
from kamml.text import counted
from kamml.tracking import (
    CHAMPION,
    LoadedModel,
    TrainingRun,
    record_job_complete,
    record_job_failure,
    resolve_model,
)
from kamml.tracking.registry import version_backtest
from kamml.tracking.runs import JOB_OUTPUTS_TAG, PLAN_BY_RUN_TAG, PLAN_MODEL_TAG

__all__ = ["RunResult", "check_owners", "run", "skipped_parts"]

log = logging.getLogger(__name__)

STAGES = ("validate", "train", "score", "allocate", "report")
#: The job's last step, after the report stage (outputs logged): the failed stage a run is tagged with.
PUBLISH = "publish"


@dataclass
class RunResult:
    """What the main job produced: the training result, the tables, the files and the stage timings.

    On Spark the tables stay on the cluster: `scores` and `allocation` hold the top accounts only (by
    rank, as in the report), while `curve` is the whole budget curve, as in memory; the whole tables are
    the Parquet folders in `outputs`.
    """

    training: TrainResult
    scores: pd.DataFrame
    allocation: pd.DataFrame
    curve: pd.DataFrame
    outputs: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def skipped_parts(data: Dataset) -> list[str]:
    """What the job leaves out for lack of input tables or columns, in words."""
    tables = data.tables
    out = []
    if "referrals" not in tables:
        out.append("no referrals table: no influence model; referral value is 0 in every stake")
    if "activities" not in tables:
        out.append("no activities table: no effort features")
    accounts = tables.get("accounts")
    if accounts is None:
        out.append("no accounts table: no account attributes; no owners, so one team-wide budget")
    elif "owner" not in accounts.columns:
        out.append("no owner column in accounts: one team-wide budget, no per-rep capacity")
    return out


def check_owners(config: Config, data: Dataset) -> None:
    """Refuse ``allocation.capacity`` without owners in the data, or naming a rep who owns no account.

    Every account's rep must be known; a misspelt rep was refused only at the allocate stage, after
    the whole training.
    """
    capacity = config.allocation.capacity
    if capacity is None:
        return
    accounts = data.tables.get("accounts")
    if accounts is None or "owner" not in accounts.columns:
        where = "the data has no accounts table" if accounts is None else "the accounts have no owner column"
        raise ConfigError(
            f"'allocation.capacity' limits each rep's hours, but {where}: map the owner "
            "column (data.columns.accounts.owner) or remove allocation.capacity"
        )
    owners = accounts.select("owner").distinct().to_pandas()["owner"]
    check_capacity_reps(owner_counts(owners), capacity, "the accounts table's owner column")


def _figure(value: float) -> str:
    """A backtest figure for the stage line; "n/a" for a model without one (BTYD without Gamma-Gamma)."""
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


@contextmanager
def _stage(name: str, seconds: dict[str, float], echo: Callable[[str], None]) -> Iterator[None]:
    """Announce a stage, time it; a stop asked for by a signal whose exit was lost ends the job here."""
    stopping.check()
    i = STAGES.index(name) + 1
    echo(f"[{i}/{len(STAGES)}] {name} ...")
    t0 = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - t0
    stopping.check()


class _JobWarnings(logging.Handler):
    """The warnings of a job for its report, in the order said: logged (WARNING and above) or echoed.

    The records of the kamml loggers, and the console's ``warning:`` lines (`echoing`). A scheduled job's
    reader opens only report.html, which showed none of them: a run that warned read as clean. Attached
    to the ``kamml`` logger by `collecting`; levels and propagation are left as they are. Only records
    logged in the collecting context are taken (`_COLLECTING`): two jobs in one process (threads of a
    notebook, a job inside another's collection) each listed the other's warnings. A record from a thread
    with no job's context (a worker a pool started, whose context is empty) is the job's when it is the
    only one collecting (`_OPEN`); with two open, whose it is cannot be told.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        current = _COLLECTING.get()
        if current is not self and not (current is None and len(_OPEN) == 1 and _OPEN[0] is self):
            return  # another job's, or logged outside any job
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record whose arguments do not fit its format: logging's own complaint
            self.handleError(record)

    def echoing(self, echo: Callable[[str], None]) -> Callable[[str], None]:
        """`echo`, noting each ``warning: ...`` line it says (a warning said there is not logged).

        The job's log (`log.info`) is returned as it is: the job logs its warnings there as warnings.
        """
        if echo == log.info:  # `_registered` tells the log from a console by this
            return echo

        def said(line: str) -> None:
            text = line.strip()
            if text.startswith("warning:"):
                self.messages.append(text.removeprefix("warning:").strip())
            echo(line)

        return said

    @classmethod
    @contextmanager
    def collecting(cls) -> Iterator[_JobWarnings]:
        """Collect what the block logs in this context; the handler is removed however it ends.

        A context variable, not the thread: a nested collection takes its block's records alone (the
        outer one resumes after it), and a thread or task started with a copy of the context (asyncio,
        ``contextvars.copy_context().run``) logs to its starter's job.
        """
        handler = cls()
        logger = logging.getLogger("kamml")
        token = _COLLECTING.set(handler)
        _OPEN.append(handler)
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            _OPEN.remove(handler)
            _COLLECTING.reset(token)


#: The collection a job's warnings go to in the current context (`_JobWarnings.collecting`).
_COLLECTING: ContextVar[_JobWarnings | None] = ContextVar("kamml_job_warnings", default=None)
#: The collections open in this process, in the order opened (a record from no job's context goes to
#: the only one).
_OPEN: list[_JobWarnings] = []


def run(
    config: Config,
    source: Any = None,
    *,
    echo: Callable[[str], None] = log.info,
    promote: bool = False,
) -> RunResult:
    """Run the whole job of `config` (data from `source` or ``data.path``); see the module docstring.

    `promote` makes the new version the champion whatever the gate decides (`kamml.jobs.train.train`).
    The warnings logged (and said on the console) from here until the report is written are listed in it.
    """
    with _JobWarnings.collecting() as warnings:
        return _checked_run(config, source, warnings.echoing(echo), promote, warnings)


def _checked_run(
    config: Config,
    source: Any,
    echo: Callable[[str], None],
    promote: bool,
    warnings: _JobWarnings,
) -> RunResult:
    """`run`: the checks before any work, then the job in its locked output folder."""
    seconds: dict[str, float] = {}
    if source is None:  # a job that cannot start leaves no output folder behind
        check_data_given(config)
    check_engine_installed(config.engine)
    out_dir = check_output_dir(config.output.dir)
    if config.engine.name != "spark":  # a folder left by a Spark run where a file goes: before training
        for name in JOB_OUTPUTS:
            if (out_dir / name).is_dir():  # check_writable's "name a file inside it" cannot be followed
                raise DataError(
                    f"'output.dir' {out_dir} holds a folder {name} where this run writes a file (an "
                    "earlier Spark run's Parquet parts?): remove it, or give this run another output.dir"
                )
            check_writable(out_dir / name)
    inputs = input_paths(source if source is not None else config.data.path, config)
    for name in JOB_OUTPUTS:  # no output replaces an input table or lands inside its folder of parts,
        check_not_input(out_dir / name, inputs)  # nor becomes a table of the data folder next time
        check_not_a_table_name(out_dir / name, source if source is not None else config.data.path)
    check_settings(config)  # a plan bound to fail fails before training registers a model
    check_model_settings(config)
    with OutputSet(out_dir) as outputs:  # locked from here: a second job on the folder stops now
        return _run(config, source, outputs, seconds, echo, warnings, promote)


def _run(
    config: Config,
    source: Any,
    outputs: OutputSet,
    seconds: dict[str, float],
    echo: Callable[[str], None],
    warnings: _JobWarnings,
    promote: bool = False,
) -> RunResult:
    """The job's stages, with the output folder locked; outputs are staged, then published together."""
    with _stage("validate", seconds, echo):
        data, unchanged = stamped_job_data(config, source)
        outputs.checks.append(unchanged)
        check_owners(config, data)
        check_time_window(data, config)  # before the floors' features, and the training run
        _floors_before_training(config, data)
        skipped = skipped_parts(data)
        n_tx = data.tables["transactions"].count().to_pandas()
        echo(
            f"      {n_tx:,} transactions in {counted(len(data.tables), 'table')}, data end "
            f"{data.end.date()} (exclusive), {counted(len(data.quality.notes), 'data-quality note')}"
        )
        for note in skipped:
            echo(f"      skipped: {note}")
    training: TrainResult | None = None
    try:
        with _stage("train", seconds, echo):
            training = train(
                data,
                config,
                before_register=_before_register(config, data, unchanged),
                ends_job=False,
                promote=promote,
            )
            bt = training.backtest
            value, churn = bt.value, bt.churn
            echo(
                f"      backtest at {bt.protocol['cutoff']}: value Gini {_figure(value['kamml']['gini'])} "
                f"(BTYD {_figure(value['btyd']['gini'])}), churn AUC {_figure(churn['kamml']['roc_auc'])} "
                f"(BTYD {_figure(churn['btyd']['roc_auc'])})"
            )
            echo(f"      {training.summary()}")
        if config.engine.name == "spark":
            return _run_on_spark(config, data, training, outputs, seconds, skipped, echo, warnings)
        return _score_allocate_report(config, data, training, outputs, seconds, skipped, echo, warnings)
    except BaseException as exc:
        # the training run ended FINISHED, its job "running": a failure from there on (a console closed
        # while the train stage said its result, the end-of-stage stop check) must not leave it so
        if training is not None and outputs.published:  # the set is out: the job's result stands
            record_job_complete(config, training.run_id)
        elif training is not None:
            failed = next((name for name in STAGES if name not in seconds), PUBLISH)
            record_job_failure(config, training.run_id, failed, exc)
        raise


def _score_allocate_report(
    config: Config,
    data: Dataset,
    training: TrainResult,
    outputs: OutputSet,
    seconds: dict[str, float],
    skipped: list[str],
    echo: Callable[[str], None],
    warnings: _JobWarnings,
) -> RunResult:
    """The in-memory stages after training: score with the champion, allocate, write the output set."""
    out_dir = outputs.folder
    with _stage("score", seconds, echo):
        model, fresh = _registered(config, training, echo)
        # the training job's features fit the new version; the champion rebuilds its own
        features = training.features if fresh else None
        scores = score(model, data, training.scoring_cutoff, config, features=features)
        echo(
            f"      {accounts_text(len(scores))} at {training.scoring_cutoff.date()}: expected value "
            f"{amount(scores['clv'].sum())} over {model.bundle.horizon_days} days, mean p_churn "
            f"{scores['p_churn'].mean():.3f}"
        )
    with _stage("allocate", seconds, echo):
        hours = config.allocation.hours
        horizon = model.bundle.horizon_days  # the scoring model's: the champion may predict another
        allocation, curve = plan_and_curve(scores, hours, config, horizon_days=horizon)
        plan = {"n_accounts": len(allocation), **allocation.attrs.get("allocation", {})}
        echo(f"      {plan_line(plan)}")
    with _stage("report", seconds, echo):
        effort = _plan_effort(config, model.bundle.effort)
        staged = _write_outputs(
            outputs.staging,
            scores,
            allocation,
            curve,
            training,
            data,
            effort,
            horizon,
            _plan_backtest(config, training),
            _growth_weight(config),
            warnings=warnings.messages,  # live: read after the charts are drawn
        )
        model_uri = str(scores["model_uri"].iat[0]) if len(scores) else training.model_uri
        staged["manifest"] = outputs.seal(_facts(config, training, model_uri, plan, horizon))
        _log_outputs(config, training, outputs.folder, staged.values(), plan, model_uri, fresh)
    files = _published(config, training, outputs, staged)
    echo(f"      report {files['report']}")
    _done(seconds, out_dir, echo)
    return RunResult(training, scores, allocation, curve, files, seconds, skipped)


def _published(
    config: Config,
    training: TrainResult,
    outputs: OutputSet,
    staged: dict[str, Path],
    remove: Sequence[str] = (),
) -> dict[str, Path]:
    """Publish the staged set, logged on MLflow by then, then tag the run complete; the final paths.

    Last, so that a job whose logging failed (an artifact store full or gone, a stop) leaves the last
    published set in place: published first, its whole set was read by a CRM as the run's result while
    the run was marked failed. A publish that fails here marks the run failed at `PUBLISH` (`_run`);
    one killed outright leaves it ``running``, never ``complete`` without its outputs, and the next job
    marks it ``complete`` when the folder's manifest names it (`close_abandoned_runs`), else ``killed``.
    """
    published = outputs.publish(remove=remove)
    record_job_complete(config, training.run_id)
    return {key: published.get(path.name, outputs.folder / path.name) for key, path in staged.items()}


def _facts(
    config: Config, training: TrainResult, model_uri: str, plan: dict[str, Any], horizon_days: int
) -> dict[str, Any]:
    """What the manifest says about the output set: which run and model, at which cutoff, how many hours.

    `horizon_days` is the scoring model's horizon, which the scores and the plan are over.
    """
    return {
        "run_id": training.run_id,
        "model_uri": model_uri,
        "trained_version": training.promotion.version,
        "promoted": training.promotion.promoted,
        "cutoff": str(training.scoring_cutoff.date()),
        "horizon_days": horizon_days,
        "engine": config.engine.name,
        "hours": config.allocation.hours,
        "accounts": int(plan.get("n_accounts", 0)),
    }


def _before_register(
    config: Config, data: Dataset, unchanged: Callable[[], None]
) -> Callable[[ModelBundle, pd.DataFrame], None]:
    """The check before the new model is registered: the inputs as validated, and the floors fit."""
    floors = _floors_fit(config, data)

    def check(bundle: ModelBundle, features: pd.DataFrame) -> None:
        unchanged()
        floors(bundle, features)

    return check


def _floors_fit(config: Config, data: Dataset) -> Callable[[ModelBundle, pd.DataFrame], None]:
    """The check `train` runs before registering: the plan's floors fit the team's and each rep's hours.

    Which accounts are active (and get a floor) needs the new model's P(alive) and p_churn
    (`kamml.allocation.allocate.active_accounts`), so this could only fail at the allocate stage, after
    a new version was registered and maybe promoted. The models run without their drivers.
    """

    def check(bundle: ModelBundle, features: pd.DataFrame) -> None:
        if config.allocation.floor_hours <= 0:
            return
        scores = bundle.score_columns(features, top_drivers=0)
        _check_floors(config, data, features.index, scores["p_alive"], scores["p_churn"])

    return check


#: BG/NBD's chance of a purchase in the horizon from which an account counts as surely active before the
#: churn model exists (`_floors_before_training`): far above ``allocation.active_p_purchase``'s default.
SURE_PURCHASE = 0.5


def _floors_before_training(config: Config, data: Dataset) -> None:
    """The floors checked before any training, on BG/NBD fitted at the scoring cutoff as the anchor fits it.

    The check before registering came after the backtest and the training (473 s on a 50,000-account
    book for a plan whose floors needed five times the team's hours). The rfm features at the scoring
    cutoff and one BG/NBD fit give the same P(alive) in seconds. Data BG/NBD cannot fit are left to the
    training, which names the problem. The churn model, not trained yet, can only take accounts out of
    the active ones (``allocation.active_p_purchase``): with that rule on, floors that do not fit here
    are a warning, and the check before registering decides, unless they do not fit even the accounts
    BG/NBD gives at least an even chance of a purchase in the horizon (`SURE_PURCHASE`), which the
    churn model is unlikely to call inactive: those fail here (the forty-second session's rule had
    every such plan train first).
    """
    if config.allocation.floor_hours <= 0:
        return
    scoring, _ = cutoffs(data, config)
    features = build_features(data, scoring, rfm_only(config))
    try:
        fit = fit_btyd(features)
    except KammlError:
        return
    btyd = btyd_columns(*rfm_arrays(features), config.time.horizon_days / config.time.unit_days, fit)
    p_alive = btyd["btyd_p_alive"]  # P(alive) has no horizon
    try:
        _check_floors(config, data, features.index, p_alive, 0.0)
    except InfeasibleError as exc:
        if config.allocation.active_p_purchase <= 0:
            raise
        # as p_churn: 0 for the surely active, 1 (inactive) for the others and for accounts without a history
        sure = np.where(btyd["btyd_p_zero"] <= 1 - SURE_PURCHASE, 0.0, 1.0)
        try:
            _check_floors(config, data, features.index, p_alive, sure)
        except InfeasibleError as short:
            raise InfeasibleError(
                f"{short}. Counted before training with only the accounts BG/NBD gives at least a "
                f"{SURE_PURCHASE:.0%} chance of a purchase in the horizon as active (the churn model, not "
                "trained yet, is unlikely to call them inactive)"
            ) from None
        log.warning(
            "%s. Counted before training by P(alive) alone: the churn model's chance of a purchase "
            "(allocation.active_p_purchase) may take accounts out, checked before the model is registered",
            exc,
        )


def _check_floors(config: Config, data: Dataset, accounts: pd.Index, p_alive: Any, p_churn: Any) -> None:
    """`check_floors_fit` for these accounts with this P(alive) and p_churn and their owners."""
    # stakes and effort scales play no part in whether the floors fit: neutral ones, given, so that
    # no effort rule is looked for (its log lines read as if the fitted response were missing)
    scores = pd.DataFrame(
        {
            "account_id": accounts.to_numpy(),
            "clv": 1.0,
            "p_churn": p_churn,
            "p_alive": p_alive,
            "effort_scale": 1.0,
            "effort_uplift": 0.0,
        }
    )
    owners = account_owners(data, accounts)
    if owners is not None:
        scores["owner"] = owners.to_numpy()
    check_floors_fit(scores, None, config)


def _registered(
    config: Config, training: TrainResult, echo: Callable[[str], None]
) -> tuple[LoadedModel, bool]:
    """The model the plan comes from, loaded as the CRM sees it, and whether it is the one just trained.

    The champion: the new version when the gate promoted it, else the standing champion (a worse model
    must not drive the allocation the CRM reads); the choice is said once, on the console or in the log.
    """
    p = training.promotion
    if p.promoted:  # looked up in the config's store: training left MLflow's URIs as they were
        return resolve_model(f"models:/{p.name}/{p.version}", config.tracking), True
    champion = resolve_model(f"models:/{p.name}@{CHAMPION}", config.tracking)
    message = (
        f"version {p.version} was not promoted ({p.reason}): scoring with the champion, {champion.resolved}"
    )
    if echo == log.info:  # the job's own log: one line, as a warning
        log.warning(message)
    else:  # a console: said once there (logging it as well printed it twice)
        echo(f"      warning: {message}")
    return champion, False


def _plan_backtest(config: Config, training: TrainResult) -> dict[str, Any] | None:
    """The standing champion's backtest when this run's version was not promoted (it scores the plan)."""
    p = training.promotion
    if p.promoted or p.champion_version is None:
        return None
    return version_backtest(p.name, p.champion_version, config.tracking)


def _log_outputs(
    config: Config,
    training: TrainResult,
    folder: Path,
    paths: Iterable[Path],
    plan: dict[str, Any],
    model_uri: str,
    own: bool,
) -> None:
    """The plan's figures, and the output files unless ``tracking.log_outputs`` is off, on the run.

    Tagged with the model that scored the plan (`PLAN_MODEL_TAG`) and whether it is this run's own
    (`own`, as `_registered` says): the champion is another run's model when this run's version was not
    promoted; its figures read as this model's otherwise. The job reads ``running`` until it publishes;
    the folder it publishes into (`JOB_OUTPUTS_TAG`) tells a later job whether it got that far.
    """
    with TrainingRun(config, run_id=training.run_id) as tracked:
        tracked.set_tags(
            {
                PLAN_MODEL_TAG: model_uri,
                PLAN_BY_RUN_TAG: str(own).lower(),
                JOB_OUTPUTS_TAG: str(folder.resolve()),
            }
        )
        for path in paths if config.tracking.log_outputs else ():
            tracked.log_artifact(path, "outputs")
        tracked.log_summary(
            {
                "allocation.accounts": float(plan.get("n_accounts", 0.0)),
                "allocation.hours_used": float(plan.get("hours_used", 0.0)),
                "allocation.expected_gain": float(plan.get("total_expected_gain", 0.0)),
                "allocation.team_price": float(plan.get("team_price", float("nan"))),
                **_rep_prices(plan),
            }
        )


def _rep_prices(plan: dict[str, Any]) -> dict[str, float]:
    """The span of the prices of the reps at capacity, when they bind and the team's price is 0."""
    span = rep_price_span(plan)
    return {} if span is None else {"allocation.rep_price_min": span[0], "allocation.rep_price_max": span[1]}


def _done(seconds: dict[str, float], out_dir: Path, echo: Callable[[str], None]) -> None:
    echo(
        "done in "
        + ", ".join(f"{name} {secs:.0f} s" for name, secs in seconds.items())
        + f": outputs in {out_dir}"
    )


def _run_on_spark(
    config: Config,
    data: Dataset,
    training: TrainResult,
    outputs: OutputSet,
    seconds: dict[str, float],
    skipped: list[str],
    echo: Callable[[str], None],
    warnings: _JobWarnings,
) -> RunResult:
    """Score and allocate on Spark into Parquet folders; report from the plan grouped on Spark."""
    from kamml.spark import allocate_spark, plan_by_tier_and_owner, score_spark, top_rows

    out_dir = outputs.folder
    cutoff = training.scoring_cutoff
    with _stage("score", seconds, echo):
        model, fresh = _registered(config, training, echo)
        scores_dir = score_spark(model, data, cutoff, outputs.stage("scores.parquet"), config)
        echo(f"      every account scored at {cutoff.date()} on Spark (Parquet parts)")
    with _stage("allocate", seconds, echo):
        hours = config.allocation.hours
        result = allocate_spark(
            scores_dir,
            hours,
            config,
            outputs.stage("allocation.parquet"),
            horizon_days=model.bundle.horizon_days,  # the scores' horizon, for the fixed effort rule
            curve=DEFAULT_FRACTIONS,
        )
        plan = dict(result.summary)
        curve = result.curve
        assert curve is not None
        echo(f"      {plan_line(plan)}")
    with _stage("report", seconds, echo):
        top = top_rows(result.path, 25)
        top.attrs["allocation"] = plan
        grouped = plan_by_tier_and_owner(result.path)
        grouped.attrs["allocation"] = plan
        staged = {
            "budget_curve": write_table(curve, outputs.staging / "budget_curve.csv"),
            "budget_curve_png": plot_budget_curve(
                curve, outputs.staging / "budget_curve.png", horizon_days=model.bundle.horizon_days
            ),
        }
        staged |= _write_backtest_and_report(
            outputs.staging,
            grouped,
            curve,
            training,
            data,
            model_uri=model.resolved,
            horizon_days=model.bundle.horizon_days,
            effort=_plan_effort(config, model.bundle.effort),
            top_accounts=top,
            plan_backtest=_plan_backtest(config, training),
            growth=_growth_weight(config),
            warnings=warnings.messages,  # live: read after the charts are drawn
        )
        scores = top_rows(scores_dir, 25, by="clv")
        facts = _facts(config, training, model.resolved, plan, model.bundle.horizon_days)
        staged["manifest"] = outputs.seal(facts)
        _log_outputs(config, training, outputs.folder, staged.values(), plan, model.resolved, fresh)
    parts = {"scores": outputs.stage("scores.parquet"), "allocation": outputs.stage("allocation.parquet")}
    # an earlier in-memory run's CSV plan must not sit beside the new manifest: removed as it publishes
    files = _published(config, training, outputs, {**parts, **staged}, remove=_NOT_ON_SPARK)
    echo(f"      scores and allocation -> {files['scores']}, {files['allocation']} (Parquet parts)")
    echo(f"      report {files['report']}")
    _done(seconds, out_dir, echo)
    return RunResult(training, scores, top, curve, files, seconds, skipped)


#: In-memory outputs a Spark run does not write: removed, so no earlier plan is left beside the new one.
_NOT_ON_SPARK = ("allocation.csv",)


def _growth_weight(config: Config) -> float | str:
    """The plan's growth weight as configured: a number, or ``"auto"`` (the fitted uplift, else 0.3)."""
    return resolve_weights(config.allocation.weights)["growth"]


def _plan_effort(config: Config, scored: EffortResponse | None) -> EffortResponse | None:
    """The effort response the plan used: the config's fixed rule or the scoring model's.

    A number in ``allocation.effort_scale`` makes the allocation ignore the scores' effort scales.
    """
    configured = config_rule(config.allocation)
    return scored if configured is None else configured


def _write_outputs(
    folder: Path,
    scores: pd.DataFrame,
    allocation: pd.DataFrame,
    curve: pd.DataFrame,
    training: TrainResult,
    data: Dataset,
    effort: EffortResponse | None,
    horizon_days: int,
    plan_backtest: dict[str, Any] | None = None,
    growth: float | str | None = None,
    *,
    warnings: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Every output file, each written atomically into `folder` (the staging folder); name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "scores": write_table(scores, folder / "scores.parquet"),
        "allocation": write_table(allocation, folder / "allocation.parquet"),
        "allocation_csv": write_table(allocation, folder / "allocation.csv"),
        "budget_curve": write_table(curve, folder / "budget_curve.csv"),
        "budget_curve_png": plot_budget_curve(curve, folder / "budget_curve.png", horizon_days=horizon_days),
    }
    model_uri = str(scores["model_uri"].iat[0]) if len(scores) else training.model_uri
    return {
        **out,
        **_write_backtest_and_report(
            folder,
            allocation,
            curve,
            training,
            data,
            model_uri=model_uri,
            horizon_days=horizon_days,
            effort=effort,
            plan_backtest=plan_backtest,
            growth=growth,
            warnings=warnings,
        ),
    }


def _write_backtest_and_report(
    folder: Path,
    allocation: pd.DataFrame,
    curve: pd.DataFrame | None,
    training: TrainResult,
    data: Dataset,
    *,
    model_uri: str,
    horizon_days: int,
    effort: EffortResponse | None = None,
    top_accounts: pd.DataFrame | None = None,
    plan_backtest: dict[str, Any] | None = None,
    growth: float | str | None = None,
    warnings: Sequence[str] | None = None,
) -> dict[str, Path]:
    """backtest.json and report.html, written atomically; `effort`, `horizon_days`: the scoring model's.

    `plan_backtest`: the champion's own backtest when this run's version was not promoted (shown first);
    `warnings`: what the job warned of, listed in the report; the job's own list, still filling, so that
    what the charts warn of while drawn is in it (`render_report` reads it last).
    """
    folder.mkdir(parents=True, exist_ok=True)
    backtest_json = folder / "backtest.json"
    with atomic_path(backtest_json) as tmp:
        tmp.write_text(json_text(training.backtest.to_dict()) + "\n", encoding="utf-8")
    summary: dict[str, Any] = {
        "cutoff": str(training.scoring_cutoff.date()),
        "horizon_days": horizon_days,
        "model_uri": model_uri,
        "run_id": training.run_id,
        "effort_response": None if effort is None else effort.describe(growth),
    }
    p = training.promotion
    note = None
    if not p.promoted:  # the plan is the champion's; this run and its backtest are the rejected version's
        summary["model_uri"] = f"{model_uri} (the champion)"
        summary["run_id"] = (
            f"{training.run_id}: trained version {p.version}, not promoted ({p.reason}); the backtest "
            "below is that version's"
        )
        where = (
            "its own backtest comes first below, then this run's"
            if plan_backtest
            else "its own backtest is in its training run's backtest.json"
        )
        note = (
            f"Version {p.version}, trained by this run, was not promoted ({p.reason}), so the plan above "
            f"was scored by the champion, {model_uri}: {where}."
        )
    report = render_report(
        folder / "report.html",
        allocation=allocation,
        backtest=training.backtest,
        budget_curve=curve,
        quality=data.quality,
        summary=summary,
        top_accounts=top_accounts,
        backtest_note=note,
        plan_backtest=plan_backtest,
        warnings=warnings,
    )
    return {"backtest": backtest_json, "report": report}
