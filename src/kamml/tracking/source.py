"""Which commit of kamml's own source a run used, when kamml runs from a git checkout.

A package version (0.1.0) names no code: two runs of an editable install months apart record the same
one. From a checkout, the commit and whether kamml's files differ from it tell a reader which code made
the numbers. An install from a wheel, a folder outside git or a machine without git records nothing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

__all__ = ["source_revision"]

log = logging.getLogger(__name__)

#: Seconds a git call may take before the revision is left unrecorded (a network file system).
GIT_TIMEOUT = 5.0


def _git(folder: Path, *args: str) -> str | None:
    """Standard output of ``git -C folder args``, stripped; None when git fails, is missing or hangs."""
    executable = shutil.which("git")
    if executable is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - git found on PATH, fixed arguments, no shell
            [executable, "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_revision(package_dir: str | Path | None = None) -> dict[str, str]:
    """``{"commit": sha, "dirty": "true"|"false"}`` of the git work tree tracking `package_dir`, else {}.

    `package_dir` defaults to the folder of the installed ``kamml`` package. It counts as from a
    checkout only when git tracks files in it: a wheel installed into a virtual environment that lies
    inside some repository (ignored there) is not that repository's code. ``dirty`` says whether the
    tracked files under `package_dir` differ from the commit (untracked files are not counted).
    """
    if package_dir is None:
        import kamml

        package_dir = Path(kamml.__file__).parent
    folder = Path(package_dir).resolve()
    if not folder.is_dir():
        return {}
    commit = _git(folder, "rev-parse", "--verify", "--quiet", "HEAD")
    if not commit or not _git(folder, "ls-files", "--", "."):
        return {}
    status = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", ".")
    if status is None:
        log.debug("git status failed in %s: the commit is recorded without its dirty flag", folder)
        return {"commit": commit}
    return {"commit": commit, "dirty": "true" if status else "false"}
