"""Plots and the one-file HTML report: kamml beside its baselines, and the plan a sales lead reads.

The plots (`kamml.report.plots`) take plain pandas/numpy inputs and write PNG files on matplotlib's Agg
canvas, without pyplot; MLflow logging (`backtest_plots`) and the HTML report (`render_report`) share
them.
"""

from kamml.errors import ConfigError

try:
    import matplotlib  # noqa: F401  (here, before the modules that draw, to name a bad MPLBACKEND)
except ValueError as exc:  # matplotlib refuses an MPLBACKEND that names no backend as it is imported
    if "backend" not in str(exc):
        raise
    raise ConfigError(
        f"the MPLBACKEND environment variable names no backend matplotlib knows ({exc}); unset it: "
        "kamml draws its charts into files"
    ) from None

from kamml.report.html import render_report
from kamml.report.plots import (
    backtest_frame,
    backtest_plots,
    feature_importance,
    gains_curve,
    plot_budget_curve,
    plot_churn_calibration,
    plot_decile_calibration,
    plot_feature_importance,
    plot_gains,
    plot_hours_per_rep,
    plot_tier_mix,
    save_figure,
)

__all__ = [
    "backtest_frame",
    "backtest_plots",
    "feature_importance",
    "gains_curve",
    "plot_budget_curve",
    "plot_churn_calibration",
    "plot_decile_calibration",
    "plot_feature_importance",
    "plot_gains",
    "plot_hours_per_rep",
    "plot_tier_mix",
    "render_report",
    "save_figure",
]
