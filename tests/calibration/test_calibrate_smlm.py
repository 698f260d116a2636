"""``srlab calibrate --smlm`` on srlab-simulated stacks of known parameters, the block it writes, and its
refusals."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from srlab.cli import main
from srlab.data.io import write_tiff
from srlab.smlm.simulate import SMLMConfig, write_smlm_dataset

REPO = Path(__file__).resolve().parents[2]
# Known acquisition: σ 130 nm, 1500 detected photons per emitter, 20 background photons/px, 0.5
# emitters/µm², offset 100 ADU; sCMOS at 2 ADU/photon, or EMCCD at a mean 5 ADU/photon (EM gain 100).
SIGMA_NM, PHOTONS, BACKGROUND, DENSITY, OFFSET = 130.0, 1500.0, 20.0, 0.5, 100.0
CAMERAS = {"scmos": {"e_per_adu": 0.5, "read_noise_e": 1.5}, "emccd": {"e_per_adu": 20.0, "read_noise_e": 60.0}}


def _config(camera: str) -> SMLMConfig:
    return SMLMConfig(height_px=48, width_px=48, structure="microtubules", density_per_um2=DENSITY,
                      psf_sigma_nm=SIGMA_NM, photons_mean=PHOTONS, background_photons=BACKGROUND, camera=camera,
                      quantum_efficiency=1.0, offset_adu=OFFSET, **CAMERAS[camera])


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("smlm")
    return {cam: write_smlm_dataset(folder / cam, frames=100, seed=1, config=_config(cam)).stack for cam in CAMERAS}


@pytest.mark.parametrize("camera", sorted(CAMERAS))
def test_recovers_psf_camera_photons_and_density(stacks, camera: str):
    from srlab.calibration.smlm import calibrate_smlm

    cal = calibrate_smlm(stacks[camera], camera=camera)
    e = cal.estimates
    assert e["psf_sigma_nm"].value == pytest.approx(SIGMA_NM, rel=0.10)
    assert e["photons_per_emitter"].value == pytest.approx(PHOTONS, rel=0.20)
    assert e["gain_adu_per_photon"].value == pytest.approx(_config(camera).adu_per_photon, rel=0.15)
    assert abs(e["offset_adu"].value - OFFSET) < 8.0  # with the read noise assumed (no --offset-adu)
    assert e["background_photons"].value == pytest.approx(BACKGROUND, rel=0.25)
    # Localizations per frame undercount (overlaps, misses); the efficiency measured on simulation corrects it.
    assert e["localizations_per_um2"].value < DENSITY
    assert e["density_per_um2"].value == pytest.approx(DENSITY, rel=0.25)
    for est in e.values():  # every estimate states an uncertainty
        assert np.isfinite(est.uncertainty) and est.uncertainty >= 0
    # Pooled over frames the localizations trace filaments: the microtubule specimen is kept.
    assert cal.simulation["structure"] == "microtubules"
    assert e["specimen_clustering"].value > 1.5


def test_chooses_the_specimen_whose_localizations_cluster_like_the_stack(tmp_path: Path):
    """Emitters placed uniformly (no structure) give localizations that do not cluster across frames:
    calibrate picks the uniform specimen, and its density correction is measured on that specimen."""
    from srlab.calibration.smlm import calibrate_smlm, clustering

    config = SMLMConfig(**{**_config("scmos").__dict__, "structure": "uniform", "density_per_um2": 2.0})
    stack = write_smlm_dataset(tmp_path / "uniform", frames=100, seed=2, config=config).stack
    cal = calibrate_smlm(stack, camera="scmos")
    assert cal.simulation["structure"] == "uniform"
    assert cal.estimates["specimen_clustering"].value == pytest.approx(1.0, abs=0.15)
    assert "(uniform)" in cal.estimates["detection_efficiency"].method
    assert cal.estimates["density_per_um2"].value == pytest.approx(2.0, rel=0.25)
    # The statistic itself: a uniform pattern is ~1 (less at the edges), one repeated across frames is not.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 5000, (2, 4000))
    frame = np.repeat(np.arange(40), 100)
    assert clustering(frame, x, y, field_um2=25.0)[0] == pytest.approx(0.95, abs=0.08)
    # The same 100 sites in every frame: uniform placement would give each localization 39 frames × 100 ×
    # π(0.2 µm)² / 25 µm² ≈ 20 partners within 200 nm; the 39 copies of its own site add 39: about 3×.
    same = np.tile(rng.uniform(0, 5000, (2, 100)), 40)
    assert clustering(frame, same[0] + rng.normal(0, 20, 4000), same[1], field_um2=25.0)[0] > 2.5


@pytest.mark.slow
def test_dense_stack_background_and_photons_are_corrected_for_crowding(tmp_path: Path):
    """At 4 emitters/µm² with a 130-nm σ almost no pixel is free of emitter light: the spot-free samples
    read the background high and the fitted spots have neighbours (the stack's own readings are kept as
    ``background_spot_free_photons`` and ``photons_fitted``). The background corrected on the block's own
    simulation and the photons from the stack's mean come back. Measured: readings +59 % / +11 %,
    corrected −15 % / −8 % (the foreign ThunderSTORM-style stack of ``make smlmcheck``, 5/µm²: +87 % /
    +33 % read, −8 % / −4 % corrected)."""
    from srlab.calibration.smlm import calibrate_smlm

    config = SMLMConfig(**{**_config("scmos").__dict__, "structure": "uniform", "density_per_um2": 4.0})
    stack = write_smlm_dataset(tmp_path / "dense", frames=200, seed=3, config=config).stack
    e = calibrate_smlm(stack, camera="scmos", offset_adu=OFFSET).estimates
    assert e["background_spot_free_photons"].value > 1.4 * BACKGROUND  # what the correction is for
    assert e["background_photons"].value == pytest.approx(BACKGROUND, rel=0.20)
    assert e["photons_per_emitter"].value == pytest.approx(PHOTONS, rel=0.15)
    assert "stack mean" in e["photons_per_emitter"].method
    assert e["density_per_um2"].value == pytest.approx(4.0, rel=0.15)


def test_cli_writes_an_smlm_block_deepstorm_takes(stacks, tmp_path: Path, capsys):
    from srlab import build
    from srlab.config import load_experiment

    root = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", root)
    out = root / "data" / "mysmlm.yaml"
    # The offset, once given, makes the read noise a measurement: 1.5 e- = 3 ADU here.
    assert main(["calibrate", "--smlm", str(stacks["scmos"]), "--out", str(out), "--offset-adu", "100"]) == 0
    printed = capsys.readouterr().out
    assert "psf_sigma_nm" in printed and "density_per_um2" in printed and str(out) in printed
    assert "line intercept at the given offset" in printed
    assert out.with_suffix(".png").stat().st_size > 10_000
    text = out.read_text()
    assert text.startswith("# Written by `srlab calibrate --smlm`") and "stack.tif" in text
    block = yaml.safe_load(text)
    assert block["kind"] == "smlm"
    sim = SMLMConfig.from_mapping(block["simulation"])  # every key is one the SMLM simulator takes
    assert sim.sigma_nm == pytest.approx(SIGMA_NM, rel=0.10) and sim.camera == "scmos"
    assert sim.offset_adu == OFFSET and 0 <= sim.read_noise_e < 4.0
    cfg = load_experiment("deepstorm_tubes", ["data=mysmlm", "profile=quick"], root=root)
    build.validate(cfg)
    assert cfg.data.simulation.psf_sigma_nm == block["simulation"]["psf_sigma_nm"]
    assert main(["calibrate", "--smlm", str(stacks["scmos"]), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["two_d", "no_pixel_size", "empty"])
def test_bad_stacks_are_one_line_exit_2(case: str, tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    frames = (100 + rng.poisson(20, (12, 32, 32))).astype(np.uint16)
    if case == "two_d":
        path, expect = write_tiff(tmp_path / "a.tif", frames[0], pixel_size_nm=100.0), "single frame"
    elif case == "no_pixel_size":
        path, expect = write_tiff(tmp_path / "a.tif", frames, pixel_size_nm=None), "--pixel-size-nm"
    else:
        path, expect = write_tiff(tmp_path / "a.tif", np.full((12, 32, 32), 100, np.uint16),
                                  pixel_size_nm=100.0), "empty stack"
    assert main(["calibrate", "--smlm", str(path), "--out", str(tmp_path / "cal.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "cal.yaml").exists()


def test_a_channel_of_a_multi_channel_stack_is_measured_and_localized_as_its_own_stack(stacks, tmp_path: Path,
                                                                                       capsys):
    """Two dyes (or activation and readout) in one file: ``--channel`` measures and localizes one
    channel exactly as its own single-channel file; without it, or with one the file lacks, one line."""
    from srlab.calibration.smlm import calibrate_smlm
    from srlab.data.io import read_tiff
    from srlab.smlm.localizations import read_localizations_csv

    single, _, pixel_nm = read_tiff(stacks["scmos"])
    other = np.flip(single, axis=-1) // 2 + 7  # another channel: the same frames mirrored, dimmer
    two = write_tiff(tmp_path / "two.tif", np.stack([other, single], axis=1), pixel_size_nm=pixel_nm, axes="TCYX")

    out = tmp_path / "two.yaml"
    assert main(["calibrate", "--smlm", str(two), "--channel", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "channel 1" in printed and "--channel 1" in printed.split("next:")[1]
    assert f"Stack: {two}, channel 1" in out.read_text()
    alone = calibrate_smlm(stacks["scmos"])  # the same measurement, to the last digit, on the channel's own file
    assert yaml.safe_load(out.read_text())["simulation"] == yaml.safe_load(yaml.safe_dump(alone.simulation))

    fit = ["--method", "gaussfit", "--psf-sigma-nm", str(SIGMA_NM), "--offset-adu", str(OFFSET), "--e-per-adu", "0.5"]
    assert main(["localize", *fit, str(stacks["scmos"]), "-o", str(tmp_path / "alone")]) == 0
    assert main(["localize", *fit, str(two), "--channel", "1", "-o", str(tmp_path / "picked")]) == 0
    capsys.readouterr()
    a = read_localizations_csv(tmp_path / "alone" / "localizations.csv")
    b = read_localizations_csv(tmp_path / "picked" / "localizations.csv")
    assert len(a) > 50 and len(a) == len(b)
    np.testing.assert_array_equal(a.x_nm, b.x_nm)

    for argv, expect in ((["calibrate", "--smlm", str(two), "--out", str(tmp_path / "x.yaml")],
                          "a 2-channel stack (axes 'TCYX'); pass --channel 0..1"),
                         (["calibrate", "--smlm", str(two), "--channel", "2", "--out", str(tmp_path / "x.yaml")],
                          "--channel 2, but the stack has 2 channel(s)"),
                         (["localize", *fit, str(two), "-o", str(tmp_path / "x")], "pass --channel 0..1"),
                         (["localize", *fit, str(stacks["scmos"]), "--channel", "1", "-o", str(tmp_path / "x")],
                          "--channel 1, but the stack has 1 channel(s)")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x").exists()
