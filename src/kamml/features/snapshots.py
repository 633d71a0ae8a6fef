"""Training snapshots kept for reuse within one job (`SnapshotCache`).

A training job backtests at cutoff c - H and then trains the deployed bundle at c. With snapshots a
multiple of H apart the two sets of snapshot cutoffs overlap (the demo's 4 snapshots 90 days apart and
H = 180: two of them), and the deployed model's latest snapshot is the backtest's test cutoff, whose
features and labels the backtest has built: three of four snapshots were built twice, 20-25 s each
on a million accounts. The cache keeps the ones the later stage will ask for, and only the rows it can
use: with ``models.max_training_accounts`` a snapshot's rows are cut to the accounts that hash lowest
among its own, a superset of the rows any later sample keeps of it (an account among the lowest of all
the snapshots' accounts is among the lowest of any one snapshot's that holds it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kamml.config import Config
from kamml.data.sampling import sample_ids

__all__ = ["Snapshot", "SnapshotCache", "snapshot_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One training snapshot as `build_training_frame` stacks it: rows, every account id, referral total.

    `rows` are features joined with labels, indexed by account_id, possibly cut to a sample; `ids` and
    `referral_value` cover every account of the snapshot, for the sample's count and what it left out.
    """

    rows: pd.DataFrame
    ids: pd.Index
    referral_value: float

    @classmethod
    def of(cls, frame: pd.DataFrame, limit: int | None) -> Snapshot:
        """The snapshot of a whole joined frame, its rows cut to the `limit` lowest-hashing accounts."""
        referral = float(frame["referral_value"].sum()) if "referral_value" in frame.columns else 0.0
        rows = frame if limit is None else frame[frame.index.isin(sample_ids(frame.index, limit))]
        return cls(rows, frame.index, referral)


def snapshot_key(cutoff: Any, config: Config) -> tuple[pd.Timestamp, str]:
    """What a snapshot's rows depend on besides the data: cutoff, features, time and label settings."""
    settings = config.model_dump_json(include={"features": True, "time": True, "models": {"churn_label"}})
    return pd.Timestamp(cutoff).normalize(), settings


class SnapshotCache:
    """Snapshots one stage of a job builds and a later stage will ask for, each handed out once.

    `want` names the snapshots to keep, each a cutoff with the config it is built with (a date the
    later stage builds with other settings, as the season's rfm-only snapshots, is not kept for it);
    `put` stores a snapshot only when it is wanted and `take` removes what it returns, so a snapshot is
    held from the stage that built it to the one that uses it. `limit` is the job's
    ``models.max_training_accounts`` (None: every row is kept).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self._wanted: set[tuple[pd.Timestamp, str]] = set()
        self._kept: dict[tuple[pd.Timestamp, str], Snapshot] = {}
        self.reused = 0

    def want(self, snapshots: Iterable[tuple[Any, Config]]) -> None:
        """Keep these (cutoff, config) snapshots from now on, and only these."""
        self._wanted = {snapshot_key(cutoff, config) for cutoff, config in snapshots}

    def wants(self, cutoff: Any, config: Config) -> bool:
        """Whether the snapshot at `cutoff` built with `config` would be kept."""
        return snapshot_key(cutoff, config) in self._wanted

    def put(self, cutoff: Any, config: Config, frame: pd.DataFrame) -> None:
        """Keep the joined features and labels `frame` at `cutoff` built with `config`, if wanted."""
        key = snapshot_key(cutoff, config)
        if key in self._wanted:
            self._kept[key] = Snapshot.of(frame, self.limit)

    def clear(self) -> None:
        """Drop every kept snapshot and want no more: the stages that could use them are over."""
        self._wanted = set()
        self._kept.clear()

    def take(self, cutoff: Any, config: Config, limit: int | None = None) -> Snapshot | None:
        """The snapshot kept at `cutoff` for `config`, removed from the cache; None when there is none.

        `limit` is the sample the caller keeps: a snapshot cut to a smaller one cannot serve it.
        """
        snapshot = self._kept.pop(snapshot_key(cutoff, config), None)
        if snapshot is None or (self.limit is not None and (limit is None or limit > self.limit)):
            return None
        self.reused += 1
        log.debug("training snapshot at %s reused", pd.Timestamp(cutoff).date())
        return snapshot

    def __len__(self) -> int:
        return len(self._kept)
