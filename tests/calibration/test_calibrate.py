"""``srlab calibrate`` against images of known parameters (srlab's simulator), and its refusals."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from srlab.cli import main
from srlab.data.io import write_tiff

REPO = Path(__file__).resolve().parents[2]
# What the images are simulated with: widefield on an sCMOS camera, 80 nm pixels.
FWHM_NM, E_PER_ADU, READ_NOISE_E, OFFSET_ADU = 250.0, 0.5, 2.0, 100.0
GAIN = 1.0 / E_PER_ADU  # ADU per photon
READ_NOISE_ADU = READ_NOISE_E * GAIN


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory) -> Path:
    """Four 192² 16-bit TIFFs with their pixel size, as a camera writes them."""
    from srlab.data.simulate import Imager, resolve_simulation

    lr = {"modality": "widefield", "psf_fwhm_nm": FWHM_NM, "e_per_adu": E_PER_ADU, "read_noise_e": READ_NOISE_E,
          "offset_adu": OFFSET_ADU, "signal_photons": 300.0, "background_photons": 5.0}
    spec = resolve_simulation({"lr": lr, "hr": {"modality": "sim"}, "n_images": 4, "lr_size_px": 192, "seed": 3},
                              scale=2)
    imager = Imager(spec)
    folder = tmp_path_factory.mktemp("real")
    for i in range(4):
        image = imager.image(i)["lr"]
        assert image.dtype == np.uint16
        write_tiff(folder / f"cell{i}.tif", image, pixel_size_nm=80.0)
    return folder


def _run(*args: str) -> int:
    return main(["calibrate", *map(str, args)])


def test_recovers_fwhm_gain_and_read_noise_of_simulated_images(real_folder: Path, tmp_path: Path, capsys):
    from srlab.calibration import calibrate

    cal = calibrate(sorted(real_folder.glob("*.tif")), modality="widefield", offset_adu=OFFSET_ADU)
    e = cal.lr.estimates
    assert e["psf_fwhm_nm"].value == pytest.approx(FWHM_NM, rel=0.10)
    assert e["gain_adu_per_photon"].value == pytest.approx(GAIN, rel=0.15)
    assert e["read_noise_adu"].value == pytest.approx(READ_NOISE_ADU, rel=0.20)
    for est in e.values():  # every estimate states an uncertainty
        assert np.isfinite(est.uncertainty) and est.uncertainty >= 0
    # Without the offset, the darkest level stands in for it: an upper bound on offset and read noise.
    blind = calibrate(sorted(real_folder.glob("*.tif")), modality="widefield").lr
    assert blind.estimates["offset_adu"].value >= OFFSET_ADU
    assert blind.estimates["read_noise_adu"].value >= 0.9 * READ_NOISE_ADU
    assert blind.estimates["gain_adu_per_photon"].value == e["gain_adu_per_photon"].value


def test_cli_writes_a_block_that_simulates_and_validates(real_folder: Path, tmp_path: Path, capsys):
    from srlab import build
    from srlab.config import load_experiment
    from srlab.data.simulate import resolve_simulation

    root = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", root)
    out = root / "data" / "mycal.yaml"
    assert _run(*sorted(real_folder.glob("*.tif")), "--out", out, "--offset-adu", OFFSET_ADU) == 0
    printed = capsys.readouterr().out
    assert "PSF FWHM" in printed and "read noise" in printed and str(out) in printed
    assert out.with_suffix(".png").stat().st_size > 10_000
    text = out.read_text()
    assert text.startswith("# Written by `srlab calibrate`") and "cell0.tif" in text
    block = yaml.safe_load(text)
    lr = block["simulation"]["lr"]
    assert lr["psf_fwhm_nm"] == pytest.approx(FWHM_NM, rel=0.10)
    assert lr["e_per_adu"] == pytest.approx(E_PER_ADU, rel=0.15)
    assert lr["read_noise_e"] == pytest.approx(READ_NOISE_E, rel=0.25)
    cfg = load_experiment("edsr_sted", ["data=mycal"], root=root)  # what `srlab show edsr_sted data=mycal` loads
    build.validate(cfg)
    spec = resolve_simulation(cfg.data.simulation, scale=cfg.data.scale)
    assert spec.lr.fwhm_nm == lr["psf_fwhm_nm"] and spec.hr.modality == "sim"
    # Never overwrites silently.
    assert _run(*sorted(real_folder.glob("*.tif")), "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == text


def _noisy(seed: int = 0, shape=(96, 96)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    signal = 200 * np.exp(-((yy - 48) ** 2 + (xx - 40) ** 2) / 50.0) + 20
    return (rng.poisson(signal) * 2 + 100).astype(np.uint16)


@pytest.mark.parametrize("case", ["no_pixel_size", "saturated", "empty", "mixed_pixel_sizes"])
def test_bad_input_is_one_line_exit_2(case: str, tmp_path: Path, capsys):
    files = []
    if case == "no_pixel_size":
        files.append(write_tiff(tmp_path / "a.tif", _noisy(), pixel_size_nm=None))
        expect = "--pixel-size-nm"
    elif case == "saturated":
        image = _noisy()
        image[30:60, 30:60] = 65535
        files.append(write_tiff(tmp_path / "a.tif", image, pixel_size_nm=80.0))
        expect = "saturated"
    elif case == "empty":
        files.append(write_tiff(tmp_path / "a.tif", np.full((96, 96), 100, np.uint16), pixel_size_nm=80.0))
        expect = "empty"
    else:
        files.append(write_tiff(tmp_path / "a.tif", _noisy(0), pixel_size_nm=80.0))
        files.append(write_tiff(tmp_path / "b.tif", _noisy(1), pixel_size_nm=65.0))
        expect = "mixed pixel sizes"
    assert _run(*files, "--out", tmp_path / "cal.yaml") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "cal.yaml").exists()


def test_spot_fit_psf_on_isolated_pits(tmp_path: Path, capsys):
    """Issue 15: the PSF from fits of isolated bright spots, beside the spectrum's, used when there are enough
    (clathrin-coated pits, 80–180 nm: the spots are the PSF widened by a few %)."""
    from srlab.calibration import calibrate
    from srlab.calibration.spots import MIN_SPOTS
    from srlab.data.simulate import Imager, resolve_simulation

    fwhm = 300.0
    lr = {"modality": "widefield", "psf_fwhm_nm": fwhm, "e_per_adu": E_PER_ADU, "read_noise_e": READ_NOISE_E,
          "offset_adu": OFFSET_ADU, "signal_photons": 300.0, "background_photons": 5.0}
    spec = resolve_simulation({"lr": lr, "hr": {"modality": "sim"}, "n_images": 6, "lr_size_px": 160, "seed": 3,
                               "structures": ["ccps"]}, scale=2)
    imager = Imager(spec)
    files = [write_tiff(tmp_path / f"pits{i}.tif", imager.image(i)["lr"], pixel_size_nm=80.0) for i in range(6)]
    e = calibrate(files, offset_adu=OFFSET_ADU).lr.estimates
    spots = e["psf_fwhm_spots_nm"]
    assert spots.value == pytest.approx(fwhm, rel=0.10) and 0 < spots.uncertainty < 0.05 * fwhm
    assert int(spots.method.split()[3]) >= MIN_SPOTS  # "median FWHM of <n> isolated bright spots ..."
    assert e["psf_fwhm_nm"].value == spots.value and "spot" in e["psf_fwhm_nm"].method
    assert e["psf_fwhm_spectrum_nm"].value == pytest.approx(fwhm, rel=0.10)
