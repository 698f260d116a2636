"""Multi-frame SR: Tsai–Huang and multi-frame IBP use the frames' sub-pixel shifts; models and data agree."""
from __future__ import annotations

import pytest
import torch

from srlab import build
from srlab.config import load_experiment
from srlab.data.datamodules import data_config
from srlab.data.multiframe import MultiFrameDataModule
from srlab.errors import SrlabError
from srlab.metrics.image import SRMetrics
from srlab.models import create
from srlab.models.classical import translate
from tests.models.test_classical import smooth_image


def psnr(sr: torch.Tensor, hr: torch.Tensor) -> float:
    metrics = SRMetrics(names=("psnr",))
    metrics.update(sr, hr)
    return float(metrics.compute()["psnr"])


def test_tsai_huang_inverts_the_aliasing_relation() -> None:
    """Noise-free frames made by the IBP formation model (shift, blur, integrate) at known shifts: the
    per-frequency solve recovers the HR image far better than one frame can, with given or estimated shifts."""
    scale, shifts = 2, torch.tensor([[[0.0, 0.5], [0.5, 0.0], [0.0, 0.0], [0.5, 0.5]]])
    forward = create("ibp", scale=scale, psf_fwhm_px=1.0)
    hr = smooth_image(96, seed=2)
    frames = torch.cat([forward.project(translate(hr, d[None] * scale)) for d in shifts[0]], dim=1)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    multi = create("tsai_huang", in_channels=4, scale=scale, psf_fwhm_px=1.0, regularization=0.01)
    single = create("tsai_huang", scale=scale, psf_fwhm_px=1.0, regularization=0.01)
    err_multi = (multi(frames, shifts=shifts) - hr)[inner].abs().mean()
    err_single = (single(frames[:, 2:3]) - hr)[inner].abs().mean()
    assert err_multi < 0.3 * err_single
    assert (multi(frames) - hr)[inner].abs().mean() < 0.5 * err_single  # shifts by phase correlation


def test_multi_frame_beats_single_frame_on_simulated_frames() -> None:
    """Four shifted, noisy, undersampled widefield frames (the multiframe data kind): multi-frame IBP and
    Tsai–Huang each beat their own single-frame result on the reference frame, on the same images."""
    cfg = data_config(kind="multiframe", scale=2, frames=4, patch_size=12, eval_crop_size=40,
                      simulation={"lr": {"modality": "widefield20x"}, "hr": {"modality": "widefield20x"},
                                  "structures": ["mitochondria", "microtubules"], "n_images": 4, "lr_size_px": 40})
    dm = MultiFrameDataModule(cfg, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    fields = dm.sets["train"] + dm.sets["val"] + dm.sets["test"]
    lr = torch.stack([torch.from_numpy(f.lr) for f in fields])
    hr = torch.stack([torch.from_numpy(f.hr) for f in fields])
    shifts = torch.stack([torch.from_numpy(f.shifts) for f in fields])
    reference = lr[:, 2:3]
    options = {"tsai_huang": {"psf_fwhm_px": 0.0, "regularization": 0.1}, "ibp": {"psf_fwhm_px": 0.0, "iterations": 5}}
    for name, params in options.items():
        with torch.no_grad():
            multi = psnr(create(name, in_channels=4, **params)(lr, shifts=shifts), hr)
            single = psnr(create(name, **params)(reference), hr)
        print(f"{name}: {multi:.2f} dB from 4 frames, {single:.2f} dB from one")
        assert multi > single + 0.5, f"{name}: {multi:.2f} dB from 4 frames, {single:.2f} dB from one"


def test_models_and_data_must_agree_on_frames() -> None:
    """A multi-frame-only model on single images, or a single-image model on frames: one line each."""
    with pytest.raises(SrlabError, match=r"^model 'tsai_huang' needs T frames of one field .*data.kind=simulated"):
        build.check_paradigm_data(load_experiment("tsai_huang_sted", ["data=sim_sted"]))
    with pytest.raises(SrlabError, match=r"^model 'edsr' takes single images, .* \(ibp, tsai_huang\)"):
        build.check_paradigm_data(load_experiment("edsr_sted", ["data=sim_sted_multiframe"]))
    build.check_paradigm_data(load_experiment("ibp_sted"))  # ibp takes both
    cfg = load_experiment("ibp_multiframe_sted")
    build.check_paradigm_data(cfg)
    ibp = build.build_network(cfg)
    assert ibp.multi_frame and build.network_kwargs(cfg)["in_channels"] == 4


def test_tsai_huang_refuses_several_outputs() -> None:
    with pytest.raises(SrlabError, match="out_channels must be 1"):
        create("tsai_huang", in_channels=4, out_channels=4)
    with pytest.raises(SrlabError, match="regularization must be > 0"):
        create("tsai_huang", regularization=0.0)
