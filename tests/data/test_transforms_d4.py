"""srlab's D4 is albumentations' D4: same element names in the same order (so one random draw picks the
same element), each element the same array."""
from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from srlab.data.transforms import D4_ELEMENTS, PairAugment, PatchRandom, dihedral


def test_element_names_and_order_are_albumentations() -> None:
    from typing import get_args, get_type_hints

    hint = get_type_hints(A.D4.apply)["group_element"]
    assert tuple(get_args(hint)) == D4_ELEMENTS


@pytest.mark.parametrize("element", D4_ELEMENTS)
def test_each_element_equals_albumentations(element: str) -> None:
    image = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)  # non-square, several channels
    expected = np.moveaxis(A.D4(p=1.0).apply(np.moveaxis(image, 0, -1), group_element=element), -1, 0)
    got = dihedral(image, element)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_pair_stays_registered_under_every_draw() -> None:
    lr = np.random.default_rng(1).random((1, 4, 6)).astype(np.float32)
    hr = np.kron(lr, np.ones((1, 2, 2), np.float32))
    rand = PatchRandom(np.random.default_rng(0))
    for _ in range(32):
        a, b = PairAugment(True)(lr, hr, rand=rand)
        assert np.array_equal(np.kron(a, np.ones((1, 2, 2), np.float32)), b)


def test_unknown_element_is_an_error() -> None:
    with pytest.raises(ValueError, match="valid: e, r90"):
        dihedral(np.zeros((1, 2, 2)), "r45")
