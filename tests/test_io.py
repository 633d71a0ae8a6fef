import pandas as pd
import pytest

from kamml.errors import DataError
from kamml.io import atomic_path, write_table


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
