"""The notebooks in notebooks/: stored without outputs, importing only kamml, and run end to end.

The slow tests execute each notebook with nbclient on the ``python3`` kernel (jupyter_client starts it
with this interpreter), in a temporary working directory with TMPDIR pointing there, so the notebooks'
temporary folders (data, MLflow store, plots) are removed with it. ``03_cdnow`` runs with its
``parameters`` cell set to the CDNOW sample, which keeps it to seconds.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

import kamml

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_quickstart", "02_allocation", "03_cdnow")
#: What a notebook may import: kamml for the work, the rest for display and temporary folders.
ALLOWED = frozenset({"kamml", "pandas", "numpy", "IPython", "matplotlib", "pathlib", "tempfile"})
#: Sources of the cells tagged ``parameters`` while the tests run a notebook.
PARAMETERS = {"03_cdnow": "SAMPLE = True"}
#: Appended to a notebook while a test runs it: which interpreter and which kamml the kernel used.
WHO_RUNS = "import sys, kamml\nprint('KERNEL', sys.executable, kamml.__file__)"


def _read(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _code_cells(nb: Any) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module a piece of Python imports (relative imports as '.')."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or "").split(".")[0])
    return found


def _text(nb: Any) -> str:
    """Every text the executed notebook shows: streams and the plain-text form of results."""
    parts = []
    for cell in _code_cells(nb):
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def _images(nb: Any) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in _code_cells(nb)
        for out in cell.outputs
        if out.output_type in ("execute_result", "display_data")
    )


# ------------------------------------------------------------------------------------------ stored form


def test_the_tested_notebooks_are_all_the_notebooks() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_valid_and_stored_without_outputs(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    cells = _code_cells(nb)
    assert cells
    for i, cell in enumerate(cells):
        assert cell.outputs == [], f"{name}: code cell {i} has stored outputs"
        assert cell.execution_count is None, f"{name}: code cell {i} has an execution count"
    assert any(cell.cell_type == "markdown" for cell in nb.cells)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_imports_only_kamml_and_display_libraries(name: str) -> None:
    nb = _read(name)
    imported: set[str] = set()
    for i, cell in enumerate(_code_cells(nb)):
        try:
            imported |= imported_modules(cell.source)
        except SyntaxError as exc:  # shell escapes and magics are not plain Python
            pytest.fail(f"{name}: code cell {i} is not plain Python ({exc.msg})")
    assert "kamml" in imported
    assert imported <= ALLOWED, f"{name} imports {sorted(imported - ALLOWED)}"


def test_import_check_sees_every_form_of_import() -> None:
    source = "import os.path, kamml\nfrom mlflow.tracking import MlflowClient\nfrom . import x\nimport numpy"
    assert imported_modules(source) == {"os", "kamml", "mlflow", ".", "numpy"}
    assert not imported_modules(source) <= ALLOWED


def test_parameters_cells_exist_where_the_tests_set_them() -> None:
    for name in PARAMETERS:
        tagged = [c for c in _code_cells(_read(name)) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name


# ------------------------------------------------------------------------------------------ execution

EXPECTED = {
    "01_quickstart": (
        2,
        [
            "Data check passed",
            "features as of",
            "gini",
            "roc_auc",
            "btyd",
            "registered as kamml-quickstart version 1 (champion",
            "mlflow ui --backend-store-uri sqlite:///",
            "= models:/kamml-quickstart/1",
            "p_churn",
        ],
    ),
    "02_allocation": (
        3,
        [
            "accounts scored as of",
            "backtest at 2025-01-02: horizon 180 days",
            "last_period",
            "recency",
            "past_rate",
            "recommended_hours",
            "strategic",
            "nurture",
            "lead reason",
            "team_price",
            "retention only",
            "share_of_oracle",
            "by_revenue",
            "oracle",
        ],
    ),
    "03_cdnow": (
        2,
        [
            "2,357 customers as of 1997-10-01",
            "BG/NBD log-likelihood -9,582.4",
            "published",
            "4.414",
            "backtest at 1997-10-01: horizon 273 days",
            "backtest at 1998-01-01: horizon 181 days",
            "cdnow_sample",
            "gini",
            "roc_auc",
        ],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_shows_its_results(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the notebooks use their own local store
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile folders land in tmp_path
    nb = _read(name)
    for cell in _code_cells(nb):
        if "parameters" in cell.metadata.get("tags", []) and name in PARAMETERS:
            cell.source = PARAMETERS[name]
    nb.cells.append(nbformat.v4.new_code_cell(WHO_RUNS))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails

    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = _text(nb)
    kernel = next(line.split() for line in text.splitlines() if line.startswith("KERNEL "))
    assert Path(kernel[1]) == Path(sys.executable)
    assert Path(kernel[2]) == Path(kamml.__file__)
    min_images, expected = EXPECTED[name]
    missing = [e for e in expected if e not in text]
    assert not missing, f"{name}: outputs lack {missing}"
    assert _images(nb) >= min_images
    assert list(tmp_path.glob("kamml-*")), "the notebook's temporary folder is not under TMPDIR"
