"""Config composition, validation and the CLI's handling of user mistakes."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from srlab.config import config_hash, list_experiments, load_experiment
from srlab.errors import SrlabError
from tests.conftest import cli_in_process, run_cli


def test_defaults_are_composed_and_overridden():
    cfg = load_experiment("edsr_smoke", ["trainer.max_epochs=3", "data.batch_size=8"])
    assert cfg.model.name == "edsr" and cfg.paradigm.name == "supervised"
    assert cfg.trainer.max_epochs == 3 and cfg.data.batch_size == 8
    assert cfg.name == "edsr_smoke"


def test_double_dash_overrides_are_accepted():
    cfg = load_experiment("edsr_smoke", ["--trainer.max_epochs=2"])
    assert cfg.trainer.max_epochs == 2


def test_group_swap_replaces_a_default_block():
    cfg = load_experiment("edsr_smoke", ["model=srcnn"])
    assert cfg.model.name == "srcnn"


@pytest.mark.parametrize("override, named", [
    ("trainer.max_epoch=1", "trainer.max_epoch"),
    ("trainer.max_epochs=many", "trainer.max_epochs"),
    ("data.batchsize=3", "data.batchsize"),
    ("model=edsx", "edsx"),
])
def test_bad_override_names_the_key(override, named):
    with pytest.raises(SrlabError, match=named.replace(".", r"\.")):
        load_experiment("edsr_smoke", [override])


def test_unknown_experiment_suggests_the_closest():
    with pytest.raises(SrlabError, match="did you mean 'edsr_smoke'"):
        load_experiment("edsr_smok")


def test_config_hash_ignores_bookkeeping_but_not_settings():
    a = load_experiment("edsr_smoke")
    b = load_experiment("edsr_smoke", ["runs_dir=elsewhere", "trainer.enable_progress_bar=false"])
    c = load_experiment("edsr_smoke", ["seed=1"])
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_misspelt_key_exits_2_with_one_line():
    proc = run_cli("train", "edsr_smoke", "trainer.max_epoch=1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "max_epoch" in lines[0] and "Traceback" not in proc.stderr


def test_show_and_list():
    proc = cli_in_process("show", "edsr_smoke", "trainer.max_epochs=7")
    assert proc.returncode == 0, proc.stderr
    shown = OmegaConf.create(proc.stdout)
    assert shown.trainer.max_epochs == 7 and shown.model.name == "edsr"
    proc = cli_in_process("list")
    assert proc.returncode == 0, proc.stderr
    for name in list_experiments():
        assert name in proc.stdout
    from srlab.models import NETWORKS

    models = proc.stdout.split("Models (model.name=...):")[1].splitlines()
    for name in NETWORKS.names():  # every registered network, with its paper and the inputs it takes
        card = NETWORKS.entry(name).card
        (line,) = [ln for ln in models if ln.split()[:1] == [name]]
        assert line.rstrip().endswith(card.paper) and f" {','.join(card.inputs)} " in line, line


def test_experiment_can_extend_another(tmp_path):
    """A variant names its base experiment in defaults and changes only what differs."""
    dense = load_experiment("deepstorm_tubes_dense", ["profile=quick"])
    base = load_experiment("deepstorm_tubes", ["profile=quick"])
    assert dense.name == "deepstorm_tubes_dense"
    assert dense.data.simulation.density_per_um2 == 3.0
    assert base.data.simulation.density_per_um2 == 1.0
    assert dense.model == base.model and dense.data.simulation.height_px == 32  # profile inherited
    swapped = load_experiment("deepstorm_tubes_dense", ["model=deepulm"])
    assert swapped.model.name == "deepulm" and swapped.data.simulation.density_per_um2 == 3.0
    (tmp_path / "a.yaml").write_text("defaults: [b]\n")
    (tmp_path / "b.yaml").write_text("defaults: [a]\n")
    with pytest.raises(SrlabError, match="cycle"):
        load_experiment("a", root=tmp_path)


def test_network_scale_must_agree_with_the_data():
    from srlab import build

    cfg = load_experiment("edsr_smoke", ["model.params.scale=3"])
    with pytest.raises(SrlabError, match=r"model\.params\.scale=3 disagrees with data\.scale=2"):
        build.build_network(cfg)


def test_a_data_block_holds_only_the_keys_its_kind_uses(capsys):
    """data.kind selects the block's schema (a discriminated union): SMLM data shows and takes none of
    the image kinds' keys (issue 14)."""
    from srlab import cli

    assert cli.main(["show", "deepstorm_tubes", "data.path=/nope"]) == 2
    err = capsys.readouterr().err
    assert "'data.path'" in err and "SMLMDataConfig" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["show", "deepstorm_tubes"]) == 0
    shown = capsys.readouterr().out
    assert "train_frames" in shown and "degradation" not in shown and "eval_crop_size" not in shown
    assert cli.main(["show", "edsr_smoke", "data.degradation.photons=3"]) == 2  # only kind degrade takes it
    assert "data.degradation" in capsys.readouterr().err
    assert cli.main(["show", "rfganm_sted", "data.degradation.photons=3"]) == 0
    # the kind switched on the command line takes its schema's keys (it was a merge error of the two
    # schemas' types)
    assert cli.main(["show", "edsr_smoke", "data.kind=degrade", "data.degradation.photons=3"]) == 0
    assert "photons: 3" in capsys.readouterr().out
    # only what the experiment's files wrote carries to the new kind, not its old schema's defaults: the
    # refusal names the written key and the way out, not a default the user never set (was 'data.path')
    assert cli.main(["show", "edsr_smoke", "data.kind=smlm"]) == 2
    err = capsys.readouterr().err
    assert "data.kind=smlm on edsr_smoke.yaml's data block" in err and "'data.patches_per_epoch'" in err
    assert "data=<block>" in err and len(err.strip().splitlines()) == 1


def test_a_data_block_file_anywhere_is_taken_by_its_path(tmp_path, monkeypatch, capsys):
    """data=<path>.yaml: a block kept beside the user's data (srlab calibrate --out anywhere) needs no
    copy into experiments/data/; the run is named by the file's stem, and the calibrate summary names the
    block as the command line will take it."""
    from pathlib import Path

    from srlab import cli
    from srlab.config import EXPERIMENTS_DIR, apply_overrides, data_reference

    block = tmp_path / "cal" / "mycal.yaml"
    block.parent.mkdir()
    block.write_text((EXPERIMENTS_DIR / "data" / "sim_smoke.yaml").read_text().replace("n_images: 16", "n_images: 5"))
    cfg = load_experiment("edsr_smoke", [f"data={block}"])
    assert cfg.name == "edsr_smoke@mycal" and cfg.data.simulation.n_images == 5
    assert f"data={block}" in cfg.description
    # as `srlab test RUN data=...` swaps a run's block (apply_overrides on its saved config)
    assert apply_overrides(load_experiment("edsr_smoke"), [f"data={block}"]).data.simulation.n_images == 5
    monkeypatch.chdir(tmp_path)  # and relative to where srlab runs
    assert load_experiment("edsr_smoke", ["data=cal/mycal.yaml"]).data.simulation.n_images == 5
    assert cli.main(["show", "edsr_smoke", "data=cal/other.yml"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "srlab: error: data=cal/other.yml: no such file"
    assert data_reference(block) == str(block)  # outside the search: the path
    (tmp_path / "experiments" / "data").mkdir(parents=True)
    found = tmp_path / "experiments" / "data" / "mycal.yaml"
    found.write_text(block.read_text())
    assert data_reference(found) == "mycal" and data_reference(Path("experiments/data/mycal.yaml")) == "mycal"
    assert data_reference(block) == str(block)  # another file of that name is not this one
