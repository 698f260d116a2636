"""The block's signal level from the images' reading: undoing the noise lift of the 99.9th percentile.

:func:`srlab.calibration.measure` reads a side's signal as the 99.9th percentile above background of its
*noisy* images (``signal_photons``); the simulator sets the *expected*, noise-free image's 99.9th
percentile to the block's ``signal_photons`` (:func:`srlab.data.simulate.calibrate`). Noise lifts the top
percentile — the brightest 0.1 % of noisy pixels are mostly pixels whose noise was positive — so a
block given the reading itself simulates images that read higher again. Measured on srlab's broad prior
before this module (2026-12-03): ×1.25–1.64 for sparse STORM renderings of a few counts, ×1.13
(1.04–1.18) at STED's ~23 photons, ×1.03 at a confocal's ~110.

The block's level is therefore the one whose *simulated* noisy images read what the user's images read:
the method of simulated moments, or indirect inference (McFadden 1989; Gouriéroux, Monfort & Renault
1993), on this one statistic, with the specimens of the block's own prior (their brightest structures set
the lift as much as the photons do, and the block simulates those specimens). The prior's first images
are imaged once without noise at the check's size; the reading at a level ``S`` rescales their signal to
``S`` over the block's background, draws the block's camera noise with the simulator's seeds for those
images, and reads it as calibrate does (99.9th percentile, minus the block's offset and background, in
photons; median over images); :func:`solve_level` finds the level that reads ``R``, the images' reading.

Not undone here: the real reading's own statistical error (kept, scaled, as the uncertainty), and the
noise fit's error in the gain (the reading is in the fitted gain's photons, and so is the block's camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from srlab.calibration import Estimate, combine

if TYPE_CHECKING:
    from srlab.calibration import Calibration

#: Images and size (LR pixels, at most) the level is solved on; :func:`~srlab.calibration.block.simulate_check`
#: images the same ones (its defaults) and so draws no specimen twice.
LIFT_IMAGES = 2
LIFT_SIZE_PX = 256
#: Levels the reading is simulated at, from reading/LIFT_MAX to the reading. A level below reading/LIFT_MAX
#: is not believed (a lift that large means the simulation's top 0.1 % is noise, not structure): the level
#: stops there; nor one above the reading (noise does not lower the top percentile).
LIFT_LEVELS = 9
LIFT_MAX = 4.0

#: The estimate's method, beside the reading's (``signal_photons``).
EXPECTED_METHOD = "noise-free level whose simulated noisy images read signal_photons"


def reading(expected: list[np.ndarray], camera, background: float, level: float, ref_level: float,
            seeds: list[list[int]]) -> float:
    """The 99.9th percentile above background, in photons, of ``expected`` (photon images at signal level
    ``ref_level``) rescaled to ``level`` and drawn through ``camera`` with ``seeds``: median over images."""
    values = []
    for image, seed in zip(expected, seeds):
        photons = (image.astype(np.float64) - background) * (level / ref_level) + background
        adu = camera.forward(photons, np.random.default_rng(seed))
        values.append(float(camera.backward(np.float32(np.percentile(adu, 99.9)))) - background)
    return combine(values)[0]


def solve_level(expected: list[np.ndarray], camera, background: float, ref_level: float, target: float,
                seeds: list[list[int]]) -> float:
    """The level whose simulated reading is ``target`` (see the module doc): readings at
    :data:`LIFT_LEVELS` levels from ``target``/:data:`LIFT_MAX` to ``target``, a least-squares fit of
    ``reading = a·S + b·√S + c`` through them, and the first level where the fit reaches ``target``.

    A fit, not an iteration on single readings: a Poisson draw at another level is another draw (NumPy's
    sampler takes a varying count of uniforms per value), so single readings scatter by ~1 % where the
    lift itself is ~1 %, and the fit averages that out. The form is the lift's: shot noise lifts the top
    percentile by a multiple of the standard deviation there, ∝ √S; read noise and rounding by a constant."""
    levels = target * np.geomspace(1.0 / LIFT_MAX, 1.0, LIFT_LEVELS)
    reads = np.array([reading(expected, camera, background, s, ref_level, seeds) for s in levels])
    ok = np.isfinite(reads)
    if ok.sum() < 3:
        return target
    design = np.stack([levels, np.sqrt(levels), np.ones_like(levels)], axis=1)[ok]
    a, b, c = np.linalg.lstsq(design, reads[ok], rcond=None)[0]
    # the fitted reading on a fine grid of the same range: the first level where it reaches the target
    grid = target * np.geomspace(1.0 / LIFT_MAX, 1.0, 512)
    fitted = a * grid + b * np.sqrt(grid) + c
    above = np.flatnonzero(fitted >= target)
    if above.size == 0:
        return target  # no lift to undo in this range
    k = int(above[0])
    if k == 0:
        return float(grid[0])
    s0, s1, f0, f1 = grid[k - 1], grid[k], fitted[k - 1], fitted[k]
    return float(s0 + (target - f0) * (s1 - s0) / (f1 - f0))


@dataclass
class LiftImages:
    """The noise-free images of the prior that :func:`set_expected_signal` solved the levels on: ``n``
    images of ``size_px`` LR pixels of the block's simulation (seed ``seed``), per measured side the
    expected photons at signal level ``levels[role]``."""

    n: int
    size_px: int
    seed: int
    expected: dict[str, list[np.ndarray]]
    levels: dict[str, float]

    def camera_images(self, spec, role: str) -> list[np.ndarray]:
        """The images :meth:`srlab.data.simulate.Imager.image` gives for side ``role`` of ``spec`` (the block
        at its solved levels, the same specimens): the expected photons rescaled to its level, through its
        camera with the simulator's noise seeds."""
        m = spec.hr if role == "hr" else spec.lr
        ratio = m.signal_photons / self.levels[role] if self.levels[role] > 0 else 0.0
        return [m.camera.forward(((e.astype(np.float64) - m.background_photons) * ratio + m.background_photons
                                  ).astype(np.float32), np.random.default_rng([self.seed, i, STREAMS[role]]))
                for i, e in enumerate(self.expected[role])]


#: :meth:`srlab.data.simulate.Imager.image`'s noise stream of each side.
STREAMS = {"hr": 2, "lr": 1}


def set_expected_signal(cal: Calibration, *, n: int = LIFT_IMAGES, size_px: int = LIFT_SIZE_PX) -> None:
    """Add ``signal_expected_photons`` to each measured side of ``cal`` (the module doc), unless there;
    keep the images it was solved on as ``cal.lift`` (:class:`LiftImages`). The block writes it as
    ``signal_photons``; the side's ``signal_photons`` stays the images' reading. Called by
    :func:`~srlab.calibration.block.data_block`: it costs a simulation of the prior (seconds for wide
    fields), which only a block needs."""
    from srlab.calibration.block import check_size, data_block
    from srlab.data.simulate import Imager, resolve_simulation
    from srlab.data.simulate import calibrate as simulated_photons

    sides = [s for s in (cal.lr, cal.hr) if s is not None]
    if all("signal_expected_photons" in s.estimates for s in sides):
        return
    size = check_size(cal, size_px)
    block = data_block(cal, n_images=n, lr_size_px=size, levels=False)
    spec = resolve_simulation(block["simulation"], scale=cal.scale, where="calibrated block")
    imager = Imager(spec)
    measured = {s.role: spec.hr if s.role == "hr" else spec.lr for s in sides}
    expected: dict[str, list[np.ndarray]] = {role: [] for role in measured}
    for i in range(n):  # Imager.image's noise-free images, of the measured sides only
        spectra = imager.spectra(imager.specimen(i))
        for role, m in measured.items():
            expected[role].append(simulated_photons(imager.expected(m, spectra), m))
    cal.lift = LiftImages(n, size, spec.seed, expected, {role: m.signal_photons for role, m in measured.items()})
    for side in sides:
        est, m = side.estimates["signal_photons"], measured[side.role]
        if not (math.isfinite(est.value) and est.value > 0 and m.signal_photons > 0):
            side.estimates["signal_expected_photons"] = Estimate(est.value, est.uncertainty, est.unit,
                                                                 "the reading (no signal to lift)")
            continue
        seeds = [[spec.seed, i, STREAMS[side.role]] for i in range(n)]
        level = solve_level(expected[side.role], m.camera, m.background_photons, m.signal_photons, est.value, seeds)
        side.estimates["signal_expected_photons"] = Estimate(
            level, est.uncertainty * level / est.value, "photons",
            f"{EXPECTED_METHOD} (noise lift ×{est.value / level:.3g} on {n} images of the prior)")
