"""No Sphinx roles in the docstrings of sparsediff/: the API pages render Markdown only."""

from __future__ import annotations

import ast
import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

import sparsediff

PACKAGE = Path(sparsediff.__file__).parent
HOOK = PACKAGE.parent / "docs" / "hooks" / "no_raw_roles.py"


def _hook() -> object:
    spec = importlib.util.spec_from_file_location("no_raw_roles", HOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    out.append((stmt.lineno, stmt.value.value))
    return out


def test_no_raw_roles_in_docstrings() -> None:
    role = _hook().ROLE  # type: ignore[attr-defined]
    left = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {role.search(text).group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _docstrings(path)
        if role.search(text)
    ]
    assert not left, "raw Sphinx roles in docstrings:\n" + "\n".join(left)


def test_the_docs_hook_warns_on_a_raw_role(caplog: pytest.LogCaptureFixture) -> None:
    hook = _hook()
    page = SimpleNamespace(file=SimpleNamespace(src_path="api/x.md"))
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.no_raw_roles"):
        html = "<p>see :func:<code>fill</code> and <a href='#a'><code>b</code></a></p>"
        assert hook.on_page_content(html, page, None, None) == html  # type: ignore[attr-defined]
        hook.on_page_content("<p><a href='#a'><code>fill</code></a></p>", page, None, None)  # type: ignore[attr-defined]
    assert len(caplog.records) == 1
    assert "api/x.md shows 1 raw Sphinx role" in caplog.records[0].getMessage()
