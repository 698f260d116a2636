"""``srlab simulate``: registered TIFF pairs in the user folder format; SMLM dispatch; no overwrite."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srlab import cli
from srlab.cli import add_simulate_arguments
from srlab.data.io import read_tiff
from srlab.data.simulate import run_simulate
from srlab.errors import SrlabError

SRLAB = Path(sys.executable).with_name("srlab")


def _simulate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="srlab simulate")
    add_simulate_arguments(parser)
    return run_simulate(parser.parse_args(list(argv)))


def test_simulate_writes_registered_pairs(tmp_path):
    out = tmp_path / "sted"
    assert _simulate("--pair", "confocal:sted", "--structures", "microtubules,ccps", "--n", "3", "--size",
                     "32",
                     "--out", str(out), "--seed", "4", "hr.saturation_factor=50") == 0
    names = sorted(p.name for p in (out / "lr").iterdir())
    assert names == sorted(p.name for p in (out / "hr").iterdir()) and len(names) == 3
    lr, _, lr_px = read_tiff(out / "lr" / names[0])
    hr, _, hr_px = read_tiff(out / "hr" / names[0])
    assert lr.dtype == hr.dtype == np.uint16 and hr.shape == (64, 64) and (lr_px, hr_px) == (40.0, 20.0)
    settings = json.loads((out / "simulation.json").read_text())
    assert settings["hr"]["saturation_factor"] == 50 and settings["seed"] == 4
    with pytest.raises(SrlabError, match="not an empty folder"):
        _simulate("--n", "1", "--size", "16", "--out", str(out))


def test_simulate_rejects_bad_pairs(tmp_path):
    with pytest.raises(SrlabError, match="modality in --pair 'stde'"):
        _simulate("--pair", "confocal:stde", "--out", str(tmp_path / "x"))
    with pytest.raises(SrlabError, match="no integer scale"):
        _simulate("--pair", "confocal:tirfsim", "--out", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_simulate_smlm_dispatches_to_the_smlm_writer(tmp_path):
    out = tmp_path / "smlm"
    assert _simulate("--smlm", "--frames", "3", "--out", str(out), "height_px=16", "width_px=16") == 0
    assert sorted(p.name for p in out.iterdir()) == ["ground_truth.csv", "simulation.json", "stack.tif"]


@pytest.mark.skipif("simulate" not in cli.COMMANDS, reason="`srlab simulate` not wired into srlab/cli.py yet")
def test_srlab_simulate_command(tmp_path):
    out = tmp_path / "s"
    done = subprocess.run([str(SRLAB), "simulate", "--pair", "confocal:sted", "--n", "2", "--size", "24",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert len(list((out / "hr").glob("*.tif"))) == 2
    again = subprocess.run([str(SRLAB), "simulate", "--n", "1", "--out", str(out)], capture_output=True,
                           text=True,
                           timeout=300, check=False)
    assert again.returncode == 2 and str(out) in again.stderr


def test_simulate_all_structures_with_randomization(tmp_path):
    out = tmp_path / "broad"
    assert _simulate("--structures", "all", "--n", "2", "--size", "16", "--out", str(out),
                     "density_range=[0.5,2]", "labelling_fraction_range=[0.2,1]") == 0
    settings = json.loads((out / "simulation.json").read_text())
    assert settings["structures"][-1] == "nuclear_pores" and settings["density_range"] == [0.5, 2.0]
    assert [0.5 <= image["density"] <= 2.0 for image in settings["images"]] == [True, True]
    assert "haze_range" not in settings  # ranges left at their defaults are not part of the key
    with pytest.raises(SrlabError, match=r"simulate.haze_range=\[2.0, 1.0\]: must be \[lo, hi\]"):
        _simulate("--n", "1", "--size", "16", "--out", str(tmp_path / "bad"), "haze_range=[2,1]")
