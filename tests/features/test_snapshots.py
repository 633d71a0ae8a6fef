from __future__ import annotations

import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.features import build_training_frame, training_cutoffs
from kamml.features.snapshots import SnapshotCache

CFG = {"time": {"horizon_days": 90}, "features": {"windows": [30, 90]}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    world = synthetic.generate(400, seed=5, years=2.0)
    path = tmp_path_factory.mktemp("world")
    world.write(path)
    return load_data(path, Config.from_dict(CFG))


@pytest.mark.parametrize("limit", [None, 150])
def test_a_snapshot_built_earlier_gives_the_frame_a_fresh_build_gives(data, limit):
    """Two stages whose snapshots overlap in one cutoff, the later stage with more accounts than the earlier.

    With a sample, the kept rows are cut to the lowest-hashing accounts of that snapshot alone, yet the
    later stage's sample (over more accounts) keeps the same rows, counts and referral total as a build
    from scratch.
    """
    cfg = Config.from_dict(CFG)
    end = data.end.normalize()
    later = training_cutoffs(end, 90, 3, 45)  # end-90, end-135, end-180
    earlier = training_cutoffs(end - pd.Timedelta(days=90), 90, 3, 45)  # end-180, end-225, end-270
    cache = SnapshotCache(limit)
    cache.want([(c, cfg) for c in later])
    build_training_frame(data, earlier, cfg, max_accounts=limit, snapshots=cache)
    assert len(cache) == 1  # only the shared cutoff is kept
    cache.want(())
    reused = build_training_frame(data, later, cfg, max_accounts=limit, snapshots=cache)
    assert cache.reused == 1
    assert len(cache) == 0
    fresh = build_training_frame(data, later, cfg, max_accounts=limit)
    pd.testing.assert_frame_equal(reused, fresh)
    assert reused.attrs == fresh.attrs
    if limit is not None:
        assert reused.attrs["sampled_from"] > limit
        shared = fresh[fresh["snapshot"] == later[2]]
        assert 0 < shared["account_id"].nunique() < limit  # the sample bites on the shared snapshot


def test_a_kept_snapshot_serves_only_the_same_settings_and_no_larger_sample(data):
    cfg = Config.from_dict(CFG)
    cut = data.end.normalize() - pd.Timedelta(days=180)
    cache = SnapshotCache(100)
    cache.want([(cut, cfg)])
    build_training_frame(data, [cut], cfg, max_accounts=100, snapshots=cache)
    other = Config.from_dict({**CFG, "features": {"windows": [30, 180]}})
    assert cache.take(cut, other, 100) is None  # other feature settings: another key
    assert cache.take(cut, cfg, 200) is None  # rows cut to 100 accounts cannot serve a sample of 200
    build_training_frame(data, [cut], cfg, max_accounts=100, snapshots=cache)
    assert cache.take(cut, cfg, None) is None  # nor every account
    build_training_frame(data, [cut], cfg, max_accounts=100, snapshots=cache)
    snapshot = cache.take(cut, cfg, 50)
    assert snapshot is not None
    assert len(snapshot.rows) == 100 < len(snapshot.ids)


def test_nothing_is_kept_unless_wanted(data):
    cfg = Config.from_dict(CFG)
    cut = data.end.normalize() - pd.Timedelta(days=180)
    cache = SnapshotCache()
    frame = build_training_frame(data, [cut], cfg, snapshots=cache)
    assert len(cache) == 0
    assert cache.reused == 0
    cache.want([(cut, cfg)])
    build_training_frame(data, [cut], cfg, snapshots=cache)
    kept = cache.take(cut, cfg)
    assert kept is not None
    assert "snapshot" not in kept.rows.columns  # the stacked frame's column is not written into it
    pd.testing.assert_frame_equal(frame, build_training_frame(data, [cut], cfg))
