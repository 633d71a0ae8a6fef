"""Plots of kamml's outputs, drawn with matplotlib's Agg canvas and written atomically as PNG files.

No pyplot and no global backend switch: every figure is a `matplotlib.figure.Figure` on its own Agg
canvas, so plotting works in batch jobs without a display, in threads, and leaves a notebook's backend
alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from kamml.errors import DataError
from kamml.io import atomic_path

__all__ = ["plot_budget_curve", "save_figure"]

logger = logging.getLogger(__name__)

DPI = 120


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write `figure` as a PNG to `path` atomically (a temporary file renamed into place); return the path."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise DataError(f"cannot write {target}: plots are written as .png files")
    FigureCanvasAgg(figure)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    logger.debug("wrote %s", target)
    return target


def plot_budget_curve(curve: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Draw the budget curve: total expected gain against team hours, with the value of one more hour.

    The gain (left axis) flattens as hours grow: each extra hour goes to a less valuable use. The team's
    price of an hour (right axis, dashed) is the slope of that curve. The given budget (fraction 1, when
    the curve has it) is marked with a vertical line.

    Parameters
    ----------
    curve : pandas.DataFrame
        As from `kamml.allocation.allocate.budget_curve`: ``hours``, ``total_gain`` and ``team_price``
        (``fraction`` optional); rows with NaN gain (budgets below the floors) are left out.
    path : str or Path
        The ``.png`` file to write (atomically).
    title : str, optional
        Figure title; "Expected gain vs team hours" by default.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        When `curve` lacks a column, has no feasible budget, or `path` is not a ``.png`` name.
    """
    missing = [c for c in ("hours", "total_gain", "team_price") if c not in curve.columns]
    if missing:
        raise DataError(f"budget curve lacks columns {missing}; it has {list(curve.columns)}")
    points = curve[np.isfinite(curve["total_gain"].to_numpy(dtype=float))].sort_values("hours")
    if points.empty:
        raise DataError("budget curve has no feasible budget to plot (every budget is below the floors)")

    figure = Figure(figsize=(7.0, 4.2))
    ax = figure.add_subplot()
    ax.plot(points["hours"], points["total_gain"], marker="o", markersize=3, color="tab:blue", label="gain")
    ax.set_xlabel("team hours in the period")
    ax.set_ylabel("total expected gain", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(alpha=0.3)
    price = ax.twinx()
    price.plot(points["hours"], points["team_price"], linestyle="--", color="tab:orange", label="price")
    price.set_ylabel("value of one more hour", color="tab:orange")
    price.set_ylim(bottom=0)
    if "fraction" in points:
        given = points[np.isclose(points["fraction"].to_numpy(dtype=float), 1.0)]
        if not given.empty:
            hours = float(given["hours"].iloc[0])
            gain = float(given["total_gain"].iloc[0])
            ax.axvline(hours, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f"given: {hours:,.0f} h, gain {gain:,.0f}",
                xy=(hours, gain),
                xytext=(6, -14),
                textcoords="offset points",
                fontsize=8,
                color="dimgrey",
            )
    ax.set_title(title or "Expected gain vs team hours")
    return save_figure(figure, path)
