from __future__ import annotations

from kamml.errors import FeatureMismatchError


def test_a_missing_column_present_with_spaces_around_its_name_is_named():
    """A CRM export's header ' recency' or 'T ' was refused as if the column were not sent at all."""
    error = FeatureMismatchError(["recency", "T", "spend_90d"], present=[" recency", "T ", "x"])
    assert "present with spaces around the name: ' recency' for recency, 'T ' for T" in str(error)
    assert "spend_90d" in str(error)
    assert "case of letters" not in str(error)
    cased = FeatureMismatchError(["attr_size"], present=["attr_SIZE "])
    assert "present with spaces around the name: 'attr_SIZE ' for attr_size" in str(cased)
    assert str(cased).startswith("the feature rows lack 1 column the model was trained on: attr_size")
    assert "lack 3 columns the model was trained on" in str(error)


def test_missing_attribute_features_name_the_accounts_columns():
    """A weekly export that dropped or renamed an accounts column was refused naming only attr_ features."""
    error = FeatureMismatchError(
        ["attr_segment", "attr_industry", "recency"], present=["attr_sector", "attr_size"]
    )
    assert "attr_ features are the accounts table's columns: no column segment, industry" in str(error)
    assert "renamed" in str(error)
    cased = FeatureMismatchError(["attr_size"], present=["attr_SIZE"])
    assert "no column" not in str(cased)


def test_a_feature_sent_in_another_case_is_not_called_an_accounts_attribute():
    """A CRM's RECENCY was refused with advice about the accounts' attribute headers, which it is not."""
    error = str(FeatureMismatchError(["recency"], present=["RECENCY", "T"]))
    assert "present in another case of letters: RECENCY for recency" in error
    assert "accounts' attribute" not in error
    assert "names match with their case" in error
    attribute = str(FeatureMismatchError(["attr_size", "recency"], present=["attr_SIZE", "Recency"]))
    assert "the accounts' attribute columns keep their headers' case" in attribute


def test_an_attribute_sent_without_its_attr_prefix_is_named_not_called_dropped():
    """A CRM row built from its accounts table (segment, not attr_segment) was told the accounts table had
    dropped or renamed segment, a column the row held."""
    error = str(FeatureMismatchError(["attr_segment", "attr_size"], present=["segment", "Size", "recency"]))
    assert "present without the attr_ prefix: segment for attr_segment, Size for attr_size" in error
    assert "no column" not in error
    assert "dropped or renamed" not in error
    partly = str(FeatureMismatchError(["attr_segment", "attr_region"], present=["segment"]))
    assert "segment for attr_segment" in partly
    assert "no column region (dropped or renamed" in partly
