"""``srlab evaluate``: every image of a paired folder scored whole, with baselines, CSV, summary and montages;
an empty ground truth is excluded and counted; the output folder is not overwritten by accident."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from srlab import experiment
from srlab.compare.pairs import evaluate_pairs
from srlab.config import load_experiment
from srlab.data.io import read_tiff, write_tiff
from srlab.errors import SrlabError
from tests.conftest import cli_in_process


def _simulate(tmp_path: Path, n: int = 6, size: int = 48) -> Path:
    out = tmp_path / "pairs"
    proc = cli_in_process("simulate", "--pair", "confocal:sted", "--n", str(n), "--size", str(size), "--out", str(out),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_a_run_scores_every_image_whole(tiny, tmp_path):
    run_dir = experiment.train(load_experiment("edsr_smoke", tiny))
    pairs = _simulate(tmp_path)
    out = tmp_path / "report"
    proc = cli_in_process("evaluate", str(run_dir), "--pairs", str(pairs), "--out", str(out), "--device", "cpu",
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out / "per_image.csv")
    methods = {r["method"] for r in rows}
    assert methods == {"edsr_smoke", "bicubic", "richardson_lucy"}
    assert sorted({r["image"] for r in rows}) == [f"sim_{i:04d}" for i in range(6)]
    assert len(rows) == 18 and all(r["psnr"] and r["psnr_plain"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "image" and summary["excluded"] == []
    for label in methods:
        entry = summary["methods"][label]["psnr"]
        assert entry["n"] == 6 and entry["ci_low"] < entry["mean"] < entry["ci_high"]
    assert "CARE convention" in (out / "summary.md").read_text()
    assert sorted(p.name for p in (out / "montages").iterdir()) == [f"sim_{i:04d}.png" for i in range(6)]

    again = cli_in_process("evaluate", str(run_dir), "--pairs", str(pairs), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    wrong = cli_in_process("evaluate", "not_a_run", "--pairs", str(pairs), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert wrong.returncode == 2 and "neither a run directory" in wrong.stderr

    # pairs on another pixel grid than the run's training: scored, but never silently (srlab predict and
    # srlab test refuse such a grid unless told)
    coarse = tmp_path / "coarse"
    for side, px in (("lr", 80.0), ("hr", 40.0)):
        (coarse / side).mkdir(parents=True)
        for f in sorted((pairs / side).glob("*.tif"))[:3]:
            write_tiff(coarse / side / f.name, read_tiff(f)[0], pixel_size_nm=px)
    proc = cli_in_process("evaluate", str(run_dir), "--pairs", str(coarse), "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    note = "edsr_smoke was trained on 40 nm LR pixels, the pairs' LR pixels are 80 nm (100% apart)"
    assert note in proc.stdout + proc.stderr and note in (tmp_path / "c" / "summary.md").read_text()


def test_tta_adds_each_runs_self_ensemble_as_a_row_of_its_own(tiny, tmp_path):
    """``--tta``: every run also scored as ``srlab predict --tta`` predicts it (the mean of the 8 dihedral
    transforms), beside its plain row; the (equivariant) baselines get no such row."""
    import torch

    from srlab.compare.pairs import TTA_SUFFIX
    from srlab.data.normalize import percentile_normalize
    from srlab.inference import load_network
    from srlab.inference.tiling import predict_tiled
    from srlab.metrics.image import image_metrics

    run_dir = experiment.train(load_experiment("edsr_smoke", tiny))
    pairs = _simulate(tmp_path, n=2, size=32)
    out = tmp_path / "report"
    proc = cli_in_process("evaluate", str(run_dir), "--pairs", str(pairs), "--out", str(out), "--tta",
                          "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["method"], r["image"]): r for r in _rows(out / "per_image.csv")}
    ensemble = "edsr_smoke" + TTA_SUFFIX
    assert {m for m, _ in rows} == {"edsr_smoke", ensemble, "bicubic", "richardson_lucy"}
    network, card = load_network(run_dir)
    lr = percentile_normalize(read_tiff(pairs / "lr" / "sim_0001.tif")[0], card.low_percentile,
                              card.high_percentile)[0].astype(np.float32)
    hr = percentile_normalize(read_tiff(pairs / "hr" / "sim_0001.tif")[0])[0].astype(np.float32)
    with torch.inference_mode():
        sr = predict_tiled(network.eval(), lr, scale=2, batch_size=1, tta=True)
    expected = float(image_metrics(torch.from_numpy(sr)[None, None], torch.from_numpy(hr)[None, None])["psnr"][0])
    assert float(rows[(ensemble, "sim_0001")]["psnr"]) == pytest.approx(expected, abs=1e-4)
    assert rows[(ensemble, "sim_0001")]["psnr"] != rows[("edsr_smoke", "sim_0001")]["psnr"]


def test_an_empty_ground_truth_is_excluded_and_counted(tmp_path):
    pairs = _simulate(tmp_path, n=3, size=32)
    clean = evaluate_pairs(["bicubic"], pairs, tmp_path / "clean", montages=False, log=lambda *_: None)
    lr, _, lr_px = read_tiff(pairs / "lr" / "sim_0000.tif")
    hr, _, hr_px = read_tiff(pairs / "hr" / "sim_0000.tif")
    write_tiff(pairs / "lr" / "zz_empty.tif", np.full_like(lr, 3), pixel_size_nm=lr_px)
    write_tiff(pairs / "hr" / "zz_empty.tif", np.full_like(hr, 3), pixel_size_nm=hr_px)
    write_tiff(pairs / "hr_noise_free" / "zz_empty.tif", np.full_like(hr, 3), pixel_size_nm=hr_px)
    with_empty = evaluate_pairs(["bicubic"], pairs, tmp_path / "empty", montages=False, log=lambda *_: None)
    assert with_empty["excluded"] == ["zz_empty"] and clean["excluded"] == []
    for label in ("bicubic", "richardson_lucy"):
        for key in ("psnr", "ssim", "nrmse", "psnr_plain"):
            assert with_empty["methods"][label][key]["mean"] == pytest.approx(clean["methods"][label][key]["mean"])
            assert with_empty["methods"][label][key]["n"] == 3
    rows = [r for r in _rows(tmp_path / "empty" / "per_image.csv") if r["image"] == "zz_empty"]
    assert rows and all(r["excluded"] == "1" and r["psnr"] == "" for r in rows)
    assert "1 excluded" in (tmp_path / "empty" / "summary.md").read_text()


def test_a_folder_s_noise_free_hr_is_scored_too(tmp_path):
    """``srlab simulate`` writes the HR without noise beside the acquired one (``hr_noise_free/``): every method
    is scored against it as well (headline metrics, ``noise_free_*``); a folder without it gets no such keys,
    one with a name missing there a one-line refusal."""
    import torch

    from srlab import models
    from srlab.data.normalize import percentile_normalize
    from srlab.metrics.image import image_metrics

    pairs = _simulate(tmp_path, n=3, size=32)
    report = evaluate_pairs(["bicubic"], pairs, tmp_path / "out", montages=False, log=lambda *_: None)
    rows = {(r["method"], r["image"]): r for r in _rows(tmp_path / "out" / "per_image.csv")}
    lr = percentile_normalize(read_tiff(pairs / "lr" / "sim_0001.tif")[0])[0].astype(np.float32)
    clean = percentile_normalize(read_tiff(pairs / "hr_noise_free" / "sim_0001.tif")[0])[0].astype(np.float32)
    bicubic = models.create("bicubic", in_channels=1, out_channels=1, scale=2)
    with torch.inference_mode():
        sr = bicubic(torch.from_numpy(lr)[None, None])
    expected = image_metrics(sr, torch.from_numpy(clean)[None, None], names=("psnr", "ssim"), plain=False)
    row = rows[("bicubic", "sim_0001")]
    assert float(row["noise_free_psnr"]) == pytest.approx(float(expected["psnr"][0]), abs=1e-3)
    assert float(row["noise_free_ssim"]) == pytest.approx(float(expected["ssim"][0]), abs=1e-4)
    assert float(row["noise_free_psnr"]) != pytest.approx(float(row["psnr"]), abs=1e-3)
    assert report["methods"]["richardson_lucy"]["noise_free_psnr"]["n"] == 3
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "PSNR vs noise-free HR (dB)" in summary
    # the noise-ceiling note (the acquired STED's noise caps its scores) points at the columns
    assert "caps the headline PSNR" in summary and "columns score against the folder's hr_noise_free/" in summary
    plain = tmp_path / "plain"
    for side in ("lr", "hr"):
        shutil.copytree(pairs / side, plain / side)
    shutil.copy(pairs / "simulation.json", plain / "simulation.json")
    report = evaluate_pairs(["bicubic"], plain, tmp_path / "out2", montages=False, log=lambda *_: None)
    assert "noise_free_psnr" not in report["methods"]["bicubic"]
    assert "vs noise-free HR" not in (tmp_path / "out2" / "summary.md").read_text()
    assert "caps the headline PSNR" in (tmp_path / "out2" / "summary.md").read_text()
    (pairs / "hr_noise_free" / "sim_0002.tif").unlink()
    with pytest.raises(SrlabError, match=r"hr_noise_free: no sim_0002.tif for .*must match hr/ by name"):
        evaluate_pairs(["bicubic"], pairs, tmp_path / "out3", montages=False, log=lambda *_: None)
    # checked against its HR: the size, then the pixel size
    raw, _, hr_px = read_tiff(pairs / "hr_noise_free" / "sim_0001.tif")
    write_tiff(pairs / "hr_noise_free" / "sim_0002.tif", raw[:-2, :-2], pixel_size_nm=hr_px)
    with pytest.raises(SrlabError, match=r"hr_noise_free/sim_0002.tif: \(62, 62\) px, but .*sim_0002.tif is \(64, 64\)"):
        evaluate_pairs(["bicubic"], pairs, tmp_path / "out3", montages=False, log=lambda *_: None)
    write_tiff(pairs / "hr_noise_free" / "sim_0002.tif", raw, pixel_size_nm=2 * hr_px)
    with pytest.raises(SrlabError, match=r"hr_noise_free/sim_0002.tif: pixel size .* nm, but .*sim_0002.tif has"):
        evaluate_pairs(["bicubic"], pairs, tmp_path / "out3", montages=False, log=lambda *_: None)


def test_richardson_lucy_needs_a_psf(tmp_path):
    pairs = _simulate(tmp_path, n=3, size=32)
    plain = tmp_path / "plain"
    shutil.copytree(pairs / "lr", plain / "lr")
    shutil.copytree(pairs / "hr", plain / "hr")
    report = evaluate_pairs([], plain, tmp_path / "out", montages=False, log=lambda *_: None)
    assert set(report["methods"]) == {"bicubic"}
    assert any("Richardson–Lucy not run" in note for note in report["notes"])
    report = evaluate_pairs([], plain, tmp_path / "out2", psf_fwhm_nm=210.0, montages=False, log=lambda *_: None)
    assert set(report["methods"]) == {"bicubic", "richardson_lucy"}
    with pytest.raises(SrlabError, match="already exists"):
        evaluate_pairs([], plain, tmp_path / "out2", montages=False, log=lambda *_: None)


def test_a_refusal_on_a_later_image_writes_nothing(tmp_path, monkeypatch):
    """The montages wait until every image is scored: a refusal on the third image leaves no folder behind,
    so the corrected rerun does not ask for --overwrite."""
    from srlab.inference import tiling

    pairs = _simulate(tmp_path, n=3, size=32)
    out = tmp_path / "report"
    calls = {"n": 0}
    real = tiling.predict_tiled

    def refuse_third(network, lr, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # bicubic and Richardson–Lucy of the first image, then the second image's
            raise SrlabError("refused")
        return real(network, lr, **kwargs)

    monkeypatch.setattr(tiling, "predict_tiled", refuse_third)
    with pytest.raises(SrlabError, match="refused"):
        evaluate_pairs(["bicubic"], pairs, out, log=lambda *_: None)
    assert calls["n"] == 3 and not out.exists()
    monkeypatch.setattr(tiling, "predict_tiled", real)
    report = evaluate_pairs(["bicubic"], pairs, out, log=lambda *_: None)
    assert len(report["images"]) == 3 and len(list((out / "montages").iterdir())) == 3


def test_a_simulation_json_of_another_tool_is_not_read_as_srlab_s(tmp_path):
    """A pairs folder's simulation.json that is not srlab's JSON (another tool's, another encoding): no PSF
    from it, and evaluate goes on (Richardson–Lucy is then not run), not a JSONDecodeError."""
    from srlab.compare.pairs import simulated_psf_fwhm_nm

    pairs = _simulate(tmp_path, n=2, size=32)
    assert simulated_psf_fwhm_nm(pairs) is not None
    for text in (b"lr: {fwhm_nm: 250}\n", "# 40 \xb5m\n".encode("latin-1")):
        (pairs / "simulation.json").write_bytes(text)
        assert simulated_psf_fwhm_nm(pairs) is None
    report = evaluate_pairs(["bicubic"], pairs, tmp_path / "out", montages=False, log=lambda *_: None)
    assert set(report["methods"]) == {"bicubic"}
