"""kamml.spark.session: Spark columns taken by their names as spelled (parity: test_spark_job.py)."""

from __future__ import annotations

import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.features import build_features

from .conftest import LOCAL1

pytestmark = [pytest.mark.spark]


def test_an_attribute_whose_name_holds_a_backtick_is_a_feature_on_spark_as_in_memory(spark, tmp_path):
    """The Spark features quoted each column as `name` without doubling a backtick inside it: an accounts
    column named seg`ment stopped the features with Spark's INVALID_ATTRIBUTE_NAME_SYNTAX."""
    from kamml.spark import features_frame

    world = synthetic.generate(60, seed=4, years=1.0)
    world.accounts = world.accounts.rename(columns={"segment": "seg`ment"})
    world.write(tmp_path)
    local = load_data(tmp_path)
    cut = local.end.normalize()
    expected = build_features(local, cut)["attr_seg`ment"]
    on_spark = features_frame(load_data(tmp_path, Config.from_dict({"engine": LOCAL1})), cut).toPandas()
    got = on_spark.set_index("account_id")["attr_seg`ment"]
    assert got.reindex(expected.index).tolist() == expected.tolist()
