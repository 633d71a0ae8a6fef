"""Named exceptions of kamml, in one place so callers can catch exactly what they mean.

Every error kamml raises on purpose derives from `KammlError`; the CLI turns these into a one-line
reason on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kamml.text import counted

__all__ = [
    "ConfigError",
    "DataError",
    "EngineError",
    "FeatureMismatchError",
    "InfeasibleError",
    "KammlError",
    "ModelError",
    "Problem",
    "SchemaError",
    "TrackingStoreError",
    "exception_chain",
]


class KammlError(Exception):
    """Base class of every error kamml raises on purpose."""

    exit_code: int = 1


class ConfigError(KammlError, ValueError):
    """A configuration file or option is wrong: unknown key, wrong type, impossible value."""

    exit_code = 2


class DataError(KammlError):
    """Input data cannot be read at all (missing file, empty file, unknown format)."""

    exit_code = 3


@dataclass(frozen=True)
class Problem:
    """One broken rule in one column of one table, with how many rows break it and a few examples."""

    table: str
    column: str | None
    rule: str
    n_rows: int = 0
    examples: Sequence[Any] = field(default_factory=tuple)

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        text = f"{where}: {self.rule}"
        if self.n_rows:
            text += f" ({counted(self.n_rows, 'row')}"
            if self.examples:
                shown = ", ".join(_example(v) for v in list(self.examples)[:5])
                text += f"; e.g. {shown}"
            text += ")"
        return text


def _example(value: Any) -> str:
    """An example as a message shows it: repr, a fraction to ten significant digits (not 17).

    A Decimal is shown as its number (2.5, as a float is), not ``Decimal('2.5')``.
    """
    plain = _plain(value)
    if isinstance(plain, Decimal):
        return str(plain)
    if isinstance(plain, float) and math.isfinite(plain) and not plain.is_integer():
        return f"{plain:.10g}"
    return repr(plain)


def _plain(value: Any) -> Any:
    """Numpy and pandas scalars repr as plain Python values in messages."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


class SchemaError(KammlError, ValueError):
    """Input tables break the data contract; carries one `Problem` per broken rule."""

    exit_code = 3

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(table="input", column=None, rule=problems)]
        self.problems: list[Problem] = list(problems)
        lines = [str(p) for p in self.problems]
        head = f"{counted(len(lines), 'problem')} in the input data"
        super().__init__(head + ":\n  - " + "\n  - ".join(lines))


class EngineError(KammlError):
    """The compute engine (DuckDB, Spark) is unavailable or misconfigured."""

    exit_code = 4


class ModelError(KammlError):
    """A model is used wrongly: not fitted, another horizon, features that do not match."""

    exit_code = 5


class TrackingStoreError(ModelError):
    """The MLflow tracking store that holds the models cannot be used: missing, locked, or not a store.

    A `ModelError` (exit 5): the store is where a command finds its model, and a read-only command that
    cannot reach it cannot score. The message names the store's URI and where it came from (the config's
    ``tracking.uri`` or the ``MLFLOW_TRACKING_URI`` environment variable).
    """


class FeatureMismatchError(ModelError):
    """The feature rows given to a model lack columns its feature specification needs."""

    def __init__(
        self, missing: list[str], source: str = "the feature rows", present: Iterable[Any] = ()
    ) -> None:
        self.missing = list(missing)
        shown = ", ".join(self.missing[:30]) + (" ..." if len(self.missing) > 30 else "")
        message = f"{source} lack {counted(len(self.missing), 'column')} the model was trained on: {shown}"
        # an export's upper-case headers (SIZE) make attr_SIZE, which the model knows as attr_size
        by_case = {str(c).lower(): str(c) for c in present}
        recased = [m for m in self.missing if m.lower() in by_case]
        cased = [f"{by_case[m.lower()]} for {m}" for m in recased]
        if cased:
            # a feature (RECENCY from a CRM) is no accounts attribute: the advice names what it is
            why = (
                "the accounts' attribute columns keep their headers' case: rename them as at training"
                if any(m.startswith("attr_") for m in recased)
                else "names match with their case: send them as the model names them"
            )
            message += (
                f"; present in another case of letters: {', '.join(cased[:10])}"
                f"{' ...' if len(cased) > 10 else ''} ({why})"
            )
        # a CRM export's or CSV header with a space ('recency '): refused as if the column were not sent
        spaced_names = {str(c).strip().lower(): str(c) for c in present if str(c) != str(c).strip()}
        spaced = [f"{spaced_names[m.lower()]!r} for {m}" for m in self.missing if m.lower() in spaced_names]
        if spaced:
            message += (
                f"; present with spaces around the name: {', '.join(spaced[:10])}"
                f"{' ...' if len(spaced) > 10 else ''} (strip the column names)"
            )
        explained = {m.lower() for m in self.missing if m.lower() in by_case or m.lower() in spaced_names}
        # a row built from the accounts table itself (a CRM's segment, not attr_segment): was told the
        # table had dropped or renamed a column the row held
        bare = {str(c).strip().lower(): str(c) for c in present}
        unprefixed = [
            m
            for m in self.missing
            if m.startswith("attr_") and m.lower() not in explained and m[len("attr_") :].lower() in bare
        ]
        if unprefixed:
            named = [f"{bare[m[len('attr_') :].lower()]} for {m}" for m in unprefixed]
            message += (
                f"; present without the attr_ prefix: {', '.join(named[:10])}"
                f"{' ...' if len(named) > 10 else ''} (the model names the accounts table's columns "
                "attr_<column>, as kamml.build_features makes them: rename them so)"
            )
            explained.update(m.lower() for m in unprefixed)
        # a weekly export that dropped or renamed an accounts column: name the column, not only attr_<name>
        gone = [
            m[len("attr_") :] for m in self.missing if m.startswith("attr_") and m.lower() not in explained
        ]
        if gone:
            message += (
                f"; attr_ features are the accounts table's columns: no column {', '.join(gone[:10])}"
                f"{' ...' if len(gone) > 10 else ''} (dropped or renamed in the accounts table since "
                "training? give it back under that name, or train again)"
            )
        super().__init__(message)


class InfeasibleError(KammlError, ValueError):
    """An allocation problem has no solution (floors above capacity, negative hours)."""

    exit_code = 6


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or during, each once (for naming a failure's cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
