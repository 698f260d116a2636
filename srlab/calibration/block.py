"""A :class:`~srlab.calibration.Calibration` as a simulator data block (``kind: simulated``), its YAML
with a comment header of the estimates, and the check simulation for the figure.

The block maps onto :class:`srlab.data.config.ModalityConfig`: ``pixel_size_nm``, ``psf_fwhm_nm``
(a Gaussian PSF of the measured FWHM), ``signal_photons`` (the noise-free level whose simulated images
read the measured one, :mod:`~srlab.calibration.lift`), ``background_photons``, and the detector as a
Poisson–Gaussian camera — ``counting`` for scanning modalities, ``scmos`` for cameras (an EMCCD's excess
noise is already in the fitted gain, so it is written as a camera without excess noise) — with
``e_per_adu`` = 1/gain, ``read_noise_e`` = read noise (ADU) / gain, ``offset_adu`` and ``bit_depth``.
Without ``--hr`` images the HR side is the target preset (at LR pixel / scale).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from srlab.calibration import Calibration, Side, pixel_photons_ok
from srlab.calibration.lift import LIFT_IMAGES, LIFT_SIZE_PX
from srlab.calibration.noise import block_offset_adu
from srlab.data.config import HR_IMAGE_SHARE
from srlab.errors import SrlabError
from srlab.optics.modality import PRESETS


def _r(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (readable YAML)."""
    if not math.isfinite(x) or x == 0:
        return float(x)
    return float(f"{x:.{digits}g}")


def label_fwhm_nm(specimens: dict[str, Any]) -> float:
    """FWHM of the specimens' label displacement (``label_size_nm`` is its σ; the simulator's default
    where the prior does not set it)."""
    from srlab.data.config import SimulationConfig
    from srlab.optics.psf import FWHM_PER_SIGMA

    return FWHM_PER_SIGMA * float(specimens.get("label_size_nm", SimulationConfig.label_size_nm))


def optical_fwhm_nm(side: Side, label_fwhm: float) -> float:
    """The PSF FWHM the simulator is given for ``side``: the measured one less the labels' size in
    quadrature. A detector image's measured resolution holds the labels' displacement from the
    structure (antibodies, linkers), which the simulator adds to every specimen; given the measured
    FWHM as the PSF it would count them twice (a 50 nm STED image simulated at ~53 nm). A rendering's
    is its localization precision (NeNA or the preset's), which does not hold them. Floored at half
    the measured width (a measured FWHM within 15 % of the labels' is the labels, not the optics)."""
    measured = side.estimates["psf_fwhm_nm"].value
    if side.rendering:
        return measured
    return math.sqrt(max(measured**2 - label_fwhm**2, (0.5 * measured) ** 2))


def modality_block(side: Side, label_fwhm: float = 0.0) -> dict[str, Any]:
    """The ModalityConfig fields that reproduce ``side`` on specimens whose labels have FWHM
    ``label_fwhm`` (:func:`optical_fwhm_nm`)."""
    e = side.estimates
    gain = e["gain_adu_per_photon"].value
    return {
        "modality": side.modality,
        "pixel_size_nm": _r(side.pixel_size_nm, 6),
        "psf_fwhm_nm": _r(optical_fwhm_nm(side, label_fwhm)),
        # the noise-free level whose simulated images read as the user's (srlab.calibration.lift)
        "signal_photons": _r(pixel_photons_ok(e.get("signal_expected_photons", e["signal_photons"]).value)),
        "background_photons": _r(pixel_photons_ok(e["background_photons"].value)),
        "detector": "counting" if PRESETS[side.modality]["detector"] == "counting" else "scmos",
        "e_per_adu": _r(1.0 / gain),
        "read_noise_e": _r(max(e["read_noise_adu"].value, 0.0) / gain),
        "offset_adu": _r(block_offset_adu(e["offset_adu"].value, e["offset_adu"].method)),
        "em_gain": 1.0,
        "bit_depth": int(side.bit_depth),
    }


#: The specimen side of a simulated data block: what a calibrated block takes from its prior block.
PRIOR_SIMULATION_KEYS = ("structures", "structures_per_image", "n_images", "lr_size_px", "label_size_nm",
                         "density_scale", "out_of_focus_fraction", "defocus_nm", "density_range",
                         "width_scale_range", "intensity_range", "labelling_fraction_range", "haze_range",
                         "illumination_gradient_range")
PRIOR_TOP_KEYS = ("min_foreground_fraction",)


def specimen_prior(name: str) -> dict[str, Any]:
    """The specimen prior of data block ``name`` (``experiments/data/<name>.yaml`` over the search path, or
    a ``.yaml`` file): its :data:`PRIOR_SIMULATION_KEYS` under ``simulation`` and :data:`PRIOR_TOP_KEYS`.

    Calibration measures the microscope, not the specimen; which structures a user images, and how much
    they vary, comes from a prior. The default, ``sim_broad``, is srlab's broad one (every structure of
    :data:`srlab.optics.specimens.STRUCTURES`, two per image, domain randomization); a block of one's own
    (``--prior``) can describe a known specimen, but narrowing the structures to the named ones cost
    0.15–0.23 dB on pySTED's STED (BENCHMARKS.md, realcheck section): breadth is worth keeping."""
    from srlab.config import _read_yaml, find_config

    path = Path(name) if name.endswith((".yaml", ".yml")) else find_config(f"data/{name}.yaml")
    if path is None or not path.is_file():
        raise SrlabError(f"--prior {name}: no data block experiments/data/{name}.yaml (nor such a file); "
                         f"name a simulated data block, e.g. sim_broad or sim_sted")
    block = _read_yaml(path)
    sim = block.get("simulation")
    if block.get("kind") != "simulated" or not isinstance(sim, dict):
        raise SrlabError(f"--prior {name}: {path} is not a simulated data block (kind: simulated, with a "
                         f"simulation: mapping)")
    prior = {"simulation": {k: sim[k] for k in PRIOR_SIMULATION_KEYS if k in sim}}
    prior.update({k: block[k] for k in PRIOR_TOP_KEYS if k in block})
    return prior


def hr_image_blur_line(cal: Calibration) -> str | None:
    """One line on the blur between the user's LR and HR images read off their spectra
    (:mod:`srlab.calibration.relative_blur`) beside the block's PSFs in quadrature
    (:func:`srlab.data.physics.pair_blur`); ``None`` without --hr images or for renderings. A cross-check:
    the block does not take it (``simulation.hr_image_blur_fwhm_nm`` would make the LR of the user's HR
    images with it; on pySTED's STED that did not help, docs/calibration-methods.md)."""
    from srlab.calibration.relative_blur import MAX_DEPARTURE
    from srlab.data.physics import pair_blur
    from srlab.data.simulate import resolve_simulation

    fit = cal.relative_blur
    if fit is None:
        return None
    label = label_fwhm_nm(specimen_prior(cal.prior)["simulation"])
    optics = {"lr": modality_block(cal.lr, label), "hr": modality_block(cal.hr, label)}
    quadrature = pair_blur(resolve_simulation(optics, scale=cal.scale, where="calibrated block")).fwhm_nm
    if not fit.measured:
        return f"HR -> LR blur from the spectra: not measured ({fit.reason}); the PSFs in quadrature: {quadrature:.0f} nm"
    line = (f"HR -> LR blur {fit.fwhm_nm:.0f} ± {fit.fwhm_se_nm:.2g} nm (Gaussian FWHM between your LR and HR images, "
            f"from the ratio of their spectra, {fit.band_per_um[0]:.2g}–{fit.band_per_um[1]:.2g}/µm); the PSFs in "
            f"quadrature: {quadrature:.0f} nm")
    if not quadrature > 0 or abs(fit.fwhm_nm / quadrature - 1.0) > MAX_DEPARTURE:
        line += (f" — more than {MAX_DEPARTURE:.0%} apart: other specimens in the two sets, processed images or a "
                 f"wrong pixel size?")
    return line


def data_block(cal: Calibration, *, n_images: int | None = None, lr_size_px: int | None = None,
               levels: bool = True) -> dict[str, Any]:
    """The data block (a mapping, as in ``experiments/data/sim_sted.yaml``): the measured modalities on
    the specimens of ``cal.prior`` (:func:`specimen_prior`); ``n_images``/``lr_size_px`` override the
    prior's image count and size. ``levels``: the sides' signal levels solved first
    (:func:`srlab.calibration.lift.set_expected_signal`); without, the block is at the images' readings,
    which is what the lift simulates from."""
    if levels:
        from srlab.calibration.lift import set_expected_signal

        set_expected_signal(cal)
    prior = specimen_prior(cal.prior)
    specimens = dict(prior["simulation"])  # keys the prior leaves out take SimulationConfig's defaults
    label = label_fwhm_nm(specimens)
    hr = modality_block(cal.hr, label) if cal.hr is not None else {"modality": cal.target}
    if n_images is not None:
        specimens["n_images"] = n_images
    if lr_size_px is not None:
        specimens["lr_size_px"] = lr_size_px
    if cal.hr is not None and cal.hr_specimens:
        # the user's own HR images are a sample of their specimen: also specimens of the simulation
        # (srlab.data.user_specimens), as training images beside the prior's
        specimens["hr_images"] = [str(Path(p).resolve()) for p in cal.hr.paths]
        specimens["hr_image_share"] = HR_IMAGE_SHARE
        if cal.hr_channel is not None:
            specimens["hr_image_channel"] = cal.hr_channel
    top = {k: v for k, v in prior.items() if k != "simulation"}
    if cal.channel is not None:
        # the channel of the user's LR files, for what reads them later (data.real_lr, srlab adapt);
        # the simulated images have one channel
        top["channel"] = cal.channel
    return {"kind": "simulated", "scale": int(cal.scale), "patch_size": 32, "batch_size": 16, **top,
            "simulation": {"lr": modality_block(cal.lr, label), "hr": hr, **specimens}}


def header(cal: Calibration) -> list[str]:
    """The comment lines: what was measured on which images, each with its uncertainty."""
    lines = ["Written by `srlab calibrate` (srlab.calibration): a simulator block whose images have the",
             "statistics measured on the images below. Estimates ± standard uncertainty (statistical only)."]
    for side in (cal.lr, cal.hr):
        if side is None:
            continue
        names = ", ".join(str(p) for p in side.paths[:6]) + (f" (+{len(side.paths) - 6} more)"
                                                            if len(side.paths) > 6 else "")
        channel = cal.channel if side is cal.lr else cal.hr_channel
        lines.append(f"{side.role.upper()} ({side.modality}, {side.pixel_size_nm:g} nm/px, {len(side.images)} "
                     f"image(s){'' if channel is None else f', channel {channel}'}): {names}")
        for key, est in side.estimates.items():
            lines.append(f"  {key:30s} {est.text():28s} [{est.method}]")
    if cal.hr is None:
        lines.append(f"HR: the '{cal.target}' preset at LR pixel / {cal.scale} (no --hr images)")
    lines.append(f"Specimens: the prior of data block '{cal.prior}' (--prior): structures and domain randomization")
    label = label_fwhm_nm(specimen_prior(cal.prior)["simulation"])
    for side in (cal.lr, cal.hr):
        if side is not None and not side.rendering:
            lines.append(f"{side.role.upper()} psf_fwhm_nm {optical_fwhm_nm(side, label):.4g} nm: the measured "
                         f"{side.estimates['psf_fwhm_nm'].value:.4g} nm less the labels' {label:.3g} nm FWHM "
                         f"(label_size_nm), which the simulator adds back")
    if cal.hr is not None and cal.hr_specimens:
        lines.append(f"  and the {len(cal.hr.paths)} HR image(s) above, imaged by the calibrated LR microscope "
                     f"(--hr-specimens, simulation.hr_images: half of the training pixels)")
    blur = hr_image_blur_line(cal)
    if blur is not None:
        lines.append(blur)
    lines += [f"Note: {n}" for n in cal.notes]
    return lines


def to_yaml(cal: Calibration, block: dict[str, Any] | None = None) -> str:
    block = block or data_block(cal)  # first: the header lists the levels it solves
    return yaml_text(header(cal), block)


def yaml_text(comments: list[str], block: dict[str, Any]) -> str:
    """A data block's YAML under a comment header."""
    body = yaml.safe_dump(block, sort_keys=False, default_flow_style=None, width=110)
    return "".join(f"# {line}\n" for line in comments) + body


def write_block(cal: Calibration, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the YAML to ``out`` (atomically); an existing file only with ``overwrite``."""
    return write_text(to_yaml(cal), out, overwrite=overwrite)


def output_paths(out: str | Path, *, overwrite: bool, example: str) -> tuple[Path, Path]:
    """The block ``out`` and its figure beside it (``.png``), checked before anything is computed: a
    ``.yaml`` name (``example`` shows one), and neither file replaced without ``overwrite``."""
    from srlab.runs import check_folder_can_be_made, check_writable

    out = Path(out)
    figure = out.with_suffix(".png")
    if out.suffix not in (".yaml", ".yml"):
        raise SrlabError(f"--out {out}: a data block is a .yaml file (e.g. {example})")
    for path in (out, figure):
        if path.is_dir():
            raise SrlabError(f"--out {out}: {path} is a folder; name a file (e.g. {example})")
        if path.exists() and not overwrite:
            raise SrlabError(f"{path} already exists; pass --overwrite to replace it (nothing was written)")
    check_folder_can_be_made(out, "--out")
    try:
        check_writable(out.parent)  # a refused folder fails now, not after the measuring
    except OSError as err:
        raise SrlabError(f"--out {out}: cannot write in {err.filename or out.parent}: "
                         f"{(err.strerror or str(err)).lower()}") from None
    return out, figure


def write_text(text: str, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a block's YAML ``text`` to ``out`` atomically; an existing file only with ``overwrite``."""
    from srlab.runs import atomic_write_text

    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise SrlabError(f"--out {out}: a data block is a .yaml file (e.g. experiments/data/mycal.yaml)")
    if out.exists() and not overwrite:
        raise SrlabError(f"{out} already exists; pass --overwrite to replace it (nothing was written)")
    atomic_write_text(out, text)  # UTF-8, as every YAML is read (the header has ± and –)
    return out


def save_figure(fig: Any, out: str | Path) -> Path:
    """Save a calibration figure to ``out`` (PNG, 90 dpi), its folder made as :func:`write_text` makes the
    block's (``--out`` may name a folder still to make; the figure is drawn first)."""
    from srlab.runs import written_in_place

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with written_in_place(out) as temporary:  # --overwrite: a failure keeps the earlier figure whole
        fig.savefig(temporary, dpi=90, format="png")
    return out


#: The check's (and the lift's) simulated fields are at most this many specimen-grid points a side
#: (64 LR px at least): the grid is ~10–50 nm, so 256 px of 650 nm are ~7000² points and ~10 GB, while
#: the levels and statistics these images measure come as well from a smaller field.
CHECK_MAX_GRID_PX = 4096


def check_size(cal: Calibration, size_px: int) -> int:
    """The LR size of the check's (and the lift's) simulated images: ``size_px``, or the user's images' if
    smaller, or what keeps the specimen grid within :data:`CHECK_MAX_GRID_PX` (64 at least)."""
    from srlab.data.simulate import resolve_simulation

    size = min(size_px, max(64, min(cal.lr.images[0].shape)))
    spec = resolve_simulation(data_block(cal, n_images=1, lr_size_px=size, levels=False)["simulation"],
                              scale=cal.scale, where="calibrated block")
    grid_per_lr_px = spec.lr.pixel_size_nm / spec.specimen_pixel_size_nm
    return max(64, min(size, int(CHECK_MAX_GRID_PX // grid_per_lr_px)))


def simulate_check(cal: Calibration, *, n: int = LIFT_IMAGES, size_px: int = LIFT_SIZE_PX) -> dict[str, Any]:
    """Simulate ``n`` LR images (and HR when measured) with the block and measure them as the real ones:
    the figure and the summary put both side by side. Where a side's gain was not fitted on its images (a
    data sheet's, or repeated frames' line), the simulated images are measured with it too — it is the
    block's camera: their own fit would read an undersampled block's gain several-fold high, and their
    photons and PSF with it (srlab's 20× preset with frames: simulated signal 388 photons for 1430)."""
    from srlab.calibration import measure
    from srlab.data.simulate import Imager, resolve_simulation

    size = check_size(cal, size_px)
    block = data_block(cal, n_images=n, lr_size_px=size)
    spec = resolve_simulation(block["simulation"], scale=cal.scale, where="calibrated block")
    lift = cal.lift
    if lift is not None and (lift.n, lift.size_px, lift.seed) == (n, size, spec.seed):
        # the specimens the levels were solved on, at the solved levels: Imager.image's images, not drawn twice
        images = {role: lift.camera_images(spec, role) for role in lift.expected}
    else:
        imager = Imager(spec)
        pairs = [imager.image(i) for i in range(n)]
        images = {role: [p[role] for p in pairs] for role in ("lr", "hr")}
    out: dict[str, Any] = {"spec": spec}
    for role, side in (("lr", cal.lr), ("hr", cal.hr)):
        if side is None:
            continue
        imgs = [im.astype(np.float64) for im in images[role]]
        try:
            out[role] = measure(role, side.modality, [], imgs, side.pixel_size_nm, side.bit_depth,
                                offset_adu=side.noise.offset_adu if side.noise.offset_given else None,
                                gain_adu_per_photon=side.noise.gain_adu_per_photon if side.noise.gain_given else None,
                                frame_gain=side.frame_gain)
        except SrlabError as err:  # the check is informative; a simulated image it cannot measure is noted
            out[f"{role}_error"] = str(err)
            out[role] = None
        out[f"{role}_images"] = imgs
    return out
