"""Median-filtered images are told from raw ones by their exactly equal neighbours
(:func:`srlab.calibration.noise.equal_neighbours_ratio`), and calibrate says so."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from srlab.calibration import calibrate
from srlab.calibration.noise import EQUAL_NEIGHBOURS_RATIO, equal_neighbours_ratio
from srlab.data.io import write_tiff

FILTERED = "neighbouring pixels are exactly equal"
PRESETS = {  # (LR settings, HR preset): a camera at many ADU, and a photon counter at a few photons
    "widefield": ({"modality": "widefield", "psf_fwhm_nm": 250.0, "e_per_adu": 0.5, "read_noise_e": 2.0,
                   "offset_adu": 100.0, "signal_photons": 300.0, "background_photons": 5.0}, "sim"),
    "confocal": ({"modality": "confocal", "signal_photons": 20.0, "background_photons": 1.0}, "sted"),
}


def _images(kind: str, n: int = 3, size: int = 160) -> list[np.ndarray]:
    from srlab.data.simulate import Imager, resolve_simulation

    lr, hr = PRESETS[kind]
    imager = Imager(resolve_simulation({"lr": lr, "hr": {"modality": hr}, "n_images": n, "lr_size_px": size,
                                        "seed": 7}, scale=2))
    return [imager.image(i)["lr"] for i in range(n)]


@pytest.fixture(scope="module", params=sorted(PRESETS))
def raw(request) -> tuple[str, list[np.ndarray]]:
    return request.param, _images(request.param)


def test_raw_images_read_one_and_median_filtered_ones_well_above(raw):
    _, images = raw
    ratio, log_se = equal_neighbours_ratio(images)
    assert abs(np.log(ratio)) < 3 * log_se + 0.1, ratio  # independent noise: 1
    for image in images:  # one image at a time as well (realcheck-sized images read 0.94-1.08)
        assert equal_neighbours_ratio([image])[0] < EQUAL_NEIGHBOURS_RATIO
    median = equal_neighbours_ratio([ndimage.median_filter(im, size=3) for im in images])[0]
    assert median > EQUAL_NEIGHBOURS_RATIO + 0.2, median
    # the same counts stored as floats read the same; non-integer values cannot be read
    assert equal_neighbours_ratio([im.astype(np.float32) for im in images])[0] == pytest.approx(ratio)
    assert equal_neighbours_ratio([im + 0.5 for im in images]) is None


def test_calibrate_notes_median_filtered_images_and_not_raw_ones(raw, tmp_path):
    kind, images = raw
    lr, _ = PRESETS[kind]
    offset = {"offset_adu": lr["offset_adu"]} if "offset_adu" in lr else {}
    raw_paths = [write_tiff(tmp_path / f"raw{i}.tif", im, pixel_size_nm=80.0) for i, im in enumerate(images)]
    filtered_paths = [write_tiff(tmp_path / f"median{i}.tif", ndimage.median_filter(im, size=3), pixel_size_nm=80.0)
                      for i, im in enumerate(images)]
    modality = lr["modality"]
    assert not any(FILTERED in n for n in calibrate(raw_paths, modality=modality, **offset).notes)
    notes = [n for n in calibrate(filtered_paths, modality=modality, **offset).notes if FILTERED in n]
    assert len(notes) == 1 and notes[0].startswith("LR:") and "raw acquisitions" in notes[0]


def test_median_filtered_dark_frames_are_refused_in_one_line(tmp_path, capsys):
    from srlab.calibration.dark import load_dark, measure_dark
    from srlab.cli import main

    lr, _ = PRESETS["widefield"]
    rng = np.random.default_rng(3)
    dark = np.round(rng.normal(lr["offset_adu"], 4.0, (10, 96, 96))).astype(np.uint16)  # read noise 4 ADU
    raw_dark = write_tiff(tmp_path / "dark.tif", dark, pixel_size_nm=80.0)
    filtered_dark = write_tiff(tmp_path / "dark_median.tif", ndimage.median_filter(dark, size=(1, 3, 3)),
                               pixel_size_nm=80.0)
    assert measure_dark(load_dark([raw_dark])).read_noise_adu == pytest.approx(4.0, rel=0.05)
    images = [write_tiff(tmp_path / f"cell{i}.tif", im, pixel_size_nm=80.0) for i, im in enumerate(_images("widefield"))]
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", *map(str, images), "--dark", str(filtered_dark), "--out", str(out), "--no-check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dark_median.tif" in err and "exactly equal" in err
    assert not out.exists() and not out.with_suffix(".png").exists()  # nothing written
