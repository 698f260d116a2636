"""A localization network sees its frames normalized by the run's own percentiles (``data.low_percentile`` /
``data.high_percentile``, from its card), in :func:`localize_stack`, :func:`localize_file` and ``srlab localize``."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srlab.inference import artifact
from srlab.models.localization import GaussianFitLocalizer
from srlab.smlm.localize import localize_file, localize_stack, normalize_frame
from srlab.smlm.simulate import SMLMConfig, write_smlm_dataset
from tests.conftest import cli_in_process

LOW, HIGH = 2.0, 99.0  # a run trained away from the defaults (0.1 / 99.9)


class RecordingNetwork(nn.Module):
    """Keeps the frames it is fed; returns an empty density map on the ×8 grid (nothing to localize)."""

    def __init__(self):
        super().__init__()
        self.inputs: list[np.ndarray] = []

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        self.inputs.append(lr[:, 0].numpy().copy())
        n, _, h, w = lr.shape
        return torch.zeros(n, 1, 8 * h, 8 * w)


def _camera_frames(frames: int = 3, size_px: int = 16) -> np.ndarray:
    """Poisson background with a few bright emitters: the 2nd/99th percentiles lie well inside the
    0.1st/99.9th, so the two normalizations differ clearly."""
    rng = np.random.default_rng(0)
    stack = rng.poisson(100.0, (frames, size_px, size_px)).astype(np.float32)
    stack[:, 3, 4] += 2000.0
    stack[:, 11, 9] += 800.0
    return stack


def test_localize_stack_normalizes_frames_with_the_given_percentiles():
    stack = _camera_frames()
    network = RecordingNetwork()
    localize_stack(network, stack, pixel_size_nm=100.0, batch_size=2, low_percentile=LOW, high_percentile=HIGH)
    fed = np.concatenate(network.inputs)
    assert fed.shape == stack.shape
    for frame, seen in zip(stack, fed):
        np.testing.assert_allclose(seen, normalize_frame(frame, LOW, HIGH), rtol=1e-6, atol=1e-6)
        assert not np.allclose(seen, normalize_frame(frame), atol=1e-3)  # the defaults would scale it otherwise


def test_localize_stack_defaults_to_the_default_percentiles():
    stack = _camera_frames(frames=1)
    network = RecordingNetwork()
    localize_stack(network, stack, pixel_size_nm=100.0)
    np.testing.assert_allclose(network.inputs[0][0], normalize_frame(stack[0], 0.1, 99.9), rtol=1e-6, atol=1e-6)


def test_localize_file_passes_the_percentiles_through(tmp_path):
    paths = write_smlm_dataset(tmp_path / "acq", frames=2, seed=3, config=SMLMConfig(height_px=16, width_px=16))
    network = RecordingNetwork()
    localize_file(network, paths.stack, tmp_path / "out", low_percentile=LOW, high_percentile=HIGH)
    for seen in np.concatenate(network.inputs):
        assert abs(np.percentile(seen, LOW)) < 1e-5
        assert abs(np.percentile(seen, HIGH) - 1.0) < 1e-5


def test_srlab_localize_normalizes_as_the_run_was_trained(tmp_path, monkeypatch):
    """A localization network's card (``network.json``) with ``data.low_percentile=2
    data.high_percentile=99``: ``srlab localize`` feeds it frames whose 2nd/99th percentiles are 0/1."""
    sim = SMLMConfig(height_px=16, width_px=16)
    paths = write_smlm_dataset(tmp_path / "acq", frames=2, seed=3, config=sim)
    kwargs = {"psf_sigma_nm": sim.sigma_nm, "pixel_size_nm": sim.pixel_size_nm}
    card = artifact.NetworkCard(
        experiment="gaussfit_percentiles", network="gaussfit", network_kwargs=kwargs, kind="localization", scale=8,
        channels=1, low_percentile=LOW, high_percentile=HIGH, lr_pixel_size_nm=sim.pixel_size_nm,
        hr_pixel_size_nm=sim.pixel_size_nm / 8, paradigm="localization", checkpoint=None, ema=False,
        config_hash="test", localization={"threshold": 0.3, "emitter_mass": 100.0, "scale": 8.0})
    artifact.write(tmp_path / "run", GaussianFitLocalizer(**kwargs).state_dict(), card)

    fed: list[np.ndarray] = []
    forward = GaussianFitLocalizer.forward

    def recording_forward(self, lr):
        fed.append(lr[:, 0].numpy().copy())
        return forward(self, lr)

    monkeypatch.setattr(GaussianFitLocalizer, "forward", recording_forward)
    proc = cli_in_process("localize", str(tmp_path / "run"), str(paths.stack), "-o", str(tmp_path / "out"),
                          "--device", "cpu", "--quiet")
    assert proc.returncode == 0, proc.stderr
    frames = np.concatenate(fed)
    assert len(frames) == 2
    for seen in frames:
        assert abs(np.percentile(seen, LOW)) < 1e-5
        assert abs(np.percentile(seen, HIGH) - 1.0) < 1e-5
