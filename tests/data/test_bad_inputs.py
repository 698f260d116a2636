"""Bad input files: each is one line naming the file, exit status 2 from the CLI, no traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from srlab import cli
from srlab.data import build_datamodule
from srlab.data.io import write_tiff
from srlab.errors import SrlabError
from tests.data.conftest import write_pairs


def _truncated(root: Path) -> Path:
    path = root / "lr" / "img_0.tif"
    path.write_bytes(path.read_bytes()[:300])
    return path


def _garbage(root: Path) -> Path:
    path = root / "hr" / "img_1.tif"
    path.write_bytes(b"II*\x00 definitely not a TIFF image")
    return path


def _wrong_shape(root: Path) -> Path:
    return write_tiff(root / "hr" / "img_2.tif", np.ones((64, 60), np.float32), pixel_size_nm=20)


def _wrong_pixel_size(root: Path) -> Path:
    return write_tiff(root / "hr" / "img_2.tif", np.random.default_rng(0).random((64, 64)).astype(np.float32),
                      pixel_size_nm=13)


def _no_partner(root: Path) -> Path:
    return write_tiff(root / "lr" / "lonely.tif", np.ones((32, 32), np.float32), pixel_size_nm=40)


def _nan(root: Path) -> Path:
    image = np.ones((32, 32), np.float32)
    image[3, 4] = np.inf
    return write_tiff(root / "lr" / "img_3.tif", image, pixel_size_nm=40)


def _empty(root: Path) -> Path:
    for f in (root / "hr").iterdir():
        f.unlink()
    return root / "hr"


def _too_small(root: Path) -> Path:
    write_tiff(root / "hr" / "img_4.tif", np.ones((20, 20), np.float32), pixel_size_nm=20)
    return write_tiff(root / "lr" / "img_4.tif", np.ones((10, 10), np.float32), pixel_size_nm=40)


def _colour(root: Path) -> Path:
    path = root / "lr" / "img_1.tif"
    tifffile.imwrite(path, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    return path


CASES = {"truncated": _truncated, "unreadable": _garbage, "shape_vs_scale": _wrong_shape,
         "pixel_size_vs_scale": _wrong_pixel_size, "missing_partner": _no_partner, "nan_inf": _nan,
         "empty_folder": _empty, "smaller_than_patch": _too_small, "colour_without_channel": _colour}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_file(tmp_path, cfg_factory, case):
    root = write_pairs(tmp_path / "data", n=5, size=32)
    bad = CASES[case](root)
    with pytest.raises(SrlabError) as err:
        build_datamodule(cfg_factory(kind="paired", path=str(root)), seed=0).setup()
    message = str(err.value)
    assert "\n" not in message and str(bad) in message


def test_too_few_images_and_missing_folder(tmp_path, cfg_factory):
    root = write_pairs(tmp_path / "two", n=2)
    with pytest.raises(SrlabError, match="too few"):
        build_datamodule(cfg_factory(kind="paired", path=str(root)), seed=0).setup()
    with pytest.raises(SrlabError, match="nowhere: data.path is not a folder"):
        build_datamodule(cfg_factory(kind="paired", path=str(tmp_path / "nowhere")), seed=0).setup()


@pytest.mark.parametrize("case", list(CASES))
def test_cli_exits_with_status_2(tmp_path, capsys, tiny, case):
    root = write_pairs(tmp_path / "data", n=5, size=32)
    bad = CASES[case](root)
    status = cli.main(["train", "edsr_smoke", *tiny, "data=paired", f"data.path={root}"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err
