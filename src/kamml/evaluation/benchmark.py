"""The CDNOW benchmark: kamml beside BG/NBD x Gamma-Gamma on the classic calibration/holdout split.

Honesty rule: kamml's models use only data before the calibration end, labels included. A 39-week
holdout has no 39-week label window inside a 39-week calibration period, so the models train on shorter
label windows h that fit inside it (all CDNOW customers arrive in the first quarter of 1997, so training
snapshots start on 1997-04-01, when the whole cohort is present) and carry their predictions to the
holdout length with the BG/NBD stretch factors of `kamml.models.bundle`. At the earliest calibration
ends, where the configured snapshots do not fit after 1997-04-01, the first snapshot moves back as far as
they need with a 28-day window (not before 1997-01-29). Features, BTYD fits and
snapshots all stop at the calibration end; the holdout is read only to compute the metrics.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from kamml.config import Config, DataConfig, load_config
from kamml.data import load_data
from kamml.datasets.cdnow import CALIBRATION_END, HOLDOUT_END, load_cdnow
from kamml.errors import ConfigError
from kamml.evaluation.backtest import BacktestResult, backtest
from kamml.features._context import as_cutoff
from kamml.text import counted

__all__ = [
    "ACQUISITION_END",
    "EARLIEST_SNAPSHOT",
    "benchmark_cdnow",
    "benchmark_config",
    "honest_train_horizon",
    "warn_unused_window",
]

log = logging.getLogger(__name__)

#: Every CDNOW customer made the first purchase before this day (the cohort is complete from here).
ACQUISITION_END = pd.Timestamp("1997-04-01")
#: The earliest training snapshot at the earliest calibration ends: four weeks of CDNOW's purchases
#: (from 1997-01-01) behind it.
EARLIEST_SNAPSHOT = pd.Timestamp("1997-01-29")
#: The shortest honest label window, in days.
SHORTEST_WINDOW = 28
#: The first day of CDNOW's purchases.
DATA_START = pd.Timestamp("1997-01-01")


def honest_train_horizon(
    first_snapshot: pd.Timestamp,
    cutoff: pd.Timestamp,
    horizon: int,
    snapshots: int,
    step: int,
    earliest: pd.Timestamp | None = None,
) -> tuple[int, int]:
    """The longest honest label window (`horizon` itself when it fits, else whole weeks) and snapshots.

    Every snapshot starts on or after `first_snapshot` and every label window ends by `cutoff`. When
    all `snapshots` do not fit there with a window of at least 28 days, the first snapshot moves back
    as little as needed for them with a 28-day window, not before `earliest` (when given): with one
    snapshot the models have no held-out one for early stopping, calibration or the levels, which cost
    more at CDNOW's earliest ends than a cohort still arriving (docs/models.md). Failing that, fewer
    snapshots are used when that leaves a window of at least 28 days, after `first_snapshot` or, failing
    that too, after `earliest` (calibration ends in the first three weeks after the cohort completes
    were refused though two snapshots fit there).
    """
    if horizon < SHORTEST_WINDOW:
        raise ConfigError(
            f"a holdout of {counted(horizon, 'day')} is shorter than the shortest honest "
            f"training window ({SHORTEST_WINDOW} days): give an earlier calibration end or a later holdout "
            f"end (up to {HOLDOUT_END.date()})"
        )
    room = (cutoff - first_snapshot).days

    def window(k: int) -> int:
        """The longest whole-week window (at most `horizon`) of k snapshots after `first_snapshot`."""
        return min(horizon, (room - (k - 1) * step) // 7 * 7)

    if window(snapshots) < SHORTEST_WINDOW and earliest is not None:
        start = cutoff - pd.Timedelta(days=SHORTEST_WINDOW + (snapshots - 1) * step)
        if start >= earliest:
            return SHORTEST_WINDOW, snapshots
    for k in range(snapshots, 0, -1):
        if window(k) >= SHORTEST_WINDOW:
            return window(k), k
    for k in range(snapshots - 1, 0, -1):  # fewer, before the cohort completes: 1997-04-02 to 04-21
        if earliest is not None and cutoff - pd.Timedelta(days=SHORTEST_WINDOW + (k - 1) * step) >= earliest:
            return SHORTEST_WINDOW, k
    last_day = (cutoff - pd.Timedelta(days=1)).date()
    raise ConfigError(
        f"calibration end {last_day} leaves {room} days after {first_snapshot.date()} (up to the test "
        f"cutoff {cutoff.date()}): too short for an honest training window (at least {SHORTEST_WINDOW} days)"
    )


#: How errors name the two ends: the argument and the command's option (they named neither option).
CALIBRATION_NAME = "calibration end (--calibration-end)"
HOLDOUT_NAME = "holdout end (--holdout-end)"


def _check_ends(cal: pd.Timestamp, hold: pd.Timestamp) -> None:
    """Refuse ends outside 1997-04-01 < calibration end < holdout end <= 1998-06-30, or under 28 days apart.

    The message gave the whole chain and both dates, leaving the reader to find which of them was wrong;
    a calibration end past the data's last day blamed the holdout end, which can go no later.
    """
    span = f"the CDNOW data ({DATA_START.date()} to {HOLDOUT_END.date()})"
    if cal <= ACQUISITION_END:
        raise ConfigError(
            f"{CALIBRATION_NAME} {cal.date()} is not after {ACQUISITION_END.date()}: in {span} the customers "
            "arrive until then, and the models need a training history after it; give a later one"
        )
    if cal >= HOLDOUT_END:
        latest = (HOLDOUT_END - pd.Timedelta(days=SHORTEST_WINDOW)).date()
        raise ConfigError(
            f"{CALIBRATION_NAME} {cal.date()} is not before {HOLDOUT_END.date()}, the last day of {span}: "
            f"the holdout is at least {SHORTEST_WINDOW} days after it; give one on or before {latest}"
        )
    if hold <= cal:
        raise ConfigError(
            f"{HOLDOUT_NAME} {hold.date()} is not after the {CALIBRATION_NAME} {cal.date()}: the holdout "
            "is the days after the calibration period; give a later holdout end or an earlier calibration end"
        )
    if hold > HOLDOUT_END:
        raise ConfigError(
            f"{HOLDOUT_NAME} {hold.date()} is after {HOLDOUT_END.date()}, the last day of the CDNOW data: "
            "give one on or before it"
        )
    days = (hold - cal).days
    if days < SHORTEST_WINDOW:  # `honest_train_horizon` said so, naming neither option
        span = counted(days, "day")
        raise ConfigError(
            f"a holdout of {span} is shorter than the shortest honest training window ({SHORTEST_WINDOW} "
            f"days): the {HOLDOUT_NAME} {hold.date()} is {span} after the {CALIBRATION_NAME} {cal.date()}; "
            f"give an earlier calibration end or a later holdout end (up to {HOLDOUT_END.date()})"
        )


#: The benchmark's own training settings, under those a config file sets (`benchmark_config`).
BENCHMARK_SETTINGS: dict[str, dict[str, Any]] = {
    "time": {"snapshots": 3, "step_days": 28},
    "models": {"threads": 1},
}


def benchmark_config(path: str | Path | None = None, *, own: Config | None = None) -> Config:
    """The settings the benchmark trains with (3 snapshots 28 days apart, the default features and models).

    ``configs/cdnow.yaml`` trains the same way, so ``kamml backtest --config cdnow`` reads the benchmark's
    figures on the classic split (its features' windows were other ones: Gini 0.7204 against 0.7223).
    With a config file (`path`, or a packaged config's name), its features, models and engine sections
    are used, and its time.snapshots and time.step_days where it sets them (the benchmark's otherwise); the
    data (CDNOW) and the time window (the split, in weeks) are always the benchmark's. `own`: that file
    already read (`kamml benchmark` reads it once), so it is not read again.
    """
    if path is None:
        return Config.from_dict(BENCHMARK_SETTINGS)
    own = load_config(path) if own is None else own.model_copy(deep=True)  # its models section is changed
    cfg = Config.from_dict(BENCHMARK_SETTINGS)
    cfg.features, cfg.engine = own.features, own.engine
    for key in BENCHMARK_SETTINGS["time"]:
        if key in own.time.model_fields_set:
            setattr(cfg.time, key, getattr(own.time, key))
    if "threads" not in own.models.model_fields_set:
        own.models.threads = BENCHMARK_SETTINGS["models"]["threads"]
    cfg.models = own.models
    return cfg


def warn_unused_window(
    path: str | Path | None, calibration_end: Any, holdout_end: Any, *, own: Config | None = None
) -> None:
    """Log a warning when the config at `path` sets a time.cutoff or time.horizon_days the split does not use.

    The benchmark's window comes from its two ends alone (`benchmark_config`): a config's 90-day horizon
    ran the 273-day holdout with nothing said. Ends that break a rule raise here as in `benchmark_cdnow`.
    `own`: the file already read, so it is not read again.
    """
    if path is None:
        return
    cal = as_cutoff(calibration_end, CALIBRATION_NAME)
    hold = as_cutoff(holdout_end, HOLDOUT_NAME)
    _check_ends(cal, hold)
    time = (load_config(path) if own is None else own).time
    cutoff, horizon = (cal + pd.Timedelta(days=1)).date(), (hold - cal).days
    unused = []
    if "cutoff" in time.model_fields_set and time.cutoff is not None and time.cutoff != cutoff:
        unused.append(f"time.cutoff {time.cutoff}")
    if "horizon_days" in time.model_fields_set and time.horizon_days != horizon:
        unused.append(f"time.horizon_days {time.horizon_days}")
    if unused:
        log.warning(
            "config %s: %s not used: the benchmark's split is --calibration-end %s and --holdout-end %s "
            "(cutoff %s, %s)",
            path,
            " and ".join(unused),
            cal.date(),
            hold.date(),
            cutoff,
            counted(horizon, "day"),
        )


def benchmark_cdnow(
    calibration_end: Any = CALIBRATION_END,
    holdout_end: Any = HOLDOUT_END,
    *,
    sample: bool = False,
    config: Config | None = None,
) -> BacktestResult:
    """Backtest kamml on CDNOW: calibrate up to `calibration_end`, score the holdout up to `holdout_end`.

    Both ends are inclusive days; time is in weeks as in Fader, Hardie & Lee (2005).
    """
    cal = as_cutoff(calibration_end, CALIBRATION_NAME)
    hold = as_cutoff(holdout_end, HOLDOUT_NAME)
    _check_ends(cal, hold)
    cutoff = cal + pd.Timedelta(days=1)
    horizon = (hold - cal).days
    base = config or benchmark_config()
    h, k = honest_train_horizon(
        ACQUISITION_END, cutoff, horizon, base.time.snapshots, base.time.step_days, EARLIEST_SNAPSHOT
    )
    cfg = base.model_copy(deep=True)
    cfg.data = DataConfig()  # the CDNOW log in kamml's own column names, whatever the config maps
    cfg.time.unit = "weeks"
    cfg.time.horizon_days = horizon
    cfg.time.train_horizon_days = h
    cfg.time.snapshots = k
    cfg.data.end = hold.date()
    tx = load_cdnow(sample=sample)
    tx = tx[tx["ts"] <= hold].drop(columns=[c for c in ("master_id",) if c in tx.columns])
    data = load_data({"transactions": tx}, cfg)
    log.info(
        "CDNOW%s: calibration to %s, holdout %d days, training labels over %d days x %d snapshots",
        " sample" if sample else "",
        cal.date(),
        horizon,
        h,
        k,
    )
    result = backtest(data, cfg, cutoff)
    result.protocol.update(
        dataset="cdnow_sample" if sample else "cdnow",
        calibration_end=str(cal.date()),
        holdout_end=str(hold.date()),
    )
    return result
