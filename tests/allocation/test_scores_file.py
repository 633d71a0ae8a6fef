import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.allocation.scores_file import read_scores
from kamml.errors import DataError, SchemaError

from .conftest import ALIKE_RULE, make_scores


@pytest.mark.parametrize(("sep", "says"), [(";", "separated by ';'"), ("\t", "separated by tabs")])
def test_a_scores_csv_not_separated_by_commas_says_so(tmp_path, sep, says):
    """A ';' export (decimal commas) failed with pandas' 'Expected 5 fields in line 4, saw 7'."""
    path = tmp_path / "s.csv"
    make_scores(n=5).to_csv(path, index=False, sep=sep, decimal=",")
    with pytest.raises(DataError, match=f"its header is {says}, not commas.*comma-separated"):
        read_scores(path)


def test_a_parquet_file_named_csv_says_what_it_is(tmp_path):
    """An allocation audit: its bytes were read as a header 'separated by tabs' ('PAR1\\x15...')."""
    path = tmp_path / "s.csv"
    make_scores(n=5).to_parquet(path)
    with pytest.raises(DataError, match="it is a Parquet file, not CSV text"):
        read_scores(path)


def test_a_column_repeated_in_a_scores_csv_is_refused(tmp_path):
    """An allocation audit: pandas renamed the second clv to clv.1 and the plan took the first."""
    path = tmp_path / "s.csv"
    scores = make_scores(n=5)
    scores.insert(2, "clv_again", scores["clv"] * 10)
    scores.to_csv(path, index=False)
    path.write_text(path.read_text().replace("clv_again", "clv", 1))
    with pytest.raises(SchemaError, match=r"scores\.clv: duplicated column name \(2 columns\); keep one"):
        read_scores(path)


@pytest.mark.parametrize("end", [",", ",,"])
def test_trailing_commas_in_a_scores_csv_do_not_shift_its_columns(tmp_path, end):
    """An allocation audit: rows ending in ',' (a CRM export) made pandas take account_id as the index,
    so clv was read as the ids and p_churn was refused as missing."""
    path = tmp_path / "s.csv"
    path.write_text(f"account_id,clv,p_churn\n007,100,0.2{end}\n008,50,0.5{end}\n009,10,0.1\n")
    read = read_scores(path)
    assert read["account_id"].tolist() == ["007", "008", "009"]
    assert read["clv"].tolist() == [100, 50, 10]
    assert read["p_churn"].tolist() == [0.2, 0.5, 0.1]


@pytest.mark.parametrize("ends", [(",", ",,", ""), ("", ",", ",,"), (",,", "", ",")])
def test_rows_of_a_scores_csv_ending_in_different_numbers_of_commas_are_read(tmp_path, ends):
    """An input audit: rows ending in ',' beside rows ending in ',,' (or a first row without one) got
    pandas' raw 'Expected 4 fields in line 3, saw 5', where one trailing ',' on every row was read."""
    path = tmp_path / "s.csv"
    values = [("007", 100, 0.2), ("008", 50, 0.5), ("009", 10, 0.1)]
    rows = [f"{i},{clv},{p}{end}" for (i, clv, p), end in zip(values, ends, strict=True)]
    path.write_text("account_id,clv,p_churn\n" + "\n".join(rows) + "\n")
    read = read_scores(path)
    assert read.columns.tolist() == ["account_id", "clv", "p_churn"]
    assert read["account_id"].tolist() == ["007", "008", "009"]
    assert read["clv"].tolist() == [100, 50, 10]


def test_a_value_past_the_header_among_rows_of_different_widths_is_named(tmp_path):
    """As a value past the header on every row: the line and the rule, not pandas' 'Expected 3 fields'."""
    path = tmp_path / "s.csv"
    path.write_text("account_id,clv,p_churn\n1,100,0.2\n2,50,0.5,,\n3,10,0.1,,x\n")
    with pytest.raises(DataError, match=r"s\.csv: line 4 has 5 values but the header names 3 columns"):
        read_scores(path)


def test_a_scores_csv_that_is_not_utf8_is_named_with_its_line(tmp_path):
    """An input audit: a Latin-1 export got the raw "'utf-8' codec can't decode byte 0xfc in position 41"."""
    path = tmp_path / "s.csv"
    path.write_bytes("account_id,clv,p_churn,region\n1,100,0.2,Bern\n2,50,0.5,Zürich\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"s\.csv: it is not UTF-8 text \(line 3 holds the byte 0xfc") as info:
        read_scores(path)
    assert "save it as UTF-8" in str(info.value)
    assert "codec" not in str(info.value)


def test_a_scores_parquet_text_column_that_is_not_utf8_is_named(tmp_path):
    """An input audit: a Parquet text column of Latin-1 bytes crashed pandas in a raw ArrowException
    ("Wrapping 2\ufffd failed"), not exit 3. Now a DataError naming the file, the column and the rule."""
    ids = pa.array([b"1", b"2\xeb", b"3"], pa.binary()).view(pa.string())  # unchecked: a Latin-1 'ë'
    table = pa.table({"account_id": ids, "clv": [100.0, 50.0, 20.0], "p_churn": [0.2, 0.5, 0.1]})
    pq.write_table(table, tmp_path / "s.parquet")
    (tmp_path / "f.parquet").mkdir()
    pq.write_table(table, tmp_path / "f.parquet" / "part-0.parquet")
    for path in (tmp_path / "s.parquet", tmp_path / "f.parquet"):
        rule = rf"{path.name}: column account_id holds text that is not UTF-8"
        with pytest.raises(DataError, match=rule) as info:
            read_scores(path)
        assert "1 value, e.g. b'2\\xeb'" in str(info.value)
        assert "save it as UTF-8" in str(info.value)
        assert "Wrapping" not in str(info.value)
    category = table.set_column(0, "account_id", pa.array([1, 2, 3])).append_column(
        "owner", ids.dictionary_encode()
    )
    pq.write_table(category, tmp_path / "c.parquet")  # a pandas category: its texts in a dictionary
    with pytest.raises(DataError, match=r"c\.parquet: column owner holds text that is not UTF-8"):
        read_scores(tmp_path / "c.parquet")


def test_a_scores_csv_row_with_more_values_than_its_header_is_refused(tmp_path):
    """An allocation audit: a value more on every row shifted every column by one, and the plan was
    written with clv as the account ids and exit 0."""
    path = tmp_path / "s.csv"
    path.write_text("account_id,clv,p_churn\n1,100,0.2,0.7\n2,50,0.5,0.3\n")
    with pytest.raises(DataError, match=r"line 2 has 4 values but the header names 3 columns"):
        read_scores(path)


def test_scores_columns_alike_are_refused_in_files_as_in_memory(tmp_path):
    """A CSV or Parquet with 'clv' and 'CLV' is refused by `read_scores` (a CSV was planned on 'clv'), and
    one with 'clv' twice in the same words (a Parquet was pyarrow's raw "Multiple matches for FieldRef")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = make_scores(n=5)
    cases = {
        "alike": (["account_id", "clv", "p_churn", "CLV"], f"(2 columns: 'clv', 'CLV'; {ALIKE_RULE})"),
        "repeated": (["account_id", "clv", "p_churn", "clv"], "(2 columns)"),
    }
    for name, (columns, words) in cases.items():
        values = [scores["account_id"], scores["clv"], scores["p_churn"], scores["clv"] * 100]
        table = pa.table([pa.array(v) for v in values], names=columns)
        pq.write_table(table, tmp_path / f"{name}.parquet")
        table.to_pandas().to_csv(tmp_path / f"{name}.csv", index=False)
        with open(tmp_path / f"{name}.csv") as handle:
            assert handle.readline().strip() == ",".join(columns)
        for suffix in ("csv", "parquet"):
            with pytest.raises(SchemaError) as info:
                read_scores(tmp_path / f"{name}.{suffix}")
            (problem,) = info.value.problems
            assert (problem.table, problem.column) == ("scores", "clv")
            assert problem.rule == f"duplicated column name {words}; keep one"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["1", "22", "-3", "0"], [1, 22, -3, 0]),  # plain integers: int64, as before
        (["01", "22"], ["01", "22"]),  # a leading zero
        (["+1", "22"], ["+1", "22"]),  # a sign int() drops
        (["1.0", "22"], [1, 22]),  # a whole float id saved as text: 1, as the input tables read it
        (["1.5", "22"], ["1.5", "22"]),  # a decimal point
        (["-0", "22"], ["-0", "22"]),  # minus zero
        (["1_000", "22"], ["1_000", "22"]),  # an underscore int() accepts
        (["99999999999999999999", "1"], ["99999999999999999999", "1"]),  # beyond int64
        (["a1", "22"], ["a1", "22"]),
    ],
)
def test_csv_account_ids_become_integers_only_when_lossless(tmp_path, texts, expected):
    scores = make_scores(n=len(texts)).drop(columns="owner")
    scores["account_id"] = texts
    scores.to_csv(tmp_path / "s.csv", index=False)
    read = read_scores(tmp_path / "s.csv")
    assert read["account_id"].tolist() == expected
    assert read["account_id"].dtype == (np.int64 if isinstance(expected[0], int) else object)


def test_a_folder_of_parquet_parts_reads_as_one_scores_table(tmp_path):
    scores = make_scores()
    folder = tmp_path / "scores.parquet"  # as a Spark run writes it
    folder.mkdir()
    half = len(scores) // 2
    scores.iloc[:half].to_parquet(folder / "part-00000.parquet")
    scores.iloc[half:].to_parquet(folder / "part-00001.parquet")
    back = read_scores(folder).sort_values("account_id").reset_index(drop=True)
    expected = scores.sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)  # Parquet keeps dates in ms
    with pytest.raises(DataError, match="scores file not found"):
        read_scores(tmp_path / "elsewhere.parquet")
    with pytest.raises(DataError, match=r"is a folder not named \*\.parquet"):  # was "not found"
        read_scores(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("s.csv", b""), ("s.csv", b"\n\n"), ("s.csv", b"\xef\xbb\xbf"), ("s.parquet", b"")],
    ids=["csv-no-bytes", "csv-blank-lines", "csv-bom-only", "parquet-no-bytes"],
)
def test_an_empty_scores_file_says_it_is_empty(tmp_path, name, content):
    """An allocation audit: pandas' 'No columns to parse from file' and pyarrow's '<Buffer>' were shown."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_scores(path)
    message = str(caught.value)
    assert f"the scores file {path} is empty" in message
    assert "account_id, clv and p_churn" in message
    assert "No columns" not in message
    assert "Buffer" not in message


def test_a_hidden_part_of_a_scores_folder_is_not_read_for_its_names(tmp_path):
    """A failed writer's ``_temporary/0/part-0.parquet`` with 'clv' and 'CLV' was named as the folder's
    repeated column (`parquet_name_problems` read every ``*.parquet`` below it), though no reader reads
    it; a visible ``.pq`` part with them was not looked at."""
    from kamml.allocation.scores_file import parquet_name_problems

    scores = make_scores(n=3)
    alike = pa.table(
        [pa.array(scores["account_id"]), pa.array(scores["clv"]), pa.array(scores["clv"])],
        names=["account_id", "clv", "CLV"],
    )
    folder = tmp_path / "scores"
    (folder / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(alike, folder / "_temporary" / "0" / "part-0.parquet")
    scores.to_parquet(folder / "part-1.parquet")
    assert parquet_name_problems(folder) == []
    pq.write_table(alike, folder / "part-2.pq")
    assert [p.column for p in parquet_name_problems(folder)] == ["clv"]
