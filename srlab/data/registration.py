"""How a pair's HR image lies against its LR image — shifted, magnified, rotated, stretched — and bringing a
prediction into the HR's frame.

Real LR/HR pairs are two acquisitions (confocal then STED, a widefield image then the STORM stack that a
drift correction has moved, a 10× then a 20× objective): they are rarely registered to a fraction of an HR
pixel. A prediction lies in the LR's frame, so scoring it against a misregistered HR penalizes every method
by the misregistration, and a sharp one more than a blurred one — bicubic interpolation loses least.
``srlab evaluate`` therefore measures each pair's :class:`Alignment` (always, and reports it) and, with
``--register``, brings every prediction — baselines and runs alike — into its HR's frame before scoring (a
suite's ``register: true`` likewise). Training on such pairs (``data.path`` of a paired block,
``data.register: true``) brings each HR into its LR's frame instead (:func:`registered_pair`): a network
trained on misregistered targets learns to shift and blur.

What is measured is an affine transform, in the parts that have a cause in the instruments: a translation,
the HR's magnification over the nominal ``scale`` (two objectives' true ratio is rarely the nominal one to
better than a percent: on a 1024 px field a 1 % error moves the edges by 5 px), a rotation (two cameras),
an aspect — the magnification along x over that along y (a scanner's two axes calibrated a percent or two
apart, which a similarity cannot take: of a 2 % aspect it left 1.1–1.3 HR px on average on the tests' 256 px
fields) — and a shear (scan axes not quite perpendicular). A sample that drifts at a steady speed during a
raster scan is imaged with both — each line a little further along: a stretch along the slow axis and a
shear — so two scans that drift differently (a slower STED scan after its confocal one) are affine to each
other as well. It is fitted in two steps, the way image registration is usually done (coarse, then refined
on the intensities):

1. the translation, from the peak of the cross-correlation of the HR with the LR interpolated to the HR grid
   (bicubic): plain, not phase-normalized — the LR holds no signal above its cutoff, where phase correlation
   would weigh noise as much as structure — after removing each image's mean and tapering its edges (a Tukey
   window) so that the FFT's wrap-around does not pull the peak; refined to a fraction of a pixel by a
   Gaussian through the peak and its neighbours (:func:`hr_shift_px`). scikit-image's
   ``registration.phase_cross_correlation(normalization=None)`` computes the same quantity (the tests compare
   them); it is not a dependency of srlab for this one function;
2. all six parameters, maximizing the windowed normalized cross-correlation of the HR with the warped
   interpolated LR (:func:`fit_alignment`), the HR first blurred to the LR's resolution (the Gaussian of
   :data:`MATCH_SIGMAS_PX` that correlates best at the step-1 translation): a sharp HR against a blurred LR
   pulls the magnification — pySTED's aligned STED/confocal pairs read a median 0.9972 without it, 0.99998
   with it — and two images of one resolution correlate without that pull. First over a grid of
   magnifications and rotations (:data:`ZOOM_RANGE`, :data:`ROTATION_RANGE_DEG`) on both images blurred by
   σ 4 HR px more (the aspect 1 and no shear), then all six by L-BFGS at σ 4, 2 and 1 px more (coarse to
   fine: a blurred image's correlation is smooth far from its peak; :data:`ASPECT_RANGE` and
   :data:`SHEAR_RANGE` bound where it may end). Where the pair is only shifted, the fit returns a
   magnification and an aspect of 1, no rotation and no shear to within its error, and refines the
   translation;
3. the magnification, rotation, aspect and shear are the instruments' (two objectives, two cameras, a
   scanner), not a field's, while the shift drifts from one pair to the next: where several pairs are
   measured together (:func:`folder_alignments`, as ``srlab evaluate``, suites and ``data.register`` do),
   they share the median of each over their free fits, and each pair's translation is fitted again with
   those fixed: one sparse field's free fit is noisier than a folder's median (before the resolutions were
   matched, one of 36 aligned 256 px STED fields of ``srlab simulate --pair confocal:sted --size 128`` read
   a 1.3 % magnification alone; matched, none reads 0.5 %). A shared transform that displaces the fields by
   less than half an HR pixel on average is not applied: below that they cost less
   than a wrong reading does (pySTED's 0.9972 above, unmatched: 0.24 px on average on its 224 px fields).

Nothing in it depends on any method's prediction, so one alignment serves all of them. Not measured: a
distortion that varies across the field (a lens's, a sample's drift during a scan). The two extra parameters
cost a single field's free fit a little precision where there is only a similarity (on the tests' 256 px
pairs, what is left of a known magnification and rotation: 0.03–0.45 HR px on average, against 0.03–0.35
fitting four); the folder's median takes most of that back.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from scipy.signal.windows import tukey

#: Share of each side tapered by the window (a Tukey window's ``alpha``).
TAPER = 0.25
#: The alignment is measured on the central square of at most this many HR pixels a side (a 2k × 2k HR image
#: needs no more, and the padded FFT of a whole 8k image would take gigabytes).
MAX_SIDE_PX = 1024
#: A median misregistration (the mean displacement over a field, :meth:`Alignment.mean_displacement_px`) of
#: at least this many HR pixels gets a note when pairs are scored unregistered: well above the measurement's
#: own error on most fields (~0.1 px), well below the shifts that cost whole dB. A folder's magnification and
#: rotation that displace its fields by less than this on average are taken as none.
MISALIGNED_PX = 0.5
#: The magnifications (relative to the nominal scale) and rotations the fit searches from: an objective's
#: magnification tolerance and a camera mounted by hand are within them.
ZOOM_RANGE = (0.95, 1.05)
ROTATION_RANGE_DEG = (-3.0, 3.0)
#: The aspects (x over y magnification) and shears a fit may end in: two scan axes' calibrations a few % apart
#: and axes a degree or two from perpendicular are within them. The fit starts from neither (1 and 0).
ASPECT_RANGE = (0.95, 1.05)
SHEAR_RANGE = (-0.05, 0.05)
#: Fields smaller than this (HR px a side) get the cross-correlation's translation alone: too few coarse
#: samples to fit a magnification and a rotation.
MIN_SIDE_PX = 32
#: The blurs (Gaussian σ, HR px) tried on the HR to match the LR's resolution before the fit.
MATCH_SIGMAS_PX = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: The coarse-to-fine schedule of the fit: (Gaussian σ in HR px, the stride of the sampled HR pixels).
_LEVELS = ((4.0, 4), (2.0, 2), (1.0, 1))


@dataclass(frozen=True)
class Alignment:
    """How a pair's HR lies against its LR interpolated to the HR grid, about the image's centre ``c``:
    ``hr(p) ≈ lr_up(c + M⁻¹ (p − c − shift_px))`` with ``M = zoom · R(rotation_deg) · D(aspect) · K(shear)``,
    pixel coordinates ``(y, x)``. ``zoom`` is the HR's magnification over the nominal scale (1.02: the HR shows
    the field 2 % larger; with an aspect, the geometric mean of the two axes'); ``rotation_deg`` turns the ``y``
    axis towards the ``x`` axis; ``aspect`` is the magnification along ``x`` over that along ``y``
    (``D = diag(aspect^-½, aspect^½)``: two scan axes' or a camera's pixel calibrations that differ);
    ``shear`` moves ``x`` by ``shear·y`` (``K = [[1, 0], [shear, 1]]``: scan axes that are not quite
    perpendicular). Every 2 × 2 matrix of positive determinant is one such ``M``, once
    (:meth:`from_matrix`)."""

    shift_px: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    rotation_deg: float = 0.0
    aspect: float = 1.0
    shear: float = 0.0

    @property
    def matrix(self) -> np.ndarray:
        """``M``, for ``(y, x)`` coordinates."""
        t = math.radians(self.rotation_deg)
        rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        root = math.sqrt(self.aspect)
        return self.zoom * rotation @ np.array([[1.0 / root, 0.0], [root * self.shear, root]])

    @property
    def instrument(self) -> tuple[float, float, float, float]:
        """``(zoom, rotation_deg, aspect, shear)``: what two instruments make of every pair alike (the
        translation apart), as :func:`fit_alignment`'s ``fixed`` takes it."""
        return self.zoom, self.rotation_deg, self.aspect, self.shear

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, shift_px: tuple[float, float] = (0.0, 0.0)) -> Alignment:
        """The alignment of ``M = matrix`` (2 × 2, positive determinant) and ``shift_px``: ``M = Q·L``, ``Q`` a
        rotation and ``L`` lower triangular with a positive diagonal (``L = zoom · D(aspect) · K(shear)``)."""
        m = np.asarray(matrix, np.float64)
        if not np.linalg.det(m) > 0:
            raise ValueError(f"an alignment's matrix has a positive determinant, got {m.tolist()}")
        column = m[:, 1] / np.hypot(*m[:, 1])  # Q's second column: (−sin t, cos t)
        t = math.atan2(-column[0], column[1])
        rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        lower = rotation.T @ m
        zoom = math.sqrt(lower[0, 0] * lower[1, 1])
        return cls((float(shift_px[0]), float(shift_px[1])), zoom, math.degrees(t) + 0.0,
                   float(lower[1, 1] / lower[0, 0]), float(lower[1, 0] / lower[1, 1]))

    def inverse(self) -> Alignment:
        """The LR's alignment against the HR: ``lr_up(q) ≈ hr(c + M (q − c) + shift_px)``."""
        inverse = np.linalg.inv(self.matrix)
        return Alignment.from_matrix(inverse, tuple(-inverse @ np.asarray(self.shift_px, np.float64)))

    def displacement_px(self, shape: tuple[int, int]) -> float:
        """The largest distance between where a point of an image of ``shape`` (HR px) lies in the HR and in
        the LR: at a corner of the field (the shift alone where there is no magnification or rotation)."""
        h, w = shape
        c = np.array([(h - 1) / 2, (w - 1) / 2])
        corners = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]], np.float64) - c
        moved_corners = corners @ self.matrix.T + np.asarray(self.shift_px)
        return float(np.hypot(*(moved_corners - corners).T).max())

    def mean_displacement_px(self, shape: tuple[int, int]) -> float:
        """The mean distance over an image of ``shape`` between where a point lies in the HR and in the LR (on a
        33 × 33 grid of its points): what a score pays on average — the shift alone where there is no
        magnification or rotation, about half the corners' displacement where there is only those."""
        h, w = shape
        ys, xs = np.meshgrid(np.linspace(0, h - 1, 33) - (h - 1) / 2, np.linspace(0, w - 1, 33) - (w - 1) / 2,
                             indexing="ij")
        points = np.stack([ys.ravel(), xs.ravel()], axis=1)
        return float(np.hypot(*(points @ (self.matrix - np.eye(2)).T + np.asarray(self.shift_px)).T).mean())

    def as_dict(self) -> dict[str, object]:
        return {"shift_px": [round(self.shift_px[0], 3), round(self.shift_px[1], 3)],
                "zoom": round(self.zoom, 5), "rotation_deg": round(self.rotation_deg, 3),
                "aspect": round(self.aspect, 5), "shear": round(self.shear, 5)}


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


def _central(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[-2:]
    top, left = max(h - MAX_SIDE_PX, 0) // 2, max(w - MAX_SIDE_PX, 0) // 2
    return image[..., top:top + MAX_SIDE_PX, left:left + MAX_SIDE_PX]


def hr_shift_px(lr_upsampled: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """The translation ``(dy, dx)`` in HR pixels of ``hr`` against ``lr_upsampled`` (the LR on the HR grid,
    same shape) from their cross-correlation's peak: ``hr(y, x) ≈ lr_upsampled(y - dy, x - dx)``. 2D images;
    for several channels pass their mean. The start of :func:`fit_alignment`."""
    if lr_upsampled.shape != hr.shape or hr.ndim != 2:
        raise ValueError(f"hr_shift_px takes two 2D images of one shape, got {lr_upsampled.shape} and {hr.shape}")
    hr, lr_upsampled = _central(hr), _central(lr_upsampled)
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


def _matched_blur_px(lr_upsampled: np.ndarray, hr: np.ndarray, shift: tuple[float, float]) -> float:
    """The Gaussian σ (HR px) that brings ``hr`` closest to ``lr_upsampled`` moved by ``shift`` (the most
    correlated of :data:`MATCH_SIGMAS_PX`): the LR's extra blur, which the fit gives the HR so that both
    show the field at one resolution."""
    up = moved(lr_upsampled, shift)
    window = np.outer(tukey(hr.shape[0], TAPER), tukey(hr.shape[1], TAPER))

    def correlation(sigma: float) -> float:
        a = up - np.average(up, weights=window)
        b = ndimage.gaussian_filter(np.asarray(hr, np.float64), sigma) if sigma else np.asarray(hr, np.float64)
        b = b - np.average(b, weights=window)
        return float((a * b * window).sum() / math.sqrt((a * a * window).sum() * (b * b * window).sum() + 1e-300))

    return max(MATCH_SIGMAS_PX, key=correlation)


def _first_reading(lr_upsampled: np.ndarray, hr: np.ndarray) -> tuple[tuple[float, float], float]:
    """What every fit of one pair starts from: the cross-correlation's translation and the matched blur."""
    if lr_upsampled.shape != hr.shape or hr.ndim != 2:
        raise ValueError(f"fit_alignment takes two 2D images of one shape, got {lr_upsampled.shape} and {hr.shape}")
    start = hr_shift_px(lr_upsampled, hr)
    return start, _matched_blur_px(lr_upsampled, hr, start)


def fit_alignment(lr_upsampled: np.ndarray, hr: np.ndarray, fixed: Sequence[float] | None = None) -> Alignment:
    """The :class:`Alignment` of ``hr`` against ``lr_upsampled`` (2D, one shape, at most :data:`MAX_SIDE_PX` a
    side): the translation of :func:`hr_shift_px`, then all four parameters by maximizing the normalized
    cross-correlation of ``hr``, blurred to the LR's resolution, with the warped ``lr_upsampled`` in a Tukey
    window, coarse to fine (the module's docstring). ``fixed``: ``(zoom, rotation_deg[, aspect, shear])``
    known (:attr:`Alignment.instrument`; aspect 1 and shear 0 where left out); the translation alone is
    fitted. Where the fit leaves the searched ranges (a pair with no common structure: noise, an
    empty field) or the field is smaller than :data:`MIN_SIDE_PX`, the cross-correlation's translation
    alone."""
    return _fit(lr_upsampled, hr, fixed, *_first_reading(lr_upsampled, hr))


def _fit(lr_upsampled: np.ndarray, hr: np.ndarray, fixed: Sequence[float] | None, start: tuple[float, float],
         matched: float) -> Alignment:
    """:func:`fit_alignment` from its :func:`_first_reading` (a folder fits each pair twice from one)."""
    import torch

    if fixed is not None:
        fixed = (*fixed, 1.0, 0.0)[:4] if len(fixed) == 2 else tuple(fixed)
    h, w = hr.shape
    if min(h, w) < MIN_SIDE_PX:
        return Alignment(start) if fixed is None else Alignment(start, *fixed)
    centre = ((h - 1) / 2, (w - 1) / 2)
    # zoom, rotation, aspect and shear as the displacement they give at `radius` px from the centre: parameters
    # in pixels, all of one scale for L-BFGS
    radius = 0.5 * min(h, w)
    window = np.outer(tukey(h, TAPER), tukey(w, TAPER))
    translation_only = fixed is not None

    def warped(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, params: torch.Tensor, mode: str):
        """``image`` sampled at ``c + M⁻¹ (p − c − shift)`` for the HR pixels ``p = (ys, xs)``, one output per row
        of ``params`` (dy, dx, log zoom · radius, rotation · radius, ½ log aspect · radius, shear · radius)."""
        dy, dx, log_zoom, turn, half_log_aspect, shear = (v[:, None, None] for v in params.unbind(-1))
        zoom, cos, sin = torch.exp(log_zoom / radius), torch.cos(turn / radius), torch.sin(turn / radius)
        # M = R · L, L = zoom · [[a^-½, 0], [a^½ shear, a^½]]: det M = zoom²
        l00 = zoom * torch.exp(-half_log_aspect / radius)
        l11 = zoom * torch.exp(half_log_aspect / radius)
        l10 = l11 * shear / radius
        m00, m01, m10, m11 = cos * l00 - sin * l10, -sin * l11, sin * l00 + cos * l10, cos * l11
        det = zoom * zoom
        py, px = ys[None] - centre[0] - dy, xs[None] - centre[1] - dx
        sy = centre[0] + (m11 * py - m01 * px) / det
        sx = centre[1] + (-m10 * py + m00 * px) / det
        grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], -1).float()
        return torch.nn.functional.grid_sample(image[None, None].expand(len(params), 1, h, w), grid, mode=mode,
                                               padding_mode="border", align_corners=True)[:, 0]

    def correlation(moving: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        total = weights.sum()
        moving = moving - (moving * weights).sum((-2, -1), keepdim=True) / total
        target = target - (target * weights).sum() / total
        return (moving * target * weights).sum((-2, -1)) / torch.sqrt(
            (moving * moving * weights).sum((-2, -1)) * (target * target * weights).sum())

    def climbed(params: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``params`` at the nearest minimum of ``loss`` by L-BFGS (the translation alone where ``fixed``)."""
        free = params[:2 if translation_only else 6].clone().requires_grad_(True)
        # parameters in pixels: a gradient of 1e-5 and a correlation change of 1e-7 are far inside the fit's
        # own error (~0.05 px); tighter, L-BFGS runs its 40 iterations for the last thousandth of a pixel
        optimizer = torch.optim.LBFGS([free], max_iter=40, line_search_fn="strong_wolfe", tolerance_grad=1e-5,
                                      tolerance_change=1e-7)

        def step() -> torch.Tensor:
            optimizer.zero_grad()
            value = loss(torch.cat([free, params[2:]]) if translation_only else free)
            value.backward()
            return value

        optimizer.step(step)
        return torch.cat([free.detach(), params[2:]]) if translation_only else free.detach()

    held = ((math.log(fixed[0]) * radius, math.radians(fixed[1]) * radius, 0.5 * math.log(fixed[2]) * radius,
             fixed[3] * radius) if fixed is not None else (0.0, 0.0, 0.0, 0.0))
    params = torch.tensor([start[0], start[1], *held], dtype=torch.float64)
    for level, (sigma, stride) in enumerate(_LEVELS):
        moving = torch.from_numpy(ndimage.gaussian_filter(np.asarray(lr_upsampled, np.float32), sigma))
        target = torch.from_numpy(ndimage.gaussian_filter(np.asarray(hr, np.float32), math.hypot(sigma, matched))
                                  [::stride, ::stride])
        weights = torch.from_numpy(window[::stride, ::stride]).float()
        ys, xs = torch.meshgrid(torch.arange(0, h, stride, dtype=torch.float64),
                                torch.arange(0, w, stride, dtype=torch.float64), indexing="ij")
        if level == 0 and not translation_only:  # the grid: an L-BFGS start within the coarse correlation's reach
            zooms = np.log(np.linspace(*ZOOM_RANGE, 21)) * radius
            turns = np.radians(np.linspace(*ROTATION_RANGE_DEG, 13)) * radius
            grid = torch.tensor([[start[0], start[1], z, t, 0.0, 0.0] for z in zooms for t in turns])
            with torch.no_grad():
                scores = torch.cat([correlation(warped(moving, ys, xs, grid[i:i + 32], "bilinear"), target, weights)
                                    for i in range(0, len(grid), 32)])
            params = grid[int(scores.argmax())].clone()
        params = climbed(params, lambda p, m=moving, y=ys, x=xs, t=target, w=weights:
                         -correlation(warped(m, y, x, p[None], "bicubic"), t, w)[0])
    dy, dx, log_zoom, turn, half_log_aspect, shear = params.tolist()
    fitted = Alignment((dy, dx), math.exp(log_zoom / radius), math.degrees(turn / radius),
                       math.exp(2 * half_log_aspect / radius), shear / radius)
    reach = 0.25 * min(h, w)  # a shift beyond it leaves little of the field to correlate
    within = (ZOOM_RANGE[0] - 0.01 <= fitted.zoom <= ZOOM_RANGE[1] + 0.01
              and ROTATION_RANGE_DEG[0] - 1 <= fitted.rotation_deg <= ROTATION_RANGE_DEG[1] + 1
              and ASPECT_RANGE[0] - 0.01 <= fitted.aspect <= ASPECT_RANGE[1] + 0.01
              and SHEAR_RANGE[0] - 0.01 <= fitted.shear <= SHEAR_RANGE[1] + 0.01
              and math.hypot(dy - start[0], dx - start[1]) <= reach)
    if not (within and all(math.isfinite(v) for v in (dy, dx, *fitted.instrument))):
        return Alignment(start) if fixed is None else Alignment(start, *fixed)
    return fitted


def pair_alignment(lr: np.ndarray, hr: np.ndarray, scale: int, fixed: Sequence[float] | None = None
                   ) -> Alignment:
    """The :class:`Alignment` of a pair's HR against its LR (``(C, h, w)`` and ``(C, s·h, s·w)`` as read), about
    the whole HR image's centre: :func:`fit_alignment` of the channels' means on the central region it
    measures (cut from the LR first, so a large image is never interpolated whole), the LR
    bicubic-interpolated (as the bicubic baseline: torch's, pixel centres aligned). No intensity
    normalization: the correlation does not change with an image's offset or gain. ``fixed``: as
    :func:`fit_alignment` takes it (:func:`folder_alignments`)."""
    region = _central_pair(lr, hr, scale)
    return region.about_image_centre(fit_alignment(region.up, region.high, fixed))


@dataclass(frozen=True)
class _Region:
    """The central region of a pair that its alignment is measured on: the LR bicubic-interpolated to the HR
    grid (``up``), the HR (``high``), both the channels' means, and the image's centre less the region's
    (``offset``, HR px)."""

    up: np.ndarray
    high: np.ndarray
    offset: np.ndarray

    def about_image_centre(self, fitted: Alignment) -> Alignment:
        """``fitted`` (about the region's centre) about the whole image's: shift + (M − I)·offset."""
        shift = np.asarray(fitted.shift_px) + (fitted.matrix - np.eye(2)) @ self.offset
        return replace(fitted, shift_px=(float(shift[0]), float(shift[1])))


def _central_pair(lr: np.ndarray, hr: np.ndarray, scale: int) -> _Region:
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
    offset = np.array([(scale * h - 1) / 2 - (scale * top + (high.shape[0] - 1) / 2),
                       (scale * w - 1) / 2 - (scale * left + (high.shape[1] - 1) / 2)])
    return _Region(up, high, offset)


def folder_alignments(pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int, *,
                      measured: dict[Path, list[Alignment]] | None = None) -> list[Alignment]:
    """The :class:`Alignment` of each of ``pairs`` (``(lr, hr)`` as :func:`pair_alignment` takes them) measured
    together: one magnification, rotation, aspect and shear for all, the medians of their free fits (the
    instruments'), and each pair's translation fitted with those fixed. A shared transform that displaces the
    median field by less than :data:`MISALIGNED_PX` on average is taken as none (the translation alone is
    fitted).

    The measurement costs ~3 s a pair on a 1024 px HR field and is asked again for the same pairs by every
    ``srlab train``/``test`` of a ``data.register`` block (and its alignment note) and every ``srlab evaluate``:
    a result kept under ``$SRLAB_DATA_DIR/alignments/`` (``./data`` by default, beside the simulated
    datasets) is read instead, keyed by :func:`alignments_key` — the pairs' pixels, the scale, this module's
    source and the numerical libraries' versions — so it is the one a new measurement would give. A new
    measurement is added to ``measured`` (its file → the alignments), which the caller keeps with
    :func:`store_alignments` once its command has passed the checks of the user's input: a command refused
    for a user's mistake writes nothing, not even this."""
    path = _alignments_path(pairs, scale)
    cached = _read_alignments(path, len(pairs))
    if cached is not None:
        return cached
    result = _measure_folder_alignments(pairs, scale)
    if measured is not None:
        measured[path] = result
    return result


def store_alignments(measured: dict[Path, list[Alignment]]) -> None:
    """Keep the measurements :func:`folder_alignments` added to ``measured`` (at full precision: a stored result
    reads back equal to the bit) and empty it; a store that cannot be written is passed over (it is only a
    cache)."""
    from srlab.runs import atomic_write_text

    for path, alignments in measured.items():
        try:
            atomic_write_text(path, json.dumps({"what": "srlab.data.registration.folder_alignments",
                                                "alignments": [asdict(a) for a in alignments]}))
        except OSError:
            pass
    measured.clear()


def alignments_key(pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int) -> str:
    """A SHA-256 of what :func:`folder_alignments` measures from: every pair's LR and HR pixels (their content
    hashes, :func:`srlab.data.fingerprints.image_sha1`), the scale, this module's source (a change to the fit
    is a new key) and the versions of NumPy, SciPy and PyTorch it computes with."""
    import scipy
    import torch

    from srlab.data.fingerprints import image_sha1

    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{np.__version__}|{scipy.__version__}|{torch.__version__}|{int(scale)}".encode())
    digest.update("|".join(image_sha1(image) for pair in pairs for image in pair).encode())
    return digest.hexdigest()


def _alignments_path(pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int) -> Path:
    from srlab.data.simulate import data_root

    return data_root() / "alignments" / f"{alignments_key(pairs, scale)[:32]}.json"


def _read_alignments(path: Path, count: int) -> list[Alignment] | None:
    try:
        rows = json.loads(path.read_text())["alignments"]
        found = [Alignment(**{**row, "shift_px": tuple(row["shift_px"])}) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if len(found) == count else None


def _measure_folder_alignments(pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int) -> list[Alignment]:
    regions = [_central_pair(lr, hr, scale) for lr, hr in pairs]
    readings = [_first_reading(r.up, r.high) for r in regions]  # each pair's start, for both of its fits
    free = [r.about_image_centre(_fit(r.up, r.high, None, *reading)) for r, reading in zip(regions, readings)]
    if not free:
        return free
    shared = tuple(float(v) for v in np.median([a.instrument for a in free], axis=0))
    # below half an HR pixel on average the shared transform costs less than reading it wrong does
    # (pySTED's aligned 224 px pairs, sparse and photon-poor, read 0.9972 before the resolutions were matched:
    # 0.24 px on average, 0.44 at the corners)
    mean_px = float(np.median([Alignment((0.0, 0.0), *shared).mean_displacement_px(np.shape(hr)[-2:])
                               for _, hr in pairs]))
    if mean_px < MISALIGNED_PX:
        shared = Alignment().instrument
    elif len(free) == 1:
        return free
    return [r.about_image_centre(_fit(r.up, r.high, shared, *reading)) for r, reading in zip(regions, readings)]


def instrument_text(*alignments: Alignment) -> str:
    """The reports' words for the magnification, rotation, aspect and shear of ``alignments`` (one folder's: one
    value each where :func:`folder_alignments` shared them, else the median and the range); the aspect and the
    shear only where some alignment has them."""
    def spread(values: list[float], form: str, unit: str = "") -> str:
        median = f"{float(np.median(values)):{form}}{unit}"
        if min(values) == max(values):
            return median
        return f"{median} (median; {min(values):{form}}{unit} to {max(values):{form}}{unit})"

    zooms, turns, aspects, shears = (list(v) for v in zip(*(a.instrument for a in alignments)))
    text = f"magnification over the nominal scale {spread(zooms, '.4f')}, rotation {spread(turns, '+.2f', '°')}"
    if any(a != 1.0 for a in aspects) or any(k != 0.0 for k in shears):
        text += f", aspect (x over y) {spread(aspects, '.4f')}, shear {spread(shears, '+.4f')}"
    return text


def border_px(alignment: Alignment, shape: tuple[int, int]) -> int:
    """The border to leave out of the scores of an image of ``shape`` brought into the other frame: what the
    move brings in from outside the image, and one pixel more for the interpolation."""
    return math.ceil(alignment.displacement_px(shape)) + 1


def warped(image: np.ndarray, alignment: Alignment) -> np.ndarray:
    """``image`` (``(H, W)`` or ``(C, H, W)``, in the LR's frame on the HR grid — a prediction) brought into the
    HR's frame: sampled at ``c + M⁻¹ (p − c − shift_px)`` (cubic spline; the border that :func:`border_px`
    names is filled with the nearest values and left out of the scores). ``alignment.inverse()`` brings an HR
    into its LR's frame."""
    image = np.asarray(image, np.float32)
    h, w = image.shape[-2:]
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    inverse = np.linalg.inv(alignment.matrix)
    offset = centre - inverse @ (centre + np.asarray(alignment.shift_px))
    planes = image.reshape(-1, h, w)
    out = np.stack([ndimage.affine_transform(plane, inverse, offset=offset, order=3, mode="nearest")
                    for plane in planes])
    return out.reshape(image.shape).astype(np.float32)


def moved(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved by ``shift`` pixels: :func:`warped` by a translation alone."""
    return warped(image, Alignment((float(shift[0]), float(shift[1]))))


def cropped(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side of its last two axes."""
    if border <= 0:
        return image
    return image[..., border:-border, border:-border]


def in_hr_frame(prediction: np.ndarray, reference: np.ndarray, alignment: Alignment
                ) -> tuple[np.ndarray, np.ndarray]:
    """``prediction`` brought into the reference's frame by its pair's ``alignment``, and both without the border
    that brings in (:func:`border_px`): what a registered score compares."""
    border = border_px(alignment, np.shape(reference)[-2:])
    return cropped(warped(prediction, alignment), border), cropped(reference, border)


def registered_pair(lr: np.ndarray, hr: np.ndarray, scale: int, alignment: Alignment
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A pair as read (``(C, h, w)``, ``(C, s·h, s·w)``) with its HR brought into the LR's frame by its
    ``alignment`` (HR against LR: :func:`folder_alignments`), both without the border that brings in (whole LR
    pixels, so that the shapes stay ``scale`` apart)."""
    border_lr = math.ceil(border_px(alignment, np.shape(hr)[-2:]) / scale)
    hr = warped(hr, alignment.inverse())
    return cropped(np.asarray(lr), border_lr), cropped(hr, scale * border_lr)


__all__ = ["MISALIGNED_PX", "Alignment", "alignments_key", "border_px", "cropped", "fit_alignment", "folder_alignments", "hr_shift_px",
           "in_hr_frame", "instrument_text", "moved", "pair_alignment", "registered_pair", "store_alignments", "warped"]
