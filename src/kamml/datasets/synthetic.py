"""A synthetic B2B book of accounts with known ground truth, to test and score kamml end to end.

`generate(n_accounts, seed)` simulates a few years of a sales team's book and returns a `World`: the four
input tables of kamml's data contract (transactions, accounts, referrals, activities), a truth table with
every account's latent parameters and exact expected future value, and methods that score any allocation
of sales hours against the truth (`World.true_gain`) and against the oracle that knows it
(`World.stake_and_scale`). Deterministic for a seed; 100k accounts over 3 years take seconds.

The world (all constants in `WorldParams`; rates are per day)
-------------------------------------------------------------
Accounts
    Size (employees) is lognormal (median 50); segment from size (SMB < 100 <= mid-market < 1000 <=
    enterprise); industry and region are categorical. A share of the accounts (40 %) exists at the start
    (alive, created up to a few years earlier); the others arrive during the history, organically
    (uniform in time) or referred by an existing account (the referrals table; a referred account is
    created at the referral's timestamp and often shares the referrer's industry, region and owner).
    ``n_reps`` reps (default n_accounts / 500, clipped to [2, 200]) own the accounts; the biggest
    accounts (500+ staff) belong to an enterprise team, except referred ones that kept their referrer's
    owner (``referral_same_owner``, 0.6).
Orders (BTYD-like, continuous time)
    While alive an account orders as a Poisson process of rate ``lam x season(month)`` and churns at a
    constant hazard ``mu`` (exponential lifetime, Pareto/NBD style). ``lam`` is gamma-distributed around a
    mean that grows with size (x size^0.25) and depends on the industry; ``mu`` is gamma-distributed and
    smaller for bigger accounts. Every account created during the history orders at creation.
    Seasonality: monthly multipliers with a December peak and a summer dip.
Order value
    Licence style: an order is one line of one product (from the account's product mix) for all its
    seats, amount = seats x list price x account price factor x Gamma noise (mean 1). Seats start
    around 8 x (size / 50)^0.9 and, in expanding accounts (35 %), grow as a Poisson process. A few lines
    are billed at zero, a few are followed by a same-day second line, a few paid lines are partly refunded
    the same day (negative amount, quantity 0).
Referrals
    An alive account refers new accounts as a Poisson process of rate ``rho``: its latent influence, a
    lognormal trait that depends on industry and region and only weakly on size, hence only weakly tied
    to value.
Sales effort (the exact response the allocation assumes)
    With h hours of effort in a planning period an account is *served* with probability
    u = 1 - exp(-h / k), k its effort scale (hours; grows with size). A served account orders at
    ``lam (1 + up_lam)``, churns at ``mu (1 - up_mu)`` and refers at ``rho (1 + up_rho)`` for the whole
    period (per-account uplifts). In the history a period is a quarter (``period_months``); hours follow a
    known, partly random policy (more to bigger and recently active accounts, an onboarding boost, each
    rep's intensity, lognormal noise, random zero periods and rep absences) and are logged as activities
    (calls, emails, meetings, demos, front-loaded in the quarter). In the future the whole horizon is one
    period whose effort scale is k x horizon / period (`World.horizon_effort_scale`): the same hours
    spread over a longer time serve an account less surely (for a 180-day horizon, twice a quarter's k,
    as the quarters' own responses to half the hours each give to first order). With h hours,
    E[V](h) = V0 + (V1 - V0) u exactly, u = 1 - exp(-h / k_horizon), so the true gain of h hours is
    ``stake x (1 - exp(-h / k_horizon))`` with stake = V1 - V0, the shape kamml's optimizer assumes.

Truth (`World.truth`, one row per account in account_id order; exact, no sampling)
-----------------------------------------------------------------------------------
Latent state at `end`: ``alive``, ``churned_at`` (NaT if alive), ``seats``; ``p_alive`` is the posterior
an oracle with the true parameters and the realised served path would give from the observed history
(no order and no referral since the last one). Parameters (unserved, per day): ``purchase_rate``,
``dropout_rate``, ``influence`` (referral rate), ``growth`` (seats added per day), ``price_factor``,
``price_per_seat`` (expected amount per seat of an order line), ``share_<product>`` (product mix),
``order_value`` (expected amount of one order at `end`, all its lines included), ``effort_scale`` (k,
hours in one planning period of the history) and ``uplift_purchase`` / ``uplift_dropout`` /
``uplift_referral``.

Future values over ``horizon_days`` (default 180) from `end`, in closed form (seasonal segments, survival
from the known state, expected seats ``seats + growth t``):

- ``expected_value``: expected amount of the account's own rows (refunds and zero lines included).
- ``referral_value``: expected amount, within the horizon, of the rows of the accounts it refers within
  the horizon: the integral over the horizon of (referral intensity at t) x (expected value from t to
  the horizon's end of a new account referred at t, its first order included). First generation only:
  what a referred account's own referrals bring is credited to it, not to the original referrer.
- ``total_value`` = expected_value + referral_value; each also ``_served`` (served with certainty, the
  value with unlimited effort).
- ``expected_value_given_history``, ``referral_value_given_history``: what an oracle expects that knows
  the parameters and the served path but not the latent state (``p_alive`` x the value at the expected
  seats): about the best a model of the observed history can do.
- `World.p_purchase` (any horizon): the chance of an order in the horizon given the history, ``p_alive``
  x the chance that an alive account orders before it drops out; the oracle's 1 - p_churn.

`World.effort` records the historical mechanism per account and quarter (hours, u, the served draw), so
an estimate of the effort response can be checked against it.

Examples
--------
>>> from kamml.datasets import synthetic
>>> world = synthetic.generate(500, seed=1, years=1.0)
>>> len(world.accounts)
500
>>> bool((world.transactions["ts"] < world.end).all())
True
>>> world.true_gain(0.0, horizon_days=180)
0.0
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kamml.config import GENERATE_MAX_ACCOUNTS, accounts_problem, to_plain, world_size_problem
from kamml.datasets._synthetic_params import WorldParams, _whole
from kamml.datasets._synthetic_sim import (
    ACTIVITY_KINDS,
    SECONDS_PER_DAY,
    Calendar,
    History,
    simulate_future,
    simulate_history,
    to_seconds,
)
from kamml.datasets._synthetic_truth import new_account_curve, own_value, p_alive, p_order, referral_value
from kamml.errors import ConfigError, DataError, InfeasibleError, Problem, SchemaError
from kamml.io import atomic_path, write_parquet

__all__ = ["START", "TABLES", "World", "WorldParams", "check_ends_by_today", "generate", "read_world"]

log = logging.getLogger(__name__)

#: How `generate` and `World.write` end a refusal of a history past today: the way to allow it.
_FUTURE_HINT = ", or allow_future=True for a dated experiment (kamml's jobs refuse rows dated after today)"
#: The tables `World.write` writes, each as ``<name>.parquet``.
TABLES = ("transactions", "accounts", "referrals", "activities", "truth", "effort")
STAKE_PARTS = ("retention", "growth", "referral")
#: First day of the history when `generate` is given no start (`kamml generate`, ``data.generate``).
START = "2023-01-01"


@dataclass(eq=False)
class World:
    """A simulated book of accounts: kamml's four input tables plus the exact truth behind them.

    Attributes
    ----------
    transactions : pandas.DataFrame
        transaction_id (int64), account_id (int64), ts (datetime64[ns]), amount (float64; < 0 refunds),
        quantity (float64 seats; 0 on refunds), product (str). Sorted by ts.
    accounts : pandas.DataFrame
        account_id, created_at (datetime64[ns]; before `start` for the initial book), owner ("rep_07"),
        segment (SMB / mid-market / enterprise), industry, region (str), size (int64 employees).
    referrals : pandas.DataFrame
        referrer_id, referred_id (int64), ts (datetime64[ns]) = the referred account's created_at.
    activities : pandas.DataFrame
        account_id, ts, hours (float64, quarter hours), kind (call / meeting / demo / email).
    truth : pandas.DataFrame
        One row per account_id (in account_id order): latent state and parameters, and exact expected
        values over `horizon_days` (see the module docstring).
    start, end : pandas.Timestamp
        The history covers [start, end); `end` is the start of the future the truth is about.
    effort : pandas.DataFrame
        The historical effort mechanism per account and planning period: account_id, period,
        period_start, hours, u (= 1 - exp(-hours / k)), served (the latent draw).
    params : WorldParams
        The constants of the world.
    seed : int or None
        The seed it was generated with.
    horizon_days : int
        The horizon of the value columns of `truth`.
    """

    transactions: pd.DataFrame
    accounts: pd.DataFrame
    referrals: pd.DataFrame
    activities: pd.DataFrame
    truth: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    effort: pd.DataFrame
    params: WorldParams = field(default_factory=WorldParams)
    seed: int | None = None
    horizon_days: int = 180
    _cache: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    # ---- exact expectations ----------------------------------------------------------------------------

    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return len(self.truth)

    def _values(self, horizon_days: int) -> dict[str, np.ndarray]:
        """Own and referral value, unserved and served, over a horizon from `end` (cached)."""
        horizon_days = _check_horizon(horizon_days)
        if horizon_days not in self._cache:
            self._cache[horizon_days] = _future_values(
                self.params, self.end, horizon_days, self.truth, self._industry_codes()
            )
        return self._cache[horizon_days]

    def _industry_codes(self) -> np.ndarray:
        """Industry of each truth row as a code into `params.industries`."""
        industry = self.accounts.set_index("account_id")["industry"].reindex(self.truth["account_id"])
        codes = pd.Categorical(industry, categories=list(self.params.industries)).codes
        if (codes < 0).any():
            raise DataError("accounts.industry holds industries the world's parameters do not know")
        return np.asarray(codes, dtype=np.int64)

    def horizon_effort_scale(self, horizon_days: int) -> np.ndarray:
        """Each account's effort scale for hours spread over `horizon_days`: k x horizon / period.

        The history's k (``truth.effort_scale``) is per planning period (``params.period_months``).
        """
        horizon_days = _check_horizon(horizon_days)  # 0 gave k = 0, a negative one negative chances
        period_days = self.params.period_months * 365.25 / 12
        return np.asarray(self.truth["effort_scale"].to_numpy() * (horizon_days / period_days), dtype=float)

    def served_probability(self, hours: np.ndarray | pd.Series | float, horizon_days: int) -> np.ndarray:
        """Chance that `hours` over the horizon serve each account (truth order): 1 - exp(-h / k_horizon)."""
        h = self._hours(hours)
        return -np.expm1(-h / self.horizon_effort_scale(horizon_days))

    def expected_value(self, horizon_days: int, hours: np.ndarray | pd.Series | float = 0.0) -> pd.DataFrame:
        """Exact expected value per account over `horizon_days` from `end`, given `hours` of effort.

        Parameters
        ----------
        horizon_days : int
            Length of the future window [end, end + horizon_days).
        hours : float, numpy.ndarray or pandas.Series, default 0
            Hours of effort in the horizon: one number for every account, an array aligned with
            ``truth.account_id``, or a Series indexed by account_id (missing accounts get 0).

        Returns
        -------
        pandas.DataFrame
            account_id, value (own rows), referral_value (rows of accounts referred in the horizon), total.
            Each is exactly ``unserved + u x (served - unserved)`` with u = 1 - exp(-hours / k_horizon).
        """
        vals = self._values(horizon_days)
        u = self.served_probability(hours, horizon_days)
        value = vals["v0"] + u * (vals["v1"] - vals["v0"])
        referral = vals["r0"] + u * (vals["r1"] - vals["r0"])
        return pd.DataFrame(
            {
                "account_id": self.truth["account_id"].to_numpy(),
                "value": value,
                "referral_value": referral,
                "total": value + referral,
            }
        )

    def p_purchase(self, horizon_days: int) -> np.ndarray:
        """P(at least one order in `horizon_days` from `end` | the history), unserved (truth order).

        ``truth.p_alive`` times the chance that an alive account orders before it drops out: the
        oracle's counterpart of 1 - p_churn, from the true rates and the observed history.
        """
        horizon_days = _check_horizon(horizon_days)
        cal = Calendar.build(self.end, float(horizon_days), self.params.season)
        lam = self.truth["purchase_rate"].to_numpy(dtype=float)
        mu = self.truth["dropout_rate"].to_numpy(dtype=float)
        return np.asarray(self.truth["p_alive"].to_numpy(dtype=float) * p_order(cal, lam, mu), dtype=float)

    def stake_and_scale(
        self, horizon_days: int, weights: Mapping[str, float | str] | None = None
    ) -> pd.DataFrame:
        """The true value at stake and effort scale per account: gain(h) = stake x (1 - exp(-h / k)).

        The gain of being served splits into retention (the lower hazard, at the unserved purchase rate),
        growth (the higher purchase rate, at the served hazard) and referral (the served referral value
        minus the unserved one); they add up to total_served - total_unserved.

        Parameters
        ----------
        horizon_days : int
            The horizon of the gain.
        weights : mapping, optional
            Weights of ``retention``, ``growth`` and ``referral`` in the stake (each 1 when omitted), as in
            kamml's allocation config; growth ``"auto"`` counts as 1 (the true growth as it is).

        Returns
        -------
        pandas.DataFrame
            account_id, stake, effort_scale (k for hours over the horizon, `horizon_effort_scale`),
            retention, growth, referral.
        """
        w = _weights(weights)
        vals = self._values(horizon_days)
        retention = vals["v0_mu1"] - vals["v0"]
        growth = vals["v1"] - vals["v0_mu1"]
        referral = vals["r1"] - vals["r0"]
        stake = w["retention"] * retention + w["growth"] * growth + w["referral"] * referral
        return pd.DataFrame(
            {
                "account_id": self.truth["account_id"].to_numpy(),
                "stake": stake,
                "effort_scale": self.horizon_effort_scale(horizon_days),
                "retention": retention,
                "growth": growth,
                "referral": referral,
            }
        )

    def true_gain(
        self,
        hours: np.ndarray | pd.Series | float,
        horizon_days: int,
        weights: Mapping[str, float | str] | None = None,
    ) -> float:
        """Total true expected gain of an allocation of hours: sum of stake x (1 - exp(-h / k)).

        With the default weights this is ``expected_value(horizon, hours).total.sum()`` minus the same
        with no hours. `hours` as in `expected_value`.
        """
        stake = self.stake_and_scale(horizon_days, weights)["stake"].to_numpy()
        return float(np.sum(stake * self.served_probability(hours, horizon_days)))

    def simulate_future(
        self,
        horizon_days: int,
        hours: np.ndarray | pd.Series | float = 0.0,
        *,
        n_runs: int = 1,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Simulate the future horizon with the world's own simulator, `n_runs` times (Monte Carlo).

        This is the realised counterpart of `expected_value`: the mean over many runs converges to it.

        Returns
        -------
        pandas.DataFrame
            run, account_id, value, referral_value, total: realised amounts per run and account.
        """
        horizon_days = _check_horizon(horizon_days)
        if not _count(n_runs):  # 2.5 or "2" was a TypeError
            raise ConfigError(f"n_runs must be a whole number >= 1, got {n_runs!r}")
        if not (_whole(seed) and seed >= 0):  # -1 was numpy's ValueError, 1.5 its TypeError
            raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
        t = self.truth
        prods = list(self.params.products)
        state = {
            "alive": t["alive"].to_numpy(dtype=bool),
            "seats": t["seats"].to_numpy(dtype=np.int64),
            "growth": t["growth"].to_numpy(),
            "lam": t["purchase_rate"].to_numpy(),
            "mu": t["dropout_rate"].to_numpy(),
            "rho": t["influence"].to_numpy(),
            "up_lam": t["uplift_purchase"].to_numpy(),
            "up_mu": t["uplift_dropout"].to_numpy(),
            "up_rho": t["uplift_referral"].to_numpy(),
            "price_factor": t["price_factor"].to_numpy(),
            "mix": t[[f"share_{p}" for p in prods]].to_numpy(),
            "industry": self._industry_codes(),
            "region": np.asarray(
                pd.Categorical(
                    self.accounts.set_index("account_id")["region"].reindex(t["account_id"]),
                    categories=list(self.params.regions),
                ).codes,
                dtype=np.int64,
            ),
        }
        t_end = _days(self.end - self.start)
        rng = np.random.default_rng(seed)
        value, referral = simulate_future(
            rng,
            self.params,
            self.start,
            t_end,
            horizon_days,
            state,
            self.served_probability(hours, horizon_days),
            n_runs,
        )
        n = self.n_accounts
        return pd.DataFrame(
            {
                "run": np.repeat(np.arange(n_runs), n),
                "account_id": np.tile(t["account_id"].to_numpy(), n_runs),
                "value": value.ravel(),
                "referral_value": referral.ravel(),
                "total": (value + referral).ravel(),
            }
        )

    def _hours(self, hours: np.ndarray | pd.Series | float) -> np.ndarray:
        """Hours per account in truth order, from a number, an aligned array or a Series by account_id."""
        n = self.n_accounts
        if isinstance(hours, pd.Series):
            ids = self.truth["account_id"]
            unknown = ~hours.index.isin(ids)
            if unknown.any():
                bad = hours.index[unknown]
                problem = Problem(
                    "hours", "account_id", "account_id not in the world", len(bad), list(bad[:5])
                )
                raise SchemaError([problem])
            if hours.index.has_duplicates:
                raise SchemaError("hours: account_id appears more than once")
            given = hours.to_numpy(dtype=float)
            if not np.all(np.isfinite(given)):  # not filled with 0 as the accounts it does not name
                raise InfeasibleError("hours must be finite and >= 0")
            h = hours.reindex(ids.to_numpy()).fillna(0.0).to_numpy(dtype=float)
        else:
            h = np.asarray(hours, dtype=float)
            if h.ndim == 0:
                h = np.full(n, float(h))
            elif h.shape != (n,):
                got = f"{h.size:,}" if h.ndim == 1 else f"shape {h.shape}"
                raise SchemaError(f"hours: expected {n:,} values aligned with truth.account_id, got {got}")
        if not np.all(np.isfinite(h)) or (h < 0).any():
            raise InfeasibleError("hours must be finite and >= 0")
        return h

    # ---- persistence -----------------------------------------------------------------------------------

    def write(self, out_dir: str | Path, *, allow_future: bool = False) -> dict[str, Path]:
        """Write every table as ``<name>.parquet`` plus ``world.json`` into `out_dir`, atomically per file.

        A world whose history ends after today (`generate`'s ``allow_future``) is a ConfigError before
        anything is written, unless `allow_future`: kamml's jobs would refuse its rows dated in the future.

        Each file is written to a temporary name in the same folder and renamed into place, so a reader
        never sees half a file, and the transactions come last: a job that finds them finds the whole
        world (one started while another generated read the transactions alone and went on without the
        other tables). Returns the paths by name (the tables of `TABLES` and ``world``).
        """
        if not allow_future and self.end > _today() + pd.Timedelta(days=1):
            raise ConfigError(
                f"the synthetic world's history from {self.start.date()} ends on {self.end.date()}, after "
                f"today ({_today().date()}), and kamml refuses rows dated in the future: not written to "
                f"{out_dir}; pass allow_future=True to write it for a dated experiment"
            )
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in TABLES:
            if name != "transactions":
                frame: pd.DataFrame = getattr(self, name)
                paths[name] = _atomic(out / f"{name}.parquet", lambda tmp, f=frame: write_parquet(f, tmp))
        meta = {
            "kind": "kamml.synthetic.World",
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seed": self.seed,
            "horizon_days": self.horizon_days,
            "params": self.params.to_dict(),
        }
        text = json.dumps(meta, indent=2)
        paths["world"] = _atomic(out / "world.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        tx = self.transactions
        paths["transactions"] = _atomic(out / "transactions.parquet", lambda tmp: write_parquet(tx, tmp))
        return {name: paths[name] for name in (*TABLES, "world")}

    @classmethod
    def read(cls, path: str | Path) -> World:
        """Load a world written by `write` (tables and ``world.json``), truth methods included.

        A damaged folder is a DataError naming the file (a world.json that is no JSON, lacks a key or
        holds a bad value, or a Parquet file that cannot be read), not a JSONDecodeError or KeyError.
        """
        folder = Path(path)
        meta_path = folder / "world.json"
        if not meta_path.is_file():
            raise DataError(f"not a synthetic world folder (no world.json): {folder}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"synthetic world {meta_path} is damaged: not JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise DataError(f"synthetic world {meta_path} is damaged: not a JSON object")
        missing = [k for k in ("start", "end", "horizon_days", "params") if k not in meta]
        if missing:
            raise DataError(f"synthetic world {meta_path} is damaged: it lacks {', '.join(missing)}")
        tables = {}
        for name in TABLES:
            file = folder / f"{name}.parquet"
            if not file.is_file():
                raise DataError(f"synthetic world folder lacks {file.name}: {folder}")
            try:
                frame = pd.read_parquet(file)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"synthetic world {file} cannot be read: {exc}") from None
            for col in frame.columns[frame.dtypes.map(pd.api.types.is_datetime64_any_dtype)]:
                frame[col] = frame[col].astype("datetime64[ns]")  # files keep microseconds for Spark
            tables[name] = frame
        try:
            start, end = pd.Timestamp(meta["start"]), pd.Timestamp(meta["end"])
            horizon = _check_horizon(meta["horizon_days"])
            params = WorldParams.from_dict(meta["params"])
        except (TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise DataError(f"synthetic world {meta_path} is damaged: {exc}") from None
        return cls(
            transactions=tables["transactions"],
            accounts=tables["accounts"],
            referrals=tables["referrals"],
            activities=tables["activities"],
            truth=tables["truth"],
            effort=tables["effort"],
            start=start,
            end=end,
            params=params,
            seed=meta.get("seed"),
            horizon_days=horizon,
        )


def check_ends_by_today(years: float, name: str, start: str | date = START, hint: str = "") -> None:
    """A ConfigError when `years` of history from `start` end after today (`name`: the setting).

    kamml refuses rows dated after today, so such a world was written and then refused by
    `kamml validate` and every job. `hint` ends the message (another way out, as `generate`'s).
    """
    first = pd.Timestamp(start).normalize()
    end = first + pd.DateOffset(months=round(12 * years))
    tomorrow = _today() + pd.Timedelta(days=1)
    if end <= tomorrow:  # rows are before `end`; ones from tomorrow on are refused
        return
    today = _today().date()
    if first > _today():
        raise ConfigError(
            f"start {first.date()} is after today ({today}), and kamml refuses rows dated in the future: "
            f"give a start before today{hint}"
        )
    months = (tomorrow.year - first.year) * 12 + tomorrow.month - first.month
    if first + pd.DateOffset(months=months) > tomorrow:  # a start later in its month than today's day
        months -= 1
    if months < 1:
        raise ConfigError(
            f"start {first.date()} is less than a month before today ({today}): a history of at least "
            f"one month from it runs past today, and kamml refuses rows dated in the future: give an "
            f"earlier start{hint}"
        )
    raise ConfigError(
        f"{name}: {years:g} years from {first.date()} end on {end.date()}, after today ({today}), and "
        f"kamml refuses rows dated in the future: give at most {math.floor(months / 12 * 100) / 100:g} "
        f"years ({months} months){hint}"
    )


def _today() -> pd.Timestamp:
    """Midnight of today, UTC, timezone-naive: the day after which kamml's validation refuses rows."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()


def read_world(path: str | Path) -> World:
    """Load a world written by `World.write`; same as `World.read`."""
    return World.read(path)


def generate(
    n_accounts: int = 5_000,
    seed: int = 42,
    *,
    years: float = 3.0,
    start: str | date = START,
    n_reps: int | None = None,
    horizon_days: int = 180,
    params: WorldParams | None = None,
    allow_future: bool = False,
) -> World:
    """Simulate a B2B book of accounts with known ground truth (see the module docstring).

    Parameters
    ----------
    n_accounts : int, default 5000
        Exactly this many accounts (the initial book, organic arrivals and referred accounts; 3.0 is 3), 1 to
        2,000,000 (`kamml.config.GENERATE_MAX_ACCOUNTS`), and n_accounts x years at most 8,000,000
        (`kamml.config.GENERATE_MAX_ACCOUNT_YEARS`): memory grows with both, and 2,000,000 accounts over 3
        years peaked at 10.1 GB on the project's 24 GB machine (twice `benchmarks/score.py`'s million).
    seed : int, default 42
        Seed of the one `numpy.random.Generator` behind every draw: same seed, same world.
    years : float, default 3.0
        Length of the history, rounded to whole months: end = start + round(12 x years) months.
    start : str or date, default "2023-01-01"
        First day of the history (midnight, timezone-naive).
    n_reps : int, optional
        Number of sales reps; default n_accounts / 500 clipped to [2, 200].
    horizon_days : int, default 180
        Horizon of the value columns of the truth table.
    params : WorldParams, optional
        The world's constants; defaults to `WorldParams()`.
    allow_future : bool, default False
        Allow a history that runs past today, for a dated experiment with the world in memory: kamml's
        validation (and every job) refuses its rows dated after today, as `kamml generate` refuses it.

    Returns
    -------
    World
        The tables, the truth and the methods that score allocations.

    Raises
    ------
    ConfigError
        If a size, length or count is not positive or past its bound (accounts and reps at most
        2,000,000, accounts x years at most 8,000,000), the seed not a whole number >= 0, `start` not a
        timezone-naive date, the dates leave pandas' range (1677 .. 2262), the history ends after today
        without `allow_future`, or the parameters make the referrals outgrow the book (more than 20
        accounts simulated per account kept, and over 1M).
    """
    params = params or WorldParams()
    # 10.5 was numpy's TypeError, True a world of one account, 10**15 numpy's MemoryError: said as
    # data.generate.accounts says them; a whole float (3.0) is a count there and here
    problem = accounts_problem(to_plain(n_accounts))
    if problem is not None:
        raise ConfigError(f"n_accounts (data.generate.accounts) {problem}")
    n_accounts = int(n_accounts)
    if not (_real(years) and math.isfinite(years) and years <= 100):  # True was one year, np.int64(2) refused
        raise ConfigError(f"years (data.generate.years) must be a number of years up to 100, got {years!r}")
    years = float(years)
    months = round(12 * years)
    if months < 1:
        raise ConfigError(f"years (data.generate.years) must cover at least one month, got {years}")
    problem = world_size_problem(int(n_accounts), years)
    if problem is not None:
        raise ConfigError(f"n_accounts and years (data.generate.accounts and data.generate.years): {problem}")
    if not _whole(seed) or seed < 0:  # True was seed 1
        raise ConfigError(f"seed (data.generate.seed) must be a whole number >= 0, got {seed!r}")
    seed = int(seed)  # np.int64 made `World.write` fail on JSON after writing most of the tables
    if n_reps is None:
        n_reps = int(np.clip(round(n_accounts / 500), 2, 200))
    if not _count(n_reps):
        raise ConfigError(f"n_reps must be a whole number >= 1, got {n_reps!r}")
    if n_reps > GENERATE_MAX_ACCOUNTS:  # an array per rep: 10**15 was numpy's MemoryError
        raise ConfigError(
            f"n_reps must be a whole number from 1 to {GENERATE_MAX_ACCOUNTS:,}, got {n_reps:,}"
        )
    horizon_days = _check_horizon(horizon_days)
    try:
        t_start = pd.Timestamp(start)  # None is NaT
        parsed = t_start is not pd.NaT
    except (TypeError, ValueError):  # not "leaves the dates pandas can hold"
        parsed = False
    if not parsed:
        raise ConfigError(f"start must be a date (YYYY-MM-DD), got {start!r}")
    if t_start.tzinfo is not None:
        raise ConfigError(f"start must be timezone-naive, got {start!r}")
    try:
        t_start = t_start.normalize()
        t_end = t_start + pd.DateOffset(months=months)
        (t_end + pd.Timedelta(days=horizon_days)).as_unit("ns")  # the truth's horizon in pandas' dates
    except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise ConfigError(
            f"start {start} with {years:g} years of history and a {horizon_days}-day horizon leaves the "
            f"dates pandas can hold ({pd.Timestamp.min.date()} .. {pd.Timestamp.max.date()}): {exc}"
        ) from None
    if not allow_future:
        check_ends_by_today(years, "years", t_start, _FUTURE_HINT)

    clock = time.perf_counter()
    rng = np.random.default_rng(seed)
    hist = simulate_history(rng, params, n_accounts, n_reps, t_start, t_end)
    world = _assemble(hist, params, t_start, t_end, n_reps, seed, horizon_days)
    log.info(
        "synthetic world: %s accounts, %s transactions, %s referrals, %s activities in %.1f s",
        f"{len(world.accounts):,}",
        f"{len(world.transactions):,}",
        f"{len(world.referrals):,}",
        f"{len(world.activities):,}",
        time.perf_counter() - clock,
    )
    return world


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


MAX_HORIZON_DAYS = 36_525
"""Longest horizon in days (100 years, as `generate`'s years): 10**6 days ran past pandas' dates."""


def _real(value: Any) -> bool:
    """Whether `value` is a real number, Python's or numpy's, and not a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _count(value: Any) -> bool:
    """Whether `value` is a whole number >= 1 (a Python or numpy int, not a bool)."""
    return _whole(value) and bool(value >= 1)


def _check_horizon(horizon_days: int) -> int:
    """A positive whole number of days, up to `MAX_HORIZON_DAYS` (180.0 from JSON too, not "180")."""
    number = isinstance(horizon_days, int | float | np.integer | np.floating) and not isinstance(
        horizon_days, bool
    )  # None was int()'s TypeError, NaN its ValueError, "30" refused as "got 30"
    if not (number and 1 <= horizon_days <= MAX_HORIZON_DAYS and horizon_days == int(horizon_days)):
        raise ConfigError(
            f"horizon_days must be a whole number of days from 1 to {MAX_HORIZON_DAYS:,}, "
            f"got {horizon_days!r}"
        )
    return int(horizon_days)


def _weights(weights: Mapping[str, float | str] | None) -> dict[str, float]:
    """Stake weights with defaults of 1; unknown parts and bad numbers are a `ConfigError` naming them.

    A growth weight of ``"auto"`` (kamml's default: the fitted uplift, an estimate of the growth effort
    brings) counts the true growth as it is, like the default 1.
    """
    out = dict.fromkeys(STAKE_PARTS, 1.0)
    for key, value in (weights or {}).items():
        if key not in out:
            raise ConfigError(f"unknown stake weight '{key}'; valid: {', '.join(STAKE_PARTS)}")
        if key == "growth" and value == "auto":
            out[key] = 1.0
            continue
        try:
            weight = float(value)
        except (TypeError, ValueError):
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):  # a NaN made the true gain NaN, silently
            raise ConfigError(f"stake weight '{key}' must be a finite number >= 0, got {value!r}")
        out[key] = weight
    return out


def _days(delta: pd.Timedelta) -> float:
    """A timedelta in days."""
    return float(delta / pd.Timedelta(days=1))


def _timestamps(origin: pd.Timestamp, seconds: np.ndarray) -> np.ndarray:
    """datetime64[ns] values `seconds` after `origin`."""
    return (origin.to_datetime64() + np.asarray(seconds, dtype="timedelta64[s]")).astype("datetime64[ns]")


def _atomic(target: Path, write: Any) -> Path:
    """Call ``write(tmp)`` on a temporary file next to `target`, then rename it into place (`atomic_path`)."""
    with atomic_path(target) as tmp:
        write(tmp)
    return target


def _future_values(
    params: WorldParams, end: pd.Timestamp, horizon_days: int, truth: pd.DataFrame, industry: np.ndarray
) -> dict[str, np.ndarray]:
    """Exact own and referral values over a horizon, unserved (0) and served (1), for alive accounts."""
    cal = Calendar.build(end, float(horizon_days), params.season)
    alive = truth["alive"].to_numpy(dtype=float)
    lam = truth["purchase_rate"].to_numpy()
    mu = truth["dropout_rate"].to_numpy()
    rho = truth["influence"].to_numpy()
    lam1 = lam * (1 + truth["uplift_purchase"].to_numpy())
    mu1 = mu * (1 - truth["uplift_dropout"].to_numpy())
    rho1 = rho * (1 + truth["uplift_referral"].to_numpy())
    m = truth["price_per_seat"].to_numpy()
    seats = truth["seats"].to_numpy(dtype=float)
    growth = truth["growth"].to_numpy()
    mult = params.order_multiplier
    curve = new_account_curve(params, cal)
    return {
        "v0": alive * own_value(cal, lam, mu, m, seats, growth, mult),
        "v1": alive * own_value(cal, lam1, mu1, m, seats, growth, mult),
        "v0_mu1": alive * own_value(cal, lam, mu1, m, seats, growth, mult),
        "r0": alive * referral_value(params, cal, rho, mu, industry, curve),
        "r1": alive * referral_value(params, cal, rho1, mu1, industry, curve),
    }


def _assemble(
    hist: History,
    params: WorldParams,
    start: pd.Timestamp,
    end: pd.Timestamp,
    n_reps: int,
    seed: int,
    horizon_days: int,
) -> World:
    """Turn the simulated history into the World's tables and truth."""
    tr = hist.traits
    n = len(tr)
    ids = np.arange(1, n + 1, dtype=np.int64)
    t_end = _days(end - start)

    rows = hist.rows
    order = np.argsort(rows.sec * np.int64(n) + rows.acc, kind="stable")  # by time, then account
    transactions = pd.DataFrame(
        {
            "transaction_id": np.arange(1, rows.acc.size + 1, dtype=np.int64),
            "account_id": ids[rows.acc[order]],
            "ts": _timestamps(start, rows.sec[order]),
            "amount": rows.amount[order].astype(np.float64),
            "quantity": rows.quantity[order].astype(np.float64),
            "product": np.asarray(params.products, dtype=object)[rows.product[order]],
        }
    )

    width = max(2, len(str(n_reps - 1)))
    emp = tr.employees
    segment = np.where(
        emp < params.smb_max, "SMB", np.where(emp < params.mid_max, "mid-market", "enterprise")
    )
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "created_at": _timestamps(start, hist.created_sec),
            "owner": np.array([f"rep_{i:0{width}d}" for i in range(max(n_reps, 1))], dtype=object)[
                hist.owner
            ],
            "segment": segment.astype(object),
            "industry": np.asarray(params.industries, dtype=object)[tr.industry],
            "region": np.asarray(params.regions, dtype=object)[tr.region],
            "size": emp.astype(np.int64),
        }
    )

    referrer, referred, ref_sec = hist.referrals
    r_order = np.lexsort((referred, ref_sec))
    referrals = pd.DataFrame(
        {
            "referrer_id": ids[referrer[r_order]],
            "referred_id": ids[referred[r_order]],
            "ts": _timestamps(start, ref_sec[r_order]),
        }
    )

    act = hist.activities
    a_order = np.lexsort((act["acc"], act["sec"]))
    activities = pd.DataFrame(
        {
            "account_id": ids[act["acc"][a_order]],
            "ts": _timestamps(start, act["sec"][a_order]),
            "hours": act["hours"][a_order].astype(np.float64),
            "kind": np.asarray(ACTIVITY_KINDS, dtype=object)[act["kind"][a_order]],
        }
    )

    eff = hist.effort
    e_order = np.lexsort((eff["acc"], eff["period"]))
    period_sec = np.rint(hist.period_breaks * SECONDS_PER_DAY).astype(np.int64)
    effort = pd.DataFrame(
        {
            "account_id": ids[eff["acc"][e_order]],
            "period": eff["period"][e_order].astype(np.int64),
            "period_start": _timestamps(start, period_sec[eff["period"][e_order]]),
            "hours": eff["hours"][e_order].astype(np.float64),
            "u": eff["u"][e_order],
            "served": eff["served"][e_order].astype(bool),
        }
    )

    hist_cal = Calendar.build(start, t_end, params.season, extra=hist.period_breaks)
    posterior = p_alive(
        hist_cal,
        hist.period_breaks,
        hist.served,
        hist.last_event,
        tr.lam,
        tr.mu,
        tr.rho,
        tr.up_lam,
        tr.up_mu,
        tr.up_rho,
    )
    churned_at = _timestamps(start, to_seconds(np.where(hist.alive, 0.0, hist.death)))
    churned_at[hist.alive] = np.datetime64("NaT")
    truth = pd.DataFrame(
        {
            "account_id": ids,
            "alive": hist.alive,
            "p_alive": posterior,
            "churned_at": churned_at,
            "purchase_rate": tr.lam,
            "dropout_rate": tr.mu,
            "order_value": params.order_multiplier * tr.price_per_seat * hist.seats_end,
            "seats": hist.seats_end.astype(np.int64),
            "growth": tr.growth,
            "influence": tr.rho,
            "effort_scale": tr.k,
            "uplift_purchase": tr.up_lam,
            "uplift_dropout": tr.up_mu,
            "uplift_referral": tr.up_rho,
            "price_factor": tr.price_factor,
            "price_per_seat": tr.price_per_seat,
            **{f"share_{p}": tr.mix[:, j] for j, p in enumerate(params.products)},
        }
    )
    world = World(
        transactions=transactions,
        accounts=accounts,
        referrals=referrals,
        activities=activities,
        truth=truth,
        start=start,
        end=end,
        effort=effort,
        params=params,
        seed=seed,
        horizon_days=horizon_days,
    )
    vals = world._values(horizon_days)
    truth["expected_value"] = vals["v0"]
    truth["expected_value_served"] = vals["v1"]
    truth["referral_value"] = vals["r0"]
    truth["referral_value_served"] = vals["r1"]
    truth["total_value"] = vals["v0"] + vals["r0"]
    truth["total_value_served"] = vals["v1"] + vals["r1"]
    # what an oracle expects that knows the parameters but sees only the history (not the latent state)
    cal = Calendar.build(end, float(horizon_days), params.season)
    seen_seats = hist.last_order_seats + tr.growth * (t_end - hist.last_order_t)
    seen = own_value(cal, tr.lam, tr.mu, tr.price_per_seat, seen_seats, tr.growth, params.order_multiplier)
    truth["expected_value_given_history"] = posterior * seen
    r_any = referral_value(params, cal, tr.rho, tr.mu, tr.industry)
    truth["referral_value_given_history"] = posterior * r_any
    return world
