"""Specimen descriptions in batches: from the simulator, from a CSV manifest or a default for a folder;
absent (and nothing else changed) where the data has none."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srlab.data import build_datamodule
from srlab.data.simulate import resolve_simulation
from srlab.errors import SrlabError
from srlab.optics.descriptions import VOCABULARY, detokenize, resolution_bucket, tokenize
from srlab.optics.modality import PRESETS
from srlab.optics.specimens import STRUCTURES
from tests.data.conftest import TINY_SIMULATION


def test_vocabulary_names_every_structure_and_modality_and_buckets_resolutions() -> None:
    assert set(STRUCTURES) <= set(VOCABULARY) and set(PRESETS) <= set(VOCABULARY)
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    assert (resolution_bucket(44.0), resolution_bucket(214.0), resolution_bucket(25.0)) == ("40nm", "160nm", "20nm")
    assert detokenize(tokenize("actin sted 40nm")) == "actin sted 40nm"


def test_simulated_batches_carry_each_images_description(sim_cache, cfg_factory) -> None:
    simulation = {**TINY_SIMULATION, "structures": ["microtubules", "ccps", "er"], "structures_per_image": 2}
    dm = build_datamodule(cfg_factory(kind="simulated", simulation=simulation, batch_size=3), seed=0)
    dm.prepare_data()
    dm.setup("fit")
    spec = resolve_simulation(simulation, scale=2)
    descriptions = {f"sim_{i:04d}": spec.description(i) for i in range(spec.n_images)}
    # two of three structures per image, then LR/HR modality and STED's resolution (FWHM ~44 nm)
    assert all(len(d.split()) == 5 and d.endswith("confocal sted 40nm") for d in descriptions.values())
    assert len({d for d in descriptions.values()}) > 1
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        batch = next(iter(loader))
        assert batch["tokens"].dtype == torch.int64 and batch["tokens"].shape == (len(batch["name"]), 8)
        for name, ids in zip(batch["name"], batch["tokens"]):
            assert detokenize(ids.tolist()) == descriptions[name.split("@")[0]]
    assert dm.describe()["descriptions"] == "simulator"


def _write_csv(path, rows) -> None:
    path.write_text("file,description\n" + "".join(f"{a},{b}\n" for a, b in rows))


def test_folder_descriptions_from_a_csv_and_a_default(pair_folder, cfg_factory) -> None:
    _write_csv(pair_folder / "descriptions.csv", [("img_0.tif", "microtubules widefield sim 80nm"),
                                                   ("img_3", "actin confocal sted 40nm")])
    params = {"descriptions": "descriptions.csv", "description": "specimen confocal sted 40nm"}
    dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder), params=params, batch_size=8,
                                      patches_per_epoch=16, val_fraction=0.2, test_fraction=0.2), seed=0)
    dm.setup("fit")
    expected = {"img_0": "microtubules widefield sim 80nm", "img_3": "actin confocal sted 40nm"}
    seen = set()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for batch in loader:
            for name, ids in zip(batch["name"], batch["tokens"]):
                assert detokenize(ids.tolist()) == expected.get(name, "specimen confocal sted 40nm")
                seen.add(name)
    assert seen == {f"img_{k}" for k in range(5)}
    assert "csv" in dm.describe()["descriptions"]


def test_descriptions_change_no_patch_and_are_absent_without_a_source(pair_folder, cfg_factory) -> None:
    """Same seed, same patches with and without descriptions (no random draw: runs resume exactly)."""
    batches = {}
    for params in ({}, {"description": "er sted 40nm"}):
        dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder), params=params), seed=5)
        dm.setup("fit")
        batches[bool(params)] = next(iter(dm.train_dataloader()))
    assert "tokens" not in batches[False] and "tokens" in batches[True]
    for key in ("lr", "hr"):
        assert torch.equal(batches[False][key], batches[True][key])
    assert batches[False]["name"] == batches[True]["name"]


@pytest.mark.parametrize(("rows", "pattern"), [
    ([("img_0", "microtubules confocal bananas")], r"descriptions.csv: line 2: .*unknown word 'bananas'"),
    ([("img_9", "actin sted 40nm")], r"'img_9' is not an image of this data set"),
    ([("img_0", "actin sted 40nm")], r"no description for 'img_1' \(4 image\(s\) unlisted\)"),
])
def test_bad_descriptions_are_one_line_errors(pair_folder, cfg_factory, rows, pattern) -> None:
    _write_csv(pair_folder / "descriptions.csv", rows)
    dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder),
                                      params={"descriptions": "descriptions.csv"}), seed=0)
    with pytest.raises(SrlabError, match=pattern) as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)


def test_simulator_descriptions_name_the_structures_it_drew() -> None:
    """structures_of is what the imager uses: one structure per image cycles through the list."""
    spec = resolve_simulation({**TINY_SIMULATION, "structures": ["actin", "er"], "n_images": 4}, scale=2)
    assert [spec.structures_of(i) for i in range(4)] == [("actin",), ("er",), ("actin",), ("er",)]
    three = resolve_simulation({**TINY_SIMULATION, "structures": ["actin", "er", "ccps"], "structures_per_image": 2},
                               scale=2)
    rng = np.random.default_rng([three.seed, 1, 0])
    assert set(three.structures_of(1)) == {str(s) for s in rng.choice(three.structures, 2, replace=False)}
