"""The commit of kamml's source recorded with a run (`kamml.tracking.source`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import kamml
from kamml.tracking import source
from kamml.tracking.runs import library_versions
from kamml.tracking.source import source_revision

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with a committed package folder ``pkg`` and an ignored ``venv`` folder."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("venv/\n")
    (tmp_path / "notes.txt").write_text("a\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


@needs_git
def test_a_clean_checkout_records_its_commit(checkout: Path) -> None:
    assert source_revision(checkout / "pkg") == {
        "commit": _git(checkout, "rev-parse", "HEAD"),
        "dirty": "false",
    }


@needs_git
def test_changes_to_the_package_make_it_dirty_and_others_do_not(checkout: Path) -> None:
    (checkout / "notes.txt").write_text("b\n")  # outside the package
    (checkout / "pkg" / "new.py").write_text("untracked\n")
    assert source_revision(checkout / "pkg")["dirty"] == "false"
    (checkout / "pkg" / "mod.py").write_text("x = 2\n")
    assert source_revision(checkout / "pkg")["dirty"] == "true"


@needs_git
def test_a_folder_git_does_not_track_records_nothing(checkout: Path, tmp_path_factory) -> None:
    # a wheel installed into an ignored virtual environment inside some repository is not its code
    installed = checkout / "venv" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    (installed / "mod.py").write_text("x = 1\n")
    assert source_revision(installed) == {}
    outside = tmp_path_factory.mktemp("no_repo")
    assert source_revision(outside) == {}
    assert source_revision(outside / "missing") == {}


@needs_git
def test_without_git_nothing_is_recorded(checkout: Path, monkeypatch) -> None:
    monkeypatch.setattr(source.shutil, "which", lambda name: None)
    assert source_revision(checkout) == {}


@needs_git
def test_library_versions_name_this_checkouts_commit() -> None:
    package = Path(kamml.__file__).parent
    expected = source_revision(package)
    if not expected:
        pytest.skip("kamml is not installed from a git checkout here")
    versions = library_versions()
    assert versions["kamml.commit"] == _git(package, "rev-parse", "HEAD")
    assert versions["kamml.dirty"] in {"true", "false"}
