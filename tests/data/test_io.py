"""TIFF reading/writing: pixel sizes (ImageJ, OME, resolution tags), stacks, channels, dtypes."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from srlab.data.io import load_images, read_tiff, source_name, write_tiff
from srlab.errors import SrlabError


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_imagej_roundtrip_keeps_pixels_and_pixel_size(tmp_path, dtype):
    image = (np.arange(35 * 22).reshape(35, 22) % 200).astype(dtype)  # odd size on purpose
    path = write_tiff(tmp_path / "a.tif", image, pixel_size_nm=37.5)
    array, axes, size = read_tiff(path)
    assert axes == "YX" and array.dtype == dtype
    np.testing.assert_array_equal(array, image)
    assert size == pytest.approx(37.5, rel=1e-6)
    with tifffile.TiffFile(path) as tif:  # Fiji/napari read the calibration from ImageJ metadata
        assert tif.is_imagej and tif.imagej_metadata["unit"] in ("um", "micron", "\\u00B5m")


def test_pixel_size_from_ome_and_resolution_tags(tmp_path):
    image = np.zeros((8, 8), np.uint16)
    ome = tmp_path / "ome.ome.tif"
    tifffile.imwrite(ome, image, ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.065,
                                                     "PhysicalSizeXUnit": "µm"})
    assert read_tiff(ome)[2] == pytest.approx(65.0)
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, image, resolution=(1e5, 1e5), resolutionunit="CENTIMETER")  # 100 nm pixels
    assert read_tiff(cm)[2] == pytest.approx(100.0)
    dpi = tmp_path / "dpi.tif"
    tifffile.imwrite(dpi, image, resolution=(300, 300), resolutionunit="INCH")  # a dpi, not a pixel size
    assert read_tiff(dpi)[2] is None


def test_stack_slices_become_separate_images(tmp_path):
    stack = np.random.default_rng(0).random((3, 2, 16, 12)).astype(np.float32)
    path = write_tiff(tmp_path / "cell.tif", stack, pixel_size_nm=50, axes="TZYX")
    images = load_images(path)
    assert [im.name for im in images][:3] == ["cell[t=0,z=0]", "cell[t=0,z=1]", "cell[t=1,z=0]"]
    assert len(images) == 6 and images[3].image.shape == (1, 16, 12)
    np.testing.assert_array_equal(images[3].image[0], stack[1, 1])
    assert {source_name(im.name) for im in images} == {"cell"}


def test_channel_selection_and_colour_images(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (3, 10, 14)).astype(np.uint8)
    multi = write_tiff(tmp_path / "multi.tif", image, pixel_size_nm=None, axes="CYX")
    picked = load_images(multi, channel=2)
    np.testing.assert_array_equal(picked[0].image[0], image[2].astype(np.float32))
    assert load_images(multi, channels=3)[0].image.shape == (3, 10, 14)
    with pytest.raises(SrlabError, match="multi.tif.*3-channel.*data.channel"):
        load_images(multi)
    with pytest.raises(SrlabError, match="multi.tif.*data.channel=5"):
        load_images(multi, channel=5)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((10, 14, 3), np.uint8), photometric="rgb")
    with pytest.raises(SrlabError, match="rgb.tif.*RGB/colour"):
        load_images(rgb)
    assert load_images(rgb, channel=1)[0].image.shape == (1, 10, 14)


def test_unreadable_files_name_the_file(tmp_path):
    good = write_tiff(tmp_path / "good.tif", np.ones((64, 64), np.uint16), pixel_size_nm=20)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff at all")
    for bad in (truncated, garbage):
        with pytest.raises(SrlabError, match=bad.name):
            load_images(bad)
    nan = write_tiff(tmp_path / "nan.tif", np.full((8, 8), np.nan, np.float32), pixel_size_nm=20)
    with pytest.raises(SrlabError, match="nan.tif.*NaN"):
        load_images(nan)


def test_integer_percentiles_are_exact_without_copying():
    """8/16-bit frames get exact percentiles from a chunked histogram (numpy's linear interpolation)."""
    from srlab.data.normalize import percentile_scale

    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint16, 4000), (np.uint8, 255)):
        image = (rng.random((301, 257)) * top).astype(dtype)
        for low, high in ((0.1, 99.9), (0.0, 100.0), (3.0, 97.0)):
            scale = percentile_scale(image, low, high)
            expected = np.percentile(image.astype(np.float64), [low, high])
            np.testing.assert_allclose([scale.low, scale.high], expected, rtol=1e-9, atol=1e-9)
