"""srlab localize --method gaussfit (no run), ThunderSTORM columns, the rendering and srlab score's inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from srlab.cli import main
from srlab.errors import SrlabError
from srlab.smlm.localizations import Localizations, read_localizations_csv, write_localizations_csv
from srlab.smlm.localize import gaussian_fit_localize, localization_uncertainty_nm, wavelet_levels
from srlab.smlm.score import localization_metrics
from srlab.smlm.simulate import SMLMConfig, simulate_smlm, write_smlm_dataset


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args: str, capsys=None) -> _Result:
    """srlab in this process (a subprocess per call would spend most of the test importing torch)."""
    rc = main(list(args))
    captured = capsys.readouterr()
    return _Result(rc, captured.out, captured.err)

SPARSE = SMLMConfig(height_px=32, width_px=32, structure="uniform", density_per_um2=0.5, psf_sigma_nm=130.0)


def test_wavelet_mle_fitter_finds_sparse_molecules_with_their_precision():
    acq = simulate_smlm(SPARSE, frames=20, seed=2)
    photons = SPARSE.adu_to_photons(acq.stack)
    found = gaussian_fit_localize(photons, pixel_size_nm=100.0, psf_sigma_nm=130.0, threshold=1.0,
                                  detector="wavelet", estimator="mle", excess_noise=2.0)
    scores = localization_metrics(acq.localizations, found, 100.0)
    assert scores.jaccard > 0.7 and scores.precision > 0.9 and scores.rmse_nm < 30.0
    assert np.nanmedian(found.sigma_nm) == pytest.approx(130.0, rel=0.1)
    assert np.all(found.uncertainty_nm > 0) and np.nanmedian(found.uncertainty_nm) < 20.0
    # F2 (spots) is zero on a flat frame; the precision shrinks as 1/sqrt(N).
    f1, f2 = wavelet_levels(np.full((16, 16), 7.0))
    assert np.allclose(f1, 0) and np.allclose(f2, 0)
    a, b = localization_uncertainty_nm(np.array([100.0, 100.0]), np.array([1000.0, 4000.0]), np.zeros(2),
                                       pixel_size_nm=100.0)
    assert a / b == pytest.approx(2.0)


def test_localize_gaussfit_without_a_run_then_score(tmp_path, capsys):
    paths = write_smlm_dataset(tmp_path / "acq", frames=6, seed=1, config=SPARSE)
    out = tmp_path / "out"
    missing = run_cli("localize", "--method", "gaussfit", str(paths.stack), "-o", str(out), capsys=capsys)
    assert missing.returncode == 2 and "--psf-sigma-nm" in missing.stderr and "Traceback" not in missing.stderr
    cam = ["--psf-sigma-nm", "130", "--offset-adu", "100", "--e-per-adu", str(SPARSE.e_per_adu),
           "--em-gain", str(SPARSE.em_gain / SPARSE.quantum_efficiency), "--quiet"]
    proc = run_cli("localize", "--method", "gaussfit", str(paths.stack), "-o", str(out), *cam, capsys=capsys)
    assert proc.returncode == 0, proc.stderr
    assert "frames/s" in proc.stdout
    header = (out / "localizations.csv").read_text().splitlines()[0]
    assert '"uncertainty [nm]"' in header and '"sigma [nm]"' in header
    locs = read_localizations_csv(out / "localizations.csv")
    assert np.all(np.isfinite(locs.uncertainty_nm))
    with tifffile.TiffFile(out / "super_resolved.tif") as tif:
        image = tif.asarray()
    assert image.shape == (320, 320) and image.sum() == pytest.approx(len(locs), rel=0.05)
    scored = run_cli("score", str(paths.ground_truth), str(out / "localizations.csv"), "--json", capsys=capsys)
    scores = json.loads(scored.stdout)
    assert isinstance(scores["tp"], int) and scores["jaccard"] > 0.7
    text = run_cli("score", str(paths.ground_truth), str(out / "localizations.csv"), capsys=capsys)
    assert f"  tp                     {scores['tp']}\n" in text.stdout
    again = run_cli("localize", "--method", "gaussfit", str(paths.stack), "-o", str(out), *cam, capsys=capsys)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_score_reads_xlsx_or_says_to_export_csv(tmp_path, capsys):
    import zipfile

    fake = tmp_path / "gt.xlsx"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        with pytest.raises(SrlabError, match="spreadsheet .XLSX.; export it as CSV"):
            read_localizations_csv(fake)
    else:
        with pytest.raises(SrlabError, match="gt.xlsx"):
            read_localizations_csv(fake)
    proc = run_cli("score", str(fake), str(fake), capsys=capsys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fitter_columns_roundtrip_and_gt_header_unchanged(tmp_path):
    plain = Localizations([0, 1], [10.0, 20.0], [5.0, 6.0], [100.0, 200.0])
    write_localizations_csv(tmp_path / "gt.csv", plain)
    assert (tmp_path / "gt.csv").read_text().splitlines()[0] == '"frame","x [nm]","y [nm]","intensity [photon]"'
    fitted = Localizations([0], [10.0], [5.0], [100.0], [120.0], [3.0], [7.5])
    write_localizations_csv(tmp_path / "fit.csv", fitted)
    back = read_localizations_csv(tmp_path / "fit.csv")
    assert back.sigma_nm[0] == 120.0 and back.background[0] == 3.0 and back.uncertainty_nm[0] == 7.5
    legacy = tmp_path / "ts.csv"
    legacy.write_text('"id","frame","x [nm]","y [nm]","uncertainty_xy [nm]"\n1,1,5,6,9.5\n')
    assert read_localizations_csv(legacy).uncertainty_nm[0] == 9.5
