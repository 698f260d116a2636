"""benchmarks/realcheck.py (the foreign-simulator check) at toy size; skipped without srlab[realcheck]."""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from srlab.errors import SrlabError
from tests.conftest import load_benchmark

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def realcheck():
    yield load_benchmark("realcheck", register=True)
    sys.modules.pop("realcheck", None)


def test_missing_simulator_is_one_line(realcheck, monkeypatch, tmp_path):
    monkeypatch.setattr(realcheck, "_missing", lambda name: True)
    with pytest.raises(SrlabError, match=r"pysted, psfmodels not installed: pip install -e '\.\[realcheck\]'"):
        realcheck.main(["--quick", "--no-write", "--work", str(tmp_path)])


@pytest.fixture(scope="module")
def undersampled_check():
    return load_benchmark("undersampled_check")


def test_undersampled_check_without_psfmodels_is_one_line(undersampled_check, monkeypatch):
    import benchmarks.realcheck  # what the check imports its helpers from (its own path insert)

    monkeypatch.setattr(benchmarks.realcheck, "_missing", lambda name: name == "psfmodels")
    with pytest.raises(SrlabError, match=r"psfmodels not installed: pip install -e '\.\[realcheck\]'"):
        undersampled_check.main(["--pairs", "--quick", "--no-write"])


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


def test_srlab_evaluate_scores_a_check_folder_against_its_noise_free_hr_as_the_check_does(realcheck, tmp_path):
    """The checks write their foreign pairs' HR without noise where srlab's own datasets keep it
    (``hr_noise_free/``), so ``srlab evaluate --pairs <task folder>`` (with ``--work``) scores against it: its
    noise-free columns equal the check's own scoring of the same pairs."""
    pytest.importorskip("psfmodels")
    from srlab.compare.pairs import evaluate_pairs
    from srlab.models.classical import Bicubic

    task = realcheck.make_widefield_pairs(tmp_path, n_fields=3, n_hr_calibration=1, lr_size_px=64, seed=3)
    own = realcheck.score_pairs(task, {"bicubic": realcheck.whole_image(Bicubic(scale=2))})["noise_free"]["bicubic"]
    evaluate_pairs(["bicubic"], task.folder, tmp_path / "evaluated", montages=False, log=lambda *_: None)
    with open(tmp_path / "evaluated" / "per_image.csv", newline="") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh) if r["method"] == "bicubic"}
    assert len(rows) == 3
    for (lr_path, _), psnr, ssim in zip(task.pairs, own["psnr"], own["ssim"]):
        assert float(rows[lr_path.stem]["noise_free_psnr"]) == pytest.approx(psnr, abs=1e-3)
        assert float(rows[lr_path.stem]["noise_free_ssim"]) == pytest.approx(ssim, abs=1e-4)


@pytest.mark.slow
def test_quick_pipeline_prints_the_table(realcheck, tmp_path, monkeypatch, capsys):
    pytest.importorskip("pysted")
    pytest.importorskip("psfmodels")
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    report = realcheck.main(["--quick", "--oracle", "--tta", "--choose-on-hr", "--no-write",
                             "--work", str(tmp_path / "work")])
    out = capsys.readouterr().out
    for name, entry in report["tasks"].items():
        methods = {"bicubic", "Richardson–Lucy", "srlab edsr_smoke (EDSR 8×32)",
                   "srlab rl_edsr_smoke (Richardson–Lucy + EDSR 8×32 residual)",
                   "oracle: edsr_smoke trained on these test pairs (noise-free HR)",
                   "oracle: rl_edsr_smoke trained on these test pairs (noise-free HR)"}
        learned = [m for m in methods if m.startswith("srlab")]
        methods |= {f"{m} +adapt to the test LR images (unlabelled)" for m in learned}
        methods |= {f"{m} with the --hr images as specimens too" for m in learned}
        # the --hr-specimens runs are adapted too
        methods |= {f"{m} with the --hr images as specimens too +adapt to the test LR images (unlabelled)"
                    for m in learned}
        # every srlab run also predicted with the self-ensemble; the oracles are not
        methods |= {m + realcheck.TTA_SUFFIX for m in methods if m.startswith("srlab")}
        assert set(entry["results"]["noise_free"]) == methods
        # the --hr images show no test field (STED: other pySTED datamaps), and the block leaves them out
        # unless asked (--hr-specimens: the rows above)
        shown = {p.stem for p, _ in entry["task"].pairs}
        assert not shown & {p.stem for p in entry["task"].hr_calibration}
        block = (tmp_path / "work" / "experiments" / "data" / f"realcheck_{name}.yaml").read_text()
        assert "hr_images" not in block
        assert all("oracle" not in verdict for _, verdict in entry["tables"])  # never the verdict
        # the verdict is given without and with the adapted runs
        assert all("simulation only" in verdict and "with `srlab adapt`" in verdict for _, verdict in entry["tables"][:2])
        # ... and also for the row chosen on the block's simulated test images, whose scores close the tables
        assert all(verdict.count(realcheck.CHOICE) == 2 for _, verdict in entry["tables"][:2])
        choice_lines, _ = entry["tables"][-2]
        assert realcheck.CHOICE in choice_lines[0] and len(choice_lines) == 4 + 8  # 2 networks × tta × specimens
        # --choose-on-hr: the row chosen on the --hr images held out too (one --hr image here: its run
        # without it is the run without any)
        assert all(verdict.count(realcheck.HR_CHOICE) == 2 for _, verdict in entry["tables"][:2])
        hr_lines, _ = entry["tables"][-1]
        assert realcheck.HR_CHOICE in hr_lines[0] and len(hr_lines) == 4 + 8
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


def test_verdict_states_the_paired_margin_over_richardson_lucy(realcheck):
    """The target compares means; the verdict also says whether the per-image margin over RL is beyond the
    fields' scatter — a row met on the means within it is headlined as a tie — and the table carries that
    margin for every row."""
    rl = [20.0, 22.0, 24.0, 26.0]
    results = {"bicubic": {"psnr": [18.0, 19.0, 21.0, 23.0], "ssim": [0.3] * 4},
               "Richardson–Lucy": {"psnr": rl, "ssim": [0.40] * 4},
               "srlab tie (x)": {"psnr": [20.5, 21.6, 24.4, 25.7], "ssim": [0.55] * 4},
               "srlab win (x)": {"psnr": [x + 0.5 + 0.02 * i for i, x in enumerate(rl)], "ssim": [0.55] * 4}}
    tie = realcheck._verdict(results, ["srlab tie (x)"], "alone")
    # met on the means (the target's words), but no more than a tie per image: the headline says so
    assert f"**{realcheck.TIE_WORD}**" in tie and "**met**" not in tie
    assert "+0.05 dB (95 % CI" in tie and "above on 2 of 4 fields, within the fields' scatter" in tie
    win = realcheck._verdict(results, ["srlab win (x)"], "alone")
    assert "**met**" in win and "+0.53 dB" in win and "above on 4 of 4 fields, significant" in win
    task = realcheck.Task("t", "toy", "confocal", "sted", Path("."))
    lines, _ = realcheck.results_table(task, results, "noise_free")
    assert lines[2].endswith("| ΔPSNR vs Richardson–Lucy, per image (95 % CI; fields above) |")
    row = next(line for line in lines if line.startswith("| srlab win"))
    assert row.endswith("| +0.53 (+0.49 to +0.57); 4/4 |")
    assert next(line for line in lines if line.startswith("| Richardson–Lucy")).endswith("|  |")


def test_verdict_names_how_the_best_row_was_made(realcheck):
    """The verdict's "best srlab model" says which variant won: specimens, adapt, self-ensemble."""
    results = {"bicubic": {"psnr": [18.0, 19.0], "ssim": [0.3, 0.3]},
               "Richardson–Lucy": {"psnr": [20.0, 21.0], "ssim": [0.4, 0.4]},
               "srlab a (x)": {"psnr": [19.9, 20.9], "ssim": [0.5, 0.5]},
               "srlab b (x) with the --hr images as specimens too" + realcheck.TTA_SUFFIX:
                   {"psnr": [20.6, 21.5], "ssim": [0.5, 0.5]}}
    verdict = realcheck._verdict(results, list(results)[2:], "alone")
    assert "best srlab model by PSNR: b with the --hr images as specimens with --tta," in verdict
    assert "best srlab model by PSNR: a," in realcheck._verdict(results, ["srlab a (x)"], "alone")
    # the choice without the foreign HR: the row whose simulation-only source scored best on the block's
    # simulated test images, whatever the foreign pairs say
    selection = {("a", False, False): 30.0, ("b", True, True): 29.0}
    verdict = realcheck._verdict(results, list(results)[2:], "alone", selection)
    # two fields: b's margin over RL (+0.6, +0.5 dB) is no more than a tie per image
    assert verdict.startswith(f"alone: **{realcheck.TIE_WORD}** (best srlab model by PSNR: b with the --hr images "
                              f"as specimens with --tta,")
    assert f"; {realcheck.CHOICE}: **not met** (a, ΔPSNR +1.90 dB" in verdict and "not above Richardson–Lucy" in verdict
    adapted = "srlab a (x) " + realcheck.ADAPT_SUFFIX + " to the test LR images (unlabelled)"
    assert realcheck._source(adapted) == ("a", False, False)  # an adapted row is chosen by its source run
    # in a group with adapted rows, the adapted row of the chosen source is judged, not its plain twin
    results[adapted] = {"psnr": [21.0, 22.0], "ssim": [0.6, 0.6]}
    verdict = realcheck._verdict(results, list(results)[2:], "with adapt", selection)
    assert f"; {realcheck.CHOICE}: **met** (a +adapt, ΔPSNR +3.00 dB" in verdict
    # where the simulation chooses a run trained with the --hr specimens, that run adapted is judged — and,
    # not adapted, the run itself, never the adapted run of another source
    prefers_b = {("a", False, False): 29.0, ("b", True, True): 30.0}
    verdict = realcheck._verdict(results, list(results)[2:], "with adapt", prefers_b)
    assert f"; {realcheck.CHOICE}: **{realcheck.TIE_WORD}** (b with the --hr images as specimens with --tta," in verdict
    row = realcheck.source_row("edsr_smoke" + realcheck.HR_SPECIMENS_SUFFIX + realcheck.ADAPT_SUFFIX)
    assert row == ("srlab edsr_smoke (EDSR 8×32) with the --hr images as specimens too +adapt to the test LR images "
                   "(unlabelled)") and realcheck._source(row) == ("edsr_smoke", False, True)
    results["srlab b (x) with the --hr images as specimens too +adapt to the test LR images (unlabelled)"
            + realcheck.TTA_SUFFIX] = {"psnr": [22.0, 23.0], "ssim": [0.7, 0.7]}
    verdict = realcheck._verdict(results, list(results)[2:], "with adapt", prefers_b)
    assert (f"; {realcheck.CHOICE}: **met** (b with the --hr images as specimens +adapt with --tta, ΔPSNR +4.00 dB"
            in verdict)


def test_the_choice_on_held_out_hr_images_is_a_verdict_of_its_own(realcheck):
    """--choose-on-hr: a second chooser (``also``) is judged after the simulation's, on its own row."""
    results = {"bicubic": {"psnr": [18.0, 19.0], "ssim": [0.3, 0.3]},
               "Richardson–Lucy": {"psnr": [20.0, 21.0], "ssim": [0.4, 0.4]},
               "srlab a (x)": {"psnr": [19.9, 20.9], "ssim": [0.5, 0.5]},
               "srlab a (x) with the --hr images as specimens too": {"psnr": [21.0, 22.0], "ssim": [0.6, 0.6]}}
    on_simulation = {("a", False, False): 30.0, ("a", False, True): 29.0}
    on_hr = {("a", False, False): 25.0, ("a", False, True): 26.0}
    verdict = realcheck._verdict(results, list(results)[2:], "alone", on_simulation,
                                 also=[(on_hr, realcheck.HR_CHOICE)])
    simulated, held_out = verdict.split(f"; {realcheck.HR_CHOICE}: ")
    assert f"{realcheck.CHOICE}: **not met** (a, " in simulated
    assert held_out.startswith("**met** (a with the --hr images as specimens, ΔPSNR +3.00 dB")
    task = SimpleNamespace(title="t", pairs=[None, None], hr_calibration=[Path("a.tif"), Path("b.tif")])
    _, table_verdict = realcheck.results_table(task, results, "noise_free", selection=on_simulation,
                                               also=[(on_hr, realcheck.HR_CHOICE)])
    assert table_verdict.count(realcheck.HR_CHOICE) == 1
    lines, note = realcheck.choice_table(task, on_hr, held_out_hr=True)
    assert realcheck.HR_CHOICE in lines[0] and "each of the 2 --hr image(s)" in lines[0]
    assert "| a, plain, with | 26.00 |" in lines and "last part" in note


def test_held_out_hr_scores_take_the_run_that_did_not_see_the_image(realcheck, tmp_path, monkeypatch):
    """held_out_hr_scores: every --hr image is scored by the rows trained without the specimens as they
    are, and by a row trained with them through its run trained without that image."""
    import shutil

    import tifffile
    import torch

    from srlab.config import EXPERIMENTS_DIR
    from srlab.models.classical import Bicubic

    class Flat(torch.nn.Module):  # a network that resolves nothing
        def forward(self, x):
            return torch.nn.functional.interpolate(x.mean((-2, -1), keepdim=True), scale_factor=2 * x.shape[-1])

    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    exp_root = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS_DIR, exp_root)
    block = (exp_root / "data" / "sim_smoke.yaml").read_text().replace("lr_size_px: 96", "lr_size_px: 32")
    (exp_root / "data" / "realcheck_t.yaml").write_text(block)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        spots = np.zeros((64, 64))
        spots[rng.integers(0, 64, 60), rng.integers(0, 64, 60)] = 20000.0
        from scipy.ndimage import gaussian_filter

        paths.append(tmp_path / f"hr{k}.tif")
        tifffile.imwrite(paths[-1], rng.poisson(gaussian_filter(spots, 3.0) + 10.0).astype(np.uint16))
    task = realcheck.Task("t", "t", "confocal", "sted", tmp_path, hr_calibration=paths)
    pairs = realcheck.held_out_hr_pairs(task, exp_root, 1)
    assert len(pairs) == realcheck.HR_CHOICE_DRAWS and pairs[0][1].shape == (64, 64) and pairs[0][0].shape == (32, 32)
    assert not np.array_equal(pairs[0][0], pairs[1][0])  # independent noise draws
    with_specimens = "srlab edsr_smoke (x) with the --hr images as specimens too"
    methods = {"bicubic": Bicubic(scale=2), "srlab edsr_smoke (x)": Bicubic(scale=2), with_specimens: Bicubic(scale=2),
               "srlab edsr_smoke (x) +adapt to the test LR images (unlabelled)": Bicubic(scale=2)}
    # the run trained with every --hr image is never scored: each image by the run trained without it
    scores = realcheck.held_out_hr_scores(task, exp_root, methods, {0: {"edsr_smoke": Flat()},
                                                                    1: {"edsr_smoke": Flat()}})
    assert set(scores) == {("edsr_smoke", False, False), ("edsr_smoke", False, True)}
    assert scores[("edsr_smoke", False, True)] < scores[("edsr_smoke", False, False)] - 1.0
    same = realcheck.held_out_hr_scores(task, exp_root, methods, {0: {"edsr_smoke": Bicubic(scale=2)},
                                                                  1: {"edsr_smoke": Bicubic(scale=2)}})
    assert same[("edsr_smoke", False, True)] == pytest.approx(same[("edsr_smoke", False, False)])
    assert same[("edsr_smoke", False, False)] == pytest.approx(scores[("edsr_smoke", False, False)])
    assert realcheck.hr_specimens_data(task, leave_out=0) == (f"data.simulation.hr_images=[{paths[1]}]",)


def test_a_group_trained_on_a_changed_block_is_chosen_by_its_own_simulation(realcheck):
    """results_table: a group (rows, label, selection) — runs of a variant block — is chosen by the scores
    on that block's simulation; the other groups by the table's selection."""
    results = {"bicubic": {"psnr": [18.0, 19.0], "ssim": [0.3, 0.3]},
               "Richardson–Lucy": {"psnr": [20.0, 21.0], "ssim": [0.4, 0.4]},
               "srlab a (x)": {"psnr": [19.9, 20.9], "ssim": [0.5, 0.5]},
               "srlab b (x)": {"psnr": [20.6, 21.5], "ssim": [0.5, 0.5]},
               "srlab a (x) on the block with k=1": {"psnr": [19.9, 20.9], "ssim": [0.5, 0.5]},
               "srlab b (x) on the block with k=1": {"psnr": [20.6, 21.5], "ssim": [0.5, 0.5]}}
    base = {("a", False, False): 30.0, ("b", False, False): 29.0}  # the block as written prefers a
    changed = {("a", False, False): 28.0, ("b", False, False): 29.5}  # its variant prefers b
    task = SimpleNamespace(title="t", pairs=[None, None])
    _, verdict = realcheck.results_table(
        task, results, "noise_free", selection=base,
        groups=[(["srlab a (x)", "srlab b (x)"], "as written"),
                (["srlab a (x) on the block with k=1", "srlab b (x) on the block with k=1"], "changed", changed)])
    as_written, on_variant = verdict.split("; changed: ")
    assert f"{realcheck.CHOICE}: **not met** (a, " in as_written
    assert f"chosen on that block's simulation's noise-free HR (no foreign HR): **{realcheck.TIE_WORD}** (b, " in on_variant
    lines, note = realcheck.choice_table(task, changed, "the block with k=1")
    assert "fresh images simulated by the block with k=1" in lines[0] and "| b, plain, without | 29.50 |" in lines
    assert "best here" in note


def test_simulated_scores_simulate_the_block_the_runs_were_trained_on(realcheck, tmp_path, monkeypatch):
    """simulated_scores: the fresh images come from the calibrated block, or from the block as a variant
    changed it (``data``): a run of a variant is chosen on what it was trained to match."""
    import shutil

    from srlab.config import EXPERIMENTS_DIR
    from srlab.models.classical import Bicubic

    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    exp_root = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS_DIR, exp_root)
    block = (exp_root / "data" / "sim_smoke.yaml").read_text().replace("lr_size_px: 96", "lr_size_px: 32")
    (exp_root / "data" / "realcheck_t.yaml").write_text(block)
    task = realcheck.Task("t", "t", "confocal", "sted", tmp_path)
    methods = {"bicubic": Bicubic(scale=2), "srlab edsr_smoke (x)": Bicubic(scale=2),
               "srlab edsr_smoke (x)" + realcheck.TTA_SUFFIX: Bicubic(scale=2)}
    scores = realcheck.simulated_scores(task, exp_root, methods)
    assert set(scores) == {("edsr_smoke", False, False), ("edsr_smoke", True, False)}  # the srlab rows only
    assert all(math.isfinite(v) for v in scores.values())
    # sharper LR images (a narrower confocal PSF) in the variant: bicubic scores higher on them
    sharper = realcheck.simulated_scores(task, exp_root, methods, ("data.simulation.lr.psf_fwhm_nm=120",))
    assert sharper[("edsr_smoke", False, False)] > scores[("edsr_smoke", False, False)] + 0.5


def test_undersampled_variant_outside_the_data_block_is_refused_before_anything_runs(undersampled_check):
    """A --variant key that is not data.<key> (the block's) is one line at once, not an error after the
    first trainings."""
    with pytest.raises(SrlabError, match=r"--variant simulation.hr_target=acquired: .*data.<key>=<value>"):
        undersampled_check.main(["--pairs", "--no-write", "--variant", "simulation.hr_target=acquired"])


def test_undersampled_pairs_share_their_fields(undersampled_check, tmp_path):
    """benchmarks/undersampled_check.py --pairs: 10× and 20× images of the same fields on one camera."""
    pytest.importorskip("psfmodels")
    from srlab.data.io import read_tiff

    task = undersampled_check.make_pairs(tmp_path, n_fields=2, n_hr_calibration=1, lr_size_px=32, seed=3)
    assert len(task.pairs) == 2 and len(task.hr_calibration) == 1 and task.dark and task.hr_dark
    lr, _, lr_px = read_tiff(task.pairs[0][0])
    clean, _, hr_px = read_tiff(task.clean_hr[0])
    assert (lr_px, hr_px) == pytest.approx((650.0, 325.0)) and clean.shape == (64, 64) and lr.shape == (32, 32)
    # the same field: the noise-free 20× image, binned 2×2 onto the 10× grid, follows the 10× image
    binned = clean.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    other, _, _ = read_tiff(task.clean_hr[1])
    same = np.corrcoef(binned.ravel(), lr.astype(float).ravel())[0, 1]
    assert same > 0.8 and same > np.corrcoef(other.reshape(32, 2, 32, 2).mean(axis=(1, 3)).ravel(),
                                             lr.astype(float).ravel())[0, 1] + 0.5
    for side in ("lr", "hr"):  # the repeated exposures --gain-frames takes: four frames of one still field
        frames, _, _ = read_tiff(tmp_path / "frames" / f"{side}_series.tif")
        assert frames.shape[0] == 4 and frames.dtype == np.uint16
    assert task.known["lr"]["psf_fwhm_nm"] / 650 < 1.5 and task.known["hr"]["psf_fwhm_nm"] / 325 < 1.5  # undersampled


def test_oracle_keeps_the_calibrated_relative_psf(realcheck, tmp_path):
    """The oracle trains on a paired block, which implies no PSF: a network that deconvolves must keep the
    calibrated block's relative blur, or the oracle is another network than the rows it bounds."""
    import shutil

    from srlab.build import network_kwargs
    from srlab.config import EXPERIMENTS_DIR, load_experiment
    from srlab.data.physics import relative_blur

    exp_root = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS_DIR, exp_root)
    shutil.copy(exp_root / "data" / "sim_sted.yaml", exp_root / "data" / "realcheck_toy.yaml")
    task = realcheck.Task("toy", "toy", "confocal", "sted", tmp_path / "pairs")
    blur = relative_blur(load_experiment("rl_edsr_smoke", ["data=realcheck_toy"], root=exp_root).data)
    overrides = realcheck.oracle_data(task, exp_root, "rl_edsr_smoke")
    assert overrides[0] == "data=paired"
    oracle = network_kwargs(load_experiment("rl_edsr_smoke", list(overrides), root=exp_root))
    assert oracle["psf_fwhm_nm"] == pytest.approx(blur.fwhm_nm, abs=0.01)
    assert oracle["pixel_size_nm"] == pytest.approx(blur.lr_pixel_size_nm)
    assert not any(o.startswith("model.") for o in realcheck.oracle_data(task, exp_root, "edsr_smoke"))


def test_held_out_adaptation_scores_each_field_by_the_run_that_did_not_see_it(realcheck, tmp_path):
    """--adapt-held-out: runs adapted on the even- and on the odd-numbered fields' LR images; every field is
    scored by the other half's run (held out) and by its own half's (transductive on half the images), with a
    verdict per way of adapting."""
    task = realcheck.Task("toy", "toy", "confocal", "sted", tmp_path / "pairs")
    for k in range(5):
        (tmp_path / "pairs" / "lr").mkdir(parents=True, exist_ok=True)
        lr = tmp_path / "pairs" / "lr" / f"field{k:02d}.tif"
        lr.write_bytes(bytes([k]))
        task.pairs.append((lr, tmp_path / f"hr{k}.tif"))
    calibration_field = tmp_path / "calibration.tif"  # not a test field: in both folds, scored in neither
    calibration_field.write_bytes(b"c")
    split = realcheck.held_out_split(task, shared=(calibration_field,))
    assert sorted(p.name for p in split["even"][0].iterdir()) == ["calibration.tif", "field00.tif", "field02.tif",
                                                                  "field04.tif"]
    assert sorted(p.name for p in split["odd"][0].iterdir()) == ["calibration.tif", "field01.tif", "field03.tif"]
    folds = {fold: indices for fold, (_, indices) in split.items()}
    assert folds == {"even": [0, 2, 4], "odd": [1, 3]}
    assert all(folder.parent == task.folder for folder, _ in split.values())  # beside lr/, not inside it

    def row(psnr: list[float], ssim: float) -> dict[str, list[float]]:
        return {"psnr": psnr, "ssim": [ssim] * len(psnr)}

    base = "srlab b (x)"
    results = {"bicubic": row([10, 11, 12, 13, 14], 0.1), "Richardson–Lucy": row([11, 12, 13, 14, 15], 0.2),
               base: row([12, 13, 14, 15, 16], 0.15),
               f"{base} {realcheck.ADAPT_SUFFIX} to the test LR images (unlabelled)": row([20, 20, 20, 20, 20], 0.4),
               # each fold's run: 30 on the fields it saw, 15 on the others
               f"{base} {realcheck.fold_row('even')}": row([30, 15, 30, 15, 30], 0.35),
               f"{base} {realcheck.fold_row('odd')}": row([15, 30, 15, 30, 15], 0.35)}
    crossed = realcheck.cross_adapted(results, folds)
    held, own = f"{base} {realcheck.HELD_OUT_ROW}", f"{base} {realcheck.OWN_HALF_ROW}"
    assert crossed[held]["psnr"] == [15] * 5 and crossed[own]["psnr"] == [30] * 5
    assert not any("-numbered" in r for r in crossed) and list(crossed)[:4] == list(results)[:4]
    assert realcheck.HALF_MARKER in held and realcheck.HALF_MARKER in own  # the main tables leave both out
    others, half = realcheck.split_half_rows(crossed)  # what the main tables take, and what they leave out
    assert set(half) == {held, own} and list(others) == list(results)[:4]

    lines, verdict = realcheck.held_out_table(task, crossed, "noise_free", folds)
    assert lines[0].startswith("**toy** — all 5 test fields, adapted on half of them (alternate fields in the "
                               "pairs' order: field00, field02, field04; or field01, field03),")
    assert not any(line.startswith(f"| {base} |") for line in lines)  # adapted rows only, beside the baselines
    held_line = next(line for line in lines if line.startswith(f"| {held} |"))
    assert held_line.split("|")[2].strip().startswith("15.00")
    parts = verdict.split("; with `srlab adapt`")
    assert len(parts) == 3 and "every test field's LR image (transductive): **met**" in parts[0]
    assert "(transductive, half the images): **met**" in parts[1] and "b +adapt on its own half only," in parts[1]
    assert "(held out): **met**" in parts[2] and "b +adapt on the other half only" in parts[2]
    assert "ΔPSNR +3.00 dB" in parts[2]
    # an adapted run without half-adapted twins (stormcheck's and the 10x check's --hr runs): not in this table
    trained_with = f"{base} with the --hr images as specimens too"
    specimens = f"{trained_with} {realcheck.ADAPT_SUFFIX} to the test LR images (unlabelled)"
    lines, _ = realcheck.held_out_table(task, {**crossed, specimens: row([40] * 5, 0.9)}, "noise_free", folds)
    assert not any("as specimens" in line for line in lines)
    # realcheck adapts its --hr runs on halves too: their rows, composed as the plain run's, are in the table
    twins = {f"{trained_with} {realcheck.fold_row('even')}": row([35, 18, 35, 18, 35], 0.5),
             f"{trained_with} {realcheck.fold_row('odd')}": row([18, 35, 18, 35, 18], 0.5)}
    crossed = realcheck.cross_adapted({**results, specimens: row([40] * 5, 0.9), **twins}, folds)
    assert crossed[f"{trained_with} {realcheck.HELD_OUT_ROW}"]["psnr"] == [18] * 5
    lines, verdict = realcheck.held_out_table(task, crossed, "noise_free", folds)
    shown = [line.split("|")[1].strip() for line in lines if line.startswith("| srlab")]
    assert shown == [f"{base} {realcheck.ADAPT_SUFFIX} to the test LR images (unlabelled)", specimens, own,
                     f"{trained_with} {realcheck.OWN_HALF_ROW}", held, f"{trained_with} {realcheck.HELD_OUT_ROW}"]
    assert "ΔPSNR +6.00 dB" in verdict.split("; with `srlab adapt`")[2]  # the --hr run held out: 18 vs RL's 12


def test_every_given_run_is_adapted_on_each_half(realcheck, tmp_path):
    """adapt_halves adapts the runs it is given (realcheck: every simulation-only run, the --hr-specimens
    ones too), else the plain runs of EXPERIMENTS (stormcheck), once per fold, each on its fold's folder."""
    task = realcheck.Task("toy", "toy", "confocal", "sted", tmp_path / "pairs")
    (tmp_path / "pairs" / "lr").mkdir(parents=True)
    for k in range(4):
        lr = tmp_path / "pairs" / "lr" / f"field{k:02d}.tif"
        lr.write_bytes(bytes([k]))
        task.pairs.append((lr, tmp_path / f"hr{k}.tif"))
    names = [*realcheck.EXPERIMENTS, *(e + realcheck.HR_SPECIMENS_SUFFIX for e in realcheck.EXPERIMENTS)]
    calls: list[tuple[str, str, str]] = []

    def adapt(run: Path, folder: Path, fold: str) -> Path:
        calls.append((run.name, folder.name, fold))
        return tmp_path / f"{run.name}_{fold}"

    run_dirs = {name: tmp_path / name for name in names}
    folds = realcheck.adapt_halves(task, run_dirs, adapt, sources=tuple(names))
    assert folds == {"even": [0, 2], "odd": [1, 3]}
    assert calls == [(name, f"lr_{fold}_fields", fold) for fold in realcheck.HALF_FOLDS for name in names]
    assert run_dirs[names[-1] + realcheck.HELD_OUT_SUFFIX + "odd"] == tmp_path / f"{names[-1]}_odd"
    calls.clear()
    realcheck.adapt_halves(task, {name: tmp_path / name for name in names}, adapt)
    assert [name for name, _, _ in calls] == [*realcheck.EXPERIMENTS] * 2


def test_several_training_seeds_are_judged_on_their_per_image_means(realcheck):
    """--train-seed N N ...: each image's scores averaged over the trainings (the baselines, which do not
    train, unchanged); the table shows the sd over the trainings of a row's mean, and the verdict judges the
    averaged means and counts the trainings that meet the target alone."""
    base = {"bicubic": {"psnr": [18.0, 19.0], "ssim": [0.30, 0.30]},
            "Richardson–Lucy": {"psnr": [20.0, 21.0], "ssim": [0.40, 0.40]}}
    row = "srlab a (x)"
    # ΔPSNR over bicubic: +2.5 and +1.0 dB (1.5 on average); SSIM 0.45 / 0.50 (above RL both times)
    trainings = [{**base, row: {"psnr": [20.5, 21.5], "ssim": [0.45, 0.45]}},
                 {**base, row: {"psnr": [19.0, 20.0], "ssim": [0.50, 0.50]}}]
    merged = realcheck.over_seeds(trainings)
    assert merged[row]["psnr"] == [19.75, 20.75] and merged[row]["ssim"] == pytest.approx([0.475, 0.475])
    assert merged["bicubic"] == base["bicubic"]  # no sd for what does not train
    assert realcheck.over_seeds(trainings[:1]) is trainings[0]
    verdict = realcheck._verdict(merged, [row], "alone")
    # the mean is 1.75 dB over bicubic but below RL (19.75 / 20.75 against 20 / 21): not met, though the
    # first training alone meets it (the second is below bicubic + 1.5)
    assert "**not met**" in verdict and "ΔPSNR +1.75 dB" in verdict
    assert "1 of 2 trainings meet it alone (sd over the trainings 1.06 dB, 0.035 SSIM)" in verdict
    trainings[1][row] = {"psnr": [20.1, 21.1], "ssim": [0.50, 0.50]}
    assert "**met**" in realcheck._verdict(realcheck.over_seeds(trainings), [row], "alone")
    assert "2 of 2 trainings meet it alone" in realcheck._verdict(realcheck.over_seeds(trainings), [row], "alone")
    task = realcheck.Task("t", "toy", "confocal", "sted", Path("."))
    lines, _ = realcheck.results_table(task, realcheck.over_seeds(trainings), "noise_free")
    assert "every srlab row trained 2 times" in lines[0]
    assert next(line for line in lines if line.startswith(f"| {row}")).startswith(f"| {row} | 20.80 ± 6.35 [0.28] |")
    assert next(line for line in lines if line.startswith("| bicubic")).startswith("| bicubic | 18.50 ± 6.35 |")
    # the choice without the foreign HR: each configuration's simulation score averaged over the trainings
    assert realcheck.mean_selection([{("a", False, False): 30.0}, {("a", False, False): 29.0}]) == {
        ("a", False, False): 29.5}
    with pytest.raises(ValueError):
        realcheck.over_seeds([trainings[0], base])


def test_bulat_check_trains_the_control_on_simulated_lr_and_the_other_on_the_foreign_lr(tmp_path, capsys):
    """benchmarks/bulat_check.py at toy size: both bulat runs train on the calibrated block as unpaired data,
    one with the foreign LR folder as its real LR, the other without; every row scores every field."""
    pytest.importorskip("pysted")
    from omegaconf import OmegaConf

    bulat_check = load_benchmark("bulat_check")
    report = bulat_check.main(["--quick", "--tasks", "confocal_sted", "--work", str(tmp_path / "work"),
                               "--hr-target", "auto", "noise_free", "--set", "paradigm.scheduler.name=cosine"])
    entry = report["confocal_sted"]
    configs = {row: OmegaConf.load(run / "config.yaml") for row, run in entry["runs"].items()}
    # --set reaches the bulat runs alone
    assert {row for row, c in configs.items() if c.paradigm.scheduler.name == "cosine"} == \
        set(entry["runs"]) - {bulat_check.REFERENCE_ROW}
    foreign_lr = entry["task"].folder / "lr"
    assert configs[bulat_check.REAL_LR_ROW].data.real_lr == str(foreign_lr)
    assert configs[bulat_check.SIMULATED_LR_ROW].data.real_lr is None
    for row in (bulat_check.REAL_LR_ROW, bulat_check.SIMULATED_LR_ROW):
        assert configs[row].data.kind == "unpaired" and configs[row].paradigm.name == "degradation_gan"
        assert configs[row].data.simulation == configs[bulat_check.REFERENCE_ROW].data.simulation
    copies = {row + bulat_check.COPY_SUFFIX for row in entry["runs"] if row != bulat_check.REFERENCE_ROW}
    assert len(copies) == 4  # two LR sides, two hr_targets
    assert set(entry["results"]) == {"bicubic", "Richardson–Lucy", *entry["runs"], *copies}
    # the copy is the checkpoint's baseline_network, not the run's network again
    assert (entry["results"][bulat_check.REAL_LR_ROW]["psnr"]
            != entry["results"][bulat_check.REAL_LR_ROW + bulat_check.COPY_SUFFIX]["psnr"])
    for metrics in entry["results"].values():
        assert len(metrics["psnr"]) == len(entry["task"].pairs) == 3
        assert all(math.isfinite(v) for v in metrics["psnr"] + metrics["ssim"])
    noise_free = bulat_check.target_suffix("noise_free")
    assert configs[bulat_check.REAL_LR_ROW + noise_free].data.simulation.hr_target == "noise_free"
    # every network is also scored on fresh images of the block (the choice a user can make), and per LR side
    # the hr_target that choice picks is named
    assert set(entry["simulated"]) == set(entry["results"]) - {"bicubic", "Richardson–Lucy"}
    assert all(math.isfinite(v) for v in entry["simulated"].values())
    printed = capsys.readouterr().out
    assert "What the foreign LR images buy" in printed
    assert printed.count("the simulation picks hr_target") == 2 * 2  # the tables, then all of them again
