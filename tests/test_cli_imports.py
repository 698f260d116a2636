"""The CLI imports torch, Lightning and W&B only for commands that need them (issue 16 item 4):
``srlab --help``, a config error from ``show``, and ``list`` answer without training machinery."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "wandb")

PROBE = """
import contextlib, io, json, sys
from srlab import cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = cli.main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(m.split('.')[0] for m in sys.modules)}))
"""


def _imports(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_module():
    result = _imports("--help")
    assert result["code"] == 0 and "COMMAND" in result["out"]
    assert not set(HEAVY) & set(result["modules"])


def test_config_error_answers_before_torch():
    result = _imports("show", "edsr_sted", "trainer.max_epoch=1")
    assert result["code"] == 2 and "max_epochs" in result["out"]
    assert not set(HEAVY) & set(result["modules"])


def test_list_reads_cards_without_lightning():
    result = _imports("list")
    assert result["code"] == 0 and "edsr" in result["out"] and "1,370,000" in result["out"]
    # torch is imported by the model modules that fill the registry; nothing is trained or built.
    assert not {"lightning", "wandb"} & set(result["modules"])


def test_a_wrong_run_path_answers_before_torch(tmp_path):
    result = _imports("predict", str(tmp_path / "no_such_run"), str(tmp_path / "x.tif"), "-o", str(tmp_path / "y.tif"))
    assert result["code"] == 2 and "no_such_run" in result["out"]
    assert not set(HEAVY) & set(result["modules"])
