"""notebooks/survey_comparison.ipynb runs top to bottom against a comparison report made here.

The kernel is this interpreter (``sys.executable``), declared in a kernelspec written to the test's tmp
folder and found through ``JUPYTER_PATH``: nothing is installed into the user's Jupyter folders, and the
venv's own ``python3`` kernelspec (whose ``argv`` starts with a bare ``python`` looked up on ``PATH``)
is not relied on.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY

NOTEBOOK = REPO / "notebooks" / "survey_comparison.ipynb"
KERNEL = "srlab-test-python"


def _kernelspec(root: Path) -> Path:
    folder = root / "kernels" / KERNEL
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "srlab test (this interpreter)", "language": "python"}))
    return root


@pytest.mark.slow
def test_notebook_renders_a_report(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import yaml

    from srlab.compare import compare

    # Classical methods: each run is a test pass (no training), yet a real run folder with metrics.json.
    suite = tmp_path / "nb.yaml"
    suite.write_text(yaml.safe_dump({
        "experiments": ["rl_sted", "ibp_sted"],
        "seeds": [0],
        "overrides": ["data=sim_smoke", "data.simulation.n_images=8", "data.simulation.lr_size_px=64",
                      *(o for o in TINY if o.startswith(("trainer.", "logger.")))],
        "test_images": {"crop_size": 32, "crops_per_image": 3},
    }))
    report = compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports", use_wandb=False,
                     log=lambda m: None)

    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec(tmp_path / "jupyter")))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("SRLAB_REPORT", str(report))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=180,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    markdown = "\n".join(o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {}))
    assert "rl_sted" in markdown and "ibp_sted" in markdown and "bicubic (baseline)" in markdown
    assert "±" in markdown and "best" in markdown
    for experiment in ("rl_sted", "ibp_sted"):
        run_id = next(p.name for p in (tmp_path / "runs" / f"{experiment}@sim_smoke").iterdir())  # data=sim_smoke
        assert run_id in markdown, "the runs table names each run's W&B id"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # three saved plots, the re-drawn crop grid and the per-image plot
    assert len(images) >= 5
