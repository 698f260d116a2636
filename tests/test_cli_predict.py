"""`srlab predict` from a trained run: shape, pixel size and its guard, refusal to overwrite, several
inputs in one process, OME-TIFF out with per-channel prediction, provenance in the file."""
from __future__ import annotations

import json
import shutil
from xml.etree import ElementTree

import numpy as np
import pytest
import tifffile

from srlab import experiment
from srlab.config import load_experiment
from srlab.data.io import pixel_size_nm
from tests.conftest import TINY, cli_in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny edsr_smoke run (trained on simulated confocal, 40 nm LR pixels) and its LR pixel size."""
    root = tmp_path_factory.mktemp("predict_run")
    run_dir = experiment.train(load_experiment("edsr_smoke", [*TINY, f"runs_dir={root / 'runs'}"]))
    lr_nm = json.loads((run_dir / "network.json").read_text())["lr_pixel_size_nm"]
    assert lr_nm == pytest.approx(40.0)
    return run_dir, lr_nm


def camera(shape, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).poisson(200, shape) + 100).astype(np.uint16)


def write_imagej(path, image, nm: float | None) -> None:
    if nm is None:
        tifffile.imwrite(path, image)
    else:
        tifffile.imwrite(path, image, imagej=True, resolution=(1e3 / nm, 1e3 / nm), metadata={"unit": "um"})


def ome_pixels(path) -> dict:
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        root = ElementTree.fromstring(tif.ome_metadata)
    pixels = next(e for e in root.iter() if e.tag.endswith("}Pixels"))
    image = next(e for e in root.iter() if e.tag.endswith("}Image"))
    description = next((e.text for e in image if e.tag.endswith("}Description")), None)
    channels = [c.attrib.get("Name") for c in pixels if c.tag.endswith("}Channel")]
    return {**pixels.attrib, "channels": channels, "description": description}


def test_predict_writes_imagej_tiff_with_provenance_and_refuses_to_overwrite(trained, tmp_path):
    run_dir, lr_nm = trained
    source = tmp_path / "cells.tif"
    write_imagej(source, camera((75, 90)), lr_nm)
    out = tmp_path / "cells_sr.tif"

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        assert tif.asarray().shape == (150, 180)
        assert abs(pixel_size_nm(tif) - lr_nm / 2) < 1e-3
        provenance = json.loads(tif.imagej_metadata["Info"])
    card = json.loads((run_dir / "network.json").read_text())
    assert provenance["software"].startswith("srlab ") and provenance["model"] == card["network"] == "edsr"
    assert provenance["run"] == str(run_dir.resolve()) and len(provenance["weights_sha256"]) == 64
    assert provenance["checkpoint"] == card["checkpoint"] and provenance["input"] == str(source)
    before = out.read_bytes()

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    assert "overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before


def test_pixel_size_guard_refuses_rescales_or_forces(trained, tmp_path):
    run_dir, lr_nm = trained
    source = tmp_path / "coarse.tif"
    write_imagej(source, camera((40, 48), seed=1), 77.0)
    out = tmp_path / "coarse_sr.tif"

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "77 nm" in lines[0] and f"{lr_nm:g} nm" in lines[0] and "--rescale" in lines[0]
    assert not out.exists()

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", "--rescale", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resampled" in proc.stderr
    with tifffile.TiffFile(out) as tif:  # back on the input's grid, x2
        assert tif.asarray().shape == (80, 96) and abs(pixel_size_nm(tif) - 38.5) < 1e-3
        assert np.isfinite(tif.asarray()).all()

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", "--force", "--overwrite",
                          cwd=tmp_path)
    assert proc.returncode == 0 and "--force" in proc.stderr, proc.stderr[-2000:]

    bare = tmp_path / "bare.tif"
    write_imagej(bare, camera((40, 48), seed=2), None)
    proc = cli_in_process("predict", str(run_dir), str(bare), "-o", str(tmp_path / "bare_sr.tif"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"assuming the run's training LR pixel size, {lr_nm:g} nm" in proc.stderr


def test_several_inputs_folders_and_globs_in_one_process(trained, tmp_path):
    run_dir, lr_nm = trained
    folder = tmp_path / "more"
    folder.mkdir()
    for i, where in enumerate([tmp_path / "a.tif", tmp_path / "b.tif", folder / "c.tif", folder / "d.tif"]):
        write_imagej(where, camera((32, 40), seed=i), lr_nm)
    outdir = tmp_path / "sr"
    proc = cli_in_process("predict", str(run_dir), str(tmp_path / "a.tif"), str(tmp_path / "b*.tif"), str(folder),
                          "-o", f"{outdir}/", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in outdir.iterdir()) == ["a_sr.tif", "b_sr.tif", "c_sr.tif", "d_sr.tif"]
    assert len([line for line in proc.stdout.splitlines() if " -> " in line]) == 4
    with tifffile.TiffFile(outdir / "c_sr.tif") as tif:
        assert tif.asarray().shape == (64, 80)
    stamp = (outdir / "a_sr.tif").stat().st_mtime_ns

    proc = cli_in_process("predict", str(run_dir), str(folder), str(tmp_path / "a.tif"), "-o", str(outdir), "--quiet",
                          cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (outdir / "a_sr.tif").stat().st_mtime_ns == stamp

    both = tmp_path / "both.tif"
    proc = cli_in_process("predict", str(run_dir), str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(both),
                          cwd=tmp_path)
    assert proc.returncode == 2 and "names an output folder" in proc.stderr and not both.exists()

    # a folder (or a quoted pattern) that holds one image still names a set: -o is a folder, not a file named so
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(tmp_path / "a.tif", one / "a.tif")
    for source, out in ((one, tmp_path / "sr_one"), (f"{one}/*.tif", tmp_path / "sr_glob")):
        proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert out.is_dir() and [p.name for p in out.iterdir()] == ["a_sr.tif"]
    proc = cli_in_process("predict", str(run_dir), str(one), "-o", str(both), cwd=tmp_path)
    assert proc.returncode == 2 and "with a folder or pattern of inputs -o names an output folder" in proc.stderr


def test_two_channel_ome_tiff_is_predicted_channel_by_channel(trained, tmp_path):
    run_dir, lr_nm = trained
    image = np.stack([camera((36, 44), seed=3), camera((36, 44), seed=4) // 2])
    source = tmp_path / "two_channel.ome.tif"
    tifffile.imwrite(source, image, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": lr_nm / 1e3, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": lr_nm / 1e3,
        "PhysicalSizeYUnit": "µm", "Channel": {"Name": ["DAPI", "GFP"]}})
    out = tmp_path / "out.ome.tif"
    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "CYX" and tif.series[0].shape == (2, 72, 88)
        both = tif.asarray()
    pixels = ome_pixels(out)
    assert float(pixels["PhysicalSizeX"]) == pytest.approx(lr_nm / 2e3)
    assert float(pixels["PhysicalSizeY"]) == pytest.approx(lr_nm / 2e3)
    assert pixels["PhysicalSizeXUnit"] == "µm" and pixels["channels"] == ["DAPI", "GFP"]
    assert json.loads(pixels["description"])["model"] == "edsr"

    # Each channel went through the one-channel network on its own: the same as asking for it alone.
    second = tmp_path / "gfp.tif"
    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(second), "--channel", "1", "--quiet",
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(tifffile.imread(second), both[1], rtol=1e-5, atol=1e-3)

    proc = cli_in_process("predict", str(run_dir), str(source), "-o", str(tmp_path / "x.tif"), "--channel", "2",
                          cwd=tmp_path)
    assert proc.returncode == 2 and "0..1" in proc.stderr and "Traceback" not in proc.stderr

    # A run trained on channel 1 of the user's files (data.channel, as srlab calibrate --channel 1 writes
    # it) predicts that channel of a multi-channel input by default, and says so.
    assert json.loads((run_dir / "network.json").read_text())["channel"] is None
    run_ch = tmp_path / "run_channel_1"
    shutil.copytree(run_dir, run_ch)
    card = json.loads((run_ch / "network.json").read_text())
    (run_ch / "network.json").write_text(json.dumps({**card, "channel": 1}))
    default = tmp_path / "default.tif"
    proc = cli_in_process("predict", str(run_ch), str(source), "-o", str(default), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "channel 1 of its 2 predicted" in proc.stderr
    np.testing.assert_allclose(tifffile.imread(default), both[1], rtol=1e-5, atol=1e-3)


def test_the_card_records_the_runs_data_channel():
    from srlab.inference.artifact import make_card

    cfg = load_experiment("edsr_smoke", ["data.channel=1"])
    assert make_card(cfg, checkpoint=None, ema=False).channel == 1
    assert make_card(load_experiment("edsr_smoke"), checkpoint=None, ema=False).channel is None


def test_srlab_test_refuses_data_on_another_pixel_grid(trained, tmp_path):
    from srlab.data.io import write_tiff

    run_dir, lr_nm = trained
    for k in range(6):
        hr = camera((64, 64), seed=10 + k)
        write_tiff(tmp_path / "pairs" / "hr" / f"img_{k}.tif", hr, pixel_size_nm=38.5)
        write_tiff(tmp_path / "pairs" / "lr" / f"img_{k}.tif", hr[::2, ::2].copy(), pixel_size_nm=77.0)
    data = ["data.kind=paired", f"data.path={tmp_path / 'pairs'}"]
    proc = cli_in_process("test", str(run_dir), *data, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "77 nm" in lines[0] and f"{lr_nm:g} nm" in lines[0] and "--force" in lines[0]
    assert not (run_dir / "evaluations").exists()

    proc = cli_in_process("test", str(run_dir), *data, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "used as it is (--force)" in proc.stderr and "psnr" in proc.stdout
