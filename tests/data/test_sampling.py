"""Training items as functions of (seed, epoch, index): distinct per DDP rank and per epoch, the same in
any worker, and resumable at any batch (srlab.data.sampling)."""
from __future__ import annotations

import numpy as np
import torch

from srlab.data.datamodules import DegradeCollate, ImagePair, PairedPatches, SinglePatches
from srlab.data.degrade import Degradation
from srlab.data.sampling import EpochSampler
from srlab.data.transforms import PairAugment


def _pairs() -> list[ImagePair]:
    rng = np.random.default_rng(0)
    return [ImagePair(f"im{i}", f"im{i}", rng.random((1, 20, 20), np.float32),
                      rng.random((1, 40, 40), np.float32)) for i in range(3)]


def test_ranks_get_disjoint_keys_covering_the_epoch():
    keys = [list(EpochSampler(10, batch_size=2, rank=r, world_size=2)) for r in (0, 1)]
    assert len(keys[0]) == len(keys[1]) == 5
    assert {i for _, i in keys[0]}.isdisjoint({i for _, i in keys[1]})
    assert {i for k in keys for _, i in k} == set(range(10))


def test_epochs_count_from_the_resumed_epoch_and_skip_the_done_batches():
    full = EpochSampler(8, batch_size=2, shuffle=True, seed=3)
    epochs = [list(full) for _ in range(3)]
    assert [e[0][0] for e in epochs] == [0, 1, 2]
    assert epochs[1] != epochs[2]  # a new order every epoch
    resumed = EpochSampler(8, batch_size=2, shuffle=True, seed=3, start_epoch=1, skip_batches=3)
    assert list(resumed) == epochs[1][6:]
    assert list(resumed) == epochs[2]  # the skip applies to the resumed epoch only


def test_patch_is_a_function_of_seed_and_key():
    def dataset(seed: int) -> PairedPatches:
        return PairedPatches(_pairs(), scale=2, patch_size=8, length=16, augment=PairAugment(True, (0.5, 2.0)),
                             seed=seed)

    a, b = dataset(0), dataset(0)
    # Order of access (another worker, a resumed run) does not matter; epoch, index and seed do.
    first = [a[(1, i)]["lr"].copy() for i in range(6)]
    again = [b[(1, i)]["lr"].copy() for i in reversed(range(6))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(a[(1, 0)]["lr"], a[(2, 0)]["lr"])
    assert not np.array_equal(a[(1, 0)]["lr"], a[(1, 1)]["lr"])
    assert not np.array_equal(a[(1, 0)]["lr"], dataset(1)[(1, 0)]["lr"])


def test_loader_degradation_noise_follows_the_items():
    degradation = Degradation(scale=2, hr_pixel_size_nm=20.0, psf_fwhm_nm=(150.0, 250.0),
                              photons=(20.0, 200.0), read_noise_e=(0.0, 2.0))
    hr = SinglePatches(_pairs(), key="hr", patch_px=16, length=8, augment=None, noise_seed=True)
    collate = DegradeCollate(degradation)
    torch.manual_seed(0)
    one = collate([hr[(0, i)] for i in range(4)])
    torch.manual_seed(1)  # the global RNG plays no part
    two = collate([hr[(0, i)] for i in range(4)])
    other = collate([hr[(0, i)] for i in range(4, 8)])
    assert "noise_seed" not in one
    assert torch.equal(one["lr"], two["lr"])
    assert not torch.equal(one["lr"], other["lr"])


def test_evaluation_shards_cover_every_item_once():
    """Under DDP each evaluation item goes to exactly one rank (DistributedSampler repeats items to even out
    the ranks' shares, and a repeated test image counts twice in the synchronized means)."""
    from srlab.data.sampling import EvalShards

    for length, world in ((5, 2), (5, 4), (8, 4), (7, 3), (3, 3)):
        shares = [list(EvalShards(length, rank=r, world_size=world)) for r in range(world)]
        assert sorted(i for share in shares for i in share) == list(range(length))
        assert [len(EvalShards(length, rank=r, world_size=world)) for r in range(world)] == [len(s) for s in shares]
