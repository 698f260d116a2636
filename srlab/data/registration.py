"""How far a pair's HR image is shifted against its LR image, and bringing a prediction into the HR's frame.

Real LR/HR pairs are two acquisitions (confocal then STED, a widefield image then the STORM stack that a
drift correction has moved): they are rarely registered to a fraction of an HR pixel. A prediction lies in
the LR's frame, so scoring it against a shifted HR penalizes every method by the shift, and a sharp one
more than a blurred one — bicubic interpolation loses least. ``srlab evaluate`` therefore measures each
pair's shift (always, and reports it) and, with ``--register``, moves every prediction — baselines and
runs alike — by that shift before scoring (a suite's ``register: true`` likewise). Training on such pairs
(``data.path`` of a paired block, ``data.register: true``) moves each HR into its LR's frame instead
(:func:`registered_pair`): a network trained on shifted targets learns to shift and blur.

The shift is that of the HR against the LR interpolated to the HR grid (bicubic), from the peak of their
cross-correlation: plain, not phase-normalized — the LR holds no signal above its cutoff, where phase
correlation would weigh noise as much as structure — after removing each image's mean and tapering its
edges (a Tukey window) so that the FFT's wrap-around does not pull the peak; the peak is refined to a
fraction of a pixel by a Gaussian (log-parabola) through it and its two neighbours on each axis, the
shape of the correlation of two blurred images. Nothing in it depends on any method's prediction, so one
shift serves all of them. scikit-image's ``registration.phase_cross_correlation(normalization=None)``
computes the same quantity (the tests compare them); it is not a dependency of srlab for this one function.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from scipy.signal.windows import tukey

#: Share of each side tapered by the window (a Tukey window's ``alpha``).
TAPER = 0.25
#: The shift is measured on the central square of at most this many HR pixels a side (a 2k × 2k HR image
#: needs no more to place its peak, and the padded FFT of a whole 8k image would take gigabytes).
MAX_SIDE_PX = 1024
#: A median shift of at least this many HR pixels gets a note when pairs are scored unregistered: well above
#: the measurement's own error on most fields (~0.1 px), well below the shifts that cost whole dB.
MISALIGNED_PX = 0.5


def _tapered(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    x = np.asarray(image, np.float64)
    return (x - x.mean()) * np.outer(tukey(h, TAPER), tukey(w, TAPER))


def _refine(before: float, peak: float, after: float) -> float:
    """Sub-pixel offset of a peak from three samples: a Gaussian through them where all are positive, else a
    parabola; within ±0.5 px."""
    if min(before, peak, after) > 0:
        before, peak, after = math.log(before), math.log(peak), math.log(after)
    denominator = before - 2.0 * peak + after
    if denominator >= 0:  # not a maximum (flat): no refinement
        return 0.0
    return float(np.clip(0.5 * (before - after) / denominator, -0.5, 0.5))


def hr_shift_px(lr_upsampled: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """The translation ``(dy, dx)`` in HR pixels of ``hr`` against ``lr_upsampled`` (the LR on the HR grid,
    same shape): ``hr(y, x) ≈ lr_upsampled(y - dy, x - dx)``. 2D images; for several channels pass their
    mean."""
    if lr_upsampled.shape != hr.shape or hr.ndim != 2:
        raise ValueError(f"hr_shift_px takes two 2D images of one shape, got {lr_upsampled.shape} and {hr.shape}")
    h, w = hr.shape
    top, left = max(h - MAX_SIDE_PX, 0) // 2, max(w - MAX_SIDE_PX, 0) // 2
    hr = hr[top:top + MAX_SIDE_PX, left:left + MAX_SIDE_PX]
    lr_upsampled = lr_upsampled[top:top + MAX_SIDE_PX, left:left + MAX_SIDE_PX]
    h, w = hr.shape
    shape = (2 * h, 2 * w)  # zero-padded: a linear, not circular, correlation
    spectrum = sfft.rfft2(_tapered(hr), shape) * np.conj(sfft.rfft2(_tapered(lr_upsampled), shape))
    correlation = sfft.irfft2(spectrum, shape)
    iy, ix = np.unravel_index(int(np.argmax(correlation)), shape)
    dy = _refine(correlation[iy - 1, ix], correlation[iy, ix], correlation[(iy + 1) % shape[0], ix])
    dx = _refine(correlation[iy, ix - 1], correlation[iy, ix], correlation[iy, (ix + 1) % shape[1]])
    # indices past the middle are negative lags
    lag_y = iy - shape[0] if iy > shape[0] // 2 else iy
    lag_x = ix - shape[1] if ix > shape[1] // 2 else ix
    return float(lag_y + dy), float(lag_x + dx)


def border_px(shift: tuple[float, float]) -> int:
    """The border to leave out of the scores of a prediction moved by ``shift``: what the move brings in from
    outside the image, and one pixel more for the interpolation."""
    return math.ceil(max(abs(shift[0]), abs(shift[1]))) + 1


def moved(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` (``(H, W)`` or ``(C, H, W)``) moved by ``shift`` HR pixels (cubic spline; the border that
    :func:`border_px` names is filled with the nearest values and left out of the scores)."""
    image = np.asarray(image, np.float32)
    offsets = (0.0,) * (image.ndim - 2) + tuple(shift)
    return ndimage.shift(image, offsets, order=3, mode="nearest").astype(np.float32)


def cropped(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side of its last two axes."""
    if border <= 0:
        return image
    return image[..., border:-border, border:-border]


def in_hr_frame(prediction: np.ndarray, reference: np.ndarray, shift: tuple[float, float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """``prediction`` moved into the reference's frame by its pair's ``shift``, and both without the border the
    move brings in (:func:`border_px`): what a registered score compares."""
    border = border_px(shift)
    return cropped(moved(prediction, shift), border), cropped(reference, border)


def pair_shift(lr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """The shift ``(dy, dx)`` in HR pixels of a pair's HR against its LR (``(C, h, w)`` and ``(C, s·h, s·w)`` as
    read): :func:`hr_shift_px` of the channels' means on the central region it measures (cut from the LR
    first, so a large image is never interpolated whole), the LR bicubic-interpolated (as the bicubic
    baseline: torch's, pixel centres aligned). No intensity normalization: the correlation's peak does not
    move with an image's offset or gain."""
    import torch

    h, w = np.shape(lr)[-2:]
    side = MAX_SIDE_PX // scale
    top, left = max(h - side, 0) // 2, max(w - side, 0) // 2
    low = np.asarray(lr[..., top:top + side, left:left + side], np.float32).mean(axis=0)
    high = np.asarray(hr[..., scale * top:scale * (top + side), scale * left:scale * (left + side)],
                      np.float32).mean(axis=0)
    with torch.inference_mode():
        up = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(low))[None, None],
                                             scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].numpy()
    return hr_shift_px(up, high)


def registered_pair(lr: np.ndarray, hr: np.ndarray, scale: int
                    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """A pair as read (``(C, h, w)``, ``(C, s·h, s·w)``) with its HR moved into the LR's frame by the measured
    shift, both without the border the move brings in (whole LR pixels, so that the shapes stay ``scale``
    apart), and the shift (:func:`pair_shift`: HR against LR, HR pixels)."""
    shift = pair_shift(lr, hr, scale)
    border_lr = math.ceil(border_px(shift) / scale)
    hr = moved(hr, (-shift[0], -shift[1]))
    return cropped(np.asarray(lr), border_lr), cropped(hr, scale * border_lr), shift


__all__ = ["MISALIGNED_PX", "border_px", "cropped", "hr_shift_px", "in_hr_frame", "moved", "pair_shift",
           "registered_pair"]
