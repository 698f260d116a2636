"""Whichever module of srlab.smlm is imported first, the package imports and kind 'smlm' is registered."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["srlab.smlm.localizations", "srlab.smlm.simulate", "srlab.smlm.datamodule",
                                    "srlab.smlm.localize", "srlab.smlm.score", "srlab.models.localization"])
def test_any_smlm_module_first_registers_the_smlm_datamodule(module):
    code = f"import {module}; from srlab.data import DATAMODULES; print('smlm' in DATAMODULES.names())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True"]


def test_the_localization_network_module_does_not_import_the_evaluation_layer():
    code = ("import sys, srlab.models.localization; "
            "print(any(m.startswith(('srlab.compare', 'srlab.inference')) for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False"]
