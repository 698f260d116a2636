"""The camera's gain from repeated exposures of one still field (``srlab calibrate --gain-frames``).

One image's noise fit (:mod:`srlab.calibration.noise`) separates noise from structure with a detail
filter, which assumes the structure is smooth over 3×3 pixels. Undersampled images break that: at 160–650
nm pixels under a widefield PSF the specimen varies from pixel to pixel and leaks into the noise estimate,
so the gain reads high and the photons low — srlab's own 20× widefield preset at 1500 photons and its 10×
at 3000 (gain 2 ADU per photon) read 20 and 58 ADU/photon (docs/calibration-methods.md). Two exposures of the same field cancel the structure whatever the sampling:
their difference holds only the noise. That is the photon-transfer method of the camera standard (EMVA
Standard 1288, release 4.0, 2021: the temporal variance from the difference of two frames), here over the
range of intensities the specimen itself provides instead of a series of flat fields.

What is followed: frames ``a``, ``b`` of one field, the variance of ``(a − b)/√2`` against the mean
``(a + b)/2``, pixel by pixel; a fixed pattern (hot pixels, pixel-to-pixel offsets) cancels too. For
Poisson counts ``var(a − b | a + b) = g·(a + b)``, so sorting the pixels into bins by their own noisy mean
does not bias the variance within a bin (Gaussian read noise adds the same ``σ²`` to both). What is
adapted:

* a change between the frames that follows the image — bleaching or a brightness change (the difference
  proportional to the mean) and a small drift (proportional to its gradient) — is fitted over each pair
  and removed first. srlab's 20× widefield preset at 1500 photons (gain 2) reads 1.985 (sd 0.051 over
  eight noise draws, stated error 0.042); a 5 % dimmer second frame 1.93–1.97 on three presets (20 %:
  1.85–2.00); a drift of 0.1 px 1.93–2.02 on one field of each preset and 2.08–2.11 on another 20×
  field. Without the fit, the 20× frames 20 % dimmer read 1.96 pixel by pixel and 2.42 through the 3×3
  filter, those drifting by 0.1 px 2.53 and 2.14: both are refused as not white noise (below). A fitted
  drift above :data:`MAX_DRIFT_PX` is refused: the gradient of an undersampled image does not predict its
  shifted copy well;
* the differences are also read through the noise fit's 3×3 detail filter (which removes any smooth
  change the fit missed): white noise reads the same gain through both, and a file whose two gains
  differ by more than :data:`~srlab.calibration.noise.LEAK_RATIO`, and by more than
  :data:`WHITE_NOISE_SIGMAS` standard errors, is refused (the field changed, or the frames are processed;
  the second condition because few small frames scatter past the ratio by chance). The plain differences give the gain: their pixels are independent, so the
  stated error is the scatter (through the filter, neighbouring values are correlated and the error
  reads half the scatter);
* where every file has two pairs or more (four frames), each pair's pixels are put into bins by the mean
  of the *other* pairs of its file, and each bin's point is the pair's own mean and the plain variance of
  its differences: the sort is independent of the pair's noise, so no pixel lands in a bin by its own
  noise excursion and the point lies on the line whatever the field (the selection-on-independent-data
  rule). Sorted by its own two-frame mean instead, a mostly empty field's read noise in that mean spreads
  the background's pixels over bins off the line (:func:`srlab.calibration.noise.sort_coupling`; four 512²
  sparse frames, gain 2, read 0.94 at 5 photons of peak, 1.73 at 800 over 10 of background); cross-sorted,
  four 512² frames of srlab's widefield specimens at 5–1500 photons over 0.5–10 of background, sparse
  (a twentieth of the density) or dense, read 1.96–2.04 (six frames 1.99–2.03), with errors a half to a
  fifth of before (docs/calibration-methods.md, *Frames of a mostly empty field*);
* in that cross-binned path, differences beyond :data:`OUTLIER_SIGMAS` standard deviations of the line
  (a cosmic-ray hit) are left out and the line refitted: the plain variance, unlike the one-pair path's
  MAD, weighs each of them as thousands of noise pixels;
* a file of one pair (two or three frames) is sorted by its own mean; where the coupling term is
  determined through the 3×3 filter (a mostly empty field), the line is the filtered differences' with
  that term (their errors doubled, as below): 1.92 and 1.88 on the sparse frames above; that stack's
  white-noise comparison is not made (its pixel-by-pixel line is the biased one);
* disjoint pairs (frames 1–2, 3–4, ...), so that the pairs' points are independent; the bins, the robust
  variances, the rounding correction and the trimmed line are the noise fit's
  (:func:`~srlab.calibration.noise.binned_points`, :func:`~srlab.calibration.noise.fit_line`).

The frames must come from the camera setting of the images (gain, readout mode, offset). Their line
replaces the images' own: its slope, the gain, and its intercept ``σ² − g·offset``, which on undersampled
images is as biased as the slope (the leaked structure adds variance at every level: on the 20× preset at
1500 photons, with the true offset and gain, the images' intercept gives a read noise of 12.3 ± 2.5 e⁻ for
2, the frames' 2.4 ± 1.1). The images still give the offset (the darkest level, unless given or from dark frames),
the background and the levels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from srlab.errors import SrlabError

#: The largest drift between two frames of a pair (pixels, as the gradient term fits it: 1.3× the true
#: shift on undersampled images). On srlab's 20× and 10× widefield presets a fitted 0.11–0.13 px reads the
#: gain 0.4–5 % high (depending on the field), 0.20 px 1–2 % on one field, 0.26–0.27 px 8–10 %; well-sampled
#: widefield 4 % at 0.34 px.
MAX_DRIFT_PX = 0.15
#: :func:`measure_gain` refuses a file whose two gains (pixel by pixel, through the 3×3 filter) differ by more
#: than LEAK_RATIO only where the difference is also this many standard errors: four raw frames of 128² on
#: an undersampled field read 2.04 ± 0.15 against 1.74 ± 0.07 ADU/photon (truth 2; ratio 1.17, 1.4
#: standard errors with the filtered error doubled, see the module doc); smoothed frames differ by many.
WHITE_NOISE_SIGMAS = 3.0
#: ``Σw²`` (= ``Σh²w``) of the mean that sorts the filtered differences, over both frames' pixels: the h²-weighted
#: mean of the two frames' mean (:func:`srlab.calibration.noise.sort_coupling`).
FILTERED_MEAN_NORM2 = 0.125
#: In the cross-binned path (every file ≥ 4 frames), a pixel's difference farther from 0 than this many
#: standard deviations of the noise line at its level is left out and the line refitted (``measure_gain``):
#: the bins' plain variances weigh every pixel, so a cosmic-ray hit of hundreds of ADU counts in its bin as
#: thousands of noise pixels do. The line's variance is raised by one photon's ``g²``, so that a photon-poor
#: counter's or EMCCD's single photons, many standard deviations of a near-empty bin, stay. Four 256² frames
#: of srlab's 20× and 10× widefield presets at 60–1500 photons, gain 2, with hits (~500 ADU, exponential) in
#: 0.1 % of each frame's pixels: 1.66–4.35 or refused as not white noise without it, 2.00–2.15 with it (the
#: clean frames 1.98–2.07); in 0.01 %, 1.97–2.07 without, 1.99–2.06 with. Clean frames leave no pixel out at
#: 6 (three draws each): sCMOS sparse at 5–15 photons and dense at 1500, photon counters at 0.02–0.05 of
#: background, EMCCDs (EM gain 100–300) at 0.5–2 photons; at 5 a sparse field's 1e-5, at 4 1e-4 of a sparse
#: or bright field's pixels (at 3: 3e-3, −3 % on the gain). Pixels whose noise is larger but steady (random
#: telegraph or noisy sCMOS pixels: 1 % of the pixels toggling by ~30 ADU) act as read noise, mostly on the
#: intercept: the gain moves 0–3.5 % on the same frames, with or without the clip.
OUTLIER_SIGMAS = 6.0
#: At most this many refits of the line with the outliers of the last one left out (they stop earlier once
#: the set left out no longer changes).
OUTLIER_PASSES = 3
#: How the gain's estimate names this method (the summary shows the part before the colon).
FRAME_GAIN_METHOD = "repeated frames"


@dataclass(frozen=True)
class FrameGain:
    """The gain read off pairs of repeated frames, and how the frames differed besides their noise."""

    gain_adu_per_photon: float
    gain_se: float
    intercept_adu2: float  # b = read_noise² − gain·offset, as in NoiseFit
    intercept_se: float
    gain_intercept_cov: float
    gain_filtered_adu_per_photon: float  # the differences through the 3×3 detail filter (white noise: the same)
    n_pairs: int
    n_files: int
    drift_px: float  # the largest fitted drift between the frames of a pair
    brightness_change: float  # the largest fitted relative change of the signal between them
    bin_mean: np.ndarray
    bin_var: np.ndarray
    bin_se: np.ndarray
    bin_used: np.ndarray
    flag: str = "--gain-frames"
    sparse_field: bool = False  # read through the 3×3 filter with the sort's coupling (measure_gain)
    cross_sorted: bool = False  # each pair's pixels sorted by the other pairs' mean (every file ≥ 4 frames)
    outlier_fraction: float = 0.0  # the share of the pixel-by-pixel differences left out as outliers (cross-sorted)

    @property
    def method(self) -> str:
        sparse = ", a mostly empty field: through the 3×3 filter" if self.sparse_field else ""
        cross = ", each pair binned by the other pairs' mean" if self.cross_sorted else ""
        if self.outlier_fraction > 0:
            cross += f", {self.outlier_fraction:.2g} of the pixels' differences left out as outliers"
        return (f"{FRAME_GAIN_METHOD} ({self.flag}, {self.n_pairs} pair(s) in {self.n_files} file(s){sparse}{cross}): variance of "
                f"their difference vs mean (EMVA 1288 photon transfer); largest drift {self.drift_px:.2f} px and "
                f"brightness change {self.brightness_change:.1%} between two frames, fitted and removed")


def load_gain_frames(paths: list[Path], *, flag: str = "--gain-frames", channel: int | None = None,
                     channel_flag: str = "--channel") -> list[tuple[str, np.ndarray]]:
    """Each file's frames, ``(label, stack)`` (``channel`` of a multi-channel file); one
    :class:`SrlabError` line for a file of one frame, frames that are not whole counts, saturated or too
    small (the checks of the images' :func:`~srlab.calibration.load_raw`)."""
    from srlab.calibration import MIN_SIDE_PX, _saturated, read_frames

    stacks = []
    for path in paths:
        # a one-channel stack is read whatever the channel (recorded in that channel alone), as dark frames are
        _, frames, _ = read_frames(path, flag, channel=channel, channel_flag=channel_flag, any_channel_if_one=True)
        where = f"{flag} {path}"
        if len(frames) < 2:
            raise SrlabError(f"{where}: one frame; give a stack of at least 2 repeated exposures of one still field "
                             f"(a short time series of a fixed sample)")
        if min(frames.shape[-2:]) < MIN_SIDE_PX:
            raise SrlabError(f"{where}: {frames.shape[-2]}×{frames.shape[-1]} px is too small (at least "
                             f"{MIN_SIDE_PX}×{MIN_SIDE_PX})")
        if not np.array_equal(frames, np.round(frames)):
            raise SrlabError(f"{where}: pixels that are not whole counts (rescaled or processed frames?); give the "
                             f"raw frames as the camera wrote them")
        for k, frame in enumerate(frames):
            if _saturated(frame, float(frame.max())):
                raise SrlabError(f"{where}[{k}]: saturated (pixels at the top grey level {frame.max():g}); the "
                                 f"noise of clipped pixels is not the camera's: acquire with less gain/exposure")
        stacks.append((str(path), frames))
    return stacks


def _change_removed(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``a − b`` less the least-squares change that follows the image: a level, a multiple of the mean
    ``m = (a + b)/2`` (bleaching, a brightness change) and of its gradients (a drift); with the fitted
    relative change and drift (pixels)."""
    m = (a + b) / 2.0
    gy, gx = np.gradient(m)
    x = np.stack([np.ones(m.size), m.ravel(), gx.ravel(), gy.ravel()], 1)
    coef, *_ = np.linalg.lstsq(x, (a - b).ravel(), rcond=None)
    residual = (a - b) - (x @ coef).reshape(m.shape)
    return residual, abs(float(coef[1])), math.hypot(float(coef[2]), float(coef[3]))


def _window_points(diff: np.ndarray, mean: np.ndarray, h1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``h²``-weighted mean, ``h``-filtered difference / √2) over each whole window of ``h1 ⊗ h1``
    (``h1 = [1]``: each pixel's own)."""
    from srlab.calibration.noise import _separable_valid

    return (_separable_valid(mean, h1**2).ravel(), _separable_valid(diff, h1).ravel() / math.sqrt(2.0))


def measure_gain(stacks: list[tuple[str, np.ndarray]], *, flag: str = "--gain-frames") -> FrameGain:
    """The photon-transfer line of the frames' differences (see the module doc); one :class:`SrlabError`
    line for a drift above :data:`MAX_DRIFT_PX`, differences that are not white noise, or too few pixels."""
    from srlab.calibration.noise import (
        _H1,
        LEAK_RATIO,
        LineFit,
        _separable_valid,
        binned_points,
        fit_coupled_line,
        fit_line,
    )
    from srlab.data.defects import clipped_floor

    rounding = 1.0 / 12.0  # whole counts (load_gain_frames): each frame's rounding, 2/12 in a difference, halved

    # every file of two pairs or more: each pair's pixels sorted by the other pairs' mean (module doc)
    cross = all(len(frames) >= 4 for _, frames in stacks)

    def binned(points: list) -> tuple[np.ndarray, ...]:
        """:func:`binned_points` of ``points`` ``(sort key, difference, near a floor, own level)``: with
        ``cross``, the bins' levels are the pixels' own means and the variance the plain one (the sort is
        independent of them); else the pixels sorted by their own mean (robust variances)."""
        if cross:
            return binned_points([q[:3] for q in points], levels=[q[3] for q in points])
        return binned_points([q[:3] for q in points])

    def line(points: list) -> tuple[float, float]:
        mu, var, se = binned(points)
        return fit_line(mu, var - rounding, se)[:2] if mu.size >= 4 else (math.nan, math.nan)

    def filtered_lines(points: list) -> tuple[tuple[float, float], tuple[LineFit, np.ndarray, np.ndarray] | None]:
        """The filtered differences' plain (gain, error) and, where the sort's coupling is determined (a
        mostly empty field sorted by its own means, module doc), their coupled line (its ``levels``: the
        points' levels on it) with the points' variances and errors (else ``None``), from one binning."""
        if cross:
            return line(points), None
        mu, var, se, extra = binned_points([q[:3] for q in points], coupling=FILTERED_MEAN_NORM2)
        var = var - rounding
        if mu.size < 4:
            return (math.nan, math.nan), None
        fit = fit_coupled_line(mu, var, se, extra)
        if fit.levels is None:
            return fit[:2], None
        return fit_line(mu, var, se)[:2], (fit, var, se)

    def without_outliers(points: list, gain: float, b: float) -> tuple[list, list[np.ndarray]]:
        """``points`` less the pixels whose difference is an outlier of the line ``gain·level + b``
        (:data:`OUTLIER_SIGMAS`), and the masks of those left out."""
        masks = [d**2 > OUTLIER_SIGMAS**2 * (np.maximum(gain * level + b + rounding, 0.0) + gain**2)
                 for _, d, _, level in points]
        return [(key[~m], d[~m], None if near is None else near[~m], level[~m])
                for (key, d, near, level), m in zip(points, masks)], masks

    def clipped(points: list) -> tuple[list, float, tuple[float, float] | None]:
        """``points`` less the outliers of their line, refitted without them (at most
        :data:`OUTLIER_PASSES` times); the share left out, and the last line's ``(gain, b)``."""
        kept, masks, last = points, None, None
        for _ in range(OUTLIER_PASSES):
            mu, var, se = binned(kept)
            if mu.size < 4:
                break
            gain, _, b, *_ = fit_line(mu, var - rounding, se)
            if not (gain > 0 and math.isfinite(b)):
                break
            last = (gain, b)
            new_kept, new = without_outliers(points, gain, b)
            # converged: the line leaves out what the last one did (on clean frames, nothing: one binning)
            if (all(not m.any() for m in new) if masks is None
                    else all(np.array_equal(m, n) for m, n in zip(masks, new))):
                break
            kept, masks = new_kept, new
        if masks is None:
            return points, 0.0, last
        return kept, sum(int(m.sum()) for m in masks) / sum(m.size for m in masks), last

    pairs, filtered, drifts, changes, files = [], [], [], [], []
    for label, frames in stacks:
        first = len(pairs)
        measured = []  # per pair: (difference, mean, pixels near a clipped floor)
        for k in range(0, len(frames) - 1, 2):
            a, b = (np.asarray(f, np.float64) for f in (frames[k], frames[k + 1]))
            diff, change, drift = _change_removed(a, b)
            if drift > MAX_DRIFT_PX:
                raise SrlabError(f"{flag} {label}: the field moved by about {drift:.2f} px between frames {k} and "
                                 f"{k + 1} (at most {MAX_DRIFT_PX:g}: the structure of undersampled images then "
                                 f"reads as noise); give consecutive exposures of a still field")
            # pixels whose window holds a clipped floor pixel have a shrunken difference: left out
            floors = [frame == frame.min() for frame in (a, b) if clipped_floor(frame)]
            measured.append((diff, (a + b) / 2.0, np.logical_or.reduce(floors) if floors else None))
            drifts.append(drift)
            changes.append(change)
        for j, (diff, mean, touches) in enumerate(measured):
            # the sort key: the other pairs' mean (cross), else the pair's own
            key = np.mean([m for i, (_, m, _) in enumerate(measured) if i != j], axis=0) if cross else mean
            for h1, out in ((np.ones(1), pairs), (_H1, filtered)):
                level, d = _window_points(diff, mean, h1)
                near = None
                if touches is not None:
                    n = len(h1)
                    near = ndimage.maximum_filter(touches, size=n, mode="nearest")[
                        n // 2:touches.shape[0] - n // 2, n // 2:touches.shape[1] - n // 2].ravel()
                # the key's window mean alone (the difference is filtered once, above)
                out.append((_separable_valid(key, h1**2).ravel() if cross else level, d, near, level))
        files.append((label, first, len(pairs)))
    outliers = 0.0
    if cross:
        # the plain variances weigh every pixel (the own-sorted bins' MADs do not need this)
        pairs, outliers, fit = clipped(pairs)
        if fit is not None:
            # through the filter white noise has the same line; the filtered differences' own line can be
            # broken by the hits (a negative slope where each spreads over its 3×3 neighbours), so the
            # pixel-by-pixel one judges them — processed frames still read apart through the filter
            filtered = without_outliers(filtered, *fit)[0]
    for label, first, last in files:
        # white noise reads the same through both filters; a change the fit missed, or processing, does not —
        # except on a mostly empty field sorted by its own means, where the pixel-by-pixel line is biased
        # (module doc): not compared
        (own_filtered, filtered_se), sparse = filtered_lines(filtered[first:last])
        if sparse is not None:
            continue
        own, own_se = line(pairs[first:last])
        # through the filter neighbouring values are correlated: its stated error is about half the scatter
        apart = abs(own - own_filtered) > WHITE_NOISE_SIGMAS * math.hypot(own_se, 2.0 * filtered_se)
        if not (own > 0 and own_filtered > 0) or (
                not 1.0 / LEAK_RATIO <= own / own_filtered <= LEAK_RATIO and apart):
            raise SrlabError(f"{flag} {label}: the frames' differences are not white noise (gain {own:.3g} ADU/photon "
                             f"pixel by pixel, {own_filtered:.3g} through the 3×3 detail filter): the field changed between "
                             f"frames, or they are processed (smoothed, denoised); give raw exposures of a still field")
    mu, var, se = binned(pairs)
    if mu.size < 4:
        raise SrlabError(f"{flag}: too few pixels off a clipped floor to measure the gain; give larger frames")
    gain, gain_se, b, b_se, cov, used = fit_line(mu, var - rounding, se)
    var = var - rounding
    (gain_filtered, _), sparse = filtered_lines(filtered)
    if sparse is not None:
        # the filtered differences' neighbouring values are correlated: their stated errors are about half the
        # scatter (module doc), hence doubled
        fit, var, se = sparse
        gain, b, used, mu = fit.gain, fit.intercept, fit.used, fit.levels
        gain_se, b_se, cov = 2.0 * fit.gain_se, 2.0 * fit.intercept_se, 4.0 * fit.gain_intercept_cov
    return FrameGain(gain, gain_se, b, b_se, cov, gain_filtered, len(drifts), len(stacks), max(drifts), max(changes),
                     mu, var, se, used, flag, sparse_field=sparse is not None, cross_sorted=cross,
                     outlier_fraction=outliers)
