"""The calibration figure (matplotlib, Agg, no pyplot state): variance–mean fit, power spectrum fit,
decorrelation curve, real vs simulated patches, and histograms after percentile normalization — for the
LR side, and, where ``--hr`` images (or localization tables) were given, the HR side's patches and
histograms, so that a user sees whether the simulated targets look like their STED/SIM/STORM images."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srlab.calibration import Calibration
from srlab.calibration.background import normalize
from srlab.calibration.command import simulated_psf


def _patch(image: np.ndarray, size: int = 128) -> np.ndarray:
    """The central ``size``² pixels (or less), normalized at 0.1–99.9 %."""
    h, w = image.shape
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return normalize(image[y:y + s, x:x + s], 0.1, 99.9)


def _histograms(ax: Any, real: list[np.ndarray], simulated: list[np.ndarray], title: str) -> None:
    bins = np.linspace(-0.1, 1.1, 61)
    ax.hist(np.concatenate([normalize(im).ravel() for im in real]), bins=bins, density=True, histtype="step",
            label="real")
    if simulated:
        ax.hist(np.concatenate([normalize(im).ravel() for im in simulated]), bins=bins, density=True,
                histtype="step", label="simulated")
    ax.set(yscale="log", xlabel="intensity after 0.1–99.9 % normalization", ylabel="density", title=title)
    ax.legend(fontsize=7)


def draw(cal: Calibration, check: dict[str, Any], out: str | Path) -> Path:
    """Save :func:`figure` to ``out`` (PNG, 90 dpi)."""
    from srlab.calibration.block import save_figure

    return save_figure(figure(cal, check), out)


def figure(cal: Calibration, check: dict[str, Any]) -> Any:
    """The calibration figure of ``cal`` beside ``check`` (:func:`srlab.calibration.block.simulate_check`):
    a 2×3 grid for the LR side, a third row for the HR side where ``cal.hr`` is measured."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lr, sim = cal.lr, check.get("lr")
    rows = 2 if cal.hr is None else 3
    fig = Figure(figsize=(15, 4.5 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots(rows, 3)
    e = lr.estimates

    # (a) variance vs mean, real and simulated, with the fitted line
    a = ax[0, 0]
    n = lr.noise
    frames = lr.frame_gain
    if frames is None:
        a.errorbar(n.bin_mean[n.bin_used], n.bin_var[n.bin_used], yerr=n.bin_se[n.bin_used], fmt="o", ms=3,
                   label="real (each image's bins, moved to the mean level)" if n.levels_differ else "real (bins used)")
        if (~n.bin_used).any():
            a.plot(n.bin_mean[~n.bin_used], n.bin_var[~n.bin_used], "x", color="grey", label="real (trimmed)")
    else:  # the line is the frames'; the images' own bins show how far their structure leaks above it
        a.plot(n.bin_mean, n.bin_var, "o", ms=3, mfc="none", color="grey", label="real images (not fitted)")
        used = frames.bin_used
        a.errorbar(frames.bin_mean[used], frames.bin_var[used], yerr=frames.bin_se[used], fmt="o", ms=3,
                   label=f"repeated frames' differences ({frames.flag})")
    xs = np.linspace(min(n.bin_mean.min(), n.offset_adu), n.bin_mean.max(), 50)
    a.plot(xs, n.variance(xs), "-", color="C0",
           label=f"{'fit' if frames is None else 'the frames’ line'}: gain {e['gain_adu_per_photon'].text()}, "
                 f"read {e['read_noise_adu'].text()}")
    if sim is not None:
        a.plot(sim.noise.bin_mean, sim.noise.bin_var, "s", ms=3, mfc="none", color="C1", label="simulated")
    a.set(xlabel="local mean (ADU)", ylabel="noise variance (ADU²)", title="Photon-transfer curve")
    a.legend(fontsize=7)

    # (b) power spectrum of the first image and the fitted model
    b = ax[0, 1]
    s = lr.spectra[0]
    px = lr.pixel_size_nm
    area = lr.images[0].size  # power per pixel, so that images of different sizes compare
    b.loglog(s.freq / px * 1e3, s.power / area, lw=1, label="real")
    b.loglog(s.freq / px * 1e3, s.model / area, "--", label=f"fit: FWHM {e['psf_fwhm_spectrum_nm'].text()}")
    b.axhline(s.noise / area, color="grey", lw=0.8, label="noise floor (fitted, noise fit as prior)")
    if sim is not None:
        b.loglog(sim.spectra[0].freq / px * 1e3, sim.spectra[0].power / sim.images[0].size, lw=1, alpha=0.7,
                 label="simulated")
    b.set(xlabel="spatial frequency (1/µm)", ylabel="power per pixel (ADU²)", title="Power spectrum (first image)")
    b.legend(fontsize=7)

    # (c) decorrelation curves
    c = ax[0, 2]
    for side, label, style in ((lr, "real", "-"), (sim, "simulated", "--")):
        if side is None:
            continue
        d = side.decorrelations[0]
        c.plot(d.radius, d.curve, style, label=f"{label}: {side.estimates['decorrelation_resolution_nm'].text()}")
        for k, amp in d.peaks:
            c.plot(k, amp, "k." if label == "real" else "r.", ms=4)
    c.set(xlabel="normalized frequency (1 = Nyquist)", ylabel="d(r)", title="Decorrelation (Descloux 2019)")
    c.legend(fontsize=7)

    # (d, e) real vs simulated patches
    ax[1, 0].imshow(_patch(lr.images[0]), cmap="magma", vmin=0, vmax=1)
    ax[1, 0].set_title(f"real LR ({px:g} nm/px)")
    sims = check.get("lr_images") or []
    if sims:
        ax[1, 1].imshow(_patch(sims[0]), cmap="magma", vmin=0, vmax=1)
    ax[1, 1].set_title("simulated LR with the block")
    for a2 in (ax[1, 0], ax[1, 1]):
        a2.set_xticks([])
        a2.set_yticks([])

    # (f) histograms after percentile normalization
    _histograms(ax[1, 2], lr.images, sims, "Histogram")

    # (g, h, i) the HR side: the same field of view (in nm) as the LR patches, real vs simulated targets
    if cal.hr is not None:
        hr, hr_px = cal.hr, cal.hr.pixel_size_nm
        size = round(128 * px / hr_px)
        hr_sims = check.get("hr_images") or []
        measured = check.get("hr")
        ax[2, 0].imshow(_patch(hr.images[0], size), cmap="magma", vmin=0, vmax=1)
        ax[2, 0].set_title(f"real HR, {hr.modality} ({hr_px:g} nm/px)\nFWHM {hr.estimates['psf_fwhm_nm'].text()}",
                           fontsize=10)
        if hr_sims:
            ax[2, 1].imshow(_patch(hr_sims[0], size), cmap="magma", vmin=0, vmax=1)
        ax[2, 1].set_title("simulated HR with the block\n"
                           + (simulated_psf(hr, measured) if measured is not None else "not measured"), fontsize=10)
        for a2 in (ax[2, 0], ax[2, 1]):
            a2.set_xticks([])
            a2.set_yticks([])
        _histograms(ax[2, 2], hr.images, hr_sims, "HR histogram")
    hr_text = "" if cal.hr is None else f" and {len(cal.hr.images)} {cal.hr.modality}"
    fig.suptitle(f"srlab calibrate: {len(lr.images)} {lr.modality}{hr_text} image(s) → data block "
                 f"(x{cal.scale}, target {cal.target})")
    return fig
