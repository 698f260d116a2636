"""``srlab calibrate`` on images as other labs hand them over: hot pixels, padded borders, clipped floors,
floats (:mod:`srlab.data.defects`). Without the defect handling, 20 hot pixels per image made the
PSF read 8 nm and a zero border 13 nm; here the same images must give what the clean ones give."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from srlab.calibration import calibrate
from srlab.calibration.noise import COUNTS_FROM_ZERO, LEVEL_CHI2, fit_noise
from srlab.data.defects import clipped_floor, fill_region, hot_pixels, largest_rectangle
from srlab.data.io import write_tiff

# widefield on an sCMOS camera, 80 nm pixels (as tests/calibration/test_calibrate.py)
FWHM_NM, E_PER_ADU, READ_NOISE_E, OFFSET_ADU, PIXEL_NM = 250.0, 0.5, 2.0, 100.0, 80.0
GAIN = 1.0 / E_PER_ADU


def _simulate(lr: dict, n: int, size: int, seed: int, hr: str = "sim") -> list[np.ndarray]:
    from srlab.data.simulate import Imager, resolve_simulation

    spec = resolve_simulation({"lr": lr, "hr": {"modality": hr}, "n_images": n, "lr_size_px": size, "seed": seed},
                              scale=2)
    imager = Imager(spec)
    return [imager.image(i)["lr"] for i in range(n)]


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    return _simulate({"modality": "widefield", "psf_fwhm_nm": FWHM_NM, "e_per_adu": E_PER_ADU,
                      "read_noise_e": READ_NOISE_E, "offset_adu": OFFSET_ADU, "signal_photons": 300.0,
                      "background_photons": 5.0}, n=4, size=192, seed=3)


def _write(folder: Path, images: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_tiff(folder / f"cell{i}.tif", im, pixel_size_nm=PIXEL_NM) for i, im in enumerate(images)]


def _estimates(paths: list[Path]):
    cal = calibrate(paths, modality="widefield", offset_adu=OFFSET_ADU)
    return cal, cal.lr.estimates


def _assert_recovered(e) -> None:
    """The recovery test's tolerances (issue 15): FWHM 10 %, gain 15 %, read noise 20 %."""
    assert e["psf_fwhm_nm"].value == pytest.approx(FWHM_NM, rel=0.10)
    assert e["gain_adu_per_photon"].value == pytest.approx(GAIN, rel=0.15)
    assert e["read_noise_adu"].value == pytest.approx(READ_NOISE_E * GAIN, rel=0.20)


def _with_hot_pixels(images: list[np.ndarray], rng: np.random.Generator
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """20 hot pixels per image anywhere (borders included), 4 of them as adjacent pairs; from 300 to
    60000 ADU above the offset, as a camera's defect map spans."""
    out, masks = [], []
    for im in images:
        im = im.copy()
        mask = np.zeros(im.shape, bool)
        rows, cols = rng.integers(0, im.shape[0], 16), rng.integers(0, im.shape[1] - 1, 16)
        mask[rows, cols] = True
        mask[rows[:4], cols[:4] + 1] = True
        values = OFFSET_ADU + rng.uniform(300, 60000, mask.sum())
        im[mask] = np.minimum(values, 65000).astype(im.dtype)
        out.append(im)
        masks.append(mask)
    return out, masks


def test_hot_pixels_are_found_repaired_and_do_not_move_the_estimates(clean, tmp_path: Path):
    rng = np.random.default_rng(0)
    hot, masks = _with_hot_pixels(clean, rng)
    cal, e = _estimates(_write(tmp_path / "hot", hot))
    _assert_recovered(e)
    _, reference = _estimates(_write(tmp_path / "clean", clean))
    assert e["psf_fwhm_nm"].value == pytest.approx(reference["psf_fwhm_nm"].value, rel=0.02)
    # every injected hot pixel, and nothing else, was replaced
    assert cal.lr.hot_pixels == tuple(int(m.sum()) for m in masks)
    assert any("hot pixel" in n and f"{sum(cal.lr.hot_pixels)} hot" in n for n in cal.notes), cal.notes
    for im, before in zip(cal.lr.images, clean):
        changed = im != before
        assert changed.sum() <= sum(int(m.sum()) for m in masks)


@pytest.mark.parametrize("lr, hr", [
    ({"modality": "confocal", "signal_photons": 20.0}, "sted"),   # photon counter, tens of photons
    ({"modality": "confocal", "signal_photons": 3000.0}, "sted"),
    ({"modality": "widefield", "signal_photons": 5000.0}, "sim"),
    ({"modality": "widefield10x", "signal_photons": 5000.0}, "widefield20x"),  # FWHM ≈ 1 px: undersampled
])
def test_no_pixel_of_a_clean_image_is_taken_for_a_hot_one(lr: dict, hr: str):
    """Bright puncta and the steep spots of an undersampled 10× image are not defects (with the factor
    calibrate uses: 0.7 × the preset's FWHM)."""
    from srlab.calibration import HOT_PIXEL_FWHM_FRACTION
    from srlab.data.simulate import resolve_modality

    images = [im.astype(np.float64) for im in _simulate({**lr}, n=2, size=128, seed=5, hr=hr)]
    preset = resolve_modality(lr["modality"])
    noise = fit_noise(images)
    for im in images:
        assert not hot_pixels(im, noise.variance,
                              min_fwhm_px=HOT_PIXEL_FWHM_FRACTION * preset.fwhm_nm / preset.pixel_size_nm).any()


@pytest.mark.parametrize("lr, hr", [
    ({"modality": "confocal", "signal_photons": 3.0}, "sted"),  # its top is lone counts: judged by its own line
    ({"modality": "confocal", "signal_photons": 3000.0}, "sted"),
    ({"modality": "widefield", "signal_photons": 30.0}, "sim"),
    ({"modality": "widefield10x", "signal_photons": 5000.0}, "widefield20x"),
])
def test_prediction_takes_no_pixel_of_a_clean_image_for_a_hot_one(lr: dict, hr: str):
    """:func:`clean_channel` (a prediction's input, ``data.real_lr``) repairs nothing on clean LR and HR
    images, also where the top of the range is lone pixels and the image's own noise line judges it."""
    from srlab.data.defects import _isolated_top_left, clean_channel, self_judged_hot_pixels
    from srlab.data.normalize import percentile_scale
    from srlab.data.simulate import Imager, resolve_simulation

    spec = resolve_simulation({"lr": lr, "hr": {"modality": hr}, "n_images": 2, "lr_size_px": 128, "seed": 6},
                              scale=2)
    pairs = [Imager(spec).image(i) for i in range(2)]
    images = [p[role] for p in pairs for role in ("lr", "hr")]
    assert all(clean_channel(im, 0.1, 99.9).hot_pixels == 0 for im in images)
    assert not any(self_judged_hot_pixels(im).any() for im in images)
    if lr["signal_photons"] == 3.0:  # the case the second judgement exists for, without defects
        assert any(_isolated_top_left(im, percentile_scale(im, 0.1, 99.9), np.zeros(im.shape, bool))
                   for im in images)


def test_self_judged_hot_pixels_in_bands_are_the_whole_images(clean, monkeypatch):
    """Judged in bands of rows (large frames), the mask is the one the whole image gives."""
    from srlab.data import defects

    rng = np.random.default_rng(1)
    image, _ = _with_hot_pixels(clean[:1], rng)
    whole = defects.self_judged_hot_pixels(image[0])
    assert whole.sum() >= 16
    monkeypatch.setattr(defects, "SELF_JUDGED_BAND_ROWS", 7)
    np.testing.assert_array_equal(defects.self_judged_hot_pixels(image[0]), whole)


def test_a_padded_border_is_left_out(clean, tmp_path: Path, capsys):
    """Registration shifts pad with zeros; a rotation pads the corners (jagged, interpolated edges)."""
    shifted = [im.copy() for im in clean]
    for im in shifted:
        im[:30, :] = 0
        im[:, -25:] = 0
    # the zero corners of an image rotated by 12° (the content left as acquired: interpolating it would
    # blur it, a change no calibration can undo)
    yy, xx = np.indices(clean[0].shape) - (np.array(clean[0].shape) - 1)[:, None, None] / 2
    angle = np.deg2rad(12)
    u, v = xx * np.cos(angle) + yy * np.sin(angle), -xx * np.sin(angle) + yy * np.cos(angle)
    outside = np.maximum(np.abs(u), np.abs(v)) > clean[0].shape[0] / 2 / (np.cos(angle) + np.sin(angle))
    rotated = [np.where(outside, 0, im).astype(im.dtype) for im in clean]
    for images, name in ((shifted, "shifted"), (rotated, "rotated")):
        cal, e = _estimates(_write(tmp_path / name, images))
        _assert_recovered(e)
        (note,) = [n for n in cal.notes if "fill" in n]
        assert note.startswith("LR: 4 image(s) hold a fill of value 0 (")
        assert all(im.min() > 0 for im in cal.lr.images)  # the measured rectangles hold no padding
    assert cal.lr.images[0].shape[0] >= 100


def test_a_photon_counters_dark_zeros_are_not_a_fill():
    """Zeros a photon counter writes where there is no light are zeros elsewhere too: not a fill."""
    rng = np.random.default_rng(2)
    expected = np.full((128, 128), 0.05)
    expected[:, 64:] += 30 * np.exp(-((np.arange(64) - 32) ** 2) / 20.0)[None, :]
    image = rng.poisson(expected).astype(np.uint16)
    assert (image[:, :64] == 0).mean() > 0.9 and (image == 0)[:, 64:].mean() > 0.001
    assert fill_region(image) is None
    padded = image.copy() + 100  # a camera's offset: a zero block is no longer something it writes
    padded[:40, :40] = 0
    fill = fill_region(padded)
    assert fill is not None and fill.value == 0
    top, bottom, left, right = fill.rectangle
    assert not (padded[top:bottom, left:right] == 0).any()


def test_a_photon_counters_padded_border_is_a_fill(tmp_path: Path):
    """A registration's zero border on a photon counter's images (srlab's confocal preset, ~1 photon/px
    of background: 10 % zeros elsewhere). Before, zeros elsewhere meant "the detector writes 0": the
    border stayed, became the darkest level, and the background read 0 photons/px (0.87 without it)."""
    images = _simulate({"modality": "confocal"}, n=4, size=160, seed=5, hr="sted")
    assert all(0.01 < (im == 0).mean() < 0.3 for im in images)
    padded = [im.copy() for im in images]
    for im in padded:
        im[:, :30] = 0
        im[:24, :] = 0
    fill = fill_region(padded[0])
    assert fill is not None and fill.value == 0
    top, bottom, left, right = fill.rectangle
    assert (top, left) == (24 + 2, 30 + 2) and (bottom, right) == (160, 160)  # the border and its margin
    assert fill_region(images[0]) is None  # its own zeros are not one

    def background(folder: str, ims: list[np.ndarray]) -> tuple[float, list[str]]:
        paths = [write_tiff(tmp_path / folder / f"c{i}.tif", im, pixel_size_nm=40.0)
                 for i, im in enumerate(ims) if (tmp_path / folder).mkdir(exist_ok=True) or True]
        cal = calibrate(paths, modality="confocal", target="sted")
        return cal.lr.estimates["background_photons"].value, cal.notes

    clean_bg, _ = background("clean", images)
    padded_bg, notes = background("padded", padded)
    assert padded_bg == pytest.approx(clean_bg, rel=0.10) and clean_bg > 0.5
    assert any(n.startswith("LR: 4 image(s) hold a fill of value 0") for n in notes)


def test_largest_rectangle_matches_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        valid = rng.random((9, 11)) > 0.25
        top, bottom, left, right = largest_rectangle(valid)
        assert valid[top:bottom, left:right].all()
        best = max((b - t) * (r - l) for t, b in itertools.combinations(range(10), 2)
                   for l, r in itertools.combinations(range(12), 2) if valid[t:b, l:r].all())
        assert (bottom - top) * (right - left) == best


def test_a_clipped_floor_is_reported(clean, tmp_path: Path):
    """Background-subtracted images (each image's 20th percentile removed, negatives clipped to 0) are
    named in the notes; raw images and a photon counter's Poisson zeros are not."""
    subtracted = [np.clip(im.astype(np.int64) - int(np.percentile(im, 20)), 0, None).astype(np.uint16)
                  for im in clean]
    assert all(clipped_floor(im) > 0.05 for im in subtracted)
    assert not any(clipped_floor(im) for im in clean)
    counter = _simulate({"modality": "confocal", "signal_photons": 20.0, "background_photons": 0.3}, n=2, size=128,
                        seed=1, hr="sted")
    assert all((im == 0).mean() > 0.2 for im in counter) and not any(clipped_floor(im) for im in counter)
    cal = calibrate(_write(tmp_path / "sub", subtracted), modality="widefield")
    (note,) = [n for n in cal.notes if "clipped" in n]
    assert note.startswith("LR: 4 of 4 image(s) clipped at their lowest value") and "raw" in note
    assert "a level per image" in note  # what these images are (the next test)
    # with the offset given the floor at 0 is where the block's camera clips as well (it read "not at 0")
    (given,) = [n for n in calibrate(_write(tmp_path / "sub", subtracted), modality="widefield",
                                     offset_adu=0.0).notes if "clipped" in n]
    assert "clips at 0 as they do" in given and "not at 0" not in given
    # a lone count on a clipped floor stands out from its neighbours like a defect: not judged there
    assert cal.lr.hot_pixels == (0, 0, 0, 0) and not any("hot pixel" in n for n in cal.notes)


def test_one_level_subtracted_and_clipped_keeps_the_gain_and_the_floor(clean, tmp_path: Path):
    """One level subtracted from every image (the acquisition's background or offset subtraction) and
    negatives written as 0: the noise line is fitted without the floor's neighbourhood, so the gain is
    the raw images' (it read 0.03 for 2 with a fifth of the pixels clipped), and the block's offset is
    the level under the floor, below 0, so that the simulation clips as the images do."""
    from srlab.calibration.block import simulate_check

    level = 125  # the darkest areas of three of the four images sit 0–15 ADU below it
    subtracted = [np.clip(im.astype(np.int64) - level, 0, None).astype(np.uint16) for im in clean]
    assert sum(clipped_floor(im) > 0.02 for im in subtracted) == 3
    cal = calibrate(_write(tmp_path / "sub", subtracted), modality="widefield")
    e = cal.lr.estimates
    assert e["gain_adu_per_photon"].value == pytest.approx(GAIN, rel=0.15)
    assert e["offset_adu"].method.startswith("darkest level of images clipped at 0")
    # the raw images' darkest levels less the level subtracted: -15, -12, -1 and +42 ADU (median -6)
    assert -15 < e["offset_adu"].value < 0
    (note,) = [n for n in cal.notes if "clipped" in n]
    assert "the block's offset (below 0" in note
    # the block reproduces the floor: its simulated images are clipped at 0 too, with the same gain
    check = simulate_check(cal, n=4, size_px=192)
    assert np.mean([(im == 0).mean() for im in check["lr_images"]]) > 0.02
    assert check["lr"].estimates["gain_adu_per_photon"].value == pytest.approx(GAIN, rel=0.15)


def test_a_leaking_noise_estimate_is_named_and_a_given_gain_is_used(clean, tmp_path: Path):
    """On undersampled images (srlab's 10× widefield, PSF FWHM 1 px) structure leaks into the noise
    estimate and the gain reads 3× high: the slope through the 4th-difference filter differs, the note
    says so and names --e-per-adu; with it the gain is the data sheet's and the photons are right. The
    well-sampled images get no such note. Smoothed images (noise not white) make the filters disagree too,
    with the gain 5× low: the note names that case as well."""
    from srlab.data.simulate import resolve_modality

    images = _simulate({"modality": "widefield10x", "signal_photons": 300.0}, n=4, size=192, seed=3,
                       hr="widefield20x")
    pixel_nm = resolve_modality("widefield10x").pixel_size_nm
    paths = [write_tiff(tmp_path / f"u{i}.tif", im, pixel_size_nm=pixel_nm) for i, im in enumerate(images)]
    fitted = calibrate(paths, modality="widefield10x", target="widefield20x")
    assert fitted.lr.estimates["gain_adu_per_photon"].value > 2.5 * GAIN  # the bias the note is for
    (note,) = [n for n in fitted.notes if "leaks into the noise estimate" in n]
    assert note.startswith("LR:") and "--e-per-adu" in note
    # the same disagreement of the two filters on smoothed images, where the gain reads low: named too
    smoothed = [np.round(ndimage.gaussian_filter(im.astype(np.float64), 0.5)).astype(np.uint16) for im in clean]
    blurred = calibrate(_write(tmp_path / "smoothed", smoothed), modality="widefield")
    assert blurred.lr.estimates["gain_adu_per_photon"].value < 0.3 * GAIN  # the bias the note names
    (note,) = [n for n in blurred.notes if "leaks into the noise estimate" in n]
    assert "smoothed" in note and "the gain reads low" in note and "raw acquisitions" in note
    given = calibrate(paths, modality="widefield10x", target="widefield20x", e_per_adu=E_PER_ADU)
    e = given.lr.estimates
    assert e["gain_adu_per_photon"].value == GAIN and e["gain_adu_per_photon"].method.startswith("given")
    assert e["signal_photons"].value == pytest.approx(300.0, rel=0.2)  # 78 with the fitted gain
    assert not any("leaks" in n for n in given.notes)
    assert not any("leaks" in n for n in calibrate(_write(tmp_path / "clean", clean), modality="widefield").notes)


def test_dim_camera_images_clipped_after_a_level_subtracted_are_not_taken_for_a_counter_silently(tmp_path: Path):
    """Dim, sparse camera images (gain 2, read noise 1.5 ADU, 0.5 photons/px of background) each less its own
    20th percentile and clipped at 0: a fifth of the pixels at 0, but the floor is no spike over the next
    levels (the noise is a few ADU wide), so they read as a photon counter's counts from zero, gain high. A
    counter's counts are multiples of its gain, so at that gain it would leave levels empty; these fill
    every one, and the note says what they look like. srlab's confocal counter and the raw images get no
    such note."""
    lr = {"modality": "widefield", "psf_fwhm_nm": FWHM_NM, "e_per_adu": 0.5, "read_noise_e": 0.75,
          "offset_adu": 100.0, "signal_photons": 15.0, "background_photons": 0.5}
    from srlab.data.simulate import Imager, resolve_simulation

    imager = Imager(resolve_simulation({"lr": lr, "hr": {"modality": "widefield"}, "n_images": 3,
                                        "lr_size_px": 256, "seed": 5, "density_range": [0.05, 0.05]}, scale=1))
    raw = [imager.image(i)["lr"] for i in range(3)]
    clipped = [np.clip(im.astype(np.float64) - np.percentile(im, 20), 0, None).round().astype(np.uint16)
               for im in raw]
    cal = calibrate(_write(tmp_path / "clipped", clipped), modality="widefield")
    assert cal.lr.noise.offset_method in COUNTS_FROM_ZERO
    (note,) = [n for n in cal.notes if "cannot do" in n]
    assert note.startswith("LR:") and "clipped at 0" in note and "--e-per-adu" in note
    assert not any("cannot do" in n for n in calibrate(_write(tmp_path / "raw", raw), modality="widefield").notes)
    counter = _simulate({"modality": "confocal", "psf_fwhm_nm": FWHM_NM, "signal_photons": 15.0}, n=3, size=128,
                        seed=2, hr="sted")
    counted = calibrate(_write(tmp_path / "counter", counter), modality="confocal", target="sted")
    assert counted.lr.noise.offset_method in COUNTS_FROM_ZERO
    assert not any("cannot do" in n for n in counted.notes)


def test_images_rescaled_one_by_one_are_named(clean, tmp_path: Path):
    """Each image stretched to 0–65535 (Fiji's "scale when converting"): one pooled noise line means
    nothing there, as each image has its own gain (136–203 ADU/photon); the note names it. The raw images,
    one camera setting, agree."""
    stretched = [np.round((im.astype(np.float64) - im.min()) * 65535.0 / (im.max() - im.min())).astype(np.uint16)
                 for im in clean]
    cal = calibrate(_write(tmp_path / "stretched", stretched), modality="widefield")
    (note,) = [n for n in cal.notes if "noise lines disagree" in n]
    assert note.startswith("LR:") and "scale when converting" in note
    # their intercepts differ too, but without a common slope there is no level per image to fit
    assert cal.lr.noise.level_chi2 > LEVEL_CHI2 and not cal.lr.noise.levels_differ
    assert not any("not one level" in n for n in cal.notes)
    raw = calibrate(_write(tmp_path / "raw", clean), modality="widefield")
    assert len(raw.lr.noise.image_gains) == 4 and not raw.lr.noise.gains_disagree
    assert not any("disagree" in n for n in raw.notes)


def test_a_level_subtracted_per_image_is_fitted_with_a_level_each(clean, tmp_path: Path):
    """Each image less its own 20th percentile (161, 120, 121, 206 ADU) and clipped at 0: one pooled noise
    line read the gain 2.55 for 2; one slope with a level per image reads it within 15 %, the note names
    what was done, and the signal is each image's own above its own level. Raw images share one level and
    keep the pooled line."""
    subtracted = [np.clip(im.astype(np.int64) - int(np.percentile(im, 20)), 0, None).astype(np.uint16)
                  for im in clean]
    cal = calibrate(_write(tmp_path / "sub", subtracted), modality="widefield")
    n, e = cal.lr.noise, cal.lr.estimates
    assert n.levels_differ and n.pooled_gain_adu_per_photon > 1.2 * GAIN  # the bias the level per image removes
    assert e["gain_adu_per_photon"].value == pytest.approx(GAIN, rel=0.15)
    assert e["gain_adu_per_photon"].method.endswith("a level per image")
    assert e["signal_photons"].value == pytest.approx(300.0, rel=0.15)
    (note,) = [m for m in cal.notes if "not one level" in m]
    assert note.startswith("LR:") and "image by image" in note
    raw = calibrate(_write(tmp_path / "raw", clean), modality="widefield")
    assert not raw.lr.noise.levels_differ and raw.lr.noise.level_chi2 < LEVEL_CHI2
    assert not any("not one level" in m for m in raw.notes)


def test_the_common_slope_fit_recovers_one_slope_and_each_level():
    """:func:`common_slope_fit` on points of three lines of slope 2 and intercepts −100, 40, 300 ADU²
    (with noise at their standard errors): the slope and each intercept within 3 standard errors, and the
    intercepts' χ² far above :data:`LEVEL_CHI2`; on three lines of one intercept, χ² near 1."""
    from srlab.calibration.noise import common_slope_fit

    rng = np.random.default_rng(0)

    def points(intercepts):
        out = []
        for b in intercepts:
            mu = np.linspace(100.0, 2000.0, 20)
            var = 2.0 * mu + b
            se = 0.02 * var
            out.append((mu, var + rng.normal(0.0, se), se))
        return out

    fit = common_slope_fit(points([-100.0, 40.0, 300.0]))
    assert abs(fit.gain - 2.0) < 3 * fit.gain_se and fit.gain_se < 0.05
    assert np.all(np.abs(fit.intercepts - [-100.0, 40.0, 300.0]) < 3 * fit.intercept_ses)
    assert fit.level_chi2 > 10 * LEVEL_CHI2
    same = common_slope_fit(points([40.0, 40.0, 40.0]))
    assert same.level_chi2 < 4.0 and abs(same.gain - 2.0) < 3 * same.gain_se


def test_the_level_under_a_floor_at_zero_is_recovered():
    """:func:`unclipped_level_adu` inverts the clipped normal's mean: samples of ``max(0, N(D, v(D)))``
    on the line ``v = 2·D + 60`` give back ``D``; an empty floor (mean 0) leaves nothing to read."""
    from srlab.calibration.noise import unclipped_level_adu

    rng = np.random.default_rng(0)
    for level in (-12.0, -4.0, 0.0, 6.0, 30.0):
        x = np.maximum(rng.normal(level, np.sqrt(2.0 * level + 60.0), 400_000), 0.0)
        assert unclipped_level_adu(float(x.mean()), 2.0, 60.0) == pytest.approx(level, abs=0.1)
    assert unclipped_level_adu(0.0, 2.0, 60.0) == 0.0


def test_whole_counts_stored_as_floats_are_counts(clean, tmp_path: Path):
    _, as_int = _estimates(_write(tmp_path / "int", clean))
    cal, as_float = _estimates(_write(tmp_path / "float", [im.astype(np.float32) for im in clean]))
    assert cal.lr.bit_depth == 12  # values below 4096 as in the 16-bit files, not the "8-bit" of a float
    for key in ("psf_fwhm_nm", "gain_adu_per_photon", "read_noise_adu", "signal_photons"):
        assert as_float[key].value == pytest.approx(as_int[key].value, rel=1e-9), key
