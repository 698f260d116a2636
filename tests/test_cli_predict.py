"""`srlab predict` from a trained run: shape, pixel size, and refusal to overwrite."""
from __future__ import annotations

import numpy as np
import tifffile

from srlab import experiment
from srlab.config import load_experiment
from srlab.data.io import pixel_size_nm
from tests.conftest import run_cli


def test_predict_writes_imagej_tiff_and_refuses_to_overwrite(tiny, tmp_path):
    run_dir = experiment.train(load_experiment("edsr_smoke", tiny))
    image = (np.random.default_rng(0).poisson(200, (75, 90)) + 100).astype(np.uint16)
    source = tmp_path / "cells.tif"
    # 100 nm pixels, unlike the training data's: --force predicts on this grid (tests/inference covers the guard)
    tifffile.imwrite(source, image, imagej=True, resolution=(10.0, 10.0), metadata={"unit": "um"})
    out = tmp_path / "cells_sr.tif"

    proc = run_cli("predict", str(run_dir), str(source), "-o", str(out), "--quiet", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        assert tif.asarray().shape == (150, 180)
        assert abs(pixel_size_nm(tif) - 50.0) < 1e-3
    before = out.read_bytes()

    proc = run_cli("predict", str(run_dir), str(source), "-o", str(out), "--quiet", "--force", cwd=tmp_path)
    assert proc.returncode == 2
    assert "overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
