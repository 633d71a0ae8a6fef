"""Feature groups (DESIGN §4): small pure functions from a `FeatureContext` to columns by account_id.

Each group returns an Ibis table with one row per account that has rows in the group's source table, or
None when its table is absent. `kamml.features.build` joins them onto the account base and fills counts
with zero. Rules that matter for the numbers (tested in tests/features/):

- A *purchase day* is a day on which the account has at least one transaction with amount >= 0;
  transactions on the same day are merged (BTYD convention), so same-day orders count once. The merge
  needs no per-day group-by: `day_rows` marks, with one window per account, the row that opens each
  purchase day, the gap to the previous one, and whether a row's day is a purchase day.
- Refunds (amount < 0) reduce the spend of their day and of every window (spend is net); a day that has
  only refunds is not a purchase day. Zero-amount rows make a purchase day (a free order is an order).
- rfm follows lifetimes' `summary_data_from_transaction_data`: frequency = purchase days - 1 (0 without
  one), recency = last - first purchase day, T = (cutoff - 1 day) - first purchase day, both in
  `time.unit`, monetary = mean net spend of the repeat purchase days (0 without repeats).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from kamml.data.readers import untyped_null
from kamml.features._context import FeatureContext, join_on_account, net_sum, outer_join_on_account, to_day
from kamml.features.referrals import spend_after_referral

__all__ = [
    "GROUPS",
    "DailyGroup",
    "breadth",
    "calendar",
    "day_rows",
    "effort",
    "products",
    "referral",
    "regularity",
    "rfm",
    "static",
    "trend",
    "windows",
]

TableGroup = Callable[[FeatureContext], "ir.Table | None"]

#: Columns of the accounts table that are not features (identifiers, dates handled separately, owner:
#: the sales rep is who serves the account, used by allocation, not a property of the account;
#: contract_end: its last known value already tells a past snapshot whether the contract was renewed).
NON_FEATURE_ACCOUNT_COLUMNS = ("account_id", "created_at", "owner", "contract_end")


def day_rows(tx: ir.Table) -> ir.Table:
    """Transaction rows with the per-day facts every shared-pass group needs, from one window.

    Rows are ordered per account by day and, within a day, purchases (amount >= 0) before refunds, so
    the latest purchase day among the preceding rows tells each row what it needs:

    - ``purchase``: 1.0 on the row that opens a purchase day (summing it counts purchase days), else 0.0;
    - ``gap``: on that row, days since the previous purchase day (null on the first one and elsewhere);
    - ``on_repeat_day``: 1.0 when the row counts toward a repeat purchase day (after the first one): a
      purchase on such a day, or a refund whose latest purchase day at or before it is one (a refund
      returns the latest order before it; one after the first order only, or before any, counts in none);
    - ``spend`` (the amount), ``refund``, ``n_refunds``, ``n_zero`` and ``quantity`` per row.

    This replaces a group-by per account and day, which cost more than the window on logs with about
    one transaction per account-day. Every number is float64, so sums stay floating point everywhere.
    """
    amount = tx.amount
    buy = amount >= 0
    bought = ibis.cases((buy, tx.day), else_=ibis.null("int64"))
    before = ibis.window(group_by=tx.account_id, order_by=[tx.day, amount.desc()], preceding=(None, 1))
    t = tx.mutate(
        _before=bought.max().over(before),
        _first=bought.min().over(ibis.window(group_by=tx.account_id)),
    )
    buy = t.amount >= 0
    opens = buy & (t._before.isnull() | (t._before < t.day))
    return t.select(
        "account_id",
        "day",
        spend=t.amount,
        refund=ibis.cases((t.amount < 0, -t.amount), else_=0.0),
        n_refunds=ibis.cases((t.amount < 0, 1.0), else_=0.0),
        n_zero=ibis.cases((t.amount == 0, 1.0), else_=0.0),
        quantity=t.quantity,
        purchase=ibis.cases((opens, 1.0), else_=0.0),
        gap=ibis.cases(
            (opens & t._before.notnull(), (t.day - t._before).cast("float64")), else_=ibis.null("float64")
        ),
        on_repeat_day=ibis.cases((ibis.cases((buy, t.day), else_=t._before) > t._first, 1.0), else_=0.0),
    )


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """Return num / den as float, null when den is not positive or the quotient is beyond the floats.

    A net spend of 5e-324 made hours per spend infinite, and scoring stopped on it (a parity audit).
    """
    quotient = num.cast("float64") / den.cast("float64")
    finite = quotient.abs() < ibis.literal(float("inf"))
    return ibis.cases(((den > 0) & finite, quotient), else_=ibis.null("float64"))


def _sum_if(cond: ir.BooleanValue, value: ir.NumericValue | float) -> ir.NumericScalar:
    """Sum of `value` over the rows where `cond` holds (0 when none)."""
    return ibis.cases((cond, value), else_=0.0).sum()


@dataclass(frozen=True)
class DailyGroup:
    """A feature group computed in the shared single pass over the transaction rows (`day_rows`).

    `aggregates(ctx, d)` gives named aggregates over the rows `d` (names prefixed by the group, so
    groups never clash); `columns(ctx, a)` derives the output columns from the aggregated row `a`.
    All daily groups of a build are fused into one group-by, so the transactions are scanned once.
    """

    aggregates: Callable[[FeatureContext, ir.Table], dict[str, ir.Value]]
    columns: Callable[[FeatureContext, ir.Table], dict[str, ir.Value]]


def _rfm_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    buy = d.purchase == 1
    return {
        "rfm_first": d.day.min(where=buy),
        "rfm_last": d.day.max(where=buy),
        "rfm_days": d.purchase.sum(),
        # the repeat days' spend summed directly: the total less the first day's lost a small repeat
        # spend beside a huge first purchase (1e30 then 17,442 read 0); a repeat order refunded in full
        # nets 0, not the float rounding (5.6e-17) that Gamma-Gamma would fit as a positive order value
        "rfm_repeat_spend": net_sum(d.spend, d.on_repeat_day == 1),
    }


def _rfm_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    unit = float(ctx.unit_days)
    # no purchase day (only refunds before the cutoff): missing, so 0 once filled, as without history
    freq = ibis.cases((a.rfm_days > 0, a.rfm_days - 1.0), else_=ibis.null("float64"))
    return {
        "frequency": freq,
        "recency": (a.rfm_last - a.rfm_first).cast("float64") / unit,
        "T": (ctx.lit(ctx.cutoff_day - 1) - a.rfm_first).cast("float64") / unit,
        "monetary": ibis.cases((freq > 0, a.rfm_repeat_spend / freq), else_=0.0),
    }


#: BTYD summary: frequency, recency, T, monetary (see module docs).
rfm = DailyGroup(_rfm_aggs, _rfm_cols)


#: The aggregate of an account's first row day, under one name in every daily group that needs it: the
#: fused pass (`kamml.features.build`) merges the groups' aggregates by name, so it is computed once.
FIRST_DAY = "first_day"


def _windows_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    out: dict[str, ir.Value] = {
        "win_spend": d.spend.sum(),
        "win_orders": d.purchase.sum(),
        "win_quantity": d.quantity.sum(),
        FIRST_DAY: d.day.min(),
    }
    for w in ctx.windows:
        inside = d.day >= ctx.lit(ctx.cutoff_day - w)
        out[f"win_spend_{w}"] = _sum_if(inside, d.spend)
        out[f"win_orders_{w}"] = _sum_if(inside, d.purchase)
        out[f"win_quantity_{w}"] = _sum_if(inside, d.quantity)
    return out


def _windows_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    out: dict[str, ir.Value] = {
        "spend_total": a.win_spend,
        "orders_total": a.win_orders.cast("float64"),
        "quantity_total": a.win_quantity,
        "days_since_first": (ctx.lit(ctx.cutoff_day) - a[FIRST_DAY]).cast("float64"),
    }
    for w in ctx.windows:
        out[f"spend_{w}d"] = a[f"win_spend_{w}"]
        out[f"orders_{w}d"] = a[f"win_orders_{w}"].cast("float64")
        out[f"quantity_{w}d"] = a[f"win_quantity_{w}"]
    return out


#: Net spend, purchase days and quantity over each lookback window and over the whole history.
windows = DailyGroup(_windows_aggs, _windows_cols)


def _calendar_window(ctx: FeatureContext) -> tuple[int, int]:
    """[start, stop) day numbers of the same horizon one year before the cutoff (at most 365 days)."""
    start = ctx.cutoff_day - 365
    return start, start + min(ctx.horizon_days, 365)


def _calendar_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    start, stop = _calendar_window(ctx)
    inside = (d.day >= ctx.lit(start)) & (d.day < ctx.lit(stop))
    return {FIRST_DAY: d.day.min(), "cal_spend": _sum_if(inside, d.spend)}


def _calendar_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    start, _ = _calendar_window(ctx)
    cutoff = ctx.cutoff
    return {
        "cutoff_month": ibis.literal(float(cutoff.month), type="float64"),
        "cutoff_quarter": ibis.literal(float(cutoff.quarter), type="float64"),
        "spend_last_year_horizon": ibis.cases(
            (a[FIRST_DAY] <= ctx.lit(start), a.cal_spend), else_=ibis.null("float64")
        ),
    }


#: Month and quarter of the cutoff, and spend in the same horizon one year earlier (seasonality);
#: `spend_last_year_horizon` is null for accounts whose history does not reach back to that window.
calendar = DailyGroup(_calendar_aggs, _calendar_cols)


#: The spend slope's span: the last 360 days (twelve 30-day months), and the least history it needs.
SLOPE_DAYS = 360
SLOPE_MIN_DAYS = 60


def _trend_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    c = ctx.cutoff_day
    recent = d.day >= ctx.lit(c - 182)
    prior = (d.day >= ctx.lit(c - 364)) & ~recent
    back = (ctx.lit(c - 1) - d.day).cast("float64")  # 0 = the day before the cutoff
    in_span = d.day >= ctx.lit(c - SLOPE_DAYS)
    buy = d.purchase == 1
    return {
        "tr_s_recent": _sum_if(recent, d.spend),
        "tr_s_prior": net_sum(d.spend, prior),  # a denominator: rounding left by a full refund is 0
        "tr_q_recent": _sum_if(recent, d.quantity),
        "tr_q_prior": _sum_if(prior, d.quantity),
        "tr_o_recent": _sum_if(recent & buy, 1.0),
        "tr_o_prior": _sum_if(prior & buy, 1.0),
        "tr_sy": _sum_if(in_span, d.spend),
        "tr_suy": _sum_if(in_span, back * d.spend),
        FIRST_DAY: d.day.min(),
    }


def _spend_slope(ctx: FeatureContext, a: ir.Table) -> ir.FloatingValue:
    """Least-squares slope of daily spend over the days since the first row (at most 360), per 30 days².

    Days before the first row are no history, not zero spend: counted as zeros (twelve 30-day bins
    before the thirty-fifth session), and with the first, partly seen bin counted whole, a young account
    read as rising. Over n days (u = 0 the latest, x = n - 1 - u): sum x = n(n-1)/2 and
    n sum x^2 - (sum x)^2 = n^2 (n^2 - 1) / 12, so the daily slope is (6 (n - 1) Sy - 12 Suy) /
    (n (n^2 - 1)); times 900, the monthly change of 30-day spend. Missing under `SLOPE_MIN_DAYS`.
    Two sums per account in the one pass, as the twelve-bin slope had.
    """
    n = ibis.least(ctx.lit(ctx.cutoff_day) - a[FIRST_DAY], SLOPE_DAYS).cast("float64")
    num = 6.0 * (n - 1.0) * a.tr_sy - 12.0 * a.tr_suy
    slope = 900.0 * num / (n * (n * n - 1.0))
    return ibis.cases((n >= SLOPE_MIN_DAYS, slope), else_=ibis.null("float64"))


def _trend_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    prior_size = _ratio(a.tr_q_prior, a.tr_o_prior).fill_null(0.0)
    # the earlier half-year must be observed whole: from a later first row it held less, read as rising
    whole_year = a[FIRST_DAY] <= ctx.lit(ctx.cutoff_day - 364)
    return {
        "spend_trend": ibis.cases(
            (whole_year, _ratio(a.tr_s_recent, a.tr_s_prior)), else_=ibis.null("float64")
        ),
        "spend_slope_12m": _spend_slope(ctx, a),
        "order_size_trend": _ratio(_ratio(a.tr_q_recent, a.tr_o_recent), prior_size),
    }


#: Expansion signals: recent vs prior half-year spend (for a history of a year), the least-squares slope of
#: daily spend over the last 360 days since the first row (per 30 days of 30-day spend), order-size growth.
trend = DailyGroup(_trend_aggs, _trend_cols)


def _regularity_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    return {
        "reg_gap_n": d.gap.count(),
        "reg_gap_sum": d.gap.sum(),
        "reg_gap_sq": (d.gap * d.gap).sum(),
        "reg_gap_max": d.gap.max(),
        "reg_last": d.day.max(where=d.purchase == 1),
    }


def _regularity_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    n = a.reg_gap_n.cast("float64")
    mean = _ratio(a.reg_gap_sum, n)
    var = _ratio(a.reg_gap_sq, n) - mean * mean
    since = (ctx.lit(ctx.cutoff_day) - a.reg_last).cast("float64")
    return {
        "gap_mean": mean,
        # missing without a gap, like gap_mean (GREATEST skips a NULL: a one-day buyer read as regular)
        "gap_std": ibis.cases((var > 0.0, var.sqrt()), (var.notnull(), 0.0), else_=ibis.null("float64")),
        "gap_max": a.reg_gap_max,
        "days_since_last": since,
        "overdue_ratio": _ratio(since, mean),
    }


#: Inter-purchase gaps (days between purchase days): mean, std, max, and how overdue the account is.
regularity = DailyGroup(_regularity_aggs, _regularity_cols)


def _breadth_aggs(ctx: FeatureContext, d: ir.Table) -> dict[str, ir.Value]:
    return {
        "br_gross": (d.spend + d.refund).sum(),
        "br_refund": d.refund.sum(),
        "br_refunds": d.n_refunds.sum(),
        "br_zero": d.n_zero.sum(),
    }


def _breadth_cols(ctx: FeatureContext, a: ir.Table) -> dict[str, ir.Value]:
    return {
        "refund_count": a.br_refunds.cast("float64"),
        "zero_amount_count": a.br_zero.cast("float64"),
        "refund_share": _ratio(a.br_refund, a.br_gross),
    }


#: Refund behaviour (the product part, `products`, needs a product column).
breadth = DailyGroup(_breadth_aggs, _breadth_cols)


def products(ctx: FeatureContext) -> ir.Table | None:
    """Product breadth: distinct products bought and the top product's share of positive spend."""
    if "product" not in ctx.tx.columns:
        return None
    pos = ctx.tx.filter(ctx.tx.amount > 0)
    per_product = pos.group_by(["account_id", "product"]).aggregate(s=pos.amount.sum())
    # a missing product is none: left out after the grouping (filtering the transactions on it first
    # made DuckDB's feature query peak 1.2 GB higher on a million accounts)
    known = per_product["product"].notnull()
    prod = per_product.group_by("account_id").aggregate(
        n_products=known.cast("int64").sum().cast("float64"),
        _top=per_product.s.max(where=known),
        _sum=per_product.s.sum(where=known),
    )
    return prod.select("account_id", "n_products", top_product_share=_ratio(prod._top, prod._sum))


def referral(ctx: FeatureContext) -> ir.Table | None:
    """Referrals made (count, last 365 days, recency), referred accounts' spend, two-hop reach, referred-by.

    `referred_spend` is the net spend before the cutoff of the accounts this account referred, after
    their referral (`spend_after_referral`, as the referral label counts it);
    `referrals_2hop` counts the referrals made by those accounts (a simple reach / centrality measure).
    """
    if ctx.referrals is None:
        return None
    r = ctx.referrals
    c = ctx.cutoff_day
    made = r.group_by(r.referrer_id.name("account_id")).aggregate(
        referrals_made=r.count().cast("float64"),
        referrals_made_365d=ibis.cases((r.day >= ctx.lit(c - 365), 1), else_=0).sum().cast("float64"),
        days_since_last_referral=(ctx.lit(c) - r.day.max()).cast("float64"),
    )
    after = spend_after_referral(r, ctx.tx)
    value = after.group_by(after.referrer_id.name("account_id")).aggregate(referred_spend=after.amount.sum())
    second = r.select(mid=r.referrer_id, leaf=r.referred_id)
    hop = (
        r.select(account_id=r.referrer_id, mid=r.referred_id)
        .inner_join(second, "mid")
        .group_by("account_id")
        .aggregate(referrals_2hop=ibis._.leaf.count().cast("float64"))
    )
    was = r.select(account_id=r.referred_id).distinct().mutate(was_referred=ibis.literal(1.0))
    ids = r.select(account_id=r.referrer_id).union(r.select(account_id=r.referred_id), distinct=True)
    out = ids
    for part in (made, value, hop, was):
        out = join_on_account(out, part)
    return out


def effort(ctx: FeatureContext) -> ir.Table | None:
    """Past sales effort: hours over each window, activity count, recency, hours per unit of spend."""
    if ctx.activities is None:
        return None
    a = ctx.activities
    c = ctx.cutoff_day
    metrics: dict[str, ir.Value] = {
        "hours_total": a.hours.sum(),
        "activities_365d": ibis.cases((a.day >= ctx.lit(c - 365), 1), else_=0).sum().cast("float64"),
        "days_since_last_activity": (ctx.lit(c) - a.day.max()).cast("float64"),
    }
    for w in ctx.windows:
        metrics[f"hours_{w}d"] = ibis.cases((a.day >= ctx.lit(c - w), a.hours), else_=0.0).sum()
    metrics["_h365"] = ibis.cases((a.day >= ctx.lit(c - 365), a.hours), else_=0.0).sum()
    spend = ctx.spend_by_account().select("account_id", "_spend365")
    # outer: an account with spend and no activity spent 0 hours per unit (it was NaN, while one whose
    # activity is all older than 365 days got 0)
    h = outer_join_on_account(a.group_by("account_id").aggregate(**metrics), spend)
    keep = [c for c in h.columns if c not in ("_h365", "_spend365")]
    return h.select(*keep, hours_per_spend_365d=_ratio(h._h365.fill_null(0.0), h._spend365))


def static(ctx: FeatureContext) -> ir.Table | None:
    """Account attributes from the accounts table (assumed static), plus account age at the cutoff.

    The table holds each attribute as it is today, and every past snapshot reads that value: a column
    that changes over time (a status, a tier, a churn flag, the current ARR) carries later events into
    training and the backtest. ``features.static_columns`` lists the columns to use; by default every
    numeric, boolean or text column is, and a column of only nulls without a type
    (`kamml.data.readers.untyped_null`), as text that is all missing. A row's values count from its
    ``created_at`` day (point in time: before it the row did not exist); a row without one cannot be
    placed in time and counts at every cutoff.
    """
    if ctx.accounts is None:
        return None
    acc = ctx.accounts
    cols: dict[str, ir.Value] = {}
    later: ir.BooleanValue | None = None
    if "created_at" in acc.columns:
        age = ctx.lit(ctx.cutoff_day) - to_day(acc.created_at)
        # created on or after the cutoff (a row created after the account's first purchase): no age yet
        cols["account_age_days"] = ibis.cases((age > 0, age.cast("float64")), else_=ibis.null("float64"))
        later = age <= 0  # null for a row without created_at: it cannot be placed in time, so it counts
    for name, dtype in acc.schema().items():
        if name in NON_FEATURE_ACCOUNT_COLUMNS:
            continue
        if ctx.static_columns is not None and name not in ctx.static_columns:
            continue
        if dtype.is_numeric() or dtype.is_boolean():
            value = acc[name].cast("float64")
        elif dtype.is_string():
            value = acc[name]
        elif untyped_null(dtype):  # all null, so written without a type: missing text, not no column
            value = acc[name].cast("string")
        else:  # other types (dates, lists): not an attribute; one named in static_columns is refused earlier
            continue
        # a row created on or after the cutoff did not exist at it: its values, there today, are the
        # account's later existence (an audit: a CRM creating rows at a second purchase lifted churn
        # AUC from 0.915 to 0.928, past BTYD's 0.924, with the rows as they stood at the cutoff)
        cols[f"attr_{name}"] = value if later is None else later.ifelse(ibis.null(value.type()), value)
    if not cols:
        return None
    return acc.select("account_id", **cols)


#: Every feature group by name, in output order. Daily groups share one pass over the per-day table;
#: table groups join their own table. `btyd` is added by kamml.models (DESIGN §4).
GROUPS: dict[str, DailyGroup | TableGroup] = {
    "rfm": rfm,
    "windows": windows,
    "calendar": calendar,
    "trend": trend,
    "regularity": regularity,
    "breadth": breadth,
    "products": products,
    "referral": referral,
    "effort": effort,
    "static": static,
}
