"""Number text read alike on DuckDB and Spark: each engine's cast reads some special texts its own way.

Amounts, quantities and hours, and a CSV's account attributes, are read by `kamml.io.NUMBER_PATTERN` on
both engines (docs/data.md). A signed NaN in lower or mixed case ("-nan", as C's printf writes it) is NaN
on DuckDB and was no number on Spark, whose cast reads only Java's "NaN" with a sign.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import pytest

from kamml.data import load_data
from kamml.errors import SchemaError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: Texts of the audit: infinities, NaN, an overflow, a negative zero, a thousands comma, padding, bare points.
TEXTS = [
    "Infinity",
    "-Infinity",
    "inf",
    "NaN",
    "nan",
    "-nan",
    "+Nan",
    "1e309",
    "-0",
    "1,200",
    " 12 ",
    "12.",
    ".5",
]


def _outcome(folder: Path, backend: ibis.BaseBackend) -> tuple:
    """The problems (rule, rows, examples) of a load, or its typed tables as text."""
    try:
        data = load_data(str(folder), backend=backend)
    except SchemaError as exc:
        return "refused", sorted(
            (p.table, p.column, p.rule, p.n_rows, tuple(map(str, p.examples))) for p in exc.problems
        )
    tables = {}
    for name in ("transactions", "activities", "accounts"):
        table = getattr(data, name)
        if table is not None:
            rows = table.execute().astype(str)
            types = {c: "timestamp" if t.is_timestamp() else str(t) for c, t in table.schema().items()}
            tables[name] = types, sorted(map(tuple, rows.to_numpy().tolist()))
    return "read", tables


@pytest.mark.parametrize("text", TEXTS, ids=repr)
def test_number_text_in_contract_columns_reads_alike(engines, tmp_path, text):
    """An amount, quantity or hours text is the same number, or refused by the same rule, on both engines."""
    (tmp_path / "transactions.csv").write_text(
        f'account_id,ts,amount,quantity\n1,2024-01-01,"{text}","{text}"\n2,2024-01-02,3,1\n'
    )
    (tmp_path / "activities.csv").write_text(f'account_id,ts,hours\n1,2024-01-01,"{text}"\n2,2024-01-02,1\n')
    duck, spark = (_outcome(tmp_path, backend) for backend in engines)
    assert spark == duck


def test_number_text_in_account_attributes_reads_alike(engines, tmp_path):
    """A CSV attribute column of numbers and one special text is typed alike (a number, not a category)."""
    texts = [t for t in TEXTS if "inf" not in t.lower() and t != "1e309"]  # an infinite attribute is refused
    header = ",".join(f"a{i}" for i in range(len(texts)))
    quoted = ",".join(f'"{t}"' for t in texts)
    lines = [f"1,{quoted}"] + [f"{k}," + ",".join([f"{k}.5"] * len(texts)) for k in (2, 3)]
    (tmp_path / "accounts.csv").write_text(f"account_id,{header}\n" + "\n".join(lines) + "\n")
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-01,5\n2,2024-01-02,3\n")
    duck, spark = (_outcome(tmp_path, backend) for backend in engines)
    assert spark == duck
    assert duck[0] == "read"
    types = duck[1]["accounts"][0]
    assert types[f"a{texts.index('-nan')}"] == "float64", types
