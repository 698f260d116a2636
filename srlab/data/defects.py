"""Pixels that do not measure the specimen: hot pixels, fill regions, a clipped floor.

Images from another lab are rarely as a simulator writes them. Three things in them break a
photon-transfer fit, a spectrum and spot fits outright (measured on srlab's own simulated confocal
images, FWHM 214 nm, gain 1.97 ADU/photon): 20 hot pixels per 256² image made calibrate read a
PSF FWHM of 8 nm (single-pixel "spots") and left no decorrelation peak; a zero border on a fifth of
each image (registered, rotated or stitched images are padded so) gave a FWHM of 13 nm and a gain of
0.97. This module finds them so that :func:`srlab.calibration.load_raw` and
:func:`srlab.calibration.measure` can measure the rest, and so that a prediction (and training on the
user's own LR images) sees a padded or defective image as a clean one (:func:`clean_channel`; a zero
border moved a network's normalized background from 0 to 0.4):

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
  neighbours are missing: a structure cut by the border can look as sharp as a defect). Hot pixels are
  replaced by the (lower) median of their 8 neighbours — what a camera's defect correction and Fiji's
  *Remove Outliers* do — before anything is measured (a spectrum needs every pixel). Without a noise
  model (a prediction's input) :func:`spikes` asks for an excess of three normalization ranges instead;
  where more than 0.1 % of the pixels are hot they set that range themselves (the 99.9th percentile is
  one of them) and none is found, so :func:`clean_channel` then judges the image with the noise line
  fitted to the image itself (:func:`self_judged_hot_pixels`); in an SMLM stack
  :func:`persistent_hot_pixels` judges the per-pixel median frame.
* **Fill regions** — the image's lowest value held exactly over at least a
  :data:`FILL_BLOCK_PX`-square block, and never reached by the rest of the image (fewer than
  :data:`FILL_OUTSIDE_FRACTION` of its other pixels): a constant the detector's noise cannot write,
  the padding of registration, rotation or stitching, or a mask applied afterwards. A photon counter's
  empty areas are also exactly zero, but so is, at a few photons of background, the space between its
  structures: they stay (and cost a photon-transfer fit nothing: variance 0 at mean 0 is on its line).
  Where the rest of such an image never reads zero (a bright background everywhere else), its empty
  area is taken for a fill — measured around, and kept at zero by a prediction, which loses nothing.
  Where it does read zero, the whole blocks of zeros alone are a fill if a counter would not write one
  by chance (:data:`FILL_CHANCE`) at the share of zeros of the densest window next to them: a
  registration's zero border next to ~1 photon/px of background (37 % zeros) is; a cell-free area at
  almost no background (the windows next to its chance blocks nearly all zeros too) is not. (Before,
  such a border was never a fill: its zeros became the darkest level, and the background read 0.)
  The image is measured on the largest axis-aligned rectangle free of them (grown by
  :data:`FILL_MARGIN_PX` to leave out interpolated edges): a spectrum needs a rectangle.
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
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from srlab.optics.psf import FWHM_PER_SIGMA

if TYPE_CHECKING:  # srlab.data.normalize imports torch: calibrate does not need it to start
    from srlab.data.normalize import IntensityScale

#: The least ratio of a hot pixel's signal above the local background to its second-brightest
#: neighbour's ...
HOT_RATIO = 4.0
#: ... and its margin over what a centred PSF of the smallest expected FWHM gives (:func:`peak_to_neighbour`).
HOT_MARGIN = 1.5
#: ... and the pixel exceeds that neighbour by this many noise standard deviations at its own level.
HOT_Z = 6.0
#: Hot pixels are judged against a PSF this share of the modality's FWHM (a lower bound: a real PSF is
#: rarely sharper than the textbook's, a calibrated STED's depletion can be stronger).
HOT_PIXEL_FWHM_FRACTION = 0.7
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
#: Where the detector writes the fill value too (a photon counter's zeros), whole blocks of it are a
#: fill when the detector would write one by chance less often than this, per image, at the share of
#: that value in the densest block-sized window next to them (:func:`fill_mask`).
FILL_CHANCE = 1e-3
#: A floor counts as clipped when at least this share of the pixels sit at the lowest value, more than
#: :data:`CLIPPED_SPIKE` times as many as at any of the next three grey levels, which hold counts within
#: a factor :data:`CLIPPED_FLAT` of each other.
CLIPPED_FRACTION = 0.01
CLIPPED_SPIKE = 2.0
CLIPPED_FLAT = 2.0

# the 8 neighbours, as (dy, dx)
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


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
    padded = np.pad(x, 1, mode="reflect")
    # Sorting the 8 neighbours of every pixel cost most of the time; only pixels above a lower bound of
    # their second-brightest neighbour by the noise margin can pass, so the rule is judged on those. The
    # brightest of the 4 edge neighbours and the brightest of the 4 corners are two of the 8: the
    # second-brightest is at least the smaller of them.
    h, w = x.shape
    edges = np.maximum.reduce([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _NEIGHBOURS if dy * dx == 0])
    corners = np.maximum.reduce([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _NEIGHBOURS if dy * dx])
    sigma = np.sqrt(np.maximum(np.asarray(noise_variance(x), np.float64), 1e-12))
    rows, cols = np.nonzero(x - np.minimum(edges, corners) > HOT_Z * sigma)
    return _judged(x, rows, cols, HOT_Z * sigma[rows, cols], min_fwhm_px)


def _judged(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, min_excess: np.ndarray | float,
            min_fwhm_px: float) -> np.ndarray:
    """The mask of the candidate pixels ``(rows, cols)`` of ``x`` that :func:`_stands_out` flags."""
    mask = np.zeros(x.shape, bool)
    if rows.size == 0:
        return mask
    border = (rows == 0) | (cols == 0) | (rows == x.shape[0] - 1) | (cols == x.shape[1] - 1)
    flag = _stands_out(np.asarray(x[rows, cols], np.float64), np.sort(_neighbour_values(x, rows, cols), axis=0),
                       border, min_excess, min_fwhm_px)
    mask[rows[flag], cols[flag]] = True
    return mask


def _stands_out(value: np.ndarray, neighbours: np.ndarray, border: np.ndarray, min_excess: np.ndarray | float,
                min_fwhm_px: float) -> np.ndarray:
    """The hot-pixel rule (module doc) for pixels of ``value`` with their 8 ``neighbours`` sorted along
    axis 0: above the second-brightest by more than ``min_excess``, and above the darkest by more than the
    PSF ratio (:data:`HOT_BORDER_FACTOR` times it on the ``border``) times the second-brightest's excess."""
    second, local = neighbours[-2], neighbours[0]
    ratio = max(HOT_RATIO, HOT_MARGIN * peak_to_neighbour(min_fwhm_px))
    ratios = np.where(border, HOT_BORDER_FACTOR * ratio, ratio)
    return (value - second > min_excess) & (value - local > ratios * (second - local))


#: The FWHM (px) :func:`spikes` assumes: about the steepest a microscope image is sampled at (a 10×
#: objective on a 6.5 µm camera pixel).
SPIKE_FWHM_PX = 1.0
#: :func:`spikes` wants the excess over the second-brightest neighbour above this many times the range:
#: with no noise model, a photon-poor image's lone count (6 photons among zeros, a normalization range
#: of 5) must not pass for a defect.
SPIKE_RANGES = 3.0


def spikes(image: np.ndarray, *, above: float, span: float, min_fwhm_px: float = SPIKE_FWHM_PX) -> np.ndarray:
    """Hot pixels of ``image`` without a noise model, as :func:`hot_pixels` judges them with the excess
    over the second-brightest neighbour required to be more than :data:`SPIKE_RANGES` × ``span`` (a
    prediction's normalization range: a jump no image in training had) instead of noise σ, among the
    pixels above ``above`` (its high percentile: only those are looked at, so a frame costs little). ``min_fwhm_px``: as in
    :func:`hot_pixels`, by default :data:`SPIKE_FWHM_PX` (no modality known)."""
    x = np.asarray(image)
    rows, cols = np.nonzero(x > above)
    return _judged(x, rows, cols, SPIKE_RANGES * span, min_fwhm_px)


#: Frames of a stack whose per-pixel median :func:`persistent_hot_pixels` judges (evenly spaced).
PERSISTENT_FRAMES = 200


def persistent_hot_pixels(stack: np.ndarray) -> np.ndarray:
    """``(H, W)`` mask of the pixels hot in a ``(T, H, W)`` stack of a blinking specimen (SMLM): the
    per-pixel median over up to :data:`PERSISTENT_FRAMES` frames holds the background and the structures'
    blurred density, no single emitter (they blink), but a defect that is there in every frame. Judged
    by :func:`hot_pixels` on that median image with a 1-px-FWHM bound (an SMLM PSF is wider) and a
    constant noise σ from the MAD of its 3×3-median residuals."""
    frames = np.asarray(stack)
    step = max(1, frames.shape[0] // PERSISTENT_FRAMES)
    reference = np.median(np.asarray(frames[::step][:PERSISTENT_FRAMES], np.float64), axis=0)
    residual = reference - ndimage.median_filter(reference, size=3, mode="reflect")
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    return hot_pixels(reference, lambda level: np.full(np.shape(level), max(sigma, 1e-6) ** 2), min_fwhm_px=1.0)


def replace_in_frames(stack: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``stack`` ``(T, H, W)`` (float, changed in place) with the pixels of ``mask`` ``(H, W)`` replaced in
    every frame by that frame's lower median of their 8 neighbours (as :func:`replace_by_neighbour_median`)."""
    rows, cols = np.nonzero(mask)
    for t in range(stack.shape[0]):
        stack[t, rows, cols] = np.sort(_neighbour_values(stack[t], rows, cols), axis=0)[3]
    return stack


#: Images above this many pixels (per channel) are not searched for a fill region or hot pixels by
#: :func:`clean_channel` (that needs masks of the whole image in memory).
DEFECT_CHECK_MAX_PIXELS = 64_000_000
#: :func:`clean_channel` also judges an image with its own noise line when more than this share of its
#: pixels above the high percentile stand alone (above their second-brightest neighbour by over half
#: their height above the low percentile) and :func:`spikes` left them: the percentile is set by
#: defects. (Hot pixels at 0.2–3 % of a camera image: all of the top; photon-poor counter images,
#: whose top is lone counts: up to 0.6, and the noise line finds nothing there.)
ISOLATED_TOP_SHARE = 0.5
#: The noise line of :func:`self_judged_hot_pixels` is fitted on at most this many pixels (a central
#: crop: one camera, one line).
SELF_NOISE_MAX_PIXELS = 2048 * 2048
#: :func:`self_judged_hot_pixels` judges the image in bands of this many rows (with a row of context on
#: each side: exactly the whole-image result), so that its masks stay small on large frames.
SELF_JUDGED_BAND_ROWS = 1024


def _isolated_top_left(x: np.ndarray, scale: IntensityScale, hot: np.ndarray) -> bool:
    """Whether more than :data:`ISOLATED_TOP_SHARE` of the pixels of ``x`` above ``scale.high`` stand
    alone and are not in ``hot`` (see :data:`ISOLATED_TOP_SHARE`)."""
    rows, cols = np.nonzero(x > scale.high)
    if rows.size == 0:
        return False
    value = np.asarray(x[rows, cols], np.float64)
    second = np.sort(_neighbour_values(x, rows, cols), axis=0)[-2]
    alone = (value - second > 0.5 * (value - scale.low)) & ~hot[rows, cols]
    return bool(alone.sum() > ISOLATED_TOP_SHARE * rows.size)


def self_judged_hot_pixels(image: np.ndarray) -> np.ndarray:
    """Hot pixels of a raw image by :func:`hot_pixels`, with the Poisson–Gaussian line fitted to the image
    itself (:func:`srlab.calibration.noise.fit_noise`, on a central crop of at most
    :data:`SELF_NOISE_MAX_PIXELS`) and the steepest PSF a microscope samples (:data:`SPIKE_FWHM_PX`).
    Nothing where the line cannot be fitted (too few pixels, or noise that does not grow with the
    signal: not raw counts)."""
    from srlab.calibration.noise import fit_noise  # the camera's noise line, measured as calibrate does
    from srlab.errors import SrlabError

    x = np.asarray(image)
    h, w = x.shape
    side = math.isqrt(SELF_NOISE_MAX_PIXELS)
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    try:
        noise = fit_noise([x[top:top + side, left:left + side]], leak_check=False)
    except (SrlabError, np.linalg.LinAlgError):
        return np.zeros(x.shape, bool)
    if not noise.gain_adu_per_photon > 0:
        return np.zeros(x.shape, bool)
    mask = np.zeros(x.shape, bool)
    for r0 in range(0, h, SELF_JUDGED_BAND_ROWS):
        r1 = min(h, r0 + SELF_JUDGED_BAND_ROWS)
        lo, hi = max(0, r0 - 1), min(h, r1 + 1)  # a row of context: the band's pixels keep their neighbours
        band = hot_pixels(x[lo:hi], noise.variance, min_fwhm_px=SPIKE_FWHM_PX)
        mask[r0:r1] = band[r0 - lo:r0 - lo + (r1 - r0)]
    return mask


@dataclass(frozen=True)
class CleanChannel:
    """One channel ready for percentile normalization (:func:`clean_channel`): ``image`` (the input
    itself when nothing was found, else a float32 copy with its hot pixels repaired and its fill at the
    low level), the scale (percentiles of the pixels outside the fill), the fill (value, mask) or
    ``None``, how many hot pixels were repaired, and their mask (``None`` when there are none)."""

    image: np.ndarray
    scale: IntensityScale
    fill: tuple[float, np.ndarray] | None
    hot_pixels: int
    hot: np.ndarray | None = None


def clean_channel(channel: np.ndarray, low: float, high: float) -> CleanChannel:
    """A 2D image of a user's (prediction input, ``data.real_lr``) prepared for normalization by its
    ``low``/``high`` percentiles: its fill region (:func:`fill_mask`) left out of the percentiles and set
    to the low level, its extreme hot pixels (:func:`spikes`; where they are too many for that, more than
    0.1 %, those :func:`self_judged_hot_pixels` finds) replaced by their neighbours' median — so that what
    a network sees of a padded or defective image is what it sees of a clean one. Images above
    :data:`DEFECT_CHECK_MAX_PIXELS` are only normalized."""
    from srlab.data.normalize import percentile_scale

    if channel.size > DEFECT_CHECK_MAX_PIXELS:
        return CleanChannel(channel, percentile_scale(channel, low, high), None, 0)
    fill = fill_mask(channel)
    if fill is not None and fill[1].all():
        fill = None  # a constant image (a blank frame of a stack) is all "fill": nothing is left to normalize by
    inside = None if fill is None else ~fill[1]
    scale = percentile_scale(channel if inside is None else channel[inside], low, high)
    hot = spikes(channel, above=scale.high, span=scale.span)
    if _isolated_top_left(channel, scale, hot):
        hot |= self_judged_hot_pixels(channel)
    count = int(hot.sum())
    if fill is None and not count:
        return CleanChannel(channel, scale, None, 0)
    image = replace_by_neighbour_median(channel, hot).astype(np.float32) if count else np.array(channel, np.float32)
    if count:
        scale = percentile_scale(image if inside is None else image[inside], low, high)
    if fill is not None:
        image[fill[1]] = scale.low
    return CleanChannel(image, scale, fill, count, hot if count else None)


def replace_by_neighbour_median(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the pixels of ``mask`` replaced by the median of their 8 neighbours (the lower of
    the two middle values: a value of the image, so integer counts stay integers)."""
    x = np.asarray(image, np.float64)
    if not mask.any():
        return x
    rows, cols = np.nonzero(mask)
    out = x.copy()
    out[rows, cols] = np.sort(_neighbour_values(x, rows, cols), axis=0)[3]
    return out


def _neighbour_values(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(8, n)`` float64 values of the 8 neighbours of the pixels ``(rows, cols)`` of ``x``, mirrored at
    the border as ``np.pad(mode="reflect")`` does — gathered, so a memory-mapped frame is not copied."""
    def mirror(index: np.ndarray, n: int) -> np.ndarray:
        index = np.abs(index)
        return np.where(index > n - 1, 2 * (n - 1) - index, index)

    h, w = x.shape
    return np.stack([np.asarray(x[mirror(rows + dy, h), mirror(cols + dx, w)], np.float64)
                     for dy, dx in _NEIGHBOURS])


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


def fill_mask(image: np.ndarray) -> tuple[float, np.ndarray] | None:
    """The value and the mask of ``image``'s fill region (see the module doc; without the margin), or
    ``None`` when it has none. Cheap when there is none: row bands are searched for a whole block at
    the lowest value (a memory-mapped frame being predicted is never held whole as numbers or masks)."""
    x = np.asarray(image)
    if min(x.shape) < FILL_BLOCK_PX:
        return None
    value = x.min()
    corners: list[tuple[np.ndarray, np.ndarray]] = []
    band = 256
    for y0 in range(0, x.shape[0] - FILL_BLOCK_PX + 1, band):
        at_value = x[y0:y0 + band + FILL_BLOCK_PX - 1] == value
        if int(np.count_nonzero(at_value)) < FILL_BLOCK_PX**2:
            continue
        rows, cols = np.nonzero(_runs(_runs(at_value, 1), 0))  # top-left corners of whole blocks
        corners.append((rows + y0, cols))
    if not any(r.size for r, _ in corners):
        return None
    at_value = x == value
    # the connected pieces of that value that hold a whole block: the fill with its jagged edges
    labels, _ = ndimage.label(at_value, structure=np.ones((3, 3), bool))
    rows = np.concatenate([r for r, _ in corners])
    cols = np.concatenate([c for _, c in corners])
    fill = np.isin(labels, np.unique(labels[rows, cols]))
    outside = ~fill
    if outside.any() and float(np.mean(at_value[outside])) >= FILL_OUTSIDE_FRACTION:
        # the detector writes this value too (a photon counter's dark areas), and its zeros may join the
        # fill into one piece: the fill is then the whole blocks alone, if the detector would not write
        # one by chance at the share of that value around them
        return _counter_fill(at_value, rows, cols, float(value))
    return float(value), fill


def _counter_fill(at_value: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  value: float) -> tuple[float, np.ndarray] | None:
    """The union of the whole :data:`FILL_BLOCK_PX` blocks at ``value`` (top-left corners ``rows``,
    ``cols``) as a fill, when a detector writing that value independently per pixel, as often as it does
    in the densest block-sized window just outside them, would write such a block less often than
    :data:`FILL_CHANCE` per image; else ``None``. The densest window, not the mean around them: an
    empty area of a photon counter at almost no background holds whole blocks by chance, and next to
    them the same near-zero background (which a mean over the band, reaching brighter content, hides)."""
    shape = at_value.shape
    # judged on the blocks' bounding box and the band around it (a border's fill is a thin strip)
    reach = 2 * FILL_BLOCK_PX
    top, left = max(int(rows.min()) - reach, 0), max(int(cols.min()) - reach, 0)
    bottom = min(int(rows.max()) + FILL_BLOCK_PX + reach, at_value.shape[0])
    right = min(int(cols.max()) + FILL_BLOCK_PX + reach, at_value.shape[1])
    window_of = (slice(top, bottom), slice(left, right))
    corners = np.zeros((bottom - top, right - left), bool)
    corners[rows - top, cols - left] = True
    # a pixel is covered when a block's top-left corner lies up to FILL_BLOCK_PX - 1 above and left of it
    cover = ndimage.maximum_filter(corners, size=FILL_BLOCK_PX, origin=FILL_BLOCK_PX // 2 - 1, mode="constant")
    at_value = at_value[window_of]
    free = ~cover
    band = ndimage.maximum_filter(cover, size=2 * FILL_BLOCK_PX + 1, mode="constant") & free
    free_share = ndimage.uniform_filter(free.astype(np.float32), FILL_BLOCK_PX, mode="constant")
    value_share = ndimage.uniform_filter((at_value & free).astype(np.float32), FILL_BLOCK_PX, mode="constant")
    windows = band & (free_share >= 0.5)  # windows mostly outside the blocks
    if not windows.any():
        return None  # nothing around them to judge by: the whole image
    share = float(np.max(value_share[windows] / free_share[windows]))
    positions = (shape[0] - FILL_BLOCK_PX + 1) * (shape[1] - FILL_BLOCK_PX + 1)
    if share > 0 and FILL_BLOCK_PX**2 * math.log(min(share, 1.0)) + math.log(positions) >= math.log(FILL_CHANCE):
        return None
    fill = np.zeros(shape, bool)
    fill[window_of] = cover
    return value, fill


def _runs(mask: np.ndarray, axis: int) -> np.ndarray:
    """Where ``mask`` starts a run of :data:`FILL_BLOCK_PX` true pixels along ``axis``: runs of 2, 4, 8,
    16 by doubling, each a boolean AND of two shifted views."""
    length = 1
    out = mask
    while length < FILL_BLOCK_PX:
        step = min(length, FILL_BLOCK_PX - length)
        n = out.shape[axis] - step
        if n <= 0:
            return np.zeros((0, 0), bool)
        head = (slice(None),) * axis + (slice(0, n),)
        tail = (slice(None),) * axis + (slice(step, step + n),)
        out = out[head] & out[tail]
        length += step
    return out


def fill_region(image: np.ndarray) -> Fill | None:
    """The fill region of ``image`` (see the module doc) and the rectangle to measure instead, or
    ``None`` when it has none."""
    found = fill_mask(image)
    return None if found is None else fill_of(*found)


def fill_of(value: float, fill: np.ndarray) -> Fill:
    """The :class:`Fill` of a fill mask (:func:`fill_mask`): with its margin of :data:`FILL_MARGIN_PX`."""
    mask = ndimage.binary_dilation(fill, iterations=FILL_MARGIN_PX)
    return Fill(value, float(mask.mean()), largest_rectangle(~mask))


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
