"""``srlab calibrate --smlm STACK``: an SMLM acquisition measured from its own camera stack, and the SMLM
data block (``kind: smlm``, :class:`srlab.smlm.simulate.SMLMConfig`) that simulates it.

Estimates, each with a standard uncertainty (statistical only):

* **PSF σ** — Poisson maximum-likelihood Gaussian fits of isolated, well-converged spots in the sparser
  half of the frames (:mod:`srlab.calibration.spots`); median and its standard error.
* **Camera gain and offset** — the photon-transfer line ``v = g·(μ − offset) + σ_read²``
  (:func:`srlab.calibration.noise.fit_line`, after Foi et al., IEEE TIP 2008) through two kinds of
  points: *temporal* ones, each pixel's variance across the frames where no spot was detected near it
  against its mean there (binned by the mean of the other half of the frames, so the binning does not
  select noise: a pixel's sample mean and variance are correlated for Poisson counts), and *spatial*
  ones (:func:`~srlab.calibration.noise.mean_variance_points` on the frames, whose emitters give the
  higher levels). A uniform background gives the temporal points a single level; the emitters' spatial
  points then carry the slope. The line gives ``g`` and ``b = σ_read² − g·offset``: the offset follows
  only with the read noise known. With ``--offset-adu`` it is given; otherwise the read noise is taken
  as the camera kind's typical value (``srlab.optics.camera.CAMERA_PRESETS``) and the offset's
  uncertainty includes that whole assumption (±σ_read²/g).
  An EMCCD's excess noise doubles the variance: the mean gain is the fitted slope / 2 (``--camera
  emccd``; the EM gain itself is not measurable from the noise, ``--em-gain`` or 100 is written).
* **Background** — mean of the spot-free samples above the offset, in photons per pixel
  (``background_spot_free_photons``), less its crowding excess: the same reading on the block's own
  simulation minus the simulated background, iterated to a fixed point (at most
  :data:`CROWDING_ITERATIONS` steps of :data:`CROWDING_FRAMES` frames). In a dense stack the "spot-free"
  pixels hold the tails of emitters the mask misses (the foreign stack of ``make smlmcheck``, 5/µm²:
  +87 % read, −8 % corrected).
* **Photons per emitter** — mean fitted N of the accepted spots (``photons_fitted``; the simulator's
  ``photons_mean`` is a mean), and the coefficient of variation left after removing the fit's shot noise.
  In a crowded stack (the spot mask covers ≥ :data:`CROWDED_MASK_FRACTION` of the pixels) the fitted spots
  have neighbours (+33 % on that stack) and the photons come from the light itself: (stack mean −
  background) / (density × pixel area), updated with the background in the same iteration (−4 %). The
  coefficient of variation stays the fits' (read high in crowded stacks: 0.48 for a true 0.29).
* **Density** — localizations per frame (the wavelet + MLE fitter with multi-emitter fitting, as
  ``srlab localize --method gaussfit`` runs it) per µm², divided by the detection efficiency that the
  same fitter reaches on the block's own simulation at that density (detected / simulated emitters;
  density = raw / efficiency(density) iterated to a fixed point, at most 6 steps: the efficiency falls with
  the density). This corrects for overlaps and misses *on the simulated specimen*; on a specimen unlike
  it, it is an approximation, stated in the summary.
* **Specimen** — which of the simulator's structures (``microtubules``, ``er``, ``uniform``) the block
  simulates: the one whose fitter localizations, pooled over frames, cluster most like the stack's own
  (:func:`clustering`: cross-frame pairs within 200 nm relative to uniform placement, a one-radius
  Ripley's K; each structure simulated with the block's field, PSF, photons, camera and density). A choice
  among three priors, not a model of the specimen; the values of all three are printed.

The block keeps the stack's field; the figure beside it shows the spot-σ histogram, the photon-transfer fit
and a real frame beside a simulated one.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from srlab.calibration import Estimate
from srlab.calibration.spots import SpotSigma, spot_sigma
from srlab.errors import SrlabError

#: Frames used at most for the noise fit, and for the spot fits (evenly spaced through the stack): a
#: 10⁴-frame stack need not be held in float64, and a few hundred frames hold thousands of spots.
MAX_FRAMES = 500
MAX_SPOT_FRAMES = 200
#: Frames simulated to measure the detection efficiency (and each structure's clustering).
EFFICIENCY_FRAMES = 30
#: Most steps of the density's fixed-point iteration (it stops earlier once a step changes < 3 %).
DENSITY_ITERATIONS = 6
#: Frames simulated per step of the crowding correction of background and photons, and most steps.
CROWDING_FRAMES = 60
CROWDING_ITERATIONS = 6
#: A stack is crowded when the spot mask covers this share of the pixels: then most of its light is the
#: emitters', the fitted spots have neighbours, and the photons come from the stack's mean instead.
CROWDED_MASK_FRACTION = 0.5
#: The pair distance at which the specimen's clustering is compared (about a PSF's FWHM).
CLUSTER_RADIUS_NM = 200.0
CAMERAS = ("scmos", "emccd")


@dataclass
class SMLMCalibration:
    """What :func:`calibrate_smlm` measured, and the block it derived."""

    path: Path
    pixel_size_nm: float
    shape: tuple[int, int, int]
    camera: str
    estimates: dict[str, Estimate]
    spots: SpotSigma
    noise_points: dict[str, np.ndarray]  # mean, var, se, used, kind (0 temporal, 1 spatial)
    gain_var: float  # the fitted slope (ADU per photon, × 2 for an EMCCD)
    intercept_adu2: float
    real_frame: np.ndarray
    simulation: dict[str, Any] = field(default_factory=dict)
    simulated_frame: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    channel: int | None = None  # the channel of a multi-channel stack that was measured (--channel)


def _load(path: Path, pixel_size_nm: float | None, channel: int | None = None) -> tuple[np.ndarray, float]:
    from srlab.smlm.localizations import read_smlm_stack

    if not path.is_file():
        raise SrlabError(f"{path}: no such file")
    stack, file_px = read_smlm_stack(path, channel=channel)
    if stack.shape[0] < 10:
        raise SrlabError(f"{path}: {stack.shape[0]} frames; an SMLM calibration needs a stack of >= 10 frames "
                         f"(the noise is measured across frames)")
    if min(stack.shape[1:]) < 16:
        raise SrlabError(f"{path}: frames of {stack.shape[1]}×{stack.shape[2]} px are too small (>= 16×16)")
    if not np.isfinite(stack).all():
        raise SrlabError(f"{path}: has NaN or infinite pixels")
    if float(stack.min()) == float(stack.max()):
        raise SrlabError(f"{path}: every pixel of every frame is {float(stack.min()):g} (an empty stack)")
    pixel = pixel_size_nm if pixel_size_nm is not None else file_px
    if pixel is None:
        raise SrlabError(f"{path}: no pixel size in the file's metadata; pass --pixel-size-nm")
    if not pixel > 0:
        raise SrlabError(f"pixel size {pixel}: must be > 0 nm")
    return stack, float(pixel)


def _emitter_mask(stack: np.ndarray, radius_px: int, threshold: float) -> np.ndarray:
    """``(T, H, W)`` True near a detected spot (the frame's wavelet detections, dilated by ``radius_px``)."""
    from srlab.smlm.localize import detect_spots

    mask = np.zeros(stack.shape, bool)
    for t, frame in enumerate(stack):
        rows, cols = detect_spots(frame, sigma_px=1.0, threshold=threshold, detector="wavelet")
        mask[t, rows, cols] = True
    yy, xx = np.mgrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]
    disc = (yy**2 + xx**2) <= radius_px**2
    return ndimage.binary_dilation(mask, structure=disc[None])


def temporal_points(stack: np.ndarray, mask: np.ndarray, n_bins: int = 8, min_samples: int = 5
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, variance, standard error) of spot-free pixels across frames, in bins of equal pixel count.

    Each pixel is binned by its mean over the even frames and measured on the odd ones (see the
    module doc)."""
    free = ~mask
    even, odd = free[0::2], free[1::2]
    n_even, n_odd = even.sum(0), odd.sum(0)
    key = np.where(n_even > 0, (stack[0::2] * even).sum(0) / np.maximum(n_even, 1), np.nan)
    m_odd = (stack[1::2] * odd).sum(0) / np.maximum(n_odd, 1)
    v_odd = (((stack[1::2] - m_odd) ** 2) * odd).sum(0) / np.maximum(n_odd - 1, 1)
    good = (n_even >= min_samples) & (n_odd >= min_samples)
    if good.sum() < 50:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    key, m_odd, v_odd = key[good], m_odd[good], v_odd[good]
    order = np.argsort(key, kind="stable")
    edges = np.linspace(0, order.size, n_bins + 1).astype(int)
    mean, var, se = [], [], []
    for lo, hi in itertools.pairwise(edges):
        idx = order[lo:hi]
        if idx.size < 20:
            continue
        mean.append(float(np.mean(m_odd[idx])))
        var.append(float(np.mean(v_odd[idx])))
        se.append(float(np.std(v_odd[idx], ddof=1) / math.sqrt(idx.size)))
    return np.array(mean), np.array(var), np.array(se)


def _sample(stack: np.ndarray, limit: int) -> np.ndarray:
    if len(stack) <= limit:
        return stack
    return stack[np.linspace(0, len(stack) - 1, limit).round().astype(int)]


def calibrate_smlm(path: str | Path, *, pixel_size_nm: float | None = None, offset_adu: float | None = None,
                   camera: str = "scmos", em_gain: float | None = None, threshold: float = 1.0,
                   seed: int = 0, channel: int | None = None) -> SMLMCalibration:
    """Measure the SMLM stack at ``path`` (raw camera ADU; ``channel`` of a multi-channel stack); see the
    module doc. Bad input: one line."""
    from srlab.calibration.noise import fit_line, mean_variance_points
    from srlab.optics.camera import CAMERA_PRESETS

    if camera not in CAMERAS:
        raise SrlabError(f"--camera {camera}: valid for --smlm: {', '.join(CAMERAS)}")
    if em_gain is not None and camera != "emccd":
        raise SrlabError("--em-gain is for --camera emccd")
    path = Path(path)
    from srlab.smlm.localizations import hot_pixel_note, repair_hot_pixels

    stack, pixel = _load(path, pixel_size_nm, channel)
    stack, hot = repair_hot_pixels(stack)
    frames = _sample(stack, MAX_FRAMES).astype(np.float64)
    excess = 2.0 if camera == "emccd" else 1.0
    notes: list[str] = [hot_pixel_note(hot)] if hot else []

    # 1. A first σ, on a rough photon scale (ADU above the darkest level): it sizes the spot-free masks.
    some = _sample(frames, MAX_SPOT_FRAMES // 2)
    rough = spot_sigma(np.clip(some - np.percentile(some, 0.5), 0, None), threshold=threshold, passes=1)
    sigma_px = rough.sigma_px if math.isfinite(rough.sigma_px) else 1.5
    # 2. The photon-transfer line through temporal (spot-free) and spatial points.
    mask = _emitter_mask(frames, math.ceil(3 * sigma_px) + 1, threshold)
    integer = bool(np.array_equal(frames, np.round(frames)))
    tm, tv, ts = temporal_points(frames, mask)
    sm, sv, ss = mean_variance_points(list(_sample(frames, 200)))
    quant = 1.0 / 12.0 if integer else 0.0
    mu = np.concatenate([tm, sm])
    var = np.concatenate([tv, sv]) - quant
    se = np.concatenate([ts, ss])
    kind = np.concatenate([np.zeros(tm.size), np.ones(sm.size)])
    if mu.size < 4 or np.ptp(mu) <= 0:
        raise SrlabError(f"{path}: too few spot-free pixels and levels to fit the camera's noise")
    g_var, g_var_se, b, b_se, _, used = fit_line(mu, var, se)
    if not g_var > 0:
        raise SrlabError(f"{path}: the noise does not grow with the intensity (fitted slope {g_var:.3g} ADU/photon); "
                         f"not raw camera counts (processed or background-subtracted?)")
    if tm.size == 0 or np.ptp(tm) < 0.2 * np.ptp(mu):
        # Seen on simulated microtubule stacks: +6 % (48² px, background 20) to +16 % (128² px, background 50).
        notes.append("the spot-free background spans one level: the gain's slope rests on the emitters' spatial "
                     "points, which were 5-16 % off on simulated stacks (spot curvature leaks into the detail filter); without "
                     "--offset-adu the offset then errs by about background ADU × that")
    gain = g_var / excess  # mean ADU per detected photon
    gain_se = g_var_se / excess
    preset = CAMERA_PRESETS[camera]
    em = float(em_gain) if em_gain is not None else (100.0 if camera == "emccd" else 1.0)
    e_per_adu = em / gain  # photoelectrons (QE folded into "detected photons") per ADU
    if offset_adu is not None:
        offset, offset_se, offset_how = float(offset_adu), 0.0, "given"
        read2 = b + g_var * offset
        read2_se = math.sqrt(b_se**2 + (offset * g_var_se) ** 2)
        read_adu = math.sqrt(max(read2, 0.0))
        read_se = read2_se / (2 * max(read_adu, math.sqrt(read2_se)))
        read_how = "line intercept at the given offset"
    else:
        # σ_read² assumed from the camera kind, converted to ADU at the measured gain; its whole value
        # is put into the offset's uncertainty (the read noise could be 0 to twice the typical one).
        read_adu = preset["read_noise_e"] / e_per_adu
        read2 = read_adu**2
        offset = (read2 - b) / g_var
        offset_se = math.sqrt(b_se**2 + (offset * g_var_se) ** 2 + read2**2) / g_var
        read_se = read_adu
        offset_how = f"line intercept with the typical {camera} read noise ({preset['read_noise_e']:g} e-)"
        read_how = f"typical {camera} value, assumed (pass --offset-adu to measure it)"
        notes.append(f"offset from the photon-transfer line with an assumed read noise ({preset['read_noise_e']:g} "
                     f"e-, typical {camera}); pass --offset-adu (dark-frame mean) for a definite value")
    # 3. Background (spot-free samples) and 4. σ and photons (fits in the sparser half of the frames), on
    # the photon scale.
    photons = (frames - offset) / gain
    bg_photons, per_frame, spots = _crowded_measures(photons, mask, sigma_px, threshold, excess)
    bg_se = math.sqrt((offset_se / gain) ** 2 + (float(np.std(per_frame)) / math.sqrt(len(frames))) ** 2
                      + (bg_photons * gain_se / gain) ** 2)
    if spots.used < 5:
        raise SrlabError(f"{path}: only {spots.used} isolated, well-fitted spots (of {spots.detected} detected); "
                         f"the PSF σ needs sparse frames with separate molecules")
    if not spots.enough:
        notes.append(f"only {spots.used} spots for the PSF σ (< 30): its uncertainty is large")
    sigma_nm = spots.sigma_px * pixel
    n_mean = float(np.mean(spots.photons))
    n_se = float(np.std(spots.photons, ddof=1)) / math.sqrt(spots.photons.size)
    # The fit's own photon noise (≈ N·F) is removed from the spread; what is left is the emitters'.
    cv2 = (float(np.var(spots.photons, ddof=1)) - excess * n_mean) / n_mean**2
    photons_cv = math.sqrt(min(max(cv2, 0.0), 4.0))

    e: dict[str, Estimate] = {}
    e["psf_sigma_nm"] = Estimate(sigma_nm, spots.sigma_se_px * pixel, "nm",
                                 f"median σ of {spots.used} isolated bright spots (Poisson MLE fits)")
    e["gain_adu_per_photon"] = Estimate(gain, gain_se, "ADU/photon",
                                        "photon-transfer line" + (" / 2 (EMCCD excess noise)" if excess > 1 else ""))
    e["offset_adu"] = Estimate(offset, offset_se, "ADU", offset_how)
    e["read_noise_adu"] = Estimate(read_adu, read_se, "ADU", read_how)
    e["background_photons"] = Estimate(bg_photons, bg_se, "photons/px", "spot-free pixels above the offset")
    e["photons_per_emitter"] = Estimate(n_mean, n_se, "photons", f"mean fitted N of {spots.photons.size} spots")
    # what the stack itself reads, before the crowding correction below replaces the two above
    e["background_spot_free_photons"] = Estimate(bg_photons, bg_se, "photons/px", "spot-free pixels above the offset")
    e["photons_fitted"] = Estimate(n_mean, n_se, "photons", f"mean fitted N of {spots.photons.size} spots")
    # Standard error of a coefficient of variation, cv/√(2n) (normal data).
    e["photons_cv"] = Estimate(photons_cv, photons_cv / math.sqrt(2 * spots.photons.size), "",
                               "spread of fitted N less its shot noise")

    cal = SMLMCalibration(path, pixel, tuple(stack.shape), camera, e, spots,
                          {"mean": mu, "var": var, "se": se, "used": used, "kind": kind}, g_var, b,
                          frames[int(np.argmin(mask.sum((1, 2))))],
                          notes=notes, channel=channel)
    cal.simulation = simulation_block(cal, em_gain=em, e_per_adu=e_per_adu, read_adu=read_adu, density=1.0)
    # The stack's own localizations, once: the density counts them, the specimen choice pools them.
    subset = _sample(photons, MAX_SPOT_FRAMES)
    real = _localize(subset, cal.estimates["psf_sigma_nm"].value, pixel, threshold, excess)
    _density(cal, photons, real, len(subset), threshold=threshold, excess=excess, seed=seed)
    if _specimen(cal, photons, real, threshold=threshold, excess=excess, seed=seed) != "microtubules":
        # The efficiency that corrects the density depends on the specimen: measure it on the chosen one.
        _density(cal, photons, real, len(subset), threshold=threshold, excess=excess, seed=seed)
    # Background and photons corrected for crowding at that density; the efficiency depends on both:
    # measured again on the corrected block.
    _crowding(cal, mask_radius_px=math.ceil(3 * sigma_px) + 1, threshold=threshold, excess=excess, seed=seed,
              mean_photons=float(photons.mean()), mask_fraction=float(mask.mean()))
    _density(cal, photons, real, len(subset), threshold=threshold, excess=excess, seed=seed)
    return cal


def _spot_free_mean(photons: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean of a stack's samples outside its spot mask (:func:`_emitter_mask`), and each frame's."""
    free = ~mask
    per_frame = (photons * free).sum((1, 2)) / np.maximum(free.sum((1, 2)), 1)
    return float((photons * free).sum() / max(free.sum(), 1)), per_frame


def _crowded_measures(photons: np.ndarray, mask: np.ndarray, sigma_px: float, threshold: float,
                      excess: float) -> tuple[float, np.ndarray, SpotSigma]:
    """The two readings that crowding biases, on a stack in photons and its spot mask: the spot-free
    mean (:func:`_spot_free_mean`), and the spot fits of the sparser half of the frames (photons per
    emitter, and the PSF σ)."""
    background, per_frame = _spot_free_mean(photons, mask)
    counts = np.array([np.count_nonzero(m) for m in mask])
    sparse = _sample(photons[counts <= np.median(counts)], MAX_SPOT_FRAMES)
    spots = spot_sigma(sparse, sigma_guess_px=sigma_px, threshold=threshold, excess_noise=excess)
    return background, per_frame, spots


def _crowding(cal: SMLMCalibration, *, mask_radius_px: int, threshold: float, excess: float, seed: int,
              mean_photons: float, mask_fraction: float) -> None:
    """Background (and, in a crowded stack, photons per emitter) corrected for crowding (see the module
    doc): ``mean_photons`` is the stack's mean in photons per pixel, ``mask_fraction`` its spot mask's share
    of the pixels. The background's bias is additive (tails the mask misses), measured on the block's
    simulation with the same seed each step so that the steps differ only by the parameters."""
    from srlab.calibration.block import _r
    from srlab.smlm.simulate import SMLMConfig, simulate_smlm

    e = cal.estimates
    read_b, read_n = e["background_spot_free_photons"], e["photons_fitted"]
    b, n = read_b.value, read_n.value
    h, w = cal.shape[1:]
    pixel_um2 = (cal.pixel_size_nm * 1e-3) ** 2
    crowded = mask_fraction >= CROWDED_MASK_FRACTION
    b_mc = 0.0
    for _ in range(CROWDING_ITERATIONS):
        sim = {**cal.simulation, "background_photons": max(b, 0.0), "photons_mean": n, "height_px": h, "width_px": w}
        cfg = SMLMConfig.from_mapping(sim, where="calibrated block")
        stack = cfg.adu_to_photons(simulate_smlm(cfg, frames=CROWDING_FRAMES, seed=seed).stack).astype(np.float64)
        sb, per_frame = _spot_free_mean(stack, _emitter_mask(stack, mask_radius_px, threshold))
        b_mc = float(np.std(per_frame, ddof=1)) / math.sqrt(len(per_frame))
        new_b = max(read_b.value - (sb - b), 0.0)
        new_n = (mean_photons - new_b) / (float(cal.simulation["density_per_um2"]) * pixel_um2) if crowded else n
        done = abs(new_b - b) <= 0.02 * max(new_b, 1e-9) and abs(new_n - n) <= 0.02 * max(new_n, 1e-9)
        b, n = new_b, max(new_n, 1.0)
        if done:
            break
    e["background_photons"] = Estimate(b, math.hypot(read_b.uncertainty, b_mc), "photons/px",
                                       "spot-free pixels above the offset, less their crowding excess on the "
                                       "block's simulation")
    if crowded:
        rho = e["density_per_um2"]
        rel = math.hypot(rho.uncertainty / rho.value, math.hypot(read_b.uncertainty, b_mc) / max(mean_photons - b, 1e-9))
        e["photons_per_emitter"] = Estimate(n, n * rel, "photons", "(stack mean − background) / (density × pixel "
                                            "area): the fitted spots have neighbours")
    cal.simulation["background_photons"] = _r(b)
    cal.simulation["photons_mean"] = _r(n)


def simulation_block(cal: SMLMCalibration, *, em_gain: float, e_per_adu: float, read_adu: float,
                     density: float) -> dict[str, Any]:
    """The ``simulation`` mapping (:class:`srlab.smlm.simulate.SMLMConfig` fields)."""
    from srlab.calibration.block import _r

    e = cal.estimates
    block = {"structure": "microtubules", "pixel_size_nm": _r(cal.pixel_size_nm, 6),
             "psf_sigma_nm": _r(e["psf_sigma_nm"].value), "photons_mean": _r(e["photons_per_emitter"].value),
             "photons_cv": _r(e["photons_cv"].value, 2), "background_photons": _r(max(e["background_photons"].value, 0.0)),
             "density_per_um2": _r(density, 3), "camera": cal.camera, "quantum_efficiency": 1.0,
             "e_per_adu": _r(e_per_adu), "read_noise_e": _r(read_adu * e_per_adu),
             "offset_adu": _r(max(e["offset_adu"].value, 0.0))}
    if cal.camera == "emccd":
        block["em_gain"] = _r(em_gain)
    return block


def _localize(photons: np.ndarray, sigma_nm: float, pixel: float, threshold: float, excess: float):
    """The fitter as ``srlab localize --method gaussfit`` runs it (multi-emitter 2), 16 frames at a time."""
    from srlab.smlm.localizations import Localizations
    from srlab.smlm.localize import gaussian_fit_localize

    return Localizations.concatenate([
        gaussian_fit_localize(photons[start:start + 16], pixel_size_nm=pixel, psf_sigma_nm=sigma_nm,
                              threshold=threshold, detector="wavelet", estimator="mle", excess_noise=excess,
                              max_emitters=2, first_frame=start)
        for start in range(0, len(photons), 16)])


def _count_per_frame(photons: np.ndarray, sigma_nm: float, pixel: float, threshold: float, excess: float) -> np.ndarray:
    locs = _localize(photons, sigma_nm, pixel, threshold, excess)
    return np.bincount(locs.frame, minlength=len(photons)).astype(float)


def clustering(frame: np.ndarray, x_nm: np.ndarray, y_nm: np.ndarray, field_um2: float,
               radius_nm: float = CLUSTER_RADIUS_NM, limit: int = 20_000, seed: int = 0) -> tuple[float, int]:
    """How much more often two localizations of *different* frames lie within ``radius_nm`` than if they
    were placed uniformly over the field: observed cross-frame pairs / (cross-frame pairs × πr² / area).

    Pooled over frames, localizations trace the labelled structure (Ripley's K at one radius, as a ratio
    to complete spatial randomness); pairs within a frame are left out because the fitter cannot resolve
    them. Edge effects lower it below 1 for a uniform specimen; they are the same for a simulated stack
    of the same field, which is what it is compared with. Returns the ratio and the observed pair count."""
    from scipy.spatial import cKDTree

    n = len(frame)
    if n > limit:  # pair counts grow with n²: a random subset estimates the same ratio
        keep = np.random.default_rng(seed).choice(n, limit, replace=False)
        frame, x_nm, y_nm, n = frame[keep], x_nm[keep], y_nm[keep], limit
    per_frame = np.bincount(np.unique(frame, return_inverse=True)[1])
    cross_total = (n * n - float(np.sum(per_frame.astype(float) ** 2))) / 2
    if cross_total <= 0:
        return float("nan"), 0
    pairs = cKDTree(np.column_stack([x_nm, y_nm])).query_pairs(radius_nm, output_type="ndarray")
    cross = int(np.count_nonzero(frame[pairs[:, 0]] != frame[pairs[:, 1]])) if len(pairs) else 0
    expected = cross_total * math.pi * (radius_nm * 1e-3) ** 2 / field_um2
    return cross / expected, cross


def _density(cal: SMLMCalibration, photons: np.ndarray, real, n_frames: int, *, threshold: float,
             excess: float, seed: int) -> None:
    """Emitters per µm² per frame: the stack's localizations ``real`` (of ``n_frames`` frames) counted,
    corrected by the fitter's efficiency on the block's simulation."""
    from srlab.smlm.simulate import SMLMConfig, simulate_smlm

    px = cal.pixel_size_nm
    sigma_nm = cal.estimates["psf_sigma_nm"].value
    counts = np.bincount(real.frame, minlength=n_frames).astype(float)
    area = photons.shape[1] * photons.shape[2] * px * px * 1e-6
    raw = float(np.mean(counts)) / area
    raw_se = float(np.std(counts, ddof=1)) / math.sqrt(len(counts)) / area
    density, efficiency, eff_se = raw, 1.0, 0.0
    sim = dict(cal.simulation)
    h, w = photons.shape[1:]
    # density = raw / efficiency(density): a fixed point, approached from below (the efficiency falls as
    # the density grows); dense stacks need more than two steps, sparse ones stop after two.
    for step in range(DENSITY_ITERATIONS):
        previous = density
        sim["density_per_um2"] = max(density, 1e-3)
        cfg = SMLMConfig.from_mapping({**sim, "height_px": h, "width_px": w}, where="calibrated block")
        acq = simulate_smlm(cfg, frames=EFFICIENCY_FRAMES, seed=seed)
        found = _count_per_frame(cfg.adu_to_photons(acq.stack), sigma_nm, px, threshold, excess).sum()
        true = max(len(acq.localizations), 1)
        efficiency = found / true
        eff_se = math.sqrt(max(efficiency * abs(1 - efficiency), 1e-12) / true)
        density = raw / max(efficiency, 1e-3)
        cal.simulated_frame = acq.stack[0].astype(np.float64)
        if step >= 1 and abs(density - previous) <= 0.03 * density:
            break
    rel = math.sqrt((raw_se / max(raw, 1e-12)) ** 2 + (eff_se / max(efficiency, 1e-12)) ** 2)
    cal.estimates["localizations_per_um2"] = Estimate(raw, raw_se, "/µm²/frame", "localizations per frame (lower bound)")
    structure = cal.simulation["structure"]
    cal.estimates["detection_efficiency"] = Estimate(efficiency, eff_se, "",
                                                     f"found/simulated on the block's own simulation ({structure})")
    cal.estimates["density_per_um2"] = Estimate(density, density * rel, "/µm²/frame",
                                                "localizations / detection efficiency")
    cal.simulation["density_per_um2"] = float(f"{density:.3g}")
    cal.notes = [n for n in cal.notes if not n.startswith("density:")]
    cal.notes.append(f"density: corrected by the fitter's efficiency on the simulated specimen ({structure}) at that "
                     f"density; on a specimen unlike it, approximate (localizations per frame are a lower bound)")


def _specimen(cal: SMLMCalibration, photons: np.ndarray, real, *, threshold: float, excess: float,
              seed: int) -> str:
    """Choose the simulated specimen (:data:`srlab.optics.specimens.SMLM_STRUCTURES`) whose localizations
    cluster most like the stack's own localizations ``real`` (:func:`clustering`, on the log scale), each structure simulated with
    the block being written (same field, PSF, photons, camera and density) and localized by the same fitter.
    Sets ``cal.simulation["structure"]`` and the estimate ``specimen_clustering``; returns the choice."""
    from srlab.optics.specimens import SMLM_STRUCTURES
    from srlab.smlm.simulate import SMLMConfig, simulate_smlm

    px = cal.pixel_size_nm
    sigma_nm = cal.estimates["psf_sigma_nm"].value
    h, w = photons.shape[1:]
    field_um2 = h * w * px * px * 1e-6
    observed, pairs = clustering(real.frame, real.x_nm, real.y_nm, field_um2, seed=seed)
    if not np.isfinite(observed) or observed <= 0:
        cal.notes.append("specimen: too few localizations to compare with the simulated structures; "
                         "microtubules kept")
        return str(cal.simulation["structure"])
    simulated = {}
    for structure in SMLM_STRUCTURES:
        cfg = SMLMConfig.from_mapping({**cal.simulation, "structure": structure, "height_px": h, "width_px": w},
                                      where="calibrated block")
        acq = simulate_smlm(cfg, frames=EFFICIENCY_FRAMES, seed=seed)
        locs = _localize(cfg.adu_to_photons(acq.stack), sigma_nm, px, threshold, excess)
        simulated[structure] = clustering(locs.frame, locs.x_nm, locs.y_nm, field_um2, seed=seed)[0]
    usable = {k: v for k, v in simulated.items() if np.isfinite(v) and v > 0}
    choice = min(usable, key=lambda k: abs(math.log(usable[k] / observed))) if usable else "microtubules"
    others = ", ".join(f"{k} {v:.2f}" for k, v in simulated.items())
    # Uncertainty: the Poisson error of the pair count (a lower bound: pairs share localizations).
    cal.estimates["specimen_clustering"] = Estimate(
        observed, observed / math.sqrt(max(pairs, 1)), "",
        f"cross-frame pairs within {CLUSTER_RADIUS_NM:g} nm / uniform; simulated: {others} -> {choice}")
    cal.simulation["structure"] = choice
    return choice


# ------------------------------------------------------------------------------------------------
# Block, figure, summary
# ------------------------------------------------------------------------------------------------
def smlm_data_block(cal: SMLMCalibration) -> dict[str, Any]:
    """The SMLM data block: ``kind: smlm`` with the measured ``simulation``; the rest
    (:class:`srlab.data.config.SMLMDataConfig`: scale, patches, frames) as ``experiments/data/smlm_tubes.yaml``."""
    return {"kind": "smlm", "scale": 8, "patch_size": 26, "batch_size": 16, "train_frames": 2048,
            "val_frames": 32, "test_frames": 64, "simulation": dict(cal.simulation)}


def _channel_text(cal: SMLMCalibration) -> str:
    return f", channel {cal.channel}" if cal.channel is not None else ""


def header(cal: SMLMCalibration) -> list[str]:
    t, h, w = cal.shape
    lines = ["Written by `srlab calibrate --smlm` (srlab.calibration.smlm): an SMLM simulator block whose frames",
             "have the statistics measured on the stack below. Estimates ± standard uncertainty (statistical only).",
             (f"Stack: {cal.path}{_channel_text(cal)} ({t} frames of {h}×{w} px, {cal.pixel_size_nm:g} nm/px, "
              f"camera {cal.camera})")]
    lines += [f"  {key:24s} {est.text():30s} [{est.method}]" for key, est in cal.estimates.items()]
    lines += [f"Note: {n}" for n in cal.notes]
    return lines


def draw(cal: SMLMCalibration, out: str | Path) -> Path:
    """Spot-σ histogram, photon-transfer fit, a real (sparsest) frame beside a simulated one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots(2, 2)
    e = cal.estimates
    px = cal.pixel_size_nm
    a = ax[0, 0]
    a.hist(cal.spots.sigmas_px * px, bins=30, color="C0", alpha=0.8)
    a.axvline(e["psf_sigma_nm"].value, color="k", lw=1, label=f"median {e['psf_sigma_nm'].text()}")
    a.set(xlabel="fitted σ (nm)", ylabel="spots", title=f"Isolated bright spots ({cal.spots.used} of "
                                                        f"{cal.spots.detected} detected)")
    a.legend(fontsize=8)
    b = ax[0, 1]
    p = cal.noise_points
    for k, label, fmt in ((0, "temporal (spot-free pixels)", "o"), (1, "spatial (Foi, frames)", "s")):
        sel = (p["kind"] == k) & p["used"]
        b.errorbar(p["mean"][sel], p["var"][sel], yerr=p["se"][sel], fmt=fmt, ms=3, label=label)
    if (~p["used"]).any():
        b.plot(p["mean"][~p["used"]], p["var"][~p["used"]], "x", color="grey", label="trimmed")
    xs = np.linspace(min(p["mean"].min(), e["offset_adu"].value), p["mean"].max(), 50)
    b.plot(xs, cal.gain_var * xs + cal.intercept_adu2, "-", color="k",
           label=f"fit: slope {cal.gain_var:.3g} ADU²/ADU; offset {e['offset_adu'].text()}")
    b.set(xlabel="mean (ADU)", ylabel="variance (ADU²)", title="Photon-transfer curve")
    b.legend(fontsize=7)
    lo, hi = np.percentile(cal.real_frame, [0.5, 99.9])
    for axis, image, title in ((ax[1, 0], cal.real_frame, "real (sparsest frame)"),
                               (ax[1, 1], cal.simulated_frame, "simulated with the block")):
        if image is None:
            axis.set_axis_off()
            continue
        axis.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        axis.set(title=f"{title}, same grey scale (ADU {lo:.0f}–{hi:.0f})", xticks=[], yticks=[])
    fig.suptitle(f"srlab calibrate --smlm: {cal.path.name}")
    from srlab.calibration.block import save_figure

    return save_figure(fig, out)


def summary(cal: SMLMCalibration, seconds: float, out: Path, figure: Path) -> str:
    """The one-screen report of ``srlab calibrate --smlm``."""
    from srlab.config import data_reference

    t, h, w = cal.shape
    head = (f"srlab calibrate --smlm: {t} frames of {h}×{w} px{_channel_text(cal)}, {cal.pixel_size_nm:g} nm/px, "
            f"{cal.camera}, "
            f"in {seconds:.1f} s")
    lines = [head]
    for key, est in cal.estimates.items():
        lines.append(f"    {key:28s} {est.text():30s} ({est.method})")
    lines += [f"  note: {n}" for n in cal.notes]
    block = data_reference(out)
    pick = f" --channel {cal.channel}" if cal.channel is not None else ""
    use = (f"srlab train deepstorm_tubes data={block}   (e.g. srlab show deepstorm_tubes data={block}); "
           f"srlab localize --method gaussfit STACK -o DIR --data {block}{pick}")
    return "\n".join([*lines, f"wrote {out} and {figure}", f"next: {use}"])


def run_calibrate_smlm(args) -> int:
    """``srlab calibrate --smlm STACK --out BLOCK.yaml`` (arguments in :mod:`srlab.cli`)."""
    import time

    from srlab.calibration.block import output_paths, write_text, yaml_text

    start = time.perf_counter()
    out, figure = output_paths(args.out, overwrite=args.overwrite, example="experiments/data/mysmlm.yaml")
    if len(args.images) != 1:
        raise SrlabError(f"--smlm takes one stack, got {len(args.images)} paths")
    ignored = [flag for flag, value in (("--hr", args.hr), ("--scale", args.scale), ("--target", args.target),
                                        ("--hr-dark", args.hr_dark), ("--prior", args.prior != "sim_broad"),
                                        ("--hr-specimens", args.hr_specimens),
                                        ("--hr-channel", args.hr_channel is not None),
                                        ("--hr-offset-adu", args.hr_offset_adu is not None),
                                        ("--e-per-adu", args.e_per_adu is not None),
                                        ("--hr-e-per-adu", args.hr_e_per_adu is not None),
                                        ("--gain-frames", args.gain_frames), ("--hr-gain-frames", args.hr_gain_frames))
               if value]
    if ignored:
        raise SrlabError(f"{ignored[0]} is for image calibration, not --smlm")
    offset = args.offset_adu
    if args.dark:  # the stack's own fit has the offset as its only dark-frame input
        from srlab.calibration.dark import load_dark, measure_dark

        if offset is not None:
            raise SrlabError("give --offset-adu or --dark, not both (the dark frames measure the offset)")
        offset = measure_dark(load_dark([Path(p) for p in args.dark], channel=args.channel)).offset_adu
    cal = calibrate_smlm(args.images[0], pixel_size_nm=args.pixel_size_nm, offset_adu=offset,
                         camera=args.camera or "scmos", em_gain=args.em_gain, channel=args.channel)
    draw(cal, figure)  # the figure first: a block is never written without it
    write_text(yaml_text(header(cal), smlm_data_block(cal)), out, overwrite=args.overwrite)
    print(summary(cal, time.perf_counter() - start, out, figure))
    return 0
