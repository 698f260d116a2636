"""Whichever module of srlab.smlm is imported first, the package imports and kind 'smlm' is registered."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULES = ("srlab.smlm.localizations", "srlab.smlm.simulate", "srlab.smlm.datamodule", "srlab.smlm.localize",
           "srlab.smlm.score", "srlab.models.localization")


# One interpreter checks every module: torch, Lightning and the rest are imported once, then before each module
# every srlab module is dropped from sys.modules, so that module's import runs srlab's whole import chain from
# the start, as a user's first import does (six fresh interpreters each spent seconds importing torch).
_EACH_FIRST = """
import json, sys
import lightning, numpy, scipy, torch  # noqa: F401  not srlab's: kept between the checks
results = {}
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n == "srlab" or n.startswith("srlab.")]:
        del sys.modules[name]
    try:
        __import__(module)
        from srlab.data import DATAMODULES
        results[module] = [0, str("smlm" in DATAMODULES.names()), ""]
    except Exception as err:  # the next module is still checked
        import traceback
        results[module] = [1, "", traceback.format_exc()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def first_imports() -> dict[str, tuple[int, str, str]]:
    """Each module imported first (see ``_EACH_FIRST``). ``{module: (code, stdout, stderr)}``."""
    proc = subprocess.run([sys.executable, "-c", _EACH_FIRST, *MODULES], capture_output=True, text=True,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {module: tuple(result) for module, result in json.loads(proc.stdout.splitlines()[-1]).items()}


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
