"""Plots of kamml's outputs, drawn with matplotlib's Agg canvas and written atomically as PNG files.

No pyplot and no global backend switch: every figure is a `matplotlib.figure.Figure` on its own Agg
canvas, so plotting works in batch jobs without a display, in threads, and leaves a notebook's backend
alone.

Every plot takes plain pandas/numpy inputs and returns the path of the PNG it wrote, so MLflow logging
(`backtest_plots`) and the HTML report (`kamml.report.html`) draw the same pictures:

- model quality beside the baselines: `plot_gains` (cumulative gains with the random and perfect
  curves, and the lift per decile in a second panel), `plot_decile_calibration`,
  `plot_churn_calibration`, `plot_feature_importance` (with `feature_importance` to read the gain
  importance out of a model bundle);
- the plan: `plot_budget_curve`, `plot_tier_mix`, `plot_hours_per_rep`.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
import textwrap
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import Formatter, FuncFormatter, MaxNLocator, PercentFormatter

from kamml.allocation.summary import accounts_text, amount, hours_text
from kamml.config import NO_TIER
from kamml.errors import DataError
from kamml.evaluation.metrics import calibration_table, decile_table, normalized_gini
from kamml.io import atomic_path
from kamml.models.drivers import feature_words
from kamml.names import rep_name
from kamml.text import counted

if TYPE_CHECKING:
    from kamml.evaluation.backtest import BacktestResult
    from kamml.models.bundle import ModelBundle

__all__ = [
    "MODEL_LABELS",
    "account_counts",
    "at_capacity",
    "backtest_frame",
    "backtest_plots",
    "feature_importance",
    "feature_label",
    "figure_png",
    "gains_curve",
    "hours_text",
    "no_owner_label",
    "owner_labels",
    "ownerless_label",
    "plan_by",
    "plot_budget_curve",
    "plot_churn_calibration",
    "plot_decile_calibration",
    "plot_feature_importance",
    "plot_gains",
    "plot_hours_per_rep",
    "plot_tier_mix",
    "printable",
    "rep_capacities",
    "save_figure",
    "served_counts",
    "tier_labels",
    "tier_order",
]

logger = logging.getLogger(__name__)

#: The rep of the accounts without an owner, when some have one (`no_owner_label`: unless a rep has it).
NO_OWNER = "(no owner)"
#: The ownerless accounts' name when a rep is named `NO_OWNER` (numbered when that is a rep's name too).
NO_OWNER_ALT = "(accounts without an owner)"

FloatArray = npt.NDArray[np.float64]

DPI = 120
#: One `save_figure` at a time: its rc_context is process-wide (see there).
_RC_LOCK = threading.Lock()

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
"""Model colours in the order the models are given: kamml first, then the baselines."""

GAINS_POINTS = 2001
"""Gains curves longer than this are drawn on an even grid of this many points (they are piecewise linear)."""

MODEL_LABELS = {
    "kamml": "kamml",
    "btyd": "BG/NBD × Gamma-Gamma",
    "btyd_p_zero": "BG/NBD P(no purchase)",
    "last_period": "last period",
    "recency": "recency rule",
    "past_rate": "past referral value",
}
"""How the backtest's model keys read in legends and tables."""

_PRED_REFERRAL = "predicted_referral_value"


# ------------------------------------------------------------------------------------------ writing


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write `figure` as a PNG to `path` atomically (a temporary file renamed into place); return the path."""
    target = Path(path)
    png = figure_png(figure, target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(png)
    logger.debug("wrote %s", target)
    return target


def figure_png(figure: Figure, path: str | Path) -> bytes:
    """The bytes of `figure` as the PNG file `path` (named in errors and warnings), written nowhere.

    Rendering takes most of a save: a caller that writes other files with the chart renders it first,
    so a failure or a stop while rendering leaves those files as they were (`kamml allocate --curve`).
    """
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise DataError(f"cannot write {target}: plots are written as .png files")
    FigureCanvasAgg(figure)
    # a figure with a layout engine (kamml's are constrained) already fits its canvas; "tight" would
    # draw it twice
    bbox = None if figure.get_layout_engine() is not None else "tight"
    # every text literal: names are the user's (reps, tiers, columns), and matplotlib reads the text
    # between two '$' as maths ("$50k_$100k" failed to draw, "$100k-$1M" lost its dollars); texts made
    # so far are set here, tick labels made while drawing read the setting
    for text in figure.findobj(Text):
        text.set_parse_math(False)
        text.set_text(printable(text.get_text()))  # titles, legends, notes (tick labels: `_short`)
    # rc_context swaps a process-wide dict: two threads saving at once restored each other's values and
    # left maths off for the process (a report audit), so one save at a time
    buffer = io.BytesIO()
    with (
        _RC_LOCK,
        matplotlib.rc_context({"text.parse_math": False}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        # no "Software" text chunk: the PNG carries no matplotlib version or web address
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches=bbox, metadata={"Software": None})
    _glyph_warnings(caught, target)
    return buffer.getvalue()


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD: what UTF-8 (a page, a font) can hold.

    A name decoded with ``surrogateescape`` (or JSON text holding an unpaired escape) failed a chart
    with matplotlib's raw TypeError from its font code, and the report's page could not be written.
    """
    return _SURROGATE.sub("\ufffd", text)


_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")


def _glyph_warnings(caught: Sequence[warnings.WarningMessage], target: Path) -> None:
    """Matplotlib's missing-glyph warnings as one log line; other warnings passed on as they came.

    A rep or account name in a script the fonts lack (CJK with matplotlib's DejaVu Sans) raised one
    UserWarning per character on every chart, and failed the chart under ``-W error``.
    """
    missing: list[str] = []
    for w in caught:
        match = _MISSING_GLYPH.search(str(w.message))
        if match is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        elif chr(int(match.group(1))) not in missing:
            missing.append(chr(int(match.group(1))))
    if missing:
        shown = "".join(missing[:20]) + ("…" if len(missing) > 20 else "")
        logger.warning(
            "%s: the font lacks %d character%s of its names (%s), drawn as empty boxes",
            target.name,
            len(missing),
            "" if len(missing) == 1 else "s",
            shown,
        )


# ------------------------------------------------------------------------------------------ inputs


def _column(frame: pd.DataFrame, name: str, *, last: bool = False) -> pd.Series:
    """One column of `frame` by name; with duplicated names the first (or `last`) one.

    `BacktestResult.predictions` concatenates the labels and the scores, so ``referral_value`` is there
    twice: the actual label first, the model's score after it.
    """
    names = np.asarray(frame.columns, dtype=object)
    positions = np.flatnonzero(names == name)
    if positions.size == 0:
        raise DataError(f"the table lacks column {name!r}; it has {', '.join(map(str, frame.columns))}")
    if positions.size > 1:
        logger.debug(
            "column %r appears %d times; using the %s", name, positions.size, "last" if last else "first"
        )
    return frame.iloc[:, int(positions[-1] if last else positions[0])]


def _numbers(values: Any, what: str, *, n: int | None = None) -> FloatArray:
    """`values` as a finite 1-D float array (of length `n` when given), or a DataError naming `what`."""
    raw = np.asarray(values)
    if raw.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {raw.shape}")
    try:
        array = pd.to_numeric(pd.Series(raw)).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}") from None
    if array.size == 0:
        raise DataError(f"{what} is empty: nothing to plot")
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(f"{what} has {int(bad.sum()):,} missing or infinite values; fill or drop them first")
    if n is not None and array.size != n:
        raise DataError(f"{what} has {array.size:,} values but the actual values have {n:,}")
    return array


def _models(by_model: Mapping[str, Any], what: str) -> None:
    """Refuse an empty mapping of models."""
    if not by_model:
        raise DataError(f"no models given for the {what} plot")


def _color(i: int) -> str:
    """The colour of the i-th model."""
    return COLORS[i % len(COLORS)]


def _tier_color(i: int, n: int) -> Any:
    """The colour of the i-th of `n` tiers: the model colours, or tab20's when more tiers than those."""
    if n <= len(COLORS):
        return _color(i)
    return matplotlib.colormaps["tab20"](i % 20)


class _Thousands(Formatter):
    """Tick labels with thousands separators and the fewest decimals (up to 3) that tell them apart.

    Whole-number labels read a 0.5-hour axis as 0, 0, 1, 1, 2, 2 (a small plan's hours). Ticks finer
    than 3 decimals tell (money in amounts x1e-9: 0, 5e-07, 1e-06) are written to 3 significant digits:
    to 3 decimals they all read 0.000.
    """

    def __init__(self) -> None:
        self.decimals: int | None = 0

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:.3g}" if self.decimals is None else f"{x:,.{self.decimals}f}"

    def format_ticks(self, values: Any) -> list[str]:
        ticks = np.asarray(values, dtype=float)
        ticks = ticks[np.isfinite(ticks)]
        scale = max(1.0, float(np.abs(ticks).max())) if ticks.size else 1.0
        self.decimals = next(
            (d for d in range(4) if np.allclose(np.round(ticks, d), ticks, rtol=0, atol=1e-9 * scale)), None
        )
        return [self(v) for v in values]


def _thousands(axis: Any) -> None:
    """Tick labels with thousands separators (`_Thousands`)."""
    axis.set_major_formatter(_Thousands())


# ------------------------------------------------------------------------------------------ gains


def gains_curve(y_true: Any, score: Any, points: int = GAINS_POINTS) -> tuple[FloatArray, FloatArray]:
    """Cumulative gains: share of the actual total captured by the top share of accounts ranked by score.

    Accounts are ranked by `score`, highest first; inside a group of tied scores the captured value
    grows linearly, its expectation over random tie-breaking (as in `kamml.evaluation.metrics`). The
    curve is piecewise linear between the ends of the tied groups, so it is exact at those points and
    resampled on an even grid of `points` points when longer.

    Parameters
    ----------
    y_true, score : array-like
        Actual values and the ranking score, finite, of equal length.
    points : int, default 2001
        Most points returned.

    Returns
    -------
    tuple of numpy.ndarray
        Share of accounts (0 to 1) and share of the actual total captured (0 to 1 when every value is
        >= 0), both starting at 0.

    Raises
    ------
    kamml.errors.DataError
        On missing values, unequal lengths, or an actual total of 0 (nothing to capture).

    Examples
    --------
    >>> x, y = gains_curve([5.0, 0.0, 5.0, 0.0], [4.0, 3.0, 2.0, 1.0])
    >>> x.tolist(), y.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y = _numbers(y_true, "actual values")
    s = _numbers(score, "score", n=y.size)
    total = float(y.sum())
    if total == 0:
        raise DataError("the actual values sum to 0: there is no value to capture")
    order = np.argsort(-s, kind="stable")
    ends = np.r_[np.flatnonzero(np.diff(s[order]) != 0) + 1, y.size]
    captured = np.cumsum(y[order])[ends - 1]
    x = np.r_[0.0, ends / y.size]
    g = np.r_[0.0, captured / total]
    if x.size > points:
        grid = np.linspace(0.0, 1.0, points)
        return grid, np.interp(grid, x, g)
    return x, g


def plot_gains(
    predictions: pd.DataFrame,
    path: str | Path,
    *,
    actual: str = "value",
    models: Mapping[str, str],
    title: str | None = None,
) -> Path:
    """Draw the cumulative gains of each model beside the random and perfect orderings, and lift by decile.

    Left panel: the share of the actual total held by the top x % of accounts ranked by each model's
    prediction (gains; the legend gives each model's normalised Gini), with the diagonal of a random
    ordering and the curve of the perfect (oracle) ordering by the actual values. Right panel: the lift
    of each decile of prediction, its mean actual value over the overall mean (1 = random).

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per account with the actual column and one column per model, such as
        `BacktestResult.predictions`. Duplicated column names are allowed: `actual` takes the first
        column of that name, a model the last (in a backtest's predictions the labels come before the
        scores, so ``referral_value`` reads as the label for `actual` and as the score for a model).
    path : str or Path
        The ``.png`` file to write (atomically).
    actual : str, default "value"
        Column of actual values.
    models : mapping of str to str
        Legend name -> column of that model's prediction, kamml first, then the baselines.
    title : str, optional
        Figure title; "Cumulative gains: <actual>" by default.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        When a column is missing, holds missing values, the actual total is 0, or `path` is no ``.png``.
    """
    _models(models, "gains")
    y = _numbers(_column(predictions, actual), f"actual column {actual!r}")
    scores = {
        name: _numbers(_column(predictions, column, last=True), f"column {column!r}", n=y.size)
        for name, column in models.items()
    }
    figure = Figure(figsize=(11.0, 4.4), layout="constrained")
    gains, lift = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
    gains.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    ox, oy = gains_curve(y, y)
    gains.plot(ox, oy, linestyle=":", color="black", linewidth=1.2, label="perfect (oracle)")
    width = 0.8 / len(scores)
    lowest = float(oy.min())
    for i, (name, score) in enumerate(scores.items()):
        x, g = gains_curve(y, score)
        lowest = min(lowest, float(np.nanmin(g)) if len(g) else lowest)  # refunds ranked first dip below 0
        gini = normalized_gini(y, score)
        label = name if math.isnan(gini) else f"{name} (Gini {gini:.2f})"
        gains.plot(x, g, color=_color(i), linewidth=2.0 if i == 0 else 1.4, label=label)
        deciles = decile_table(y, score)
        mean = float(y.mean())
        lifts = deciles["actual_mean"].to_numpy() / mean if mean != 0 else np.full(len(deciles), np.nan)
        offset = (i - (len(scores) - 1) / 2) * width
        lift.bar(deciles["decile"] + offset, lifts, width=width, color=_color(i), label=name)
    gains.set_xlim(0, 1)
    gains.set_ylim(bottom=min(0.0, lowest))
    gains.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    gains.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    gains.set_xlabel("share of accounts, ranked by prediction")
    gains.set_ylabel(f"share of actual {actual.replace('_', ' ')} captured")
    gains.grid(alpha=0.3)
    gains.legend(fontsize=8, loc="lower right")
    gains.set_title(title or f"Cumulative gains: {actual.replace('_', ' ')}")
    lift.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    lift.set_xticks(range(1, 11))
    lift.set_xlabel("decile of prediction (1 = highest)")
    lift.set_ylabel("lift (decile mean / overall mean)")
    lift.grid(alpha=0.3, axis="y")
    lift.legend(fontsize=8, loc="upper right")
    lift.set_title("Lift by decile")
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------------ calibration


def plot_decile_calibration(
    y_true: Any,
    y_pred_by_model: Mapping[str, Any],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw predicted beside actual totals in each decile of predicted value, one panel per model.

    A calibrated value model has bars of equal height in every decile; the panel titles give the decile
    MAPE (mean absolute percentage error of the decile totals) and the aggregate error.

    Parameters
    ----------
    y_true : array-like
        Actual values per account.
    y_pred_by_model : mapping of str to array-like
        Legend name -> predicted values (same order and length as `y_true`), kamml first.
    path : str or Path
        The ``.png`` file to write (atomically).
    title : str, optional
        Figure title; "Predicted vs actual value by decile" by default.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        On missing values, unequal lengths, no model, or a `path` that is no ``.png``.
    """
    _models(y_pred_by_model, "decile calibration")
    y = _numbers(y_true, "actual values")
    preds = {name: _numbers(p, f"predictions of {name}", n=y.size) for name, p in y_pred_by_model.items()}
    k = len(preds)
    figure = Figure(figsize=(max(5.0, 4.2 * k), 4.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, k, sharey=True))
    for i, ((name, pred), ax) in enumerate(zip(preds.items(), axes, strict=True)):
        table = decile_table(y, pred)
        ape = table["ape"].to_numpy()
        mape = float(np.nanmean(ape)) if np.isfinite(ape).any() else math.nan
        total = float(y.sum())
        agg = (float(pred.sum()) - total) / total if total != 0 else math.nan
        ax.bar(table["decile"] - 0.2, table["actual_total"], width=0.4, color="lightgrey", label="actual")
        ax.bar(table["decile"] + 0.2, table["predicted_total"], width=0.4, color=_color(i), label="predicted")
        ax.set_xticks(range(1, 11))
        ax.set_xlabel("decile of prediction (1 = highest)")
        _thousands(ax.yaxis)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper right")
        # without actual value (a test period without purchases) neither error exists: it read "nan%"
        mape_text = f"{mape:.0%}" if math.isfinite(mape) else "–"
        agg_text = f"{agg:+.0%}" if math.isfinite(agg) else "–"
        ax.set_title(f"{name}\ndecile MAPE {mape_text}, aggregate error {agg_text}", fontsize=10)
    axes[0].set_ylabel("total value in the decile")
    # wrapped to the figure: a one-panel figure (a backtest without BTYD's value) cut its title at both ends
    width = int(figure.get_figwidth() * 10)
    lines = (title or "Predicted vs actual value by decile").splitlines()
    figure.suptitle("\n".join(textwrap.fill(line, width) for line in lines))
    return save_figure(figure, path)


def plot_churn_calibration(
    y_true: Any,
    p_by_model: Mapping[str, Any],
    path: str | Path,
    *,
    bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "quantile",
    title: str | None = None,
) -> Path:
    """Draw the reliability curve of each churn probability: observed churn rate against the prediction.

    Accounts are binned by predicted probability (`kamml.evaluation.metrics.calibration_table`); each
    point is a bin's mean prediction and its observed churn rate, so a calibrated model lies on the
    diagonal. The legend gives each model's Brier score.

    Parameters
    ----------
    y_true : array-like of 0/1
        1 when the account churned (no purchase in the horizon).
    p_by_model : mapping of str to array-like
        Legend name -> churn probabilities in [0, 1], kamml first.
    path : str or Path
        The ``.png`` file to write (atomically).
    bins : int, default 10
        Number of bins.
    strategy : {"quantile", "uniform"}, default "quantile"
        Bins of equal numbers of accounts, or of equal width on [0, 1].
    title : str, optional
        Figure title; "Churn calibration" by default.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        On missing values, outcomes other than 0/1, probabilities outside [0, 1], unequal lengths.
    """
    _models(p_by_model, "churn calibration")
    y = _numbers(y_true, "churn outcomes")
    if not np.all((y == 0) | (y == 1)):
        raise DataError("churn outcomes must be 0 or 1")
    figure = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for i, (name, values) in enumerate(p_by_model.items()):
        p = _numbers(values, f"probabilities of {name}", n=y.size)
        if p.min() < 0 or p.max() > 1:
            raise DataError(f"probabilities of {name} must lie in [0, 1]")
        table = calibration_table(y, p, bins=bins, strategy=strategy)
        brier = float(np.mean((p - y) ** 2))
        ax.plot(
            table["mean_predicted"],
            table["observed_rate"],
            marker="o",
            markersize=4,
            color=_color(i),
            linewidth=2.0 if i == 0 else 1.4,
            label=f"{name} (Brier {brier:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("predicted churn probability (bin mean)")
    ax.set_ylabel("observed churn rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "Churn calibration")
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------------ importance


def feature_importance(bundle: ModelBundle) -> pd.DataFrame:
    """Gain importance of every feature in each of the bundle's LightGBM models (clv, churn, influence).

    Read from each model's booster (``booster_.feature_importance("gain")``); features are named by
    ``booster_.feature_name()``, or by the model's own feature names when LightGBM was given sanitised
    ones. A model the bundle lacks (no influence model without referrals) has no column.

    Returns
    -------
    pandas.DataFrame
        Indexed by feature, columns ``clv``, ``churn`` and (when fitted) ``influence``, the total gain of
        the splits on that feature; sorted by the first column, largest first. Features a model never
        used have 0.
    """
    columns: dict[str, pd.Series] = {}
    for name in ("clv", "churn", "influence"):
        model = getattr(bundle, name, None)
        booster = getattr(model, "booster_", None)
        if booster is None:
            continue
        gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
        names = [str(n) for n in booster.feature_name()]
        own = getattr(model, "feature_names_", None)
        if own is not None and len(own) == len(names):
            names = [str(n) for n in own]
        columns[name] = pd.Series(gain, index=pd.Index(names, name="feature")).groupby(level=0).sum()
    if not columns:
        raise DataError("the model bundle holds no fitted LightGBM model")
    table = pd.DataFrame(columns).fillna(0.0)
    table.index.name = "feature"
    return table.sort_values(next(iter(columns)), ascending=False, kind="stable")


def feature_label(feature: str, unit_days: int = 1, window_days: int | None = None) -> str:
    """A feature's bar label: its words, then the column in square brackets.

    Square, since the words may end in their own round bracket: ``"size (account attribute) [attr_size]"``.
    """
    words = feature_words(feature, unit_days, window_days)
    return feature if words == feature else f"{words} [{feature}]"


def plot_feature_importance(
    importance: pd.Series,
    path: str | Path,
    *,
    top: int = 20,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Draw the `top` features by gain importance as horizontal bars, largest on top.

    Bars show each feature's share of the model's total gain, so models trained on different data read
    on one scale.

    Parameters
    ----------
    importance : pandas.Series
        Gain importance indexed by feature name (a column of `feature_importance`).
    path : str or Path
        The ``.png`` file to write (atomically).
    top : int, default 20
        Number of features shown.
    title : str, optional
        Figure title; "Feature importance (gain): <series name>" by default. Long titles wrap.
    labels : mapping, optional
        Bar labels by feature name (words for readers who do not know the columns); a feature without
        one is labelled by its name. Long labels wrap.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        When `importance` is empty or holds missing or negative values, or `top` < 1.
    """
    if top < 1:
        raise DataError(f"top must be at least 1, got {top}")
    values = _numbers(importance.to_numpy(), "feature importance")
    if (values < 0).any():
        raise DataError("gain importance cannot be negative")
    series = pd.Series(values, index=[str(i) for i in importance.index])
    shown = series.sort_values(ascending=False, kind="stable").head(top)[::-1]
    total = float(series.sum())
    share = shown / total if total > 0 else shown
    names = [textwrap.fill(printable((labels or {}).get(f, f)), 48) for f in shown.index]
    lines = sum(n.count("\n") + 1 for n in names)
    figure = Figure(figsize=(8.0, 1.4 + 0.16 * lines + 0.12 * len(shown)), layout="constrained")
    ax = figure.add_subplot()
    ax.barh(np.arange(len(shown)), share.to_numpy(), color="tab:blue")
    ax.set_yticks(np.arange(len(shown)), names, fontsize=8)
    if total > 0:  # decimals as each tick needs: 2.5 % steps read "2, 5, 8 %" with none
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.10g}%"))
        ax.set_xlabel("share of the model's total gain")
    else:
        ax.set_xlabel("gain (the model made no splits)")
    ax.grid(alpha=0.3, axis="x")
    name = f": {importance.name}" if importance.name is not None else ""
    # over the figure, not the axes: long bar labels push the axes right, and a title centred on them
    # ran past the figure's edge
    figure.suptitle(textwrap.fill(title or f"Feature importance (gain){name}", 70), fontsize="large")
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------------ allocation


def _allocation_columns(allocation: pd.DataFrame, needed: Sequence[str]) -> None:
    """Refuse an allocation table that lacks a needed column."""
    missing = [c for c in needed if c not in allocation.columns]
    if missing:
        raise DataError(
            f"the allocation table lacks columns {missing}; it has {', '.join(map(str, allocation.columns))}"
        )
    if allocation.empty:
        raise DataError("the allocation table is empty: nothing to plot")


def served_counts(allocation: pd.DataFrame) -> np.ndarray:
    """How many accounts each row stands for that get hours: its ``served`` column, else 1 with hours > 0.

    NaN for a grouped row (an ``accounts`` column) without ``served``: its hours do not say how many of
    its accounts have some; NaN too for a row whose hours are missing or infinite. A plan where 71 of
    1,179 strategic accounts got hours showed only the 1,179 (a CDNOW audit).
    """
    if "served" in allocation.columns:
        return pd.to_numeric(allocation["served"], errors="coerce").fillna(0).to_numpy(dtype=float)
    if "accounts" in allocation.columns:
        return np.full(len(allocation), np.nan)
    hours = _hours(allocation)
    return np.where(np.isnan(hours), np.nan, np.where(hours > 0, account_counts(allocation), 0.0))


def _hours(allocation: pd.DataFrame) -> FloatArray:
    """The ``recommended_hours`` as floats, a missing, infinite or non-numeric one NaN (not known)."""
    hours = pd.to_numeric(allocation["recommended_hours"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(hours), hours, np.nan)


def account_counts(allocation: pd.DataFrame) -> np.ndarray:
    """How many accounts each row of an allocation table stands for: its ``accounts`` column, else 1.

    A plan summarised per tier and rep (as a Spark run hands the report) carries the count of each group.
    """
    if "accounts" in allocation.columns:
        return pd.to_numeric(allocation["accounts"], errors="coerce").fillna(0).to_numpy(dtype=float)
    return np.ones(len(allocation))


def owner_labels(allocation: pd.DataFrame) -> pd.Series:
    """Each account's owner as text, a missing one as `ownerless_label`: the rep of the per-rep chart, table.

    A rep literally named "(no owner)" was one row and bar with the accounts without an owner.
    """
    owner = allocation["owner"]
    return owner.astype(object).where(owner.notna(), ownerless_label(allocation) or NO_OWNER).astype(str)


def ownerless_label(allocation: pd.DataFrame) -> str | None:
    """The name of the accounts without an owner in `owner_labels`; None when every account has one."""
    owner = allocation["owner"]
    if not owner.isna().any():
        return None
    return no_owner_label(owner[owner.notna()].astype(object).astype(str).unique())


def no_owner_label(names: Iterable[str]) -> str:
    """A name for the accounts without an owner that no rep of `names` has (spaces around them aside).

    "(no owner)", else "(accounts without an owner)", else that numbered: the first one free.
    """
    # only a name holding "owner)" can be one of them: a million names were stripped into a set each time
    taken = {text.strip() for text in map(str, names) if "owner)" in text}
    numbered = (f"{NO_OWNER_ALT} {k}" for k in itertools.count(2))
    return next(label for label in itertools.chain([NO_OWNER, NO_OWNER_ALT], numbered) if label not in taken)


#: Hours used within this share of a rep's capacity are all of it: the optimizer fills a capacity to
#: about 1e-9 of it, and the Spark plan agrees with the in-memory one to 1e-6 hours.
AT_CAPACITY_RTOL = 1e-6


def rep_capacities(allocation: pd.DataFrame, reps: Iterable[str]) -> pd.Series:
    """Each rep's configured hours (the summary's ``rep_capacity``) by its `owner_labels` name; NaN for none.

    Owners meet their reps as the config matches them (`kamml.names.rep_name`: owner 101.0 is rep "101");
    the accounts without an owner have no capacity, whatever their label.
    """
    capacity = (allocation.attrs.get("allocation") or {}).get("rep_capacity") or {}
    keys = list(reps)
    if not capacity:  # no rep has one: without naming a million owners (and their ownerless label) again
        return pd.Series(math.nan, index=keys, dtype=float)
    ownerless = ownerless_label(allocation) if "owner" in allocation.columns else None
    hours = [
        math.nan if rep == ownerless else float(capacity.get(rep_name(rep) or "", math.nan)) for rep in keys
    ]
    return pd.Series(hours, index=keys, dtype=float)


def at_capacity(hours: float, capacity: float) -> bool:
    """Whether a rep's `hours` are all of its `capacity` (within `AT_CAPACITY_RTOL`); False without one."""
    if not math.isfinite(capacity):
        return False
    return hours >= capacity * (1 - AT_CAPACITY_RTOL) - 1e-9


def plan_by(allocation: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    """Per key (a tier or a rep): accounts, those with hours, hours and, when given, expected gain.

    A figure is NaN for a key with a row that does not know it: ``served`` (`served_counts`), hours or
    gain missing or infinite (a tier of missing hours read 0 hours, "0 with hours" and a 0% share). One
    grouping for the report's tier and rep tables and the per-rep chart, so their counts always agree.
    """
    frame = pd.DataFrame(
        {
            "key": keys.to_numpy(),
            "accounts": account_counts(allocation),
            "served": served_counts(allocation),
            "hours": _hours(allocation),
        }
    )
    if "expected_gain" in allocation.columns:
        gain = pd.to_numeric(allocation["expected_gain"], errors="coerce").to_numpy(dtype=float)
        frame["gain"] = np.where(np.isfinite(gain), gain, np.nan)
    groups = frame.groupby("key")
    out = groups.sum().where(groups.count().eq(groups.size(), axis=0))
    out.index.name = None
    return out


def tier_labels(allocation: pd.DataFrame) -> pd.Series:
    """Each account's tier as text (missing as `kamml.config.NO_TIER`, a name no tier may take)."""
    return allocation["tier"].astype(object).where(allocation["tier"].notna(), NO_TIER).astype(str)


def tier_order(allocation: pd.DataFrame, tiers: pd.Series) -> list[str]:
    """Tiers from the best to the worst: as configured (the plan's summary names them), then by rank.

    The configured order comes first because tiers need not follow the rank: with
    ``allocation.tier_by: clv`` they go by value while the rank goes by expected gain. Tiers the summary
    does not name follow by the best rank in each, else by first appearance.
    """
    present = [str(t) for t in dict.fromkeys(tiers)]
    named = (allocation.attrs.get("allocation") or {}).get("tiers") or []
    order = [str(t) for t in named if str(t) in present]
    rest = [t for t in present if t not in order]
    if "rank" in allocation.columns and rest:
        best = pd.Series(
            pd.to_numeric(allocation["rank"], errors="coerce").to_numpy(), index=tiers.to_numpy()
        )
        ranked = best.groupby(level=0, sort=False).min().sort_values(kind="stable").index
        rest = [str(t) for t in ranked if str(t) in rest]
    return order + rest


LABEL_WIDTH = 40
"""Most characters of a rep's or tier's name on a chart (the report's tables show it whole)."""


def _short(name: str) -> str:
    """`name` cut to `LABEL_WIDTH` characters with an ellipsis: a 300-character name collapsed the axes.

    `printable`: tick labels are set again from this text while the figure is drawn.
    """
    name = printable(name)
    return name if len(name) <= LABEL_WIDTH else name[: LABEL_WIDTH - 1] + "…"


def _label_bars(ax: Axes, bars: Any, texts: Sequence[str]) -> None:
    """Write each bar's value above it."""
    for bar, text in zip(bars, texts, strict=True):
        ax.annotate(
            text,
            xy=(bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )


def plot_tier_mix(allocation: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Draw how many accounts, hours and (when present) how much expected gain each tier gets.

    Parameters
    ----------
    allocation : pandas.DataFrame
        The allocation table (`kamml.allocation.allocate`): ``tier`` and ``recommended_hours`` are needed;
        ``expected_gain`` adds a panel and ``rank`` orders the tiers (best first).
    path : str or Path
        The ``.png`` file to write (atomically).
    title : str, optional
        Figure title; by default "Accounts, hours and expected gain by tier" (without gain, "Accounts and
        hours by tier"): the panels drawn.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        When a needed column is missing, the table is empty, or `path` is no ``.png``.
    """
    _allocation_columns(allocation, ["tier", "recommended_hours"])
    tiers = tier_labels(allocation)
    order = tier_order(allocation, tiers)
    hours = pd.Series(_numbers(allocation["recommended_hours"], "recommended_hours"), index=tiers.to_numpy())
    counts = pd.Series(account_counts(allocation), index=tiers.to_numpy())
    panels: list[tuple[str, pd.Series, Any]] = [  # label, values, format string or function
        ("accounts", counts.groupby(level=0).sum().reindex(order, fill_value=0), "{:,.0f}"),
        ("recommended hours", hours.groupby(level=0).sum().reindex(order, fill_value=0.0), hours_text),
    ]
    if "expected_gain" in allocation.columns:
        gain = pd.Series(_numbers(allocation["expected_gain"], "expected_gain"), index=tiers.to_numpy())
        panels.append(("expected gain", gain.groupby(level=0).sum().reindex(order, fill_value=0.0), amount))
    figure = Figure(figsize=(3.6 * len(panels), 3.8), layout="constrained")
    axes = figure.subplots(1, len(panels))
    for i, ((label, values, fmt), ax) in enumerate(zip(panels, np.atleast_1d(axes), strict=True)):
        bars = ax.bar(range(len(order)), values.to_numpy(dtype=float), color=_color(i))
        _label_bars(ax, bars, [fmt(v) if callable(fmt) else fmt.format(v) for v in values])
        ax.set_xticks(range(len(order)), map(_short, order), rotation=20 if len(order) > 4 else 0, fontsize=9)
        _thousands(ax.yaxis)
        if label == "accounts":  # whole accounts: a small plan's axis read 0.2, 0.4 accounts
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        # accounts and hours: at least 1 (a lone 0.25 h touch); gain in the amounts' own unit (x1e-9: a
        # top of 1 left its bars 1e-4 of the axis), 1 when nothing is gained
        top = float(values.max())
        ax.set_ylim(top=(max(1.0, top) if label != "expected gain" or not top > 0 else top) * 1.15)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(label, fontsize=10)
    drawn = "Accounts, hours and expected gain" if len(panels) == 3 else "Accounts and hours"
    figure.suptitle(title or f"{drawn} by tier")
    return save_figure(figure, path)


def plot_hours_per_rep(
    allocation: pd.DataFrame,
    path: str | Path,
    *,
    top: int = 30,
    title: str | None = None,
    owners: pd.Series | None = None,
    by_owner: pd.DataFrame | None = None,
) -> Path | None:
    """Draw each rep's recommended hours, split by tier; None when the accounts have no owners.

    Reps are sorted by hours, most first; beyond `top` reps the rest are drawn as one bar. Accounts
    without an owner, when some have one, form a "(no owner)" bar ("(accounts without an owner)" when a
    rep has that name: `no_owner_label`). Each bar reads its hours, of the rep's capacity when the plan's
    summary (``attrs["allocation"]["rep_capacity"]``) gives one, and how many of the rep's accounts get
    them ("12 h on 2 of 3 accounts", "160 of 160 h (at capacity) on 40 accounts").

    Parameters
    ----------
    allocation : pandas.DataFrame
        The allocation table: ``owner`` and ``recommended_hours``; ``tier`` splits the bars.
    path : str or Path
        The ``.png`` file to write (atomically).
    top : int, default 30
        Most reps drawn one by one.
    title : str, optional
        Figure title; "Recommended hours per rep" by default.
    owners, by_owner : pandas.Series and pandas.DataFrame, optional
        ``owner_labels(allocation)`` and ``plan_by(allocation, owners)``, when the caller has them (the
        report's rep table reads the same): grouping a million owners again took seconds.

    Returns
    -------
    pathlib.Path or None
        `path`, or None (nothing written) when there is no ``owner`` column or every owner is missing.

    Raises
    ------
    kamml.errors.DataError
        When ``recommended_hours`` is missing, the table is empty, or `path` is no ``.png``.
    """
    if "owner" not in allocation.columns or allocation["owner"].isna().all():
        logger.info("no hours-per-rep plot: the allocation table has no account owners")
        return None
    if top < 1:
        raise DataError(f"top must be at least 1, got {top}")
    _allocation_columns(allocation, ["recommended_hours"])
    owner = owner_labels(allocation) if owners is None else owners
    tiered = "tier" in allocation.columns
    tiers = tier_labels(allocation) if tiered else pd.Series("all", index=allocation.index)
    order = tier_order(allocation, tiers) if tiered else ["all"]
    frame = pd.DataFrame(
        {
            "owner": owner.to_numpy(),
            "tier": tiers.to_numpy(),
            "hours": _numbers(allocation["recommended_hours"], "recommended_hours"),
        }
    )
    table = frame.pivot_table(index="owner", columns="tier", values="hours", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=order, fill_value=0.0)
    reps = plan_by(allocation, owner) if by_owner is None or owners is None else by_owner
    if not reps.index.equals(table.index):  # both sorted by owner: the same rows, in the same order
        reps = reps.reindex(table.index)
    # rows by position, most hours first: label lookups on a million owners took seconds (a report audit)
    ranked = pd.Series(table.sum(axis=1).to_numpy()).sort_values(ascending=False, kind="stable").index
    counts = reps["accounts"].to_numpy()[ranked[:top]].tolist()
    served = reps["served"].to_numpy()[ranked[:top]].tolist()
    shown = table.iloc[ranked[:top]]
    if len(table) > top:
        rest = ranked[top:]
        other = counted(len(rest), "other rep")
        while other in shown.index:  # a rep of that very name must keep its own bar
            other += " "
        counts.append(int(reps["accounts"].iloc[rest].sum()))
        served.append(reps["served"].iloc[rest].sum(min_count=len(rest)))
        shown = pd.concat([shown, table.iloc[rest].sum().to_frame(other).T])
    table = shown[::-1]
    accounts = pd.Series(counts[::-1], index=range(len(table)))  # bottom up, as the bars
    served_by_bar = pd.Series(served[::-1], index=range(len(table)), dtype=float)
    legend_rows = 0 if len(order) < 2 else -(-len(order) // 5)
    figure = Figure(figsize=(7.5, 1.4 + 0.3 * len(table) + 0.25 * legend_rows), layout="constrained")
    ax = figure.add_subplot()
    left = np.zeros(len(table))
    y = np.arange(len(table))
    for i, tier in enumerate(order):
        values = table[tier].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=_tier_color(i, len(order)), label=_short(tier))
        left += values
    capacity = rep_capacities(allocation, [str(rep) for rep in table.index])
    if len(reps) > top:  # the other reps' bar has no capacity, even named like a rep ("2 other reps ")
        capacity.iloc[0] = math.nan  # bottom up: the rest are drawn first
    for yi, total in enumerate(left):
        ax.annotate(
            f"{_hours_of(total, float(capacity.iloc[yi]))} on "
            f"{_served_text(served_by_bar.iloc[yi], int(accounts.iloc[yi]))}",
            xy=(total, yi),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(y, [_short(str(r)) for r in table.index], fontsize=8)
    ax.set_xlim(right=max(1.0, float(left.max())) * 1.3)
    _thousands(ax.xaxis)
    ax.set_xlabel("recommended hours")
    ax.grid(alpha=0.3, axis="x")
    if len(order) > 1:  # below the axes: inside, it covered a bar's total, and spilt over a short figure
        figure.legend(fontsize=8, loc="outside lower center", ncols=min(len(order), 5))
    ax.set_title(title or "Recommended hours per rep")
    return save_figure(figure, path)


def _hours_of(hours: float, capacity: float) -> str:
    """A rep's hours, of its capacity when it has one: "12 of 12 h (at capacity)", "2 of 5 h", "3 h"."""
    if not math.isfinite(capacity):
        return f"{hours_text(hours)} h"
    full = " (at capacity)" if at_capacity(hours, capacity) else ""
    return f"{hours_text(hours)} of {hours_text(capacity)} h{full}"


def _served_text(served: float, accounts: int) -> str:
    """A rep's accounts in words: "2 of 3 accounts" when some get no hours, else "3 accounts" (or unknown).

    A bar read "160 h, 100 accounts" beside the tables' "Accounts" and "With hours" (a report audit).
    """
    if math.isfinite(served) and served < accounts:
        return f"{int(served):,} of {accounts_text(accounts)}"
    return accounts_text(accounts)


def plot_budget_curve(
    curve: pd.DataFrame, path: str | Path, *, title: str | None = None, horizon_days: int | None = None
) -> Path:
    """Draw the budget curve (`budget_curve_figure`) and write it to `path` as a PNG; return `path`."""
    return save_figure(budget_curve_figure(curve, title=title, horizon_days=horizon_days), path)


def budget_curve_figure(
    curve: pd.DataFrame, *, title: str | None = None, horizon_days: int | None = None
) -> Figure:
    """The budget curve: total expected gain against team hours, with the value of one more hour.

    The gain (left axis) flattens as hours grow: each extra hour goes to a less valuable use. The team's
    price of an hour (right axis, dashed) is the slope of that curve. The given budget (fraction 1, when
    the curve has it) is marked with a vertical line.

    Parameters
    ----------
    curve : pandas.DataFrame
        As from `kamml.allocation.allocate.budget_curve`: ``hours``, ``total_gain`` and ``team_price``
        (``fraction`` optional); rows with NaN gain (budgets below the floors) are left out.
    title : str, optional
        Figure title; "Expected gain vs team hours" by default.
    horizon_days : int, optional
        The plan's horizon, named on the hours axis ("team hours over the 180-day horizon"); "in the
        period" when not given.

    Returns
    -------
    matplotlib.figure.Figure
        The drawn figure (`save_figure` writes it), so a caller can draw before writing anything.

    Raises
    ------
    kamml.errors.DataError
        When `curve` lacks a column or has no feasible budget (or, writing, `path` is no ``.png`` name).
    """
    missing = [c for c in ("hours", "total_gain", "team_price") if c not in curve.columns]
    if missing:
        raise DataError(f"budget curve lacks columns {missing}; it has {list(curve.columns)}")
    points = curve[np.isfinite(curve["total_gain"].to_numpy(dtype=float))].sort_values("hours")
    if points.empty:
        raise DataError("budget curve has no feasible budget to plot (every budget is below the floors)")

    figure = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(points["hours"], points["total_gain"], marker="o", markersize=3, color="tab:blue", label="gain")
    ax.set_xlabel(
        "team hours in the period"
        if horizon_days is None
        else f"team hours over the {horizon_days:,}-day horizon"
    )
    ax.set_ylabel("total expected gain", color="tab:blue")
    ax.set_xlim(left=0)  # no negative hours, also when every budget is 0
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _amount(v)))
    ax.grid(alpha=0.3)
    price = ax.twinx()
    price.plot(points["hours"], points["team_price"], linestyle="--", color="tab:orange", label="price")
    price.set_ylabel("value of one more hour", color="tab:orange")
    price.set_ylim(bottom=0)
    # as the gain axis: matplotlib's own read a 1e12-stake plan's prices as 0.5 ... 3.5 under "1e11"
    price.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _amount(v)))
    top = float(points["total_gain"].max())
    if "hours_used" in points:
        # where the reps' capacities or the caps take fewer hours than the team has, a team hour adds
        # nothing (its price 0): say so (a report audit read the 0 as "more hours are worthless", while
        # the header gives the reps' prices)
        unused = points[
            points["hours_used"].to_numpy(dtype=float) < points["hours"].to_numpy(dtype=float) * 0.999
        ]
        if not unused.empty:
            # the hours the first such budget could use are where the limit is: the budget point after
            # it (10 % further on) left every budget between unshaded, with a price of 0 (a report audit)
            first = unused.iloc[0]
            used = float(first["hours_used"])
            at = used if math.isfinite(used) else float(first["hours"])
            ax.axvspan(at, float(points["hours"].max()), color="grey", alpha=0.08, linewidth=0)
            # no gain anywhere (every account lapsed, or nothing at stake) is not the caps' doing
            why = "no account has value at stake" if top == 0 else "reps' capacities or account caps"
            ax.annotate(
                f"beyond {hours_text(at)} h not every hour can be used ({why})",
                xy=(0.99, 0.03),
                xycoords="axes fraction",
                ha="right",
                fontsize=8,
                color="dimgrey",
            )
    if "fraction" in points:
        given = points[np.isclose(points["fraction"].to_numpy(dtype=float), 1.0)]
        if not given.empty:
            hours = float(given["hours"].iloc[0])
            gain = float(given["total_gain"].iloc[0])
            ax.axvline(hours, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f"given: {hours_text(hours)} h, gain {amount(gain)}",  # as the plan line: 20.3 read 20
                xy=(hours, gain),
                # below the point, unless that is the axis: a gain near 0 put it over the hours' ticks
                xytext=(6, -14) if gain > 0.15 * top else (6, 20),
                textcoords="offset points",
                fontsize=8,
                color="dimgrey",
            )
    ax.set_title(title or "Expected gain vs team hours")
    return figure


def _amount(value: float) -> str:
    """An axis tick of money: whole units with separators, three digits below 10 (a gain of 0.02 read 0)."""
    return f"{value:,.0f}" if abs(value) >= 10 or value == 0 else f"{value:.3g}"


# ------------------------------------------------------------------------------------------ backtest


def backtest_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """The columns of `BacktestResult.predictions` the plots use, with unique names and gaps filled.

    The backtest's predictions hold the referral label as ``referral_value`` and the influence model's
    score as ``predicted_referral_value``. Missing BTYD baselines of accounts without a purchase before
    the cutoff (``btyd_p_zero`` missing) are filled as the backtest's metrics fill them: value 0,
    P(no purchase) 1; other gaps with 0. A BTYD value missing for an account with a history is no
    forecast (Gamma-Gamma not fitted), not one of 0: it stays missing, as in the backtest's metrics.

    Returns
    -------
    pandas.DataFrame
        ``value``, ``churned``, ``clv``, ``p_churn``, ``btyd_value``, ``btyd_p_zero``, ``past_value``,
        and with referrals ``referral_value`` (actual), ``predicted_referral_value`` and
        ``past_referral_value``; indexed like the predictions.
    """
    wanted = {
        "value": ("value", False, 0.0),
        "churned": ("churned", False, 0.0),
        "clv": ("clv", True, 0.0),
        "p_churn": ("p_churn", True, 0.0),
        "btyd_value": ("btyd_value", True, 0.0),
        "btyd_p_zero": ("btyd_p_zero", True, 1.0),
        "past_value": ("past_value", True, 0.0),
    }
    names = list(map(str, predictions.columns))
    if {"referral_value", _PRED_REFERRAL, "past_referral_value"} <= set(names):
        wanted["referral_value"] = ("referral_value", False, 0.0)
        wanted[_PRED_REFERRAL] = (_PRED_REFERRAL, True, 0.0)
        wanted["past_referral_value"] = ("past_referral_value", True, 0.0)
    raw = {
        name: pd.to_numeric(_column(predictions, column, last=last), errors="coerce").to_numpy(dtype=float)
        for name, (column, last, _) in wanted.items()
    }
    no_forecast = np.isnan(raw["btyd_value"]) & ~np.isnan(raw["btyd_p_zero"])  # a history, no value
    out = {name: np.where(np.isnan(values), wanted[name][2], values) for name, values in raw.items()}
    out["btyd_value"][no_forecast] = np.nan
    return pd.DataFrame(out, index=predictions.index)


def backtest_plots(
    result: BacktestResult, folder: str | Path, *, errors: dict[str, str] | None = None
) -> dict[str, Path]:
    """Write the backtest's plots as PNG files into `folder`: kamml beside its baselines.

    Parameters
    ----------
    result : kamml.evaluation.backtest.BacktestResult
        A backtest with its predictions and trained bundle.
    folder : str or Path
        Where to write (created when missing).
    errors : dict, optional
        When given, a plot that cannot be drawn from its input (a `DataError`) is left out with a
        warning and its key mapped here to the reason, and the other plots are still drawn; without
        it the first such error is raised.

    Returns
    -------
    dict of str to pathlib.Path
        ``gains`` (value: kamml, BG/NBD × Gamma-Gamma, last period; gains.png), ``decile_calibration``
        (decile_calibration.png; both without BG/NBD × Gamma-Gamma when it has no value forecast),
        ``churn_calibration`` (kamml, BG/NBD P(no purchase); churn_calibration.png),
        ``feature_importance`` (the backtest value model's gain importance; feature_importance_clv.png)
        and, when the backtest has referral metrics, ``referral_gains`` (kamml's influence model beside
        the past referral value; referral_gains.png).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    frame = backtest_frame(result.predictions)
    cutoff = result.protocol.get("cutoff", "")
    horizon = result.protocol.get("horizon_days", "")
    when = f" at {cutoff}, {horizon}-day horizon" if cutoff else ""
    value_models = {
        MODEL_LABELS["kamml"]: "clv",
        MODEL_LABELS["btyd"]: "btyd_value",
        MODEL_LABELS["last_period"]: "past_value",
    }
    absent = ""
    if frame["btyd_value"].isna().any():  # no Gamma-Gamma: drawn as a forecast of 0 it ranked nothing
        del value_models[MODEL_LABELS["btyd"]]
        absent = f"\n({MODEL_LABELS['btyd']} left out: it has no value forecast)"
        logger.info("backtest value plots without %s: it has no value forecast", MODEL_LABELS["btyd"])
    paths: dict[str, Path] = {}

    def draw(key: str, plot: Any, *args: Any, **kwargs: Any) -> None:
        """`paths[key] = plot(*args, **kwargs)`; with `errors`, a DataError loses only this plot."""
        try:
            paths[key] = plot(*args, **kwargs)
        except DataError as exc:
            if errors is None:
                raise
            errors[key] = str(exc)
            logger.warning("backtest plot %r left out: %s", key, exc)

    draw(
        "gains",
        plot_gains,
        frame,
        out / "gains.png",
        actual="value",
        models=value_models,
        title=f"Cumulative gains: value{when}{absent}",
    )
    draw(
        "decile_calibration",
        plot_decile_calibration,
        frame["value"],
        {name: frame[column] for name, column in value_models.items() if column != "past_value"},
        out / "decile_calibration.png",
        title=f"Predicted vs actual value by decile{when}{absent}",
    )
    draw(
        "churn_calibration",
        plot_churn_calibration,
        frame["churned"],
        {MODEL_LABELS["kamml"]: frame["p_churn"], MODEL_LABELS["btyd_p_zero"]: frame["btyd_p_zero"]},
        out / "churn_calibration.png",
        title=f"Churn calibration{when}",
    )
    draw(
        "feature_importance",
        lambda: plot_feature_importance(
            feature_importance(result.bundle)["clv"],
            out / "feature_importance_clv.png",
            # the backtest's model (trained before its cutoff), not the deployed one, which is trained on
            # later snapshots and ranks features otherwise (a data-science audit read it as the logged
            # model)
            title=f"What drives the backtest's value model{when} (gain importance)",
            labels={
                f: feature_label(f, result.bundle.unit_days, result.bundle.train_horizon_days)
                for f in result.bundle.clv.feature_names_
            },
        ),
    )
    if result.referral and _PRED_REFERRAL in frame and frame["referral_value"].sum() > 0:
        draw(
            "referral_gains",
            plot_gains,
            frame,
            out / "referral_gains.png",
            actual="referral_value",
            models={MODEL_LABELS["kamml"]: _PRED_REFERRAL, MODEL_LABELS["past_rate"]: "past_referral_value"},
            title=f"Cumulative gains: referral value{when}",
        )
    logger.debug("wrote %d backtest plots to %s", len(paths), out)  # the caller says where they end up
    return paths
