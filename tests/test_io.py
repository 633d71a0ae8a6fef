import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamml.errors import DataError
from kamml.io import (
    atomic_path,
    check_output_dir,
    check_output_path,
    check_writable,
    float_values,
    write_table,
)


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_write_table_round_trips(tmp_path, name):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_table(frame, tmp_path / "sub" / name)
    back = pd.read_parquet(path) if name.endswith("parquet") else pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old\n")

    def killed_midway():
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        killed_midway()
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"\.parquet or \.csv"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "x.xlsx")


def test_outputs_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        target = tmp_path / "shared.csv"
        with atomic_path(target) as tmp:
            tmp.write_text("x\n")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_an_existing_folder_is_refused_before_any_write(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(DataError, match=r"out\.csv: it is an existing folder"):
        check_output_path(tmp_path / "out.csv")
    # atomic_path itself: a clean DataError, no OS traceback and no temporary file left
    with pytest.raises(DataError, match="cannot write"), atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("x\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_file_where_a_folder_should_be_is_refused(tmp_path):
    (tmp_path / "afile").write_text("")
    for target in (tmp_path / "afile" / "x.csv", tmp_path / "afile" / "sub" / "x.parquet"):
        with pytest.raises(DataError, match=r"afile is a file, not a folder"):
            check_output_path(target)
    with pytest.raises(DataError, match=r"afile: it is a file, not a folder"):
        check_output_dir(tmp_path / "afile")
    with pytest.raises(DataError, match="cannot write"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "afile" / "x.csv")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_place_no_file_can_be_created_in_is_refused():
    with pytest.raises(DataError, match=r"cannot write /proc/x\.csv"):
        check_output_path("/proc/x.csv")
    with pytest.raises(DataError, match=r"cannot write /proc/new/x\.csv"):
        check_writable("/proc/new/x.csv")


def test_a_new_nested_output_passes_the_check_and_leaves_nothing_behind(tmp_path):
    assert check_output_path(tmp_path / "a" / "b" / "out.parquet") == "parquet"
    assert check_output_dir(tmp_path / "c") == tmp_path / "c"
    assert list(tmp_path.iterdir()) == []  # neither the folders nor the probe file


def test_an_output_that_is_an_input_table_is_refused(tmp_path, monkeypatch):
    """`kamml score --out data/transactions.parquet --data data` replaced the table the job had read."""
    from kamml.io import check_not_input

    data = tmp_path / "data"
    parts = data / "activities"
    parts.mkdir(parents=True)
    (data / "transactions.parquet").write_bytes(b"tx")
    (parts / "part-0.parquet").write_bytes(b"a")
    (tmp_path / "link.parquet").symlink_to(data / "transactions.parquet")
    inputs = {"transactions": data / "transactions.parquet", "activities": parts}
    monkeypatch.chdir(tmp_path)
    for same in ("data/transactions.parquet", "data/../data/transactions.parquet", "link.parquet"):
        with pytest.raises(DataError, match=r"it is the transactions table the job reads"):
            check_output_path(same, inputs)
    with pytest.raises(DataError, match=r"inside .*activities, the folder the activities table is read"):
        check_output_path(parts / "scores.parquet", inputs)
    with pytest.raises(DataError, match=r"it holds .*transactions\.parquet, the transactions table"):
        check_not_input(data, inputs)  # a Spark output folder replaced whole
    globbed = {"transactions": data / "tx-*.parquet"}
    with pytest.raises(DataError, match=r"it matches .*tx-\*\.parquet, the files the transactions table"):
        check_output_path("data/tx-scores.parquet", globbed)
    assert check_output_path(data / "scores.parquet", inputs) == "parquet"  # beside the inputs: fine
    assert (data / "transactions.parquet").read_bytes() == b"tx"
    config = tmp_path / "job.yaml"
    config.write_text("time: {}\n")
    with pytest.raises(DataError, match=r"it is the config file the job reads"):  # "the config table"
        check_not_input(config, {"config": config})


def test_json_text_writes_null_for_nan_and_infinities():
    """A bare NaN (json.dumps' default) is refused by JSON.parse and most strict parsers."""
    import json

    import numpy as np

    from kamml.io import json_text

    payload = {"a": float("nan"), "b": [np.float64("inf"), np.float32(1.5), np.int64(3)], "c": {"d": -np.inf}}
    text = json_text(payload)

    def refuse(name: str) -> None:
        raise ValueError(name)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [None, 1.5, 3], "c": {"d": None}}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through Linux's /proc")
def test_atomic_writes_reach_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    """After a machine crash a renamed file could come back empty while the manifest named it."""
    import os

    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    with atomic_path(tmp_path / "plan.csv") as tmp:
        tmp.write_text("a\n")
    assert len(synced) == 2
    assert synced[0].startswith(str(tmp_path / ".plan.csv."))  # the bytes, under the temporary name
    assert synced[1] == str(tmp_path)  # then the rename


def test_ids_of_text_mixed_with_numbers_are_written_as_text_in_parquet(tmp_path):
    """Ids given in Python as [1, "A-2"] (one id as a number): Arrow refused them with a raw error."""
    import numpy as np
    import pyarrow.parquet as pq

    from kamml.allocation import allocate

    scores = pd.DataFrame(
        {"account_id": [1, "A-2", 3], "clv": [10.0, 20.0, 30.0], "p_churn": [0.1, 0.2, 0.3]}, dtype=object
    )
    scores = scores.astype({"clv": float, "p_churn": float})
    scores["owner"] = pd.Series([7, None, "ann"], dtype=object)
    table = allocate(scores, 5.0)
    path = write_table(table, tmp_path / "plan.parquet")
    schema = pq.read_schema(path)
    assert str(schema.field("account_id").type) == "string"
    assert str(schema.field("owner").type) == "string"
    back = pd.read_parquet(path).set_index("account_id")
    assert sorted(back.index) == ["1", "3", "A-2"]
    assert back.loc["1", "owner"] == "7"
    assert back.loc["A-2", "owner"] is None
    assert back["recommended_hours"].sum() == np.float64(table["recommended_hours"].sum())
    kept = pd.DataFrame({"drivers": [["a", "b"], None], "n": [1, 2]})  # lists are not numbers: untouched
    assert pd.read_parquet(write_table(kept, tmp_path / "d.parquet"))["drivers"][0].tolist() == ["a", "b"]


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """A killed `kamml score --out` left its hidden temporary file (a whole scores table) for good."""
    import os
    import socket
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(done.stdout)
    host = socket.gethostname().replace(".", "_")[:60]
    target = tmp_path / "scores.csv"
    left = tmp_path / f".scores.csv.kamml-{dead}@{host}.x1.tmp"
    kept = [
        tmp_path / f".scores.csv.kamml-{os.getpid()}@{host}.x2.tmp",  # a live writer's
        tmp_path / f".scores.csv.kamml-{dead}@another-host.x3.tmp",  # another machine's
        tmp_path / ".scores.csv.x4.tmp",  # no writer named
        tmp_path / f".other.csv.kamml-{dead}@{host}.x5.tmp",  # another output's
    ]
    for path in (left, *kept):
        path.write_text("partial")
    with atomic_path(target) as tmp:
        assert f".scores.csv.kamml-{os.getpid()}@{host}." in tmp.name
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert not left.exists()
    assert all(path.exists() for path in kept)


def test_a_broken_symbolic_link_into_a_missing_folder_is_refused_naming_it(tmp_path):
    """A dangling ``output.dir`` or folder of ``--out`` failed with the OS's bare "File exists", and a
    dangling ``--out`` link was silently replaced by a file. kamml never creates the folder a link names
    (a share not mounted would get the outputs on the local disk)."""
    frame = pd.DataFrame({"a": [1]})
    (tmp_path / "dir_link").symlink_to(tmp_path / "gone")
    (tmp_path / "file_link.csv").symlink_to(tmp_path / "gone" / "a.csv")
    for check, path in (
        (check_output_dir, tmp_path / "dir_link"),
        (check_output_path, tmp_path / "dir_link" / "a.csv"),
        (lambda p: write_table(frame, p), tmp_path / "dir_link" / "a.csv"),
        (check_output_path, tmp_path / "file_link.csv"),
        (lambda p: write_table(frame, p), tmp_path / "file_link.csv"),
    ):
        with pytest.raises(DataError, match="is a broken symbolic link") as info:
            check(path)
        assert str(tmp_path / "gone") in str(info.value)
        assert "File exists" not in str(info.value)
    assert (tmp_path / "file_link.csv").is_symlink()
    assert not (tmp_path / "gone").exists()


def test_an_output_that_is_a_symbolic_link_is_written_through_it(tmp_path):
    """A link named as the output (``latest.csv`` -> the CRM's drop folder) was replaced by a plain file,
    leaving the file it pointed to stale; now the file it names is written, atomically, and it stays."""
    (tmp_path / "crm").mkdir()
    (tmp_path / "latest.csv").symlink_to(tmp_path / "crm" / "allocation.csv")
    for value in (1, 2):  # first into a file not there yet, then over it
        write_table(pd.DataFrame({"a": [value]}), tmp_path / "latest.csv")
        assert (tmp_path / "latest.csv").is_symlink()
        assert pd.read_csv(tmp_path / "crm" / "allocation.csv")["a"].tolist() == [value]
    assert sorted(p.name for p in (tmp_path / "crm").iterdir()) == ["allocation.csv"]


def test_parquet_not_utf8_names_each_text_column_of_a_file_or_folder(tmp_path):
    """Plain, large and category (dictionary) text columns are named; numbers and valid text are not.

    Only the text columns are read, one at a time: Arrow refuses to read a category of such text at all,
    which stopped the whole look (None, the raw "Invalid UTF8 payload") when the file was read in one go.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.io import parquet_not_utf8

    def latin1(values: list[bytes], kind: pa.DataType) -> pa.Array:
        return pa.array(values, pa.large_binary() if kind == pa.large_string() else pa.binary()).view(kind)

    category = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0]), latin1([b"ok", b"Caf\xe9"], pa.string()))
    table = pa.table(
        {
            "account_id": [1, 2, 3],
            "owner": latin1([b"zo\xeb", b"ann", b"zo\xeb"], pa.string()),
            "product": latin1([b"a", b"b", b"\xff"], pa.large_string()),
            "kind": category,
            "note": ["fine", "also", "fine"],
        }
    )
    folder = tmp_path / "scores"
    folder.mkdir()
    pq.write_table(table, folder / "part-0.parquet")
    for source in (folder / "part-0.parquet", folder):
        reason = parquet_not_utf8(source)
        assert reason is not None
        assert "column owner holds text that is not UTF-8 (2 values, e.g. b'zo\\xeb', b'zo\\xeb')" in reason
        assert "column product holds text that is not UTF-8 (1 value, e.g. b'\\xff')" in reason
        assert "column kind holds text that is not UTF-8;" in reason  # Arrow will not read it to count
        assert "account_id" not in reason
        assert "note" not in reason
    pq.write_table(pa.table({"account_id": [1], "note": ["fine"]}), tmp_path / "good.parquet")
    assert parquet_not_utf8(tmp_path / "good.parquet") is None


@pytest.mark.parametrize(
    ("values", "got"),
    [
        (np.array([dt.date(2024, 1, 1), 1.0], dtype=object), r"dates \(object\)"),
        (pd.Series([pd.Timestamp("2024-01-01"), 2.0]), r"dates \(object\)"),
        (pd.Series(pd.date_range("2024-01-01", periods=2)).astype(object), r"dates \(object\)"),
        ([pd.Period("2024-01", "M"), 2.0], r"dates \(object\)"),
        (pd.Series(pd.period_range("2024-01", periods=2, freq="M")), r"dates \(period\[M\]\)"),
        (pd.Timestamp("2024-01-01"), r"dates \(object\)"),
        (np.array([dt.time(1, 2), None], dtype=object), r"dates \(object\)"),
        (np.array([np.datetime64("2024-01-01"), 2.0], dtype=object), r"dates \(object\)"),
        (np.array([np.timedelta64(1, "D"), 2.0], dtype=object), r"durations \(object\)"),
        (pd.Series([pd.Timedelta(hours=1), dt.timedelta(days=1)], dtype=object), r"durations \(object\)"),
        (
            np.array([pd.Timedelta(hours=1), dt.date(2024, 1, 1)], dtype=object),
            r"dates and durations \(object\)",
        ),
    ],
)
def test_float_values_names_dates_and_durations_held_as_objects(values, got):
    """Dates held as Python objects were refused in float()'s words ("float() argument must be a string or
    a real number, not 'datetime.date'"), and a numpy datetime64 or timedelta64 among objects was read as
    a number of days (19723.0) without a word: they are named as typed dates and durations are."""
    with pytest.raises(ValueError, match=rf"^y must be numbers, got {got}; do X$"):
        float_values(values, "y", hint="; do X")


def test_float_values_reads_missing_dates_among_objects_as_missing():
    """pd.NaT (a datetime to isinstance) and NaT datetime64 among objects are missing values, not dates."""
    got = float_values(np.array([1.0, pd.NaT, np.datetime64("NaT"), None], dtype=object), "y")
    assert got[0] == 1.0
    assert np.isnan(got[1:]).all()


def test_float_values_reads_missing_marks_as_nan_and_refuses_what_numpy_would_misread():
    """The optimizer's and the metrics' reading of numbers: pd.NA is NaN; masked, dated, complex refused."""
    assert np.isnan(float_values([1.0, pd.NA, pd.NaT], "y")[1:]).all()
    assert float_values([True, False], "y").tolist() == [1.0, 0.0]  # not strict: 0/1 labels
    assert float_values(["3"], "y").tolist() == [3.0]
    with pytest.raises(ValueError, match="hours must be numbers, got true/false"):
        float_values([True], "hours", strict=True)
    with pytest.raises(ValueError, match="hours must be numbers, not text: got '3'"):
        float_values(["3"], "hours", strict=True)
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[True, False, True])
    with pytest.raises(
        ValueError, match=r"y has 2 masked values \(positions 0, 2;.*masked accounts out here$"
    ):
        float_values(masked, "y", leave_out=" here")
    with pytest.raises(ValueError, match=r"y must be numbers, got durations \(timedelta64\[h\]\); do X$"):
        float_values(np.array([1], dtype="timedelta64[h]"), "y", hint="; do X")
    with pytest.raises(ValueError, match=r"y must be real numbers, got complex values \(complex128\)$"):
        float_values([1j], "y")
