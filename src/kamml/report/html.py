"""The one-file HTML report a sales lead reads: the plan, what more hours are worth, and how far to trust it.

`render_report` writes a single self-contained HTML file: inline CSS, every chart a PNG embedded as a
``data:`` URI, no script and no link to anything outside the file, so it can be mailed, attached to a
CRM record or opened offline. Every piece of text that comes from data (account ids, reasons, owners,
notes) is escaped. Sections whose input is missing (no backtest, no owners, no budget curve) are replaced
by a one-line note. The charts are those of `kamml.report.plots`, the same PNGs MLflow logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import html
import logging
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kamml.allocation.summary import LARGE, amount, last_hour, rep_price_span
from kamml.config import VALUE_METRICS, larger_is_better
from kamml.errors import DataError
from kamml.io import atomic_path
from kamml.report.plots import (
    MODEL_LABELS,
    account_counts,
    at_capacity,
    backtest_plots,
    hours_text,
    owner_labels,
    ownerless_label,
    plan_by,
    plot_budget_curve,
    plot_hours_per_rep,
    plot_tier_mix,
    printable,
    rep_capacities,
    tier_labels,
    tier_order,
)
from kamml.text import counted

if TYPE_CHECKING:
    from kamml.data.quality import QualityReport
    from kamml.evaluation.backtest import BacktestResult

__all__ = ["render_report"]

logger = logging.getLogger(__name__)

NEEDED = ("account_id", "rank", "tier", "recommended_hours", "expected_gain")
"""Columns of the allocation table the report cannot do without."""

WARNINGS_SHOWN = 20
"""Distinct warnings the report lists; the rest are counted, and the job's log has them."""

SUMMARY_LABELS = {
    "accounts": "Accounts",
    "hours": "Team hours",
    "expected_gain": "Expected gain",
    "team_price": "Value of the last hour (λ)",
    "floor_cost": "Expected gain lost to the minimum touches",
    "cutoff": "Cutoff",
    "horizon_days": "Horizon (days)",
    "model_uri": "Model",
    "run_id": "MLflow run",
    "effort_response": "Effort response (hours that move an account)",
}
"""Header facts in display order, with their labels; other keys of `summary` follow as given."""

# metric -> (column title, format); which is the better is `kamml.config.larger_is_better`'s, as in the gate.
# RMSE is in the amounts' unit and reads as the plan's money does (`_money`): whole units read an RMSE of
# 0.37 (in millions) as 0.
METRICS: dict[str, tuple[str, str]] = {
    "gini": ("Gini", "{:.3f}"),
    "spearman": ("Spearman", "{:.3f}"),
    "top10_capture": ("Top 10% capture", "{:.1%}"),
    "top20_capture": ("Top 20% capture", "{:.1%}"),
    "decile_mape": ("Decile MAPE", "{:.1%}"),
    "decile_wape": ("Decile WAPE", "{:.1%}"),
    "aggregate_error": ("Aggregate error", "{:+.1%}"),
    "rmse": ("RMSE", "money"),
    "roc_auc": ("ROC AUC", "{:.3f}"),
    "pr_auc": ("PR AUC", "{:.3f}"),
    "brier": ("Brier", "{:.4f}"),
    "log_loss": ("Log loss", "{:.4f}"),
}
TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "value": ("Value over the horizon", tuple(m for m in VALUE_METRICS if m != "mae")),
    "churn": ("Churn (no purchase in the horizon)", ("roc_auc", "pr_auc", "brier", "log_loss")),
    "referral": ("Referral value", ("gini", "spearman", "top10_capture", "aggregate_error", "rmse")),
}

# Text from data may break anywhere: in tables only the names' cells (td.w, `_td`); outside them the title,
# the notes (the reps at capacity), the warnings, the protocol line and a fact's label, where a name of 300
# characters without a space ran off the page.
CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222;
       margin: 0 auto; max-width: 1180px; padding: 1.2em 1.6em 3em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 2px solid #1f77b4; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.sub { color: #666; font-size: 0.9em; margin-top: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.fact { background: #f4f7fb; border: 1px solid #d8e2ee; border-radius: 6px; padding: 0.5em 0.9em;
        min-width: 9em; }
.fact .k { color: #555; font-size: 0.8em; }
.fact .v { font-size: 1.15em; font-weight: 600; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; vertical-align: top; unicode-bidi: isolate; }
th { background: #f0f3f7; text-align: left; }
td.w { overflow-wrap: anywhere; min-width: 4em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.82em; }
.note { color: #666; font-style: italic; }
footer { margin-top: 3em; color: #888; font-size: 0.8em; }
h1, .sub, .note, li, .fact .k { overflow-wrap: anywhere; }
"""


def render_report(
    path: str | Path,
    *,
    allocation: pd.DataFrame,
    backtest: BacktestResult | None = None,
    budget_curve: pd.DataFrame | None = None,
    quality: str | pd.DataFrame | QualityReport | None = None,
    title: str = "kamml: where to spend the sales hours",
    summary: Mapping[str, Any] | None = None,
    top: int = 25,
    top_accounts: pd.DataFrame | None = None,
    budget_note: str | None = None,
    backtest_note: str | None = None,
    plan_backtest: Mapping[str, Any] | None = None,
    warnings: Sequence[str] | None = None,
) -> Path:
    """Write the report as one self-contained HTML file (charts embedded, no external links); return the path.

    Sections: a header with the plan's key facts; the warnings the run logged (`warnings`); the `top`
    accounts (rank, account, tier, hours, expected gain, reasons, owner); the budget curve; the plan by
    tier and by rep; the backtest of the models beside their baselines (metrics tables, cumulative gains
    and lift, decile and churn calibration, referral gains, value drivers); the data-quality summary. A
    section without input is replaced by a one-line note (the warnings' is left out when not given).
    The rep table lists the `REPS_LISTED` reps with the most hours and sums the others in one row.

    Parameters
    ----------
    path : str or Path
        The ``.html`` file to write, atomically (a temporary file renamed into place).
    allocation : pandas.DataFrame
        The allocation table of `kamml.allocation.allocate` (account_id, rank, tier, recommended_hours,
        expected_gain needed; reasons and owner shown when present). Its ``attrs["allocation"]`` summary
        gives the header's hours, gain and value of the last hour; without it, or when it counts other
        accounts than the table (a filtered table carries its whole plan's), they are summed from the
        table.
    backtest : kamml.evaluation.backtest.BacktestResult, optional
        The backtest whose metrics and charts show how far the predictions can be trusted.
    budget_curve : pandas.DataFrame, optional
        As from `kamml.allocation.allocate.budget_curve`.
    quality : str, pandas.DataFrame or kamml.data.QualityReport, optional
        The data-quality summary: the text of ``QualityReport.to_text()``, a table, or the report itself.
    title : str
        Page title and heading.
    summary : mapping, optional
        More header facts, such as ``cutoff``, ``horizon_days``, ``model_uri``, ``run_id``; the keys
        ``accounts``, ``hours``, ``expected_gain`` and ``team_price`` replace the values read from the
        allocation.
    top : int, default 25
        Accounts listed.
    top_accounts : pandas.DataFrame, optional
        The best accounts' rows, when `allocation` is a summary rather than one row per account: a
        Spark run passes its plan grouped by tier and owner, with an ``accounts`` column counting the
        accounts of each row (counts everywhere honour it), and the top rows collected apart.
    budget_note : str, optional
        Why there is no budget curve, shown in its place.
    backtest_note : str, optional
        Shown at the top of the backtest section, and the page's subtitle then does not call the
        backtest the plan's: when the backtest is not of the model that scored the plan (a run whose
        new version was not promoted plans with the champion).
    plan_backtest : mapping, optional
        With `backtest_note`: the backtest of the model that scored the plan, as its ``backtest.json``
        (DESIGN §10); its metrics tables come first, then `backtest`'s.
    warnings : sequence of str, optional
        The warnings the job logged while it ran, in order: listed under the header, each distinct message
        once with how often it was logged, the first `WARNINGS_SHOWN` of them (a reader of a scheduled
        job's report sees nothing else of its log). An empty sequence says the run logged none; None (a
        report drawn outside a run) leaves the section out. Read after the charts are drawn, so a list
        the job is still filling (`kamml.jobs.run`'s) includes what drawing them warned of (a font
        lacking the characters of a rep's name, a chart left out).

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    kamml.errors.DataError
        When the allocation table lacks a needed column, `top` < 1, or `path` is not an ``.html`` name.
        A chart that cannot be drawn from its input is replaced by a note naming the reason instead.
    """
    target = Path(path)
    if target.suffix.lower() not in {".html", ".htm"}:
        raise DataError(f"cannot write {target}: the report is written as an .html file")
    if top < 1:
        raise DataError(f"top must be at least 1, got {top}")
    for name, frame in (("allocation table", allocation), ("top_accounts table", top_accounts)):
        missing = [] if frame is None else [c for c in NEEDED if c not in frame.columns]
        if frame is not None and missing:
            has = ", ".join(map(str, frame.columns))
            raise DataError(f"the {name} lacks columns {missing}; it has {has}")
    table = _by_rank(allocation)
    days = plan_horizon_days(table, summary or {})
    span = _span(days)
    with tempfile.TemporaryDirectory(prefix="kamml-report-") as tmp:
        charts = Path(tmp)
        drawn = [
            _top_accounts(table if top_accounts is None else _by_rank(top_accounts), top, span),
            _budget_section(budget_curve, charts, budget_note, days),
            _plan_section(table, charts),
            _backtest_section(backtest, charts, backtest_note, plan_backtest if backtest_note else None),
            _quality_section(quality),
        ]
    # read once the charts are drawn: a job's live list then holds what drawing them warned of
    body = [
        _header(title, table, summary or {}, plan_backtest=backtest_note is None, span=span),
        _warnings_section(warnings),
        *drawn,
        f"<footer>Written by kamml {_e(_version())} on {_e(_now())}. "
        "Every chart is embedded in this file.</footer>",
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    with atomic_path(target) as tmp_path:
        tmp_path.write_text(page, encoding="utf-8")
    logger.debug("wrote the report to %s (%d KB)", target, max(1, len(page) // 1024))
    return target


# ------------------------------------------------------------------------------------------ sections


def _header(
    title: str,
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    plan_backtest: bool = True,
    span: str = "the period",
) -> str:
    """The title and the plan's key facts as cards; `plan_backtest`: the backtest is of the plan's model.

    `span`: what the hours cover, as `_span` words it ("the 180-day horizon").
    """
    plan = _own_summary(table)
    facts: dict[str, str] = {}
    n = int(plan.get("n_accounts", account_counts(table).sum()))  # a grouped table counts its rows' accounts
    active = plan.get("n_active")
    facts["accounts"] = f"{n:,}" + (f" ({int(active):,} active)" if active is not None else "")
    used = float(plan.get("hours_used", table["recommended_hours"].sum()))
    given = plan.get("hours")
    # "1 of 10" hid 1.25 of 10, and "2,000 of 2,000" hid 0.4 unused hours
    facts["hours"] = hours_text(used, exact=True) + (
        f" of {hours_text(float(given), exact=True)}" if given is not None else ""
    )
    gain = float(plan.get("total_expected_gain", table["expected_gain"].sum()))
    facts["expected_gain"] = _money(gain)
    if plan.get("team_price") is not None:
        text = last_hour(plan)  # the reps' prices when their capacities bind, not the team's hours
        facts["team_price"] = text if rep_price_span(plan) else f"{text} per hour"
    if plan.get("floor_cost"):  # the optimizer's: the gain without floors minus the gain with them
        # "Cost of the minimum touches: 11,988 of gain" read as money spent on them
        cost = float(plan["floor_cost"])
        facts["floor_cost"] = f"{_money(cost)} (plan without them: {_money(gain + cost)})"
    for key, value in summary.items():
        if value is not None:
            facts[str(key)] = _fact(value)
    ordered = [k for k in SUMMARY_LABELS if k in facts] + [k for k in facts if k not in SUMMARY_LABELS]
    cards = "".join(
        f'<div class="fact"><div class="k">{_e(SUMMARY_LABELS.get(k, k.replace("_", " ").capitalize()))}'
        f'</div><div class="v">{_e(facts[k])}</div></div>'
        for k in ordered
    )
    backtest = (
        "how well the predictions behind it did on past data"
        if plan_backtest
        else "how well a newly trained model did on past data (not the model behind the plan: see "
        "that section)"
    )
    return (
        f"<header><h1>{_bdi(title)}</h1>"
        f'<p class="sub">Recommended sales hours per account {"for" if span == "the period" else "over"} '
        f"{_e(span)}, the expected gain of that plan, and {backtest}.</p>"
        f'<div class="facts">{cards}</div></header>'
    )


def _warnings_section(warnings: Sequence[str] | None) -> str:
    """The run's warnings, each distinct one once in first-seen order with its count; "" for None.

    A scheduled job's reader opens only the report: a run that warned (a fit that did not converge, lost
    features, the champion scoring in place of the new version) read as clean.
    """
    if warnings is None:
        return ""
    head = "<section><h2>Warnings this run logged</h2>"
    if not warnings:
        return head + _note("The run logged no warnings.") + "</section>"
    times = Counter(warnings)  # first-seen order
    items = "".join(
        f"<li>{_bdi(message)}" + (f" ({n:,} times)" if n > 1 else "") + "</li>"
        for message, n in list(times.items())[:WARNINGS_SHOWN]
    )
    left = len(times) - WARNINGS_SHOWN
    more = _note(f"and {left:,} more: see the job's log.") if left > 0 else ""
    return f"{head}<ul>{items}</ul>{more}</section>"


def _own_summary(table: pd.DataFrame) -> Mapping[str, Any]:
    """The plan's summary (``attrs["allocation"]``) when it is this table's, else an empty one.

    pandas carries attrs through a filter: one rep's rows of a plan were headed by the whole plan's
    accounts, hours and gain, beside tables that sum to that rep's. A summary counting other accounts
    than the table holds is another table's, so the header is summed from the table instead.
    """
    plan = table.attrs.get("allocation") or {}
    counted = plan.get("n_accounts")
    if counted is not None and not math.isclose(float(counted), float(account_counts(table).sum())):
        logger.info(
            "the allocation table's summary counts %s accounts, the table %s: the header is summed "
            "from the table",
            counted,
            f"{account_counts(table).sum():,.0f}",
        )
        return {}
    return plan


def _has_owners(table: pd.DataFrame) -> bool:
    """Whether any row of the plan names an owner (a rep)."""
    return "owner" in table.columns and bool(table["owner"].notna().any())


def _top_accounts(table: pd.DataFrame, top: int, span: str = "the period") -> str:
    """The best `top` accounts of the plan; `span`: what their hours cover (`_span`)."""
    rows = table.head(top)
    if rows.empty:  # it read "Top 0 accounts" above an empty table
        return "<section><h2>Top accounts</h2>" + _note("The plan has no accounts.") + "</section>"
    owners = _has_owners(rows)
    heads = ["Rank", "Account", "Tier", "Hours", "Expected gain", "Reasons"] + (["Owner"] if owners else [])
    body = []
    for r in rows.to_dict("records"):
        cells = [
            _td(_integer(r["rank"]), numeric=True),
            _td(_e(_text(r["account_id"])), name=True),
            _td(_e(_text(r["tier"])), name=True),
            _td(_e(_number(r["recommended_hours"], 2)), numeric=True),  # a 0.25 h touch read 0.2
            _td(_e(_money(r["expected_gain"])), numeric=True),
            _td(_reasons(r.get("reasons"))),
        ]
        if owners:
            cells.append(_td(_e(_text(r["owner"])), name=True))
        body.append("<tr>" + "".join(cells) + "</tr>")
    heading = "<h2>The top account</h2>" if len(rows) == 1 else f"<h2>Top {len(rows):,} accounts</h2>"
    note = (
        '<p class="sub">Ranked by the expected gain of the recommended hours. Hours are for the whole '
        f"{_e(span.removeprefix('the '))}; reasons say why the account matters.</p>"
    )
    return "<section>" + heading + note + _table_html(heads, body) + "</section>"


def plan_horizon_days(table: pd.DataFrame, summary: Mapping[str, Any]) -> int | None:
    """The plan's horizon in days; None when neither summary nor the ``horizon_days`` column says it.

    The given summary's first, then the table's own (``attrs["allocation"]``), then the column's one value.
    """
    for value in (summary.get("horizon_days"), _own_summary(table).get("horizon_days")):
        if value is not None and _finite(value):
            return int(value)
    if "horizon_days" in table.columns:
        days = pd.to_numeric(table["horizon_days"], errors="coerce").dropna().unique()
        if len(days) == 1:
            return int(days[0])
    return None


def _span(days: int | None) -> str:
    """What the plan's hours cover: "the 180-day horizon", or "the period" when the horizon is unknown.

    "Hours ... for the period" stood beside the effort line's "per 3-month period", leaving the reader
    to guess which period the hours were for.
    """
    return "the period" if days is None else f"the {days:,}-day horizon"


def _by_rank(allocation: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by rank (stable); pandas carries the table's attrs (the plan's summary) along."""
    return allocation.sort_values("rank", kind="stable").reset_index(drop=True)


def _budget_section(
    curve: pd.DataFrame | None, charts: Path, note: str | None = None, horizon_days: int | None = None
) -> str:
    """The budget curve chart, or a note; `horizon_days` names the hours' span on its axis."""
    head = "<section><h2>What more or fewer hours are worth</h2>"
    if curve is None:
        why = note or "No budget curve was given, so this section is left out."
        return head + _note(why) + "</section>"
    text = (
        '<p class="sub">Total expected gain of the best plan at other team budgets; the dashed line is the '
        "value of one more hour at each budget. Rep capacities, when set, stay as they are.</p>"
    )
    if "feasible" in curve and not curve["feasible"].astype(bool).all():
        below = curve.loc[~curve["feasible"].astype(bool), "hours"].max()
        text += _note(
            f"Budgets up to {_plural(hours_text(float(below)), 'hour')} cannot give every active account its "
            "minimum touch (allocation.floor_hours), so the curve starts above them."
        )
    return (
        head
        + text
        + _chart(
            functools.partial(plot_budget_curve, horizon_days=horizon_days),
            "budget curve",
            charts / "budget.png",
            curve,
        )
        + "</section>"
    )


def _plan_section(table: pd.DataFrame, charts: Path) -> str:
    """Accounts, hours and gain per tier; hours per rep, or a note without owners."""
    owned = _has_owners(table)
    parts = [f"<section><h2>The plan by tier{' and by rep' if owned else ''}</h2>"]
    tiers = tier_labels(table)
    by_tier = plan_by(table, tiers).reindex(tier_order(table, tiers))
    total_hours = float(by_tier["hours"].sum(skipna=False))  # unknown when a tier's is: shares "–"
    hours = _hours_column(by_tier["hours"])  # four 0.25 h tiers read 0.2 each at one decimal
    rows = [
        "<tr>"
        + _td(_e(str(tier)), name=True)
        + _td(f"{int(r.accounts):,}", numeric=True)
        + _td(f"{int(r.served):,}" if math.isfinite(r.served) else "–", numeric=True)
        + _td(_e(h), numeric=True)
        + _td(_e(_share(r.hours, total_hours)), numeric=True)
        + _td(_e(_money(r.gain)), numeric=True)
        + "</tr>"
        for (tier, r), h in zip(by_tier.iterrows(), hours, strict=True)
    ]
    parts.append('<div class="charts">')
    parts.append(
        _table_html(["Tier", "Accounts", "With hours", "Hours", "Share of hours", "Expected gain"], rows)
    )
    parts.append(
        _chart(plot_tier_mix, "accounts, hours and expected gain per tier", charts / "tiers.png", table)
    )
    parts.append("</div>")
    parts.append("<h3>Hours per rep</h3>")
    if not owned:
        parts.append(_note("The accounts have no owners, so the hours per rep are left out."))
    else:
        # grouped once for the chart, the table and the note: each grouped a million owners again
        owners = owner_labels(table)
        reps = plan_by(table, owners)
        draw = functools.partial(plot_hours_per_rep, owners=owners, by_owner=reps)
        parts.append(_chart(draw, "recommended hours per rep", charts / "reps.png", table))
        parts.append(_rep_table(table, reps))
        parts.extend(_at_capacity_note(table, reps))
    parts.append("</section>")
    return "".join(parts)


def _rep_table(table: pd.DataFrame, reps: pd.DataFrame) -> str:
    """Per rep (`reps`, `plan_by` the reps): accounts, those with hours, hours, capacity, gain and price.

    The counts are the tier table's: "Accounts" (every owned account) stood alone beside the tier table's
    "Accounts" and "With hours", and read as the accounts the rep serves. A rep without a capacity (and
    the accounts without an owner) is held back by the team's hours alone, so its last hour is worth the
    team's price: its cell was empty beside a listed rep with hours to spare that read that price. The
    capacity (when any rep has one) is what the rep's hours are measured against: "5" hours alone did
    not say they were all the rep had.
    """
    plan = table.attrs.get("allocation") or {}
    prices = plan.get("rep_price") or {}
    team = plan.get("team_price")
    reps = reps.sort_values("hours", ascending=False, kind="stable")
    reps, others = _listed_reps(reps)
    capacity = rep_capacities(table, reps.index)
    limited = bool(plan.get("rep_capacity"))
    heads = ["Rep", "Accounts", "With hours", "Hours"] + (["Capacity (hours)"] if limited else [])
    heads += ["Expected gain"] + (["Value of the rep's last hour"] if prices else [])
    ownerless = ownerless_label(table) if prices else None
    rows = []
    cells_of_capacity = _capacity_column(reps["hours"], capacity)
    if others:  # the last row: the other reps together, with neither a capacity nor a price of their own
        cells_of_capacity[-1] = "–"
    for i, ((rep, r), hours, cap) in enumerate(
        zip(reps.iterrows(), _hours_column(reps["hours"]), cells_of_capacity, strict=True)
    ):
        cells = [
            _td(_e(str(rep)), name=True),
            _td(f"{int(r.accounts):,}", numeric=True),
            _td(f"{int(r.served):,}" if math.isfinite(r.served) else "–", numeric=True),
            _td(_e(hours), numeric=True),
            *([_td(_e(cap), numeric=True)] if limited else []),
            _td(_e(_money(r.gain)), numeric=True),
        ]
        if prices:
            price = team if rep == ownerless else prices.get(str(rep), team)
            price = None if others and i == len(reps) - 1 else price
            cells.append(_td(_e(_money(price)) if price is not None else "", numeric=True))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not others:
        return _table_html(heads, rows)
    return _table_html(heads, rows) + _note(
        f"The {REPS_LISTED:,} reps with the most hours are listed; the other {others:,} are summed in "
        "the last row."
    )


#: Most reps the rep table lists, those with the most hours; the others are summed in one row.
REPS_LISTED = 1000


def _listed_reps(reps: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The first `REPS_LISTED` rows of `reps` (sorted), the rest summed in one last row; and how many.

    A plan whose owner column held one name per account (1M accounts) wrote a 124 MB page in 88 s. A
    figure of the summed row is unknown ("–") when one of its reps' is, as `plan_by` has it.
    """
    rest = reps.iloc[REPS_LISTED:]
    if rest.empty:
        return reps, 0
    name = counted(len(rest), "other rep")
    while name in reps.index[:REPS_LISTED]:  # a rep of that very name keeps its own row, as on the chart
        name += " "
    summed = rest.sum().where(rest.notna().all()).to_frame(name).T
    return pd.concat([reps.iloc[:REPS_LISTED], summed]), len(rest)


def _capacity_column(hours: pd.Series, capacity: pd.Series) -> list[str]:
    """Each rep's capacity in hours, ", at capacity" when its hours use it all; "no limit" without one."""
    finite = capacity[np.isfinite(capacity.to_numpy())]
    texts = dict(zip(finite.index, _hours_column(finite), strict=True))
    return [
        "no limit" if rep not in texts else texts[rep] + (", at capacity" if at_capacity(used, cap) else "")
        for rep, used, cap in zip(hours.index, hours, capacity, strict=True)
    ]


#: Most reps named in the line under the rep table that lists those at capacity.
AT_CAPACITY_NAMED = 10


def _at_capacity_note(table: pd.DataFrame, reps: pd.DataFrame) -> list[str]:
    """A line naming the reps (`reps`, `plan_by` the reps) whose hours use all of their capacity.

    None without capacities.
    """
    if not (table.attrs.get("allocation") or {}).get("rep_capacity"):
        return []
    capacity = rep_capacities(table, reps.index)
    hours = reps["hours"].to_numpy(dtype=float)
    full = [
        str(rep) for rep, used, cap in zip(reps.index, hours, capacity, strict=True) if at_capacity(used, cap)
    ]
    if not full:
        return [_note("No rep is at capacity: each has hours of its allocation.capacity to spare.")]
    named = ", ".join(map(_bdi, full[:AT_CAPACITY_NAMED]))
    more = len(full) - AT_CAPACITY_NAMED
    named += _e(f" and {counted(more, 'more rep')}") if more > 0 else ""
    return [_note_html(f"{_e('At capacity (hours used equal allocation.capacity):')} {named}.")]


def _backtest_section(
    result: BacktestResult | None,
    charts: Path,
    note: str | None = None,
    plan: Mapping[str, Any] | None = None,
) -> str:
    """Metrics beside the baselines and the model-quality charts, or a note; `note` first when given.

    `plan`: the backtest (as JSON) of the model behind the plan when `result` is another's; its tables
    come first.
    """
    head = "<section><h2>How well the predictions did on past data</h2>"
    if result is None:
        return head + _note("No backtest was given, so the model-quality section is left out.") + "</section>"
    parts = [head] + ([_note(note)] if note else [])
    if plan:
        protocol = _mapping(plan.get("protocol"))
        parts.append("<h3>The model behind the plan</h3>")
        parts.append(f'<p class="sub">{_protocol(protocol)}</p>')
        for task, (label, columns) in TASKS.items():
            signs = _mapping(_mapping(plan.get("non_finite")).get(task))
            models = {
                str(k): _with_infinities(v, _mapping(signs.get(k)))
                for k, v in _mapping(plan.get(task)).items()
                if isinstance(v, Mapping)
            }
            if models:
                parts.append(f"<h3>{_e(label)}</h3>")
                parts.append(_metrics_table(task, models, columns))
                parts.extend(_missing_baseline(task, protocol))
        if not plan.get("referral") and plan.get("referral_note"):
            parts.append(_note_html(f"Referral value not evaluated: {_bdi(plan['referral_note'])}."))
        parts.append("<h3>The version this run trained (not promoted)</h3>")
    parts.append(f'<p class="sub">{_protocol(result.protocol)}</p>')
    parts.append(
        '<p class="sub">kamml beside simple baselines on a later period than any it trained on (a temporal '
        "backtest: training labels end by the test cutoff). Higher is better for Gini, Spearman, "
        "capture and AUC; lower for MAPE, WAPE, RMSE, Brier and log loss; aggregate error is best "
        "near 0. Decile MAPE is the mean relative miss of each tenth of the accounts (ranked by the "
        "prediction) on its total: the small bottom deciles weigh as much as the top one, so a few "
        "units there move it far. The best value of each column is in bold.</p>"
    )
    for task, (label, columns) in TASKS.items():
        block = getattr(result, task, None)
        if block:
            parts.append(f"<h3>{_e(label)}</h3>")
            parts.append(_metrics_table(task, block, columns))
            parts.extend(_missing_baseline(task, result.protocol))
    if not result.referral and result.referral_note:  # as the backtest's table and JSON say it
        parts.append(_note_html(f"Referral value not evaluated: {_bdi(result.referral_note)}."))
    failed: dict[str, str] = {}  # one chart that cannot be drawn loses only itself (it lost them all)
    try:
        images = backtest_plots(result, charts / "backtest", errors=failed)
    except DataError as exc:  # the predictions every chart reads
        logger.warning("backtest charts left out of the report: %s", exc)
        parts.append(_note(f"The backtest charts could not be drawn: {exc}"))
    else:
        alts = {
            "gains": "cumulative gains and lift of the value forecast beside the baselines",
            "decile_calibration": "predicted vs actual value by decile",
            "churn_calibration": "churn calibration beside BG/NBD",
            "referral_gains": "cumulative gains of the referral value forecast",
            "feature_importance": "gain importance of the value model's features",
        }
        names = {
            "gains": "cumulative gains",
            "decile_calibration": "decile calibration",
            "churn_calibration": "churn calibration",
            "referral_gains": "referral gains",
            "feature_importance": "value drivers",
        }
        parts.extend(
            _note(f"The {names[key]} chart could not be drawn: {why}") for key, why in failed.items()
        )
        parts.append('<div class="charts">')
        parts.extend(_figure(images[key], alt) for key, alt in alts.items() if key in images)
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _quality_section(quality: str | pd.DataFrame | QualityReport | None) -> str:
    """The data-quality summary as text or a table, or a note; a table's text may break anywhere (`_td`)."""
    head = "<section><h2>Data quality</h2>"
    if quality is None:
        return head + _note("No data-quality summary was given.") + "</section>"
    if isinstance(quality, pd.DataFrame):
        heads = [str(c) for c in quality.columns]
        rows = [
            "<tr>" + "".join(_td(_e(_text(v)), numeric=_is_number(v), name=True) for v in row) + "</tr>"
            for row in quality.itertuples(index=False, name=None)
        ]
        return head + _table_html(heads, rows) + "</section>"
    to_text = getattr(quality, "to_text", None)
    text = to_text() if callable(to_text) else str(quality)
    return head + f"<pre>{_e(text)}</pre></section>"


# ------------------------------------------------------------------------------------------ pieces


def _metrics_table(task: str, block: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> str:
    """One task's metrics, a row per model (kamml first), the best value per column in bold.

    The best is judged on the figures as written: two rows that both read 53.8% are both bold (the
    unrounded 0.5383 against 0.5376 bolded one of them, which read as a loss beside an equal figure).
    """
    shown = [c for c in columns if any(c in m for m in block.values())]
    best: dict[str, float] = {}
    for column in shown:
        scores = [
            larger_is_better(column, _written(column, m[column]))
            for m in block.values()
            if column in m and _finite(m[column])
        ]
        if len(scores) > 1:
            best[column] = max(scores)
    rows = []
    for model, metrics in block.items():
        cells = [_td(_e(_model_label(task, model)))]
        for column in shown:
            value = metrics.get(column)
            if value is None or not _finite(value):
                cells.append(_td(_infinite_text(value) or "–", numeric=True))
                continue
            text = _e(_metric_text(column, value))
            score = larger_is_better(column, _written(column, value))
            if column in best and math.isclose(score, best[column], rel_tol=1e-12, abs_tol=1e-15):
                text = f"<strong>{text}</strong>"
            cells.append(_td(text, numeric=True))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table_html(["Model", *(METRICS[c][0] for c in shown)], rows)


def _infinite_text(value: Any) -> str | None:
    """An infinite figure as `BacktestResult.to_text` prints it ("inf", "-inf"); None for any other value.

    The table read "–" for it as for an undefined (NaN) figure, where the backtest's own table reads inf.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return ("inf" if number > 0 else "-inf") if math.isinf(number) else None


def _with_infinities(metrics: Mapping[str, Any], signs: Mapping[str, Any]) -> Mapping[str, Any]:
    """A model's metrics read back from a backtest.json, each null one its ``non_finite`` sign gives infinite.

    JSON has no infinity: an infinite metric is written null, with its sign under ``non_finite``.
    """
    back = {m: float(sign) for m, sign in signs.items() if sign in ("inf", "-inf") and metrics.get(m) is None}
    return {**metrics, **back} if back else metrics


def _metric_text(column: str, value: Any) -> str:
    """A backtest figure as the metrics table writes it (`METRICS`' format; RMSE as the plan's money)."""
    form = METRICS[column][1]
    return _money(value) if form == "money" else form.format(float(value))


def _written(column: str, value: Any) -> float:
    """A figure as the reader sees it, back as a number ("68.4%" -> 68.4, "+2.0%" -> 2.0, "1,423" -> 1423)."""
    return float(_metric_text(column, value).replace(",", "").rstrip("%"))


def _missing_baseline(task: str, protocol: Mapping[str, Any]) -> list[str]:
    """Under the value table, why BTYD's row is empty (``protocol.btyd_value_note``), when it is."""
    note = protocol.get("btyd_value_note")
    if task != "value" or not note:
        return []
    return [_note_html(f"No value figures for {_e(MODEL_LABELS['btyd'])} (–): {_bdi(note)}.")]


def _model_label(task: str, model: str) -> str:
    """A backtest model key as it reads in the report."""
    if task == "churn" and model == "btyd":
        return MODEL_LABELS["btyd_p_zero"]
    return MODEL_LABELS.get(model, model.replace("_", " "))


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one: a part of a backtest's JSON of another shape."""
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int | None:
    """A count of a backtest's protocol as an integer; None when it is no finite number."""
    return int(float(value)) if _finite(value) else None


def _protocol(protocol: Mapping[str, Any]) -> str:
    """The backtest's protocol in one sentence, as escaped HTML; what is not as kamml writes it is left out.

    The champion's backtest.json comes from its run, of any kamml version: counts that were no numbers
    (or a list of snapshots that was none) failed the whole run at its last step.
    """
    # the JSON's own texts are isolated: a right-to-left override in one turned the rest of the line
    parts = [f"Backtest at {_bdi(protocol.get('cutoff', '?'))}"]
    if "horizon_days" in protocol:
        parts.append(f"{_bdi(protocol['horizon_days'])}-day horizon")
    snapshots = protocol.get("training_snapshots")
    if snapshots and isinstance(snapshots, list | tuple):
        labels = protocol.get("train_horizon_days")
        extra = f" ({_bdi(labels)}-day labels)" if labels else ""
        rows = _count(protocol.get("training_rows"))
        parts.append(
            f"trained on {counted(len(snapshots), 'earlier snapshot')}{extra}"
            + (f" of {rows:,} rows" if rows is not None else "")
        )
    tested = _count(protocol.get("test_accounts"))
    if tested is not None:
        parts.append(counted(tested, "test account"))
    return ", ".join(parts) + "."


def _chart(draw: Callable[..., Path | None], alt: str, path: Path, data: Any) -> str:
    """Draw one chart with `draw(data, path)` and embed it; a note when its input cannot be drawn."""
    try:
        written = draw(data, path)
    except DataError as exc:
        logger.warning("%s left out of the report: %s", alt, exc)
        return _note(f"The {alt} chart could not be drawn: {exc}")
    if written is None:
        return _note(f"No data for the {alt} chart.")
    return _figure(written, alt)


def _figure(path: Path, alt: str) -> str:
    """A PNG file as an <img> with the image inline as a base64 data: URI."""
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{payload}" alt="{_e(alt)}"></figure>'


def _table_html(heads: Iterable[str], rows: Sequence[str]) -> str:
    """A table from escaped header texts and ready <tr> rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _td(content: str, *, numeric: bool = False, name: bool = False) -> str:
    """A table cell around already escaped content; a `name` (id, tier, rep) may break anywhere.

    A 5,000-character account id without spaces stretched the table, pushing hours and gain off the page.
    """
    if numeric:
        return f'<td class="n">{content}</td>'
    return f'<td class="w">{content}</td>' if name else f"<td>{content}</td>"


def _note(text: str) -> str:
    """A one-line note in place of a section or chart."""
    return _note_html(_e(text))


def _note_html(content: str) -> str:
    """A note around already escaped content (names in it isolated with `_bdi`)."""
    return f'<p class="note">{content}</p>'


def _bdi(text: Any) -> str:
    """Text from data escaped and isolated in a <bdi>, for a name or message inside a sentence.

    Escaping alone left a right-to-left override (U+202E) or other bidi control in a rep name or a
    warning free to reverse the rest of its line in a browser ("(2 times)", the next reps named).
    """
    return f"<bdi>{_e(text)}</bdi>"


def _reasons(value: Any) -> str:
    """Reason codes ("; "-separated) one per line, escaped."""
    text = _text(value)
    return "<br>".join(_e(part) for part in text.split("; ") if part) if text else ""


def _e(text: Any) -> str:
    """Escape text for HTML (quotes too, so it is safe in attributes); a lone surrogate reads U+FFFD."""
    return html.escape(printable(str(text)), quote=True)


def _text(value: Any) -> str:
    """A cell value as text; missing values as an empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else value.isoformat(sep=" ")
    if isinstance(value, float | np.floating):  # a whole id read as float (1000.0) is shown as 1000
        return str(int(value)) if float(value).is_integer() else _number(value, 2)
    return str(value)


def _finite(value: Any) -> bool:
    """True for a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _is_number(value: Any) -> bool:
    """True for int and float values (not booleans), which are right-aligned."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _number(value: Any, digits: int = 0) -> str:
    """A number with thousands separators and `digits` decimals; "–" when missing."""
    if not _finite(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def _hours_column(values: Iterable[float]) -> list[str]:
    """A column of hours in one format: `hours_text`'s, all with the decimals the most precise needs (<= 2).

    Each figure cut its own trailing zeros: "1,053.75" stood above "375" and "64.4" in one column. A
    figure from `LARGE` on keeps its exponent, a missing one reads "–".
    """
    numbers = [float(v) for v in values]
    texts = [hours_text(v, exact=True) for v in numbers]
    places = max((len(t.split(".")[1]) for t in texts if "." in t and "e" not in t), default=0)
    return [
        f"{v:,.{places}f}" if math.isfinite(v) and abs(v) < LARGE else t
        for v, t in zip(numbers, texts, strict=True)
    ]


def _money(value: Any) -> str:
    """An amount as the plan line gives it (`amount`: three significant digits below 100); "–" when missing.

    Whole units read every gain of a plan kept in thousands as 4, 3, ..., 0 beside the plan line's 20.3.
    """
    return amount(value) if _finite(value) else "–"


def _integer(value: Any) -> str:
    """An integer with thousands separators."""
    return f"{int(value):,}" if _finite(value) else "–"


def _share(part: float, whole: float) -> str:
    """`part` as a whole percentage of `whole`; "<1%" and ">99%" where rounding would say 0 % or 100 %."""
    if not (whole > 0 and math.isfinite(whole) and math.isfinite(part)):
        return "–"
    share = part / whole
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{share:.0%}"


def _plural(count: int | str, word: str) -> str:
    """A count as text (hours) and `word`, plural unless it reads 1: "1 hour", "0.5 hours"."""
    return f"{count} {word}{'' if str(count) == '1' else 's'}"


def _fact(value: Any) -> str:
    """A header fact as text: dates as dates, numbers with separators."""
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return _text(pd.Timestamp(value))
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return _number(value, 2 if abs(float(value)) < 1000 else 0)
    return str(value)


def _version() -> str:
    """The version of kamml that writes the report."""
    from kamml import __version__

    return str(__version__)


def _now() -> str:
    """The current UTC time, to the minute."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
