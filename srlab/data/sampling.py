"""Training samples as a pure function of ``(seed, epoch, index)``: what makes a resumed run exact.

A training item (patch position, augmentation, degradation noise) draws its random numbers from a
generator seeded by the run's seed, the epoch and the item's index — never from a stream that lives in
a process. So an item is the same whichever DataLoader worker makes it, whichever DDP rank asks for it
(ranks get disjoint indices) and whether or not the run was interrupted: resuming needs only the epoch
and the number of batches already trained in it, which :class:`EpochSampler` takes from the
checkpoint (via the DataModule's ``state_dict``, see :class:`ResumableData`).

This follows the counter-based ("stateless") RNG design of JAX and of torchdata's
``StatefulDataLoader`` resumption, adapted to map-style datasets: the sampler yields ``(epoch, index)``
keys and the dataset seeds from them. Seeding costs ~10 µs per item (a NumPy ``SeedSequence``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data.distributed import DistributedSampler

SampleKey = tuple[int, int]  # (epoch, index)


def split_key(key: int | SampleKey) -> SampleKey:
    """``(epoch, index)`` of a sampler key; a plain index (direct indexing, tests) is epoch 0."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return 0, int(key)


def item_rng(seed: int, key: int | SampleKey, stream: int = 0) -> np.random.Generator:
    """The generator of one training item; ``stream`` separates independent uses of one key."""
    epoch, index = split_key(key)
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream, epoch, index])


class EpochSampler(DistributedSampler):
    """Yields ``(epoch, index)`` keys: ``length`` indices per epoch (in order, or in a permutation drawn
    from ``(seed, epoch)``), this rank's share ``rank::world`` as :class:`DistributedSampler` would
    give it (padded to equal length), starting after ``skip_batches`` batches in the first epoch.

    It subclasses :class:`DistributedSampler` so that Lightning keeps it under DDP instead of wrapping it.
    The epoch is this sampler's own count of ``__iter__`` calls, starting at ``start_epoch`` (Lightning
    builds one iterator per training epoch); ``set_epoch`` is ignored, because Lightning calls it after
    DataLoader workers have already fetched the first indices of a resumed run.
    """

    def __init__(self, length: int, *, batch_size: int, seed: int = 0, shuffle: bool = False, rank: int = 0,
                 world_size: int = 1, start_epoch: int = 0, skip_batches: int = 0):
        # DistributedSampler's own fields, set directly: its __init__ wants a dataset and may query
        # torch.distributed; nothing else of it is used.
        self.num_replicas, self.rank, self.shuffle, self.seed = world_size, rank, shuffle, seed
        self.drop_last = False
        self.length, self.batch_size = int(length), int(batch_size)
        self.num_samples = math.ceil(self.length / world_size)
        self.total_size = self.num_samples * world_size
        self.epoch, self.skip_batches = int(start_epoch), int(skip_batches)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:  # see the class docstring
        pass

    def indices(self, epoch: int) -> list[int]:
        order = (np.random.default_rng([int(self.seed) & 0xFFFFFFFF, 7, epoch]).permutation(self.length)
                 if self.shuffle else np.arange(self.length))
        order = order.tolist()
        order += order[: self.total_size - len(order)]
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[SampleKey]:
        epoch, skip = self.epoch, self.skip_batches * self.batch_size
        self.epoch, self.skip_batches = epoch + 1, 0
        return iter([(epoch, i) for i in self.indices(epoch)[skip:]])


def checkpoint_world_size(checkpoint: dict[str, Any]) -> int | None:
    """The number of processes that trained the checkpoint (its DataModule's state,
    :meth:`ResumableData.state_dict`), or ``None`` where it does not say (written before srlab recorded
    it, or by a run without a resumable data stream)."""
    for value in checkpoint.values():
        if isinstance(value, dict) and "train_epoch" in value and "world_size" in value:
            return int(value["world_size"])
    return None


class EvalShards(DistributedSampler):
    """This rank's share ``rank::world`` of an evaluation set of ``length`` items, every item on exactly one
    rank. :class:`DistributedSampler` pads a set with repeated items so that all ranks get as many, and a
    repeated test image counts twice in the synchronized means (5 images on 4 ranks were scored as 8). Ranks
    may get one item fewer than others: the evaluation steps hold no collective operation (srlab's metrics
    are synchronized once, at the epoch's end). A subclass of :class:`DistributedSampler`, so that Lightning
    keeps it."""

    def __init__(self, length: int, *, rank: int, world_size: int):
        # DistributedSampler's own fields, set directly (as EpochSampler does)
        self.num_replicas, self.rank, self.shuffle, self.seed, self.drop_last = world_size, rank, False, 0, False
        self.length, self.epoch = int(length), 0
        self.num_samples = len(range(rank, self.length, world_size))
        self.total_size = self.length

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))


class ResumableData:
    """Mixin for a LightningDataModule whose training loader is an :class:`EpochSampler`.

    ``state_dict`` (saved by Lightning in every checkpoint) records where training stands: the epoch
    of the next batch and how many batches of that epoch are done; ``load_state_dict`` hands that to
    the next :meth:`epoch_sampler`. A checkpoint written at the end of an epoch resumes at batch 0 of
    the next one; one written after batch *k* (a timed or pre-emption checkpoint) resumes at *k* + 1.
    It also records the number of processes that trained (``world_size``): another number deals the
    items into other batches (and steps), so a run may only resume with the same
    (:func:`checkpoint_world_size`).
    """

    _resume_at: tuple[int, int] = (0, 0)

    def state_dict(self) -> dict[str, Any]:
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        epoch = int(trainer.current_epoch)
        total = trainer.num_training_batches
        if total != float("inf") and done >= int(total):
            epoch, done = epoch + 1, 0
        return {"train_epoch": epoch, "train_batches_done": done, "world_size": int(trainer.world_size)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "train_epoch" in state:
            self._resume_at = (int(state["train_epoch"]), int(state["train_batches_done"]))

    def eval_sampler(self, length: int) -> EvalShards | None:
        """Under DDP, each rank's share of an evaluation set of ``length`` items, none repeated
        (:class:`EvalShards`); ``None`` (Lightning's default) on one process, or where the set has fewer items
        than there are ranks — a rank without a batch would skip the epoch's end, where the metrics are
        synchronized, and leave the others waiting."""
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        if world <= 1 or length < world:
            return None
        return EvalShards(length, rank=trainer.global_rank, world_size=world)  # type: ignore[union-attr]

    def epoch_sampler(self, length: int, batch_size: int, seed: int, shuffle: bool = False) -> EpochSampler:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        epoch, skip = self._resume_at
        self._resume_at = (0, 0)
        return EpochSampler(length, batch_size=batch_size, seed=seed, shuffle=shuffle, rank=rank,
                            world_size=world, start_epoch=epoch, skip_batches=skip)
