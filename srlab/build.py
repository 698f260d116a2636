"""The one place where a config becomes objects: networks, losses, optimizers, schedulers, paradigm, data."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srlab import models
from srlab.data import build_datamodule
from srlab.errors import SrlabError, unknown_choice
from srlab.paradigms import PARADIGMS
from srlab.paradigms.losses import LOSSES

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "cosine", "plateau")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def network_kwargs(cfg: DictConfig, model_cfg: DictConfig | None = None) -> dict[str, Any]:
    """``model.params`` plus in/out channels and scale from the data block where the network takes them."""
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    kwargs = dict(_plain(model_cfg.params))
    accepted = models.NETWORKS.parameters(model_cfg.name)
    implied = {"in_channels": cfg.data.channels, "out_channels": cfg.data.channels, "scale": cfg.data.scale}
    for key, value in implied.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    if "scale" in kwargs and kwargs["scale"] != cfg.data.scale:
        raise SrlabError(f"model.params.scale={kwargs['scale']} disagrees with data.scale={cfg.data.scale}")
    return kwargs


def build_network(cfg: DictConfig) -> nn.Module:
    network = models.create(cfg.model.name, **network_kwargs(cfg))
    if cfg.model.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network


def build_loss(loss_cfg: DictConfig) -> nn.Module:
    return LOSSES.create(loss_cfg.name, _where="paradigm.loss.params", **_plain(loss_cfg.params))


def build_optimizer_factory(opt_cfg: DictConfig):
    name = opt_cfg.name.lower()
    if name not in OPTIMIZERS:
        raise unknown_choice("optimizer (paradigm.optimizer.name)", opt_cfg.name, OPTIMIZERS)
    betas = tuple(opt_cfg.betas)

    def factory(parameters: Iterable[nn.Parameter], lr: float | None = None) -> torch.optim.Optimizer:
        lr = opt_cfg.lr if lr is None else lr
        if name == "adam":
            return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=opt_cfg.eps,
                                    weight_decay=opt_cfg.weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(parameters, lr=lr, betas=betas, eps=opt_cfg.eps,
                                     weight_decay=opt_cfg.weight_decay)
        if name == "rmsprop":
            return torch.optim.RMSprop(parameters, lr=lr, momentum=opt_cfg.momentum,
                                       weight_decay=opt_cfg.weight_decay)
        return torch.optim.SGD(parameters, lr=lr, momentum=opt_cfg.momentum, weight_decay=opt_cfg.weight_decay)

    return factory


def build_scheduler_factory(sched_cfg: DictConfig, max_epochs: int):
    name = sched_cfg.name.lower()
    if name not in SCHEDULERS:
        raise unknown_choice("scheduler (paradigm.scheduler.name)", sched_cfg.name, SCHEDULERS)
    if name == "none":
        return None

    def factory(optimizer: torch.optim.Optimizer) -> dict:
        sched = torch.optim.lr_scheduler
        if name == "step":
            s = sched.StepLR(optimizer, step_size=sched_cfg.step_size, gamma=sched_cfg.gamma)
        elif name == "multistep":
            s = sched.MultiStepLR(optimizer, milestones=list(sched_cfg.milestones), gamma=sched_cfg.gamma)
        elif name == "cosine":
            s = sched.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs), eta_min=sched_cfg.eta_min)
        else:
            s = sched.ReduceLROnPlateau(optimizer, mode="max", factor=sched_cfg.factor,
                                        patience=sched_cfg.patience)
            return {"scheduler": s, "interval": "epoch", "monitor": "val/psnr"}
        return {"scheduler": s, "interval": "epoch"}

    return factory


def build_task(cfg: DictConfig, network: nn.Module | None = None) -> L.LightningModule:
    """The paradigm's LightningModule with its network(s), loss and optimizer factories."""
    network = network if network is not None else build_network(cfg)
    pcfg = cfg.paradigm
    params = dict(_plain(pcfg.params))
    PARADIGMS.check_kwargs(pcfg.name, params, "paradigm.params")
    accepted = PARADIGMS.parameters(pcfg.name)
    common: dict[str, Any] = {
        "loss": lambda: build_loss(pcfg.loss),
        "optimizer_factory": lambda: build_optimizer_factory(pcfg.optimizer),
        "scheduler_factory": lambda: build_scheduler_factory(pcfg.scheduler, cfg.trainer.max_epochs),
        "ema_decay": lambda: pcfg.ema_decay,
        "scale": lambda: cfg.data.scale,
    }
    kwargs = {k: make() for k, make in common.items() if k in accepted}
    kwargs.update(params)
    return PARADIGMS.create(pcfg.name, _where="paradigm.params", network=network, **kwargs)


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    return build_datamodule(cfg.data, seed=cfg.seed)


def validate(cfg: DictConfig) -> None:
    """Build what a run would build, without data, to surface every config error before training."""
    network = build_network(cfg)
    build_task(cfg, network)
    from srlab.data import DATAMODULES
    DATAMODULES.check_kwargs(cfg.data.kind, _plain(cfg.data.params), "data.params")
