"""The corpus of broken inputs: each gives its named error, naming table, column and rule, at the API and
at the CLI (one clean message, the error's exit code, never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kamml.config import load_config
from kamml.data import load_data
from kamml.errors import ConfigError, DataError, KammlError, SchemaError

from .conftest import CORPUS

# case folder -> (error class, table, column or None, words the message must contain, rows that break it)
CASES: dict[str, tuple[type[KammlError], str, str | None, tuple[str, ...], int | None]] = {
    "missing_column": (
        SchemaError,
        "transactions",
        "amount",
        ("missing required column", "account_id, ts"),
        None,
    ),
    "unparseable_date": (
        SchemaError,
        "transactions",
        "ts",
        ("unparseable date", "31/01/2024", "2024-02-30"),
        2,
    ),
    "null_id": (SchemaError, "transactions", "account_id", ("null or empty id",), 2),
    "text_in_amount": (SchemaError, "transactions", "amount", ("unparseable number", "12.50 EUR", "n/a"), 2),
    "infinite_amount": (SchemaError, "transactions", "amount", ("not a finite number", "inf"), 3),
    "future_date": (SchemaError, "transactions", "ts", ("in the future", "2099-12-31"), 1),
    "after_data_end": (SchemaError, "transactions", "ts", ("after the data end", "2024-06-30"), 2),
    "empty_file": (SchemaError, "transactions", None, ("empty table",), None),  # as header_only
    "header_only": (SchemaError, "transactions", None, ("empty table",), None),
    "wrong_delimiter": (
        SchemaError,
        "transactions",
        "account_id;ts;amount",
        ("delimiter looks wrong", "';'"),
        None,
    ),
    "duplicated_header": (SchemaError, "transactions", "amount", ("duplicated column name",), None),
    "mixed_time_zones": (SchemaError, "transactions", "ts", ("mixed time zones", "has none"), 1),
    "unknown_config_key": (ConfigError, "data", "csv_delimeter", ("unknown key", "csv_delimiter"), None),
    "unknown_mapped_column": (
        SchemaError,
        "transactions",
        "revenue",
        ("missing required column", "mapped"),
        None,
    ),
    "ragged_row": (DataError, "transactions", None, ("cannot read", "Line: 3"), None),
    "repeated_header": (
        SchemaError,
        "transactions",
        "amount",
        ("unparseable number", "header line repeated"),
        1,
    ),
    # two exports joined: the second header was an account 'account_id' of segment 'segment', unsaid
    "repeated_header_accounts": (
        SchemaError,
        "accounts",
        "account_id",
        ("header line repeated",),
        1,
    ),
    "negative_hours": (SchemaError, "activities", "hours", ("negative hours", "-1.5"), 1),
    "self_referral": (SchemaError, "referrals", "referrer_id", ("self-referral",), 1),
    "duplicate_accounts": (SchemaError, "accounts", "account_id", ("duplicate account ids",), 1),
    "no_transactions": (DataError, "transactions", None, ("no transactions table",), None),
    "ambiguous_source": (DataError, "transactions", None, ("more than one source",), None),
    "not_parquet": (DataError, "transactions", None, ("not a readable Parquet file",), None),
    # the engines took the blank first line as the header: the real header became a row of data
    "blank_lines_before_header": (DataError, "transactions", None, ("starts with 2 blank lines",), None),
    # an account named NULL was scored like any other ("NA" is also a code: left as an id)
    "null_marker_id": (SchemaError, "transactions", "account_id", ("a null marker where an id goes",), 2),
}


def _load(case: str) -> None:
    folder = CORPUS / case
    config_file = folder / "config.yaml"
    config = load_config(config_file if config_file.exists() else None)
    load_data(folder, config)


def test_corpus_is_complete():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert len(CASES) >= 15
    assert set(CASES) | {"many_problems"} == folders


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_input_raises_its_named_error(case):
    error, table, column, words, n_rows = CASES[case]
    with pytest.raises(error) as caught:
        _load(case)
    assert type(caught.value) is error
    message = str(caught.value)
    for word in words:
        assert word in message
    if isinstance(caught.value, SchemaError):
        hits = [p for p in caught.value.problems if p.table == table and p.column == column]
        assert hits, f"no problem names {table}.{column}: {caught.value.problems}"
        assert f"{table}.{column}" in message if column else table in message
        if n_rows is not None:
            assert hits[0].n_rows == n_rows
    else:
        assert table in message
        if column:
            assert column in message


def test_every_problem_of_every_table_is_reported_at_once():
    with pytest.raises(SchemaError) as caught:
        load_data(CORPUS / "many_problems")
    found = {(p.table, p.column, p.rule.split(";")[0].split(" (")[0]) for p in caught.value.problems}
    assert ("transactions", "account_id", "missing required column") in found
    assert ("referrals", "ts", "unparseable date") in found
    assert ("referrals", "referrer_id", "self-referral") in found
    assert ("activities", "hours", "unparseable number") in found


def _cli_args(case: str) -> list[str]:
    folder = CORPUS / case
    args = ["validate", "--data", str(folder)]
    if (folder / "config.yaml").exists():
        args += ["--config", str(folder / "config.yaml")]
    return args


# one case per error class runs always; the whole corpus through the CLI runs with the slow tests
CLI_QUICK = {"text_in_amount", "empty_file", "unknown_config_key"}


@pytest.mark.parametrize(
    "case", [c if c in CLI_QUICK else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)]
)
def test_cli_gives_a_clean_error_and_exit_code(run_cli, case):
    error, table, _column, words, _ = CASES[case]
    result = run_cli(*_cli_args(case))
    assert result.exit_code == error.exit_code, result.output
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("kamml: error:")
    assert table in result.stderr
    assert words[0] in result.stderr
    assert result.stdout == ""


def test_cli_prints_the_summary_of_good_data(run_cli, tmp_path):
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-05,10\n1,2024-02-05,-3\n")
    (tmp_path / "accounts.csv").write_text("account_id,segment\n1,smb\n2,ent\n")
    result = run_cli("validate", "--data", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Data check passed" in result.stdout
    assert "refunds" in result.stdout
    assert "accounts without transactions" in result.stdout


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "nope")


def test_corpus_files_are_plain_text():
    # the corpus must stay readable in a diff: every file is small text
    for path in Path(CORPUS).rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 1_000
            path.read_text(encoding="utf-8")
