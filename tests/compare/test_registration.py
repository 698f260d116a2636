"""Pairs whose HR is shifted against their LR (two acquisitions, a drift correction): the shift is measured
from the pair alone, and ``srlab evaluate --register`` scores every method in the HR's frame."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmarks.shifted_pairs import shifted_copy
from srlab.compare.pairs import evaluate_pairs
from srlab.data.registration import (
    Alignment,
    border_px,
    fit_alignment,
    folder_alignments,
    hr_shift_px,
    moved,
    warped,
)
from tests.conftest import cli_in_process


def _blurred_pair(rng: np.random.Generator, shift: tuple[float, float], n: int = 128, noise: float = 0.03):
    """Points and lines; the HR blurred by σ 1.2 px and moved by ``shift``, the LR blurred by σ 3 px and binned
    ×2 (a camera's pixels), both with Gaussian noise; the LR bicubic-interpolated as srlab evaluate does."""
    obj = np.zeros((n, n))
    np.add.at(obj, tuple(rng.integers(0, n, (2, 40))), rng.uniform(0.5, 1.0, 40))
    t = np.linspace(0.0, 1.0, 2000)
    for _ in range(4):
        start, step = rng.uniform(0, n, 2), rng.uniform(-n, n, 2)
        points = (start[:, None] + step[:, None] * t).astype(int)
        inside = ((points >= 0) & (points < n)).all(axis=0)
        obj[points[0, inside], points[1, inside]] += 0.2
    hr = ndimage.shift(ndimage.gaussian_filter(obj, 1.2), shift, order=3, mode="nearest")
    lr = ndimage.gaussian_filter(obj, 3.0).reshape(n // 2, 2, n // 2, 2).mean(axis=(1, 3))
    hr = hr + rng.normal(0.0, noise * hr.max(), hr.shape)
    lr = lr + rng.normal(0.0, noise * lr.max(), lr.shape)
    up = torch.nn.functional.interpolate(torch.from_numpy(lr)[None, None], scale_factor=2, mode="bicubic",
                                         align_corners=False)[0, 0].numpy()
    return up, hr


def test_the_shift_is_measured_to_a_fraction_of_a_pixel():
    rng = np.random.default_rng(0)
    truth = rng.uniform(-3.0, 3.0, (8, 2))
    errors = np.array([np.subtract(hr_shift_px(*_blurred_pair(rng, tuple(s))), s) for s in truth])
    assert np.abs(errors.mean(axis=0)).max() < 0.08  # no bias: the sign and grid conventions are right
    assert np.sqrt((errors**2).mean()) < 0.2
    assert np.abs(errors).max() < 0.4


def test_the_shift_is_scikit_images_cross_correlation_peak():
    """The same quantity as scikit-image's plain (unnormalized) cross-correlation registration, which srlab
    does not depend on: both find the applied shift, with the same sign. scikit-image is given the images as
    srlab correlates them, mean removed and edges tapered: its circular correlation of the bare images is
    pulled by a whole pixel here by the wrap-around of their edges."""
    from srlab.data.registration import _tapered

    registration = pytest.importorskip("skimage.registration")
    rng = np.random.default_rng(1)
    for shift in ((2.3, -1.6), (-0.7, 2.9), (0.0, 0.0)):
        up, hr = _blurred_pair(rng, shift)
        ours = np.array(hr_shift_px(up, hr))
        theirs = registration.phase_cross_correlation(_tapered(hr), _tapered(up), upsample_factor=20,
                                                      normalization=None)[0]
        assert np.abs(ours - shift).max() < 0.4 and np.abs(theirs - shift).max() < 0.4
        assert np.abs(ours - theirs).max() < 0.5


def test_moving_a_prediction_undoes_the_shift():
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.random((64, 64)), 2.0).astype(np.float32)
    shift = (1.5, -2.25)
    b = border_px(Alignment(shift), image.shape)
    assert b == 4
    back = moved(moved(image, shift), (-shift[0], -shift[1]))
    np.testing.assert_allclose(back[2 * b:-2 * b, 2 * b:-2 * b], image[2 * b:-2 * b, 2 * b:-2 * b], atol=2e-3)
    assert moved(image[None], shift).shape == (1, 64, 64)


def _simulate(tmp_path: Path, n: int = 3) -> Path:
    out = tmp_path / "pairs"
    # 128 LR px: on 64 px fields (a few structures each) the shift read up to 0.5 HR px off, on 128 px 0.13
    proc = cli_in_process("simulate", "--pair", "confocal:sted", "--n", str(n), "--size", "128", "--out", str(out),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def test_evaluate_reports_the_shift_and_register_scores_in_the_hr_frame(tmp_path: Path):
    """A 3 × 2 HR-pixel shift (60 × 40 nm of STED) costs Richardson–Lucy far more than bicubic unregistered,
    which the report says; with --register the scores come back to those of the aligned pairs."""
    pairs = _simulate(tmp_path)
    shifted = shifted_copy(pairs, tmp_path / "shifted", (3.0, -2.0))
    quiet = {"montages": False, "log": lambda *_: None}
    aligned = evaluate_pairs([], pairs, tmp_path / "aligned", **quiet)
    plain = evaluate_pairs([], shifted, tmp_path / "plain", **quiet)
    registered = evaluate_pairs([], shifted, tmp_path / "registered", register=True, **quiet)

    for name, (dy, dx) in plain["hr_shifts_px"].items():
        assert dy == pytest.approx(3.0, abs=0.3) and dx == pytest.approx(-2.0, abs=0.3), name
    assert all(np.hypot(*s) < 0.3 for s in aligned["hr_shifts_px"].values())
    assert registered["hr_shifts_px"] == plain["hr_shifts_px"] and registered["registered"]
    assert any("pass --register" in n for n in plain["notes"])
    assert not any("--register" in n for n in aligned["notes"])
    assert any("brought into its HR's frame" in n for n in registered["notes"])

    def psnr(report, method):
        return report["methods"][method]["psnr"]["mean"]

    rl_cost = psnr(aligned, "richardson_lucy") - psnr(plain, "richardson_lucy")
    assert rl_cost > 1.0 and rl_cost > psnr(aligned, "bicubic") - psnr(plain, "bicubic")
    for method in ("bicubic", "richardson_lucy"):
        assert psnr(registered, method) == pytest.approx(psnr(aligned, method), abs=0.3)
    assert json.loads((tmp_path / "registered" / "summary.json").read_text())["registered"] is True


def _turned_pair(rng: np.random.Generator, truth: Alignment, n: int = 256):
    """:func:`_blurred_pair`'s specimen and microscopes, the HR magnified, turned and shifted by ``truth``."""
    up, hr = _blurred_pair(rng, (0.0, 0.0), n)
    return up, warped(hr, truth)


@pytest.mark.parametrize("truth", [Alignment((2.0, 3.0), 1.02, -1.0), Alignment((-3.0, 1.0), 0.97, 2.0),
                                   Alignment((0.4, -0.2), 1.0, 0.0)])
def test_a_magnification_and_a_rotation_are_fitted_with_the_shift(truth: Alignment):
    """Two objectives' magnification ratio a few % off the nominal one and a camera turned by a degree or two
    move a 256 px field's edges by 4–6 px: the fit finds them (and no zoom or turn where there is none)."""
    fitted = fit_alignment(*_turned_pair(np.random.default_rng(3), truth))
    assert fitted.zoom == pytest.approx(truth.zoom, abs=0.002)
    assert fitted.rotation_deg == pytest.approx(truth.rotation_deg, abs=0.1)
    assert np.subtract(fitted.shift_px, truth.shift_px) == pytest.approx([0.0, 0.0], abs=0.3)


@pytest.mark.parametrize("truth", [Alignment((1.0, -1.0), 1.0, 0.0, 1.02, 0.0),
                                   Alignment((0.5, 0.5), 1.01, 0.5, 0.98, 0.015),
                                   Alignment((0.0, 0.0), 1.0, 0.0, 1.0, -0.02)])
def test_an_aspect_and_a_shear_are_fitted_with_the_rest(truth: Alignment):
    """A scanner's two axes calibrated 2 % apart, or not quite perpendicular: an HR pixel or more on average
    over a 256 px field, which no similarity takes; the fit reads them, and what is left is a tenth of that or less."""
    up, hr = _turned_pair(np.random.default_rng(3), truth)
    fitted = fit_alignment(up, hr)
    assert fitted.zoom == pytest.approx(truth.zoom, abs=0.002)
    assert fitted.rotation_deg == pytest.approx(truth.rotation_deg, abs=0.1)
    assert fitted.aspect == pytest.approx(truth.aspect, abs=0.002)
    assert fitted.shear == pytest.approx(truth.shear, abs=0.002)

    def left_px(a: Alignment) -> float:  # what is left of `truth` after undoing `a`, on average over the field
        undo = np.linalg.inv(a.matrix)
        return Alignment.from_matrix(undo @ truth.matrix, tuple(undo @ np.subtract(truth.shift_px, a.shift_px))
                                     ).mean_displacement_px(hr.shape)

    assert Alignment(aspect=truth.aspect, shear=truth.shear).mean_displacement_px(hr.shape) > 0.9
    assert left_px(fitted) < 0.15


def test_an_alignment_is_one_matrix_and_back():
    """Every 2 × 2 matrix of positive determinant is one (zoom, rotation, aspect, shear): read back unchanged,
    and the inverse undoes it."""
    for a in (Alignment((1.0, 2.0), 1.02, 1.0, 1.03, 0.02), Alignment((0.0, -3.0), 0.97, -2.0, 0.96, -0.04),
              Alignment()):
        assert Alignment.from_matrix(a.matrix, a.shift_px).instrument == pytest.approx(a.instrument, abs=1e-12)
        back = a.inverse()
        np.testing.assert_allclose(back.matrix @ a.matrix, np.eye(2), atol=1e-12)
        np.testing.assert_allclose(back.inverse().shift_px, a.shift_px, atol=1e-12)
    with pytest.raises(ValueError, match="positive determinant"):
        Alignment.from_matrix(np.diag([1.0, -1.0]))


def test_warping_back_by_the_inverse_restores_the_image():
    rng = np.random.default_rng(4)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 2.0).astype(np.float32)
    turned = Alignment((1.5, -2.0), 1.02, 1.5, 0.98, 0.02)
    b = border_px(turned, image.shape)
    assert b == int(np.ceil(turned.displacement_px(image.shape))) + 1 and b > 3
    back = warped(warped(image, turned), turned.inverse())
    np.testing.assert_allclose(back[2 * b:-2 * b, 2 * b:-2 * b], image[2 * b:-2 * b, 2 * b:-2 * b], atol=0.02)
    np.testing.assert_allclose(warped(image, Alignment((1.5, -2.0))), moved(image, (1.5, -2.0)))


@pytest.mark.parametrize("truth", [Alignment((1.0, -0.5), 1.01, 0.4), Alignment((1.0, -0.5), 1.0, 0.0, 1.02, 0.01)])
def test_a_folder_shares_one_magnification_and_rotation(tmp_path: Path, truth: Alignment):
    """The magnification, rotation, aspect and shear are the instruments': measured together, the pairs share
    the median of their free fits, which one sparse field's free fit cannot pull, and each pair keeps its own
    shift."""
    from srlab.data.io import read_tiff

    pairs = _simulate(tmp_path, n=6)
    turned = shifted_copy(pairs, tmp_path / "turned", truth.shift_px, *truth.instrument)

    def read(folder: Path):
        return [(read_tiff(folder / "lr" / f.name)[0][None], read_tiff(f)[0][None])
                for f in sorted((folder / "hr").glob("*.tif"))]

    for fitted in folder_alignments(read(turned), 2):
        assert fitted.zoom == pytest.approx(truth.zoom, abs=0.001)
        assert fitted.rotation_deg == pytest.approx(truth.rotation_deg, abs=0.05)
        assert fitted.aspect == pytest.approx(truth.aspect, abs=0.002)
        assert fitted.shear == pytest.approx(truth.shear, abs=0.002)
        assert np.subtract(fitted.shift_px, truth.shift_px) == pytest.approx([0.0, 0.0], abs=0.3)
    aligned = read(pairs)
    for fitted, (_, hr) in zip(folder_alignments(aligned, 2), aligned):
        assert fitted.displacement_px(hr.shape[-2:]) < 0.5


def test_register_scores_a_magnified_and_turned_hr_in_its_frame(tmp_path: Path):
    """A 2 % magnification and a 1° turn (corners 6–7 HR px off on 256 px fields) cost Richardson–Lucy more than
    a dB; --register brings the scores back to those of the aligned pairs."""
    pairs = _simulate(tmp_path)
    turned = shifted_copy(pairs, tmp_path / "turned", (0.5, 0.5), 1.02, 1.0)
    quiet = {"montages": False, "log": lambda *_: None}
    aligned = evaluate_pairs([], pairs, tmp_path / "aligned", **quiet)
    plain = evaluate_pairs([], turned, tmp_path / "plain", **quiet)
    registered = evaluate_pairs([], turned, tmp_path / "registered", register=True, **quiet)
    for read in plain["hr_alignment"].values():
        assert read["zoom"] == pytest.approx(1.02, abs=0.002) and read["rotation_deg"] == pytest.approx(1.0, abs=0.1)
        assert read["largest_displacement_px"] > 5.0 and read["mean_displacement_px"] > 2.0
    assert any("pass --register" in n for n in plain["notes"])

    def psnr(report, method):
        return report["methods"][method]["psnr"]["mean"]

    assert psnr(aligned, "richardson_lucy") - psnr(plain, "richardson_lucy") > 1.0
    assert psnr(registered, "richardson_lucy") - psnr(plain, "richardson_lucy") > 1.0
    for method in ("bicubic", "richardson_lucy"):
        # not "equal": the warp's interpolation smooths the HR's noise, which alone lifts every score (a
        # (0.5, 0.5) px shift of these HR images lifts Richardson–Lucy's 0.6 dB); never below the aligned pairs'
        assert psnr(registered, method) > psnr(aligned, method) - 0.3


def test_a_pair_without_common_structure_gets_the_translation_alone():
    """Noise against noise (no peak to climb) and a field too small to fit a magnification: finite, no zoom, no
    turn — never a runaway fit that would warp a prediction out of its field."""
    rng = np.random.default_rng(5)
    for side in (64, 8):
        fitted = fit_alignment(rng.random((side, side)), rng.random((side, side)))
        assert (fitted.zoom, fitted.rotation_deg) == (1.0, 0.0)
        assert all(np.isfinite(fitted.shift_px))


def test_a_pair_registered_out_of_its_field_is_one_line_before_anything_is_written(tmp_path: Path):
    """An HR of (nearly) another field — here moved by 124 of its 256 px — leaves nothing to score once the
    border its move brings in is left out: one line naming the pair, before any montage (the crop was empty
    and torch.quantile raised after the earlier pairs' montages were written)."""
    import shutil

    import tifffile

    from srlab.errors import SrlabError

    moved = shutil.copytree(_simulate(tmp_path), tmp_path / "moved")
    last = max((moved / "hr").glob("*.tif"))
    with tifffile.TiffFile(last) as tif:
        hr, resolution = tif.asarray(), tif.pages[0].tags["XResolution"].value
    tifffile.imwrite(last, np.roll(hr, 124, axis=-1), imagej=True, metadata={"unit": "um"},
                     resolution=(resolution[0] / resolution[1],) * 2)
    with pytest.raises(SrlabError, match=rf"{last.stem}: registered, its LR and HR share \d+ HR px a side \(moved "
                                         r"\d+ px of 256\): not one field of view\?"):
        evaluate_pairs([], moved, tmp_path / "report", register=True, log=lambda *_: None)
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").rglob("*"))
