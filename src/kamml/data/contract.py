"""The data contract (DESIGN §2): the four input tables, their columns and the kind of each column.

The contract is data, not code: `TABLES` maps a table name to a `TableSpec`, and the validator derives
every rule from the column kinds. Column names are kamml's; `column_mapping` translates them to the
names in the user's data through ``data.columns`` in the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kamml.errors import ConfigError

__all__ = ["TABLES", "ColumnSpec", "Kind", "TableSpec", "column_mapping"]


class Kind(StrEnum):
    """What a column holds; decides how it is parsed and which rules it must follow."""

    ID = "id"
    TIMESTAMP = "timestamp"
    FLOAT = "float"
    STRING = "string"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract.

    Attributes
    ----------
    name : str
        kamml's name for the column.
    kind : Kind
        How the column is parsed and checked.
    required : bool
        A table without this column breaks the contract.
    nullable : bool
        Whether missing values are allowed (ids of accounts never are; an optional column may be).
    key : bool
        An account key: it is joined across tables, so all keys share one type (int64 or string).
    description : str
        What the column means, for messages and docs.
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    key: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its columns and whether other columns are kept.

    Attributes
    ----------
    name : str
        Table name, also the file stem looked for in a data folder.
    columns : tuple of ColumnSpec
        The known columns, required first.
    required : bool
        Whether the table must be given (only transactions).
    keep_extra : bool
        Keep columns the contract does not name (static account attributes).
    description : str
        What one row means.
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    required: bool = False
    keep_extra: bool = False
    description: str = ""

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Names of the columns a table must have."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional_columns(self) -> tuple[str, ...]:
        """Names of the known columns a table may have."""
        return tuple(c.name for c in self.columns if not c.required)

    def column(self, name: str) -> ColumnSpec | None:
        """The spec of column `name`, or None when the contract does not name it."""
        return next((c for c in self.columns if c.name == name), None)


_ACCOUNT = ColumnSpec("account_id", Kind.ID, key=True, description="the account")

TABLES: dict[str, TableSpec] = {
    "transactions": TableSpec(
        "transactions",
        (
            _ACCOUNT,
            ColumnSpec("ts", Kind.TIMESTAMP, description="when the transaction happened"),
            ColumnSpec("amount", Kind.FLOAT, description="value; below 0 is a refund or credit"),
            ColumnSpec(
                "quantity",
                Kind.FLOAT,
                required=False,
                nullable=True,
                description="units; when absent 1, 0 on a refund row",
            ),
            ColumnSpec("product", Kind.STRING, required=False, nullable=True, description="product or SKU"),
            ColumnSpec(
                "transaction_id",
                Kind.ID,
                required=False,
                nullable=True,
                description="a row repeating another in every column is dropped; lines sharing an id kept",
            ),
        ),
        required=True,
        description="one row per purchase, refund or credit",
    ),
    "accounts": TableSpec(
        "accounts",
        (
            _ACCOUNT,
            ColumnSpec(
                "created_at", Kind.TIMESTAMP, required=False, nullable=True, description="account opened"
            ),
            ColumnSpec("owner", Kind.STRING, required=False, nullable=True, description="the sales rep"),
            ColumnSpec(
                "contract_end",
                Kind.TIMESTAMP,
                required=False,
                nullable=True,
                description="end of the account's contract as last known (a renewal moves it later); "
                "feeds the non-renewal churn label, never a feature",
            ),
        ),
        keep_extra=True,
        description="one row per account with its static attributes (segment, industry, size, ...)",
    ),
    "referrals": TableSpec(
        "referrals",
        (
            ColumnSpec("referrer_id", Kind.ID, key=True, description="the account that referred"),
            ColumnSpec("referred_id", Kind.ID, key=True, description="the account brought in"),
            ColumnSpec("ts", Kind.TIMESTAMP, description="when the referral happened"),
        ),
        description="who brought in whom",
    ),
    "activities": TableSpec(
        "activities",
        (
            _ACCOUNT,
            ColumnSpec("ts", Kind.TIMESTAMP, description="when the effort was spent"),
            ColumnSpec("hours", Kind.FLOAT, description="sales hours spent, 0 or more"),
            ColumnSpec("kind", Kind.STRING, required=False, nullable=True, description="call, visit, ..."),
        ),
        description="past sales effort per account",
    ),
}


def column_mapping(table: str, columns: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map kamml's column names of `table` to the user's names (identity unless the config says so).

    Parameters
    ----------
    table : str
        One of `TABLES`.
    columns : mapping of str to str, optional
        The config's ``data.columns.<table>``: kamml name -> the user's column name. For accounts any
        attribute name may be mapped; for the other tables only the contract's columns.

    Returns
    -------
    dict of str to str
        kamml name -> user's name, for every contract column and every mapped attribute.

    Raises
    ------
    ConfigError
        A mapped name the contract does not know, or two kamml columns mapped to one user column.
    """
    spec = TABLES[table]
    columns = dict(columns or {})
    known = [c.name for c in spec.columns]
    unknown = sorted(k for k in columns if k not in known)
    if unknown and not spec.keep_extra:
        raise ConfigError(
            f"data.columns.{table}: unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid columns here: {', '.join(known)}"
            + _reversed_hint(columns, known)
        )
    mapping = {name: name for name in known}
    mapping.update({k: str(v) for k, v in columns.items()})
    targets: dict[str, list[str]] = {}
    for kamml_name, user_name in mapping.items():
        targets.setdefault(user_name.strip().lower(), []).append(kamml_name)
    clashes = {u: ks for u, ks in targets.items() if len(ks) > 1 and any(k in columns for k in ks)}
    if clashes:
        user, names = next(iter(clashes.items()))
        raise ConfigError(
            f"data.columns.{table}: column '{user}' is mapped to more than one of {names}"
            + _reversed_hint(columns, known)
        )
    return mapping


def _reversed_hint(columns: Mapping[str, object], known: Sequence[str]) -> str:
    """Advice for mapping entries written the wrong way round (your column: kamml's name), else ''.

    An entry is taken as reversed when its key is no contract column and its value is one, as a newcomer
    writes `{customer: account_id}` for `{account_id: customer}`.
    """
    lowered = {name.lower(): name for name in known}
    flipped: dict[str, list[str]] = {}  # kamml's name -> the user's columns written as mapped to it
    for k, v in columns.items():
        if k not in known and str(v).strip().lower() in lowered:
            flipped.setdefault(lowered[str(v).strip().lower()], []).append(k)
    if not flipped:
        return ""
    pairs = ", ".join(f"{name}: {users[0]}" for name, users in flipped.items())
    several = [f"{name} takes one of {', '.join(users)}" for name, users in flipped.items() if len(users) > 1]
    return f"; the mapping reads kamml's name: your column, so write {{{pairs}}}" + "".join(
        f" ({note})" for note in several
    )
