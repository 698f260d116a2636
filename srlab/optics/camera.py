"""Detectors: expected photons per pixel -> the integers a microscope writes, and back.

One model for every simulator (``shared/reference/optics.md``; the EMCCD model of Hirsch et al.,
PLoS ONE 8(1):e53671, 2013):

1. photoelectrons ~ Poisson(QE × photons) (shot noise);
2. an EMCCD's multiplication register turns n electrons into ~Gamma(n, gain): excess noise factor √2;
3. Gaussian read noise of ``read_noise_e`` electrons rms;
4. conversion to grey levels (``e_per_adu`` electrons per ADU) plus ``offset_adu``, rounding to the
   nearest integer and clipping to ``bit_depth`` bits (uint8 up to 8 bits, uint16 above). A negative
   ``offset_adu`` is a camera whose software subtracted more than its offset before writing: its dark
   pixels clip at 0 (a clipped floor, as ``srlab calibrate`` measures on background-subtracted images).

:class:`Camera` is that model as one object: :meth:`Camera.forward` (photons -> ADU, random) and
:meth:`Camera.backward` (ADU -> photons, the inverse of the mean response), as DECODE's camera.
:func:`add_noise` is the torch counterpart used by the on-the-fly degradation (shot + read noise in
the signal's units, no offset or quantization: the degraded patch is normalized right after).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Detector kinds. ``counting``: the photon-counting detector of a scanning microscope (no read noise,
#: one count per photon); ``ccd``: a camera without gain (also an EMCCD whose EM register is off);
#: ``scmos``; ``emccd``: with a multiplication register (excess noise).
CAMERA_KINDS = ("counting", "ccd", "scmos", "emccd")
#: Typical figures per kind. An EMCCD's output is ~gain× larger, so it needs more electrons per ADU
#: to stay below 16 bits, and its read noise is quoted after the EM register.
CAMERA_PRESETS: dict[str, dict[str, float]] = {
    "counting": {"read_noise_e": 0.0, "e_per_adu": 1.0, "offset_adu": 0.0},
    "scmos": {"read_noise_e": 1.5, "e_per_adu": 0.5, "offset_adu": 100.0},
    "emccd": {"read_noise_e": 60.0, "e_per_adu": 20.0, "offset_adu": 100.0},
}


@dataclass(frozen=True)
class Camera:
    """A detector: quantum efficiency, EM gain (``emccd`` only), read noise, gain, offset, bit depth."""

    kind: str = "scmos"
    quantum_efficiency: float = 1.0
    em_gain: float = 1.0
    read_noise_e: float = 0.0
    e_per_adu: float = 1.0
    offset_adu: float = 0.0
    bit_depth: int = 16

    def __post_init__(self) -> None:
        if self.kind not in CAMERA_KINDS:
            raise ValueError(f"camera kind must be one of {', '.join(CAMERA_KINDS)}, got {self.kind!r}")

    @property
    def multiplies(self) -> bool:
        """Whether an EM register amplifies the photoelectrons (with excess noise)."""
        return self.kind == "emccd"

    @property
    def max_adu(self) -> int:
        return 2**self.bit_depth - 1

    @property
    def adu_per_photon(self) -> float:
        """Mean ADU per incident photon (QE × EM gain / e⁻ per ADU)."""
        gain = self.em_gain if self.multiplies else 1.0
        return self.quantum_efficiency * gain / self.e_per_adu

    def variance_adu2(self, level_adu: np.ndarray | float) -> np.ndarray:
        """Noise variance (ADU²) of a pixel whose mean is ``level_adu``: shot noise of the photoelectrons
        above the offset (twice it behind an EM register, Hirsch et al. 2013), read noise and the
        rounding to whole counts (of a continuous signal: with read noise or EM multiplication; a photon
        counter's counts are whole already) — the photon-transfer line ``srlab calibrate`` fits, here
        from the camera's own settings."""
        excess = 2.0 * self.em_gain if self.multiplies else 1.0
        electrons = np.maximum((np.asarray(level_adu, np.float64) - self.offset_adu) * self.e_per_adu, 0.0)
        rounding = 1.0 / 12.0 if self.read_noise_e > 0 or self.multiplies else 0.0
        return (excess * electrons + self.read_noise_e**2) / self.e_per_adu**2 + rounding

    def forward(self, photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Expected photons per pixel -> camera counts (uint8 up to 8 bits, else uint16).

        Draws, in this order: Poisson (all pixels), Gamma (pixels with electrons, EMCCD only), normal
        (all pixels, only with read noise) — fixed so that a seed gives the same images forever."""
        expected = self.quantum_efficiency * np.maximum(np.asarray(photons), 0.0)
        electrons = rng.poisson(expected).astype(np.float64)
        if self.multiplies:
            hit = electrons > 0
            electrons[hit] = rng.gamma(electrons[hit], self.em_gain)
        if self.read_noise_e > 0:
            electrons += rng.normal(0.0, self.read_noise_e, electrons.shape)
        adu = np.rint(electrons / self.e_per_adu + self.offset_adu)
        return np.clip(adu, 0, self.max_adu).astype(np.uint8 if self.bit_depth <= 8 else np.uint16)

    def backward(self, adu: np.ndarray) -> np.ndarray:
        """Camera counts -> photons per pixel (float32): offset removed, mean response inverted."""
        return ((np.asarray(adu, np.float32) - self.offset_adu) / self.adu_per_photon).astype(np.float32)

    def split(self, adu: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two images of independent noise from one: binomial thinning of the photoelectrons.

        If ``n ~ Poisson(λ)``, then ``a ~ Binomial(n, p)`` and ``n − a`` are independent Poisson
        variables of means ``pλ`` and ``(1−p)λ`` (the thinning property of the Poisson process) — so a
        network fed one half and scored against the other cannot fit the noise of its target, the
        Noise2Noise argument (Lehtinen et al., ICML 2018) with both halves from a single acquisition.
        Returned as grey levels of the full exposure (each half divided by its fraction, then through
        the mean response), so the image's own normalization applies to both.

        Exact for a photon counter. With read noise the electrons ``e`` (rounded to integers) are not
        Poisson: ``Var(e) − E(e)`` = σ_r² plus the two roundings' ≈ (e_per_adu² + 1)/12, and thinning them
        leaves the halves with a covariance ``p(1−p)`` times that. A normal draw ``z`` of that variance,
        added to one half and taken from the other, cancels it — the halves still add up to the image,
        each is a little noisier (the trick of Recorrupted-to-Recorrupted, Pang et al., CVPR 2021, there
        for Gaussian noise). Independent to second order, up to where the mean signal is within a few
        read-noise σ of zero (there the signed thinning of negative counts leaves a small negative
        covariance).

        An EMCCD's multiplied counts are not Poisson: their variance is twice the mean (excess factor 2,
        Hirsch et al. 2013), in ADU ``2·G/e_per_adu`` times the mean. Counted in units of that many ADU
        they have variance = mean, like photoelectrons, so they are split as a camera without EM gain of
        ``e_per_adu / 2G`` electrons per ADU and read noise ``read_noise_e / 2G`` — independent to second
        order, not exactly (the counts are Gamma-distributed, not Poisson).

        A camera with a negative offset clips its dark pixels at 0 (a clipped floor, module doc): a
        pixel on the floor holds no count to share out and stays 0 in both halves, and the halves are
        clipped at 0 as the camera would have written them (there they no longer add up to the image)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        if self.multiplies:
            k = 2.0 * self.em_gain
            return replace(self, kind="ccd", em_gain=1.0, e_per_adu=self.e_per_adu / k,
                           read_noise_e=self.read_noise_e / k).split(adu, fraction, rng)
        electrons = np.rint((np.asarray(adu, np.float64) - self.offset_adu) * self.e_per_adu)
        # Read noise takes dark pixels below the offset: those are thinned by magnitude with their sign,
        # not clipped, so that the halves add up to the image and clipping does not bias the correction.
        a = np.sign(electrons) * rng.binomial(np.abs(electrons).astype(np.int64), fraction)
        if self.read_noise_e > 0:
            excess = self.read_noise_e**2 + (self.e_per_adu**2 + 1.0) / 12.0
            a += rng.normal(0.0, math.sqrt(fraction * (1.0 - fraction) * excess), a.shape)
        b = electrons - a

        def grey(e: np.ndarray, f: float) -> np.ndarray:
            g = (e / f / self.e_per_adu + self.offset_adu).astype(np.float32)
            if self.offset_adu < 0:  # the floor and what a half would have written below it
                g[floor] = 0.0
                np.maximum(g, 0.0, out=g)
            return g

        floor = np.asarray(adu) <= 0 if self.offset_adu < 0 else None
        return grey(a, fraction), grey(b, 1.0 - fraction)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def add_noise(signal: Tensor, photons: float | Tensor, background: float | Tensor = 0.0,
              read_noise: float | Tensor = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Shot noise for ``photons`` at signal 1.0, plus ``background`` (in units of the signal) and
    Gaussian read noise (``read_noise`` photo-electrons rms). Returns the signal's units.

    Tensor arguments are per sample (shape ``(N,)``)."""
    photons, background, read_noise = (_per_sample(v, signal) for v in (photons, background, read_noise))
    expected = (signal.clamp_min(0) + background) * photons
    counts = torch.poisson(expected, generator=generator)
    noise = torch.randn(counts.shape, generator=generator, device=counts.device, dtype=counts.dtype)
    counts = counts + read_noise * noise
    return counts / photons


def _per_sample(value: float | Tensor, like: Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.view(-1, *([1] * (like.dim() - 1))) if t.dim() == 1 else t
