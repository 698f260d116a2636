"""From frames to molecules (scoring them against ground truth: :mod:`srlab.smlm.score`).

* :func:`localize_density` — a predicted density map (Deep-STORM, Deep-ULM) to positions: local maxima
  of the Gaussian-smoothed map whose surrounding mass exceeds a threshold, refined to sub-pixel
  precision by the weighted centroid of the window.
* :func:`gaussian_fit_localize` — the classical, ThunderSTORM-style baseline (Ovesný et al.,
  Bioinformatics 2014): difference-of-Gaussians filtering, local maxima above a multiple of the
  filtered image's robust noise level, then a least-squares fit of a pixel-integrated 2-D Gaussian
  (x, y, photons, σ, background) to each 2r+1 ROI. All ROIs of a stack are fitted at once by a
  vectorized Levenberg–Marquardt, so a 64×64 frame with ~30 emitters takes milliseconds. With
  ``max_emitters`` > 1, spots whose single fit is poor are refitted with up to that many emitters and
  the model chosen by a likelihood-ratio test (Huang et al., Biomed. Opt. Express 2011; ThunderSTORM's
  multi-emitter analysis). :func:`fit_spots` is the detection + single-fit stage on its own (the PSF
  calibration, :mod:`srlab.calibration.spots`, uses it).
* :func:`render_localizations` — localizations as Gaussian blobs on a fine grid (the super-resolved
  image), for image metrics (PSNR/SSIM/FRC) against the ground truth rendered the same way.
* :func:`localize_stack` — a trained network over a whole camera stack: per-frame localizations and
  the summed density (the super-resolved image); :func:`localize_file` does it from a TIFF to
  ``localizations.csv`` (ThunderSTORM columns) and ``super_resolved.tif`` (ImageJ, pixel size / 8).
  Each frame is normalized by its own percentiles, the run's ``data.low_percentile`` /
  ``data.high_percentile`` (the network's card), as its training frames were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage, special
from torch import nn

from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE, percentile_normalize
from srlab.errors import SrlabError
from srlab.optics.psf import render_gaussians
from srlab.smlm.localizations import (
    Localizations,
    read_smlm_stack,
    repair_hot_pixels,
    write_imagej_tiff,
    write_localizations_csv,
)


def normalize_frame(frame: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE,
                    high: float = DEFAULT_HIGH_PERCENTILE) -> np.ndarray:
    """Per-frame percentile normalization (srlab's convention: background ≈ 0, emitters ≈ 1).

    Deep-STORM's code min–max scales each frame and then standardizes with training-set statistics;
    percentiles do the same job without storing dataset statistics and are robust to hot pixels."""
    return percentile_normalize(np.asarray(frame, np.float32), low, high)[0]



# ------------------------------------------------------------------------------------------------
# Density maps -> molecules
# ------------------------------------------------------------------------------------------------
def _local_maxima(image: np.ndarray, radius_px: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows/cols of pixels that are the maximum of their (2r+1)² window and above ``threshold``;
    plateaus keep one pixel (the first in raster order)."""
    size = 2 * radius_px + 1
    peak = (image == ndimage.maximum_filter(image, size=size, mode="constant", cval=-np.inf)) & (image > threshold)
    rows, cols = np.nonzero(peak)  # raster order
    if len(rows) > 1:
        # Exact ties on plateaus: a peak goes when an earlier kept peak of the same value is within the
        # window. Only peaks with an equal-valued peak in their window take part: on a float image that
        # is almost none, and the greedy pass below costs a pass over the others per peak.
        tied = _tied_peaks(np.where(peak, image, np.nan), rows, cols, radius_px)
        if tied.any():
            keep = np.ones(len(rows), bool)
            idx = np.nonzero(tied)[0]
            tr, tc = rows[idx], cols[idx]
            values = image[tr, tc]
            for j in range(len(idx)):
                if not keep[idx[j]]:
                    continue
                near = (np.abs(tr[j + 1:] - tr[j]) <= radius_px) & (np.abs(tc[j + 1:] - tc[j]) <= radius_px)
                near &= values[j + 1:] == values[j]
                keep[idx[j + 1:][near]] = False
            rows, cols = rows[keep], cols[keep]
    return rows, cols


def _tied_peaks(peak_values: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_px: int) -> np.ndarray:
    """Per peak (``rows``, ``cols``): whether another peak of exactly its value lies in its window;
    ``peak_values`` holds the peaks' values and NaN elsewhere (NaN equals nothing)."""
    padded = np.pad(peak_values, radius_px, constant_values=np.nan)
    mine = peak_values[rows, cols]
    tied = np.zeros(len(rows), bool)
    for dy in range(-radius_px, radius_px + 1):
        for dx in range(-radius_px, radius_px + 1):
            if dy or dx:
                tied |= padded[rows + radius_px + dy, cols + radius_px + dx] == mine
    return tied


def localize_density(density: np.ndarray, *, pixel_size_nm: float, frame: int = 0, emitter_mass: float = 100.0,
                     threshold: float = 0.3, smooth_sigma_px: float = 1.0, radius_px: int = 3) -> Localizations:
    """Molecules in one ``(H, W)`` density map whose grid has ``pixel_size_nm``.

    Candidates are local maxima (in a (2r+1)² window) of the map smoothed by a Gaussian of
    ``smooth_sigma_px`` (Deep-STORM's heatmap kernel). A candidate is kept when the positive density
    summed over its window reaches ``threshold`` emitters (mass / ``emitter_mass``, the mass one
    training emitter carries). Its position is the centroid of the positive density in the window;
    ``photons`` holds the estimated emitter count (the map carries no photometry)."""
    d = np.asarray(density, np.float64)
    if d.ndim != 2:
        raise ValueError(f"density must be (H, W), got {d.shape}")
    positive = np.clip(d, 0.0, None)
    smooth = ndimage.gaussian_filter(positive, smooth_sigma_px, mode="constant") if smooth_sigma_px > 0 else positive
    min_mass = threshold * emitter_mass
    # A window holding min_mass has a smoothed peak of at least min_mass spread over the window.
    rows, cols = _local_maxima(smooth, radius_px, min_mass / (2 * radius_px + 1) ** 2)
    if len(rows) == 0:
        return Localizations.empty()
    offs = np.arange(-radius_px, radius_px + 1)
    padded = np.pad(positive, radius_px)
    rr = rows[:, None, None] + radius_px + offs[None, :, None]
    cc = cols[:, None, None] + radius_px + offs[None, None, :]
    windows = padded[rr, cc]  # (n, k, k)
    mass = windows.sum(axis=(1, 2))
    keep = mass >= min_mass
    if not np.any(keep):
        return Localizations.empty()
    windows, mass, rows, cols = windows[keep], mass[keep], rows[keep], cols[keep]
    cy = rows + (windows.sum(axis=2) * offs[None, :]).sum(axis=1) / mass
    cx = cols + (windows.sum(axis=1) * offs[None, :]).sum(axis=1) / mass
    return Localizations(np.full(len(cx), frame), (cx + 0.5) * pixel_size_nm, (cy + 0.5) * pixel_size_nm,
                         mass / emitter_mass)


def localize_density_stack(density: np.ndarray, *, pixel_size_nm: float, first_frame: int = 0,
                           emitter_mass: float = 100.0, threshold: float = 0.3, smooth_sigma_px: float = 1.0,
                           radius_px: int = 3) -> Localizations:
    """:func:`localize_density` over ``(T, H, W)`` maps; frame numbers start at ``first_frame``."""
    return Localizations.concatenate([
        localize_density(d, pixel_size_nm=pixel_size_nm, frame=first_frame + t, emitter_mass=emitter_mass,
                         threshold=threshold, smooth_sigma_px=smooth_sigma_px, radius_px=radius_px)
        for t, d in enumerate(np.asarray(density))])


# ------------------------------------------------------------------------------------------------
# Classical baseline: detection + Gaussian fit
# ------------------------------------------------------------------------------------------------
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def _integrated_gaussian_1d(coord: np.ndarray, centre: np.ndarray, sigma: np.ndarray):
    """Fraction of a unit 1-D Gaussian in the pixel centred at ``coord`` and its derivatives with
    respect to the centre and σ. Shapes broadcast: coord (1, k), centre/sigma (n, 1)."""
    a = (coord - 0.5 - centre) / sigma
    b = (coord + 0.5 - centre) / sigma
    value = 0.5 * (special.erf(b / _SQRT2) - special.erf(a / _SQRT2))
    ga, gb = np.exp(-0.5 * a * a), np.exp(-0.5 * b * b)
    d_centre = (ga - gb) / (_SQRT2PI * sigma)
    d_sigma = (a * ga - b * gb) / (_SQRT2PI * sigma)
    return value, d_centre, d_sigma


def _fit_gaussians(rois: np.ndarray, mask: np.ndarray, sigma0: float, iterations: int = 30,
                   estimator: str = "lsq") -> np.ndarray:
    """Fits of ``N·Ex(x0,σ)·Ey(y0,σ) + b`` to ``(n, k, k)`` ROIs (``mask`` = pixels in the frame) by
    Levenberg–Marquardt: least squares (``estimator='lsq'``) or the Poisson maximum likelihood
    (``'mle'``; Fisher scoring, i.e. weights 1/μ, on data in photons; Smith et al., Nat. Methods 2010).
    Returns ``(n, 5)`` parameters (x0, y0, N, σ, b), x0/y0 in ROI pixels from its centre."""
    if estimator not in ("lsq", "mle"):
        raise SrlabError(f"fit estimator '{estimator}': valid: lsq, mle")
    n, k, _ = rois.shape
    r = k // 2
    coord = (np.arange(k) - r)[None, :].astype(np.float64)
    w = mask.reshape(n, -1).astype(np.float64)
    data = rois.reshape(n, -1)
    # Initial guess: background from the ROI's border, photons from the excess, centre from the centroid.
    border = np.concatenate([rois[:, 0, :], rois[:, -1, :], rois[:, 1:-1, 0], rois[:, 1:-1, -1]], axis=1)
    border_mask = np.concatenate([mask[:, 0, :], mask[:, -1, :], mask[:, 1:-1, 0], mask[:, 1:-1, -1]], axis=1)
    b0 = np.array([np.median(v[m]) if m.any() else 0.0 for v, m in zip(border, border_mask)])
    excess = np.clip(rois - b0[:, None, None], 0, None) * mask
    total = excess.sum(axis=(1, 2)) + 1e-9
    x0 = (excess.sum(axis=1) * coord).sum(axis=1) / total
    y0 = (excess.sum(axis=2) * coord).sum(axis=1) / total
    theta = np.stack([x0, y0, total, np.full(n, sigma0), b0], axis=1)

    def model(th: np.ndarray):
        ex, dex, dsx = _integrated_gaussian_1d(coord, th[:, 0:1], th[:, 3:4])
        ey, dey, dsy = _integrated_gaussian_1d(coord, th[:, 1:2], th[:, 3:4])
        amp = th[:, 2][:, None, None]
        mu = amp * ey[:, :, None] * ex[:, None, :] + th[:, 4][:, None, None]
        jac = np.stack([
            amp * ey[:, :, None] * dex[:, None, :],
            amp * dey[:, :, None] * ex[:, None, :],
            ey[:, :, None] * ex[:, None, :],
            amp * (dsy[:, :, None] * ex[:, None, :] + ey[:, :, None] * dsx[:, None, :]),
            np.ones_like(mu),
        ], axis=-1).reshape(n, -1, 5)
        return mu.reshape(n, -1), jac

    mle = estimator == "mle"
    counts = np.clip(data, 0.0, None)

    def cost(mu: np.ndarray) -> np.ndarray:
        if mle:  # Poisson negative log-likelihood (up to a constant)
            m = np.clip(mu, 1e-6, None)
            return (w * (m - counts * np.log(m))).sum(axis=1)
        return (w * (data - mu) ** 2).sum(axis=1)

    if mle:  # a positive model everywhere: background and photons start > 0
        theta[:, 4] = np.clip(theta[:, 4], 1e-3, None)
    target = counts if mle else data

    def constrain(trial: np.ndarray) -> None:
        trial[:, 3] = np.clip(trial[:, 3], 0.25 * sigma0, 4.0 * sigma0)

    theta, _ = _levenberg_marquardt(theta, model, cost, target,
                                    (lambda mu: w / np.clip(mu, 1e-3, None)) if mle else (lambda mu: w),
                                    iterations=iterations, constrain=constrain, stop_lambda=1e8)
    return theta


def _levenberg_marquardt(theta: np.ndarray, model, cost, target: np.ndarray, weight, *, iterations: int,
                         constrain=None, stop_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Batched Levenberg–Marquardt over ``n`` independent fits: ``model(theta)`` gives ``(mu, jacobian)``
    of shapes ``(n, m)`` and ``(n, m, p)``, ``cost(mu)`` the ``(n,)`` objective, ``weight(mu)`` the ``(n, m)``
    weights of the normal equations (``w / mu``: Fisher scoring of the Poisson likelihood; ``w``: least
    squares). Each fit keeps its own damping: ×0.3 after an accepted step, ×10 after a rejected one, and
    all stop once every damping exceeds ``stop_lambda``. ``constrain`` clips a trial step in place.
    Returns the parameters and their cost."""
    n, p = theta.shape
    eye = np.eye(p)
    lam = np.full(n, 1e-2)
    mu, jac = model(theta)
    current = cost(mu)
    for _ in range(iterations):
        jtw = jac.transpose(0, 2, 1) * weight(mu)[:, None, :]
        hess = jtw @ jac
        grad = (jtw @ (target - mu)[:, :, None])[:, :, 0]
        damped = hess + lam[:, None, None] * (hess * eye + 1e-9 * eye)
        try:
            step = np.linalg.solve(damped, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(d, g, rcond=None)[0] for d, g in zip(damped, grad)])
        trial = theta + step
        if constrain is not None:
            constrain(trial)
        mu_t, jac_t = model(trial)
        new = cost(mu_t)
        better = np.isfinite(new) & (new < current)
        theta = np.where(better[:, None], trial, theta)
        mu = np.where(better[:, None], mu_t, mu)
        jac = np.where(better[:, None, None], jac_t, jac)
        current = np.where(better, new, current)
        lam = np.where(better, lam * 0.3, lam * 10.0)
        if np.all(lam > stop_lambda):
            break
    return theta, current


#: Cubic B-spline sampled at scale 2 (ThunderSTORM's default wavelet filter: order 3, scale 2).
_BSPLINE_KERNEL = np.array([1 / 48, 1 / 6, 23 / 48, 2 / 3, 23 / 48, 1 / 6, 1 / 48])
_BSPLINE_KERNEL = _BSPLINE_KERNEL / _BSPLINE_KERNEL.sum()


def wavelet_levels(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two levels ``(F1, F2)`` of the à trous B-spline wavelet transform of a frame (Izeddin et
    al., Opt. Express 2012; ThunderSTORM): ``V1 = I * k``, ``V2 = V1 * k↑2`` (the kernel with holes),
    ``F1 = I − V1``, ``F2 = V1 − V2``. Spots stand out in ``F2``; ``F1`` is mostly noise."""
    dilated = np.zeros(2 * len(_BSPLINE_KERNEL) - 1)
    dilated[::2] = _BSPLINE_KERNEL
    v1 = ndimage.correlate1d(ndimage.correlate1d(frame, _BSPLINE_KERNEL, 0, mode="mirror"),
                             _BSPLINE_KERNEL, 1, mode="mirror")
    v2 = ndimage.correlate1d(ndimage.correlate1d(v1, dilated, 0, mode="mirror"), dilated, 1, mode="mirror")
    return frame - v1, v1 - v2


def detect_spots(frame: np.ndarray, *, sigma_px: float, threshold: float, detector: str = "wavelet"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows/cols of candidate molecules in one frame: 8-neighbourhood local maxima of the filtered frame
    above ``threshold`` × a noise level measured on the frame itself (never a constant).

    ``'wavelet'`` (ThunderSTORM's default): maxima of the second wavelet level F2 above
    ``threshold·std(F1)``. ``'dog'``: a difference of Gaussians (σ_psf − 2.5·σ_psf) above ``threshold``
    × its robust σ (1.4826·MAD)."""
    if detector == "wavelet":
        f1, filtered = wavelet_levels(frame)
        noise = float(np.std(f1)) + 1e-12
    elif detector == "dog":
        filtered = (ndimage.gaussian_filter(frame, sigma_px, mode="nearest")
                    - ndimage.gaussian_filter(frame, 2.5 * sigma_px, mode="nearest"))
        noise = 1.4826 * float(np.median(np.abs(filtered - np.median(filtered)))) + 1e-12
    else:
        raise SrlabError(f"detector '{detector}': valid: wavelet, dog")
    return _local_maxima(filtered, 1, threshold * noise)


def localization_uncertainty_nm(sigma_nm: np.ndarray, photons: np.ndarray, background: np.ndarray, *,
                                pixel_size_nm: float, excess_noise: float = 1.0) -> np.ndarray:
    """Lateral precision (one axis, nm) of a Gaussian fit: Thompson et al. 2002 / Mortensen et al. 2010
    as ThunderSTORM reports it, σ² = F·(s_a²/N)·(16/9 + 8π s_a² b/(N a²)), s_a² = s² + a²/12, with
    ``b`` background photons per pixel and F = 2 for an EMCCD (``excess_noise``), 1 otherwise."""
    a = pixel_size_nm
    sa2 = np.asarray(sigma_nm) ** 2 + a * a / 12.0
    n = np.clip(np.asarray(photons, np.float64), 1e-9, None)
    b = np.clip(np.asarray(background, np.float64), 0.0, None)
    return np.sqrt(excess_noise * sa2 / n * (16.0 / 9.0 + 8.0 * math.pi * sa2 * b / (n * a * a)))


@dataclass
class SpotFits:
    """Single-emitter fits of every detected spot of a stack (:func:`fit_spots`): the detection pixel
    (``frame``, ``row``, ``col``), the fitted ``theta`` (x0, y0, N, σ, b; x0/y0 in pixels from the
    detection pixel), ``ok`` (converged inside the ROI with N > 0 and σ off its bounds) and the Poisson
    ``deviance`` of the fit with its degrees of freedom ``dof`` (in-frame ROI pixels − 5)."""

    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    theta: np.ndarray
    ok: np.ndarray
    deviance: np.ndarray
    dof: np.ndarray
    roi_radius_px: int
    rois: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def _poisson_deviance(data: np.ndarray, mu: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``2 Σ [d ln(d/μ) − (d − μ)]`` per row over the pixels of ``weight`` (data clipped at 0)."""
    d = np.clip(data, 0.0, None)
    m = np.clip(mu, 1e-9, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(d > 0, d * np.log(d / m), 0.0) - (d - m)
    return 2.0 * (weight * term).sum(axis=1)


def _emitters_model(theta: np.ndarray, coord: np.ndarray, sigma_px: float):
    """``b + Σ_i N_i·Ex(x_i)·Ey(y_i)`` for ``theta = (n, 3k+1)`` = (x_1, y_1, N_1, ..., b) at a fixed σ,
    flattened ``(n, k·k)``, and its Jacobian ``(n, k·k, 3k+1)``."""
    n, p = theta.shape
    emitters = (p - 1) // 3
    size = coord.shape[1]
    sig = np.full((n, 1), sigma_px)
    mu = np.repeat(theta[:, -1:], size * size, axis=1)
    jac = np.zeros((n, size * size, p))
    jac[:, :, -1] = 1.0
    for i in range(emitters):
        ex, dex, _ = _integrated_gaussian_1d(coord, theta[:, 3 * i:3 * i + 1], sig)
        ey, dey, _ = _integrated_gaussian_1d(coord, theta[:, 3 * i + 1:3 * i + 2], sig)
        amp = theta[:, 3 * i + 2][:, None, None]
        shape = (ey[:, :, None] * ex[:, None, :]).reshape(n, -1)
        mu = mu + theta[:, 3 * i + 2:3 * i + 3] * shape
        jac[:, :, 3 * i] = (amp * ey[:, :, None] * dex[:, None, :]).reshape(n, -1)
        jac[:, :, 3 * i + 1] = (amp * dey[:, :, None] * ex[:, None, :]).reshape(n, -1)
        jac[:, :, 3 * i + 2] = shape
    return mu, jac


def _fit_emitters(rois: np.ndarray, mask: np.ndarray, sigma_px: float, theta: np.ndarray,
                  iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Poisson maximum-likelihood fit of ``k`` emitters of fixed σ and one background to ``(n, s, s)`` ROIs
    (Levenberg–Marquardt with Fisher scoring, as :func:`_fit_gaussians`), from ``theta`` ``(n, 3k+1)``.
    Returns the parameters and the negative log-likelihood (up to a constant) of each ROI."""
    n, s, _ = rois.shape
    coord = (np.arange(s) - s // 2)[None, :].astype(np.float64)
    w = mask.reshape(n, -1).astype(np.float64)
    counts = np.clip(rois.reshape(n, -1), 0.0, None)

    def cost(mu: np.ndarray) -> np.ndarray:
        m = np.clip(mu, 1e-6, None)
        return (w * (m - counts * np.log(m))).sum(axis=1)

    theta = theta.copy()
    theta[:, -1] = np.clip(theta[:, -1], 1e-3, None)
    # Six rejected steps in a row from the usual 1e-2 (damping > 1e4): converged (or stuck).
    return _levenberg_marquardt(theta, lambda th: _emitters_model(th, coord, sigma_px), cost, counts,
                                lambda mu: w / np.clip(mu, 1e-3, None), iterations=iterations, stop_lambda=1e4)


def chi2_sf(x: np.ndarray, dof: np.ndarray | float) -> np.ndarray:
    """χ² survival function (``scipy.special.chdtrc``: ``scipy.stats`` costs a second to import)."""
    return special.chdtrc(dof, x)


#: ThunderSTORM's default p-value for accepting one more emitter (multi-emitter fitting analysis).
MULTI_EMITTER_P_VALUE = 1e-6
#: A single fit counts as poor (and the spot is tried with more emitters) when its σ exceeds the PSF's
#: by this factor, or its Poisson deviance is improbable at this p-value.
POOR_SIGMA_RATIO = 1.0
POOR_FIT_P_VALUE = 0.05


def detect_candidates(frames: np.ndarray, *, sigma_px: float, threshold: float,
                      detector: str = "wavelet") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, row, col) of every spot :func:`detect_spots` finds in ``(T, H, W)`` frames."""
    t_idx, rows, cols = [], [], []
    for t, frame in enumerate(frames):
        pr, pc = detect_spots(frame, sigma_px=sigma_px, threshold=threshold, detector=detector)
        t_idx.append(np.full(len(pr), t))
        rows.append(pr)
        cols.append(pc)
    t_all, r_all, c_all = (np.concatenate(a).astype(np.int64) for a in (t_idx, rows, cols))
    return t_all, r_all, c_all


def fit_spots(frames: np.ndarray, *, sigma_px: float, threshold: float, roi_radius_px: int | None = None,
              detector: str = "wavelet", estimator: str = "mle",
              candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> SpotFits:
    """Detect (:func:`detect_candidates`) and fit one pixel-integrated Gaussian (free σ) to every spot of
    ``(T, H, W)`` frames; the shared first stage of :func:`gaussian_fit_localize` and of the PSF
    calibration (:mod:`srlab.calibration.spots`). ``candidates``: fit these (frame, row, col) instead."""
    r = roi_radius_px if roi_radius_px is not None else max(2, math.ceil(3 * sigma_px))
    if candidates is None:
        candidates = detect_candidates(frames, sigma_px=sigma_px, threshold=threshold, detector=detector)
    t_all, r_all, c_all = (np.asarray(a, np.int64) for a in candidates)
    size = 2 * r + 1
    if len(t_all) == 0:
        empty = np.zeros(0)
        return SpotFits(t_all, r_all, c_all, np.zeros((0, 5)), np.zeros(0, bool), empty, empty, r,
                        np.zeros((0, size, size)), np.zeros((0, size, size), bool))
    _, height, width = frames.shape
    padded = np.pad(frames, ((0, 0), (r, r), (r, r)))
    inside = np.pad(np.ones((height, width), bool), r)
    offs = np.arange(-r, r + 1)
    rr = r_all[:, None, None] + r + offs[None, :, None]
    cc = c_all[:, None, None] + r + offs[None, None, :]
    rois = padded[t_all[:, None, None], rr, cc]
    mask = inside[rr, cc]
    theta = _fit_gaussians(rois, mask, sigma_px, estimator=estimator)
    x0, y0, amp, sig, bg = theta.T
    ok = (np.all(np.isfinite(theta), axis=1) & (amp > 0) & (np.abs(x0) <= r) & (np.abs(y0) <= r)
          & (sig > 0.26 * sigma_px) & (sig < 3.9 * sigma_px))
    coord = offs[None, :].astype(np.float64)
    ex, _, _ = _integrated_gaussian_1d(coord, x0[:, None], sig[:, None])
    ey, _, _ = _integrated_gaussian_1d(coord, y0[:, None], sig[:, None])
    mu = (amp[:, None, None] * ey[:, :, None] * ex[:, None, :] + bg[:, None, None]).reshape(len(t_all), -1)
    deviance = _poisson_deviance(rois.reshape(len(t_all), -1), mu, mask.reshape(len(t_all), -1).astype(float))
    dof = mask.reshape(len(t_all), -1).sum(axis=1) - 5.0
    return SpotFits(t_all, r_all, c_all, theta, ok, deviance, dof, r, rois, mask)


def _multi_emitter_fits(spots: SpotFits, sigma_px: float, max_emitters: int, excess_noise: float,
                        p_value: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Huang et al.'s multiple-emitter fitting (Biomed. Opt. Express 2(5):1377, 2011) as ThunderSTORM's
    multi-emitter analysis runs it, on the spots whose single fit is poor.

    Followed: models of 1..``max_emitters`` emitters of the PSF's σ (fixed) and one background are fitted
    by Poisson maximum likelihood in the spot's ROI; each new emitter starts at the largest residual of the
    previous model; the k+1 model replaces the k model when the log-likelihood ratio test (2·ΔlnL ~ χ² with
    3 degrees of freedom) rejects k at ``p_value`` (ThunderSTORM's default 10⁻⁶), and every emitter of it
    has N > 0 inside the ROI.
    Adapted: only spots whose free-σ single fit is poor are tried (σ > 1.15·σ_psf, an improbable Poisson
    deviance, or no convergence), Huang's goodness-of-fit gate, vectorized over ROIs; the likelihood ratio
    and deviance are divided by ``excess_noise`` (an EMCCD doubles the variance of the photon counts, so
    the Poisson likelihood would over-reward extra emitters).
    Returns the indices of the spots now described by more than one emitter and, for each, its
    ``(k, 3)`` emitters (x0, y0, N) in ROI pixels."""
    if max_emitters < 2 or len(spots) == 0:
        return np.zeros(0, np.int64), []
    x0, y0, amp, sig, bg = spots.theta.T
    finite = np.all(np.isfinite(spots.theta), axis=1)
    poor_dev = chi2_sf(spots.deviance / excess_noise, np.maximum(spots.dof, 1)) < POOR_FIT_P_VALUE
    poor = finite & (~spots.ok | (sig > POOR_SIGMA_RATIO * sigma_px) | poor_dev)
    index = np.nonzero(poor)[0]
    if len(index) == 0:
        return index, []
    r = spots.roi_radius_px
    rois, mask = spots.rois[index], spots.mask[index]
    n = len(index)
    # The one-emitter model at the PSF's σ is the null hypothesis (nested in the k-emitter models).
    start = np.stack([np.clip(x0[index], -r / 2, r / 2), np.clip(y0[index], -r / 2, r / 2),
                      np.clip(amp[index], 1.0, None), np.clip(bg[index], 1e-3, None)], axis=1)
    theta, nll = _fit_emitters(rois, mask, sigma_px, start)
    chosen = [theta[i, :3].reshape(1, 3) for i in range(n)]
    active = np.ones(n, bool)
    coord = (np.arange(2 * r + 1) - r)[None, :].astype(np.float64)
    for k in range(2, max_emitters + 1):
        if not active.any():
            break
        act = np.nonzero(active)[0]
        prev = theta[act]
        mu, _ = _emitters_model(prev, coord, sigma_px)
        resid = (np.clip(rois[act].reshape(len(act), -1), 0, None) - mu) * mask[act].reshape(len(act), -1)
        peak = np.argmax(resid, axis=1)
        ny, nx = np.divmod(peak, 2 * r + 1)
        # A new emitter at the largest residual holding the residual's sum over a 2σ disc.
        new_amp = np.clip(resid[np.arange(len(act)), peak] * 2 * math.pi * sigma_px**2, 1.0, None)
        init = np.concatenate([prev[:, :-1], np.stack([nx - r, ny - r, new_amp], axis=1).astype(np.float64),
                               prev[:, -1:]], axis=1)
        fitted, nll_k = _fit_emitters(rois[act], mask[act], sigma_px, init)
        llr = 2.0 * (nll[act] - nll_k) / excess_noise
        xs, ys, ns = fitted[:, 0:-1:3], fitted[:, 1:-1:3], fitted[:, 2:-1:3]
        valid = (np.all(np.isfinite(fitted), axis=1) & np.all(ns > 0, axis=1)
                 & np.all(np.abs(xs) <= r, axis=1) & np.all(np.abs(ys) <= r, axis=1))
        accept = valid & (chi2_sf(np.clip(llr, 0, None), 3) < p_value)
        for j in np.nonzero(accept)[0]:
            chosen[act[j]] = fitted[j, :-1].reshape(k, 3)
        active[act[~accept]] = False
        if k < max_emitters:  # the k-emitter fits are the starting points of k+1
            grown = np.zeros((n, 3 * k + 1))
            grown[act[accept]] = fitted[accept]
            theta, nll = grown, nll.copy()
            nll[act[accept]] = nll_k[accept]
    multi = np.array([i for i in range(n) if len(chosen[i]) > 1], np.int64)
    return index[multi], [chosen[i] for i in multi]


def gaussian_fit_localize(stack: np.ndarray, *, pixel_size_nm: float, psf_sigma_nm: float,
                          threshold: float = 4.0, roi_radius_px: int | None = None,
                          first_frame: int = 0, detector: str = "dog", estimator: str = "lsq",
                          excess_noise: float = 1.0, max_emitters: int = 1,
                          multi_p_value: float = MULTI_EMITTER_P_VALUE) -> Localizations:
    """Classical localization of ``(H, W)`` or ``(T, H, W)`` frames (in photons for ``estimator='mle'``).

    Detection (:func:`detect_spots`): ``detector`` 'dog' (default, the training baseline) or 'wavelet'
    (ThunderSTORM), local maxima above ``threshold`` × the filtered frame's noise. Fit: pixel-integrated
    Gaussian (x, y, N, σ, b) by Levenberg–Marquardt, least squares or Poisson maximum likelihood
    (``estimator``), on a (2r+1)² ROI, r = ceil(3σ_psf) px by default. Fits that leave the ROI, have
    N ≤ 0 or σ at its bounds are discarded. ``photons`` holds the fitted N (in the input's units),
    ``sigma_nm``/``background`` the fitted σ and b, ``uncertainty_nm`` :func:`localization_uncertainty_nm`.

    ``max_emitters`` > 1 (data in photons) adds the multi-emitter analysis (:func:`_multi_emitter_fits`):
    a poorly fitted spot may become up to that many emitters (σ = the PSF's, ``sigma_nm`` filled with it).
    A spot's extra emitters can be another detection's own: an emitter of a multi-emitter ROI is kept only
    when its own detection pixel is the nearest one in the frame (so no molecule is reported twice)."""
    frames = np.asarray(stack, np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(f"expected (H, W) or (T, H, W) frames, got {frames.shape}")
    if max_emitters < 1:
        raise SrlabError(f"multi-emitter fitting: at most {max_emitters} emitters per spot; must be >= 1")
    sigma_px = psf_sigma_nm / pixel_size_nm
    spots = fit_spots(frames, sigma_px=sigma_px, threshold=threshold, roi_radius_px=roi_radius_px,
                      detector=detector, estimator=estimator)
    if len(spots) == 0:
        return Localizations.empty()
    _, height, width = frames.shape
    x0, y0, amp, sig, bg = spots.theta.T
    keep = spots.ok.copy()
    t_out, x_out, y_out, n_out, s_out, b_out = ([spots.frame], [spots.col + x0], [spots.row + y0], [amp], [sig],
                                                [bg])
    multi, emitters = (_multi_emitter_fits(spots, sigma_px, max_emitters, excess_noise, multi_p_value)
                       if max_emitters > 1 else (np.zeros(0, np.int64), []))
    if len(multi):
        keep[multi] = False
        for i, em in zip(multi, emitters):
            ex, ey = spots.col[i] + em[:, 0], spots.row[i] + em[:, 1]
            same = spots.frame == spots.frame[i]
            d2 = (ex[:, None] - spots.col[same][None, :]) ** 2 + (ey[:, None] - spots.row[same][None, :]) ** 2
            own = np.nonzero(same)[0][np.argmin(d2, axis=1)] == i
            k = int(own.sum())
            t_out.append(np.full(k, spots.frame[i]))
            x_out.append(ex[own])
            y_out.append(ey[own])
            n_out.append(em[own, 2])
            s_out.append(np.full(k, sigma_px))
            b_out.append(np.full(k, bg[i]))
            keep = np.concatenate([keep, np.ones(k, bool)])
    t_all, x_px, y_px, amp, sig, bg = (np.concatenate(a) for a in (t_out, x_out, y_out, n_out, s_out, b_out))
    x_nm = (x_px + 0.5) * pixel_size_nm
    y_nm = (y_px + 0.5) * pixel_size_nm
    keep &= (x_nm >= 0) & (x_nm <= width * pixel_size_nm) & (y_nm >= 0) & (y_nm <= height * pixel_size_nm)
    sigma_nm = sig * pixel_size_nm
    uncertainty = localization_uncertainty_nm(sigma_nm, amp, bg, pixel_size_nm=pixel_size_nm,
                                              excess_noise=excess_noise)
    order = np.argsort(t_all[keep], kind="stable")
    return Localizations((t_all[keep] + first_frame)[order], x_nm[keep][order], y_nm[keep][order], amp[keep][order],
                         sigma_nm[keep][order], bg[keep][order], uncertainty[keep][order])


# ------------------------------------------------------------------------------------------------
# Rendering and inference
# ------------------------------------------------------------------------------------------------
def render_localizations(locs: Localizations, *, field_nm: tuple[float, float], pixel_size_nm: float,
                         sigma_nm: float = 20.0, weights: str = "count") -> np.ndarray:
    """The super-resolved image: each localization a pixel-integrated Gaussian of ``sigma_nm`` on a grid of
    ``pixel_size_nm`` covering ``field_nm = (height_nm, width_nm)``; ``weights`` 'count' (each molecule
    integrates to 1) or 'photons'."""
    if weights not in ("count", "photons"):
        raise SrlabError(f"render weights '{weights}': valid: count, photons")
    height = round(field_nm[0] / pixel_size_nm)
    width = round(field_nm[1] / pixel_size_nm)
    w = np.ones(len(locs)) if weights == "count" else np.nan_to_num(locs.photons)
    return render_gaussians(locs.x_nm / pixel_size_nm, locs.y_nm / pixel_size_nm, w, shape=(height, width),
                            sigma_px=sigma_nm / pixel_size_nm)


@torch.no_grad()
def predict_density(network: nn.Module, frames: np.ndarray, *, batch_size: int = 16,
                    low_percentile: float = DEFAULT_LOW_PERCENTILE, high_percentile: float = DEFAULT_HIGH_PERCENTILE,
                    device: torch.device | str | None = None) -> np.ndarray:
    """Density maps ``(T, s·H, s·W)`` of raw ``(T, H, W)`` frames (each normalized as in training)."""
    device = torch.device(device) if device is not None else next(network.parameters(), torch.empty(0)).device
    was_training = network.training
    network.eval()
    out = []
    try:
        for start in range(0, len(frames), batch_size):
            chunk = np.stack([normalize_frame(f, low_percentile, high_percentile) for f in frames[start:start + batch_size]])
            pred = network(torch.from_numpy(chunk)[:, None].to(device))
            out.append(pred[:, 0].float().cpu().numpy())
    finally:
        network.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)


def localize_stack(network: nn.Module, stack: np.ndarray, *, pixel_size_nm: float, scale: int = 8,
                   batch_size: int = 16, emitter_mass: float = 100.0, threshold: float = 0.3,
                   low_percentile: float = DEFAULT_LOW_PERCENTILE, high_percentile: float = DEFAULT_HIGH_PERCENTILE,
                   device: torch.device | str | None = None,
                   progress: bool = False) -> tuple[Localizations, np.ndarray]:
    """Run a density network over a ``(T, H, W)`` camera stack of ``pixel_size_nm`` pixels.

    Each frame is normalized by its own ``low_percentile`` / ``high_percentile`` percentiles; give the
    run's (its card's ``low_percentile`` / ``high_percentile``, from ``data.*``) so that the network sees
    frames scaled as its training frames were. Returns the localizations (0-based frames; write them with
    :func:`srlab.smlm.localizations.write_localizations_csv`) and the summed density map, the super-resolved
    image on the ``pixel_size_nm / scale`` grid (write it with :func:`srlab.smlm.localizations.write_imagej_tiff`)."""
    from tqdm.auto import tqdm

    frames = np.asarray(stack, np.float32)
    parts, total = [], None
    bar = tqdm(total=len(frames), disable=not progress, unit="frame", desc="localize")
    for start in range(0, len(frames), batch_size):
        dens = predict_density(network, frames[start:start + batch_size], batch_size=batch_size,
                               low_percentile=low_percentile, high_percentile=high_percentile, device=device)
        bar.update(len(dens))
        if dens.shape[1:] != (scale * frames.shape[1], scale * frames.shape[2]):
            raise SrlabError(f"network output {dens.shape[1:]} is not {scale}× the frame {frames.shape[1:]}; "
                             f"check the model's scale")
        parts.append(localize_density_stack(dens, pixel_size_nm=pixel_size_nm / scale, first_frame=start,
                                            emitter_mass=emitter_mass, threshold=threshold))
        s = np.clip(dens, 0, None).sum(axis=0)
        total = s if total is None else total + s
    bar.close()
    if total is None:
        total = np.zeros((scale * frames.shape[1], scale * frames.shape[2]), np.float32)
    return Localizations.concatenate(parts), total.astype(np.float32)


@dataclass(frozen=True)
class LocalizationOutputs:
    localizations: Path
    super_resolved: Path
    count: int


def localize_file(network: nn.Module, stack_path: str | Path, out_dir: str | Path, *,
                  pixel_size_nm: float | None = None, scale: int = 8, threshold: float = 0.3,
                  emitter_mass: float = 100.0, batch_size: int = 16,
                  low_percentile: float = DEFAULT_LOW_PERCENTILE, high_percentile: float = DEFAULT_HIGH_PERCENTILE,
                  device: torch.device | str | None = None) -> LocalizationOutputs:
    """Localize a TIFF stack with ``network``; write ``localizations.csv`` and ``super_resolved.tif``.

    Frames are normalized by the ``low_percentile`` / ``high_percentile`` percentiles the network was
    trained with (see :func:`localize_stack`).

    The pixel size comes from the file's calibration unless ``pixel_size_nm`` is given; a file without
    one and no ``pixel_size_nm`` is a one-line error (positions in nm need it)."""
    stack, file_pixel_nm = read_smlm_stack(stack_path)
    stack, _ = repair_hot_pixels(stack)
    pixel = pixel_size_nm if pixel_size_nm is not None else file_pixel_nm
    if pixel is None or not pixel > 0:
        raise SrlabError(f"{stack_path}: no pixel size in the file; give it (e.g. pixel_size_nm=100)")
    locs, image = localize_stack(network, stack, pixel_size_nm=pixel, scale=scale, batch_size=batch_size,
                                 emitter_mass=emitter_mass, threshold=threshold, low_percentile=low_percentile,
                                 high_percentile=high_percentile, device=device)
    out = Path(out_dir)
    csv_path = write_localizations_csv(out / "localizations.csv", locs)
    tif_path = write_imagej_tiff(out / "super_resolved.tif", image, pixel_size_nm=pixel / scale)
    return LocalizationOutputs(csv_path, tif_path, len(locs))

