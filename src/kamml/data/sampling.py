"""A fixed sample of accounts for training on large books (``models.max_training_accounts``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["RunningSample", "sample_ids"]


def sample_ids(ids: pd.Series | pd.Index, limit: int) -> pd.Index:
    """The `limit` distinct ids whose text hashes lowest (all of them when there are no more).

    A fixed pseudo-random sample: the same from run to run, from engine to engine and across the
    models that use it (947 and "947" hash alike, 947.0 does not), so the value, churn and influence
    models and the effort response learn from the same accounts.
    """
    unique = pd.Index(pd.unique(pd.Series(ids)))
    if len(unique) <= limit:
        return unique
    keys = pd.util.hash_pandas_object(pd.Series(unique.astype(str)), index=False).to_numpy()
    return unique[np.argsort(keys, kind="stable")[:limit]]


class RunningSample:
    """`sample_ids` over ids that arrive in batches (one per training snapshot), holding at most `limit`.

    An id among the `limit` lowest hashes of all the batches is among the `limit` lowest of any batches
    that hold it, so keeping only the lowest `limit` seen so far loses none of them: after the last
    batch `ids` is what `sample_ids` gives on every id at once, while no more than `limit` accounts'
    rows per snapshot need be kept meanwhile.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.ids: pd.Index | None = None
        self._seen: list[pd.Index] = []

    def add(self, ids: pd.Index) -> pd.Index:
        """Take a batch's ids; return the sample so far (the rows to keep of this batch are among it)."""
        self._seen.append(pd.Index(pd.unique(ids)))
        batch = self._seen[-1] if self.ids is None else self.ids.append(self._seen[-1])
        self.ids = sample_ids(batch, self.limit)
        return self.ids

    @property
    def seen(self) -> int:
        """How many distinct ids the batches held in all."""
        if not self._seen:
            return 0
        return len(pd.unique(np.concatenate([ids.to_numpy() for ids in self._seen])))
