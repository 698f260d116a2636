"""Reference-free check of super-resolved images against the images they were made from.

``srlab check INPUT SR -o DIR``: the last step of the "your microscope" loop (calibrate → train →
adapt → predict → check), for real images that have no ground truth. For each (input, output) pair,
each 2D plane (stack slices; one channel of multi-channel files with ``--channel``, against a
one-channel output as ``srlab predict --channel`` writes it or the same channel of a multi-channel one):

* **SQUIRREL error map** (NanoJ-SQUIRREL, Culley et al., Nat. Methods 15:263, 2018; the metric is
  :func:`srlab.metrics.consistency.squirrel_consistency`): the output blurred by a Gaussian
  resolution-scaling function and area-binned back to the input grid, fitted to the input by a gain
  and offset; the map is ``|input − fit|`` on the input grid, RSE its RMS (input units) and RSP the
  Pearson correlation. What is followed: the RSF is optimized for the lowest RSE unless given
  (``--psf-fwhm-nm``, the relative PSF that takes the output's resolution to the input's, e.g.
  ``√(FWHM_LR² − FWHM_HR²)`` of a calibrated block). What is adapted: a Gaussian RSF only, and area
  binning for the camera pixel. Read it as "the output explains what was measured": structure the
  network invented shows up as error where the input has none; structure that the PSF hides cannot
  (interpolation scores almost perfectly by construction). ``--run RUN`` takes the RSF from the run
  that made the outputs (:func:`relative_psf_of_run`: for a run on a calibrated block, the PSFs that
  ``srlab calibrate`` measured).
* **Single-image FRC resolution** (Koho et al., Nat. Commun. 10:3103, 2019;
  :func:`srlab.metrics.frc.checkerboard_frc_resolution_nm`) of the input and of the output, in nm:
  the input's is a measurement (camera noise is independent from pixel to pixel); the output's noise
  is not (a network or deconvolution correlates neighbouring pixels), so its value is a cross-check
  and may be missing or optimistic. The method cannot report less than 4 pixels.

Outputs: ``DIR/<output stem>.errormap.tif`` (one plane per checked plane, input grid, the input's pixel
size), ``DIR/<output stem>.check.png`` (input | output | error map of the first plane) and
``DIR/check.csv`` (one row per plane). Existing files are refused unless ``--overwrite``; a user's
mistake (missing partner, shapes that are not an integer scale apart, a multi-channel file without
``--channel``) is one line and nothing is written.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.errors import SrlabError
from srlab.optics.psf import FWHM_PER_SIGMA

CSV_COLUMNS = ("input", "output", "plane", "scale", "rse", "rsp", "rsf_fwhm_nm", "rsf_sigma_lr_px",
               "frc_input_nm", "frc_output_nm", "input_pixels_left_out")
#: The band around an input's fill region left out of the check, in RSF σ beyond the fill's margin: the
#: re-imaged output mixes the fill into its edge, which the input (a padding, not imaged) never does.
FILL_BAND_SIGMAS = 3.0


@dataclass(frozen=True)
class PlaneCheck:
    """The check of one 2D plane of an (input, output) pair."""

    input: Path
    output: Path
    plane: str  # "" for a 2D file, "[z=3]" etc. for a slice
    scale: int
    input_pixel_size_nm: float | None
    rse: float  # input units
    rsp: float
    rsf_sigma_lr_px: float
    rsf_fwhm_nm: float  # NaN without a pixel size
    frc_input_nm: float  # NaN: no crossing, or no pixel size
    frc_output_nm: float
    error_map: np.ndarray  # NaN at the input pixels left out
    lr: np.ndarray
    sr: np.ndarray
    left_out: tuple[str, ...] = ()  # what of the input was left out and why (srlab.data.defects)
    pixels_left_out: int = 0
    frc_input_finer_than_nm: float = math.nan  # the method's floor, when the input's resolution is finer


def _planes(path: Path, channel: int | None, *,
            any_channel_if_one: bool = False) -> tuple[list[tuple[str, np.ndarray]], float | None]:
    """The 2D planes of ``path`` (its ``channel`` of a multi-channel file; a one-channel file whatever
    ``channel`` says when ``any_channel_if_one``: an output predicted with ``--channel``) and its pixel size."""
    from srlab.data.io import channel_to_take, load_images, read_tiff

    array, axes, _ = read_tiff(path, memmap=True)
    axis = channel_to_take(array, axes, channel, where=path, purpose="check", any_channel_if_one=any_channel_if_one)
    del array
    images = load_images(path, channel=channel if axis is not None else None, channels=1)
    return [(im.name[len(path.stem):], im.image[0]) for im in images], images[0].pixel_size_nm


def _scale(lr: np.ndarray, sr: np.ndarray, lr_path: Path, sr_path: Path) -> int:
    (h, w), (sh, sw) = lr.shape, sr.shape
    if sh % h or sw % w or sh // h != sw // w or sh // h < 1:
        raise SrlabError(f"{sr_path}: {sh}×{sw} px is not an integer scale of its input {lr_path} ({h}×{w} px)")
    return sh // h


def check_pair(lr_path: str | Path, sr_path: str | Path, *, channel: int | None = None,
               pixel_size_nm: float | None = None, psf_fwhm_nm: float | None = None,
               psf_from: str = "--psf-fwhm-nm") -> list[PlaneCheck]:
    """Check every plane of ``sr_path`` against the same plane of ``lr_path`` (see the module doc).

    ``pixel_size_nm``: the input's pixel size when its file has none; ``psf_fwhm_nm``: the RSF's FWHM
    (fitted when ``None``; needs a pixel size), given by ``psf_from`` (for the one-line errors)."""
    from srlab.metrics.consistency import squirrel_consistency
    from srlab.metrics.frc import checkerboard_frc_reading_nm, checkerboard_frc_resolution_nm

    lr_path, sr_path = Path(lr_path), Path(sr_path)
    lr_planes, lr_px = _planes(lr_path, channel)
    sr_planes, _ = _planes(sr_path, channel, any_channel_if_one=True)
    if len(lr_planes) != len(sr_planes):
        raise SrlabError(f"{sr_path}: {len(sr_planes)} plane(s), but its input {lr_path} has {len(lr_planes)}")
    px = pixel_size_nm if pixel_size_nm is not None else lr_px
    if psf_fwhm_nm is not None and px is None:
        raise SrlabError(f"{lr_path}: no pixel size in the file; the PSF in nm of {psf_from} needs --pixel-size-nm")
    checks = []
    for (name, lr), (_, sr) in zip(lr_planes, sr_planes):
        scale = _scale(lr, sr, lr_path, sr_path)
        sigma = psf_fwhm_nm / FWHM_PER_SIGMA / px if psf_fwhm_nm is not None else None
        defects = _input_defects(lr, sigma)
        if defects.valid is not None and defects.valid.sum() < MIN_CHECKED_PX:
            raise SrlabError(f"{lr_path}{name}: only {int(defects.valid.sum())} pixels are left to check once its "
                             f"{' and '.join(defects.notes)} are left out (needs >= {MIN_CHECKED_PX})")
        result = squirrel_consistency(sr, lr, scale=scale, psf_sigma_lr_px=sigma, valid=defects.valid)
        frc_in = frc_out = finer_than = math.nan
        if px is not None:
            # on the largest rectangle without the fill, hot pixels repaired (as srlab predict saw the input)
            top, bottom, left, right = defects.rectangle
            lr_part = defects.repaired[top:bottom, left:right]
            sr_part = sr[top * scale:bottom * scale, left * scale:right * scale]
            if min(lr_part.shape) >= 64:
                frc_in, finer_than = checkerboard_frc_reading_nm(lr_part, px)
            frc_out = checkerboard_frc_resolution_nm(sr_part, px / scale) if min(sr_part.shape) >= 64 else math.nan
        checks.append(PlaneCheck(
            input=lr_path, output=sr_path, plane=name, scale=scale, input_pixel_size_nm=px, rse=result.rse,
            rsp=result.rsp,
            rsf_sigma_lr_px=result.psf_sigma_lr_px,
            rsf_fwhm_nm=result.psf_sigma_lr_px * FWHM_PER_SIGMA * px if px is not None else math.nan,
            frc_input_nm=frc_in, frc_output_nm=frc_out, error_map=result.error_map, lr=lr, sr=sr,
            left_out=defects.notes, frc_input_finer_than_nm=finer_than,
            pixels_left_out=0 if defects.valid is None else int(defects.valid.size - defects.valid.sum())))
    return checks


#: The fewest input pixels a check is made on.
MIN_CHECKED_PX = 64


@dataclass(frozen=True)
class _Defects:
    valid: np.ndarray | None  # input pixels checked; None: all
    repaired: np.ndarray  # the input with its hot pixels replaced
    rectangle: tuple[int, int, int, int]  # the largest one without the fill (the whole image without one)
    notes: tuple[str, ...]


def _input_defects(lr: np.ndarray, sigma_lr_px: float | None) -> _Defects:
    """What of an input the check leaves out, as ``srlab predict`` treats it
    (:func:`srlab.data.defects.clean_channel`): its fill region (padding or a mask) with a band of
    :data:`FILL_BAND_SIGMAS` RSF σ (the largest searched when the RSF is fitted), and its hot pixels. A
    padding's edge is sharp in the input and blurred in the re-imaged output, and a hot pixel is in the
    input but not in an output predicted from the repaired input: both would be counted as the output's
    error. On a simulated confocal image with a perfect output, a zero padding of 3/8 of it made RSE 9×
    (RSP 0.97 → 0.75, the fitted RSF at the search's bound), 8 hot pixels more RSE 330× (RSP 0.03)."""
    from scipy import ndimage

    from srlab.data.defects import FILL_MARGIN_PX, clean_channel, fill_of
    from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE
    from srlab.metrics.consistency import MAX_SIGMA_LR_PX

    cleaned = clean_channel(lr, DEFAULT_LOW_PERCENTILE, DEFAULT_HIGH_PERCENTILE)
    left_out = np.zeros(lr.shape, bool)
    rectangle = (0, lr.shape[0], 0, lr.shape[1])
    repaired = np.asarray(lr, np.float32)
    notes = []
    if cleaned.fill is not None:
        value, fill = cleaned.fill
        band = FILL_MARGIN_PX + math.ceil(FILL_BAND_SIGMAS * (MAX_SIGMA_LR_PX if sigma_lr_px is None else sigma_lr_px))
        left_out |= ndimage.binary_dilation(fill, structure=np.ones((3, 3), bool), iterations=band)
        rectangle = fill_of(value, fill).rectangle
        notes.append(f"fill of value {value:g} (padding or a mask) with a {band}-pixel band")
    if cleaned.hot is not None:
        left_out |= cleaned.hot
        repaired = np.asarray(cleaned.image, np.float32)  # its fill (at the low level) is outside the FRC's crop
        notes.append(f"{cleaned.hot_pixels} hot pixel(s)")
    return _Defects(~left_out if left_out.any() else None, repaired, rectangle, tuple(notes))


def relative_psf_of_run(run: str | Path) -> tuple[float, str]:
    """FWHM (nm) of the Gaussian that takes a run's output to its input's resolution, and where it came
    from: an adapted run's forward model (``paradigm.params.blur_fwhm_hr_px`` in the card's HR pixels), else
    ``√(FWHM_LR² − FWHM_HR²)`` of its data block (:func:`srlab.data.physics.relative_blur`; a calibrated
    block's measured PSFs). One line where the run does not know it (trained on your own pairs)."""

    from srlab.config import load_resolved
    from srlab.data.physics import relative_blur
    from srlab.runs import read_json, resolve_run_dir

    run_dir = resolve_run_dir(run)
    cfg = load_resolved(run_dir / "config.yaml")
    from srlab.build import SR_TASK, paradigm_tasks

    if SR_TASK not in paradigm_tasks(cfg.paradigm.name):
        raise SrlabError(f"--run {run}: '{cfg.name}' is not an SR run (paradigm '{cfg.paradigm.name}'); --run takes the "
                         f"run whose outputs are checked")
    params = cfg.paradigm.get("params") or {}
    card_path = run_dir / "network.json"
    hr_px = read_json(card_path).get("hr_pixel_size_nm") if card_path.is_file() else None
    if params.get("blur_fwhm_hr_px") is not None and hr_px:
        fwhm = float(params.blur_fwhm_hr_px) * float(hr_px)
        return fwhm, f"the run's forward model, paradigm.params.blur_fwhm_hr_px × {float(hr_px):g} nm"
    blur = relative_blur(cfg.data)
    if blur is None:
        what = "your own pairs" if cfg.data.get("path") else f"data.kind={cfg.data.kind}"
        raise SrlabError(f"--run {run}: its data block ({what}) gives no blur between its LR and HR images; pass "
                         f"--psf-fwhm-nm")
    return blur.fwhm_nm, blur.source


def _output_stem(path: Path) -> str:
    name = path.name
    return name[:name.lower().rindex(".ome.")] if ".ome." in name.lower() else path.stem


def partner(lr_path: Path, outputs: Path) -> Path:
    """The output in folder ``outputs`` made from ``lr_path``: ``x_sr.tif`` / ``x_sr.ome.tif`` (srlab
    predict's names) or ``x.tif``; one line if none or several."""
    stem = _output_stem(lr_path)
    found = [p for p in (outputs / f"{stem}_sr.tif", outputs / f"{stem}_sr.ome.tif", outputs / f"{stem}.tif",
                         outputs / f"{stem}.ome.tif", outputs / f"{stem}_sr.tiff", outputs / f"{stem}.tiff")
             if p.is_file()]
    if not found:
        raise SrlabError(f"{lr_path}: no output for it in {outputs} (looked for {stem}_sr.tif, {stem}.tif and their "
                         f".ome.tif forms)")
    if len(found) > 1:
        raise SrlabError(f"{lr_path}: several outputs for it in {outputs} ({', '.join(p.name for p in found)}); "
                         f"give the pair as files")
    return found[0]


def pairs(inputs: str | Path, outputs: str | Path) -> list[tuple[Path, Path]]:
    """(input, output) file pairs: two files, or two folders matched by name (:func:`partner`)."""
    from srlab.data.io import list_tiffs

    inputs, outputs = Path(inputs), Path(outputs)
    for p in (inputs, outputs):
        if not p.exists():
            raise SrlabError(f"{p}: no such file or folder")
    if inputs.is_dir() != outputs.is_dir():
        raise SrlabError(f"give two files or two folders, not {inputs} and {outputs}")
    if inputs.is_file():
        return [(inputs, outputs)]
    return [(lr, partner(lr, outputs)) for lr in list_tiffs(inputs, what="input images")]


def _figure(check: PlaneCheck, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from srlab.runs import written_in_place

    fig = Figure(figsize=(13, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    def frc(v: float, finer_than: float = math.nan) -> str:
        return f"{v:.0f} nm" if math.isfinite(v) else f"< {finer_than:.0f} nm" if math.isfinite(finer_than) else "n/a"

    input_title = (f"input {check.input.name}{check.plane} "
                   f"(FRC {frc(check.frc_input_nm, check.frc_input_finer_than_nm)})")
    panels = ((check.lr, input_title, "gray"),
              (check.sr, f"output ×{check.scale} (FRC {frc(check.frc_output_nm)}, a cross-check)", "gray"),
              (check.error_map, f"SQUIRREL error map: RSE {check.rse:.4g}, RSP {check.rsp:.3f}", "magma"))
    for ax, (image, title, cmap) in zip(axes, panels):
        lo, hi = np.nanpercentile(image, [0.1, 99.9])  # the error map is NaN where the input was left out
        shown = ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set(title=title, xticks=[], yticks=[])
        ax.title.set_fontsize(9)
    fig.colorbar(shown, ax=axes[2], shrink=0.8, label="|input − fitted, re-imaged output| (input units)")
    fig.suptitle(f"srlab check: {check.output.name} against {check.input.name}")
    with written_in_place(path) as temporary:
        fig.savefig(temporary, dpi=90, format="png")


def write(checks: list[PlaneCheck], out_dir: Path) -> list[Path]:
    """The error maps, figures and ``check.csv`` of ``checks`` in ``out_dir``, each written whole or not at all
    (a full disk with ``--overwrite`` keeps the earlier check's file); returns the files."""
    from srlab.data.io import write_tiff
    from srlab.runs import written_in_place

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    by_output: dict[Path, list[PlaneCheck]] = {}
    for c in checks:
        by_output.setdefault(c.output, []).append(c)
    for output, group in by_output.items():
        stem = _output_stem(output)
        maps = np.stack([c.error_map for c in group])
        with written_in_place(out_dir / f"{stem}.errormap.tif") as temporary:
            write_tiff(temporary, maps[0] if len(maps) == 1 else maps, pixel_size_nm=group[0].input_pixel_size_nm)
        written.append(out_dir / f"{stem}.errormap.tif")
        _figure(group[0], out_dir / f"{stem}.check.png")
        written.append(out_dir / f"{stem}.check.png")
    table = out_dir / "check.csv"
    with written_in_place(table) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for c in checks:
            writer.writerow([str(c.input), str(c.output), c.plane, c.scale, f"{c.rse:.6g}", f"{c.rsp:.6g}",
                             f"{c.rsf_fwhm_nm:.4g}", f"{c.rsf_sigma_lr_px:.4g}", f"{c.frc_input_nm:.4g}",
                             f"{c.frc_output_nm:.4g}", c.pixels_left_out])
    written.append(table)
    return written


def planned_files(file_pairs: list[tuple[Path, Path]], out_dir: Path) -> list[Path]:
    stems = [_output_stem(sr) for _, sr in file_pairs]
    return [out_dir / "check.csv", *(out_dir / f"{s}{suffix}" for s in stems
                                     for suffix in (".errormap.tif", ".check.png"))]


def summary(checks: list[PlaneCheck]) -> str:
    def nm(v: float, finer_than: float = math.nan) -> str:
        return f"{v:.0f}" if math.isfinite(v) else f"<{finer_than:.0f}" if math.isfinite(finer_than) else "n/a"

    lines = [(f"{'output':32s} {'plane':10s} {'RSE':>10s} {'RSP':>6s} {'RSF FWHM nm':>11s} "
             f"{'FRC in nm':>9s} {'FRC out nm':>10s}")]
    for c in checks:
        lines.append(f"{c.output.name[:32]:32s} {c.plane[:10]:10s} {c.rse:10.4g} {c.rsp:6.3f} "
                     f"{nm(c.rsf_fwhm_nm):>11s} {nm(c.frc_input_nm, c.frc_input_finer_than_nm):>9s} "
                     f"{nm(c.frc_output_nm):>10s}")
    lines.append("RSE/RSP: NanoJ-SQUIRREL consistency of the re-imaged output with its input (RSE in input units; "
                 "RSP 1 = perfect); FRC: single-image, the output's a cross-check only; <N: finer than the "
                 "method's floor of 4 input pixels")
    for c in checks:
        if c.left_out:
            lines.append(f"note: {c.input.name}{c.plane}: left out of the check (NaN in its error map): "
                         f"{'; '.join(c.left_out)}")
    return "\n".join(lines)


def run_check(args) -> int:
    """``srlab check INPUT OUTPUT -o DIR`` (arguments in :mod:`srlab.cli`)."""
    from srlab.runs import check_folder_can_be_made

    if args.pixel_size_nm is not None and not args.pixel_size_nm > 0:
        raise SrlabError(f"--pixel-size-nm {args.pixel_size_nm}: must be > 0")
    if args.psf_fwhm_nm is not None and not args.psf_fwhm_nm >= 0:
        raise SrlabError(f"--psf-fwhm-nm {args.psf_fwhm_nm}: must be >= 0")
    if args.run is not None and args.psf_fwhm_nm is not None:
        raise SrlabError("give --run or --psf-fwhm-nm, not both (--run takes the run's relative PSF)")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise SrlabError(f"{out_dir}: exists and is not a folder; -o names the output folder")
    check_folder_can_be_made(out_dir, "-o")
    file_pairs = pairs(args.input, args.sr)
    existing = [p for p in planned_files(file_pairs, out_dir) if p.exists()]
    if existing and not args.overwrite:
        raise SrlabError(f"{existing[0]} already exists; pass --overwrite to replace it")
    psf_fwhm_nm = args.psf_fwhm_nm
    if args.run is not None:
        psf_fwhm_nm, source = relative_psf_of_run(args.run)
        print(f"resolution-scaling function: Gaussian FWHM {psf_fwhm_nm:.0f} nm ({source})")
    checks = [c for lr, sr in file_pairs for c in check_pair(lr, sr, channel=args.channel,
                                                            pixel_size_nm=args.pixel_size_nm,
                                                            psf_fwhm_nm=psf_fwhm_nm,
                                                            psf_from=f"--run {args.run}" if args.run else "--psf-fwhm-nm")]
    write(checks, out_dir)
    print(summary(checks))
    print(f"wrote {out_dir}/check.csv and an error map (.errormap.tif) and figure (.check.png) per output")
    return 0
