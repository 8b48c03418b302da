"""The shape of the package: layers, no import cycle, small modules and functions, no print."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import typing

import grimp
import pytest

from conftest import ROOT

PACKAGE = ROOT / "harbor_hooks"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list:
    return sorted(PACKAGE.rglob("*.py"))


def test_lint_imports_keeps_the_layers_contract():
    lint = shutil.which("lint-imports") or pytest.fail("import-linter is in the test extra")
    proc = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Imports flow down the layers KEPT" in proc.stdout


def test_no_import_cycle_counting_imports_inside_functions():
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("harbor_hooks", cache_dir=None)  # every import, at any depth
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    assert cycles == []


def test_modules_are_small():
    long = {str(p.relative_to(ROOT)): n for p in sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_at_most_one_long_function():
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert len(long) <= 1, long


def test_no_bare_print_in_library_code():
    prints = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in sources()
              for node in ast.walk(ast.parse(p.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
    assert prints == []


def test_format_registry_matches_the_schema_option():
    from harbor_hooks.formats import FORMATS
    from harbor_hooks.options import ExportOptions

    assert set(FORMATS) == set(typing.get_args(ExportOptions.model_fields["schema"].annotation))
