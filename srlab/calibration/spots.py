"""The PSF width from fits of isolated spots: the SMLM calibration's σ and the image calibration's
spot-fit FWHM.

Method (``shared/reference/calibration.md``, "Isolated spots"; the fit is ThunderSTORM's, Ovesný et al.,
Bioinformatics 30(16):2389, 2014, as :func:`srlab.smlm.localize.fit_spots` runs it): wavelet detection at
``threshold`` × the frame's noise, a Poisson maximum-likelihood fit of a pixel-integrated Gaussian with
free σ, then only the spots that say something about the PSF are kept:

* **isolated** — no other detection in the same frame within two ROI radii (≈ 6σ), so no neighbour's
  light falls inside the fitted window;
* **converged** — inside the ROI, N > 0, σ off its bounds, within one pixel of the detection pixel, and
  a Poisson deviance that is probable for one emitter (p > 10⁻³, divided by the excess-noise factor; for
  images, :func:`spot_fwhm_images`, at most twice the median reduced deviance instead);
* **bright** — the brighter half of those by fitted photons: σ from a dim spot is noisy and, with a
  free background, biased.

For SMLM frames (:func:`spot_sigma`) every spot is one emitter: the estimate is the median σ of the
bright spots, its standard uncertainty the median's, 1.2533·sd/√n. In images of cells
(:func:`spot_fwhm_images`) a spot is the PSF convolved with an object, and objects only widen it: vesicles,
rings and short filament pieces pass every test above and, being brighter than puncta, fill the bright
half (a specimen of puncta, 120–320 nm rings and filaments: the bright half's median was +34 %). There the
estimate is the *mode* of all accepted spots' σ — the width the point-like objects share, the narrowest
common one — by the half-sample mode (Bickel & Frühwirth, Comput. Stat. Data Anal. 50:3500, 2006), with a
bootstrap standard uncertainty. Detection and the ROI size need a σ before there is one:
:func:`spot_sigma` starts from a guess and refits once with the ROI the first estimate implies.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Spots needed before a spot-fit width is used (fewer: reported only).
MIN_SPOTS = 30
#: The deviance test of a converged single-emitter fit.
FIT_P_VALUE = 1e-3


@dataclass(frozen=True)
class SpotSigma:
    """Accepted spots' fitted σ (px), photons and background, the estimate and how many spots were seen."""

    sigma_px: float
    sigma_se_px: float
    sigmas_px: np.ndarray
    photons: np.ndarray  # accepted (isolated, converged) spots, all brightnesses
    backgrounds: np.ndarray
    accepted_sigmas_px: np.ndarray  # σ of those accepted spots, all brightnesses
    detected: int
    isolated: int
    used: int
    roi_radius_px: int

    @property
    def enough(self) -> bool:
        return self.used >= MIN_SPOTS


def isolated_mask(frame: np.ndarray, row: np.ndarray, col: np.ndarray, reach: float) -> np.ndarray:
    """Whether each detection has no other detection of its frame within ``reach`` pixels (k-d tree:
    a 1024² image of a dense specimen holds tens of thousands of detections)."""
    from scipy.spatial import cKDTree

    isolated = np.ones(len(frame), bool)
    for t in np.unique(frame):
        idx = np.nonzero(frame == t)[0]
        if len(idx) < 2:
            continue
        points = np.stack([row[idx], col[idx]], 1).astype(np.float64)
        distance, _ = cKDTree(points).query(points, k=2)
        isolated[idx] = distance[:, 1] > reach
    return isolated


def _accept(spots, excess_noise: float, absolute: bool = True) -> np.ndarray:
    """The well-converged ones of fits of isolated detections (see the module doc); ``absolute=False``:
    the deviance test is relative (at most twice the median reduced deviance of the converged spots)."""
    from srlab.smlm.localize import chi2_sf

    x0, y0 = spots.theta[:, 0], spots.theta[:, 1]
    candidate = spots.ok & (np.abs(x0) <= 1.0) & (np.abs(y0) <= 1.0)
    if absolute:
        probable = chi2_sf(spots.deviance / excess_noise, np.maximum(spots.dof, 1)) > FIT_P_VALUE
    else:
        reduced = spots.deviance / np.maximum(spots.dof, 1)
        probable = reduced <= 2.0 * (np.median(reduced[candidate]) if candidate.any() else np.inf)
    return candidate & probable


#: Most isolated detections fitted per call of :func:`spot_sigma` for images (a random subset beyond:
#: unbiased, and enough for a mode; ten 1024² images hold ~10⁴).
MAX_SPOT_FITS = 3000


def spot_sigma(frames: np.ndarray, *, sigma_guess_px: float = 1.5, threshold: float = 1.0,
               excess_noise: float = 1.0, passes: int = 2, absolute: bool = True,
               max_fits: int | None = None) -> SpotSigma:
    """σ of the PSF in pixels from ``(T, H, W)`` frames in photons (offset removed, divided by the gain).

    Only isolated detections are fitted (the others would be rejected anyway); ``max_fits``: at most that
    many, a random subset (fixed seed)."""
    from srlab.calibration.threads import per_image
    from srlab.smlm.localize import detect_candidates, fit_spots

    frames = np.asarray(frames, np.float64)
    sigma = float(sigma_guess_px)
    result = None
    # The wavelet detector (ThunderSTORM's) does not use σ, so every pass fits among the same detections.
    parts = per_image(lambda t: detect_candidates(frames[t:t + 1], sigma_px=sigma, threshold=threshold,
                                                  detector="wavelet"), range(len(frames)))
    frame = np.concatenate([t + f for t, (f, _, _) in enumerate(parts)])
    row, col = (np.concatenate([p[k] for p in parts]) for k in (1, 2))
    for _ in range(passes):
        radius = max(2, math.ceil(3 * sigma))
        chosen = np.nonzero(isolated_mask(frame, row, col, 2 * radius))[0]
        if max_fits is not None and chosen.size > max_fits:
            chosen = np.sort(np.random.default_rng(0).choice(chosen, max_fits, replace=False))
        spots = fit_spots(frames, sigma_px=sigma, threshold=threshold, roi_radius_px=radius, estimator="mle",
                          candidates=(frame[chosen], row[chosen], col[chosen]))
        keep = _accept(spots, excess_noise, absolute) if len(spots) else np.zeros(0, bool)
        photons = spots.theta[keep, 2]
        bright = keep.copy()
        if keep.sum() >= 2:
            bright[keep] = photons >= np.median(photons)
        sig = spots.theta[bright, 3]
        if sig.size:
            est = float(np.median(sig))
            se = 1.2533 * float(np.std(sig, ddof=1)) / math.sqrt(sig.size) if sig.size > 1 else math.nan
        else:
            est, se = math.nan, math.nan
        result = SpotSigma(est, se, sig, photons, spots.theta[keep, 4], spots.theta[keep, 3], len(frame),
                           int(keep.sum()), int(sig.size), radius)
        if not math.isfinite(est) or abs(est - sigma) < 0.05 * sigma:
            break
        sigma = est
    assert result is not None
    return result


def half_sample_mode(values: np.ndarray) -> float:
    """The half-sample mode (Bickel & Frühwirth 2006): repeatedly keep the shortest interval holding half
    of the sorted values; robust to a one-sided tail of contaminating values."""
    x = np.sort(np.asarray(values, np.float64))
    if x.size == 0:
        return math.nan
    while x.size > 3:
        half = (x.size + 1) // 2
        widths = x[half - 1:] - x[:x.size - half + 1]
        start = int(np.argmin(widths))
        x = x[start:start + half]
    return float(np.median(x))


#: Smallest σ guess (px) the image spot search starts from. A pixel-integrated Gaussian narrower than
#: half a pixel puts most of its light in one pixel: the pixels cannot resolve it, and a spectrum fit
#: that reads narrower has fitted noise or a white object term (sparse labelling at few photons), not a
#: PSF. Started there, the fits' σ bounds (¼–4× the guess) admit single-photon events as "spots" of
#: σ ≈ 0.1 px, and their mode wins (a photon-poor STED image: 6 nm for a 47 nm PSF).
MIN_SIGMA_GUESS_PX = 0.5

#: Bootstrap resamples for the mode's standard uncertainty (fixed seed: the same images give the same text).
BOOTSTRAP = 200


def spot_fwhm_images(images: list[np.ndarray], *, offset_adu: float | Sequence[float], gain_adu_per_photon: float,
                     sigma_guess_px: float, threshold: float = 1.0) -> SpotSigma:
    """:func:`spot_sigma` over single images of any sizes (grouped by shape), on the photon scale of the
    noise fit; the accepted spots of all images are pooled and their σ's mode is the estimate (module doc).
    The deviance test is relative here: spots on real structures (pits, puncta) over haze are never
    exactly Gaussian-plus-constant, so an absolute test rejects them all; the worst-fitting ones (over
    twice the median) still go. ``sigma_guess_px`` is raised to :data:`MIN_SIGMA_GUESS_PX`; ``offset_adu``: one
    for all images, or each image's (:attr:`srlab.calibration.noise.NoiseFit.image_offsets_adu`)."""
    sigma_guess_px = max(float(sigma_guess_px), MIN_SIGMA_GUESS_PX)
    offsets = [float(offset_adu)] * len(images) if np.isscalar(offset_adu) else list(offset_adu)
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for im, offset in zip(images, offsets, strict=True):
        groups.setdefault(np.shape(im), []).append((np.asarray(im, np.float64) - offset) / gain_adu_per_photon)
    parts = [spot_sigma(np.stack(g), sigma_guess_px=sigma_guess_px, threshold=threshold, absolute=False,
                        max_fits=MAX_SPOT_FITS) for g in groups.values()]
    sig = np.concatenate([p.accepted_sigmas_px for p in parts])
    est = half_sample_mode(sig)
    se = math.nan
    if sig.size > 1:
        rng = np.random.default_rng(0)
        se = float(np.std([half_sample_mode(rng.choice(sig, sig.size)) for _ in range(BOOTSTRAP)], ddof=1))
    return SpotSigma(est, se, sig, np.concatenate([p.photons for p in parts]),
                     np.concatenate([p.backgrounds for p in parts]), sig, sum(p.detected for p in parts),
                     sum(p.isolated for p in parts), int(sig.size), parts[0].roi_radius_px)
