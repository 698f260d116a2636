"""``data.register``: pairs read from files (two acquisitions) have each HR moved into its LR's frame by the
measured shift before training, so a network does not learn to shift and blur; simulated pairs are
aligned by construction and the key is refused there."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.shifted_pairs import shifted_copy
from srlab import cli
from srlab.data import build_datamodule
from srlab.data.registration import Alignment, border_px, pair_alignment
from srlab.errors import SrlabError
from tests.conftest import TINY


@pytest.fixture(scope="module")
def shifted_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("register")
    assert cli.main(["simulate", "--pair", "confocal:sted", "--n", "4", "--size", "128",
                     "--out", str(root / "aligned")]) == 0
    return shifted_copy(root / "aligned", root / "shifted", (3.0, -2.0))


def test_register_moves_each_hr_into_its_lr_frame(shifted_folder: Path, cfg_factory):
    plain = build_datamodule(cfg_factory(kind="paired", path=str(shifted_folder)), seed=0)
    plain.setup("fit")
    registered = build_datamodule(cfg_factory(kind="paired", path=str(shifted_folder), register=True), seed=0)
    registered.setup("fit")
    alignments = registered.describe()["registration"]["hr_alignment"]
    assert len(alignments) == 4 and "registration" not in plain.describe()
    # unregistered, the alignments are read all the same, and the note says what to do
    alignment = plain.describe()["alignment"]
    assert alignment["median_displacement_px"] == pytest.approx(np.hypot(3.0, 2.0), abs=0.3)
    assert "data.register=true" in alignment["note"] and "alignment" not in registered.describe()
    for name, read in alignments.items():
        dy, dx = read["shift_px"]
        assert dy == pytest.approx(3.0, abs=0.3) and dx == pytest.approx(-2.0, abs=0.3), name
        assert read["zoom"] == pytest.approx(1.0, abs=0.002) and read["rotation_deg"] == pytest.approx(0.0, abs=0.1)
    for split in ("train", "val", "test"):
        for before, after in zip(plain.data[split], registered.data[split]):
            # the border: the largest displacement rounded up, one pixel more, in whole LR pixels
            read = alignments[after.name]
            fitted = Alignment(tuple(read["shift_px"]), read["zoom"], read["rotation_deg"])
            border_lr = int(np.ceil(border_px(fitted, before.hr.shape[-2:]) / 2))
            assert after.lr.shape[-1] == before.lr.shape[-1] - 2 * border_lr
            assert after.hr.shape[-1] == 2 * after.lr.shape[-1]
            assert np.hypot(*pair_alignment(before.lr, before.hr, 2).shift_px) > 3.0
            # what is left: the shift read with no magnification or rotation (one field's free fit of those
            # is noisier than the folder's, which registered it)
            assert np.hypot(*pair_alignment(after.lr, after.hr, 2, fixed=(1.0, 0.0)).shift_px) < 0.3


def test_register_is_refused_on_simulated_pairs(cfg_factory, sim_cache):
    dm = build_datamodule(cfg_factory(kind="simulated", register=True,
                                      simulation={"n_images": 6, "lr_size_px": 32}), seed=0)
    with pytest.raises(SrlabError, match="aligned by construction"):
        dm.setup("fit")


def test_aligned_pairs_get_no_note(shifted_folder: Path, cfg_factory):
    aligned = build_datamodule(cfg_factory(kind="paired", path=str(shifted_folder.parent / "aligned")), seed=0)
    aligned.setup("fit")
    alignment = aligned.describe()["alignment"]
    assert len(alignment["hr_alignment"]) == 4 and alignment["median_displacement_px"] < 0.3
    assert "note" not in alignment


def test_register_undoes_a_magnification_and_a_rotation(shifted_folder: Path, cfg_factory):
    """Pairs through two objectives and two cameras: the HR magnified 2 % and turned 1°. data.register reads one
    magnification and rotation for the folder and brings every HR into its LR's frame; what is left reads none."""
    turned = shifted_copy(shifted_folder.parent / "aligned", shifted_folder.parent / "turned", (0.5, 0.5), 1.02, 1.0)
    registered = build_datamodule(cfg_factory(kind="paired", path=str(turned), register=True), seed=0)
    registered.setup("fit")
    alignments = registered.describe()["registration"]["hr_alignment"]
    assert len(alignments) == 4
    for read in alignments.values():
        assert read["zoom"] == pytest.approx(1.02, abs=0.002) and read["rotation_deg"] == pytest.approx(1.0, abs=0.1)
    left = [pair_alignment(pair.lr, pair.hr, 2) for split in ("train", "val", "test") for pair in registered.data[split]]
    assert float(np.median([a.zoom for a in left])) == pytest.approx(1.0, abs=0.002)
    assert float(np.median([a.rotation_deg for a in left])) == pytest.approx(0.0, abs=0.1)


def test_a_folders_alignments_are_measured_once_and_read_back_equal(shifted_folder: Path, cfg_factory,
                                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A second train/test of the same pairs reads the stored alignments (the same values to the last bit, so
    the registered images are too) instead of measuring ~3 s a pair again; they are stored only when the
    command keeps them (past the checks of the user's input: tests/foundation/test_bad_inputs_table.py);
    other pixels or another scale are another key; a damaged or unwritable store is measured past."""
    import tifffile

    from srlab.data import registration

    store = tmp_path / "data" / "alignments"
    registered = build_datamodule(cfg_factory(kind="paired", path=str(shifted_folder), register=True), seed=0)
    registered.setup("fit")
    assert not store.exists() and len(registered.measured_alignments) == 1  # measured, not yet kept
    registered.store_measurements()
    assert len(list(store.glob("*.json"))) == 1 and registered.measured_alignments == {}

    def measured_again(*args, **kwargs):
        raise AssertionError("measured again")

    with monkeypatch.context() as patch:
        patch.setattr(registration, "_measure_folder_alignments", measured_again)
        again = build_datamodule(cfg_factory(kind="paired", path=str(shifted_folder), register=True), seed=0)
        again.setup("fit")
    assert again.measured_alignments == {}
    assert again.describe()["registration"] == registered.describe()["registration"]
    for split in ("train", "val", "test"):
        for a, b in zip(registered.data[split], again.data[split]):
            assert np.array_equal(a.hr, b.hr) and np.array_equal(a.lr, b.lr)

    lr = tifffile.imread(min((shifted_folder / "lr").glob("*.tif")))[None]
    hr = tifffile.imread(min((shifted_folder / "hr").glob("*.tif")))[None]
    key = registration.alignments_key([(lr, hr)], 2)
    assert key != registration.alignments_key([(lr, hr)], 3)
    changed = hr.copy()
    changed[0, 0, 0] += 1
    assert key != registration.alignments_key([(lr, changed)], 2)
    measured: dict = {}
    first = registration.folder_alignments([(lr, hr)], 2, measured=measured)
    path = store / f"{key[:32]}.json"
    assert list(measured) == [path]
    registration.store_alignments(measured)
    assert registration._read_alignments(path, 1) == first
    path.write_text("{ not json")
    assert registration.folder_alignments([(lr, hr)], 2, measured=measured) == first  # measured again
    assert list(measured) == [path]
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "a_file"))
    (tmp_path / "a_file").write_text("not a folder")
    unwritable: dict = {}
    assert registration.folder_alignments([(lr, hr)], 2, measured=unwritable) == first
    registration.store_alignments(unwritable)  # passed over
    assert unwritable == {}

    # the commands keep what they measured once past the user's mistakes, and read one another's: srlab evaluate
    # measures the folder's pairs as the training's data.register did (one file for both)
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "commands"))
    assert cli.main(["train", "edsr_smoke", *TINY, f"runs_dir={tmp_path / 'runs'}", "data=paired",
                     f"data.path={shifted_folder}", "data.register=true"]) == 0
    kept = sorted((tmp_path / "commands" / "alignments").glob("*.json"))
    assert len(kept) == 1
    with monkeypatch.context() as patch:
        patch.setattr(registration, "_measure_folder_alignments", measured_again)
        assert cli.main(["evaluate", "--pairs", str(shifted_folder), "--out", str(tmp_path / "report"),
                         "--register"]) == 0
    assert sorted((tmp_path / "commands" / "alignments").glob("*.json")) == kept
