"""The CDNOW transaction log (Fader, Hardie & Lee 2005), packaged compressed inside kamml.

The files and their provenance (source, sha256, the classic calibration/holdout protocol) are in
`kamml/datasets/files/PROVENANCE.md`; `provenance()` returns that note.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["CALIBRATION_END", "HOLDOUT_END", "SHA256", "load_cdnow", "packaged_paths", "provenance"]

#: The classic split: calibration 1997-01-01..1997-09-30, holdout 1997-10-01..1998-06-30 (39 weeks each).
CALIBRATION_END = pd.Timestamp("1997-09-30")
HOLDOUT_END = pd.Timestamp("1998-06-30")

#: sha256 of the uncompressed files, as recorded in PROVENANCE.md; checked on every load.
SHA256 = {
    "CDNOW_master.txt": "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
    "CDNOW_sample.txt": "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
}


def _read_packaged(name: str) -> bytes:
    """Uncompressed bytes of a packaged file, checked against its recorded sha256."""
    raw = gzip.decompress(resources.files("kamml.datasets").joinpath(f"files/{name}.gz").read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[name]:
        raise RuntimeError(f"packaged {name} is corrupt: sha256 {digest} != {SHA256[name]}")
    return raw


def load_cdnow(sample: bool = False) -> pd.DataFrame:
    """Load the CDNOW transactions as a table in kamml's transaction contract.

    Parameters
    ----------
    sample : bool, default False
        False: all 23,570 customers of the master file (69,659 rows). True: the 1/10 systematic sample of
        2,357 customers (6,919 rows) on which Fader, Hardie & Lee (2005) report the BG/NBD parameters.

    Returns
    -------
    pandas.DataFrame
        One row per transaction: ``account_id`` (int64; 1..2357 renumbered in the sample, the master id
        in the master file), ``ts`` (datetime64, day precision), ``quantity`` (number of CDs, float64),
        ``amount`` (dollars, float64; 80 master rows are 0 or below), and for the sample ``master_id``.

    Examples
    --------
    >>> from kamml.datasets import load_cdnow
    >>> load_cdnow(sample=True).shape
    (6919, 5)
    """
    if sample:
        names = ["master_id", "account_id", "date", "quantity", "amount"]
        text = _read_packaged("CDNOW_sample.txt")
        frame = pd.read_csv(io.BytesIO(text), sep=r"\s+", header=None, names=names, dtype={"date": str})
    else:
        names = ["account_id", "date", "quantity", "amount"]
        text = _read_packaged("CDNOW_master.txt")
        frame = pd.read_csv(io.BytesIO(text), sep=r"\s+", header=0, names=names, dtype={"date": str})
    frame["ts"] = pd.to_datetime(frame.pop("date"), format="%Y%m%d")
    frame["quantity"] = frame["quantity"].astype("float64")
    frame["amount"] = frame["amount"].astype("float64")
    cols = ["account_id", "ts", "quantity", "amount"] + (["master_id"] if sample else [])
    return frame[cols].astype({"account_id": "int64"})


def packaged_paths() -> dict[str, Path]:
    """The packaged CDNOW files by name, so an output path can be refused when it would replace one."""
    files = resources.files("kamml.datasets").joinpath("files")
    return {name: Path(str(files.joinpath(f"{name}.gz"))) for name in SHA256}


def provenance() -> str:
    """The provenance note of the packaged CDNOW files (source, licence, checksums, protocol)."""
    return resources.files("kamml.datasets").joinpath("files/PROVENANCE.md").read_text(encoding="utf-8")
