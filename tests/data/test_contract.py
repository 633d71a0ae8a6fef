"""The contract as data: tables, columns, kinds and the column mapping from the config."""

from __future__ import annotations

import pytest

from kamml.config import TABLES as CONFIG_TABLES
from kamml.data import TABLES, Kind, column_mapping
from kamml.errors import ConfigError


def test_four_tables_as_in_the_design():
    assert tuple(TABLES) == CONFIG_TABLES
    assert TABLES["transactions"].required_columns == ("account_id", "ts", "amount")
    assert TABLES["transactions"].optional_columns == ("quantity", "product", "transaction_id")
    assert TABLES["accounts"].required_columns == ("account_id",)
    assert TABLES["referrals"].required_columns == ("referrer_id", "referred_id", "ts")
    assert TABLES["activities"].required_columns == ("account_id", "ts", "hours")
    assert [name for name, spec in TABLES.items() if spec.required] == ["transactions"]
    assert [name for name, spec in TABLES.items() if spec.keep_extra] == ["accounts"]


def test_kinds_and_keys():
    spec = TABLES["transactions"]
    assert spec.column("ts").kind is Kind.TIMESTAMP
    assert spec.column("amount").kind is Kind.FLOAT
    assert spec.column("account_id").key
    assert not spec.column("transaction_id").key
    assert spec.column("transaction_id").nullable
    assert spec.column("nope") is None
    keys = {(t, c.name) for t, s in TABLES.items() for c in s.columns if c.key}
    assert keys == {
        ("transactions", "account_id"),
        ("accounts", "account_id"),
        ("activities", "account_id"),
        ("referrals", "referrer_id"),
        ("referrals", "referred_id"),
    }


def test_mapping_defaults_to_identity():
    assert column_mapping("referrals") == {
        "referrer_id": "referrer_id",
        "referred_id": "referred_id",
        "ts": "ts",
    }


def test_mapping_renames_and_accounts_take_any_attribute():
    mapping = column_mapping("transactions", {"account_id": "customer", "ts": "order_date"})
    assert mapping["account_id"] == "customer"
    assert mapping["ts"] == "order_date"
    assert mapping["amount"] == "amount"
    assert column_mapping("accounts", {"segment": "tier"})["segment"] == "tier"


def test_mapping_errors():
    with pytest.raises(ConfigError, match=r"data\.columns\.transactions: unknown column 'acount_id'"):
        column_mapping("transactions", {"acount_id": "customer"})
    with pytest.raises(ConfigError, match="mapped to more than one"):
        column_mapping("transactions", {"account_id": "ts"})


def test_a_reversed_mapping_says_which_way_it_reads():
    # A newcomer writing "your column: kamml's name" got only "unknown column 'customer'" (transactions) or
    # "column 'account_id' is mapped to more than one of ['account_id', 'cust_no']" (accounts).
    with pytest.raises(ConfigError) as err:
        column_mapping("transactions", {"customer": "account_id", "order_date": "ts", "total": "amount"})
    message = str(err.value)
    assert "unknown columns 'customer', 'order_date', 'total'" in message
    assert "kamml's name: your column" in message
    assert "{account_id: customer, ts: order_date, amount: total}" in message
    with pytest.raises(ConfigError) as err:
        column_mapping("accounts", {"cust_no": "account_id", "segment": "tier"})
    message = str(err.value)
    assert "mapped to more than one" in message
    assert "{account_id: cust_no}" in message


def test_two_reversed_entries_for_one_name_are_both_named():
    # {a: account_id, b: account_id}: the hint named only b, as if a had not been written
    with pytest.raises(ConfigError) as err:
        column_mapping("transactions", {"cust": "account_id", "customer": "account_id", "total": "amount"})
    message = str(err.value)
    assert "{account_id: cust, amount: total}" in message
    assert "account_id takes one of cust, customer" in message


def test_a_mapping_that_is_not_reversed_gets_no_such_hint():
    with pytest.raises(ConfigError) as err:
        column_mapping("transactions", {"acount_id": "customer"})
    assert "your column" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        column_mapping("transactions", {"account_id": "ts"})
    assert "your column" not in str(err.value)
