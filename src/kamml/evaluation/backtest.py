"""Temporal backtests: kamml's models beside the baselines of DESIGN §5 on a later, unseen snapshot.

The test cutoff c has its whole label window [c, c + H) inside the data. Training uses only snapshots
whose label windows end at or before c (`kamml.features.training_cutoffs`), so no row the models learn
from, labels included, is dated at or after c. Every metric is reported beside its baselines:
BG/NBD x Gamma-Gamma and last-period value for value, BG/NBD P(no purchase) and the recency rule (no
purchase in the last horizon: churned) for churn, the past referral value for influence.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kamml.config import Config, larger_is_better
from kamml.errors import ConfigError, DataError
from kamml.evaluation.metrics import churn_metrics, value_metrics
from kamml.features import build_features, build_labels, build_training_frame, training_cutoffs
from kamml.features._context import as_cutoff, first_transaction
from kamml.features.build import build_past_window, check_label_window, rfm_only
from kamml.features.referrals import referral_spend_by_age
from kamml.features.snapshots import SnapshotCache
from kamml.models.btyd_features import MIN_REPEAT_BUYERS, BtydFit, add_btyd_features
from kamml.models.bundle import CLV_OFFSET, SEASON_DAYS, ModelBundle, empty_snapshots_error
from kamml.models.influence import referral_window_ratio
from kamml.text import counted

__all__ = [
    "BacktestResult",
    "backtest",
    "check_backtest_window",
    "default_cutoff",
    "snapshot_plan",
    "train_bundle",
]

log = logging.getLogger(__name__)


@dataclass
class BacktestResult:
    """Metrics of kamml and its baselines on one test cutoff, the predictions, and the trained bundle."""

    protocol: dict[str, Any]
    btyd_params: dict[str, float]
    value: dict[str, dict[str, float]]
    churn: dict[str, dict[str, float]]
    referral: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    """Labels, kamml's scores (``drivers`` left empty: `ModelBundle.drivers` names them) and baselines."""
    bundle: ModelBundle
    extra: dict[str, Any] = field(default_factory=dict)
    referral_note: str | None = None
    """Why `referral` is empty (no referrals table, no referred value in the test window), when it is."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON of DESIGN §10 (protocol, btyd_params, value, churn, referral).

        ``referral`` is always there, null when there is nothing to evaluate; ``referral_note`` then
        says why, when that is known, so a reader of the JSON never meets a missing key. The dict holds
        NaN and infinities as they are; `kamml.io.json_text` (the CLI's and the tracked run's writer)
        writes them null, which strict JSON needs (``json.dumps`` alone writes ``NaN``, which
        JSON.parse refuses). JSON has no infinity, so an infinite metric is null like an undefined (NaN)
        one; ``non_finite`` then gives its sign (``{"value": {"kamml": {"decile_mape": "inf"}}}``), as
        the printed table reads ``inf`` where it reads ``n/a`` for NaN. Only there when a metric is
        infinite.
        """
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "btyd_params": self.btyd_params,
            "value": self.value,
            "churn": self.churn,
            "referral": self.referral or None,
        }
        if not self.referral and self.referral_note:
            out["referral_note"] = self.referral_note
        infinite = _infinite_metrics({"value": self.value, "churn": self.churn, "referral": self.referral})
        if infinite:
            out["non_finite"] = infinite
        return out

    def table(self) -> pd.DataFrame:
        """One table: a row per (task, model), the metrics as columns."""
        rows = []
        for task, block in (("value", self.value), ("churn", self.churn), ("referral", self.referral)):
            for model, metrics in block.items():
                rows.append({"task": task, "model": model, **metrics})
        if not rows:  # set_index found no task or model column: a KeyError
            return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["task", "model"]))
        return pd.DataFrame(rows).set_index(["task", "model"])

    def behind(self) -> dict[str, dict[str, list[str]]]:
        """Per task, the metrics of `to_text` on which a baseline does better than kamml, and which.

        Higher is better but for `kamml.config.LOWER_IS_BETTER` (aggregate error: the nearer 0); a NaN
        figure beats nothing, so a baseline's NaN never counts and kamml's NaN loses to any baseline's
        figure (it said NaN was beaten by nothing); figures equal but for float noise are a tie (`_ahead`).
        ``{"churn": {"brier": ["btyd"]}}``; tasks and metrics where kamml is not beaten are left out.
        """
        out: dict[str, dict[str, list[str]]] = {}
        for task, cols in TEXT_COLUMNS.items():
            block = getattr(self, task)
            if "kamml" not in block:
                continue
            for metric in cols:
                ours = _better_is_larger(metric, block["kamml"].get(metric, math.nan))
                ahead = [
                    model
                    for model, metrics in block.items()
                    if model != "kamml"
                    and _ahead(_better_is_larger(metric, metrics.get(metric, math.nan)), ours)
                ]
                if ahead:
                    out.setdefault(task, {})[metric] = ahead
        return out

    def to_text(self) -> str:
        """The table as aligned text for a terminal or a log, each task with the metrics kamml loses."""
        blocks = []
        behind = self.behind()
        for task, cols in TEXT_COLUMNS.items():
            block = getattr(self, task)
            if not block:
                if task == "referral" and self.referral_note:
                    blocks.append(f"referral: not evaluated: {self.referral_note}")
                continue
            frame = pd.DataFrame(block).T[list(cols)].astype(float)  # a null read back from the JSON: NaN
            lost = behind.get(task)
            verdict = (
                "a baseline does better on: "
                + ", ".join(f"{metric} ({', '.join(models)})" for metric, models in lost.items())
                if lost
                else "no baseline does better on any of these"
            )
            # RMSE is in the amounts' unit: to four places, in amounts x1e-9 every model's read 0.0000
            money: dict[str | int, Callable[[float], str]] = (
                {"rmse": lambda v: f"{v:9.6g}"} if "rmse" in cols else {}
            )
            text = frame.to_string(float_format=lambda v: f"{v:9.4f}", na_rep="n/a", formatters=money)
            # why a baseline's figures are missing, once (they read NaN, with no reason given)
            note = self.protocol.get("btyd_value_note") if task == "value" and "btyd" in block else None
            blocks.append(f"{task}\n{text}\n{verdict}" + (f"\nbtyd n/a: {note}" if note else ""))
        p = self.protocol
        head = (
            f"backtest at {p['cutoff']}: horizon {counted(p['horizon_days'], 'day')}, trained on "
            f"{counted(len(p['training_snapshots']), 'snapshot')} ({p['train_horizon_days']}-day labels) of "
            f"{counted(p['training_rows'], 'row')}; {counted(p['test_accounts'], 'test account')}"
        )
        return head + "\n\n" + "\n\n".join(blocks)


#: The metrics `BacktestResult.to_text` prints per task (the JSON and `table()` have them all).
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "value": ("gini", "spearman", "top10_capture", "decile_mape", "decile_wape", "aggregate_error", "rmse"),
    "churn": ("roc_auc", "pr_auc", "brier"),
    "referral": ("gini", "spearman", "top10_capture", "aggregate_error", "rmse"),
}


def _infinite_metrics(blocks: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, str]]]:
    """Per task and model, the metrics that are infinite, as "inf" or "-inf" (JSON writes them null)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for task, block in blocks.items():
        for model, metrics in (block or {}).items():
            for metric, value in metrics.items():
                if isinstance(value, numbers.Real) and math.isinf(value):
                    out.setdefault(task, {}).setdefault(model, {})[metric] = "inf" if value > 0 else "-inf"
    return out


def _better_is_larger(metric: str, value: float | None) -> float:
    """`kamml.config.larger_is_better`, with a missing, null (the JSON's NaN) or NaN figure as -inf.

    Such a figure beats nothing.
    """
    if value is None or not math.isfinite(value):
        return -math.inf
    return larger_is_better(metric, value)


def _ahead(theirs: float, ours: float) -> bool:
    """Whether a baseline's figure (turned by `_better_is_larger`) beats kamml's by more than float noise.

    kamml's value total is BTYD's level on some splits, so the two aggregate errors can differ by 1e-16:
    that is a tie, not "a baseline does better" under two figures that read the same.
    """
    return theirs > ours and not math.isclose(theirs, ours, rel_tol=1e-9, abs_tol=1e-12)


#: Training snapshots closer than this (time.step_days) get a warning: a 1-day step let the held-out
#: snapshot repeat the training rows, and kamml lost to BTYD on churn AUC and Brier and on value RMSE.
CLOSE_STEP_DAYS = 28


#: The value metrics' keys (`value_metrics`), all NaN for a baseline that has no forecast.
VALUE_KEYS = tuple(value_metrics([1.0, 0.0], [1.0, 0.0]))
#: Gamma-Gamma's parameters in the JSON's ``btyd_params`` (DESIGN §10), null when it was not fitted.
GAMMA_GAMMA_KEYS = ("p", "q", "gamma")


def _btyd_value_note(fit: BtydFit, missing: bool) -> str | None:
    """Why BTYD has no value forecast at the test cutoff (its value metrics are then NaN), or None.

    Without Gamma-Gamma (fewer than `MIN_REPEAT_BUYERS` repeat buyers) or with an infinite mean order
    value (q <= 1) an account's value is unknown; filled with 0, it was scored as a forecast of nothing.
    """
    if fit.gamma_gamma is None:
        return (
            f"Gamma-Gamma not fitted at the test cutoff (fewer than {MIN_REPEAT_BUYERS} repeat buyers with "
            "a positive order value): BG/NBD x Gamma-Gamma has no value forecast and no value figures"
        )
    if missing:
        return (
            f"Gamma-Gamma's mean order value is infinite (q = {fit.gamma_gamma.get('q', math.nan):.4g} <= 1):"
            " BG/NBD x Gamma-Gamma has no value forecast and no value figures"
        )
    return None


def default_cutoff(data: Any, horizon_days: int) -> pd.Timestamp:
    """The latest cutoff whose whole label window lies inside the data."""
    return (pd.Timestamp(data.end) - pd.Timedelta(days=horizon_days)).normalize()


def _train_config(cfg: Config) -> Config:
    """The config with the labels' horizon set to the training horizon."""
    train = cfg.model_copy(deep=True)
    train.time.horizon_days = cfg.time.training_horizon_days
    return train


def _check_cutoffs_after_first(data: Any, cuts: list[pd.Timestamp]) -> None:
    """Refuse, before any snapshot is built, snapshot cutoffs less than a day after the first transaction.

    Such a snapshot holds no history; `check_snapshot_history` said so only after every snapshot was
    built (400 snapshots ran past five minutes). One on the day after the first purchase holds a day of
    it, where every T is 0: BG/NBD's "nothing to fit" was an input-data error (exit 3) for what is a
    matter of the time settings. The first transaction is validation's figure.
    """
    first = first_transaction(data)
    if first is None:
        return
    empty = [c for c in cuts if c <= first.normalize() + pd.Timedelta(days=1)]
    if empty:
        raise empty_snapshots_error(empty, len(cuts), first)


def _check_cutoff_after_first(data: Any, cut: pd.Timestamp, latest_of_horizon: int | None = None) -> None:
    """Refuse a test cutoff on or before the first purchase's day, naming the data's span.

    Nothing before it to test on; the error was that training snapshots years earlier held no history.
    At the latest cutoff of a `latest_of_horizon` window (the data end minus it: the default, and the
    training job's) the horizon is named instead: a later cutoff runs the label window past the data end.
    """
    first = first_transaction(data)
    if first is None or cut > first.normalize():
        return
    end = getattr(data, "end", None)
    span = f"{first.date()} to {(pd.Timestamp(end) - pd.Timedelta(days=1)).date()}" if end is not None else ""
    head = (
        f"test cutoff {cut.date()} is on or before the day of the first purchase (the transactions run "
        f"{span or first.date()})"
    )
    if latest_of_horizon is not None:
        raise ConfigError(
            f"{head}: it is the data end minus time.horizon_days ({latest_of_horizon} days), the latest "
            "cutoff with a whole label window, so the data hold no history before a window that long: "
            "shorten time.horizon_days or give more history"
        )
    raise ConfigError(f"{head}: give a later --cutoff (time.cutoff), with a training history before it")


def check_backtest_window(data: Any, config: Config, cut: pd.Timestamp) -> None:
    """Refuse a test cutoff or training snapshots the data's span cannot hold, from the config alone.

    The label window past the data end, a test cutoff on or before the first purchase, snapshots
    stepping back before it: a `ConfigError` each. No query (the data's end and validation's first
    transaction), so a job checks it before it opens a tracking run (`kamml.jobs.train.check_time_window`).
    """
    horizon = config.time.horizon_days
    check_label_window(data, cut, horizon)
    # at the latest cutoff (the default, and kamml train's), a later one runs past the data end
    _check_cutoff_after_first(data, cut, horizon if cut == default_cutoff(data, horizon) else None)
    h = config.time.training_horizon_days
    _check_cutoffs_after_first(data, training_cutoffs(cut, h, config.time.snapshots, config.time.step_days))


def snapshot_plan(config: Config, end: Any) -> list[tuple[pd.Timestamp, Config]]:
    """Every snapshot `train_bundle` at `end` may build, as (cutoff, config): training, then the season's."""
    h = config.time.training_horizon_days
    train = _train_config(config)
    cuts = training_cutoffs(end, h, config.time.snapshots, config.time.step_days)
    return [(c, train) for c in cuts] + (_season_snapshots(config, end, h, cuts[0]) if cuts else [])


def _season_snapshots(
    cfg: Config, end: Any, h: int, latest: pd.Timestamp
) -> list[tuple[pd.Timestamp, Config]]:
    """The season's two snapshots as (cutoff, config), rfm and labels only; none for windows of a year+."""
    if h >= SEASON_DAYS:
        return []
    config = rfm_only(_train_config(cfg))
    return [(c, config) for c in _season_cutoffs(end, latest)]


#: Days of data the earlier season snapshot needs before it (four months). With less, BTYD's misfit
#: there holds the data's start (a cohort still arriving, histories cut short), not the calendar: on
#: 2-year synthetic worlds a season measured 62-120 days in made the aggregate worse at 21 of 28 cutoffs,
#: one measured 150-300 days in better at 16 of 20 (docs/models.md, "Season").
SEASON_HISTORY_DAYS = 122


def _season_cutoffs(end: Any, latest: pd.Timestamp) -> list[pd.Timestamp]:
    """The cutoff and the latest training snapshot, each a year earlier (`_season_frame`).

    `end` is read as `kamml.features.training_cutoffs` reads it (an aware one in UTC, as its snapshots).
    """
    year = pd.Timedelta(days=SEASON_DAYS)
    return [as_cutoff(end, "end", floor=True).as_unit("ns") - year, latest - year]


def train_bundle(
    data: Any, config: Config, end: Any, *, snapshots: SnapshotCache | None = None
) -> tuple[ModelBundle, pd.DataFrame]:
    """Train a bundle on the snapshots whose label windows end at or before `end`.

    With `snapshots`, snapshots an earlier stage of the job built are taken from it (`build_training_frame`).
    """
    cfg = config
    h = cfg.time.training_horizon_days
    cuts = training_cutoffs(end, h, cfg.time.snapshots, cfg.time.step_days)
    _check_cutoffs_after_first(data, cuts)
    if cfg.time.snapshots > 1 and cfg.time.step_days < CLOSE_STEP_DAYS:
        log.warning(
            "time.step_days %d: snapshots this close hold nearly the same accounts and labels, so the "
            "held-out latest snapshot (early stopping, calibration, the levels) checks the models on rows "
            "like those they learn from; steps of %d days or more are advised (docs/models.md)",
            cfg.time.step_days,
            CLOSE_STEP_DAYS,
        )
    log.info("training snapshots: %s (labels over %d days)", ", ".join(str(c.date()) for c in cuts), h)
    # sampled snapshot by snapshot: a million accounts' frame is never held whole for the sample's rows
    limit = cfg.models.max_training_accounts
    train = build_training_frame(data, cuts, _train_config(cfg), max_accounts=limit, snapshots=snapshots)
    if train.empty:
        raise ConfigError(
            f"no training rows before {pd.Timestamp(end).date()}: check time.cutoff and the data"
        )
    _check_repeat_buyers_in_time(data, cfg, train, end)
    season = _season_frame(data, cfg, end, h, cuts[0], snapshots)
    bundle = ModelBundle.fit(train, cfg, season=season)
    horizon = cfg.time.horizon_days
    if bundle.influence is not None and h != horizon:  # referral value is carried from h to H days
        spend, seen = referral_spend_by_age(data, end, max(h, horizon))
        bundle.referral_ratio = referral_window_ratio(spend, seen, h, horizon)
    return bundle, train


def _check_repeat_buyers_in_time(data: Any, cfg: Config, train: pd.DataFrame, end: Any) -> None:
    """Refuse training snapshots too early for Gamma-Gamma when the data hold enough repeat buyers later.

    The value model's offset needs Gamma-Gamma, fitted on `MIN_REPEAT_BUYERS` repeat buyers in a
    snapshot. Snapshots a few days after the first purchase have fewer, and the fit's `ModelError`
    (exit 5) named neither them nor the time settings; a `ConfigError` does, when the latest snapshot
    the data allow for the label window holds enough (else the fit's error stands: a later cutoff
    would not help). Not on a sample of the accounts (``models.max_training_accounts``), whose own
    error names the sample.
    """
    offset = dict(cfg.models.clv).get("offset_feature", CLV_OFFSET)
    if offset != CLV_OFFSET or train.attrs.get("sampled_from"):
        return
    repeat = (train["frequency"] > 0) & (train["monetary"] > 0)
    held = repeat.groupby(train["snapshot"], observed=True).sum()
    data_end = getattr(data, "end", None)
    if held.empty or held.max() >= MIN_REPEAT_BUYERS or data_end is None:
        return
    held = held.sort_index(ascending=False)
    latest = pd.Timestamp(held.index[0])
    h = cfg.time.training_horizon_days
    allowed = pd.Timestamp(data_end).normalize() - pd.Timedelta(days=h)  # the latest any cutoff gives
    if allowed <= latest:
        return
    there = build_features(data, allowed, rfm_only(cfg))
    n_allowed = int(((there["frequency"] > 0) & (there["monetary"] > 0)).sum())
    if n_allowed < MIN_REPEAT_BUYERS:
        return
    first = first_transaction(data)
    days = None if first is None else counted((latest - first.normalize()).days, "day")
    after = "" if first is None else f"{days} after the first purchase ({first.date()})"
    if len(held) == 1:
        head = f"training snapshot {latest.date()} holds {counted(int(held.iloc[0]), 'repeat buyer')}"
        head += f" with a positive order value{f', {after}' if after else ''}"
    else:
        each = ", ".join(
            f"{pd.Timestamp(c).date()}: {int(n):,}"
            for c, n in zip(held.index[:5], held.iloc[:5], strict=True)
        )
        more = ", ..." if len(held) > 5 else ""
        head = (
            f"the {len(held):,} training snapshots hold at most {counted(int(held.max()), 'repeat buyer')} "
            f"with a positive order value ({each}{more}){f', the latest {after}' if after else ''}"
        )
    raise ConfigError(
        f"{head}, but the value model boosts from BTYD's expected value ({CLV_OFFSET}), which needs "
        f"Gamma-Gamma, fitted on at least {MIN_REPEAT_BUYERS} in a snapshot. The time settings place the "
        f"snapshots too early: the latest sits one label window of {counted(h, 'day')} "
        f"(time.train_horizon_days, else time.horizon_days) before the cutoff {pd.Timestamp(end).date()}, "
        f"and the latest snapshot the data allow for that window, {allowed.date()}, holds {n_allowed:,}. "
        "Use a later cutoff (time.cutoff; --cutoff of kamml backtest) or a shorter time.horizon_days, or "
        "set models.clv.offset_feature: null to train the value model without the offset"
    )


def _season_frame(
    data: Any, cfg: Config, end: Any, h: int, latest: pd.Timestamp, snapshots: SnapshotCache | None = None
) -> pd.DataFrame | None:
    """The snapshots a year before the cutoff and the latest snapshot (rfm and labels), or None.

    They measure how BTYD's error moves from the latest label window to the cutoff's with the season
    (`kamml.models.bundle.seasonal_correction`). None for windows of a year or more (each holds every
    season) and when the earlier of the two has less than one window, or `SEASON_HISTORY_DAYS`, of
    history before it.
    """
    plan = _season_snapshots(cfg, end, h, latest)
    if not plan:
        return None
    cuts = [c for c, _ in plan]
    first = first_transaction(data)
    if first is None:
        return None
    need, days = max(h, SEASON_HISTORY_DAYS), (cuts[1] - first.normalize()).days  # from the first day
    if days < need:
        log.info(
            "no season: the snapshot a year before the latest, %s, has %s of data before it, under the "
            '%d a season needs (docs/models.md, "Season")',
            cuts[1].date(),
            counted(max(0, days), "day"),
            need,
        )
        return None
    log.info("season snapshots: %s (labels over %d days)", ", ".join(str(c.date()) for c in cuts), h)
    limit = cfg.models.max_training_accounts
    frame = build_training_frame(data, cuts, plan[0][1], max_accounts=limit, snapshots=snapshots)
    return frame if frame["snapshot"].nunique() == 2 else None


def backtest(
    data: Any, config: Config | None = None, cutoff: Any = None, *, snapshots: SnapshotCache | None = None
) -> BacktestResult:
    """Train on snapshots before `cutoff`, score the accounts at `cutoff`, compare with the baselines.

    Parameters
    ----------
    data : kamml.data.Dataset
        Validated tables.
    config : Config, optional
        `time` (horizon_days, train_horizon_days, snapshots, step_days, unit), `features`, `models`.
    cutoff : date-like, optional
        The test cutoff; default `time.cutoff`, else the latest cutoff with a whole label window.
    snapshots : kamml.features.snapshots.SnapshotCache, optional
        Keeps the snapshots (training ones, and the test cutoff's features with its labels) that it
        wants, for a later stage of the job (`kamml.jobs.train` trains the deployed model next).
    """
    cfg = config or Config()
    horizon = cfg.time.horizon_days
    cut = as_cutoff(cutoff or cfg.time.cutoff or default_cutoff(data, horizon))
    check_backtest_window(data, cfg, cut)  # before training, not after it
    bundle, train = train_bundle(data, cfg, cut, snapshots=snapshots)
    features = build_features(data, cut, cfg)
    labels = build_labels(data, cut, horizon, churn=cfg.models.churn_label)
    # the test cutoff's frame is a later model's latest snapshot when its settings (the labels' window)
    # are the training ones: the keys are then equal, and the cache wants it
    if snapshots is not None and snapshots.wants(cut, cfg):
        snapshots.put(cut, cfg, features.join(labels, how="inner"))
    labels = labels.reindex(features.index)
    # one BTYD fit at the test cutoff, for the baseline and anchored in kamml's bundle, which then
    # predicts exactly as the deployed pyfunc does (row-independent, stored parameters)
    bundle = bundle.anchor(features)
    btyd_fit = bundle.btyd
    # no drivers: no metric reads them, and naming them for every account (three TreeSHAP passes) took
    # about 4 minutes of a million-account backtest
    scores = bundle.predict(features, refit_btyd=False, top_drivers=0)
    unit = bundle.unit_days
    btyd = add_btyd_features(features, horizon / unit, btyd_fit)
    # the baseline's answer for an account without a purchase history (no value, no purchase), in its
    # metrics and in the predictions alike: they held NaN there, and metrics recomputed on them failed.
    # An account with a history and no value has no Gamma-Gamma forecast: left missing, not read as 0
    history = btyd["btyd_p_zero"].notna()
    btyd_value_note = _btyd_value_note(btyd_fit, bool(btyd.loc[history, "btyd_value"].isna().any()))
    btyd = btyd.assign(
        btyd_value=btyd["btyd_value"].where(history, 0.0), btyd_p_zero=btyd["btyd_p_zero"].fillna(1.0)
    )
    past = build_past_window(data, cut, horizon).reindex(features.index).fillna(0.0)

    y = labels["value"].to_numpy(float)
    if not np.nansum(y) > 0:
        end = (cut + pd.Timedelta(days=horizon - 1)).date()
        raise DataError(
            f"backtest: no account bought anything in the test window {cut.date()} to {end}, so there is "
            "nothing to evaluate; do the transactions reach the data end (data.end), or is there a gap "
            "in them? An earlier time.cutoff tests on a window with purchases"
        )
    value = {
        "kamml": value_metrics(y, scores["clv"].to_numpy(float)),
        "btyd": (
            dict.fromkeys(VALUE_KEYS, math.nan)
            if btyd_value_note
            else value_metrics(y, btyd["btyd_value"].to_numpy(float))
        ),
        "last_period": value_metrics(y, past["value"].to_numpy(float)),
    }
    churned = labels["churned"].to_numpy(int)
    churn = {
        "kamml": churn_metrics(churned, scores["p_churn"].to_numpy(float)),
        "btyd": churn_metrics(churned, btyd["btyd_p_zero"].to_numpy(float)),
        # DESIGN §5's recency rule: an account without a purchase in the last horizon churns (1, else 0)
        "recency": churn_metrics(churned, past["churned"].to_numpy(float)),
    }
    referral: dict[str, dict[str, float]] = {}
    referral_note = None
    if "referral_value" not in labels.columns:
        referral_note = "no referrals table in the data: no referral value to evaluate"
    elif not labels["referral_value"].sum() > 0:
        referral_note = (
            f"no referred account brought in value in the test window {cut.date()} to "
            f"{(cut + pd.Timedelta(days=horizon - 1)).date()}: no referral value to evaluate"
        )
    else:
        yr = labels["referral_value"].to_numpy(float)
        referral = {
            "kamml": value_metrics(yr, scores["referral_value"].to_numpy(float)),
            "past_rate": value_metrics(yr, past["referral_value"].to_numpy(float)),
        }
    params = {**btyd_fit.bgnbd, **(btyd_fit.gamma_gamma or dict.fromkeys(GAMMA_GAMMA_KEYS, math.nan))}
    protocol = {
        "cutoff": str(cut.date()),
        "horizon_days": horizon,
        "train_horizon_days": bundle.train_horizon_days,
        "training_snapshots": bundle.meta["snapshots"],
        # the season's snapshots (labels read too) set the levels: null when no season was measured
        "season_snapshots": bundle.meta.get("season", {}).get("snapshots"),
        "training_rows": int(bundle.meta.get("rows", len(train))),  # after models.max_training_accounts
        "test_accounts": len(features),
        "unit": cfg.time.unit,
        "label_window": [str(cut.date()), str((cut + pd.Timedelta(days=horizon - 1)).date())],
        "actual_total_value": float(np.sum(y)),
    }
    if btyd_value_note:
        protocol["btyd_value_note"] = btyd_value_note
    if "sampled_accounts" in bundle.meta:
        protocol["sampled_accounts"] = bundle.meta["sampled_accounts"]
    predictions = pd.concat(
        [
            labels,
            scores.rename(columns={"referral_value": "predicted_referral_value"}),
            btyd[["btyd_value", "btyd_p_zero"]],
            past.add_prefix("past_"),
        ],
        axis=1,
    )
    return BacktestResult(
        protocol, params, value, churn, referral, predictions, bundle, referral_note=referral_note
    )
