"""Trained networks out of srlab: TorchScript, ONNX and BioImage Model Zoo packages.

``srlab export RUN --format torchscript|onnx|bioimageio -o OUT`` (:func:`export_run`).

What is exported is the network alone, ``(N, C, h, w) -> (N, C, s·h, s·w)`` on *normalized*
intensities. srlab's percentile normalization (:mod:`srlab.data.normalize`: each channel of each image
scaled by its own ``data.low_percentile``/``data.high_percentile``) is not part of the graph: a
TorchScript or ONNX user applies it themselves; the BioImage Model Zoo package states it as the
spec's ``scale_range`` preprocessing.

* **torchscript** — ``torch.jit.trace`` of the eval-mode network on a 67×61 example (odd sizes, so
  size-dependent branches such as the U-Net's padding to a multiple of 2^depth take the path every
  size needs); loads with plain ``torch.jit.load``, srlab not needed.
* **onnx** — torch's ONNX exporter (``dynamo=True``, opset :data:`ONNX_OPSET`) with dynamic batch, height
  and width; input ``input``, output ``output``. Needs ``onnx`` and ``onnxscript`` (the ``export`` extra).
* **bioimageio** — a zip (or a folder, when OUT does not end in ``.zip``) in the current model spec
  (0.5, written and validated with ``bioimageio.spec``):

  - weights: TorchScript, ONNX (where the network exports to it), and the PyTorch state dict with its
    architecture given as ``srlab.models.<family>.<Class>`` plus the family's source file as an
    attachment. *Adapted*: the spec can also load an architecture from a standalone source file, but
    srlab's network files import shared layers from srlab, so the state-dict entry needs srlab installed
    (``environment.yaml``); the TorchScript and ONNX entries need nothing of srlab.
  - preprocessing: ``scale_range`` per sample over ``(y, x)`` (so per channel) with srlab's percentiles —
    the same normalization. *Adapted*: srlab floors the span at 1e-6, the spec adds ``eps=1e-6``.
  - postprocessing: none, the output is in normalized units. *Adapted*: ``srlab predict`` maps the
    output back to input units with the input's percentile map; the spec has no operation for the
    inverse of a per-sample ``scale_range``.
  - axes: batch, channel, y, x; the input's y/x ``scale`` is the run's LR pixel size in µm (data.json),
    the output's is that divided by ``data.scale``, so the spec's size reference makes the output
    ``scale`` times larger. Without a known pixel size the axes carry no unit and scales 1 and 1/s.
  - test tensors: a crop of the run's first test image (as srlab loaded it, so already normalized
    once; ``scale_range`` re-normalizes it) and srlab's prediction of it (srlab's normalization, the
    eval-mode network) — ``bioimageio test`` checks the package reproduces srlab.
  - cover (input | output, 2:1), README, citations of the method's paper (arXiv or DOI) and of
    srlab (a spec citation needs a DOI or URL: srlab is cited there once its metadata declares a home
    page, and always in the README), the licence and the authors given on the command line (default:
    ``git config user.name``).
"""
from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srlab.errors import SrlabError, unknown_choice
from srlab.inference.artifact import trained_channel
from srlab.runs import read_json

FORMATS: tuple[str, ...] = ("bioimageio", "onnx", "torchscript")


def zoo_model_name(experiment: str, network: str, scale: int) -> str:
    """The package's ``name``: the BioImage Model Zoo allows letters, digits and ``_+- ()`` only, so a run
    on another data block (``edsr_sted@mycal``) is named ``edsr_sted on mycal`` and any other character
    becomes ``-`` (at most 128 characters)."""
    from srlab.config import DATA_SEPARATOR

    text = f"srlab {experiment.replace(DATA_SEPARATOR, ' on ')} {network} x{scale}"
    return re.sub(r"[^A-Za-z0-9_+\- ()]", "-", text)[:128]


ONNX_OPSET = 18
# Odd sizes that are no multiple of any power of two: the traced graph takes every padding branch.
EXAMPLE_SIZE = (67, 61)
# The package's halo (LR px on each side of a block): what a tool that predicts block by block (Fiji,
# napari, ilastik through bioimageio.core) cuts off each block's output, as srlab predict's 32 px tile
# overlap does; without one, blocks of 48 LR px left seams of up to 0.23 (normalized) at their edges.
HALO_LR_PX = 16

# Registered networks that cannot be exported, per format, and why (one line each).
NOT_EXPORTABLE: dict[str, str] = {
    "gaussfit": "a NumPy/SciPy localizer (DoG detection, per-molecule least-squares fits) behind the network "
                "contract, not a tensor graph",
    "quality_cnn": "a quality-rating network (one score per image, not an image); use srlab rate RUN IMAGES",
}
NOT_ONNX: dict[str, str] = {
    "dfcan": "its Fourier-channel attention uses torch.fft.fft2, which torch's ONNX exporter does not translate",
    "tsai_huang": "its per-frequency solve (complex torch.fft.fft2, torch.linalg.solve) traces to one image size "
                  "only in torch's ONNX exporter",
}

# Citations for papers the registry names without an arXiv id.
_DOIS: dict[str, tuple[str, ...]] = {
    "dfcan": ("10.1038/s41592-020-01048-5",),
    "bicubic": ("10.1109/TASSP.1981.1163711",),
    "ibp": ("10.1016/1049-9652(91)90045-L",),
    "richardson_lucy": ("10.1364/JOSA.62.000055", "10.1086/111605"),
    "unet": ("10.1038/s41592-018-0216-7",),
    "gaussfit": ("10.1093/bioinformatics/btu202",),
}
_URLS: dict[str, str] = {
    "drrn": "https://openaccess.thecvf.com/content_cvpr_2017/html/Tai_Image_Super-Resolution_via_CVPR_2017_paper.html",
    "srdensenet": "https://openaccess.thecvf.com/content_iccv_2017/html/"
                  "Tong_Image_Super-Resolution_Using_ICCV_2017_paper.html",
}
SRLAB_CITATION = "srlab: PyTorch Lightning experiments for deep-learning super-resolution of microscopy images"


def unsupported(name: str, fmt: str) -> str | None:
    """Why the registered network ``name`` cannot be exported to ``fmt`` (one line), or ``None``."""
    if fmt not in FORMATS:
        raise unknown_choice("export format", fmt, FORMATS)
    if name in NOT_EXPORTABLE:
        return f"'{name}' cannot be exported: {NOT_EXPORTABLE[name]}"
    if fmt == "onnx" and name in NOT_ONNX:
        return f"'{name}' cannot be exported to ONNX: {NOT_ONNX[name]}; use --format torchscript"
    return None


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SrlabError(f"{what} needs the Python package '{module}'; install it with: "
                         f"pip install 'srlab[export]'")


def example_input(channels: int) -> torch.Tensor:
    return torch.rand(1, channels, *EXAMPLE_SIZE, generator=torch.Generator().manual_seed(0))


def to_torchscript(network: nn.Module, path: str | Path, channels: int = 1) -> Path:
    """Trace ``network`` (eval mode, CPU, float32) to a TorchScript file; see the module docstring."""
    path = Path(path)
    network = network.eval().float().cpu()
    with torch.no_grad():
        traced = torch.jit.trace(network, example_input(channels), check_trace=False)
    traced.save(str(path))
    return path


def to_onnx(network: nn.Module, path: str | Path, channels: int = 1, opset: int = ONNX_OPSET) -> Path:
    """Export ``network`` to ONNX with dynamic batch, height and width (input ``input``, output ``output``)."""
    import io
    import logging
    import warnings
    from contextlib import redirect_stdout

    _require("onnxscript", "ONNX export")
    path = Path(path)
    network = network.eval().float().cpu()
    dynamic = torch.export.Dim.DYNAMIC
    # The exporter prints its progress and logs warnings about optional torchvision ops.
    with redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                network, (example_input(channels),), dynamo=True, opset_version=opset, verbose=False,
                input_names=["input"], output_names=["output"],
                dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},))
        finally:
            logging.getLogger("torch.onnx").setLevel(level)
    assert program is not None
    program.save(str(path))
    return path


def _plain_network(network: nn.Module, cfg: Any) -> nn.Module:
    """A fresh eager copy of the run's network (no ``torch.compile`` wrapper, contiguous weights)."""
    from srlab import build, models

    plain = models.create(cfg.model.name, **build.network_kwargs(cfg))
    plain.load_state_dict({k: v.contiguous() for k, v in network.state_dict().items()})
    return plain.eval().float().cpu()


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise SrlabError(f"output '{output}' already exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise SrlabError(f"output folder '{output.parent}' does not exist")


def export_run(run: str | Path, fmt: str, output: str | Path, *, overwrite: bool = False,
               authors: Sequence[str] = (), license: str = "CC-BY-4.0") -> Path:
    """Export the trained network of ``run`` (directory or checkpoint) to ``output``; returns the path.

    User mistakes (unknown format, a network that cannot be exported to ``fmt``, an existing output
    without ``overwrite``, a missing optional package) raise :class:`SrlabError` before anything is
    written. Files are written next to ``output`` and moved into place when complete."""
    from srlab.experiment import load_network

    if fmt not in FORMATS:
        raise unknown_choice("export format", fmt, FORMATS)
    output = Path(output)
    _check_output(output, overwrite)
    network, cfg = load_network(run)
    if str(cfg.data.get("kind", "")) == "multiframe":
        # the network takes T frames of one field as channels and srlab predict estimates their shifts on
        # the whole frames first; a single-image graph (and a block-wise tool) would do neither
        raise SrlabError(f"{run}: '{cfg.name}' is a multi-frame run ({cfg.data.get('frames')} frames of one field "
                         f"in); export takes single-image networks — use srlab predict for it")
    reason = unsupported(cfg.model.name, fmt)
    if reason:
        raise SrlabError(reason)
    if fmt == "onnx":
        _require("onnx", "ONNX export")
        _require("onnxscript", "ONNX export")
    if fmt == "bioimageio":
        if cfg.paradigm.name == "localization":
            raise SrlabError(f"{run}: '{cfg.name}' is a localization run (emitter density out, threshold in the "
                             f"checkpoint); package only SR runs for the BioImage Model Zoo, or export "
                             f"--format onnx|torchscript")
        for module in ("bioimageio.spec", "bioimageio.core"):
            _require(module, "a BioImage Model Zoo package")
    plain = _plain_network(network, cfg)
    channels = int(cfg.data.channels)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        staged = Path(tmp) / output.name
        if fmt == "torchscript":
            to_torchscript(plain, staged, channels)
        elif fmt == "onnx":
            to_onnx(plain, staged, channels)
        else:
            _bioimageio_package(plain, cfg, run, staged, authors=authors, license=license)
        if output.is_dir():
            shutil.rmtree(output)
        elif output.exists():
            output.unlink()
        staged.replace(output)
    return output


# -- BioImage Model Zoo ------------------------------------------------------------------------------

def _citations(name: str, paper: str) -> list[dict[str, str]]:
    ids = re.findall(r"arXiv:(\d{4}\.\d{4,5})", paper)
    out = [{"text": paper, "url": f"https://arxiv.org/abs/{i}"} for i in ids]
    out += [{"text": paper, "doi": doi} for doi in _DOIS.get(name, ())]
    if name in _URLS:
        out.append({"text": paper, "url": _URLS[name]})
    url = _srlab_url()
    if url:
        out.append({"text": f"{SRLAB_CITATION}, version {_srlab_version()}", "url": url})
    return out


def _srlab_version() -> str:
    import srlab
    return srlab.__version__


def _srlab_url() -> str | None:
    """srlab's home page from its installed metadata (``[project.urls]``), if it declares one: the spec
    cites by DOI or URL only, so without one srlab is credited in the README and ``config`` alone."""
    from importlib import metadata

    try:
        urls = metadata.metadata("srlab").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        _, _, url = entry.partition(",")
        if url.strip().startswith("http"):
            return url.strip()
    return None


def _authors(given: Sequence[str]) -> list[str]:
    if given:
        return list(given)
    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except OSError:
        name = ""
    if not name:
        raise SrlabError("a BioImage Model Zoo package needs its authors: pass --author 'Given Family' "
                         "(repeat for several)")
    return [name]


def _test_image(cfg: Any) -> np.ndarray:
    """``(1, C, h, w)`` float32: the first evaluation crop of the run's test split. Where the data module has
    several test loaders (an ``srlab adapt`` run's: its anchor pairs, then the user's real LR images) the
    last's: the images the run was made for."""
    from srlab import build

    datamodule = build.build_data(cfg)
    datamodule.prepare_data()
    datamodule.setup("test")
    loaders = datamodule.test_dataloader()
    batch = next(iter(loaders[-1] if isinstance(loaders, (list, tuple)) else loaders))
    return batch["lr"][:1].float().numpy()


def _srlab_prediction(network: nn.Module, image: np.ndarray, low: float, high: float) -> np.ndarray:
    """What srlab's predict does before mapping back: per-channel percentile normalization, network."""
    from srlab.data.normalize import percentile_normalize

    normalized = np.stack([percentile_normalize(c, low, high)[0] for c in image[0]])[None]
    with torch.no_grad():
        return network(torch.from_numpy(normalized)).numpy().astype(np.float32)


def _cover(image: np.ndarray, prediction: np.ndarray, path: Path) -> None:
    """Input (nearest-upsampled) | output, first channel, each scaled to its 0.1–99.9 % range."""
    from matplotlib import image as mpl_image

    s = prediction.shape[-1] // image.shape[-1]
    panels = [np.kron(image[0, 0], np.ones((s, s), np.float32)), prediction[0, 0]]
    scaled = []
    for p in panels:
        lo, hi = np.percentile(p, [0.1, 99.9])
        scaled.append(np.clip((p - lo) / max(hi - lo, 1e-6), 0, 1))
    mpl_image.imsave(path, np.concatenate(scaled, axis=1), cmap="magma", vmin=0, vmax=1)


def _trained_channel(cfg: Any) -> str:
    """The README's sentence on which channel of multi-channel files the network was trained on, or ''."""
    channel = trained_channel(cfg)
    if channel is None:
        return ""
    return (f" The network was trained on channel {channel} (0-based) of the user's multi-channel files "
            f"(`data.channel`, as `srlab calibrate --channel` wrote it): give it that channel.")


def _input_description(cfg: Any) -> str:
    channel = trained_channel(cfg)
    return f"LR image, {int(cfg.data.channels)} channel(s), raw intensities" + (
        f"; channel {channel} of the multi-channel files the network was trained on" if channel is not None
        else "")


def _readme(cfg: Any, paper: str, pixel_um: float | None, run: str | Path) -> str:
    s = int(cfg.data.scale)
    px = (f"{pixel_um * 1e3:g} nm LR pixels -> {pixel_um * 1e3 / s:g} nm output pixels" if pixel_um
          else "pixel size unknown")
    return (f"# {cfg.name}: {cfg.model.name} x{s}\n\n"
            f"{cfg.description or ''}\n\n"
            f"Super-resolution network ({paper}) trained with srlab (run `{Path(run).name}`), "
            f"{cfg.paradigm.name} paradigm; {px}.\n\n"
            f"## Input and output\n\n"
            f"Input: `(batch, {cfg.data.channels} channel(s), y, x)`, any size.{_trained_channel(cfg)} "
            f"Each channel is normalized by "
            f"its own {cfg.data.low_percentile:g} / {cfg.data.high_percentile:g} percentiles (`scale_range`), "
            f"as srlab does in training and prediction.\n\n"
            f"Output: `{s}·y × {s}·x` in *normalized* units (background near 0, bright structure near 1). "
            f"`srlab predict` maps them back to input units with the input's percentile map "
            f"`raw = normalized·(p_high − p_low) + p_low`; the spec has no operation for that inverse.\n\n"
            f"## Validation\n\nMetrics of the run on its simulated or held-out test split are in srlab's "
            f"`metrics.json` (copied to `config.srlab.metrics`). The test tensors are a crop of the run's first "
            f"test image and srlab's own prediction of it.\n\n"
            f"## Weights\n\nTorchScript and ONNX need no srlab; the PyTorch state dict is loaded into "
            f"srlab's own architecture class (see `environment.yaml`).\n\n"
            f"## Citation\n\nPlease cite the method's paper ({paper}) and {SRLAB_CITATION} "
            f"(version {_srlab_version()}).\n")


def _bioimageio_package(network: nn.Module, cfg: Any, run: str | Path, output: Path, *,
                        authors: Sequence[str], license: str) -> None:
    import yaml
    from bioimageio.spec import ValidationContext, save_bioimageio_package, save_bioimageio_package_as_folder
    from bioimageio.spec.model import v0_5 as spec

    import srlab
    from srlab import build, models, runs

    run_dir = runs.resolve_run_dir(run)
    name = cfg.model.name
    entry = models.NETWORKS.entry(name)
    paper = entry.card.paper
    s, channels = int(cfg.data.scale), int(cfg.data.channels)
    low, high = float(cfg.data.low_percentile), float(cfg.data.high_percentile)
    data = read_json(run_dir / "data.json") if (run_dir / "data.json").is_file() else {}
    lr_nm = data.get("lr_pixel_size_nm")
    pixel_um = float(lr_nm) / 1e3 if lr_nm else None
    author_list = _authors(authors)
    metrics = {k: v for k, v in (read_json(run_dir / "metrics.json") if (run_dir / "metrics.json")
               .is_file() else {}).items() if isinstance(v, (int, float))}

    root = output.parent / f".{output.name}.files"
    root.mkdir()
    image = _test_image(cfg)
    prediction = _srlab_prediction(network, image, low, high)
    if prediction.shape[-2:] != (image.shape[-2] * s, image.shape[-1] * s):
        raise SrlabError(f"'{name}' maps {image.shape[-2:]} to {prediction.shape[-2:]}, not x{s}")
    np.save(root / "test_input.npy", image)
    np.save(root / "test_output.npy", prediction)
    import tifffile
    tifffile.imwrite(root / "sample_input.tif", image[0])
    tifffile.imwrite(root / "sample_output.tif", prediction[0])
    _cover(image, prediction, root / "cover.png")
    (root / "README.md").write_text(_readme(cfg, paper, pixel_um, run))

    to_torchscript(network, root / "weights_torchscript.pt", channels)
    onnx_ok = unsupported(name, "onnx") is None and importlib.util.find_spec("onnxscript") is not None
    if onnx_ok:
        to_onnx(network, root / "weights.onnx", channels)
    torch.save(network.state_dict(), root / "weights_state_dict.pt")
    factory = models.NETWORKS.get(name)
    source = Path(inspect.getfile(factory))
    shutil.copyfile(source, root / f"architecture_{source.name}")
    kwargs = yaml.safe_load(yaml.safe_dump(_yaml_ready(build.network_kwargs(cfg))))
    torch_version = torch.__version__.split("+")[0]
    (root / "environment.yaml").write_text(yaml.safe_dump({
        "name": "srlab", "channels": ["conda-forge"],
        "dependencies": ["python>=3.10", "pip", {"pip": [f"torch=={torch_version}", f"srlab=={srlab.__version__}"]}]}))

    unit = "micrometer" if pixel_um else None
    in_scale = pixel_um or 1.0
    # a block must be larger than its two halos; a test crop smaller than that gets a smaller halo
    halo = max(0, min(HALO_LR_PX, (min(image.shape[-2:]) - 1) // 2))
    min_side = max(16, 2 * halo + 1)
    input_id, out_id = spec.TensorId("input"), spec.TensorId("output")
    channel_names = [f"channel{i}" for i in range(channels)]
    out_channels = prediction.shape[1]
    inputs = [spec.InputTensorDescr(
        id=input_id,
        description=_input_description(cfg),
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=channel_names),
              spec.SpaceInputAxis(id=spec.AxisId("y"), size=spec.ParameterizedSize(min=min_side, step=1),
                                  scale=in_scale, unit=unit),
              spec.SpaceInputAxis(id=spec.AxisId("x"), size=spec.ParameterizedSize(min=min_side, step=1),
                                  scale=in_scale, unit=unit)],
        test_tensor=spec.FileDescr(source=root / "test_input.npy"),
        sample_tensor=spec.FileDescr(source=root / "sample_input.tif"),
        preprocessing=[
            spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
            spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=[spec.AxisId("y"), spec.AxisId("x")], min_percentile=low, max_percentile=high, eps=1e-6)),
        ])]
    outputs = [spec.OutputTensorDescr(
        id=out_id,
        description=f"x{s} super-resolved image, normalized intensities",
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[f"channel{i}" for i in range(out_channels)]),
              spec.SpaceOutputAxisWithHalo(id=spec.AxisId("y"), size=spec.SizeReference(
                  tensor_id=input_id, axis_id=spec.AxisId("y")), halo=halo * s, scale=in_scale / s, unit=unit),
              spec.SpaceOutputAxisWithHalo(id=spec.AxisId("x"), size=spec.SizeReference(
                  tensor_id=input_id, axis_id=spec.AxisId("x")), halo=halo * s, scale=in_scale / s, unit=unit)],
        test_tensor=spec.FileDescr(source=root / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=root / "sample_output.tif"))]
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(source=root / "weights_torchscript.pt",
                                                 pytorch_version=spec.Version(torch_version),
                                                 parent="pytorch_state_dict"),
        onnx=spec.OnnxWeightsDescr(source=root / "weights.onnx", opset_version=ONNX_OPSET,
                                   parent="pytorch_state_dict") if onnx_ok else None,
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=root / "weights_state_dict.pt", pytorch_version=spec.Version(torch_version),
            architecture=spec.ArchitectureFromLibraryDescr(
                callable=spec.Identifier(factory.__name__), import_from=factory.__module__, kwargs=kwargs),
            dependencies=spec.FileDescr(source=root / "environment.yaml")))
    citations = [spec.CiteEntry(**c) for c in _citations(name, paper)]
    description = (f"{name} x{s} super-resolution of {channels}-channel fluorescence microscopy, trained with "
                   f"srlab ({cfg.name})")
    with ValidationContext(perform_io_checks=False):
        model = spec.ModelDescr(
            name=zoo_model_name(str(cfg.name), name, s),
            description=description[:1024],
            authors=[spec.Author(name=a) for a in author_list],
            cite=citations,
            license=spec.LicenseId(license) if _is_spdx(license) else license,
            covers=[spec.FileDescr(source=root / "cover.png")],
            documentation=spec.FileDescr(source=root / "README.md"),
            attachments=[spec.FileDescr(source=root / f"architecture_{source.name}")],
            tags=["super-resolution", "fluorescence-light-microscopy", "2d", "pytorch", "srlab", name],
            inputs=inputs, outputs=outputs, weights=weights,
            config={"srlab": {"experiment": cfg.name, "model": name, "scale": s,
                              "percentiles": [low, high], "lr_pixel_size_nm": lr_nm,
                              "channel": trained_channel(cfg),
                              "srlab_version": srlab.__version__, "metrics": metrics}},
        )
    if output.suffix == ".zip":
        save_bioimageio_package(model, output_path=output)
    else:
        save_bioimageio_package_as_folder(model, output_path=output)
    shutil.rmtree(root)


def _is_spdx(license: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9.+-]+", license))


def _yaml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _yaml_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_ready(v) for v in value]
    return value


__all__ = ["FORMATS", "NOT_EXPORTABLE", "NOT_ONNX", "export_run", "to_onnx", "to_torchscript", "unsupported"]
