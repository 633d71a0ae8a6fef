"""The `btyd` feature group (DESIGN §4): BG/NBD and Gamma-Gamma outputs as features for the models.

BTYD models are fitted on one snapshot's own rfm columns (frequency, recency, T, monetary: data before
that cutoff only, so no leakage), then give each account its P(alive), expected purchases and probability
of no purchase over the horizon, its expected order value and their product, the BTYD value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from kamml.errors import ModelError, Problem
from kamml.models.btyd import BetaGeo, GammaGamma, convergence_noted
from kamml.text import counted

__all__ = [
    "BTYD_COLUMNS",
    "MIN_REPEAT_BUYERS",
    "BtydFit",
    "add_btyd_features",
    "btyd_columns",
    "check_history",
    "expected_purchase_ratio",
    "fit_btyd",
    "no_purchase_exponent",
    "rfm_arrays",
]

log = logging.getLogger(__name__)

BTYD_COLUMNS = (
    "btyd_p_alive",
    "btyd_expected_purchases",
    "btyd_p_zero",
    "btyd_order_value",
    "btyd_value",
)


@dataclass(frozen=True)
class BtydFit:
    """Fitted BG/NBD and Gamma-Gamma parameters (plain floats: stored as JSON in the model bundle)."""

    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float] | None

    def models(self) -> tuple[BetaGeo, GammaGamma | None]:
        """Estimators carrying these parameters, ready to predict (built once per fit, then reused)."""
        cached = self.__dict__.get("_models")
        if cached is not None:
            return cached
        bg = BetaGeo()
        bg.params_ = dict(self.bgnbd)
        bg.n_features_in_ = 3
        gg = None
        if self.gamma_gamma is not None:
            gg = GammaGamma()
            gg.params_ = dict(self.gamma_gamma)
            gg.n_features_in_ = 2
        self.__dict__["_models"] = (bg, gg)
        return bg, gg

    def to_dict(self) -> dict[str, dict[str, float] | None]:
        """JSON-able parameters."""
        return {"bgnbd": self.bgnbd, "gamma_gamma": self.gamma_gamma}


def _rfm(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a purchase history (rfm defined), as the BTYD models want them."""
    rfm = frame[["frequency", "recency", "T", "monetary"]]
    return rfm[rfm["T"].notna() & rfm["frequency"].notna()]


#: The fewest repeat buyers with a positive order value Gamma-Gamma is fitted on (else skipped).
MIN_REPEAT_BUYERS = 10


def fit_btyd(frame: pd.DataFrame, penalizer: float = 0.0) -> BtydFit:
    """Fit BG/NBD on every account with purchases and Gamma-Gamma on the repeat buyers with value > 0."""
    rfm = _rfm(frame)
    if rfm.empty:
        raise ModelError(
            f"BG/NBD needs accounts with a purchase history; none of the {len(frame):,} rows has one "
            "(frequency and T are missing: no transaction before the cutoff)"
        )
    bg = BetaGeo(penalizer=penalizer)
    _fit_logged(bg, rfm[["frequency", "recency", "T"]], f"BG/NBD on {counted(len(rfm), 'account')}")
    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary"] > 0)]
    gg_params = None
    if len(repeat) >= MIN_REPEAT_BUYERS:
        gg = GammaGamma(penalizer=penalizer)
        _fit_logged(
            gg, repeat[["frequency", "monetary"]], f"Gamma-Gamma on {counted(len(repeat), 'repeat buyer')}"
        )
        gg_params = {k: float(v) for k, v in gg.params_.items()}
    else:
        log.info("Gamma-Gamma skipped: only %d repeat buyers with positive value", len(repeat))
    return BtydFit({k: float(v) for k, v in bg.params_.items()}, gg_params)


def _fit_logged(model: BetaGeo | GammaGamma, X: pd.DataFrame, what: str) -> None:
    """Fit `model`; a fit that did not converge is one log warning, not Python's raw warning.

    A job printed the estimator's ConvergenceWarning with its file and source line once per fit (six
    times a run), advising a penalizer or max_iter that no config key sets; the log line says in words
    which fit stopped and how (no optimizer message), that its parameters are used where it stopped,
    that no setting changes it, and where a report's reader sees what that costs (the backtest's
    BG/NBD rows).
    """
    with convergence_noted() as notes:
        model.fit(X)
    for detail in notes:
        log.warning(
            "%s %s. Its parameters are used where it stopped. This is common with few accounts or little "
            "repeat buying, and no setting changes it; the BTYD baseline and the purchase-history features "
            "rest on this fit, and the backtest's BG/NBD rows show how well it still predicts",
            what,
            detail,
        )


#: The longest purchase history in days: the span of the dates kamml reads (`TS_RANGE`, 1677 to 2262).
MAX_HISTORY_DAYS = 213_502


def check_history(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary: np.ndarray | None = None,
    unit_days: int | None = None,
) -> None:
    """ModelError naming every feature row that breaks the purchase-history rules BTYD relies on.

    A row with T (days since the first purchase) has a purchase history, and then needs frequency a
    whole number >= 0 and 0 <= recency <= T, recency 0 when frequency is 0, and monetary (a missing one
    was scored as an unknown order value, 2.5 times the account's value); a row without T has none,
    so its frequency, recency and monetary must be 0 or missing (the features give it 0): a row with
    repeat purchases but no T is contradictory, and was scored as a brand-new account. Scoring checks
    this before BTYD does, so a CRM's bad row is an error about the feature columns (HTTP 400 over
    REST), not about BTYD's input. Given the time unit (`unit_days`), the repeat purchase days must fit
    between the first and the last purchase day (frequency <= recency in days) and T must be a span of
    dates kamml can read: a CRM's frequency of 1e15 or T of 1e300 was scored.
    """
    none = np.isnan(T)
    history = ~none
    # the value rules read finite values only: a missing or infinite one is named once, as such, not
    # also as "not a whole number" or past a bound (nan != floor(nan) is True)
    f_ok, r_ok, t_ok = (history & np.isfinite(frequency)), np.isfinite(recency), np.isfinite(T)
    no_history = "must be 0 or missing when T is missing (a row without T has no purchase history)"
    rules = [
        ("frequency", history & np.isnan(frequency), "missing while T is given"),
        ("recency", history & np.isnan(recency), "missing while T is given"),
        ("T", history & ~np.isfinite(T), "must be finite"),
        ("frequency", history & np.isinf(frequency), "must be finite"),
        ("recency", history & np.isinf(recency), "must be finite"),
        (
            "frequency",
            f_ok & ((frequency < 0) | (frequency != np.floor(frequency))),
            "must be a whole number of repeat purchases >= 0",
        ),
        ("recency", history & r_ok & (recency < 0), "must be >= 0"),
        ("T", t_ok & (T < 0), "must be >= 0"),
        (
            "recency",
            r_ok & t_ok & (recency > T),
            "must be <= T (the last purchase cannot be after the cutoff)",
        ),
        ("recency", f_ok & r_ok & (frequency == 0) & (recency != 0), "must be 0 when frequency is 0"),
        # NaN != 0 is True, so a missing value is let through explicitly
        ("frequency", none & ~np.isnan(frequency) & (frequency != 0), no_history),
        ("recency", none & ~np.isnan(recency) & (recency != 0), no_history),
    ]
    if unit_days is not None:
        with np.errstate(invalid="ignore", over="ignore"):
            days = recency * unit_days
            rules += [
                (
                    "frequency",
                    f_ok & r_ok & (frequency > days * (1 + 1e-6) + 1e-6),
                    f"must be <= recency x {unit_days} (repeat purchase days lie between the first and the "
                    "last purchase day)",
                ),
                (
                    "T",
                    t_ok & (T * unit_days > MAX_HISTORY_DAYS),
                    f"must be <= {MAX_HISTORY_DAYS / unit_days:,.0f} (the dates kamml reads span "
                    f"{MAX_HISTORY_DAYS:,} days)",
                ),
            ]
    values = {"frequency": frequency, "recency": recency, "T": T}
    if monetary is not None:
        repeats = "missing while T is given (0 without repeats)"
        rules.append(("monetary", history & np.isnan(monetary), repeats))
        rules.append(("monetary", none & ~np.isnan(monetary) & (monetary != 0), no_history))
        values["monetary"] = monetary
    problems = []
    for column, bad, rule in rules:
        if bad.any():
            rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
            shown = tuple(values[column][bad][:5].tolist())
            problems.append(Problem("features", column, f"{rule}; row(s) {rows}", int(bad.sum()), shown))
    if problems:
        raise ModelError("feature rows break the purchase-history rules: " + "; ".join(map(str, problems)))


def btyd_columns(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary: np.ndarray,
    horizon: float,
    fit: BtydFit,
) -> dict[str, np.ndarray]:
    """The BTYD feature columns as arrays, for a horizon in the rfm time unit (NaN without a history).

    Accounts without purchases get missing BTYD values (LightGBM handles them); the order value of an
    account without repeat purchases is the population mean of Gamma-Gamma, and repeat orders that
    netted to nothing or less (refunds) count as orders of value 0, pulling it toward 0. Where
    Gamma-Gamma has no finite expectation (q <= 1, fitted on few or very uneven spenders: the population
    mean is infinite) the order value and the value are missing too, not infinite.
    """
    bg, gg = fit.models()
    n = len(frequency)
    columns = {col: np.full(n, np.nan) for col in BTYD_COLUMNS}
    known = ~(np.isnan(frequency) | np.isnan(T))  # rows with a purchase history, as `_rfm` keeps
    if known.any():
        f, t, r = frequency[known], T[known], recency[known]
        expected, alive, p_zero = bg.history_scores(horizon, f, r, t)  # one validation for the three
        columns["btyd_p_alive"][known] = alive
        columns["btyd_expected_purchases"][known] = expected
        columns["btyd_p_zero"][known] = p_zero
        if gg is not None:
            m = monetary[known]
            # repeat orders netted to nothing or less (refunds) pull toward 0, as GammaGamma does
            value = np.where((f > 0) & np.isfinite(m), np.maximum(m, 0.0), 0.0)
            order = gg.conditional_expected_value(np.where(np.isfinite(m), f, 0.0), value)
            order = np.where(np.isfinite(order), order, np.nan)
            columns["btyd_order_value"][known] = order
            columns["btyd_value"][known] = expected * order
    return columns


def rfm_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T and monetary of feature rows as float arrays (one conversion)."""
    rfm = frame[["frequency", "recency", "T", "monetary"]].to_numpy(dtype=np.float64, na_value=np.nan)
    return rfm[:, 0], rfm[:, 1], rfm[:, 2], rfm[:, 3]


def add_btyd_features(frame: pd.DataFrame, horizon: float, fit: BtydFit | None = None) -> pd.DataFrame:
    """Return `frame` with the BTYD columns of `btyd_columns` (fits BTYD on `frame` when `fit` is None)."""
    columns = btyd_columns(*rfm_arrays(frame), horizon, fit or fit_btyd(frame))
    out = frame.drop(columns=[c for c in BTYD_COLUMNS if c in frame.columns])
    return pd.concat([out, pd.DataFrame(columns, index=frame.index)], axis=1)


def no_purchase_exponent(
    fit: BtydFit, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, h: float, H: float
) -> float:
    """The exponent e with mean P0(h)^e = mean P0(H) over these accounts, by BG/NBD (h, H in rfm units).

    P0(t) is the probability of no purchase in the next t. e turns a probability of no purchase over
    the training window h into one over the horizon H, P0(H) = P0(h)^e, the same for every account: the
    order of the accounts is kept and the population's share of buyers follows BG/NBD. (For a plain
    Poisson buyer e = H / h; dropout makes it smaller.) 1 when H == h or nothing is known.
    """
    known = ~(np.isnan(frequency) | np.isnan(recency) | np.isnan(T))
    if h == H or not known.any():
        return 1.0
    bg, _ = fit.models()
    rfm = (frequency[known], recency[known], T[known])
    log_h = np.log(np.clip(bg.p_zero_purchases(h, *rfm), 1e-300, 1.0))
    target = float(np.mean(bg.p_zero_purchases(H, *rfm)))

    def gap(e: float) -> float:
        return float(np.mean(np.exp(e * log_h))) - target

    low, high = (1.0, 10.0 * H / h) if h < H else (0.1 * H / h, 1.0)
    if gap(low) * gap(high) > 0:  # no root inside: take the nearer end
        return low if abs(gap(low)) < abs(gap(high)) else high
    return float(brentq(gap, low, high, xtol=1e-6))


def expected_purchase_ratio(
    fit: BtydFit, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, h: float, H: float
) -> float:
    """Sum of E[X(H)] over sum of E[X(h)] over these accounts, by BG/NBD (h, H in rfm units).

    One factor for every account carries value predicted over the training window h to the horizon H,
    keeping the value model's order of the accounts, while the population's purchases follow BG/NBD's
    decay. H / h when nothing is known.
    """
    known = ~(np.isnan(frequency) | np.isnan(recency) | np.isnan(T))
    if h == H:
        return 1.0
    if not known.any():
        return H / h
    bg, _ = fit.models()
    rfm = (frequency[known], recency[known], T[known])
    over_h = float(np.sum(bg.conditional_expected_purchases(h, *rfm)))
    over_H = float(np.sum(bg.conditional_expected_purchases(H, *rfm)))
    return over_H / over_h if over_h > 0 else H / h
