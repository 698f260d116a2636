"""`srlab calibrate` on undersampled widefield images that srlab did not make (issue 15: calibrate within
20 % on a foreign simulator's images; here the low-magnification case, PSF FWHM ≈ 1 px).

Images: psfmodels' vectorial PSF (Aguet et al., Opt. Express 2009) of a dry objective — 10× NA 0.3 on
650 nm camera pixels, 20× NA 0.75 on 325 nm — over the specimens of ``benchmarks/realcheck.py``
(random-walk filaments, rings, puncta; not srlab's specimen library), integrated over the camera pixel,
with Poisson photons (800 at the 99.9th percentile, 10 background) and this script's sCMOS camera (2 ADU
per electron, read noise 1.5 e⁻, offset 100 ADU). Four fields, and four repeated exposures of the first
(``--gain-frames``). Calibrate is told the offset and nothing else; its PSF, gain and signal are compared
with the truth (the PSF's FWHM along a row, as realcheck measures it). Nothing here was tuned to these
images: they were made after the undersampled-image changes, to check them.

    PYTHONPATH=. python benchmarks/undersampled_check.py   (needs psfmodels: pip install -e ".[realcheck]")
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (label, NA, camera pixel nm, fine grid nm): dry objectives, 520 nm emission, specimen index 1.33
OBJECTIVES = (("10× NA 0.3", 0.3, 650.0, 50.0), ("20× NA 0.75", 0.75, 325.0, 25.0))
SIGNAL_PHOTONS, BACKGROUND_PHOTONS = 800.0, 10.0
GAIN_ADU_PER_E, READ_NOISE_E, OFFSET_ADU = 2.0, 1.5, 100.0


def _psf(na: float, grid_nm: float, n: int = 129) -> np.ndarray:
    import psfmodels

    p = psfmodels.make_psf(np.array([0.0]), n, dxy=grid_nm / 1000, NA=na, wvl=0.52, ns=1.33, ni=1.0, ni0=1.0,
                           pz=0.0)[0]
    return p / p.sum()


def _camera(rng: np.random.Generator, photons: np.ndarray) -> np.ndarray:
    electrons = rng.poisson(photons) + rng.normal(0, READ_NOISE_E, photons.shape)
    return np.clip(np.round(electrons * GAIN_ADU_PER_E + OFFSET_ADU), 0, 2**16 - 1).astype(np.uint16)


def make_images(folder: Path, na: float, px_nm: float, grid_nm: float, *, n_fields: int = 4, n_frames: int = 4,
                size_px: int = 128, seed: int = 1) -> tuple[list[Path], Path, float]:
    """The fields' TIFFs, the repeated frames of the first, and the PSF's true FWHM (nm)."""
    from scipy.signal import fftconvolve

    from benchmarks.realcheck import _bin, draw_specimen, fwhm_of
    from srlab.data.io import write_tiff

    psf = _psf(na, grid_nm)
    k = round(px_nm / grid_nm)
    rng = np.random.default_rng(seed)
    paths, series = [], None
    for f in range(n_fields):
        specimen = draw_specimen(rng, size_px * k, grid_nm, density=4.0)
        clean = _bin(np.clip(fftconvolve(specimen, psf, mode="same"), 0, None), k)
        photons = clean / np.percentile(clean, 99.9) * SIGNAL_PHOTONS + BACKGROUND_PHOTONS
        frames = np.stack([_camera(rng, photons) for _ in range(n_frames if f == 0 else 1)])
        paths.append(write_tiff(folder / "images" / f"field{f}.tif", frames[0], pixel_size_nm=px_nm))
        if f == 0:
            series = write_tiff(folder / "frames" / "series.tif", frames, pixel_size_nm=px_nm)
    return paths, series, fwhm_of(psf, grid_nm)


def main(argv: list[str] | None = None) -> str:
    from srlab.calibration import calibrate

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    rows = ["| objective, pixel | true FWHM | `--gain-frames` | FWHM (error) [method] | gain (2) | signal (800) |",
            "|---|---:|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, na, px, grid in OBJECTIVES:
            folder = Path(tmp) / label.split()[0]
            paths, series, truth = make_images(folder, na, px, grid)
            for frames in (False, True):
                e = calibrate(paths, modality="widefield", offset_adu=OFFSET_ADU,
                              gain_frame_paths=[series] if frames else ()).lr.estimates
                fwhm = e["psf_fwhm_nm"]
                rows.append(f"| {label}, {px:g} nm | {truth:.0f} nm ({truth / px:.2f} px) | {'yes' if frames else 'no'} "
                            f"| {fwhm.text()} ({fwhm.value / truth - 1:+.0%}) [{fwhm.method.split(' (')[0]}] "
                            f"| {e['gain_adu_per_photon'].text()} | {e['signal_photons'].text()} |")
    table = "\n".join(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
