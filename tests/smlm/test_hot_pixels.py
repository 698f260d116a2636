"""Persistent hot pixels in an SMLM camera stack (:func:`srlab.smlm.localizations.repair_hot_pixels`):
a camera defect is bright in every frame and would be an emitter in every frame; calibrate --smlm and
localize replace it, and leave clean stacks alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from srlab.data.defects import persistent_hot_pixels
from srlab.smlm.localizations import read_localizations_csv, read_smlm_stack, repair_hot_pixels
from srlab.smlm.simulate import SMLMConfig, simulate_smlm, write_smlm_dataset
from tests.conftest import cli_in_process

CONFIG = SMLMConfig(height_px=48, width_px=48, structure="microtubules", density_per_um2=1.0, psf_sigma_nm=120.0,
                    photons_mean=1500.0, background_photons=20.0, camera="scmos", quantum_efficiency=1.0,
                    offset_adu=100.0, e_per_adu=0.5, read_noise_e=1.5)
HOT = [(5, 40), (20, 7), (30, 30), (31, 30), (44, 12)]  # one pair of adjacent defects


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hot")
    paths = write_smlm_dataset(folder / "clean", frames=120, seed=2, config=CONFIG)
    with tifffile.TiffFile(paths.stack) as tif:
        stack = tif.asarray()
        resolution = tif.pages[0].tags["XResolution"].value
    hot = stack.copy()
    for r, c in HOT:  # +1500 ADU in every frame: a warm-to-hot sCMOS pixel
        hot[:, r, c] = np.minimum(hot[:, r, c].astype(np.int64) + 1500, 65535)
    hot_path = folder / "hot.tif"
    per_um = resolution[0] / resolution[1]
    tifffile.imwrite(hot_path, hot, imagej=True, resolution=(per_um, per_um), metadata={"axes": "TYX", "unit": "um"})
    return {"clean": paths.stack, "hot": hot_path, "truth": paths.ground_truth}


def test_the_defects_are_found_and_repaired_in_every_frame(stacks):
    hot, _ = read_smlm_stack(stacks["hot"])
    clean, _ = read_smlm_stack(stacks["clean"])
    mask = persistent_hot_pixels(hot)
    assert sorted(zip(*np.nonzero(mask))) == sorted(HOT)
    repaired, count = repair_hot_pixels(hot)
    assert count == len(HOT)
    for r, c in HOT:  # back within the clean pixel's range, frame by frame
        assert np.abs(repaired[:, r, c] - clean[:, r, c]).mean() < 0.2 * (1500 / 0.5 * 0.5)
    assert repair_hot_pixels(clean)[1] == 0


@pytest.mark.parametrize("structure, density", [("microtubules", 5.0), ("er", 0.5), ("uniform", 5.0)])
def test_no_pixel_of_a_clean_stack_is_taken_for_a_defect(structure: str, density: float):
    """The median frame of a dense or structured specimen is smooth at the PSF's scale: no defect."""
    sim = simulate_smlm(CONFIG.replace(structure=structure, density_per_um2=density), frames=150, seed=5)
    assert not persistent_hot_pixels(sim.stack.astype(np.float32)).any()


def test_calibrate_and_localize_do_not_see_the_defects(stacks, tmp_path):
    from srlab.calibration.smlm import calibrate_smlm

    clean, hot = calibrate_smlm(stacks["clean"]), calibrate_smlm(stacks["hot"])
    for key in ("psf_sigma_nm", "gain_adu_per_photon", "photons_per_emitter", "background_photons"):
        assert hot.estimates[key].value == pytest.approx(clean.estimates[key].value, rel=0.05), key
    assert any(n.startswith(f"{len(HOT)} hot pixel(s)") for n in hot.notes)
    assert not any("hot pixel" in n for n in clean.notes)

    counts = {}
    for name in ("clean", "hot"):
        done = cli_in_process("localize", "--method", "gaussfit", str(stacks[name]), "-o", str(tmp_path / name),
                              "--psf-sigma-nm", "120", "--offset-adu", "100", "--e-per-adu", "0.5", "--quiet")
        assert done.returncode == 0, done.stderr
        assert ("hot pixel" in done.stderr) == (name == "hot")
        counts[name] = len(read_localizations_csv(tmp_path / name / "localizations.csv"))
    # a defect left in would be found in most of the 120 frames: 5 x ~120 extra localizations
    assert abs(counts["hot"] - counts["clean"]) < 0.02 * counts["clean"] + 10, counts
