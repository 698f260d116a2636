"""Point spread functions: FWHM/σ conversions, Airy and Gaussian profiles, confocal and STED laws,
and emitters rendered onto camera pixels.

Numbers from ``shared/reference/optics.md``:

* Airy pattern of a circular pupil ``[2·J1(v)/v]²``, ``v = 2π·NA·r/λ``; its FWHM is 0.5145 λ/NA.
* Its best-fitting Gaussian has σ ≈ 0.21 λ/NA (Zhang, Zerubia & Olivo-Marin, Appl. Opt. 46(10), 2007);
  a Gaussian's FWHM is 2·√(2 ln 2)·σ ≈ 2.3548·σ.
* STED/RESOLFT: FWHM = λ / (2·NA·√(1 + I/I_sat)) (Hell, Science 2007; Westphal & Hell, PRL 2005).
* Confocal: excitation PSF × (detection PSF ⊛ pinhole) (Wilson & Sheppard 1984); one Airy unit
  (AU) is the diameter 1.22 λ_em/NA of the detection Airy disk in the sample plane.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import fft as sfft
from scipy import special

#: FWHM of a Gaussian = this factor × σ (2·√(2 ln 2)).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: σ of the Gaussian that best fits the Airy core, in units of λ/NA.
GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA = 0.21
#: FWHM of the Airy pattern [2·J1(v)/v]², in units of λ/NA.
AIRY_FWHM_PER_LAMBDA_OVER_NA = 0.5145
#: PSF shapes every simulator and degradation accepts.
PSF_MODELS = ("gaussian", "airy")


def gaussian_sigma_nm(wavelength_nm: float, na: float) -> float:
    """σ of the Gaussian approximation of the Airy core: 0.21·λ/NA."""
    return GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA * wavelength_nm / na


def sted_fwhm_nm(wavelength_nm: float, na: float, saturation_factor: float) -> float:
    """STED/RESOLFT resolution λ / (2·NA·√(1 + I/I_sat)); ``saturation_factor`` is I/I_sat."""
    return wavelength_nm / (2.0 * na * math.sqrt(1.0 + saturation_factor))


def pinhole_radius_nm(pinhole_au: float, wavelength_nm: float, na: float) -> float:
    """Radius in the sample plane of a pinhole of ``pinhole_au`` Airy units (1 AU = 1.22 λ_em/NA across)."""
    return pinhole_au * 0.61 * wavelength_nm / na


def confocal_gaussian_fwhm_nm(excitation_wavelength_nm: float, wavelength_nm: float, na: float,
                              pinhole_au: float) -> float:
    """FWHM of the Gaussian confocal PSF: the product of σ_exc and σ_det, the latter widened by the
    pinhole disk (σ of a disk of radius R: R/2)."""
    s_exc = gaussian_sigma_nm(excitation_wavelength_nm, na)
    s_det = gaussian_sigma_nm(wavelength_nm, na)
    s_ph = pinhole_radius_nm(pinhole_au, wavelength_nm, na) / 2.0
    s_det = math.hypot(s_det, s_ph)
    return FWHM_PER_SIGMA / math.sqrt(1.0 / s_exc**2 + 1.0 / s_det**2)


def gaussian_profile(r2_nm2: np.ndarray, fwhm_nm: float) -> np.ndarray:
    """Gaussian of peak 1 and the given FWHM at squared radii ``r2_nm2``."""
    sigma = fwhm_nm / FWHM_PER_SIGMA
    return np.exp(-0.5 * r2_nm2 / sigma**2)


def airy_profile(r_nm: np.ndarray, wavelength_nm: float, na: float) -> np.ndarray:
    """Airy pattern ``[2·J1(v)/v]²`` of peak 1 at radii ``r_nm``, ``v = 2π·NA·r/λ``."""
    v = 2.0 * np.pi * na * np.asarray(r_nm, np.float64) / wavelength_nm
    out = np.ones_like(v)
    nz = v > 1e-9  # the limit at v = 0 is 1
    out[nz] = (2.0 * special.j1(v[nz]) / v[nz]) ** 2
    return out


def confocal_airy_psf(r2_nm2: np.ndarray, shape: tuple[int, int], *, excitation_wavelength_nm: float,
                      wavelength_nm: float, na: float, pinhole_au: float) -> np.ndarray:
    """Confocal PSF (peak 1) on a centred grid of squared radii ``r2_nm2`` of ``shape``: the
    excitation Airy pattern times the detection Airy pattern convolved with the pinhole disk."""
    r = np.sqrt(r2_nm2)
    exc = airy_profile(r, excitation_wavelength_nm, na)
    det = airy_profile(r, wavelength_nm, na)
    radius = pinhole_radius_nm(pinhole_au, wavelength_nm, na)
    pinhole = (r2_nm2 <= radius**2).astype(np.float64)
    if pinhole.sum() == 0:  # a pinhole smaller than a grid pixel: a point detector
        return exc * det
    blurred = sfft.irfft2(sfft.rfft2(sfft.ifftshift(det)) * sfft.rfft2(sfft.ifftshift(pinhole)), s=shape)
    blurred = sfft.fftshift(blurred)
    out = exc * np.clip(blurred, 0, None)
    return out / out.max()


def half_max_width(profile: np.ndarray, spacing: float) -> float:
    """FWHM of a symmetric 1D profile whose maximum is at its centre (linear interpolation)."""
    c = len(profile) // 2
    half = profile[c] / 2.0
    right = profile[c:]
    k = int(np.argmax(right < half))
    x = (k - 1) + (right[k - 1] - half) / (right[k - 1] - right[k])
    return 2.0 * x * spacing


@functools.lru_cache(maxsize=64)
def confocal_airy_fwhm_nm(excitation_wavelength_nm: float, wavelength_nm: float, na: float,
                          pinhole_au: float) -> float:
    """FWHM of :func:`confocal_airy_psf`, measured on a grid of λ/(200·NA) (no closed form)."""
    spacing = wavelength_nm / na / 200.0
    n = 1024
    yy, xx = np.indices((n, n), dtype=np.float64)
    r2 = ((xx - n // 2) * spacing) ** 2 + ((yy - n // 2) * spacing) ** 2
    psf = confocal_airy_psf(r2, (n, n), excitation_wavelength_nm=excitation_wavelength_nm,
                            wavelength_nm=wavelength_nm, na=na, pinhole_au=pinhole_au)
    return half_max_width(psf[n // 2], spacing)


def measure_fwhm_nm(image: np.ndarray, pixel_size_nm: float) -> float:
    """FWHM of a single spot: least-squares 2D Gaussian fit to its core (pixels above 20% of the peak,
    or above 2% when that leaves fewer than 9 pixels, as for an undersampled spot)."""
    from scipy.optimize import curve_fit

    img = np.asarray(image, np.float64)
    i, j = np.unravel_index(int(np.argmax(img)), img.shape)
    yy, xx = np.indices(img.shape, dtype=np.float64)
    use = img >= 0.2 * img[i, j]
    if use.sum() < 9:
        use = img >= 0.02 * img[i, j]

    def model(coords, amp, y0, x0, sigma):
        y, x = coords
        return amp * np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * sigma**2))

    p, _ = curve_fit(model, (yy[use], xx[use]), img[use], p0=(img[i, j], i, j, 1.0))
    return abs(p[3]) * FWHM_PER_SIGMA * pixel_size_nm


# ------------------------------------------------------------------------------------------------
# Point emitters integrated over camera pixels (positions in pixels from the top-left corner)
# ------------------------------------------------------------------------------------------------
def _pixel_integrals(centres: np.ndarray, n_pixels: int, sigma_px: float) -> np.ndarray:
    """``(m, n_pixels)``: the fraction of a 1-D Gaussian (centre in px) falling in each pixel."""
    edges = np.arange(n_pixels + 1, dtype=np.float64)
    cdf = special.ndtr((edges[None, :] - centres[:, None]) / sigma_px)
    return np.diff(cdf, axis=1)


def render_gaussians(x_px: np.ndarray, y_px: np.ndarray, weights: np.ndarray, *, shape: tuple[int, int],
                     sigma_px: float, chunk: int = 4096) -> np.ndarray:
    """Sum of pixel-integrated isotropic Gaussians (``weights`` = integral of each) on an ``(H, W)``
    grid; positions in pixels from the top-left corner. Exact (erf) and separable."""
    x_px, y_px, weights = (np.asarray(a, np.float64).reshape(-1) for a in (x_px, y_px, weights))
    height, width = shape
    image = np.zeros((height, width), np.float64)
    for start in range(0, len(x_px), chunk):
        sl = slice(start, start + chunk)
        ex = _pixel_integrals(x_px[sl], width, sigma_px)
        ey = _pixel_integrals(y_px[sl], height, sigma_px)
        image += (ey * weights[sl, None]).T @ ex
    return image.astype(np.float32)


def render_airy(x_px: np.ndarray, y_px: np.ndarray, weights: np.ndarray, *, shape: tuple[int, int],
                pixel_size_nm: float, wavelength_nm: float, na: float, oversample: int = 5) -> np.ndarray:
    """Sum of Airy patterns (``weights`` = integral of each) integrated over pixels by an
    ``oversample``² midpoint rule inside a window of ±6σ (σ = 0.21 λ/NA; ≈94 % of the energy, the far
    rings are dropped as a finite camera ROI would)."""
    height, width = shape
    image = np.zeros((height, width), np.float64)
    if len(x_px) == 0:
        return image.astype(np.float32)
    px = pixel_size_nm
    radius = math.ceil(6.0 * gaussian_sigma_nm(wavelength_nm, na) / px) + 1
    k = 2 * radius + 1
    sub = (np.arange(oversample) + 0.5) / oversample  # sub-pixel midpoints within a pixel
    offs = np.arange(-radius, radius + 1)
    # sample coordinates relative to the window's first pixel corner, (k*oversample,)
    grid = (offs[:, None] + sub[None, :]).reshape(-1)
    col0 = np.floor(x_px).astype(np.int64)
    row0 = np.floor(y_px).astype(np.int64)
    dx = (col0[:, None] + grid[None, :] - x_px[:, None]) * px  # (m, k*os) nm
    dy = (row0[:, None] + grid[None, :] - y_px[:, None]) * px
    r = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)
    density = airy_profile(r, wavelength_nm, na) * math.pi * na**2 / wavelength_nm**2  # per nm², integral 1
    per_pixel = density.reshape(len(x_px), k, oversample, k, oversample).sum(axis=(2, 4)) * (px / oversample) ** 2
    per_pixel *= weights[:, None, None]
    rows = row0[:, None] + offs[None, :]
    cols = col0[:, None] + offs[None, :]
    rr = np.broadcast_to(rows[:, :, None], per_pixel.shape)
    cc = np.broadcast_to(cols[:, None, :], per_pixel.shape)
    keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
    np.add.at(image, (rr[keep], cc[keep]), per_pixel[keep])
    return image.astype(np.float32)
