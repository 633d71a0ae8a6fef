"""The main job's output folder, written as one set a CRM can trust.

Each file was already written atomically, but the set was not: a job killed (or two jobs writing the same
``output.dir``) between files left a new allocation beside an old report, plus temporary files no later
run removed. Now:

- the job holds a lock on the folder (``.kamml.lock``) from its start, so a second job on the same folder
  stops at once with a named error instead of mixing files with the first;
- every output is written into a staging folder inside the output folder, then moved into place (a
  rename each, on the same file system) only once all of them are written;
- the manifest can be sealed in the staging folder first (`OutputSet.seal`), so that a job logs the whole
  set, manifest included, on its MLflow run before it publishes: a job whose logging fails leaves the
  last set in place (a set published first was read by a CRM as the result of a run marked failed);
- ``manifest.json`` is removed before the first move and written last: it names the run, model, cutoff
  and every file of the set (bytes and SHA-256), so a reader that finds it knows the files beside it are
  one complete set, and a reader that does not knows a job is writing (or was killed while writing);
- a publish that fails part way (a file of the set that cannot be replaced, a link into a folder that
  is gone, a stop) puts back the files it moved and, while they are whole, the last set's manifest:
  it left this run's first files beside the last run's others;
- leftovers of a killed job (its staging folder, temporary files) are removed by the next job, under
  the lock;
- a lock taken on a lock file another job removed meanwhile (a job that published nothing removes the
  lock file and folders it created) is let go and taken again on the file now at the path: held, the
  removed file locked nothing a third job could see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from kamml import stopping
from kamml.errors import DataError
from kamml.io import MANIFEST, atomic_path, fsync_path, json_text, read_manifest, real_output, writer_tag

__all__ = ["JOB_OUTPUTS", "LOCK_NAME", "MANIFEST", "OutputSet", "claim_outputs", "read_manifest"]

log = logging.getLogger(__name__)

LOCK_NAME = ".kamml.lock"
#: The files `kamml run` writes into its folder (whose leftover temporary files a next job removes).
JOB_OUTPUTS = (
    "scores.parquet",
    "allocation.parquet",
    "allocation.csv",
    "budget_curve.csv",
    "budget_curve.png",
    "backtest.json",
    "report.html",
    MANIFEST,
)
_STAGING_PREFIX = ".kamml-staging-"
#: How many times a job locks again a lock file (or makes again a folder) that another job removed meanwhile.
_ATTEMPTS = 20


class OutputSet:
    """A locked output folder whose files are staged and published together; use as a context manager.

    Write each output to ``stage(name)``, then call `publish` once with the run's facts (or `seal` them
    first, to log the set's manifest before it is published, then `publish` with none). Leaving the
    block removes the staging folder and releases the lock, whether the job succeeded or not; a job
    that published nothing also removes the folders it created (a job refused for its data left
    ``outputs/demo/.kamml.lock`` behind).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.staging = self.folder
        self._lock: IO[str] | None = None
        self._created: list[Path] = []
        self._published = False
        #: Called by `publish` before anything moves; an exception one raises publishes nothing.
        self.checks: list[Callable[[], None]] = []

    def __enter__(self) -> OutputSet:
        self._lock, locked = self._made_and_locked()
        try:
            if locked:  # without a lock another job's staging may be in use: left alone
                _remove_leftovers(self.folder)
            self.staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.folder))
        except BaseException:
            _release(self._lock)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            if self._created and not self._published:  # still locked: no other job writes there
                with contextlib.suppress(OSError):
                    (self.folder / LOCK_NAME).unlink()
                    for folder in self._created:  # innermost first; one holding anything else stays
                        folder.rmdir()
            _release(self._lock)
            self._lock = None

    def _made_and_locked(self) -> tuple[IO[str], bool]:
        """Create the folder (noting the folders this job made) and lock it; again if it vanished meanwhile.

        A job that published nothing removes the folders it made: one it had made just as this job
        created it (or found it) is gone before this job's lock file could be opened.
        """
        for _ in range(_ATTEMPTS):
            self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                return _acquire(self.folder / LOCK_NAME)
            except FileNotFoundError:
                continue
        raise DataError(
            f"cannot lock output.dir {self.folder}: the folder was removed {_ATTEMPTS} times as this job "
            "made and locked it (another process tidying it?): give this job another output.dir"
        )

    @property
    def published(self) -> bool:
        """Whether `publish` has moved this set into the folder (the job's result from then on)."""
        return self._published

    def stage(self, name: str) -> Path:
        """Where to write the output `name` (a file or a folder) before it is published."""
        return self.staging / name

    def seal(self, facts: Mapping[str, Any]) -> Path:
        """Write the set's manifest into the staging folder and return its path; the folder is untouched.

        `facts` (run id, model URI, cutoff, hours ...) go into it beside the staged files' sizes and hashes.
        `publish` moves those files unchanged and writes this same text last, so a job can log the set,
        manifest included, before publishing it: a job whose logging failed had already published.
        """
        files = {path.name: _describe(path) for path in self._staged()}
        manifest = {
            **{key: _plain(value) for key, value in facts.items()},
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        sealed = self.staging / MANIFEST
        sealed.write_text(json_text(manifest) + "\n", encoding="utf-8")
        return sealed

    def _staged(self) -> list[Path]:
        """The staged outputs, by name (the sealed manifest left out)."""
        return sorted(path for path in self.staging.iterdir() if path.name != MANIFEST)

    def _sealed_text(self) -> str:
        """The sealed manifest's text; a RuntimeError when there is none or it names other files."""
        try:
            text = (self.staging / MANIFEST).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RuntimeError(
                "publish needs the run's facts, or the manifest sealed first (`seal`)"
            ) from None
        named = set(json.loads(text)["files"])
        staged = {path.name for path in self._staged()}
        if named != staged:
            changed = ", ".join(sorted(named ^ staged))
            raise RuntimeError(
                f"the staged outputs changed since the manifest was sealed ({changed}): seal it again"
            )
        return text

    def publish(self, facts: Mapping[str, Any] | None = None, remove: Sequence[str] = ()) -> dict[str, Path]:
        """Move every staged output into the folder, then write the manifest; return name -> final path.

        The manifest is the one sealed (`seal`), or sealed here from `facts`. It is removed first, so
        between the first move and its rewrite the folder reads as incomplete; so are the files named in
        `remove` (an earlier run's outputs this set has no file for, such as a Spark run's missing
        allocation.csv), once the checks pass. A stop asked for by a signal whose exit was lost
        (`kamml.stopping`) ends the job here, before anything is moved or removed.
        """
        stopping.check()
        for check in self.checks:
            check()
        if facts is not None:
            self.seal(facts)
        text = self._sealed_text()
        staged_entries = self._staged()
        for staged in staged_entries:  # Spark's parts (written by Java) on the disk first
            if staged.is_dir():
                for part in staged.rglob("*"):
                    fsync_path(part)
                fsync_path(staged)
        last = _manifest_text(self.folder)
        moves = _Moves(self.staging)
        try:
            (self.folder / MANIFEST).unlink(missing_ok=True)
            for name in remove:
                stale = self.folder / name
                if stale.is_file() or stale.is_symlink():
                    moves.set_aside(stale)
                    log.info("removed %s: an earlier run's output that this run does not write", stale)
            published: dict[str, Path] = {}
            for staged in staged_entries:
                target = self.folder / staged.name
                moves.replace(staged, target)
                published[staged.name] = target
            fsync_path(self.folder)  # the moves on the disk before the manifest that vouches for them
            moves.current = self.folder / MANIFEST
            with atomic_path(self.folder / MANIFEST) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except BaseException as exc:
            said = _put_back(self.folder, moves, last)
            if isinstance(exc, (DataError, OSError)):
                reason = str(exc) if isinstance(exc, DataError) else _cannot(moves.current, exc)
                raise DataError(f"{reason}; {said}") from exc
            log.warning("the job stopped while publishing its outputs: %s", said)
            raise
        moves.forget()
        self._published = True
        log.info("published %d outputs into %s, then %s", len(published), self.folder, MANIFEST)
        return published


@contextlib.contextmanager
def claim_outputs(paths: Sequence[str | Path | None]) -> Iterator[None]:
    """Write files (`kamml score`/`allocate --out`) into folders that may hold a `kamml run`'s output set.

    Such a folder (a manifest or a lock file in it) is locked while the block writes, so a command does
    not write under a running job (a `DataError` naming the job when one holds it), and when a file
    written is one of the set its manifest is withdrawn: a 250-hour plan beside the manifest of a
    300-hour run's set read as that run's complete set. Every lock is taken before any manifest is
    touched; a block that fails puts back each manifest whose files are still the ones it names.
    Other folders are left as they are.
    """
    folders: dict[Path, list[str]] = {}
    for path in paths:
        if path is not None and "://" not in str(path):
            target = real_output(path)  # a link's own file: the one whose set it joins
            folders.setdefault(target.parent.resolve(), []).append(target.name)
    held: list[tuple[IO[str], bool]] = []
    withdrawn: dict[Path, _Withdrawn] = {}
    try:
        claimed = [f for f in folders if (f / MANIFEST).is_file() or (f / LOCK_NAME).is_file()]
        for folder in claimed:
            held.append(_acquire(folder / LOCK_NAME, advice="write to another folder"))
        for folder in claimed:
            withdrawn.update(_withdraw(folder, folders[folder]))
        yield
    except BaseException:
        for folder, (text, files, replaced) in withdrawn.items():
            if text and all(_same(folder / name, described) for name, described in files.items()):
                with atomic_path(folder / MANIFEST) as tmp:  # the set is still whole: vouch for it again
                    tmp.write_text(text, encoding="utf-8")
            else:
                _warn_withdrawn(folder, replaced)
        raise
    else:  # said once the files are written: a command that failed put the manifest back
        for folder, (_, _, replaced) in withdrawn.items():
            _warn_withdrawn(folder, replaced)
    finally:
        for handle, locked in held:
            if locked:
                _release(handle)
            else:  # no lock taken (a file system without locks): another job's text is left alone
                handle.close()


#: A withdrawn manifest: its text ("" when unreadable), the files it names, and those being replaced.
_Withdrawn = tuple[str, dict[str, Any], list[str]]


def _withdraw(folder: Path, names: list[str]) -> dict[Path, _Withdrawn]:
    """Remove the folder's manifest when one of `names` is a file of its set; return what it said."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
        files = json.loads(text).get("files", {})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError):  # unreadable: it vouches for no set any more either
        text, files = "", dict.fromkeys(names)
    replaced = [name for name in names if name in files]
    if not replaced:
        return {}
    path.unlink(missing_ok=True)
    return {folder: (text, files, replaced)}


def _warn_withdrawn(folder: Path, replaced: list[str]) -> None:
    """Say that a folder's manifest is gone because a file of its set was replaced."""
    log.warning(
        "%s replaces a file of the output set in %s: its %s is withdrawn, since the files there are no "
        "longer one job's set",
        ", ".join(replaced),
        folder,
        MANIFEST,
    )


def _same(path: Path, described: Any) -> bool:
    """Whether `path` is still the file (or folder) a manifest describes."""
    try:
        return isinstance(described, dict) and path.exists() and _describe(path) == described
    except OSError:
        return False


def _acquire(path: Path, advice: str = "give this job another output.dir") -> tuple[IO[str], bool]:
    """An exclusive lock on `path` (created if needed), held until `_release`, and whether it is held.

    A DataError naming the holder when another job holds it. Where the file system cannot lock (NFS
    without a lock daemon, some network or FUSE mounts) or the platform has no ``fcntl``, the job goes
    on without a lock, with a warning: refusing every run for good would be worse than the old
    behaviour.
    """
    for _ in range(_ATTEMPTS):
        handle, locked = _lock(path, advice)
        if not locked or _still_at(handle, path):
            return _held_by_us(handle) if locked else (handle, False)
        handle.close()  # the file was removed (or replaced) before the lock was taken: locks nothing
    raise DataError(
        f"cannot lock {path}: the file was removed or replaced {_ATTEMPTS} times as this job locked it "
        f"(another process tidying {path.parent}?): {advice}"
    )


def _still_at(handle: IO[str], path: Path) -> bool:
    """Whether the file `handle` has open is still the one at `path` (not removed, nor replaced)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _lock(path: Path, advice: str) -> tuple[IO[str], bool]:
    """`path` opened (created if needed) and locked, and whether it is; `_acquire`'s one attempt."""
    handle = path.open("a+", encoding="utf-8")
    try:
        import fcntl
    except ImportError:  # not POSIX
        log.warning("no file locks on this platform: %s is not protected from a second job", path.parent)
        return handle, False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):  # held by another process
            log.warning(
                "cannot lock %s (%s): the file system does not support locks; going on without one, so "
                "a second job on this folder is not stopped",
                path,
                exc.strerror or exc,
            )
            return handle, False
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataError(
            f"another kamml job ({holder}) is writing to {path.parent}: wait for it to end, or {advice}"
        ) from None
    return handle, True


def _held_by_us(handle: IO[str]) -> tuple[IO[str], bool]:
    """Write this process into the lock file it holds (for the error a second job gets)."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, since {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n")
    handle.flush()
    return handle, True


def _release(handle: IO[str]) -> None:
    """Clear the holder's text and release the lock (closing the file releases it); the file stays."""
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    with contextlib.suppress(OSError):
        handle.close()


def _remove_leftovers(folder: Path) -> None:
    """A killed job's staging folders and its temporary files (safe: the caller holds the lock).

    Only kamml's own names: the staging folders, and the temporary files `atomic_path` makes for the
    job's outputs (``.<output name>.<random>.tmp``); anything else in the folder is not this job's.
    """
    for path in folder.iterdir():
        if path.name.startswith(_STAGING_PREFIX) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed %s, left by a job that did not finish", path)
        elif path.is_file() and any(
            path.name.startswith(f".{name}.") and path.name.endswith(".tmp") for name in JOB_OUTPUTS
        ):
            path.unlink(missing_ok=True)
            log.info("removed %s, a temporary file left by a job that did not finish", path)


class _Moves:
    """The moves of one publish, each with what puts the last set's file back, undone in reverse on failure.

    A move that failed part way through the set (a file of the set that cannot be replaced, a link
    into a folder that is gone, a stop) left this run's first files beside the last run's others.
    """

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.current: Path | None = None
        self._undo: list[tuple[Path, Callable[[], None]]] = []
        self._kept: list[Path] = []  # copies of linked files, beside them, until the set is published

    def set_aside(self, target: Path) -> None:
        """Move `target` (an earlier run's file this set does not write) into the staging folder."""
        self.current = target
        old = self._aside(target)
        self._undo.append((target, lambda: os.replace(old, target)))

    def replace(self, staged: Path, target: Path) -> None:
        """Move `staged` onto `target`, keeping the old one (file, link or folder) to put back.

        A folder (Spark's Parquet parts) replaces the old one whole, and a file replaces a folder: an
        in-memory run's scores.parquet failed on a Spark run's (rename cannot put a file over a folder).
        A symbolic link to a file (``allocation.csv`` linked to a CRM's drop folder) is written through
        and kept, as `atomic_path` does: replaced by a plain file, it left the file it named stale.
        """
        self.current = target
        if target.is_symlink() and staged.is_file() and not target.is_dir():
            self._write_through(staged, target)
            return
        old: Path | None = None
        if target.is_file() and not target.is_symlink() and staged.is_file():
            old = _second_name(target, self.staging / f".old-{target.name}")
        if old is None and os.path.lexists(target):  # a folder or a link: renamed aside
            old = self._aside(target)
        os.replace(staged, target)
        self._undo.append((target, lambda: _restore(target, old)))

    def _aside(self, target: Path) -> Path:
        """Rename `target` into the staging folder; return its name there."""
        old = self.staging / f".old-{target.name}"
        os.replace(target, old)
        return old

    def _write_through(self, staged: Path, target: Path) -> None:
        """Write a file of the set through the link at `target` (kept), keeping the file it names."""
        real = real_output(target)
        kept = None
        if real.is_file():
            kept = real.with_name(f".{real.name}.{writer_tag()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                os.link(real, kept)
            except OSError:  # a file system without hard links
                shutil.copy2(real, kept)
            self._kept.append(kept)
        with atomic_path(target) as tmp:  # beside the file the link names, renamed onto it
            shutil.move(staged, tmp)  # a copy when that file is on another file system
        self._undo.append((target, lambda: _restore(real, kept)))

    def undo(self) -> list[str]:
        """Put back every file moved, last first; the ones that could not be, with the reason."""
        failed = []
        for target, undo in reversed(self._undo):
            try:
                undo()
            except OSError as exc:
                failed.append(f"{target.name} ({exc.strerror or exc})")
        self._undo.clear()
        self.forget()
        return failed

    def forget(self) -> None:
        """Remove the copies kept beside linked files (the set is published, or put back)."""
        for kept in self._kept:
            kept.unlink(missing_ok=True)
        self._kept.clear()


def _second_name(path: Path, name: Path) -> Path | None:
    """`name`, made a hard link to `path` (which keeps its file until replaced), or None if it cannot be."""
    try:
        os.link(path, name)
    except OSError:  # a file system without hard links
        return None
    return name


def _restore(target: Path, old: Path | None) -> None:
    """Remove the new file (or folder) at `target` and move `old` back there, if there was one."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    if old is not None:
        os.replace(old, target)


def _manifest_text(folder: Path) -> str:
    """The folder's manifest as written ("" when there is none, or it cannot be read)."""
    try:
        return (folder / MANIFEST).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""


def _put_back(folder: Path, moves: _Moves, last: str) -> str:
    """Undo a publish that failed part way: the last set's files, and its manifest while they are whole.

    Returns what was done, in words, for the error.
    """
    failed = moves.undo()
    if failed:
        return (
            f"nothing of this run was published, but {', '.join(failed)} could not be put back: {folder} "
            "holds files of two runs, and no manifest"
        )
    try:
        data = json.loads(last) if last else None
        files = data.get("files", {}) if isinstance(data, dict) else {}
    except ValueError:
        data, files = None, {}
    if not isinstance(data, dict):
        return "nothing of this run was published: the files moved are put back"
    changed = [name for name, described in files.items() if not _same(folder / name, described)]
    if changed:
        return (
            "nothing of this run was published: the files moved are put back, but the last set is no "
            f"longer whole ({', '.join(changed)} changed), so no manifest vouches for it"
        )
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(last, encoding="utf-8")
    run = data.get("run_id")
    return f"nothing of this run was published: the last set (run {run}) is put back with its manifest"


def _describe(path: Path) -> dict[str, Any]:
    """Bytes and SHA-256 of a file; bytes and part count of a folder.

    A folder's bytes are all of its files'; its parts leave out the hidden ones Hadoop and kamml write
    beside the data (``.part-….crc`` checksums, ``_SUCCESS``, ``_allocation.json``), which readers of
    Parquet folders skip too.
    """
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        parts = [p for p in files if not p.name.startswith((".", "_"))]
        return {"bytes": sum(p.stat().st_size for p in files), "files": len(parts)}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _plain(value: Any) -> Any:
    """A manifest value as JSON: numbers and text as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _cannot(target: Path | None, exc: BaseException) -> str:
    """Why a file of the set could not be put in place, in the operating system's words."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot put this run's {target} in place: {reason}"
