"""`srlab export`: ONNX and TorchScript reproduce torch's output on images of other sizes than the traced
one, TorchScript loads without srlab, the BioImage Model Zoo package passes `bioimageio test`, every
registered network exports or says why not, and user mistakes are one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from srlab import cli, experiment
from srlab import export as srlab_export
from srlab.config import load_experiment
from srlab.data.normalize import percentile_normalize
from srlab.models import NETWORKS
from tests.conftest import TINY
from tests.models.test_registry import build

CHECKED = ("edsr", "rcan", "srresnet", "unet")
TOLERANCE = 1e-4  # max abs difference on normalized images
SMALL = {"deepstorm": {"features": (4, 4, 4, 4)}, "deepulm": {"features": 4, "depth": 2}}


def normalized_images(n: int = 2, size: tuple[int, int] = (40, 53), seed: int = 0) -> torch.Tensor:
    """Poisson camera frames, each percentile-normalized as srlab does: not a multiple of any power of
    two, and not the traced example size."""
    rng = np.random.default_rng(seed)
    raw = rng.poisson(rng.uniform(50, 400, (n, 1, *size))).astype(np.float32) + 100
    return torch.from_numpy(np.stack([percentile_normalize(im)[0] for im in raw]))


def network(name: str) -> torch.nn.Module:
    scales = NETWORKS.entry(name).info["scales"]
    scale = 2 if 2 in scales else scales[0]
    return build(name, scale, **SMALL.get(name, {})).eval()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export-data")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A seconds-long edsr_smoke run shared by the export tests."""
    previous = os.environ.get("SRLAB_DATA_DIR")
    os.environ["SRLAB_DATA_DIR"] = str(data_dir)
    try:
        runs = tmp_path_factory.mktemp("export-runs")
        return experiment.train(load_experiment("edsr_smoke", [*TINY, f"runs_dir={runs}"]))
    finally:
        if previous is None:
            os.environ.pop("SRLAB_DATA_DIR")
        else:
            os.environ["SRLAB_DATA_DIR"] = previous


@pytest.mark.parametrize("name", CHECKED)
def test_onnx_matches_torch_on_other_sizes(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = network(name)
    path = srlab_export.to_onnx(net, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for images in (normalized_images(2, (40, 53)), normalized_images(1, (24, 31), seed=1)):
        with torch.no_grad():
            expected = net(images).numpy()
        got = session.run(None, {"input": images.numpy()})[0]
        assert got.shape == expected.shape == (*images.shape[:2], 2 * images.shape[2], 2 * images.shape[3])
        assert np.abs(got - expected).max() <= TOLERANCE


_PLAIN_TORCH_CHECK = """
import json, sys
import numpy as np, torch
diffs = {}
for name in sys.argv[2:]:
    module = torch.jit.load(f"{name}.pt")
    for i, (images, expected) in enumerate(torch.load(f"{name}.cases.pt")):
        with torch.no_grad():
            diffs[f"{name}/{i}"] = float((module(images) - expected).abs().max())
json.dump({"diffs": diffs, "srlab_imported": any(m.split(".")[0] == "srlab" for m in sys.modules)},
          open(sys.argv[1], "w"))
"""


def test_torchscript_matches_torch_without_srlab(tmp_path: Path) -> None:
    for name in CHECKED:
        net = network(name)
        srlab_export.to_torchscript(net, tmp_path / f"{name}.pt")
        cases = []
        for images in (normalized_images(2, (40, 53)), normalized_images(1, (24, 31), seed=1)):
            with torch.no_grad():
                cases.append((images, net(images)))
        torch.save(cases, tmp_path / f"{name}.cases.pt")
    # A plain interpreter in an empty folder: srlab is not imported (nor importable from the cwd).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", _PLAIN_TORCH_CHECK, "result.json", *CHECKED], cwd=tmp_path,
                          env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["srlab_imported"] is False
    assert len(result["diffs"]) == 2 * len(CHECKED)
    assert max(result["diffs"].values()) <= TOLERANCE, result["diffs"]


SR_NETWORKS = [n for n in NETWORKS.names() if NETWORKS.entry(n).card.output == "image"]


@pytest.mark.parametrize("name", SR_NETWORKS)
def test_every_registered_network_exports_or_says_why(name: str, tmp_path: Path) -> None:
    """TorchScript for every network; ONNX too (marked slow: torch's exporter takes ~1 s per network)."""
    reasons = {fmt: srlab_export.unsupported(name, fmt) for fmt in ("torchscript", "onnx")}
    for reason in filter(None, reasons.values()):
        assert name in reason and "\n" not in reason and len(reason) < 200
    net = network(name)
    images = normalized_images(1, (26, 21))
    with torch.no_grad():
        expected = net(images)
    if reasons["torchscript"]:
        assert reasons["onnx"], f"{name}: refuses TorchScript but not ONNX"
        with pytest.raises(Exception):  # noqa: B017  (the stated reason is real: tracing fails or differs)
            traced = torch.jit.trace(net, srlab_export.example_input(1), check_trace=False)
            assert torch.allclose(traced(images), expected, atol=TOLERANCE)
        return
    traced = torch.jit.load(str(srlab_export.to_torchscript(net, tmp_path / "net.pt")))
    with torch.no_grad():
        assert (traced(images) - expected).abs().max() <= TOLERANCE


ONNX_CASES = [n for n in SR_NETWORKS if srlab_export.unsupported(n, "onnx") is None and n not in CHECKED]
FULL = pytest.mark.skipif(os.environ.get("SRLAB_EXPORT_ALL") != "1",
                          reason="torch's ONNX exporter takes 2-10 s per network; SRLAB_EXPORT_ALL=1 runs it "
                                 "for the whole registry")


@pytest.mark.slow
@FULL
@pytest.mark.parametrize("name", ONNX_CASES)
def test_every_onnx_exportable_network_matches_torch(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = network(name)
    images = normalized_images(1, (26, 21))
    with torch.no_grad():
        expected = net(images).numpy()
    session = ort.InferenceSession(str(srlab_export.to_onnx(net, tmp_path / "net.onnx")),
                                   providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": images.numpy()})[0] - expected).max() <= TOLERANCE


@pytest.mark.slow
@FULL
@pytest.mark.parametrize("name", sorted(srlab_export.NOT_ONNX))
def test_onnx_refusals_are_real(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    with pytest.raises(Exception):  # noqa: B017  (whatever torch's exporter raises)
        srlab_export.to_onnx(network(name), tmp_path / f"{name}.onnx")


def test_bioimageio_package_passes_bioimageio_test(trained_run: Path, data_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("bioimageio.spec")
    core = pytest.importorskip("bioimageio.core")
    monkeypatch.setenv("SRLAB_DATA_DIR", str(data_dir))
    out = tmp_path / "model.zip"
    assert cli.main(["export", str(trained_run), "--format", "bioimageio", "-o", str(out),
                     "--author", "Ada Lovelace"]) == 0
    with zipfile.ZipFile(out) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        names = set(archive.namelist())
    assert {"weights_torchscript.pt", "weights.onnx", "weights_state_dict.pt", "cover.png", "README.md",
            "test_input.npy", "test_output.npy"} <= names
    lr_um = json.loads((trained_run / "data.json").read_text())["lr_pixel_size_nm"] / 1e3
    y_in = next(a for a in rdf["inputs"][0]["axes"] if a.get("id") == "y")
    y_out = next(a for a in rdf["outputs"][0]["axes"] if a.get("id") == "y")
    assert y_in["scale"] == pytest.approx(lr_um) and y_out["scale"] == pytest.approx(lr_um / 2)
    assert y_in["unit"] == y_out["unit"] == "micrometer"
    scale_range = next(p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range")
    assert scale_range["kwargs"]["min_percentile"] == 0.1 and scale_range["kwargs"]["max_percentile"] == 99.9
    assert any("1707.02921" in c.get("url", "") for c in rdf["cite"])
    assert rdf["authors"] == [{"name": "Ada Lovelace"}] and rdf["license"] == "CC-BY-4.0"
    assert rdf["config"]["srlab"]["channel"] is None  # simulated data: no channel of the user's files

    # a halo, so that a tool predicting block by block (bioimageio.core, Fiji, napari) leaves no seams
    assert y_out["halo"] > 0 and y_in["size"]["min"] > 2 * y_out["halo"] // 2

    summary = core.test_model(out, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    tested = {d.loc[1] for d in summary.details if d.loc and d.loc[0] == "weights" and len(d.loc) > 1}
    assert {"torchscript", "onnx", "pytorch_state_dict"} <= tested


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("srlab: error:")
    return err


def test_user_mistakes_are_one_line(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model.pt"
    assert "valid: bioimageio, onnx, torchscript" in _one_line_error(
        ["export", str(trained_run), "--format", "tflite", "-o", str(out)], capsys)
    out.write_bytes(b"keep")
    assert "--overwrite" in _one_line_error(
        ["export", str(trained_run), "--format", "torchscript", "-o", str(out)], capsys)
    assert out.read_bytes() == b"keep"
    monkeypatch.setitem(srlab_export.NOT_ONNX, "edsr", "a stated reason")
    assert "a stated reason" in _one_line_error(
        ["export", str(trained_run), "--format", "onnx", "-o", str(tmp_path / "m.onnx")], capsys)
    assert not (tmp_path / "m.onnx").exists()


def test_cli_torchscript_export_of_a_run_matches_its_network(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "edsr.pt"
    assert cli.main(["export", str(trained_run), "--format", "torchscript", "-o", str(out)]) == 0
    net, _ = experiment.load_network(trained_run)
    images = normalized_images(1, (33, 29))
    with torch.no_grad():
        assert (torch.jit.load(str(out))(images) - net(images)).abs().max() <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edsr.pt"]  # nothing staged is left behind


def test_bioimageio_texts_name_the_channel_a_run_was_trained_on() -> None:
    """A run on one channel of the user's multi-channel files (data.channel, from calibrate --channel)
    says so where a Fiji/napari user reads it: the input's description and the README."""
    from srlab.export import _input_description, _readme

    plain = load_experiment("edsr_smoke", [])
    one = load_experiment("edsr_smoke", ["data.channel=1"])
    assert "trained on channel" not in _readme(plain, "paper", None, "run")
    assert "trained on channel 1 (0-based)" in _readme(one, "paper", None, "run")
    assert _input_description(one).endswith("; channel 1 of the multi-channel files the network was trained on")
    assert _input_description(plain) == "LR image, 1 channel(s), raw intensities"


def test_a_multi_frame_run_is_refused_in_one_line(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-frame network takes T frames as channels, and srlab predict registers them on the whole frames
    first: no single-image graph does either (ONNX export once crashed with a traceback, and a package claimed
    one channel)."""
    monkeypatch.setenv("SRLAB_DATA_DIR", str(data_dir))
    tiny = [o for o in TINY if not o.startswith("model.")]
    run = experiment.train(load_experiment("ibp_multiframe_sted", [*tiny, "data.simulation.n_images=8",
                                                                   f"runs_dir={tmp_path / 'runs'}"]))
    for fmt in ("bioimageio", "onnx", "torchscript"):
        assert "is a multi-frame run" in _one_line_error(["export", str(run), "--format", fmt, "-o",
                                                          str(tmp_path / f"out.{fmt}")], capsys)
    assert not list(tmp_path.glob("out.*"))


def test_the_zoo_name_of_a_run_on_another_data_block_is_valid() -> None:
    """``srlab export`` of a run trained on another block (``edsr_smoke@degrade_sted``) failed bioimageio's
    validation of the name (letters, digits and ``_+- ()`` only)."""
    import string

    name = srlab_export.zoo_model_name("edsr_smoke@degrade_sted", "edsr", 2)
    assert name == "srlab edsr_smoke on degrade_sted edsr x2"
    odd = srlab_export.zoo_model_name("my.exp@cal/v2" + "x" * 200, "edsr", 4)
    assert set(odd) <= set(string.ascii_letters + string.digits + "_+- ()") and len(odd) == 128
