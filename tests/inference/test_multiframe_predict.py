"""srlab train / predict with a multi-frame run: a T-stack in, one HR image out; mismatches refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from srlab import experiment
from srlab.cli import main
from srlab.config import load_experiment

SMALL = ["profile=quick", "data.simulation.n_images=4", "data.simulation.lr_size_px=24", "data.eval_crop_size=16",
         "data.patch_size=12", "logger.wandb.enabled=false", "trainer.enable_progress_bar=false"]


def test_multiframe_run_predicts_one_image_from_a_stack(tmp_path: Path, capsys) -> None:
    run = experiment.train(load_experiment("tsai_huang_wf20x", [*SMALL, f"runs_dir={tmp_path / 'runs'}"]))
    assert np.isfinite(json.loads((run / "metrics.json").read_text())["test/psnr"])
    assert json.loads((run / "network.json").read_text())["frames"] == 4
    stack = next(tmp_path.glob("data/sim-*-t4-*/lr/sim_0000.tif"))
    out = tmp_path / "sr.tif"
    assert main(["predict", str(run), str(stack), "-o", str(out), "--quiet"]) == 0
    assert tifffile.imread(out).shape == (48, 48)  # one HR image of the 24 x 24 px field, x2
    # a stack padded with zeros (as drift correction leaves it): a note, the padding kept in the output
    with tifffile.TiffFile(stack) as tif:
        frames, resolution = tif.asarray(), tif.pages[0].tags["XResolution"].value
    padded = np.zeros((frames.shape[0], 44, 44), frames.dtype)
    padded[:, 20:, :24] = frames
    tifffile.imwrite(tmp_path / "padded.tif", padded, imagej=True, metadata={"axes": "TYX", "unit": "um"},
                     resolution=(resolution[0] / resolution[1],) * 2)
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "padded.tif"), "-o", str(tmp_path / "padded_sr.tif"),
                 "--quiet"]) == 0
    assert capsys.readouterr().err.count("fill of value 0") == 1
    sr = tifffile.imread(tmp_path / "padded_sr.tif")
    assert (sr[:40] == 0).all() and (sr[:, 48:] == 0).all() and np.isfinite(sr).all() and sr[40:, :48].min() > 0
    # one image for a multi-frame run: one line, exit 2, nothing written
    single = next(tmp_path.glob("data/sim-*-t4-*/hr/sim_0000.tif"))
    capsys.readouterr()
    assert main(["predict", str(run), str(single), "-o", str(tmp_path / "no.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes a stack of 4 frames" in err[0] and not (tmp_path / "no.tif").exists()
    # the stack as its own output, even with --overwrite: refused, the user's stack untouched (the
    # single-image path refused it; the multi-frame one replaced the stack with its prediction)
    before = (tmp_path / "padded.tif").read_bytes()
    assert main(["predict", str(run), str(tmp_path / "padded.tif"), "-o", str(tmp_path / "padded.tif"),
                 "--overwrite"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert (tmp_path / "padded.tif").read_bytes() == before


def test_multiframe_model_on_single_images_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    assert main(["train", "tsai_huang_sted", "data=sim_sted", f"runs_dir={tmp_path / 'runs'}"]) == 2
    expected = ("srlab: error: model 'tsai_huang' needs T frames of one field (data.kind: multiframe), but "
                "data.kind=simulated serves single images (paired data)")
    assert capsys.readouterr().err.strip().splitlines() == [expected]
    assert not (tmp_path / "runs").exists()
