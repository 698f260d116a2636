"""Whichever module of srlab.smlm is imported first, the package imports and kind 'smlm' is registered."""
from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ("srlab.smlm.localizations", "srlab.smlm.simulate", "srlab.smlm.datamodule", "srlab.smlm.localize",
           "srlab.smlm.score", "srlab.models.localization")


@pytest.fixture(scope="module")
def first_imports() -> dict[str, tuple[int, str, str]]:
    """Each module imported first in a fresh interpreter, all interpreters started at once: each spends
    seconds importing torch, and a 2-core machine runs two at a time. ``{module: (code, stdout, stderr)}``."""
    procs = {}
    for module in MODULES:
        code = f"import {module}; from srlab.data import DATAMODULES; print('smlm' in DATAMODULES.names())"
        procs[module] = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    results = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[module] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("module", MODULES)
def test_any_smlm_module_first_registers_the_smlm_datamodule(module, first_imports):
    code, out, err = first_imports[module]
    assert code == 0, err[-2000:]
    assert out.split() == ["True"]


def test_the_localization_network_module_does_not_import_the_evaluation_layer():
    code = ("import sys, srlab.models.localization; "
            "print(any(m.startswith(('srlab.compare', 'srlab.inference')) for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False"]
