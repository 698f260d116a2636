"""Multi-scale training data (``data.kind: multiscale``): MDSR's training scheme — Lim et al., "Enhanced
Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017 (arXiv:1707.02921), Sec. 4.2:
"we construct the minibatch with a randomly selected scale among ×2, ×3 and ×4. Only the modules that
correspond to the selected scale are enabled and updated."

**Adapted**: the scale of a batch is not random but a function of the batch's position,
``scales[(i // (batch_size · world_size)) % len(scales)]`` for sampler index ``i`` — so every epoch
cycles the scales in order, each batch holds one scale, and a resumed run sees exactly the batches it
would have seen (items are functions of ``(seed, epoch, index)``, :mod:`srlab.data.sampling`). The
paper's LR images are bicubic downsamplings of one HR set; here each scale is a simulated paired dataset
(:class:`~srlab.data.datamodules.PairedDataModule`) whose HR side is the same modality at the same
pixel size and whose LR modality is sampled at ``s ×`` the HR pixel — a physical acquisition per scale.

**Batches**: as the paired kind plus ``"scale"`` (an int, the same for the whole batch); the network's
``forward(lr, scale=...)`` picks that scale's head (:meth:`srlab.paradigms.base.SRTask.super_resolve`).
Validation and test batches are at ``eval_scale`` — ``data.scale``, the run's primary scale, unless
``srlab test RUN --scale S`` sets another.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import OmegaConf
from torch.utils.data import Dataset

from srlab.data import DATAMODULES
from srlab.data.config import DataConfig
from srlab.data.datamodules import PairedDataModule, SRDataModule, collate_patches, data_config
from srlab.data.simulate import resolve_simulation
from srlab.errors import SrlabError


def _values(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, dict):
        return cfg
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dataclasses.asdict(cfg)


def scale_config(cfg: Any, scale: int) -> DataConfig:
    """The paired (``simulated``) data block of one scale: the same HR side, the LR modality sampled at
    ``scale ×`` the HR pixel, the field of the primary scale."""
    values = _values(cfg)
    primary = int(values["scale"])
    sim = values["simulation"]
    hr_px = resolve_simulation(sim, scale=primary).lr.pixel_size_nm / primary
    lr_size = max(int(values["patch_size"]), round(sim["lr_size_px"] * primary / scale))
    sim = {**sim, "lr": {**sim["lr"], "pixel_size_nm": hr_px * scale}, "lr_size_px": lr_size}
    values = {k: v for k, v in values.items() if k != "scales"}
    return data_config(**{**values, "kind": "simulated", "scale": scale, "simulation": sim})


class AlternatingScales(Dataset):
    """Item ``(epoch, i)`` of the scale ``scales[(i // batch_stride) % n]``'s training set, with its scale."""

    def __init__(self, datasets: dict[int, Dataset], batch_stride: int):
        self.datasets, self.scales, self.batch_stride = datasets, list(datasets), batch_stride

    def __len__(self) -> int:
        return len(next(iter(self.datasets.values())))

    def scale_of(self, key: Any) -> int:
        index = key[1] if isinstance(key, tuple) else int(key)
        return self.scales[(index // self.batch_stride) % len(self.scales)]

    def __getitem__(self, key: Any) -> dict[str, Any]:
        scale = self.scale_of(key)
        return {**self.datasets[scale][key], "scale": scale}


class WithScale(Dataset):
    """An evaluation set whose items say their scale."""

    def __init__(self, dataset: Dataset, scale: int):
        self.dataset, self.scale = dataset, scale

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "scale": self.scale}


def collate_one_scale(items: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~srlab.data.datamodules.collate_patches`, with ``scale`` one int for the batch."""
    batch = collate_patches(items)
    scales = set(batch.pop("scale"))
    if len(scales) != 1:
        raise RuntimeError(f"a multi-scale batch mixes scales {sorted(scales)}")  # a sampler bug, not the user's
    batch["scale"] = scales.pop()
    return batch


@DATAMODULES.register("multiscale", family="paired")
class MultiScaleDataModule(SRDataModule):
    """Simulated pairs at each of ``data.scales``, one scale per training batch (see the module docstring)."""

    kind = "multiscale"

    @classmethod
    def evaluation_block(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The primary scale's simulated block (:func:`scale_config`): the pairs validation and test use."""
        return dataclasses.asdict(scale_config(values, int(values["scale"])))

    def __init__(self, cfg: DataConfig, seed: int):
        super().__init__(cfg, seed)
        self.scales = [int(s) for s in cfg.scales]  # type: ignore[attr-defined]
        if not self.scales or len(set(self.scales)) != len(self.scales) or min(self.scales) < 1:
            raise SrlabError(f"data.scales={self.scales}: distinct integers >= 1")
        if self.scale not in self.scales:
            raise SrlabError(f"data.scale={self.scale} (the primary scale: validation, test, predict) must be one "
                             f"of data.scales={self.scales}")
        if self.path is not None:
            raise SrlabError("data.kind=multiscale simulates one paired dataset per scale; it takes no data.path "
                             "(use data.kind=paired for your own pairs, at one scale)")
        self.parts = {s: PairedDataModule(scale_config(cfg, s), seed) for s in self.scales}
        primary = self.parts[self.scale]
        self.simulation, self.lr_degradation = primary.simulation, primary.lr_degradation
        self.lr_pixel_size_nm, self.hr_pixel_size_nm = primary.lr_pixel_size_nm, primary.hr_pixel_size_nm
        self.eval_scale = self.scale

    def prepare_data(self) -> None:
        for part in self.parts.values():
            part.prepare_data()

    def _load(self) -> None:
        for part in self.parts.values():
            part.setup()
        primary = self.parts[self.scale]
        self.data, self.split_sources, self._root = primary.data, primary.split_sources, primary._root

    def set_eval_scale(self, scale: int) -> None:
        """Validate and test at ``scale`` (one of ``data.scales``) instead of the primary scale."""
        if scale not in self.scales:
            raise SrlabError(f"--scale {scale}: the run was trained at scales {self.scales}")
        self.eval_scale = scale

    def _train_dataset(self) -> Dataset:
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        return AlternatingScales({s: part._train_dataset() for s, part in self.parts.items()},
                                 batch_stride=self.cfg.batch_size * world)

    def _train_collate(self) -> Any:
        return collate_one_scale

    def _eval_dataset(self, split: str) -> Dataset:
        part = self.parts[self.eval_scale]
        return WithScale(part._eval_dataset(split), self.eval_scale)

    def _loader(self, dataset: Dataset, collate: Any = collate_one_scale, sampler: Any = None):
        return super()._loader(dataset, collate, sampler)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"scales": self.scales, "eval_scale": self.eval_scale,
                    "per_scale": {str(s): {"lr_pixel_size_nm": p.lr_pixel_size_nm,
                                           "hr_pixel_size_nm": p.hr_pixel_size_nm,
                                           "simulation": p.simulation.name if p.simulation else None,
                                           "key": p.simulation.key() if p.simulation else None,
                                           "images": {k: len(v) for k, v in p.data.items()}}
                                  for s, p in self.parts.items()},
                    "batches": "training batches alternate scales in order, one scale per batch"})
        return out
