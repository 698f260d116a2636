"""The camera's noise model from the images themselves: gain, offset and read noise.

Model (:class:`srlab.optics.camera.Camera`, QE folded into "detected photons"): a pixel records
``ADU = g·Poisson(λ) + offset + N(0, σ²)``, so its variance is a straight line in its mean,
``v(μ) = g·(μ − offset) + σ²`` — the photon-transfer curve, read off one image as in Foi, Trimeche,
Katkovnik & Egiazarian, "Practical Poissonian-Gaussian noise modeling and fitting for single-image
raw-data", IEEE Trans. Image Process. 17(10), 2008 (``σ²(y) = a·y + b``).

What is followed: local expectations and local noise levels from a smooth/detail decomposition, level
sets of the expectation (bins of equal pixel count), a robust (MAD) estimate of the noise in each bin,
and a straight-line fit to the (mean, variance) points.

What is adapted: the detail filter is ``h = [1,-2,1]⊗[1,-2,1]/6`` (‖h‖ = 1: it passes white noise at
its variance and removes every locally linear — and, per axis, quadratic — signal), not the finest
wavelet band; the local mean is a 5×5 box, whose covariance with ``h`` is zero on locally uniform
noise (Σh = 0), so sorting pixels by it does not bias their detail values (the 3×3 mean would: its
correlation with ``h`` is 0.33, which shrinks the conditional variance by 11 %). Instead of Foi's
edge detector, bins are trimmed: a weighted least-squares line, then bins more than 3 standard errors
above it (edges of structures leak into ``h``) are dropped and the line refitted. Rounding to integers
adds 1/12 ADU² (removed when the data are integers). The detail values of integer images lie on a
lattice (1/6 ADU), and a plain MAD lands on it: on photon-poor counts each bin's variance was off by up
to ±10 % depending on where the lattice fell, so the MAD is that of the grouped values
(:func:`_lattice_mad`) — pySTED's STED (≤ 24 photons) read gain 0.961 ± 0.051 for a true 1 with the plain
MAD, 0.995 ± 0.015 with it.

Photon counts from zero (integer images with at least :data:`ZERO_BASED_SHARE` of their pixels at 0, not
clipped there, no offset given other than 0: a counting detector) are binned the same way, but each bin's
variance is the sample variance of its detail values and its level the mean of their ``h²``-weighted
levels (:func:`detail_levels`), for which ``var = g·level`` holds exactly whatever the structure in the
window. The MAD is consistent for Gaussian noise only: a few photons per pixel are a peaked distribution
(to first order the MAD's variance of flat counts through ``h`` is ``1 − 0.053/photons`` of theirs), and a bin of a
structured image mixes pixels of different noise levels (a scale mixture, peaked too), while the local
mean that sorts them is not the level their detail variance belongs to near sharp spots (srlab's STED:
bins at 2.8 photons of local mean hold pixels of 2.57 photons of ``h²``-weighted level). The gain of
three 448² images of srlab's STED (0.5 photons/px of background) read 0.908–0.944 over four seeds with
the plain MAD, 0.930–0.935 with the grouped one, 0.999–1.005 so; pySTED's 1.00 ± 0.009 (HR) and
0.998 ± 0.005 (LR). Cameras keep the MAD: their read noise dilutes the Poisson peak, and the sample
variance gives up its robustness to structure leaking into the detail band (srlab's TIRF preset: gain
+1.6 % with the MAD, +4.0 % with the sample variance, over eight seeds; widefield at 30 photons, the
spread 0.060 → 0.084).

The bins sort pixels by their noisy local mean; on a dim, sparse camera image most bins hold background
pixels split by that noise alone, and the read noise's share of it lies off the line (the shot noise's
does not: the detail shares it). Three sparse 512² images, gain 2 ADU/photon, read noise 1.5 ADU, read
0.86 at 5 photons of peak over 0.5 of background, 1.24 at 15 — where sorted by the noise-free local mean
1.89, 1.96. A camera's line therefore takes a third term for that selection, at the bins' mean local
means (:func:`sort_coupling`, :func:`fit_coupled_line`): 1.88, 1.97 there. Where that term is not
determined (:data:`COUPLING_SIGMAS`: bright or dense images) the plain line stands, as before. There
the structure lies in the top bin or two, which then span the background's level to the peak's: a bin
across which the noise variance changes by more than :data:`SPLIT_VARIANCE_CHANGE` is split by count
(:func:`binned_points` ``split``; srlab's sparse widefield read 1.42–1.96 for 2 over four seeds, 1.86–2.06
split; its presets move by at most 0.5 %).

Clipping (Foi's second contribution) is handled by leaving it out rather than by Foi's clipped-variable
fit: saturated pixels are refused upstream and the bins stop below the image's top 0.5 %; at a clipped
floor (:func:`srlab.data.defects.clipped_floor`: background subtracted or the offset removed, negatives
written as 0) the pixels whose local-mean window holds a floor pixel are left out; the rest of the curve
is the same straight line. Measured on srlab's widefield images (gain 2 ADU/photon, read on the raw
images 1.97) with one level subtracted and clipped: gain 2.05, 2.07, 2.17, 2.21 at 3, 15, 26, 38 % of the
pixels on the floor; left in, the floor's shrunken variances bent the line (0.03 at 20 %). Leaving out
more (a 9×9 window, or levels within 3–4 σ of the floor as well) changed it by < 0.05. Images with
*different* levels subtracted (each its own percentile) have lines of one slope and different
intercepts, which one pooled line does not fit; they are fitted with a level per image
(:data:`LEVEL_CHI2`). On a floor at 0 the darkest level is unclipped with the
line: the mean ``D`` whose clipped normal ``max(0, N(D, v(D)))`` has the darkest level's mean
(:func:`unclipped_level_adu`). It is the offset of such images (below); negative where the floor covers
the darkest areas, so that the block's camera clips at 0 as theirs did.

The line fixes ``g`` and ``b = σ² − g·offset``; one image cannot tell the offset from a uniform
background (both are a constant level). Given ``offset_adu`` (spec sheet or dark frame) the read noise
follows exactly. Integer images with at least :data:`ZERO_BASED_SHARE` of their pixels at exactly 0
count from zero — a photon counter (HyD, APD, SPAD in counting mode: pySTED's detector, most STED and many confocal
set-ups), or a detector clipped at zero — and their offset is 0, not the darkest level: the darkest level
of a photon counter is background photons, and taking it for an offset wrote that background into the
block as an offset plus Gaussian read noise (the shot noise of that background), which a counter does
not have and which, clipped at zero, bends the simulated images' photon-transfer curve (the gain read on
them 13 % low). A counter over more than ~5 photons/px of background leaves under 1 % zeros; its
integer images are still told from a camera's by where the line reaches zero variance,
``−b/g = offset − read²/g``: at 0 ADU for a counter, near the offset for a camera (sCMOS, EMCCD: 90–200
ADU). Within :func:`zero_crossing_tolerance_adu` of 0 (3 standard errors, and at most a misfit of 10 %
of the variance at the darkest level), and the darkest level resolved above it, the offset is 0 as
well. A camera whose offset happens to equal ``read²/g`` passes too; its block then has the same
mean–variance line (its read noise as background shot noise), and the note names ``--offset-adu``. On a
camera's dim, sparse images where the sort's coupling term is kept, its ``σ²`` — the variance that is not
shot noise: read noise² plus the rounding's 1/12 — gives the offset, ``(σ² − 1/12 − b)/g``
(:func:`nonshot_offset_adu`, :data:`NONSHOT_OFFSET_SIGMAS`; three 512² images at 5–60 photons of peak over
0.5–5 of background: within 0.5 ADU of 100 on sparse specimens under 1.5–3 ADU of read noise, 1.1 on
dense structure, 2 ± 3 under 10 ADU, where the darkest level read 0.3–8 ADU high; the read noise within
14 % where the darkest level's bound read up to 2.9× high). Otherwise the darkest level of the images is taken as the offset (zero background
photons there) and the read noise is then an upper bound: it includes the shot noise of that background.
On images clipped at a floor of 0 (checked first: they have zeros too, but not a counter's), that
darkest level is the unclipped one, below 0 (:data:`CLIPPED_FLOOR_OFFSET`).
The data block reproduces the images' mean–variance curve either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from srlab.errors import SrlabError

#: The detail filter: ``[1,-2,1]`` along both axes, unit norm.
_H1 = np.array([1.0, -2.0, 1.0]) / math.sqrt(6.0)
#: Consistency constant of the median absolute deviation for a Gaussian.
_MAD_TO_SIGMA = 1.4826
#: A bin's MAD at most this times its largest detail value is floating-point rounding: 0.
_ROUNDING_MAD = 1e-12
#: Standard error of a MAD-based variance relative to the variance, × √n (Gaussian data: the MAD has
#: 37 % efficiency, the variance of a sample variance is 2σ⁴/n).
_MAD_VARIANCE_SE = math.sqrt(2.0 / 0.3675)


#: The darkest level of an image: this percentile of the image smoothed by a Gaussian of this σ (px), so
#: that single noisy pixels do not decide it.
DARKEST_PERCENTILE = 0.5
DARKEST_SMOOTHING_PX = 2.0
#: Integer images with at least this share of pixels at exactly 0 count from zero (module doc): offset 0.
#: A camera's offset keeps its dark pixels far above zero (fill regions, the other source of zeros, are
#: cut away before the fit); a counter reads 0 in a share e^(−background) of its dark pixels (20 % at
#: pySTED's 1.6 photons/px, whose darkest level, 1.7 ADU, had been taken for an offset). A dead row of a
#: 256-px camera is 0.4 %.
ZERO_BASED_SHARE = 0.01
#: What :class:`NoiseFit` says of an offset taken as 0 for counts from zero.
ZERO_BASED_OFFSET = "counts from zero: integer, >= 1 % of pixels at 0"
#: What :class:`NoiseFit` says of an offset taken as 0 because the noise line vanishes at 0 ADU.
ZERO_CROSSING_OFFSET = "counts from zero: integer, noise line's zero-variance level at 0 ADU"
#: Both ways of telling integer counts from zero (offset 0, the darkest level is background).
COUNTS_FROM_ZERO = (ZERO_BASED_OFFSET, ZERO_CROSSING_OFFSET)
#: Standard errors in :func:`zero_crossing_tolerance_adu`: how near 0 ADU the line's zero-variance
#: level must be (and the darkest level how far above it) for counts from zero without zeros.
ZERO_CROSSING_SE = 3.0
#: The largest share of the variance at the darkest level that taking the offset as 0 may misstate.
ZERO_CROSSING_MISFIT = 0.1
#: Structure that varies within the detail filter's 3×3 (undersampled, or bright and sharp) leaks into
#: every bin's variance, in proportion to the signal, so the line's slope (the gain) reads high with no
#: sign of it in the line itself: on srlab's 10× widefield (PSF FWHM 1.0 px, gain 2) 5.7–6.3 at 300
#: photons, 44–46 at 3000; on widefield (2.8 px) 2.0–2.1 at 300 photons, 2.3–2.4 at 3000. White noise
#: has the same variance through any unit-norm high-pass filter, structure does not: the slope read
#: through the 5 × 5 filter of 4th differences (``_H4``, on every other row and column) is lower where
#: structure leaks — the ratio of the two slopes 1.46–1.78 on 10×, 1.22–1.28 on widefield at 3000
#: photons — and 0.81–1.12 elsewhere (confocal at 20 and 3000 photons, SIM, TIRF, widefield at 30–300;
#: two seeds of four 192² images each). Above this ratio calibrate says so and names ``--e-per-adu`` (a
#: given gain). (Tried here, not adopted: the 4th-difference slope as the estimate — 6–15 % low on SIM and
#: TIRF, still 2× high on 10×; a quadratic term — the leak is not quadratic; weak-texture pixel selection
#: after Liu et al. 2014 — collapsed in a naive iteration.) Noise that is not white (processed images:
#: smoothed, denoised, resampled) reads lower through the 5×5 filter too, and there the gain reads *low*:
#: srlab's widefield test images (gain 2) blurred by a Gaussian of σ 0.5 px, 0.364 (5×5: 0.272); of σ 1 px,
#: 0.0034; interpolated ×2 (bilinear), 0.0026 — one ratio cannot tell the two apart, so the note names
#: both. (A 3×3 median filter reads 0.215 with the two filters agreeing: not caught here, but by
#: :func:`equal_neighbours_ratio`.)
LEAK_RATIO = 1.15
#: Raw pixels have independent noise, so in integer images two neighbours are exactly equal as often —
#: relative to differing by one ADU — as two pixels three apart (:func:`equal_neighbours_ratio`). A median
#: filter makes neighbours share values (each output is one of the input pixels of its window, and
#: neighbouring windows overlap): a 3×3 one, as Fiji's Despeckle, reads 2.1–3.9 on realcheck's foreign
#: images and the 10× pairs' images, frames and dark frames, 2.7–5.4 on srlab's widefield, 1.25–1.6 on its
#: photon-poor (20 photons) confocal and STED, where the raw ones read 0.84–1.10 (single 128–224² images;
#: srlab's 10× preset, with few pairs one ADU apart, 0.2–1.8 within its errors). Gaussian smoothing of σ
#: 0.7 px reads 1.0–1.1 on images of many ADU and 1.2–1.6 on photon-poor ones. Above this ratio, and
#: :data:`EQUAL_NEIGHBOURS_SIGMAS` standard errors above 1, calibrate says that the images are filtered
#: (a fitted gain low, the photons high).
EQUAL_NEIGHBOURS_RATIO = 1.3
EQUAL_NEIGHBOURS_SIGMAS = 3.0
#: Calibrate's images are one camera setting, so their noise lines share one slope. Each image's own
#: slope (:func:`image_gains`) is compared: more than :data:`GAIN_SPREAD` between the extremes and a
#: reduced χ² above :data:`GAIN_CHI2` about their weighted mean, and the images are not one setting of
#: raw counts — rescaled image by image (Fiji's "scale when converting" stretches each to 0–65535), or
#: taken at different gains. srlab's widefield test images stretched so: slopes 136–203 (1.49×), χ² 30;
#: raw images of srlab's presets and of realcheck's foreign simulators: ≤ 1.33×, χ² ≤ 6.5 (four 192²
#: images; ten 1024²: 1.04×, χ² 1.3).
GAIN_SPREAD = 1.3
GAIN_CHI2 = 10.0
#: One camera setting has one offset, so its images' noise lines share their intercept as well as their
#: slope. Images with a level subtracted each (background subtracted image by image: each its own
#: percentile or background-ROI mean), or whose offset drifted between acquisitions, have lines of one
#: slope and different intercepts; pooled, the images' pixels sort into the bins by their level as well as
#: by their signal, and the line's slope reads high — srlab's widefield images (gain 2 ADU/photon) each less
#: its own 5th, 20th, 50th percentile, clipped at 0: 2.40, 2.55, 2.78 on four 192² images, 2.65 on ten
#: 1024² (20th). :func:`common_slope_fit` gives each image its own intercept and all one slope: 2.12,
#: 2.06, 2.07 and 2.15 there. It is used when its intercepts scatter about their weighted mean with a
#: reduced χ² above this; otherwise the pooled line (the same physics, more pixels per bin). Raw images of
#: srlab's presets read below it: four 192² images, seeds 3–6, confocal at 5–3000 photons ≤ 4.2, STED at 20
#: ≤ 6.6, widefield at 30–1000 ≤ 2.1, SIM and TIRF ≤ 0.8; six 512², counters ≤ 3.3, widefield at 1000
#: photons ≤ 5.0; ten 1024² widefield at 300, 2.4; realcheck's foreign images ≤ 1.7; one level subtracted
#: from all, 0.5. Structure leaking into the noise estimate makes the intercepts disagree as well
#: (widefield at 3000 photons: 4.6–7.5 on 192², 14–17 on 512²; 10× at 3000: 27); the common slope is then
#: used, within 1.2 % of the pooled one on the widefield images, and the leak note (:data:`LEAK_RATIO`)
#: says that neither is to be trusted. Not where the images' own slopes disagree (:data:`GAIN_SPREAD`:
#: rescaled one by one, their intercepts differ too, χ² 43): they have no common slope either.
LEVEL_CHI2 = 10.0
#: Calibrate names a level per image only where it moved the gain by more than this share from the pooled
#: line's: structure that differs between large images also makes the intercepts disagree (srlab's
#: widefield at 3000 photons, six 512² images: χ² 14–17), with the two slopes within 1.2 % of each other.
LEVEL_NOTE_SHIFT = 0.05
#: What :class:`NoiseFit` says of an offset found on images clipped at 0 (module doc).
CLIPPED_FLOOR_OFFSET = "darkest level of images clipped at 0, unclipped with the noise line (upper bound)"
#: What :class:`NoiseFit` says of an offset read from the sort's coupling term (module doc).
NONSHOT_OFFSET = "noise line at its non-shot variance (the sort's coupling: dim, sparse images)"


def equal_neighbours_ratio(images: list[np.ndarray]) -> tuple[float, float] | None:
    """How much more often neighbouring pixels are exactly equal than independent noise makes them
    (:data:`EQUAL_NEIGHBOURS_RATIO`): ``(ratio, standard error of its log)``, pooled over ``images`` and
    both axes, or ``None`` where it cannot be read (images that are not integer-valued, or too few pairs).

    For each lag ``k`` (1 and 3 px) the share of pairs ``(x, x + k)`` that are equal is divided by the
    mean share that differ by +1 or −1 ADU; the ratio is lag 1's over lag 3's. Dividing by the ±1
    shares takes out the noise level (photon-poor images are full of equal zeros and ones at every lag),
    and comparing with lag 3 takes out structure (a smooth change shifts the differences, it does not
    make a spike at 0). Pairs with a pixel at an image's lowest or highest value (a clipped floor, fills,
    saturation) are left out. The standard error treats the four counts as Poisson."""
    from srlab.calibration.threads import per_image

    def image_counts(image: np.ndarray) -> np.ndarray | None:  # [lag 1, lag 3] x [equal, differ by one]
        x = np.asarray(image)
        if not np.issubdtype(x.dtype, np.integer) and not (np.all(np.isfinite(x)) and np.array_equal(x, np.round(x))):
            return None
        x = x.astype(np.int64)
        low, high = x.min(), x.max()
        counts = np.zeros((2, 2))
        for row, lag in enumerate((1, 3)):
            for a, b in ((x[:, lag:], x[:, :-lag]), (x[lag:], x[:-lag])):
                keep = (a != low) & (a != high) & (b != low) & (b != high)
                d = (a - b)[keep]
                counts[row] += (np.count_nonzero(d == 0), np.count_nonzero(np.abs(d) == 1))
        return counts

    each = per_image(image_counts, images)
    if any(c is None for c in each):
        return None
    counts = np.sum(each, axis=0)
    if np.any(counts == 0):
        return None
    shares = counts[:, 0] / (counts[:, 1] / 2.0)
    return float(shares[0] / shares[1]), float(np.sqrt(np.sum(1.0 / counts)))


def filtered(images: list[np.ndarray]) -> float | None:
    """The :func:`equal_neighbours_ratio` of ``images`` where it says they are filtered (above
    :data:`EQUAL_NEIGHBOURS_RATIO` and :data:`EQUAL_NEIGHBOURS_SIGMAS` standard errors above 1), else ``None``."""
    reading = equal_neighbours_ratio(images)
    if reading is None:
        return None
    ratio, log_se = reading
    return ratio if ratio > EQUAL_NEIGHBOURS_RATIO and math.log(ratio) > EQUAL_NEIGHBOURS_SIGMAS * log_se else None


def filtered_text(ratio: float) -> str:
    """How a note or refusal states a :func:`filtered` reading."""
    return f"neighbouring pixels are exactly equal {ratio:.2g}× as often as independent noise makes them"


#: A photon counter's integer levels are multiples of its gain (a photon is one count, scaled): at a fitted
#: gain of at least this many ADU per photon it leaves levels empty between them, which a camera's read
#: noise fills (:func:`levels_all_occupied`).
COUNTER_GAP_GAIN = 1.5
#: A level holds pixels where it has at least this share of those in the range looked at (a repaired
#: hot pixel's neighbour median may fall between a counter's levels).
OCCUPIED_SHARE = 1e-3


def levels_all_occupied(images: list[np.ndarray], gain_adu_per_photon: float) -> int | None:
    """For integer ``images`` read as counts from zero at ``gain_adu_per_photon`` ≥ :data:`COUNTER_GAP_GAIN`:
    the top ``K`` of the levels ``0 … K = ⌈4·gain⌉`` ADU (four photons) where every one of them holds pixels
    (:data:`OCCUPIED_SHARE`) — which a photon counter at that gain cannot do — else ``None``. Level
    subtracted, clipped camera images do: dim, sparse 384² images (gain 2, read noise 1.5–3 ADU) each less
    its own 5th or 20th percentile read as counts from zero at 1.65–2.62 ADU/photon, every level filled
    (at 1.29, below :data:`COUNTER_GAP_GAIN`, not judged); srlab's counters and counters scaled by 2 or
    2.36 leave gaps."""
    if not gain_adu_per_photon >= COUNTER_GAP_GAIN:
        return None
    top = math.ceil(4.0 * gain_adu_per_photon)
    counts = np.zeros(top + 1, np.int64)
    for im in images:
        values = np.asarray(im)
        values = values[(values >= 0) & (values <= top)].astype(np.int64)
        counts += np.bincount(values, minlength=top + 1)[:top + 1]
    total = counts.sum()
    return top if total > 0 and bool(np.all(counts >= OCCUPIED_SHARE * total)) else None


def block_offset_adu(offset_adu: float, method: str) -> float:
    """The offset a data block's camera takes from a measured one: below 0 only for images clipped at 0
    (:data:`CLIPPED_FLOOR_OFFSET`: the camera then clips its dark pixels at 0 as theirs did), else at
    least 0."""
    return float(offset_adu) if method == CLIPPED_FLOOR_OFFSET else max(float(offset_adu), 0.0)


def darkest_level_adu(image: np.ndarray) -> float:
    """The image's darkest level (ADU): the :data:`DARKEST_PERCENTILE` of it smoothed by
    :data:`DARKEST_SMOOTHING_PX` — the offset plus the background where the specimen leaves pixels dark."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), DARKEST_SMOOTHING_PX)
    return float(np.percentile(smooth, DARKEST_PERCENTILE))


def darkest_level_depth_adu(variance_adu2: float) -> float:
    """How far below a uniform level of pixel variance ``variance_adu2`` its :func:`darkest_level_adu`
    lies from noise alone: the percentile's z-score times the smoothed noise's standard deviation,
    ``z·σ·‖k‖`` with ``‖k‖² = 1/(4π s²)`` for a Gaussian of σ = s px (continuous approximation).

    On photon-poor images this is a sizeable share of the background (0.46 photons at 1.6
    photons/px with a photon counter, −29 %); where haze or blur leave no pixel at the bare background the darkest
    level lies above it instead, so the two do not simply cancel and calibrate reports this depth next to
    the level rather than adding it."""
    from statistics import NormalDist

    z = -NormalDist().inv_cdf(DARKEST_PERCENTILE / 100.0)
    kernel_norm = 1.0 / math.sqrt(4.0 * math.pi * DARKEST_SMOOTHING_PX**2)
    return z * math.sqrt(max(variance_adu2, 0.0)) * kernel_norm


def _separable_valid(x: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """``x ⊛ (h1 ⊗ h1)`` on the valid region (shape − (len(h1) − 1))."""
    n = len(h1)
    d = sum(x[:, k:x.shape[1] - n + 1 + k] * h1[k] for k in range(n))
    return sum(d[k:d.shape[0] - n + 1 + k] * h1[k] for k in range(n))


def detail(image: np.ndarray) -> np.ndarray:
    """``image ⊛ h`` on the valid region (shape − 2): zero mean, variance = the local noise variance."""
    x = np.asarray(image, np.float64)
    d = x[:, :-2] * _H1[0] + x[:, 1:-1] * _H1[1] + x[:, 2:] * _H1[2]
    return d[:-2] * _H1[0] + d[1:-1] * _H1[1] + d[2:] * _H1[2]


def _mean_filter(h1: np.ndarray = _H1) -> np.ndarray:
    """The filter of :func:`local_mean` for the detail filter ``h1 ⊗ h1`` (n × n): fit a quadratic surface
    to the (n+2) × (n+2) window (least squares), take its ``h²``-weighted mean over the central n × n — the
    mean the variance of ``h`` responds to."""
    n = len(h1)
    r = n // 2 + 1
    yy, xx = (g.ravel() for g in np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64))
    x = np.stack([np.ones_like(xx), xx, yy, xx**2, xx * yy, yy**2], 1)
    project = x @ np.linalg.solve(x.T @ x, x.T)  # window -> fitted surface
    h2 = np.zeros((2 * r + 1, 2 * r + 1))
    h2[1:-1, 1:-1] = np.outer(h1**2, h1**2)
    return (h2.ravel() @ project).reshape(2 * r + 1, 2 * r + 1)


_MEAN = _mean_filter()
#: A second detail filter, of 4th differences (5 × 5, unit norm): white noise has the same variance
#: through both; structure does not (:data:`LEAK_RATIO`).
_H4 = np.array([1.0, -4.0, 6.0, -4.0, 1.0]) / math.sqrt(70.0)
#: The detail band of integer images comes in steps of 1/6 ADU (``h`` is an integer kernel over 6), through
#: the 4th differences of 1/70: a plain MAD would be quantized to them (:func:`_lattice_mad`).
_DETAIL_STEP_ADU = 1.0 / 6.0
_DETAIL4_STEP_ADU = 1.0 / 70.0
_MEAN4 = _mean_filter(_H4)
#: ``Σ w²`` of the two local-mean filters: the local mean's noise variance over a pixel's. It is also ``Σ h²·w``
#: (``w`` projects ``h²`` onto quadratics, a symmetric idempotent map), the covariance through which a local
#: mean and its pixel's detail share their Poisson noise (:func:`sort_coupling`).
_MEAN_NORM2 = float(np.sum(_MEAN**2))
_MEAN4_NORM2 = float(np.sum(_MEAN4**2))
#: Half-width of the window in which :func:`sort_coupling` counts pixels for the density of the local mean at a
#: bin edge, in standard deviations of the local mean's noise there.
COUPLING_DENSITY_WIDTH = 0.5


def local_mean(image: np.ndarray) -> np.ndarray:
    """Local expectation for :func:`detail`, cropped to its valid region minus one more pixel per side
    (shape − 4; :func:`detail` is cropped alike by the callers). Exact for locally quadratic signals and
    uncorrelated with ``h`` under uniform white noise (``h`` is orthogonal to quadratics)."""
    return ndimage.correlate(np.asarray(image, np.float64), _MEAN, mode="reflect")[2:-2, 2:-2]


def _pairs(image: np.ndarray, fourth: bool) -> tuple[np.ndarray, np.ndarray]:
    """(local mean, detail) of every pixel with a whole window, for the 3 × 3 detail filter or, with
    ``fourth``, the 5 × 5 one at every other row and column (it only checks the first: a quarter of the
    pixels is plenty, at a quarter of the cost)."""
    if not fourth:
        return local_mean(image), detail(image)[1:-1, 1:-1]
    x = np.asarray(image, np.float64)
    h, w = x.shape[0] - 6, x.shape[1] - 6  # the pixels with a whole 7 × 7 window
    if h <= 0 or w <= 0:
        return np.zeros((0, 0)), np.zeros((0, 0))
    mean = sum(_MEAN4[i, j] * x[i:i + h:2, j:j + w:2] for i in range(7) for j in range(7))
    det = sum(_H4[i] * _H4[j] * x[1 + i:1 + i + h:2, 1 + j:1 + j + w:2] for i in range(5) for j in range(5))
    return mean, det


@dataclass(frozen=True)
class NoiseFit:
    """The photon-transfer line ``v = gain·(μ − offset) + read_noise²`` (all in ADU) and its points."""

    gain_adu_per_photon: float
    gain_se: float
    intercept_adu2: float  # b = read_noise² − gain·offset
    intercept_se: float
    offset_adu: float
    offset_se: float
    offset_given: bool  # known (given, dark frames, or counts from zero), so the read noise is not a bound
    offset_method: str
    read_noise_adu: float
    read_noise_se: float
    dark_level_adu: float  # median over the images of darkest_level_adu
    dark_levels_adu: tuple[float, ...]  # each image's
    integer_data: bool
    zero_variance_level_adu: float  # −b/gain: offset − read²/gain (0 for a photon counter)
    zero_variance_level_se: float
    bin_mean: np.ndarray  # the (mean, variance, standard error) points, used ones marked
    bin_var: np.ndarray
    bin_se: np.ndarray
    bin_used: np.ndarray
    gain_given: bool = False  # the gain was given (the camera's data sheet), not fitted
    # the slope through the 4th-difference filter (LEAK_RATIO; nan when the gain was given)
    gain_4th_adu_per_photon: float = math.nan
    # each image's own slope and its standard error (GAIN_SPREAD; empty for one image or a given gain)
    image_gains: tuple[tuple[float, float], ...] = ()
    # the reduced χ² of the images' intercepts under one slope (LEVEL_CHI2; nan for one image or a given gain)
    level_chi2: float = math.nan
    # each image's own intercept (ADU²) where they differ (LEVEL_CHI2: the gain is the common-slope fit's, the
    # bins are each image's, moved to the mean intercept); empty where one pooled line is fitted
    image_intercepts_adu2: tuple[float, ...] = ()
    pooled_gain_adu_per_photon: float = math.nan  # the one pooled line's slope, where not used
    # the line's variance at the offset (read noise², ADU²) before it is clipped at 0, and its standard error
    read_variance_adu2: float = math.nan
    read_variance_se: float = math.nan

    @property
    def levels_differ(self) -> bool:
        """Whether the images' lines were fitted with an intercept each (:data:`LEVEL_CHI2`)."""
        return bool(self.image_intercepts_adu2)

    @property
    def image_offsets_adu(self) -> tuple[float, ...]:
        """Each image's offset (ADU): where the images' levels differ (:data:`LEVEL_CHI2`) and the offset was
        not given, each image's own darkest level — the level it was left at —, else the offset."""
        if self.levels_differ and not self.offset_given:
            return self.dark_levels_adu
        return (self.offset_adu,) * len(self.dark_levels_adu)

    def image_variance(self, index: int, mean_adu: np.ndarray) -> np.ndarray:
        """The noise variance (ADU²) at ``mean_adu`` in image ``index`` of the fit: its own intercept where
        the images' levels differ, else :meth:`variance`."""
        if not self.image_intercepts_adu2:
            return self.variance(mean_adu)
        return self.gain_adu_per_photon * np.asarray(mean_adu) + self.image_intercepts_adu2[index]

    @property
    def gains_disagree(self) -> bool:
        """Whether the images' own slopes disagree beyond :data:`GAIN_SPREAD` and :data:`GAIN_CHI2`."""
        return slopes_disagree(self.image_gains)

    def variance(self, mean_adu: np.ndarray) -> np.ndarray:
        return self.gain_adu_per_photon * np.asarray(mean_adu) + self.intercept_adu2

    def variance_rel_se(self, mean_adu: float) -> float:
        """The relative standard error of :meth:`variance` at ``mean_adu`` (the line's slope and intercept
        errors, their covariance left out: it only narrows the error between the points)."""
        variance = float(self.variance(mean_adu))
        spread = math.hypot(mean_adu * self.gain_se, self.intercept_se)
        return spread / variance if variance > 0 else math.inf


def slopes_disagree(image_gains: tuple[tuple[float, float], ...]) -> bool:
    """Whether images' own slopes and their errors (:func:`image_gains`) disagree beyond
    :data:`GAIN_SPREAD` and :data:`GAIN_CHI2`: not one setting of raw counts."""
    ok = [(g, se) for g, se in image_gains if g > 0 and se > 0 and math.isfinite(g) and math.isfinite(se)]
    if len(ok) < 2:
        return False
    g, se = np.array(ok).T
    w = 1.0 / se**2
    mean = float(np.sum(w * g) / np.sum(w))
    chi2 = float(np.sum(w * (g - mean) ** 2) / (len(g) - 1))
    return bool(g.max() > GAIN_SPREAD * g.min() and chi2 > GAIN_CHI2)


#: One image's pixels for the noise fit: local means, detail values, and which touch a clipped floor
#: (``None``: no floor).
Pairs = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def pixel_pairs(images: list[np.ndarray], *, floors: list[float | None] | None = None,
                fourth: bool = False) -> list[Pairs]:
    """Each image's (local mean, detail) pairs and, where it has a clipped floor (``floors``: per image,
    its value or ``None``), which pixels' local-mean window (5×5, which holds the detail's 3×3) holds a
    floor pixel. ``fourth``: the 5 × 5 detail filter of 4th differences (and its 7 × 7 mean) instead, at
    every other row and column."""
    from srlab.calibration.threads import per_image

    floors = floors if floors is not None else [None] * len(images)
    window = 7 if fourth else 5

    def pairs_of(image_floor: tuple[np.ndarray, float | None]) -> Pairs:
        img, floor = image_floor
        crop, step = window // 2, 2 if fourth else 1
        touches = None if floor is None else ndimage.maximum_filter(
            np.asarray(img) == floor, size=window, mode="nearest")[crop:-crop:step, crop:-crop:step].ravel()
        mean, det = _pairs(img, fourth)
        return mean.ravel(), det.ravel(), touches

    return per_image(pairs_of, list(zip(images, floors)))


def detail_levels(images: list[np.ndarray], *, fourth: bool = False) -> list[np.ndarray]:
    """Each pixel's ``h²``-weighted level ``Σ h_j² x_j`` over its detail window, in the order of
    :func:`pixel_pairs` (``fourth``: the 4th differences, every other row and column). Under Poisson noise
    ``E[h·x]² = g·E[Σ h_j² x_j]`` (plus the read noise) exactly, whatever the structure inside the window,
    so a bin's mean of these levels is the level its detail variance belongs to (:func:`binned_points`)."""
    from srlab.calibration.threads import per_image

    def levels_of(image: np.ndarray) -> np.ndarray:
        x = np.asarray(image, np.float64)
        if not fourth:
            return _separable_valid(x, _H1**2)[1:-1, 1:-1].ravel()
        h, w = x.shape[0] - 6, x.shape[1] - 6
        if h <= 0 or w <= 0:
            return np.zeros(0)
        return sum(_H4[i] ** 2 * _H4[j] ** 2 * x[1 + i:1 + i + h:2, 1 + j:1 + j + w:2]
                   for i in range(5) for j in range(5)).ravel()

    return per_image(levels_of, images)


def mean_variance_points(images: list[np.ndarray], *, n_bins: int = 40, max_level: float | None = None,
                         floors: list[float | None] | None = None, fourth: bool = False,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool every image's (local mean, detail) pairs (:func:`pixel_pairs`; the pixels next to a clipped
    floor left out); per bin of equal count: median mean, robust variance, its standard error
    (:func:`binned_points`, the lattice of integer images' detail values taken into account)."""
    integer = all(np.array_equal(im, np.round(im)) for im in images)
    return binned_points(pixel_pairs(images, floors=floors, fourth=fourth), n_bins=n_bins, max_level=max_level,
                         step=detail_step(integer, fourth))


def detail_step(integer: bool, fourth: bool = False) -> float | None:
    """The lattice of the detail values of integer images (``None`` for others), through the 3 × 3 filter
    or, with ``fourth``, the 4th differences."""
    return (_DETAIL4_STEP_ADU if fourth else _DETAIL_STEP_ADU) if integer else None


#: The most lattice cells :func:`_lattice_mad` spans (34 MB of counts, a few arrays of it): 16-bit images'
#: detail values stay well within it; 32-bit counts or float images of large values need not.
MAX_LATTICE_CELLS = 1 << 22


def _lattice_mad(values: np.ndarray, step: float) -> float:
    """The MAD of detail values that lie on a lattice of ``step`` (integer images), each spread evenly over
    its cell — the median and the median absolute deviation of grouped data, interpolated within the
    cell — rather than the plain MAD, which lands on the lattice too. On photon-poor counts (a few ADU of
    noise, cells of 1/6 ADU) the plain MAD's variance is off by up to ±10 % depending on where the lattice
    falls (flat Poisson images, one photon per ADU: 1.10, 0.98, 1.10, 0.98, 0.92 of the variance at 0.5,
    1, 2, 4, 8 photons), the bins' errors alternating with their level; interpolated, the error left is
    the MAD's own bias on a peaked (positive-kurtosis) distribution, smooth in the level (0.89, 0.96,
    0.98, 0.99, 0.99 of the sample variance there). Spreading adds ``step²/12`` to the variance, which the
    caller removes."""
    k = np.rint(values / step).astype(np.int64)
    if int(k.max()) - int(k.min()) > MAX_LATTICE_CELLS:
        # values of a wide range (32-bit counts, an outlier of 10⁷ ADU): the lattice's cells would take
        # gigabytes. The far tails move to the 0.1 % / 99.9 % quantiles, which leaves the median and the
        # mass within a MAD of it as they were; where the range is still that wide the lattice is far finer
        # than the noise, and the plain MAD is the grouped one.
        k = np.clip(k, *np.quantile(k, [0.001, 0.999]).round().astype(np.int64))
        if int(k.max()) - int(k.min()) > MAX_LATTICE_CELLS:
            return float(np.median(np.abs(values - np.median(values))))
    k0 = int(k.min())
    counts = np.bincount(k - k0)
    if 2 * int(counts.max()) > values.size:
        return 0.0  # most values equal (a floor, a fill): no noise to measure, as the plain MAD says
    cdf = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)]) / values.size
    edges = (np.arange(counts.size + 1, dtype=np.float64) + k0 - 0.5) * step
    j = int(np.searchsorted(cdf, 0.5, side="left"))  # the median's cell is (edges[j-1], edges[j]]
    median = float(edges[j - 1] + (0.5 - cdf[j - 1]) / (cdf[j] - cdf[j - 1]) * step)
    # the share within ±a of the median is piecewise linear in a, with corners where median ± a meets an edge
    a = np.sort(np.abs(edges - median))
    share = np.interp(median + a, edges, cdf) - np.interp(median - a, edges, cdf)
    i = int(np.searchsorted(share, 0.5, side="left"))
    if i == 0:
        return 0.0
    return float(a[i - 1] + (0.5 - share[i - 1]) / (share[i] - share[i - 1]) * (a[i] - a[i - 1]))


#: A bin of equal count spans levels whose noise variances differ; the MAD of such a mixture reads below
#: their mean. Where the variance changes by more than this share across a bin (the slope of a first line
#: times the bin's span, over its variance) it is split into as many bins of equal count as bring the change
#: within it (:func:`binned_points` ``split``), each of at least :data:`SPLIT_MIN_COUNT` pixels and at most
#: :data:`SPLIT_MAX` per bin. On a dim, sparse image the structure lies in the top bin or two, which then
#: span background to peak (module doc).
SPLIT_VARIANCE_CHANGE = 0.25
SPLIT_MIN_COUNT = 100
SPLIT_MAX = 16


def binned_points(pairs: list[Pairs], *, n_bins: int = 40, max_level: float | None = None,
                  step: float | None = None, levels: list[np.ndarray] | None = None,
                  coupling: float | None = None, split: bool = False) -> tuple[np.ndarray, ...]:
    """:func:`mean_variance_points` of pairs already computed (one image's alone, or several pooled).
    ``step``: the lattice of the detail values of integer images (:data:`_DETAIL_STEP_ADU`), whose MAD is
    then that of the grouped values (:func:`_lattice_mad`), its spreading variance removed. ``levels``
    (:func:`detail_levels`, per pair; photon counts, module doc): each bin's point is the mean
    of its pixels' levels and the sample variance of their detail values, with its standard error from
    the fourth moment. ``coupling`` (the local-mean filter's ``Σ w²``, ``levels`` not given): a fourth
    array is returned, ``(n, 2)``: each bin's mean local mean (the points' level is their median) and its
    :func:`sort_coupling` regressor, for :func:`fit_coupled_line`. ``split`` (``levels`` not given): bins
    across which the noise variance changes by more than :data:`SPLIT_VARIANCE_CHANGE` are split."""
    from srlab.calibration.threads import per_image

    coupling = coupling if levels is None else None
    mu = np.concatenate([m for m, _, _ in pairs])
    d = np.concatenate([dv for _, dv, _ in pairs])
    lv = np.concatenate(levels) if levels is not None else None
    top = np.percentile(mu, 99.5)
    if max_level is not None:
        top = min(top, max_level)
    keep = mu <= top
    if any(t is not None for _, _, t in pairs):
        touches = np.concatenate([np.zeros(m.size, bool) if t is None else t for m, _, t in pairs])
        keep &= ~touches
        # the population whose local means the bins divide: the pixels off the floor, above the top as well
        population = np.sort(mu[~touches]) if coupling is not None else None
    else:
        population = np.sort(mu) if coupling is not None else None
    mu, d = mu[keep], d[keep]
    lv = lv[keep] if lv is not None else None
    if mu.size == 0:
        return (np.zeros(0), np.zeros(0), np.zeros(0)) + (() if coupling is None else (np.zeros((0, 2)),))
    # Bins of equal count, without sorting all the pixels (a sort of ten 1024² images took seconds):
    # the bin edges are order statistics (one partition), and each pixel's bin follows from them.
    # Photon-poor images have many pixels of equal local mean; a bin edge inside such a tie would make
    # the bins' contents depend on the order of the images, so each bin ends at the end of its tie:
    # bin k holds the means in (q[k-1], q[k]].
    ranks = np.unique(np.linspace(0, mu.size - 1, n_bins + 1).astype(np.int64))
    q = np.partition(mu, ranks)[ranks]
    q = np.unique(q[1:]) if q.size > 1 else q

    def sort_into(edges: np.ndarray) -> np.ndarray:
        """Sort the pixels by their bin of ``edges`` (a counting sort of small integers); their counts."""
        nonlocal mu, d, lv
        which = np.searchsorted(edges, mu, side="left")
        order = np.argsort(which.astype(np.int16), kind="stable")
        mu, d = mu[order], d[order]
        lv = lv[order] if lv is not None else None
        return np.bincount(which, minlength=edges.size)

    counts = sort_into(q)

    def point(lo_hi: tuple[int, int]) -> tuple[float, float, float]:
        lo, hi = lo_hi
        seg = d[lo:hi]
        if lv is not None:
            centred = seg - seg.mean()
            var = float(np.mean(centred**2)) * (hi - lo) / (hi - lo - 1)
            fourth_moment = float(np.mean(centred**4))
            return float(lv[lo:hi].mean()), var, math.sqrt(max(fourth_moment - var**2, 0.0) / (hi - lo))
        level = float(np.median(mu[lo:hi]))
        if step is not None:
            mad = _lattice_mad(seg, step)
            var = max((_MAD_TO_SIGMA * mad) ** 2 - step**2 / 12.0, 0.0) if mad > 0 else 0.0
            return level, var, _MAD_VARIANCE_SE * var / math.sqrt(hi - lo)
        mad = float(np.median(np.abs(seg - np.median(seg))))
        if mad <= _ROUNDING_MAD * float(np.abs(seg).max(initial=0.0)):
            # detail values are sums of pixels with weights: equal ones can differ in their last bits, and
            # such a MAD (1e-17) is a tie's 0, not noise — its "standard error" of 1e-34 once outweighed
            # every other bin and made the line's covariance negative (a sparse simulated rendering)
            mad = 0.0
        var = (_MAD_TO_SIGMA * mad) ** 2
        return level, var, _MAD_VARIANCE_SE * var / math.sqrt(hi - lo)

    def points_of(counts: np.ndarray) -> tuple[np.ndarray, list[int], tuple[np.ndarray, ...]]:
        starts = np.concatenate([[0], np.cumsum(counts)])
        kept = [k for k in range(counts.size) if counts[k] >= 50]
        points = per_image(point, [(int(starts[k]), int(starts[k + 1])) for k in kept])
        return starts, kept, tuple(np.array([p[k] for p in points]) for k in range(3))

    starts, kept, arrays = points_of(counts)
    if split and lv is None:
        finer = _split_edges(mu, q, starts, kept, arrays)
        if finer.size > q.size:
            q = finer
            starts, kept, arrays = points_of(sort_into(q))
            counts = np.diff(starts)
    if coupling is None:
        return arrays
    # bin k holds the local means in (q[k-1], q[k]]; the lowest is open below, where the density is 0
    lower = [q[k - 1] if k > 0 else -math.inf for k in kept]
    means = np.array([float(np.mean(mu[starts[k]:starts[k + 1]])) for k in kept])
    u = sort_coupling(population, np.array(lower), q[kept], counts[kept], arrays[1], coupling)
    return (*arrays, np.stack([means, u], 1))


def _split_edges(mu: np.ndarray, q: np.ndarray, starts: np.ndarray, kept: list[int],
                 points: tuple[np.ndarray, ...]) -> np.ndarray:
    """The bin edges ``q`` (bin ``k``: local means in ``(q[k-1], q[k]]``; ``mu`` sorted by bin, ``starts``
    its bins' starts) with the bins across which the noise variance changes by more than
    :data:`SPLIT_VARIANCE_CHANGE` split by count: the change is the slope of the trimmed line through the
    bins' ``points`` times the bin's span in level, over the bin's variance."""
    slope = fit_line(*points)[0]
    if not slope > 0:
        return q
    extra = []
    for k, var in zip(kept, points[1]):
        seg = mu[starts[k]:starts[k + 1]]
        span = float(q[k] - (q[k - 1] if k > 0 else seg.min()))
        parts = min(math.ceil(slope * span / (SPLIT_VARIANCE_CHANGE * var)) if var > 0 else 1,
                    seg.size // SPLIT_MIN_COUNT, SPLIT_MAX)
        if parts > 1:
            ranks = np.linspace(0, seg.size - 1, parts + 1)[1:-1].astype(np.int64)
            extra.append(np.partition(seg, ranks)[ranks])
    return np.unique(np.concatenate([q, *extra])) if extra else q


def sort_coupling(population: np.ndarray, lower: np.ndarray, upper: np.ndarray, counts: np.ndarray,
                  variances: np.ndarray, mean_norm2: float) -> np.ndarray:
    """Each bin's regressor ``u = Σw²·(p(upper) − p(lower)) / n`` for :func:`fit_coupled_line`: how far its
    pixels' mean local mean lies from their mean true level, per ADU² of noise that is not shot noise.

    The bins sort pixels by their local mean, which is noisy (its variance ``Σw²·v``, ``v`` the pixel's),
    so a bin's pixels share a noise excursion of their local means. The detail value shares the shot
    noise of those pixels (their covariance is ``Σh²w = Σw²`` of the photon variance), so its variance
    follows the excursion of the shot noise — a bin's (mean local mean, variance) lies on the line for
    noise that is all shot noise — but not that of the read noise (Gaussian, uncorrelated with the detail,
    so independent of it). Where the true levels are spread much wider than the local mean's noise the
    excursions are small; where most pixels share one level (a dim, sparse image: the background) equal
    bins of pixel count split that level's pixels by their noise alone, and the read noise's share of
    the excursion lies off the line with no change in variance — the slope read 0.86 for a true 2
    ADU/photon on three 512² images at 5 photons of peak over 0.5 of background, read noise 1.5 ADU.

    The excursion: for Gaussian noise of variance ``s²`` the mean true level of the pixels whose local
    mean lies in ``(a, b]`` is their mean local mean plus ``s²·(p(b) − p(a)) / n`` (Tweedie's formula,
    Efron, "Tweedie's formula and selection bias", JASA 106, 2011, integrated over the bin), ``p`` the
    density of local means in pixels per ADU (counted within :data:`COUPLING_DENSITY_WIDTH` of the noise's
    standard deviation each side) and ``n`` the bin's count. Its read-noise share ``σ²/v`` of it is
    ``σ²·u``; ``σ²`` (the read noise and rounding variance) is fitted with the line. Adapted: the bin's own
    variance stands for ``v`` at both of its edges."""
    if population.size == 0:
        return np.zeros(counts.size)
    half = COUPLING_DENSITY_WIDTH * np.sqrt(mean_norm2 * np.maximum(variances, 0.0))

    def density(level: np.ndarray) -> np.ndarray:
        inside = (np.searchsorted(population, level + half, side="right")
                  - np.searchsorted(population, level - half, side="left"))
        return np.where(half > 0, inside / np.where(half > 0, 2.0 * half, 1.0), 0.0)

    below = np.where(np.isfinite(lower), density(np.where(np.isfinite(lower), lower, 0.0)), 0.0)
    return mean_norm2 * (density(upper) - below) / np.maximum(counts, 1)


def image_points(pairs: list[Pairs], *, integer: bool = True, n_bins: int = 20, max_level: float | None = None,
                 fourth: bool = False, levels: list[np.ndarray] | None = None, coupling: float | None = None,
                 split: bool = False) -> list[tuple[np.ndarray, ...]]:
    """Each image's own ``n_bins`` (mean, variance, standard error) points (:func:`binned_points` of its
    :func:`pixel_pairs`, those the pooled fit uses), less the rounding variance for ``integer`` data
    (``fourth``: pairs through the 4th differences; ``levels``: photon counts, as :func:`binned_points`;
    ``coupling``: and each point's mean level and :func:`sort_coupling` regressor; ``split``: as
    :func:`binned_points`)."""
    from srlab.calibration.threads import per_image

    def one(pair_levels: tuple[Pairs, np.ndarray | None]) -> tuple[np.ndarray, ...]:
        image_pairs, image_levels = pair_levels
        mu, var, se, *u = binned_points([image_pairs], n_bins=n_bins, max_level=max_level,
                                        step=detail_step(integer, fourth),
                                        levels=None if image_levels is None else [image_levels],
                                        coupling=coupling if image_levels is None else None, split=split)
        return (mu, var - (1.0 / 12.0 if integer else 0.0), se, *u)

    return per_image(one, list(zip(pairs, levels if levels is not None else [None] * len(pairs))))


def image_gains(points: list[tuple[np.ndarray, ...]]) -> tuple[tuple[float, float], ...]:
    """Each image's own slope of the noise line and its standard error (:func:`fit_coupled_line` on its
    :func:`image_points`, with the coupling term where they carry it; ``nan`` where it has fewer than 4
    usable ones, :func:`line_points`)."""
    return tuple((fit_coupled_line(*p[:3], p[3] if len(p) > 3 else None, decided=True)[:2]
                  if line_points(p[2]) >= 4 else (math.nan, math.nan)) for p in points)


@dataclass(frozen=True)
class CommonSlope:
    """:func:`common_slope_fit`: one slope, an intercept per image."""

    gain: float
    gain_se: float
    intercepts: np.ndarray  # per image (nan where it has no usable point)
    intercept_ses: np.ndarray
    level_chi2: float  # reduced χ² of the intercepts about their weighted mean
    used: list[np.ndarray]  # per image, its points used (trimmed as in fit_line)
    gain_intercept_cov: np.ndarray  # per image, the covariance of the slope with its intercept
    levels: np.ndarray | None = None  # each point's level on the line, in the order of the points (fit_coupled_line)


def common_slope_fit(points: list[tuple[np.ndarray, ...]], *, decided: bool = False) -> CommonSlope:
    """The weighted least-squares lines ``var = gain·mu + b_i`` through each image's (mean, variance,
    standard error) points (:func:`image_points`), with one ``gain`` and an intercept ``b_i`` per image,
    trimmed as :func:`fit_line` trims (points more than 3 standard errors above the fit dropped and the
    fit repeated; errors scaled up by √χ²). ``level_chi2`` (:data:`LEVEL_CHI2`): how far the intercepts
    disagree beyond their errors. Points with a fourth array (:func:`binned_points`' mean levels and
    :func:`sort_coupling` regressors) add the coupling term where it is determined, one coefficient for
    all images, as :func:`fit_coupled_line` does (``decided``: wherever it can be fitted)."""
    mu, se = (np.concatenate([p[i] for p in points]) for i in (0, 2))
    if all(len(p) > 3 for p in points) and line_points(se) >= len(points) + 4:
        extra = np.concatenate([p[3] for p in points])
        coupled, (p, cov, chi2) = _common_slope_fit(points, extra[:, 0], extra[:, 1])
        if p[0] > 0 and (decided or _coupling_determined(p, cov, chi2)):
            return coupled
    return _common_slope_fit(points, mu, None)[0]


def _common_slope_fit(points: list[tuple[np.ndarray, ...]], mu: np.ndarray, coupling: np.ndarray | None
                      ) -> tuple[CommonSlope, tuple[np.ndarray, np.ndarray, float]]:
    """:func:`common_slope_fit` at the levels ``mu``, with the :func:`sort_coupling` term where ``coupling``
    is given (its coefficient last), and the fit's parameters, their covariance and reduced χ²."""
    k = len(points)
    var, se = (np.concatenate([p[i] for p in points]) for i in (1, 2))
    coupled = coupling is not None
    which = np.concatenate([np.full(p[0].size, i) for i, p in enumerate(points)])
    design = np.zeros((mu.size, k + 1 + coupled))
    design[:, 0] = mu
    design[np.arange(mu.size), 1 + which] = 1.0
    if coupled:
        design[:, -1] = coupling

    def wls(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        w = 1.0 / se[m] ** 2
        p, cov = _scaled_wls(design[m], var[m], w)  # an image without a used point: its column stays at 0
        a = design[m]
        fitted = len(np.unique(which[m])) + 1 + coupled
        chi2 = float(np.sum(w * (var[m] - a @ p) ** 2) / max(int(m.sum()) - fitted, 1))
        return p, cov, chi2

    p, cov, chi2, used = _trimmed(wls, lambda q: design @ q, var, se, min_used=k + 3 + coupled)
    inflate = math.sqrt(max(chi2, 1.0))
    has = np.array([bool(used[which == i].any()) for i in range(k)])
    b = np.where(has, p[1:k + 1], math.nan)
    b_se = np.where(has, np.sqrt(np.maximum(np.diag(cov)[1:k + 1], 0.0)) * inflate, math.nan)
    ok = has & (b_se > 0)
    level_chi2 = math.nan
    if ok.sum() >= 2:
        w = 1.0 / b_se[ok] ** 2
        mean = float(np.sum(w * b[ok]) / np.sum(w))
        level_chi2 = float(np.sum(w * (b[ok] - mean) ** 2) / (ok.sum() - 1))
    levels = mu + (p[-1] / p[0]) * coupling if coupled and p[0] > 0 else mu
    return CommonSlope(float(p[0]), math.sqrt(max(cov[0, 0], 0.0)) * inflate, b, b_se, level_chi2,
                       [used[which == i] for i in range(k)], cov[0, 1:k + 1] * inflate**2, levels), (p, cov, chi2)


def unclipped_level_adu(clipped_level_adu: float, gain: float, intercept: float) -> float:
    """The level ``D`` (ADU) of a pixel whose values ``max(0, N(D, v(D)))`` — the noise line
    ``v = gain·D + intercept`` (:func:`fit_line`), clipped at a floor of 0 — have the mean
    ``clipped_level_adu``: ``D·Φ(D/s) + s·φ(D/s) = clipped level`` with ``s = √v(D)``, increasing in
    ``D``, solved between the line's zero-variance level and the clipped level itself (Gaussian noise: the
    dark, read-noise-limited pixels a floor clips)."""
    from scipy.optimize import brentq

    if not gain > 0 or not clipped_level_adu > 0:
        return float(clipped_level_adu)

    def clipped_mean(level: float) -> float:
        s = math.sqrt(max(gain * level + intercept, 0.0))
        if s == 0.0:
            return max(level, 0.0)
        t = level / s
        return level * 0.5 * math.erfc(-t / math.sqrt(2.0)) + s * math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)

    low = -intercept / gain
    if not low < clipped_level_adu or clipped_mean(low) >= clipped_level_adu:
        return float(min(max(low, 0.0), clipped_level_adu))
    return float(brentq(lambda level: clipped_mean(level) - clipped_level_adu, low, clipped_level_adu, xtol=1e-6))


def _scaled_wls(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares ``y ≈ a·p`` (weights ``w``): ``p`` and its covariance, through the
    pseudo-inverse of the normal matrix with its columns scaled to one (levels of thousands of ADU beside
    :func:`sort_coupling`'s regressor of a thousandth; a column of zeros keeps its parameter at 0)."""
    norm = np.sqrt(np.sum(w[:, None] * a**2, axis=0))
    norm = np.where(norm > 0, norm, 1.0)
    scaled = a / norm
    cov = np.linalg.pinv(scaled.T @ (scaled * w[:, None])) / np.outer(norm, norm)
    return cov @ (a.T @ (w * y)), cov


def _wls_free(x: np.ndarray, y: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least-squares line: (slope, intercept), their covariance, reduced χ²."""
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    a = np.stack([x, np.ones_like(x)], 1)
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    p = cov @ (a.T @ (w * y))
    dof = max(len(x) - 2, 1)
    chi2 = float(np.sum(w * (y - a @ p) ** 2) / dof)
    return p, cov, chi2


def _wls_intercept(x: np.ndarray, y: np.ndarray, se: np.ndarray, slope: float
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`_wls_free` with the slope given: the weighted mean intercept (the slope's variance 0)."""
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    b = float(np.sum(w * (y - slope * x)) / np.sum(w))
    dof = max(len(x) - 1, 1)
    chi2 = float(np.sum(w * (y - slope * x - b) ** 2) / dof)
    return np.array([slope, b]), np.array([[0.0, 0.0], [0.0, 1.0 / float(np.sum(w))]]), chi2


def _trimmed(wls, predict, var: np.ndarray, se: np.ndarray, *, min_used: int
             ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The trimming of :func:`fit_line` and :func:`common_slope_fit`: ``wls(mask)`` fits the points of
    ``mask`` (parameters, covariance, reduced χ²), ``predict(parameters)`` gives every point's variance;
    points more than 3 standard errors above the fit (structure leaking into the noise estimate) are
    dropped and the fit repeated, up to 4 times, keeping at least ``min_used`` points. Returns the last
    fit and the mask of points used."""
    # a bin whose MAD is 0 (most of its detail values equal: a clipped floor, a fill) has no usable
    # variance estimate, and a zero standard error would give it all the weight
    valid = se > 0
    used = valid.copy()
    for _ in range(4):
        p, cov, chi2 = wls(used)
        resid = (var - predict(p)) / np.where(valid, se, 1.0)
        new = valid & (resid < 3.0 * max(1.0, math.sqrt(chi2)))
        new &= used | (np.abs(resid) < 3.0)
        if new.sum() < min_used or np.array_equal(new, used):
            break
        used = new
    p, cov, chi2 = wls(used)
    return p, cov, chi2, used


def line_points(se: np.ndarray) -> int:
    """How many (mean, variance, standard error) points a noise line can use: those with a standard error
    (a bin whose MAD is 0 — most of its values equal: a clipped floor, a fill, a sparse rendering's
    empty pixels — has none)."""
    return int(np.count_nonzero(np.asarray(se) > 0))


#: The sort's coupling term (:func:`sort_coupling`) is kept where its coefficient is at least this many
#: standard errors above 0 (one-sided: a variance). Where the true levels spread much wider than the local mean's noise (bright
#: or dense images) it is not determined, and fitted anyway it only moved the slope within a widened error:
#: srlab's widefield preset at 30 photons (four 192² images, true gain 2) read 1.66 ± 0.30 and 2.65 ± 0.30
#: with it, 2.24 ± 0.19 and 2.12 ± 0.19 without (its leak ratio 1.18 with it: a false note). In the pooled
#: fit it read 13–24 standard errors from 0 on dim, sparse images (three 512²; 2.9 at 60 photons of peak,
#: where the plain line read 1.92 for 2) and at most 2.4 on srlab's presets. The per-image and leak-check
#: fits follow the pooled fit's call (:func:`fit_noise`).
COUPLING_SIGMAS = 3.0
#: An offset from the coupling term's ``σ²`` (:func:`nonshot_offset_adu`) is taken where that ``σ²`` less
#: the rounding is this many of its standard errors above 0 and the offset lies between 0 ADU and the
#: darkest level — an upper bound on it — within this many of its own; else the darkest level stands.
NONSHOT_OFFSET_SIGMAS = 3.0


def _coupling_determined(p: np.ndarray, cov: np.ndarray, chi2: float) -> bool:
    """Whether the coupling coefficient (last of ``p``) is :data:`COUPLING_SIGMAS` standard errors above 0:
    it is ``σ²·gain``, a variance times a gain, so a coefficient below 0 is noise, not a selection (a
    sparse photon counter over 5 photons/px of background, no read noise, fitted −0.43, t = −3.4, and
    kept it read the gain 0.891 for 1 — 0.981 without)."""
    return bool(p[-1] >= COUPLING_SIGMAS * math.sqrt(max(cov[-1, -1], 0.0) * max(chi2, 1.0)))


def fit_line(mu: np.ndarray, var: np.ndarray, se: np.ndarray, *, slope: float | None = None
             ) -> tuple[float, float, float, float, float, np.ndarray]:
    """:func:`fit_coupled_line` without the sort's coupling term (the first six of its values)."""
    return fit_coupled_line(mu, var, se, None, slope=slope)[:6]


class LineFit(NamedTuple):
    """:func:`fit_coupled_line`'s line ``var = gain·mu + intercept`` (ADU, ADU²) and, where the sort's
    coupling term is kept, its three coefficients."""

    gain: float
    gain_se: float
    intercept: float
    intercept_se: float
    gain_intercept_cov: float
    used: np.ndarray  # the points used (trimmed)
    levels: np.ndarray | None  # each point's level on the line where the term is kept (m + σ²·u), else None
    # (gain, intercept, σ²·gain) and their covariance, scaled by the reduced χ² where above 1; None without the term
    coupled: tuple[np.ndarray, np.ndarray] | None = None


def fit_coupled_line(mu: np.ndarray, var: np.ndarray, se: np.ndarray, coupling: np.ndarray | None, *,
                     slope: float | None = None, decided: bool = False) -> LineFit:
    """The trimmed weighted line ``var = gain·mu + b`` through (mean, variance, standard error) points:
    bins more than 3 standard errors above the line (structure leaking into the noise estimate) are
    dropped and the line refitted. Returns gain, its standard error, b, its standard error, their
    covariance and the mask of points used; errors are scaled up by √χ² when the points scatter more
    than their own errors. ``slope``: the gain, when known (only ``b`` is fitted; its error 0). Fewer
    than two usable points (:func:`line_points`; one, when ``slope`` is given) leave no line: all
    ``nan``, no point used — the callers' checks of the gain then speak (a sparse simulated rendering
    had one, and the fit failed on the square root of a negative variance).

    ``coupling`` (:func:`binned_points`' fourth array: per point its mean level ``m`` and its
    :func:`sort_coupling` regressor ``u``): the model is ``var = gain·(m + σ²·u) + b``, ``σ²·gain`` fitted
    as a third coefficient, where that is :data:`COUPLING_SIGMAS` standard errors above 0 (and 5 points are
    usable; ``decided``: wherever it can be fitted — the pooled fit decided for these images); else the
    plain line at the levels ``mu``. The last value is each point's level on the line where the term is
    kept (``m + σ²·u``), else ``None`` (the levels are ``mu``)."""
    if line_points(se) < (1 if slope is not None else 2):
        return LineFit(math.nan, math.nan, math.nan, math.nan, math.nan, np.zeros(np.shape(mu), bool), None)
    if coupling is not None and line_points(se) < (4 if slope is not None else 5):
        coupling = None
    levels = coupled = None
    if coupling is not None:
        mean_level, u = coupling[:, 0], coupling[:, 1]
        design = np.stack([mean_level, np.ones_like(mean_level), u], 1)

        def _wls_coupled(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            w = 1.0 / np.maximum(se[m], 1e-12) ** 2
            if slope is None:
                p, cov = _scaled_wls(design[m], var[m], w)
            else:  # the slope given: the intercept and the coupling only
                q, c = _scaled_wls(design[m][:, 1:], var[m] - slope * mean_level[m], w)
                p, cov = np.array([slope, *q]), np.zeros((3, 3))
                cov[1:, 1:] = c
            dof = max(int(m.sum()) - (3 if slope is None else 2), 1)
            return p, cov, float(np.sum(w * (var[m] - design[m] @ p) ** 2) / dof)

        p, cov, chi2, used = _trimmed(_wls_coupled, lambda q: design @ q, var, se, min_used=5)
        if p[0] > 0 and (decided or _coupling_determined(p, cov, chi2)):
            levels = mean_level + (p[2] / p[0]) * u
            coupled = (p, cov * max(chi2, 1.0))
        else:
            coupling = None
    if coupling is None:
        def _wls(x: np.ndarray, y: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            return _wls_free(x, y, e) if slope is None else _wls_intercept(x, y, e, slope)

        p, cov, chi2, used = _trimmed(lambda m: _wls(mu[m], var[m], se[m]), lambda q: q[0] * mu + q[1], var, se,
                                      min_used=4)
    inflate = math.sqrt(max(chi2, 1.0))
    return LineFit(float(p[0]), math.sqrt(cov[0, 0]) * inflate, float(p[1]), math.sqrt(cov[1, 1]) * inflate,
                   float(cov[0, 1]) * inflate**2, used, levels, coupled)


def nonshot_offset_adu(coupled: tuple[np.ndarray, np.ndarray], rounding_adu2: float
                       ) -> tuple[float, float, float, float]:
    """The offset (ADU) at which the line ``var = gain·mu + b`` leaves only the variance that is not shot
    noise, ``σ²`` of the sort's coupling term (:func:`fit_coupled_line`: ``coupled`` = its coefficients
    ``(gain, b, σ²·gain)`` and their covariance), less the rounding's ``rounding_adu2`` (in ``σ²``, not in
    the detail variances it is removed from): ``b = read² − gain·offset``, so
    ``offset = (σ² − rounding − b) / gain``. Returns the offset, its standard error, ``read²`` (ADU²) and
    its variance (first-order propagation)."""
    (g, b, c), cov = coupled
    read2 = c / g - rounding_adu2
    offset = (read2 - b) / g
    grad_offset = np.array([-2.0 * c / g**3 + (rounding_adu2 + b) / g**2, -1.0 / g, 1.0 / g**2])
    grad_read2 = np.array([-c / g**2, 0.0, 1.0 / g])
    return (float(offset), math.sqrt(max(float(grad_offset @ cov @ grad_offset), 0.0)), float(read2),
            max(float(grad_read2 @ cov @ grad_read2), 0.0))


def zero_variance_level_adu(gain: float, intercept: float, gain_se: float, intercept_se: float,
                            cov_gain_intercept: float) -> tuple[float, float]:
    """Where the line ``var = gain·mean + intercept`` reaches zero variance, ``−intercept/gain`` (ADU),
    and its standard error (first-order propagation). ``offset − read²/gain`` for a camera, ``0`` for a
    photon counter (no offset, no read noise)."""
    if not gain > 0:
        return math.nan, math.inf
    level = -intercept / gain
    grad = np.array([intercept / gain**2, -1.0 / gain])  # d level / d (gain, intercept)
    cov = np.array([[gain_se**2, cov_gain_intercept], [cov_gain_intercept, intercept_se**2]])
    return float(level), math.sqrt(max(float(grad @ cov @ grad), 0.0))


def zero_crossing_tolerance_adu(gain: float, level_adu: float, level_se: float, dark_adu: float) -> float:
    """How far from 0 ADU the zero-variance level (``level_adu ± level_se``, :func:`zero_variance_level_adu`)
    of integer counts from zero may read. The smaller of

    * :data:`ZERO_CROSSING_SE` standard errors: the line is consistent with a counter;
    * :data:`ZERO_CROSSING_MISFIT` of the darkest level above the line's zero: taking the offset as 0
      changes the block's variance at the darkest level by ``gain·level``, at most that share (a camera
      misread as a counter keeps nearly its noise);

    each plus one step of the quantized MAD variance at the darkest level, in ADU of mean
    (``2·1.4826·σ·(1/6) / gain``): a bias neither contains (on a counter over 10 photons/px the level
    read +0.9 ± 0.2 ADU with the plain MAD, the step is 1.5). The bins' MAD is no longer quantized
    (:func:`_lattice_mad`; the level reads +0.6 ± 0.2 ADU there); the step is kept as a margin for the
    MAD's remaining bias on photon-poor bins."""
    if not gain > 0:
        return 0.0
    above = max(dark_adu - level_adu, 0.0)  # the variance at the darkest level is gain times this
    step = 2.0 * _MAD_TO_SIGMA * math.sqrt(gain * above) * _DETAIL_STEP_ADU / gain
    return min(ZERO_CROSSING_SE * level_se, ZERO_CROSSING_MISFIT * above) + step


def fit_noise(images: list[np.ndarray], *, offset_adu: float | None = None, n_bins: int = 40,
              max_level: float | None = None, floors: list[float | None] | None = None,
              gain_adu_per_photon: float | None = None,
              line: tuple[float, float, float, float, float] | None = None, leak_check: bool = True) -> NoiseFit:
    """Fit the Poisson–Gaussian line to ``images`` (raw ADU, one camera); see the module doc.
    ``floors``: per image, the value of its clipped floor (:func:`srlab.data.defects.clipped_floor`) or
    ``None``; ``gain_adu_per_photon``: the slope when known (a camera's data sheet: 1/(e⁻ per ADU)), so
    that only the intercept is fitted — where the fitted slope is biased (:data:`LEAK_RATIO`); ``line``:
    the whole line measured elsewhere,
    ``(gain, gain_se, intercept, intercept_se, their covariance)`` (:mod:`srlab.calibration.frames`:
    repeated frames), so that nothing is fitted to the images' own variances — they are still the points.
    ``leak_check=False`` leaves out the slope through the 4th-difference filter (``gain_4th_adu_per_photon``
    is then nan), which only calibrate's leak note (:data:`LEAK_RATIO`) reads.

    Standard errors come from the weighted fit, scaled up by √χ² when the bins scatter more than
    their own errors (structure left in the detail band)."""
    from srlab.calibration.threads import per_image

    images = [np.asarray(im, np.float64) for im in images]
    floors = list(floors) if floors is not None else [None] * len(images)
    integer = all(per_image(lambda im: bool(np.array_equal(im, np.round(im))), images))
    zeros = sum(per_image(lambda im: int(np.count_nonzero(im == 0)), images)) if integer else 0
    counting = (integer and zeros >= ZERO_BASED_SHARE * sum(im.size for im in images)
                and not any(floor == 0 for floor in floors) and not offset_adu)
    pairs = pixel_pairs(images, floors=floors)
    levels = detail_levels(images) if counting else None
    # a camera's read noise does not follow the bins' sort (sort_coupling); a counter has none
    coupling, coupling4 = (None, None) if counting else (_MEAN_NORM2, _MEAN4_NORM2)
    mu, var, se, *u = binned_points(pairs, n_bins=n_bins, max_level=max_level, step=detail_step(integer),
                                    levels=levels, coupling=coupling, split=True)
    u = u[0] if u else None
    if mu.size < 4:
        raise SrlabError("the images' noise cannot be measured: nearly every pixel is at or next to their clipped "
                         "floor (background subtracted?) — calibrate the raw acquisitions")
    if integer:
        var = var - 1.0 / 12.0
    if line is not None:
        gain_adu_per_photon = line[0]
    fit = fit_coupled_line(mu, var, se, u, slope=gain_adu_per_photon)
    gain, gain_se, b, b_se, cov_gb, used, coupled_levels = fit[:7]
    line_levels = mu if coupled_levels is None else coupled_levels
    if line is not None:  # the points used are those the images' intercept would have used
        gain, gain_se, b, b_se, cov_gb = (float(x) for x in line)
    # whether the sort's coupling is determined is the pooled fit's call: the per-image fits and the leak
    # check's filter follow it (with a fifth of the points each, an image's own test is noise)
    if coupled_levels is None:
        coupling = coupling4 = None
    # each image's own points from the same pixels: its own line (GAIN_SPREAD) and a level of its own under
    # one slope (LEVEL_CHI2); then the pixels are let go
    gains, level_chi2, intercepts, pooled_gain = (), math.nan, (), math.nan
    if gain_adu_per_photon is None and len(images) > 1:
        points = image_points(pairs, integer=integer, max_level=max_level, levels=levels, coupling=coupling,
                              split=True)
        gains = image_gains(points)
        common = common_slope_fit(points, decided=coupling is not None)
        level_chi2 = common.level_chi2
        # images of different slopes (rescaled one by one: GAIN_SPREAD) have no common one either
        if level_chi2 > LEVEL_CHI2 and bool(np.isfinite(common.intercepts).all()) and not slopes_disagree(gains):
            pooled_gain, gain, gain_se = gain, common.gain, common.gain_se
            w = 1.0 / common.intercept_ses**2
            b, b_se = float(np.sum(w * common.intercepts) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))
            cov_gb = float(np.sum(w * common.gain_intercept_cov) / np.sum(w))
            intercepts = tuple(float(x) for x in common.intercepts)
            # the points shown with the line: each image's, moved to the mean intercept
            var = np.concatenate([p[1] - (bi - b) for p, bi in zip(points, intercepts)])
            se = np.concatenate([p[2] for p in points])
            used = np.concatenate(common.used)
            line_levels = common.levels
    del pairs, levels
    gain_4th = math.nan
    if gain_adu_per_photon is None and leak_check:
        pairs4 = pixel_pairs(images, floors=floors, fourth=True)
        levels4 = detail_levels(images, fourth=True) if counting else None
        if intercepts:
            # the same fit as the gain's (a level per image), through the other filter (LEAK_RATIO)
            points4 = image_points(pairs4, integer=integer, max_level=max_level, fourth=True, levels=levels4,
                                   coupling=coupling4, split=True)
            if all(p[0].size >= 4 for p in points4):
                gain_4th = common_slope_fit(points4, decided=coupling4 is not None).gain
        else:
            mu4, var4, se4, *u4 = binned_points(pairs4, n_bins=n_bins, max_level=max_level,
                                                step=detail_step(integer, fourth=True), levels=levels4,
                                                coupling=coupling4, split=True)
            if mu4.size >= 4:
                gain_4th = fit_coupled_line(mu4, var4 - (1.0 / 12.0 if integer else 0.0), se4,
                                            u4[0] if u4 else None, decided=True)[0]
        del pairs4, levels4
    darkest = per_image(darkest_level_adu, images)
    # under a floor at 0 the darkest level is the clipped pixels' mean; the pixels' own level is below it
    own_b = intercepts or (b,) * len(images)
    darkest = [unclipped_level_adu(level, gain, bi) if floor == 0 else level
               for level, floor, bi in zip(darkest, floors, own_b)]
    dark = float(np.median(darkest))
    crossing, crossing_se = zero_variance_level_adu(gain, b, gain_se, b_se, cov_gb)
    if offset_adu is not None:
        offset, offset_se, given, method = float(offset_adu), 0.0, True, "given"
    elif any(floor == 0 for floor in floors):
        offset, offset_se, given = dark, float(np.std(darkest)) / math.sqrt(len(images)), False
        method = CLIPPED_FLOOR_OFFSET
    elif integer and zeros >= ZERO_BASED_SHARE * sum(im.size for im in images):
        offset, offset_se, given, method = 0.0, 0.0, True, ZERO_BASED_OFFSET
    elif integer and line is None and \
            abs(crossing) <= zero_crossing_tolerance_adu(gain, crossing, crossing_se, dark) and \
            dark - crossing > ZERO_CROSSING_SE * crossing_se:
        # a counter over more background than leaves 1 % zeros (e^-4.6): the line still vanishes at 0 (not
        # on a line given: repeated frames' intercept, extrapolated from their darkest level, is too loose
        # to tell a counter from a camera — srlab's 10× frames of 128² at 3000 photons put its zero at −25
        # to 119 ± 64–85 ADU for 92)
        offset, offset_se, given, method = 0.0, 0.0, True, ZERO_CROSSING_OFFSET
    else:
        offset, offset_se, given = dark, float(np.std(darkest)) / math.sqrt(len(images)), False
        method = "darkest level (upper bound)"
        nonshot = None
        if fit.coupled is not None and line is None and not intercepts:
            nonshot = nonshot_offset_adu(fit.coupled, 1.0 / 12.0 if integer else 0.0)
        # a read noise: σ² above 0 by its error (structure leaking into the detail band, under a given gain,
        # had read it below 0 and the offset −45000 ADU); an offset: at most the darkest level (an upper
        # bound) and not below 0 ADU, each by its error
        if nonshot is not None and all(map(math.isfinite, nonshot)) and \
                nonshot[2] > NONSHOT_OFFSET_SIGMAS * math.sqrt(nonshot[3]) and \
                -NONSHOT_OFFSET_SIGMAS * nonshot[1] <= nonshot[0] <= dark + NONSHOT_OFFSET_SIGMAS * nonshot[1]:
            offset, offset_se, given, method = min(nonshot[0], dark), nonshot[1], True, NONSHOT_OFFSET
    r2 = b + gain * offset
    if intercepts and not given:
        # each image's own level is its offset (its darkest level): the read noise of each line there
        r2 = float(np.median([bi + gain * level for bi, level in zip(intercepts, darkest)]))
    r2_var = b_se**2 + offset**2 * gain_se**2 + 2 * offset * cov_gb + gain**2 * offset_se**2
    if method == NONSHOT_OFFSET and offset < dark:
        # the offset came from σ², so b's error is already in it: the read noise is σ² less the rounding
        r2, r2_var = nonshot[2], nonshot[3]
    read = math.sqrt(max(r2, 0.0))
    read_se = math.sqrt(max(r2_var, 0.0)) / (2.0 * max(read, math.sqrt(max(r2_var, 0.0)) ** 0.5, 1e-6))
    return NoiseFit(gain_adu_per_photon=gain, gain_se=gain_se, intercept_adu2=b, intercept_se=b_se,
                    offset_adu=offset, offset_se=offset_se, offset_given=given, offset_method=method,
                    read_noise_adu=read,
                    read_noise_se=read_se, dark_level_adu=dark, dark_levels_adu=tuple(darkest),
                    integer_data=integer, zero_variance_level_adu=crossing, zero_variance_level_se=crossing_se,
                    # each point at its level on the line (sort_coupling)
                    bin_mean=line_levels, bin_var=var, bin_se=se, bin_used=used,
                    gain_given=gain_adu_per_photon is not None,
                    gain_4th_adu_per_photon=gain_4th, image_gains=gains, level_chi2=level_chi2,
                    image_intercepts_adu2=intercepts, pooled_gain_adu_per_photon=pooled_gain,
                    read_variance_adu2=float(r2), read_variance_se=math.sqrt(max(r2_var, 0.0)))
