"""The one place where a config becomes objects: networks, losses, optimizers, schedulers, paradigm, data."""
from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from srlab import models
from srlab.config import OptimizerConfig
from srlab.data import build_datamodule
from srlab.errors import SrlabError, unknown_choice
from srlab.models.degradation import DEGRADERS
from srlab.models.discriminators import DISCRIMINATORS
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import Component
from srlab.paradigms.losses import LOSSES

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "cosine", "plateau")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


#: How a network that models the blur takes its PSF (:mod:`srlab.models.classical`).
PSF_KEYS = frozenset({"psf_fwhm_nm", "psf_fwhm_px", "pixel_size_nm"})
#: How the LR image was formed from the blurred HR one, which a deconvolution on the LR grid adds to
#: its PSF (:class:`srlab.models.classical.RichardsonLucy`); implied by the data block with the PSF.
FORMATION_KEY = "lr_downsampling"


def _takes_psf(accepted: Any) -> bool:
    """Whether a network's constructor (its accepted parameters) models the blur with a PSF in nm."""
    return {"psf_fwhm_nm", "pixel_size_nm"} <= set(accepted)


def _with_data_implied(cfg: DictConfig, kwargs: dict[str, Any], accepted: Any, where: str) -> dict[str, Any]:
    """``kwargs`` plus in/out channels and scale from the data block, for the ones the constructor takes;
    an explicit scale must agree with ``data.scale``. Multi-frame data (``data.frames``) feed T frames
    as channels and want one HR image: ``in_channels = channels × frames``. A network that takes a PSF
    (``psf_fwhm_nm`` + ``pixel_size_nm``) and is given none gets the blur between the data's HR and LR
    images where the block implies one (:func:`srlab.data.physics.relative_blur`), and with it how the LR
    image was formed (``lr_downsampling``) where it takes that."""
    frames = int(cfg.data.get("frames", 1))
    implied = {"in_channels": cfg.data.channels * frames, "out_channels": cfg.data.channels,
               "scale": cfg.data.scale}
    if cfg.data.get("scales"):  # multi-scale data (data.kind: multiscale): a head for each of its scales
        implied["scales"] = [int(v) for v in cfg.data.scales]
    for key, value in implied.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    if "scale" in kwargs and kwargs["scale"] != cfg.data.scale:
        raise SrlabError(f"{where}.scale={kwargs['scale']} disagrees with data.scale={cfg.data.scale}")
    missing = sorted(set(implied.get("scales", ())) - set(kwargs.get("scales", ())))
    if "scales" in accepted and missing:
        raise SrlabError(f"{where}.scales={list(kwargs['scales'])} has no head for data.scales {missing}")
    if _takes_psf(accepted) and not PSF_KEYS & set(kwargs):
        # A network that models the blur gets the data's own (a calibrated block's measured PSFs),
        # unless the experiment fixes one
        from srlab.data.physics import relative_blur

        blur = relative_blur(cfg.data)
        if blur is not None and blur.fwhm_nm > 0:
            kwargs.update(psf_fwhm_nm=round(blur.fwhm_nm, 2), pixel_size_nm=blur.lr_pixel_size_nm)
            if FORMATION_KEY in accepted:
                kwargs.setdefault(FORMATION_KEY, blur.downsampling)
    return kwargs


def default_psf_note(cfg: DictConfig) -> str | None:
    """One line for a network that deconvolves but was given no PSF and whose data imply none (your own
    pairs): it then uses its own default, which the user should know about; ``None`` otherwise."""
    accepted = models.NETWORKS.parameters(cfg.model.name)
    if not _takes_psf(accepted) or PSF_KEYS & set(network_kwargs(cfg)):
        return None
    from srlab.models.classical import DEFAULT_PSF_FWHM_PX

    return (f"srlab: note: {cfg.model.name} deconvolves with its default PSF ({DEFAULT_PSF_FWHM_PX:g} LR pixels FWHM): "
            f"data.kind={cfg.data.kind} says nothing of the blur between your LR and HR images; set "
            f"model.params.psf_fwhm_nm and model.params.pixel_size_nm (see `srlab calibrate`)")


def network_kwargs(cfg: DictConfig, model_cfg: DictConfig | None = None) -> dict[str, Any]:
    """``model.params`` plus in/out channels and scale from the data block where the network takes them."""
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    return _with_data_implied(cfg, dict(_plain(model_cfg.params)), models.NETWORKS.parameters(model_cfg.name),
                              "model.params")


def pin_network_psf(cfg: DictConfig, built_from: DictConfig) -> DictConfig:
    """``cfg`` with the PSF its network took from ``built_from``'s data block written into ``model.params``.

    A network that models the blur takes it from the data block it was trained on; a config derived from
    that run with other data (``srlab adapt``'s ``adapt`` block, ``srlab test RUN data=...``) must rebuild
    the same network, not one deconvolving with the new data's PSF."""
    built = network_kwargs(built_from)
    for key in PSF_KEYS | {FORMATION_KEY}:  # the trained PSF replaces any other form of it (a PSF is given one way only)
        if key in built:
            cfg.model.params[key] = built[key]
        elif key in cfg.model.params:
            del cfg.model.params[key]
    return cfg


def build_network(cfg: DictConfig) -> nn.Module:
    """The SR network of ``cfg.model``, with the fast paths the config asks for.

    ``model.channels_last`` stores the weights NHWC, the layout tensor cores and oneDNN prefer; the
    convolutions then produce NHWC activations. ``model.compile`` compiles the network in place
    (``nn.Module.compile``): class and ``state_dict`` keys stay the same, so checkpoints load into
    eager and compiled networks alike, and a ``deepcopy`` (the EMA copy) runs eagerly. Compilation
    happens on the first call; where it fails (no C++ compiler for Inductor's CPU kernels, a Python
    that Dynamo does not support) srlab warns once and runs the network eagerly instead of stopping
    the run. A failure while compiling the backward pass is not caught. Measured in BENCHMARKS.md.
    """
    network = models.create(cfg.model.name, **network_kwargs(cfg))
    if cfg.model.channels_last:
        network = network.to(memory_format=torch.channels_last)
    if not cfg.model.compile:
        return network
    import warnings

    from torch._dynamo.exc import TorchDynamoException

    name = cfg.model.name
    try:
        network.compile()
    except RuntimeError as err:  # torch.compile refuses this platform or Python version up front
        warnings.warn(f"model.compile=true: torch.compile is unavailable here ({str(err).splitlines()[0]}); "
                      f"'{name}' runs eagerly", RuntimeWarning, stacklevel=2)
        return network
    compiled = network._compiled_call_impl

    def compiled_or_eager(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except TorchDynamoException as err:
            # Eager first: a genuine error in the network raises here, as itself, and compile stays on.
            out = network._call_impl(*args, **kwargs)
            network._compiled_call_impl = None
            reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            warnings.warn(f"model.compile=true: compiling '{name}' failed ({reason[:200]}); running it eagerly",
                          RuntimeWarning, stacklevel=2)
            return out

    network._compiled_call_impl = compiled_or_eager
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
    if name == "cosine" and not (max_epochs or 0) >= 1:
        # T_max = max_epochs: with none set (max_epochs=-1, a run bounded by max_steps) it was 1, and the rate
        # went down and back up every other epoch
        raise SrlabError(f"paradigm.scheduler.name=cosine anneals over trainer.max_epochs, which is {max_epochs}; "
                         f"set trainer.max_epochs (>= 1) or choose another scheduler")

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


def _component_spec(value: Any, where: str, registry) -> tuple[str, dict[str, Any]]:
    """``{name: ..., params: {...}}`` of a sub-network named in ``paradigm.params``."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value or set(value) - {"name", "params"}:
        raise SrlabError(f"{where} must be {{name: <{registry.kind}>, params: {{...}}}}; "
                         f"valid names: {', '.join(registry.names())}")
    params = value.get("params") or {}
    if not isinstance(params, dict):
        raise SrlabError(f"{where}.params must be a mapping of options, got {params!r}")
    if value["name"] not in registry:
        raise unknown_choice(f"{registry.kind} ({where}.name)", value["name"], registry.names())
    return value["name"], dict(params)


def build_discriminator(cfg: DictConfig, value: Any, where: str, conditional: bool = False) -> nn.Module:
    """A discriminator from ``paradigm.params.<key>``; ``in_channels`` defaults to the data's channels
    (twice that for a conditional GAN, which also sees the upsampled LR image)."""
    name, kwargs = _component_spec(value, where, DISCRIMINATORS)
    if "in_channels" in DISCRIMINATORS.parameters(name):
        kwargs.setdefault("in_channels", cfg.data.channels * (2 if conditional else 1))
    return DISCRIMINATORS.create(name, _where=f"{where}.params", **kwargs)


def build_degrader(cfg: DictConfig, value: Any, where: str) -> nn.Module:
    """A High→Low generator from ``paradigm.params.<key>``; channels and scale from the data block."""
    name, kwargs = _component_spec(value, where, DEGRADERS)
    kwargs = _with_data_implied(cfg, kwargs, DEGRADERS.parameters(name), f"{where}.params")
    return DEGRADERS.create(name, _where=f"{where}.params", **kwargs)


def _optimizer_from_params(value: Any, where: str):
    """An extra optimizer (``paradigm.params.discriminator_optimizer: {name: adam, lr: ...}``), checked
    against the same schema as ``paradigm.optimizer``."""
    if not isinstance(value, dict):
        raise SrlabError(f"{where} must be a mapping like {{name: adam, lr: 1.0e-4}}, got {value!r}")
    try:
        opt_cfg = OmegaConf.merge(OmegaConf.structured(OptimizerConfig), value)
    except OmegaConfBaseException as err:  # unknown key or wrong type
        key = getattr(err, "full_key", None) or "?"
        msg = str(getattr(err, "msg", None) or err).splitlines()[0]
        raise SrlabError(f"invalid key '{where}.{key}': {msg}") from None
    return build_optimizer_factory(opt_cfg)


def _components(paradigm: str) -> dict[str, Component]:
    """The paradigm's arguments annotated as :class:`~srlab.paradigms.base.Component` (``Discriminator``,
    ``Degrader``, ``Optimizer``, possibly ``| None``)."""
    factory = PARADIGMS.get(paradigm)
    hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory, include_extras=True)
    found = {}
    for key, hint in hints.items():
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        for option in options:
            marks = [m for m in getattr(option, "__metadata__", ()) if isinstance(m, Component)]
            if marks:
                found[key] = marks[0]
    return found


def build_paradigm_params(cfg: DictConfig, params: dict[str, Any]) -> dict[str, Any]:
    """Turn the sub-components in ``paradigm.params`` into objects, as the paradigm's annotations say:
    ``Discriminator`` (:data:`DISCRIMINATORS`), ``Degrader`` (:data:`DEGRADERS`), ``Optimizer`` (same
    keys as ``paradigm.optimizer``). Other values pass through."""
    built = dict(params)
    components = _components(cfg.paradigm.name)
    for key, value in params.items():
        where = f"paradigm.params.{key}"
        component = components.get(key)
        if component is None:
            continue
        if component.kind == "discriminator":
            conditional = component.sees_condition and bool(params.get("conditional", False))
            built[key] = build_discriminator(cfg, value, where, conditional=conditional)
        elif component.kind == "degrader":
            built[key] = build_degrader(cfg, value, where)
        elif component.kind == "optimizer":
            built[key] = _optimizer_from_params(value, where)
    return built


#: The data families whose test split is not SR image pairs: a paradigm evaluates on its own task's only.
_TASK_OF_FAMILY = {"localization": "localization", "quality rating": "quality rating"}
SR_TASK = "SR image"


def data_task(family: str) -> str:
    """What a data family's pairs serve: ``SR image`` (every image family), ``localization`` or
    ``quality rating``."""
    return _TASK_OF_FAMILY.get(family, SR_TASK)


def paradigm_tasks(paradigm: str) -> set[str]:
    """The tasks (:func:`data_task`) of the data a paradigm trains on: what its runs are evaluated on, and
    whether they super-resolve (``srlab adapt``, ``srlab check --run`` take SR runs only)."""
    return {data_task(f) for f in PARADIGMS.entry(paradigm).card.data} or {SR_TASK}


def check_paradigm_data(cfg: DictConfig, *, testing: bool = False) -> None:
    """A paradigm trains only on the data families it declares (``PARADIGMS.register(..., data=(...))``):
    a supervised or GAN paradigm on unpaired images would learn from unrelated pairs, localization
    needs emitter frames. A mismatch is one line naming both, before anything is built. Checked for
    training (``srlab train``, ``srlab show``). ``testing`` (``srlab test RUN data=...``): a trained
    network may be evaluated on any data of its task — SR image pairs of any image family (an unpaired
    block's held-out pairs too), emitter frames for localization, rated images for a quality rating."""
    from srlab.data import DATAMODULES

    accepted = PARADIGMS.entry(cfg.paradigm.name).card.data
    family = DATAMODULES.entry(cfg.data.kind).family
    if testing:
        tasks = paradigm_tasks(cfg.paradigm.name)
        if data_task(family) not in tasks:
            raise SrlabError(f"data.kind={cfg.data.kind} ({family} data): paradigm '{cfg.paradigm.name}' is evaluated on "
                             f"{' or '.join(sorted(tasks))} data; test it on a block of its own task")
    elif accepted and family not in accepted:
        kinds = sorted(k for k in DATAMODULES.names() if DATAMODULES.entry(k).family in accepted)
        # a simulator block (srlab calibrate's) also makes unpaired sets: its specimens' LR and HR apart
        convert = ("; add data.kind=unpaired to draw them from this block's simulation"
                   if cfg.data.get("simulation") and "unpaired" in kinds else "")
        raise SrlabError(f"paradigm '{cfg.paradigm.name}' cannot train on data.kind={cfg.data.kind} ({family} data); "
                         f"it takes {' or '.join(accepted)} data (data.kind: {', '.join(kinds)}){convert}")
    check_model_data(cfg.model.name, family, cfg.data.kind)
    scales = [int(v) for v in cfg.data.get("scales") or []]
    if scales and "scales" not in models.NETWORKS.parameters(cfg.model.name):  # batches carry their scale
        takers = sorted(n for n in models.NETWORKS.names() if "scales" in models.NETWORKS.parameters(n))
        raise SrlabError(f"data.scales={scales}: model '{cfg.model.name}' has one upsampler; multi-scale batches need "
                         f"a model with a head per scale ({', '.join(takers)}) or data at one scale")


def check_model_data(model: str, family: str, kind: str) -> None:
    """A network takes single images or T frames of one field, as its card's ``inputs`` say: a
    multi-frame method given single images, or a single-image network given frames (which it would
    read as channels of one image), is one line naming both."""
    inputs = models.NETWORKS.entry(model).card.inputs
    given = "multiframe" if family == "multiframe" else "single"
    if given in inputs:
        return
    takers = sorted(n for n in models.NETWORKS.names() if given in models.NETWORKS.entry(n).card.inputs)
    if given == "multiframe":
        raise SrlabError(f"model '{model}' takes single images, but data.kind={kind} serves T frames of one field; "
                         f"use a multi-frame model ({', '.join(takers)}) or a single-image data kind")
    raise SrlabError(f"model '{model}' needs T frames of one field (data.kind: multiframe), but data.kind={kind} "
                     f"serves single images ({family} data)")


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
    kwargs.update(build_paradigm_params(cfg, params))
    task = PARADIGMS.create(pcfg.name, _where="paradigm.params", network=network, **kwargs)
    if not task.automatic_optimization:
        # Lightning refuses these with manual optimization (GAN paradigms step their optimizers by hand).
        if cfg.trainer.gradient_clip_val:
            raise SrlabError(f"trainer.gradient_clip_val does not apply to paradigm '{pcfg.name}' (it steps its "
                             f"optimizers by hand); set paradigm.params.gradient_clip_val instead")
        if cfg.trainer.accumulate_grad_batches != 1:
            raise SrlabError(f"trainer.accumulate_grad_batches must be 1 for paradigm '{pcfg.name}' (it steps its "
                             f"optimizers by hand)")
    check_epochs = getattr(task, "check_epochs", None)
    if callable(check_epochs):  # a paradigm in stages (GAN pre-training, Bulat's two stages) needs epochs for each
        check_epochs(cfg.trainer.max_epochs)
    return task


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    return build_datamodule(cfg.data, seed=cfg.seed)


def validate(cfg: DictConfig) -> None:
    """Build what a run would build, without data, to surface every config error before training."""
    check_paradigm_data(cfg)
    network = build_network(cfg)
    build_task(cfg, network)
    from srlab.data import DATAMODULES
    DATAMODULES.check_kwargs(cfg.data.kind, _plain(cfg.data.params), "data.params")
    # the DataModule's constructor checks its settings (a simulation's included) without reading or
    # generating any images: what `srlab train` would refuse, `srlab show` refuses too
    build_datamodule(cfg.data, seed=cfg.seed)
