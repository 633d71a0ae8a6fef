"""The documentation's examples, checked against the code without a training run.

README's "Python" block trains a model (about a minute on the 2-core machine), so it is not run here:
its imports are made and each call is bound to the real signature, which catches a renamed function or
argument; the notebooks' slow tests run the same steps end to end. The error messages the docs show as
``text`` blocks are produced from inputs holding the documented values and compared line by line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import kamml
from kamml.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _blocks(page: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a page of the checkout."""
    text = (ROOT / page).read_text("utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _section(page: str, heading: str) -> str:
    """The text of a page from a level-2 heading to the next one."""
    text = (ROOT / page).read_text("utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _imported(tree: ast.Module) -> dict[str, Any]:
    """The objects a block's import statements bind, by the names it binds them to."""
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name)
    return names


def _callee(func: ast.expr, names: dict[str, Any]) -> Any:
    """The imported object a call names (``score`` or ``kamml.load_data``), else None."""
    if isinstance(func, ast.Name):
        return names.get(func.id)
    if isinstance(func, ast.Attribute):
        owner = _callee(func.value, names)
        return getattr(owner, func.attr, None) if owner is not None else None
    return None


def test_readme_python_block_imports_and_calls_match_the_api():
    """Every call of README's "Python" block to a kamml function binds to its signature."""
    blocks = re.findall(r"^```python\n(.*?)^```", _section("README.md", "Python"), flags=re.M | re.S)
    assert blocks, "README's Python section has no python block"
    for block in blocks:
        tree = ast.parse(block)
        names = _imported(tree)
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        bound = 0
        for call in calls:
            target = _callee(call.func, names)
            if target is None or not getattr(target, "__module__", "").startswith("kamml"):
                continue
            args = [object()] * len(call.args)
            kwargs = {kw.arg: object() for kw in call.keywords if kw.arg}
            try:
                inspect.signature(target).bind(*args, **kwargs)
            except TypeError as err:
                pytest.fail(f"README: {ast.unparse(call)} does not fit {target.__qualname__}: {err}")
            bound += 1
        assert bound >= 5, f"only {bound} kamml calls found in README's Python block"


def test_readme_optimize_signature_is_the_function_s():
    """The README writes out optimize's parameters and defaults; they are the function's."""
    text = " ".join(_section("README.md", "Python").split())
    written = re.search(r"`kamml\.allocation\.optimize\((.*?)\)`", text)
    assert written, "README no longer writes out optimize's signature"
    documented = [part.strip() for part in written.group(1).split(",")]
    actual = inspect.signature(kamml.allocation.optimize).parameters.values()
    assert [p.partition("=")[0] for p in documented] == [p.name for p in actual]
    for part, param in zip(documented, actual, strict=True):
        if "=" in part:
            assert ast.literal_eval(part.partition("=")[2]) == param.default, param.name


def _text_block(page: str, starts: str) -> list[str]:
    """The lines of the page's one ``text`` block that starts with `starts`."""
    found = [block for block in _blocks(page, "text") if block.startswith(starts)]
    assert len(found) == 1, f"{page}: no single text block starting {starts!r}"
    return found[0].rstrip("\n").splitlines()


def _error_lines(output: str) -> list[str]:
    """The lines of an error on stderr, without the log lines."""
    return [line for line in output.splitlines() if not re.match(r"\d{4}-\d\d-\d\d \d\d:", line)]


def test_readme_bad_data_example_is_what_validate_prints(tmp_path, monkeypatch):
    """README's `kamml validate --data broken/` example: the two problems, word for word."""
    doc = _text_block("README.md", "$ kamml validate --data broken/")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "transactions.csv").write_text(
        "account_id,ts,amount\n1,2024-01-05,10.0\n1,not a date,5\n2,2024-02-01,abc\n2,2024-03-01,7\n"
    )
    result = runner.invoke(app, ["validate", "--data", "broken/"])
    assert result.exit_code == 3
    assert _error_lines(result.output) == doc[1:]


def test_data_md_unparseable_number_example_is_what_validate_prints(tmp_path):
    """docs/data.md's example of amounts written with a unit or as 'n/a'."""
    doc = _text_block("docs/data.md", "kamml: error: 1 problem")
    (tmp_path / "transactions.csv").write_text(
        "account_id,ts,amount\n1,2024-01-05,10.0\n1,2024-01-06,12.50 EUR\n2,2024-02-01,n/a\n2,2024-03-01,7\n"
    )
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 3
    assert _error_lines(result.output) == doc


def test_config_md_unknown_key_example_is_what_the_cli_prints(tmp_path, monkeypatch):
    """docs/config.md's example of a misspelt key: its path, the valid keys and the nearest one."""
    doc = _text_block("docs/config.md", "kamml: error: configs/x.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text("time:\n  horizon: 90\n")
    result = runner.invoke(app, ["validate", "--config", "configs/x.yaml"])
    assert result.exit_code == 2
    assert _error_lines(result.output) == doc
