"""The camera's offset and read noise from dark frames (shutter closed, laser off, same exposure and gain).

One image cannot tell the camera offset from a uniform background (:mod:`srlab.calibration.noise`), so
without a dark measurement the read noise is an upper bound and the background is 0. Dark frames settle
both, as the photon-transfer standard does (EMVA Standard 1288, release 4.0, 2021: offset = mean dark
level, temporal dark noise = the rms frame-to-frame fluctuation of each pixel):

* **offset** — the mean of every dark pixel; its standard uncertainty from the spread of the frames' means
  (one frame: the pixels' standard error);
* **read noise** — with at least two frames of one size, the root of the mean over pixels of each pixel's
  variance across frames (temporal: a fixed pattern, constant in time, does not count; hot pixels do, as
  in the simulated images they are meant to match); with one frame, the variance of its detail band
  (:func:`srlab.calibration.noise.detail`, which removes smooth fixed patterns), less the 1/12 ADU² of
  rounding to integers. Its standard uncertainty is that of a Gaussian sample variance, σ/√(2·dof).

A photon counter's dark frames are zeros: offset 0, read noise 0. Filtered dark frames (a median filter
makes neighbours share values, :func:`srlab.calibration.noise.equal_neighbours_ratio`: a 3×3 one on the
10× pairs' dark frames of realcheck's undersampled check read the read noise 1.27 ADU for 3.02) are
refused, as filtered gain frames are (:mod:`srlab.calibration.frames`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.errors import SrlabError


@dataclass(frozen=True)
class DarkFrames:
    """Offset and read noise (ADU) measured on dark frames, with standard uncertainties."""

    offset_adu: float
    offset_se: float
    read_noise_adu: float
    read_noise_se: float
    n_frames: int
    temporal: bool  # read noise from frame-to-frame fluctuations (else one frame's detail band)

    @property
    def method(self) -> str:
        how = "temporal rms" if self.temporal else "one frame's detail band"
        return f"{self.n_frames} dark frame(s), {how}"


def load_dark(paths: list[Path], *, what: str = "--dark", channel: int | None = None) -> list[np.ndarray]:
    """The 2D frames of ``paths`` (stacks unrolled; ``channel`` of a multi-channel file, a one-channel
    file whatever it says) as float64; one :class:`SrlabError` line for an unreadable pixel type,
    non-finite pixels or a multi-channel file without ``channel``. A constant frame is fine (a photon
    counter's dark frame is all zeros)."""
    from srlab.calibration import read_frames
    from srlab.calibration.noise import filtered, filtered_text

    frames: list[np.ndarray] = []
    for path in paths:
        _, stack, _ = read_frames(path, what, channel=channel, any_channel_if_one=True,
                                  channel_flag="--channel" if what == "--dark" else "--hr-channel")
        if min(stack.shape[-2:]) < 3:
            raise SrlabError(f"{what} {path}: {stack.shape[-2]}×{stack.shape[-1]} px is too small")
        ratio = filtered(list(stack))
        if ratio is not None:
            raise SrlabError(f"{what} {path}: {filtered_text(ratio)} (median-filtered or otherwise processed "
                             f"frames?); the read noise is the raw frames': give them as the camera wrote them")
        frames.extend(stack)
    if not frames:
        raise SrlabError(f"{what}: no dark frames given")
    return frames


def measure_dark(frames: list[np.ndarray]) -> DarkFrames:
    """Offset and read noise of ``frames`` (ADU); see the module doc."""
    from srlab.calibration.noise import detail

    n = len(frames)
    integer = all(np.array_equal(f, np.round(f)) for f in frames)
    means = np.array([float(f.mean()) for f in frames])
    offset = float(np.mean(np.concatenate([f.ravel() for f in frames])))
    shapes = {f.shape for f in frames}
    if n >= 2 and len(shapes) == 1:
        stack = np.stack(frames)
        variance = float(np.mean(np.var(stack, axis=0, ddof=1)))
        dof = stack[0].size * (n - 1)
        offset_se = float(np.std(means, ddof=1)) / math.sqrt(n)
        temporal = True
    else:
        band = np.concatenate([detail(f).ravel() for f in frames])
        variance = float(np.var(band)) - (1.0 / 12.0 if integer else 0.0)
        dof = band.size
        pixels = np.concatenate([f.ravel() for f in frames])
        offset_se = float(np.std(pixels)) / math.sqrt(pixels.size)
        temporal = False
    read = math.sqrt(max(variance, 0.0))
    return DarkFrames(offset, offset_se, read, read / math.sqrt(2.0 * max(dof, 1)), n, temporal)
