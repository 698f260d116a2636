"""Simulated STED images of known quality (data.kind: quality): the score, the degradations, resume."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from srlab.config import load_experiment
from srlab.data import build_datamodule
from srlab.data.config import QualityDataConfig
from srlab.data.quality import (
    FACTORS,
    Degradation,
    QualityImages,
    QualitySimulation,
    factor_terms,
    quality_score,
    render_quality_image,
)
from srlab.errors import SrlabError

GOOD = Degradation(fwhm_nm=50.0, photons=80.0, bleaching=0.05, stripes=0.02)
# Worse values of each factor, in order of increasing degradation.
WORSE = {"fwhm_nm": [50.0, 80.0, 120.0, 200.0, 245.0], "photons": [80.0, 40.0, 15.0, 6.0, 3.5],
         "bleaching": [0.05, 0.2, 0.4, 0.6, 0.9], "stripes": [0.02, 0.1, 0.2, 0.35, 0.45]}


@pytest.mark.parametrize("factor", FACTORS)
def test_score_decreases_strictly_in_each_degradation(factor):
    scores = [quality_score(dataclasses.replace(GOOD, **{factor: v})) for v in WORSE[factor]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    # ... and only through its own term
    terms = [factor_terms(dataclasses.replace(GOOD, **{factor: v})) for v in WORSE[factor]]
    for other in set(FACTORS) - {factor}:
        assert len({t[other] for t in terms}) == 1


def test_score_anchors():
    assert quality_score(Degradation(40.0, 100.0, 0.0, 0.0)) == pytest.approx(1.0)
    assert quality_score(Degradation(250.0, 50.0, 0.0, 0.0)) == 0.0  # no better than confocal
    assert quality_score(Degradation(40.0, 3.0, 0.0, 0.0)) == 0.0
    # geometric mean: every term at 1/16 gives 1/16
    half = Degradation(250.0 - (250.0 - 40.0) / 16, 3.0 * (100.0 / 3.0) ** (1 / 16), 1 - 1 / 16, 0.5 * (1 - 1 / 16))
    assert quality_score(half) == pytest.approx(1 / 16)


def _sim(**kw) -> QualitySimulation:
    return QualitySimulation.from_config(QualityDataConfig(patch_size=32, **kw))


def test_rendered_degradations_show_in_the_images():
    sim = _sim(structures=["er"])
    def mean_image(d: Degradation) -> np.ndarray:
        return np.mean([render_quality_image(sim, np.random.default_rng(k), d)[0] for k in range(24)], axis=0)
    clean, bleached = mean_image(GOOD), mean_image(dataclasses.replace(GOOD, bleaching=0.8))
    # bleaching: the last rows lose signal relative to the first (background is 1 photon per pixel)
    assert bleached[-4:].mean() / bleached[:4].mean() < 0.5 * clean[-4:].mean() / clean[:4].mean()
    # photons: the signal scales with them
    dim = mean_image(dataclasses.replace(GOOD, photons=8.0))
    assert dim.mean() < 0.25 * clean.mean()
    # stripes: line-to-line jitter of row sums
    rng = np.random.default_rng(0)
    def row_jitter(d: Degradation) -> float:
        image = render_quality_image(sim, rng, d)[0]
        rows = image.sum(1)
        return float(np.std(np.diff(rows)) / rows.mean())
    assert np.mean([row_jitter(dataclasses.replace(GOOD, stripes=0.45)) for _ in range(8)]) > \
        2 * np.mean([row_jitter(GOOD) for _ in range(8)])
    # resolution: a sharper image has more energy in its finest details
    def detail(d: Degradation) -> float:
        image = render_quality_image(sim, np.random.default_rng(3), dataclasses.replace(d, photons=1e5))[0]
        return float(np.abs(np.diff(image, axis=1)).mean() / image.mean())
    assert detail(GOOD) > 2 * detail(dataclasses.replace(GOOD, fwhm_nm=240.0))


def test_items_are_functions_of_seed_epoch_index():
    sim = _sim()
    train = QualityImages(sim, 8, seed=3)
    a, b = train[(2, 5)], QualityImages(sim, 8, seed=3)[(2, 5)]
    assert torch.equal(a["image"], b["image"]) and float(a["score"]) == float(b["score"])
    assert not torch.equal(a["image"], train[(3, 5)]["image"])  # a new image every epoch
    assert not torch.equal(a["image"], QualityImages(sim, 8, seed=4)[(2, 5)]["image"])
    val, test = QualityImages(sim, 8, seed=3, split="val"), QualityImages(sim, 8, seed=3, split="test")
    assert torch.equal(val[(7, 1)]["image"], val[1]["image"])  # held-out images are fixed
    assert not torch.equal(val[1]["image"], test[1]["image"]) and not torch.equal(val[1]["image"], train[1]["image"])
    item = train[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["score"]) <= 1.0
    assert float(item["score"]) == pytest.approx(quality_score(Degradation(**{f: float(item[f]) for f in FACTORS})))


def test_experiment_block_builds_and_bad_values_are_one_line():
    cfg = load_experiment("quality_sted", ["profile=quick"])
    dm = build_datamodule(cfg.data, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (cfg.data.batch_size, 1, 32, 32) and batch["score"].shape == (cfg.data.batch_size,)
    for override, message in [("data.structures=[tubes]", "unknown structure 'tubes'"),
                              ("data.fwhm_nm_range=[200,100]", "low <= high"),
                              ("data.bleaching_range=[0,1.5]", "in \\[0.0, 1.0\\]"),
                              ("data.scale=2", "data.scale must be 1"),
                              ("data.train_items=0", "train_items")]:
        bad = load_experiment("quality_sted", ["profile=quick", override])
        with pytest.raises(SrlabError, match=message) as err:
            build_datamodule(bad.data, seed=0)
        assert "\n" not in str(err.value)
    with pytest.raises(SrlabError, match="simulation"):  # a key of another data kind
        load_experiment("quality_sted", ["data.simulation.lr.modality=sted"])
