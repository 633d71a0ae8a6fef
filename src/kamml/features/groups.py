"""Feature groups (DESIGN §4): small pure functions from a `FeatureContext` to columns by account_id.

Each group returns an Ibis table with one row per account that has rows in the group's source table, or
None when its table is absent. `kamml.features.build` joins them onto the account base and fills counts
with zero. Rules that matter for the numbers (tested in tests/features/):

- A *purchase day* is a day on which the account has at least one transaction with amount >= 0;
  transactions on the same day are merged (BTYD convention), so same-day orders count once.
- Refunds (amount < 0) reduce the spend of their day and of every window (spend is net); a day that has
  only refunds is not a purchase day. Zero-amount rows make a purchase day (a free order is an order).
- rfm follows lifetimes' `summary_data_from_transaction_data`: frequency = purchase days - 1, recency =
  last - first purchase day, T = (cutoff - 1 day) - first purchase day, both in `time.unit`, monetary =
  mean net spend of the repeat purchase days (0 without repeats).
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from kamml.features._context import FeatureContext, to_day

__all__ = [
    "GROUPS",
    "breadth",
    "calendar",
    "daily",
    "effort",
    "referral",
    "regularity",
    "rfm",
    "static",
    "trend",
    "windows",
]

GroupFn = Callable[[FeatureContext], "ir.Table | None"]

#: Columns of the accounts table that are not features (identifiers, dates handled separately, owner:
#: the sales rep is who serves the account, used by allocation, not a property of the account).
NON_FEATURE_ACCOUNT_COLUMNS = ("account_id", "created_at", "owner")


def daily(tx: ir.Table) -> ir.Table:
    """Transactions merged per account and day: net spend, gross, refunds, quantity, purchase flag."""
    amount = tx.amount
    return tx.group_by(["account_id", "day"]).aggregate(
        spend=amount.sum(),
        refund=ibis.cases((amount < 0, -amount), else_=0.0).sum(),
        n_refunds=ibis.cases((amount < 0, 1), else_=0).sum(),
        n_zero=ibis.cases((amount == 0, 1), else_=0).sum(),
        quantity=tx.quantity.sum(),
        purchase=ibis.cases((amount >= 0, 1), else_=0).max(),
    )


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """Return num / den as float, null when den is not positive."""
    return ibis.cases((den > 0, num.cast("float64") / den.cast("float64")), else_=ibis.null("float64"))


def rfm(ctx: FeatureContext) -> ir.Table:
    """BTYD summary: frequency, recency, T, monetary (see module docs), plus lifetime totals."""
    d = ctx.daily
    p = d.filter(d.purchase == 1)
    first = p.day.min().over(group_by=p.account_id)
    p = p.mutate(is_first=(p.day == first).cast("int64"))
    agg = p.group_by("account_id").aggregate(
        first_day=p.day.min(),
        last_day=p.day.max(),
        n_days=p.day.count(),
        repeat_spend=(p.spend * (1 - p.is_first)).sum(),
    )
    unit = float(ctx.unit_days)
    freq = agg.n_days - 1
    return agg.select(
        "account_id",
        frequency=freq.cast("float64"),
        recency=(agg.last_day - agg.first_day).cast("float64") / unit,
        T=(ctx.lit(ctx.cutoff_day - 1) - agg.first_day).cast("float64") / unit,
        monetary=ibis.cases((freq > 0, agg.repeat_spend / freq.cast("float64")), else_=0.0),
    )


def windows(ctx: FeatureContext) -> ir.Table:
    """Net spend, purchase days and quantity over each lookback window, and over the whole history."""
    d = ctx.daily
    metrics: dict[str, ir.Value] = {
        "spend_total": d.spend.sum(),
        "orders_total": d.purchase.sum().cast("float64"),
        "quantity_total": d.quantity.sum(),
        "days_since_first": (ctx.lit(ctx.cutoff_day) - d.day.min()).cast("float64"),
    }
    for w in ctx.windows:
        inside = d.day >= ctx.lit(ctx.cutoff_day - w)
        metrics[f"spend_{w}d"] = ibis.cases((inside, d.spend), else_=0.0).sum()
        metrics[f"orders_{w}d"] = ibis.cases((inside, d.purchase), else_=0).sum().cast("float64")
        metrics[f"quantity_{w}d"] = ibis.cases((inside, d.quantity), else_=0.0).sum()
    return d.group_by("account_id").aggregate(**metrics)


def calendar(ctx: FeatureContext) -> ir.Table:
    """Month and quarter of the cutoff, and spend in the same horizon one year earlier (seasonality).

    `spend_last_year_horizon` covers [cutoff - 365 d, cutoff - 365 d + min(horizon, 365 d)); it is null
    for accounts whose history does not reach back to the start of that window.
    """
    d = ctx.daily
    start = ctx.cutoff_day - 365
    stop = start + min(ctx.horizon_days, 365)
    inside = (d.day >= ctx.lit(start)) & (d.day < ctx.lit(stop))
    agg = d.group_by("account_id").aggregate(
        _first=d.day.min(), _spend=ibis.cases((inside, d.spend), else_=0.0).sum()
    )
    cutoff = ctx.cutoff
    return agg.select(
        "account_id",
        cutoff_month=ibis.literal(float(cutoff.month), type="float64"),
        cutoff_quarter=ibis.literal(float(cutoff.quarter), type="float64"),
        spend_last_year_horizon=ibis.cases(
            (agg._first <= ctx.lit(start), agg._spend), else_=ibis.null("float64")
        ),
    )


def trend(ctx: FeatureContext) -> ir.Table:
    """Expansion signals: recent vs prior half-year spend, 12-month spend slope, order-size growth.

    The slope is the least-squares slope of monthly (30-day) net spend over the last 12 months against
    month index (positive = growing), including months without spend.
    """
    d = ctx.daily
    c = ctx.cutoff_day
    recent = d.day >= ctx.lit(c - 182)
    prior = (d.day >= ctx.lit(c - 364)) & ~recent
    age = ctx.lit(c - 1) - d.day
    month = (age // 30).cast("int64")  # 0 = the latest 30 days
    in_year = month < 12
    x = (11 - month).cast("float64")  # 0..11, oldest first
    agg = d.group_by("account_id").aggregate(
        s_recent=ibis.cases((recent, d.spend), else_=0.0).sum(),
        s_prior=ibis.cases((prior, d.spend), else_=0.0).sum(),
        q_recent=ibis.cases((recent, d.quantity), else_=0.0).sum(),
        q_prior=ibis.cases((prior, d.quantity), else_=0.0).sum(),
        o_recent=ibis.cases((recent & (d.purchase == 1), 1), else_=0).sum(),
        o_prior=ibis.cases((prior & (d.purchase == 1), 1), else_=0).sum(),
        sy=ibis.cases((in_year, d.spend), else_=0.0).sum(),
        sxy=ibis.cases((in_year, x * d.spend), else_=0.0).sum(),
    )
    # n = 12 months, x = 0..11: sum x = 66, sum x^2 = 506, n*sum x^2 - (sum x)^2 = 1716
    return agg.select(
        "account_id",
        spend_trend=_ratio(agg.s_recent, agg.s_prior),
        spend_slope_12m=(12.0 * agg.sxy - 66.0 * agg.sy) / 1716.0,
        order_size_trend=_ratio(
            _ratio(agg.q_recent, agg.o_recent), _ratio(agg.q_prior, agg.o_prior).fill_null(0.0)
        ),
    )


def regularity(ctx: FeatureContext) -> ir.Table:
    """Inter-purchase gaps (days between purchase days): mean, std, and how overdue the account is."""
    d = ctx.daily
    p = d.filter(d.purchase == 1)
    gap = p.day - p.day.lag().over(group_by=p.account_id, order_by=p.day)
    p = p.mutate(gap=gap.cast("float64"))
    agg = p.group_by("account_id").aggregate(
        gap_mean=p.gap.mean(),
        gap_std=p.gap.std(how="pop"),
        gap_max=p.gap.max(),
        last_day=p.day.max(),
    )
    since = (ctx.lit(ctx.cutoff_day) - agg.last_day).cast("float64")
    return agg.select(
        "account_id",
        "gap_mean",
        "gap_std",
        "gap_max",
        days_since_last=since,
        overdue_ratio=_ratio(since, agg.gap_mean),
    )


def breadth(ctx: FeatureContext) -> ir.Table:
    """Product breadth (distinct products, top product's share of spend) and refund behaviour."""
    d = ctx.daily
    out = d.group_by("account_id").aggregate(
        _gross=(d.spend + d.refund).sum(),
        _refund=d.refund.sum(),
        refund_count=d.n_refunds.sum().cast("float64"),
        zero_amount_count=d.n_zero.sum().cast("float64"),
    )
    out = out.select(
        "account_id", "refund_count", "zero_amount_count", refund_share=_ratio(out._refund, out._gross)
    )
    if "product" not in ctx.tx.columns:
        return out
    tx = ctx.tx
    pos = tx.filter(tx.amount > 0)
    per_product = pos.group_by(["account_id", "product"]).aggregate(s=pos.amount.sum())
    prod = per_product.group_by("account_id").aggregate(
        n_products=per_product["product"].nunique().cast("float64"),
        _top=per_product.s.max(),
        _sum=per_product.s.sum(),
    )
    prod = prod.select("account_id", "n_products", top_product_share=_ratio(prod._top, prod._sum))
    return out.left_join(prod, "account_id").select(*out.columns, "n_products", "top_product_share")


def referral(ctx: FeatureContext) -> ir.Table | None:
    """Referrals made (count, last 365 days, recency), referred accounts' spend, two-hop reach, referred-by.

    `referred_spend` is the spend before the cutoff of the accounts this account referred;
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
    spend = ctx.daily.group_by("account_id").aggregate(_spend=ctx.daily.spend.sum())
    referred = r.select(referrer=r.referrer_id, account_id=r.referred_id)
    value = (
        referred.inner_join(spend, "account_id")
        .group_by("referrer")
        .aggregate(referred_spend=ibis._["_spend"].sum())
        .rename(account_id="referrer")
    )
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
        out = out.left_join(part, "account_id").drop("account_id_right")
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
    hours = a.group_by("account_id").aggregate(**metrics)
    d = ctx.daily
    spend = d.group_by("account_id").aggregate(
        _spend365=ibis.cases((d.day >= ctx.lit(c - 365), d.spend), else_=0.0).sum()
    )
    h365 = ibis.cases((a.day >= ctx.lit(c - 365), a.hours), else_=0.0).sum()
    h = a.group_by("account_id").aggregate(_h365=h365).left_join(spend, "account_id")
    ratio = h.select(account_id=h.account_id, hours_per_spend_365d=_ratio(h._h365, h._spend365))
    return hours.left_join(ratio, "account_id").drop("account_id_right")


def static(ctx: FeatureContext) -> ir.Table | None:
    """Account attributes from the accounts table (assumed static), plus account age at the cutoff."""
    if ctx.accounts is None:
        return None
    acc = ctx.accounts
    cols: dict[str, ir.Value] = {}
    if "created_at" in acc.columns:
        cols["account_age_days"] = (ctx.lit(ctx.cutoff_day) - to_day(acc.created_at)).cast("float64")
    for name, dtype in acc.schema().items():
        if name in NON_FEATURE_ACCOUNT_COLUMNS:
            continue
        if dtype.is_numeric() or dtype.is_boolean():
            cols[f"attr_{name}"] = acc[name].cast("float64")
        elif dtype.is_string():
            cols[f"attr_{name}"] = acc[name]
    if not cols:
        return None
    return acc.select("account_id", **cols)


#: Every feature group by name, in output order. `btyd` is added by kamml.models (DESIGN §4).
GROUPS: dict[str, GroupFn] = {
    "rfm": rfm,
    "windows": windows,
    "calendar": calendar,
    "trend": trend,
    "regularity": regularity,
    "breadth": breadth,
    "referral": referral,
    "effort": effort,
    "static": static,
}
