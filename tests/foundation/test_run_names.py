"""Runs are named by what they trained on: another data block than the experiment's own files the run
under ``runs/<experiment>@<block>/`` with an honest description; compare finds it and resume works."""
from __future__ import annotations

from srlab import cli, experiment
from srlab.compare.plan import find_finished_run
from srlab.config import config_hash, experiment_of, load_experiment, modality_pair
from tests.conftest import TINY
from tests.data.conftest import write_pairs


def test_another_data_block_names_and_describes_the_run():
    own = load_experiment("edsr_sted")
    assert own.name == "edsr_sted" and modality_pair(own) == "confocal -> sted x2"
    assert load_experiment("edsr_sted", ["data=sim_sted"]).name == "edsr_sted"  # its own block, named as before
    other = load_experiment("edsr_sted", ["data=sim_sim"])
    assert other.name == "edsr_sted@sim_sim" and experiment_of(other.name) == "edsr_sted"
    assert other.description.endswith("[trained on data=sim_sim: widefield -> sim x2]")
    assert load_experiment("edsr_sted", ["data=sim_sim", "name=mine"]).name == "mine"


def test_run_on_another_block_is_filed_found_by_compare_and_resumable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "data"))
    pairs = write_pairs(tmp_path / "pairs", n=5, size=32)
    cfg = load_experiment("edsr_smoke", [*TINY, f"runs_dir={tmp_path / 'runs'}", "data=paired",
                                         f"data.path={pairs}"])
    run_dir = experiment.train(cfg)
    out = capsys.readouterr().out
    assert run_dir.parent == tmp_path / "runs" / "edsr_smoke@paired"
    assert f"srlab: edsr_smoke@paired: trained on paired data in {pairs.name} x2" in out
    assert find_finished_run(cfg, config_hash(cfg)) == run_dir

    assert cli.main(["train", "edsr_smoke", f"resume={run_dir}"]) == 0
    assert "has finished" in capsys.readouterr().out
    assert sorted((tmp_path / "runs").iterdir()) == [run_dir.parent]
