"""The trained network as an artifact (network.pt + network.json) and the one loader that reads it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from srlab import cli, experiment, runs
from srlab.config import config_hash, load_experiment, load_resolved
from srlab.inference import load_network
from srlab.inference.artifact import NetworkCard
from tests.conftest import TINY


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny edsr_smoke run that keeps EMA weights (seconds on CPU)."""
    root = tmp_path_factory.mktemp("artifact")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRLAB_DATA_DIR", str(root / "data"))
        mp.chdir(root)
        cfg = load_experiment("edsr_smoke", [*TINY, f"runs_dir={root / 'runs'}", "paradigm.ema_decay=0.5",
                                             "trainer.max_epochs=2"])
        return experiment.train(cfg)


def _image(folder: Path) -> Path:
    image = (np.random.default_rng(0).poisson(200, (40, 36)) + 100).astype(np.uint16)
    path = folder / "cells.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(25.0, 25.0), metadata={"unit": "um"})  # 40 nm, as trained
    return path


def _predict(run: Path | str, source: Path, out: Path, *options: str) -> np.ndarray:
    status = cli.main(["predict", str(run), str(source), "-o", str(out), "--quiet", "--device", "cpu", *options])
    assert status == 0
    return tifffile.imread(out)


def test_a_finished_run_writes_its_network_and_card(ema_run):
    metrics = json.loads((ema_run / "metrics.json").read_text())
    card = json.loads((ema_run / "network.json").read_text())
    assert card["network"] == "edsr" and card["kind"] == "image" and card["paradigm"] == "supervised"
    assert card["checkpoint"] == metrics["checkpoint"] == "best.ckpt"
    assert card["scale"] == 2 and card["channels"] == 1 and card["ema"] is True
    assert card["network_kwargs"]["num_blocks"] == 1 and card["network_kwargs"]["features"] == 8
    cfg = load_resolved(ema_run / "config.yaml")
    assert (card["low_percentile"], card["high_percentile"]) == (cfg.data.low_percentile, cfg.data.high_percentile)
    assert card["config_hash"] == config_hash(cfg)
    data = json.loads((ema_run / "data.json").read_text())
    assert card["lr_pixel_size_nm"] == pytest.approx(data["lr_pixel_size_nm"])
    assert card["hr_pixel_size_nm"] == pytest.approx(data["hr_pixel_size_nm"])

    weights = torch.load(ema_run / "network.pt", weights_only=True)
    state = runs.load_checkpoint(ema_run / "checkpoints" / "best.ckpt")["state_dict"]
    ema = {k.removeprefix("ema.module."): v for k, v in state.items() if k.startswith("ema.module.")}
    assert weights.keys() == ema.keys()
    assert all(torch.equal(weights[k], ema[k]) for k in ema)
    raw = {k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")}
    assert any(not torch.equal(weights[k], raw[k]) for k in raw)  # the EMA weights, not the raw ones


def test_predict_needs_only_network_pt_and_its_card(ema_run, tmp_path):
    source = _image(tmp_path)
    before = _predict(ema_run, source, tmp_path / "run.tif")
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("network.pt", "network.json"):
        shutil.copy(ema_run / name, alone / name)
    assert np.array_equal(_predict(alone / "network.pt", source, tmp_path / "pt.tif"), before)

    run = Path(shutil.copytree(ema_run, tmp_path / "run"))
    shutil.rmtree(run / "checkpoints")
    assert np.array_equal(_predict(run, source, tmp_path / "no_ckpt.tif"), before)


def test_a_run_without_artifact_loads_from_config_and_checkpoint(ema_run, tmp_path):
    source = _image(tmp_path)
    before = _predict(ema_run, source, tmp_path / "run.tif")
    old = Path(shutil.copytree(ema_run, tmp_path / "old"))
    (old / "network.pt").unlink()
    (old / "network.json").unlink()
    assert np.array_equal(_predict(old, source, tmp_path / "old.tif"), before)
    network, card = load_network(old)
    assert card.checkpoint == "best.ckpt" and card.ema and isinstance(card, NetworkCard)
    assert not network.training


def test_checkpoint_last_rebuilds_from_last_ckpt(ema_run, tmp_path, capsys):
    network, card = load_network(ema_run, "last")
    assert card.checkpoint == "last.ckpt"
    state = runs.load_checkpoint(ema_run / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(v, state[f"ema.module.{k}"]) for k, v in network.state_dict().items())

    run = Path(shutil.copytree(ema_run, tmp_path / "run"))
    shutil.rmtree(run / "checkpoints")
    status = cli.main(["predict", str(run), str(_image(tmp_path)), "-o", str(tmp_path / "x.tif"), "--quiet",
                       "--checkpoint", "last"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "no checkpoints/last.ckpt" in err


def test_srlab_test_takes_the_checkpoint_asked_for(ema_run, tmp_path):
    run = Path(shutil.copytree(ema_run, tmp_path / "run"))
    best = experiment.test(str(run), [])
    last = experiment.test(str(run), [], checkpoint="last")
    assert best["checkpoint"].endswith("best.ckpt") and last["checkpoint"].endswith("last.ckpt")
    assert best["test/psnr"] == pytest.approx(json.loads((run / "metrics.json").read_text())["test/psnr"])


def test_srlab_test_takes_checkpoint_before_or_after_the_overrides(ema_run, tmp_path, capsys):
    run = Path(shutil.copytree(ema_run, tmp_path / "run"))
    assert cli.main(["test", str(run), "--checkpoint", "last", "trainer.limit_test_batches=1"]) == 0
    assert cli.main(["test", str(run), "trainer.limit_test_batches=1", "--checkpoint", "last"]) == 0
    saved = [json.loads(p.read_text()) for p in sorted((run / "evaluations").glob("*.json"))]
    assert [s["checkpoint"].endswith("last.ckpt") for s in saved] == [True, True]
    assert [s["overrides"] for s in saved] == [["trainer.limit_test_batches=1"]] * 2


@pytest.mark.parametrize("overrides, message", [
    (["data=smlm_tubes"], "data.kind=smlm (localization data): paradigm 'supervised' is evaluated on SR image data"),
    (["data=sim_sted_multiscale", "--force"], "model 'edsr' has one upsampler"),
    (["data.scale=4", "--force"], "data.scale=4: 'edsr_smoke' was trained at x2"),
    (["data=sim_sted_multiframe", "--force"], "model 'edsr' takes single images"),
])
def test_srlab_test_on_data_the_network_cannot_take_is_one_line(ema_run, capsys, overrides, message):
    """Test data of another task, scale or kind: one line before anything is built (they were a TypeError
    in the test step, or "does not match the run's config" from the state dict)."""
    before = sorted((ema_run / "evaluations").glob("*.json"))
    status = cli.main(["test", str(ema_run), *overrides])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err
    assert sorted((ema_run / "evaluations").glob("*.json")) == before  # nothing written


@pytest.mark.parametrize("text, message", [("[1, 2]", "not a JSON object"), ('{"network": "edsr"}', "missing"),
                                           ("{not json", "cannot be read as a network card")])
def test_a_broken_card_is_a_one_line_error(ema_run, tmp_path, capsys, text, message):
    folder = tmp_path / "artifact"
    folder.mkdir()
    shutil.copy(ema_run / "network.pt", folder / "network.pt")
    (folder / "network.json").write_text(text)
    status = cli.main(["predict", str(folder / "network.pt"), str(_image(tmp_path)), "-o", str(tmp_path / "x.tif"),
                       "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("edit, message", [({"low_percentile": 99.9, "high_percentile": 0.1}, "0 <= low < high <= 100"),
                                           ({"high_percentile": "99.9"}, "0 <= low < high <= 100"),
                                           ({"scale": 0}, "scale=0: need a whole number >= 1")])
def test_a_hand_edited_card_is_a_one_line_error(ema_run, tmp_path, capsys, edit, message):
    """Values a card cannot hold (it raised numpy's ValueError from the normalization, or built a network
    of scale 0) are named with the file."""
    folder = tmp_path / "artifact"
    folder.mkdir()
    shutil.copy(ema_run / "network.pt", folder / "network.pt")
    card = json.loads((ema_run / "network.json").read_text())
    (folder / "network.json").write_text(json.dumps({**card, **edit}))
    status = cli.main(["predict", str(folder / "network.pt"), str(_image(tmp_path)), "-o", str(tmp_path / "x.tif"),
                       "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err and "network.json" in err
