"""``srlab evaluate``: score methods on *every* image of a paired folder, whole, beside the classical baselines.

A paired folder is ``FOLDER/lr/*.tif`` + ``FOLDER/hr/*.tif`` matched by name (what ``srlab simulate`` writes and
``data.kind=paired`` reads). No split is made: every image (every slice of a stack) is scored, whole, by tiled
prediction (:func:`srlab.inference.tiling.predict_tiled`). A method is a run directory / ``network.pt`` (loaded by
:func:`srlab.inference.load_network`, its LR normalized with the run's own percentiles) or the name of a
classical baseline (``bicubic``, ``richardson_lucy``); bicubic and Richardson–Lucy are always added. RL's PSF:
``--psf-fwhm-nm`` (with the LR pixel size of the files), ``--psf-fwhm-px``, or, for a folder written by ``srlab
simulate``, the blur between its LR and HR PSFs (``sqrt(FWHM_lr² - FWHM_hr²)``, from ``simulation.json``);
without any, RL is left out and the summary says so.

Each pair's alignment, HR against LR, is measured (:mod:`srlab.data.registration`: a shift per pair, the
folder's magnification and rotation, fitted on the bicubic LR against the HR) and reported; a note advises
``--register`` where the median displacement over a field reaches half an HR pixel. With ``--register`` every
prediction (baselines and runs alike) is brought into its HR's frame and the border that brings in is left out
of prediction and HR before scoring.

A noisy reference caps every score: against an HR with a few tens of photons at its brightest pixels even
the noise-free truth scores little above bicubic interpolation. Where the HR images are raw counts (or
any linear rescaling of them), the Poisson–Gaussian line fitted to them (:func:`noise_ceiling_db`) says
what headline PSNR a noise-free prediction would score, and the summary says so — and that the
reference, not the methods, sets the scores where the best method is within a dB of it.

A folder that also holds its HR without noise (``FOLDER/hr_noise_free/``, matched by name: ``srlab simulate``
writes it beside acquired HR images) is scored against it too, headline PSNR/SSIM/NRMSE as ``noise_free_*``
(:data:`NOISE_FREE_KEYS`; what a method resolves, which the acquired HR's noise hides).
``--tta`` adds, after each run, the same run predicted as ``srlab predict --tta`` does (the mean of the 8
dihedral transforms), a row of its own (:func:`with_tta`).

Metrics are :func:`srlab.metrics.image.image_metrics` (headline CARE convention and plain; ``docs/metrics.md``)
on the HR normalized with srlab's data percentiles (0.1/99.9 %). Images whose HR is empty or constant are
excluded from every mean and counted. Statistics are over images (the independent unit): mean ± 95 %
t-interval, and the two-sided Wilcoxon signed-rank p of each method against the best (headline PSNR), Holm-adjusted.

Writes into ``--out``: ``per_image.csv`` (one line per method × image), ``summary.md`` and ``summary.json``,
and ``montages/<image>.png`` (LR-bicubic | each method | HR, and each one's error map below).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from srlab.compare.evaluate import NOISE_FREE_NAMES
from srlab.compare.report import fmt_ci, fmt_p
from srlab.errors import SrlabError
from srlab.metrics import stats
from srlab.metrics.image import (
    HIGHER_IS_BETTER,
    METRIC_DEFINITIONS,
    REFERENCE_PERCENTILES,
    affine_fit,
    empty_reference,
    image_metrics,
    metric_keys,
    normalize_reference,
)
from srlab.runs import atomic_write_bytes, atomic_write_text, check_folder_can_be_made, resolve_run_dir

BASELINES = ("bicubic", "richardson_lucy")
KEYS = metric_keys()
#: The headline metrics against a folder's noise-free HR (``hr_noise_free/``), where it has one (as a suite's).
NOISE_FREE_KEYS = tuple(f"noise_free_{name}" for name in NOISE_FREE_NAMES)
OUTPUTS = ("per_image.csv", "summary.md", "summary.json")


@dataclass
class Method:
    label: str
    network: nn.Module
    low_percentile: float
    high_percentile: float
    source: str
    values: dict[str, list[float]] = field(default_factory=dict)
    tta: bool = False  # predicted as the mean of the 8 dihedral transforms (srlab predict --tta)
    # a trained run's folder, whose data.json names its training images (srlab.data.fingerprints); else None
    run_dir: Path | None = None


#: Label suffix of a run's ``--tta`` row.
TTA_SUFFIX = " (×8 self-ensemble, --tta)"


def with_tta(methods: list[Method]) -> list[Method]:
    """``methods`` with a ``--tta`` row after each run's (the ×8 dihedral self-ensemble of ``srlab predict
    --tta``, Lim et al. 2017's "EDSR+"): the same network, so its gain is read side by side, paired by
    image. The baselines get none: bicubic and Richardson–Lucy with a symmetric PSF are equivariant."""
    out: list[Method] = []
    for m in methods:
        out.append(m)
        if m.label not in BASELINES:
            out.append(Method(m.label + TTA_SUFFIX, m.network, m.low_percentile, m.high_percentile,
                              f"{m.source}, predicted with --tta", tta=True))
    return out


@dataclass
class PairedImage:
    name: str
    lr: np.ndarray  # (C, h, w) raw
    hr: np.ndarray  # (C, s·h, s·w) raw
    hr_noise_free: np.ndarray | None = None  # the folder's hr_noise_free/ image, where it has one


def load_folder(folder: Path, scale: int, channels: int | None = None) -> tuple[list[PairedImage], float | None]:
    """Every image pair of ``folder`` (lr/, hr/ matched by name) and the LR pixel size (None if unknown).
    ``channels``: how many each file must have (a suite's ``data.channels``); ``None``: as many as the first
    LR file has (every channel scored: srlab evaluate). Where the folder has ``hr_noise_free/``
    (:data:`srlab.data.simulate.NOISE_FREE_HR_DIR`), each pair also gets its image of the HR's name there,
    checked as the HR is."""
    from srlab.data.datamodules import _consensus_pixel_size, _match_folders, _pair_images
    from srlab.data.io import channel_axis, load_images, read_tiff
    from srlab.data.simulate import NOISE_FREE_HR_DIR

    if not folder.is_dir():
        raise SrlabError(f"{folder}: --pairs is not a folder (expected FOLDER/lr/*.tif and FOLDER/hr/*.tif)")
    matched = _match_folders(folder, "lr", "hr")
    if channels is None and matched:
        array, axes, _ = read_tiff(matched[0][0])
        found = channel_axis(array, axes, matched[0][0])
        channels = 1 if found is None else int(array.shape[found])
    cfg = SimpleNamespace(channels=channels or 1, scale=scale, patch_size=1)
    clean_dir = folder / NOISE_FREE_HR_DIR
    images, loaded = [], []
    for lr_path, hr_path, _ in matched:
        pairs = _pair_images(lr_path, hr_path, cfg, None)
        clean: list[Any] = [None] * len(pairs)
        if clean_dir.is_dir():
            if not (clean_dir / hr_path.name).is_file():
                raise SrlabError(f"{clean_dir}: no {hr_path.name} for {hr_path}; its noise-free HR images must match "
                                 f"hr/ by name (or move the folder away to score against hr/ only)")
            # checked against its HR (which _pair_images checked against the LR): the LR is not read again
            clean = load_images(clean_dir / hr_path.name, channel=None, channels=cfg.channels)
            if len(clean) != len(pairs):
                raise SrlabError(f"{clean_dir / hr_path.name}: {len(clean)} image(s) in the stack but {hr_path} "
                                 f"has {len(pairs)}")
        for (lr, hr), hr_clean in zip(pairs, clean):
            if hr_clean is not None:
                if hr_clean.image.shape != hr.image.shape:
                    raise SrlabError(f"{clean_dir / hr_path.name}: {hr_clean.image.shape[-2:]} px, but {hr_path} "
                                     f"is {hr.image.shape[-2:]} px")
                if hr_clean.pixel_size_nm and hr.pixel_size_nm and not math.isclose(
                        hr_clean.pixel_size_nm, hr.pixel_size_nm, rel_tol=0.03):
                    raise SrlabError(f"{clean_dir / hr_path.name}: pixel size {hr_clean.pixel_size_nm:g} nm, but "
                                     f"{hr_path} has {hr.pixel_size_nm:g} nm")
                hr_clean = hr_clean.image
            loaded.append(lr)
            images.append(PairedImage(lr.name, lr.image, hr.image, hr_clean))
    return images, _consensus_pixel_size(loaded, None)


def measured_alignments(images: Sequence[PairedImage], scale: int, measured: dict[Path, Any] | None = None
                        ) -> tuple[list[str], dict[str, Any]]:
    """The names of the images whose reference is empty (no structure: no score, no alignment) and every other
    image's alignment, measured together (:func:`srlab.data.registration.folder_alignments`, which adds a new
    measurement to ``measured``): what srlab evaluate and a suite's ``test_pairs`` both score by."""
    from srlab.data.normalize import channel_normalize
    from srlab.data.registration import folder_alignments

    excluded = [im.name for im in images
                if bool(empty_reference(torch.from_numpy(channel_normalize(im.hr)[0].astype(np.float32))[None])[0])]
    kept = [im for im in images if im.name not in excluded]
    return excluded, dict(zip((im.name for im in kept),
                              folder_alignments([(im.lr, im.hr) for im in kept], scale, measured=measured)))


#: The fewest HR pixels a side that a registered score keeps: a move that leaves fewer is not of one field.
MIN_REGISTERED_SIDE_PX = 16


def check_registered_overlap(images: Sequence[PairedImage], alignments: dict[str, Any]) -> None:
    """One line, before anything is scored, for a pair whose registration leaves fewer than
    :data:`MIN_REGISTERED_SIDE_PX` of its HR a side once the border its move brings in is left out (two
    fields of view, or a pair shifted by half its width: the crop was empty, a traceback from
    ``torch.quantile`` after the earlier pairs' montages were written)."""
    from srlab.data.registration import border_px

    for image in images:
        alignment = alignments.get(image.name)
        if alignment is None:
            continue
        shape = tuple(image.hr.shape[-2:])
        left = min(shape) - 2 * border_px(alignment, shape)
        if left < MIN_REGISTERED_SIDE_PX:
            raise SrlabError(f"{image.name}: registered, its LR and HR share {max(left, 0)} HR px a side (moved "
                             f"{alignment.displacement_px(shape):.0f} px of {min(shape)}): not one field of view? "
                             f"Leave the pair out, or score without registration")


def folder_scale(folder: Path) -> int:
    """The scale of a paired folder from its first pair's shapes."""
    from srlab.data.datamodules import _match_folders
    from srlab.data.io import read_tiff

    lr_path, hr_path, _ = _match_folders(folder, "lr", "hr")[0]
    (lr, _, _), (hr, _, _) = read_tiff(lr_path), read_tiff(hr_path)
    ratio = hr.shape[-1] / lr.shape[-1]
    if ratio < 1 or not float(ratio).is_integer():
        raise SrlabError(f"{hr_path}: HR width {hr.shape[-1]} is not an integer multiple of LR width {lr.shape[-1]}")
    return int(ratio)


def simulated_psf_fwhm_nm(folder: Path) -> float | None:
    """For a folder of ``srlab simulate``: the blur from the HR to the LR image, sqrt(FWHM_lr² - FWHM_hr²)."""
    path = folder / "simulation.json"
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))  # another tool's simulation.json: not srlab's
        lr, hr = float(settings["lr"]["fwhm_nm"]), float(settings["hr"]["fwhm_nm"])
    except (KeyError, TypeError, ValueError):  # ValueError: JSONDecodeError, UnicodeDecodeError
        return None
    return math.sqrt(lr * lr - hr * hr) if lr > hr else None


def build_methods(specs: Sequence[str], *, scale: int, channels: int, lr_pixel_size_nm: float | None,
                  psf_fwhm_nm: float | None, psf_fwhm_px: float | None, folder: Path,
                  notes: list[str]) -> list[Method]:
    """Methods named on the command line, then the baselines not named there."""
    from srlab import models
    from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE
    from srlab.inference import load_network
    from srlab.inference.predict import PIXEL_TOLERANCE

    methods: list[Method] = []

    def baseline(name: str) -> Method | None:
        kwargs: dict[str, Any] = {"in_channels": channels, "out_channels": channels, "scale": scale}
        source = name
        if name == "richardson_lucy":
            if psf_fwhm_px is not None:
                kwargs["psf_fwhm_px"] = psf_fwhm_px
                source = f"richardson_lucy (PSF FWHM {psf_fwhm_px:g} LR px, --psf-fwhm-px)"
            else:
                fwhm, origin = psf_fwhm_nm, "--psf-fwhm-nm"
                if fwhm is None:
                    fwhm, origin = simulated_psf_fwhm_nm(folder), "simulation.json: sqrt(FWHM_lr² - FWHM_hr²)"
                if fwhm is None or lr_pixel_size_nm is None:
                    notes.append("Richardson–Lucy not run: it needs the PSF (--psf-fwhm-px, or --psf-fwhm-nm with "
                                 "the LR pixel size in the files)")
                    return None
                kwargs.update(psf_fwhm_nm=fwhm, pixel_size_nm=lr_pixel_size_nm)
                source = f"richardson_lucy (PSF FWHM {fwhm:.0f} nm from {origin}, LR pixels {lr_pixel_size_nm:g} nm)"
        return Method(name, models.create(name, **kwargs), DEFAULT_LOW_PERCENTILE, DEFAULT_HIGH_PERCENTILE, source)

    for spec in specs:
        if spec in BASELINES:
            method = baseline(spec)
            if method is not None:
                methods.append(method)
            continue
        if not Path(spec).exists():
            raise SrlabError(f"{spec}: neither a run directory / network.pt nor a baseline "
                             f"({', '.join(BASELINES)})")
        network, card = load_network(spec)
        if card.kind != "image":
            raise SrlabError(f"{spec}: '{card.experiment}' is a {card.kind} network; srlab evaluate scores image SR")
        if card.scale != scale:
            raise SrlabError(f"{spec}: '{card.experiment}' is x{card.scale} but the pairs of {folder} are x{scale}")
        if card.channels != channels:
            raise SrlabError(f"{spec}: '{card.experiment}' takes {card.channels} channel(s), the pairs have {channels}")
        label = card.experiment
        if any(m.label == label for m in methods):
            label = f"{label} ({Path(spec).name})"
        trained_px = card.lr_pixel_size_nm
        if trained_px and lr_pixel_size_nm and abs(lr_pixel_size_nm / trained_px - 1.0) > PIXEL_TOLERANCE:
            # scored as it is (a comparison may want exactly that), but never silently: srlab predict and srlab
            # test refuse such a grid unless told
            notes.append(f"{label} was trained on {trained_px:g} nm LR pixels, the pairs' LR pixels are "
                         f"{lr_pixel_size_nm:g} nm ({abs(lr_pixel_size_nm / trained_px - 1.0):.0%} apart): its rows "
                         f"score it off its training grid")
        try:
            run_dir: Path | None = resolve_run_dir(spec)
        except SrlabError:  # a network.pt on its own: no training images recorded
            run_dir = None
        methods.append(Method(label, network, card.low_percentile, card.high_percentile, f"{spec} ({card.network})",
                              run_dir=run_dir))
    for name in BASELINES:
        if not any(m.label == name for m in methods):
            method = baseline(name)
            if method is not None:
                methods.append(method)
    return methods


def _montage(name: str, panels: list[tuple[str, np.ndarray]], hr: np.ndarray) -> bytes:
    """A PNG: row 1, every prediction (affine-fitted to the normalized HR, so one grey scale) and the HR;
    row 2, the absolute error of each, on one scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels) + 1
    errors = [np.abs(p - hr) for _, p in panels]
    top = max(float(np.percentile(e, 99.5)) for e in errors) or 1.0
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for k, (label, image) in enumerate([*panels, ("HR", hr)]):
        axes[0, k].imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        axes[0, k].set_title(label, fontsize=8)
        if k < len(errors):
            axes[1, k].imshow(errors[k], cmap="magma", vmin=0.0, vmax=top)
            axes[1, k].set_title(f"|{label} − HR|", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(f"{name} (HR normalized 1/99.8 %, predictions affine-fitted; errors 0–{top:.2f})", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _summaries(methods: list[Method], keys: Sequence[str] = KEYS) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        entry: dict[str, Any] = {"source": method.source}
        for key in keys:
            mean, low, high, n = stats.mean_ci(method.values[key])
            entry[key] = {"mean": mean, "ci_low": low, "ci_high": high, "n": n}
        out[method.label] = entry
    ranked = sorted(methods, key=lambda m: -out[m.label]["psnr"]["mean"]
                    if math.isfinite(out[m.label]["psnr"]["mean"]) else math.inf)
    best = ranked[0]
    others = ranked[1:]
    pvalues = [stats.paired_wilcoxon(m.values["psnr"], best.values["psnr"]) for m in others]
    for m, p, p_holm in zip(others, pvalues, stats.holm(pvalues)):
        out[m.label].update(p_vs_best=p, p_vs_best_holm=p_holm, best=False)
    out[best.label].update(p_vs_best=math.nan, p_vs_best_holm=math.nan, best=True)
    for rank, m in enumerate(ranked, 1):
        out[m.label]["rank"] = rank
    return out


def _markdown(folder: Path, summary: dict[str, dict[str, Any]], n_images: int, excluded: list[str],
              notes: list[str], hr_percentiles: tuple[float, float]) -> str:
    order = sorted(summary, key=lambda k: summary[k]["rank"])
    lines = [f"# srlab evaluate: `{folder}`", "",
             (f"Every image of the folder, whole: {n_images} image(s); {len(excluded)} excluded from every mean "
              f"(empty or constant ground truth{': ' + ', '.join(excluded) if excluded else ''}). "
              f"Statistics over images (the independent unit): mean ± half-width of the 95 % t-interval; p is the "
              f"two-sided Wilcoxon signed-rank test against the best row (headline PSNR), paired by image."), "",
             (f"**Headline** PSNR/SSIM/NRMSE (CARE convention, metric definitions {METRIC_DEFINITIONS}): the "
              f"prediction affine-fitted (least squares) to the ground truth normalized by its own "
              f"{REFERENCE_PERCENTILES[0]:g}/{REFERENCE_PERCENTILES[1]:g} % percentiles; NRMSE = RMSE / std of the "
              f"ground truth. **Plain**: unfitted, on [0, 1]-clipped images after srlab's data normalization "
              f"(per image and channel: each run's LR and HR with the run's own percentiles, as it trained; "
              f"the baselines' with {hr_percentiles[0]:g}/{hr_percentiles[1]:g} %). "
              f"Definitions: `docs/metrics.md`."), ""]
    clean = NOISE_FREE_KEYS[0] in next(iter(summary.values()))
    head = ["#", "method", "PSNR (dB)", "SSIM", "MS-SSIM", "NRMSE", "PSNR plain (dB)", "SSIM plain", "NRMSE plain",
            *(["PSNR vs noise-free HR (dB)", "SSIM vs noise-free HR"] if clean else []),
            "p vs best", "p (Holm)", "images"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in order:
        s = summary[label]
        cells = [str(s["rank"]), f"**{label}**" if s["best"] else label, fmt_ci(s["psnr"], 2), fmt_ci(s["ssim"], 4),
                 fmt_ci(s["ms_ssim"], 4), fmt_ci(s["nrmse"], 4), fmt_ci(s["psnr_plain"], 2), fmt_ci(s["ssim_plain"], 4),
                 fmt_ci(s["nrmse_plain"], 4),
                 *([fmt_ci(s["noise_free_psnr"], 2), fmt_ci(s["noise_free_ssim"], 4)] if clean else []),
                 "best" if s["best"] else fmt_p(s["p_vs_best"]),
                 "" if s["best"] else fmt_p(s["p_vs_best_holm"]), str(s["psnr"]["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    if clean:
        lines += ["", ("*vs noise-free HR*: the headline metrics against the folder's `hr_noise_free/` images, the HR "
                       "without its shot and camera noise (a simulator's expected counts); rank and p stay on the "
                       "PSNR against `hr/`.")]
    lines += ["", "Methods:", *[f"- **{label}**: {summary[label]['source']}" for label in order]]
    if notes:
        lines += ["", *[f"Note: {n}." for n in notes]]
    lines += ["", "Montages (LR-bicubic | each method | HR; error maps below): `montages/<image>.png`."]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def evaluate_pairs(specs: Sequence[str], pairs: str | Path, out: str | Path, *, overwrite: bool = False,
                   psf_fwhm_nm: float | None = None, psf_fwhm_px: float | None = None, device: str = "cpu",
                   tile_size: int = 256, overlap: int = 32, montages: bool = True, tta: bool = False,
                   register: bool = False, log=print) -> dict[str, Any]:
    """Score ``specs`` (run dirs / baseline names) on every pair of ``pairs``; write the report to ``out``.
    ``tta``: each run also scored as its ×8 self-ensemble, a row of its own (:func:`with_tta`). ``register``:
    predictions brought into their HR's frame by their pair's measured alignment before scoring
    (:func:`srlab.data.registration.folder_alignments`: a shift per pair, the pairs' magnification and
    rotation; measured and reported either way)."""
    from srlab.data.fingerprints import trained_on
    from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE, channel_normalize
    from srlab.data.registration import Alignment, border_px, cropped, warped
    from srlab.inference.tiling import predict_tiled

    folder, out = Path(pairs), Path(out)
    if out.exists() and not out.is_dir():
        raise SrlabError(f"{out}: exists and is not a folder; --out names the output folder")
    check_folder_can_be_made(out, "--out")
    existing = [str(out / f) for f in OUTPUTS if (out / f).exists()]
    if (out / "montages").is_dir() and any((out / "montages").iterdir()):
        existing.append(str(out / "montages"))
    if existing and not overwrite:
        raise SrlabError(f"{existing[0]} already exists; pass --overwrite to replace it")
    scale = folder_scale(folder) if folder.is_dir() else 0
    images, lr_px = load_folder(folder, scale)
    channels = images[0].lr.shape[0]
    notes: list[str] = []
    methods = build_methods(specs, scale=scale, channels=channels, lr_pixel_size_nm=lr_px, psf_fwhm_nm=psf_fwhm_nm,
                            psf_fwhm_px=psf_fwhm_px, folder=folder, notes=notes)
    if tta:
        methods = with_tta(methods)
    clean = all(im.hr_noise_free is not None for im in images)
    keys = (*KEYS, *NOISE_FREE_KEYS) if clean else KEYS
    for method in methods:
        method.values = {key: [] for key in keys}
        method.network.eval()
    hr_percentiles = (DEFAULT_LOW_PERCENTILE, DEFAULT_HIGH_PERCENTILE)
    rows = []
    # montages are kept as PNG bytes (~0.1 MB each) until every image has been scored: a refusal on a later
    # image then leaves nothing behind, where a rerun would otherwise ask for --overwrite
    montage_files: dict[Path, bytes] = {}
    log(f"srlab evaluate: {len(images)} image(s) of {folder} (x{scale}), {len(methods)} method(s): "
        f"{', '.join(m.label for m in methods)}")

    def reference(image: Any, percentiles: tuple[float, float] = hr_percentiles) -> np.ndarray:
        # a run's plain scores compare its output with the HR as its training normalized its targets
        return channel_normalize(image.hr, *percentiles)[0].astype(np.float32)

    new_alignments: dict[Path, Any] = {}
    excluded, read = measured_alignments(images, scale, new_alignments)
    if register:
        check_registered_overlap(images, read)
    measured = [im for im in images if im.name not in excluded]
    alignments: dict[str, Alignment] = {im.name: read.get(im.name, Alignment()) for im in images}
    for image in images:
        hr = reference(image)
        hr_t = torch.from_numpy(hr)[None]
        alignment = alignments[image.name]
        border = border_px(alignment, hr.shape[-2:]) if register else 0
        if border:
            hr_t = torch.from_numpy(np.ascontiguousarray(cropped(hr, border)))[None]
        shown = normalize_reference(hr_t)[0, 0].numpy()
        targets = {hr_percentiles: hr_t}  # the HR as each run's percentiles normalize it
        clean_t = None
        if clean:  # the headline metrics take out its normalization: the baselines' is as good as any
            clean_hr = channel_normalize(image.hr_noise_free, *hr_percentiles)[0].astype(np.float32)
            clean_t = torch.from_numpy(np.ascontiguousarray(cropped(clean_hr, border)))[None]
        panels = []
        for method in methods:
            percentiles = (method.low_percentile, method.high_percentile)
            lr = channel_normalize(image.lr, *percentiles)[0].astype(np.float32)
            with torch.inference_mode():
                sr = predict_tiled(method.network, lr, scale=scale, tile_size=tile_size, overlap=overlap,
                                   batch_size=1, device=device, tta=method.tta)
            sr = sr[None] if sr.ndim == 2 else sr
            if sr.shape != hr.shape:
                raise SrlabError(f"{method.label}: output {sr.shape} does not match the ground truth {hr.shape} "
                                 f"of '{image.name}'")
            if register:
                sr = cropped(warped(sr, alignment), border)
            sr_t = torch.from_numpy(np.ascontiguousarray(sr, dtype=np.float32))[None]
            if percentiles not in targets:
                targets[percentiles] = torch.from_numpy(np.ascontiguousarray(
                    cropped(reference(image, percentiles), border)))[None]
            values = image_metrics(sr_t, targets[percentiles])
            if clean_t is not None:
                against = image_metrics(sr_t, clean_t, names=NOISE_FREE_NAMES, plain=False)
                values.update({f"noise_free_{name}": against[name] for name in NOISE_FREE_NAMES})
            row = {"image": image.name, "method": method.label, "excluded": int(image.name in excluded)}
            for key in keys:
                value = float(values[key][0])
                method.values[key].append(value)
                row[key] = "" if not math.isfinite(value) else f"{value:.6g}"
            rows.append(row)
            fitted = affine_fit(sr_t, normalize_reference(hr_t))[0, 0].numpy()
            panels.append(("LR-bicubic" if method.label == "bicubic" else method.label, fitted))
        if montages:
            panels.sort(key=lambda panel: panel[0] != "LR-bicubic")  # LR-bicubic first, then the methods
            montage_files[out / "montages" / f"{_safe(image.name)}.png"] = _montage(image.name, panels, shown)
    shapes = {im.name: tuple(im.hr.shape[-2:]) for im in images}
    notes += alignment_notes(alignments, excluded, shapes, register=register)
    seen = {}
    for method in methods:
        if method.run_dir is not None and not method.tta:
            percentiles = (method.low_percentile, method.high_percentile)
            count = trained_on([method.run_dir], [(channel_normalize(im.lr, *percentiles)[0],
                                                   channel_normalize(im.hr, *percentiles)[0]) for im in images])
            if count is not None:
                seen[method.label] = count
            if count:
                notes.append(f"{method.label} trained on {count} of these {len(images)} pairs (the same normalized "
                             f"content as some of its training images; srlab.data.fingerprints): its scores here "
                             f"are not held-out scores")
    summary = _summaries(methods, keys)
    ceilings = noise_ceiling_db([im.hr for im in measured])
    ceiling_of = dict(zip((im.name for im in measured), ceilings)) if ceilings is not None else {}
    if ceiling_of:
        best = max((s["psnr"]["mean"] for s in summary.values() if math.isfinite(s["psnr"]["mean"])), default=math.nan)
        ceiling_notes = noise_ceiling_notes(ceiling_of, best)
        if clean and ceiling_notes:  # the folder has the reference the note asks for
            ceiling_notes = [ceiling_notes[0] + "; the *vs noise-free HR* columns score against the folder's "
                             "hr_noise_free/ images, which carry no such noise"]
        notes += ceiling_notes
    for path, png in montage_files.items():
        atomic_write_bytes(path, png)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["image", "method", "excluded", *keys], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "per_image.csv", text.getvalue())
    atomic_write_text(out / "summary.md", _markdown(folder, summary, len(images), excluded, notes, hr_percentiles))
    report = {"pairs": str(folder.resolve()), "scale": scale, "images": [im.name for im in images],
              "excluded": excluded, "unit": "image", "metric_definitions": METRIC_DEFINITIONS,
              "reference_percentiles": list(REFERENCE_PERCENTILES), "data_percentiles": list(hr_percentiles),
              "higher_is_better": {k: HIGHER_IS_BETTER[k.removesuffix("_plain").removeprefix("noise_free_")]
                                   for k in keys},
              "hr_shifts_px": {name: list(a.shift_px) for name, a in alignments.items()},
              "hr_alignment": {name: {**a.as_dict(),
                                      "mean_displacement_px": round(a.mean_displacement_px(shapes[name]), 3),
                                      "largest_displacement_px": round(a.displacement_px(shapes[name]), 3)}
                               for name, a in alignments.items()},
              "registered": register,
              "test_images_trained_on": seen or None,
              "noise_ceiling_psnr_db": {name: round(v, 3) if math.isfinite(v) else None
                                        for name, v in ceiling_of.items()} or None,
              "notes": notes, "methods": summary}
    atomic_write_text(out / "summary.json", json.dumps(_json_ready(report), indent=2) + "\n")
    from srlab.data.registration import store_alignments

    store_alignments(new_alignments)  # the report is written: past the user's mistakes
    for label in sorted(summary, key=lambda k: summary[k]["rank"]):
        s = summary[label]
        log(f"  {s['rank']:>2}. {label:28s} PSNR {fmt_ci(s['psnr'], 2):>16s} dB  SSIM {fmt_ci(s['ssim'], 4):>16s}  "
            f"{'best' if s['best'] else 'p=' + fmt_p(s['p_vs_best'])}")
    for note in notes:
        log(f"srlab evaluate: {note}")
    log(f"srlab evaluate: {len(excluded)} of {len(images)} image(s) excluded (empty ground truth); "
        f"report in {out}/summary.md, per_image.csv, montages/")
    return report


#: Ceilings above this (dB) are noise-free references (expected counts, renderings of densities): no note.
NOISE_CEILING_MAX_DB = 50.0
#: A best method within this many dB of the ceiling gets the note that the reference's noise sets the scores.
NOISE_CEILING_MARGIN_DB = 1.0


def noise_ceiling_db(references: Sequence[np.ndarray]) -> list[float] | None:
    """Per reference (``(1, H, W)`` as read: raw counts or a linear rescaling of them), the headline PSNR (dB)
    that a noise-free prediction scores against it: ``10 log10(range² / σ̄²)`` with ``range`` the reference's
    normalization (its 1 % – 99.8 % percentiles, :func:`srlab.metrics.image.reference_percentiles`; the
    affine fit of the truth to the noisy reference is ~1·truth) and ``σ̄²`` the mean noise variance over its
    pixels — the Poisson–Gaussian line fitted to the references together (one detector,
    :func:`srlab.calibration.noise.fit_noise`) at the image's mean, the variance being linear in the mean.
    Checked against the noise-free references of the foreign checks (``benchmarks/realcheck.py``): pySTED's
    STED 20.75 dB estimated, 20.59 scored; psfmodels' sCMOS SIM images 31.67 and 31.65; good to the noise
    fit's gain, a few % (tests/compare/test_noise_ceiling.py: within 0.5 dB). A processed reference
    (background-subtracted and clipped, deconvolved, rendered with Gaussians) is not Poisson–Gaussian, and
    its reading means little. ``None`` where the line cannot be fitted (several channels, constant images);
    NaN for an image whose variance reads ≤ 0 (a noise-free reference)."""
    from srlab.calibration.noise import fit_noise
    from srlab.metrics.image import DATA_RANGE, reference_percentiles

    if not references or any(np.shape(r)[0] != 1 for r in references):
        return None
    planes = [np.asarray(r, np.float64)[0] for r in references]
    try:
        noise = fit_noise(planes, leak_check=False)
    except SrlabError:
        return None
    ceilings = []
    for index, plane in enumerate(planes):
        variance = float(noise.image_variance(index, np.asarray(plane.mean())))
        low, high = reference_percentiles(torch.from_numpy(plane).float()[None, None])
        scale = float(high - low) * DATA_RANGE
        ceilings.append(10.0 * math.log10(scale * scale / variance) if variance > 0 and scale > 0 else math.nan)
    return ceilings


def median_noise_ceiling_db(ceilings: Sequence[float]) -> float | None:
    """The median of :func:`noise_ceiling_db`'s finite values, where it is one (``None``: none finite, or
    references that read as noise-free, above :data:`NOISE_CEILING_MAX_DB`)."""
    finite = [v for v in ceilings if math.isfinite(v)]
    median = float(np.median(finite)) if finite else math.inf
    return median if median <= NOISE_CEILING_MAX_DB else None


def noise_ceiling_notes(ceilings: dict[str, float], best_psnr_db: float) -> list[str]:
    """The report's line on the references' noise (:func:`noise_ceiling_db`), where it caps the scores."""
    median = median_noise_ceiling_db(list(ceilings.values()))
    if median is None:
        return []
    finite = [v for v in ceilings.values() if math.isfinite(v)]
    line = (f"the HR images' own noise, if they are raw counts (a Poisson–Gaussian line fitted to them), caps the "
            f"headline PSNR of a "
            f"noise-free prediction at ~{median:.1f} dB (median over images, {min(finite):.1f} to {max(finite):.1f}; "
            f"noise_ceiling_psnr_db in summary.json); SSIM is lowered likewise")
    verdict = noise_ceiling_verdict(best_psnr_db, median)
    return [line + (f"; {verdict}" if verdict else "")]


def noise_ceiling_verdict(best_psnr_db: float, ceiling_db: float) -> str | None:
    """Where the best headline PSNR is within :data:`NOISE_CEILING_MARGIN_DB` of the references' noise ceiling
    (:func:`noise_ceiling_db`, the median over images), the reports' words for it; else ``None``."""
    if not (math.isfinite(best_psnr_db) and math.isfinite(ceiling_db)) or ceiling_db > NOISE_CEILING_MAX_DB \
            or best_psnr_db <= ceiling_db - NOISE_CEILING_MARGIN_DB:
        return None
    return (f"the best method is within {NOISE_CEILING_MARGIN_DB:g} dB of it: the reference's noise, not the "
            f"methods, sets these scores — score against an averaged or denoised reference where you have one")


def alignment_notes(alignments: dict[str, Any], excluded: list[str], shapes: dict[str, tuple[int, int]], *,
                    register: bool) -> list[str]:
    """The report's lines on the pairs' measured alignments (:class:`srlab.data.registration.Alignment`; the
    excluded images have none): their shifts, magnifications and rotations, and what the largest
    displacement over each field (HR px, the mean) makes of them."""
    from srlab.data.registration import MISALIGNED_PX, instrument_text

    kept = {name: a for name, a in alignments.items() if name not in excluded}
    if not kept:
        return []
    sizes = {name: math.hypot(*a.shift_px) for name, a in kept.items()}
    displacements = [a.mean_displacement_px(shapes[name]) for name, a in kept.items()]
    worst = max(sizes, key=sizes.__getitem__)
    dy, dx = kept[worst].shift_px
    line = (f"HR against LR, measured on each pair (the bicubic LR registered to the HR: shift, magnification, "
            f"rotation, aspect, shear): median shift {float(np.median(list(sizes.values()))):.2f} HR px, largest "
            f"{sizes[worst]:.2f} ({worst}: dy {dy:+.2f}, dx {dx:+.2f}); {instrument_text(*kept.values())}; the mean "
            f"displacement "
            f"over a field {float(np.median(displacements)):.2f} HR px (median); hr_alignment in summary.json")
    if register:
        return [line + "; every prediction was brought into its HR's frame and the border that brings in left "
                       "out of the scores (--register)"]
    # the median: an acquisition's misregistration moves most pairs alike, where one sparse field's reading
    # can be half a pixel off (srlab's own aligned pairs: up to 0.56 px on one of 8)
    if float(np.median(displacements)) >= MISALIGNED_PX:
        return [line + f"; pairs misregistered by {MISALIGNED_PX:g} HR px or more penalize every method, sharp ones "
                       f"most — if the misregistration is the acquisitions', not the methods', pass --register"]
    return [line]


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["BASELINES", "evaluate_pairs"]
