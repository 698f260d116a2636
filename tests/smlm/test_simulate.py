"""SMLM simulator, ThunderSTORM CSV I/O, stack checks and the localization DataModule."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from srlab.data.config import SMLMDataConfig
from srlab.errors import SrlabError
from srlab.optics.psf import render_gaussians
from srlab.smlm.datamodule import SMLMDataModule, heatmap_target
from srlab.smlm.localizations import (
    Localizations,
    check_smlm_stack,
    read_localizations_csv,
    read_smlm_stack,
    write_localizations_csv,
)
from srlab.smlm.simulate import SMLMConfig, simulate_smlm, write_smlm_dataset

SMALL = SMLMConfig(height_px=32, width_px=32, density_per_um2=1.0)


def test_simulation_is_deterministic_per_seed():
    a = simulate_smlm(SMALL, frames=4, seed=3)
    b = simulate_smlm(SMALL, frames=4, seed=3)
    c = simulate_smlm(SMALL, frames=4, seed=4)
    assert a.stack.dtype == np.uint16 and a.stack.shape == (4, 32, 32)
    np.testing.assert_array_equal(a.stack, b.stack)
    np.testing.assert_array_equal(a.localizations.x_nm, b.localizations.x_nm)
    assert not np.array_equal(a.stack, c.stack)


@pytest.mark.parametrize("psf", ["gaussian", "airy"])
def test_written_csv_rerenders_to_the_noise_free_stack(tmp_path, psf):
    """Acceptance: the GT CSV beside the TIFF describes the same molecules as the stack."""
    cfg = SMALL.replace(psf=psf)
    paths = write_smlm_dataset(tmp_path / "smlm", frames=8, seed=1, config=cfg)
    stack, pixel_size_nm = read_smlm_stack(paths.stack)
    assert stack.shape == (8, 32, 32)
    assert pixel_size_nm == pytest.approx(100.0, rel=1e-4)
    assert paths.ground_truth.read_text().splitlines()[0] == '"frame","x [nm]","y [nm]","intensity [photon]"'
    gt = read_localizations_csv(paths.ground_truth, n_frames=8, field_nm=cfg.field_nm)
    assert len(gt) > 8 * 5
    clean = simulate_smlm(cfg, frames=8, seed=1).clean  # the in-memory noise-free stack of that run
    rerendered = np.stack([
        render_gaussians(gt.in_frame(t).x_nm / 100.0, gt.in_frame(t).y_nm / 100.0, gt.in_frame(t).photons,
                         shape=(32, 32), sigma_px=cfg.sigma_nm / 100.0) for t in range(8)])
    assert np.corrcoef(rerendered.ravel(), clean.ravel())[0, 1] > 0.99
    # ... and the camera stack agrees with them too, through its noise.
    photons = cfg.adu_to_photons(stack) - cfg.background_photons
    assert np.corrcoef(photons.ravel(), clean.ravel())[0, 1] > 0.9


def test_blinking_density_matches_the_setting():
    cfg = SMLMConfig(height_px=32, width_px=32, density_per_um2=2.0, mean_on_frames=3.0)
    acq = simulate_smlm(cfg, frames=300, seed=0)
    per_frame = len(acq.localizations) / 300
    assert per_frame == pytest.approx(2.0 * cfg.area_um2, rel=0.1)
    # On-states last 3 frames on average: 2/3 of a frame's molecules are still on in the next frame.
    locs = acq.localizations
    stayed = sum(len(np.intersect1d(locs.in_frame(t).x_nm, locs.in_frame(t + 1).x_nm)) for t in range(299))
    assert stayed / np.sum(locs.frame < 299) == pytest.approx(2 / 3, abs=0.06)


@pytest.mark.parametrize(("camera", "low", "high"), [("emccd", 1.8, 2.25), ("scmos", 0.95, 1.15)])
def test_camera_noise_model(camera, low, high):
    """Background-only frames: the mean converts back to photons; the variance of the photoelectron
    signal is ~2× its mean for an EMCCD (excess noise factor √2) and ~1× for an sCMOS."""
    cfg = SMLMConfig(height_px=32, width_px=32, density_per_um2=0.0, background_photons=50.0, camera=camera)
    acq = simulate_smlm(cfg, frames=20, seed=2)
    assert len(acq.localizations) == 0
    photons = acq.photons
    assert photons.mean() == pytest.approx(50.0, rel=0.02)
    electrons = photons * cfg.quantum_efficiency
    assert low < electrons.var() / electrons.mean() < high


@pytest.mark.parametrize("structure", ["microtubules", "er", "uniform"])
def test_structures_place_emitters_inside_the_field(structure):
    acq = simulate_smlm(SMALL.replace(structure=structure), frames=5, seed=0)
    locs = acq.localizations
    h, w = SMALL.field_nm
    assert len(locs) > 0
    assert locs.x_nm.min() >= 0 and locs.x_nm.max() < w and locs.y_nm.min() >= 0 and locs.y_nm.max() < h
    if structure != "uniform":
        assert len(acq.labels_nm) > 100


def test_microtubule_labels_lie_on_smooth_filaments():
    # Labels without linkage error on one filament: consecutive labels along x are close to a line
    # locally (persistence length 5 µm ≫ 300 nm).
    cfg = SMALL.replace(filament_count=1, label_spread_nm=0.0, labels_per_um=200.0)
    acq = simulate_smlm(cfg, frames=1, seed=5)
    pts = acq.labels_nm
    centre = pts[np.argmin(np.hypot(*(pts - pts.mean(0)).T))]
    near = pts[np.hypot(*(pts - centre).T) < 150]
    _, s, _ = np.linalg.svd(near - near.mean(0), full_matrices=False)
    assert s[1] / s[0] < 0.1


def test_csv_roundtrip_and_thunderstorm_variants(tmp_path):
    locs = Localizations([0, 0, 3], [10.0, 250.5, 999.0], [20.0, 30.25, 40.0], [1000.0, 2000.0, 1500.0])
    path = write_localizations_csv(tmp_path / "a.csv", locs)
    back = read_localizations_csv(path)
    np.testing.assert_array_equal(back.frame, [0, 0, 3])
    np.testing.assert_allclose(back.x_nm, locs.x_nm, atol=1e-3)
    np.testing.assert_allclose(back.photons, locs.photons, atol=1e-3)
    # A ThunderSTORM export: quoted names, extra columns, other column order, 1-based float frames.
    ts = tmp_path / "ts.csv"
    ts.write_text('"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]"\n'
                  "1,1.0,67.8,2484.1,111.2,2458.4,50\n2,2.0,28.9,3531.1,107.3,2253.5,50\n")
    got = read_localizations_csv(ts)
    np.testing.assert_array_equal(got.frame, [0, 1])
    np.testing.assert_allclose(got.y_nm, [2484.1, 3531.1])
    # Unquoted names and no intensity column.
    plain = tmp_path / "plain.csv"
    plain.write_text("frame,x [nm],y [nm]\n1,5,6\n")
    got = read_localizations_csv(plain)
    assert np.isnan(got.photons[0]) and got.x_nm[0] == 5.0


def test_csv_fast_path_reads_what_the_row_parser_reads(tmp_path, monkeypatch):
    """A regular table is parsed by numpy in one pass (srlab.smlm.localizations._numeric_body); an
    irregular one (quoted cells, a blank line, empty cells) by the row parser; both give the same table."""
    from srlab.smlm import localizations as module

    rng = np.random.default_rng(0)
    n = 500
    locs = Localizations(rng.integers(0, 50, n), rng.uniform(0, 5e3, n), rng.uniform(0, 5e3, n),
                         rng.uniform(500, 3000, n), uncertainty_nm=rng.uniform(5, 20, n))
    path = write_localizations_csv(tmp_path / "t.csv", locs)
    fast = read_localizations_csv(path)
    monkeypatch.setattr(module, "_numeric_body", lambda *args: None)
    slow = read_localizations_csv(path)
    monkeypatch.undo()
    for key in ("frame", "x_nm", "y_nm", "photons", "uncertainty_nm", "sigma_nm"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(slow, key))
    assert module._numeric_body(path, {"frame": 0}, ("frame",), 5) is not None  # the fast path was taken
    lines = path.read_text().splitlines()
    irregular = tmp_path / "irregular.csv"
    irregular.write_text("\n".join([lines[0], '"' + lines[1].replace(",", '","') + '"', "", *lines[2:]]) + "\n")
    assert module._numeric_body(irregular, {"frame": 0}, ("frame",), 5) is None
    again = read_localizations_csv(irregular)
    np.testing.assert_array_equal(again.x_nm, fast.x_nm)
    empty = tmp_path / "empty.csv"
    empty.write_text(lines[0] + "\n")
    assert len(read_localizations_csv(empty)) == 0


def test_csv_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('"frame","x [px]","y [nm]"\n1,2,3\n')
    with pytest.raises(SrlabError, match=r"missing column\(s\) 'x \[nm\]'") as err:
        read_localizations_csv(bad)
    assert "\n" not in str(err.value)
    outside = tmp_path / "outside.csv"
    outside.write_text("frame,x [nm],y [nm]\n1,50,50\n2,7000,10\n")
    with pytest.raises(SrlabError, match="outside the field.*frame 2 at x=7000"):
        read_localizations_csv(outside, field_nm=(3200.0, 3200.0))
    with pytest.raises(SrlabError, match="beyond the stack's 1 frames"):
        read_localizations_csv(outside, n_frames=1)
    zero = tmp_path / "zero.csv"
    zero.write_text("frame,x [nm],y [nm]\n0,1,1\n")
    with pytest.raises(SrlabError, match="1-based"):
        read_localizations_csv(zero)
    text = tmp_path / "text.csv"
    text.write_text("frame,x [nm],y [nm]\n1,abc,1\n")
    with pytest.raises(SrlabError, match="text.csv:2: not a number"):
        read_localizations_csv(text)


def test_stack_errors(tmp_path):
    with pytest.raises(SrlabError, match="single frame"):
        check_smlm_stack(np.zeros((1, 16, 16), np.uint16), where="s.tif")
    with pytest.raises(SrlabError, match="complex"):
        check_smlm_stack(np.zeros((3, 16, 16), np.complex64), where="s.tif")
    with pytest.raises(SrlabError, match="bool"):
        check_smlm_stack(np.zeros((3, 16, 16), bool), where="s.tif")
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(SrlabError, match="RGB"):
        read_smlm_stack(rgb)
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, np.zeros((16, 16), np.uint16))
    with pytest.raises(SrlabError, match="single frame"):
        read_smlm_stack(single)
    with pytest.raises(SrlabError, match="missing.tif: no such file"):
        read_smlm_stack(tmp_path / "missing.tif")


def test_config_errors():
    with pytest.raises(SrlabError, match="unknown smlm.structure 'tubes'"):
        SMLMConfig(structure="tubes")
    with pytest.raises(SrlabError, match=r"unknown option 'smlm.densty_per_um2' \(did you mean 'density_per_um2'"):
        SMLMConfig.from_mapping({"densty_per_um2": 1.0})
    with pytest.raises(SrlabError, match="smlm.na=0"):
        SMLMConfig(na=0)
    with pytest.raises(SrlabError, match="frames"):
        write_smlm_dataset("/tmp/unused-srlab-smlm", frames=1)


def test_heatmap_target_carries_the_emitter_mass():
    target = heatmap_target(np.array([100.0, 412.5]), np.array([100.0, 300.0]), shape=(64, 64),
                            pixel_size_nm=12.5, emitter_mass=100.0)
    assert target.sum() == pytest.approx(200.0, rel=1e-4)
    assert np.unravel_index(target.argmax(), target.shape) in {(7, 7), (23, 32)}


def test_datamodule_batches():
    cfg = SMLMDataConfig(kind="smlm", scale=8, patch_size=12, batch_size=3,
                         simulation={"height_px": 24, "width_px": 24, "density_per_um2": 2.0},
                         train_frames=6, val_frames=3, test_frames=3)
    dm = SMLMDataModule(cfg, 0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (3, 1, 12, 12) and batch["hr"].shape == (3, 1, 96, 96)
    assert batch["photons"].shape == (3, 1, 12, 12) and len(batch["positions_nm"]) == 3
    for xy in batch["positions_nm"]:
        assert xy.ndim == 2 and xy.shape[1] == 2
        assert torch.all((xy >= 0) & (xy < 1200))
    counts = torch.tensor([len(xy) for xy in batch["positions_nm"]], dtype=torch.float32)
    # Molecules within σ of a patch edge lose part of their Gaussian; none gains mass.
    mass = batch["hr"].sum(dim=(1, 2, 3))
    assert torch.all(mass <= 100 * counts + 1e-2) and torch.all(mass >= 100 * counts * 0.8 - 1e-2)
    val = next(iter(dm.val_dataloader()))
    assert val["lr"].shape == (3, 1, 24, 24)
    assert val["frame"].tolist() == [0, 1, 2]
    # Batches are reproducible: same seed, same frames.
    dm2 = SMLMDataModule(cfg, 0)
    dm2.setup("fit")
    assert torch.equal(dm2.datasets["train"][1]["lr"], dm.datasets["train"][1]["lr"])
    assert torch.equal(next(iter(dm2.val_dataloader()))["lr"], val["lr"])


def test_psf_sigma_overrides_wavelength_and_na():
    """psf_sigma_nm sets the Gaussian PSF directly; unset, settings (and cache keys) are as before."""
    assert "psf_sigma_nm" not in SMALL.as_dict()
    assert SMALL.sigma_nm == pytest.approx(0.21 * 660.0 / 1.4)
    wide = SMALL.replace(psf_sigma_nm=180.0)
    assert wide.sigma_nm == 180.0 and wide.as_dict()["psf_sigma_nm"] == 180.0
    a = simulate_smlm(SMALL, frames=2, seed=0).clean
    b = simulate_smlm(wide, frames=2, seed=0).clean
    assert a.sum() == pytest.approx(b.sum(), rel=0.05) and b.max() < 0.8 * a.max()  # same photons, wider
    with pytest.raises(SrlabError, match="psf_sigma_nm"):
        SMLMConfig(psf="airy", psf_sigma_nm=150.0)
    with pytest.raises(SrlabError, match="psf_sigma_nm=0"):
        SMLMConfig(psf_sigma_nm=0)


def test_simulate_cli_honours_size(tmp_path):
    from tests.conftest import cli_in_process

    proc = cli_in_process("simulate", "--smlm", "--size", "20", "--frames", "3", "--out", str(tmp_path / "s"),
                          "psf_sigma_nm=150")
    assert proc.returncode == 0, proc.stderr
    stack, _ = read_smlm_stack(tmp_path / "s" / "stack.tif")
    assert stack.shape == (3, 20, 20)
    assert "20×20 px" in proc.stdout and "σ 150 nm" in proc.stdout
