"""``srlab calibrate --channel / --hr-channel``: one channel of multi-channel files is measured, as it
would be from the channel's own files; the block records it; the refusals are one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from srlab.cli import main
from srlab.data.io import write_tiff
from tests.calibration.test_calibrate import OFFSET_ADU, real_folder  # noqa: F401  (the fixture)


def _two_channel(real_folder: Path, folder: Path, pixel_size_nm: float = 80.0) -> list[Path]:  # noqa: F811
    """The fixture's images as channel 1 beside another channel (a brighter, other field) as channel 0."""
    from srlab.data.io import read_tiff

    folder.mkdir()
    files = sorted(real_folder.glob("*.tif"))
    out = []
    for k, f in enumerate(files):
        image, _, _ = read_tiff(f)
        other, _, _ = read_tiff(files[(k + 1) % len(files)])
        both = np.stack([np.clip(other.astype(np.int64) * 2, 0, 60000).astype(np.uint16), image])
        out.append(write_tiff(folder / f.name, both, pixel_size_nm=pixel_size_nm, axes="CYX"))
    return out


def test_a_channel_of_multi_channel_files_is_measured_as_its_own_files(real_folder: Path, tmp_path: Path,  # noqa: F811
                                                                         capsys):
    from srlab.calibration import calibrate

    files = _two_channel(real_folder, tmp_path / "two")
    alone = calibrate(sorted(real_folder.glob("*.tif")), modality="widefield", offset_adu=OFFSET_ADU).lr.estimates
    chosen = calibrate(files, modality="widefield", offset_adu=OFFSET_ADU, channel=1).lr.estimates
    assert {k: e.value for k, e in chosen.items()} == {k: e.value for k, e in alone.items()}
    other = calibrate(files, modality="widefield", offset_adu=OFFSET_ADU, channel=0).lr.estimates
    assert other["signal_photons"].value != chosen["signal_photons"].value
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", *map(str, files), "--channel", "1", "--offset-adu", str(OFFSET_ADU),
                 "--no-check", "--out", str(out)]) == 0
    assert "srlab adapt and srlab predict read that channel" in capsys.readouterr().out
    text = out.read_text()
    assert yaml.safe_load(text)["channel"] == 1 and "image(s), channel 1)" in text


def test_hr_channel_is_measured_and_recorded_for_the_hr_specimens(real_folder: Path, tmp_path: Path,  # noqa: F811
                                                                   capsys):
    """``--hr-channel`` picks the HR files' channel; with ``--hr-specimens`` the block's simulation reads
    that channel of them (``simulation.hr_image_channel``) and the check simulation runs on it."""
    from srlab.data.simulate import resolve_simulation

    lrs = [str(f) for f in sorted(real_folder.glob("*.tif"))]
    hrs = [str(f) for f in _two_channel(real_folder, tmp_path / "hr", pixel_size_nm=40.0)[:2]]
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", *lrs, "--hr", *hrs, "--hr-channel", "1", "--hr-specimens", "--target", "sim",
                 "--offset-adu", str(OFFSET_ADU), "--out", str(out)]) == 0
    assert "(simulated:" in capsys.readouterr().out  # the check simulation ran on the block
    block = yaml.safe_load(out.read_text())
    assert "channel" not in block and block["simulation"]["hr_image_channel"] == 1
    assert resolve_simulation(block["simulation"], scale=2).hr_image_channel == 1


def test_dark_frames_take_the_same_channel(real_folder: Path, tmp_path: Path):  # noqa: F811
    """A two-channel dark stack gives the chosen channel's offset; a one-channel one serves any channel."""
    from srlab.calibration import calibrate

    files = _two_channel(real_folder, tmp_path / "two")
    rng = np.random.default_rng(4)
    dark = np.stack([np.full((10, 64, 64), 300), np.round(OFFSET_ADU + rng.normal(0, 4, (10, 64, 64)))], axis=1)
    both = write_tiff(tmp_path / "dark2.tif", dark.astype(np.uint16), pixel_size_nm=None, axes="TCYX")
    e = calibrate(files, modality="widefield", dark_paths=[both], channel=1).lr.estimates
    assert e["offset_adu"].value == pytest.approx(OFFSET_ADU, abs=0.2)
    one = write_tiff(tmp_path / "dark1.tif", dark[:, 1].astype(np.uint16), pixel_size_nm=None)
    e = calibrate(files, modality="widefield", dark_paths=[one], channel=1).lr.estimates
    assert e["offset_adu"].value == pytest.approx(OFFSET_ADU, abs=0.2)


@pytest.mark.parametrize("case, expect", [
    ("no_channel", "a 2-channel image (axes 'CYX'); pass --channel 0..1"),
    ("channel_too_high", "--channel 2, but the image has 2 channel(s)"),
    ("channel_of_one_channel_files", "--channel 1, but the image has 1 channel(s)"),
    ("hr_channel_without_hr", "--hr-channel needs --hr images"),
    ("negative", "--channel -1: a channel index >= 0"),
    ("hr_no_channel", "a 2-channel image (axes 'CYX'); pass --hr-channel 0..1"),
])
def test_channel_mistakes_are_one_line_exit_2(real_folder: Path, tmp_path: Path, capsys, case: str,  # noqa: F811
                                              expect: str):
    files = [str(f) for f in _two_channel(real_folder, tmp_path / "two")]
    single = [str(f) for f in sorted(real_folder.glob("*.tif"))]
    args = {"no_channel": files, "channel_too_high": [*files, "--channel", "2"],
            "channel_of_one_channel_files": [*single, "--channel", "1"],
            "hr_channel_without_hr": [*single, "--hr-channel", "0"], "negative": [*files, "--channel", "-1"],
            "hr_no_channel": [*single, "--hr", files[0], "--hr-pixel-size-nm", "40"]}[case]
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_smlm_refuses_the_hr_channel_option(tmp_path: Path, capsys):
    stack = write_tiff(tmp_path / "s.tif", np.ones((2, 64, 64), np.uint16), pixel_size_nm=100.0)
    assert main(["calibrate", str(stack), "--smlm", "--hr-channel", "0", "--out", str(tmp_path / "s.yaml")]) == 2
    assert "--hr-channel is for image calibration, not --smlm" in capsys.readouterr().err
