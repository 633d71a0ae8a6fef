import pandas as pd
import pytest

from kamml.datasets import load_cdnow, provenance


def test_master_shape_and_counts():
    df = load_cdnow()
    assert df.shape == (69_659, 4)
    assert df["account_id"].nunique() == 23_570
    assert (df["amount"] <= 0).sum() == 80
    assert df["ts"].min() == pd.Timestamp("1997-01-01")
    assert df["ts"].max() == pd.Timestamp("1998-06-30")
    # every customer's first purchase is in the first quarter of 1997
    assert df.groupby("account_id")["ts"].min().max() < pd.Timestamp("1997-04-01")


def test_sample_is_a_subset_of_master():
    sample = load_cdnow(sample=True)
    assert sample.shape == (6_919, 5)
    assert sample["account_id"].nunique() == 2_357
    assert sample["account_id"].min() == 1
    master = load_cdnow()
    merged = sample.merge(
        master.rename(columns={"account_id": "master_id"}),
        on=["master_id", "ts", "quantity", "amount"],
        how="left",
        indicator=True,
    )
    assert (merged["_merge"] == "both").all()


@pytest.mark.parametrize("sample", [False, True])
def test_dtypes(sample):
    df = load_cdnow(sample=sample)
    assert str(df["account_id"].dtype) == "int64"
    assert str(df["ts"].dtype).startswith("datetime64")
    assert str(df["amount"].dtype) == "float64"


def test_provenance_is_packaged():
    text = provenance()
    assert "Fader" in text
    assert "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef" in text
