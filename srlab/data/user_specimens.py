"""The user's own HR images as specimens of a simulated dataset (``data.simulation.hr_images``).

A synthetic specimen library, however broad, is not the user's specimen: on pySTED's fields (derived
from real STED images) a network trained on srlab's calibrated simulation with the broad prior stayed
below Richardson–Lucy while the same network trained on those fields' own pairs was well above it
(BENCHMARKS.md, realcheck). A user who has a few HR images of the target modality — unpaired, other
fields, the ``--hr`` images of ``srlab calibrate`` — has a sample of that specimen. This module turns
each into training pairs: the HR side is the user's image as acquired, the LR side is what srlab's
calibrated LR microscope would record of it.

It follows the classical way of making training pairs from high-quality images alone — degrade them
with a model of the low-quality acquisition (CARE, Weigert et al., Nat. Methods 2018, used it for
isotropic restoration and for their "synthetic" pairs) — with the calibrated physics of the block's
modalities instead of a generic degradation::

    LR = camera_LR( photons_LR( area_s( G_rel ⊛ (HR photons − HR background) ) ) )

* HR photons: the file's counts through the HR modality's camera inverted (offset, gain, EM gain),
  less its ``background_photons`` — the label density blurred by the HR PSF, with the HR image's noise;
* ``G_rel``: the Gaussian of FWHM √(FWHM_LR² − FWHM_HR²) between cameras, less the s × s integration
  where the pixels are scanned (:func:`srlab.data.physics.pair_blur`, the law every consumer of a
  block's relative blur uses: exact for Gaussian PSFs, the Gaussian of the same FWHM for an Airy or
  confocal one) — or, where the block sets ``hr_image_blur_fwhm_nm`` (opt-in; ``srlab calibrate`` reads
  the blur between the user's LR and HR images off their spectra, :mod:`srlab.calibration.relative_blur`,
  and prints it), the Gaussian of that FWHM; the synthetic pairs, whose PSFs are Gaussian, keep the
  quadrature;
* ``area_s``: the mean over s×s HR pixels, so that LR pixel ``i`` covers HR pixels ``s·i … s·i+s−1`` (the
  simulator's pairing). For a scanning LR modality this is the blurred image at the block's centre to
  within the blur's curvature over one HR pixel, small for a blur several pixels wide;
* ``photons_LR``: the simulator's photon law (:func:`srlab.data.simulate.calibrate`: the 99.9th
  percentile → ``signal_photons``, plus ``background_photons``);
* ``camera_LR``: the LR detector (Poisson, EM multiplication, read noise, gain, offset, bit depth).

What it cannot do, and why it is still worth it: the HR image's noise is in the target (so the
simulator's own targets stay acquired beside it: ``hr_target: noise_free`` is refused with
``hr_images``). Made of the whole image, the LR also carries that noise, blurred, and a network can
learn some of its target's noise from its input. With ``hr_image_photon_split`` the LR is made of one
binomial half of the image's photons and the target is the other half — independent noise, the
Noise2Noise argument (Lehtinen et al., ICML 2018) as ``srlab adapt``'s photon split uses it; each target
is then noisier, and unbiased. ``auto`` (the default, :data:`srlab.data.simulate.AUTO_PHOTON_SPLIT`)
splits a photon counter's images, where thinning is exact: on pySTED's STED (realcheck data, three
trainings) the ``--hr``-specimen rows gained +0.14 to +0.16 dB PSNR on average, every one of 12
training/row pairs up, SSIM −0.003; not a camera's: on psfmodels' SIM camera images it cost SSIM in
every training (docs/calibration.md, *Your HR images as specimens*). Renderings of localizations keep the
whole image (their counts are not Poisson photons). The
out-of-focus light is the HR modality's, not the LR one's; a field is only as large as the user's
image. Each HR image gets ``draws`` independent LR noise realizations, written as one stack so that
its slices stay in one split, and every such stack is a *training* image: the held-out validation and
test images stay the synthetic ones (a handful of user images is too few to hold one out, and a
held-out score on them would only measure the LR model above).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from srlab.errors import SrlabError

if TYPE_CHECKING:
    from srlab.data.simulate import SimulationSpec

#: File-name prefix of the user-specimen stacks in a simulated dataset (``hr_image_00.tif`` ...).
PREFIX = "hr_image_"
#: Version of what this module makes of a user's image (in the dataset's cache key): 2 = without its
#: fill region and hot pixels (:func:`without_defects`); 3 = the photon split (``hr_image_photon_split``).
VERSION = 3
#: At most this many LR noise realizations per HR image (a single small image would otherwise be
#: written hundreds of times to reach its share).
MAX_DRAWS = 128


def stem(index: int) -> str:
    """The file name (without ``.tif``) of the user's HR image ``index`` in a simulated dataset."""
    return f"{PREFIX}{index:02d}"


def is_user_source(source: str) -> bool:
    """Whether a simulated dataset's source (file stem) is one of the user's HR images."""
    return source.startswith(PREFIX)


def _file_key(path: str) -> tuple[str, int, int, int]:
    """What identifies a file's contents for this process's memos: path, size, inode, modification time."""
    st = Path(path).stat()
    return path, st.st_size, st.st_ino, st.st_mtime_ns


@functools.lru_cache(maxsize=256)
def _digest(key: tuple[str, int, int, int]) -> str:
    return hashlib.sha256(Path(key[0]).read_bytes()).hexdigest()[:16]


@functools.lru_cache(maxsize=256)
def _geometry(key: tuple[str, int, int, int]) -> tuple[int, tuple[tuple[float | None, int, int], ...]]:
    """A file's channel count and, per slice, its pixel size and shape (from the metadata and a memory map)."""
    from srlab.data.io import CHANNEL_AXES, read_tiff

    array, axes, pixel_nm = read_tiff(key[0], memmap=True)
    if "Y" not in axes or "X" not in axes:
        raise SrlabError(f"{key[0]}: image has axes '{axes}', expected Y and X")
    channels = max([array.shape[i] for i, a in enumerate(axes) if a in CHANNEL_AXES] or [1])
    h, w = array.shape[axes.index("Y")], array.shape[axes.index("X")]
    return channels, ((pixel_nm, h, w),) * (array.size // (h * w * channels))


def fingerprint(path: str | Path, where: str) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes: part of the dataset's cache key, so an edited
    image makes a new dataset. Memoized per file state: a block is resolved several times per run."""
    try:
        return _digest(_file_key(str(path)))
    except OSError as err:
        raise SrlabError(f"{where}: {path}: cannot read ({err.strerror or err})") from None


def resolve_paths(paths: Sequence[str], share: float, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Absolute paths and fingerprints of ``paths`` (``data.simulation.hr_images``), checked."""
    if not paths:
        return (), ()
    if not 0.0 < share < 1.0:
        raise SrlabError(f"{where}.hr_image_share={share}: must be in (0, 1)")
    resolved = []
    for p in paths:
        path = Path(str(p)).expanduser()
        if not path.is_file():
            raise SrlabError(f"{where}.hr_images: {p}: no such file")
        resolved.append(str(path.resolve()))
    if len(set(resolved)) != len(resolved):
        raise SrlabError(f"{where}.hr_images: a file is listed twice")
    return tuple(resolved), tuple(fingerprint(p, f"{where}.hr_images") for p in resolved)


def check_images(paths: Sequence[str], hr_pixel_size_nm: float, scale: int, where: str,
                 channel: int | None = None, *, rendering: bool = False) -> None:
    """Each image (every slice of a stack) at the HR pixel size where the file carries one, large
    enough (also without its fill region, unless the HR is a ``rendering`` of localizations, whose empty
    areas are true zeros), and with the channel ``channel`` (``hr_image_channel``) where it has several —
    checked when the block is resolved, before anything is written (memoized per file state)."""
    from srlab.smlm.localizations import is_table  # lazily: srlab.smlm reads files through srlab.data

    for path in paths:
        if is_table(path):
            _check_table(path, hr_pixel_size_nm, scale, where, channel, rendering)
            continue
        channels, slices = _geometry(_file_key(path))
        if channels > 1 and channel is None:
            raise SrlabError(f"{where}.hr_images: {path}: a {channels}-channel image; set "
                             f"{where}.hr_image_channel=0..{channels - 1} (srlab calibrate --hr-channel)")
        if channel is not None and not 0 <= channel < channels:
            raise SrlabError(f"{where}.hr_image_channel={channel}: {path} has {channels} channel(s) "
                             f"(valid: 0..{channels - 1})")
        for pixel_nm, h, w in slices:
            if pixel_nm and not math.isclose(pixel_nm, hr_pixel_size_nm, rel_tol=0.03):
                raise SrlabError(f"{where}.hr_images: {path}: pixel size {pixel_nm:g} nm, but the "
                                 f"block's HR pixel is {hr_pixel_size_nm:g} nm")
            if min(h, w) < 8 * scale:
                raise SrlabError(f"{where}.hr_images: {path}: {h}×{w} px is too small (needs >= {8 * scale} px)")
        for k, rect in enumerate(() if rendering else _fill_rectangles(_file_key(path), channel)):
            if rect is not None and min(rect[1] - rect[0], rect[3] - rect[2]) < 8 * scale:
                plane = f"[{k}]" if len(slices) > 1 else ""
                raise SrlabError(f"{where}.hr_images: {path}{plane}: the largest rectangle without its fill "
                                 f"region (padding or a mask) is {rect[1] - rect[0]}×{rect[3] - rect[2]} px, too "
                                 f"small (needs >= {8 * scale} px)")


def _check_table(path: str, hr_pixel_size_nm: float, scale: int, where: str, channel: int | None,
                 rendering: bool) -> None:
    """A localization table as a specimen: only of a rendering HR modality (its histogram at the HR
    pixel is the HR image), without a channel, and large enough once rendered."""
    if not rendering:
        raise SrlabError(f"{where}.hr_images: {path}: a localization table is a specimen of an SMLM rendering "
                         f"only (hr.modality: storm); give images for this HR modality")
    if channel is not None:
        raise SrlabError(f"{where}.hr_image_channel={channel}: {path} is a localization table, which has no "
                         f"channels")
    h, w = _table_rendering(_file_key(path), hr_pixel_size_nm).shape
    if min(h, w) < 8 * scale:
        raise SrlabError(f"{where}.hr_images: {path}: its localizations span {h}×{w} px at {hr_pixel_size_nm:g} nm, "
                         f"too small (needs >= {8 * scale} px)")


@functools.lru_cache(maxsize=16)
def _table_rendering(key: tuple[str, int, int, int], pixel_size_nm: float) -> np.ndarray:
    """The histogram rendering of a localization table at ``pixel_size_nm`` (float32 counts;
    :func:`srlab.smlm.precision.histogram_image`)."""
    from srlab.smlm.localizations import read_localizations_csv
    from srlab.smlm.precision import histogram_image

    return histogram_image(read_localizations_csv(key[0]), pixel_size_nm).astype(np.float32)


def _slices(path: str, channel: int | None, pixel_size_nm: float | None = None) -> list[np.ndarray]:
    """A file's 2D images: each slice of an image (``channel`` of a multi-channel one), or a localization
    table's rendering at ``pixel_size_nm`` (which a table needs)."""
    from srlab.data.io import load_images
    from srlab.smlm.localizations import is_table

    if is_table(path):
        assert pixel_size_nm is not None, "a localization table is rendered at the HR pixel size"
        return [_table_rendering(_file_key(path), pixel_size_nm)]
    return [im.image[0] for im in load_images(path, channel=channel)]


@functools.lru_cache(maxsize=256)
def _fill_rectangles(key: tuple[str, int, int, int], channel: int | None) -> tuple[tuple[int, int, int, int] | None, ...]:
    """Per slice of a file: the largest rectangle without its fill region (padding or a mask,
    :func:`srlab.data.defects.fill_region`), or ``None`` when it has none."""
    from srlab.data.defects import fill_region

    fills = (fill_region(image) for image in _slices(key[0], channel))
    return tuple(None if f is None else f.rectangle for f in fills)


def without_defects(acquired: np.ndarray, rectangle: tuple[int, int, int, int] | None,
                    spec: SimulationSpec) -> np.ndarray:
    """An HR image as ``srlab calibrate`` measured it: cropped to ``rectangle`` (the largest one without
    its fill region, when it has one), its hot pixels replaced by their neighbours' median — judged with
    the block's HR camera and PSF (:func:`srlab.data.defects.hot_pixels`; not on a clipped floor, where
    every lone count stands out) — so that a defect is not a specimen."""
    from srlab.data.defects import (
        HOT_PIXEL_FWHM_FRACTION,
        clipped_floor,
        hot_pixels,
        replace_by_neighbour_median,
    )

    image = acquired if rectangle is None else acquired[rectangle[0]:rectangle[1], rectangle[2]:rectangle[3]]
    if clipped_floor(image):
        return image
    hot = hot_pixels(image, spec.hr.camera.variance_adu2,
                     min_fwhm_px=HOT_PIXEL_FWHM_FRACTION * spec.hr.fwhm_nm / spec.hr.pixel_size_nm)
    return replace_by_neighbour_median(image, hot).astype(image.dtype) if hot.any() else image


def load_hr(spec: SimulationSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """The user's HR images (every slice of a stack its own image) without their defects
    (:func:`without_defects`), cropped to a multiple of the scale, as ``(image, photons above the HR
    background)``."""
    hr, s = spec.hr, spec.scale
    out = []
    for path in spec.hr_images:
        slices = _slices(path, spec.hr_image_channel, hr.pixel_size_nm)
        rectangles = (itertools.repeat(None) if hr.rendering  # its empty areas are true zeros, not padding
                      else _fill_rectangles(_file_key(path), spec.hr_image_channel))
        for image, rectangle in zip(slices, rectangles):
            image = without_defects(image, rectangle, spec)
            h, w = image.shape
            acquired = image[:h - h % s, :w - w % s]
            out.append((acquired, hr.camera.backward(acquired) - np.float32(hr.background_photons)))
    return out


def draws_per_image(spec: SimulationSpec, images: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """LR noise realizations per HR image so that the user's images hold ``hr_image_share`` of the
    dataset's HR pixels (at least 1, at most :data:`MAX_DRAWS`)."""
    synthetic = spec.n_images * spec.hr_size_px**2
    user = sum(a.size for a, _ in images)
    share = spec.hr_image_share
    return int(min(MAX_DRAWS, max(1, round(share / (1.0 - share) * synthetic / user))))


def lr_expected(spec: SimulationSpec, hr_photons: np.ndarray) -> np.ndarray:
    """Expected LR photons per pixel of an HR image in photons above its background (the model above):
    blurred by ``hr_image_blur_fwhm_nm`` where the block sets it (e.g. the blur that ``srlab calibrate``
    reads between the user's LR and HR images: a real PSF need not be the Gaussian whose FWHMs
    :func:`~srlab.data.physics.pair_blur` puts in quadrature), else by the block's two PSFs."""
    from srlab.data.physics import pair_blur
    from srlab.data.simulate import calibrate
    from srlab.optics.kernels import downsample, gaussian_blur
    from srlab.optics.psf import FWHM_PER_SIGMA

    if not spec.lr.fwhm_nm > spec.hr.fwhm_nm:
        raise SrlabError(f"data.simulation.hr_images: the LR PSF ({spec.lr.fwhm_nm:.0f} nm) is not wider than the "
                         f"HR PSF ({spec.hr.fwhm_nm:.0f} nm), so the LR image cannot be made from the HR one")
    fwhm_nm = spec.hr_image_blur_fwhm_nm if spec.hr_image_blur_fwhm_nm is not None else pair_blur(spec).fwhm_nm
    sigma_px = fwhm_nm / FWHM_PER_SIGMA / spec.hr.pixel_size_nm
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(hr_photons, np.float32))[None, None]
        low = downsample(gaussian_blur(x, sigma_px), spec.scale, "area")[0, 0].numpy()
    return calibrate(low, spec.lr)


def pairs(spec: SimulationSpec) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(stem, lr_stack, hr_stack)`` per user HR image, ``draws`` slices each (the paired loader matches
    slices). With ``hr_image_photon_split`` (a fraction ``p``; not for renderings) every slice is one
    binomial split of the image's photons (:meth:`srlab.optics.camera.Camera.split`): the LR is imaged
    from the share ``p``, the target is the rest — independent noise, so that the network cannot learn
    its target's noise from its input (module doc). Without, the LR camera images of independent noise
    of the whole image, and the image as acquired repeated as the target."""
    images = load_hr(spec)
    if not images:
        return
    draws = draws_per_image(spec, images)
    split = spec.hr_image_photon_split if not spec.hr.rendering else None
    background = np.float32(spec.hr.background_photons)
    for k, (acquired, photons) in enumerate(images):
        rng = np.random.default_rng([spec.seed, k, 5])  # streams 0-4 are the synthetic images'
        if split is None:
            expected = lr_expected(spec, photons)
            lr = np.stack([spec.lr.camera.forward(expected, rng) for _ in range(draws)])
            yield stem(k), lr, np.ascontiguousarray(np.broadcast_to(acquired, (draws, *acquired.shape)), np.float32)
            continue
        lrs, targets = [], []
        for _ in range(draws):
            seen, target = spec.hr.camera.split(acquired, split, rng)  # each a full exposure's grey levels
            lrs.append(spec.lr.camera.forward(lr_expected(spec, spec.hr.camera.backward(seen) - background), rng))
            targets.append(target)
        yield stem(k), np.stack(lrs), np.stack(targets).astype(np.float32)
