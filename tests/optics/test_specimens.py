"""Specimen generators: every registered structure draws valid, reproducible labels with the
geometry its docstring cites (measured from the labels or their rendering, not read back from code)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import fft, ndimage

from srlab.optics import specimens as sp
from srlab.optics.specimens import STRUCTURES, Specimen, keep_fraction, splat

PIXEL_NM = 10.0


def _specimen(seed: int, size_nm: float = 6000.0, density: float = 1.0, width_scale: float = 1.0) -> Specimen:
    return Specimen(np.random.default_rng(seed), (size_nm, size_nm), 5.0, density, width_scale)


def _render(part: sp.Points, pad_nm: float = 300.0) -> np.ndarray:
    """One object splatted on a 10 nm grid around its bounding box."""
    x, y, w = part
    x0, y0 = x.min() - pad_nm, y.min() - pad_nm
    shape = (int((y.max() - y0 + pad_nm) / PIXEL_NM) + 1, int((x.max() - x0 + pad_nm) / PIXEL_NM) + 1)
    return splat((x - x0, y - y0, w), shape, PIXEL_NM)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_every_structure_draws_finite_reproducible_labels(name):
    a = STRUCTURES[name](_specimen(3, density=2.0))
    b = STRUCTURES[name](_specimen(3, density=2.0))
    assert len(a) > 0, name
    for (xa, ya, wa), (xb, yb, wb) in zip(a, b, strict=True):
        assert xa.shape == ya.shape == wa.shape and xa.ndim == 1
        assert np.all(np.isfinite(xa)) and np.all(np.isfinite(ya)) and np.all(wa > 0)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(wa, wb)
    if name != "er":  # the ER's tessellation always has a few cells
        assert STRUCTURES[name](_specimen(3, density=0.0)) == []


def _peak_period_nm(image: np.ndarray, lo_nm: float, hi_nm: float) -> float:
    """Period at the peak of the (radially averaged, zero-padded) power spectrum between two periods."""
    n = 2048
    power = np.abs(fft.fft2(image - image.mean(), s=(n, n))) ** 2
    f = np.hypot(*np.meshgrid(fft.fftfreq(n, PIXEL_NM), fft.fftfreq(n, PIXEL_NM), indexing="ij"))
    bins = np.linspace(1 / hi_nm, 1 / lo_nm, 201)
    which = np.digitize(f.ravel(), bins)
    radial = np.bincount(which, power.ravel(), 202)[1:201] / np.maximum(np.bincount(which, minlength=202)[1:201], 1)
    return float(1 / (0.5 * (bins[:-1] + bins[1:]))[np.argmax(radial)])


def test_spectrin_ring_period_is_190_nm():
    """Acceptance: the power spectrum of an isolated (gently curving) axon peaks at the 190 nm period of
    the actin-spectrin rings (Xu, Zhong & Zhuang 2013)."""
    axons = STRUCTURES["spectrin_rings"](_specimen(1, size_nm=8000.0, density=3.0))
    assert len(axons) >= 3
    for axon in axons[:3]:
        assert _peak_period_nm(_render(axon), 100, 400) == pytest.approx(sp.SPECTRIN_PERIOD_NM, rel=0.05)


class _StraightSpecimen(Specimen):
    """Filaments straight along x through the field's middle (same draws as :class:`Specimen`)."""

    def _filament(self, length_nm, persistence_nm):
        super()._filament(length_nm, persistence_nm)
        n = max(2, int(self.rng.uniform(*length_nm) / self.step))
        return np.stack([np.arange(n) * self.step, np.full(n, self.h / 2)], 1), np.zeros(n)


def _middle_profile_peak(tube: sp.Points) -> tuple[float, float]:
    """Period (nm) and prominence (peak / median power) of the strongest modulation, periods 50-300 nm,
    of the labels along the middle 100 nm of a mitochondrion straight along x."""
    x, y, w = tube
    middle = np.abs(y - 3e3) < 50  # mostly cristae there: the wall's labels crowd at its edges
    profile = np.bincount(((x[middle] - x.min()) / 5.0).astype(int), w[middle])
    power = np.abs(fft.rfft(profile - profile.mean(), 8192)) ** 2
    f = fft.rfftfreq(8192, 5.0)
    band = (f > 1 / 300) & (f < 1 / 50)
    k = np.argmax(power[band])
    return float(1 / f[band][k]), float(power[band][k] / np.median(power[band]))


def test_cristae_cross_the_tube_every_70_to_130_nm():
    """The label profile along a straight mitochondrion is modulated at the cristae spacing; the outer
    membrane alone (``mitochondria``) is not."""
    def peaks(name):
        tubes = STRUCTURES[name](_StraightSpecimen(np.random.default_rng(0), (6e3, 6e3), 5.0, 3.0))
        return [_middle_profile_peak(t) for t in tubes[:6]]

    cristae, plain = peaks("mitochondria_cristae"), peaks("mitochondria")
    assert len(cristae) >= 4 and len(plain) >= 4
    assert all(65 < period < 140 for period, _ in cristae)
    assert np.median([prominence for _, prominence in cristae]) > 12
    assert np.median([prominence for _, prominence in plain]) < 12


def test_nuclear_pores_are_8_fold_rings_of_107_to_120_nm():
    pores = STRUCTURES["nuclear_pores"](_specimen(2))
    assert len(pores) > 50
    diameters, order8, others = [], [], []
    for x, y, _ in pores:
        dx, dy = x - x.mean(), y - y.mean()
        diameters.append(2 * np.hypot(dx, dy).mean())
        phi = np.arctan2(dy, dx)
        order8.append(abs(np.exp(8j * phi).mean()))
        others.append(max(abs(np.exp(1j * k * phi).mean()) for k in range(1, 8)))
    assert np.min(diameters) > 104 and np.max(diameters) < 123
    assert np.median(diameters) == pytest.approx(113.5, abs=3)
    assert np.median(order8) > 0.6 and np.median(others) < 0.35  # 8-fold, not another symmetry
    centres = np.array([(x.mean(), y.mean()) for x, y, _ in pores])
    gaps = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1)) + 1e9 * np.eye(len(centres))
    assert gaps.min() > 140  # hard core: rings do not overlap
    wide = STRUCTURES["nuclear_pores"](_specimen(2, width_scale=1.5))
    assert 2 * np.median([np.hypot(x - x.mean(), y - y.mean()).mean() for x, y, _ in wide]) == pytest.approx(
        1.5 * np.median(diameters), rel=0.03)


def _tube_width_nm(part: sp.Points) -> float:
    """Width of a rendered tube: twice the largest distance from its filled outline to the inside."""
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(_render(part) > 0, iterations=3))
    return 2 * PIXEL_NM * float(ndimage.distance_transform_edt(mask).max())


@pytest.mark.parametrize("name", ["mitochondria", "mitochondria_cristae"])
@pytest.mark.parametrize("width_scale", [1.0, 1.6])
def test_mitochondria_are_250_to_500_nm_wide(name, width_scale):
    tubes = STRUCTURES[name](_specimen(4, density=2.0, width_scale=width_scale))[:6]
    assert len(tubes) >= 3
    widths = [_tube_width_nm(t) for t in tubes]
    assert min(widths) > 230 * width_scale and max(widths) < 530 * width_scale, widths


def test_synapses_are_psd_sized_clusters_of_nanoclusters():
    synapses = STRUCTURES["synaptic_puncta"](_specimen(5, density=2.0))
    assert len(synapses) > 10
    for x, y, w in synapses:
        r = np.hypot(x - np.median(x), y - np.median(y))
        assert np.percentile(r, 90) < 300  # within a PSD of <= 500 nm (plus nanocluster tails)
        assert 200 <= w.sum() <= 800  # a synapse's labels


def test_actin_mesh_stays_in_its_patch_and_branches():
    patches = STRUCTURES["actin_mesh"](_specimen(6, density=2.0))
    assert len(patches) >= 2
    for x, y, _ in patches:
        extent = np.hypot(x - x.mean(), y - y.mean()).max()
        assert extent < 2 * 1500  # within an ellipse of semi-axes <= 1.5 µm
        # Filaments are straight runs of labels 5 nm apart; a mesh has many directions, not one.
        d = np.stack([np.diff(x), np.diff(y)], 1)
        steps = d[np.abs(np.hypot(*d.T) - 5.0) < 1e-6]
        angle = np.mod(np.arctan2(steps[:, 1], steps[:, 0]), np.pi)
        assert abs(np.exp(2j * angle).mean()) < 0.5  # no single orientation dominates


def test_brightness_and_labelling_fraction():
    plain = _specimen(7).draw(("ccps", "puncta"))
    bright = _specimen(7).draw(("ccps", "puncta"), {"ccps": 3.0})
    n_ccps = sum(len(p[0]) for p in STRUCTURES["ccps"](_specimen(7)))
    np.testing.assert_array_equal(bright[0], plain[0])
    np.testing.assert_allclose(bright[2][:n_ccps], 3.0 * plain[2][:n_ccps])
    np.testing.assert_array_equal(bright[2][n_ccps:], plain[2][n_ccps:])
    kept = keep_fraction(plain, 0.25, np.random.default_rng(0))
    assert kept[0].size / plain[0].size == pytest.approx(0.25, abs=0.02)
    assert keep_fraction(plain, 1.0, np.random.default_rng(0)) is plain
