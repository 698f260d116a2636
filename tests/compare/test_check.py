"""``srlab check``: the reference-free check of SR outputs against their inputs (SQUIRREL error map and
single-image FRC) on simulated pairs of known optics, and its refusals."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from srlab.compare.check import check_pair
from srlab.data.io import read_tiff, write_tiff
from tests.conftest import cli_in_process


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Two simulated confocal -> STED pairs (LR 96² px at 40 nm), the STED as acquired."""
    root = tmp_path_factory.mktemp("check")
    proc = cli_in_process("simulate", "--pair", "confocal:sted", "--n", "2", "--size", "96", "--seed", "3",
                          "--out", str(root / "sim"))
    assert proc.returncode == 0, proc.stderr
    return root / "sim"


def _relative_fwhm_nm(sim: Path) -> float:
    meta = json.loads((sim / "simulation.json").read_text())
    return math.sqrt(meta["lr"]["fwhm_nm"] ** 2 - meta["hr"]["fwhm_nm"] ** 2)


def test_the_true_hr_explains_its_input_and_another_field_does_not(pairs: Path):
    """The STED image of the same field, re-imaged, gives back the confocal input: high RSP, and the fitted
    resolution-scaling function is the relative PSF the simulator used. The STED of another field does not."""
    same = check_pair(pairs / "lr" / "sim_0000.tif", pairs / "hr" / "sim_0000.tif")
    other = check_pair(pairs / "lr" / "sim_0000.tif", pairs / "hr" / "sim_0001.tif")
    assert len(same) == len(other) == 1
    c = same[0]
    assert c.scale == 2 and c.input_pixel_size_nm == pytest.approx(40.0)
    assert c.rsp > 0.9 and other[0].rsp < 0.3 and other[0].rse > 2 * c.rse
    assert c.rsf_fwhm_nm == pytest.approx(_relative_fwhm_nm(pairs), rel=0.15)
    assert c.error_map.shape == c.lr.shape == (96, 96)
    # Single-image FRC: the confocal input resolves about its PSF (Koho et al. report FRC near the FWHM).
    assert 150 < c.frc_input_nm < 320
    # A given RSF is used as given.
    given = check_pair(pairs / "lr" / "sim_0000.tif", pairs / "hr" / "sim_0000.tif", psf_fwhm_nm=150.0)[0]
    assert given.rsf_fwhm_nm == pytest.approx(150.0) and given.rse >= c.rse - 1e-9


def test_cli_folders_stacks_and_outputs(pairs: Path, tmp_path: Path):
    """Folders matched by srlab predict's names; a two-slice stack gives two rows and a two-plane map."""
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    for k in (0, 1):
        lr, _, px = read_tiff(pairs / "lr" / f"sim_{k:04d}.tif")
        hr, _, hr_px = read_tiff(pairs / "hr" / f"sim_{k:04d}.tif")
        write_tiff(inputs / f"cell{k}.tif", lr, pixel_size_nm=px)
        write_tiff(outputs / f"cell{k}_sr.tif", hr.astype(np.float32), pixel_size_nm=hr_px)
    stack_lr = np.stack([read_tiff(pairs / "lr" / f"sim_{k:04d}.tif")[0] for k in (0, 1)])
    stack_hr = np.stack([read_tiff(pairs / "hr" / f"sim_{k:04d}.tif")[0] for k in (0, 1)]).astype(np.float32)
    write_tiff(inputs / "stack.tif", stack_lr, pixel_size_nm=40.0)
    write_tiff(outputs / "stack_sr.tif", stack_hr, pixel_size_nm=20.0)

    report = tmp_path / "report"
    proc = cli_in_process("check", str(inputs), str(outputs), "-o", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "RSP" in proc.stdout and "stack_sr.tif" in proc.stdout
    with (report / "check.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(Path(r["output"]).name, r["plane"]) for r in rows] == [
        ("cell0_sr.tif", ""), ("cell1_sr.tif", ""), ("stack_sr.tif", "[z=0]"), ("stack_sr.tif", "[z=1]")]
    assert all(float(r["rsp"]) > 0.9 for r in rows)
    assert float(rows[0]["rse"]) == pytest.approx(float(rows[2]["rse"]), rel=1e-6)  # the same plane, same answer
    with tifffile.TiffFile(report / "stack_sr.errormap.tif") as tif:
        assert tif.asarray().shape == (2, 96, 96)
    assert (report / "cell0_sr.check.png").stat().st_size > 10_000

    again = cli_in_process("check", str(inputs), str(outputs), "-o", str(report))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert cli_in_process("check", str(inputs), str(outputs), "-o", str(report), "--overwrite").returncode == 0


@pytest.mark.parametrize("case", ["not_a_scale", "no_partner", "two_channels", "file_and_folder", "no_pixel_size"])
def test_mistakes_are_one_line_and_write_nothing(case: str, pairs: Path, tmp_path: Path):
    lr = pairs / "lr" / "sim_0000.tif"
    sr = pairs / "hr" / "sim_0000.tif"
    extra: list[str] = []
    if case == "not_a_scale":
        sr = write_tiff(tmp_path / "odd.tif", np.ones((100, 97), np.float32), pixel_size_nm=20.0)
        expect = "is not an integer scale of its input"
    elif case == "no_partner":
        (tmp_path / "in").mkdir()
        (tmp_path / "outs").mkdir()
        write_tiff(tmp_path / "in" / "a.tif", read_tiff(lr)[0], pixel_size_nm=40.0)
        lr, sr, expect = tmp_path / "in", tmp_path / "outs", "no output for it in"
    elif case == "two_channels":
        image = read_tiff(lr)[0]
        lr = write_tiff(tmp_path / "two.tif", np.stack([image, image]), pixel_size_nm=40.0, axes="CYX")
        expect = "a 2-channel image (axes 'CYX'); pass --channel 0..1"
        # With --channel, the one-channel output that srlab predict --channel writes is checked against it.
        assert cli_in_process("check", str(lr), str(sr), "--channel", "1", "-o", str(tmp_path / "ok")).returncode == 0
    elif case == "file_and_folder":
        sr, expect = pairs / "hr", "give two files or two folders"
    else:
        lr = write_tiff(tmp_path / "bare.tif", read_tiff(lr)[0], pixel_size_nm=None)
        extra, expect = ["--psf-fwhm-nm", "200"], "--psf-fwhm-nm needs --pixel-size-nm"
    out = tmp_path / "report"
    proc = cli_in_process("check", str(lr), str(sr), "-o", str(out), *extra)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expect in lines[0], proc.stderr
    assert not out.exists()


def test_run_gives_the_relative_psf_of_its_data_block(pairs: Path, tmp_path: Path):
    """``--run``: the resolution-scaling function is the one the run's data block implies, not a fitted one."""
    from srlab import experiment
    from srlab.compare.check import relative_psf_of_run
    from srlab.config import load_experiment
    from srlab.data.physics import relative_blur
    from tests.conftest import TINY

    cfg = load_experiment("edsr_smoke", [*TINY, f"runs_dir={tmp_path / 'runs'}"])
    run = experiment.train(cfg)
    fwhm, source = relative_psf_of_run(run)
    assert fwhm == pytest.approx(relative_blur(cfg.data).fwhm_nm) and source
    proc = cli_in_process("check", str(pairs / "lr" / "sim_0000.tif"), str(pairs / "hr" / "sim_0000.tif"),
                          "--run", str(run), "-o", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    assert f"Gaussian FWHM {fwhm:.0f} nm" in proc.stdout
    with (tmp_path / "report" / "check.csv").open() as f:
        row = next(csv.DictReader(f))
    assert float(row["rsf_fwhm_nm"]) == pytest.approx(fwhm, rel=1e-3)
    both = cli_in_process("check", str(pairs / "lr"), str(pairs / "hr"), "--run", str(run), "--psf-fwhm-nm", "100",
                          "-o", str(tmp_path / "x"))
    assert both.returncode == 2 and "not both" in both.stderr and not (tmp_path / "x").exists()
