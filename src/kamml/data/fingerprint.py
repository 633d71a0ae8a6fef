"""A fingerprint of a dataset, logged with every training run so a model can be traced to its data.

Computed inside the engine in one aggregate per table: row count, the date range of its first timestamp
column, and an order-independent content hash (the sum over rows of a hash of the row's values as text).
Reordering rows or files keeps the hash; changing, adding or dropping any row changes it. The hash is
engine-specific (DuckDB and Spark hash differently), which is enough to tell two runs' inputs apart.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ibis
import pandas as pd

from kamml.data.dataset import Dataset

__all__ = ["fingerprint"]

#: Rows' hashes are reduced modulo this prime before summing, so the sum stays inside int64.
_MODULUS = 1_000_000_007


def _table_fingerprint(table: ibis.Table) -> dict[str, Any]:
    """Rows, date range and content hash of one table, in one engine query."""
    cols = [table[c].cast("string").fill_null("") for c in table.columns]
    row_hash = ibis.literal("\x1f").join(cols).hash() % _MODULUS
    aggs: dict[str, Any] = {"rows": table.count(), "hash": row_hash.sum()}
    stamp = next((c for c, t in table.schema().items() if t.is_timestamp() or t.is_date()), None)
    if stamp is not None:
        aggs["first"] = table[stamp].min()
        aggs["last"] = table[stamp].max()
    row = table.aggregate(**aggs).to_pandas().iloc[0]
    out: dict[str, Any] = {"rows": int(row["rows"])}
    if stamp is not None:
        out["first"] = None if pd.isna(row["first"]) else str(pd.Timestamp(row["first"]))
        out["last"] = None if pd.isna(row["last"]) else str(pd.Timestamp(row["last"]))
    total = 0 if pd.isna(row["hash"]) else int(row["hash"])  # a sum over no rows: None, or NaN on Spark
    digest = hashlib.sha256(f"{table.columns}|{total}".encode()).hexdigest()
    out["hash"] = digest[:16]
    return out


def fingerprint(data: Dataset) -> dict[str, Any]:
    """Per table: rows, first and last timestamp, content hash; plus the data end and the engine."""
    tables = {name: _table_fingerprint(table) for name, table in sorted(data.tables.items())}
    return {
        "engine": data.backend.name,
        "end": str(pd.Timestamp(data.end).date()),
        "tables": tables,
    }
