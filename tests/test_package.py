"""srlab as a package: the wheel carries the experiments, and an installed srlab lists and runs them from
any directory, outside the source tree (issue 18, item 2)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY


@pytest.mark.slow
def test_wheel_installs_and_runs_experiments_outside_the_source_tree(tmp_path: Path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("srlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).stem for n in names if n.startswith("srlab/experiments/") and n.count("/") == 2}
    assert {p.stem for p in (REPO / "experiments").glob("*.yaml")} <= shipped
    assert "srlab/experiments/data/sim_smoke.yaml" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    # srlab from the wheel; its dependencies from the test environment (a PYTHONPATH entry runs no .pth
    # file, so the editable install of the source tree stays out).
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"], "OMP_NUM_THREADS": "1"}
    env.pop("SRLAB_EXPERIMENTS", None)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(python), "-c", "import srlab; print(srlab.__file__)"], cwd=outside, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)) and not where.startswith(str(REPO))

    listed = subprocess.run([str(venv / "bin" / "srlab"), "list"], cwd=outside, env=env, capture_output=True, check=False,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    for name in (p.stem for p in (REPO / "experiments").glob("*.yaml")):
        assert f"  {name} " in listed.stdout

    run = subprocess.run([str(venv / "bin" / "srlab"), "train", "edsr_smoke", *TINY,
                          f"runs_dir={outside / 'runs'}"], cwd=outside, env={**env, "SRLAB_DATA_DIR": str(outside / "data")},
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((outside / "runs" / "edsr_smoke").glob("*/metrics.json"))


def test_a_users_experiments_folder_is_searched_first(tmp_path: Path, monkeypatch):
    from srlab.config import find_config, list_groups, load_experiment

    own = tmp_path / "experiments"
    (own / "data").mkdir(parents=True)
    (own / "data" / "mycal.yaml").write_text((REPO / "experiments" / "data" / "sim_smoke.yaml").read_text()
                                             .replace("n_images: 16", "n_images: 12"))
    (own / "my_edsr.yaml").write_text("defaults: [edsr_smoke]\ndescription: mine\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("data/mycal.yaml") == own / "data" / "mycal.yaml"
    assert "mycal" in list_groups()["data"] and "sim_sted" in list_groups()["data"]
    cfg = load_experiment("my_edsr", ["data=mycal"])
    assert cfg.data.simulation.n_images == 12 and cfg.model.name == "edsr"
    assert cfg.name == "my_edsr@mycal" and cfg.description == "mine [trained on data=mycal: confocal -> sted x2]"
    monkeypatch.chdir(tmp_path / "experiments" / "data")  # elsewhere: the variable names the folder
    monkeypatch.setenv("SRLAB_EXPERIMENTS", str(own))
    assert load_experiment("my_edsr").description == "mine"
