"""Pair augmentation: the dihedral group keeps LR and HR registered; intensity gain is shared."""
from __future__ import annotations

import numpy as np
import torch

from srlab.data.transforms import D4_ELEMENTS, PairAugment, dihedral
from tests.data.conftest import area_down, smooth_image


def test_every_dihedral_element_commutes_with_downsampling():
    hr = smooth_image(np.random.default_rng(0), (1, 24, 24))
    lr = area_down(hr, 2)
    outputs = set()
    for element in D4_ELEMENTS:
        np.testing.assert_allclose(area_down(dihedral(hr, element), 2), dihedral(lr, element), rtol=1e-5)
        outputs.add(dihedral(lr, element).tobytes())
    assert len(D4_ELEMENTS) == 8 and len(outputs) == 8  # eight distinct symmetries


def test_pair_augment_applies_one_element_and_one_gain_to_both():
    torch.manual_seed(0)
    hr = smooth_image(np.random.default_rng(1), (1, 16, 16))
    lr = area_down(hr, 2)
    augment = PairAugment(True, (0.5, 2.0))
    gains = []
    for _ in range(20):
        a, b = augment(lr, hr)
        np.testing.assert_allclose(area_down(b, 2), a, rtol=1e-5)
        gains.append(a.sum() / lr.sum())
    assert min(gains) < 0.9 and max(gains) > 1.1
    assert not PairAugment(False, (1.0, 1.0)).active
