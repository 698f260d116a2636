"""srlab localize (stack -> ThunderSTORM CSV + super-resolved image) and srlab score (CSV vs CSV)."""
from __future__ import annotations

import json

import pytest
import tifffile

from srlab import experiment
from srlab.config import load_experiment
from srlab.smlm.localizations import read_localizations_csv
from srlab.smlm.simulate import SMLMConfig, write_smlm_dataset
from tests.conftest import cli_in_process
from tests.paradigms.test_paradigms_localization_experiment import TINY_SMLM


def test_localize_a_stack_then_score_it(tmp_path):
    run_dir = experiment.train(load_experiment("deepstorm_tubes", [*TINY_SMLM, f"runs_dir={tmp_path / 'runs'}"]))
    paths = write_smlm_dataset(tmp_path / "acq", frames=4, seed=5, config=SMLMConfig(height_px=16, width_px=16))
    out = tmp_path / "loc"
    card = json.loads((run_dir / "network.json").read_text())
    assert card["kind"] == "localization" and card["localization"]["scale"] == 8
    assert card["localization"]["threshold"] > 0

    proc = cli_in_process("localize", str(run_dir), str(paths.stack), "-o", str(out), "--threshold", "0.01")
    assert proc.returncode == 0, proc.stderr
    locs = read_localizations_csv(out / "localizations.csv")
    assert len(locs) == int(proc.stdout.split("srlab: ")[1].split()[0])
    with tifffile.TiffFile(out / "network_density_sum.tif") as tif:  # the raw output, labelled as such
        assert tif.series[0].shape == (128, 128) and tif.is_imagej
        x_res = tif.pages[0].tags["XResolution"].value
        assert abs(x_res[1] / x_res[0] * 1e3 - 12.5) < 1e-3  # 100 nm / 8, in µm per pixel
    with tifffile.TiffFile(out / "super_resolved.tif") as tif:  # the localizations rendered at 10 nm
        assert tif.series[0].shape == (160, 160)
        assert float(tif.asarray().sum()) == pytest.approx(len(locs), rel=0.05, abs=0.5)
    assert "frames/s" in proc.stdout and "not a rendering" in proc.stdout

    again = cli_in_process("localize", str(run_dir), str(paths.stack), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr

    perfect = cli_in_process("score", str(paths.ground_truth), str(paths.ground_truth), "--json")
    assert perfect.returncode == 0, perfect.stderr
    scores = json.loads(perfect.stdout)
    assert scores["jaccard"] == 1.0 and scores["rmse_nm"] == 0.0
    scored = cli_in_process("score", str(paths.ground_truth), str(out / "localizations.csv"), "--json")
    assert scored.returncode == 0 and 0.0 <= json.loads(scored.stdout)["jaccard"] <= 1.0

    not_a_folder = cli_in_process("localize", str(run_dir), str(paths.stack), "-o", str(paths.ground_truth))
    assert not_a_folder.returncode == 2 and "not a folder" in not_a_folder.stderr
    assert "Traceback" not in not_a_folder.stderr

    missing = cli_in_process("score", str(paths.ground_truth), str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "none.csv" in missing.stderr
