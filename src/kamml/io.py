"""Atomic writing of output tables (a killed job leaves the old file or the new one), and file locks.

Also the reading of values every layer shares: numbers (`float_values`), dates (`TEMPORAL_TYPES`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fnmatch
import json
import logging
import math
import numbers
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kamml.errors import DataError
from kamml.text import counted

__all__ = [
    "MANIFEST",
    "OUTSIDE_INT64_RULE",
    "PARQUET_SUFFIXES",
    "TEMPORAL_INFERRED",
    "TEMPORAL_TYPES",
    "UTF8_FIX",
    "atomic_path",
    "binary_kind",
    "check_not_input",
    "check_not_local_input",
    "check_output_dir",
    "check_output_path",
    "check_writable",
    "clean_name",
    "common_folder",
    "float_values",
    "hold_lock",
    "is_hidden",
    "is_parquet_name",
    "json_text",
    "parquet_not_utf8",
    "process_exists",
    "read_manifest",
    "real_output",
    "refuse_masked",
    "visible_files",
    "write_parquet",
    "write_table",
    "write_together",
    "writer_tag",
]

#: Id text (the input tables and the scores): a whole number of up to int64's 19 digits as Python writes
#: it, without leading zeros or a "+" ("007" stays text: it is a code, not a number), nor "-0" (a code
#: too, as the scores read it: cast, it merged into account 0); 19 digits may still lie beyond int64,
#: which a cast then tells.
INT_PATTERN = r"^(0|-?[1-9][0-9]{0,18})$"
#: The text of a whole float id ("119.0", "-3.00"), the whole number it spells being `INT_PATTERN`'s
#: ("-0.0" spells the code "-0", as the tables and the scores both read it).
WHOLE_FLOAT_PATTERN = r"^-?(0|[1-9][0-9]{0,18})\.0+$"
#: The rule of a whole-number id beyond int64 (a uint64 or decimal id), in the input tables and the scores
#: on every engine alike: ids are int64 in the joins, where a uint64 above 2**63 - 1 wraps or fails.
OUTSIDE_INT64_RULE = "id outside int64 (|id| above 2**63 - 1, the largest kamml keeps)"

#: Number text (amounts, quantities, hours, scores): decimal digits with an optional sign, point and
#: exponent, or inf / infinity / nan in any case. The engines' casts differ beyond it: DuckDB reads
#: "1_000" as 1000 and Spark (Java) reads "1d" and "0x1p3"; both are refused on every engine.
NUMBER_PATTERN = r"(?i)^\s*[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)\s*$"
#: The text of a NaN, with or without a sign, in any case ("NaN", "-nan" as C's printf writes it): Spark's
#: cast reads only Java's "NaN" (with a sign: no number), pandas reads none as a number.
NAN_PATTERN = r"(?i)^\s*[+-]?nan\s*$"

#: Parquet file endings (in any case of letters), for the input tables, the scores and Spark's parts alike.
PARQUET_SUFFIXES = (".parquet", ".pq")

#: The objects of dates, times and durations (a Timestamp is a datetime, a Timedelta a timedelta): numpy
#: casts them to integer nanoseconds, so a model's features and a scorer's ids look for them among others.
TEMPORAL_TYPES = (dt.date, dt.time, dt.timedelta, np.datetime64, np.timedelta64, pd.Period)
#: What `pandas.api.types.infer_dtype` calls a column of `TEMPORAL_TYPES` held as objects.
TEMPORAL_INFERRED = frozenset(
    {"datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "period"}
)
#: Words for a numpy dtype kind that is no real number: dates, durations, complex values.
_NOT_REAL_KINDS = {"M": "dates", "m": "durations", "c": "complex values"}


def is_hidden(parts: Iterable[str]) -> bool:
    """Whether a path's parts name a file or folder that Spark, Hadoop and Arrow skip.

    Those are ``_x`` and ``.x`` (``_SUCCESS``, ``_committed_1``, ``.part-0.crc``) and ``x._COPYING_``, a
    file ``hadoop fs -put`` is still writing: Spark skips it, and DuckDB read it as a part (or refused it).
    A ``_x`` holding ``=`` is not hidden, as Spark keeps it: ``_y=1/`` is a partition folder (Spark's
    ``partitionBy("_y")``), which kamml skipped while Spark read its rows.
    """
    return any(
        part.startswith(".") or (part.startswith("_") and "=" not in part) or part.endswith("._COPYING_")
        for part in parts
    )


def is_parquet_name(name: str) -> bool:
    """Whether a file name ends as Parquet (`PARQUET_SUFFIXES`, any case of letters)."""
    return name.lower().endswith(PARQUET_SUFFIXES)


def visible_files(folder: Path) -> list[Path]:
    """The files under a folder, less those Spark, Hadoop and Arrow treat as hidden (`is_hidden`).

    A path part starting with ``_`` or ``.`` (``_temporary/``, ``_SUCCESS``, ``.part-0.crc``, a writer's
    staging folder) is skipped, so a folder written by Spark reads as Spark reads it and a failed job's
    leftover parts are not counted twice. The one rule of a folder's parts, for kamml's readers and for
    `kamml.spark`'s footer checks alike.
    """
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_hidden(p.relative_to(folder).parts))


#: The text of an infinity, with or without a sign, in any case ("inf", "-Infinity").
INF_PATTERN = r"(?i)^\s*[+-]?inf(inity)?\s*$"

FORMATS = {".parquet": "parquet", ".csv": "csv"}


log = logging.getLogger(__name__)


def common_folder(paths: Iterable[str | Path]) -> Path:
    """The folder that holds every one of `paths` (files, folders of parts or globs), made absolute.

    Their common path, or its folder when that is one file or a glob (a single table's path).
    """
    common = Path(os.path.commonpath([str(Path(p).expanduser().resolve()) for p in paths]))
    return common if common.is_dir() else common.parent


@contextlib.contextmanager
def hold_lock(path: Path, waiting: str, timeout: float, timed_out: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if needed) for the block, waiting for it if need be.

    Logs `waiting` once when another process holds it, and raises ``timed_out()`` after `timeout`
    seconds. The file is opened read-only (a lock needs no write access), so users sharing a store or a
    data folder share its lock file whoever created it. A platform without ``fcntl``, a lock file that
    cannot be opened or a file system without locks goes on without one. Closing the file releases the
    lock; the file stays (removing it would race with a waiting process).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None  # type: ignore[assignment]
    fd = -1
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            log.debug("cannot open the lock file %s (%s): going on without the lock", path, exc)
    try:
        if fd >= 0:
            _wait_for_lock(fd, path, waiting, timeout, timed_out)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _wait_for_lock(
    fd: int, path: Path, waiting: str, timeout: float, timed_out: Callable[[], Exception]
) -> None:
    """Take the exclusive lock of `fd` (`hold_lock`), polling while another process holds it."""
    import fcntl

    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):  # no locks on this file system
                log.debug("cannot lock %s (%s): going on without the lock", path, exc)
                return
        if time.monotonic() > deadline:
            raise timed_out() from None
        if not said:
            log.info("%s", waiting)
            said = True
        time.sleep(0.2)


#: The file written last into a job's output folder, naming the run and the files of the set it vouches for
#: (`kamml.jobs.outputs`); here so that the tracking layer can read it too (`close_abandoned_runs`).
MANIFEST = "manifest.json"


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest (the last complete set written there), or None while a job writes it."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def json_text(payload: Any, indent: int | None = 2) -> str:
    """`payload` as strict JSON: NaN and infinities as null, since JSON.parse and most parsers refuse NaN.

    Numbers of numpy and other types are written as Python numbers; any other object as its float.
    """
    return json.dumps(_finite(payload), indent=indent, allow_nan=False, default=_float_or_null)


def _finite(value: Any) -> Any:
    """`value` with every non-finite number (in nested mappings and lists too) replaced by None."""
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _float_or_null(value)
    return value


def _float_or_null(value: Any) -> float | None:
    """The float of `value`, or None when it is NaN or infinite."""
    number = float(value)
    return number if math.isfinite(number) else None


def _host() -> str:
    """The machine's name as a temporary file's name holds it (dots as _, at most 60 characters)."""
    return socket.gethostname().replace(".", "_")[:60]


def writer_tag() -> str:
    """The writer in a temporary file's name: ``kamml-<pid>@<host>``."""
    return f"kamml-{os.getpid()}@{_host()}"


def _remove_dead_writers_files(target: Path) -> None:
    """Remove `atomic_path`'s temporary files for `target` whose writer, on this host, is gone.

    A killed `kamml score --out` left its hidden ``.<name>.<random>.tmp`` (a whole scores table) beside
    the output for good. Files of a live process, of another host or without a writer in the name are
    left alone: another job may be writing them.
    """
    host = _host()
    prefix = f".{target.name}.kamml-"
    try:
        names = [p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return
    for path in names:
        pid, at, rest = path.name[len(prefix) :].partition("@")
        if not (at and pid.isdigit() and rest.startswith(f"{host}.")) or process_exists(int(pid)):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            log.info("removed %s, a temporary file left by a kamml process that did not finish", path)


def process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; an id beyond the platform's
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file's bytes reach the disk before the rename, and the rename before this returns (`fsync`):
    after a crash of the machine (not only of the job) the name holds the old file or the whole new
    one, never an empty file that a manifest written next vouches for. The temporary file's name holds
    the writer's process id and host, so that a killed writer's file is removed by the next write of
    `path` (`_remove_dead_writers_files`). A symbolic link at `path` is written through (`real_output`).
    """
    target = real_output(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_writers_files(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{writer_tag()}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise DataError(f"cannot write {target}: {_reason(exc)}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes files private (0600); outputs get the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_umask())
            fsync_path(tmp_path)
        try:
            os.replace(tmp_path, target)
        except OSError as exc:
            raise DataError(f"cannot write {target}: {_reason(exc)}") from exc
        fsync_path(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries (renames), to the disk; best effort.

    A file system or platform that cannot (a folder on Windows, some network mounts) is left as it is.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    """The operating system's reason for a failed file operation, in words."""
    return exc.strerror or str(exc)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet with microsecond timestamps: Spark cannot read Parquet's nanosecond timestamps.

    A column of text mixed with numbers (ids given as ``[1, "A-2"]`` in Python, which kamml takes as
    ids like any other) is written as text, as a CSV writes it; Arrow refused it with a raw error.
    """
    mixed = [c for c in frame.columns if frame[c].dtype == object and _mixed_text(frame[c])]
    if mixed:
        frame = frame.assign(**{c: frame[c].where(frame[c].isna(), frame[c].astype(str)) for c in mixed})
    whole = [c for c in frame.columns if frame[c].dtype == object and _integers_with_gaps(frame[c])]
    if whole:
        frame = frame.assign(**{c: frame[c].astype("Int64") for c in whole})
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)


def _integers_with_gaps(column: pd.Series) -> bool:
    """Whether an object column holds only integers beside missing values (owners 101, 102 and none).

    Arrow wrote such a column as double: the allocation's and the scores' owner 101 read 101.0 in Parquet,
    where their CSV has 101 (docs/config.md).
    """
    missing = column.isna()
    if not missing.any() or missing.all():
        return False
    values = column[~missing]
    if pd.api.types.infer_dtype(values, skipna=False) != "integer":  # text (drivers, reasons): at C speed
        return False
    return bool(
        values.map(
            lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool) and -(2**63) <= v < 2**63
        ).all()
    )


def _mixed_text(column: pd.Series) -> bool:
    """Whether an object column holds text beside other values (numbers) apart from missing ones."""
    if pd.api.types.infer_dtype(column, skipna=True) not in ("mixed", "mixed-integer", "mixed-integer-float"):
        return False
    values = column.dropna()
    text = values.map(lambda v: isinstance(v, str))
    numbers = values.map(lambda v: isinstance(v, int | float | np.integer | np.floating))
    return bool(text.any() and (text | numbers).all())


def check_output_path(path: str | Path, inputs: Mapping[str, str | Path] | None = None) -> str:
    """The table format of an output path (``parquet`` or ``csv``), checked with `check_writable`.

    Called before any long work, so a bad name or place fails at once and not after the job. With
    `inputs` (table name -> the file, folder or glob it is read from), an output that would replace or
    join an input table is refused too (`check_not_input`).
    """
    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise DataError(f"cannot write {target}: use a .parquet or .csv file name")
    check_writable(target)
    if inputs:
        check_not_input(target, inputs)
    return kind


def check_not_input(path: str | Path, inputs: Mapping[str, str | Path]) -> Path:
    """`path` if writing it leaves every input table as it is; a `DataError` naming the table otherwise.

    `inputs` maps a table name to the file, folder of parts or glob it is read from. Refused: the input
    file itself (``--out data/transactions.parquet`` replaced the table the job had just read, and the
    next run failed), a path inside an input folder or matching an input glob (read as a part of that
    table next time), and a folder holding an input (a Spark output replaces its folder whole). Paths are
    compared resolved, so a symbolic link or a relative path does not hide an input.
    """
    target = Path(path)
    out = target.expanduser().resolve()
    for name, source in inputs.items():
        text = str(source)
        if any(ch in text for ch in "*?["):
            pattern = str(Path(text).expanduser().absolute())
            if fnmatch.fnmatch(str(out), pattern) or fnmatch.fnmatch(
                str(target.expanduser().absolute()), pattern
            ):
                raise DataError(
                    f"cannot write {target}: it matches {source}, the files the {name} table is read from; "
                    "write the output elsewhere"
                )
            continue
        src = Path(text).expanduser().resolve()
        what = "the config file" if name == "config" else f"the {name} table"
        if out == src:
            why = f"it is {what} the job reads"
        elif src in out.parents:
            why = f"it is inside {src}, the folder the {name} table is read from (every file in it is a part)"
        elif out in src.parents:
            why = f"it holds {src}, {what} the job reads"
        else:
            continue
        raise DataError(f"cannot write {target}: {why}; write the output elsewhere")
    return target


def check_not_local_input(out: str | Path, inputs: dict[str, Any]) -> None:
    """A DataError when a local output would replace or land inside a local input (`check_not_input`).

    The CLI checked this before calling the Spark writers; the Python API did not, so ``score_spark``
    into an input folder wrote its scores among the activities' parts (and `write_features` over the
    transactions file replaced them). Paths with a scheme (hdfs://, s3a://) are left to the cluster's
    file system.
    """

    def local(path: Any) -> bool:
        return isinstance(path, str | Path) and "://" not in str(path)

    if local(out):
        check_not_input(out, {name: path for name, path in inputs.items() if local(path)})


def real_output(path: str | Path) -> Path:
    """The file an output `path` writes: the one a symbolic link there names, else `path` itself.

    A link named as the output (``latest.csv`` to a CRM's drop folder) is written through, as a shell's
    ``>`` does: replaced by a plain file, it left the file it pointed to stale. A broken link whose
    folder is missing, at `path` or above it, is a `DataError` naming it (`_check_links`).
    """
    target = Path(path)
    _check_links(target, file=True)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def _check_links(target: Path, file: bool) -> None:
    """Refuse writing `target` when it or a folder above it is a broken symbolic link.

    Making the folder it names was the OS's "File exists" (a link is not a folder), and kamml never
    creates it: a share not mounted would get the outputs on the local disk. A broken link at a `file`
    output whose folder exists is fine: the file it names is written.
    """
    for link in (target, *target.parents):
        if not link.is_symlink() or link.exists():
            continue
        real = Path(os.path.realpath(link))
        if file and link == target and real.parent.is_dir():
            continue
        what = "it" if link == target else str(link)
        raise DataError(
            f"cannot write {target}: {what} is a broken symbolic link (to {real}, which does not exist); "
            "create what it points to or remove the link"
        )


def check_writable(path: str | Path) -> Path:
    """`path` if a file can be written there; a `DataError` saying why not, before any work is done.

    Refused: an existing folder at `path`, a file where a parent folder should be, a broken symbolic
    link (`real_output`), and a place the process cannot create files in (checked by creating and
    removing an empty file in the nearest existing folder, so read-only mounts and special file systems
    are caught, not only permissions).
    """
    target = Path(path)
    if target.is_dir():
        raise DataError(f"cannot write {target}: it is an existing folder; name a file inside it")
    _check_folder(real_output(target).parent, target)
    return target


def check_output_dir(path: str | Path) -> Path:
    """`path` if output files can be written into it (it may not exist yet); a `DataError` otherwise.

    A broken symbolic link at `path` or above is refused naming it (`_check_links`).
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise DataError(f"cannot write into {target}: it is a file, not a folder")
    _check_links(target, file=False)
    _check_folder(target, target)
    return target


def _check_folder(folder: Path, target: Path) -> None:
    """Refuse `target` when `folder` (or its nearest existing ancestor) is a file or not writable."""
    existing = folder if str(folder) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"cannot write {target}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kamml-write-check.", dir=existing)
    except OSError as exc:
        raise DataError(f"cannot write {target}: {_reason(exc)} (in {existing})") from exc
    os.close(fd)
    os.unlink(probe)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` to Parquet or CSV (by the file extension) atomically; return the path."""
    target = Path(path)
    kind = check_output_path(target)
    with atomic_path(target) as tmp:
        _write_frame(frame, tmp, kind)
    return target


def write_together(tables: Mapping[Path, pd.DataFrame], files: Mapping[Path, bytes] | None = None) -> None:
    """Write tables (Parquet or CSV by extension) and files as one set: all or none of them replaced.

    Each is written to a temporary file beside its target, and all are renamed into place only once
    every one is written: `kamml allocate --curve` renamed the allocation before writing the curve, so a
    curve (or chart) that failed left a new plan beside the old curve and chart.
    """
    kinds = {Path(path): check_output_path(path) for path in tables}
    with contextlib.ExitStack() as stack:  # a failure inside unlinks every temporary file, renames none
        for path, frame in tables.items():
            _write_frame(frame, stack.enter_context(atomic_path(path)), kinds[Path(path)])
        for path, data in (files or {}).items():
            stack.enter_context(atomic_path(path)).write_bytes(data)


def _write_frame(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """Write `frame` to `path` as `kind` ("parquet" or "csv"), whatever the path's own extension."""
    if kind == "parquet":
        write_parquet(frame, path)
    else:
        frame.to_csv(path, index=False)


#: The first bytes of binary files that users save under a .csv name, and what to call them.
FILE_MAGIC = {
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip file (an Excel .xlsx?)",
}


def clean_name(name: str) -> str:
    """A column's name as matched: without invisible characters (a BOM, a zero-width space) or outer spaces.

    The same for frames and files: pandas reading a CSV with a BOM as "utf-8" keeps it in the first name,
    and a Parquet file saved from that frame was refused as missing a column its message listed (the BOM
    invisible), where the frame itself was accepted.
    """
    return "".join(ch for ch in name if ch.isprintable()).strip()


def binary_kind(path: Path) -> str | None:
    """What a binary file is by its first bytes (Parquet, gzip, zip/xlsx), or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    return next((kind for magic, kind in FILE_MAGIC.items() if head.startswith(magic)), None)


#: What to do about Parquet text whose bytes are not UTF-8 (`parquet_not_utf8`, the scores on Spark).
UTF8_FIX = "save it as UTF-8 (Latin-1 or Windows-1252? kamml reads Parquet text as UTF-8)"


def parquet_not_utf8(source: Path) -> str | None:
    """Why a Parquet file or folder is refused: its text columns holding bytes that are not UTF-8, else None.

    Read only after a read failed (pandas: "Wrapping 2\ufffd failed"; DuckDB: "Invalid string encoding"):
    Arrow reads such text unchecked, and only chunks that fail its check are decoded value by value. Only
    the text columns are read, one at a time: a category (dictionary) column of such text cannot be read.
    """
    try:
        names = [f.name for f in pq.ParquetDataset(source).schema if _is_text(f.type)]
    except (OSError, ValueError, pa.ArrowException):
        return None
    reasons = []
    for name in names:
        try:
            column = pq.read_table(source, columns=[name]).column(0)
        except pa.ArrowInvalid as exc:
            if "utf8" in str(exc).lower():  # Arrow checks a dictionary's text as it reads it
                reasons.append(f"column {name} holds text that is not UTF-8")
            continue
        except (OSError, ValueError, pa.ArrowException):
            continue
        bad = _not_utf8_values(column)
        if bad:
            examples = ", ".join(repr(v) for v in bad[:3])
            reasons.append(
                f"column {name} holds text that is not UTF-8 ({counted(len(bad), 'value')}, e.g. {examples})"
            )
    if not reasons:
        return None
    return f"{'; '.join(reasons)}; {UTF8_FIX}"


def _not_utf8_values(column: pa.ChunkedArray) -> list[bytes]:
    """Values of a text column whose bytes are not UTF-8, looked at only in chunks failing Arrow's check."""
    bad: list[bytes] = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):  # a pandas category: its texts are in the dictionary
            chunk = chunk.dictionary.take(chunk.indices)
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            large = pa.types.is_large_string(chunk.type)
            raw = chunk.view(pa.large_binary() if large else pa.binary())
            bad.extend(v for v in raw.to_pylist() if v is not None and utf8_text(v) is None)
    return bad


def _is_text(kind: pa.DataType) -> bool:
    """Whether a Parquet column of type `kind` holds text (a pandas category's texts in its dictionary)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def utf8_text(value: bytes | bytearray) -> str | None:
    """The UTF-8 text of `value`, or None when its bytes are not UTF-8."""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None


def float_values(
    values: Any, name: str, *, strict: bool = False, leave_out: str = "", hint: str = ""
) -> npt.NDArray[np.float64]:
    """`values` as floats, or a ValueError naming `name`; pd.NA and pd.NaT among objects are NaN.

    numpy reads a masked array's masked entries as the numbers under the mask, dates and durations as
    integer nanoseconds (held as objects: as numbers of their units, or refused in float()'s words) and a
    complex number as its real part, and float() refuses pd.NA: each is told here instead, for the
    optimizer's arguments and the metrics' inputs alike. `strict` refuses true/false and text too (numpy
    reads them as 1/0 and as the numbers they spell); `leave_out` ends the masked array's advice, `hint`
    the rule of dates, durations and complex values.
    """
    refuse_masked(values, name, leave_out)
    raw = np.asarray(values)
    if strict and raw.dtype == np.bool_:
        raise ValueError(f"{name} must be numbers, got true/false")
    own: Any = getattr(values, "dtype", None)  # a pandas dtype (dates with a time zone) hides from numpy's
    dtype = own if getattr(own, "kind", None) in ("M", "m") else raw.dtype
    if dtype.kind in "mM":
        raise ValueError(f"{name} must be numbers, got {_NOT_REAL_KINDS[dtype.kind]} ({dtype}){hint}")
    if strict and (raw.dtype.kind in "SU" or raw.dtype == object):
        _refuse_text(raw, name)
    if np.iscomplexobj(raw):  # a cast to float dropped the imaginary part with only a NumPy warning
        raise ValueError(f"{name} must be real numbers, got complex values ({raw.dtype}){hint}")
    if raw.dtype == object:  # pd.NA and pd.NaT are missing values, as NaN and None are
        missing = np.asarray(pd.isna(raw), dtype=bool)
        _refuse_temporal(raw, missing, name, own if own is not None else raw.dtype, hint)
        if missing.any():
            raw = np.where(missing, np.nan, raw)
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers: {exc}") from None


#: What pandas infers of objects that may hold a date or a duration beside numbers (`_refuse_temporal`).
_MAYBE_TEMPORAL = TEMPORAL_INFERRED | {"mixed", "mixed-integer"}


def _refuse_temporal(raw: np.ndarray, missing: np.ndarray, name: str, dtype: Any, hint: str) -> None:
    """ValueError naming dates or durations held as objects (`TEMPORAL_TYPES`), as typed ones are named.

    float() refused a date or a Period in its own words, and numpy read a datetime64 or timedelta64 among
    objects as a number of its units (2024-01-01 as 19723 days). Missing values (pd.NaT) are left out;
    only objects pandas infers as dates or a mix are scanned.
    """
    if pd.api.types.infer_dtype(raw.ravel(), skipna=True) not in _MAYBE_TEMPORAL:
        return
    kinds = {
        "durations" if isinstance(v, dt.timedelta | np.timedelta64) else "dates"
        for v, gone in zip(raw.flat, missing.flat, strict=True)
        if not gone and isinstance(v, TEMPORAL_TYPES)
    }
    if kinds:
        raise ValueError(f"{name} must be numbers, got {' and '.join(sorted(kinds))} ({dtype}){hint}")


def _refuse_text(raw: np.ndarray, name: str) -> None:
    """ValueError naming the first text (or bytes) among `raw`: "3" hours were read as 3."""
    first = next((v for v in raw.flat if isinstance(v, str | bytes)), None)
    if first is not None:
        shown = first.item() if isinstance(first, np.generic) else first  # '3', not np.str_('3')
        raise ValueError(f"{name} must be numbers, not text: got {shown!r}")


def refuse_masked(values: Any, name: str, leave_out: str = "") -> None:
    """ValueError when `values` is a numpy masked array with masked entries: numpy reads the hidden numbers.

    The message counts them, gives their first positions and ends its advice with `leave_out`.
    """
    if not isinstance(values, np.ma.MaskedArray):
        return
    where = np.flatnonzero(np.ma.getmaskarray(values))
    if where.size:
        shown = ", ".join(str(int(i)) for i in where[:5]) + (", ..." if where.size > 5 else "")
        raise ValueError(
            f"{name} has {counted(where.size, 'masked value')} (position{'' if where.size == 1 else 's'} "
            f"{shown}; a numpy masked array, whose hidden numbers numpy would read): give every account a "
            f"value, e.g. {name}.filled(0), or leave the masked accounts out{leave_out}"
        )
