"""The training job: validate, backtest, train the deployable bundle, record it all in one MLflow run.

Two cutoffs are involved. The *scoring cutoff* is ``time.cutoff`` or else the data end: the deployed
bundle is trained on the snapshots whose label windows end by then, and scores accounts at it. The
*backtest cutoff* is the latest date before it whose whole horizon lies inside the data: the same recipe
is trained on snapshots before that date and judged on the accounts' real outcomes after it, beside the
baselines. When the two cutoffs coincide (a ``time.cutoff`` with a whole horizon of data after it, as in
CDNOW's classic split) one bundle serves both.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kamml import stopping
from kamml.config import Config, DataConfig
from kamml.data import Dataset
from kamml.data.contract import TABLES
from kamml.data.dataset import input_paths
from kamml.data.fingerprint import fingerprint
from kamml.errors import ConfigError
from kamml.evaluation.backtest import (
    BacktestResult,
    backtest,
    check_backtest_window,
    default_cutoff,
    snapshot_plan,
    train_bundle,
)
from kamml.features import build_features
from kamml.features._context import check_observed
from kamml.features.build import features_expr
from kamml.features.snapshots import SnapshotCache
from kamml.io import common_folder
from kamml.jobs.data import uri_sources
from kamml.models.bundle import (
    ModelBundle,
    check_model_settings,
    check_named_features,
    names_features,
    training_features,
)
from kamml.models.effort import EffortResponse, fit_effort_response_from_data
from kamml.text import counted
from kamml.tracking import Promotion, TrainingRun

__all__ = ["TrainResult", "check_promote_metric", "check_time_window", "cutoffs", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training job produced: the MLflow run and model, the backtest, the bundle, the decision."""

    run_id: str
    model_uri: str
    promotion: Promotion
    backtest: BacktestResult
    bundle: ModelBundle
    scoring_cutoff: pd.Timestamp
    features: pd.DataFrame = field(repr=False)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        p = self.promotion
        return (
            f"run {self.run_id}: model {self.model_uri}, registered as {p.name} version {p.version} "
            f"({'champion' if p.promoted else 'not promoted'}: {p.reason})"
        )


def cutoffs(data: Dataset, config: Config) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The (scoring, backtest) cutoffs of a job (module docstring); a time.cutoff past the data end fails."""
    end = pd.Timestamp(data.end).normalize()
    scoring = check_observed(data, config.time.cutoff) if config.time.cutoff else end
    latest = default_cutoff(data, config.time.horizon_days)
    return scoring, min(scoring, latest)


def check_time_window(data: Dataset, config: Config) -> None:
    """Refuse time settings the data's span cannot hold, before the tracking store is touched.

    The cutoffs, the backtest's label window and its training snapshots (`check_backtest_window`) need
    only the config and the data's dates; checked in the backtest, after the run was opened (~15 s),
    each such config error left a FAILED run in the experiment. The deployed model's snapshots are
    those of the later scoring cutoff, so they fit when these do.
    """
    _, test_cut = cutoffs(data, config)
    check_backtest_window(data, config, test_cut)


def referrals_lacking(data: Dataset) -> str | None:
    """How `data` lacks referrals ("no referrals table", "an empty referrals table"), or None: it has some.

    Without a referral row no referral value is labelled, so no referral metric is backtested and no
    influence model is trained (`kamml.models.bundle._referrals_to_learn`). That the rows give referral
    value in the training snapshots' label windows is known only from the labels, once they are built.
    """
    if "referrals" not in data.tables:
        return "no referrals table"
    if data.quality.tables["referrals"].rows == 0:  # a header-only export
        return "an empty referrals table"
    return None


def check_promote_metric(config: Config, data: Dataset) -> None:
    """Refuse a referral promotion metric on data without referrals (no table, no rows), before training.

    The backtest then has no referral metric, so no version after the first could ever be promoted: a
    scheduled job would keep registering versions and scoring with the first one, saying only "not
    promoted" each night.
    """
    metric = config.tracking.promote_metric
    if metric.split(".")[0] != "referral":
        return
    held = referrals_lacking(data)
    if held is None:
        return
    raise ConfigError(
        f"'tracking.promote_metric' names '{metric}', which needs the backtest's referral metrics, but "
        f"the data has {held}: choose a value or churn metric (e.g. value.gini), or add the referrals"
    )


def train(
    data: Dataset,
    config: Config,
    *,
    plots: bool = True,
    run_name: str | None = None,
    before_register: Callable[[ModelBundle, pd.DataFrame], None] | None = None,
    ends_job: bool = True,
    promote: bool = False,
) -> TrainResult:
    """Backtest, train the deployable bundle, log one MLflow run and register the model.

    The run starts before the backtest, with the config and the data's fingerprint, so a job stopped or
    failing while it trains leaves a run whose ``kamml.job.status`` says so (docs/tracking.md); settings
    refused from the config and the data's dates alone (`check_time_window`) leave none.

    Parameters
    ----------
    data : kamml.data.Dataset
        Validated tables.
    config : Config
        The whole job config (time, features, models, tracking).
    plots : bool, default True
        Log the backtest plots (gains, decile and churn calibration, feature importance) as PNGs.
    run_name : str, optional
        Name of the MLflow run.
    before_register : callable, optional
        Called with the deployable bundle and its features at the scoring cutoff before the model is
        logged or registered; an exception it raises stops the job there, its run tagged failed at
        the train stage (`kamml run` checks that the plan's floors fit).
    ends_job : bool, default True
        Whether training is the whole job: its run's ``kamml.job.status`` becomes ``complete`` when
        the run ends. `kamml run` passes False and tags the outcome after its later stages.
    promote : bool, default False
        Make the new version the champion whatever the gate decides (``--promote``); the decision's
        reason says what the gate would have done.
    """
    t0 = time.perf_counter()
    config = recorded_source(config, data)
    check_model_settings(config)  # before the backtest's features and models
    check_promote_metric(config, data)
    check_time_window(data, config)
    check_model_features(data, config)  # before the backtest's snapshots are built
    # the run opens before the minutes of training (the store reachable, the experiment usable): a job
    # stopped or failing while it trains leaves a run with its config and its outcome in the tags
    with TrainingRun(config, run_name=run_name, ends_job=ends_job) as run:
        run.log_config()
        run.log_data(fingerprint(data))
        run.log_quality(data.quality)
        result, bundle, scoring, features, effort = _fit(data, config, before_register)
        log.info("logging the run and the model to MLflow")
        run.log_backtest(result)
        run.log_effort(effort.to_dict())
        run.log_fitted(bundle)
        if plots:
            _log_plots(run, result)
        model_uri = run.log_model(bundle, features)
        stopping.check()  # a stop whose exit was lost: before a model is registered (`kamml.stopping`)
        decision = run.register(model_uri, bundle, features, force=promote)
        run.log_summary({"train.seconds": time.perf_counter() - t0, "train.rows": bundle.meta["rows"]})
    return TrainResult(
        run.run_id, model_uri, decision, result, bundle, scoring, features, time.perf_counter() - t0
    )


def check_model_features(data: Dataset, config: Config) -> None:
    """A ConfigError when a models section names features the training frame will not have, before any work.

    Read from the feature expression's schema at the scoring cutoff (no feature is computed): a
    snapshot's frame has its columns, strings as categories (`kamml.features.build`). Only when a
    section names features (`names_features`: monotone, offset or blend ones, or constraints); the fit
    checks them again. The influence model's only on data with referral rows (`referrals_lacking`):
    without, it is never trained. With rows that give no referral value before the latest training
    snapshot it is not trained either, but that is known only from the labels: its names are judged.
    """
    if not names_features(config):
        return
    schema = features_expr(data, cutoffs(data, config)[0], config).schema()
    unordered = [name for name, kind in schema.items() if not kind.is_floating()]
    features = training_features(list(schema.names))
    # the influence model is not trained on data without referral rows, so its settings are unused there
    check_named_features(config, features, unordered, influence=referrals_lacking(data) is None)


def recorded_source(config: Config, data: Dataset) -> Config:
    """`config` with ``data`` naming where `data` was read from, when the config names other tables.

    The run logs the config (and its MLflow dataset input) as the training data's source: tables read
    from another folder (``train(load_data(other), config)``) were recorded as the config's folder, and
    a rebuild from the logged config would silently train on other data (a data-science audit). The
    config is kept when it resolves to the very tables read (a folder, ``data.<table>`` paths, or
    both: a tracking audit's ``data.transactions`` outside ``data.path`` was recorded as the two's
    common folder, whose rebuild read no accounts, referrals or activities). Otherwise the record is
    the folder the tables were read from when it resolves to them, else each table's own path; tables
    given in memory record none. The CLI's ``--data`` sets the path itself. A config that names no
    data (the Python API's ``Config()``) records the tables read without a warning.
    """
    if data.remote and not data.inputs and data.remote == uri_sources(config):
        return config  # read through Spark from the URIs the config names (`kamml.jobs.data.job_source`)
    read = {name: _resolved(p) for name, p in data.inputs.items()}
    named = {name: _resolved(p) for name, p in input_paths(None, config).items()}
    names_none = config.data.path is None and all(getattr(config.data, t) is None for t in TABLES)
    if read == named and (read or names_none):  # tables in memory are not the config's empty folder
        return config
    folder = common_folder(read.values()) if read else None
    tables = dict.fromkeys(TABLES)
    if folder is None or {k: _resolved(p) for k, p in input_paths(folder, DataConfig()).items()} != read:
        tables.update({name: str(p) for name, p in read.items()})
        folder = None
    if names_none:  # `train(load_data(folder), Config())`, as the quickstart notebook does: nothing amiss
        log.info("the config names no data: the run records the tables read from %s", _where(read))
    else:
        log.warning(
            "the data was not read from the tables the config names (%s) but %s: the run records that "
            "instead",
            _where(named) or f"data.path {config.data.path}",
            _where(read) or "from tables in memory",
        )
    return config.model_copy(update={"data": config.data.model_copy(update={"path": folder, **tables})})


def _resolved(path: Path) -> Path:
    """A table's path made absolute, to compare where two configs read it from."""
    return Path(path).expanduser().resolve()


def _where(paths: dict[str, Path]) -> str:
    """Tables and their paths in a line: the folder when all share it, else each by name."""
    if not paths:
        return ""
    folders = {p.parent for p in paths.values()}
    if len(folders) == 1:
        return str(folders.pop())
    return ", ".join(f"{name} {p}" for name, p in sorted(paths.items()))


def _fit(
    data: Dataset, config: Config, before_register: Callable[[ModelBundle, pd.DataFrame], None] | None
) -> tuple[BacktestResult, ModelBundle, pd.Timestamp, pd.DataFrame, EffortResponse]:
    """The backtest, the deployable bundle with its effort response, its scoring cutoff and features there."""
    scoring, test_cut = cutoffs(data, config)
    log.info("backtest at %s, then the model for scoring at %s", test_cut.date(), scoring.date())
    # the backtest keeps the snapshots the deployed model's training shares with it (`SnapshotCache`)
    snapshots = SnapshotCache(config.models.max_training_accounts)
    if scoring != test_cut:
        snapshots.want(snapshot_plan(config, scoring))
    t0 = time.perf_counter()
    result = backtest(data, config, test_cut, snapshots=snapshots)
    snapshots.want(())
    if scoring != test_cut:  # the second training logs the backtest's lines again: say which one runs
        log.info(
            "backtest done in %.0f s: training the model for scoring at %s",
            time.perf_counter() - t0,
            scoring.date(),
        )
    # when the cutoffs coincide the backtest's bundle is the one to deploy, already anchored there
    if scoring == test_cut:
        bundle = result.bundle
    else:
        bundle = train_bundle(data, config, scoring, snapshots=snapshots)[0]
    if snapshots.reused:
        log.info("%s reused from the backtest", counted(snapshots.reused, "training snapshot"))
    snapshots.clear()  # one the deployed model did not take (none by the plan) is not held any longer
    features = build_features(data, scoring, bundle.scoring_config(config))
    if scoring != test_cut:
        bundle = bundle.anchor(features)
    if data.activities is not None:  # without the table, the fit's fallback says so itself
        log.info("fitting the effort response from the activities")
    effort = fit_effort_response_from_data(data, scoring, config)
    bundle.effort = effort
    if before_register is not None:
        before_register(bundle, features)
    return result, bundle, scoring, features, effort


def _log_plots(run: TrainingRun, result: BacktestResult) -> None:
    """The backtest's PNG plots under ``plots/`` in the run; one that cannot be drawn is left out, warned.

    Without `errors` the first chart that could not be drawn failed the training run after its models
    were trained (a report audit).
    """
    from kamml.report.plots import backtest_plots

    with tempfile.TemporaryDirectory(prefix="kamml-plots-") as tmp:
        drawn = backtest_plots(result, Path(tmp), errors={})
        run.log_artifacts(tmp, "plots")
    # where they stay: the temporary folder the plotting names at DEBUG is gone when the job ends
    log.info("logged %s to the run's artifacts (plots/)", counted(len(drawn), "backtest plot"))
