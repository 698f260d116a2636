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


def test_a_full_disk_with_overwrite_keeps_the_earlier_checks_files(pairs: Path, tmp_path: Path, monkeypatch,
                                                                   capsys):
    """--overwrite replaces each file whole or not at all: a disk that fills while the error map is written
    leaves the earlier check's files as they were, nothing half-written beside them (they were written in
    place, so the earlier map was lost)."""
    import errno
    import os

    from srlab import cli

    lr, sr, report = pairs / "lr" / "sim_0000.tif", pairs / "hr" / "sim_0000.tif", tmp_path / "report"
    assert cli.main(["check", str(lr), str(sr), "-o", str(report)]) == 0
    before = {p.name: p.read_bytes() for p in report.iterdir()}

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00 half")  # what reached the disk before it filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    capsys.readouterr()
    assert cli.main(["check", str(lr), str(sr), "-o", str(report), "--overwrite"]) == 1
    assert "no space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before


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
        extra, expect = ["--psf-fwhm-nm", "200"], "the PSF in nm of --psf-fwhm-nm needs --pixel-size-nm"
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
    # an input without a pixel size names where the PSF came from (the user gave no --psf-fwhm-nm)
    bare = write_tiff(tmp_path / "bare.tif", read_tiff(pairs / "lr" / "sim_0000.tif")[0], pixel_size_nm=None)
    proc = cli_in_process("check", str(bare), str(pairs / "hr" / "sim_0000.tif"), "--run", str(run), "-o",
                          str(tmp_path / "report2"))
    assert proc.returncode == 2 and f"the PSF in nm of --run {run} needs --pixel-size-nm" in proc.stderr
    both = cli_in_process("check", str(pairs / "lr"), str(pairs / "hr"), "--run", str(run), "--psf-fwhm-nm", "100",
                          "-o", str(tmp_path / "x"))
    assert both.returncode == 2 and "not both" in both.stderr and not (tmp_path / "x").exists()


def test_padding_and_hot_pixels_of_the_input_are_left_out(tmp_path: Path, capsys):
    """A zero-padded input (a registered or stitched field) with hot pixels, and the output srlab predict
    makes of it (padding kept, hot pixels not in it): the check leaves the padding with a band and the hot
    pixels out, and reads what it reads on the image without them. Before, the same perfect output scored
    RSE 1447 / RSP 0.03 / RSF σ 4.0 LR px (the search's bound) / FRC n/a against this input, 37.7 / 0.75 /
    4.0 / 179 nm against it without the hot pixels, and 4.3 / 0.97 / 2.06 / 207 nm on the image part alone."""
    from srlab.data.simulate import Imager, resolve_simulation
    from srlab.metrics.consistency import squirrel_consistency

    # confocal -> STED at 40 nm LR pixels, a detector with an offset (a zero fill is below all it writes)
    spec = resolve_simulation({"lr": {"modality": "confocal", "offset_adu": 100.0, "read_noise_e": 1.0},
                               "hr": {"modality": "sted"}, "n_images": 1, "lr_size_px": 128, "seed": 3}, scale=2)
    pair = Imager(spec).image(0)
    lr, sr = pair["lr"], pair["hr_expected"].astype(np.float32)  # a perfect output: the expected STED image
    px = spec.lr.pixel_size_nm
    clean = tmp_path / "clean"
    for folder in ("clean/in", "clean/out", "bad/in", "bad/out"):
        (tmp_path / folder).mkdir(parents=True)
    write_tiff(clean / "in" / "cell.tif", lr[:, :80], pixel_size_nm=px)
    write_tiff(clean / "out" / "cell_sr.tif", sr[:, :160], pixel_size_nm=px / 2)
    padded_lr, padded_sr = lr.copy(), sr.copy()
    padded_lr[:, 80:], padded_sr[:, 160:] = 0, 0
    rng = np.random.default_rng(0)
    hot = (rng.integers(10, 118, 8), rng.integers(5, 70, 8))  # < 0.1 %: above the 99.9th percentile
    padded_lr[hot] = 65535
    write_tiff(tmp_path / "bad" / "in" / "cell.tif", padded_lr, pixel_size_nm=px)
    write_tiff(tmp_path / "bad" / "out" / "cell_sr.tif", padded_sr, pixel_size_nm=px / 2)

    got = check_pair(tmp_path / "bad" / "in" / "cell.tif", tmp_path / "bad" / "out" / "cell_sr.tif")[0]
    # the same pixels of the image without padding and hot pixels
    want = squirrel_consistency(sr, lr, scale=2, valid=np.isfinite(got.error_map))
    assert got.rse == pytest.approx(want.rse, rel=0.01) and got.rsp == pytest.approx(want.rsp, abs=0.002)
    assert got.rsf_sigma_lr_px == pytest.approx(want.psf_sigma_lr_px, rel=0.02)
    # the FRC on the largest rectangle without the fill: as on the image part alone
    alone = check_pair(clean / "in" / "cell.tif", clean / "out" / "cell_sr.tif")[0]
    assert 150 < got.frc_input_nm == pytest.approx(alone.frc_input_nm, rel=0.1)
    assert np.isnan(got.error_map[hot]).all() and np.isnan(got.error_map[:, 80 - 14:]).all()
    assert np.isfinite(got.error_map[:, :60]).sum() == 128 * 60 - len(set(zip(*hot)) & {(r, c) for r in range(128)
                                                                                          for c in range(60)})
    assert got.pixels_left_out == int(np.isnan(got.error_map).sum())
    assert any("hot pixel" in n for n in got.left_out) and any("fill of value 0" in n for n in got.left_out)

    proc = cli_in_process("check", str(tmp_path / "bad" / "in"), str(tmp_path / "bad" / "out"), "-o",
                          str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    assert "left out of the check" in proc.stdout and "8 hot pixel(s)" in proc.stdout
    with (tmp_path / "report" / "check.csv").open() as f:
        row, = list(csv.DictReader(f))
    assert int(row["input_pixels_left_out"]) == got.pixels_left_out


def test_an_input_that_is_almost_all_padding_is_one_line(tmp_path: Path):
    lr = np.full((96, 96), 0, np.uint16)
    lr[:, :6] = np.random.default_rng(1).poisson(200, (96, 6)) + 100
    write_tiff(tmp_path / "in.tif", lr, pixel_size_nm=80.0)
    write_tiff(tmp_path / "out.tif", np.zeros((192, 192), np.float32), pixel_size_nm=40.0)
    with pytest.raises(Exception, match=r"in.tif: only \d+ pixels are left to check once its fill of value 0"):
        check_pair(tmp_path / "in.tif", tmp_path / "out.tif")


def test_an_input_resolved_finer_than_the_frc_floor_says_so(tmp_path: Path):
    """A bright widefield image at 80 nm pixels (FWHM ~260 nm, the single-image FRC's floor 320 nm) has no
    FRC crossing: the check says "<320" rather than "n/a"."""
    from srlab.compare.check import summary
    from srlab.data.simulate import Imager, resolve_simulation

    spec = resolve_simulation({"lr": {"modality": "widefield", "offset_adu": 100.0, "e_per_adu": 0.5,
                                      "read_noise_e": 2.0, "signal_photons": 3000.0, "background_photons": 5.0},
                               "hr": {"modality": "sim"}, "n_images": 1, "lr_size_px": 128, "seed": 3}, scale=2)
    pair = Imager(spec).image(0)
    write_tiff(tmp_path / "in.tif", pair["lr"], pixel_size_nm=spec.lr.pixel_size_nm)
    write_tiff(tmp_path / "out.tif", pair["hr_expected"].astype(np.float32), pixel_size_nm=spec.hr.pixel_size_nm)
    c, = check_pair(tmp_path / "in.tif", tmp_path / "out.tif")
    assert math.isnan(c.frc_input_nm) and c.frc_input_finer_than_nm == pytest.approx(4 * spec.lr.pixel_size_nm)
    assert " <320 " in summary([c])


@pytest.mark.parametrize("experiment", ["deepstorm_tubes", "quality_sted"])
def test_run_of_another_task_is_refused_by_name(tmp_path: Path, experiment: str):
    """``--run`` of a localization or rating run said "its data block gives no PSF (a run on your own
    pairs)"; it is not an SR run."""
    from srlab.compare.check import relative_psf_of_run
    from srlab.config import load_experiment, to_yaml
    from srlab.errors import SrlabError

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(load_experiment(experiment)))
    with pytest.raises(SrlabError, match=f"'{experiment}' is not an SR run"):
        relative_psf_of_run(run)


@pytest.mark.parametrize("experiment,overrides,what", [
    ("bulat_sted", [], "data.kind=unpaired"),
    ("edsr_smoke", ["data=paired", "data.path=/data/pairs"], "your own pairs")])
def test_a_run_whose_block_gives_no_blur_says_which_block(tmp_path: Path, experiment: str, overrides: list[str],
                                                          what: str):
    """A Bulat run (unpaired data, simulated) was told it was "a run on your own pairs"."""
    from srlab.compare.check import relative_psf_of_run
    from srlab.config import load_experiment, to_yaml
    from srlab.errors import SrlabError

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(load_experiment(experiment, overrides)))
    with pytest.raises(SrlabError, match=f"its data block \\({what}\\) gives no blur .*--psf-fwhm-nm"):
        relative_psf_of_run(run)
