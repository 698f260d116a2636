"""The summary's note where the block's simulated specimens are far denser or sparser than the user's
(srlab.calibration.command.density_notes)."""
from __future__ import annotations

from srlab.calibration import calibrate
from srlab.calibration.block import simulate_check
from srlab.calibration.command import DENSITY_NOTE_GAP, density_notes
from srlab.data.io import write_tiff


def _images(tmp_path, density_range, name):
    from srlab.data.simulate import Imager, resolve_simulation

    lr = {"modality": "widefield", "e_per_adu": 0.5, "read_noise_e": 2.0, "offset_adu": 100.0,
          "signal_photons": 300.0, "background_photons": 5.0}
    spec = resolve_simulation({"lr": lr, "hr": {"modality": "sim"}, "n_images": 2, "lr_size_px": 128, "seed": 3,
                               "density_range": density_range, "out_of_focus_fraction": 0.0}, scale=2)
    imager = Imager(spec)
    return [write_tiff(tmp_path / f"{name}{i}.tif", imager.image(i)["lr"], pixel_size_nm=80.0) for i in range(2)]


def test_sparse_specimens_get_the_density_note_and_ordinary_ones_do_not(tmp_path):
    """srlab's widefield images at a twentieth of the broad prior's density: most pixels near-empty, far
    more than in the block's simulation, and the note names the key; images of the prior's own density
    get none."""
    sparse = calibrate(_images(tmp_path, [0.05, 0.1], "sparse"), offset_adu=100.0)
    check = simulate_check(sparse, n=2, size_px=128)
    real, simulated = sparse.lr.histogram["fraction_below_0.05"], check["lr"].histogram["fraction_below_0.05"]
    assert real - simulated > DENSITY_NOTE_GAP
    (note,) = density_notes(sparse, check)
    assert note.startswith("LR:") and "denser than yours" in note and "Lower simulation.density_range" in note
    assert f"now [{check['spec'].density_range[0]:g}, {check['spec'].density_range[1]:g}]" in note
    ordinary = calibrate(_images(tmp_path, [1.0, 1.0], "ordinary"), offset_adu=100.0)
    check = simulate_check(ordinary, n=2, size_px=128)
    assert abs(ordinary.lr.histogram["fraction_below_0.05"] - check["lr"].histogram["fraction_below_0.05"]) \
        <= DENSITY_NOTE_GAP
    assert density_notes(ordinary, check) == []
    assert density_notes(ordinary, {}) == []  # --no-check: nothing to compare


def test_a_block_psf_read_far_off_on_its_own_simulation_gets_the_specimen_note():
    """realcheck's pySTED block: 174 nm read as 138 on its simulated images (−21 %), beyond
    :data:`PSF_CHECK_GAP`; a reading within it, a rendering, or no check (--no-check) get no note."""
    from types import SimpleNamespace

    from srlab.calibration import Estimate
    from srlab.calibration.command import PSF_CHECK_GAP, psf_check_notes

    def side(role, fwhm, rendering=False):
        est = Estimate(fwhm, 5.0, "nm", "power spectrum (16 isolated spots < 30)")
        return SimpleNamespace(role=role, rendering=rendering, estimates={"psf_fwhm_nm": est})

    cal = SimpleNamespace(lr=side("lr", 174.0), hr=side("hr", 49.2))
    check = {"lr": side("lr", 138.0), "hr": side("hr", 49.2 * (1 + 0.9 * PSF_CHECK_GAP))}
    (note,) = psf_check_notes(cal, check)
    assert note.startswith("LR:") and "PSF FWHM (174 nm) as 138 nm (-21%, power spectrum)" in note
    assert "depends on the specimens" in note
    assert psf_check_notes(cal, {}) == []
    rendering = SimpleNamespace(lr=side("lr", 174.0), hr=side("hr", 60.0, rendering=True))
    assert psf_check_notes(rendering, {"lr": side("lr", 170.0), "hr": side("hr", 20.0)}) == []
