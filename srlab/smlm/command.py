"""``srlab localize``: a camera stack to ``localizations.csv`` and ``super_resolved.tif``, by a trained
density network (``srlab localize RUN STACK -o DIR``) or the classical Gaussian fitter, which needs no run
(``srlab localize --method gaussfit STACK -o DIR``).

The fitter needs the camera and the optics: pixel size, PSF σ, offset and conversion to photons. They come
from the options (``--pixel-size-nm``, ``--psf-sigma-nm``, ``--offset-adu``, ``--e-per-adu``,
``--em-gain``), else from an SMLM data block (``--data NAME``, e.g. one written by
``srlab calibrate --smlm``), else (pixel size only) from the TIFF's calibration; a missing one is a
one-line error naming the option.

The fitter's detection threshold is a multiple (``--threshold``, default 1) of each frame's own noise
(std of the first wavelet level), so it follows the calibrated/measured noise without a constant;
``--multi-emitter N`` (default 2 with the MLE fit) lets a poorly fitted spot be up to N emitters.

Outputs: ``localizations.csv`` (ThunderSTORM columns, with ``sigma [nm]`` and ``uncertainty [nm]`` from the
fitter), ``super_resolved.tif`` (the localizations rendered as Gaussians of their precision, or of
``--render-sigma-nm`` where none is known, on ``--render-pixel-nm`` pixels) and, for a network, its summed
raw output as ``network_density_sum.tif`` (labelled as such: not a rendering of the molecules). A network
sees each frame normalized by its own percentiles, the run's ``data.low_percentile`` /
``data.high_percentile`` (from its card), as its training frames were.
Kept apart from :mod:`srlab.cli` so that building the parser imports nothing heavy.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srlab.errors import SrlabError

METHODS = ("network", "gaussfit")
OUTPUT_NAMES = ("localizations.csv", "super_resolved.tif", "network_density_sum.tif")


@dataclass(frozen=True)
class FitterSettings:
    """What the classical fitter needs to know about the acquisition (units in the names)."""

    pixel_size_nm: float
    psf_sigma_nm: float
    offset_adu: float
    adu_per_photon: float
    excess_noise: float  # 2 for an EMCCD (multiplication noise), 1 otherwise


def load_smlm_block(name: str) -> dict[str, Any]:
    """The ``simulation`` mapping of an SMLM data block given by name (``./experiments/data/NAME.yaml``)
    or path; one line when it is not found or not ``kind: smlm``."""
    from omegaconf import OmegaConf

    from srlab.config import find_config

    path = Path(name)
    if not path.is_file():
        found = find_config(f"data/{name}.yaml")
        if found is None:
            raise SrlabError(f"--data {name}: no data block experiments/data/{name}.yaml (nor a file {name})")
        path = found
    values = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(values, dict) or values.get("kind") != "smlm":
        raise SrlabError(f"--data {name}: {path} is not an SMLM data block (kind: smlm)")
    return dict(values.get("simulation") or {})


def fitter_settings(args: argparse.Namespace, file_pixel_nm: float | None) -> FitterSettings:
    """Options first, then the data block, then the TIFF's pixel size; one line naming what is missing."""
    from srlab.smlm.simulate import SMLMConfig

    block = SMLMConfig.from_mapping(load_smlm_block(args.data), where=f"--data {args.data}") if args.data else None
    pixel = args.pixel_size_nm or (block.pixel_size_nm if block else None) or file_pixel_nm
    sigma = args.psf_sigma_nm or (block.sigma_nm if block else None)
    offset = args.offset_adu if args.offset_adu is not None else (block.offset_adu if block else None)
    if args.e_per_adu is not None:
        adu_per_photon = (args.em_gain or 1.0) / args.e_per_adu
        excess = 2.0 if (args.em_gain or 1.0) > 1 else 1.0
    elif block is not None:
        adu_per_photon = block.adu_per_photon
        excess = 2.0 if block.camera == "emccd" else 1.0
    else:
        adu_per_photon, excess = None, 1.0
    missing = [opt for opt, v in (("--pixel-size-nm", pixel), ("--psf-sigma-nm", sigma), ("--offset-adu", offset),
                                  ("--e-per-adu", adu_per_photon)) if v is None]
    if missing:
        raise SrlabError(f"gaussfit needs the camera and PSF: give {', '.join(missing)} (or --data BLOCK, an SMLM "
                         f"data block such as one from srlab calibrate --smlm)")
    for opt, v in (("--pixel-size-nm", pixel), ("--psf-sigma-nm", sigma), ("--e-per-adu", adu_per_photon)):
        if not v > 0:
            raise SrlabError(f"{opt}: must be > 0")
    return FitterSettings(float(pixel), float(sigma), float(offset), float(adu_per_photon), excess)


def fit_stack(stack: np.ndarray, settings: FitterSettings, *, threshold: float = 1.0, estimator: str = "mle",
              chunk: int = 16, progress: bool = True, max_emitters: int = 1):
    """The classical fitter over a ``(T, H, W)`` ADU stack, chunk by chunk with a progress bar;
    ``max_emitters`` > 1 adds the multi-emitter analysis (``srlab localize --multi-emitter N``)."""
    from tqdm.auto import tqdm

    from srlab.smlm.localizations import Localizations
    from srlab.smlm.localize import gaussian_fit_localize

    parts = []
    with tqdm(total=len(stack), disable=not progress, unit="frame", desc="gaussfit") as bar:
        for start in range(0, len(stack), chunk):
            photons = (np.asarray(stack[start:start + chunk], np.float64) - settings.offset_adu) / settings.adu_per_photon
            parts.append(gaussian_fit_localize(photons, pixel_size_nm=settings.pixel_size_nm,
                                               psf_sigma_nm=settings.psf_sigma_nm, threshold=threshold,
                                               first_frame=start, detector="wavelet", estimator=estimator,
                                               excess_noise=settings.excess_noise, max_emitters=max_emitters))
            bar.update(len(photons))
    return Localizations.concatenate(parts)


def render_super_resolved(locs, *, field_nm: tuple[float, float], pixel_size_nm: float,
                          sigma_nm: float) -> np.ndarray:
    """Each localization a unit Gaussian of its precision (``uncertainty_nm``, at least half a render
    pixel) or ``sigma_nm`` where unknown; precisions are grouped to 1 nm so rendering stays separable."""
    from srlab.smlm.localize import render_localizations

    unc = np.where(np.isfinite(locs.uncertainty_nm), locs.uncertainty_nm, sigma_nm)
    unc = np.round(np.clip(unc, 0.5 * pixel_size_nm, None))
    height, width = round(field_nm[0] / pixel_size_nm), round(field_nm[1] / pixel_size_nm)
    image = np.zeros((height, width), np.float32)
    for value in np.unique(unc):
        image += render_localizations(locs.select(unc == value), field_nm=field_nm, pixel_size_nm=pixel_size_nm,
                                      sigma_nm=float(value))
    return image


def run_localize(args: argparse.Namespace) -> int:
    from srlab.smlm.localizations import (
        hot_pixel_note,
        read_smlm_stack,
        repair_hot_pixels,
        write_imagej_tiff,
        write_localizations_csv,
    )

    paths = list(args.paths)
    if args.method == "gaussfit":
        if len(paths) != 1:
            raise SrlabError(f"--method gaussfit takes one stack, got {len(paths)} paths: srlab localize "
                             f"--method gaussfit STACK -o DIR")
        run, stack_path = None, paths[0]
    else:
        if len(paths) != 2:
            raise SrlabError("srlab localize RUN STACK -o DIR (a trained localization run), or "
                             "srlab localize --method gaussfit STACK -o DIR (no run)")
        run, stack_path = paths
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SrlabError(f"{out}: exists and is not a folder; -o names the output folder")
    existing = [str(out / n) for n in OUTPUT_NAMES if (out / n).exists()]
    if existing and not args.overwrite:
        raise SrlabError(f"{existing[0]} already exists; pass --overwrite to replace it")
    if not args.render_pixel_nm > 0 or not args.render_sigma_nm > 0:
        raise SrlabError("--render-pixel-nm and --render-sigma-nm must be > 0")
    stack, file_pixel_nm = read_smlm_stack(stack_path, channel=args.channel)
    stack, hot = repair_hot_pixels(stack)
    if hot:
        print(f"srlab: note: {hot_pixel_note(hot)}", file=sys.stderr)
    start = time.perf_counter()
    extra: dict[str, np.ndarray] = {}
    if run is None:
        settings = fitter_settings(args, file_pixel_nm)
        threshold = args.threshold if args.threshold is not None else 1.0
        emitters = args.multi_emitter if args.multi_emitter is not None else (2 if args.fit == "mle" else 1)
        if emitters < 1:
            raise SrlabError(f"--multi-emitter {emitters}: must be >= 1 (1: one emitter per spot)")
        if emitters > 1 and args.fit != "mle":
            raise SrlabError("--multi-emitter needs --fit mle (its model choice is a likelihood-ratio test)")
        locs = fit_stack(stack, settings, threshold=threshold, estimator=args.fit, progress=not args.quiet,
                         max_emitters=emitters)
        pixel = settings.pixel_size_nm
        multi = f", up to {emitters} emitters per spot" if emitters > 1 else ""
        how = (f"gaussfit (wavelet detection > {threshold:g}·std(F1), {args.fit.upper()} Gaussian fit, "
               f"σ {settings.psf_sigma_nm:.0f} nm{multi})")
    else:
        locs, pixel, density, scale, threshold = _network_localize(args, run, stack, file_pixel_nm)
        extra["network_density_sum.tif"] = (density, pixel / scale)
        how = f"network (threshold {threshold:g} emitters)"
    seconds = time.perf_counter() - start
    field_nm = (stack.shape[1] * pixel, stack.shape[2] * pixel)
    image = render_super_resolved(locs, field_nm=field_nm, pixel_size_nm=args.render_pixel_nm,
                                  sigma_nm=args.render_sigma_nm)
    csv_path = write_localizations_csv(out / "localizations.csv", locs)
    tif_path = write_imagej_tiff(out / "super_resolved.tif", image, pixel_size_nm=args.render_pixel_nm)
    lines = [(f"srlab: {len(locs)} localizations in {len(stack)} frames by {how}, "
              f"{len(stack) / max(seconds, 1e-9):.1f} frames/s -> {csv_path}"),
             (f"srlab: rendering ({args.render_pixel_nm:g} nm px, Gaussians of each localization's precision) "
              f"-> {tif_path}")]
    for name, (array, px) in extra.items():
        path = write_imagej_tiff(out / name, array, pixel_size_nm=px)
        lines.append(f"srlab: raw network output summed over frames (not a rendering) -> {path}")
    print("\n".join(lines))
    return 0


def _network_localize(args: argparse.Namespace, run: str, stack: np.ndarray, file_pixel_nm: float | None):
    import torch

    from srlab.cli import check_device
    from srlab.inference import load_network
    from srlab.smlm.localize import localize_stack

    network, card = load_network(run, args.checkpoint)
    if card.kind != "localization":
        instead = "srlab rate for quality-rating networks" if card.kind == "rating" else "srlab predict for SR networks"
        raise SrlabError(f"{run}: '{card.experiment}' is not a localization network (paradigm "
                         f"'{card.paradigm}'); use {instead}")
    pixel = args.pixel_size_nm if args.pixel_size_nm is not None else file_pixel_nm
    if pixel is None or not pixel > 0:
        raise SrlabError(f"{args.paths[-1]}: no pixel size in the file; give --pixel-size-nm")
    # The detection threshold tuned on validation travels in the card (from the checkpoint).
    saved = card.localization or {}
    threshold = args.threshold if args.threshold is not None else float(saved.get("threshold", 0.3))
    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    # Frames are normalized by the run's data.low_percentile / data.high_percentile (in the card), as its
    # training frames were: other percentiles would scale emitters and background differently.
    locs, density = localize_stack(network.to(device), stack, pixel_size_nm=pixel, scale=card.scale,
                                   batch_size=args.batch_size, emitter_mass=float(saved.get("emitter_mass", 100.0)),
                                   threshold=threshold, low_percentile=card.low_percentile,
                                   high_percentile=card.high_percentile, device=device, progress=not args.quiet)
    return locs, pixel, density, card.scale, threshold


def add_localize_arguments(p: argparse.ArgumentParser, checkpoint_help: str) -> None:
    p.add_argument("paths", nargs="+", metavar="[RUN] STACK",
                   help="a localization run (directory, checkpoint or network.pt) and a camera stack (T, H, W) "
                        "TIFF; with --method gaussfit only the stack")
    p.add_argument("--method", choices=METHODS, default="network",
                   help="network (default: a trained Deep-STORM/Deep-ULM run) or gaussfit (classical "
                        "ThunderSTORM-style fitter, no run needed)")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None, help=checkpoint_help)
    p.add_argument("-o", "--output", required=True,
                   help="output folder (localizations.csv, super_resolved.tif[, network_density_sum.tif])")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--threshold", type=float, default=None,
                   help="network: detection threshold in emitters (default: the one tuned on validation); "
                        "gaussfit: multiple of the wavelet noise std (default 1)")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="camera pixel size if the file has none")
    p.add_argument("--channel", type=int, default=None,
                   help="the channel (0-based) to localize in a multi-channel stack (a C axis)")
    p.add_argument("--psf-sigma-nm", type=float, default=None, help="gaussfit: PSF σ in nm")
    p.add_argument("--offset-adu", type=float, default=None, help="gaussfit: camera offset (ADU)")
    p.add_argument("--e-per-adu", type=float, default=None, help="gaussfit: photoelectrons per ADU")
    p.add_argument("--em-gain", type=float, default=None, help="gaussfit: EM gain (EMCCD; default 1)")
    p.add_argument("--data", default=None, metavar="BLOCK",
                   help="gaussfit: take the camera and PSF from an SMLM data block (experiments/data/BLOCK.yaml)")
    p.add_argument("--fit", choices=("mle", "lsq"), default="mle",
                   help="gaussfit: Poisson maximum likelihood (default) or least squares")
    p.add_argument("--multi-emitter", type=int, default=None, metavar="N",
                   help="gaussfit: a poorly fitted spot may be up to N emitters, chosen by a likelihood-ratio "
                        "test (ThunderSTORM's multi-emitter analysis; default 2 with --fit mle, 1 = off)")
    p.add_argument("--render-pixel-nm", type=float, default=10.0, help="super_resolved.tif pixel (default 10 nm)")
    p.add_argument("--render-sigma-nm", type=float, default=20.0,
                   help="rendering σ where a localization has no precision (network output; default 20 nm)")
    p.add_argument("--batch-size", type=int, default=32, help="network: frames per forward pass (default 32)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

