"""A row scored on images it trained on is marked ‡, whatever the names or paths say: each run records the
hashes of its training images (data.json), and a suite counts its whole test images among them."""
from __future__ import annotations

import json

from srlab import cli
from srlab import compare as cmp
from srlab.data.fingerprints import DATA_JSON_KEY
from tests.compare.test_compare import SHARED, SRCNN_TINY, _csv, write_suite


def _row(out, label: str) -> dict[str, str]:
    (row,) = [r for r in _csv(out / "leaderboard.csv") if r["label"] == label]
    return row


def test_test_pairs_from_the_training_folder_are_marked(tmp_path):
    """test_pairs naming the folder a row trained on: every pair of its training split is among the scored
    images (it once went unmarked, or marked as 'other data' where the path was spelled otherwise)."""
    pairs = tmp_path / "pairs"
    assert cli.main(["simulate", "--n", "10", "--size", "48", "--out", str(pairs)]) == 0
    suite = write_suite(tmp_path, "leaky", {
        "experiments": [{"name": "srcnn_smoke", "overrides": [*SRCNN_TINY, "data=paired", f"data.path={pairs}/"]}],
        "seeds": [0], "overrides": SHARED, "test_pairs": "pairs"})
    out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports", use_wandb=False,
                      log=lambda m: None)
    (run,) = (tmp_path / "runs" / "srcnn_smoke@paired").iterdir()
    described = json.loads((run / "data.json").read_text())
    assert len(described[DATA_JSON_KEY]["hr"]) == described["images"]["train"] > 0
    assert int(_row(out, "srcnn_smoke")["test_images_trained_on"]) == described["images"]["train"]
    assert "srcnn_smoke ‡" in (out / "leaderboard.md").read_text()

    # srlab evaluate on the same folder says so too
    from srlab.compare.pairs import evaluate_pairs

    report = evaluate_pairs([str(run)], pairs, tmp_path / "evaluated", montages=False, log=lambda *_: None)
    assert report["test_images_trained_on"] == {"srcnn_smoke@paired": described["images"]["train"]}
    assert any("not held-out scores" in note for note in report["notes"])
    # and srlab test with a test split drawn otherwise: 5 of the 10 pairs, of which at most 2 are not training's
    from srlab.experiment import test

    metrics = test(str(run), ["data.test_fraction=0.5", "data.val_fraction=0.1"])
    assert metrics["test_images_trained_on"] >= 3


def test_a_simulated_test_set_split_otherwise_is_checked_image_by_image(tmp_path):
    """A row trained with another split seed, scored on the test split of the same simulated images: a
    simulated image depends on its seed and index only, so the other split's test images can be the row's
    training images — the count is the images' own, not the names'."""
    suite = write_suite(tmp_path, "splits", {
        "experiments": [{"name": "srcnn_smoke", "overrides": [*SRCNN_TINY, "data.split_seed=1"]}],
        "seeds": [0], "overrides": SHARED, "test_data": "sim_smoke", "test_images": "full"})
    out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports", use_wandb=False,
                      log=lambda m: None)
    (run,) = (tmp_path / "runs" / "srcnn_smoke").iterdir()
    trained = set(json.loads((run / "data.json").read_text())["splits"]["train"])
    (group,) = json.loads((out / "report.json").read_text())["groups"]
    expected = len(trained & set(group["images"]))
    assert expected > 0  # the case this test is about
    assert int(_row(out, "srcnn_smoke")["test_images_trained_on"]) == expected
