"""Public names resolve on first use, allocation starts without the model stack, docstring examples run."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kamml


def test_public_names_resolve_lazily():
    for name in kamml.__all__:
        assert getattr(kamml, name) is not None
        assert name in dir(kamml)
    from kamml import ModelBundle, allocate
    from kamml.models import ClvModel

    assert ModelBundle.__module__ == "kamml.models.bundle"
    assert allocate.__module__ == "kamml.allocation.allocate"
    assert ClvModel.__module__ == "kamml.models.clv"


def test_unknown_names_raise_attribute_error():
    from kamml import models

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kamml.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        models.nope  # noqa: B018


def test_allocation_imports_neither_models_nor_engines():
    code = (
        "import sys, kamml.cli, kamml.allocation.allocate; "
        "print(sorted(m for m in ('lightgbm', 'sklearn', 'ibis', 'scipy', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_docs_install_kamml_from_its_wheel_not_from_an_index():
    """kamml is not on PyPI, yet docs/spark.md said `pip install 'kamml[spark]'` (someone else's, or none)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    by_name = re.compile(r"pip install [^\n]*?['\"]?\bkamml\[|\"package\": \"kamml")
    found = [
        f"{page.name}: {m.group(0)}" for page in pages for m in by_name.finditer(page.read_text("utf-8"))
    ]
    assert found == []


def _modules_with_examples() -> list[str]:
    """Every kamml module whose docstrings hold a ``>>>`` example, by dotted name."""
    from pathlib import Path

    src = Path(kamml.__file__).resolve().parent
    return sorted(
        ".".join(("kamml", *path.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
        for path in src.rglob("*.py")
        if ">>> " in path.read_text("utf-8")
    )


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    """The examples of the API docstrings run as written (most modules' were run by no test)."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), report=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples fail"


def _resolves(name: str) -> bool:
    """Whether a dotted name is a module, or an attribute reached from the longest importable module."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_docs_name_only_kamml_objects_that_exist():
    """docs/models.md named `kamml.evaluation.train_bundle`, which lives in `kamml.evaluation.backtest`.

    Every `kamml.<module>...` name in README.md, docs/, notebooks/README.md and the docstrings and comments
    of src/ and benchmarks/ resolves, unless the code spells it as a string (an MLflow tag or param such as
    `kamml.tracking.uri_from`).
    """
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = root / "src" / "kamml"
    modules = {path.stem for path in src.glob("*.py")} | {p.name for p in src.iterdir() if p.is_dir()}
    code = "\n".join(path.read_text("utf-8") for path in src.rglob("*.py"))
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "notebooks" / "README.md"]
    pages += [*sorted(src.rglob("*.py")), *sorted((root / "benchmarks").glob("*.py"))]
    named = re.compile(r"(?<![\w.])kamml((?:\.[A-Za-z_]\w*)+)")
    missing = sorted(
        {
            f"{page.relative_to(root)}: kamml{m.group(1)}"
            for page in pages
            for m in named.finditer(page.read_text("utf-8"))
            if m.group(1).split(".")[1] in modules
            and not _resolves(f"kamml{m.group(1)}")
            and f'"kamml{m.group(1)}' not in code
        }
    )
    assert missing == []
