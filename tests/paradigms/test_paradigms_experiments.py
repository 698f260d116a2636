"""Every experiment of the survey exists, composes, and builds (what ``srlab show NAME`` checks), with
and without ``profile=quick``; paradigm sub-components in configs are checked like the rest."""
from __future__ import annotations

import pytest
import torch

from srlab import build
from srlab.config import list_experiments, load_experiment
from srlab.errors import SrlabError

SURVEY = ["bicubic_sted", "ibp_sted", "rl_sted", "srcnn_sted", "espcn_sted", "fsrcnn_sted", "vdsr_sted",
          "edsr_sted", "mdsr_sted", "drcn_sted", "drrn_sted", "memnet_sted", "srdensenet_sted", "rdn_sted",
          "srresnet_sted", "srgan_sted", "rcan_sted", "dfcan_sted", "crossmodal_gan_sted", "rfganm_sted",
          "bulat_sted", "crossmodal_gan_sim", "crossmodal_gan_tirfsim", "crossmodal_gan_wf20x"]


def test_every_survey_experiment_is_listed():
    listed = set(list_experiments())
    assert [name for name in SURVEY if name not in listed] == []


def _validate(cfg) -> None:
    # Networks are built on the meta device: every option is checked without allocating the
    # multi-million-parameter models (the checks are the same as `srlab show`).
    with torch.device("meta"):
        build.validate(cfg)


@pytest.mark.parametrize("name", SURVEY)
def test_experiment_validates_as_srlab_show_does(name):
    cfg = load_experiment(name)
    _validate(cfg)
    assert cfg.description
    quick = load_experiment(name, ["profile=quick"])
    _validate(quick)
    # The quick profile shrinks the run but keeps the model and the data kind.
    assert (quick.model.name, quick.data.kind, quick.paradigm.name) == (cfg.model.name, cfg.data.kind,
                                                                        cfg.paradigm.name)
    assert quick.trainer.accelerator == "cpu"


def test_gan_experiment_builds_its_discriminator_and_optimizers():
    cfg = load_experiment("crossmodal_gan_sted", ["profile=quick"])
    task = build.build_task(cfg)
    assert task.conditional and task.discriminator.model[0].in_channels == 2 * cfg.data.channels
    opt_g, opt_d = task.configure_optimizers()[0]
    assert opt_g.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_bulat_experiment_builds_degrader_and_both_discriminators():
    task = build.build_task(load_experiment("bulat_sted", ["profile=quick"]))
    lr = task.degrader(torch.rand(1, 1, 48, 48))
    assert lr.shape == (1, 1, 24, 24)
    assert len(task.configure_optimizers()[0]) == 6  # High→Low, LR critic, SR, HR critic, and the baseline pair


@pytest.mark.parametrize("override, message", [
    ("paradigm.params.discriminator.name=vgg", "unknown discriminator"),
    ("paradigm.params.discriminator.params.widht=3", "widht"),
    ("paradigm.params.discriminator_optimizer.lrate=0.1", "lrate"),
    ("paradigm.params.discriminator_optimizer.name=lion", "optimizer"),
    ("paradigm.params.adversarial_loss=wgan", "adversarial_loss"),
    ("trainer.gradient_clip_val=1.0", "paradigm.params.gradient_clip_val"),
    ("trainer.accumulate_grad_batches=2", "accumulate_grad_batches"),
])
def test_bad_gan_options_are_one_line_errors(override, message):
    cfg = load_experiment("srgan_sted", ["profile=quick", override])
    with pytest.raises(SrlabError, match=message) as err:
        _validate(cfg)
    assert "\n" not in str(err.value)


def test_bad_degrader_options_are_one_line_errors():
    cfg = load_experiment("bulat_sted", ["paradigm.params.degrader.params.noise=gaussian"])
    with pytest.raises(SrlabError, match="noise"):
        _validate(cfg)
    cfg = load_experiment("bulat_sted", ["paradigm.params.degrader.params.scale=4"])
    with pytest.raises(SrlabError, match="data.scale"):
        _validate(cfg)


def test_vgg_content_loss_without_weights_file_is_an_error():
    cfg = load_experiment("srgan_sted", ["paradigm.loss.name=vgg19"])
    with pytest.raises(SrlabError, match="weights_path"):
        _validate(cfg)


def test_sub_networks_are_built_from_the_paradigms_annotations_not_their_names():
    """A paradigm argument typed Discriminator/Degrader/Optimizer is built from its config entry,
    whatever it is called (no 'discriminator'/'*_optimizer' naming rule)."""
    from srlab.build import _components
    from srlab.models.degradation import DEGRADERS
    from srlab.models.discriminators import DISCRIMINATORS

    kinds = {k: c.kind for k, c in _components("degradation_gan").items()}
    assert kinds == {"degrader": "degrader", "discriminator": "discriminator", "lr_discriminator": "discriminator",
                     "discriminator_optimizer": "optimizer", "degrader_optimizer": "optimizer",
                     "lr_discriminator_optimizer": "optimizer"}
    gan = _components("gan")
    assert gan["discriminator"].sees_condition and gan["discriminator_optimizer"].kind == "optimizer"
    task = build.build_task(load_experiment("bulat_sted", ["profile=quick"]))
    assert type(task.degrader) is DEGRADERS.get("bulat")
    assert type(task.lr_discriminator) is DISCRIMINATORS.get("patchgan")
    cond = build.build_task(load_experiment("crossmodal_gan_sted", ["profile=quick"]))
    first = next(m for m in cond.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 2  # sees the upsampled LR beside the image
