"""The data-quality summary: soft problems that do not stop the work, and what each table holds.

Hard problems raise `SchemaError`; soft ones (refunds, zero amounts, duplicate transaction ids, accounts
without transactions, references to unknown accounts) are counted here with a few examples, so that a
person can judge the data before trusting the predictions. The relational checks run as anti-joins on the
backend; only counts and at most five example ids come back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from kamml.data.contract import TABLES
from kamml.data.readers import is_attribute_type
from kamml.errors import Problem
from kamml.io import NUMBER_PATTERN
from kamml.text import counted

__all__ = [
    "QualityReport",
    "TableStats",
    "after_end_notes",
    "amount_notes",
    "attribute_notes",
    "gap_notes",
    "hours_notes",
    "relationship_notes",
    "spelling_notes",
]

log = logging.getLogger(__name__)

N_EXAMPLES = 5

#: Activities whose median lasts longer than this (hours) get a note: logged in minutes?
LONG_ACTIVITY_HOURS = 8.0
#: Days from the last activity to the last transaction from which the activities are noted as ending
#: early (a quarter, the effort response's planning period).
STALE_ACTIVITY_DAYS = 92

#: A stretch without any transaction at least this long (days) gets a note ...
GAP_DAYS = 60
#: ... when it is also this many times the usual spacing of the days that have transactions.
GAP_RATIO = 10
#: At most this many transaction days after the last gap: the data end is set by a few stray rows
#: (one row dated nine months late made every account read as dormant: mean p_churn 0.27 -> 0.89).
STRAY_END_DAYS = 3


#: A transaction whose |amount| is more than this many times the 99th percentile of the non-zero
#: |amount|s gets a note: a mis-keyed amount (cents as units, a stray digit) or a real outlier.
EXTREME_AMOUNT_RATIO = 100


@dataclass(frozen=True)
class TableStats:
    """What one input table holds.

    Attributes
    ----------
    name : str
        Table name.
    origin : str
        Where it was read from (a path, "DataFrame", "Ibis table").
    rows : int
        Rows as given (before duplicate transactions are dropped).
    accounts : int or None
        Distinct accounts (account ids; referrers for referrals), None when the table has no such key.
    first, last : pandas.Timestamp or None
        Earliest and latest timestamp (``ts``, or ``created_at`` for accounts).
    columns : tuple of str
        Columns of the validated table.
    """

    name: str
    origin: str
    rows: int
    accounts: int | None = None
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "origin": self.origin,
            "rows": self.rows,
            "accounts": self.accounts,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "columns": list(self.columns),
        }


@dataclass
class QualityReport:
    """The data-quality summary of a validated dataset (see `kamml.data.validate`).

    Attributes
    ----------
    tables : dict of str to TableStats
        One entry per table that was given.
    notes : list of Problem
        Soft problems: counted and shown, never raised.
    end : pandas.Timestamp
        Exclusive end of observed time.
    end_source : str
        How `end` was found ("config data.end" or "last transaction").

    Examples
    --------
    >>> import pandas as pd
    >>> from kamml.data import validate
    >>> tx = pd.DataFrame({"account_id": [1, 1], "ts": ["2024-01-02", "2024-02-03"], "amount": [10.0, -2.0]})
    >>> report = validate({"transactions": tx})
    >>> report.count("refunds")
    1
    """

    tables: dict[str, TableStats]
    notes: list[Problem] = field(default_factory=list)
    end: pd.Timestamp | None = None
    end_source: str = ""

    def count(self, rule_start: str, table: str | None = None) -> int:
        """Rows counted by the notes whose rule starts with `rule_start` (optionally in one table)."""
        return sum(
            n.n_rows
            for n in self.notes
            if n.rule.startswith(rule_start) and (table is None or n.table == table)
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return {
            "status": "ok",
            "end": None if self.end is None else self.end.isoformat(),
            "end_source": self.end_source,
            "tables": {name: stats.to_dict() for name, stats in self.tables.items()},
            "notes": [
                {
                    "table": n.table,
                    "column": n.column,
                    "rule": n.rule,
                    "rows": n.n_rows,
                    "examples": [_jsonable(v) for v in n.examples],
                }
                for n in self.notes
            ],
        }

    def to_text(self) -> str:
        """A summary a person reads at a glance: tables, observed time, then each soft problem."""
        lines = [f"Data check passed: no errors, {counted(len(self.notes), 'data-quality note')}."]
        if self.end is not None:
            last_day = (self.end - pd.Timedelta(days=1)).date()
            lines.append(f"Observed time ends {last_day} (inclusive; from {self.end_source}).")
        lines.append("")
        lines.append("Tables")
        width = max((len(n) for n in self.tables), default=5)
        for name in ("transactions", "accounts", "referrals", "activities"):
            stats = self.tables.get(name)
            if stats is None:
                lines.append(f"  {name:<{width}}  not given")
                continue
            parts = [f"{stats.rows:>12,} {'row ' if stats.rows == 1 else 'rows'}"]  # aligned either way
            if stats.accounts is not None:
                parts.append(f"{stats.accounts:>10,} {'account ' if stats.accounts == 1 else 'accounts'}")
            if stats.first is not None and stats.last is not None:
                parts.append(f"{stats.first.date()} .. {stats.last.date()}")
            lines.append(f"  {name:<{width}}  " + "   ".join(parts) + f"   [{stats.origin}]")
        lines.append("")
        if self.notes:
            lines.append("Data-quality notes (not errors; the data was accepted)")
            lines.extend(f"  - {note}" for note in self.notes)
        else:
            lines.append("No data-quality notes.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return str(value)
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def plain_examples(values: Iterable[Any]) -> tuple[Any, ...]:
    """Example values as plain Python scalars (timestamps as ISO text, bytes kept), at most five."""
    out: list[Any] = []
    for v in values:
        if v is None or v is pd.NA or v is pd.NaT:
            out.append(None)
        elif isinstance(v, float | np.floating) and v != v:  # a NaN value, not a missing one
            out.append("NaN")
        elif isinstance(v, dt.datetime | dt.date):
            out.append(pd.Timestamp(v).isoformat(sep=" "))
        elif isinstance(v, bytes):  # b'zo\xeb' as the scores' check shows it, not the text "b'zo\\xeb'"
            out.append(v)
        else:
            out.append(_jsonable(v))
        if len(out) == N_EXAMPLES:
            break
    return tuple(out)


def _union_all(parts: list[ir.Table]) -> ir.Table:
    """The rows of every table in `parts` (at least one), duplicates kept."""
    return parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]


def relationship_notes(
    transactions: ir.Table,
    accounts: ir.Table | None,
    referrals: ir.Table | None,
    activities: ir.Table | None,
) -> list[Problem]:
    """Soft problems between tables, found by anti-joins on the backend: one query of counts, one of examples.

    Accounts without transactions, transactions of accounts missing from the accounts table, accounts
    created after the day of their first transaction, referrals to or from unknown accounts, referrals of
    accounts that bought before the referral's day and referrals made before the referrer was an account
    (its first purchase day or created_at; a pair at its first date), activities of unknown accounts. An
    account is known when it has transactions or a row in the accounts table. Up to five example ids per
    check that found rows come in a second query (none when every check passes).

    Parameters
    ----------
    transactions, accounts, referrals, activities : ibis Table or None
        Validated tables with canonical column names and one shared id type.

    Returns
    -------
    list of Problem
        One note per check that found rows.
    """
    if accounts is None and referrals is None and activities is None:
        return []  # nothing to relate the transactions to (the group-by below took 7 s on 100M rows)
    # rows per account, once: the account ids with transactions, and the weight that turns a count of
    # accounts into a count of transaction rows without probing every row against the accounts table.
    # Cached on the backend: the examples query needs it again (on a million accounts with 22M
    # transactions, the two queries took 3.7 s when each grouped the transactions).
    per_account = transactions.group_by("account_id").aggregate(
        _rows=transactions.count(), _first=transactions.ts.min()
    )
    with per_account.cache() as tx_counts:
        return _relationship_notes(tx_counts, accounts, referrals, activities)


def _relationship_notes(
    tx_counts: ir.Table,
    accounts: ir.Table | None,
    referrals: ir.Table | None,
    activities: ir.Table | None,
) -> list[Problem]:
    """`relationship_notes` given the transactions' rows per account (account_id, _rows)."""
    tx_ids = tx_counts.select("account_id")
    known = tx_ids
    # (table, column, rule, rows that break it, column weighting each row or None)
    checks: list[tuple[str, str, str, ir.Table, str | None]] = []
    if accounts is not None:
        acc_ids = accounts.select("account_id").distinct()
        known = tx_ids.union(acc_ids, distinct=True)
        checks.append(
            (
                "accounts",
                "account_id",
                "accounts without transactions (kept: they score as new accounts from their created_at; "
                "one without created_at is left out until its first transaction)",
                acc_ids.anti_join(tx_ids, "account_id"),
                None,
            )
        )
        checks.append(
            (
                "transactions",
                "account_id",
                "transactions of accounts missing from the accounts table (kept; attributes unknown)",
                tx_counts.anti_join(acc_ids, "account_id"),
                "_rows",
            )
        )
        if acc_ids.account_id.type().is_string():  # ids as text: 001 and 1 are two accounts
            orphans = acc_ids.anti_join(tx_ids, "account_id")
            strays = tx_ids.anti_join(acc_ids, "account_id")
            keys = strays.select(_key=_id_spelling(strays.account_id)).distinct()
            checks.append(
                (
                    "accounts",
                    "account_id",
                    "ids written two ways: accounts without transactions whose id, without leading zeros "
                    "or a trailing .0, is that of transactions missing from the accounts table (kept apart: "
                    "each is two accounts, one with the attributes, one with the purchases); write the ids "
                    "alike in both tables",
                    orphans.mutate(_key=_id_spelling(orphans.account_id)).semi_join(keys, "_key"),
                    None,
                )
            )
        if "created_at" in accounts.columns:
            dated = accounts.select("account_id", "created_at").join(tx_counts, "account_id")
            checks.append(
                (
                    "accounts",
                    "account_id",
                    "created_at after the day of the account's first transaction (kept: its age and "
                    "attributes are unknown at every cutoff before created_at, while its purchases count; a "
                    "CRM migration's day? leave created_at empty on such rows)",
                    dated.filter(dated.created_at.date() > dated._first.date()),
                    None,
                )
            )
    if referrals is not None:
        pairs = referrals.group_by(["referrer_id", "referred_id"]).aggregate(_extra=referrals.count() - 1)
        checks.append(
            (
                "referrals",
                "referrer_id",
                "referrals repeating a referrer-referred pair (counted once, at its first date)",
                pairs.filter(pairs._extra > 0),
                "_extra",
            )
        )
        first = referrals.group_by(["referrer_id", "referred_id"]).aggregate(ts=referrals.ts.min())
        bought = first.join(tx_counts, first.referred_id == tx_counts.account_id)
        checks.append(
            (
                "referrals",
                "referred_id",
                "referrals of accounts that bought before the referral's day (kept: an existing customer "
                "referred? only its spend after the referral counts, in the referrer's referred_spend "
                "feature and in the referral label)",
                bought.filter(bought._first.date() < bought.ts.date()),
                None,
            )
        )
        checks.append(
            (
                "referrals",
                "referrer_id",
                "referrals made before the referrer was an account: before its first purchase day and "
                "its accounts row's created_at, or by an account with neither (kept: a lead or partner "
                "who referred, or a referral dated wrong? the referrer's referral features, such as "
                "referrals_made, count it from the first cutoff after one of them; no referral label does, "
                "as the referrer is in no snapshot whose window holds the referral)",
                _before_referrer(first, tx_counts, known, accounts),
                None,
            )
        )
        for column, who in (("referrer_id", "from"), ("referred_id", "to")):
            ids = known.select(**{column: known.account_id})
            checks.append(
                (
                    "referrals",
                    column,
                    f"referrals {who} unknown accounts (no transactions, not in the accounts table)",
                    referrals.anti_join(ids, column),
                    None,
                )
            )
    if activities is not None:
        checks.append(
            (
                "activities",
                "account_id",
                "activities of unknown accounts (no transactions, not in the accounts table)",
                activities.anti_join(known, "account_id"),
                None,
            )
        )
    if not checks:
        return []
    # first one query of every check's count, so the engine computes the shared parts (rows per account,
    # known ids) once; then, only for the checks that found rows, one query of up to five example ids each
    # (the anti-joins of large tables, activities above all, are not run twice when nothing is wrong)
    id_type = tx_counts.account_id.type()
    counted = []
    for i, (_, _, _, rows, weight) in enumerate(checks):
        n = rows.count() if weight is None else rows[weight].sum().fill_null(0)
        counted.append(rows.aggregate(check=ibis.literal(i, type="int64"), n=n.cast("int64")))
    found = _union_all(counted).to_pyarrow().to_pydict()
    counts = {int(c): int(n) for c, n in zip(found["check"], found["n"], strict=True) if n}
    examples: dict[int, list[Any]] = {}
    samples = []
    for i in sorted(counts):
        column, rows = checks[i][1], checks[i][3]
        ids = rows.select(id=rows[column].cast(id_type)).distinct()
        sample = ids.order_by("id").limit(N_EXAMPLES)  # the smallest: the same note from run to run
        samples.append(sample.select(check=ibis.literal(i, type="int64"), id=sample.id))
    if samples:
        found = _union_all(samples).to_pyarrow().to_pydict()
        for check, value in zip(found["check"], found["id"], strict=True):
            examples.setdefault(int(check), []).append(value)
    return [
        Problem(table, column, rule, counts[i], plain_examples(sorted(examples.get(i, []), key=_id_order)))
        for i, (table, column, rule, _, _) in enumerate(checks)
        if i in counts
    ]


def _before_referrer(
    first: ir.Table, tx_counts: ir.Table, known: ir.Table, accounts: ir.Table | None
) -> ir.Table:
    """Referral pairs (at their first date) by a known account that was no account yet on that day.

    An account is one from the day of its first transaction or of its accounts row's created_at, as the
    features' accounts at a cutoff (`kamml.features.build.account_base`); the same day is not noted.
    """
    since = [tx_counts.select("account_id", _since=tx_counts._first.date())]
    if accounts is not None and "created_at" in accounts.columns:
        dated = accounts.filter(accounts.created_at.notnull())
        since.append(dated.select("account_id", _since=dated.created_at.date()))
    every = _union_all(since)
    days = every.group_by("account_id").aggregate(_since=every._since.min())
    pairs = first.semi_join(known, first.referrer_id == known.account_id)
    pairs = pairs.left_join(days, pairs.referrer_id == days.account_id)
    return pairs.filter(pairs._since.isnull() | (pairs._since > pairs.ts.date()))


def spelling_notes(transactions: ir.Table, accounts: ir.Table | None) -> list[Problem]:
    """A note per table of text ids some of which differ only by leading zeros or a trailing .0.

    Two exports joined, one writing 00117 and the other 117, read as two accounts, each with part of the
    purchases, without a word (the note between the tables covers only ids each table writes one way).
    """
    notes = []
    for name, table in (("transactions", transactions), ("accounts", accounts)):
        if table is None or not table.account_id.type().is_string():
            continue  # whole-number ids have one spelling
        ids = table.select("account_id").distinct()
        keyed = ids.mutate(_key=_id_spelling(ids.account_id))
        spellings = keyed.group_by("_key").aggregate(_n=keyed.count())
        shared = spellings.filter(spellings._n > 1)
        n = int(shared.aggregate(n=shared._n.sum().fill_null(0)).to_pyarrow().to_pylist()[0]["n"])
        if not n:
            continue
        split = keyed.semi_join(shared, "_key").order_by(["_key", "account_id"]).limit(N_EXAMPLES)
        rule = (
            "ids written two ways in one table: ids that differ only by leading zeros or a trailing .0 "
            "(00117 and 117) are read as different accounts, each with part of the rows; write the ids "
            "alike (joined exports of two systems?)"
        )
        notes.append(
            Problem(name, "account_id", rule, n, plain_examples(split.to_pyarrow()["account_id"].to_pylist()))
        )
    return notes


def _id_spelling(ids: ir.StringValue) -> ir.StringValue:
    """An id text without leading zeros or a trailing ".0": 000123, 123.0 and 123 alike (0 stays 0)."""
    bare = ids.strip().re_replace(r"\.0+$", "").re_replace(r"^0+", "")
    return ibis.ifelse(bare == "", "0", bare)


def _id_order(value: Any) -> tuple[int, Any]:
    """Ids in their own order, numbers by value (10 after 9, not after 1), text after numbers."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def gap_notes(transactions: ir.Table) -> list[Problem]:
    """A note for each stretch of `GAP_DAYS` or more without any transaction of any account.

    A gap in an export (months missing) reads to the features and labels as months in which nobody
    bought: values and churn move with it and nothing else says why. A seasonal pause looks the same,
    so this is a note, not an error. One query of the distinct transaction days.
    """
    days = transactions.select(day=transactions.ts.date()).distinct().to_pyarrow().column("day")
    # whole days as ordinals: nanoseconds wrapped around for a gap of over 292 years (a 1700 placeholder)
    stamps = sorted(days.to_pylist())
    if len(stamps) < 3:
        return []
    spacing = np.diff(np.array([d.toordinal() for d in stamps], dtype=np.int64)).astype(float)
    usual = float(pd.Series(spacing).median())
    # the days between two transaction days (days 1 and 61 have 59 between them, not 60)
    long = (spacing - 1 >= GAP_DAYS) & (spacing >= GAP_RATIO * usual)
    if not long.any():
        return []
    one = dt.timedelta(days=1)
    spans = [f"{stamps[i] + one} to {stamps[i + 1] - one}" for i in long.nonzero()[0]]
    more = len(spans) - N_EXAMPLES
    shown = ", ".join(spans[:N_EXAMPLES]) + (f" and {more} more" if more > 0 else "")
    rule = (
        f"no transaction of any account from {shown} (transactions every {usual:g} "
        f"{'day' if usual == 1 else 'days'} otherwise): a "
        "gap in the export, or a seasonal pause? The features and labels read it as a time nobody bought"
    )
    after = len(stamps) - 1 - int(long.nonzero()[0][-1])  # transaction days after the last gap
    if after <= STRAY_END_DAYS:
        first = stamps[-after]
        stray = (
            f"only {counted(after, 'day')} of transactions {'follows' if after == 1 else 'follow'} the "
            f"last gap (from {first}): rows with a wrong "
            "date? The data end, the default scoring cutoff, is after them, so every account reads as "
            "dormant since the gap: fix their dates, or set data.end (or --cutoff) before the gap"
        )
        rule += "; " + stray
        log.warning("transactions.ts: %s", stray)
    return [Problem("transactions", "ts", rule, 0, tuple(spans[:N_EXAMPLES]))]


def amount_notes(transactions: ir.Table) -> list[Problem]:
    """A note for transactions whose |amount| is over `EXTREME_AMOUNT_RATIO` x the 99th percentile.

    One mis-keyed amount (5e7 among amounts of hundreds) is read by every model as the account's spend:
    that account's value went up 1,500-fold and, through the value level fitted on the latest snapshot,
    every other account's moved by a quarter, with no word. A real outlier looks the same, so this is a
    note naming the accounts, not an error. Queries: the percentile, then the rows above the bar. The
    percentile is exact on DuckDB and approximate on Spark (whose exact percentile holds every value in
    one task's memory), so on Spark the bar can differ in its last digits. Where it is exact, two cheaper
    passes first rule the note out when they can (`_below_any_bar`; the exact percentile took 3.9 s of
    100M rows' validation), and the percentile is computed only otherwise.
    """
    size = transactions.amount.abs()
    nonzero = transactions.filter(transactions.amount != 0).amount.abs()
    exact = transactions.get_backend().name != "pyspark"
    if exact and _below_any_bar(transactions):
        return []
    q = nonzero.quantile(0.99) if exact else nonzero.approx_quantile(0.99)
    q99 = q.as_table().to_pyarrow().column(0)[0].as_py()
    if q99 is None or not q99 > 0:
        return []
    bar = EXTREME_AMOUNT_RATIO * float(q99)
    found = transactions.filter(size > bar)
    n = int(found.count().to_pyarrow().as_py())
    if not n:
        return []
    top = found.order_by(found.amount.abs().desc()).limit(N_EXAMPLES).select("account_id", "amount")
    examples = tuple(f"{r['amount']:,.6g} (account {r['account_id']})" for r in top.to_pyarrow().to_pylist())
    rule = (
        f"extreme amounts (|amount| over {EXTREME_AMOUNT_RATIO} x the 99th percentile, {float(q99):,.6g}): "
        "mis-keyed, or real? Each counts in full as its account's spend, in the features and value labels, "
        "and moves every account's predicted value through the fitted value level"
    )
    return [Problem("transactions", "amount", rule, n, examples)]


def _below_any_bar(transactions: ir.Table) -> bool:
    """Whether no |amount| can exceed `EXTREME_AMOUNT_RATIO` x the exact 99th percentile of the nonzero ones.

    Two simple passes (count and maximum, then a count) instead of the percentile's sort. DuckDB's
    ``quantile_cont(x, 0.99)`` over n values lies between the sorted values at positions floor(0.99 (n-1))
    and the next; if at least n - floor(0.99 (n-1)) + 1 values (one spare for the position's rounding)
    times the ratio reach the largest value (with a 1e-9 margin for the interpolation's rounding), both
    those values do, so the bar is at least the largest |amount| and no row is above it.
    """
    sizes = transactions.filter(transactions.amount != 0).select(size=transactions.amount.abs())
    stats = sizes.aggregate(n=sizes.count(), top=sizes.size.max()).to_pyarrow().to_pylist()[0]
    n, top = int(stats["n"]), stats["top"]
    if n == 0 or top is None:
        return True
    reach = float(top) * (1 + 1e-9)
    high = int(sizes.filter(sizes.size * EXTREME_AMOUNT_RATIO >= reach).count().to_pyarrow().as_py())
    return high >= n - (99 * (n - 1)) // 100 + 1


def hours_notes(activities: ir.Table | None, last_transaction: pd.Timestamp | None = None) -> list[Problem]:
    """Notes on activities: the median one lasts over a working day, or they end long before the sales.

    One when the median activity lasts more than a working day (hours logged in minutes), and one when
    the activities end `STALE_ACTIVITY_DAYS` or more before `last_transaction`. The effort response
    reads ``hours`` as hours; minutes made the fitted effort scale 60 times too large (306 h against
    5 h) and the plan spread the team over a few accounts, with no word. An export of the activities
    that stops early reads as months in which no account got an hour.
    """
    if activities is None:
        return []
    found = activities.aggregate(
        median=activities.hours.approx_median(), n=activities.count(), last=activities.ts.max()
    )
    row = found.to_pyarrow().to_pylist()[0]
    notes = []
    median = row["median"]
    if median is not None and median > LONG_ACTIVITY_HOURS:
        rule = (
            f"the median activity lasts {median:g} hours (more than a working day): are the hours logged "
            "in minutes? The effort response reads them as hours"
        )
        notes.append(Problem("activities", "hours", rule, int(row["n"])))
    if row["last"] is not None and last_transaction is not None:
        last = pd.Timestamp(row["last"]).normalize()
        days = (pd.Timestamp(last_transaction).normalize() - last).days
        if days >= STALE_ACTIVITY_DAYS:
            rule = (
                f"the last activity is on {last.date()}, {days} days before the last transaction "
                f"({pd.Timestamp(last_transaction).date()}): is the export complete? The effort features "
                "read the time after it as without sales hours (the effort response leaves its periods out)"
            )
            notes.append(Problem("activities", "ts", rule))
    return notes


#: Share of an accounts text column's values that must read as numbers for the others to be noted.
MOSTLY_NUMBERS = 0.9

#: Number text with a comma, as a decimal comma ("12,5", "1.234,56") or a thousands separator ("1,200").
COMMA_NUMBER_PATTERN = r"^\s*[+-]?[0-9][0-9.]*,[0-9.,]*[0-9]\s*$"

#: Number text with a currency sign before or after it ("$1200", "-$3", "12,50 €", "£12.50").
MONEY_NUMBER_PATTERN = r"^\s*[+-]?\s*[$€£¥]\s*[0-9][0-9.,]*\s*$|^\s*[+-]?[0-9][0-9.,]*\s*[$€£¥]\s*$"

#: Text columns of the accounts table that are not attributes (ids and rep names are text by nature).
_NOT_ATTRIBUTES = ("account_id", "owner")


def attribute_notes(accounts: ir.Table | None) -> list[Problem]:
    """A note per accounts column of a type no feature reads, and per text column of nearly all numbers.

    In the text ones the values that are no numbers are named: one 'n/a' among a column of sizes made
    the whole column text, so the models took account size as a category, and a model trained on numbers
    stopped at scoring; validation said nothing.
    """
    if accounts is None:
        return []
    notes = _unused_type_notes(accounts)
    text = [n for n, t in accounts.schema().items() if t.is_string() and n not in _NOT_ATTRIBUTES]
    if not text:
        return notes
    counts: dict[str, ir.Value] = {}
    for i, name in enumerate(text):
        value = accounts[name]
        counts[f"n_{i}"] = value.count()
        counts[f"num_{i}"] = value.re_search(NUMBER_PATTERN).cast("int64").sum()  # alike on every engine
        counts[f"comma_{i}"] = value.re_search(COMMA_NUMBER_PATTERN).cast("int64").sum()
        counts[f"money_{i}"] = value.re_search(MONEY_NUMBER_PATTERN).cast("int64").sum()
    row = accounts.aggregate(**counts).to_pyarrow().to_pylist()[0]
    for i, name in enumerate(text):
        n, numbers = int(row[f"n_{i}"] or 0), int(row[f"num_{i}"] or 0)
        commas, money = int(row[f"comma_{i}"] or 0), int(row[f"money_{i}"] or 0)
        if not (numbers < n and numbers + commas + money >= MOSTLY_NUMBERS * n):
            continue
        value = accounts[name]
        other = accounts.filter(value.notnull() & ~value.re_search(NUMBER_PATTERN))
        examples = other.select(value).distinct().order_by(name).limit(5).to_pyarrow()[name].to_pylist()
        rule = (
            f"mostly numbers ({numbers:,} of {n:,} values), but not these: the column is read as text, so "
            "the models take it as a category, not a number"
        )
        if commas:  # a semicolon export's "12,5": no value was a number, so nothing was said
            rule = (
                f"numbers written with a comma ({commas:,} of {n:,} values; a decimal comma or a thousands "
                "separator), which kamml does not read: the column is read as text, so the models take it "
                "as a category, not a number; write them with a decimal point and no separators"
            )
        if money:  # an export's revenue "$1200": a category of as many levels as accounts, unsaid
            rule = (
                f"numbers written with a currency sign ({money:,} of {n:,} values), which kamml does not "
                "read: the column is read as text, so the models take it as a category, not a number; write "
                "them without currency signs, with a decimal point and no separators"
            )
        notes.append(Problem("accounts", name, rule, n - numbers, plain_examples(examples)))
    return notes


def _unused_type_notes(accounts: ir.Table) -> list[Problem]:
    """A note per accounts attribute of a type no feature reads (a list, struct, map, bytes, a date).

    Such a column passed validation and was then left out of the features without a word.
    """
    own = {c.name for c in TABLES["accounts"].columns}
    return [
        Problem(
            "accounts",
            name,
            f"of type {dtype}: not used by any feature (account attributes are numbers, yes/no or text; "
            "turn it into one before loading, a date into the days from a fixed day, say)",
        )
        for name, dtype in accounts.schema().items()
        if name not in own and not is_attribute_type(dtype)
    ]


def after_end_notes(tables: Mapping[str, ir.Table | None], end: pd.Timestamp) -> list[Problem]:
    """A note per referrals or activities table with rows on or after `end`, the last transaction's next day.

    With ``data.end`` in the config such rows are errors; with the end taken from the transactions
    they were kept without a word, though no feature or label reads them.
    """
    notes = []
    last = (end - pd.Timedelta(days=1)).date()
    for name in ("referrals", "activities"):
        table = tables.get(name)
        if table is None:
            continue
        later = table.filter(table.ts >= ibis.literal(end.to_pydatetime()))
        found = later.aggregate(n=later.count(), first=later.ts.min()).to_pyarrow().to_pylist()[0]
        if found["n"]:
            rule = (
                f"after the last transaction's day ({last}, the data end without data.end): not used by "
                "any feature or label; set data.end if the transactions stop early"
            )
            notes.append(Problem(name, "ts", rule, int(found["n"]), plain_examples([found["first"]])))
    return notes
