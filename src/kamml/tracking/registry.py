"""The model registry: register a logged bundle and move the ``champion`` alias only on a better backtest.

The gate compares one backtest metric of the new version with the current champion's (read from the
champion's training run). The first version always becomes champion, and so does a new version when the
champion can no longer score the data (a table or column it needs is gone). Higher is better except for the
error metrics (decile_mape, rmse, mae, brier, log_loss and the absolute aggregate_error;
`kamml.config.LOWER_IS_BETTER`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from kamml.config import larger_is_better
from kamml.errors import ConfigError, ModelError
from kamml.text import counted
from kamml.tracking.store import store_error, store_in_force, tracking_scope

__all__ = [
    "CHAMPION",
    "NON_FINITE_PARAM",
    "Promotion",
    "metric_key",
    "promote",
    "register",
    "run_figure",
    "version_backtest",
]

log = logging.getLogger(__name__)

CHAMPION = "champion"


def metric_key(name: str) -> str:
    """The run metric behind a promotion metric: ``value.gini`` means kamml's ``value.kamml.gini``."""
    parts = name.split(".")
    if len(parts) == 2:
        return f"{parts[0]}.kamml.{parts[1]}"
    if len(parts) == 3:
        return name
    raise ConfigError(
        f"tracking.promote_metric '{name}' must look like 'task.metric' (e.g. value.gini, churn.roc_auc)"
    )


def _score(metric: str, value: float) -> float:
    """The figure to maximise: the metric itself, or minus its size for error metrics."""
    return larger_is_better(metric.split(".")[-1], value)


@dataclass
class Promotion:
    """The gate's decision for one registered version, with both figures."""

    name: str
    version: str
    metric: str
    value: float | None
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    reason: str
    #: Whether both figures were measured on the same holdout (`HOLDOUT_PARAMS` equal); None when there
    #: was no champion figure to compare or either run did not record its holdout.
    same_holdout: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data (logged on the run)."""
        return asdict(self)


def register(model_uri: str, name: str) -> str:
    """Register `model_uri` under `name`; return the new version number."""
    try:
        version = mlflow.register_model(model_uri, name)
    except MlflowException as exc:
        locked = store_error(exc)  # the store locked or broken: not the config's fault
        if locked is not None:
            raise locked from exc
        raise ConfigError(f"cannot register {model_uri} as '{name}': {exc.message}") from exc
    return str(version.version)


def _alias_missing(exc: MlflowException) -> bool:
    """Whether `exc` says only that the champion alias is not set (MLflow's stores and servers alike)."""
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    text = str(exc.message).lower()
    return exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text


def _champion(client: MlflowClient, name: str) -> Any:
    """The version holding the champion alias, or None when the alias is not set.

    Only "alias not found" means no champion: any other failure (a server error, a denied permission, a
    locked store) stops the gate, since taking it for "no champion" would promote any new version.
    """
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if _alias_missing(exc):
            return None
        locked = store_error(exc)
        if locked is not None:
            raise locked from exc
        reason = (str(exc.message).strip().splitlines() or [exc.error_code])[0]
        raise ModelError(
            f"cannot read the {CHAMPION} alias of '{name}' in the MLflow store {store_in_force()}: "
            f"{reason}; no version is promoted while the champion is unknown"
        ) from exc


#: The param naming a run's infinite backtest figures (JSON, ``{"value.kamml.decile_mape": "inf"}``), which
#: are not logged as metrics: MLflow's SQL stores write inf as the largest float.
NON_FINITE_PARAM = "backtest.non_finite"
#: What MLflow's SQL stores keep of an infinite metric (`SqlAlchemyStore.sanitize_metric_value`).
_SQL_INFINITY = sys.float_info.max


def run_figure(run: Any, key: str) -> float | None:
    """A run's backtest figure `key`: its metric, or an infinite one its ``backtest.non_finite`` names.

    A SQL store's 1.797e308 (a run logged before kamml left infinite figures out) is read as the inf it
    was: the gate's reason printed it in 309 digits.
    """
    value = run.data.metrics.get(key)
    if value is not None:
        return math.copysign(math.inf, value) if abs(value) == _SQL_INFINITY else float(value)
    try:
        named = json.loads(run.data.params.get(NON_FINITE_PARAM) or "{}")
        return float(named[key]) if isinstance(named, dict) and key in named else None
    except (ValueError, TypeError):
        return None


def _run_horizon(run: Any) -> int | None:
    """The horizon (days) a training run's model predicts over, from its params; None if not logged."""
    for key in ("backtest.horizon_days", "time.horizon_days"):
        try:
            return int(float(run.data.params[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return None


#: A gain smaller than this times the figure (at least 1, but for `MONEY_METRICS`) is rounding: with a
#: strict ">" alone a version was promoted on 1.4e-17 (a data-science audit).
_ROUNDING = 1e-9
#: Metrics in the amounts' unit (cents, dollars, millions): their rounding allowance is relative to the
#: figure alone, and they are written to four significant digits. With the floor of 1 of the unitless
#: metrics, an RMSE of 5e-8 in amounts x1e-9 bettered by 1 % was rounding, and read "0.0000".
MONEY_METRICS = frozenset({"rmse", "mae"})


def _decide(
    key: str, value: float | None, champion: str, champ_value: float | None, margin: float = 0.0
) -> tuple[bool, str]:
    """Whether this run's figure beats the champion's (version `champion`) by more than `margin`, and why."""
    if value is None or math.isnan(value):
        return False, f"this run has no usable metric {key} ({value})"
    if champ_value is None or math.isnan(champ_value):
        return True, f"the champion (version {champion}) has no usable metric {key}"
    gain = _score(key, value) - _score(key, champ_value)
    # an infinite champion figure (an error metric of inf, as a file store keeps it) made the rounding
    # allowance infinite too, and no version could ever beat it
    size = abs(champ_value) if math.isfinite(champ_value) else 1.0
    money = key.split(".")[-1] in MONEY_METRICS
    needed = max(margin, _ROUNDING * (size if money else max(1.0, size)))
    by = f" by more than {margin:g} (tracking.promote_margin)" if margin > 0 else ""
    ours, theirs = _distinct_figures(value, champ_value, "g" if money else "f")
    if gain > needed:
        return True, f"{key} {ours} beats the champion's {theirs}{by}"
    return False, f"{key} {ours} does not beat the champion's {theirs}{by}"


def _distinct_figures(value: float, champ_value: float, kind: str) -> tuple[str, str]:
    """The two figures to four digits, or to as many more (up to ten) as tell them apart.

    A reason read "value.kamml.gini 0.9511 beats the champion's 0.9511" (0.95108 against 0.95106). A
    difference below ten digits is rounding (`_ROUNDING`), never a promotion: shown to four digits.
    """
    for digits in range(4, 11):
        ours, theirs = f"{value:.{digits}{kind}}", f"{champ_value:.{digits}{kind}}"
        if ours != theirs:
            return ours, theirs
    return f"{value:.4{kind}}", f"{champ_value:.4{kind}}"


#: The backtest params that identify the holdout a figure was measured on: its label window and unit,
#: how many accounts it scored and what they then spent. Runs on new data (a later end, corrected rows,
#: another book) differ in them, and their figures measure different holdouts.
HOLDOUT_PARAMS = (
    "backtest.label_window",
    "backtest.unit",
    "backtest.test_accounts",
    "backtest.actual_total_value",
)


def _records_holdout(params: Mapping[str, str]) -> bool:
    """Whether a run's params record its holdout (any of `HOLDOUT_PARAMS`)."""
    return any(k in params for k in HOLDOUT_PARAMS)


#: Totals within this relative difference are one holdout's: the same data summed by another engine or
#: in another order differ in the last digits (DuckDB's and Spark's sums of a float column).
_TOTAL_RTOL = 1e-9


def _same_param(champion: str | None, candidate: str | None) -> bool:
    """Whether two runs' values of a holdout param agree: as written, or as numbers up to `_TOTAL_RTOL`."""
    if champion == candidate:
        return True
    try:
        return math.isclose(float(str(champion)), float(str(candidate)), rel_tol=_TOTAL_RTOL)
    except ValueError:
        return False


def holdout_difference(champion: Mapping[str, str], candidate: Mapping[str, str]) -> str | None:
    """How the champion's recorded holdout (`HOLDOUT_PARAMS` of its run) differs from the candidate's.

    None when they agree or when either run recorded none of them (a run logged before they existed).
    """
    if not (_records_holdout(champion) and _records_holdout(candidate)):
        return None
    differ = [k for k in HOLDOUT_PARAMS if not _same_param(champion.get(k), candidate.get(k))]
    return (
        "; ".join(
            f"{k.removeprefix('backtest.')} {champion.get(k, 'not recorded')} against "
            f"{candidate.get(k, 'not recorded')}"
            for k in differ
        )
        or None
    )


def version_backtest(name: str, version: str, tracking: Any = None) -> dict[str, Any] | None:
    """The backtest (its ``backtest.json``, DESIGN §10) of a registered version's training run, or None.

    For a plan scored by a version other than the one just trained (the standing champion): its own
    figures, not the rejected version's. None, with a warning, when the run, its artifact or the store
    cannot be read; `tracking` is the config's section (its store), else MLflow's current one.
    """
    scope = contextlib.nullcontext() if tracking is None else tracking_scope(tracking, create=False)
    try:
        with scope:
            client = MlflowClient()
            run_id = client.get_model_version(name, version).run_id
            if not run_id:
                return None
            with tempfile.TemporaryDirectory(prefix="kamml-backtest-") as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path="backtest.json", dst_path=tmp
                )
                with open(local, encoding="utf-8") as handle:
                    found = json.load(handle)
    except Exception as exc:
        log.warning("the backtest of %s version %s could not be read: %s", name, version, exc)
        return None
    return found if isinstance(found, dict) else None


def _champion_run(client: MlflowClient, run_id: str) -> Any:
    """The champion's training run, or None when it was deleted for good (`mlflow gc`).

    Then the champion has no usable figure, and the new version is judged as against one without: every
    training job after the clean-up failed once it had registered its version, and none was promoted.
    """
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        log.warning(
            "the champion's training run %s no longer exists: it has no figure to compare with", run_id
        )
        return None


#: The settings of the effort response fitted at training (``allocation.effort_*``), as run params.
EFFORT_PARAMS = (
    "allocation.effort_scale",
    "allocation.effort_clip",
    "allocation.effort_exponent",
    "allocation.effort_size_column",
)


def _serves_another(
    version: str,
    horizons: tuple[int | None, int | None],
    labels: tuple[str | None, str | None],
    efforts: tuple[Mapping[str, str], Mapping[str, str] | None],
) -> str | None:
    """Why the champion cannot serve this config: (its, the config's) horizon, churn label or effort.

    The effort settings are `EFFORT_PARAMS`. None when it can serve.

    Its predictions answer another question, and its backtest figures do not compare with the new one's;
    or its effort response, which the plan reads from the scoring model, was fitted under other
    settings, which no backtest figure measures (so the new version tied and never took over).
    """
    (champ_horizon, horizon), (champ_label, label) = horizons, labels
    if horizon is not None and champ_horizon is not None and champ_horizon != horizon:
        return (
            f"the champion (version {version}) predicts over {champ_horizon} days, not this config's "
            f"{horizon} (time.horizon_days): it cannot serve this config, and backtests of different "
            "horizons do not compare"
        )
    if label is not None and champ_label is not None and champ_label != label:
        return (
            f"the champion (version {version}) was trained with models.churn_label {champ_label}, not "
            f"this config's {label}: its p_churn answers another question, and churn figures of different "
            "labels do not compare"
        )
    return _other_effort(version, *efforts)


def _other_effort(version: str, champion: Mapping[str, str], effort: Mapping[str, str] | None) -> str | None:
    """Why the champion's effort response is not this config's (`_serves_another`), or None.

    Compared where both runs recorded the settings and either fits the response (``effort_scale``
    ``auto``): with a number in both, the plan follows the config's fixed rule whatever the model holds.
    """
    if not effort or not all(k in champion for k in EFFORT_PARAMS):
        return None
    if "auto" not in (champion[EFFORT_PARAMS[0]], effort.get(EFFORT_PARAMS[0])):
        return None
    differ = [k for k in EFFORT_PARAMS if champion[k] != effort.get(k)]
    if not differ:
        return None
    shown = "; ".join(f"{k} {champion[k] or 'null'}, not {effort.get(k) or 'null'}" for k in differ)
    return (
        f"the champion (version {version}) fitted its effort response under other settings ({shown}): "
        "the plan reads the response from the scoring model, and no backtest figure measures it"
    )


def _no_champion_reason(client: MlflowClient, name: str, version: str) -> str:
    """Why a version without a champion to beat is promoted: the first, or the alias was removed.

    "first version" was said whenever the alias was unset, also beside earlier versions (an alias
    removed by hand, or its version deleted).
    """
    try:
        others = sorted(
            int(v.version)
            for v in client.search_model_versions(f"name = '{name}'")
            if str(v.version) != version
        )
    except (MlflowException, ValueError):
        others = []
    if not others:
        return "first version: no champion yet"
    listed = ", ".join(map(str, others[-3:]))
    return (
        f"no version holds the {CHAMPION} alias (removed, or its version deleted) beside "
        f"{counted(len(others), 'earlier version')} ({'..., ' if len(others) > 3 else ''}version {listed}): "
        "nothing to beat"
    )


def promote(
    name: str,
    version: str,
    metric: str,
    value: float | None,
    *,
    champion_unusable: Callable[[str], str | None] | None = None,
    horizon_days: int | None = None,
    churn_label: str | None = None,
    effort: Mapping[str, str] | None = None,
    margin: float = 0.0,
    holdout: Mapping[str, str] | None = None,
    force: bool = False,
) -> Promotion:
    """Give `version` the champion alias if its `metric` beats the champion's (or there is none).

    Beating means by more than `margin` (``tracking.promote_margin``), and never by rounding alone.

    A missing or NaN figure never wins, and a champion without a usable figure (a NaN AUC from a
    backtest with one class) does not block every later version. `champion_unusable`, called with the
    champion's version when the new one does not beat it, returns why the champion cannot serve any
    more (the data no longer gives columns it needs), or None. When it returns a reason the new version
    is promoted, since keeping the champion would stop every run at scoring.

    With `horizon_days` (the new version's horizon), a champion whose run predicts over another horizon
    gives way without comparing figures: its backtest measured another window length, and it cannot
    serve a config of this horizon (a plan from it would be labelled with the wrong horizon). So does,
    with `churn_label` (``models.churn_label``), a champion trained to another churn definition: its
    p_churn answers another question, and churn figures of different labels do not compare (a
    config's new label never took effect while the value model's figure tied). So does, with `effort`
    (the new run's `EFFORT_PARAMS`), a champion whose effort response was fitted under other settings:
    the plan reads the response from the scoring model, and a change of ``allocation.effort_clip``
    (say) moves no backtest figure, so the new version tied and the change never took effect.

    With `holdout` (the new run's backtest params, `HOLDOUT_PARAMS`), figures measured on different
    holdouts (new data, another book) are still compared, as the gate's rule says, but the decision
    says so in its reason and ``same_holdout``, with a warning: the difference may be the data's.

    With `force` (``kamml train --promote``) the new version takes the alias whatever the gate decides,
    and the reason says what the gate would have done: the user's way past a champion whose figure no
    version should have to beat (its attributes leaked the future) or a change the figures cannot judge.
    """
    client = MlflowClient()
    key = metric_key(metric)
    current = _champion(client, name)
    champ_value: float | None = None
    champ_horizon: int | None = None
    champ_label: str | None = None
    champ_effort: dict[str, str] = {}
    champ_run = _champion_run(client, current.run_id) if current is not None and current.run_id else None
    if champ_run is not None:
        champ_value = run_figure(champ_run, key)
        champ_horizon = _run_horizon(champ_run)
        champ_label = champ_run.data.params.get("models.churn_label")
        champ_effort = {k: v for k, v in champ_run.data.params.items() if k in EFFORT_PARAMS}
    compared = False  # whether the decision compared the two figures
    if current is None:
        promoted, reason = True, _no_champion_reason(client, name, str(version))
    elif other := _serves_another(
        str(current.version),
        (champ_horizon, horizon_days),
        (champ_label, churn_label),
        (champ_effort, effort),
    ):
        promoted, reason = True, other
    else:
        promoted, reason = _decide(key, value, str(current.version), champ_value, margin)
        compared = True
    if not promoted and current is not None and champion_unusable is not None:
        unusable = champion_unusable(str(current.version))
        if unusable:
            promoted, reason = True, f"the champion (version {current.version}) {unusable}; {reason}"
    same_holdout: bool | None = None
    if compared and champ_value is not None and champ_run is not None and holdout is not None:
        differs = holdout_difference(champ_run.data.params, holdout)
        recorded = _records_holdout(champ_run.data.params) and _records_holdout(holdout)
        same_holdout = differs is None if recorded else None
        if differs is not None:
            reason += (
                f" (on different holdouts, the champion's against this version's: {differs}; the figures "
                "compare models and data together)"
            )
            log.warning(
                "the champion (version %s) was measured on another holdout than version %s: %s",
                current.version if current is not None else "?",
                version,
                differs,
            )
    if force and not promoted:
        promoted, reason = True, f"promoted as asked (--promote), over the gate's decision: {reason}"
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    decision = Promotion(
        name,
        version,
        key,
        value,
        None if current is None else str(current.version),
        champ_value if compared else None,  # a figure the gate did not compare reads as if it had
        promoted,
        reason,
        same_holdout,
    )
    log.info("%s version %s: %s (%s)", name, version, "champion" if promoted else "not promoted", reason)
    return decision
