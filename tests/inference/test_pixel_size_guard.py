"""srlab predict compares the input's pixel size with the network's training grid (issue 16, item 3)."""
from __future__ import annotations

import numpy as np
import tifffile

from srlab import cli, experiment
from srlab.config import load_experiment
from srlab.data.io import pixel_size_nm
from srlab.inference import load_network


def _tiff(path, nm: float | None):
    image = (np.random.default_rng(0).poisson(200, (40, 44)) + 100).astype(np.uint16)
    if nm is None:
        tifffile.imwrite(path, image)
    else:
        tifffile.imwrite(path, image, imagej=True, resolution=(1e3 / nm, 1e3 / nm), metadata={"unit": "um"})
    return path


def test_mismatched_pixel_size_is_refused_rescaled_or_forced(tiny, tmp_path, capsys):
    run = experiment.train(load_experiment("edsr_smoke", tiny))
    trained = load_network(run)[1].lr_pixel_size_nm
    assert trained  # the simulated data's LR pixel size travels with the network
    wrong = _tiff(tmp_path / "wrong.tif", trained * 1.925)  # e.g. 77 nm against 40 nm
    out = tmp_path / "out.tif"

    assert cli.main(["predict", str(run), str(wrong), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{trained * 1.925:g} nm" in err and f"{trained:g} nm" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()

    assert cli.main(["predict", str(run), str(wrong), "-o", str(out), "--quiet", "--rescale"]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.asarray().shape == (80, 88)  # the input's grid x scale, whatever grid the network saw
        assert abs(pixel_size_nm(tif) - trained * 1.925 / 2) < 1e-3

    forced = tmp_path / "forced.tif"
    assert cli.main(["predict", str(run), str(wrong), "-o", str(forced), "--quiet", "--force"]) == 0
    assert tifffile.imread(forced).shape == (80, 88)

    near = _tiff(tmp_path / "near.tif", trained * 1.05)  # within 10 %: predicted as it is
    assert cli.main(["predict", str(run), str(near), "-o", str(tmp_path / "near_sr.tif"), "--quiet"]) == 0
    bare = _tiff(tmp_path / "bare.tif", None)
    capsys.readouterr()
    assert cli.main(["predict", str(run), str(bare), "-o", str(tmp_path / "bare_sr.tif"), "--quiet"]) == 0
    assert f"assumed the network's training LR pixel size, {trained:g} nm" in capsys.readouterr().err
