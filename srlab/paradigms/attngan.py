"""AttnGAN training adapted to text-conditioned SR — Xu et al., "AttnGAN: Fine-Grained Text to Image
Generation with Attentional Generative Adversarial Networks", CVPR 2018 (arXiv:1711.10485).

The ``gan`` paradigm (:class:`~srlab.paradigms.gan.AdversarialSR`: content + adversarial + TV loss,
optional MSE pre-training, manual optimization) with two additions:

* the generator (``model: attngan``, :mod:`srlab.models.attngan`) is given each batch's specimen
  descriptions (``batch["tokens"]``, :mod:`srlab.data.descriptions`) in training, validation and test;
* the DAMSM (:mod:`srlab.paradigms.damsm`): a DAMSM image encoder (a small CNN,
  :class:`~srlab.models.attngan.DAMSMImageEncoder`) and the generator's text encoder are trained on
  the real HR images and their descriptions with ``L_DAMSM`` (one step per batch, its own optimizer,
  ``damsm_optimizer``, defaulting to the generator's settings), and ``damsm_weight``·``L_DAMSM(SR, D)``
  is added to the generator's loss in adversarial epochs (the paper's ``L = L_G + λ L_DAMSM``).

**Kept from the paper**: the DAMSM losses with γ1, γ2, γ3; the ratio of λ to the adversarial weight
(the paper: λ = 5 beside unit adversarial terms; here ``damsm_weight`` = 5·10⁻³ beside SRGAN's 10⁻³,
so the content loss still leads, as in SRGAN); in the generator's DAMSM term the
image encoder is fixed (it is stepped by its own optimizer only) and the text features are held
constant (detached), as the paper's pre-trained, frozen DAMSM.
**Adapted**: the paper pre-trains the DAMSM encoders and freezes them while training the GAN; here
they are trained alongside it, from the first epoch (during ``pretrain_epochs`` too, while the
generator is MSE-trained), because an SR run has no separate caption corpus to pre-train on. The
text encoder is *shared*: the generator conditions on the same word features the DAMSM aligns with
image regions (the paper's generator also uses the DAMSM text encoder), so it is in both the
generator's and the DAMSM optimizer. The generator's adversarial loss is unconditional (the paper's
discriminators also judge image–sentence pairs). With ``default_description_fraction`` > 0 the generator
is given its default description instead of the true one for that fraction of training items (the
DAMSM terms still use the true ones), so that it also learns to super-resolve without a description,
which is how ``srlab predict``, comparison suites and exports call it. Logs ``train/damsm`` (the generator's term),
``train/damsm_encoders``, ``train/damsm_word`` and ``train/damsm_sentence`` (the encoders' step on real
images). ``global_step`` counts the steps of all three optimizers.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from srlab.errors import OptionError, SrlabError
from srlab.models.attngan import DAMSMImageEncoder
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import ConditionalDiscriminator, Optimizer, OptimizerFactory, SchedulerFactory
from srlab.paradigms.damsm import Gammas, damsm_loss
from srlab.paradigms.gan import AdversarialSR, make_schedulers, manual_step


@PARADIGMS.register("attngan", data=("paired",))
class AttnGANSR(AdversarialSR):
    """AttnGAN's text-conditioned generator trained as the ``gan`` paradigm plus the DAMSM; see the module
    docstring. Options beyond ``gan``'s: ``damsm_weight`` (λ), ``gamma1``/``gamma2``/``gamma3``,
    ``damsm_features`` (width of the DAMSM image encoder), ``damsm_optimizer`` and
    ``default_description_fraction`` (:meth:`conditioning_tokens`)."""

    def __init__(self, network: nn.Module, *, discriminator: ConditionalDiscriminator, loss: nn.Module,
                 optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, scale: int = 2,
                 discriminator_optimizer: Optimizer | None = None, adversarial_loss: str = "bce",
                 content_weight: float = 1.0, adversarial_weight: float = 1e-3, tv_weight: float = 2e-8,
                 conditional: bool = False, pretrain_epochs: int = 0, discriminator_steps: int = 1,
                 generator_steps: int = 1, gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", damsm_weight: float = 5e-3, gamma1: float = 5.0,
                 gamma2: float = 5.0, gamma3: float = 10.0, damsm_features: int = 32,
                 damsm_optimizer: Optimizer | None = None, default_description_fraction: float = 0.0):
        super().__init__(network, discriminator=discriminator, loss=loss, optimizer_factory=optimizer_factory,
                         scheduler_factory=scheduler_factory, ema_decay=ema_decay, scale=scale,
                         discriminator_optimizer=discriminator_optimizer, adversarial_loss=adversarial_loss,
                         content_weight=content_weight, adversarial_weight=adversarial_weight, tv_weight=tv_weight,
                         conditional=conditional, pretrain_epochs=pretrain_epochs,
                         discriminator_steps=discriminator_steps, generator_steps=generator_steps,
                         gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)
        text_encoder = getattr(network, "text_encoder", None)
        if text_encoder is None:
            raise OptionError(f"needs a text-conditioned generator with a text encoder (model: attngan), got "
                              f"{type(network).__name__}")
        if damsm_weight < 0:
            raise OptionError(f"damsm_weight must be >= 0, got {damsm_weight}")
        for name, value in (("gamma1", gamma1), ("gamma2", gamma2), ("gamma3", gamma3)):
            if not value > 0:
                raise OptionError(f"{name} must be > 0, got {value}")
        if not 0.0 <= default_description_fraction <= 1.0:
            raise OptionError(f"default_description_fraction must be in [0, 1], got {default_description_fraction}")
        self.damsm_weight = damsm_weight
        self.default_description_fraction = default_description_fraction
        self.gammas = Gammas(gamma1, gamma2, gamma3)
        self.image_encoder = DAMSMImageEncoder(int(getattr(network, "out_channels", 1)), damsm_features, text_encoder.features)
        self.damsm_optimizer = damsm_optimizer

    @property
    def text_encoder(self) -> nn.Module:
        return self.network.text_encoder

    # -- descriptions ------------------------------------------------------------------------------
    def tokens(self, batch: dict) -> Tensor:
        tokens = batch.get("tokens")
        if tokens is None:
            raise SrlabError("paradigm attngan needs specimen descriptions in the data: simulated data has them; "
                             "for a folder set data.params.descriptions (a CSV file,description) or "
                             "data.params.description (one for all images)")
        return tokens

    def generate(self, batch: dict) -> Tensor:
        return self.network(batch["lr"], self.conditioning_tokens(batch))

    def conditioning_tokens(self, batch: dict) -> Tensor:
        """The descriptions the generator is given in training: the batch's, with a fraction
        ``default_description_fraction`` of them replaced by the generator's default description, so that
        ``forward(lr)`` without one (prediction, comparison suites, exports) is a case it was trained on.
        Which items: a generator seeded by the step (no draw from the global RNG; resumed runs agree)."""
        tokens = self.tokens(batch)
        if self.default_description_fraction <= 0:
            return tokens
        draw = torch.rand(len(tokens), generator=torch.Generator().manual_seed(int(self.global_step)))
        replace = (draw < self.default_description_fraction).to(tokens.device)
        default = self.network.default_tokens.to(tokens.device).expand_as(tokens)
        return torch.where(replace[:, None], default, tokens)

    def forward(self, lr: Tensor, tokens: Tensor | None = None) -> Tensor:
        return self.inference_network(lr, tokens)

    def super_resolve(self, batch: dict, network: nn.Module | None = None) -> Tensor:
        # Evaluation uses each image's description where the data has them, the default one otherwise.
        network = network if network is not None else self.inference_network
        return network(batch["lr"], batch.get("tokens"))

    # -- DAMSM -------------------------------------------------------------------------------------
    def damsm(self, images: Tensor, tokens: Tensor, *, text_fixed: bool = False) -> dict[str, Tensor]:
        regions, image_global = self.image_encoder(images)
        words, sentence, mask = self.text_encoder(tokens)
        if text_fixed:
            words, sentence = words.detach(), sentence.detach()
        return damsm_loss(regions, image_global, words, sentence, mask, tokens, self.gammas)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        tokens = self.tokens(batch)
        parts: dict[str, Tensor] = {}

        def encoders_loss() -> Tensor:
            parts.update(self.damsm(batch["hr"], tokens))
            return self.check_finite(parts["damsm"], "DAMSM loss")

        opt_e = self.optimizers()[2]
        loss = manual_step(self, opt_e, encoders_loss, self.gradient_clip_val, self.gradient_clip_algorithm)
        n = batch["lr"].shape[0]
        self.log_dict({"train/damsm_encoders": loss, "train/damsm_word": parts["damsm_word"].detach(),
                       "train/damsm_sentence": parts["damsm_sentence"].detach()}, batch_size=n)
        super().training_step(batch, batch_idx)

    def _terms(self, sr: Tensor, batch: dict) -> dict[str, tuple[float, Tensor]]:
        terms = super()._terms(sr, batch)
        if self.damsm_weight > 0:
            terms["damsm"] = (self.damsm_weight, self.damsm(sr, self.tokens(batch), text_fixed=True)["damsm"])
        return terms

    def configure_optimizers(self) -> Any:
        optimizers, schedulers = super().configure_optimizers()
        opt_e = self.make_optimizer([*self.trainable_parameters(self.image_encoder),
                                     *self.trainable_parameters(self.text_encoder)], self.damsm_optimizer)
        extra = make_schedulers(self, [opt_e])
        self._schedulers += extra
        return [*optimizers, opt_e], [*schedulers, *({"scheduler": s, "interval": "epoch"} for s in extra)]

