"""Where the "isolated spots" are resolved objects, their width is not the PSF's
(srlab.calibration.SPOT_SPECTRUM_MAX_RATIO): srlab's own STED images with enough spots."""
from __future__ import annotations

import pytest
import yaml

from srlab.calibration import SPOT_FIT_METHOD, SPOT_SPECTRUM_MAX_RATIO, calibrate
from srlab.data.io import write_tiff

REPO_DATA = __import__("pathlib").Path(__file__).resolve().parents[2] / "experiments" / "data"


@pytest.mark.parametrize("seed", [4, 5])
def test_sted_puncta_wider_than_the_psf_do_not_set_it(seed, tmp_path):
    from srlab.data.simulate import Imager, resolve_simulation

    prior = yaml.safe_load((REPO_DATA / "sim_sted.yaml").read_text())["simulation"]
    specimens = {k: v for k, v in prior.items() if k not in ("lr", "hr", "n_images", "lr_size_px")}
    spec = resolve_simulation({"lr": {"modality": "sted"}, "hr": {"modality": "sted"}, "n_images": 3,
                               "lr_size_px": 448, "seed": seed, **specimens}, scale=1)
    imager = Imager(spec)
    paths = [write_tiff(tmp_path / f"sted{i}.tif", imager.image(i)["lr"], pixel_size_nm=20.0) for i in range(3)]
    e = calibrate(paths, modality="sted").lr.estimates
    truth = spec.lr.fwhm_nm
    spots, spectrum = e["psf_fwhm_spots_nm"].value, e["psf_fwhm_spectrum_nm"].value
    # these draws hold >= 30 isolated spots, which read the puncta and pits (+91 %, +108 %)...
    assert spots > 1.6 * truth and spots > SPOT_SPECTRUM_MAX_RATIO * spectrum
    # ... so the block takes the spectrum's width, not theirs
    assert not e["psf_fwhm_nm"].method.startswith(SPOT_FIT_METHOD)
    assert "resolved objects" in e["psf_fwhm_nm"].method and "isolated spots read" in e["psf_fwhm_nm"].method
    assert e["psf_fwhm_nm"].value == spectrum
    # The spectrum's is the effective width: these puncta and pits widen it too, less than the spots
    # (seeds 4-7: +12 to +27 %; the spots +78 to +108 %). Until its floor was fitted (resolution module
    # doc) it read +0 to +19 %, only because the gain read 8-9 % low and held the floor low with it: at
    # the true gain's floor it read +16 to +30 %; fitted, +19 to +31 % with that gain, +12 to +27 % since
    # photon counts read their gain (1.00 ± 0.004; noise module doc).
    assert truth < spectrum < 1.35 * truth
    from srlab.calibration.resolution import fit_psf_spectra

    images = [__import__("srlab.data.io", fromlist=["read_tiff"]).read_tiff(p)[0] for p in paths]
    true_floor = fit_psf_spectra(images, [1.0 * im.astype(float) for im in images], camera=False)
    assert spectrum == pytest.approx(true_floor.fwhm_px * 20.0, rel=0.06)
