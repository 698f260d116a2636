"""Generalization check on data srlab did not generate (issue 15, item 4).

    make realcheck                                   (installs srlab[realcheck], then runs this)
    .venv/bin/python benchmarks/realcheck.py [--quick] [--no-write] [--work DIR]

The developer-side stand-in for real data. Test pairs come from simulators that are not srlab's:

* **confocal → STED ×2** — `pysted` (Turcotte et al., "pySTED: a STED microscopy simulation tool for
  machine learning training", 2022): confocal and STED images of pySTED's bundled datamaps (tubulin,
  F-actin, PSD95 fields that its authors derived from real STED images) through pySTED's own beam,
  depletion, pinhole-detection and photon-counting physics (Poisson detection, background counts). The
  confocal image is the same microscope with the depletion beam off.
* **widefield → SIM ×2** — `psfmodels` (Aguet et al., Opt. Express 2009: vectorial PSF with a
  refractive-index mismatch, the Gibson–Lanni geometry) on specimens drawn by this script's own generator
  (:func:`draw_specimen`: persistent random-walk filaments, rings and puncta, unrelated to
  :mod:`srlab.optics.specimens`), with an out-of-focus layer imaged through the PSF 0.8 µm from focus and
  an sCMOS camera written here (pixel integration, Poisson, Gaussian read noise, gain, offset, 16 bits).
  The SIM image is the *ideal linear-SIM approximation*: the same vectorial PSF shrunk twofold (twice the
  OTF support), no raw-frame reconstruction and no out-of-focus light — the weaker of the two checks.

Pipeline: (1) write foreign LR/HR pairs as 16-bit TIFFs with pixel sizes; (2) `srlab calibrate` on the
foreign LR images (with `--hr` on a few foreign HR images of *other* fields, unpaired) → a data block in
a temporary copy of ``experiments/``; (3) train ``edsr_smoke`` (EDSR, 8×32) and ``rl_edsr_smoke`` (the
same body as a residual on Richardson–Lucy, :mod:`srlab.models.physics`) on that calibrated srlab
simulation only, and again with the foreign HR images of (2) as specimens too (`--hr-specimens`,
:mod:`srlab.data.user_specimens`; the STED ones are pySTED datamaps that no test field uses, so the
STED test set is 18 − 3 = 15 fields); (3b) `srlab adapt` each trained run (the `--hr-specimens` ones too, since
2026-12-06) to the foreign LR images themselves, unlabelled (what
a user does with their own images: physics-consistency fine-tuning with the calibrated PSF, photon split
and camera, :mod:`srlab.paradigms.adaptation`; added after the first results) and, with `--adapt-held-out`,
to half of the fields' LR images only, twice (even- and odd-numbered fields; the `--hr`-specimens runs too
since 2026-12-06), every field judged in a table of its own by the run of the other half
(held out) and by the run of its own half; (4) evaluate on the foreign pairs — the networks, bicubic and Richardson–Lucy (the PSF
from the calibration: ``rl_sted`` on the calibrated block, whose relative blur it deconvolves, :func:`srlab.data.physics.pair_blur`) — with
affine-fitted PSNR/SSIM per image (:mod:`srlab.metrics.image`, CARE convention), mean and 95 % t-interval; (5) print
the tables and write them to BENCHMARKS.md between ``<!-- realcheck:start -->`` and ``<!-- realcheck:end -->``.

Every foreign setting below was fixed before any result was seen; nothing is tuned to the foreign data.

``--oracle`` adds rows that are not results: the same experiments trained, same budget, on the foreign test
pairs themselves with the noise-free HR as targets — the upper bound of the network and budget on these
data, to read the srlab rows against (how much of the gap is the simulation, how much the network).
``--tta`` adds, under each srlab row, the same run predicted with ``srlab predict --tta`` (the ×8 self-ensemble).
``--train-seed N`` trains the networks with seed ``N`` on the same foreign pairs and calibration (``--seed``
draws both): the rows' movement from one training to the next, which the per-image intervals do not hold.
``--train-seed N N ...`` trains every row once per seed and judges the target on each field's scores averaged
over the trainings (the tables add the sd over trainings; the verdict, how many trainings meet it alone).
``--choose-on-hr`` adds a fair choice between training with the --hr images as specimens and without:
every --hr image in turn held out of training, made into pairs by the calibrated LR microscope and scored
against as acquired (:data:`HR_CHOICE`; one training more per --hr image and experiment).

Every method is scored against two references of the same fields (the noise-free one added after the
first results, when the acquired STED reference was found to cap every score): the HR *without noise* (pySTED's
detector with its Poisson noise and background counts off; the SIM image before the camera) — the
headline, what the target microscope resolves — and the HR *as acquired*. The acquired pySTED STED
holds ~24 photons at its brightest pixels, so its shot noise caps any prediction's score near bicubic's
(the "noise-free HR itself" row measures that ceiling); the acquired table is kept to show it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START, END = "<!-- realcheck:start -->", "<!-- realcheck:end -->"
#: The srlab experiments trained on each calibrated simulation (same size, schedule and budget): a plain
#: network, and the same body as a residual on Richardson–Lucy with the block's relative PSF (added after
#: the first results showed EDSR inventing structure in the dim background of pySTED's PSD95 fields).
EXPERIMENTS = {"edsr_smoke": "EDSR 8×32", "rl_edsr_smoke": "Richardson–Lucy + EDSR 8×32 residual"}
TARGET_PSNR_DB, TARGET_SSIM = 1.5, 0.10

# ------------------------------------------------------------------------------------------------
# The foreign acquisitions (fixed, documented; see the module doc)
# ------------------------------------------------------------------------------------------------
#: pySTED: datamap upsampled to 10 nm (so that LR pixel i and HR pixels 2i, 2i+1 share a centre, srlab's
#: pairing convention); confocal scanned at 40 nm, STED at 20 nm; dwell 50 µs; EGFP-like dye.
STED = {
    "datamap_nm": 10.0, "lr_px_nm": 40.0, "hr_px_nm": 20.0, "molecules_per_20nm_px": 300,
    "dwell_s": 50e-6, "p_ex_w": 5e-6, "p_sted_w": 0.1, "background_cps": 1e5, "pinhole_airy": 0.7,
    "structures": ("tubulin", "factin", "psd95"),
}
_EGFP = {"lambda_": 535e-9, "qy": 0.6, "sigma_abs": {488: 0.08e-21, 575: 0.02e-21}, "sigma_ste": {575: 3.0e-22},
         "tau": 3e-09, "tau_vib": 1.0e-12, "tau_tri": 1.2e-6, "k1": 1.3e-15, "b": 1.4, "triplet_dynamics_frac": 0}
#: Widefield (sCMOS, 80 nm pixels) and ideal linear SIM (40 nm): psfmodels vectorial PSF, NA 1.3 oil
#: objective, 520 nm emission, specimen index 1.38 at 1 µm depth (spherical aberration).
WIDEFIELD = {
    "grid_nm": 20.0, "lr_px_nm": 80.0, "hr_px_nm": 40.0, "na": 1.3, "wavelength_um": 0.52, "ns": 1.38, "ni": 1.515,
    "depth_um": 1.0, "defocus_um": 0.8, "out_of_focus": 0.5,
    "lr_signal_photons": 400.0, "lr_background_photons": 15.0, "hr_signal_photons": 150.0,
    "hr_background_photons": 5.0, "gain_adu_per_e": 2.0, "read_noise_e": 1.5, "offset_adu": 100.0,
}


@dataclass
class Task:
    name: str            # "confocal_sted" / "widefield_sim"
    title: str
    modality: str        # srlab calibrate --modality
    target: str          # srlab calibrate --target
    folder: Path
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    clean_hr: list[Path] = field(default_factory=list)  # the pairs' HR without photon/camera noise
    hr_calibration: list[Path] = field(default_factory=list)
    known: dict[str, dict[str, float]] = field(default_factory=dict)  # lr/hr -> quantity -> value
    dark: list[Path] = field(default_factory=list)  # dark frames of the LR / HR detector (`--dark`, `--hr-dark`)
    hr_dark: list[Path] = field(default_factory=list)


def fwhm_of(psf: np.ndarray, px_nm: float) -> float:
    """FWHM (nm) of a 2D PSF along the row through its maximum (linear interpolation)."""
    iy, _ = np.unravel_index(int(np.argmax(psf)), psf.shape)
    prof = psf[iy] / psf.max()
    x = np.arange(prof.size)
    fine = np.linspace(0, prof.size - 1, 40 * prof.size)
    above = fine[np.interp(fine, x, prof) >= 0.5]
    return float((above[-1] - above[0]) * px_nm)


# ------------------------------------------------------------------------------------------------
# confocal -> STED with pySTED
# ------------------------------------------------------------------------------------------------
def _pysted_microscope(noise: bool = True):
    """pySTED's microscope; ``noise=False``: the same optics, the detector's expected counts (no Poisson
    detection noise, no background counts) — the noise-free reference."""
    from pysted import base

    s = STED
    detector = base.Detector(noise=noise, background=s["background_cps"] if noise else 0, n_airy=s["pinhole_airy"])
    return base.Microscope(base.GaussianBeam(488e-9), base.DonutBeam(575e-9, zero_residual=0.01, anti_stoke=False),
                           detector,
                           base.Objective(), base.Fluorescence(**_EGFP), load_cache=False)


def _pysted_acquire(microscope, molecules: np.ndarray, px_nm: float, p_sted: float, seed: int) -> np.ndarray:
    from pysted import base

    s = STED
    datamap = base.Datamap(molecules, s["datamap_nm"] * 1e-9)
    i_ex, _, _ = microscope.cache(s["datamap_nm"] * 1e-9)
    datamap.set_roi(i_ex, "max")
    image, _, _ = microscope.get_signal_and_bleach(datamap, px_nm * 1e-9, s["dwell_s"], s["p_ex_w"], p_sted,
                                                   bleach=False, update=False, seed=seed)
    return np.asarray(image)


def make_sted_pairs(folder: Path, *, n_fields: int, n_hr_calibration: int, seed: int) -> Task:
    """pySTED confocal (LR) / STED (HR) pairs of its bundled datamaps, as uint16 photon counts."""
    from pysted.data.loader import DatamapLoader

    from srlab.data.io import write_tiff
    from srlab.data.simulate import NOISE_FREE_HR_DIR

    s = STED
    task = Task("confocal_sted", "confocal → STED ×2 (pySTED)", "confocal", "sted", folder)
    maps = [(name, i, DatamapLoader(name)[i]) for i in range(6) for name in s["structures"]]
    microscope, noise_free = _pysted_microscope(), _pysted_microscope(noise=False)
    per_fine = s["molecules_per_20nm_px"] / 4.0

    def molecules(dm: np.ndarray) -> np.ndarray:
        return np.round(np.kron(np.asarray(dm, np.float64), np.ones((2, 2))) * per_fine).astype(np.int64)

    # unpaired HR images for `--hr`: other datamaps than the test fields' (pySTED bundles 6 per structure, so
    # the test set is 18 - n_hr_calibration fields). They were transposed copies of test fields until the
    # block began to use them as training specimens (srlab.data.user_specimens), which would leak those fields.
    fields = maps[:min(n_fields, len(maps) - n_hr_calibration)]
    extra = maps[len(fields):len(fields) + n_hr_calibration]
    for k, (name, i, dm) in enumerate(fields + extra):
        fine = molecules(dm)
        # LR pixel i samples fine pixel 4i+1: the centre of HR pixels 2i, 2i+1 (fine 4i, 4i+2)
        lr = _pysted_acquire(microscope, np.roll(fine, (-1, -1), axis=(0, 1)), s["lr_px_nm"], 0.0, seed + 2 * k)
        hr = _pysted_acquire(microscope, fine, s["hr_px_nm"], s["p_sted_w"], seed + 2 * k + 1)
        stem = f"{name}{i}"
        if k < len(fields):
            lr_path = write_tiff(folder / "lr" / f"{stem}.tif", lr.astype(np.uint16), pixel_size_nm=s["lr_px_nm"])
            hr_path = write_tiff(folder / "hr" / f"{stem}.tif", hr.astype(np.uint16), pixel_size_nm=s["hr_px_nm"])
            task.pairs.append((lr_path, hr_path))
            clean = _pysted_acquire(noise_free, fine, s["hr_px_nm"], s["p_sted_w"], seed + 2 * k + 1)
            task.clean_hr.append(write_tiff(folder / NOISE_FREE_HR_DIR / f"{stem}.tif", clean.astype(np.float32),
                                            pixel_size_nm=s["hr_px_nm"]))
        else:
            task.hr_calibration.append(write_tiff(folder / "hr_calibration" / f"{stem}.tif", hr.astype(np.uint16),
                                                  pixel_size_nm=s["hr_px_nm"]))
    grid = s["datamap_nm"] * 1e-9
    # pySTED's background: Poisson(background_cps · det_width · rep. rate · dwell), detection gating included
    background = s["background_cps"] * microscope.detector.det_width * microscope.sted.rate * s["dwell_s"]
    task.known = {
        "lr": {"psf_fwhm_nm": fwhm_of(microscope.get_effective(grid, s["p_ex_w"], 0.0), s["datamap_nm"]),
               "gain_adu_per_photon": 1.0, "read_noise_adu": 0.0, "background_photons": background},
        "hr": {"psf_fwhm_nm": fwhm_of(microscope.get_effective(grid, s["p_ex_w"], s["p_sted_w"]), s["datamap_nm"]),
               "gain_adu_per_photon": 1.0, "read_noise_adu": 0.0, "background_photons": background},
    }
    # Dark frames (lasers off): a photon counter without dark counts records zeros
    shape = np.shape(lr)
    task.dark = [write_tiff(folder / "dark" / "lr_dark.tif", np.zeros((10, *shape), np.uint16),
                            pixel_size_nm=s["lr_px_nm"])]
    task.hr_dark = [write_tiff(folder / "dark" / "hr_dark.tif", np.zeros((10, *np.shape(hr)), np.uint16),
                               pixel_size_nm=s["hr_px_nm"])]
    return task


# ------------------------------------------------------------------------------------------------
# widefield -> SIM with psfmodels and this script's own specimens and camera
# ------------------------------------------------------------------------------------------------
def draw_specimen(rng: np.random.Generator, size: int, grid_nm: float, density: float = 1.0) -> np.ndarray:
    """Label density on a ``size``² grid: random-walk filaments, rings and puncta (independent of srlab)."""
    img = np.zeros((size, size))
    extent = size * grid_nm

    def put(y: np.ndarray, x: np.ndarray, w: float) -> None:
        iy, ix = np.round(y / grid_nm).astype(int), np.round(x / grid_nm).astype(int)
        ok = (iy >= 0) & (iy < size) & (ix >= 0) & (ix < size)
        np.add.at(img, (iy[ok], ix[ok]), w)

    # filaments: the heading turns by N(0, 0.26 rad) every 10 nm at a 20 nm grid, a 2D persistence length
    # of ~150 nm (curly, not the several µm of microtubules; the formula is kept: recorded tables use it)
    for _ in range(rng.poisson(14 * density)):
        n = int(rng.uniform(2000, 12000) / (grid_nm / 2))
        turn = np.cumsum(rng.normal(0, (grid_nm / 2) / 3000 ** 0.5 * 1.4, n))
        angle = rng.uniform(0, 2 * np.pi) + turn
        y = rng.uniform(0, extent) + np.cumsum(np.sin(angle)) * grid_nm / 2
        x = rng.uniform(0, extent) + np.cumsum(np.cos(angle)) * grid_nm / 2
        put(y, x, rng.uniform(0.5, 1.5))
    for _ in range(rng.poisson(25 * density)):  # rings (vesicles, pits): 60-160 nm radius
        r = rng.uniform(60, 160)
        t = np.linspace(0, 2 * np.pi, int(2 * np.pi * r / (grid_nm / 2)), endpoint=False)
        cy, cx = rng.uniform(0, extent, 2)
        put(cy + r * np.sin(t), cx + r * np.cos(t), rng.uniform(0.5, 1.5))
    for _ in range(rng.poisson(60 * density)):  # puncta
        cy, cx = rng.uniform(0, extent, 2)
        put(np.array([cy]), np.array([cx]), rng.uniform(3, 12))
    return img


def _vectorial_psfs(dxy_um: float, n: int = 129) -> tuple[np.ndarray, np.ndarray, float]:
    """In-focus and defocused vectorial PSFs (each summing to 1) and the in-focus plane's depth."""
    import psfmodels

    w = WIDEFIELD
    z = np.round(np.arange(-1.0, 2.51, 0.05), 3)
    psf = psfmodels.make_psf(z, n, dxy=dxy_um, NA=w["na"], wvl=w["wavelength_um"], ns=w["ns"], ni=w["ni"],
                             pz=w["depth_um"])
    k = int(psf.reshape(len(z), -1).max(1).argmax())
    off = int(np.argmin(np.abs(z - (z[k] + w["defocus_um"]))))
    focus, defocus = psf[k], psf[off]
    return focus / focus.sum(), defocus / defocus.sum(), float(z[k])


def _camera(rng: np.random.Generator, expected_photons: np.ndarray) -> np.ndarray:
    w = WIDEFIELD
    electrons = rng.poisson(expected_photons) + rng.normal(0, w["read_noise_e"], expected_photons.shape)
    adu = np.round(electrons * w["gain_adu_per_e"] + w["offset_adu"])
    return np.clip(adu, 0, 2 ** 16 - 1).astype(np.uint16)


def _bin(img: np.ndarray, k: int) -> np.ndarray:
    h, w = img.shape
    return img.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def make_widefield_pairs(folder: Path, *, n_fields: int, n_hr_calibration: int, lr_size_px: int,
                         seed: int) -> Task:
    from scipy.signal import fftconvolve

    from srlab.data.io import write_tiff
    from srlab.data.simulate import NOISE_FREE_HR_DIR

    w = WIDEFIELD
    task = Task("widefield_sim", "widefield → SIM ×2 (psfmodels, ideal SIM)", "widefield", "sim", folder)
    focus, defocus, _ = _vectorial_psfs(w["grid_nm"] / 1000)
    # ideal linear SIM: the same PSF at half the spatial scale
    # (sampled at twice the grid step, laid on the grid: FWHM halved, OTF support doubled)
    sim_psf, _, _ = _vectorial_psfs(2 * w["grid_nm"] / 1000)
    lr_bin, hr_bin = int(w["lr_px_nm"] / w["grid_nm"]), int(w["hr_px_nm"] / w["grid_nm"])
    size = lr_size_px * lr_bin
    rng = np.random.default_rng(seed)
    for k in range(n_fields + n_hr_calibration):
        in_focus = draw_specimen(rng, size, w["grid_nm"])
        haze_layer = draw_specimen(rng, size, w["grid_nm"], density=0.7)
        wf = fftconvolve(in_focus, focus, mode="same") + w["out_of_focus"] * fftconvolve(haze_layer, defocus,
                                                                                         mode="same")
        sim = fftconvolve(in_focus, sim_psf, mode="same")
        lr_clean, hr_clean = _bin(np.clip(wf, 0, None), lr_bin), _bin(np.clip(sim, 0, None), hr_bin)
        lr_clean = lr_clean / np.percentile(lr_clean, 99.9) * w["lr_signal_photons"] + w["lr_background_photons"]
        hr_clean = hr_clean / np.percentile(hr_clean, 99.9) * w["hr_signal_photons"] + w["hr_background_photons"]
        lr, hr = _camera(rng, lr_clean), _camera(rng, hr_clean)
        if k < n_fields:
            lr_path = write_tiff(folder / "lr" / f"field{k:02d}.tif", lr, pixel_size_nm=w["lr_px_nm"])
            hr_path = write_tiff(folder / "hr" / f"field{k:02d}.tif", hr, pixel_size_nm=w["hr_px_nm"])
            task.pairs.append((lr_path, hr_path))
            task.clean_hr.append(write_tiff(folder / NOISE_FREE_HR_DIR / f"field{k:02d}.tif", hr_clean.astype(np.float32),
                                            pixel_size_nm=w["hr_px_nm"]))
        else:
            task.hr_calibration.append(write_tiff(folder / "hr_calibration" / f"field{k:02d}.tif", hr,
                                                  pixel_size_nm=w["hr_px_nm"]))
    gain = w["gain_adu_per_e"]
    task.known = {
        "lr": {"psf_fwhm_nm": fwhm_of(focus, w["grid_nm"]), "gain_adu_per_photon": gain,
               "read_noise_adu": w["read_noise_e"] * gain, "background_photons": w["lr_background_photons"],
               # each noise-free image's 99.9th percentile is set to it: the block's level (signal_photons,
               # the noisy images' reading, beside it shows the noise lift that the level undoes)
               "signal_photons": w["lr_signal_photons"], "signal_expected_photons": w["lr_signal_photons"]},
        "hr": {"psf_fwhm_nm": fwhm_of(sim_psf, w["grid_nm"]), "gain_adu_per_photon": gain,
               "read_noise_adu": w["read_noise_e"] * gain, "background_photons": w["hr_background_photons"],
               "signal_photons": w["hr_signal_photons"], "signal_expected_photons": w["hr_signal_photons"]},
    }
    # Dark frames of the camera (shutter closed), from their own random stream: the fields are unchanged
    dark_rng = np.random.default_rng([seed, 1])
    hr_size = lr_size_px * lr_bin // hr_bin
    task.dark = [write_tiff(folder / "dark" / "lr_dark.tif", _camera(dark_rng, np.zeros((10, lr_size_px, lr_size_px))),
                            pixel_size_nm=w["lr_px_nm"])]
    task.hr_dark = [write_tiff(folder / "dark" / "hr_dark.tif", _camera(dark_rng, np.zeros((10, hr_size, hr_size))),
                               pixel_size_nm=w["hr_px_nm"])]
    return task


# ------------------------------------------------------------------------------------------------
# calibrate, train, evaluate
# ------------------------------------------------------------------------------------------------
def calibrate_task(task: Task, exp_root: Path):
    """``srlab calibrate`` on the foreign LR images (+ unpaired HR) -> ``exp_root/data/realcheck_<task>.yaml``."""
    from srlab.calibration import calibrate
    from srlab.calibration.block import simulate_check, write_block
    from srlab.calibration.command import summary
    from srlab.calibration.figure import draw

    start = time.perf_counter()
    out = exp_root / "data" / f"realcheck_{task.name}.yaml"
    cal = calibrate([lr for lr, _ in task.pairs], modality=task.modality, target=task.target,
                    hr_paths=task.hr_calibration, dark_paths=task.dark, hr_dark_paths=task.hr_dark)
    check = simulate_check(cal)
    write_block(cal, out, overwrite=True)
    draw(cal, check, out.with_suffix(".png"))
    print(summary(cal, check, time.perf_counter() - start, out, out.with_suffix(".png")), flush=True)
    return cal


#: Rows of runs fine-tuned by ``srlab adapt`` on the foreign LR images (unlabelled; the same images the
#: table scores, as a user adapts to the images they want to improve — no foreign HR is used).
ADAPT_SUFFIX = "+adapt"


#: ``--quick``'s training and ``srlab adapt`` budget (a smoke run, not a result); training also simulates
#: only 4 images (``data.simulation.n_images=4``).
QUICK_ADAPT_BUDGET = ["trainer.max_epochs=1", "data.patches_per_epoch=32", "trainer.limit_val_batches=1"]


def adapt_task(task: Task, run_dir: Path, overrides: list[str], folder: Path | None = None) -> Path:
    """``srlab adapt RUN <task>/lr`` (or ``RUN folder``): the run fine-tuned on the foreign LR images, with
    its defaults."""
    from srlab.adapt import adapt

    return adapt(run_dir, folder or task.folder / "lr", overrides=["logger.wandb.enabled=false",
                                                                   "trainer.enable_progress_bar=false", *overrides])


#: ``--adapt-held-out`` (added after the adapt rows): each trained run is adapted twice more, on the LR
#: images of half of the test fields each — the even-numbered, then the odd-numbered (two folds). Every field
#: is then scored by the run adapted on the other half, which never saw it (held out), and by the run adapted
#: on its own half (transductive, on as few images as the held-out one): the first pair tells adapting to a
#: microscope from adapting to the scored images, and the own-half rows beside the all-field adapt rows tell
#: what adapting on half as many images costs (:func:`cross_adapted`, :func:`held_out_table`).
HALF_FOLDS = ("even", "odd")
#: ``run_dirs`` keys of the half-fold runs: experiment + HELD_OUT_SUFFIX + fold.
HELD_OUT_SUFFIX = "+adapt_half_"
#: Every half-fold row holds this (the main tables leave them out: they saw some of the fields).
HALF_MARKER = "half of the test fields"
#: The composed rows (they contain ADAPT_SUFFIX: not simulation-only rows).
HELD_OUT_ROW = f"{ADAPT_SUFFIX} to the other {HALF_MARKER}' LR images only (unlabelled; held out)"
OWN_HALF_ROW = f"{ADAPT_SUFFIX} to its own {HALF_MARKER}' LR images only (unlabelled)"


def split_half_rows(results: dict[str, dict[str, list[float]]]) -> tuple[dict, dict]:
    """``(others, half-fold rows)``: the half-fold rows saw some of the fields, so only the held-out table
    (:func:`held_out_table`) scores them; every other table takes the first."""
    half = {row: r for row, r in results.items() if HALF_MARKER in row}
    return {row: r for row, r in results.items() if row not in half}, half


def fold_row(fold: str) -> str:
    """How the run adapted on one fold is named before :func:`cross_adapted` composes its rows."""
    return f"{ADAPT_SUFFIX} to the {fold}-numbered {HALF_MARKER}' LR images only (unlabelled)"


def held_out_split(task: Task, shared: tuple[Path, ...] = ()) -> dict[str, tuple[Path, list[int]]]:
    """Per fold (:data:`HALF_FOLDS`: alternate test fields, from the first and from the second), a folder
    holding the LR images of its test fields (what that fold's adaptation sees; beside ``lr/``) and the
    fields' indices. ``shared``: LR images that are not test fields (none of them scored), put in both
    folders — stormcheck's calibration fields, so that each fold has enough images to train and stop on."""
    folds = {}
    for start, fold in enumerate(HALF_FOLDS):
        folder = task.folder / f"lr_{fold}_fields"
        folder.mkdir(exist_ok=True)
        for lr_path in [*(lr for lr, _ in task.pairs[start::2]), *shared]:
            shutil.copy2(lr_path, folder / lr_path.name)
        folds[fold] = (folder, list(range(start, len(task.pairs), 2)))
    return folds


def adapt_halves(task: Task, run_dirs: dict[str, Path], adapt: Callable[[Path, Path, str], Path], *,
                 shared: tuple[Path, ...] = (), sources: tuple[str, ...] = tuple(EXPERIMENTS)) -> dict[str, list[int]]:
    """``--adapt-held-out``: each trained run ``sources`` of ``run_dirs`` (the plain runs of :data:`EXPERIMENTS`
    unless given; realcheck gives the ``--hr``-specimens runs too) adapted on each half of the test fields' LR
    images (:func:`held_out_split`, with ``shared``) by ``adapt(run, folder, fold)`` (returns the adapted run),
    added to ``run_dirs`` as run name + :data:`HELD_OUT_SUFFIX` + fold; returns each half's field indices."""
    folds: dict[str, list[int]] = {}
    for fold, (folder, folds[fold]) in held_out_split(task, shared).items():
        for run_name in sources:
            t1 = time.perf_counter()
            run_dirs[run_name + HELD_OUT_SUFFIX + fold] = adapt(run_dirs[run_name], folder, fold)
            print(f"[--adapt-held-out] adapted {run_name} to the {fold}-numbered fields' LR images "
                  f"in {time.perf_counter() - t1:.0f} s", flush=True)
    return folds


def cross_adapted(results: dict[str, dict[str, list[float]]],
                  folds: dict[str, list[int]]) -> dict[str, dict[str, list[float]]]:
    """``results`` with each pair of half-fold rows (one run adapted per fold, scored on every field)
    replaced by two rows over every field: :data:`HELD_OUT_ROW`, each field's score by the run adapted on
    the other fold, and :data:`OWN_HALF_ROW`, by the run adapted on its own fold."""
    first, second = HALF_FOLDS
    fold_of = {i: fold for fold, indices in folds.items() for i in indices}
    other = {first: second, second: first}
    out: dict[str, dict[str, list[float]]] = {}
    for row, r in results.items():
        if fold_row(second) in row:
            continue  # composed with its first-fold twin
        if fold_row(first) not in row:
            out[row] = r
            continue
        runs = {first: r, second: results[row.replace(fold_row(first), fold_row(second))]}
        for name, scorer in ((HELD_OUT_ROW, other), (OWN_HALF_ROW, {first: first, second: second})):
            out[row.replace(fold_row(first), name)] = {
                metric: [runs[scorer[fold_of[i]]][metric][i] for i in range(len(values))]
                for metric, values in r.items()}
    return out


def held_out_table(task: Task, results: dict[str, dict[str, list[float]]], reference: str,
                   folds: dict[str, list[int]], selection: dict | None = None,
                   also: Sequence[tuple[dict, str]] = ()) -> tuple[list[str], str]:
    """The adapted rows on every test field (``results`` as :func:`cross_adapted` leaves them), beside
    bicubic and Richardson–Lucy, with a verdict per way of adapting: on every field's LR image
    (transductive), on the field's own half only, on the other half only (held out)."""
    own = [row for row in results if OWN_HALF_ROW in row]
    held_out = [row for row in results if HELD_OUT_ROW in row]
    # the transductive twins of the runs adapted on halves (a run without half-adapted runs is not shown)
    halved = {row.split(f" {ADAPT_SUFFIX} ")[0] for row in held_out}
    transductive = [row for row in results if row.startswith("srlab") and f" {ADAPT_SUFFIX} " in row
                    and HALF_MARKER not in row and row.split(f" {ADAPT_SUFFIX} ")[0] in halved]
    shown = {row: results[row] for row in ["bicubic", "Richardson–Lucy", *transductive, *own, *held_out]}
    groups = [(transductive, "with `srlab adapt` to every test field's LR image (transductive)"),
              (own, "with `srlab adapt` to its own half of the fields' LR images (transductive, half the images)"),
              (held_out, "with `srlab adapt` to the other half's LR images only (held out)")]
    names = {fold: ", ".join(task.pairs[i][0].stem for i in indices) for fold, indices in folds.items()}
    return results_table(task, shown, reference, groups=groups, selection=selection, also=also, fields=(
        f"all {len(task.pairs)} test fields, adapted on half of them (alternate fields in the pairs' order: "
        f"{names[HALF_FOLDS[0]]}; or {names[HALF_FOLDS[1]]}), each field scored by the run of its own half and "
        "by the run of the other half"))


def train_task(task: Task, exp_root: Path, runs_dir: Path, budget: list[str], seed: int, name: str, *,
               data: tuple[str, ...] = ()) -> Path:
    """Train experiment ``name`` on the calibrated block (or on ``data``: overrides naming another block,
    or changing the calibrated one)."""
    from srlab import experiment
    from srlab.config import load_experiment

    if not data or not data[0].startswith("data="):
        data = (f"data=realcheck_{task.name}", *data)
    cfg = load_experiment(name, [*data, *budget, f"seed={seed}",
                                       f"runs_dir={runs_dir}", "logger.wandb.enabled=false",
                                       "trainer.enable_progress_bar=false"], root=exp_root)
    return experiment.train(cfg)


#: Rows of runs trained on the calibrated block with the unpaired foreign HR images as specimens too
#: (``srlab calibrate --hr-specimens``: ``data.simulation.hr_images``, :mod:`srlab.data.user_specimens`;
#: added after the results that pointed at the specimen prior as what holds the STED rows back).
HR_SPECIMENS_SUFFIX = "+hr_specimens"
#: What the rows of such runs say (:func:`source_row`), and what marks them in a table.
SPECIMENS_MARKER = "--hr images as specimens"


def hr_specimens_data(task: Task, leave_out: int | None = None) -> tuple[str, ...]:
    """The override that puts the --hr images (all, or all but image ``leave_out``) into the block."""
    paths = [str(p) for k, p in enumerate(task.hr_calibration) if k != leave_out]
    return (f"data.simulation.hr_images=[{','.join(paths)}]",)


#: ``--choose-on-hr``: the choice a user with a few HR images can make fairly between training with
#: them as specimens and without (added after the choice on the calibrated simulation, which scores on
#: srlab's own specimens and so favours the runs trained on those alone: on pySTED by 0.28 dB, while the
#: foreign pairs favoured the other way). Every --hr image k in turn is held out: pairs are made of it
#: as the --hr-specimen pairs are (its LR by the calibrated LR microscope, its HR as acquired), each
#: simulation-only row is scored on them, a row trained with the --hr images as specimens by its run
#: trained on the others only (one more training per image and experiment; with one --hr image, that
#: is the run trained without any). Cross-validation over the user's HR images, then the row refitted on
#: all of them is the one judged, as a user would train it. No foreign test HR is used. Measured
#: (BENCHMARKS.md, 4249525/301d8a1): on widefield → SIM it picks the specimen runs, as the foreign pairs
#: do; against pySTED's STED images (~24 photons at the brightest) every row is within 0.06 dB and the
#: order is the wrong one, with 2 LR draws per image and with 12 — photon-poor HR images cannot make
#: this choice.
HR_CHOICE = "chosen on the --hr images, each held out of training (no foreign test HR)"
#: ``run_dirs`` keys of the runs trained without --hr image k: experiment + HR_FOLD_SUFFIX + k.
HR_FOLD_SUFFIX = "+hr_specimens_without_"
#: LR noise draws per held-out --hr image (its HR as acquired is the one reference). 2 at first; 12 since
#: 7142670 (a prediction each, not a training). On pySTED's photon-poor STED the order is the same with 12
#: as with 2: each experiment's plain rows above its --hr-specimen rows, by 0.02–0.05 dB (BENCHMARKS.md). A post-hoc
#: reading that had put the --hr rows first, and prompted the change, had scored each fold's network on
#: an image it trained on: it took the --hr images in sorted order, not the task's — leakage, not noise.
HR_CHOICE_DRAWS = 12


def held_out_hr_pairs(task: Task, exp_root: Path, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(LR camera image, HR as acquired)`` made of --hr image ``k`` exactly as the calibrated block with
    it as a specimen makes its training pairs (:mod:`srlab.data.user_specimens`), with
    :data:`HR_CHOICE_DRAWS` LR noise draws of its own seed (not a training pair's)."""
    from srlab.config import load_experiment
    from srlab.data import user_specimens
    from srlab.data.simulate import resolve_simulation

    data = load_experiment(next(iter(EXPERIMENTS)), [f"data=realcheck_{task.name}",
                                                     f"data.simulation.hr_images=[{task.hr_calibration[k]}]"],
                           root=exp_root).data
    spec = resolve_simulation(data.simulation, scale=int(data.scale), image_lr=True)
    pairs = []
    for j, (acquired, photons) in enumerate(user_specimens.load_hr(spec)):
        expected = user_specimens.lr_expected(spec, photons)
        rng = np.random.default_rng([spec.seed, k, j, 97])
        pairs += [(spec.lr.camera.forward(expected, rng), acquired) for _ in range(HR_CHOICE_DRAWS)]
    return pairs


def held_out_hr_scores(task: Task, exp_root: Path, methods: dict[str, Any],
                       without: dict[int, dict[str, Any]]) -> dict[tuple[str, bool, bool], float]:
    """:data:`HR_CHOICE`: mean affine-fitted PSNR of each simulation-only srlab row of ``methods`` (row ->
    network) on the pairs of every --hr image (:func:`held_out_hr_pairs`) against that image as acquired;
    a row trained with the --hr images as specimens is scored on image k by ``without[k][experiment]``,
    its experiment trained without image k. Keyed as :func:`simulated_scores`."""
    import torch

    from srlab.config import load_experiment
    from srlab.inference.predict import predict_stack
    from srlab.metrics.image import image_metrics

    scale = int(load_experiment(next(iter(EXPERIMENTS)), [f"data=realcheck_{task.name}"], root=exp_root).data.scale)
    values: dict[tuple[str, bool, bool], list[float]] = {}
    for k in range(len(task.hr_calibration)):
        pairs = held_out_hr_pairs(task, exp_root, k)
        for row, network in methods.items():
            if not row.startswith("srlab") or ADAPT_SUFFIX in row:
                continue
            source = _source(row)
            experiment_name, tta, specimens = source
            net = without[k][experiment_name] if specimens else network
            for lr, hr in pairs:
                with torch.no_grad():
                    pred = predict_stack(net, lr, scale=scale, tta=tta)
                m = image_metrics(torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None],
                                  torch.from_numpy(np.ascontiguousarray(hr, np.float32))[None, None],
                                  names=("psnr",), plain=False)
                values.setdefault(source, []).append(float(m["psnr"].mean()))
    return {source: float(np.mean(v)) for source, v in values.items()}


#: ``--oracle``: what the same experiments reach when trained on the foreign test pairs themselves (a
#: paired block over ``lr/`` and ``hr_noise_free/``, split by srlab as any user's pairs: train ⊃ most of the
#: test fields) — not a result, the upper bound of the network and budget on these data.
ORACLE_PREFIX = "oracle:"


def oracle_data(task: Task, exp_root: Path, name: str) -> tuple[str, ...]:
    """Overrides that train experiment ``name`` on the foreign test pairs. A network that deconvolves keeps
    the calibrated block's relative PSF: a paired block implies none, and with its own default (2 LR
    pixels) the oracle would be another network than the rows it bounds."""
    from srlab.build import network_kwargs
    from srlab.config import load_experiment

    kwargs = network_kwargs(load_experiment(name, [f"data=realcheck_{task.name}"], root=exp_root))
    psf = tuple(f"model.params.{key}={kwargs[key]}" for key in ("psf_fwhm_nm", "pixel_size_nm") if key in kwargs)
    from srlab.data.simulate import NOISE_FREE_HR_DIR

    return ("data=paired", f"data.path={task.folder}", f"data.params.hr_dir={NOISE_FREE_HR_DIR}", *psf)


def _normalized(path: Path) -> np.ndarray:
    from srlab.data.io import read_tiff
    from srlab.data.normalize import percentile_normalize

    array, _, _ = read_tiff(path)
    return percentile_normalize(np.asarray(array, np.float32))[0]


#: Rows predicted with the ×8 dihedral self-ensemble (``--tta``; Lim et al. 2017's "EDSR+"), an option of
#: ``srlab predict`` any user has; the network is the same run (added after the first results).
TTA_SUFFIX = ", ×8 self-ensemble at prediction (--tta)"
#: The references the methods are scored against: the pairs' HR without noise (the headline: what the
#: microscope resolves) and as acquired (photon and camera noise in the reference caps every method's
#: score: the "noise-free HR itself" row is that ceiling).
REFERENCES = {"noise_free": "noise-free HR (expected counts)", "acquired": "HR as acquired (noisy)"}
CEILING = "noise-free HR itself (ceiling)"


#: The choice a user can make without HR images of their sample (added after the verdicts by PSNR on the
#: foreign pairs, which choose the best row by the very scores they report): every simulation-only srlab
#: row — network, ``--hr`` images as specimens or not, ``--tta`` or not — is scored on fresh images of the
#: calibrated block's simulation against their noise-free HR (:data:`CHOICE_IMAGES` images past the
#: block's ``n_images``: none trained on), and each verdict is also given for the row whose
#: simulation-only source scores best there (:func:`simulated_scores`, :func:`_source`). The noise-free HR,
#: which only a simulator has, is what the foreign verdict is judged against too; scored against the
#: block's own (acquired) HR, a photon-poor STED's noise left every row within 0.1 dB (first run).
CHOICE = "chosen on the calibrated simulation's noise-free HR (no foreign HR)"
#: :data:`CHOICE` of a group trained on a changed block, chosen on that block's simulation.
CHOICE_OWN_BLOCK = "chosen on that block's simulation's noise-free HR (no foreign HR)"
CHOICE_IMAGES = 8


def _source(row: str) -> tuple[str, bool, bool]:
    """The simulation-only run a row comes from: (experiment, with ``--tta``, with the --hr specimens);
    an adapted row comes from the run it fine-tuned."""
    return row.split()[1], row.endswith(TTA_SUFFIX), SPECIMENS_MARKER in row


def simulated_scores(task: Task, exp_root: Path, methods: dict[str, Any],
                     data: tuple[str, ...] = ()) -> dict[tuple[str, bool, bool], float]:
    """Mean affine-fitted PSNR of each simulation-only srlab row of ``methods`` (row -> network) against the
    noise-free HR of :data:`CHOICE_IMAGES` fresh images of the calibrated block's simulation
    (:func:`fresh_block_psnr`); ``data``: overrides changing the block, for runs trained on such a variant (a
    user who changed the block simulates with it)."""
    rows = {row: network for row, network in methods.items() if row.startswith("srlab") and ADAPT_SUFFIX not in row}
    scores = fresh_block_psnr(task, exp_root, rows, data, tta={row: row.endswith(TTA_SUFFIX) for row in rows})
    return {_source(row): value for row, value in scores.items()}


def fresh_block_psnr(task: Task, exp_root: Path, networks: dict[str, Any], data: tuple[str, ...] = (), *,
                     tta: dict[str, bool] | None = None) -> dict[str, float]:
    """Mean affine-fitted PSNR of each network (name -> network; ``tta``: name -> with the ×8 self-ensemble)
    against the noise-free HR of :data:`CHOICE_IMAGES` fresh images of the calibrated block's simulation
    (changed by ``data``), their LR as acquired, predicted whole as the foreign ones are. The images are past
    the block's ``n_images``: none was trained on. No foreign HR is used: a user can score this."""
    import torch

    from srlab.config import load_experiment
    from srlab.data.simulate import Imager, resolve_simulation
    from srlab.inference.predict import predict_stack
    from srlab.metrics.image import image_metrics

    data = load_experiment(next(iter(EXPERIMENTS)), [f"data=realcheck_{task.name}", *data], root=exp_root).data
    imager = Imager(resolve_simulation(data.simulation, scale=int(data.scale), image_lr=True))
    first = int(data.simulation.n_images)  # the dataset's images are 0 .. n_images - 1
    fresh = [imager.image(first + k) for k in range(CHOICE_IMAGES)]
    scores: dict[str, float] = {}
    for name, network in networks.items():
        values = []
        for images in fresh:
            with torch.no_grad():
                pred = predict_stack(network, images["lr"], scale=int(data.scale), tta=bool((tta or {}).get(name)))
            m = image_metrics(torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None],
                              torch.from_numpy(np.ascontiguousarray(images["hr_expected"], np.float32))[None, None],
                              names=("psnr",), plain=False)
            values.append(float(m["psnr"].mean()))
        scores[name] = float(np.mean(values))
    return scores


def source_row(name: str) -> str:
    """The table's row of trained run ``name`` (an experiment, + :data:`HR_SPECIMENS_SUFFIX` where trained
    with the --hr images as specimens, + :data:`ADAPT_SUFFIX` where then adapted)."""
    adapted = name.endswith(ADAPT_SUFFIX)
    name = name.removesuffix(ADAPT_SUFFIX)
    specimens = name.endswith(HR_SPECIMENS_SUFFIX)
    experiment_name = name.removesuffix(HR_SPECIMENS_SUFFIX)
    return (f"srlab {experiment_name} ({EXPERIMENTS[experiment_name]})"
            + (f" with the {SPECIMENS_MARKER} too" if specimens else "")
            + (f" {ADAPT_SUFFIX} to the test LR images (unlabelled)" if adapted else ""))


def evaluate_task(task: Task, cal, run_dirs: dict[str, Path], exp_root: Path, *,
                  tta: bool = False, selection: dict | None = None, data: tuple[str, ...] = (),
                  hr_selection: dict | None = None) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per-image affine-fitted PSNR/SSIM of every method (the baselines and the trained runs ``run_dirs``,
    experiment -> run) on the foreign pairs, against each reference (:data:`REFERENCES`):
    ``results[reference][method][metric]``. Richardson–Lucy is ``rl_sted`` on the calibrated block
    (``exp_root``): its PSF is the block's relative blur, as a user's ``srlab train rl_sted data=<block>``.
    With ``tta`` every srlab run (not the oracles) also predicts with the ×8 self-ensemble of
    ``srlab predict --tta``, a row of its own beside the plain prediction. ``selection``, where given, is
    filled with :func:`simulated_scores` of the rows (on the block changed by ``data``, the runs' variant);
    ``hr_selection``, where given, with :func:`held_out_hr_scores` (the runs trained without one --hr image
    are ``run_dirs``' experiment + :data:`HR_FOLD_SUFFIX` + k; they score no row of their own)."""
    import torch

    from srlab.experiment import load_network
    from srlab.inference.predict import predict_stack

    scale = cal.scale
    methods: dict[str, torch.nn.Module] = baselines(task, exp_root, scale)
    without: dict[int, dict[str, torch.nn.Module]] = {}
    for name, run_dir in run_dirs.items():
        network, _ = load_network(run_dir)
        if HR_FOLD_SUFFIX in name:
            experiment_name, k = name.split(HR_FOLD_SUFFIX)
            without.setdefault(int(k), {})[experiment_name] = network
        elif name.startswith(ORACLE_PREFIX):
            experiment_name = name.removeprefix(ORACLE_PREFIX)
            methods[f"{ORACLE_PREFIX} {experiment_name} trained on these test pairs (noise-free HR)"] = network
        elif HELD_OUT_SUFFIX in name:
            run_name, fold = name.split(HELD_OUT_SUFFIX)
            methods[f"{source_row(run_name)} {fold_row(fold)}"] = network
        else:
            methods[source_row(name)] = network
    ensembled = [m for m in methods if m.startswith("srlab")] if tta else []
    # each self-ensemble row right under its plain row, so the pair reads side by side
    methods = {row: network for m, network in methods.items()
               for row in ([m, m + TTA_SUFFIX] if m in ensembled else [m])}
    if selection is not None:
        selection.update(simulated_scores(task, exp_root, methods, data))
    if hr_selection is not None and without:
        hr_selection.update(held_out_hr_scores(task, exp_root, methods, without))

    def predictor(name: str, module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
        if name.startswith(("srlab", ORACLE_PREFIX)):
            return lambda lr: predict_stack(module, lr, scale=scale, tta=name.endswith(TTA_SUFFIX))
        return whole_image(module)
    return score_pairs(task, {name: predictor(name, module) for name, module in methods.items()})


def baselines(task: Task, exp_root: Path, scale: int) -> dict[str, Any]:
    """Bicubic and Richardson–Lucy, ``rl_sted`` on the calibrated block (``exp_root``): its PSF is the block's
    relative blur, as a user's ``srlab train rl_sted data=<block>``."""
    from srlab.build import build_network
    from srlab.config import load_experiment
    from srlab.models.classical import Bicubic

    return {"bicubic": Bicubic(scale=scale),
            "Richardson–Lucy": build_network(load_experiment("rl_sted", [f"data=realcheck_{task.name}"],
                                                             root=exp_root))}


def whole_image(module: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A baseline as a predictor of :func:`score_pairs`: the normalized LR image through it, whole."""
    import torch

    return lambda lr: module(torch.from_numpy(lr)[None, None])[0, 0].numpy()


def score_pairs(task: Task, predictors: dict[str, Callable[[np.ndarray], np.ndarray]]
                ) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per-image affine-fitted PSNR/SSIM of every predictor (name -> normalized LR -> prediction on the HR
    grid) on the task's foreign pairs, against each reference (:data:`REFERENCES`):
    ``results[reference][method][metric]``, with the noise-free HR itself as :data:`CEILING` of the acquired."""
    import torch

    from srlab.metrics.image import image_metrics

    results = {ref: {m: {"psnr": [], "ssim": []} for m in predictors} for ref in REFERENCES}
    results["acquired"][CEILING] = {"psnr": [], "ssim": []}

    def score(pred: np.ndarray, target: np.ndarray, into: dict[str, list[float]]) -> None:
        m = image_metrics(torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None],
                          torch.from_numpy(target)[None, None], names=("psnr", "ssim"), plain=False)
        into["psnr"].append(float(m["psnr"].mean()))  # headline = affine-fitted
        into["ssim"].append(float(m["ssim"].mean()))

    for (lr_path, hr_path), clean_path in zip(task.pairs, task.clean_hr):
        lr = _normalized(lr_path)
        targets = {"noise_free": _normalized(clean_path), "acquired": _normalized(hr_path)}
        for name, predict in predictors.items():
            with torch.no_grad():
                pred = predict(lr)
            for ref, target in targets.items():
                score(pred, target, results[ref][name])
        score(targets["noise_free"], targets["acquired"], results["acquired"][CEILING])
    return results


def train_and_score(task: Task, cal, exp_root: Path, work: Path, args: argparse.Namespace, budget: list[str],
                    adapt_budget: list[str], train_seed: int) -> tuple[dict, dict, dict[str, list[int]], dict]:
    """One training of every row the options ask for (networks seeded ``train_seed``; runs under ``work``),
    scored on the foreign pairs: ``(results by reference, selection, folds, hr_selection)`` as
    :func:`evaluate_task`, :func:`simulated_scores`, :func:`adapt_halves` and :func:`held_out_hr_scores`
    give them (the half-fold rows already composed; ``hr_selection`` empty without ``--choose-on-hr``)."""
    run_dirs: dict[str, Path] = {}
    for experiment_name in ([] if args.no_train else EXPERIMENTS):
        t1 = time.perf_counter()
        run_dirs[experiment_name] = train_task(task, exp_root, work / "runs", budget, train_seed, experiment_name)
        print(f"[realcheck] trained {experiment_name} (seed {train_seed}) on the calibrated simulation in "
              f"{time.perf_counter() - t1:.0f} s: {run_dirs[experiment_name]}", flush=True)
    for experiment_name in ([] if args.no_train or not task.hr_calibration else EXPERIMENTS):
        t1 = time.perf_counter()
        run_dirs[experiment_name + HR_SPECIMENS_SUFFIX] = train_task(
            task, exp_root, work / "runs_hr_specimens", budget, train_seed, experiment_name,
            data=hr_specimens_data(task))
        print(f"[realcheck] trained {experiment_name} (seed {train_seed}) with the --hr images as specimens in "
              f"{time.perf_counter() - t1:.0f} s", flush=True)
    # every simulation-only run is adapted, the --hr-specimens ones too: a user adapts the network they chose
    simulation_only = tuple(run_dirs)
    hr_folds = range(len(task.hr_calibration)) if args.choose_on_hr and not args.no_train else ()
    for k, experiment_name in itertools.product(hr_folds, EXPERIMENTS):
        name = f"{experiment_name}{HR_FOLD_SUFFIX}{k}"
        if len(task.hr_calibration) == 1:  # without its one --hr image the block is the plain one
            run_dirs[name] = run_dirs[experiment_name]
            continue
        t1 = time.perf_counter()
        run_dirs[name] = train_task(task, exp_root, work / f"runs_hr_specimens_without_{k}", budget, train_seed,
                                    experiment_name, data=hr_specimens_data(task, leave_out=k))
        print(f"[--choose-on-hr] trained {experiment_name} (seed {train_seed}) without --hr image {k} in "
              f"{time.perf_counter() - t1:.0f} s", flush=True)
    for run_name in ([] if args.no_train or args.no_adapt else simulation_only):
        t1 = time.perf_counter()
        run_dirs[run_name + ADAPT_SUFFIX] = adapt_task(task, run_dirs[run_name], adapt_budget)
        print(f"[realcheck] adapted {run_name} to the test LR images in "
              f"{time.perf_counter() - t1:.0f} s", flush=True)
    folds = (adapt_halves(task, run_dirs, lambda run, folder, _: adapt_task(task, run, adapt_budget, folder),
                          sources=simulation_only)
             if args.adapt_held_out and not args.no_train else {})
    for experiment_name in (EXPERIMENTS if args.oracle and not args.no_train else []):
        run_dirs[ORACLE_PREFIX + experiment_name] = train_task(
            task, exp_root, work / "runs_oracle", budget, train_seed, experiment_name,
            data=oracle_data(task, exp_root, experiment_name))
    selection: dict = {}
    hr_selection: dict = {}
    results = evaluate_task(task, cal, run_dirs, exp_root, tta=args.tta, selection=selection,
                            hr_selection=hr_selection)
    if folds:
        results = {ref: cross_adapted(r, folds) for ref, r in results.items()}
    return results, selection, folds, hr_selection


#: The scores a row is judged by; :func:`over_seeds` keeps each training's under ``BY_SEED``.
METRICS = ("psnr", "ssim")
BY_SEED = "by_seed"


def over_seeds(per_seed: list[dict[str, dict[str, list[float]]]]) -> dict[str, dict]:
    """The scores of the same rows trained once per seed (``--train-seed N N ...``: one ``{row: {metric:
    per-image scores}}`` per training, the same fields in the same order) as one: each image's scores
    averaged over the trainings — what the tables, the verdict's means and its per-image interval take, as
    :mod:`srlab.compare` pairs images on their seed-averaged scores — with each training's own kept under
    :data:`BY_SEED` (for the tables' sd over trainings and the verdict's count of trainings that meet the
    target alone). One training: unchanged."""
    from srlab.metrics.stats import per_image_mean

    if len(per_seed) == 1:
        return per_seed[0]
    rows = list(per_seed[0])
    if any(list(results) != rows for results in per_seed):
        raise ValueError("the trainings scored different rows")
    out: dict[str, dict] = {}
    for row in rows:
        out[row] = {m: per_image_mean([results[row][m] for results in per_seed]).tolist() for m in METRICS}
        if row.startswith(("srlab", ORACLE_PREFIX)):  # the baselines do not train: the same at every seed
            out[row][BY_SEED] = {m: [results[row][m] for results in per_seed] for m in METRICS}
    return out


def mean_selection(selections: list[dict]) -> dict:
    """:func:`simulated_scores` of several trainings as one: each source's mean over them (the configuration
    that simulates best on average is the one chosen; a user training once picks among their one training's
    rows, which this does not follow)."""
    return {key: float(np.mean([s[key] for s in selections])) for key in selections[0]} if selections else {}


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def _ci(values: list[float], digits: int) -> str:
    from srlab.metrics.stats import mean_ci

    mean, lo, hi, _ = mean_ci(values)
    if not math.isfinite(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def results_table(task: Task, results: dict[str, dict[str, list[float]]], reference: str, *,
                  groups: list[tuple] | None = None, fields: str | None = None, selection: dict | None = None,
                  also: Sequence[tuple[dict, str]] = ()) -> tuple[list[str], str]:
    """The table's lines and the target's verdict, one per group of srlab rows ``(rows, label)``; by
    default the rows trained on the calibrated simulation only, then those with ``srlab adapt`` too.
    A group ``(rows, label, selection)`` is chosen by its own :func:`simulated_scores` (rows trained on a
    changed block), the others by ``selection`` and then by each of ``also`` (:func:`_verdict`).
    ``fields`` says which test pairs the scores are of (default: all of them)."""
    from srlab.metrics.stats import seed_sd

    base = results["bicubic"]
    fields = fields or f"{len(task.pairs)} foreign test pairs"
    trainings = max((len(r[BY_SEED]["psnr"]) for r in results.values() if BY_SEED in r), default=1)
    if trainings > 1:
        fields += (f"; every srlab row trained {trainings} times (`--train-seed`), each image's scores averaged "
                   "over the trainings, [sd over the trainings of the row's mean]")

    def cell(r: dict, metric: str, digits: int) -> str:
        spread = seed_sd(r[BY_SEED][metric]) if BY_SEED in r else math.nan
        return _ci(r[metric], digits) + (f" [{spread:.{digits}f}]" if math.isfinite(spread) else "")
    lines = [f"**{task.title}** — {fields}, against the {REFERENCES[reference]}",
             "", ("| method | PSNR affine (dB) | SSIM affine | ΔPSNR vs bicubic | ΔSSIM vs bicubic "
                  "| ΔPSNR vs Richardson–Lucy, per image (95 % CI; fields above) |"),
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        dp = np.nanmean(np.array(r["psnr"]) - np.array(base["psnr"]))
        ds = np.nanmean(np.array(r["ssim"]) - np.array(base["ssim"]))
        rl = "" if name == "Richardson–Lucy" else _paired_text(_paired(r["psnr"], results["Richardson–Lucy"]["psnr"]))
        lines.append(f"| {name} | {cell(r, 'psnr', 2)} | {cell(r, 'ssim', 3)} | {dp:+.2f} | {ds:+.3f} | {rl} |")
    if groups is None:
        learned = [n for n in results if n.startswith("srlab")]
        simulation_only = [n for n in learned if ADAPT_SUFFIX not in n]
        groups = [(simulation_only, "trained on the calibrated simulation only"),
                  (learned if len(learned) > len(simulation_only) else [],
                   "with `srlab adapt` to the unlabelled LR images")]
    # a group chosen on its own (changed) block's simulation says so
    verdicts = [_verdict(results, names, label, own[0], CHOICE_OWN_BLOCK) if own else
                _verdict(results, names, label, selection, also=also) for names, label, *own in groups]
    verdict = "; ".join(v for v in verdicts if v)
    return lines, (f"target (≥ {TARGET_PSNR_DB} dB and ≥ {TARGET_SSIM} SSIM over bicubic, above Richardson–Lucy in "
                   f"both): {verdict}" if verdict else "no srlab model trained")


def _paired(values: list[float], reference: list[float]) -> tuple[float, float, float, int, int]:
    """Per-image differences ``values − reference``: ``(mean, low, high, n above, n)`` (95 % t-interval)."""
    from srlab.metrics.stats import mean_ci

    d = np.array(values) - np.array(reference)
    mean, lo, hi, n = mean_ci(d)
    return mean, lo, hi, int(np.sum(d > 0)), n


def _paired_text(p: tuple[float, float, float, int, int]) -> str:
    mean, lo, hi, above, n = p
    interval = f" ({lo:+.2f} to {hi:+.2f})" if math.isfinite(lo) else ""
    return f"{mean:+.2f}{interval}; {above}/{n}"


def _verdict(results: dict[str, dict[str, list[float]]], names: list[str], label: str,
             selection: dict | None = None, choice: str = CHOICE,
             also: Sequence[tuple[dict, str]] = ()) -> str:
    """The target's verdict on the best (by PSNR) of ``names``, and with ``selection``
    (:func:`simulated_scores`) on the row chosen without the foreign HR (``choice`` says how), then on the
    row each further ``(selection, choice)`` of ``also`` chooses (:data:`HR_CHOICE`); "" without any."""
    if not names:
        return ""
    best = max(names, key=lambda n: np.nanmean(results[n]["psnr"]))  # the target's "best srlab model"
    word, text = _judge(results, best)
    out = f"{label}: **{word}** (best srlab model by PSNR: {text})"
    for chooser, how in ((selection, choice), *also):
        known = [n for n in names if _source(n) in (chooser or {})]
        if not known:
            continue
        source = max(sorted({_source(n) for n in known}), key=lambda s: chooser[s])
        # a group with adapted rows judges the adapted one of the chosen source (its simulation-only row
        # shares the source's score: the user adapts the network they chose); a source not adapted, itself
        of_source = [n for n in known if _source(n) == source]
        chosen = next((n for n in of_source if ADAPT_SUFFIX in n), of_source[0])
        word, text = _judge(results, chosen)
        out += f"; {how}: **{word}** ({text})"
    return out


def choice_table(task: Task, selection: dict[tuple[str, bool, bool], float],
                 block: str = "the calibrated block", trainings: int = 1, *,
                 held_out_hr: bool = False) -> tuple[list[str], str]:
    """The scores :func:`simulated_scores` chose by (``selection``; of ``trainings`` trainings:
    :func:`mean_selection`), as a table and the line saying so; ``held_out_hr``: the scores of
    :func:`held_out_hr_scores` (:data:`HR_CHOICE`)."""
    what = (f"{HR_CHOICE}: mean affine PSNR of each simulation-only row on pairs made of each of the "
            f"{len(task.hr_calibration)} --hr image(s) by the calibrated LR microscope ({HR_CHOICE_DRAWS} noise "
            "draws each), against the image as acquired; a row trained with the --hr images as specimens "
            "scored on each image by its run trained without it" if held_out_hr else
            f"{CHOICE}: mean affine PSNR of each simulation-only row against the noise-free HR of "
            f"{CHOICE_IMAGES} fresh images simulated by {block}")
    return ([f"**{task.title}** — {what}" + (f", averaged over the row's {trainings} trainings" if trainings > 1
                                              else ""), "",
             "| row (experiment, --tta, --hr images as specimens) | PSNR affine (dB) |", "|---|---:|",
             *(f"| {e}, {'tta' if t else 'plain'}, {'with' if h else 'without'} | {v:.2f} |"
               for (e, t, h), v in selection.items())],
            ("the verdicts' last part takes, in each group, the row whose source scores best here" if held_out_hr
             else "the verdicts' second part takes, in each group, the row whose source scores best here"))


#: The verdict's word for a row that meets the target on the means while its per-image PSNR margin over
#: Richardson–Lucy is within the fields' scatter (its 95 % interval holds 0): the issue's "beats" read as a
#: tie there (realcheck's STED row chosen by the foreign scores over three trainings: +0.01 dB, −0.10 to +0.13).
TIE_WORD = "met on the means, a tie with Richardson–Lucy per image"


def _judge(results: dict[str, dict[str, list[float]]], row: str) -> tuple[str, str]:
    """The verdict's word for ``row`` ("met", :data:`TIE_WORD` or "not met"), and the figures that say so."""
    base, rl = results["bicubic"], results["Richardson–Lucy"]
    r = results[row]

    def meets(psnr: list[float], ssim: list[float]) -> tuple[bool, float, float, bool]:
        dp = float(np.nanmean(psnr) - np.nanmean(base["psnr"]))
        ds = float(np.nanmean(ssim) - np.nanmean(base["ssim"]))
        beats_rl = bool(np.nanmean(psnr) > np.nanmean(rl["psnr"]) and np.nanmean(ssim) > np.nanmean(rl["ssim"]))
        return dp >= TARGET_PSNR_DB and ds >= TARGET_SSIM and beats_rl, dp, ds, beats_rl

    met, dp, ds, beats_rl = meets(r["psnr"], r["ssim"])
    model = row.split()[1] + "".join(label for marker, label in (
        (SPECIMENS_MARKER, f" with the {SPECIMENS_MARKER}"), (ADAPT_SUFFIX, f" {ADAPT_SUFFIX}"),
        (HELD_OUT_ROW, " on the other half only"), (OWN_HALF_ROW, " on its own half only"),
        (TTA_SUFFIX, " with --tta")) if marker in row)
    # The target compares means; whether the margin over RL is more than the fields' scatter is said beside it.
    mean, lo, hi, above, n = _paired(r["psnr"], rl["psnr"])
    sure = ("" if not math.isfinite(lo) else ", significant" if lo > 0 or hi < 0 else ", within the fields' scatter")
    word = "not met" if not met else TIE_WORD if math.isfinite(lo) and lo <= 0 else "met"
    return word, (f"{model}, ΔPSNR {dp:+.2f} dB, "
                 f"ΔSSIM {ds:+.3f}, {'above' if beats_rl else 'not above'} Richardson–Lucy in both; per image, PSNR "
                 f"− Richardson–Lucy's {mean:+.2f} dB" + (f" (95 % CI {lo:+.2f} to {hi:+.2f})" if math.isfinite(lo) else "")
                 + f", above on {above} of {n} fields{sure}" + _trainings_text(r, meets))


def _trainings_text(r: dict, meets: Callable) -> str:
    """For a row trained at several seeds (:func:`over_seeds`): how many of the trainings meet the target
    on their own (``meets(psnr, ssim)``), and the sd over trainings of the row's mean PSNR and SSIM."""
    from srlab.metrics.stats import seed_sd

    trainings = r.get(BY_SEED)
    if not trainings or len(trainings["psnr"]) < 2:
        return ""
    alone = sum(meets(p, q)[0] for p, q in zip(trainings["psnr"], trainings["ssim"]))
    return (f"; {alone} of {len(trainings['psnr'])} trainings meet it alone (sd over the trainings "
            f"{seed_sd(trainings['psnr']):.2f} dB, {seed_sd(trainings['ssim']):.3f} SSIM)")


def recovery_table(task: Task, cal) -> list[str]:
    lines = [f"| {task.title}: quantity | foreign truth | `srlab calibrate` | error |", "|---|---:|---:|---:|"]
    for role, side in (("lr", cal.lr), ("hr", cal.hr)):
        if side is None:
            continue
        for key, truth in task.known[role].items():
            est = side.estimates[key]
            err = (est.value - truth) / truth if truth else math.nan
            errs = f"{err:+.0%}" if math.isfinite(err) else f"{est.value - truth:+.3g} (abs.)"
            lines.append(f"| {role.upper()} {key} | {truth:.4g} | {est.text()} | {errs} |")
    return lines


def write_section(path: Path, body: str) -> None:
    from benchmarks.bench_common import write_marked_section

    write_marked_section(path, START, END, body)


def _machine() -> str:
    """The machine and the numerical libraries: the same commit reads differently where floating-point
    paths differ (a different CPU, another NumPy/SciPy), so both go into the header."""
    import scipy
    import torch

    from benchmarks.bench_common import cpu_model

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs (shared), load average {load}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, NumPy {np.__version__}, SciPy {scipy.__version__}")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("pysted", "psfmodels"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="toy sizes and a one-epoch training: a smoke test")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    p.add_argument("--no-train", action="store_true", help="baselines and calibration only (no network)")
    p.add_argument("--no-adapt", action="store_true",
                   help="skip the `srlab adapt` rows (each trained run fine-tuned on the unlabelled test LR images)")
    p.add_argument("--adapt-held-out", action="store_true",
                   help="also adapt each trained run on half of the test fields' LR images, twice (the even-, then "
                        "the odd-numbered fields), and score every field by the run that never saw it and by the "
                        "run of its own half (a table of its own)")
    p.add_argument("--oracle", action="store_true",
                   help="also train each experiment on the foreign test pairs themselves (noise-free HR): the "
                        "upper bound of the network and budget on these data, labelled as such, never the verdict")
    p.add_argument("--choose-on-hr", action="store_true",
                   help="also choose among the simulation-only rows on pairs made of each --hr image held out "
                        "of training (each experiment trained once more per --hr image, without it): a fair "
                        "choice between training with the --hr images as specimens and without")
    p.add_argument("--tta", action="store_true",
                   help="also score every srlab run predicted with the x8 self-ensemble of `srlab predict --tta`")
    p.add_argument("--tasks", nargs="+", default=["confocal_sted", "widefield_sim"],
                   choices=["confocal_sted", "widefield_sim"])
    p.add_argument("--work", default=None, help="working folder (kept); default: a temporary one, removed")
    p.add_argument("--seed", type=int, default=0, help="the foreign pairs' seed (and the networks', unless --train-seed)")
    p.add_argument("--train-seed", type=int, nargs="+", default=None, metavar="N",
                   help="the networks' seed alone (the same foreign pairs and calibration): how far the trained "
                        "rows move from one training to the next; several: every row trained once per seed, "
                        "each image's scores averaged over the trainings and the verdict judged on those "
                        "means, with how many of the trainings meet the target on their own")
    p.add_argument("--patches-per-epoch", type=int, default=1024,
                   help="training budget: edsr_smoke's 6 epochs of this many patches (batch 16)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from srlab.config import EXPERIMENTS_DIR
    from srlab.errors import SrlabError

    missing = [m for m, t in (("pysted", "confocal_sted"), ("psfmodels", "widefield_sim")) if t in args.tasks
               and _missing(m)]
    if missing:
        raise SrlabError(f"{', '.join(missing)} not installed: pip install -e '.[realcheck]' (or make realcheck)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="srlab-realcheck-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["SRLAB_DATA_DIR"] = str(work / "data_cache")  # the calibrated simulation's cache
    exp_root = work / "experiments"  # a copy: the calibrated blocks never land in the repository
    if exp_root.exists():
        shutil.rmtree(exp_root)
    shutil.copytree(EXPERIMENTS_DIR, exp_root)
    if args.quick:
        # held out: adapt needs >= 3 images of this size, the even-numbered of 6
        sizes = {"n_fields": 6 if args.adapt_held_out else 3, "n_hr_calibration": 1, "lr_size_px": 96}
        budget, adapt_budget = [*QUICK_ADAPT_BUDGET, "data.simulation.n_images=4"], QUICK_ADAPT_BUDGET
    else:
        sizes = {"n_fields": 18, "n_hr_calibration": 3, "lr_size_px": 160}
        # edsr_smoke as it is (6 epochs, lr halved every 4) with 4x its patches per epoch by default: 384
        # steps of 16; the budget is the one knob (--patches-per-epoch), never the foreign data
        budget = [f"data.patches_per_epoch={args.patches_per_epoch}"]
        adapt_budget = []  # srlab adapt's own defaults
    started = time.perf_counter()
    from benchmarks.bench_common import git_commit

    # the code that runs is the code at the start (a commit made during the run is not in it)
    report: dict = {"tasks": {}, "work": str(work), "budget": " ".join(budget), "commit": git_commit()}
    train_seeds = [args.seed] if args.train_seed is None else args.train_seed
    try:
        for name in args.tasks:
            t0 = time.perf_counter()
            folder = work / name
            if name == "confocal_sted":
                task = make_sted_pairs(folder, n_fields=sizes["n_fields"], n_hr_calibration=sizes["n_hr_calibration"],
                                       seed=args.seed)
            else:
                task = make_widefield_pairs(folder, n_fields=sizes["n_fields"],
                                            n_hr_calibration=sizes["n_hr_calibration"],
                                            lr_size_px=sizes["lr_size_px"], seed=args.seed)
            print(f"[realcheck] {task.title}: {len(task.pairs)} foreign pairs in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            cal = calibrate_task(task, exp_root)
            per_seed, selections, hr_selections = [], [], []
            for train_seed in train_seeds:
                # one folder per training: a run of one seed never finds another's
                seed_work = work if len(train_seeds) == 1 else work / f"train_seed{train_seed}"
                results, selection, folds, hr_selection = train_and_score(task, cal, exp_root, seed_work, args,
                                                                          budget, adapt_budget, train_seed)
                per_seed.append(results)
                selections.append(selection)
                hr_selections.append(hr_selection)
            results = {ref: over_seeds([r[ref] for r in per_seed]) for ref in per_seed[0]}
            selection = mean_selection(selections)
            hr_selection = mean_selection([s for s in hr_selections if s])
            also = [(hr_selection, HR_CHOICE)] if hr_selection else []
            tables = [results_table(task, split_half_rows(results[ref])[0], ref, selection=selection, also=also)
                      for ref in REFERENCES]
            if folds:
                tables.append(held_out_table(task, results["noise_free"], "noise_free", folds, selection, also))
            if selection:
                tables.append(choice_table(task, selection, trainings=len(train_seeds)))
            if hr_selection:
                tables.append(choice_table(task, hr_selection, trainings=len(train_seeds), held_out_hr=True))
            report["tasks"][name] = {"task": task, "calibration": cal, "results": results, "tables": tables,
                                     "recovery": recovery_table(task, cal)}
            print("\n".join([line for table, verdict in tables for line in (*table, "", verdict, "")]
                            + report["tasks"][name]["recovery"] + [""]), flush=True)
        minutes = (time.perf_counter() - started) / 60
        body = markdown(report, args, minutes)
        report["markdown"] = body
        if not args.no_write:
            write_section(REPO / "BENCHMARKS.md", body)
            print(f"[realcheck] wrote the realcheck block of {REPO / 'BENCHMARKS.md'}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def markdown(report: dict, args: argparse.Namespace, minutes: float) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    extra = (["--quick"] if args.quick else []) + (["--oracle"] if args.oracle else []) + (
        ["--no-adapt"] if args.no_adapt else []) + (["--adapt-held-out"] if args.adapt_held_out else []) + (
        ["--choose-on-hr"] if args.choose_on_hr else []) + (
        ["--tta"] if args.tta else []) + ([f"--seed {args.seed}"] if args.seed else []) + (
        [f"--train-seed {' '.join(map(str, args.train_seed))}"] if args.train_seed is not None else []) + (
        [f"--patches-per-epoch {args.patches_per_epoch}"] if args.patches_per_epoch != 1024 and not args.quick else [])
    cmd = "make realcheck" + (f" ARGS=\"{' '.join(extra)}\"" if extra else "")
    lines = ["## Foreign-simulator check (`make realcheck`)", "",
             f"Measured {stamp} · `{cmd}` (= `benchmarks/realcheck.py`) · {_machine()} · {_versions()} · "
             f"commit {report['commit']} · {minutes:.0f} min in all" + (" · **--quick: a smoke run, not a result**"
                                                                  if args.quick else ""), "",
             ("Test pairs from simulators that are not srlab's (see the docstring of `benchmarks/realcheck.py`): "
             "pySTED (confocal → STED, its bundled datamaps and photon-counting physics) and psfmodels' vectorial "
             "PSF (widefield → SIM, with this script's own specimens, haze and sCMOS camera; SIM = ideal "
             "twice-the-support PSF, the weaker check). `srlab calibrate` measures the foreign LR images (and a "
             "few unpaired foreign HR images of other fields); `edsr_smoke` (EDSR 8×32) and `rl_edsr_smoke` (the same "
             "body as a residual on Richardson–Lucy with the calibrated relative PSF; added after the first "
             "results) train on the calibrated srlab simulation only "
             f"(`{report['budget']}`); bicubic and Richardson–Lucy (PSF √(FWHM_LR² − "
             "FWHM_HR²) from the calibration) are the baselines. Metrics are affine-fitted PSNR/SSIM per image "
             "against the percentile-normalized foreign HR; mean ± 95 % t-interval half-width; Δ = mean paired "
             "difference; the last column is the per-image PSNR difference to Richardson–Lucy with its 95 % "
             "t-interval and the number of fields where the method is above it; a row that meets the target on the means "
             f"while that interval holds 0 is headlined \"{TIE_WORD}\". Nothing was tuned to the foreign data. Each task is scored against two references of "
             "the same fields: the HR without noise (the foreign simulator's expected counts: what the target "
             "microscope resolves; the target is judged here) and the HR as acquired. The acquired STED has "
             "~24 photons at its brightest pixels: its shot noise caps every method — the row *noise-free HR "
             "itself* scores the perfect prediction against it, a ceiling barely above bicubic."), ""]
    if not (args.no_adapt or args.no_train):
        lines += [(f"Rows *{ADAPT_SUFFIX}* are the trained runs after `srlab adapt RUN <the test LR folder>` with its "
                   "defaults (added after the first results): fine-tuned on the foreign LR images themselves, "
                   "unlabelled — no foreign HR is used — with the calibrated forward model and camera (consistency "
                   "of the re-imaged output with the other half of the input's photons, an anchor to the "
                   "simulated pairs, early stopping on held-out LR images). Transductive, as a user adapts to "
                   "the images they want to improve; the verdict is given with and without them. The runs "
                   "trained with the --hr images as specimens are adapted too (since 2026-12-06; before, only the "
                   "plain runs were), so the row chosen on the simulation is judged adapted whichever it is."), ""]
    if args.adapt_held_out and not args.no_train:
        lines += [(f"`--adapt-held-out` (added after the *{ADAPT_SUFFIX}* rows): each trained run is also adapted "
                   "twice on half of the test fields' LR images — the even-numbered fields, then the odd-numbered "
                   "(two folds) — and a third table per task scores every field by the run adapted on the other "
                   "half, which never saw it (*held out*), and by the run adapted on its own half (*own half*: "
                   "transductive, on as few images as the held-out run), beside the transductive "
                   f"*{ADAPT_SUFFIX}* rows (every field's image); the runs trained with the --hr images as specimens are "
                   "adapted on halves too (since 2026-12-06; before, only the plain runs were). Held out against own half tells adapting to a "
                   "microscope (its PSF, camera, specimens) from adapting to the very images that are scored; own "
                   f"half against *{ADAPT_SUFFIX}* tells what adapting on half as many images costs."), ""]
    if not args.no_train:
        lines += [("Rows *with the --hr images as specimens too* train the same experiments on the calibrated block "
                   "as `srlab calibrate --hr-specimens` writes it: its simulation also holds pairs made from the "
                   "few unpaired foreign HR images (`simulation.hr_images`, half of the training pixels, their LR "
                   "made by the calibrated LR microscope: `srlab.data.user_specimens`; added after the results "
                   "that pointed at the specimen prior). Those images show fields that no test pair shows: for "
                   "pySTED, which bundles 6 datamaps per structure, 3 of the 18, so 15 test fields (until this "
                   "option they were transposed copies of 3 test fields, harmless for measuring the PSF, not for "
                   "training)."), ""]
    if args.choose_on_hr and not args.no_train:
        lines += [("`--choose-on-hr` (added after the choice on the calibrated simulation, which scores on srlab's "
                   "own specimens and so favours the runs trained on those alone): each verdict's last part "
                   "judges the row chosen on the --hr images themselves, each held out of training in turn — "
                   "pairs made of it by the calibrated LR microscope as the --hr-specimen pairs are, scored "
                   "against it as acquired; a row trained with the --hr images as specimens is scored on each "
                   "image by the same experiment trained on the other --hr images only (one training more per "
                   "image and experiment). Cross-validation over the user's few HR images; the row judged is the "
                   "one trained on all of them. No foreign test HR is used."), ""]
    if args.train_seed is not None and len(args.train_seed) > 1 and not args.no_train:
        lines += [(f"`--train-seed {' '.join(map(str, args.train_seed))}`: every srlab row is trained once per seed "
                   "(the same foreign pairs and calibration) and each field's scores are averaged over the "
                   "trainings before the means, intervals and verdicts, as `srlab compare` pairs images on their "
                   "seed-averaged scores; [brackets]: the sd over the trainings of the row's mean. The verdict "
                   "judges those means and says how many trainings meet the target alone; the row chosen without "
                   "the foreign HR is the one whose simulation scores are best on average over the trainings."), ""]
    if args.tta and not args.no_train:
        lines += [("Rows *×8 self-ensemble at prediction* (`--tta`) are the same trained runs predicted as "
                   "`srlab predict --tta` does: the mean of the 8 rotations and flips of the input, each output "
                   "turned back (Lim et al. 2017, \"EDSR+\"; added after the first results). The networks are "
                   "unchanged; Richardson–Lucy and bicubic are symmetric already."), ""]
    if args.oracle:
        lines += [("Rows *oracle:* (`--oracle`) train the same experiments, same budget, on the foreign test pairs "
                   "themselves, the noise-free HR as targets (a paired block over them, split by srlab: training "
                   "holds most of the test fields; `rl_edsr_smoke` deconvolves with the calibrated block's relative "
                   "PSF, as in its other rows): the upper bound of the network and budget on these data, not "
                   "a result; the verdict ignores them."), ""]
    for entry in report["tasks"].values():
        for table, verdict in entry["tables"]:
            lines += [*table, "", f"- {verdict}", ""]
    lines += ["### `srlab calibrate` on the foreign images vs the foreign simulators' settings", "",
              ("Target: within 20 %. PSF truth = the FWHM of the foreign simulator's own effective PSF "
              "(pySTED `get_effective`, psfmodels' in-focus plane); calibrate fits a Gaussian. Offset and read "
              "noise come from ten dark frames of each foreign detector (`--dark`, `--hr-dark`: zeros for the "
              "photon counter, the camera's offset and read noise for the sCMOS), as their users would record "
              "them; read noise of a photon counter is 0 (an absolute error is shown). Signal (psfmodels only: "
              "each foreign noise-free image's 99.9th percentile above background is set to it; pySTED's "
              "follows from its physics): `signal_photons` is calibrate's reading of the noisy images, "
              "`signal_expected_photons` the noise-free level the block takes (`srlab.calibration.lift`)."), ""]
    for entry in report["tasks"].values():
        lines += [*entry["recovery"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    from srlab.cli import EXIT_USER_ERROR
    from srlab.errors import SrlabError

    try:
        main()
    except SrlabError as err:
        print(f"realcheck: error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
