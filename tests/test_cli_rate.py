"""``srlab rate RUN IMAGES...``: one line and one CSV row per image; user mistakes are one line, exit 2."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from srlab import experiment
from srlab.cli import main
from srlab.config import load_experiment
from srlab.data.config import QualityDataConfig
from srlab.data.quality import Degradation, QualitySimulation, render_quality_image
from srlab.inference import artifact
from tests.paradigms.test_quality_rating import TINY_QUALITY


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("quality-runs")
    return experiment.train(load_experiment("quality_sted", [*TINY_QUALITY, f"runs_dir={runs}"]))


def _images(folder: Path) -> list[Path]:
    folder.mkdir()
    sim = QualitySimulation.from_config(QualityDataConfig(patch_size=40))
    paths = []
    for i, d in enumerate([Degradation(45.0, 90.0, 0.0, 0.0), Degradation(240.0, 4.0, 0.4, 0.4)]):
        image, _ = render_quality_image(sim, np.random.default_rng(i), d)
        paths.append(folder / f"cell{i}.tif")
        tifffile.imwrite(paths[-1], image.astype(np.uint16))
    stack = np.stack([render_quality_image(sim, np.random.default_rng(9))[0] for _ in range(2)]).astype(np.float32)
    paths.append(folder / "stack.tif")
    tifffile.imwrite(paths[-1], stack, metadata={"axes": "ZYX"}, imagej=True)
    return paths


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srlab: error: ")
    return err[0]


def test_rate_writes_one_row_per_image(quality_run: Path, tmp_path: Path, capsys):
    paths = _images(tmp_path / "images")
    out = tmp_path / "ratings.csv"
    # a folder and a glob naming the same files: each image is rated once
    assert main(["rate", str(quality_run), str(tmp_path / "images"), str(tmp_path / "images" / "cell*.tif"),
                 "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("srlab:")]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(lines) == 4  # two images and the two slices of the stack
    assert [r["image"] for r in rows] == ["cell0", "cell1", "stack[z=0]", "stack[z=1]"]
    assert {Path(r["file"]) for r in rows} == set(paths)
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    # the CSV is never replaced silently
    assert main(["rate", str(quality_run), str(paths[0]), "--out", str(out)]) == 2
    assert "already exists" in _one_error_line(capsys)
    assert main(["rate", str(quality_run), str(paths[0]), "--out", str(out), "--overwrite"]) == 0
    assert len(list(csv.DictReader(out.open()))) == 1


def test_rate_bad_inputs_are_one_line(quality_run: Path, tmp_path: Path, capsys):
    image = _images(tmp_path / "images")[0]
    out = str(tmp_path / "r.csv")
    assert main(["rate", str(tmp_path / "no_run"), str(image), "--out", out]) == 2
    assert "no such run directory" in _one_error_line(capsys)
    # an SR network's artifact is not a rating run
    sr = tmp_path / "sr"
    sr.mkdir()
    card = artifact.NetworkCard(experiment="bicubic_sted", network="bicubic",
                                network_kwargs={"in_channels": 1, "out_channels": 1, "scale": 2}, kind="image",
                                scale=2, channels=1, low_percentile=0.1, high_percentile=99.9, lr_pixel_size_nm=None,
                                hr_pixel_size_nm=None, paradigm="supervised", checkpoint=None, ema=False,
                                config_hash="0")
    artifact.write(sr, {}, card)
    assert main(["rate", str(sr), str(image), "--out", out]) == 2
    assert "not a quality-rating run" in _one_error_line(capsys)
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    assert main(["rate", str(quality_run), str(bad), "--out", out]) == 2
    assert "unreadable" in _one_error_line(capsys)
    tiny = tmp_path / "tiny.tif"
    tifffile.imwrite(tiny, np.ones((2, 3), np.uint16))
    assert main(["rate", str(quality_run), str(tiny), "--out", out]) == 2
    assert "too small" in _one_error_line(capsys)
    assert main(["rate", str(quality_run), str(tmp_path / "missing*.tif"), "--out", out]) == 2
    assert "matches no" in _one_error_line(capsys)
    assert not Path(out).exists()
    # a rating run is not an SR network: predict and export say what to use instead
    assert main(["predict", str(quality_run), str(image), "-o", str(tmp_path / "sr.tif")]) == 2
    assert "srlab rate" in _one_error_line(capsys)
    assert main(["export", str(quality_run), "--format", "torchscript", "-o", str(tmp_path / "n.pt")]) == 2
    assert "srlab rate" in _one_error_line(capsys)
