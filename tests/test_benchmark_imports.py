"""The benchmark scripts import srlab names that exist (they run rarely and outside CI, e.g. `make realcheck`
needs an optional extra, so a moved module would otherwise surface only when someone runs them)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_every_srlab_import_of_a_benchmark_resolves(script: Path):
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):  # also the imports inside functions
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "srlab":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                    f"{script.name}:{node.lineno}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "srlab":
                    importlib.import_module(alias.name)
