"""Registry-wide tests: every registered network honours the contract at every scale it supports."""
from __future__ import annotations

import time

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models import NETWORKS, count_parameters, create
from srlab.models.blocks import positive_copy, probe_input

# Reduced widths at the paper's depth: the setting of the "< 1 s forward/backward" check.
NARROW: dict[str, dict] = {
    "srcnn": {"features": (8, 4)}, "espcn": {"features": (8, 4)}, "fsrcnn": {"d": 8, "s": 4},
    "vdsr": {"features": 8}, "edsr": {"features": 8}, "mdsr": {"features": 8}, "drcn": {"features": 8},
    "drrn": {"features": 8}, "srresnet": {"features": 8}, "memnet": {"features": 8},
    "srdensenet": {"growth": 4, "bottleneck": 16}, "rdn": {"features": 8, "growth": 8},
    "rcan": {"features": 8, "reduction": 4}, "dfcan": {"features": 8, "reduction": 4}, "unet": {"features": 8},
}
# Reduced width and depth for the many shape/gradient/wiring cases: the repeated blocks are identical,
# so shapes and wiring do not depend on how many there are.
FAST: dict[str, dict] = {
    **NARROW,
    "vdsr": {"features": 8, "num_layers": 5}, "edsr": {"features": 8, "num_blocks": 3},
    "mdsr": {"features": 8, "num_blocks": 3}, "drcn": {"features": 8, "recursions": 3},
    "drrn": {"features": 8, "num_units": 3}, "srresnet": {"features": 8, "num_blocks": 3},
    "memnet": {"features": 8, "num_memory_blocks": 3, "num_recursions": 2},
    "srdensenet": {"growth": 4, "bottleneck": 16, "num_blocks": 3, "num_layers": 3},
    "rdn": {"features": 8, "growth": 8, "num_blocks": 3, "num_layers": 3},
    "rcan": {"features": 8, "reduction": 4, "num_groups": 2, "num_blocks": 3},
    "dfcan": {"features": 8, "reduction": 4, "num_groups": 2, "num_blocks": 2},
}
# The model zoo; models registered by other modules are held to the same contract, except that
# they may refuse several channels with a one-line error.
SURVEY = {"srcnn", "espcn", "fsrcnn", "vdsr", "edsr", "mdsr", "drcn", "drrn", "srresnet", "memnet", "srdensenet",
          "rdn", "rcan", "dfcan", "unet", "bicubic", "ibp", "richardson_lucy"}
# Models small enough to time at their paper width (everything else is timed at NARROW widths).
PAPER_WIDTH_TIMED = {"srcnn", "espcn", "fsrcnn", "bicubic", "ibp", "richardson_lucy"}
# Networks under the SR contract; rating networks (Card.output == "score") are tested in test_quality.py.
NAMES = [n for n in NETWORKS.names() if NETWORKS.entry(n).card.output == "image"]
LEARNED = [n for n in NAMES if NETWORKS.entry(n).info.get("learned", True)]
CASES = [(name, scale) for name in NAMES for scale in NETWORKS.entry(name).info.get("scales", (2,))]
SIZE = 12


def build(name: str, scale: int, *, config: dict | None = None, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {**(FAST if config is None else config).get(name, {}), "scale": scale, **overrides}
    if "scales" in NETWORKS.parameters(name):  # MDSR: build only the head that is used
        kwargs.setdefault("scales", (scale,))
    return create(name, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_registration_info(name: str) -> None:
    entry = NETWORKS.entry(name)
    assert entry.family
    assert isinstance(entry.info.get("paper"), str) and entry.info["paper"]
    assert isinstance(entry.info.get("learned"), bool)
    scales = entry.info.get("scales")
    assert isinstance(scales, tuple) and scales and all(isinstance(s, int) and s >= 1 for s in scales)
    params = NETWORKS.parameters(name)
    for key in ("in_channels", "out_channels", "scale"):
        assert key in params and params[key].kind is params[key].KEYWORD_ONLY, f"{name}: {key} not keyword-only"
    assert params["in_channels"].default == 1 and params["out_channels"].default == 1
    assert params["scale"].default in (2, scales[0])
    assert all(p.kind is not p.VAR_KEYWORD for p in params.values())


@pytest.mark.parametrize("name", NAMES)
def test_defaults_build_and_learned_flag(name: str) -> None:
    with torch.device("meta"):  # paper-size models: no memory, no initialisation time
        net = create(name)
    has_params = count_parameters(net) > 0
    assert has_params == NETWORKS.entry(name).info["learned"]


@pytest.mark.parametrize(("name", "scale"), CASES, ids=[f"{n}-x{s}" for n, s in CASES])
def test_output_shape_every_scale(name: str, scale: int) -> None:
    net = build(name, scale).eval()
    lr = torch.rand(2, 1, SIZE, SIZE)
    with torch.no_grad():
        sr = net(lr)
    assert sr.shape == (2, 1, scale * SIZE, scale * SIZE)
    assert torch.isfinite(sr).all()


@pytest.mark.parametrize("name", NAMES)
def test_channels_are_configurable(name: str) -> None:
    scale = NETWORKS.entry(name).info["scales"][0]
    if name not in SURVEY:
        try:
            build(name, scale, in_channels=3, out_channels=3)
        except SrlabError as err:
            assert "in_channels" in str(err) and "\n" not in str(err)
            return
    net = build(name, scale, in_channels=3, out_channels=3).eval()
    with torch.no_grad():
        sr = net(torch.rand(1, 3, SIZE, SIZE))
    assert sr.shape == (1, 3, scale * SIZE, scale * SIZE)


def _scale_for_grad(name: str) -> int:
    return 2 if 2 in NETWORKS.entry(name).info["scales"] else NETWORKS.entry(name).info["scales"][0]


@pytest.mark.parametrize("name", LEARNED)
def test_gradients_reach_every_parameter(name: str) -> None:
    """Autograd reaches every parameter of the real model (train mode) with a finite gradient."""
    scale = _scale_for_grad(name)
    net = build(name, scale).train()
    lr = torch.rand(2, 1, SIZE, SIZE)
    target = torch.rand(2, 1, scale * SIZE, scale * SIZE)
    torch.nn.functional.mse_loss(net(lr), target).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize("name", LEARNED)
def test_every_parameter_influences_the_output(name: str) -> None:
    """Wiring check: on a copy whose paths are all live (positive weights, no dead ReLUs — at reduced
    width and default init a whole ReLU layer can be dead for an input, which zeroes gradients
    legitimately), every parameter gets a non-zero gradient, so none is multiplied away or unused."""
    scale = _scale_for_grad(name)
    net = positive_copy(build(name, scale))
    net(probe_input(1, SIZE)).sum().backward()
    # PReLU slopes act on negative inputs only, which a positive probe never produces
    slopes = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.PReLU)}
    for pname, p in net.named_parameters():
        if id(p) not in slopes:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} does not affect the output"


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic(name: str) -> None:
    net = build(name, NETWORKS.entry(name).info["scales"][0]).eval()
    lr = torch.rand(1, 1, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(net(lr), net(lr))


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_under_one_second(name: str) -> None:
    """Issue #5: forward/backward on a small patch < 1 s per model on CPU (reduced width for large ones;
    forward only for classical methods)."""
    scale = _scale_for_grad(name)
    net = create(name, scale=scale) if name in PAPER_WIDTH_TIMED else build(name, scale, config=NARROW)
    learned = NETWORKS.entry(name).info["learned"]
    lr = torch.rand(1, 1, SIZE, SIZE, requires_grad=learned)
    # CPU time of one thread: what the model costs, not how busy the shared machine is
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = float("inf")
        for _ in range(2):
            start = time.process_time()
            out = net(lr)
            if learned:  # classical methods are evaluated only (and some are not differentiable)
                out.square().mean().backward()
            best = min(best, time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    assert best < 1.0, f"{name}: forward/backward took {best:.2f} s of CPU time"


@pytest.mark.parametrize("name", ["drcn", "memnet"])
def test_forward_with_intermediates(name: str) -> None:
    net = build(name, 2, config=NARROW).eval()
    lr = torch.rand(1, 1, SIZE, SIZE)
    with torch.no_grad():
        final, intermediates = net.forward_with_intermediates(lr)
        expected = sum(w * y for w, y in zip(net.ensemble_weights, intermediates))
        assert torch.equal(final, net(lr))
    n = net.recursions if name == "drcn" else len(net.memory_blocks)
    assert len(intermediates) == n == (16 if name == "drcn" else 6)
    assert all(y.shape == final.shape for y in intermediates)
    torch.testing.assert_close(final, expected)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(SrlabError, match=r"unknown model 'edrs' \(did you mean 'edsr'\?\); valid: .*vdsr"):
        create("edrs")


def test_unknown_option_names_key_and_choices() -> None:
    with pytest.raises(SrlabError) as err:
        create("edsr", num_block=8)
    message = str(err.value)
    assert "\n" not in message and "model.params.num_block" in message and "num_blocks" in message


@pytest.mark.parametrize(("name", "kwargs", "pattern"), [
    ("edsr", {"scale": 5}, r"scale must be one of 1, 2, 3, 4, 8, got 5"),
    ("mdsr", {"scale": 2, "scales": (3, 4)}, r"scale must be one of the scales with heads \(3, 4\)"),
    ("vdsr", {"in_channels": 2, "out_channels": 1}, r"out_channels must equal in_channels"),
    ("unet", {"upsampling": "deconv"}, r"upsampling must be one of pre, subpixel"),
    ("srcnn", {"kernel_sizes": (9, 4, 5)}, r"kernel_sizes must be three odd sizes"),
])
def test_bad_values_are_one_line_user_errors(name: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(SrlabError, match=pattern) as err:
        create(name, **kwargs)
    assert "\n" not in str(err.value)


def test_mdsr_switches_heads() -> None:
    net = create("mdsr", features=8, num_blocks=2).eval()
    lr = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        for scale in (2, 3, 4):
            net.scale = scale
            assert net(lr).shape == (1, 1, 8 * scale, 8 * scale)


@pytest.mark.parametrize("upsampling", ["pre", "subpixel"])
def test_unet_any_patch_size(upsampling: str) -> None:
    net = create("unet", features=4, depth=3, kernel_size=3, upsampling=upsampling, batch_norm=True,
                 block_residual=True, activation="leaky_relu", pooling="avg").eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 13, 7)).shape == (1, 1, 26, 14)


def test_dfcan_sigmoid_output_is_optional() -> None:
    lr = torch.rand(1, 1, SIZE, SIZE) * 10
    with torch.no_grad():
        bounded = build("dfcan", 2).eval()(lr)
        free = build("dfcan", 2, output_sigmoid=False).eval()(lr)
    assert bounded.min() > 0 and bounded.max() < 1
    torch.testing.assert_close(bounded, torch.sigmoid(free))


def test_a_model_from_another_package_is_one_file_and_one_yaml(tmp_path, monkeypatch):
    """Adding a model: one module that registers it (here in a package of one's own, found through its
    'srlab.models' entry point — srlab is not edited) and one experiment YAML; it trains one step."""
    from srlab import cli, registry
    from tests.conftest import install_plugin

    install_plugin(tmp_path, monkeypatch, package="throwaway_models", group="srlab.models", entry="throwaway",
                   registry=registry.NETWORKS, source=(
                       "from torch import nn\n"
                       "from srlab.models import NETWORKS\n\n\n"
                       "@NETWORKS.register('throwaway', family='linear', paper='none (a test)')\n"
                       "class Throwaway(nn.Module):\n"
                       "    def __init__(self, in_channels: int = 1, out_channels: int = 1, scale: int = 2, "
                       "features: int = 4):\n"
                       "        super().__init__()\n"
                       "        self.body = nn.Sequential(nn.Conv2d(in_channels, features * scale**2, 3, padding=1),\n"
                       "                                  nn.Conv2d(features * scale**2, out_channels * scale**2, 1),\n"
                       "                                  nn.PixelShuffle(scale))\n\n"
                       "    def forward(self, lr):\n"
                       "        return self.body(lr)\n"))
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "throwaway_smoke.yaml").write_text(
        "defaults: [data/sim_smoke, paradigm/supervised, trainer/cpu_smoke, logger/wandb]\n"
        "model: {name: throwaway, params: {features: 2}}\n")
    monkeypatch.chdir(tmp_path)

    assert "throwaway" in registry.NETWORKS
    assert registry.NETWORKS.entry("throwaway").card.paper == "none (a test)"
    code = cli.main(["train", "throwaway_smoke", "logger.wandb.enabled=false", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                     "trainer.enable_progress_bar=false", "data.batch_size=2", f"runs_dir={tmp_path / 'runs'}"])
    assert code == 0
    assert list((tmp_path / "runs" / "throwaway_smoke").glob("*/metrics.json"))


def test_a_bug_in_a_constructor_keeps_its_traceback_and_bad_values_are_one_line():
    from srlab.errors import SrlabError
    from srlab.registry import Registry

    reg: Registry = Registry("thing")

    @reg.register("buggy")
    def buggy(width: int = 1):
        return {}["missing"] if width else None  # a bug: KeyError

    @reg.register("picky")
    def picky(width: int = 1, mode: str = "a"):
        from srlab.errors import OptionError
        if mode not in ("a", "b"):
            raise OptionError(f"mode must be a or b, got {mode!r}")
        return width

    with pytest.raises(KeyError):
        reg.create("buggy", width=2)
    with pytest.raises(SrlabError, match=r"thing 'picky': mode must be a or b"):
        reg.create("picky", mode="c")
    with pytest.raises(SrlabError, match=r"model\.params\.width='8x': thing 'picky' takes an integer"):
        reg.create("picky", _where="model.params", width="8x")
    with pytest.raises(SrlabError, match=r"registered by"):
        reg.entry("nope")
    assert reg.create("picky", width=3) == 3
