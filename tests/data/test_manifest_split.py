"""Manifest splits: the LR files of one HR field (rows linked by a shared file) stay in one split; a one-to-one
manifest splits as it always did; two LR files of one stem in different folders are refused."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from srlab.data import build_datamodule
from srlab.data.datamodules import SPLITS, _split_sources
from srlab.data.io import write_tiff
from srlab.errors import SrlabError
from tests.data.conftest import area_down, smooth_image

SCALE = 2


def _write_manifest(path: Path, rows: list[tuple[str, ...]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lr", "hr", "split"][:len(rows[0])])
        writer.writerows(rows)


def _many_to_one(root: Path, n_hr: int = 6, per_hr: int = 2, seed: int = 0) -> dict[str, str]:
    """``n_hr`` HR fields, each with ``per_hr`` LR acquisitions (its area downsampling plus its own noise);
    returns LR stem -> HR stem."""
    rng = np.random.default_rng(seed)
    hr_of: dict[str, str] = {}
    for k in range(n_hr):
        hr = smooth_image(rng, (32 * SCALE, 32 * SCALE), sigma=2.0 * SCALE)
        write_tiff(root / "hr" / f"field_{k}.tif", hr, pixel_size_nm=20)
        for j in range(per_hr):
            lr = area_down(hr, SCALE) + rng.normal(0.0, 5.0, (32, 32)).astype(np.float32)
            write_tiff(root / "lr" / f"field_{k}_acq_{j}.tif", lr, pixel_size_nm=40)
            hr_of[f"field_{k}_acq_{j}"] = f"field_{k}"
    return hr_of


def _paired(root: Path, cfg_factory, **values):
    dm = build_datamodule(cfg_factory(kind="paired", path=str(root), **values), 0)
    dm.setup()
    return dm


def test_lr_files_of_one_hr_field_share_a_split(tmp_path, cfg_factory):
    hr_of = _many_to_one(tmp_path)
    # rows interleaved, so that neither manifest order nor name order keeps the fields together by chance
    stems = sorted(hr_of, key=lambda s: (s[-1], s))
    _write_manifest(tmp_path / "pairs.csv", [(f"lr/{s}.tif", f"hr/{hr_of[s]}.tif") for s in stems])
    for split_seed in range(4):
        dm = _paired(tmp_path, cfg_factory, split_seed=split_seed, params={"manifest": "pairs.csv"})
        fields = {k: {hr_of[s] for s in dm.split_sources[k]} for k in SPLITS}
        assert all(fields.values()) and sum(len(v) for v in fields.values()) == 6
        for a in SPLITS:
            for b in SPLITS:
                if a < b:
                    assert not fields[a] & fields[b], (split_seed, a, b, fields)
        # every LR file is listed once, and the HR arrays of one split appear in no other split
        listed = [s for k in SPLITS for s in dm.split_sources[k]]
        assert sorted(listed) == sorted(hr_of)
        for k in SPLITS:
            assert {p.source for p in dm.data[k]} == set(dm.split_sources[k])
            others = [q.hr for o in SPLITS if o != k for q in dm.data[o]]
            assert not any(np.array_equal(p.hr, q) for p in dm.data[k] for q in others)


def test_one_to_one_manifest_splits_as_before(pair_folder, cfg_factory):
    _write_manifest(pair_folder / "pairs.csv", [(f"lr/img_{k}.tif", f"hr/img_{k}.tif") for k in range(5)])
    for split_seed in (0, 1, 7):
        manifest = _paired(pair_folder, cfg_factory, split_seed=split_seed, params={"manifest": "pairs.csv"})
        folder = _paired(pair_folder, cfg_factory, split_seed=split_seed)
        cfg = cfg_factory(kind="paired", path=str(pair_folder), split_seed=split_seed)
        before = _split_sources([f"img_{k}" for k in range(5)], cfg, "here")
        assert manifest.split_sources == folder.split_sources == before
    # the split these files had before manifests grouped files by HR field (split_seed 0)
    assert _paired(pair_folder, cfg_factory, params={"manifest": "pairs.csv"}).split_sources == {
        "test": ["img_2"], "val": ["img_4"], "train": ["img_0", "img_1", "img_3"]}


def test_given_splits_must_agree_within_one_hr_field(tmp_path, cfg_factory):
    hr_of = _many_to_one(tmp_path, n_hr=3)
    field_split = {"field_0": "train", "field_1": "val", "field_2": "test"}
    rows = [(f"lr/{s}.tif", f"hr/{hr_of[s]}.tif", field_split[hr_of[s]]) for s in sorted(hr_of)]
    _write_manifest(tmp_path / "pairs.csv", rows)
    dm = _paired(tmp_path, cfg_factory, params={"manifest": "pairs.csv"})
    assert dm.split_sources == {"train": ["field_0_acq_0", "field_0_acq_1"], "val": ["field_1_acq_0", "field_1_acq_1"],
                                "test": ["field_2_acq_0", "field_2_acq_1"]}
    rows[1] = (*rows[1][:2], "test")  # field_0_acq_1 into test while field_0_acq_0 trains
    _write_manifest(tmp_path / "pairs.csv", rows)
    with pytest.raises(SrlabError, match=r"pairs\.csv: .*field_0_acq_0.*field_0_acq_1"):
        _paired(tmp_path, cfg_factory, params={"manifest": "pairs.csv"})


def test_one_stem_in_two_folders_is_refused(pair_folder, cfg_factory):
    (pair_folder / "more").mkdir()
    (pair_folder / "more" / "img_0.tif").write_bytes((pair_folder / "lr" / "img_1.tif").read_bytes())
    rows = [(f"lr/img_{k}.tif", f"hr/img_{k}.tif") for k in range(5)] + [("more/img_0.tif", "hr/img_1.tif")]
    _write_manifest(pair_folder / "pairs.csv", rows)
    with pytest.raises(SrlabError, match=r"pairs\.csv: .*'img_0'.*lr/img_0\.tif.*more/img_0\.tif"):
        _paired(pair_folder, cfg_factory, params={"manifest": "pairs.csv"})
