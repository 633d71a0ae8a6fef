from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kamml.data.sampling import RunningSample, sample_ids


@pytest.mark.parametrize("text", [False, True])
def test_a_running_sample_over_batches_is_the_sample_of_all_the_ids(text):
    rng = np.random.default_rng(5)
    ids = pd.Index(rng.choice(10_000, size=3_000, replace=False))
    if text:
        ids = ids.astype(str)
    batches = [ids[rng.random(len(ids)) < share] for share in (0.9, 0.5, 0.7, 0.2)]
    running = RunningSample(400)
    for batch in batches:
        kept = running.add(batch)
        assert len(kept) <= 400
    union = pd.Index(pd.unique(np.concatenate([b.to_numpy() for b in batches])))
    assert set(running.ids) == set(sample_ids(union, 400))
    assert running.seen == len(union)


def test_a_running_sample_keeps_every_id_while_there_are_few():
    running = RunningSample(10)
    assert running.seen == 0
    running.add(pd.Index([3, 1, 2]))
    running.add(pd.Index([2, 4]))
    assert sorted(running.ids) == [1, 2, 3, 4]
    assert running.seen == 4
