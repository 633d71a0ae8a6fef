"""A table's parts in folders (a folder of parts, a glob) are read as the same rows and columns on Spark as
on DuckDB, or refused alike: the partition folders (key=value) and the files each engine takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest

from kamml.data import read_table
from kamml.errors import DataError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TX = pd.DataFrame({"account_id": [1, 2, 3, 4], "amount": [1.0, 2.0, 3.0, 4.0]})


def _write(root: Path, parts: dict[str, pd.DataFrame]) -> None:
    for relative, frame in parts.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)


def _read(source: Any, backend: ibis.BaseBackend) -> tuple:
    """The columns and rows read (as text, sorted), or the refusal's message."""
    try:
        table = read_table(source, "transactions", backend)
        frame = table.execute().astype(str)
    except DataError as exc:
        return "refused", str(exc)
    return list(table.columns), sorted(map(tuple, frame.to_numpy().tolist()))


def test_parts_beside_partition_folders_are_refused_on_both_engines(engines, tmp_path):
    """Spark, handed the folder, read only y=1/'s rows (and a y column) while DuckDB read every row."""
    _write(tmp_path, {"tx/part-0.parquet": TX.iloc[:2], "tx/y=1/part-0.parquet": TX.iloc[2:]})
    for source in (tmp_path / "tx", str(tmp_path / "tx" / "*")):
        duck, spark = (_read(source, backend) for backend in engines)
        assert duck[0] == "refused", duck
        assert spark == duck
        assert "either all in key=value folders" in duck[1]


@pytest.mark.parametrize(
    ("parts", "source"),
    [
        # a glob over partition folders: Spark lost the y column that DuckDB kept
        ({"tx/y=1/part-0.parquet": TX.iloc[:2], "tx/y=2/part-0.parquet": TX.iloc[2:]}, "tx/*"),
        ({"tx/y=1/part-0.parquet": TX.iloc[:2], "tx/y=2/part-0.parquet": TX.iloc[2:]}, "tx/y=*/*.parquet"),
        ({"tx/y=1/m=1/a.parquet": TX.iloc[:2], "tx/y=2/m=3/b.parquet": TX.iloc[2:]}, "tx/*"),
        # Spark keeps _y=1/ (Hadoop hides _x but not _x=v), kamml hid it
        ({"tx/_y=1/part-0.parquet": TX.iloc[:2], "tx/_y=2/part-0.parquet": TX.iloc[2:]}, "tx"),
        # ** is any depth to Python's glob, one folder to Hadoop's: Spark read one part of three
        (
            {"tx/a.parquet": TX.iloc[:2], "tx/s/b.parquet": TX.iloc[2:3], "tx/s/t/c.parquet": TX.iloc[3:]},
            "tx/**/*.parquet",
        ),
        # CSV parts in partition folders: DuckDB added the y column, Spark did not
        ({"tx/y=1/part-0.csv": TX.iloc[:2], "tx/y=2/part-0.csv": TX.iloc[2:]}, "tx"),
        # a key=value folder above the table is no column of it (DuckDB added run)
        ({"run=3/tx/part-0.parquet": TX}, "run=3/tx"),
    ],
    ids=["glob", "glob-in-keys", "glob-nested-keys", "underscore-keys", "deep-glob", "csv-keys", "above"],
)
def test_parts_in_folders_are_read_alike(engines, tmp_path, parts, source):
    _write(tmp_path, parts)
    path = str(tmp_path / source)
    duck, spark = (_read(path, backend) for backend in engines)
    assert duck[0] != "refused", duck
    assert len(duck[1]) == len(TX)
    # Spark types a partition value (1), DuckDB keeps its text ("1"): alike as text (docs/spark.md)
    assert spark == duck


def test_a_partition_key_that_is_also_a_file_column_is_refused_on_both_engines(engines, tmp_path):
    """Files holding region in region=EU/: both engines put EU in every row (the files' US lost), and
    Region=EU/ failed in a raw IbisTypeError on DuckDB where Spark took the folder's; now both refuse."""
    frame = TX.assign(region=["US", "US", "EU", "EU"])
    for kind in ("parquet", "csv"):
        for key in ("region", "Region"):
            _write(tmp_path, {f"{kind}-{key}/{key}=EU/part-0.{kind}": frame})
            duck, spark = (_read(tmp_path / f"{kind}-{key}", backend) for backend in engines)
            assert duck[0] == "refused", (kind, key, duck)
            assert spark == duck
            assert f"{key}=EU/part-0.{kind}, a file with a column region" in duck[1]


def test_a_folder_above_the_table_naming_its_column_is_refused_on_both_engines(engines, tmp_path):
    """DuckDB took the value of every key=value folder of a path: region=EU/tx/y=1/ read EU over the
    files' US, y=0/tx/y=1/ read y = 0, where Spark read only below its basePath; now both refuse."""
    frame = TX.assign(region="US")
    for above in ("region=EU", "y=0"):
        _write(tmp_path, {f"{above}/tx/y=1/part-0.parquet": frame})
        duck, spark = (_read(tmp_path / above / "tx", backend) for backend in engines)
        assert duck[0] == "refused", (above, duck)
        assert spark == duck
        assert f"({above}/ in {tmp_path / above / 'tx'}) names the column" in duck[1]
