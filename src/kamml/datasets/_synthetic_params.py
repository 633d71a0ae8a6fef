"""Parameters of the synthetic B2B world and the draw of account traits from its population.

Private module of `kamml.datasets.synthetic`. Every number that shapes the world lives in the frozen
`WorldParams` (so a world can be written to JSON and rebuilt exactly); `draw_accounts` turns a random
generator and those parameters into the latent traits of new accounts. The population is written so that
the conditional means given the log size are closed-form (`population_means`): the exact referral value of
`kamml.datasets._synthetic_truth` integrates over it by quadrature instead of sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from kamml.errors import ConfigError

__all__ = ["AccountTraits", "WorldParams", "draw_accounts", "draw_owners", "population_means"]

DAYS_PER_MONTH = 365.25 / 12


def _finite(value: Any) -> bool:
    """Whether `value` is a real number (not a bool) and finite."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _names(value: Any) -> bool:
    """Whether `value` is a non-empty sequence of distinct names."""
    return len(value) >= 1 and len(set(value)) == len(value)


def _whole(value: Any) -> bool:
    """Whether `value` is a whole number (an int, not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


#: `WorldParams` fields by their range, checked in `WorldParams.__post_init__`.
_PROBABILITIES = (
    "p_zero",
    "p_duplicate",
    "p_refund",
    "refund_low",
    "refund_high",
    "expansion_share",
    "referral_same_industry",
    "referral_same_region",
    "referral_same_owner",
    "policy_zero",
    "policy_rep_absence",
    "enterprise_rep_share",
)
_POSITIVE = (
    "size_median",
    "mix_concentration",
    "price_shape",
    "amount_shape",
    "purchase_shape",
    "dropout_shape",
    "expansion_shape",
    "effort_scale",
)
_NON_NEGATIVE = (
    "size_sigma",
    "seats_median",
    "expansion_rate",
    "purchase_rate",
    "dropout_rate",
    "influence_rate",
    "influence_sigma",
    "effort_scale_sigma",
    "initial_age_days",
    "policy_hours",
    "policy_sigma",
    "policy_rep_sigma",
    "policy_onboarding",
)
_ELASTICITIES = (
    "price_size_elasticity",
    "seats_size_elasticity",
    "purchase_size_elasticity",
    "dropout_size_elasticity",
    "influence_size_elasticity",
    "effort_scale_size_elasticity",
    "policy_size_elasticity",
)
#: Per-name tuples and the names they follow; the weights among them must not all be 0.
_PER_LABEL = {
    "industry_probs": "industries",
    "industry_price": "industries",
    "industry_rate": "industries",
    "industry_influence": "industries",
    "region_probs": "regions",
    "region_influence": "regions",
    "product_price": "products",
    "product_mix": "products",
}
_WEIGHTS = ("industry_probs", "region_probs", "product_mix")


@dataclass(frozen=True)
class WorldParams:
    """Every constant of the synthetic world: population, behaviour, effort response and sales policy.

    Rates are per day, hours per planning period, money in the currency of `product_price`. The defaults
    give a book where a median account (50 employees, 8 seats) buys about 0.8 times a month for about 250
    per order, about a fifth of the accounts churn each year, and about a third of the new accounts are
    referred by an existing one. Each value is checked when the parameters are made (probabilities in
    [0, 1], rates, sigmas and prices finite and >= 0, gamma shapes and scales > 0, a served hazard that
    stays >= 0): one out of its range is a `ConfigError` naming it, its value and the rule.
    """

    # --- size, segment, industry, region --------------------------------------------------------------
    size_median: float = 50.0
    size_sigma: float = 1.3
    smb_max: int = 100  # employees < smb_max: SMB
    mid_max: int = 1000  # employees < mid_max: mid-market, else enterprise
    industries: tuple[str, ...] = (
        "software",
        "manufacturing",
        "retail",
        "healthcare",
        "finance",
        "education",
        "logistics",
        "media",
    )
    industry_probs: tuple[float, ...] = (0.20, 0.16, 0.14, 0.12, 0.12, 0.09, 0.09, 0.08)
    industry_price: tuple[float, ...] = (1.25, 0.95, 0.80, 1.10, 1.30, 0.70, 0.85, 0.90)
    industry_rate: tuple[float, ...] = (1.15, 0.90, 1.10, 0.95, 0.90, 0.85, 1.00, 1.20)
    industry_influence: tuple[float, ...] = (1.20, 0.70, 0.90, 1.00, 0.80, 1.40, 0.70, 1.60)
    regions: tuple[str, ...] = ("NA", "EMEA", "APAC", "LATAM")
    region_probs: tuple[float, ...] = (0.40, 0.33, 0.17, 0.10)
    region_influence: tuple[float, ...] = (1.10, 1.00, 0.80, 1.00)
    # --- products and order value ----------------------------------------------------------------------
    products: tuple[str, ...] = ("core", "analytics", "support", "integrations", "training")
    product_price: tuple[float, ...] = (38.0, 22.0, 9.0, 15.0, 28.0)  # per seat and order
    product_mix: tuple[float, ...] = (0.55, 0.15, 0.15, 0.10, 0.05)  # population mean of the mix
    mix_concentration: float = 6.0  # Dirichlet concentration of an account's mix around product_mix
    price_size_elasticity: float = 0.05  # volume discount: price per seat ~ size^-0.05
    price_shape: float = 6.0  # gamma shape of an account's price factor (mean 1)
    amount_shape: float = 5.0  # gamma shape of the noise of one order line (mean 1)
    seats_median: float = 8.0  # mean initial seats (beyond the first) at the median size
    seats_size_elasticity: float = 0.9
    expansion_share: float = 0.35  # share of accounts that add seats over time
    expansion_rate: float = 0.30 / 365.25  # seats added per day, relative to the initial seats (mean)
    expansion_shape: float = 2.0
    p_zero: float = 0.015  # an order line billed at zero (free line, credit)
    p_duplicate: float = 0.04  # a second order line the same day
    p_refund: float = 0.02  # a paid order line partly refunded the same day
    refund_low: float = 0.1  # refunded share ~ Uniform(refund_low, refund_high)
    refund_high: float = 1.0
    # --- BTYD-like behaviour ---------------------------------------------------------------------------
    purchase_rate: float = 0.8 / DAYS_PER_MONTH  # mean orders per day at the median size
    purchase_size_elasticity: float = 0.25
    purchase_shape: float = 2.5  # gamma heterogeneity of the purchase rate
    dropout_rate: float = 0.20 / 365.25  # mean dropout hazard per day at the median size
    dropout_size_elasticity: float = 0.15  # bigger accounts churn less
    dropout_shape: float = 2.0  # gamma heterogeneity of the dropout hazard
    seasonality: tuple[float, ...] = (0.85, 0.90, 1.10, 0.95, 0.95, 1.10, 0.80, 0.75, 1.05, 1.00, 1.10, 1.45)
    # --- referrals -------------------------------------------------------------------------------------
    influence_rate: float = 0.08 / 365.25  # mean referrals per day (unserved), before industry/region
    influence_size_elasticity: float = 0.10  # weak tie to size, hence to value
    influence_sigma: float = 1.1  # lognormal spread of the latent influence trait
    referral_same_industry: float = 0.5
    referral_same_region: float = 0.7
    referral_same_owner: float = 0.6
    # --- effort response -------------------------------------------------------------------------------
    effort_scale: float = 3.0  # k (hours per period) at the median size
    effort_scale_size_elasticity: float = 0.35
    effort_scale_sigma: float = 0.3
    uplift_purchase: tuple[float, float] = (0.15, 0.60)  # served: rate x (1 + low + width * Beta(2, 2))
    uplift_dropout: tuple[float, float] = (0.20, 0.50)  # served: hazard x (1 - low - width * Beta(2, 2))
    uplift_referral: tuple[float, float] = (0.30, 1.20)  # served: referral rate x (1 + ...)
    # --- arrivals --------------------------------------------------------------------------------------
    initial_share: float = 0.4  # share of the accounts that exist (and are alive) at the start
    initial_age_days: float = 900.0  # mean age of the accounts existing at the start
    # --- historical sales policy (per planning period) -------------------------------------------------
    period_months: int = 3
    policy_hours: float = 2.5  # mean hours per period at the median size, recently active
    policy_size_elasticity: float = 0.4
    policy_sigma: float = 0.7  # lognormal noise of planned hours
    policy_zero: float = 0.25  # chance an account gets no hours in a period
    policy_rep_sigma: float = 0.35  # spread of the reps' working intensity
    policy_rep_absence: float = 0.05  # chance a rep is away for a whole period
    policy_recency: tuple[float, float, float] = (1.0, 0.5, 0.15)  # bought in last period / year / older
    policy_onboarding: float = 1.3  # multiplier in the first ~4 months of an account
    enterprise_rep_share: float = 0.2  # share of reps on the enterprise team (accounts >= 500 staff)

    def __post_init__(self) -> None:
        """Refuse a parameter outside its range, naming each one, its value and the rule.

        Beyond the lengths, values out of range were accepted: some crashed deep in numpy (a negative
        rate, a gamma shape of 0, a fractional ``period_months``), others made a world that contradicts
        its documentation without a word (``p_zero`` 1.5 gave negative expected values, an
        ``uplift_dropout`` above 1 a negative served hazard).
        """
        problems = [f"{name} = {getattr(self, name)!r}: {rule}" for name, rule in self._problems()]
        if problems:
            raise ConfigError(f"invalid synthetic world parameters: {'; '.join(problems)}")

    def _problems(self) -> list[tuple[str, str]]:
        """(parameter, rule it breaks) for every parameter out of its range."""
        out: list[tuple[str, str]] = []
        ranges: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
            (("industries", "regions", "products"), _names, "at least one name, no name twice"),
            (_PROBABILITIES, lambda v: _finite(v) and 0 <= v <= 1, "a probability in [0, 1]"),
            (_POSITIVE, lambda v: _finite(v) and v > 0, "a finite number > 0"),
            (_NON_NEGATIVE, lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
            (_ELASTICITIES, _finite, "a finite number"),
        )
        for names, ok, rule in ranges:
            out.extend((name, rule) for name in names if not ok(getattr(self, name)))
        for name, labels in _PER_LABEL.items():
            values, n = getattr(self, name), len(getattr(self, labels))
            if len(values) != n:
                out.append((name, f"one value per name of {labels} ({n})"))
            elif not all(_finite(v) and v >= 0 for v in values):
                out.append((name, "finite numbers >= 0"))
            elif name in _WEIGHTS and not sum(values) > 0:
                out.append((name, "weights >= 0, not all 0"))
        if not (len(self.seasonality) == 12 and all(_finite(v) and v > 0 for v in self.seasonality)):
            out.append(("seasonality", "12 finite monthly multipliers > 0"))
        if not (_whole(self.period_months) and self.period_months >= 1):
            out.append(("period_months", "a whole number of months >= 1"))
        if not (_finite(self.initial_share) and 0 < self.initial_share <= 1):
            out.append(("initial_share", "a share in (0, 1]"))
        if _finite(self.refund_low) and _finite(self.refund_high) and self.refund_low > self.refund_high:
            out.append(("refund_low", "at most refund_high"))
        if not (_whole(self.smb_max) and _whole(self.mid_max) and 1 <= self.smb_max <= self.mid_max):
            out.append(("smb_max", "a whole number of employees >= 1, at most mid_max"))
        for name in ("uplift_purchase", "uplift_dropout", "uplift_referral"):
            pair = getattr(self, name)
            if not (len(pair) == 2 and all(_finite(v) and v >= 0 for v in pair)):
                out.append((name, "(low, width), both finite numbers >= 0"))
            elif name == "uplift_dropout" and sum(pair) > 1:
                out.append((name, "low + width <= 1: a served account's hazard is mu x (1 - uplift) >= 0"))
        recency = self.policy_recency
        if not (len(recency) == 3 and all(_finite(v) and v >= 0 for v in recency)):
            out.append(("policy_recency", "three finite multipliers >= 0"))
        return out

    @property
    def season(self) -> np.ndarray:
        """Monthly purchase-rate multipliers (January first), normalised to mean 1."""
        s = np.asarray(self.seasonality, dtype=float)
        return s / s.mean()

    @property
    def order_multiplier(self) -> float:
        """Expected total of the order lines of one purchase event, per unit of seats x price per seat."""
        refunded = 0.5 * (self.refund_low + self.refund_high)
        return (1 - self.p_zero) * (1 - self.p_refund * refunded) + self.p_duplicate

    @property
    def mean_price_per_seat(self) -> float:
        """Population mean of an account's price per seat at the median size, before the industry factor."""
        mix = np.asarray(self.product_mix, dtype=float)
        return float(mix @ np.asarray(self.product_price) / mix.sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of all parameters."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WorldParams:
        """Rebuild from `to_dict` output; unknown keys are a `ConfigError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(f"unknown synthetic world parameters: {', '.join(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**values)


@dataclass
class AccountTraits:
    """Latent traits of a batch of accounts, one array entry per account (see `draw_accounts`)."""

    x: np.ndarray  # log size minus log median size
    employees: np.ndarray
    industry: np.ndarray  # code into params.industries
    region: np.ndarray  # code into params.regions
    lam: np.ndarray  # purchase rate per day, unserved
    mu: np.ndarray  # dropout hazard per day, unserved
    rho: np.ndarray  # referral rate per day, unserved (the influence trait)
    k: np.ndarray  # effort scale, hours per period
    up_lam: np.ndarray  # served: purchase rate x (1 + up_lam)
    up_mu: np.ndarray  # served: hazard x (1 - up_mu)
    up_rho: np.ndarray  # served: referral rate x (1 + up_rho)
    price_factor: np.ndarray
    mix: np.ndarray  # (n, n_products) product shares
    seats0: np.ndarray  # seats at creation (or at the start of the history)
    growth: np.ndarray  # seats added per day (Poisson process)
    price_per_seat: np.ndarray  # expected amount per seat of one order line (price factor x mix @ prices)

    def __len__(self) -> int:
        return int(self.x.size)

    def take(self, index: np.ndarray) -> AccountTraits:
        """The traits of a subset (or reordering) of the accounts."""
        return AccountTraits(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list[AccountTraits]) -> AccountTraits:
        """All accounts of several batches, in order."""
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in parts]) for f in fields(cls)})


def _beta22(rng: np.random.Generator, n: int) -> np.ndarray:
    """Beta(2, 2) draws: a bump on [0, 1] with mean 1/2."""
    return rng.beta(2.0, 2.0, size=n)


def draw_accounts(
    rng: np.random.Generator,
    n: int,
    params: WorldParams,
    *,
    like_industry: np.ndarray | None = None,
    like_region: np.ndarray | None = None,
) -> AccountTraits:
    """Draw the latent traits of `n` new accounts from the population of `params`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The world's generator; the sequence of draws is fixed, so a seed fixes the world.
    n : int
        Number of accounts.
    params : WorldParams
        The world's parameters.
    like_industry, like_region : numpy.ndarray, optional
        For referred accounts: the referrer's industry and region codes; each is kept with probability
        `referral_same_industry` / `referral_same_region`, else drawn from the population.

    Returns
    -------
    AccountTraits
        Given the log size ``x`` and the industry, the purchase rate, dropout hazard, price factor, product
        mix and seats are independent, which is what makes `population_means` exact.
    """
    p = params
    x = rng.normal(0.0, p.size_sigma, n)
    employees = np.maximum(1, np.rint(p.size_median * np.exp(x))).astype(np.int64)
    industry = rng.choice(len(p.industries), size=n, p=_norm(p.industry_probs))
    region = rng.choice(len(p.regions), size=n, p=_norm(p.region_probs))
    if like_industry is not None:
        keep = rng.random(n) < p.referral_same_industry
        industry = np.where(keep, like_industry, industry)
    if like_region is not None:
        keep = rng.random(n) < p.referral_same_region
        region = np.where(keep, like_region, region)
    ind_price = np.asarray(p.industry_price)[industry]
    ind_rate = np.asarray(p.industry_rate)[industry]
    influence = np.asarray(p.industry_influence)[industry] * np.asarray(p.region_influence)[region]

    lam = p.purchase_rate * ind_rate * np.exp(p.purchase_size_elasticity * x)
    lam = lam * rng.gamma(p.purchase_shape, 1.0 / p.purchase_shape, n)
    mu = p.dropout_rate * np.exp(-p.dropout_size_elasticity * x)
    mu = mu * rng.gamma(p.dropout_shape, 1.0 / p.dropout_shape, n)
    sig = p.influence_sigma
    rho = p.influence_rate * influence * np.exp(p.influence_size_elasticity * x)
    rho = rho * np.exp(sig * rng.standard_normal(n) - 0.5 * sig * sig)
    ks = p.effort_scale_sigma
    k = p.effort_scale * np.exp(
        p.effort_scale_size_elasticity * x + ks * rng.standard_normal(n) - 0.5 * ks**2
    )
    up_lam = p.uplift_purchase[0] + p.uplift_purchase[1] * _beta22(rng, n)
    up_mu = p.uplift_dropout[0] + p.uplift_dropout[1] * _beta22(rng, n)
    up_rho = p.uplift_referral[0] + p.uplift_referral[1] * _beta22(rng, n)

    price_factor = ind_price * np.exp(-p.price_size_elasticity * x)
    price_factor = price_factor * rng.gamma(p.price_shape, 1.0 / p.price_shape, n)
    mix = rng.dirichlet(p.mix_concentration * _norm(p.product_mix), size=n)
    seats0 = 1 + rng.poisson(p.seats_median * np.exp(p.seats_size_elasticity * x))
    expands = rng.random(n) < p.expansion_share
    rate = rng.gamma(p.expansion_shape, p.expansion_rate / p.expansion_shape, n)
    growth = np.where(expands, seats0 * rate, 0.0)
    return AccountTraits(
        x=x,
        employees=employees,
        industry=industry.astype(np.int64),
        region=region.astype(np.int64),
        lam=lam,
        mu=mu,
        rho=rho,
        k=k,
        up_lam=up_lam,
        up_mu=up_mu,
        up_rho=up_rho,
        price_factor=price_factor,
        mix=mix,
        seats0=seats0.astype(np.int64),
        growth=growth,
        price_per_seat=price_factor * (mix @ np.asarray(p.product_price, dtype=float)),
    )


def draw_owners(
    rng: np.random.Generator, employees: np.ndarray, n_reps: int, params: WorldParams
) -> np.ndarray:
    """Assign each account a rep: accounts of 500+ staff to the enterprise team, the rest to the others."""
    n = employees.size
    if n_reps <= 1:
        return np.zeros(n, dtype=np.int64)
    n_ent = min(n_reps - 1, max(1, round(params.enterprise_rep_share * n_reps)))
    big = employees >= 500
    return np.where(big, rng.integers(0, n_ent, n), rng.integers(n_ent, n_reps, n)).astype(np.int64)


def population_means(params: WorldParams, n_nodes: int = 48) -> dict[str, np.ndarray]:
    """Gauss-Hermite nodes over the log size with the conditional means of a new account's traits.

    Returns a dict of arrays over the nodes: ``weight`` (sums to 1), ``price`` (E[price per seat | x],
    before the industry factor), ``rate`` (E[purchase rate | x], before the industry factor), ``seats``
    (E[initial seats | x]), ``growth`` (E[seats added per day | x]), ``mu`` (mean dropout hazard given x,
    whose gamma shape is ``params.dropout_shape``).
    """
    p = params
    z, w = np.polynomial.hermite.hermgauss(n_nodes)
    x = math.sqrt(2.0) * p.size_sigma * z
    seats = 1 + p.seats_median * np.exp(p.seats_size_elasticity * x)
    return {
        "weight": w / math.sqrt(math.pi),
        "price": p.mean_price_per_seat * np.exp(-p.price_size_elasticity * x),
        "rate": p.purchase_rate * np.exp(p.purchase_size_elasticity * x),
        "seats": seats,
        "growth": p.expansion_share * p.expansion_rate * seats,
        "mu": p.dropout_rate * np.exp(-p.dropout_size_elasticity * x),
    }


def _norm(values: tuple[float, ...]) -> np.ndarray:
    """Probabilities from non-negative weights."""
    arr = np.asarray(values, dtype=float)
    return arr / arr.sum()
