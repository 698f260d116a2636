"""The user's HR images as specimens of a simulated dataset (srlab.data.user_specimens)."""
from __future__ import annotations

import numpy as np
import pytest

from srlab.data import build_datamodule, user_specimens
from srlab.data import simulate as sim
from srlab.data.io import read_tiff, write_tiff
from srlab.errors import SrlabError
from tests.data.conftest import TINY_SIMULATION

# Gaussian PSFs on both sides and no out-of-focus layer: then the relative blur is exact, and the LR image
# made from the HR one must be the simulator's own LR image of the same specimen.
GAUSSIAN = {**TINY_SIMULATION, "lr": {"modality": "confocal", "psf_fwhm_nm": 220.0},
            "hr": {"modality": "sted", "psf_fwhm_nm": 60.0}, "out_of_focus_fraction": 0.0, "lr_size_px": 48}


def _hr_files(tmp_path, n=2, pixel_size_nm=20.0):
    """Acquired HR images of the simulator's own (a Gaussian STED of GAUSSIAN's specimens 3, 4, ...)."""
    imager = sim.Imager(sim.resolve_simulation(GAUSSIAN, scale=2))
    return [str(write_tiff(tmp_path / f"sted{i}.tif", imager.image(3 + i)["hr"], pixel_size_nm=pixel_size_nm))
            for i in range(n)]


@pytest.mark.parametrize("index", [1, 2, 3])
def test_lr_made_from_an_hr_image_is_the_simulators_lr_of_that_specimen(index):
    spec = sim.resolve_simulation(GAUSSIAN, scale=2)
    images = sim.Imager(spec).image(index)
    made = user_specimens.lr_expected(spec, images["hr_expected"] - spec.hr.background_photons)
    truth = images["lr_expected"]
    assert made.shape == truth.shape
    assert np.percentile(made - spec.lr.background_photons, 99.9) == pytest.approx(spec.lr.signal_photons, rel=1e-3)
    # Away from the border (the simulator images the field beyond it, an HR image holds nothing there) and
    # up to the photon scale (set by the 99.9th percentile of each whole image), the two are one image.
    inner = (slice(8, -8),) * 2
    a, b = made[inner] - spec.lr.background_photons, truth[inner] - spec.lr.background_photons
    scale = float((a * b).sum() / (a * a).sum())
    err = np.sqrt(np.mean((scale * a - b) ** 2)) / spec.lr.signal_photons
    assert err < 0.002 and 0.8 < scale < 1.25, (err, scale)  # the LR FWHM itself as the blur: 0.003-0.008
    # without the relative blur (the LR taken as the HR image binned) the same check fails
    binned = images["hr_expected"].reshape(48, 2, 48, 2).mean((1, 3))[inner] - spec.hr.background_photons
    k = float((binned * b).sum() / (binned * binned).sum())
    assert np.sqrt(np.mean((k * binned - b) ** 2)) / spec.lr.signal_photons > 5 * err


def test_dataset_holds_the_hr_images_with_independent_lr_draws(tmp_path, monkeypatch):
    """Without the photon split (``hr_image_photon_split: null``): the LR of the whole image, the image as
    acquired for target."""
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    files = _hr_files(tmp_path)
    root, spec = sim.simulated_dataset({**GAUSSIAN, "hr_images": files, "hr_image_photon_split": None}, scale=2)
    plain, _ = sim.simulated_dataset(GAUSSIAN, scale=2)
    assert root != plain and spec.hr_images == tuple(files)
    # share 0.5 of the HR pixels: 6 synthetic images of 96² against 2 of 96² -> 3 draws each
    assert user_specimens.draws_per_image(spec, user_specimens.load_hr(spec)) == 3
    lr, _, lr_px = read_tiff(root / "lr" / "hr_image_01.tif")
    hr, _, hr_px = read_tiff(root / "hr" / "hr_image_01.tif")
    source, _, _ = read_tiff(files[1])
    assert lr.shape == (3, 48, 48) and hr.shape == (3, 96, 96) and (lr_px, hr_px) == (40.0, 20.0)
    np.testing.assert_array_equal(hr[2], source)  # the target is the image as acquired
    assert not np.array_equal(lr[0], lr[1])  # independent camera noise
    expected = user_specimens.lr_expected(spec, spec.hr.camera.backward(source) - spec.hr.background_photons)
    residual = (lr.astype(np.float64) - expected) / np.sqrt(expected)  # counting detector: Poisson
    assert abs(residual.mean()) < 0.05 and residual.std() == pytest.approx(1.0, abs=0.1)
    # an edited image makes another dataset
    write_tiff(files[0], source[::-1].copy(), pixel_size_nm=20.0)
    assert sim.resolve_simulation({**GAUSSIAN, "hr_images": files, "hr_image_photon_split": None},
                                  scale=2).key() != spec.key()


def _coupling(spec, lr: np.ndarray, target: np.ndarray) -> float:
    """Correlation of the LR image with its target as the LR microscope would see it (blurred, binned)."""
    seen = user_specimens.lr_expected(spec, spec.hr.camera.backward(target) - spec.hr.background_photons)
    inner = (slice(6, -6),) * 2  # away from the blur's border
    return float(np.corrcoef(lr[inner].ravel(), seen[inner].ravel())[0, 1])


def test_the_photon_split_makes_the_lr_and_its_target_of_independent_noise(tmp_path):
    """The default for a photon counter (``hr_image_photon_split: auto`` -> 0.5): each slice is one binomial split of the image's photons,
    the LR imaged from one half, the other the target. On a flat field of photon counts (a STED counter),
    where everything the two share is noise, the LR of the whole image follows its target's noise
    (the coupling a network can learn), the split's does not; the targets are unbiased (their mean is the
    image), each of them a fresh half."""
    flat = np.random.default_rng(0).poisson(20.0, (96, 96)).astype(np.uint16)
    files = [str(write_tiff(tmp_path / "flat.tif", flat, pixel_size_nm=20.0))]
    whole = sim.resolve_simulation({**GAUSSIAN, "hr_images": files, "hr_image_photon_split": None}, scale=2)
    split = sim.resolve_simulation({**GAUSSIAN, "hr_images": files}, scale=2)
    assert split.hr_image_photon_split == 0.5 and whole.key() != split.key()
    (_, lr_whole, hr_whole), = user_specimens.pairs(whole)
    (_, lr_split, hr_split), = user_specimens.pairs(split)
    assert lr_split.shape == lr_whole.shape and hr_split.shape == hr_whole.shape
    coupled = [_coupling(whole, a, b) for a, b in zip(lr_whole, hr_whole)]
    independent = [_coupling(split, a, b) for a, b in zip(lr_split, hr_split)]
    # 36² LR pixels each: a correlation's standard error is ~0.03 (whole: 0.09-0.16, split: |r| < 0.05)
    assert np.mean(coupled) > 0.1 and min(coupled) > 0.05, coupled
    assert abs(np.mean(independent)) < 0.03 and max(abs(c) for c in independent) < 0.08, independent
    assert not np.array_equal(hr_split[0], hr_split[1]) and not np.array_equal(hr_split[0], flat)
    assert hr_split.mean() == pytest.approx(float(flat.mean()), rel=0.01)
    (_, lr_again, hr_again), = user_specimens.pairs(split)  # the dataset's seed decides the splits
    np.testing.assert_array_equal(hr_again, hr_split)
    np.testing.assert_array_equal(lr_again, lr_split)
    with pytest.raises(SrlabError, match="hr_image_photon_split=1"):
        sim.resolve_simulation({**GAUSSIAN, "hr_images": files, "hr_image_photon_split": 1}, scale=2)
    # auto splits a photon counter's images (the STED above), not a camera's (measured: docs/calibration.md)
    assert sim.resolve_simulation(SIM_CAMERA, scale=2).hr_image_photon_split is None
    assert sim.resolve_simulation({**SIM_CAMERA, "hr_image_photon_split": 0.5}, scale=2).hr_image_photon_split == 0.5


def test_hr_images_train_only_and_are_described(tmp_path, monkeypatch, cfg_factory):
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    files = _hr_files(tmp_path, n=3)
    dm = build_datamodule(cfg_factory(kind="simulated", simulation={**GAUSSIAN, "hr_images": files}), seed=0)
    dm.prepare_data()
    dm.setup()
    splits = dm.describe()["splits"]
    assert {"hr_image_00", "hr_image_01", "hr_image_02"} <= set(splits["train"])
    for held in ("val", "test"):
        assert splits[held] and all(s.startswith("sim_") for s in splits[held])
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == 6 + 3
    plain = build_datamodule(cfg_factory(kind="simulated", simulation=GAUSSIAN), seed=0)
    plain.prepare_data()
    plain.setup()
    assert {k: plain.describe()["splits"][k] for k in ("val", "test")} == {k: splits[k] for k in ("val", "test")}
    tokens = [p.tokens for p in dm.data["train"] if p.source.startswith("hr_image_")]
    assert tokens and all(t is not None for t in tokens)


@pytest.mark.parametrize("change, message", [
    ({"hr_images": ["/no/such/sted.tif"]}, "hr_images: /no/such/sted.tif: no such file"),
    ({"hr_image_share": 1.0}, "hr_image_share=1.0: must be in (0, 1)"),
    ({"hr_target": "noise_free"}, "hr_target=noise_free with data.simulation.hr_images: the user's HR images"),
])
def test_bad_hr_images_are_one_line_errors(tmp_path, change, message):
    values = {**GAUSSIAN, "hr_images": _hr_files(tmp_path, n=1), **change}
    with pytest.raises(SrlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sim.resolve_simulation(values, scale=2)


def test_hr_images_of_another_pixel_size_or_for_an_lr_making_kind_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    wrong = _hr_files(tmp_path, n=1, pixel_size_nm=30.0)
    with pytest.raises(SrlabError, match="pixel size 30 nm, but the block's HR pixel is 20 nm"):
        sim.simulated_dataset({**GAUSSIAN, "hr_images": wrong}, scale=2)
    assert not (tmp_path / "cache").exists()  # refused when the block is resolved, before anything is written
    files = _hr_files(tmp_path, n=1)
    with pytest.raises(SrlabError, match="makes its own LR images"):
        sim.resolve_simulation({**GAUSSIAN, "hr_images": files}, scale=2, image_lr=False)


def test_multi_channel_hr_images_need_their_channel(tmp_path, monkeypatch):
    """A two-channel HR file (the STED channel beside another one) is refused without
    ``hr_image_channel``, and read at that channel with it."""
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    imager = sim.Imager(sim.resolve_simulation(GAUSSIAN, scale=2))
    other, sted = imager.image(3)["hr"], imager.image(4)["hr"]
    both = str(write_tiff(tmp_path / "two.tif", np.stack([other, sted]), pixel_size_nm=20.0, axes="CYX"))
    with pytest.raises(SrlabError, match=r"2-channel image; set data.simulation.hr_image_channel=0..1"):
        sim.resolve_simulation({**GAUSSIAN, "hr_images": [both]}, scale=2, where="data.simulation")
    with pytest.raises(SrlabError, match=r"hr_image_channel=2: .* has 2 channel\(s\)"):
        sim.resolve_simulation({**GAUSSIAN, "hr_images": [both], "hr_image_channel": 2}, scale=2)
    spec = sim.resolve_simulation({**GAUSSIAN, "hr_images": [both], "hr_image_channel": 1}, scale=2)
    (acquired, _), = user_specimens.load_hr(spec)
    np.testing.assert_array_equal(acquired, sted)
    first = sim.resolve_simulation({**GAUSSIAN, "hr_images": [both], "hr_image_channel": 0}, scale=2)
    assert first.key() != spec.key()  # another channel, another dataset
    # a one-channel file needs no channel, and the key of a block without one is unchanged by the option
    plain = _hr_files(tmp_path, n=1)
    spec = sim.resolve_simulation({**GAUSSIAN, "hr_images": plain}, scale=2)
    assert "hr_image_channel" not in spec.as_dict()


# an HR detector with an offset (a SIM camera): a zero fill is below every count it writes
SIM_CAMERA = {**TINY_SIMULATION, "lr": {"modality": "widefield"},
              "hr": {"modality": "sim", "offset_adu": 100.0, "e_per_adu": 0.5, "read_noise_e": 2.0,
                     "signal_photons": 300.0, "background_photons": 5.0},
              "out_of_focus_fraction": 0.0, "lr_size_px": 48}


def test_hr_images_enter_without_their_padding_and_hot_pixels(tmp_path, monkeypatch):
    """An HR image padded with zeros (a registered or stitched field) and with hot pixels is the specimen
    its clean part is: cropped to the largest rectangle without the fill, its hot pixels replaced by their
    neighbours' median — as ``srlab calibrate`` measured it. Before, the padding's edge and the hot pixels
    were structures that the LR camera then imaged."""
    from srlab.data.defects import FILL_MARGIN_PX

    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    spec = sim.resolve_simulation(SIM_CAMERA, scale=2)
    clean = sim.Imager(spec).image(3)["hr"]
    px = spec.hr.pixel_size_nm
    whole = {"hr_image_photon_split": None}  # the target is then the repaired image itself
    clean_file = str(write_tiff(tmp_path / "clean.tif", clean, pixel_size_nm=px))
    (as_is, _), = user_specimens.load_hr(sim.resolve_simulation({**SIM_CAMERA, "hr_images": [clean_file]}, scale=2))
    np.testing.assert_array_equal(as_is, clean)  # nothing taken for a defect in a clean image

    defective = clean.copy()
    defective[:, 70:] = 0
    hot = (np.array([5, 40, 41, 90]), np.array([7, 30, 60, 0]))  # one on the border
    defective[hot] = [60000, 9000, 65535, 30000]
    path = str(write_tiff(tmp_path / "padded.tif", defective, pixel_size_nm=px))
    root, spec = sim.simulated_dataset({**SIM_CAMERA, "hr_images": [path], **whole}, scale=2)
    (acquired, photons), = user_specimens.load_hr(spec)
    width = (70 - FILL_MARGIN_PX) // 2 * 2
    assert acquired.shape == (96, width)
    repaired = np.zeros(acquired.shape, bool)
    repaired[hot] = True
    np.testing.assert_array_equal(acquired[~repaired], clean[:, :width][~repaired])
    for r, c in zip(*hot):  # within the range of the clean image's neighbours
        around = clean[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
        assert around.min() <= acquired[r, c] <= around.max()
    hr_written, _, _ = read_tiff(root / "hr" / "hr_image_00.tif")
    np.testing.assert_array_equal(hr_written[0], acquired)  # the training target is the repaired crop
    np.testing.assert_allclose(photons, spec.hr.camera.backward(acquired) - spec.hr.background_photons)


def test_hr_images_whose_fill_leaves_too_little_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "cache"))
    spec = sim.resolve_simulation(SIM_CAMERA, scale=2)
    image = sim.Imager(spec).image(3)["hr"]
    image[:, 16:] = 0
    path = str(write_tiff(tmp_path / "mostly_padding.tif", image, pixel_size_nm=spec.hr.pixel_size_nm))
    with pytest.raises(SrlabError, match=r"mostly_padding.tif: the largest rectangle without its fill region "
                                         r"\(padding or a mask\) is 96×14 px, too small \(needs >= 16 px\)"):
        sim.simulated_dataset({**SIM_CAMERA, "hr_images": [path]}, scale=2)
    assert not (tmp_path / "cache").exists()


def test_datasets_made_before_the_defect_repair_are_remade(tmp_path, monkeypatch):
    files = _hr_files(tmp_path, n=1)
    repaired = sim.resolve_simulation({**GAUSSIAN, "hr_images": files}, scale=2).key()
    plain = sim.resolve_simulation(GAUSSIAN, scale=2).key()
    monkeypatch.setattr(user_specimens, "VERSION", user_specimens.VERSION - 1)
    assert sim.resolve_simulation({**GAUSSIAN, "hr_images": files}, scale=2).key() != repaired
    assert sim.resolve_simulation(GAUSSIAN, scale=2).key() == plain  # datasets without user images keep theirs
