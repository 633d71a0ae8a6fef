"""Effort response estimated from the data: how many hours of sales effort it takes to move an account.

The allocation (DESIGN §6) assumes that h hours in a planning period move a share
``1 - exp(-h / k_i)`` of an account's value at stake, with an effort scale k_i that grows with the
account's value. This module estimates k from what users have: the ``activities`` table (hours logged
per account and date) and the transactions, before a cutoff.

The account × planning-period panel the fit reads is built and described in `kamml.models.effort_panel`.

The model
---------
A served account orders more (DESIGN §7), so the expected number of purchase days of account i in
period t given h hours is, by maximum (Poisson quasi-) likelihood::

    E[orders_it | h] = exp(x_it' beta) * (1 + uplift * (1 - exp(-h_it / k_it)))
    k_it = scale * (value_it / reference_value) ** exponent * (size_i / size_reference) ** size_exponent

``reference_value`` is the median trailing value of the panel, so the fitted scale is the effort scale
of the median account in hours per planning period. The size term is fitted when the accounts table gives a
numeric size (``allocation.effort_size_column``, default ``size``): what it takes to serve an account
follows its size (people, sites) more than its spend, which measures size with noise. Size then joins
the baseline too (a quadratic in log size: it drives both the hours planned and the orders). Only the
mean count is assumed (quasi-likelihood: the estimates stay consistent under overdispersion), and
standard errors are cluster-robust by account.

Confounding
-----------
Effort is not assigned at random: teams give more hours to bigger and to recently active accounts, and
those buy more anyway, so a naive fit sees a steep effect of hours that is really the effect of size and
activity. The baseline ``exp(x_it' beta)`` therefore conditions on the account's state that drives
planned hours *and* its orders: a quadratic in log value, log frequency and log past hours, recency in
bins (with their interaction with frequency: a long silence of a frequent buyer suggests it has left),
age in bins, and a fixed effect per period (seasonality, trends, team size). Past hours are there because
the trailing orders were themselves raised by past effort: without them the same frequency would stand
for a lower underlying rate in well-served accounts, and k would come out too small. Given that state,
what is left of the variation in hours (the rep's workload and absences, plan noise, skipped periods) is
taken as unrelated to the account's orders, and it identifies the response. What this cannot remove:
hours that react within the period to the account's own orders (a visit after an order), and effort
targeted on information that the transactions do not show. Hours from after the cutoff are never read.

From a period to the horizon
----------------------------
The plan gives each account hours over the whole horizon (``time.horizon_days``), while k is fitted on
hours per planning period. Hours spread over the horizon's H / P periods put h x P / H into each, and
each period's response to them is ``1 - exp(-(h P / H) / k)``: so the response's `scale` is the fitted
one times H / P (``diagnostics["scale_per_period"]`` keeps the fitted one). For the default 180-day
horizon and quarters that doubles k; applying a quarter's k to half a year's hours overstated the gain
of the plan by half and spread its hours as if every account saturated twice as fast.

The test that hours have an effect at all is a likelihood ratio against the fit without effort, scaled
by the Pearson dispersion and referred to a chi-square with 3 degrees of freedom (4 with the size term):
approximate (scale and exponents are not identified when there is no effect), and conservative for
that reason.

The estimate is checked against the synthetic world's true mechanism in ``tests/models/test_effort.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from kamml.data.sampling import sample_ids
from kamml.errors import ConfigError, DataError
from kamml.features._context import as_cutoff
from kamml.models.effort_panel import Table, effort_panel
from kamml.models.effort_rule import (
    DEFAULT_CLIP,
    DEFAULT_EXPONENT,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_SCALE,
    check_clip,
    default_scale,
    effort_scale,
)
from kamml.text import counted

if TYPE_CHECKING:
    from kamml.config import AllocationConfig, Config
    from kamml.data.dataset import Dataset

__all__ = [
    "EffortResponse",
    "config_rule",
    "fit_effort_response",
    "fit_effort_response_from_data",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

RECENCY_BINS = (30.0, 91.0, 182.0)
"""Days since the last purchase day that split the recency bins (up to 30, 91, 182 days and longer)."""

AGE_BINS = (182.0, 365.0)
"""Days since the first purchase day that split the age bins."""

SIGNIFICANCE = 0.01
"""The effect of hours must be significant at this level (likelihood ratio) to be used."""

MIN_ACCOUNTS_WITH_HOURS = 100
"""Fewest distinct accounts with hours to fit from: a few heavily served accounts give many
account-periods but no precision (an audit's world: 40 accounts, 224 account-periods, a scale of 8.5 h
against a true 2 h)."""

IMPRECISE_LOG_SCALE = 0.7
"""A standard error of log k above this (k uncertain by a factor of two) gets a warning."""

HOURS_OVER_K_RANGE = (0.25, 4.0)
"""Where the median served account-period's hours / fitted k must lie for the curve's bend to be seen.

Far below, the response is nearly linear in hours and only uplift / k is measured; far above, it is
saturated and k is only bounded above. There the confounded policy's bias is not in the standard
errors: on synthetic worlds with the true k set 10 and 30 h per period (hours / k 0.24 and 0.19) the
fit read 6.8 and 8.5 h, and with 0.3 and 0.05 h (4.4 and 7.3) 0.40 and 0.24 h, each with a standard
error of log k of 0.56 or less; the default worlds sit at 0.46-0.67 and within 30 % of the truth."""

MAX_UPLIFT_RELATIVE_SE = 1.0
"""A fitted uplift whose standard error exceeds this multiple of itself is not used: it is the growth
weight of every account, and one the data do not tell from 0 is no measure of it."""

UPLIFT_BOUND_TOLERANCE = 1e-3
"""An uplift within this share of its upper bound (`UPLIFT_BOUNDS`) counts as at the bound."""


@dataclass(frozen=True)
class EffortResponse:
    """The effort scale of every account as a function of its value (and size): fitted or fixed.

    ``k = scale * (clv / reference_value) ** exponent * (size / size_reference) ** size_exponent``,
    clipped to ``[clip[0], clip[1]] * scale``: the hours over the horizon that move 63 % of an
    account's value at stake (a fit's per-period k times horizon / period, module docs). The size
    term is there only when the fit had an account-size column (`size_column`, an attribute of the
    accounts table); an account without a positive size counts as of the reference size. A fixed
    response (no reference value) uses the median positive clv of the accounts scored instead, the rule
    of `kamml.allocation.stake.effort_scale`.

    Attributes
    ----------
    scale : float
        Effort scale in hours over the horizon of an account worth `reference_value` (the median
        account of the fit).
    exponent : float
        How fast k grows with value (0: the same k for all).
    reference_value : float or None
        The value (per ``horizon_days``, the unit of a predicted clv) at which k = `scale`; None: the
        median positive clv of the accounts scored.
    size_column : str or None
        The accounts-table column the size term reads (the feature ``attr_<size_column>`` at scoring);
        None: no size term.
    size_exponent : float
        How fast k grows with account size at a given value (0: no size term).
    size_reference : float or None
        The size at which the size term is 1 (the median of the fit).
    horizon_days : int or None
        The value horizon `reference_value` is expressed in.
    period_months : int or None
        Length of the planning periods of the fit.
    uplift : float or None
        Fitted relative rise of the purchase rate of an account fully served by effort.
    clip : tuple of float
        Smallest and largest k as multiples of `scale`.
    source : {"fitted", "fixed"}
        Estimated from activities, or the fixed rule of the config.
    reason : str
        Why the fixed rule is used (empty when fitted).
    diagnostics : dict
        JSON-ready facts about the fit: rows, accounts, periods, cutoff, log-likelihoods, the likelihood
        ratio test of "hours have no effect", standard errors, the naive fit without controls.
    """

    scale: float
    exponent: float
    reference_value: float | None = None
    size_column: str | None = None
    size_exponent: float = 0.0
    size_reference: float | None = None
    horizon_days: int | None = None
    period_months: int | None = None
    uplift: float | None = None
    clip: tuple[float, float] = DEFAULT_CLIP
    source: Literal["fitted", "fixed"] = "fitted"
    reason: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ConfigError(f"effort response scale must be a finite number of hours > 0, got {self.scale}")
        if not math.isfinite(self.exponent) or self.exponent < 0:
            raise ConfigError(f"effort response exponent must be finite and >= 0, got {self.exponent}")
        ref = self.reference_value
        if ref is not None and (not math.isfinite(ref) or ref <= 0):
            raise ConfigError(f"effort response reference value must be finite and > 0, got {ref}")
        if not math.isfinite(self.size_exponent):
            raise ConfigError(f"effort response size exponent must be finite, got {self.size_exponent}")
        if self.size_exponent != 0:
            size_ref = self.size_reference
            if not self.size_column or size_ref is None or not math.isfinite(size_ref) or size_ref <= 0:
                raise ConfigError(
                    "an effort response with a size exponent needs a size column and a size reference "
                    f"> 0, got {self.size_column!r} and {size_ref}"
                )
        if self.source not in ("fitted", "fixed"):
            raise ConfigError(f"effort response source must be 'fitted' or 'fixed', got {self.source!r}")
        check_clip(self.clip, "effort response clip")  # a reversed clip failed later, inside effort_scale
        # a stored response's bad horizon failed only at scoring (0: ZeroDivisionError in at_horizon)
        for name in ("horizon_days", "period_months"):
            days = getattr(self, name)
            if days is not None and (isinstance(days, bool) or not isinstance(days, Integral) or days < 1):
                raise ConfigError(f"effort response {name} must be a whole number >= 1 or null, got {days!r}")
        if self.uplift is not None and not (math.isfinite(self.uplift) and self.uplift >= 0):
            raise ConfigError(
                f"effort response uplift must be a finite number >= 0 or null, got {self.uplift}"
            )
        if self.size_column is not None and not isinstance(self.size_column, str):
            raise ConfigError(f"effort response size column must be a column name, got {self.size_column!r}")
        if not isinstance(self.diagnostics, dict):
            raise ConfigError(f"effort response diagnostics must be a mapping, got {self.diagnostics!r}")

    @classmethod
    def fixed(
        cls,
        scale: float = DEFAULT_SCALE,
        exponent: float = DEFAULT_EXPONENT,
        clip: tuple[float, float] = DEFAULT_CLIP,
        reason: str = "",
        horizon_days: int | None = None,
    ) -> EffortResponse:
        """The hand-set rule: k = scale * (clv / median positive clv) ** exponent, for want of a fit.

        `horizon_days`, when given, is the horizon the scale's hours are over (for `describe`).
        """
        return cls(
            scale=float(scale),
            exponent=float(exponent),
            horizon_days=None if horizon_days is None else int(horizon_days),
            clip=(float(clip[0]), float(clip[1])),
            source="fixed",
            reason=reason,
        )

    def at_horizon(self, days: int) -> EffortResponse:
        """The same response over another horizon: k and the reference value scale with its length.

        k is hours over `horizon_days` and the reference value is value per `horizon_days`; over `days`
        both are ``days / horizon_days`` times as large (the module docs: the same hours spread over a
        longer time serve an account less surely, to first order in proportion). A response without a
        horizon, or already over `days`, is returned as it is.
        """
        if self.horizon_days is None or int(days) == self.horizon_days:
            return self
        ratio = int(days) / self.horizon_days
        ref = None if self.reference_value is None else self.reference_value * ratio
        return replace(self, scale=self.scale * ratio, reference_value=ref, horizon_days=int(days))

    @property
    def uses_size(self) -> bool:
        """Whether k depends on account size, so `effort_scale` needs the sizes."""
        return self.size_exponent != 0 and self.size_column is not None

    @property
    def size_feature(self) -> str | None:
        """The feature column holding the sizes at scoring (``attr_<size_column>``), if k uses size."""
        return f"attr_{self.size_column}" if self.uses_size else None

    def effort_scale(self, clv: npt.ArrayLike, size: npt.ArrayLike | None = None) -> FloatArray:
        """Effort scale k per account in hours from its value and size.

        Parameters
        ----------
        clv : array-like of shape (n,)
            Value per account over the horizon (>= 0; NaN counts as 0).
        size : array-like of shape (n,), optional
            Account size in the unit of `size_column`, needed when the response has a size term; a
            missing or non-positive size counts as `size_reference`.

        Returns
        -------
        numpy.ndarray of shape (n,)
            k per account, > 0.

        Raises
        ------
        kamml.errors.DataError
            When the response has a size term and no sizes (or sizes of another length) are given.

        Examples
        --------
        >>> response = EffortResponse(scale=2.0, exponent=0.5, reference_value=100.0, horizon_days=180)
        >>> response.effort_scale([100.0, 400.0, 0.0]).tolist()
        [2.0, 4.0, 0.5]
        """
        factor = None
        if self.uses_size:
            if size is None:
                raise DataError(
                    f"this effort response grows with account size: the sizes ({self.size_column!r}, "
                    f"feature {self.size_feature!r}) are needed to compute the effort scales"
                )
            factor = np.power(self._relative_size(size, np.shape(clv)), self.size_exponent)
        return effort_scale(
            clv,
            self.scale,
            exponent=self.exponent,
            clip=self.clip,
            reference=self.reference_value,
            factor=factor,
        )

    def _relative_size(self, size: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
        """Size / size_reference per account, 1 where the size is missing or not positive."""
        raw = np.ravel(np.asarray(size))
        if raw.dtype.kind in "biuf":  # numbers already: no pandas round trip (a REST row's 0.2 ms)
            values = raw.astype(float)
        else:  # text or objects (a CRM's JSON): what is not a number counts as missing
            values = np.asarray(pd.to_numeric(pd.Series(raw), errors="coerce"), dtype=float)
        if values.shape != shape:
            raise DataError(f"effort response: {values.size} sizes given for {int(np.prod(shape))} accounts")
        known = np.isfinite(values) & (values > 0)
        return np.where(known, values / float(self.size_reference or 1.0), 1.0)

    def allocation_settings(self, clv: npt.ArrayLike) -> dict[str, Any]:
        """`AllocationConfig` fields under which the median-relative rule gives these k for these `clv`.

        For callers of `kamml.allocation.allocate` that cannot pass the response itself: with
        ``effort_scale``, ``effort_exponent`` and ``effort_clip`` set to the returned values,
        `kamml.allocation.stake.effort_scale` on the same `clv` equals `effort_scale` (to rounding).

        Raises
        ------
        kamml.errors.ConfigError
            When the response has a size term, which the value-only rule cannot express: pass the
            scores' ``effort_scale`` column (as `kamml.models.ModelBundle.predict` gives it) instead.
        """
        if self.uses_size:
            raise ConfigError(
                f"the effort response grows with account size ({self.size_column!r}), which the "
                "value-only allocation settings cannot express: allocate with effort_scale 'auto' from "
                "scores that carry the effort_scale column"
            )
        clip = (float(self.clip[0]), float(self.clip[1]))
        settings = {"effort_scale": self.scale, "effort_exponent": self.exponent, "effort_clip": clip}
        if self.reference_value is None or self.exponent == 0:  # k is the scale at any value
            return settings
        value = np.nan_to_num(np.asarray(clv, dtype=float), nan=0.0)
        positive = value[value > 0]
        if positive.size == 0:  # every k is the smallest one; the rule gives each its scale, clipped
            settings["effort_scale"] = self.scale * clip[0]
            settings["effort_clip"] = (1.0, clip[1] / clip[0])  # (2, 4) gave twice the smallest k
            return settings
        scale = self.scale * (float(np.median(positive)) / self.reference_value) ** self.exponent
        factor = self.scale / scale
        settings["effort_scale"] = scale
        settings["effort_clip"] = (clip[0] * factor, clip[1] * factor)
        return settings

    def describe(self, growth: float | str | None = None) -> str:
        """One line for a report: where k comes from, how large it is, and what a fit assumes.

        `growth`: the plan's ``allocation.weights.growth`` (a number, or ``"auto"``: the fitted uplift,
        0.3 without one), so the line names the growth weight the plan priced growth with.
        """
        trend = "the same at any value"
        if self.exponent:
            trend = f"growing with value to the power {self.exponent:.2g}"
        horizon = f" over the {self.horizon_days}-day horizon" if self.horizon_days else ""
        where = "the median account of the fit" if self.reference_value else "the median account scored"
        shape = f"k = {self.scale:.3g} h{horizon} at {where}, {trend}"
        if self.size_exponent:
            shape += f" and with size to the power {self.size_exponent:.2g}"
        per_period = self.diagnostics.get("scale_per_period")
        if per_period is not None and self.period_months:
            shape += f" ({float(per_period):.3g} h per {self.period_months}-month period)"
        if self.source == "fixed":
            why = f" ({self.reason})" if self.reason else ""
            if growth is None:
                weight = "from the config (0.3 under auto)"
            elif growth == "auto":
                weight = "0.3 (auto, without a fitted uplift)"
            else:
                weight = f"{float(growth):g} (allocation.weights.growth)"
            return f"fixed rule{why}: {shape}; growth weight {weight}"
        uplift = "none" if self.uplift is None else f"{self.uplift:.2g}"
        if growth is not None and growth != "auto":
            uplift += f" (growth weight {float(growth):g} from allocation.weights.growth instead)"
        assumption = "It assumes the hours were not aimed at accounts for reasons the data do not show"
        d = self.diagnostics
        if "rows" not in d:  # a response saved without its diagnostics
            return f"fitted: {shape}; uplift {uplift}. {assumption}"
        p_value = float(d.get("lr_pvalue", float("nan")))
        periods = int(d.get("periods", 0))
        spread = d.get("se_log_scale")  # null in JSON when not finite
        precision = ""
        if spread is not None and not float(spread) <= IMPRECISE_LOG_SCALE:
            precision = f"; imprecise: {_uncertainty(float(spread))}"
        elif spread is None and "se_log_scale" in d:
            precision = f"; imprecise: {_uncertainty(float('inf'))}"
        ratio = d.get("hours_over_k")  # the regime the fit warned about, also in the report's line
        low, high = HOURS_OVER_K_RANGE
        if ratio is not None and math.isfinite(float(ratio)) and not low <= float(ratio) <= high:
            precision += f"; rough: hours were {float(ratio):.2g} times k at the median account-period, " + (
                "so only uplift / k is measured" if float(ratio) < low else "so k is only bounded above"
            )
        accounts = int(d.get("accounts", 0))
        of = f"{accounts:,} accounts"
        if int(d.get("accounts_in_panel", accounts)) > accounts:
            of = f"a sample of {accounts:,} of {int(d['accounts_in_panel']):,} accounts"
        return (
            f"fitted from {int(d['rows']):,} account-periods of {of} over "
            f"{counted(periods, 'period')} (effect of hours: p = {p_value:.2g}): {shape}; "
            f"uplift {uplift}{precision}. {assumption}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the response (`from_dict` rebuilds it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["clip"] = list(self.clip)
        out["diagnostics"] = _plain(self.diagnostics)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EffortResponse:
        """Rebuild from `to_dict` output; unknown keys or bad values are a `ConfigError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(f"unknown effort response keys: {', '.join(unknown)}")
        if "scale" not in raw or "exponent" not in raw:
            raise ConfigError("an effort response needs at least 'scale' and 'exponent'")
        values = dict(raw)
        try:
            if "clip" in values:
                low, high = values["clip"]
                values["clip"] = (float(low), float(high))
            for name in ("scale", "exponent", "size_exponent"):
                if name in values:
                    values[name] = _number(values[name])
            for name in ("reference_value", "size_reference", "uplift"):
                if values.get(name) is not None:
                    values[name] = _number(values[name])
            for name in ("horizon_days", "period_months"):  # 180.0 from a tool that writes floats
                if isinstance(values.get(name), float) and values[name].is_integer():
                    values[name] = int(values[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"an effort response's values must be numbers (clip two of them): {exc}"
            ) from None
        diagnostics = values.get("diagnostics") or {}
        values["diagnostics"] = dict(diagnostics) if isinstance(diagnostics, Mapping) else diagnostics
        return cls(**values)


def _number(value: Any) -> float:
    """`value` as a float; text and true/false are a TypeError (a stored response holds numbers)."""
    if isinstance(value, (bool, str)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


# -------------------------------------------------------------------------------------------------- fit


def fit_effort_response(
    transactions: Table,
    activities: Table,
    cutoff: str | pd.Timestamp,
    *,
    period_months: int = 3,
    max_periods: int = 8,
    history_days: int = 365,
    min_history_days: int = 90,
    horizon_days: int = 180,
    clip: tuple[float, float] = DEFAULT_CLIP,
    min_rows: int = 200,
    accounts: Table | None = None,
    size_column: str | None = None,
    max_accounts: int | None = None,
) -> EffortResponse:
    """Estimate the effort scale (and its growth with value) from past periods' hours and orders.

    Maximum Poisson quasi-likelihood of the model of the module docstring on `effort_panel`, with
    controls for the account state that drives both the hours planned and the orders (confounding).

    Parameters
    ----------
    transactions, activities, cutoff, period_months, max_periods, history_days, min_history_days,
    horizon_days, accounts, size_column
        As in `effort_panel`; `horizon_days` should be the horizon of the clv the response is applied to.
        With a size column, k also grows with the account's size (``size_exponent``) and the baseline
        controls for size; without positive sizes on at least half the rows, or with one size for
        all, the size term is left out (noted in the diagnostics).
    clip : tuple of float, default (0.25, 4.0)
        Smallest and largest k as multiples of the scale, when applied.
    min_rows : int, default 200
        Fewest account-periods with hours to fit from.
    max_accounts : int, optional
        Fit on the periods of at most this many accounts, chosen as the models' sample is
        (`kamml.data.sampling.sample_ids`, ``models.max_training_accounts``: the lowest hashes among
        the panel's accounts, so mostly the same accounts): the fit's time grows with the panel (about
        4 minutes for 5M account-periods of a million accounts, 1.5 minutes for 1.1M).

    Returns
    -------
    EffortResponse
        ``source="fitted"``, with the fit's diagnostics.

    Raises
    ------
    kamml.errors.DataError
        On no transactions or activities before the cutoff, too few account-periods, hours that do not
        vary, when the data show no significant effect of hours (likelihood ratio test at
        `SIGNIFICANCE`), so that no scale can be read from them, or when the fitted uplift is at the
        upper end of its range or its standard error exceeds it (`_unusable_uplift`): it would be the
        growth weight of the allocation.
    kamml.errors.ConfigError
        As `effort_panel`: a cutoff with a time of day, or a bad period length, count or window; and a
        `clip` that is not two numbers with 0 < low <= high < inf (checked before any work).
    """
    clip = _checked_clip(clip)  # before the panel and the fit: the response refused it only after them
    cut = as_cutoff(cutoff)
    panel = effort_panel(
        transactions,
        activities,
        cut,
        period_months=period_months,
        max_periods=max_periods,
        history_days=history_days,
        min_history_days=min_history_days,
        horizon_days=horizon_days,
        accounts=accounts,
        size_column=size_column,
    )
    every = int(panel["account_id"].nunique())
    if max_accounts is not None and every > max_accounts:
        panel = panel[panel["account_id"].isin(sample_ids(panel["account_id"], max_accounts))]
        logger.info(
            "effort response: fitting on %s of %s accounts (%s account-periods; "
            "models.max_training_accounts)",
            f"{max_accounts:,}",
            f"{every:,}",
            f"{len(panel):,}",
        )
    with_hours = int((panel["hours"] > 0).sum())
    if len(panel) < min_rows or with_hours < min_rows // 2:
        raise DataError(
            f"effort response: {len(panel):,} account-periods ({with_hours:,} with hours) before "
            f"{cut.date()}; at least {min_rows:,} ({min_rows // 2:,} with hours) are needed"
        )
    served = int(panel.loc[panel["hours"] > 0, "account_id"].nunique())
    if served < MIN_ACCOUNTS_WITH_HOURS:
        sampled = (
            f" of the {max_accounts:,} accounts sampled (models.max_training_accounts)"
            if max_accounts is not None and every > max_accounts
            else ""
        )
        raise DataError(
            f"effort response: hours are logged on {served} accounts{sampled} before {cut.date()}; at "
            f"least {MIN_ACCOUNTS_WITH_HOURS} are needed (a few accounts' many periods give no precision)"
        )
    levels = np.unique(panel["hours"].to_numpy(dtype=float))
    if levels.size < 3:
        raise DataError(_too_few_hour_levels(levels))
    with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only contend
        fit = _fit_panel(panel)
    if fit["lr_pvalue"] > SIGNIFICANCE:
        raise DataError(
            f"effort response: the data show no significant effect of hours on orders "
            f"(likelihood ratio {fit['lr_stat']:.3g}, p = {fit['lr_pvalue']:.3g})"
        )
    unusable = _unusable_uplift(fit["uplift"], fit["se_uplift"], fit["scale"])
    if unusable:
        raise DataError(f"effort response: {unusable}")
    if fit["scale_at_bound"]:
        raise DataError(f"effort response: {_scale_at_bound(fit['scale'])}")
    diagnostics = {
        "cutoff": str(cut),
        "rows": len(panel),
        "rows_with_hours": with_hours,
        "accounts": int(panel["account_id"].nunique()),
        "accounts_in_panel": every,
        "periods": int(panel["period"].nunique()),
        "first_period_start": str(panel["period_start"].min()),
        "mean_hours": float(panel["hours"].mean()),
        "mean_orders": float(panel["orders"].mean()),
        **{k: v for k, v in fit.items() if k not in _RESPONSE_FIELDS},
    }
    if diagnostics["periods"] < 2:
        logger.warning(
            "effort response: fitted from one planning period, a single cross-section of accounts; "
            "the scale rests on differences between accounts only"
        )
    if not fit["se_log_scale"] <= IMPRECISE_LOG_SCALE:  # NaN and inf too
        logger.warning(
            "effort response: imprecise fit, scale %.3g h (%s); uplift %.3g (standard error %.3g)",
            fit["scale"],
            _uncertainty(fit["se_log_scale"]),
            fit["uplift"],
            fit["se_uplift"],
        )
    low, high = HOURS_OVER_K_RANGE
    if not low <= fit["hours_over_k"] <= high:
        logger.warning(
            "effort response: the median account-period with hours got %.2g times its fitted k in hours "
            "(%.3g h per period at the median value): %s, and the standard errors do not show the bias "
            "of the team's own choice of hours; treat k and the uplift (the growth weight) as rough",
            fit["hours_over_k"],
            fit["scale"],
            "the response is nearly linear there, so only uplift / k is measured"
            if fit["hours_over_k"] < low
            else "the response is saturated there, so k is only bounded above",
        )
    if size_column is not None and fit["size_term"] != "fitted":
        logger.warning(
            "effort response: accounts.%s left out of the fit (%s): %s",
            size_column,
            fit["size_term"],
            NOT_BY_SIZE,
        )
    if not fit["converged"]:
        logger.warning(
            "effort response: the fit did not converge; check the diagnostics before trusting scale %.3g h",
            fit["scale"],
        )
    periods = horizon_days / (period_months * 365.25 / 12)  # planning periods in the horizon
    diagnostics["scale_per_period"] = fit["scale"]
    diagnostics["horizon_periods"] = periods
    response = EffortResponse(
        scale=fit["scale"] * periods,
        exponent=fit["exponent"],
        reference_value=fit["reference_value"],
        size_column=size_column if fit["size_exponent"] != 0 else None,
        size_exponent=fit["size_exponent"],
        size_reference=fit["size_reference"],
        horizon_days=int(horizon_days),
        period_months=int(period_months),
        uplift=fit["uplift"],
        clip=clip,
        source="fitted",
        diagnostics=diagnostics,
    )
    logger.info(
        "effort response from %s account-periods: scale %.3g h over the %d-day horizon (%.3g h per "
        "%d-month period; median account), exponent %.3g, uplift %.3g, size exponent %.3g; naive fit "
        "without controls: scale %.3g h per period, exponent %.3g",
        f"{len(panel):,}",
        response.scale,
        int(horizon_days),
        fit["scale"],
        int(period_months),
        response.exponent,
        fit["uplift"],
        response.size_exponent,
        fit["naive_scale"],
        fit["naive_exponent"],
    )
    return response


def _checked_clip(clip: tuple[float, float]) -> tuple[float, float]:
    """The fit's clip as two floats, or a ConfigError naming the setting and its rule.

    Checked before the panel is built: `EffortResponse` refused a reversed clip only when it was built,
    after the fit (minutes on a large book).
    """
    rule = "clip (allocation.effort_clip) must be (low, high) with 0 < low <= high < inf"
    try:
        low, high = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise ConfigError(f"effort response: {rule}, got {clip!r}") from None
    if not 0 < low <= high < math.inf:
        raise ConfigError(f"effort response: {rule}, got ({low}, {high})")
    return low, high


def _too_few_hour_levels(levels: FloatArray) -> str:
    """Why hours of fewer than 3 distinct amounts per account-period cannot show the curve, in words."""
    shown = " and ".join(f"{v:g}" for v in levels)
    return (
        "effort response: activities.hours take only "
        f"{counted(levels.size, 'value')} per account and period ({shown}); at least 3 are needed to see "
        "where the response to hours levels off (log the hours each activity took, not one amount for all)"
    )


def config_rule(alloc: AllocationConfig) -> EffortResponse | None:
    """The fixed rule a number in ``allocation.effort_scale`` sets (it overrides any fit), or None."""
    if alloc.effort_scale == "auto":
        return None
    clip = (float(alloc.effort_clip[0]), float(alloc.effort_clip[1]))
    return EffortResponse.fixed(
        float(alloc.effort_scale), float(alloc.effort_exponent), clip, reason="set in the config"
    )


def fit_effort_response_from_data(
    data: Dataset,
    cutoff: str | pd.Timestamp | None = None,
    config: Config | AllocationConfig | None = None,
    *,
    horizon_days: int | None = None,
) -> EffortResponse:
    """The effort response for a `kamml.Dataset` as the config asks: fitted, or the fixed rule.

    With ``allocation.effort_scale: auto`` (the default) the response is fitted from the dataset's
    activities before `cutoff`; without an activities table, or when the fit finds too little data, no
    effect of hours or an uplift it does not measure, the fixed rule (4 hours over 180 days at the
    median account, in proportion to the horizon: `default_scale`; exponent ``effort_exponent``) is
    returned with a warning. A number in ``effort_scale`` is the fixed rule with that scale, as given.

    Parameters
    ----------
    data : kamml.data.Dataset
        Validated tables (``transactions``, ``activities``, ``end``).
    cutoff : str or pandas.Timestamp, optional
        A day (YYYY-MM-DD or a midnight timestamp); only data before it is read; default ``data.end``.
        Must not be after ``data.end``.
    config : Config or AllocationConfig, optional
        ``allocation`` settings (effort_scale, effort_exponent, effort_clip, effort_size_column) and,
        from a whole `Config`, ``time.horizon_days``.
    horizon_days : int, optional
        Horizon of the clv the response is applied to; default ``time.horizon_days`` of a whole
        `Config`, else 180 (`DEFAULT_HORIZON_DAYS`, the default of ``time.horizon_days``).

    Returns
    -------
    EffortResponse

    Raises
    ------
    kamml.errors.ConfigError
        When `cutoff` is after the end of the data, or not a whole day (as `kamml.build_features` refuses
        it: a time of day, a number, a date not written YYYY-MM-DD).
    """
    from kamml.config import AllocationConfig, Config

    max_accounts = None
    if isinstance(config, Config):
        alloc, horizon = config.allocation, config.time.horizon_days
        max_accounts = config.models.max_training_accounts
    else:
        alloc, horizon = (config or AllocationConfig()), DEFAULT_HORIZON_DAYS
    horizon = int(horizon_days if horizon_days is not None else horizon)
    # a whole day, as the features read it (`as_cutoff`): the plan's cutoff is the features' one
    cut = _timestamp(data.end) if cutoff is None else as_cutoff(cutoff)
    if cut > data.end:
        raise ConfigError(
            f"effort response: the cutoff {cut.date()} is after the end of the data {data.end.date()}"
        )
    clip = (float(alloc.effort_clip[0]), float(alloc.effort_clip[1]))
    configured = config_rule(alloc)
    if configured is not None:
        if alloc.weights.get("growth") == "auto":
            logger.info(
                "allocation.effort_scale is a number, so no response is fitted: the growth weight "
                "'auto' falls back to the fixed one, 0.3 (no fitted uplift)"
            )
        return configured
    fallback = default_scale(horizon)  # the fixed rule's hours follow the horizon, as a fitted k does
    if data.activities is None:
        reason = "no activities table: the effort response cannot be estimated"
        _warn_fixed_rule(reason, fallback, horizon, activities=False)
        return EffortResponse.fixed(fallback, float(alloc.effort_exponent), clip, reason, horizon)
    static = not isinstance(config, Config) or (
        config.features.groups.get("static", True)
        and (
            config.features.static_columns is None
            or alloc.effort_size_column in config.features.static_columns
        )
    )
    size_column = _usable_size_column(data, alloc, static_features=static)
    try:
        return fit_effort_response(
            data.transactions,
            data.activities,
            cut,
            horizon_days=horizon,
            clip=clip,
            accounts=data.accounts,  # its ids too: a prospect's hours are no stray (`effort_panel`)
            size_column=size_column,
            max_accounts=max_accounts,
        )
    except DataError as exc:
        _warn_fixed_rule(str(exc), fallback, horizon, activities=True)
        return EffortResponse.fixed(fallback, float(alloc.effort_exponent), clip, str(exc), horizon)


def _warn_fixed_rule(reason: str, scale: float, horizon: int, *, activities: bool) -> None:
    """Warn that the fixed rule stands in for a fit: why, what the plan then assumes, and what to do.

    The run's report lists the line for sales managers, so it says what the rule's k means (at k hours
    the gain curve 1 - exp(-h / k) reaches 63%) and which setting replaces it.
    """
    todo = (
        "; give an activities table (the hours of sales work logged per account) to have it measured, or "
        "set allocation.effort_scale to the hours you know move the median account"
        if not activities
        else ", or set allocation.effort_scale to the hours you know move the median account"
    )
    logger.warning(
        "%s; instead of learning from your data how much sales hours raise orders, the plan assumes that "
        "%.3g hours over the %d-day horizon bring the median account about 63%% of what effort can gain "
        "there (the fixed rule). Treat the hours the plan gives each account as a rough guide%s",
        reason,
        scale,
        horizon,
        todo,
    )


_RESPONSE_FIELDS = ("scale", "exponent", "uplift", "reference_value", "size_exponent", "size_reference")
"""Keys of `_fit_panel`'s result that become `EffortResponse` fields rather than diagnostics."""

NOT_BY_SIZE = (
    "the hours the plan reckons an account needs (its effort scale k) follow its value only, not its size"
)
"""What a size column left out means for the plan, in the words of the run's report."""

MIN_SIZE_SHARE = 0.5
"""The size term needs a positive size on at least this share of the panel rows."""


def _usable_size_column(
    data: Dataset, alloc: AllocationConfig, *, static_features: bool = True
) -> str | None:
    """The config's size column if the accounts table has it as a number; else None, with a log line.

    A warning when the column was set in the config, an info line when it is the default's. Without the
    static feature group the scoring rows carry no ``attr_<column>``, so no size term is fitted.
    """
    column = alloc.effort_size_column
    if column is None:
        return None
    log = logger.warning if "effort_size_column" in alloc.model_fields_set else logger.info
    if not static_features:
        log(
            "effort response: the static group is off or features.static_columns leaves %s out, so the "
            "scores carry no attr_%s: %s; turn on features.groups.static (with %s in "
            "features.static_columns, when set), or leave allocation.effort_size_column unset",
            column,
            column,
            NOT_BY_SIZE,
            column,
        )
        return None
    accounts = data.accounts
    if accounts is None or column not in accounts.columns:
        cased = [c for c in (accounts.columns if accounts is not None else ()) if c.lower() == column.lower()]
        if cased:  # an export's upper-case headers: a warning, as the fit changes (an audit's find)
            logger.warning(
                "effort response: no column accounts.%s but accounts.%s (attribute columns keep their "
                "headers' case): %s; rename it, or set allocation.effort_size_column",
                column,
                cased[0],
                NOT_BY_SIZE,
            )
        else:
            log("effort response: no column accounts.%s, so %s", column, NOT_BY_SIZE)
        return None
    dtype = accounts.schema()[column]
    if not dtype.is_numeric():
        log(
            "effort response: accounts.%s is %s, not a number: %s",
            column,
            dtype,
            NOT_BY_SIZE,
        )
        return None
    return column


def _fit_panel(panel: pd.DataFrame) -> dict[str, Any]:
    """Poisson quasi-likelihood fit of the effort model with controls, its null and a naive fit."""
    orders = panel["orders"].to_numpy(dtype=float)
    hours = panel["hours"].to_numpy(dtype=float)
    value = panel["value"].to_numpy(dtype=float)
    reference = float(np.median(value))
    log_k = [np.log(value / reference)]  # the covariates of log k, each with its exponent
    size, size_status = _size_term(panel)
    controls = _controls(panel)
    if size is not None:
        log_k.append(size[0])
        controls = np.hstack([controls, size[2]])
    z = np.column_stack(log_k)
    naive_x = pd.get_dummies(panel["period"], prefix="period", dtype=float).to_numpy()

    null = _maximise(controls, orders, hours, z, effort=False)
    full = _maximise(controls, orders, hours, z, effort=True, start=null["beta"])
    naive = _maximise(naive_x, orders, hours, z, effort=True)
    lr = max(0.0, 2.0 * (full["loglik"] - null["loglik"]))
    pearson = float(np.sum((orders - full["mu"]) ** 2 / full["mu"]))
    dispersion = pearson / max(len(orders) - full["n_params"], 1)
    lr_scaled = lr / max(dispersion, 1.0)  # quasi-likelihood: the LR shrinks by the dispersion
    se = _robust_se(controls, orders, hours, z, full, panel["account_id"].to_numpy())
    p = controls.shape[1]
    exponents = full["exponents"]
    served = hours > 0
    k_rows = np.exp(full["log_scale"] + z[served] @ np.asarray(exponents, dtype=float))
    out = {
        "hours_over_k": float(np.median(hours[served] / k_rows)) if served.any() else float("nan"),
        "scale": float(np.exp(full["log_scale"])),
        "exponent": float(exponents[0]),
        "uplift": float(full["uplift"]),
        "reference_value": reference,
        "size_exponent": float(exponents[1]) if size is not None else 0.0,
        "size_reference": size[1] if size is not None else None,
        "se_log_scale": float(se[p + 1]),
        "se_exponent": float(se[p + 2]),
        "se_uplift": float(se[p]),
        "size_term": size_status,
        "loglik": float(full["loglik"]),
        "loglik_no_effort": float(null["loglik"]),
        "dispersion": dispersion,
        "lr_stat": float(lr_scaled),
        "lr_pvalue": float(stats.chi2.sf(lr_scaled, df=2 + z.shape[1])),
        "converged": bool(full["converged"]),
        "naive_scale": float(np.exp(naive["log_scale"])),
        "naive_exponent": float(naive["exponents"][0]),
        "naive_uplift": float(naive["uplift"]),
        "exponent_at_bound": bool(
            exponents[0] <= EXPONENT_BOUNDS[0] + 1e-6 or exponents[0] >= EXPONENT_BOUNDS[1] - 1e-6
        ),
        "scale_at_bound": bool(
            full["log_scale"] <= LOG_SCALE_BOUNDS[0] + 1e-6 or full["log_scale"] >= LOG_SCALE_BOUNDS[1] - 1e-6
        ),
        "uplift_at_bound": bool(full["uplift"] >= UPLIFT_BOUNDS[1] * (1 - UPLIFT_BOUND_TOLERANCE)),
    }
    if size is not None:
        out["se_size_exponent"] = float(se[p + 3])
    return out


def _size_term(panel: pd.DataFrame) -> tuple[tuple[FloatArray, float, FloatArray] | None, str]:
    """Log relative size, the reference size and the size controls, or None with the reason why not.

    The second item is ``"fitted"`` or why size cannot be used (for the diagnostics). Rows without a
    positive size get the reference size and a flag among the controls.
    """
    if "size" not in panel:
        return None, "no size column"
    size = panel["size"].to_numpy(dtype=float)
    known = np.isfinite(size) & (size > 0)
    if known.mean() < MIN_SIZE_SHARE:
        return None, f"positive sizes on {known.mean():.0%} of the rows, fewer than {MIN_SIZE_SHARE:.0%}"
    if np.ptp(size[known]) == 0:
        return None, "every account has the same size"
    reference = float(np.median(size[known]))
    log_size = np.where(known, np.log(np.where(known, size, 1.0) / reference), 0.0)
    z_size = (log_size - log_size.mean()) / max(float(log_size.std()), 1e-9)
    columns = [z_size, z_size * z_size]  # size drives planned hours and orders: a confounder
    if not known.all():
        columns.append((~known).astype(float))
    return (log_size, reference, np.column_stack(columns)), "fitted"


def _controls(panel: pd.DataFrame) -> FloatArray:
    """The baseline design: period effects, log value (+ square), log frequency, recency and age bins."""
    log_value = np.log(panel["value"].to_numpy(dtype=float))
    log_freq = np.log(panel["frequency"].to_numpy(dtype=float))
    z_value = (log_value - log_value.mean()) / max(float(log_value.std()), 1e-9)
    z_freq = (log_freq - log_freq.mean()) / max(float(log_freq.std()), 1e-9)
    recency = np.digitize(panel["recency_days"].to_numpy(dtype=float), RECENCY_BINS, right=True)
    age = np.digitize(panel["age_days"].to_numpy(dtype=float), AGE_BINS)
    columns = [pd.get_dummies(panel["period"], dtype=float).to_numpy()]
    past = np.log1p(panel["past_hours"].to_numpy(dtype=float))
    z_past = (past - past.mean()) / max(float(past.std()), 1e-9)
    state = np.column_stack([z_value, z_freq, z_past])
    upper = [state[:, a] * state[:, b] for a in range(3) for b in range(a, 3)]
    columns.append(np.column_stack([state, *upper]))
    for b in range(1, len(RECENCY_BINS) + 1):
        flag = (recency == b).astype(float)
        if flag.any():
            columns.append(np.column_stack([flag, flag * z_freq]))
    for b in range(1, len(AGE_BINS) + 1):
        flag = (age == b).astype(float)
        if flag.any():
            columns.append(flag[:, None])
    x = np.hstack(columns)
    keep = np.ptp(x, axis=0) > 0
    keep[: columns[0].shape[1]] = True  # period effects carry the intercept
    return np.ascontiguousarray(x[:, keep])


LOG_SCALE_BOUNDS = (math.log(0.01), math.log(1000.0))
EXPONENT_BOUNDS = (0.0, 1.5)
SIZE_EXPONENT_BOUNDS = (-1.5, 1.5)
UPLIFT_BOUNDS = (0.0, 20.0)
MAX_SCORING_STEPS = 500
"""Most steps of `_fisher_scoring` from one start (tens are usual)."""
SCORING_FTOL = 1e-15
"""A scoring step that lowers the objective by less than this share of it ends the fit: rounding level,
so that rounding in the engine's parallel sums does not move the estimates (a looser stop moved k by
0.3 %)."""
SCORING_FTOL_STUCK = 1e-10
"""When no damped step lowers the objective, the fit counts as converged if the undamped step promised
less than this share of it."""
INITIAL_DAMPING = 1e-3
FISHER_CHUNK_ROWS = 1 << 17
"""Rows per block of the Fisher information's product (a block of 30 columns is 30 MB)."""
MAX_DAMPING = 1e12


def _mean(
    x: FloatArray, hours: FloatArray, z: FloatArray, params: FloatArray, effort: bool
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Expected orders and its pieces: base, u (share served) and du / dlog k.

    ``params`` is the baseline's beta, then uplift, log scale and one exponent per column of `z` (the
    covariates of log k: log relative value, then log relative size).
    """
    p = x.shape[1]
    base = np.exp(np.clip(x @ params[:p], -50, 50))
    if not effort:
        zero = np.zeros_like(base)
        return base, base, zero, zero
    uplift, log_scale, exponents = params[p], params[p + 1], params[p + 2 :]
    ratio = hours * np.exp(-(log_scale + z @ exponents))  # h / k
    decay = np.exp(-ratio)
    u = -np.expm1(-ratio)
    du = -decay * ratio  # d u / d log k
    return base * (1 + uplift * u), base, u, du


def _effort_jacobian_columns(
    base: FloatArray, u: FloatArray, du: FloatArray, uplift: float, z: FloatArray
) -> FloatArray:
    """Derivatives of the mean by uplift, log scale and each exponent, one column each."""
    slope = base * uplift * du
    return np.column_stack([base * u, slope, slope[:, None] * z])


def _maximise(
    x: FloatArray,
    orders: FloatArray,
    hours: FloatArray,
    z: FloatArray,
    *,
    effort: bool,
    start: FloatArray | None = None,
) -> dict[str, Any]:
    """Maximum Poisson likelihood, several starting points; the best optimum with its pieces."""
    p = x.shape[1]
    m = z.shape[1]
    beta0 = np.zeros(p) if start is None else np.asarray(start, dtype=float)
    if start is None:
        beta0 = np.linalg.lstsq(x, np.log(orders + 0.5), rcond=None)[0]

    def parts(params: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        return _poisson_parts(x, orders, hours, z, params, effort)

    def value(params: FloatArray) -> float:
        mu = _mean(x, hours, z, params, effort)[0]
        return -_loglik(orders, mu) / len(orders)

    lower, upper = np.full(p, -np.inf), np.full(p, np.inf)
    starts = [beta0]
    if effort:
        bounds = [UPLIFT_BOUNDS, LOG_SCALE_BOUNDS, EXPONENT_BOUNDS] + [SIZE_EXPONENT_BOUNDS] * (m - 1)
        lower = np.concatenate([lower, [b[0] for b in bounds]])
        upper = np.concatenate([upper, [b[1] for b in bounds]])
        positive = hours[hours > 0]
        typical = float(np.median(positive)) if positive.size else 1.0
        starts = [
            np.concatenate([beta0, [0.3, math.log(typical * f), 0.3], np.full(m - 1, 0.3)])
            for f in (0.25, 1.0, 4.0)
        ]
    best: tuple[FloatArray, float, bool] | None = None
    for s in starts:
        found = _fisher_scoring(parts, value, s, lower, upper)
        if best is None or found[1] < best[1]:
            best = found
    assert best is not None
    params = best[0]
    mu = _mean(x, hours, z, params, effort)[0]
    out: dict[str, Any] = {
        "params": params,
        "beta": params[:p],
        "mu": mu,
        "loglik": _loglik(orders, mu),
        "converged": best[2],
        "n_params": len(params),
    }
    if effort:
        out.update(
            uplift=float(params[p]), log_scale=float(params[p + 1]), exponents=np.asarray(params[p + 2 :])
        )
    return out


def _loglik(orders: FloatArray, mu: FloatArray) -> float:
    """Poisson log-likelihood of `orders` at means `mu`, without the constant log(orders!)."""
    return float(np.sum(orders * np.log(mu) - mu))


def _poisson_parts(
    x: FloatArray, orders: FloatArray, hours: FloatArray, z: FloatArray, params: FloatArray, effort: bool
) -> tuple[float, FloatArray, FloatArray]:
    """Minus the mean Poisson log-likelihood, its gradient and its Fisher information (per row).

    The Fisher information ``J' diag(1 / mu) J / n`` (J: the mean's Jacobian) is the expected Hessian:
    positive semi-definite, and the Hessian itself at the optimum of a well-specified mean.
    """
    p = x.shape[1]
    n = len(orders)
    mu, base, u, du = _mean(x, hours, z, params, effort)
    loglik = _loglik(orders, mu)
    grad = x.T @ (orders - mu)
    root = np.sqrt(mu)
    fisher = np.zeros((p, p))
    for lo in range(0, n, FISHER_CHUNK_ROWS):  # x' diag(mu) x without a copy of x as large as x
        weighted = x[lo : lo + FISHER_CHUNK_ROWS] * root[lo : lo + FISHER_CHUNK_ROWS, None]
        fisher += weighted.T @ weighted
    if effort:
        extra = _effort_jacobian_columns(base, u, du, float(params[p]), z)
        grad = np.concatenate([grad, (orders / mu - 1.0) @ extra])
        cross = x.T @ extra  # (x mu)' (extra / mu)
        corner = extra.T @ (extra / mu[:, None])
        fisher = np.block([[fisher, cross], [cross.T, corner]])
    return -loglik / n, -grad / n, fisher / n


def _fisher_scoring(
    parts: Callable[[FloatArray], tuple[float, FloatArray, FloatArray]],
    value: Callable[[FloatArray], float],
    start: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    *,
    max_iter: int = MAX_SCORING_STEPS,
) -> tuple[FloatArray, float, bool]:
    """Minimise within box bounds by damped Fisher scoring (Levenberg-Marquardt), to rounding level.

    Each step solves ``(F + d diag F) s = -g`` over the parameters not held at a bound, projects onto
    the bounds, and is taken only when the objective falls (otherwise the damping d grows tenfold,
    turning the step towards scaled steepest descent). It stops when a step lowers the objective by
    less than `SCORING_FTOL` of it: Newton's quadratic convergence gets there in tens of steps where
    L-BFGS-B took hundreds on a million rows. Returns the parameters, the objective and whether it
    stopped that way (not by running out of steps or of damping).
    """
    theta = np.clip(np.asarray(start, dtype=float), lower, upper)
    f, g, fisher = parts(theta)
    damping = INITIAL_DAMPING
    for _ in range(max_iter):
        held = ((theta <= lower) & (g > 0)) | ((theta >= upper) & (g < 0))
        free = np.flatnonzero(~held)
        if free.size == 0:
            return theta, f, True
        diag = np.diag(fisher)[free]
        diag = np.maximum(diag, max(float(diag.max()), 1e-300) * 1e-12)
        sub = fisher[np.ix_(free, free)]
        predicted = None
        while True:
            step = np.zeros_like(theta)
            try:
                step[free] = np.linalg.solve(sub + damping * np.diag(diag), -g[free])
            except np.linalg.LinAlgError:
                step[free] = np.linalg.lstsq(sub + damping * np.diag(diag), -g[free], rcond=None)[0]
            if predicted is None:  # the undamped model's decrease: the Newton decrement
                predicted = float(-g @ step - 0.5 * step @ fisher @ step)
            trial = np.clip(theta + step, lower, upper)
            f_trial = value(trial)
            if f_trial < f:
                break
            damping *= 10.0
            if damping > MAX_DAMPING:  # no step lowers it: at the optimum to rounding, or stuck
                return theta, f, predicted <= SCORING_FTOL_STUCK * max(abs(f), 1.0)
        decrease = f - f_trial
        theta = trial
        f, g, fisher = parts(theta)
        damping = max(damping / 10.0, 1e-12)
        if decrease <= SCORING_FTOL * max(abs(f), 1.0):
            return theta, f, True
    return theta, f, False


def _unusable_uplift(uplift: float, se_uplift: float, scale_per_period: float) -> str:
    """Why a fitted uplift cannot be the growth weight (empty when it can).

    At the upper end of `UPLIFT_BOUNDS` the fit has not found where the response levels off: with the
    hours logged far below k, only uplift / k is measured, and the optimizer pushes both to the edge (a
    200-account world: uplift 20 with a standard error of 419, k 529 h per period; the growth stake was
    20 times the clv). A standard error above `MAX_UPLIFT_RELATIVE_SE` times the uplift (or none) means
    the data do not tell it from 0.
    """
    detail = (
        f"uplift {uplift:.3g} (standard error {se_uplift:.3g}) at a scale of {scale_per_period:.3g} h "
        "per period"
    )
    if uplift >= UPLIFT_BOUNDS[1] * (1 - UPLIFT_BOUND_TOLERANCE):
        return (
            f"the fit put the uplift at the top of its range ({UPLIFT_BOUNDS[1]:g}): {detail}; the hours "
            "logged do not show where the response levels off, so the uplift (the growth weight) is not "
            "measured"
        )
    if not se_uplift <= MAX_UPLIFT_RELATIVE_SE * uplift:  # NaN and inf too
        return (
            f"the fitted {detail} is not told apart from 0 by the data, so it cannot serve as the growth "
            "weight"
        )
    return ""


def _scale_at_bound(scale_per_period: float) -> str:
    """Why a fitted scale at the edge of `LOG_SCALE_BOUNDS` cannot be the plan's k.

    There the fit found no k in the data: hours logged a thousand times too small (or too large) put it
    at 0.01 h (or 1,000 h) per period, where the plan took every account as saturated by a minute (or its
    response as a straight line). Used with a warning until the sixty-first session, as the uplift at its
    bound is not (`_unusable_uplift`).
    """
    low, high = (math.exp(b) for b in LOG_SCALE_BOUNDS)
    return (
        f"the fit put the scale at the edge of its range ({low:g} to {high:,.0f} h per period): "
        f"{scale_per_period:.3g} h per period; the hours logged do not show where the response levels off "
        "(are activities.hours in hours?), so k is not measured"
    )


def _uncertainty(se_log_scale: float) -> str:
    """How uncertain k is, in words, from the standard error of its log."""
    if not math.isfinite(se_log_scale) or se_log_scale > math.log(1000.0):
        return "k is not pinned down by the data: the hours logged do not show where the response levels off"
    return f"k uncertain by a factor of {math.exp(se_log_scale):.1f}"


def _robust_se(
    x: FloatArray,
    orders: FloatArray,
    hours: FloatArray,
    z: FloatArray,
    fit: dict[str, Any],
    cluster: np.ndarray,
) -> FloatArray:
    """Cluster-robust (by account) sandwich standard errors of the quasi-likelihood estimates."""
    params = fit["params"]
    p = x.shape[1]
    mu, base, u, du = _mean(x, hours, z, params, True)
    jac = np.column_stack([x * mu[:, None], _effort_jacobian_columns(base, u, du, float(params[p]), z)])
    bread = jac.T @ (jac / mu[:, None])
    score = jac * ((orders - mu) / mu)[:, None]
    _, group = np.unique(cluster, return_inverse=True)
    summed = np.zeros((int(group.max()) + 1, jac.shape[1]))
    np.add.at(summed, group, score)
    meat = summed.T @ summed
    try:
        return _sandwich_se(bread, meat)
    except np.linalg.LinAlgError:
        return np.full(jac.shape[1], np.nan)


def _sandwich_se(bread: FloatArray, meat: FloatArray, tol: float = 1e-10) -> FloatArray:
    """Standard errors of the sandwich ``B^-1 M B^-1``, inf for the parameters the data do not pin down.

    The inverse is taken on `bread` scaled to a unit diagonal, so that a parameter whose Jacobian is
    tiny is not cut off as noise: the pseudo-inverse of the raw matrix gave it a variance of 0. With
    every served account logging hours far beyond k, exp(-h/k) is 0 for all of them, the likelihood
    is flat in k below those hours, and an arbitrary k was reported with a standard error of 1e-13,
    as if measured exactly. A zero Jacobian column, or a direction of the scaled matrix with no
    curvature, leaves its parameters unidentified: inf.
    """
    diag = np.diag(bread)
    se = np.full(len(diag), np.inf)
    kept = np.flatnonzero(diag > 0)
    if kept.size == 0:
        return se
    scale = np.sqrt(diag[kept])
    normalised = bread[np.ix_(kept, kept)] / np.outer(scale, scale)
    u, values, vt = np.linalg.svd(normalised)
    curved = values > tol * float(values[0])  # the pseudo-inverse from this one decomposition
    inv = (vt[curved].T / values[curved]) @ u[:, curved].T / np.outer(scale, scale)
    cov = inv @ meat[np.ix_(kept, kept)] @ inv
    se[kept] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    null = vt[~curved]
    if null.size:
        se[kept[np.abs(null).max(axis=0) > 1e-6]] = np.inf
    return se


# ---------------------------------------------------------------------------------------------- helpers


def _timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    """A timezone-naive timestamp; ConfigError otherwise."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"effort response: cannot read the cutoff {value!r} as a date") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError("effort response: the cutoff is missing")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _plain(value: Any) -> Any:
    """Numpy scalars and containers as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
