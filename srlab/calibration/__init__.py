"""``srlab calibrate``: estimate an acquisition from its own images, and the simulator data block that
reproduces it.

From a user's real LR images (and, optionally, a few unpaired HR images of the target modality) this
package estimates, each with a standard uncertainty:

* the effective PSF FWHM (:mod:`~srlab.calibration.resolution`: a Gaussian-PSF fit to the power
  spectrum above the measured noise floor; and :mod:`~srlab.calibration.spots`: Gaussian fits of
  isolated bright spots, which the block uses when there are at least 30), with image decorrelation
  analysis (Descloux et al. 2019) and single-image FRC (Koho et al. 2019) as cross-checks;
* the camera: gain (ADU per detected photon), offset and read noise (:mod:`~srlab.calibration.noise`,
  after Foi et al. 2008), hence the photon level of the signal;
* the background level and its spatial variation, and the intensity histogram
  (:mod:`~srlab.calibration.background`).

:func:`calibrate` returns a :class:`Calibration`; :mod:`~srlab.calibration.block` turns it into a data
block (``kind: simulated``) and :mod:`~srlab.calibration.figure` draws the check figure. The simulated
LR resolution is set with ``psf_fwhm_nm`` (a Gaussian PSF of the measured FWHM, see
:class:`srlab.data.config.ModalityConfig`), not by solving for an effective NA: the measured quantity
is a width, and an NA would also change the axial sectioning and the out-of-focus blur.

Uncertainties: every per-image estimate is combined over images by the median; its uncertainty is the
larger of the fit's own standard error and the images' spread (1.25·sd/√n, the standard error of a
median). They are statistical: the model errors (a non-Gaussian PSF, objects wider than the label)
are not in them — the figure's real-vs-simulated comparison is where those show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srlab.calibration.background import background, histogram_summary
from srlab.calibration.dark import DarkFrames
from srlab.calibration.frames import FrameGain
from srlab.calibration.noise import (
    CLIPPED_FLOOR_OFFSET,
    COUNTS_FROM_ZERO,
    LEAK_RATIO,
    LEVEL_CHI2,
    LEVEL_NOTE_SHIFT,
    NONSHOT_OFFSET,
    ZERO_BASED_OFFSET,
    NoiseFit,
    block_offset_adu,
    darkest_level_depth_adu,
    filtered,
    filtered_text,
    fit_noise,
    levels_all_occupied,
)
from srlab.calibration.resolution import Decorrelation, SpectrumFit, decorrelation, fit_psf_spectra
from srlab.calibration.spots import MIN_SPOTS, spot_fwhm_images
from srlab.calibration.threads import per_image
from srlab.data.defects import (
    HOT_PIXEL_FWHM_FRACTION,
    Fill,
    clipped_floor,
    fill_region,
    hot_pixels,
    replace_by_neighbour_median,
)
from srlab.errors import SrlabError, unknown_choice
from srlab.optics.modality import PRESETS, RENDERINGS, SCANNING, STORM_PRECISION_NM
from srlab.optics.psf import FWHM_PER_SIGMA
from srlab.smlm.localizations import is_table

#: The method of a side's ``psf_fwhm_nm`` when isolated spots give it (else the power spectrum's)
SPOT_FIT_METHOD = "isolated-spot fits"
#: Below this PSF FWHM (pixels, from the power spectrum) the block takes the spectrum's width even where
#: there are enough isolated spots: neighbours closer than ~2 px are detected as one spot, so on
#: undersampled images "isolated spots" are mostly unresolved groups. srlab's 10× and 20× widefield
#: presets (FWHM 1.03 px): spot fits 1.4–2.4× the true FWHM, the spectrum (aliasing modelled) −17 to +4 %;
#: the well-sampled presets are ≥ 2.5 px (STED's photon-poor spectrum reads ≥ 2.1 px).
SPOT_MIN_FWHM_PX = 1.5
#: Above this ratio of the spots' FWHM to the spectrum's the block takes the spectrum's width: the
#: "isolated spots" are resolved objects (a spot's width² is the PSF's plus the object's), not the PSF.
#: On srlab's own images (six 192² per preset, seeds 3–4, broad and four-structure priors) spots that
#: read the PSF within 12 % are 0.88–1.17× the spectrum; at STED resolution the puncta, pits and
#: clusters are wider than the PSF and the spots read +67 to +108 % (1.44–2.1×); with enough of them
#: (≥ 30: four 384² STED images, seeds 3–5) the block had taken them. On pySTED's fifteen STED images
#: (realcheck's seed 0; not used to choose this) the spots read +75 % (1.88×), the spectrum −7 %.
SPOT_SPECTRUM_MAX_RATIO = 1.3

#: Default target (HR) preset for each LR preset.
DEFAULT_TARGET = {"widefield": "sim", "tirf": "tirfsim", "confocal": "sted", "sted": "sted", "resolft": "resolft",
                  "sim": "sim", "tirfsim": "tirfsim", "widefield10x": "widefield20x", "widefield20x": "sim"}
#: Smallest side srlab calibrates (the spectrum needs rings, the noise fit pixels).
MIN_SIDE_PX = 64
#: Fraction of pixels at the top grey level above which an image counts as saturated.
SATURATED_FRACTION = 1e-3
#: A clip at a level other than full scale (a saturated image less its offset: 65535 − 100): the top
#: level holds this many times the mean count per level of the window below it (:data:`CLIP_WINDOW`:
#: 2 % of the level, 16 ADU at least), where an unclipped image's histogram thins out towards its maximum.
CLIP_SPIKE_RATIO, CLIP_WINDOW = 10.0, (0.02, 16.0)
#: Note the darkest-level background when smoothed shot noise alone would read it this share low.
BACKGROUND_DEPTH_NOTE = 0.15


@dataclass(frozen=True)
class Estimate:
    """A value with its standard uncertainty and how it was obtained."""

    value: float
    uncertainty: float
    unit: str
    method: str

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return f"n/a ({self.method})"
        return f"{_fmt(self.value, digits)} ± {_fmt(self.uncertainty, 2)} {self.unit}".rstrip()


def _fmt(x: float, digits: int) -> str:
    if not math.isfinite(x):
        return "nan"
    if x == 0:
        return "0"
    return f"{x:.{max(digits - 1 - math.floor(math.log10(abs(x))), 0)}f}"


def percentile_with_error(image: np.ndarray, q: float, *, integer: bool) -> tuple[float, float]:
    """One image's ``q``-th percentile of its pixels and its standard error, distribution-free: half the spread
    between the order statistics one binomial standard deviation of rank, ``√(n·p·(1−p))``, either side
    of it — what another field of the same kind would move it by, had its pixels been independent (a
    lower bound: a blurred image's brightest pixels come in PSF-sized groups; several images' scatter is
    taken where larger, :func:`combine`) — and for ``integer`` data at least the rounding to whole ADU
    (1/√12: the percentile of whole counts is one of them). Without it one image's reading stated no
    error at all (``combine`` of one value), nor did several images that read the same count (a
    photon-poor STED's 99.9th percentile)."""
    x = np.asarray(image, np.float64).ravel()
    n, p = x.size, q / 100.0
    if n < 2:
        return float(np.percentile(x, q)), math.nan
    rank, step = p * (n - 1), math.sqrt(n * p * (1.0 - p))
    # one partition for the percentile and its two neighbouring order statistics
    lo, value, hi = np.percentile(x, [100.0 * max(rank - step, 0.0) / (n - 1), q,
                                      100.0 * min(rank + step, n - 1) / (n - 1)])
    return float(value), max(float(hi - lo) / 2.0, 1.0 / math.sqrt(12.0) if integer else 0.0)


def combine(values: list[float], errors: list[float] | None = None) -> tuple[float, float]:
    """Median of per-image values; uncertainty = max(median fit error / √n, 1.25·sd/√n)."""
    v = np.array([x for x in values if math.isfinite(x)])
    if v.size == 0:
        return math.nan, math.nan
    n = v.size
    spread = 1.2533 * float(np.std(v, ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    fit = 0.0
    if errors is not None:
        e = np.array([x for x, y in zip(errors, values) if math.isfinite(y) and math.isfinite(x)])
        fit = float(np.median(e)) / math.sqrt(n) if e.size else 0.0
    return float(np.median(v)), max(spread, fit)


@dataclass
class Side:
    """Everything measured on one set of images (LR or HR)."""

    role: str  # "lr" or "hr"
    modality: str
    paths: list[Path]
    images: list[np.ndarray]
    pixel_size_nm: float
    bit_depth: int
    noise: NoiseFit
    spectra: list[SpectrumFit]
    decorrelations: list[Decorrelation]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    histogram: dict[str, float] = field(default_factory=dict)
    # per image: hot pixels replaced before measuring, the share of pixels on a clipped floor (0: none)
    # (srlab.data.defects)
    hot_pixels: tuple[int, ...] = ()
    clipped: tuple[float, ...] = ()
    frame_gain: FrameGain | None = None  # the noise line read off repeated frames (--gain-frames), if given
    # the images' ratio of exactly equal neighbours where it says they are filtered (noise.filtered), as loaded
    filtered_ratio: float | None = None

    @property
    def scanning(self) -> bool:
        return PRESETS[self.modality]["modality"] in SCANNING

    @property
    def rendering(self) -> bool:
        """An SMLM rendering (:data:`srlab.optics.modality.RENDERINGS`), not a detector's image."""
        return PRESETS[self.modality]["modality"] in RENDERINGS


@dataclass
class Calibration:
    """The result of :func:`calibrate`: the LR side, the HR side if ``--hr`` images were given, the
    target modality and the scale."""

    lr: Side
    hr: Side | None
    target: str
    scale: int
    notes: list[str] = field(default_factory=list)
    # the specimen prior of the block (srlab.calibration.block.specimen_prior): what the images show is
    # not measured, so the block takes a data block's structures and domain randomization
    prior: str = "sim_broad"
    # --hr-specimens: the HR images are also specimens of the block's simulation (srlab.data.user_specimens)
    hr_specimens: bool = False
    # the channel measured in multi-channel LR / HR files (--channel, --hr-channel); None: one-channel files
    channel: int | None = None
    hr_channel: int | None = None
    simulated: dict[str, Any] = field(default_factory=dict)  # filled by the check simulation
    # the prior's noise-free images the block's signal levels were solved on (srlab.calibration.lift), kept
    # for the check simulation, which images the same specimens
    lift: Any = None
    # the blur between the LR and the --hr images, from their spectra (srlab.calibration.relative_blur)
    relative_blur: Any = None


# ------------------------------------------------------------------------------------------------
# Loading and refusing bad input
# ------------------------------------------------------------------------------------------------
def read_frames(path: Path, flag: str = "", *, channel: int | None = None, channel_flag: str = "--channel",
                any_channel_if_one: bool = False) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One calibration file: its array as stored (``channel`` of a multi-channel file), its 2D frames
    (stacks unrolled) as float64 and its pixel size; one :class:`SrlabError` line (prefixed by ``flag``)
    for a multi-channel file without ``channel`` (the option is ``channel_flag``), a channel the file does
    not have (a one-channel file is read whatever ``channel`` says when ``any_channel_if_one``: a dark
    frame of the detector), a pixel type that is not numbers, NaN or infinite pixels."""
    from srlab.data.io import read_tiff, take_channel

    where = f"{flag} {path}".lstrip()
    array, axes, size = read_tiff(path)
    array, _ = take_channel(array, axes, channel, where=where, flag=channel_flag, purpose="calibrate",
                            any_channel_if_one=any_channel_if_one)
    if array.dtype.kind not in "uif" or array.dtype == bool:
        raise SrlabError(f"{where}: unsupported pixel type {array.dtype}")
    frames = np.asarray(array).reshape((-1,) + array.shape[-2:]).astype(np.float64)
    if not np.isfinite(frames).all():
        # a camera writes no NaN: a mask or the padding of a registration or other processing did
        raise SrlabError(f"{where}: NaN or infinite pixels (a mask, or the padding of a registered or processed "
                         f"image?); calibrate measures the camera from the raw acquisitions as the microscope wrote "
                         f"them (integer TIFFs)")
    return array, frames, size


def load_raw(paths: list[Path], *, pixel_size_nm: float | None, what: str,
             channel: int | None = None, float_hint: str = "", find_fills: bool = True
             ) -> tuple[list[np.ndarray], float, int, list[tuple[str, Fill]]]:
    """The 2D images of ``paths`` (stacks unrolled; ``channel`` of multi-channel files) as float64, the
    common pixel size, the bit depth, and the images (file, ``[plane]``) measured without their fill
    region (:func:`srlab.data.defects.fill_region`: such an image is cropped to the largest
    rectangle without it).

    One line (:class:`SrlabError`) for: no pixel size in a file and none given, mixed pixel sizes,
    multi-channel files without ``channel``, NaN or infinite pixels, floating-point pixels that are not
    whole counts (``float_hint`` ends that line), values beyond 16 bits, images smaller than 64 px (also
    once a fill region is left out), constant (empty) and saturated images. ``find_fills=False``: images
    whose empty areas are true zeros (SMLM renderings) are measured whole."""
    if not paths:
        raise SrlabError(f"no {what} images given")
    images: list[np.ndarray] = []
    sizes: dict[Path, float | None] = {}
    fills: list[tuple[str, Fill]] = []
    depth = 8
    containers: dict[int, Path] = {}  # bits of an integer file -> the first file of them
    for path in paths:
        array, frames, size = read_frames(path, channel=channel,
                                          channel_flag="--channel" if what == "LR" else "--hr-channel")
        sizes[path] = size
        if array.dtype.kind in "ui":
            depth = max(depth, 8 * array.dtype.itemsize)
            containers.setdefault(8 * array.dtype.itemsize, path)
            if len(containers) > 1:  # another camera mode or a converted copy: not one acquisition setting
                (low, a), (high, b) = min(containers.items()), max(containers.items())
                raise SrlabError(f"{what} images of mixed bit depths ({a}: {low}-bit, {b}: {high}-bit); "
                                 f"calibrate one acquisition setting at a time, as the camera wrote it")
        elif not np.array_equal(frames, np.round(frames)):
            # the noise model is the camera's, in its grey levels; rescaled or processed values have lost them
            raise SrlabError(f"{path}: floating-point pixels that are not whole counts (rescaled, background-"
                             f"subtracted or processed images?); " + (float_hint or
                             "calibrate measures the camera from the raw acquisitions as the microscope wrote "
                             "them (integer TIFFs)"))
        else:
            depth = max(depth, 16)  # whole counts stored as floats: the container says nothing of the bits
        if min(frames.shape[-2:]) < MIN_SIDE_PX:
            raise SrlabError(f"{path}: {frames.shape[-2]}×{frames.shape[-1]} px is too small to calibrate "
                             f"(at least {MIN_SIDE_PX}×{MIN_SIDE_PX})")
        for k, frame in enumerate(frames):
            label = f"{path}" + (f"[{k}]" if len(frames) > 1 else "")
            lo, hi = float(frame.min()), float(frame.max())
            if lo == hi:
                raise SrlabError(f"{label}: every pixel is {lo:g} (an empty image); remove it")
            fill = fill_region(frame) if find_fills else None
            if fill is not None:
                top, bottom, left, right = fill.rectangle
                if min(fill.shape) < MIN_SIDE_PX:
                    raise SrlabError(f"{label}: {fill.fraction:.0%} of it is a fill of value {fill.value:g} "
                                     f"(padding or a mask, not camera counts); the largest rectangle without it, "
                                     f"{fill.shape[0]}×{fill.shape[1]} px, is too small to calibrate (at least "
                                     f"{MIN_SIDE_PX}×{MIN_SIDE_PX})")
                frame = frame[top:bottom, left:right]
                fills.append((label, fill))
            if _saturated(frame, float(frame.max())):  # integer counts by now
                hi = float(frame.max())
                frac = float(np.mean(frame == hi))
                # an 8-bit file clipped at 255 is more often a 16-bit acquisition converted with a display range
                cause = ("converted to 8 bits with a display range that clips? give the raw 16-bit file, or "
                         if hi == 255 else "")
                raise SrlabError(f"{label}: saturated ({frac:.2%} of the pixels at the top grey level {hi:g}); "
                                 f"the noise and photon estimates need unclipped images: {cause}remove it or "
                                 f"acquire with less gain/exposure")
            images.append(frame)
    top = max(float(im.max()) for im in images)
    if top > 2**16 - 1:
        raise SrlabError(f"{what} images: values up to {top:g} ADU, beyond 16 bits; srlab's simulated detectors "
                         f"write 16-bit images, so calibrate takes images of at most 16 bits")
    flag = "--pixel-size-nm" if what == "LR" else "--hr-pixel-size-nm"
    if pixel_size_nm is not None:
        if not pixel_size_nm > 0:
            raise SrlabError(f"pixel size {pixel_size_nm}: must be > 0 nm")
        _plausible_pixel(float(pixel_size_nm), f"{flag} {pixel_size_nm:g}", flag, from_metadata=False)
        return images, float(pixel_size_nm), _bits(depth, top), fills
    missing = [p for p, s in sizes.items() if s is None]
    if missing:
        raise SrlabError(f"{missing[0]}: no pixel size in the file's metadata ({len(missing)} of {len(paths)} "
                         f"{what} file(s)); pass {flag}")
    values = sorted({round(s, 6) for s in sizes.values()})  # type: ignore[arg-type]
    if values[-1] > values[0] * 1.01:
        a = next(p for p, s in sizes.items() if round(s, 6) == values[0])  # type: ignore[arg-type]
        b = next(p for p, s in sizes.items() if round(s, 6) == values[-1])  # type: ignore[arg-type]
        raise SrlabError(f"{what} images have mixed pixel sizes ({a}: {values[0]:g} nm, {b}: {values[-1]:g} nm); "
                         f"calibrate one acquisition setting at a time")
    _plausible_pixel(values[0], f"{paths[0]}: pixel size {values[0]:g} nm from the file's metadata", flag,
                     from_metadata=True)
    return images, float(np.median(list(sizes.values()))), _bits(depth, top), fills  # type: ignore[arg-type]


#: Pixel sizes (nm) of light microscopes, generously: below, a value in µm given as nm; above, a screen
#: resolution (72 dpi) or a sample-stage unit in the metadata. srlab's simulator images specimens on a
#: grid of ~10 nm, so a pixel of tens of µm would also ask for an image of 10^10 grid points.
PLAUSIBLE_PIXEL_NM = (1.0, 20_000.0)


def _plausible_pixel(value_nm: float, what: str, flag: str, *, from_metadata: bool) -> None:
    low, high = PLAUSIBLE_PIXEL_NM
    if not low <= value_nm <= high:
        hint = (f"a screen resolution (72 dpi) in the metadata? pass {flag}" if from_metadata else
                f"{flag} takes nm" + (" (a size in µm given as nm?)" if value_nm < low else ""))
        raise SrlabError(f"{what}: not a microscope's pixel ({low:g} nm to {high / 1000:g} µm); {hint}")


#: The uncertainty of the ``storm`` preset's precision when no table measures it: common dyes and setups
#: localize to σ 10–20 nm.
STORM_PRECISION_RANGE_NM = 5.0
#: What ``--target storm`` asks of floating-point renderings.
RENDERING_HINT = ("an SMLM rendering with each localization drawn as a Gaussian has no counts left to measure: "
                  "give the localization tables (ThunderSTORM CSV) as --hr, or a histogram rendering "
                  "(localizations per pixel), or leave out --hr and pass --scale (the HR pixel is then the LR "
                  f"pixel / scale, the precision the storm preset's σ {STORM_PRECISION_NM:g} nm)")


def load_localization_tables(paths: list[Path], *, pixel_size_nm: float | None) -> tuple[list[np.ndarray], float,
                                                                                        Estimate | None]:
    """The ``storm`` target's HR from localization tables: each table's histogram rendering at
    ``pixel_size_nm`` (:func:`srlab.smlm.precision.histogram_image`), the pixel size, and the precision
    as a FWHM (2.355 σ, combined over tables as every estimate is): NeNA where every table has adjacent-
    frame pairs, else the RMS of the fitter's uncertainties where every table has them, else ``None`` (the
    preset's precision is then assumed). One line for a missing pixel size or a table too small to render."""
    from srlab.smlm.localizations import read_localizations_csv
    from srlab.smlm.precision import histogram_image, nena_precision, table_precision

    if pixel_size_nm is None:
        raise SrlabError("localization tables as --hr: give the rendering's pixel size, --hr-pixel-size-nm "
                         "(e.g. the LR pixel / 8), or --scale")
    if not pixel_size_nm > 0:
        raise SrlabError(f"--hr-pixel-size-nm {pixel_size_nm}: must be > 0 nm")
    images, nena, rms = [], [], []
    for path in paths:
        locs = read_localizations_csv(path)
        image = histogram_image(locs, pixel_size_nm)
        if min(image.shape) < MIN_SIDE_PX or not image.any():
            raise SrlabError(f"{path}: {len(locs)} localizations span {image.shape[0]}×{image.shape[1]} px at "
                             f"{pixel_size_nm:g} nm; calibrate needs at least {MIN_SIDE_PX}×{MIN_SIDE_PX}")
        images.append(image)
        nena.append(nena_precision(locs))
        rms.append(table_precision(locs))
    for found, label in ((nena, "NeNA, Endesfelder 2014"), (rms, "RMS of the fitter's uncertainties")):
        if all(p is not None for p in found):
            sigma, se = combine([p.sigma_nm for p in found], [p.se_nm for p in found])
            return images, float(pixel_size_nm), Estimate(
                FWHM_PER_SIGMA * sigma, FWHM_PER_SIGMA * se, "nm",
                f"localization precision ({label}; σ {sigma:.3g} nm, {len(found)} table(s))")
    return images, float(pixel_size_nm), None


def _bits(depth: int, top: float) -> int:
    """The bit depth the block's detector writes: the files' (at most 16), 12 for 16-bit files whose
    values stay below 4096 (a 12-bit camera's range)."""
    depth = min(depth, 16)
    return 12 if depth == 16 and top < 4096 else depth


def _saturated(frame: np.ndarray, top: float) -> bool:
    """Many pixels at the image's top value, and that value a full-scale grey level (2^k − 1) or a spike
    over the levels below it (:data:`CLIP_SPIKE_RATIO`: a clip less an offset) in patches, not single
    pixels (hot pixels stuck at one level)."""
    at_top = int(np.count_nonzero(frame == top))
    if at_top < SATURATED_FRACTION * frame.size:
        return False
    if top >= 255 and math.log2(top + 1).is_integer():
        return True
    if at_top == frame.size:  # a constant frame: empty, not clipped (refused as such where it matters)
        return False
    window = max(CLIP_WINDOW[0] * top, CLIP_WINDOW[1])
    below = int(np.count_nonzero((frame >= top - window) & (frame < top)))
    if at_top <= CLIP_SPIKE_RATIO * below / window:
        return False
    # a clip flattens bright structures into patches; hot pixels stuck at one level are single pixels
    # (repaired later, srlab.calibration.defects)
    mask = np.pad(frame == top, 1)
    core = mask[1:-1, 1:-1]
    touching = core & (mask[:-2, 1:-1] | mask[2:, 1:-1] | mask[1:-1, :-2] | mask[1:-1, 2:])
    return int(np.count_nonzero(touching)) >= 0.5 * at_top


# ------------------------------------------------------------------------------------------------
# Measuring one side
# ------------------------------------------------------------------------------------------------
def measure(role: str, modality: str, paths: list[Path], images: list[np.ndarray], pixel_size_nm: float,
            bit_depth: int, *, offset_adu: float | None = None, dark: DarkFrames | None = None,
            precision: Estimate | None = None, gain_adu_per_photon: float | None = None,
            frame_gain: FrameGain | None = None) -> Side:
    """Noise, resolution, background and histogram of one set of images (see the module doc); with
    ``dark`` frames (:mod:`~srlab.calibration.dark`) the offset and the read noise are theirs; with
    ``frame_gain`` (:mod:`~srlab.calibration.frames`) the gain is the one read off repeated frames, and
    with ``gain_adu_per_photon`` (a data sheet's) it is that one.

    SMLM renderings (``modality`` ``storm``): the "PSF" is the localization precision, ``precision`` (a
    FWHM measured from the localization tables, :func:`load_localization_tables`) when given, else the
    preset's, stated as assumed (the spectrum of a rendering is reported, not used); isolated spots are
    not fitted (a rendering's spots are labelled structures — pits, vesicles, filament pieces — tens of
    nm wide, or single counts, not the precision), and no floor is judged clipped (a pixel without
    localizations is a true zero)."""
    from srlab.metrics.frc import CHECKERBOARD_FLOOR_PX, checkerboard_frc_reading_nm

    if dark is not None:
        offset_adu = dark.offset_adu
    line = None  # the frames' whole noise line replaces the images' (srlab.calibration.frames)
    if frame_gain is not None:
        f = frame_gain
        line = (f.gain_adu_per_photon, f.gain_se, f.intercept_adu2, f.intercept_se, f.gain_intercept_cov)
    scanning = PRESETS[modality]["modality"] in SCANNING
    rendering = PRESETS[modality]["modality"] in RENDERINGS
    # before hot pixels are repaired: a repaired pixel takes a neighbour's value
    filtered_ratio = None if rendering else filtered(images)
    # a clipped floor's pixels and their neighbours are left out of the noise fit (srlab.calibration.noise)
    clipped = tuple(0.0 for _ in images) if rendering else tuple(per_image(clipped_floor, images))
    floors = [float(np.min(im)) if c else None for im, c in zip(images, clipped)]
    noise = fit_noise(images, offset_adu=offset_adu, floors=floors, gain_adu_per_photon=gain_adu_per_photon,
                      line=line)
    _check_gain(role, noise)
    # Hot pixels: found with the first fit (its robust bins stop below the top 0.5 %, which hot pixels are
    # in), repaired, and the line fitted again on the repaired images. Not on a clipped floor: there every
    # lone count above the floor stands out from neighbours at the floor.
    from srlab.data.simulate import resolve_modality

    min_fwhm_px = HOT_PIXEL_FWHM_FRACTION * resolve_modality(modality).fwhm_nm / pixel_size_nm
    hot = per_image(lambda ic: hot_pixels(ic[0], lambda level: noise.image_variance(ic[2], level),
                                          min_fwhm_px=min_fwhm_px) if not ic[1]
                    else np.zeros(ic[0].shape, bool), zip(images, clipped, range(len(images))))
    if any(m.any() for m in hot):
        images = per_image(lambda im_m: replace_by_neighbour_median(*im_m), zip(images, hot))
        noise = fit_noise(images, offset_adu=offset_adu, floors=floors, gain_adu_per_photon=gain_adu_per_photon,
                          line=line)
        _check_gain(role, noise)
    if dark is not None:
        _check_dark_level(dark, noise, "--dark" if role == "lr" else "--hr-dark")
    # the noise floor's error at the images' mean level lets their spectra correct it (resolution module doc)
    spectra = fit_psf_spectra(images, [noise.image_variance(i, im) for i, im in enumerate(images)],
                              camera=not scanning,
                              floor_rel_se=noise.variance_rel_se(float(np.mean([im.mean() for im in images]))))
    decorr = per_image(decorrelation, images)
    frc_readings = per_image(lambda im: checkerboard_frc_reading_nm(im, pixel_size_nm), images)
    frc = [resolution for resolution, _ in frc_readings]
    px = pixel_size_nm
    side = Side(role, modality, list(paths), images, px, bit_depth, noise, spectra.images, decorr,
                hot_pixels=tuple(int(m.sum()) for m in hot), clipped=clipped, frame_gain=frame_gain,
                filtered_ratio=filtered_ratio)
    fwhm, fwhm_err = spectra.fwhm_px * px, spectra.sigma_se_px * FWHM_PER_SIGMA * px
    if not math.isfinite(fwhm) and not rendering:
        raise SrlabError(f"{role.upper()} images: no structure above the noise in any image's spectrum (empty "
                         f"or pure-noise images?); give images with labelled structures")
    e = side.estimates
    spectrum = Estimate(fwhm, fwhm_err, "nm", "one Gaussian PSF fitted to all power spectra (Whittle)")
    # Beside it, the width of isolated bright spots (srlab.calibration.spots), where there are enough: a
    # direct measurement on point-like objects, free of the spectrum fit's power-law object model, so the
    # block takes it then (both are effective PSFs: the objects' own size widens either).
    e["psf_fwhm_spectrum_nm"] = spectrum
    if rendering:
        e["psf_fwhm_spots_nm"] = Estimate(math.nan, math.nan, "nm", "not used on SMLM renderings")
        # Without the tables, the preset's precision: the spectrum of a rendering sparse in counts is
        # unreliable (srlab's own renderings of σ 12 nm read 5–22 nm), so it is only reported.
        e["psf_fwhm_nm"] = precision if precision is not None else Estimate(
            PRESETS[modality]["psf_fwhm_nm"], FWHM_PER_SIGMA * STORM_PRECISION_RANGE_NM, "nm",
            f"assumed: the {modality} preset's precision, σ {STORM_PRECISION_NM:g} ± {STORM_PRECISION_RANGE_NM:g} nm "
            f"(no localization tables to measure it)")
    else:
        spots = spot_fwhm_images(images, offset_adu=noise.image_offsets_adu,
                                 gain_adu_per_photon=noise.gain_adu_per_photon,
                                 sigma_guess_px=fwhm / px / FWHM_PER_SIGMA)
        # The fits model a camera pixel (a Gaussian integrated over it: σ² + 1/12 px²); a scanned image samples
        # the PSF at the pixel centre, so there the fitted σ² is short by 1/12 px² (an STED PSF of σ 1 px read
        # 4 % narrow): added back
        sigma_px = math.sqrt(spots.sigma_px ** 2 + 1.0 / 12.0) if scanning and spots.sigma_px > 0 else spots.sigma_px
        sigma_se_px = spots.sigma_se_px * spots.sigma_px / sigma_px if sigma_px > 0 else spots.sigma_se_px
        spot_fwhm = Estimate(sigma_px * FWHM_PER_SIGMA * px, sigma_se_px * FWHM_PER_SIGMA * px, "nm",
                             f"mode FWHM of {spots.used} isolated spots (Poisson MLE Gaussian fits"
                             f"{', point-sampled pixels' if scanning else ''})")
        e["psf_fwhm_spots_nm"] = spot_fwhm
        if spots.enough and fwhm / px >= SPOT_MIN_FWHM_PX and spot_fwhm.value <= SPOT_SPECTRUM_MAX_RATIO * fwhm:
            e["psf_fwhm_nm"] = Estimate(spot_fwhm.value, spot_fwhm.uncertainty, "nm",
                                        f"{SPOT_FIT_METHOD} ({spots.used} spots >= {MIN_SPOTS})")
        elif spots.enough and fwhm / px >= SPOT_MIN_FWHM_PX:
            e["psf_fwhm_nm"] = Estimate(fwhm, fwhm_err, "nm", f"power spectrum ({spots.used} isolated spots read "
                                                              f"{spot_fwhm.value / fwhm:.2g}× its width, > "
                                                              f"{SPOT_SPECTRUM_MAX_RATIO:g}: resolved objects, not "
                                                              f"the PSF)")
        elif spots.enough:
            e["psf_fwhm_nm"] = Estimate(fwhm, fwhm_err, "nm", f"power spectrum (FWHM {fwhm / px:.2g} px < "
                                                              f"{SPOT_MIN_FWHM_PX:g}: undersampled, where isolated "
                                                              f"spots are mostly unresolved groups)")
        else:
            e["psf_fwhm_nm"] = Estimate(fwhm, fwhm_err, "nm", f"power spectrum ({spots.used} isolated spots "
                                                              f"< {MIN_SPOTS})")
    peaked = [d for d in decorr if math.isfinite(d.resolution_px)]
    e["decorrelation_resolution_nm"] = Estimate(
        *combine([d.resolution_px * px for d in peaked], [d.resolution_se_px * px for d in peaked]), "nm",
        "image decorrelation analysis (Descloux 2019)" + ("" if len(peaked) == len(decorr) else
                                                          f"; {len(peaked)} of {len(decorr)} images have a peak"))
    # a curve that never falls below 1/7 is a bound, not a failure: say so, rather than a bare n/a
    finer = sum(math.isfinite(floor) for _, floor in frc_readings)
    e["frc_resolution_nm"] = Estimate(*combine(frc), "nm", "single-image FRC, 1/7 (Koho 2019)" + (
        f"; {finer} of {len(images)} image(s) finer than its floor, {CHECKERBOARD_FLOOR_PX * px:.0f} nm "
        f"({CHECKERBOARD_FLOOR_PX:g} px)" if finer else ""))
    g = noise.gain_adu_per_photon
    if frame_gain is not None:
        gain_method = frame_gain.method
    elif noise.gain_given:
        gain_method = "given: 1 / e- per ADU"
    else:
        gain_method = "Poisson-Gaussian fit (Foi 2008)" + ("; one slope, a level per image" if noise.levels_differ
                                                           else "")
    e["gain_adu_per_photon"] = Estimate(g, noise.gain_se, "ADU/photon", gain_method)
    e["offset_adu"] = Estimate(noise.offset_adu, noise.offset_se, "ADU", noise.offset_method)
    e["read_noise_adu"] = Estimate(noise.read_noise_adu, noise.read_noise_se, "ADU",
                                   "line intercept at the offset" + ("" if noise.offset_given else
                                                                     " (upper bound: includes background shot noise)"))
    if dark is not None:
        e["offset_adu"] = Estimate(dark.offset_adu, dark.offset_se, "ADU", f"mean of {dark.method.split(',')[0]}")
        e["read_noise_line_adu"] = e["read_noise_adu"]  # the line's intercept, a cross-check
        e["read_noise_adu"] = Estimate(dark.read_noise_adu, dark.read_noise_se, "ADU", dark.method)
    bgs = per_image(background, images)
    level, level_err = combine([b.level_adu for b in bgs])
    spread, spread_err = combine([b.high_adu - b.low_adu for b in bgs])
    # The block's uniform background is the darkest level above the offset; the simulator adds the
    # out-of-focus haze above it itself (the median tile level and the spread are reported).
    bg_photons = max(noise.dark_level_adu - noise.offset_adu, 0.0) / g
    e["background_photons"] = Estimate(bg_photons, _darkest_level_se(noise) / g, "photons/px",
                                       "darkest level above the offset")
    # The darkest level is a low percentile of the smoothed image, so shot noise alone puts it below a
    # uniform background; how far, at this level and camera (reported, not applied: haze and blur push
    # it the other way, see darkest_level_depth_adu).
    depth = darkest_level_depth_adu(float(noise.variance(noise.dark_level_adu))) / g
    e["background_noise_depth_photons"] = Estimate(depth, depth * noise.gain_se / g, "photons/px",
                                                   "how far smoothed shot noise alone puts the darkest level below "
                                                   "a uniform background")
    e["background_median_photons"] = Estimate(max(level - noise.offset_adu, 0.0) / g, level_err / g,
                                              "photons/px", "median of 8×8 tiles' 5th percentile")
    e["background_variation_photons"] = Estimate(spread / g, spread_err / g, "photons/px",
                                                 "tiles' 10th–90th pct spread")
    # The simulator's signal level: 99.9th percentile of the signal above the background, in photons.
    # (from the block's offset: below 0 only under a clipped floor, where the pixels' own level is)
    dark = block_offset_adu(noise.offset_adu, noise.offset_method)
    # images of a level each (noise.LEVEL_CHI2) are each measured from their own darkest level, the offset
    # they were given (the block's offset is the median one)
    darks = noise.image_offsets_adu if noise.levels_differ else [dark] * len(images)
    readings = per_image(lambda im: percentile_with_error(im, 99.9, integer=noise.integer_data), images)
    peaks = [(p - d) / g - bg_photons for (p, _), d in zip(readings, darks)]
    e["signal_photons"] = Estimate(*combine(peaks, [err / g for _, err in readings]), "photons",
                                   "99.9th percentile above background")
    side.histogram = histogram_summary(images)
    return side


def _check_gain(role: str, noise: NoiseFit) -> None:
    if not noise.gain_adu_per_photon > 0:
        raise SrlabError(f"{role.upper()} images: the noise does not grow with the intensity (fitted gain "
                         f"{noise.gain_adu_per_photon:.3g} ADU/photon); these are not raw counts (processed, "
                         f"denoised or rescaled images?) — calibrate the raw acquisitions")


def calibrate(lr_paths: list[str | Path], *, modality: str = "widefield", target: str | None = None,
              hr_paths: list[str | Path] = (), pixel_size_nm: float | None = None,
              hr_pixel_size_nm: float | None = None, scale: int | None = None,
              offset_adu: float | None = None, hr_offset_adu: float | None = None, prior: str = "sim_broad",
              dark_paths: list[str | Path] = (),
              hr_dark_paths: list[str | Path] = (), hr_specimens: bool = False, channel: int | None = None,
              hr_channel: int | None = None, e_per_adu: float | None = None,
              hr_e_per_adu: float | None = None, gain_frame_paths: list[str | Path] = (),
              hr_gain_frame_paths: list[str | Path] = ()) -> Calibration:
    """Measure ``lr_paths`` (raw TIFFs of one acquisition setting) as ``modality`` and, if given,
    ``hr_paths`` as ``target``; see the module doc. ``prior`` names the data block whose specimens the
    calibrated block simulates; ``offset_adu``/``hr_offset_adu``: the LR/HR detector's known offset
    (else :func:`~srlab.calibration.noise.fit_noise` decides); ``dark_paths``/``hr_dark_paths``: dark
    frames of the LR/HR detector (offset and read noise, :mod:`~srlab.calibration.dark`); ``hr_specimens``: the block's simulation takes
    the HR images as specimens too; ``channel``/``hr_channel``: the channel measured in multi-channel LR/HR
    files (and in multi-channel dark frames of that detector); ``e_per_adu``/``hr_e_per_adu``: the LR/HR
    camera's conversion factor from its data sheet (electrons per ADU: the gain is then 1/it, not fitted;
    see :data:`~srlab.calibration.noise.LEAK_RATIO`); ``gain_frame_paths``/``hr_gain_frame_paths``: stacks
    of repeated exposures of one still field with the LR/HR camera, whose differences give the gain
    (:mod:`~srlab.calibration.frames`: undersampled images). Bad input is one :class:`SrlabError` line."""
    from srlab.calibration.block import specimen_prior
    from srlab.calibration.dark import load_dark, measure_dark
    from srlab.calibration.frames import load_gain_frames, measure_gain

    specimen_prior(prior)  # a wrong name is refused before any image is read
    if scale is not None and (isinstance(scale, bool) or scale < 1):
        raise SrlabError(f"--scale {scale}: must be >= 1")
    if dark_paths and offset_adu is not None:
        raise SrlabError("give --offset-adu or --dark, not both (the dark frames measure the offset)")
    if hr_dark_paths and hr_offset_adu is not None:
        raise SrlabError("give --hr-offset-adu or --hr-dark, not both (the dark frames measure the offset)")
    for flag, given in (("--hr-dark", bool(hr_dark_paths)), ("--hr-offset-adu", hr_offset_adu is not None)):
        if given and not hr_paths:
            raise SrlabError(f"{flag} needs --hr images (it is the HR detector's)")
    for flag, value in (("--e-per-adu", e_per_adu), ("--hr-e-per-adu", hr_e_per_adu)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SrlabError(f"{flag} {value:g}: must be > 0 (electrons per ADU, from the camera's data sheet)")
    if hr_e_per_adu is not None and not hr_paths:
        raise SrlabError("--hr-e-per-adu needs --hr images (it is the HR camera's)")
    for frames, sheet, flag, sheet_flag in ((gain_frame_paths, e_per_adu, "--gain-frames", "--e-per-adu"),
                                            (hr_gain_frame_paths, hr_e_per_adu, "--hr-gain-frames", "--hr-e-per-adu")):
        if frames and sheet is not None:
            raise SrlabError(f"give {sheet_flag} or {flag}, not both (the frames measure the gain)")
    if hr_gain_frame_paths and not hr_paths:
        raise SrlabError("--hr-gain-frames needs --hr images (it is the HR camera's)")
    if hr_specimens and not hr_paths:
        raise SrlabError("--hr-specimens needs --hr images (they are the specimens)")
    for flag, value in (("--channel", channel), ("--hr-channel", hr_channel)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SrlabError(f"{flag} {value}: a channel index >= 0")
    if hr_channel is not None and not hr_paths:
        raise SrlabError("--hr-channel needs --hr images (the channel of the HR files)")
    dark_frames = load_dark([Path(p) for p in dark_paths], channel=channel) if dark_paths else []
    hr_dark_frames = load_dark([Path(p) for p in hr_dark_paths], what="--hr-dark", channel=hr_channel) if hr_dark_paths else []
    dark = measure_dark(dark_frames) if dark_frames else None
    hr_dark = measure_dark(hr_dark_frames) if hr_dark_frames else None
    frame_gain = (measure_gain(load_gain_frames([Path(p) for p in gain_frame_paths], channel=channel))
                  if gain_frame_paths else None)
    hr_frame_gain = (measure_gain(load_gain_frames([Path(p) for p in hr_gain_frame_paths], flag="--hr-gain-frames",
                                                   channel=hr_channel, channel_flag="--hr-channel"),
                                  flag="--hr-gain-frames") if hr_gain_frame_paths else None)
    if modality not in PRESETS:
        raise unknown_choice("--modality", modality, PRESETS)
    target = target or DEFAULT_TARGET.get(modality, "sted")
    if target not in PRESETS:
        raise unknown_choice("--target", target, PRESETS)
    lr_paths = [Path(p) for p in lr_paths]
    images, px, depth, fills = load_raw(lr_paths, pixel_size_nm=pixel_size_nm, what="LR", channel=channel)
    _check_dark(dark, images, "--dark")
    lr = measure("lr", modality, lr_paths, images, px, depth, offset_adu=offset_adu, dark=dark,
                 gain_adu_per_photon=None if e_per_adu is None else 1.0 / e_per_adu, frame_gain=frame_gain)
    rendering = PRESETS[target]["modality"] in RENDERINGS  # the HR is a rendering of localizations
    hr, hr_kind = None, "none"
    if hr_paths:
        hr_paths = [Path(p) for p in hr_paths]
        tables = [is_table(p) for p in hr_paths]
        hr_kind = "tables" if all(tables) else "images"
        precision = None
        if any(tables):
            if not rendering:
                raise SrlabError(f"{hr_paths[tables.index(True)]}: a localization table as --hr needs --target "
                                 f"storm (the HR is then its histogram rendering)")
            if not all(tables):
                raise SrlabError(f"{hr_paths[tables.index(False)]}: give --hr as localization tables or as "
                                 f"images, not both")
            if hr_pixel_size_nm is None and scale is not None:
                hr_pixel_size_nm = px / scale
            hr_images, hr_px, precision = load_localization_tables(hr_paths, pixel_size_nm=hr_pixel_size_nm)
            hr_depth, hr_fills = _bits(16, max(float(im.max()) for im in hr_images)), []
        else:
            hr_images, hr_px, hr_depth, hr_fills = load_raw(
                hr_paths, pixel_size_nm=hr_pixel_size_nm, what="HR", channel=hr_channel,
                float_hint=RENDERING_HINT if rendering else "", find_fills=not rendering)

        ratio = px / hr_px
        if scale is None:
            if ratio < 0.999 or abs(ratio - round(ratio)) > 0.02 * ratio:
                raise SrlabError(f"LR pixel {px:g} nm / HR pixel {hr_px:g} nm = {ratio:.3g} is not an integer "
                                 f"scale; resample the HR images to LR pixel / scale (e.g. {px / 2:g} nm for x2)")
            scale = round(ratio)
        elif abs(ratio - scale) > 0.02 * scale:  # the simulated pairs' HR pixel is LR / scale
            raise SrlabError(f"--scale {scale}: LR pixel {px:g} nm / HR pixel {hr_px:g} nm = {ratio:.3g}; the "
                             f"--hr images' pixel must be LR / scale = {px / scale:g} nm (resample them, or "
                             f"--hr-pixel-size-nm where their metadata is wrong)")
        _check_dark(hr_dark, hr_images, "--hr-dark")
        hr = measure("hr", target, hr_paths, hr_images, hr_px, hr_depth, offset_adu=hr_offset_adu, dark=hr_dark,
                     precision=precision, gain_adu_per_photon=None if hr_e_per_adu is None else 1.0 / hr_e_per_adu,
                     frame_gain=hr_frame_gain)
    if scale is None and rendering:
        # a rendering's pixel is chosen, not an objective's: without --hr or --scale, the scale that comes
        # nearest (in log) to the preset's pixel, 20 nm (x4 from an 80 nm widefield pixel, x8 from 160 nm)
        from srlab.models.blocks import SCALES

        preset_px = PRESETS[target]["pixel_size_nm"]
        scale = min((s for s in SCALES if s > 1), key=lambda s: abs(math.log(px / s / preset_px)))
    scale = scale or 2
    cal = Calibration(lr=lr, hr=hr, target=target, scale=scale, prior=prior, hr_specimens=hr_specimens,
                      channel=channel, hr_channel=hr_channel)
    if hr is not None and not hr.rendering and not lr.rendering:
        from srlab.calibration.relative_blur import relative_blur, set_spectra

        cal.relative_blur = relative_blur(set_spectra(lr), set_spectra(hr), scale)
    cal.notes += _scale_notes(scale, px, hr=hr_kind)
    cal.notes += _dark_shape_notes("--dark", dark_frames, images)
    cal.notes += _dark_shape_notes("--hr-dark", hr_dark_frames, hr_images if hr is not None else [])
    cal.notes += _fill_notes("LR", fills) + (_fill_notes("HR", hr_fills) if hr is not None else [])
    cal.notes += [note for side in (lr, hr) if side is not None for note in _defect_notes(side)]
    cal.notes += [note for side in (lr, hr) if side is not None for note in _filtered_notes(side) + _leak_notes(side) + _gain_spread_notes(side) + _level_notes(side) + _read_noise_notes(side)]
    for side in (lr, hr):
        if side is not None and side.noise.offset_method in COUNTS_FROM_ZERO and not side.rendering:
            n = side.noise
            if n.offset_method == ZERO_BASED_OFFSET:
                why = ">= 1 % of the pixels at 0"
            else:
                why = (f"the noise line reaches zero variance at {n.zero_variance_level_adu:.2g} ± "
                       f"{n.zero_variance_level_se:.2g} ADU")
            cal.notes.append(f"{side.role.upper()}: integer counts from zero ({why}; darkest "
                             f"level {n.dark_level_adu:.2g} ADU): offset taken as 0, as for a photon counter "
                             f"(the darkest level is background); pass "
                             f"{'--offset-adu' if side is lr else '--hr-offset-adu'} if the detector has an offset")
            top = levels_all_occupied(side.images, n.gain_adu_per_photon)  # counts from zero are integers
            if top is not None:
                cal.notes.append(f"{side.role.upper()}: yet every level from 0 to {top} ADU holds pixels, which a photon "
                                 f"counter at the fitted {n.gain_adu_per_photon:.3g} ADU/photon cannot do (its "
                                 f"counts are multiples of its gain): a camera's images with a level subtracted "
                                 f"and clipped at 0 (background subtraction)? Read as a counter's, their gain is off "
                                 f"(1.7–2.6 for 2 on such dim images) — calibrate the raw acquisitions, or give "
                                 f"{'--e-per-adu' if side is lr else '--hr-e-per-adu'}")
        elif side is not None and side.noise.offset_method == NONSHOT_OFFSET:
            n, flag = side.noise, "--offset-adu or --dark" if side is lr else "--hr-offset-adu or --hr-dark"
            cal.notes.append(f"{side.role.upper()}: offset {n.offset_adu:.4g} ± {n.offset_se:.2g} ADU read off the "
                             f"noise line where only the read noise is left (dim, sparse images: the sort's coupling "
                             f"term, {n.dark_level_adu - n.offset_adu:.2g} ADU below the darkest level), not the "
                             f"darkest level; {flag} gives a measured one")
    if not lr.noise.offset_given:
        cal.notes.append("offset = darkest level of the images (one image cannot tell offset from background): "
                         "read noise is an upper bound; pass --offset-adu for a definite value")
    for side in (lr, hr):
        if side is None:
            continue
        bg, low = side.estimates["background_photons"].value, side.estimates["background_noise_depth_photons"].value
        if bg > 0 and low > BACKGROUND_DEPTH_NOTE * bg:
            cal.notes.append(f"{side.role.upper()} background {bg:.3g} photons/px is the darkest level of photon-poor "
                             f"images: smoothed shot noise alone would read a uniform background {low:.2g} "
                             f"photons/px ({low / bg:.0%}) low; haze or blur would read it high")
    if depth <= 8:
        cal.notes.append("8-bit images: quantization has removed information; noise below 1 ADU is not fitted")
    if lr.noise.gain_adu_per_photon < 0.2:
        cal.notes.append("gain < 0.2 ADU/photon: the noise is barely above quantization; the photon "
                         "counts are uncertain")
    return cal


def _scale_notes(scale: int, lr_pixel_nm: float, *, hr: str) -> list[str]:
    """A note when no network takes the block's scale (the block is still written: bicubic and the
    classical baselines take any), naming what gives one that they do; ``hr``: what ``--hr`` was
    (``none``, ``tables``, ``images``)."""
    from srlab.models.blocks import SCALES

    if scale in SCALES:
        return []
    usable = [s for s in SCALES if s > 1]
    fix = {"none": f"pass --scale {' or '.join(map(str, usable))}",
           "tables": f"render the tables at --hr-pixel-size-nm {' or '.join(f'{lr_pixel_nm / s:.4g}' for s in usable)}",
           "images": f"resample the HR images to the LR pixel / {' or '.join(map(str, usable))}"}[hr]
    return [f"x{scale}: srlab's networks take scales {', '.join(map(str, SCALES))}; {fix}"]


def _fill_notes(role: str, fills: list[tuple[str, Fill]]) -> list[str]:
    """The summary's line on a side's images measured without their fill region (:func:`load_raw`)."""
    if not fills:
        return []
    label, fill = fills[0]
    shares = [f.fraction for _, f in fills]
    share = f"{min(shares):.0%}" + (f"–{max(shares):.0%}" if max(shares) - min(shares) >= 0.005 else "")
    values = ", ".join(f"{v:g}" for v in sorted({f.value for _, f in fills}))
    top, _, left, _ = fill.rectangle
    note = (f"{role}: {len(fills)} image(s) hold a fill of value {values} ({share} of the image: padding or a mask, "
            f"not camera counts), each measured on its largest rectangle without it ({label}: "
            f"{fill.shape[0]}×{fill.shape[1]} px at row {top}, column {left})")
    return [note]


def _defect_notes(side: Side) -> list[str]:
    """The summary's lines on a side's hot pixels and clipped floors (:mod:`~srlab.data.defects`)."""
    notes = []
    n = len(side.images)
    hot = [k for k in side.hot_pixels if k]
    if hot:
        share = sum(hot) / sum(im.size for im in side.images)
        notes.append(f"{side.role.upper()}: {sum(hot)} hot pixel(s) in {len(hot)} of {n} image(s) "
                     f"({100 * share:.2g} % of the pixels: far above their neighbours, narrower than any PSF) "
                     f"replaced by their neighbours' median before measuring")
    clipped = [(c, float(np.min(im))) for c, im in zip(side.clipped, side.images) if c]
    if clipped:
        shares = [c for c, _ in clipped]
        head = (f"{side.role.upper()}: {len(clipped)} of {n} image(s) clipped at their lowest value "
                f"({min(shares):.0%}–{max(shares):.0%} of the pixels there, with a flat histogram above: "
                f"background subtracted or offset removed?); the noise line is fitted without the pixels "
                f"next to the floor")
        if side.noise.offset_method == CLIPPED_FLOOR_OFFSET:
            head += f", and their darkest level unclipped with it, {side.noise.offset_adu:.3g} ADU, is the block's offset"
            if side.noise.offset_adu < 0:
                head += " (below 0: the floor covers the darkest areas, and the block's camera clips at 0 as well)"
        elif any(f != 0 for _, f in clipped):
            floor = ", ".join(sorted({f"{f:g}" for _, f in clipped}))
            head += f"; the block's camera clips at 0, not at {floor} ADU as they do"
        else:  # a floor at 0 with the offset given (or counts from zero): the camera clips there too
            head += "; the block's camera clips at 0 as they do"
        notes.append(f"{head}. One level subtracted from every image is modelled, and a level per image is fitted "
                     f"(the block takes the median one); a rolling ball is not: the raw acquisitions calibrate best")
    return notes


def _filtered_notes(side: Side) -> list[str]:
    """The summary's line on a side whose neighbouring pixels are equal far more often than independent
    noise makes them (:data:`~srlab.calibration.noise.EQUAL_NEIGHBOURS_RATIO`): median-filtered (or
    otherwise filtered, or resampled) images, whose noise is not the camera's."""
    ratio = side.filtered_ratio
    if ratio is None:
        return []
    note = (f"{side.role.upper()}: {filtered_text(ratio)} (measured against pixels three apart; raw images "
            f"read 1). The images look median-filtered (Fiji's Despeckle, Median, Remove Outliers), or "
            f"otherwise filtered or resampled: their noise is not "
            f"the camera's — a fitted gain reads low and the block's photons high, and the block simulates raw "
            f"images, which these are not; calibrate (and train for) the raw acquisitions")
    return [note]


def _leak_notes(side: Side) -> list[str]:
    """The summary's line on a side whose fitted gain depends on the noise filter
    (:data:`~srlab.calibration.noise.LEAK_RATIO`): structure leaks into the noise estimate and the gain
    reads high, or the noise is not white (processed images) and it reads low; one ratio cannot tell which."""
    n = side.noise
    if side.rendering or n.gain_given or not n.gain_adu_per_photon > LEAK_RATIO * n.gain_4th_adu_per_photon:
        return []
    flag = "--e-per-adu" if side.role == "lr" else "--hr-e-per-adu"
    frames_flag = "--gain-frames" if side.role == "lr" else "--hr-gain-frames"
    note = (f"{side.role.upper()}: the gain reads {n.gain_adu_per_photon:.3g} ADU/photon through the 3×3 noise "
            f"filter and {n.gain_4th_adu_per_photon:.3g} through a 5×5 one (white noise reads the same through "
            f"both; the 3×3 one is used). Either structure leaks into the noise estimate — undersampled or bright "
            f"sharp structure: the gain reads high and the block's photons low (srlab's 10× widefield: 3× at 300 "
            f"photons, 20× at 3000); pass {flag} from the camera's data sheet (sCMOS/CCD: electrons per ADU), or "
            f"measure it with {frames_flag} (a few repeated exposures of one still field) — or "
            f"the noise is not white — images smoothed, denoised, deconvolved or resampled: the gain reads low "
            f"and the photons high (a Gaussian blur of σ 0.5 px: 5×); calibrate the raw acquisitions")
    return [note]


def _read_noise_notes(side: Side) -> list[str]:
    """The summary's line on a camera whose noise line, at the offset the user gave, passes below zero
    variance by more than its standard error: the read noise is then written as 0, a bound rather than a
    measurement. A gain read high from the images (structure in the detail band) pulls the line down at
    the offset: srlab's widefield preset at 800 photons over 60 of background, offset given, reads the gain
    2.12 for 2 and the variance there −8.7 ± 5.9 ADU² for 9 (measured 2026-12-06). Not where the dark
    frames give the read noise, the gain is not the images' (frames, data sheet), or the offset is 0 (a
    photon counter, whose variance at 0 is 0 and reads either side of it)."""
    n = side.noise
    if (side.rendering or n.offset_method != "given" or not n.offset_adu > 0 or n.gain_given
            or side.frame_gain is not None or "read_noise_line_adu" in side.estimates  # dark frames measured it
            or not n.read_variance_adu2 < -n.read_variance_se):
        return []
    dark = "--dark" if side.role == "lr" else "--hr-dark"
    frames, sheet = ("--gain-frames", "--e-per-adu") if side.role == "lr" else ("--hr-gain-frames", "--hr-e-per-adu")
    note = (f"{side.role.upper()}: at the given offset ({n.offset_adu:.4g} ADU) the noise line's variance is "
            f"{n.read_variance_adu2:.3g} ± {n.read_variance_se:.2g} ADU², below zero, where a camera's cannot be: the "
            f"read noise is written as 0, a bound, not a measurement — a gain read high from the images "
            f"({n.gain_adu_per_photon:.3g} ADU/photon; structure in the noise estimate) pulls the line down there. "
            f"{dark} frames measure the read noise; {frames} or {sheet} give a gain free of structure")
    return [note]


def _gain_spread_notes(side: Side) -> list[str]:
    """The summary's line on a side whose images' own noise lines disagree
    (:data:`~srlab.calibration.noise.GAIN_SPREAD`), unless structure leaking explains it (:func:`_leak_notes`)."""
    n = side.noise
    if side.rendering or not n.gains_disagree or _leak_notes(side):
        return []
    gains = [g for g, _ in n.image_gains if math.isfinite(g)]
    note = (f"{side.role.upper()}: the images' noise lines disagree: their own gains read {min(gains):.3g}–"
            f"{max(gains):.3g} ADU/photon, beyond their errors (one camera setting has one). Rescaled image by image "
            f"(Fiji's 'scale when converting'), processed, or taken at different gain settings? The block takes "
            f"the pooled line; calibrate raw images of one setting")
    return [note]


def _level_notes(side: Side) -> list[str]:
    """The summary's line on a side whose images' noise lines share a slope but not a level, fitted with a
    level per image (:data:`~srlab.calibration.noise.LEVEL_CHI2`) that moved the gain
    (:data:`~srlab.calibration.noise.LEVEL_NOTE_SHIFT`), unless structure leaking explains it
    (:func:`_leak_notes`)."""
    n = side.noise
    if side.rendering or not n.levels_differ or _leak_notes(side) or \
            abs(n.pooled_gain_adu_per_photon / n.gain_adu_per_photon - 1.0) <= LEVEL_NOTE_SHIFT:
        return []
    levels = n.dark_levels_adu
    note = (f"{side.role.upper()}: the images' noise lines have one slope but not one level (their intercepts "
            f"disagree beyond their errors, reduced chi2 {n.level_chi2:.3g} > {LEVEL_CHI2:g}): a background "
            f"subtracted image by image, or an offset that drifted? The gain is fitted with a level per image, "
            f"{n.gain_adu_per_photon:.3g} ADU/photon (one pooled line: {n.pooled_gain_adu_per_photon:.3g}); the "
            f"images' darkest levels read {min(levels):.4g} to {max(levels):.4g} ADU and the block takes " + (
                f"the offset {n.offset_method}, {n.offset_adu:.4g} ADU" if n.offset_given else
                "their median as its offset"))
    return [note]


def _dark_shape_notes(flag: str, frames: list[np.ndarray], images: list[np.ndarray]) -> list[str]:
    """A note where the dark frames are not of the images' size: their offset and read noise are then those
    of another region of the sensor (a full-chip dark beside cropped images, or another binning), which on an
    sCMOS, whose pixels each have their own offset and read noise, need not be the images' region's."""
    dark_shapes = sorted({f.shape for f in frames})
    image_shapes = sorted({im.shape for im in images})
    if not frames or not images or set(dark_shapes) & set(image_shapes):
        return []
    darks, ims = (", ".join(f"{h}×{w}" for h, w in shapes) for shapes in (dark_shapes, image_shapes))
    note = (f"{flag} frames are {darks} px, the images {ims}: the offset and read noise are another region's (or "
            f"binning's) of the sensor; an sCMOS's differ between regions — dark frames cropped as the images were "
            f"measure theirs")
    return [note]


def _check_dark(dark: DarkFrames | None, images: list[np.ndarray], flag: str) -> None:
    """Dark frames darker than the images' median (else they are not dark frames of that detector)."""
    if dark is None:
        return
    median = float(np.median([np.median(im) for im in images]))
    if dark.offset_adu >= median > 0:
        raise SrlabError(f"{flag}: mean level {dark.offset_adu:.4g} ADU is not below the images' median "
                         f"({median:.4g} ADU); these are not dark frames of this detector (shutter closed, "
                         f"same exposure and gain)")


def _check_dark_level(dark: DarkFrames, noise: NoiseFit, flag: str) -> None:
    """Dark frames whose level lies below the images' zero-variance level (their noise line's zero,
    ``offset − read²/gain``) by more than 3 standard errors plus the height of the images' darkest level
    above it: at that level the images' own noise would have a variance below zero, so the frames are not
    of this camera setting. All-zero frames (a photon counter's, or a blank file) beside a camera's images
    at an offset of 100 ADU had been taken as offset 0 and read noise 0, and the background written 3.5×
    high; a photon counter's zeros beside its own images pass (its line's zero is at 0 ADU)."""
    level, level_se = noise.zero_variance_level_adu, noise.zero_variance_level_se
    if not (math.isfinite(level) and math.isfinite(level_se)):
        return
    gap = level - dark.offset_adu
    if gap > 3.0 * level_se + max(noise.dark_level_adu - level, 0.0):
        raise SrlabError(f"{flag}: mean level {dark.offset_adu:.4g} ADU lies {gap:.3g} ADU below the level at which "
                         f"the images' noise has no variance left ({level:.4g} ± {level_se:.2g} ADU, the zero of "
                         f"their noise line): these are not dark frames of this camera setting (another offset, or "
                         f"a photon counter's zeros); give dark frames taken with the images' settings, or "
                         f"--offset-adu")


def _darkest_level_se(noise: NoiseFit) -> float:
    """Standard uncertainty (ADU) of the darkest level above the offset: the images' scatter
    (:func:`combine`; none from one image), the offset's and the gain's, combined."""
    _, scatter = combine(list(noise.dark_levels_adu))
    offset_se = noise.offset_se if noise.offset_given else 0.0  # else the offset *is* the darkest level
    level = max(noise.dark_level_adu - noise.offset_adu, 0.0)
    return math.sqrt(scatter**2 + offset_se**2 + (level * noise.gain_se / noise.gain_adu_per_photon) ** 2)


def pixel_photons_ok(value: float) -> float:
    """A photon count fit for the simulator (finite, >= 0)."""
    return max(float(value), 0.0) if math.isfinite(value) else 0.0
