"""Referred accounts' spend after their referral: the referral label's rows and its timing before a cutoff.

The referral label (`label_expr`) credits a referrer with what the accounts it referred in the window
spent after their referral, inside the window. How that total grows with the window's length depends on
when referred accounts spend: all at once when referred (it grows in proportion to the window) or for
months afterwards (it grows about with the window's square, since early referrals keep spending while
new ones arrive). `referral_spend_by_age` measures that timing from the history, for the bundle's
carry of referral value from the training window to the horizon
(`kamml.models.influence.referral_window_ratio`).
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir
import numpy as np

from kamml.engine import engine_errors
from kamml.features._context import day_number, to_day, with_day

__all__ = ["first_referrals", "referral_spend_by_age", "spend_after_referral"]


def first_referrals(referrals: ir.Table | None) -> ir.Table | None:
    """One row per referrer-referred pair, at its first date: a repeated row is one referral.

    A referral exported twice (or logged again later) was counted twice in the features and the
    referral label (an account credited with 200 for a referred account's 100). An account referred by
    several accounts keeps one row per referrer: its spend is credited to each (the label measures
    influence, not an attribution that sums to the spend).
    """
    if referrals is None:
        return None
    return referrals.group_by(["referrer_id", "referred_id"]).aggregate(ts=referrals.ts.min())


def spend_after_referral(refs: ir.Table, transactions: ir.Table) -> ir.Table:
    """Each referred account's purchases on or after its referral, one row per referrer and purchase.

    Columns referrer_id, account_id (the referred account), ts, ref_ts, amount. A purchase earlier on
    the referral's day is left out, unless it carries no time of day (a date-only export), which
    cannot be placed before or after a referral logged that day.
    """
    spend = refs.select(refs.referrer_id, account_id=refs.referred_id, ref_ts=refs.ts).inner_join(
        transactions.select("account_id", "ts", "amount"), "account_id"
    )
    dated_only = spend.ts == spend.ts.truncate("D")
    same_day = to_day(spend.ts) == to_day(spend.ref_ts)
    return spend.filter((spend.ts >= spend.ref_ts) | (dated_only & same_day))


def referral_spend_by_age(data: Any, cutoff: Any, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Referred accounts' spend by whole days since their referral, before `cutoff`, and who was seen.

    Returns ``spend`` (length `days`: the spend at ages 0 .. days - 1 of every referral made before the
    cutoff, summed over referrals) and ``seen`` (length `days`: how many referrals were observed at each
    age, i.e. made more than that many days before the cutoff). ``spend / seen`` is the mean spend of
    a referred account on its a-th day; zeros without a referrals table. Two small aggregate queries
    in the engine (at most `days` rows each).
    """
    spend = np.zeros(days)
    seen = np.zeros(days)
    refs = first_referrals(getattr(data, "referrals", None))
    if refs is None:
        return spend, seen
    cday = day_number(cutoff)
    refs = with_day(refs)
    refs = refs.filter(refs.day < cday)
    tx = with_day(data.transactions)
    bought = spend_after_referral(refs, tx.filter(tx.day < cday))
    age = (to_day(bought.ts) - to_day(bought.ref_ts)).name("age")
    by_age = bought.mutate(age=age)
    by_age = by_age.filter(by_age.age < days).group_by("age").aggregate(amount=by_age.amount.sum())
    made = refs.mutate(age=cday - refs.day)
    made = made.group_by("age").aggregate(n=made.count())
    with engine_errors():
        spent = by_age.to_pandas()
        counts = made.to_pandas()
    ages = spent["age"].to_numpy(dtype=np.int64)
    np.add.at(spend, np.clip(ages, 0, days - 1), spent["amount"].to_numpy(dtype=float))
    # a referral made d days before the cutoff was observed at ages 0 .. d - 1
    observed = np.clip(counts["age"].to_numpy(dtype=np.int64), 0, days)
    made_at = np.bincount(observed, weights=counts["n"].to_numpy(dtype=float), minlength=days + 1)
    seen = made_at[::-1].cumsum()[::-1][1:]  # seen[a] = referrals with d > a
    return spend, seen
