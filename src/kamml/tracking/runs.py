"""One MLflow run per training job: config, data fingerprint, versions, backtest metrics, plots, model.

`TrainingRun` is the only door from kamml's jobs into MLflow's run API; the jobs call its methods and
never import mlflow themselves.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import platform
import posixpath
import re
import shlex
import signal
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException

from kamml.config import FEATURE_GROUPS, Config, FeaturesConfig, is_uri
from kamml.errors import ModelError, TrackingStoreError
from kamml.features.catalogue import describe
from kamml.io import common_folder, json_text, process_exists, read_manifest
from kamml.models.bundle import ModelBundle
from kamml.text import counted
from kamml.tracking.model import load_model, log_bundle
from kamml.tracking.registry import (
    EFFORT_PARAMS,
    NON_FINITE_PARAM,
    Promotion,
    metric_key,
    promote,
    register,
)
from kamml.tracking.source import source_revision
from kamml.tracking.store import (
    config_store_error,
    experiment_id,
    new_artifact_root,
    restore_variables,
    server_unreachable,
    store_lock,
    tracking_scope,
    tracking_source,
    tracking_uri,
    without_password,
)

__all__ = [
    "JOB_OUTPUTS_TAG",
    "JOB_STATUS_TAG",
    "TrainingRun",
    "backtest_metrics",
    "flatten",
    "record_job_complete",
    "record_job_failure",
]

log = logging.getLogger(__name__)

VERSIONED = (
    "kamml",
    "lightgbm",
    "scikit-learn",
    "scipy",  # BG/NBD and Gamma-Gamma fits: btyd features and the levels
    "numba",  # the drivers' leaf tables
    "mlflow",
    "ibis-framework",
    "sqlglot",  # Ibis's SQL compiler
    "duckdb",
    "pyarrow",
    "pandas",
    "numpy",
)


#: Tags naming the machine and process of a run, so a later job can tell a killed run from a live one.
HOST_TAG = "kamml.host"
PID_TAG = "kamml.pid"
#: The process's start (Linux: clock ticks after boot) and PID namespace, where the system tells them: a
#: reused process id, or the same id in another container of the same host name, is not the run's process.
PID_START_TAG = "kamml.pid_start"
PID_NAMESPACE_TAG = "kamml.pid_namespace"


def process_identity(pid: int | None = None) -> dict[str, str]:
    """The tags naming a process beyond its id (`PID_START_TAG`, `PID_NAMESPACE_TAG`); {} where unknown."""
    pid = os.getpid() if pid is None else pid
    found: dict[str, str] = {}
    start = _start_ticks(pid)
    if start is not None:
        found[PID_START_TAG] = start
    with contextlib.suppress(OSError):
        found[PID_NAMESPACE_TAG] = os.readlink("/proc/self/ns/pid")
    return found


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (the start time), or None without /proc or such a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


#: Tags of a job's outcome on its training run ("running", "complete", "failed", "stopped" or "killed"),
#: the stage that failed and the error.
JOB_STATUS_TAG = "kamml.job.status"
JOB_STAGE_TAG = "kamml.job.failed_stage"
JOB_ERROR_TAG = "kamml.job.error"
#: On a `kamml run` job's run: the folder it publishes its output set into (absolute), tagged before it
#: publishes, so that a job killed between publishing and its ``complete`` tag is told from one killed
#: before (`close_abandoned_runs` reads the folder's manifest).
JOB_OUTPUTS_TAG = "kamml.job.outputs"
#: On a `kamml run` job's run: the model that scored its plan (the champion, as models:/name/version),
#: and whether that is this run's own model ("false" when its version was not promoted, so the
#: ``allocation.*`` metrics and outputs logged there are another model's plan).
PLAN_MODEL_TAG = "kamml.plan.model_uri"
PLAN_BY_RUN_TAG = "kamml.plan.by_this_run"
#: On a run started inside the caller's active run of another store (not nested): that run and its store.
CALLER_RUN_TAG = "kamml.caller.run_id"
CALLER_STORE_TAG = "kamml.caller.tracking_uri"
#: Why the logged ``tracking.artifact_location`` (the root the run's artifacts are under) is not the config's.
ARTIFACT_LOCATION_FROM_TAG = "kamml.tracking.artifact_location_from"


def close_abandoned_runs(experiment: str) -> list[str]:
    """Mark KILLED the experiment's unfinished runs started on this machine by a process that has gone.

    A job killed outright (SIGKILL, the OOM killer, a lost machine) cannot end its run: one killed while
    training stayed RUNNING in MLflow forever, and one killed after training (scoring, allocating)
    stayed FINISHED with the job's status "running". Only runs whose host tag is this machine's name and
    whose process id is no longer alive are closed (job status "killed"); a run of a live process, or of
    another machine, is left alone. A job's run whose output folder (`JOB_OUTPUTS_TAG`) holds a set whose
    manifest names it died after publishing, before its own ``complete`` tag: it is tagged ``complete``.
    """
    host = socket.gethostname()
    closed: list[str] = []
    where = f"tags.`{HOST_TAG}` = '{host}'"
    found: dict[str, Any] = {}
    try:
        for state in ("attributes.status = 'RUNNING'", f"tags.`{JOB_STATUS_TAG}` = 'running'"):
            for run in mlflow.search_runs([experiment], f"{state} and {where}", output_format="list"):
                found[run.info.run_id] = run
    except MlflowException as exc:  # a tidy-up: never the reason a training run fails
        log.warning("could not look for MLflow runs left unfinished by killed jobs: %s", exc.message)
        return closed
    client = mlflow.MlflowClient()
    our_namespace = process_identity().get(PID_NAMESPACE_TAG)
    for run_id, run in found.items():
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        namespace = tags.get(PID_NAMESPACE_TAG)
        if None not in (namespace, our_namespace) and namespace != our_namespace:
            continue  # a process of another container on a host of this name: its ids are not ours
        if process_exists(int(pid)) and tags.get(PID_START_TAG) in (None, _start_ticks(int(pid))):
            continue
        if run.info.status != "RUNNING" and _published_by(run_id, tags.get(JOB_OUTPUTS_TAG)):
            _mark_published(client, run_id, pid, tags[JOB_OUTPUTS_TAG])
            continue
        try:
            if tags.get(JOB_STATUS_TAG) == "running":
                client.set_tag(run_id, JOB_STATUS_TAG, "killed")
            client.set_terminated(run_id, status="KILLED")
        except MlflowException as exc:
            log.warning("could not mark MLflow run %s KILLED: %s", run_id, exc.message)
            continue
        closed.append(run_id)
        log.warning(
            "MLflow run %s was left %s by process %s, which has gone: marked KILLED",
            run_id,
            "RUNNING" if run.info.status == "RUNNING" else "unfinished (its job was still running)",
            pid,
        )
    return closed


def _published_by(run_id: str, folder: str | None) -> bool:
    """Whether `folder` (a run's `JOB_OUTPUTS_TAG`) holds a published set whose manifest names `run_id`."""
    if not folder:
        return False
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:  # unreadable or not JSON: no set vouches for the run
        log.warning("could not read the output manifest in %s: %s", folder, exc)
        return False
    return manifest is not None and manifest.get("run_id") == run_id


def _mark_published(client: mlflow.MlflowClient, run_id: str, pid: str, folder: str) -> None:
    """Tag ``complete`` a job's run whose process died after it published its set (before its own tag)."""
    try:
        client.set_tag(run_id, JOB_STATUS_TAG, "complete")
    except MlflowException as exc:
        log.warning("could not mark MLflow run %s complete: %s", run_id, exc.message)
        return
    log.warning(
        "MLflow run %s was left unfinished by process %s, which has gone after publishing its outputs "
        "in %s (their manifest names the run): marked complete",
        run_id,
        pid,
        folder,
    )


def job_error_text(error: BaseException) -> str:
    """The ``kamml.job.error`` tag's words: the error's message, or which signal or key stopped the job.

    A job stopped by SIGTERM exits with ``SystemExit(143)``, whose text alone tagged the run "143".
    """
    if isinstance(error, KeyboardInterrupt):
        return "stopped by Ctrl-C (KeyboardInterrupt)"
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code > 128:
        try:
            name = signal.Signals(error.code - 128).name
        except ValueError:
            name = f"signal {error.code - 128}"
        return f"stopped by {name} (exit {error.code})"
    return str(error) or type(error).__name__


def record_job_failure(config: Config, run_id: str, stage: str, error: BaseException) -> None:
    """Mark the training run of a job that failed after training: FAILED (KILLED when stopped), and why.

    The training run has ended FINISHED by then, so without this a job that failed while scoring,
    allocating or reporting would read as a success in MLflow. A run that cannot be marked (the
    store is what failed) is left as it is, with a warning: the job's own error is what matters.
    """
    stopped = isinstance(error, (KeyboardInterrupt, SystemExit))
    reason = job_error_text(error)
    if isinstance(error, TrackingStoreError):
        log.warning("MLflow run %s not marked failed: the tracking store is what failed", run_id)
        return
    try:
        with tracking_scope(config.tracking):
            client = mlflow.MlflowClient()
            client.set_tag(run_id, JOB_STATUS_TAG, "stopped" if stopped else "failed")
            client.set_tag(run_id, JOB_STAGE_TAG, stage)
            client.set_tag(run_id, JOB_ERROR_TAG, reason[:5000])
            client.set_terminated(run_id, status="KILLED" if stopped else "FAILED")
    except Exception as exc:  # never hide the job's own error behind this one
        log.warning("could not mark MLflow run %s as failed at %s: %s", run_id, stage, exc)


def record_job_complete(config: Config, run_id: str) -> None:
    """Tag the training run of a job whose outputs are published: the whole job is ``complete``.

    Tagged only once the set is published (`kamml.jobs.run`): tagged while logging, a job killed
    outright as it published left a run saying ``complete`` whose outputs never appeared. A run that
    cannot be tagged (the store has gone) keeps ``running``, with a warning: its outputs are out.
    """
    try:
        with tracking_scope(config.tracking):
            mlflow.MlflowClient().set_tag(run_id, JOB_STATUS_TAG, "complete")
    except Exception as exc:  # the published set is the job's result; never fail it here
        log.warning("outputs published, but MLflow run %s could not be tagged complete: %s", run_id, exc)


#: What MLflow takes as a param key (`mlflow.utils.validation`): letters, digits, _ - . : / and spaces,
#: at most 250 characters, and a path that is already normal (no "a//b", "../x" or "/x").
_PARAM_KEY = re.compile(r"^[/\w.\- :]+$")
_PARAM_KEY_LENGTH = 250


def param_key_ok(name: str) -> bool:
    """Whether MLflow takes `name` as a param key (`flatten` keeps a map whose keys it refuses whole)."""
    norm = posixpath.normpath(name)
    return (
        len(name) <= _PARAM_KEY_LENGTH
        and _PARAM_KEY.match(name) is not None
        and norm == name
        and not norm.startswith(("..", "/"))
    )


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config as flat ``section.key`` params; lists and empty dicts as JSON text.

    A map with a key MLflow refuses in a param's name (a rep "ann@corp.com" or "Smith, J." in
    ``allocation.capacity``, a tier "A+") is one param of JSON text under the map's own name: keyed by
    its names, it stopped every `kamml train` and `kamml run` (a tracking audit).
    """
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and all(param_key_ok(f"{name}.{k}") for k in value):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple | Mapping):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = "" if value is None else str(value)
    return out


#: MLflow's longest param value (characters).
PARAM_VALUE_LENGTH = 6000


def _cut(params: Mapping[str, str], whole: str) -> dict[str, str]:
    """`params` with values cut to MLflow's 6,000 characters, and a warning naming the ones cut."""
    cut = sorted(k for k, v in params.items() if len(v) > PARAM_VALUE_LENGTH)
    if cut:
        log.warning(
            "MLflow keeps %d characters of a param: %s cut there (%s)",
            PARAM_VALUE_LENGTH,
            ", ".join(cut),
            whole,
        )
    return {k: v[:PARAM_VALUE_LENGTH] for k, v in params.items()}


def effort_params(config: Config) -> dict[str, str]:
    """The effort response's settings (`kamml.tracking.registry.EFFORT_PARAMS`) as the run logs them."""
    params = flatten(config.model_dump(mode="json", include={"allocation"}))
    return {k: v for k, v in params.items() if k in EFFORT_PARAMS}


#: The wait for each request that tags and ends a run once the tracking server stopped answering.
GONE_SERVER_TIMEOUT_SECONDS = 10


@contextlib.contextmanager
def _without_retries(gone: bool) -> Iterator[None]:
    """MLflow's HTTP requests without retries and with a short timeout inside, when the server is `gone`.

    MLflow retries a request for about four minutes: with the server gone, tagging the job's outcome and
    ending the run after the failed call took two more such waits (twelve minutes before the error, an
    audit). MLflow reads both settings from the environment at each request.
    """
    if not gone:
        yield
        return
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(GONE_SERVER_TIMEOUT_SECONDS),
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        restore_variables(saved)


def _backtest_figures(result: Any) -> dict[str, float]:
    """Every backtest figure that is not missing or NaN, as ``task.model.metric``."""
    out: dict[str, float] = {}
    for task in ("value", "churn", "referral"):
        for model, metrics in (getattr(result, task) or {}).items():
            for name, value in metrics.items():
                if value is not None and pd.notna(value):
                    out[f"{task}.{model}.{name}"] = float(value)
    return out


def backtest_metrics(result: Any) -> dict[str, float]:
    """Every finite backtest metric as ``task.model.metric`` (e.g. ``value.kamml.gini``, ``value.btyd.gini``).

    An infinite one is left out (`non_finite_metrics` names it): MLflow's SQL stores write inf as the
    largest float, 1.797e308, which the UI and ``search_runs`` showed as a figure.
    """
    return {k: v for k, v in _backtest_figures(result).items() if math.isfinite(v)}


def non_finite_metrics(result: Any) -> dict[str, str]:
    """The infinite backtest metrics, ``task.model.metric`` to "inf" or "-inf" (``backtest.non_finite``)."""
    return {
        k: "inf" if v > 0 else "-inf" for k, v in _backtest_figures(result).items() if not math.isfinite(v)
    }


#: The param naming the ``fit.*`` figures left out of the metrics for being NaN or infinite.
FIT_NON_FINITE_PARAM = "fit.non_finite"


def _non_finite_word(value: float) -> str:
    """How JSON params name a figure MLflow is not given: "nan", "inf" or "-inf"."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def finite_fitted_metrics(bundle: ModelBundle) -> tuple[dict[str, float], dict[str, str]]:
    """The bundle's ``fit.*`` figures split into the finite ones (metrics) and the rest, named by word.

    An infinite figure would read 1.797e308 in a SQL store, as a backtest figure did (`backtest_metrics`);
    a NaN one is left out as a backtest's is. Both are named in ``fit.non_finite`` instead (a backtest's
    NaN figure is explained by its notes; a fit's has none).
    """
    figures = fitted_metrics(bundle)
    finite = {k: v for k, v in figures.items() if math.isfinite(v)}
    named = {k: _non_finite_word(v) for k, v in figures.items() if not math.isfinite(v)}
    return finite, named


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model's numbers depend on.

    From a git checkout of kamml also ``kamml.commit`` and ``kamml.dirty`` (`source_revision`): the
    package version alone names no code.
    """
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    out.update({f"kamml.{key}": value for key, value in source_revision().items()})
    return out


def data_folder(config: Config) -> Path | str | None:
    """Where the config's tables are: ``data.path``, else the common folder of its ``data.<table>``.

    A run given only ``data.<table>`` paths was recorded as data "in memory"; None for tables in memory.
    A URI (``hdfs:///crm/kamml``, read through Spark) is kept as written.
    """
    if config.data.path is not None:
        return config.data.path if is_uri(config.data.path) else Path(config.data.path)
    tables = (config.data.transactions, config.data.accounts, config.data.referrals, config.data.activities)
    named = [p for p in tables if p is not None]
    return common_folder(named) if named else None


def data_input(fingerprint: Mapping[str, Any], path: Any = None) -> Any:
    """The training data as an MLflow dataset input, so the run's Inputs show which data trained it.

    Its source is the data folder (when read from one), its digest one of the tables' content hashes and
    that source. MLflow keeps one dataset per name and digest in an experiment, with the source it was
    first logged with: on a digest of the content alone, a run reading a copy of the tables from another
    folder showed the first run's folder as its input (a tracking audit). The content alone is in the
    run's ``data.<table>.hash`` tags.
    """
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    if is_uri(path):  # Path("hdfs:///crm/kamml").resolve() was "<cwd>/hdfs:/crm/kamml"
        source: Any = _uri_source(str(path))
    elif isinstance(path, (str, Path)):
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local folder, it is
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(Path(path).resolve()))
    else:
        source = CodeDatasetSource({"kamml.data": "in memory"})
    tables = fingerprint.get("tables", {})
    content = json.dumps({name: table.get("hash") for name, table in sorted(tables.items())})
    named = json.dumps({"tables": content, "source": source.to_json()})
    digest = hashlib.sha256(named.encode()).hexdigest()[:16]
    name = f"kamml-data-{fingerprint.get('end')}"
    return MetaDataset(source, name=name, digest=digest)  # type: ignore[abstract]


def _uri_source(uri: str) -> Any:
    """An MLflow dataset source naming `uri` as written: MLflow's own for its scheme, else a code source."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    try:
        return resolve_dataset_source(uri)
    except Exception:  # no MLflow source for hdfs:// or abfs://: named as written, not looked up
        return CodeDatasetSource({"kamml.data": uri})


def _lgbm_models(bundle: ModelBundle) -> dict[str, Any]:
    """The bundle's LightGBM models by name (influence only when there were referrals)."""
    models = {"clv": bundle.clv, "churn": bundle.churn, "influence": bundle.influence}
    return {name: model for name, model in models.items() if model is not None}


def _model_settings(model: Any) -> dict[str, Any]:
    """A LightGBM model's effective settings: its parameter dict and the rounds it was allowed."""
    return {
        **model.lgb_params(),
        "n_estimators": model.n_estimators,
        "early_stopping_rounds": model.early_stopping_rounds,
    }


def fitted_params(bundle: ModelBundle) -> dict[str, str]:
    """``lgbm.<model>.<key>`` for every LightGBM setting of the bundle's models (see `log_fitted`)."""
    out: dict[str, str] = {}
    for name, model in _lgbm_models(bundle).items():
        out.update({f"lgbm.{name}.{key}": str(value) for key, value in _model_settings(model).items()})
    out["lgbm.clv.offset_feature"] = str(bundle.clv.offset_feature)
    out["lgbm.clv.offset_weight"] = str(bundle.clv.offset_weight)
    out["lgbm.churn.blend_feature"] = str(bundle.churn.blend_feature)
    if bundle.influence is not None:
        out["lgbm.influence.prior_weight"] = str(bundle.influence.prior_weight)
    out["features.groups_built"] = built_groups(bundle.clv.feature_names_)
    return out


def built_groups(columns: Iterable[str]) -> str:
    """The feature groups `columns` come from, comma-separated in `FEATURE_GROUPS`' order.

    The config's ``features.groups.<g>`` params say what was switched on; a group on without its table
    (``effort`` without activities) builds nothing, and this param says which were built.
    """
    found = set()
    for column in columns:
        with contextlib.suppress(KeyError):  # a column the catalogue does not know names no group
            found.add(describe(column)[0])
    return ",".join(g for g in FEATURE_GROUPS if g in found)


def fitted_metrics(bundle: ModelBundle) -> dict[str, float]:
    """``fit.*``: what the bundle's training settled on (see `log_fitted`); absent parts are left out."""
    out: dict[str, float] = {}
    for name, model in _lgbm_models(bundle).items():
        out[f"fit.{name}.best_iteration"] = float(model.best_iteration_)
        for metric, value in model.validation_score_.items():
            out[f"fit.{name}.validation_{metric}"] = float(value)
        if name != "churn":  # the value models' label units: LightGBM learnt y / unit
            out[f"fit.{name}.label_unit"] = float(model.label_unit_)
    out["fit.clv.scale"] = float(bundle.clv.scale_)
    blend = bundle.churn.blend_
    out["fit.churn.blend_weight"] = 0.0 if blend is None else float(blend["weight"])
    if bundle.value_level is not None:
        out["fit.value_level"] = float(bundle.value_level)
    if bundle.churn_shift is not None:
        out["fit.churn_shift"] = float(bundle.churn_shift)
    out.update({f"fit.bgnbd.{k}": float(v) for k, v in bundle.btyd.bgnbd.items()})
    if bundle.btyd.gamma_gamma is not None:
        out.update({f"fit.gamma_gamma.{k}": float(v) for k, v in bundle.btyd.gamma_gamma.items()})
    return out


def _builds(bundle: ModelBundle) -> dict[str, Any]:
    """How a bundle builds its features, with the defaults filled in.

    A bundle saved before a features key existed (``static_columns``) then compares equal to one saved
    after with that key at its default.
    """
    spec = bundle.feature_spec()
    features = FeaturesConfig.model_validate(spec["features"] or {}).model_dump()
    return {**spec, "features": features, "columns": None}


def _champion_unusable(name: str, bundle: ModelBundle, features: pd.DataFrame, version: str) -> str | None:
    """Why version `version` of `name` cannot score `features` (columns it needs are missing), or None.

    Missing columns count, and model files that are gone (MLflow's RESOURCE_DOES_NOT_EXIST: an
    artifact clean-up, a lost volume): every later job failed at scoring with exit 5 until someone
    moved the alias. A champion that fails to load otherwise (a locked store, a server that does not
    answer) is a passing fault, and replacing a better model for it would be permanent. Columns are
    decided only when the champion builds its features as the new `bundle` does (the same features
    section, unit and horizon): `features` then hold every column the data can give it.
    """
    try:
        champion = load_model(f"models:/{name}/{version}").bundle
    except ModelError as exc:
        cause = exc.__cause__
        if isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_DOES_NOT_EXIST":
            return f"cannot be loaded, for good: {cause.message}"
        # a locked store, a server down: passing, so the champion stays
        log.warning("could not load the champion (version %s) to check its columns: %s", version, exc)
        return None
    if _builds(champion) != _builds(bundle):
        return None
    effort = champion.effort
    size = effort.size_feature if effort is not None and effort.source == "fitted" else None
    needed = [*champion.feature_spec()["columns"], *([size] if size else [])]
    missing = [column for column in needed if column not in features.columns]
    if not missing:
        return None
    shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
    needs = counted(len(missing), "column")
    return f"cannot score this data: it needs {needs} the data no longer gives ({shown})"


def _in_store(run_id: str) -> bool:
    """Whether the run `run_id` is in the store MLflow points at now (run ids are unique across stores)."""
    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


@contextlib.contextmanager
def _callers_runs_set_aside() -> Iterator[None]:
    """MLflow's stack of active runs emptied inside the block and put back after it.

    MLflow starts a run beside an active one only as its child (``nested=True``, which tags the parent):
    kamml's top-level run in another store than the caller's active run needs the stack empty. MLflow
    keeps it per thread in ``mlflow.tracking.fluent._active_run_stack``.
    """
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    callers = list(stack)
    stack.clear()
    try:
        yield
    finally:
        stack[:] = callers


@contextlib.contextmanager
def _callers_experiment_set_aside() -> Iterator[None]:
    """MLflow without the session's `mlflow.set_experiment` while a run of kamml's is reopened.

    MLflow refuses ``start_run(run_id=...)`` when the experiment set in the session (a notebook's own,
    in any store) is not the run's: `kamml.run` failed after publishing its outputs, its run FAILED at
    the report stage (a tracking audit). MLflow keeps that choice in a module variable, put back here.
    """
    from mlflow.tracking import fluent

    saved = getattr(fluent, "_active_experiment_id", None)
    if saved is not None:
        fluent._active_experiment_id = None
    try:
        yield
    finally:
        if saved is not None:
            fluent._active_experiment_id = saved


class TrainingRun:
    """A started MLflow run in the configured experiment; use as a context manager.

    With `run_id` it reopens that run, so a job's later stages (scores, allocation, report) land on the
    run that trained the model. MLflow points at the config's store only inside the block
    (`tracking_scope`): the caller's tracking and registry URIs and active run are as before after it.

    Inside the caller's own active run (a notebook's ``with mlflow.start_run():``) kamml's run is its
    child when that run is in the config's store. When it is in another store, a child would name a
    parent its store does not hold, so kamml's run is a top-level run of the config's store tagged with
    the caller's run id and store (`CALLER_RUN_TAG`, `CALLER_STORE_TAG`), and a warning says so.
    """

    def __init__(
        self,
        config: Config,
        run_name: str | None = None,
        run_id: str | None = None,
        *,
        ends_job: bool = True,
    ) -> None:
        self.config = config
        self.run_name = run_name
        self.run_id = run_id or ""
        self.ends_job = ends_job
        self.metrics: dict[str, float] = {}  # the backtest's metrics, as logged (finite)
        self.figures: dict[str, float] = {}  # those and the infinite ones, which the gate compares
        self.protocol: dict[str, str] = {}  # the backtest's params, as logged
        self._active: Any = None
        self._reopened = bool(run_id)
        self._scope = contextlib.ExitStack()
        self._store = (config.tracking.uri, "the config's tracking.uri")
        self._unended = False  # the store did not let the run end: it shows as RUNNING there

    def __enter__(self) -> TrainingRun:
        # the store the run goes to and why, before the scope sets MLflow's URI (`log_config`)
        self._store = (tracking_uri(self.config.tracking), tracking_source(self.config.tracking))
        parent = mlflow.active_run()
        callers_uri = mlflow.get_tracking_uri()  # the store of the caller's active run, if any
        self._scope.enter_context(tracking_scope(self.config.tracking))
        try:
            self._start(parent, callers_uri)
        except BaseException as exc:
            self._scope.close()
            self._raise_store_error(exc)
            raise
        return self

    def _raise_store_error(self, exc: BaseException | None) -> None:
        """Raise a store failure (full, locked, not a store) as a `TrackingStoreError` naming this store.

        Raised once MLflow's URIs are put back, it named MLflow's default store (a full disk on the
        config's store read ``sqlite:///mlflow.db``); others are left to the caller. A run the failing
        store did not let end is named in it, with how to end it (`_unended_note`).
        """
        error = None if exc is None else config_store_error(exc, self.config.tracking)
        if error is None and isinstance(exc, TrackingStoreError) and self._unended:
            error = exc
        if error is not None:
            raise TrackingStoreError(f"{error}{self._unended_note()}") from exc

    def _unended_note(self) -> str:
        """What a store error adds of a run the store did not let end: it shows as RUNNING, how to end it.

        With the tracking server gone mid-run, only a warning before the error named the run, which
        nothing can end until the store answers again.
        """
        if not self._unended:
            return ""
        run, uri = self.run_id, shlex.quote(without_password(self._store[0]))
        command = (
            f"import mlflow; c = mlflow.MlflowClient(); c.set_tag('{run}', '{JOB_STATUS_TAG}', 'failed'); "
            f"c.set_terminated('{run}', 'FAILED')"
        )
        return (
            f"; the MLflow run {run} could not be ended: it shows as RUNNING in the store until the next "
            f"kamml training run in the experiment '{self.config.tracking.experiment}' on this machine "
            f"marks it KILLED (once the store answers), or end it yourself then: MLFLOW_TRACKING_URI={uri} "
            f'python -c "{command}"'
        )

    def _start(self, parent: Any, callers_uri: str) -> None:
        """Start (or reopen) the run, MLflow pointing at the config's store."""
        exp = experiment_id(self.config.tracking)
        nested = parent is not None and _in_store(parent.info.run_id)
        if parent is not None and not nested:
            self._scope.enter_context(_callers_runs_set_aside())
        if self.run_id:  # reopen a finished run to add a later stage's outputs
            with _callers_experiment_set_aside():
                self._active = mlflow.start_run(run_id=self.run_id, nested=nested)
            return
        close_abandoned_runs(exp)
        # "running" until the job ends: a job killed after training (SIGKILL) left a FINISHED run
        # that read as a success; the next training run marks it (`close_abandoned_runs`)
        tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **process_identity()}
        tags[JOB_STATUS_TAG] = "running"
        if parent is not None and not nested:
            tags.update({CALLER_RUN_TAG: parent.info.run_id, CALLER_STORE_TAG: without_password(callers_uri)})
        self._active = mlflow.start_run(experiment_id=exp, run_name=self.run_name, nested=nested, tags=tags)
        self.run_id = self._active.info.run_id
        uri = without_password(tracking_uri(self.config.tracking))
        where = f"MLflow run {self.run_id} in experiment '{self.config.tracking.experiment}' at {uri}"
        if nested:
            log.info("%s, nested in the active run %s", where, parent.info.run_id)
        elif parent is not None:
            log.warning(
                "%s: not nested in the active run %s, which is in another MLflow store (%s); tagged %s "
                "and %s",
                where,
                parent.info.run_id,
                without_password(callers_uri),
                CALLER_RUN_TAG,
                CALLER_STORE_TAG,
            )
        else:
            log.info("%s", where)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        gone = exc is not None and server_unreachable(exc) is not None
        # the caller's active runs, then MLflow's URIs, put back whatever happens here
        try:
            with self._scope, _without_retries(gone):
                self._end(exc_type, exc)
        except TrackingStoreError as error:  # ending a run that succeeded: the store is what failed
            if not self._unended:
                raise
            raise TrackingStoreError(f"{error}{self._unended_note()}") from error.__cause__
        self._raise_store_error(exc)

    def _end(self, exc_type: Any, exc: Any) -> None:
        """Tag the job's outcome (a run kamml started) and end the run."""
        stopped = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit))
        if not self._reopened:  # a reopened run's job tags its own outcome (`record_job_failure`)
            try:
                if exc_type is None:
                    if self.ends_job:
                        mlflow.set_tag(JOB_STATUS_TAG, "complete")
                else:
                    reason = job_error_text(exc) if exc is not None else exc_type.__name__
                    mlflow.set_tags(
                        {
                            JOB_STATUS_TAG: "stopped" if stopped else "failed",
                            JOB_STAGE_TAG: "train",
                            JOB_ERROR_TAG: reason[:5000],
                        }
                    )
            except Exception as error:  # never hide the job's own error behind this one
                log.warning("could not tag MLflow run %s with the job's outcome: %s", self.run_id, error)
        if exc_type is None:
            try:
                mlflow.end_run(status="FINISHED")
            except Exception:
                self._unended = True
                raise
            return
        status = "KILLED" if stopped else "FAILED"
        try:
            mlflow.end_run(status=status)  # MLflow takes it off its stack of active runs first
        except Exception as error:  # the job's own error is the one to raise, not the store's after it
            self._unended = True
            log.warning(
                "could not end MLflow run %s as %s: %s; it stays RUNNING until a training run on this "
                "machine finds this process gone and marks it KILLED",
                self.run_id,
                status,
                error,
            )

    def log_config(self) -> None:
        """The resolved config: as an artifact (config.yaml) and as flattened params."""
        tree = self.config.model_dump(mode="json")
        # every group by name: the default {} (all on) logged as "{}", and no search on a group found it
        switched = tree["features"]["groups"]
        tree["features"]["groups"] = {g: bool(switched.get(g, True)) for g in FEATURE_GROUPS}
        # the store the run is in: MLFLOW_TRACKING_URI replaces the config's (a tracking audit: the
        # logged config named another store, whose champion a rerun would be judged against)
        uri, source = self._store
        tree["tracking"]["uri"] = without_password(uri)
        if uri != self.config.tracking.uri:
            mlflow.set_tag("kamml.tracking.uri_from", source[:5000])
        # the root the run's artifacts are under: the experiment's, which MLflow keeps from its creation
        # (a tracking server's own store for a relative folder); the config's was logged, only a warning
        # saying it was not used (a tracking audit)
        used, why = self._artifact_root()
        tree["tracking"]["artifact_location"] = used
        if why:
            mlflow.set_tag(ARTIFACT_LOCATION_FROM_TAG, why[:5000])
        mlflow.log_text(yaml.safe_dump(tree, sort_keys=False), "config.yaml")
        params = flatten(tree)
        mlflow.log_params(_cut(params, "the whole config is in the run's config.yaml"))

    def _artifact_root(self) -> tuple[str, str]:
        """The artifact root of the run's experiment, and why it is not the config's ("" when it is)."""
        cfg = self.config.tracking
        used = mlflow.get_experiment(self._active.info.experiment_id).artifact_location or ""
        wanted = new_artifact_root(cfg)  # None: the store's own root
        if wanted is not None and wanted.rstrip("/") == used.rstrip("/"):
            return without_password(used), ""
        if not cfg.artifact_location:
            why = "the config's tracking.artifact_location is empty, leaving the root to the store"
        elif wanted is None:
            why = (
                f"the config's tracking.artifact_location {cfg.artifact_location} is a folder of this "
                "machine, set aside for the tracking server's own artifact store"
            )
        else:
            why = f"the config's tracking.artifact_location {cfg.artifact_location} is not used"
        where = f"the artifact location of the experiment '{cfg.experiment}' (set when it was created): {why}"
        return without_password(used), where

    def log_data(self, fingerprint: Mapping[str, Any]) -> None:
        """The data fingerprint (as data.json and as tags) and the library versions."""
        mlflow.log_dict(dict(fingerprint), "data.json")
        tags = {"data.engine": str(fingerprint.get("engine")), "data.end": str(fingerprint.get("end"))}
        for name, table in fingerprint.get("tables", {}).items():
            tags[f"data.{name}.rows"] = str(table.get("rows"))
            tags[f"data.{name}.hash"] = str(table.get("hash"))
        versions = library_versions()
        tags.update({f"version.{k}": v for k, v in versions.items()})
        mlflow.set_tags(tags)
        mlflow.log_dict(versions, "versions.json")
        mlflow.log_input(data_input(fingerprint, data_folder(self.config)), context="training")

    def log_fitted(self, bundle: ModelBundle) -> None:
        """What training used and settled on, under the same keys in every run, so runs compare.

        Params ``lgbm.<model>.<key>``: each LightGBM model's effective settings (kamml's defaults
        included, which the config's ``models`` section does not show). Metrics ``fit.*``: rounds kept
        and the held-out score per model, the value model's total scale, the churn blend's weight, the
        value level and churn shift set at anchoring, and the deployed BG/NBD and Gamma-Gamma parameters;
        a NaN or infinite one is left out and named in the param ``fit.non_finite``.
        """
        finite, named = finite_fitted_metrics(bundle)
        params = fitted_params(bundle)
        if named:  # a NaN or infinite figure is no metric: named here (`finite_fitted_metrics`)
            params[FIT_NON_FINITE_PARAM] = json.dumps(named)
        mlflow.log_params(params)
        mlflow.log_metrics(finite)

    def log_quality(self, quality: Any) -> None:
        """The data-quality summary the run trained on: data_quality.json and the tag ``data.notes``.

        The notes (refunds, repeats dropped, accounts missing from the accounts table) were only logged,
        so a scheduled job's run kept no word of what its data held.
        """
        mlflow.log_text(json_text(quality.to_dict()), "data_quality.json")
        mlflow.set_tag("data.notes", str(len(quality.notes)))

    def log_backtest(self, result: Any) -> dict[str, float]:
        """Every metric beside its baselines, the protocol as params, the JSON of DESIGN §10.

        A backtest without referral metrics (no referrals table, no referred value in its window) says
        why in the param ``backtest.referral_note``.
        """
        self.metrics = backtest_metrics(result)
        mlflow.log_metrics(self.metrics)
        protocol = {f"backtest.{k}": str(v) for k, v in result.protocol.items()}
        # an infinite figure is no metric (a SQL store would keep 1.797e308): named here, as backtest.json's
        # "non_finite" names it, and read back by the gate (`kamml.tracking.registry.run_figure`)
        infinite = non_finite_metrics(result)
        if infinite:
            protocol[NON_FINITE_PARAM] = json.dumps(infinite)
        self.figures = {**self.metrics, **{k: float(v) for k, v in infinite.items()}}
        # why a run has no referral.* metrics, beside runs that have them (as btyd_value_note for value.btyd)
        note = getattr(result, "referral_note", None)
        if note and not result.referral:
            protocol["backtest.referral_note"] = str(note)
        self.protocol = _cut(protocol, "the whole is in backtest.json")
        mlflow.log_params(self.protocol)
        mlflow.log_text(json_text(result.to_dict()), "backtest.json")
        return self.metrics

    def log_effort(self, response: Mapping[str, Any]) -> None:
        """The effort response the allocation will use: params ``effort.*`` and effort.json.

        With the horizon its hours and reference value are over (``effort.horizon_days``), the size term's
        reference and the clip: runs of other horizons compared ``effort.scale`` over different spans.
        """
        mlflow.log_text(json_text(dict(response)), "effort.json")
        keep = (
            "source",
            "scale",
            "exponent",
            "reference_value",
            "horizon_days",
            "period_months",
            "size_column",
            "size_exponent",
            "size_reference",
            "clip",
            "uplift",
            "reason",
        )
        mlflow.log_params({f"effort.{k}": str(response.get(k))[:6000] for k in keep})

    def log_artifacts(self, folder: str | Path, path: str | None = None) -> None:
        """Every file in `folder` (plots, tables) under `path` in the run's artifacts."""
        mlflow.log_artifacts(str(folder), path)

    def log_artifact(self, file: str | Path, path: str | None = None) -> None:
        """One file under `path` in the run's artifacts."""
        mlflow.log_artifact(str(file), path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tags on this run."""
        mlflow.set_tags(dict(tags))

    def log_summary(self, values: Mapping[str, float]) -> None:
        """Numbers of a later stage (scoring, allocation) as metrics of this run, not of its model."""
        self._log_run_metrics(values)

    def _log_run_metrics(self, values: Mapping[str, float]) -> None:
        """Metrics of the run alone, linked to no model; NaN and infinite ones left out.

        `mlflow.log_metrics` links each one logged after the run's model to that model, so a version
        that was not promoted showed the champion's plan as its own in MLflow's Models view (an audit).
        An infinite figure would read 1.797e308 in a SQL store (`backtest_metrics`).
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in values.items() if pd.notna(v) and math.isfinite(float(v))}
        metrics = [Metric(k, v, now, 0) for k, v in finite.items()]
        mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)

    def log_model(self, bundle: ModelBundle, features: pd.DataFrame) -> str:
        """Log the bundle as the run's pyfunc; return its ``models:/`` URI."""
        return log_bundle(bundle, features).model_uri

    def register(
        self,
        model_uri: str,
        bundle: ModelBundle | None = None,
        features: pd.DataFrame | None = None,
        *,
        force: bool = False,
    ) -> Promotion:
        """Register the model under the configured name and apply the champion gate; log the decision.

        With the new `bundle` and its scoring `features`, a champion that cannot score those features
        (a table or column it learned on is gone from the data) gives way to the new version. With
        `force` the new version takes the alias whatever the gate decides (`promote`'s ``force``).
        """
        cfg = self.config.tracking
        key = metric_key(cfg.promote_metric)
        check = None
        if bundle is not None and features is not None:
            check = functools.partial(_champion_unusable, cfg.model_name, bundle, features)
        # one job at a time reads the champion and moves the alias: two at once both passed the gate
        with store_lock(cfg, "registering the model and choosing the champion"):
            version = register(model_uri, cfg.model_name)
            decision = promote(
                cfg.model_name,
                version,
                cfg.promote_metric,
                self.figures.get(key),
                champion_unusable=check,
                horizon_days=self.config.time.horizon_days,
                churn_label=self.config.models.churn_label,
                effort=effort_params(self.config),
                margin=cfg.promote_margin,
                holdout=self.protocol or None,
                force=force,
            )
        mlflow.log_text(json_text(decision.to_dict()), "promotion.json")
        mlflow.set_tags(
            {
                "registry.model": cfg.model_name,
                "registry.version": version,
                "registry.promoted": str(decision.promoted).lower(),
                "registry.reason": decision.reason,
            }
        )
        if decision.same_holdout is not None:
            mlflow.set_tag("registry.same_holdout", str(decision.same_holdout).lower())
        if decision.champion_value is not None:
            self._log_run_metrics({"promotion.champion_value": decision.champion_value})
        return decision
