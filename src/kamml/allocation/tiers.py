"""Ranks, tiers and reason codes: the allocation in words a sales rep can read.

Accounts are ranked by a value (the expected gain of their recommended hours by default, i.e. what the
effort adds at the margin of the plan), ties broken by stake and then account_id so the order is the same
on every run. Tiers cut that order by cumulative shares of accounts, by default the top 5 % *strategic*,
the next 15 % *key*, the next 30 % *maintain* and the rest *nurture* (`AllocationConfig.tiers`).
Accounts that tie (the same value and stake) are never split across tiers: a tie that straddles a
tier's edge goes whole to the tier of its last member (`tie_ranks`), as the top-decile flags below leave
a tie at their edge out together; a tier may then hold fewer accounts than its share. An account with
nothing at stake, or whose ranked value is not positive (no hours, so no expected gain), is in the last
tier whatever its rank (`assign_tiers`).

Reason codes say why an account matters, as short phrases joined by ``"; "``:

- which part of the stake dominates: ``"retention risk"`` (or ``"high churn risk"`` when p_churn >= 0.5,
  ``allocation.high_churn_p``),
  ``"growth potential"``, ``"referral influence"`` (or ``"influencer"``; only for an account whose
  referral value is at least the book's median, else the larger of the other two parts leads when it
  is at least a tenth of the referral part (`REFERRAL_LEAD_RATIO`): the influence model's lowest
  predictions are a base rate, not a sign of influence, but a part ten times smaller than it cannot be
  why the account matters); ``"no value at stake"`` when there is none, ``"little value at stake"``
  when the stake is under 1 % of the book's mean (`SMALL_STAKE_SHARE`: the largest part of almost
  nothing says nothing), and no drivers, "top-decile value" or "influencer" follow either of these two;
- flags: ``"high churn risk"``, ``"top-decile value"`` (clv in the top 10 %), ``"influencer"`` (referral
  value in the top 10 %), ``"likely inactive"`` (not active: p_alive or 1 − p_churn below the
  activity thresholds, `kamml.allocation.allocate.active_accounts`). A flag never names a part of the
  stake that the weights switch off (weight 0): no "influencer" without referral, no "high churn risk"
  without retention, no "top-decile value" without both retention and growth. The top 10 % is
  the ceil(0.1 n) accounts ranked highest (at least one; 2 of 11) and never splits a tie: an account is
  flagged when its value is positive and above that of the account ranked just below that share
  (`top_threshold`). Accounts whose value ties across that edge are all left out, so when 60 of 100
  accounts share the highest clv none of them is "top-decile" (they are not a top tenth of anything),
  and two accounts with the same value never get different flags;
- then the account's top model drivers, already in words in the scores' ``drivers`` column, of the
  model behind the lead and only those that raise its prediction: the churn model's after a retention
  lead (``"days since the last purchase: 212 (raises churn risk)"``), the influence model's after a
  referral lead, the value model's otherwise (each phrase names its model and direction by its
  ending, `kamml.models.drivers`), the first three; when none of that model's top drivers raises its
  prediction (they all lower it, or the model names none), ``"no top driver raises value"`` (or
  ``churn risk``, ``referral value``) says so. Accounts whose drivers were not computed (an empty
  ``drivers``, beyond ``--explain-top``) get no driver and no such note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation.stake import Weight, resolve_weights
from kamml.config import tier_shares
from kamml.errors import ConfigError
from kamml.models.drivers import DRIVER_TARGETS, target_of

__all__ = [
    "DEFAULT_TIERS",
    "PHRASES",
    "REFERRAL_LEAD_RATIO",
    "SMALL_STAKE_SHARE",
    "assign_tiers",
    "check_tiers",
    "rank_accounts",
    "reason_codes",
    "share_counts",
    "tie_ranks",
    "top_count",
    "top_threshold",
]

logger = logging.getLogger(__name__)

DEFAULT_TIERS: Mapping[str, float] = {"strategic": 0.05, "key": 0.20, "maintain": 0.50, "nurture": 1.0}
"""Tier name -> cumulative share of accounts (ranked best first) up to which the tier reaches."""

PHRASES: Mapping[str, str] = {
    "retention": "retention risk",
    "growth": "growth potential",
    "referral": "referral influence",
    "high_churn": "high churn risk",
    "top_value": "top-decile value",
    "influencer": "influencer",
    "inactive": "likely inactive",
    "no_stake": "no value at stake",
    "small_stake": "little value at stake",
    "no_driver": "no top driver raises {target}",  # a target of `kamml.models.drivers.DRIVER_TARGETS`
}
"""The words of every reason code, in one place."""

SEPARATOR = "; "
_PARTS = ("retention", "growth", "referral")
#: The models whose drivers can follow a lead (`kamml.models.drivers.DRIVER_TARGETS`), and the one for
#: each lead code of `reason_codes`: retention, growth, referral, high churn, influencer, no stake, little
#: stake.
_DRIVER_MODELS = ("value", "churn", "referral")
_LEAD_MODEL = np.array([1, 0, 2, 1, 2, 0, 0], dtype=np.int64)
#: The lead codes after which no driver and no value flag ("top-decile value", "influencer") follows: no
#: value, or little value, at stake (a driver that "raises value" beside them argued against the lead, an
#: allocation audit, forty-first session; so did "no value at stake; top-decile value" with growth
#: weighted 0 and p_churn 0). The risk flags ("high churn risk", "likely inactive") still follow.
_NO_DRIVERS = (5, 6)

#: An account whose stake is below this share of the book's mean stake leads with "little value at
#: stake": which part of almost nothing is largest says nothing. An allocation audit found 310 of 2,000
#: accounts leading with "referral influence" whose referral value was among the book's lowest (their
#: median clv 2 against 565): the other parts were smaller still. 94.5 % of them had a stake under 1 %
#: of the mean.
SMALL_STAKE_SHARE = 0.01

#: A referral part that dominates leads even below the book's median referral value when the larger
#: of the other two parts is under this share of it: an audit's account held 99.8 % of its stake in
#: referral and read "growth potential". On the demo's plan every account whose lead moved to another
#: part had that part at 0.115 or more of its referral part (referral 34-86 % of the stake), so the
#: plan's reasons are unchanged there.
REFERRAL_LEAD_RATIO = 0.1


def rank_accounts(
    value: npt.ArrayLike, stake: npt.ArrayLike, account_id: npt.ArrayLike
) -> npt.NDArray[np.int64]:
    """Rank 1..n by `value` (highest first), ties broken by `stake` (highest first), then `account_id`.

    Parameters
    ----------
    value, stake : array-like of shape (n,)
        The ranking value and the first tie-breaker.
    account_id : array-like of shape (n,)
        Unique ids (numbers or strings), the last tie-breaker, ascending.

    Returns
    -------
    numpy.ndarray of shape (n,)
        The rank of each account, in input order.

    Examples
    --------
    >>> rank_accounts([5.0, 5.0, 9.0], [1.0, 2.0, 0.0], ["a", "b", "c"]).tolist()
    [3, 2, 1]
    """
    v = np.asarray(value, dtype=float)
    st = np.asarray(stake, dtype=float)
    ids, _ = pd.factorize(np.asarray(account_id), sort=True)  # codes in the ids' own order
    # lexsort sorts by the last key first; NaN (as -NaN) sorts last
    order = np.lexsort((ids, -st, -v))
    ranks = np.empty(v.size, dtype=np.int64)
    ranks[order] = np.arange(1, v.size + 1)
    return ranks


def tie_ranks(rank: npt.ArrayLike, value: npt.ArrayLike, stake: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The rank a tier is read from: the last (largest) rank among the accounts tied with each one.

    Accounts tie when they have the same `value` and `stake` (NaN equal to NaN); `rank_accounts` then
    orders them by account_id only, so reading tiers from that order would give identical accounts
    (accounts without history, most often) different tiers when a tier's edge falls among them.

    Examples
    --------
    >>> tie_ranks([1, 2, 3, 4], [9.0, 5.0, 5.0, 1.0], [1.0, 2.0, 2.0, 1.0]).tolist()
    [1, 3, 3, 4]
    """
    r = np.asarray(rank, dtype=np.int64)
    frame = pd.DataFrame({"v": np.asarray(value, dtype=float), "s": np.asarray(stake, dtype=float), "r": r})
    return np.asarray(frame.groupby(["v", "s"], dropna=False, sort=False)["r"].transform("max"), np.int64)


def check_tiers(tiers: Mapping[str, float] | None) -> list[tuple[str, float]]:
    """The tiers as (name, cumulative share) pairs, best first; a ConfigError names what is wrong.

    At least two tiers, shares distinct numbers in (0, 1], the last one 1 (`kamml.config.tier_shares`,
    the rule the config applies when it is read).
    """
    try:
        return tier_shares(DEFAULT_TIERS if tiers is None else tiers)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def assign_tiers(
    rank: npt.ArrayLike,
    tiers: Mapping[str, float] | None = None,
    stake: npt.ArrayLike | None = None,
    value: npt.ArrayLike | None = None,
) -> npt.NDArray[np.object_]:
    """Tier of each account from its rank: the first tier whose cumulative share covers the rank.

    A tier with share s holds the accounts ranked up to ``ceil(s * n)``; the last tier, with share 1,
    reaches the last account. Give the ranks of `tie_ranks` to keep tied accounts in one tier. An account with
    nothing at stake (`stake` 0) is in the last tier whatever its rank: where most accounts had none,
    one of them was "strategic" by its id alone. So is an account whose `value`, the one the ranks
    follow, is not positive: with scarce hours and no floors, accounts given no hours (expected gain 0)
    were "key" by their stake alone beside 0 hours.

    Parameters
    ----------
    rank : array-like of shape (n,)
        Ranks 1..n (1 = best), as from `rank_accounts`.
    tiers : mapping, optional
        Tier name -> cumulative share of accounts; `DEFAULT_TIERS` when omitted.
    stake : array-like of shape (n,), optional
        Value at stake per account: 0 (or NaN) puts the account in the last tier.
    value : array-like of shape (n,), optional
        The value the ranks follow (``allocation.tier_by``, the expected gain by default): 0 or less
        (or NaN) puts the account in the last tier.

    Returns
    -------
    numpy.ndarray of shape (n,), dtype object
        The tier name per account.

    Examples
    --------
    >>> assign_tiers([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['strategic', 'key', 'maintain', 'maintain', 'maintain', 'nurture', 'nurture', 'nurture', 'nurture',
     'nurture']
    """
    pairs = check_tiers(tiers)
    r = np.asarray(rank, dtype=np.int64)
    n = r.size
    limits = share_counts([share for _, share in pairs], n)
    index = np.minimum(np.searchsorted(limits, r, side="left"), len(pairs) - 1)
    for positive in (stake, value):
        if positive is not None:
            index = np.where(np.asarray(positive, dtype=float) > 0, index, len(pairs) - 1)
    names = np.array([name for name, _ in pairs], dtype=object)
    return np.asarray(names[index], dtype=object)


def reason_codes(
    frame: pd.DataFrame,
    *,
    active: npt.ArrayLike | None = None,
    max_drivers: int = 3,
    high_churn: float = 0.5,
    top_share: float = 0.1,
    thresholds: tuple[float | None, float | None] | None = None,
    small_stake: float | None = None,
    referral_median: float | None = None,
    weights: Mapping[Any, Weight] | None = None,
    max_chars: int | None = None,
) -> pd.Series:
    """Why each account matters, as short phrases joined by ``"; "`` (see the module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per account with ``stake_retention``, ``stake_growth``, ``stake_referral``, ``clv`` and
        ``p_churn``; optional ``referral_value`` (NaN = 0) and ``drivers`` (model drivers in words,
        ``"; "``-separated, most important first per model, as `kamml.models.ModelBundle` writes them).
    active : array-like of bool, optional
        False for accounts that have likely stopped buying; they get ``"likely inactive"``.
    max_drivers : int, default 3
        How many drivers of the lead's model to append.
    high_churn : float, default 0.5
        p_churn from which an account gets ``"high churn risk"``.
    top_share : float, default 0.1
        Most share of accounts flagged ``"top-decile value"`` (by clv) and ``"influencer"`` (by referral
        value): only accounts with a positive value strictly above `top_threshold` are flagged, so ties
        at the edge of the share are left out together.
    thresholds : tuple of (float or None, float or None), optional
        The (clv, referral value) thresholds of `top_threshold` behind those two flags when `frame` is
        one batch of a larger table (`kamml.spark` computes them over the whole table); None for a flag
        means no account of the table has a positive value. By default they are computed from `frame`.
    small_stake : float, optional
        The stake under which a positive stake leads with "little value at stake"; by default
        `SMALL_STAKE_SHARE` x the mean stake of `frame` (`kamml.spark` passes the whole table's).
    referral_median : float, optional
        The referral value below which the referral part does not lead (the larger of the other two
        does, when it is at least `REFERRAL_LEAD_RATIO` of the referral part); by default the median
        of `frame`'s (`kamml.spark` passes the whole table's). On the demo's plan 404 of 5,000
        accounts led with "referral influence" with a referral value of 55 at the median against the
        book's 97 (thirty-fourth session).
    weights : mapping, optional
        The stake weights of the plan (`kamml.allocation.stake.resolve_weights`; the defaults when
        omitted): a part weighted 0 is switched off, and no flag names it (with referral weight 0 the
        demo's plan called 500 accounts "influencer", an audit's finding).
    max_chars : int, optional
        The longest reasons text (``allocation.reasons_max_chars``): whole phrases are dropped from the
        end, drivers first, until it fits, and the lead always stays. A CRM's text field (255 characters
        in many) cut the demo's longest reasons (278) inside a driver. None: no limit.

    Returns
    -------
    pandas.Series of str
        The reasons, same index as `frame`.

    Examples
    --------
    >>> frame = pd.DataFrame({"stake_retention": [60.0, 1.0], "stake_growth": [30.0, 3.0],
    ...                       "stake_referral": [0.0, 0.0], "clv": [100.0, 10.0], "p_churn": [0.6, 0.1],
    ...                       "drivers": ["orders: 9 (raises value); idle: 120 (raises churn risk)", None]})
    >>> reason_codes(frame).tolist()
    ['high churn risk; top-decile value; idle: 120 (raises churn risk)', 'growth potential']
    """
    n = len(frame)
    parts = frame[[f"stake_{part}" for part in _PARTS]].to_numpy(dtype=float)
    stake = parts.sum(axis=1)
    clv = frame["clv"].to_numpy(dtype=float)
    p_churn = frame["p_churn"].to_numpy(dtype=float)
    if "referral_value" in frame:
        referral = np.nan_to_num(frame["referral_value"].to_numpy(dtype=float), nan=0.0)
    else:
        referral = np.zeros(n)

    churn_flag = p_churn >= high_churn
    if thresholds is None:
        value_flag, influencer_flag = _top(clv, top_share), _top(referral, top_share)
    else:
        value_flag, influencer_flag = _above(clv, thresholds[0]), _above(referral, thresholds[1])
    off = {part for part, weight in resolve_weights(weights).items() if weight == 0}
    churn_flag &= "retention" not in off
    value_flag &= not {"retention", "growth"} <= off
    influencer_flag &= "referral" not in off
    dominant = np.argmax(parts, axis=1) if n else np.zeros(0, dtype=np.intp)
    has_stake = stake > 0

    # each reason column is (codes, vocabulary): strings are built once per distinct combination
    lead_words = [*(PHRASES[part] for part in _PARTS), PHRASES["high_churn"], PHRASES["influencer"]]
    lead_words += [PHRASES["no_stake"], PHRASES["small_stake"]]
    lead = dominant.astype(np.int64)
    if referral_median is None:
        referral_median = float(np.median(referral)) if n else 0.0
    other = parts[:, :2].max(axis=1, initial=0.0)
    weak = (dominant == 2) & (referral < referral_median) & (other > 0)
    weak &= other >= REFERRAL_LEAD_RATIO * parts[:, 2]
    lead[weak] = np.argmax(parts[weak, :2], axis=1)
    lead[(lead == 0) & churn_flag] = 3
    lead[(lead == 2) & influencer_flag] = 4
    if small_stake is None:
        small_stake = SMALL_STAKE_SHARE * float(stake.mean()) if n else 0.0
    lead[has_stake & (stake < small_stake)] = 6
    lead[~has_stake] = 5
    quiet = np.isin(lead, _NO_DRIVERS)  # no or little value at stake: nothing says it matters
    columns: list[tuple[npt.NDArray[np.int64], list[str]]] = [(lead, lead_words)]
    columns.append(_flag(churn_flag & (lead != 3), PHRASES["high_churn"]))
    columns.append(_flag(value_flag & ~quiet, PHRASES["top_value"]))
    columns.append(_flag(influencer_flag & (lead != 4) & ~quiet, PHRASES["influencer"]))
    if active is not None:
        columns.append(_flag(~np.asarray(active, dtype=bool), PHRASES["inactive"]))
    if "drivers" in frame and max_drivers > 0:
        columns.append(_drivers(frame["drivers"].where(~quiet), max_drivers, _LEAD_MODEL[lead]))
    return pd.Series(_join(columns, n, max_chars), index=frame.index, dtype=object, name="reasons")


def share_counts(shares: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    """How many of `n` accounts each share holds: ``ceil(share * n)``, less the float product's rounding.

    0.2 x 10 is 2.0000000000000004 and 0.07 x 280M is 19,600,000.000000004: 2 and 19,600,000 accounts,
    not 3 and 19,600,001 (an absolute 1e-9 held to about 1e7 accounts). The tiers' cut-offs, in memory
    and on Spark, and `top_count`.
    """
    x = np.asarray(shares, dtype=float) * n
    return np.asarray(np.ceil(x - np.maximum(1e-9, np.abs(x) * 1e-12)), dtype=np.float64)


def top_count(n: int, share: float = 0.1) -> int:
    """How many accounts of `n` the top `share` holds at most: ``ceil(share * n)``, at least one (n > 0).

    The rounding of `assign_tiers` (0.1 x 100 is 10 accounts, not 11; `share_counts`).
    """
    return max(1, int(share_counts(share, n))) if n else 0


def top_threshold(values: npt.ArrayLike, share: float = 0.1) -> float | None:
    """The value an account must exceed to be in the top `share`: that of the account ranked next below it.

    With m = `top_count` accounts in the top share, the threshold is the (m + 1)-th largest value, and
    the flag is ``value > threshold`` (and > 0): at most m accounts, the m largest when they are
    distinct, fewer when values tie across the edge (all of the tie is left out: with 60 of 100 at the
    highest clv, none is flagged). ``-inf`` when every account is within the share (a single account);
    None when no value is positive (nothing to flag). The rule `kamml.spark` applies over a whole table.

    Examples
    --------
    >>> top_threshold([5.0, 1.0, 9.0, 3.0], 0.25)  # 1 account: above the second largest
    5.0
    >>> top_threshold([0.0, 0.0])  # nothing positive
    """
    v = np.asarray(values, dtype=float)
    if not (v > 0).any():
        return None
    m = top_count(v.size, share)
    if m >= v.size:
        return -np.inf
    return float(np.partition(v, v.size - m - 1)[v.size - m - 1])


def _top(values: npt.NDArray[np.float64], share: float) -> npt.NDArray[np.bool_]:
    """True for the accounts in the top `share` of `values` by `top_threshold`, among positive values."""
    return _above(values, top_threshold(values, share))


def _above(values: npt.NDArray[np.float64], threshold: float | None) -> npt.NDArray[np.bool_]:
    """True for positive values strictly above a top-share threshold (none when it is None)."""
    if threshold is None:
        return np.zeros(len(values), dtype=bool)
    return (values > 0) & (values > threshold)


def _flag(flag: npt.NDArray[np.bool_], phrase: str) -> tuple[npt.NDArray[np.int64], list[str]]:
    """A reason column: `phrase` where `flag`, else nothing."""
    return flag.astype(np.int64), ["", phrase]


def _join(
    columns: list[tuple[npt.NDArray[np.int64], list[str]]], n: int, max_chars: int | None = None
) -> npt.NDArray[np.object_]:
    """Join the non-empty phrases of each row with `SEPARATOR`, once per distinct combination.

    With `max_chars`, the leading phrases that fit in it (`_within`).
    """
    if n == 0:
        return np.zeros(0, dtype=object)
    key = np.zeros(n, dtype=np.int64)
    for codes, words in columns:
        key = key * len(words) + codes
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    joined = np.array(
        [
            _within(SEPARATOR.join(words[codes[i]] for codes, words in columns if words[codes[i]]), max_chars)
            for i in first
        ],
        dtype=object,
    )
    return np.asarray(joined[inverse.reshape(-1)], dtype=object)


def _within(text: str, max_chars: int | None) -> str:
    """`text`'s first phrase, then each next one while the text stays within `max_chars` (None: all).

    No phrase holds the separator (drivers are split on ";", `_split`), so the text splits back into them.
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    phrases = text.split(SEPARATOR)
    text = phrases[0]
    for phrase in phrases[1:]:
        if len(text) + len(SEPARATOR) + len(phrase) > max_chars:
            break
        text += SEPARATOR + phrase
    return text


def _drivers(
    drivers: pd.Series, limit: int, model: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """A reason column: the first `limit` drivers raising the prediction of the model behind the lead.

    Only drivers that raise it, so a reason never argues against itself. `model` is an index into
    `_DRIVER_MODELS`. A phrase names its model and direction by its ending
    (`kamml.models.drivers.target_of`); one without (scores written before drivers named their model)
    is a value driver that raises the value, whatever the lead. Drivers of that model that all lower
    it, or none of it (its contributions all 0), give "no top driver raises churn risk"
    (``PHRASES["no_driver"]``), not nothing, which read as drivers missing, nor another model's drivers.
    Missing or empty drivers (an account beyond ``--explain-top``) give nothing.
    """
    values = drivers.to_numpy(dtype=object)
    try:
        codes, uniques = pd.factorize(values)  # once per distinct drivers text; NaN/None -> -1
    except TypeError:  # lists of phrases (e.g. a Parquet list column) are not hashable: join them first
        joined = [_joined(v) if isinstance(v, list | tuple | np.ndarray) else v for v in values]
        values = np.array(joined, dtype=object)
        codes, uniques = pd.factorize(values)
    words = [""] * len(_DRIVER_MODELS)  # code -1 (no drivers), for every model
    for text in uniques:
        by_model: dict[str, list[str]] = {key: [] for key in _DRIVER_MODELS}
        ended = False  # a phrase names its model: drivers of this kamml, every model's top movers
        for part in _split(text) if isinstance(text, str) else []:
            target = target_of(part)
            ended |= target is not None
            key = target or "value"  # no ending: a value driver of older scores
            if part.endswith(f"(lowers {DRIVER_TARGETS[key]})"):
                continue
            by_model[key].append(part)
        for key in _DRIVER_MODELS:
            chosen = by_model[key] if ended else by_model["value"]
            shown = SEPARATOR.join(chosen[:limit])
            words.append(shown or (PHRASES["no_driver"].format(target=DRIVER_TARGETS[key]) if ended else ""))
    return (codes.astype(np.int64) + 1) * len(_DRIVER_MODELS) + model, words


def _joined(phrases: Any) -> str:
    """A list of driver phrases as one ``"; "``-separated text, its nulls left out (they read "None")."""
    return SEPARATOR.join(
        str(p) for p in phrases if not (p is None or (not isinstance(p, str) and pd.isna(p)))
    )


def _split(text: str) -> list[str]:
    """Phrases of a ``"; "``-separated drivers string, stripped, empties dropped."""
    return [part.strip() for part in text.split(";") if part.strip()]
