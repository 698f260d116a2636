"""Localization precision of a localization table, and its histogram rendering.

* **NeNA** (Endesfelder, Malkusch, Fricke & Heilemann, "A simple method to estimate the average
  localization precision of a single-molecule localization microscopy experiment", Histochem. Cell
  Biol. 141:629, 2014). A molecule that stays on for several frames is localized in each; the distance
  ``d`` from a localization to its nearest neighbour in the next frame is, for the same molecule, the
  length of the difference of two independent errors of σ per axis: Rayleigh with scale σ√2,
  ``p(d) = d / (2σ²) · exp(-d² / 4σ²)``. *Follows* the paper's nearest neighbour in the adjacent frame
  within a search radius; *adapts* its fit: the paper fits the histogram with the Rayleigh term, a
  Gaussian for neighbouring molecules and a linear term; here the distances themselves are fitted by
  maximum likelihood with the Rayleigh term and one term for unrelated neighbours (uniform in area:
  ``2d / R²`` on ``[0, R]``), both truncated at the search radius ``R`` — labels on a structure only
  tens of nm apart are then partly absorbed by the second term, partly by a slightly larger σ. It
  measures the precision the data have (fitting errors, short-term drift and vibration), not the one a
  fitter reports.
* **The fitter's uncertainties** (ThunderSTORM's ``uncertainty [nm]``, Thompson et al. 2002 / Mortensen
  et al. 2010): their root mean square — a mixture of Gaussians of variances σᵢ² has the second moment
  of one Gaussian of variance mean(σᵢ²), which is what a rendering of all of them is blurred by.
* **Histogram rendering** (:func:`histogram_image`): the number of localizations in each pixel
  (ThunderSTORM's "Histograms" without jitter): integer counts, the image model of the ``storm``
  modality (:mod:`srlab.optics.modality`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.spatial import cKDTree

from srlab.smlm.localizations import Localizations

#: NeNA's search radius (nm): a molecule moves less than this between frames, and it is well beyond
#: the precision of any 2D SMLM experiment (5–40 nm).
NENA_SEARCH_RADIUS_NM = 150.0
#: Fewer adjacent-frame pairs than this and NeNA is not attempted (the fit needs a populated peak).
NENA_MIN_PAIRS = 100


@dataclass(frozen=True)
class Precision:
    """A localization precision σ (nm) with its standard error, the method, and how many localizations
    (or adjacent-frame pairs, for NeNA) it rests on."""

    sigma_nm: float
    se_nm: float
    method: str
    count: int


def nena_precision(locs: Localizations, *, radius_nm: float = NENA_SEARCH_RADIUS_NM) -> Precision | None:
    """NeNA σ of ``locs`` (see the module doc); ``None`` with fewer than :data:`NENA_MIN_PAIRS` pairs."""
    d = adjacent_frame_distances(locs, radius_nm=radius_nm)
    if d.size < NENA_MIN_PAIRS:
        return None
    sigma, se = _fit_rayleigh_and_uniform(d, radius_nm)
    if not math.isfinite(sigma):
        return None
    return Precision(sigma, se, f"NeNA (Endesfelder 2014): {d.size} adjacent-frame pairs within {radius_nm:g} nm",
                     int(d.size))


def adjacent_frame_distances(locs: Localizations, *, radius_nm: float = NENA_SEARCH_RADIUS_NM) -> np.ndarray:
    """For each localization of frame t, the distance (nm) to its nearest localization in frame t + 1,
    where one lies within ``radius_nm``."""
    if len(locs) < 2:
        return np.zeros(0)
    # One tree for all frames: the frame number as a third coordinate, spaced far beyond the radius, so
    # that a query at (x, y, t + 1) finds only localizations of frame t + 1.
    spacing = 4.0 * radius_nm + 1.0
    frame = locs.frame.astype(np.float64)
    tree = cKDTree(np.stack([locs.x_nm, locs.y_nm, frame * spacing], axis=1))
    query = np.stack([locs.x_nm, locs.y_nm, (frame + 1.0) * spacing], axis=1)
    distance, _ = tree.query(query, k=1, distance_upper_bound=radius_nm)
    return distance[np.isfinite(distance)]


def _fit_rayleigh_and_uniform(d: np.ndarray, radius_nm: float) -> tuple[float, float]:
    """Maximum-likelihood σ (and its standard error from the observed information) of the mixture
    ``w · Rayleigh(σ√2) + (1 − w) · 2d/R²`` truncated at ``R``."""
    r2 = radius_nm**2

    def nll(theta: np.ndarray) -> float:
        sigma, w = math.exp(theta[0]), 1.0 / (1.0 + math.exp(-theta[1]))
        s2 = 4.0 * sigma * sigma
        near = d / (0.5 * s2) * np.exp(-d * d / s2) / -math.expm1(-r2 / s2)
        return -float(np.sum(np.log(w * near + (1.0 - w) * 2.0 * d / r2 + 1e-300)))

    start = np.array([math.log(max(float(np.median(d)) / 1.8, 1.0)), 1.0])
    fit = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-6})
    sigma = math.exp(fit.x[0])
    if not fit.success or not 0.5 < sigma < radius_nm / 3.0:
        return math.nan, math.nan
    # Standard error of log σ from a finite-difference second derivative (the other parameter at its fit)
    h = 1e-3
    curvature = (nll(fit.x + [h, 0]) - 2.0 * nll(fit.x) + nll(fit.x - [h, 0])) / (h * h)
    se_log = 1.0 / math.sqrt(curvature) if curvature > 0 else math.nan
    return sigma, sigma * se_log


def table_precision(locs: Localizations) -> Precision | None:
    """Root mean square of the fitter's ``uncertainty_nm`` column (see the module doc); ``None`` when the
    table has none."""
    u = np.asarray(locs.uncertainty_nm, np.float64)
    u = u[np.isfinite(u) & (u > 0)]
    if u.size == 0:
        return None
    rms = float(np.sqrt(np.mean(u * u)))
    # standard error of the RMS from that of the mean square (delta method)
    se = float(np.std(u * u, ddof=1) / math.sqrt(u.size) / (2.0 * rms)) if u.size > 1 else math.nan
    return Precision(rms, se, f"RMS of the table's uncertainty column ({u.size} localizations)", int(u.size))


def histogram_image(locs: Localizations, pixel_size_nm: float) -> np.ndarray:
    """Localizations per pixel (float64 holding integer counts) on a grid of ``pixel_size_nm`` from the
    origin (the ImageJ/ThunderSTORM corner convention) to the last localization."""
    x, y = locs.x_nm / pixel_size_nm, locs.y_nm / pixel_size_nm
    keep = (x >= 0) & (y >= 0)
    height = math.floor(float(y[keep].max())) + 1 if keep.any() else 1
    width = math.floor(float(x[keep].max())) + 1 if keep.any() else 1
    rows, cols = np.floor(y[keep]).astype(np.int64), np.floor(x[keep]).astype(np.int64)
    counts = np.bincount(rows * width + cols, minlength=height * width)
    return counts.reshape(height, width).astype(np.float64)
