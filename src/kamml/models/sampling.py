"""A fixed sample of accounts for training on large books (``models.max_training_accounts``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["sample_ids"]


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
