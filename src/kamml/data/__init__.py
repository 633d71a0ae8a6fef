"""The data contract (DESIGN §2): read the user's tables, validate them in the engine, type them.

`load_data` returns a `Dataset` of Ibis tables on one backend (DuckDB by default, Spark, or the backend a
user's Ibis tables already live on), or raises `SchemaError` with every broken rule at once. Soft
problems go into its `QualityReport`.
"""

from __future__ import annotations

from kamml.data.contract import TABLES, ColumnSpec, Kind, TableSpec, column_mapping
from kamml.data.dataset import Dataset, input_paths, load_data, validate
from kamml.data.quality import QualityReport, TableStats
from kamml.data.readers import read_table

__all__ = [
    "TABLES",
    "ColumnSpec",
    "Dataset",
    "Kind",
    "QualityReport",
    "TableSpec",
    "TableStats",
    "column_mapping",
    "input_paths",
    "load_data",
    "read_table",
    "validate",
]
