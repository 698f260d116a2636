"""The attngan paradigm: the gan paradigm plus DAMSM, with the batch's descriptions passed to the generator;
a tiny run of the attngan_sted experiment to metrics.json; one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

from srlab import build, experiment, models
from srlab.config import load_experiment
from srlab.errors import SrlabError
from srlab.models.discriminators import create_discriminator
from srlab.paradigms.attngan import AttnGANSR
from srlab.paradigms.losses import MSELoss
from tests.conftest import TINY
from tests.paradigms.toy import ToyDataModule, trainer


def _task(**options) -> AttnGANSR:
    torch.manual_seed(0)
    generator = models.create("attngan", scale=2, features=8, num_blocks=1, embedding_dim=8, text_features=8)
    discriminator = create_discriminator("srgan", in_channels=1, features=4, hidden=16, pooled_size=1)
    return AttnGANSR(generator, discriminator=discriminator, loss=MSELoss(), damsm_features=4,
                     optimizer_factory=lambda p: torch.optim.Adam(p, lr=1e-3), **options)


def test_attngan_experiment_trains_to_metrics_json(tmp_path):
    """A tiny attngan_sted run (the small simulated set, a few batches): the run's files, the DAMSM and
    description-conditioned test metrics, and a network.pt that rebuilds through the registry."""
    cfg = load_experiment("attngan_sted", [
        *TINY, f"runs_dir={tmp_path / 'runs'}", "data=sim_smoke", "model.params.embedding_dim=8",
        "model.params.text_features=8", "paradigm.params.pretrain_epochs=0", "paradigm.params.damsm_features=4",
        "paradigm.params.discriminator.params.features=4", "paradigm.params.discriminator.params.hidden=16",
        "trainer.limit_train_batches=2"])
    run = experiment.train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/psnr"] > 0 and "test/bicubic_psnr" in metrics
    card = json.loads((run / "network.json").read_text())
    assert card["network"] == "attngan" and card["paradigm"] == "attngan"
    from srlab.inference import load_network

    network, _ = load_network(run)
    with torch.no_grad():
        assert network(torch.rand(1, 1, 10, 10)).shape == (1, 1, 20, 20)


def test_every_optimizer_steps_and_the_damsm_is_logged(tmp_path):
    task = _task()
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in (("generator", task.network), ("discriminator", task.discriminator),
                                   ("image_encoder", task.image_encoder))}
    seen = []

    class Described(ToyDataModule):
        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            n = batch["lr"].shape[0]
            batch["tokens"] = torch.zeros(n, 8, dtype=torch.long)
            batch["tokens"][:, :3] = torch.tensor([1, 14, 15])
            batch["tokens"][1::2, 0] = 2  # two descriptions in each batch
            seen.append(batch["tokens"])
            return batch

    t = trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    t.fit(task, datamodule=Described())
    for name, params in before.items():
        module = {"generator": task.network, "discriminator": task.discriminator,
                  "image_encoder": task.image_encoder}[name]
        assert any(not torch.equal(b, p) for b, p in zip(params, module.parameters())), f"{name} did not step"
    logged = t.callback_metrics
    for key in ("train/damsm", "train/damsm_encoders", "train/damsm_word", "train/damsm_sentence", "train/g_loss"):
        assert key in logged and torch.isfinite(logged[key]), key
    assert len(seen) >= 3  # training and validation batches got their descriptions


def test_a_fraction_of_training_items_condition_on_the_default_description():
    tokens = torch.zeros(64, 8, dtype=torch.long)
    tokens[:, :4] = torch.tensor([1, 14, 15, 23])  # microtubules confocal sted 40nm
    batch = {"tokens": tokens}
    default = _task().network.default_tokens
    assert torch.equal(_task(default_description_fraction=0.0).conditioning_tokens(batch), tokens)
    assert (_task(default_description_fraction=1.0).conditioning_tokens(batch) == default).all()
    half = _task(default_description_fraction=0.5)
    mixed = half.conditioning_tokens(batch)
    replaced = (mixed == default).all(dim=1)
    assert 16 < int(replaced.sum()) < 48 and (mixed[~replaced] == tokens[~replaced]).all()
    assert torch.equal(mixed, half.conditioning_tokens(batch))  # a function of the step, not of a global RNG


def test_data_without_descriptions_is_a_one_line_error(tmp_path):
    t = trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    with pytest.raises(SrlabError, match=r"paradigm attngan needs specimen descriptions.*data.params.description"):
        t.fit(_task(), datamodule=ToyDataModule())


def test_attngan_needs_a_text_conditioned_generator():
    cfg = load_experiment("attngan_sted", ["model=srresnet"])
    with pytest.raises(SrlabError, match=r"paradigm 'attngan': needs a text-conditioned generator"):
        build.build_task(cfg)


def test_attngan_experiment_validates_with_and_without_the_quick_profile():
    for overrides in ([], ["profile=quick"]):
        cfg = load_experiment("attngan_sted", overrides)
        with torch.device("meta"):  # every option checked, nothing allocated
            build.validate(cfg)
        assert (cfg.model.name, cfg.paradigm.name, cfg.data.simulation.structures_per_image) == ("attngan", "attngan", 2)


# attngan_sted at toy size for the fault-injection check of tests/foundation/test_resume.py: three
# optimizers stepped by hand, descriptions in every batch, step-seeded default-description draws.
ATTN_RUN = [
    "profile=quick", "model.params.num_blocks=1", "model.params.features=8", "model.params.embedding_dim=8",
    "model.params.text_features=8", "paradigm.params.pretrain_epochs=1", "paradigm.params.damsm_features=4",
    "paradigm.params.discriminator.params.features=8", "paradigm.params.discriminator.params.hidden=16",
    "trainer.max_epochs=3", "trainer.limit_train_batches=1.0", "data.patches_per_epoch=24", "data.batch_size=4",
    "data.patch_size=16", "data.simulation.n_images=8", "data.simulation.lr_size_px=48",
    "trainer.limit_val_batches=1", "trainer.limit_test_batches=2", "trainer.checkpoint_every_min=0.00001",
    "logger.wandb.enabled=false", "trainer.enable_progress_bar=false",
]


@pytest.mark.slow
def test_attngan_killed_at_random_points_then_resumed_equals_uninterrupted(tmp_path, record_property):
    from tests.foundation.test_resume import (
        test_kill9_at_random_points_then_resume_equals_uninterrupted as check,
    )

    check(tmp_path, "attngan_sted", ATTN_RUN, 3, record_property)
