"""benchmarks/realcheck.py (the foreign-simulator check) at toy size; skipped without srlab[realcheck]."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from srlab.errors import SrlabError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def realcheck():
    spec = importlib.util.spec_from_file_location("realcheck", ROOT / "benchmarks" / "realcheck.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["realcheck"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("realcheck", None)


def test_missing_simulator_is_one_line(realcheck, monkeypatch, tmp_path):
    monkeypatch.setattr(realcheck, "_missing", lambda name: True)
    with pytest.raises(SrlabError, match=r"pysted, psfmodels not installed: pip install -e '\.\[realcheck\]'"):
        realcheck.main(["--quick", "--no-write", "--work", str(tmp_path)])


def test_widefield_pairs_are_camera_files_with_pixel_sizes(realcheck, tmp_path):
    pytest.importorskip("psfmodels")
    from srlab.data.io import read_tiff

    task = realcheck.make_widefield_pairs(tmp_path, n_fields=2, n_hr_calibration=1, lr_size_px=64, seed=3)
    assert len(task.pairs) == 2 and len(task.hr_calibration) == 1
    lr, _, lr_px = read_tiff(task.pairs[0][0])
    hr, _, hr_px = read_tiff(task.pairs[0][1])
    assert lr.dtype == np.uint16 and hr.dtype == np.uint16
    assert (lr_px, hr_px) == pytest.approx((80.0, 40.0))
    assert hr.shape == (128, 128) and lr.shape == (64, 64)
    assert lr.min() >= 100 - 5 * 1.5 * 2  # the camera offset, minus a few read-noise sigmas
    # ideal linear SIM: the PSF at half the scale, i.e. half the widefield FWHM (≈ 0.51·λ/NA for the widefield)
    wf, sim = task.known["lr"]["psf_fwhm_nm"], task.known["hr"]["psf_fwhm_nm"]
    assert sim == pytest.approx(wf / 2, rel=0.05)
    assert 0.8 * 0.51 * 520 / 1.3 < wf < 1.3 * 0.51 * 520 / 1.3


@pytest.mark.slow
def test_quick_pipeline_prints_the_table(realcheck, tmp_path, monkeypatch, capsys):
    pytest.importorskip("pysted")
    pytest.importorskip("psfmodels")
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    report = realcheck.main(["--quick", "--oracle", "--no-write", "--work", str(tmp_path / "work")])
    out = capsys.readouterr().out
    for name, entry in report["tasks"].items():
        methods = {"bicubic", "Richardson–Lucy", "srlab edsr_smoke (EDSR 8×32)",
                   "srlab rl_edsr_smoke (Richardson–Lucy + EDSR 8×32 residual)",
                   "oracle: edsr_smoke trained on these test pairs (noise-free HR)",
                   "oracle: rl_edsr_smoke trained on these test pairs (noise-free HR)"}
        methods |= {f"{m} +adapt to the test LR images (unlabelled)" for m in methods if m.startswith("srlab")}
        assert set(entry["results"]["noise_free"]) == methods
        assert all("oracle" not in verdict for _, verdict in entry["tables"])  # never the verdict
        # the verdict is given without and with the adapted runs
        assert all("simulation only" in verdict and "with `srlab adapt`" in verdict for _, verdict in entry["tables"])
        for metrics in entry["results"]["noise_free"].values():
            assert len(metrics["psnr"]) == len(metrics["ssim"]) == 3
            assert all(math.isfinite(v) for v in metrics["psnr"] + metrics["ssim"])
        # the photon-transfer fit recovers the foreign detectors' gain (1 for pySTED's counter, 2 ADU/e-)
        cal = entry["calibration"]
        truth = entry["task"].known["lr"]["gain_adu_per_photon"]
        assert cal.lr.estimates["gain_adu_per_photon"].value == pytest.approx(truth, rel=0.2)
        assert (tmp_path / "work" / "experiments" / "data" / f"realcheck_{name}.yaml").is_file()
        assert entry["tables"][0][0][0] in out
    assert "## Foreign-simulator check" in report["markdown"]
    assert not (ROOT / "experiments" / "data" / "realcheck_confocal_sted.yaml").exists()
