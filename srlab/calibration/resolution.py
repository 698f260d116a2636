"""Resolution from single images: the PSF width from the power spectrum, image decorrelation analysis
and single-image FRC.

**PSF FWHM from the power spectrum** (what the data block uses). The image of a specimen ``o`` through
a Gaussian PSF of σ, integrated by camera pixels and recorded with white noise, has the radially averaged
power spectrum ``P(f) = A(f)·|OTF(f)|²·O(f) + N`` with ``|OTF|² = exp(−4π²σ²f²)``, ``A`` the pixel
aperture (``sinc²(fx)·sinc²(fy)`` for a camera, 1 for a scanned pixel) and ``N`` the white-noise floor,
from the noise fit (:mod:`srlab.calibration.noise`: Σ window² × variance(mean)), scaled by a factor ``k``
shared by the images (one detector) and fitted with them, under a normal prior on ``ln k`` as wide as
the noise fit's relative error: where the PSF leaves no signal near Nyquist those rings are the floor
and pin it far better than the gain does, and the width depends on it (pySTED's photon-poor STED,
~24 photons at the peak, gain read 0.961 ± 0.051 for a true 1: held at that gain's floor the fit read
49.2 nm for pySTED's 57.6, at the true gain's 55.4, with ``k`` free 55.2 nm, ``k`` = 1.04 pinned by the
rings to ±0.5 %). Where the fitted signal reaches Nyquist in every image (undersampled images) no ring
is floor alone, and the floor is held. Labelled
filaments, membranes and puncta have spectra close to a power law ``O ∝ f^−α``, so the model of image
``j`` is ``M_j(f) = c_j·f^−α_j·A(f)·exp(−4π²σ²f²) + N_j`` — plus the same at the aliases ``f + k``
where the PSF is about one pixel wide (:func:`alias_table`, :data:`ALIAS_SIGMA_PX`: undersampled
images, whose spectra the aliases flatten near Nyquist). One σ is shared by all images (one
microscope), each image has its own ``c`` and ``α`` (its own specimen). The fit maximizes the Whittle
likelihood (Whittle 1953): a windowed coefficient's power is exponentially distributed about ``M(f)``,
so a ring of ``m`` coefficients contributes ``−m·(ln M + P/M)``. Every ring from the fourth to Nyquist
counts — where the signal sinks below the noise the model says so, instead of the band being cut where
the signal meets the noise, and rings are weighted by what they hold rather than by a log-transform of a
noisy difference. On photon-poor images (tens of photons at the peak, as in STED) this is what makes the
width measurable: on srlab's simulated STED at 23 photons, 3 images of 224², the least-squares fit to
``ln(P − N)`` per image had a 41 % rms error, this fit 11–18 % (``tests/calibration``).
The answer is the FWHM of the *effective* PSF — objects wider than the label (clathrin pits, bundles)
widen it, as they widen every spot; it is the blur the simulator must apply to its thin structures.
This is srlab's own method (the imaging equation and Whittle's approximation, no paper to cite for the
combination); its accuracy on srlab's simulated images is checked in ``tests/calibration``.

**Image decorrelation analysis** — Descloux, Grußmayer & Radenovic, "Parameter-free image resolution
estimation based on decorrelation analysis", Nat. Methods 16:918 (2019). Followed: the normalized
correlation ``d(r)`` between the spectrum ``F`` and the phase-only spectrum ``F/|F|`` restricted to
the disk of radius ``r`` (``r`` = 1 at Nyquist), its local maximum ``r₀``; the same after Gaussian
high-pass filters of decreasing width, and the highest peak position ``k_c`` among them;
resolution = 2·pixel/``k_c``. Adapted: ``d(r)`` is evaluated on a 200-point grid from cumulative sums
(no 50-point grid and refinement pass), a curve's peak is its global maximum (the authors' code,
``getDcorrLocalMax`` in ImDecorr, takes the highest-frequency local maximum of its 50-point curve, and
scans high-pass widths from the unfiltered peak's), peaks at the border (r ≥ 0.98) or below amplitude
0.05 are ignored, and the image is Hann-windowed rather than edge-apodized.

**Single-image FRC** — Koho et al., Nat. Commun. 10:3103 (2019), via
:func:`srlab.metrics.frc.checkerboard_frc_resolution_nm` (1/7 threshold; it cannot report below
4 pixels and needs oversampled images).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.signal.windows import hann

from srlab.optics.psf import FWHM_PER_SIGMA


def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(hann(shape[0], sym=False), hann(shape[1], sym=False))


@dataclass(frozen=True)
class SpectrumFit:
    """Gaussian-PSF fit to one image's power spectrum (σ in pixels) and the curves behind it."""

    sigma_px: float
    sigma_se_px: float
    alpha: float
    freq: np.ndarray  # ring centres, cycles/px
    power: np.ndarray  # ring-averaged power
    noise: float  # white-noise floor per coefficient
    model: np.ndarray  # fitted power (signal model + noise) on freq, NaN outside the fitted band
    band: tuple[float, float]

    @property
    def fwhm_px(self) -> float:
        return FWHM_PER_SIGMA * self.sigma_px


def radial_power(image: np.ndarray, *, camera: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Hann-windowed, mean-removed power spectrum averaged over rings one bin (1/min(H, W)) wide:
    ``(freq, power, aperture, count, window²-sum)``."""
    img = np.asarray(image, np.float64)
    h, w = img.shape
    win = _window(img.shape)
    spec = sfft.rfft2((img - img.mean()) * win, workers=1)
    power = spec.real**2 + spec.imag**2
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    n = min(h, w)
    ring = np.rint(np.sqrt(fy**2 + fx**2) * n).astype(np.int64)
    aperture = (np.sinc(fy) ** 2 * np.sinc(fx) ** 2) if camera else np.ones_like(ring, dtype=np.float64)
    aperture = np.broadcast_to(aperture, ring.shape)
    inside = ring <= n // 2
    count = np.bincount(ring[inside], minlength=n // 2 + 1).astype(np.float64)
    p = np.bincount(ring[inside], weights=power[inside], minlength=n // 2 + 1) / np.maximum(count, 1)
    a = np.bincount(ring[inside], weights=aperture[inside], minlength=n // 2 + 1) / np.maximum(count, 1)
    freq = np.arange(n // 2 + 1) / n
    return freq[1:], p[1:], a[1:], count[1:], win


# 2-D Hann window: neighbouring coefficients are correlated, so a ring of m coefficients carries the
# information of m·(Σw²)²/(N·Σw⁴) = m/(35/18)² independent ones (the point estimate does not depend on it;
# the stated uncertainty does).
_HANN_EFFECTIVE = (18.0 / 35.0) ** 2
_FIRST_RING = 3  # the lowest rings hold the field's layout, not a power law


#: Bins of alias frequency |f + k| (cycles/px; k ≠ 0 an integer pair, |f| ≤ ½ → |f + k| in [½, 2.2)) for
#: :func:`alias_table`. Each bin's terms are evaluated at their weighted mean frequency: at σ = ½ px the
#: Gaussian's exponent spans 0.26 within a bin, an error of ~0.3 % of the aliased power.
_ALIAS_BINS = np.linspace(0.5, 2.2, 129)
#: The widest PSF (σ, px, as the plain model reads it) refitted with its aliases: they all lie at
#: |f + k| ≥ ½, where the PSF passes at most ``exp(−π²σ²)`` of its power (5e−5 at 1 px, where the signal
#: there is below the noise of any image srlab has measured), so a well-sampled image's fit is the plain
#: model's and only a narrower one pays for the alias sums (3–5× the plain fit's time).
ALIAS_SIGMA_PX = 1.0

#: The narrowest prior on the floor's scale ``ln k`` (module doc): a gain given or read off frames states
#: a tiny error, but the floor also holds what the variance line leaves out (a camera's pattern,
#: rounding), a few tenths of a percent.
FLOOR_MIN_REL_SE = 0.003


@functools.lru_cache(maxsize=8)
def alias_table(shape: tuple[int, int], *, camera: bool) -> tuple[np.ndarray, np.ndarray]:
    """The aliases of each ring of :func:`radial_power`: a sampled image's spectrum at ``f`` holds the
    continuous one at every ``f + k`` (``k`` integer pairs, cycles/px), and a stationary specimen's power
    adds up, ``P(f) = Σ_k A(f+k)·|OTF(f+k)|²·O(|f+k|)``. For the 8 nearest ``k ≠ 0`` (farther ones are
    below 1e−7 of the main term for σ ≥ 0.3 px): per ring, the ring-averaged aperture weight of the alias
    frequencies binned by ``|f + k|`` (:data:`_ALIAS_BINS`), and the weighted mean ``|f + k|`` per bin —
    ``(weights, freq)``, both rings × bins. Negligible where the PSF is a few pixels wide (``exp(−4π²σ²f²)``
    at ``|f| ≥ ½``: < 1e−4 for σ ≥ 1 px), and what makes an undersampled image's spectrum flatter."""
    h, w = shape
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    n = min(h, w)
    ring = np.rint(np.sqrt(fy**2 + fx**2) * n).astype(np.int64)
    inside = (ring <= n // 2) & (ring >= 1)
    ring, fy, fx = ring[inside], np.broadcast_to(fy, inside.shape)[inside], np.broadcast_to(fx, inside.shape)[inside]
    count = np.bincount(ring, minlength=n // 2 + 1).astype(np.float64)
    nb = _ALIAS_BINS.size - 1
    weights = np.zeros((n // 2 + 1) * nb)
    moment = np.zeros_like(weights)
    for ky in (-1, 0, 1):
        for kx in (-1, 0, 1):
            if ky == kx == 0:
                continue
            gy, gx = fy + ky, fx + kx
            g = np.sqrt(gy**2 + gx**2)
            a = np.sinc(gy) ** 2 * np.sinc(gx) ** 2 if camera else np.ones_like(g)
            b = np.clip(np.searchsorted(_ALIAS_BINS, g) - 1, 0, nb - 1)
            weights += np.bincount(ring * nb + b, weights=a, minlength=weights.size)
            moment += np.bincount(ring * nb + b, weights=a * g, minlength=weights.size)
    weights, moment = weights.reshape(-1, nb), moment.reshape(-1, nb)
    freq = np.where(weights > 0, moment / np.where(weights > 0, weights, 1.0), 1.0)
    weights, freq = (weights / np.maximum(count, 1)[:, None])[1:], freq[1:]
    weights.flags.writeable = freq.flags.writeable = False  # cached: shared by every image of this shape
    return weights, freq


@dataclass(frozen=True)
class _Rings:
    freq: np.ndarray
    power: np.ndarray
    aperture: np.ndarray
    count: np.ndarray
    noise: float
    shape: tuple[int, int]
    camera: bool


def _rings(image: np.ndarray, variance: np.ndarray | float, camera: bool) -> _Rings:
    freq, power, aperture, count, win = radial_power(image, camera=camera)
    return _Rings(freq, power, aperture, count, float(np.sum(win**2 * np.broadcast_to(variance, win.shape))),
                  np.shape(image), camera)


def _signal(lnc: float, alpha: float, sigma2: float, lnf: np.ndarray, f2: np.ndarray, aperture: np.ndarray,
            aliases: tuple[np.ndarray, np.ndarray, np.ndarray] | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's signal per ring, ``c·Σ A·f^−α·exp(−4π²σ²f²)`` over the ring (``lnf = ln f``,
    ``f2 = 4π²f²``) and, given ``aliases`` (:func:`alias_table`'s weights with their ``ln f`` and ``4π²f²``),
    its aliases; and its derivatives by ``α`` and by ``σ²`` divided by the signal (``−⟨ln f⟩``, ``−⟨4π²f²⟩``)."""
    def term(lnx: np.ndarray, x2: np.ndarray, a: np.ndarray) -> np.ndarray:
        # clipped: the line search may try values far off, and an overflow would end the fit
        return np.exp(np.clip(lnc - alpha * lnx - sigma2 * x2, -700.0, 700.0)) * a

    main = term(lnf, f2, aperture)
    if aliases is None:
        return main, -lnf, -f2
    weight, ln_alias, alias2 = aliases
    alias = term(ln_alias, alias2, weight)
    signal = main + alias.sum(axis=1)
    safe = np.where(signal > 0, signal, 1.0)
    d_alpha = -(main * lnf + (alias * ln_alias).sum(axis=1)) / safe
    d_sigma2 = -(main * f2 + (alias * alias2).sum(axis=1)) / safe
    return signal, d_alpha, d_sigma2


def _curve(r: _Rings, start: int, aliased: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """:func:`_signal`'s fixed arguments for rings ``start:`` of ``r``."""
    f = r.freq[start:]
    aliases = None
    if aliased:
        weight, alias_freq = (t[start:] for t in alias_table(r.shape, camera=r.camera))
        aliases = (weight, np.log(alias_freq), 4.0 * math.pi**2 * alias_freq**2)
    return np.log(f), 4.0 * math.pi**2 * f**2, r.aperture[start:], aliases


def _has_signal(r: _Rings, min_snr: float = 1.0, min_rings: int = 6) -> bool:
    """At least ``min_rings`` consecutive rings from the first fitted one with power ≥ (1 + min_snr)·noise."""
    above = (r.power[_FIRST_RING:] - r.noise) / r.noise >= min_snr
    run = int(np.argmin(above)) if not above.all() else above.size
    return run >= min_rings


def _whittle(rings: list[_Rings], sigma_max_px: float, *, aliased: bool = False,
             floor_sd: float | None = None) -> tuple[np.ndarray, float]:
    """Maximize the Whittle likelihood of ``rings`` under a shared Gaussian PSF; return the parameters
    ``[ln c_1..n, α_1..n, ln k, ln σ²]`` and the Fisher standard error of σ (σ itself where σ sits at a
    bound: narrower than the pixels resolve, or wider than the image shows). ``k`` scales every ring's
    noise floor: 1 (held) without ``floor_sd``, else free with a normal prior on ``ln k`` of that width
    (module doc)."""
    from scipy.optimize import minimize

    n = len(rings)
    f = [r.freq[_FIRST_RING:] for r in rings]
    p = [r.power[_FIRST_RING:] for r in rings]
    m = [r.count[_FIRST_RING:] for r in rings]
    curves = [_curve(r, _FIRST_RING, aliased) for r in rings]

    def parts(x: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        signal, d_alpha, d_sigma2 = _signal(x[j], x[n + j], math.exp(x[-1]), *curves[j])
        return signal, signal + floor(x, j), d_alpha, d_sigma2

    def floor(x: np.ndarray, j: int) -> float:  # k·N_j, also ∂M/∂ln k
        return math.exp(x[-2]) * rings[j].noise

    def nll(x: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(x)
        for j in range(n):
            signal, model, d_alpha, d_sigma2 = parts(x, j)
            total += float(np.sum(m[j] * (np.log(model) + p[j] / model)))
            residual = m[j] * (1.0 - p[j] / model) / model
            d = residual * signal  # ∂nll/∂ln(signal)
            grad[j] = d.sum()
            grad[n + j] = (d * d_alpha).sum()
            grad[-1] += (d * d_sigma2).sum() * math.exp(x[-1])
            grad[-2] += float(residual.sum()) * floor(x, j)
        if floor_sd is not None:
            total += 0.5 * (x[-2] / floor_sd) ** 2
            grad[-2] += x[-2] / floor_sd**2
        return total, grad

    # σ on a log grid with each image's (c, α) fitted, then all together from the best: the likelihood
    # can have a second optimum where a steep object spectrum stands in for the PSF.
    # ln k held at 0 without a prior; with one, within ±5 of its widths (a floor beyond that is no fit)
    floor_bounds = (0.0, 0.0) if floor_sd is None else (-5.0 * floor_sd, 5.0 * floor_sd)
    bounds = ([(None, None)] * n + [(0.0, 4.0)] * n + [floor_bounds]
              + [(2 * math.log(0.05), 2 * math.log(sigma_max_px))])
    c0 = [math.log(max(float(pp[0]) - r.noise, r.noise)) + 1.5 * math.log(float(ff[0])) for pp, r, ff in zip(p, rings, f)]
    best = None
    for sigma in np.geomspace(0.1, sigma_max_px, 16) if not aliased else np.geomspace(0.1, 2 * ALIAS_SIGMA_PX, 8):
        x0 = np.array(c0 + [1.5] * n + [0.0, 2 * math.log(sigma)])
        fixed = bounds[:-1] + [(x0[-1], x0[-1])]
        res = minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=fixed)
        if best is None or res.fun < best.fun:
            best = res
    res = minimize(nll, best.x, jac=True, method="L-BFGS-B", bounds=bounds)
    x = res.x
    # Fisher information Σ m_eff·∂M/∂θ_i·∂M/∂θ_j / M² over the parameters not held at a bound.
    rows = []
    for j in range(n):
        signal, model, d_alpha, d_sigma2 = parts(x, j)
        g = np.zeros((f[j].size, x.size))
        g[:, j] = signal
        g[:, n + j] = d_alpha * signal
        g[:, -1] = d_sigma2 * math.exp(x[-1]) * signal
        g[:, -2] = floor(x, j)
        rows.append(g / model[:, None] * np.sqrt(m[j] * _HANN_EFFECTIVE)[:, None])
    jac = np.concatenate(rows)
    free = [i for i, (lo, hi) in enumerate(bounds) if not ((lo is not None and x[i] <= lo + 1e-9)
                                                         or (hi is not None and x[i] >= hi - 1e-9))]
    sigma = math.exp(x[-1] / 2)
    if x.size - 1 not in free:
        return x, sigma
    info = jac[:, free].T @ jac[:, free]
    if floor_sd is not None and x.size - 2 in free:
        info[free.index(x.size - 2), free.index(x.size - 2)] += 1.0 / floor_sd**2  # the prior's information
    cov = np.linalg.pinv(info)
    return x, sigma / 2 * math.sqrt(max(float(cov[-1, -1]), 0.0))


@dataclass(frozen=True)
class SpectraFit:
    """One Gaussian PSF fitted to several images' spectra at once (σ in pixels), and each image's curves."""

    sigma_px: float
    sigma_se_px: float
    images: list[SpectrumFit]
    floor_scale: float = 1.0  # the fitted noise floor over the one the variances imply (module doc)

    @property
    def fwhm_px(self) -> float:
        return FWHM_PER_SIGMA * self.sigma_px


def _floor_rings(x: np.ndarray, rings: list[_Rings]) -> bool:
    """Whether some image of the fit ``x`` (:func:`_whittle`'s plain model) has rings that are floor alone:
    its fitted signal at Nyquist below its floor."""
    n = len(rings)
    for j, r in enumerate(rings):
        signal = _signal(x[j], x[n + j], math.exp(x[-1]), *_curve(r, r.freq.size - 1, False))[0]
        if float(signal[-1]) < math.exp(x[-2]) * r.noise:
            return True
    return False


def fit_psf_spectra(images: list[np.ndarray], variances: list[np.ndarray | float], *, camera: bool,
                    floor_rel_se: float | None = None) -> SpectraFit:
    """Fit one ``σ`` (pixels) of a Gaussian PSF to the power spectra of ``images`` (see the module doc).

    ``variances``: each image's expected noise variance per pixel (ADU², e.g. ``gain·mean + b``) or a
    constant. ``floor_rel_se``: the relative standard error of those variances (the noise fit's), to let
    the spectra correct the floor they imply (module doc); without it the floor is held as given.
    Images without 6 rings of signal above the noise take no part (their fit is NaN); NaN σ
    when none has. The uncertainty is the larger of the Fisher error and the spread of the images'
    separate fits (1.25·sd/√n), as the object model is only approximate."""
    from srlab.calibration.threads import per_image

    rings = per_image(lambda iv: _rings(iv[0], iv[1], camera), zip(images, variances))
    used = [i for i, r in enumerate(rings) if _has_signal(r)]
    nan_fit = [SpectrumFit(math.nan, math.nan, math.nan, r.freq, r.power, r.noise, np.full(r.freq.shape, np.nan),
                           (math.nan, math.nan)) for r in rings]
    if not used:
        return SpectraFit(math.nan, math.nan, nan_fit)
    sigma_max = min(min(images[i].shape) for i in used) / 4.0
    # an error without a number (no noise line) holds the floor; one past 100 % (a variance near 0 at the
    # images' level) is no prior: then only the rings place it, up to e^±5
    floor_sd = (None if floor_rel_se is None or math.isnan(floor_rel_se)
                else min(max(float(floor_rel_se), FLOOR_MIN_REL_SE), 1.0))
    x, se = _whittle([rings[i] for i in used], sigma_max)
    if floor_sd is not None and _floor_rings(x, [rings[i] for i in used]):
        x, se = _whittle([rings[i] for i in used], sigma_max, floor_sd=floor_sd)
    else:
        # the signal reaches Nyquist in every image (undersampled: its aliases), so no ring is floor alone
        # and a free floor takes signal for noise (psfmodels' 10× / 20× pairs read +6 / +11 % with it,
        # its k up to 3.2): held, as the noise fit has it. Judged with the floor held, as a free one can
        # rise until it is above the signal everywhere.
        floor_sd = None
    # a PSF narrower than ALIAS_SIGMA_PX: refitted with its aliases (an undersampled image's spectrum is
    # flatter near Nyquist than its PSF's, so the plain model reads it narrow: srlab's 20× widefield −23 to −35 %)
    aliased = math.exp(x[-1] / 2) < ALIAS_SIGMA_PX
    if aliased:
        x, se = _whittle([rings[i] for i in used], sigma_max, aliased=True, floor_sd=floor_sd)
    n = len(used)
    sigma = math.exp(x[-1] / 2)
    if n > 1:
        alone = per_image(lambda i: math.exp(_whittle([rings[i]], sigma_max, aliased=aliased,
                                                      floor_sd=floor_sd)[0][-1] / 2), used)
        se = max(se, 1.2533 * float(np.std(alone, ddof=1)) / math.sqrt(n))
    fits = list(nan_fit)
    for k, i in enumerate(used):
        r = rings[i]
        signal = _signal(x[k], x[n + k], sigma**2, *_curve(r, 0, aliased))[0]
        noise = math.exp(x[-2]) * r.noise
        model = signal + noise
        model[:_FIRST_RING] = np.nan
        above = np.flatnonzero((signal >= noise) & (np.arange(r.freq.size) >= _FIRST_RING))
        band = (float(r.freq[_FIRST_RING]), float(r.freq[above[-1]]) if above.size else math.nan)
        fits[i] = SpectrumFit(sigma, se, float(x[n + k]), r.freq, r.power, noise, model, band)
    return SpectraFit(sigma, se, fits, math.exp(x[-2]))


@dataclass(frozen=True)
class Decorrelation:
    """Descloux et al. 2019 on one image: ``k_c`` (1 = Nyquist), the resolution in pixels (2/k_c), and
    the unfiltered curve and the filtered curves' peaks for the figure."""

    k_c: float
    resolution_px: float
    radius: np.ndarray
    curve: np.ndarray
    peaks: list[tuple[float, float]]

    @property
    def resolution_se_px(self) -> float:
        """The resolution's uncertainty from the radius grid alone (half a step in ``k_c``, uniform):
        the method's floor, what one image can state."""
        step = float(self.radius[1] - self.radius[0])
        return self.resolution_px * (0.5 * step / math.sqrt(3.0)) / self.k_c


def decorrelation(image: np.ndarray, *, n_filters: int = 10, n_points: int = 200) -> Decorrelation:
    """Image decorrelation analysis (see the module doc). NaN when no curve has an inner peak."""
    img = np.asarray(image, np.float64)
    h, w = img.shape
    spec = sfft.rfft2((img - img.mean()) * _window(img.shape), workers=1)
    spec[0, 0] = 0.0
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    r = np.broadcast_to(np.sqrt(fy**2 + fx**2) / 0.5, spec.shape).ravel()  # 1 at Nyquist
    weight = np.broadcast_to(np.where(fx == 0, 1.0, 2.0), spec.shape).ravel()  # the omitted half
    mag = np.abs(spec).ravel()
    keep = (r <= 1.0) & (mag > 0)
    r, weight, mag = r[keep], weight[keep], mag[keep]
    order = np.argsort(r, kind="stable")
    r, weight, mag = r[order], weight[order], mag[order]
    grid = np.linspace(0.0, 1.0, n_points + 1)[1:]
    idx = np.searchsorted(r, grid, side="right")
    n_in = np.cumsum(weight)

    def curve(filt: np.ndarray) -> np.ndarray:
        # d(r) = Σ_{|k|≤r} Re(F_g·conj(F/|F|)) / sqrt(Σ|F_g|² · Σ_{|k|≤r} 1); Re(F_g·conj(F/|F|)) = filt·|F|.
        num = np.concatenate([[0.0], np.cumsum(weight * filt * mag)])[idx]
        total = float(np.sum(weight * (filt * mag) ** 2))
        den = np.sqrt(total * np.concatenate([[0.0], n_in])[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, 0.0)

    def peak(d: np.ndarray) -> tuple[float, float] | None:
        i = int(np.argmax(d))
        if grid[i] >= 0.98 or d[i] < 0.05 or i == 0:
            return None
        return float(grid[i]), float(d[i])

    base = curve(np.ones_like(mag))
    peaks = [p for p in [peak(base)] if p is not None]
    for s in np.geomspace(1.0, 0.02, n_filters):
        hp = 1.0 - np.exp(-(r**2) / (2.0 * s**2))
        p = peak(curve(hp))
        if p is not None:
            peaks.append(p)
    if not peaks:
        return Decorrelation(math.nan, math.nan, grid, base, [])
    k_c = max(p[0] for p in peaks)
    return Decorrelation(k_c, 2.0 / k_c, grid, base, peaks)
