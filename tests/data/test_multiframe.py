"""The multi-frame data kind: shifted frames of one field, their shifts, resumable patches, folders."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from srlab.data.datamodules import data_config
from srlab.data.io import write_tiff
from srlab.data.multiframe import (
    D4_ELEMENTS,
    MultiFrameDataModule,
    MultiFrameImager,
    dihedral,
    dihedral_matrix,
    estimate_stack_shifts,
    resolve_multiframe,
)
from srlab.data.simulate import Imager
from srlab.errors import SrlabError
from srlab.models.classical import translate
from tests.data.conftest import smooth_image

# Undersampled widefield frames of 24 LR px: a few specimens generated in about a second.
TINY = {"kind": "multiframe", "scale": 2, "frames": 4, "patch_size": 12, "batch_size": 3, "eval_crop_size": 16,
        "patches_per_epoch": 6, "simulation": {"lr": {"modality": "widefield20x"},
                                                "hr": {"modality": "widefield20x"},
                                                "structures": ["mitochondria"], "n_images": 4, "lr_size_px": 24}}


def module(**changes) -> MultiFrameDataModule:
    dm = MultiFrameDataModule(data_config(**{**TINY, **changes}), seed=3)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_simulated_frames_are_moved_by_their_recorded_shifts() -> None:
    """Batches carry (N, T, h, w) frames, (N, T, 2) shifts in LR px (reference T // 2 unshifted) and the
    reference's HR; phase correlation on the frames finds the shifts the simulator recorded."""
    dm = module(simulation={**TINY["simulation"], "n_images": 3, "lr_size_px": 48}, val_fraction=0.3,
                test_fraction=0.3)
    batch = next(iter(dm.test_dataloader()))
    n = batch["lr"].shape[0]
    assert batch["lr"].shape == (n, 4, 16, 16) and batch["hr"].shape == (n, 1, 32, 32)
    assert batch["shifts"].shape == (n, 4, 2) and torch.all(batch["shifts"][:, 2] == 0)
    for item in dm.sets["train"] + dm.sets["val"] + dm.sets["test"]:
        assert np.abs(item.shifts).max() <= 0.5 and np.abs(item.shifts).max() > 0.05
        found = estimate_stack_shifts(item.lr)
        np.testing.assert_allclose(found, item.shifts, atol=0.12)
    described = dm.describe()
    assert described["frames"] == 4 and described["shifts"]["source"] == "simulated (exact)"


def test_training_items_are_functions_of_seed_epoch_and_index() -> None:
    dm = module()
    dataset = dm._train_dataset()
    again = module()._train_dataset()
    a, b = dataset[(2, 5)], again[(2, 5)]
    for key in ("lr", "hr", "shifts"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(dataset[(3, 5)]["lr"], a["lr"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (3, 4, 12, 12) and batch["shifts"].shape == (3, 4, 2)


@pytest.mark.parametrize("element", D4_ELEMENTS)
def test_augmentation_moves_shift_vectors_with_the_frames(element: str) -> None:
    """D4 applied to a frame moved by d equals the transformed reference moved by M·d."""
    ref = torch.from_numpy(smooth_image(np.random.default_rng(0), (1, 1, 40, 40)))
    d = torch.tensor([[1.25, -0.5]])
    moved = translate(ref, d)[0].numpy()
    m = dihedral_matrix(element)
    expected = translate(torch.from_numpy(np.ascontiguousarray(dihedral(ref[0].numpy(), element)))[None],
                         torch.from_numpy(d.numpy() @ m.T))[0].numpy()
    got = dihedral(moved, element)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=1e-3 * float(ref.max()))


def _stack_folder(root: Path, shifts: np.ndarray, n: int = 3) -> Path:
    """``lr/`` T-stacks (area-downsampled shifted copies of ``hr/``), as a user brings them."""
    rng = np.random.default_rng(1)
    for k in range(n):
        hr = torch.from_numpy(smooth_image(rng, (1, 1, 64, 64), sigma=3.0))
        frames = [torch.nn.functional.avg_pool2d(translate(hr, torch.tensor(d[None] * 2)), 2)[0, 0].numpy()
                  for d in shifts]
        write_tiff(root / "lr" / f"f{k}.tif", np.stack(frames), pixel_size_nm=100.0, axes="TYX")
        write_tiff(root / "hr" / f"f{k}.tif", hr[0, 0].numpy(), pixel_size_nm=50.0)
    return root


def test_folder_of_stacks_estimates_or_reads_shifts(tmp_path: Path) -> None:
    true = np.array([[0.3, -0.2], [0.0, 0.4], [0.0, 0.0], [-0.4, 0.1]], np.float32)
    root = _stack_folder(tmp_path / "stacks", true)
    dm = module(path=str(root), patch_size=8, eval_crop_size=8)
    assert dm.describe()["shifts"]["source"] == "estimated by phase correlation"
    for item in dm.sets["train"] + dm.sets["val"] + dm.sets["test"]:
        np.testing.assert_allclose(item.shifts, true, atol=0.1)
    assert dm.lr_pixel_size_nm == pytest.approx(100.0)
    # a shifts.csv is read and re-referenced to frame T // 2 (here given relative to frame 0)
    with open(root / "shifts.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "frame", "dy_px", "dx_px"])
        writer.writerows((f"f{k}.tif", t, *(true[t] - true[0])) for k in range(3) for t in range(4))
    dm = module(path=str(root), patch_size=8, eval_crop_size=8)
    np.testing.assert_allclose(dm.sets["test"][0].shifts, true, atol=1e-5)
    with pytest.raises(SrlabError, match=r"shifts.csv: file f0.tif has shifts for frames \[0, 1, 2, 3\]; data.frames=3"):
        module(path=str(root), frames=3, patch_size=8, eval_crop_size=8)
    (root / "shifts.csv").unlink()
    with pytest.raises(SrlabError, match=r"f0.tif: 4 frame\(s\) but data.frames=3"):
        module(path=str(root), frames=3, patch_size=8, eval_crop_size=8)


def test_noise_free_hr_target_holds_the_reference_without_noise() -> None:
    """``simulation.hr_target: noise_free`` (srlab.data.simulate.HR_TARGETS) reaches the multi-frame kind:
    the HR is the expected photons, the LR frames are the acquired ones of the default."""
    specs = [resolve_multiframe(data_config(**{**TINY, "simulation": {**TINY["simulation"], "hr_target": t}}), 2)
             for t in ("acquired", "noise_free")]
    (acquired, clean) = (MultiFrameImager(spec).fields(1) for spec in specs)
    np.testing.assert_array_equal(acquired["lr"], clean["lr"])
    base = specs[1].base
    np.testing.assert_array_equal(clean["hr"], Imager(base).image(1)["hr_expected"])
    assert not np.array_equal(acquired["hr"], clean["hr"])
    assert np.corrcoef(acquired["hr"].ravel(), clean["hr"].ravel())[0, 1] > 0.9
