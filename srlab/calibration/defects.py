"""Pixels that do not measure the specimen: hot pixels, fill regions, a clipped floor.

Images from another lab are rarely as a simulator writes them. Three things in them break a
photon-transfer fit, a spectrum and spot fits outright (measured on srlab's own simulated confocal
images, FWHM 214 nm, gain 1.97 ADU/photon): 20 hot pixels per 256² image made calibrate read a
PSF FWHM of 8 nm (single-pixel "spots") and left no decorrelation peak; a zero border on a fifth of
each image (registered, rotated or stitched images are padded so) gave a FWHM of 13 nm and a gain of
0.97. This module finds them so that :func:`srlab.calibration.load_raw` and
:func:`srlab.calibration.measure` can measure the rest:

* **Hot pixels** — a pixel that stands far above all but at most one of its 8 neighbours. A PSF
  cannot do that: centred on a pixel, a pixel-integrated Gaussian of FWHM ``w`` px puts its peak
  pixel's signal (above the local background) only :func:`peak_to_neighbour` (``w``) times its
  edge neighbours' (2.7 at 1.5 px, 1.85 at 2 px; its diagonal neighbours are lower, so measured from the
  darkest neighbour the ratio is lower still). A pixel above :data:`HOT_MARGIN` times that ratio
  (at least :data:`HOT_RATIO`) over its second-brightest neighbour, by more than :data:`HOT_Z` noise
  standard deviations at its own level (the fitted Poisson–Gaussian line), is a detector defect (or a
  cosmic ray). ``w`` is the caller's lower bound on the FWHM (calibrate: 0.7 × the modality preset's
  at the images' pixel size), so an undersampled acquisition (a 10× objective on a 6.5 µm pixel:
  FWHM ≈ 1 px) only loses the weaker hot pixels. The second neighbour, not the first, so that pairs
  of adjacent hot pixels are found too; the local background is the darkest neighbour (a textured,
  undersampled field has no background nearby: the darkest neighbour is the level the pixel stands
  out from); the image's outermost pixels need :data:`HOT_BORDER_FACTOR` times the ratio (half their
  neighbours are missing: a structure cut by the border can look as sharp as a defect). Hot pixels are replaced by the median of
  their 8 neighbours — what a camera's defect correction and Fiji's *Remove Outliers* do — before
  anything is measured (a spectrum needs every pixel).
* **Fill regions** — the image's lowest value held exactly over at least a
  :data:`FILL_BLOCK_PX`-square block, and never reached by the rest of the image (fewer than
  :data:`FILL_OUTSIDE_FRACTION` of its other pixels): a constant the detector's noise cannot write,
  the padding of registration, rotation or stitching, or a mask applied afterwards. A photon counter's
  genuinely dark areas are also exactly zero, but there the rest of the image reaches zero too, so
  they stay (and cost a photon-transfer fit nothing: variance 0 at mean 0 is on its line). The image
  is measured on the largest axis-aligned rectangle free of them (grown by :data:`FILL_MARGIN_PX` to
  leave out interpolated edges): a spectrum needs a rectangle.
* **A clipped floor** — integer images with many pixels exactly at their lowest value and a flat
  histogram just above it: the lower part of the noise was cut off (background subtraction, an offset
  removed, a camera offset set to 0). A photon counter's dark pixels also pile up at zero, but above
  zero its counts fall off as a Poisson distribution does (a background of μ photons has
  P(2)/P(1) = μ/2, or no counts between its levels at a gain above 1), not flat. Clipping biases the
  variance of dark pixels low (Foi et al. 2008 model it; srlab does not), so it is reported, not
  repaired.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from srlab.optics.psf import FWHM_PER_SIGMA

#: The least ratio of a hot pixel's signal above the local background to its second-brightest
#: neighbour's ...
HOT_RATIO = 4.0
#: ... and its margin over what a centred PSF of the smallest expected FWHM gives (:func:`peak_to_neighbour`).
HOT_MARGIN = 1.5
#: ... and the pixel exceeds that neighbour by this many noise standard deviations at its own level.
HOT_Z = 6.0
#: The outermost pixels have half their neighbours outside the image (mirrored here): a structure cut
#: by the border can look as sharp as a defect there, so they need this many times the ratio.
HOT_BORDER_FACTOR = 4.0
#: A fill region holds one value over at least this square (px).
FILL_BLOCK_PX = 16
#: The fill value counts as unreachable by the detector when fewer than this share of the image's
#: other pixels take it.
FILL_OUTSIDE_FRACTION = 1e-3
#: Pixels next to a fill region left out as well (interpolation blends the fill into them).
FILL_MARGIN_PX = 2
#: A floor counts as clipped when at least this share of the pixels sit at the lowest value, more than
#: :data:`CLIPPED_SPIKE` times as many as at any of the next three grey levels, which hold counts within
#: a factor :data:`CLIPPED_FLAT` of each other.
CLIPPED_FRACTION = 0.01
CLIPPED_SPIKE = 2.0
CLIPPED_FLAT = 2.0

# the 8 neighbours, as (dy, dx)
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(padded: np.ndarray, shape: tuple[int, int], offsets: list[tuple[int, int]], pad: int) -> np.ndarray:
    h, w = shape
    return np.stack([padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w] for dy, dx in offsets])


def peak_to_neighbour(fwhm_px: float) -> float:
    """Signal of the peak pixel over its edge neighbour's for a pixel-integrated Gaussian PSF of
    ``fwhm_px`` centred on a pixel (the steepest a sampled PSF gets)."""
    from scipy.special import erf

    scale = math.sqrt(2.0) * max(fwhm_px, 1e-3) / FWHM_PER_SIGMA
    centre = erf(0.5 / scale)
    edge = 0.5 * (erf(1.5 / scale) - erf(0.5 / scale))
    return float(centre / edge) if edge > 0 else math.inf


def hot_pixels(image: np.ndarray, noise_variance, *, min_fwhm_px: float) -> np.ndarray:
    """Boolean mask of the hot pixels of ``image`` (ADU); ``noise_variance(level_adu)`` is the fitted
    noise variance at a level (:meth:`srlab.calibration.noise.NoiseFit.variance`), ``min_fwhm_px`` a
    lower bound on the PSF's FWHM in pixels. See the module doc."""
    x = np.asarray(image, np.float64)
    ratio = max(HOT_RATIO, HOT_MARGIN * peak_to_neighbour(min_fwhm_px))
    padded = np.pad(x, 1, mode="reflect")
    neighbours = np.sort(_shifted(padded, x.shape, _NEIGHBOURS, 1), axis=0)
    second = neighbours[-2]
    sigma = np.sqrt(np.maximum(np.asarray(noise_variance(x), np.float64), 1e-12))
    candidate = x - second > HOT_Z * sigma
    ratios = np.full(x.shape, ratio)
    ratios[[0, -1], :] = ratios[:, [0, -1]] = HOT_BORDER_FACTOR * ratio
    local = neighbours[0]
    return candidate & (x - local > ratios * (second - local))


def replace_by_neighbour_median(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the pixels of ``mask`` replaced by the median of their 8 neighbours (the lower of
    the two middle values: a value of the image, so integer counts stay integers)."""
    x = np.asarray(image, np.float64)
    if not mask.any():
        return x
    padded = np.pad(x, 1, mode="reflect")
    rows, cols = np.nonzero(mask)
    values = np.stack([padded[rows + 1 + dy, cols + 1 + dx] for dy, dx in _NEIGHBOURS])
    out = x.copy()
    out[rows, cols] = np.sort(values, axis=0)[3]
    return out


@dataclass(frozen=True)
class Fill:
    """A fill region found in one image: its value, the share of the image it covers (with its margin),
    and the rectangle ``(top, bottom, left, right)`` (half-open) measured instead."""

    value: float
    fraction: float
    rectangle: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.rectangle
        return bottom - top, right - left


def fill_region(image: np.ndarray) -> Fill | None:
    """The fill region of ``image`` (see the module doc), or ``None`` when it has none."""
    x = np.asarray(image)
    value = x.min()
    at_value = x == value
    block = np.ones((FILL_BLOCK_PX, FILL_BLOCK_PX), bool)
    cores = ndimage.binary_erosion(at_value, block)
    if not cores.any():
        return None
    # the connected pieces of that value that hold a whole block: the fill with its jagged edges
    labels, _ = ndimage.label(at_value, structure=np.ones((3, 3), bool))
    fill = np.isin(labels, np.unique(labels[cores]))
    outside = ~fill
    if outside.any() and float(np.mean(at_value[outside])) >= FILL_OUTSIDE_FRACTION:
        return None  # the detector writes this value too (a photon counter's dark areas)
    mask = ndimage.binary_dilation(fill, iterations=FILL_MARGIN_PX)
    return Fill(float(value), float(mask.mean()), largest_rectangle(~mask))


def largest_rectangle(valid: np.ndarray) -> tuple[int, int, int, int]:
    """The largest axis-aligned rectangle of ``valid`` pixels, as ``(top, bottom, left, right)``
    (half-open; all zero when there is none): the largest rectangle under each row's histogram of
    valid runs, with a stack (linear time per row)."""
    h, w = valid.shape
    heights = np.zeros(w + 1, np.int64)  # a zero sentinel at the end flushes the stack
    best, where = 0, (0, 0, 0, 0)
    for row in range(h):
        heights[:w] = np.where(valid[row], heights[:w] + 1, 0)
        stack: list[int] = []
        for col in range(w + 1):
            while stack and heights[stack[-1]] >= heights[col]:
                height = int(heights[stack.pop()])
                left = stack[-1] + 1 if stack else 0
                if height * (col - left) > best:
                    best, where = height * (col - left), (row + 1 - height, row + 1, left, col)
            stack.append(col)
    return where


def clipped_floor(image: np.ndarray) -> float:
    """The share of ``image``'s pixels at its lowest value when that floor is clipped (see the module
    doc), else 0. Only integer images are judged (a clipped float image is not told from a smooth one)."""
    x = np.asarray(image)
    if not np.array_equal(x, np.round(x)):
        return 0.0
    floor = float(x.min())
    counts = np.array([np.count_nonzero(x == floor + k) for k in range(4)], np.float64)
    share = counts[0] / x.size
    above = counts[1:]
    if share < CLIPPED_FRACTION or above.min() == 0 or counts[0] < CLIPPED_SPIKE * above.max():
        return 0.0
    return share if above.max() <= CLIPPED_FLAT * above.min() else 0.0
