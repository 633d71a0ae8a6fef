"""The simulator of the synthetic B2B world: one mechanism for the history and for the future.

Private module of `kamml.datasets.synthetic`. Time is in days since the world's start (float, so events are
in continuous time); timestamps are floored to the second only when rows are written. The same functions
(`simulate_span`, `assign_seats`, `events_to_rows`, `draw_accounts`) simulate each planning period of the
history and the future horizon (`simulate_future`), so the exact expectations of
`kamml.datasets._synthetic_truth` can be checked against this code by Monte Carlo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kamml.datasets._synthetic_params import AccountTraits, WorldParams, draw_accounts, draw_owners
from kamml.errors import ConfigError

__all__ = [
    "Calendar",
    "History",
    "assign_seats",
    "events_to_rows",
    "simulate_future",
    "simulate_history",
    "simulate_span",
    "to_seconds",
]

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
ACTIVITY_KINDS = ("call", "meeting", "demo", "email")
#: Most accounts `simulate_history` simulates: this many per account kept, or `MAX_SIMULATED` if more.
#: The default world simulates about 1.2 per account kept over 3 years and 12 over 100 years.
SIMULATED_PER_KEPT = 20
MAX_SIMULATED = 1_000_000


@dataclass(frozen=True)
class Calendar:
    """Piecewise-constant seasonal intensity over [0, span) days from `origin`, split at month starts.

    ``breaks`` are the segment boundaries (days since `origin`, first 0, last the span), ``season`` the
    purchase-rate multiplier of each segment (by its calendar month) and ``cum`` the integral of the
    multiplier at each boundary, so the expected number of orders of a rate-``lam`` account on [a, b) is
    ``lam * (cumulative(b) - cumulative(a))``.
    """

    origin: pd.Timestamp
    breaks: np.ndarray
    season: np.ndarray
    cum: np.ndarray

    @classmethod
    def build(
        cls, origin: pd.Timestamp, span_days: float, season: np.ndarray, extra: np.ndarray | None = None
    ) -> Calendar:
        """Segments between month starts (and any `extra` boundaries) over [0, span_days)."""
        months = pd.date_range(origin.normalize(), origin + pd.Timedelta(days=span_days), freq="MS")
        days = ((months - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        points = [np.array([0.0, float(span_days)]), days]
        if extra is not None:
            points.append(np.asarray(extra, dtype=float))
        breaks = np.unique(np.concatenate(points))
        breaks = breaks[(breaks >= 0) & (breaks <= span_days)]
        middle = origin + pd.to_timedelta((breaks[:-1] + breaks[1:]) / 2, unit="D")  # each segment: one month
        mult = np.asarray(season, dtype=float)[middle.month.to_numpy() - 1]
        cum = np.concatenate([[0.0], np.cumsum(mult * np.diff(breaks))])
        return cls(origin=origin, breaks=breaks, season=mult, cum=cum)

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """Integral of the seasonal multiplier from 0 to `t`."""
        return np.interp(t, self.breaks, self.cum)

    def inverse(self, c: np.ndarray) -> np.ndarray:
        """The time at which the integrated multiplier reaches `c` (inverse of `cumulative`)."""
        return np.interp(c, self.cum, self.breaks)


@dataclass
class Span:
    """What happened to a batch of alive accounts over [a, b): deaths, purchase events, referrals."""

    death: np.ndarray  # time of death, inf if alive at b
    event_idx: np.ndarray  # purchase events: index into the batch
    event_t: np.ndarray
    ref_idx: np.ndarray  # referrals made: index into the batch
    ref_t: np.ndarray


def simulate_span(
    rng: np.random.Generator,
    cal: Calendar,
    a: np.ndarray,
    b: np.ndarray | float,
    lam: np.ndarray,
    mu: np.ndarray,
    rho: np.ndarray,
) -> Span:
    """Simulate accounts alive at `a` over [a, b) with constant hazard and (seasonal) Poisson events.

    Each account dies at rate `mu`; until then it orders at rate ``lam * season(t)`` and refers new
    accounts at rate `rho` (both Poisson processes). Vectorised over accounts: counts are Poisson draws
    and event times are inverse-transform draws of the integrated intensity.
    """
    n = a.size
    b = np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    with np.errstate(divide="ignore"):
        death = a + rng.exponential(size=n) / mu
    died = death < b
    stop = np.where(died, death, b)
    c_a, c_stop = cal.cumulative(a), cal.cumulative(stop)
    counts = rng.poisson(lam * (c_stop - c_a))
    idx = np.repeat(np.arange(n), counts)
    t = cal.inverse(rng.uniform(c_a[idx], c_stop[idx]))
    t = np.minimum(np.maximum(t, a[idx]), np.nextafter(stop[idx], -np.inf))
    ref_counts = rng.poisson(rho * (stop - a))
    ref_idx = np.repeat(np.arange(n), ref_counts)
    ref_t = rng.uniform(a[ref_idx], stop[ref_idx])
    return Span(np.where(died, death, np.inf), idx, t, ref_idx, ref_t)


def to_seconds(t: np.ndarray, upper_days: float | None = None) -> np.ndarray:
    """Whole seconds since the origin of times `t` in days (floored; kept below `upper_days`)."""
    sec = np.floor(np.asarray(t, dtype=float) * SECONDS_PER_DAY + 1e-6).astype(np.int64)
    if upper_days is not None:
        sec = np.minimum(sec, round(upper_days * SECONDS_PER_DAY) - 1)
    return sec


def assign_seats(
    rng: np.random.Generator,
    acc: np.ndarray,
    t: np.ndarray,
    seats_start: np.ndarray,
    t_start: np.ndarray,
    growth: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seats of each account at its purchase events under Poisson seat additions.

    An account holds ``seats_start[i]`` at ``t_start[i]`` and adds seats as a Poisson process of rate
    ``growth[i]`` per day (licence-style expansion), so E[seats(t)] = seats_start + growth (t - t_start).

    Returns
    -------
    seats : numpy.ndarray
        Seats at each event, aligned with `acc`.
    last_seats, last_t : numpy.ndarray
        Per account: seats at its last event and the time of that event (`seats_start` and `t_start` for
        accounts without events). Seats at a later time t are ``last_seats + Poisson(growth (t - last_t))``.
    """
    span = float(np.max(t, initial=0.0)) + 1.0
    order = np.argsort(acc * span + t)  # by account, then time
    acc_s, t_s = acc[order], t[order]
    first = np.ones(acc_s.size, dtype=bool)
    first[1:] = acc_s[1:] != acc_s[:-1]
    prev = np.empty_like(t_s)
    prev[1:] = t_s[:-1]
    prev[first] = t_start[acc_s[first]]
    incr = rng.poisson(growth[acc_s] * np.maximum(t_s - prev, 0.0))
    csum = np.cumsum(incr)
    group = np.cumsum(first) - 1
    offset = (csum - incr)[first]
    seats_s = seats_start[acc_s] + csum - offset[group]
    seats = np.empty_like(seats_s)
    seats[order] = seats_s
    last_seats = np.asarray(seats_start, dtype=np.int64).copy()
    last_t = np.asarray(t_start, dtype=float).copy()
    if acc_s.size:
        last = np.flatnonzero(np.r_[first[1:], True])
        last_seats[acc_s[last]] = seats_s[last]
        last_t[acc_s[last]] = t_s[last]
    return seats, last_seats, last_t


@dataclass
class Rows:
    """Transaction rows made from purchase events (order lines, same-day repeats, refunds)."""

    acc: np.ndarray
    sec: np.ndarray
    amount: np.ndarray
    quantity: np.ndarray
    product: np.ndarray


def events_to_rows(
    rng: np.random.Generator,
    params: WorldParams,
    acc: np.ndarray,
    t: np.ndarray,
    seats: np.ndarray,
    price_factor: np.ndarray,
    mix: np.ndarray,
    upper_days: float | None = None,
) -> Rows:
    """Turn purchase events into transaction rows.

    Each event is an order line of one product (drawn from the account's mix) for all its seats:
    amount = seats x list price x price factor x Gamma noise (mean 1). With probability `p_zero` the line
    is billed at zero; with probability `p_duplicate` a second line of the same product follows the same
    day; with probability `p_refund` a paid line is partly refunded the same day (a negative row with
    quantity 0). The expected total per event is ``seats x price_per_seat x params.order_multiplier``.
    """
    p = params
    n = acc.size
    prices = np.asarray(p.product_price, dtype=float)
    cum = np.cumsum(mix, axis=1)
    cum[:, -1] = 1.0
    product = np.minimum((rng.random(n)[:, None] >= cum[acc]).sum(axis=1), prices.size - 1)
    shape = p.amount_shape
    base_unit = seats * prices[product] * price_factor[acc]
    amount = base_unit * rng.gamma(shape, 1.0 / shape, n)
    amount[rng.random(n) < p.p_zero] = 0.0
    dup = rng.random(n) < p.p_duplicate
    refund = (amount > 0) & (rng.random(n) < p.p_refund)
    sec = to_seconds(t, upper_days)
    n_dup = int(dup.sum())
    dup_amount = base_unit[dup] * rng.gamma(shape, 1.0 / shape, n_dup)
    ref_amount = -rng.uniform(p.refund_low, p.refund_high, int(refund.sum())) * amount[refund]
    extra = np.concatenate([np.flatnonzero(dup), np.flatnonzero(refund)])
    day_end = (sec[extra] // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY
    extra_sec = sec[extra] + rng.integers(0, day_end - sec[extra])
    return Rows(
        acc=np.concatenate([acc, acc[extra]]),
        sec=np.concatenate([sec, extra_sec]),
        amount=np.concatenate([amount, dup_amount, ref_amount]),
        quantity=np.concatenate([seats, seats[dup], np.zeros(refund.sum())]).astype(np.float64),
        product=np.concatenate([product, product[extra]]),
    )


# ---------------------------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------------------------


@dataclass
class History:
    """The simulated history of the selected accounts, indexed 0..n-1 in account_id order."""

    traits: AccountTraits
    created_sec: np.ndarray  # seconds since start (negative: existed before the start)
    owner: np.ndarray
    alive: np.ndarray  # latent state at the end
    death: np.ndarray  # days: time of churn (inf if alive at the end)
    seats_end: np.ndarray  # latent seats at the end
    last_event: np.ndarray  # days: last observed sign of life (order, referral made, creation, start)
    last_order_seats: np.ndarray  # seats at the last order (initial seats if none)
    last_order_t: np.ndarray  # days: time of the last order (start or creation if none)
    period_breaks: np.ndarray  # days: boundaries of the planning periods
    served: np.ndarray  # (n, n_periods) latent served indicator per period
    rows: Rows
    referrals: tuple[np.ndarray, np.ndarray, np.ndarray]  # referrer, referred, seconds
    effort: dict[str, np.ndarray]  # per account-period: acc, period, hours, u, served
    activities: dict[str, np.ndarray]  # acc, sec, hours, kind
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class _Book:
    """All accounts simulated so far (traits plus state), with batches appended during a period."""

    traits: AccountTraits
    created: np.ndarray  # days
    owner: np.ndarray
    root: np.ndarray
    referrer: np.ndarray
    death: np.ndarray
    pending: list[tuple[AccountTraits, dict[str, np.ndarray]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.traits) + sum(len(b) for b, _ in self.pending)

    def add(self, traits: AccountTraits, **state: np.ndarray) -> None:
        self.pending.append((traits, state))

    def flush(self) -> None:
        if not self.pending:
            return
        batches = [b for b, _ in self.pending]
        self.traits = AccountTraits.concat([self.traits, *batches])
        for name in ("created", "owner", "root", "referrer", "death"):
            parts = [getattr(self, name)] + [s[name] for _, s in self.pending]
            setattr(self, name, np.concatenate(parts))
        self.pending = []


def _served_rates(tr: AccountTraits, idx: np.ndarray | slice, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Purchase rate, dropout hazard and referral rate of accounts `idx`, served where `z`."""
    lam = tr.lam[idx] * (1 + tr.up_lam[idx] * z)
    mu = tr.mu[idx] * (1 - tr.up_mu[idx] * z)
    rho = tr.rho[idx] * (1 + tr.up_rho[idx] * z)
    return lam, mu, rho


def _policy_hours(
    rng: np.random.Generator,
    params: WorldParams,
    x: np.ndarray,
    rep_factor: np.ndarray,
    since_order: np.ndarray,
    age: np.ndarray,
    period_days: float,
) -> np.ndarray:
    """Hours the historical sales policy plans for accounts in one period (quarter hours).

    More hours to bigger accounts and to recently active ones, an onboarding boost for young accounts,
    the owner's working intensity (zero when the rep is away), lognormal noise and random zero periods.
    """
    p = params
    recent, year, old = p.policy_recency
    recency = np.where(since_order <= period_days, recent, np.where(since_order <= 365.25, year, old))
    recency = np.where(age <= 122, p.policy_onboarding * recency, recency)
    sig = p.policy_sigma
    noise = np.exp(sig * rng.standard_normal(x.size) - 0.5 * sig * sig)
    on = rng.random(x.size) >= p.policy_zero
    hours = p.policy_hours * np.exp(p.policy_size_elasticity * x) * recency * rep_factor * noise * on
    return np.rint(hours * 4) / 4


def simulate_history(
    rng: np.random.Generator,
    params: WorldParams,
    n_accounts: int,
    n_reps: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> History:
    """Simulate the book of accounts from `start` to `end`, keeping exactly `n_accounts` accounts.

    Accounts existing at the start and organic arrivals are drawn first; referred accounts appear when an
    alive account refers one (a branching process, simulated generation by generation within each
    planning period). Each period the sales policy plans hours per existing account, which serve it with
    probability 1 - exp(-hours / k). Afterwards whole referral families (a root account and everything
    it led to) are kept in random order until there are exactly `n_accounts`.
    """
    p = params
    t_end = float((end - start) / pd.Timedelta(days=1))
    bounds = pd.date_range(start, end, freq=pd.DateOffset(months=p.period_months))
    period_breaks = np.unique(np.r_[((bounds - start) / pd.Timedelta(days=1)).to_numpy(dtype=float), t_end])
    period_breaks = period_breaks[period_breaks <= t_end]
    n_periods = period_breaks.size - 1
    cal = Calendar.build(start, t_end, p.season, extra=period_breaks)

    n_init = max(1, round(p.initial_share * n_accounts))
    n_org = n_accounts - n_init
    traits = draw_accounts(rng, n_init + n_org, p)
    age = np.minimum(rng.gamma(2.0, p.initial_age_days / 2.0, n_init), 15 * 365.25) + 1.0
    created = np.r_[-np.floor(age), to_seconds(rng.uniform(0, t_end, n_org), t_end) / SECONDS_PER_DAY]
    owner = draw_owners(rng, traits.employees, n_reps, p)
    ids = np.arange(n_init + n_org)
    book = _Book(traits, created, owner, ids.copy(), np.full(ids.size, -1), np.full(ids.size, np.inf))
    last_order = np.r_[-rng.uniform(0, 90, n_init), created[n_init:]]
    rep_intensity = np.exp(p.policy_rep_sigma * rng.standard_normal(max(n_reps, 1)))

    ev_acc: list[np.ndarray] = []
    ev_t: list[np.ndarray] = []
    ref_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    eff_parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]] = []

    for period in range(n_periods):
        p0, p1 = period_breaks[period], period_breaks[period + 1]
        tr = book.traits
        existing = np.flatnonzero(book.created < p0)
        rep_factor = rep_intensity * (rng.random(rep_intensity.size) >= p.policy_rep_absence)
        hours = _policy_hours(
            rng,
            p,
            tr.x[existing],
            rep_factor[book.owner[existing]],
            p0 - last_order[existing],
            p0 - book.created[existing],
            p1 - p0,
        )
        u = -np.expm1(-hours / tr.k[existing])
        z_ex = rng.random(existing.size) < u
        eff_parts.append((existing, period, hours, u, z_ex))
        served = np.zeros(len(tr), dtype=bool)
        served[existing] = z_ex

        alive_ex = existing[np.isinf(book.death[existing])]
        born = np.flatnonzero((book.created >= p0) & (book.created < p1) & (book.referrer < 0))
        ev_acc.append(born)
        ev_t.append(book.created[born])
        cur = np.r_[alive_ex, born]
        z = served[cur]
        span = simulate_span(
            rng, cal, np.r_[np.full(alive_ex.size, p0), book.created[born]], p1, *_served_rates(tr, cur, z)
        )
        book.death[cur] = span.death
        period_acc = [cur[span.event_idx]]
        period_t = [span.event_t]
        while span.ref_idx.size:
            referrer = cur[span.ref_idx]
            _check_growth(book.size + referrer.size, n_accounts, period, n_periods)
            ref_sec = to_seconds(span.ref_t, t_end)
            t_new = ref_sec / SECONDS_PER_DAY
            parent = _lookup(book, referrer)
            new = draw_accounts(
                rng, referrer.size, p, like_industry=parent["industry"], like_region=parent["region"]
            )
            same_owner = rng.random(referrer.size) < p.referral_same_owner
            new_owner = np.where(same_owner, parent["owner"], draw_owners(rng, new.employees, n_reps, p))
            first_id = book.size
            new_ids = np.arange(first_id, first_id + referrer.size)
            ref_parts.append((referrer, new_ids, ref_sec))
            period_acc.append(new_ids)
            period_t.append(t_new)
            span = simulate_span(rng, cal, t_new, p1, new.lam, new.mu, new.rho)
            book.add(
                new, created=t_new, owner=new_owner, root=parent["root"], referrer=referrer, death=span.death
            )
            period_acc.append(new_ids[span.event_idx])
            period_t.append(span.event_t)
            cur = new_ids
        book.flush()
        acc_p, t_p = np.concatenate(period_acc), np.concatenate(period_t)
        grown = np.full(book.size - last_order.size, -np.inf)
        last_order = np.r_[last_order, grown]
        np.maximum.at(last_order, acc_p, t_p)
        ev_acc.append(acc_p)
        ev_t.append(t_p)
        log.debug("period %d: %d accounts, %d served, %d events", period, book.size, z_ex.sum(), acc_p.size)

    return _finish(rng, p, book, n_accounts, n_init, t_end, period_breaks, ev_acc, ev_t, ref_parts, eff_parts)


def _check_growth(simulated: int, n_accounts: int, period: int, n_periods: int) -> None:
    """A ConfigError when the referral families grow past what the kept book needs (a hang, then no memory).

    Referred accounts refer in turn: an influence far above the dropout hazard makes the families grow
    without bound, and only `n_accounts` of them are kept in the end.
    """
    cap = max(SIMULATED_PER_KEPT * n_accounts, MAX_SIMULATED)
    if simulated > cap:
        raise ConfigError(
            f"invalid synthetic world parameters: the referrals outgrow the book: {simulated:,} accounts "
            f"simulated in period {period + 1} of {n_periods} for {n_accounts:,} kept (at most {cap:,}); "
            "lower influence_rate or uplift_referral, raise dropout_rate, or simulate fewer years"
        )


def _lookup(book: _Book, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Industry, region, owner and root of accounts by global index (flushed or pending)."""
    names = ("industry", "region", "owner", "root")
    if not book.pending:
        tr = book.traits
        return {
            "industry": tr.industry[idx],
            "region": tr.region[idx],
            "owner": book.owner[idx],
            "root": book.root[idx],
        }
    tr_all = [book.traits] + [b for b, _ in book.pending]
    cols = {
        "industry": np.concatenate([t.industry for t in tr_all]),
        "region": np.concatenate([t.region for t in tr_all]),
        "owner": np.concatenate([book.owner] + [s["owner"] for _, s in book.pending]),
        "root": np.concatenate([book.root] + [s["root"] for _, s in book.pending]),
    }
    return {name: cols[name][idx] for name in names}


def _select_families(
    rng: np.random.Generator,
    root: np.ndarray,
    created: np.ndarray,
    n_init: int,
    n_roots: int,
    n_accounts: int,
) -> np.ndarray:
    """Mask of the accounts whose referral family (a root account and all it led to) is kept.

    Initial roots first, then organic ones, each in random order, while the total stays within
    `n_accounts`; the gap left is filled with families of one account, and what is still missing (a tiny
    book whose families all referred someone) with the first accounts of the next families by creation.
    """
    family = np.bincount(root, minlength=n_roots)[:n_roots]
    order = np.r_[rng.permutation(n_init), n_init + rng.permutation(n_roots - n_init)]
    total = np.cumsum(family[order])
    take = total <= n_accounts
    gap = n_accounts - (int(total[take][-1]) if take.any() else 0)
    singles = order[~take][family[order[~take]] == 1][:gap]
    keep_root = np.zeros(n_roots, dtype=bool)
    keep_root[order[take]] = True
    keep_root[singles] = True
    keep = keep_root[root]
    _fill_with_family_heads(keep, root, created, order[~keep_root[order]], n_accounts)
    return keep


def _fill_with_family_heads(
    keep: np.ndarray, root: np.ndarray, created: np.ndarray, roots: np.ndarray, n_accounts: int
) -> None:
    """Keep the first accounts by creation of `roots`' families until `n_accounts` are kept (in place).

    A referrer is created before every account it referred, so such a head of a family keeps every
    kept account's referrer.
    """
    for family_root in roots:
        short = n_accounts - int(keep.sum())
        if short <= 0:
            return
        members = np.flatnonzero(root == family_root)
        keep[members[np.lexsort((members, created[members]))][:short]] = True


def _finish(
    rng: np.random.Generator,
    p: WorldParams,
    book: _Book,
    n_accounts: int,
    n_init: int,
    t_end: float,
    period_breaks: np.ndarray,
    ev_acc: list[np.ndarray],
    ev_t: list[np.ndarray],
    ref_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    eff_parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]],
) -> History:
    """Keep exactly `n_accounts` accounts, renumber them by creation, and build rows and latent state."""
    n_roots = n_accounts
    keep = _select_families(rng, book.root, book.created, n_init, n_roots, n_accounts)
    created_sec = np.rint(book.created * SECONDS_PER_DAY).astype(np.int64)
    old = np.flatnonzero(keep)
    old = old[np.lexsort((old, created_sec[old]))]
    new_of = np.full(book.size, -1, dtype=np.int64)
    new_of[old] = np.arange(old.size)
    tr = book.traits.take(old)
    n = old.size
    stats: dict[str, float] = {"simulated_accounts": float(book.size), "accounts": float(n)}

    acc = np.concatenate(ev_acc)
    t = np.concatenate(ev_t)
    mask = keep[acc]
    acc, t = new_of[acc[mask]], t[mask]
    created = book.created[old]
    t_start = np.maximum(created, 0.0)
    seats, last_seats, last_order_t = assign_seats(rng, acc, t, tr.seats0, t_start, tr.growth)
    seats_end = last_seats + rng.poisson(tr.growth * (t_end - last_order_t))
    rows = events_to_rows(rng, p, acc, t, seats, tr.price_factor, tr.mix, t_end)

    referrer = np.concatenate([r for r, _, _ in ref_parts]) if ref_parts else np.empty(0, np.int64)
    referred = np.concatenate([d for _, d, _ in ref_parts]) if ref_parts else np.empty(0, np.int64)
    ref_sec = np.concatenate([s for _, _, s in ref_parts]) if ref_parts else np.empty(0, np.int64)
    rmask = keep[referred]
    referrer, referred, ref_sec = new_of[referrer[rmask]], new_of[referred[rmask]], ref_sec[rmask]

    last_event = t_start.copy()
    np.maximum.at(last_event, acc, t)
    np.maximum.at(last_event, referrer, ref_sec / SECONDS_PER_DAY)

    n_periods = period_breaks.size - 1
    served = np.zeros((n, n_periods), dtype=bool)
    eff_acc, eff_period, eff_hours, eff_u, eff_z = [], [], [], [], []
    for idx, period, hours, u, z in eff_parts:
        m = keep[idx]
        new_idx = new_of[idx[m]]
        served[new_idx, period] = z[m]
        eff_acc.append(new_idx)
        eff_period.append(np.full(new_idx.size, period))
        eff_hours.append(hours[m])
        eff_u.append(u[m])
        eff_z.append(z[m])
    effort = {
        "acc": np.concatenate(eff_acc),
        "period": np.concatenate(eff_period),
        "hours": np.concatenate(eff_hours),
        "u": np.concatenate(eff_u),
        "served": np.concatenate(eff_z),
    }
    activities = _activities(rng, effort, period_breaks, t_end)
    stats.update(
        events=float(acc.size),
        rows=float(rows.acc.size),
        referrals=float(referrer.size),
        alive=float(np.isinf(book.death[old]).sum()),
    )
    return History(
        traits=tr,
        created_sec=created_sec[old],
        owner=book.owner[old],
        alive=np.isinf(book.death[old]),
        death=book.death[old],
        seats_end=seats_end,
        last_event=last_event,
        last_order_seats=last_seats,
        last_order_t=last_order_t,
        period_breaks=period_breaks,
        served=served,
        rows=rows,
        referrals=(referrer, referred, ref_sec),
        effort=effort,
        activities=activities,
        stats=stats,
    )


def _activities(
    rng: np.random.Generator, effort: dict[str, np.ndarray], period_breaks: np.ndarray, t_end: float
) -> dict[str, np.ndarray]:
    """Split each account-period's hours into logged activities (quarter-hour units), front-loaded."""
    has = effort["hours"] > 0
    acc, period = effort["acc"][has], effort["period"][has]
    units = np.rint(effort["hours"][has] * 4).astype(np.int64)
    pieces = np.minimum(1 + np.minimum(rng.poisson(units / 6.0), 5), units)
    row = np.repeat(np.arange(units.size), pieces)
    w = rng.exponential(size=row.size)
    w /= np.bincount(row, weights=w, minlength=units.size)[row]
    piece_units = np.floor(w * units[row]).astype(np.int64)
    leftover = units - np.bincount(row, weights=piece_units, minlength=units.size).astype(np.int64)
    split = pieces > 0  # none when no account-period has hours (a book of one or two accounts)
    first = (np.cumsum(pieces) - pieces)[split]
    piece_units[first] += leftover[split]
    ok = piece_units > 0
    row, piece_units = row[ok], piece_units[ok]
    hours = piece_units / 4.0
    r = rng.random(row.size)
    kind = np.where(
        hours <= 0.5,
        np.where(r < 0.5, 3, 0),  # email or call
        np.where(hours <= 1.5, np.where(r < 0.5, 0, 1), np.where(r < 0.6, 1, 2)),
    )
    p0 = period_breaks[period[row]]
    p1 = np.minimum(period_breaks[period[row] + 1], t_end)
    ts = p0 + (p1 - p0) * rng.beta(1.0, 2.0, row.size)
    return {"acc": acc[row], "sec": to_seconds(ts, t_end), "hours": hours, "kind": kind}


# ---------------------------------------------------------------------------------------------------------
# future
# ---------------------------------------------------------------------------------------------------------


def simulate_future(
    rng: np.random.Generator,
    params: WorldParams,
    start: pd.Timestamp,
    t_end: float,
    horizon_days: int,
    state: dict[str, np.ndarray],
    u: np.ndarray,
    n_runs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the horizon [t_end, t_end + horizon_days) `n_runs` times from the latent state at the end.

    Parameters
    ----------
    state : dict of numpy.ndarray
        Per account: alive, seats, growth, lam, mu, rho, up_lam, up_mu, up_rho, price_factor, mix
        (n x products), industry, region.
    u : numpy.ndarray
        Per account, the probability of being served in the horizon (1 - exp(-hours / k)).

    Returns
    -------
    value, referral_value : numpy.ndarray
        Arrays (n_runs, n_accounts): the amounts of the account's own rows in the horizon, and of the rows
        of the accounts it refers in the horizon (first generation only).
    """
    p = params
    horizon = float(horizon_days)
    cal = Calendar.build(start, t_end + horizon, p.season)
    n = state["alive"].size
    value = np.zeros((n_runs, n))
    referral = np.zeros((n_runs, n))
    alive = np.flatnonzero(state["alive"])
    chunk = max(1, 400_000 // max(alive.size, 1))
    for r0 in range(0, n_runs, chunk):
        runs = min(chunk, n_runs - r0)
        rep = np.tile(alive, runs)
        run = np.repeat(np.arange(r0, r0 + runs), alive.size)
        z = rng.random(rep.size) < u[rep]
        lam = state["lam"][rep] * (1 + state["up_lam"][rep] * z)
        mu = state["mu"][rep] * (1 - state["up_mu"][rep] * z)
        rho = state["rho"][rep] * (1 + state["up_rho"][rep] * z)
        span = simulate_span(rng, cal, np.full(rep.size, t_end), t_end + horizon, lam, mu, rho)
        ev = span.event_idx
        seats, _, _ = assign_seats(
            rng, ev, span.event_t, state["seats"][rep], np.full(rep.size, t_end), state["growth"][rep]
        )
        rows = events_to_rows(rng, p, ev, span.event_t, seats, state["price_factor"][rep], state["mix"][rep])
        own = np.bincount(rows.acc, weights=rows.amount, minlength=rep.size)
        value[run, rep] = own

        parent = span.ref_idx
        if parent.size:
            t_new = span.ref_t
            new = draw_accounts(
                rng,
                parent.size,
                p,
                like_industry=state["industry"][rep[parent]],
                like_region=state["region"][rep[parent]],
            )
            kid = simulate_span(rng, cal, t_new, t_end + horizon, new.lam, new.mu, new.rho)
            kid_acc = np.r_[np.arange(parent.size), kid.event_idx]
            kid_t = np.r_[t_new, kid.event_t]
            kid_seats, _, _ = assign_seats(rng, kid_acc, kid_t, new.seats0, t_new, new.growth)
            kid_rows = events_to_rows(rng, p, kid_acc, kid_t, kid_seats, new.price_factor, new.mix)
            per_kid = np.bincount(kid_rows.acc, weights=kid_rows.amount, minlength=parent.size)
            np.add.at(referral, (run[parent], rep[parent]), per_kid)
    return value, referral
