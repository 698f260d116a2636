"""The fast paths of issue 9 give the numbers of the plain fp32 eager path, within stated tolerances.

Tolerances (outputs of a narrow EDSR on a 24x24 crop of [0, 1]-scaled data, compared with fp32 eager):

* ``model.channels_last=true``: the same arithmetic in another memory layout; max |diff| <= 1e-5.
* ``model.compile=true`` (TorchInductor, fp32): fused kernels may reorder sums; max |diff| <= 1e-5.
* bf16 autocast (``trainer.precision=bf16-mixed``): bf16 keeps 8 significant bits, so each
  convolution's inputs carry a relative rounding error of 2^-9 ≈ 0.2 %; after a few layers the
  output is allowed max |diff| <= 2 % of the fp32 output's range and a mean |diff| <= 0.5 %.

Compiling costs seconds even for a tiny network (a C++ compiler builds Inductor's CPU kernels; gcc is
enough), so the default run compiles one narrow forward pass; the training-step check is ``slow``.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch._dynamo.exc import TorchDynamoException

from srlab import build
from srlab.config import load_experiment

NARROW = ["model.params.num_blocks=1", "model.params.features=8", "logger.wandb.enabled=false"]


def _network(*overrides: str) -> torch.nn.Module:
    cfg = load_experiment("edsr_smoke", [*NARROW, *overrides])
    torch.manual_seed(0)
    return build.build_network(cfg)


def _input(seed: int = 1, size: int = 24) -> torch.Tensor:
    return torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _same_weights(target: torch.nn.Module, source: torch.nn.Module) -> torch.nn.Module:
    target.load_state_dict(source.state_dict())
    return target.eval()


def test_channels_last_matches_contiguous():
    plain = _network().eval()
    fast = _same_weights(_network("model.channels_last=true"), plain)
    assert fast.head.weight.is_contiguous(memory_format=torch.channels_last)
    x = _input()
    with torch.no_grad():
        diff = (fast(x) - plain(x)).abs().max().item()
    assert diff <= 1e-5


def test_bf16_autocast_agrees_with_fp32_within_tolerance():
    network = _network().eval()
    x = _input()
    with torch.no_grad():
        reference = network(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = network(x)
    assert low.dtype == torch.bfloat16  # autocast really ran the convolutions in bf16
    span = (reference.max() - reference.min()).item()
    diff = (low.float() - reference).abs()
    assert diff.max().item() <= 0.02 * span
    assert diff.mean().item() <= 0.005 * span
    assert diff.max().item() > 0  # not silently fp32


def test_compiled_forward_matches_eager_and_keeps_checkpoint_keys():
    eager = _network().eval()
    compiled = _same_weights(_network("model.compile=true"), eager)
    assert compiled._compiled_call_impl is not None
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints interchange
    x = _input()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would warn
        out = compiled(x)
    assert compiled._compiled_call_impl is not None, "compilation fell back to eager on this machine"
    assert (out - eager(x)).abs().max().item() <= 1e-5
    # The EMA copy (a deepcopy) runs eagerly instead of calling the original's compiled code.
    clone = copy.deepcopy(compiled)
    assert clone._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_training_step_matches_eager():
    eager = _network().train()
    compiled = _same_weights(_network("model.compile=true"), eager).train()
    x, target = _input(), torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    grads = []
    for network in (eager, compiled):
        network.zero_grad()
        torch.nn.functional.l1_loss(network(x), target).backward()
        grads.append(torch.cat([p.grad.flatten() for p in network.parameters()]))
    assert compiled._compiled_call_impl is not None
    assert (grads[0] - grads[1]).abs().max().item() <= 1e-4 * grads[0].abs().max().item() + 1e-7


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch: pytest.MonkeyPatch):
    def broken_compile(fn, *args, **kwargs):
        def call(*a, **k):
            raise TorchDynamoException("InvalidCxxCompiler: No working C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    network = _network("model.compile=true").eval()
    reference = _same_weights(_network(), network)
    x = _input()
    with torch.no_grad():
        with pytest.warns(RuntimeWarning, match="compiling 'edsr' failed.*C\\+\\+ compiler.*eagerly"):
            out = network(x)
        assert network._compiled_call_impl is None  # later calls go straight to eager, no more warnings
        assert torch.equal(out, reference(x))


def test_compile_unavailable_warns_and_builds_eager(monkeypatch: pytest.MonkeyPatch):
    def unsupported(fn, *args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python version")

    monkeypatch.setattr(torch, "compile", unsupported)
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable here"):
        network = _network("model.compile=true")
    assert network._compiled_call_impl is None
    assert network(_input()).shape == (2, 1, 48, 48)


def test_genuine_error_in_compiled_network_is_not_hidden():
    network = _network("model.compile=true").eval()
    with pytest.raises(RuntimeError) as info, torch.no_grad():
        network(torch.rand(2, 3, 24, 24))  # three channels into a one-channel network
    assert not isinstance(info.value, TorchDynamoException)  # the eager error, as PyTorch words it
    assert "channels" in str(info.value)
    assert network._compiled_call_impl is not None  # a user error does not switch compilation off
