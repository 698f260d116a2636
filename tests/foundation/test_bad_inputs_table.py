"""Every bad input a user can give the CLI, as a table: the command, its exit status (2: a user mistake,
1: the file system refused a write), a piece of the one line it prints, and that nothing was written
(no run directory, no output file, no evaluation, no temporary file left behind).

Driven in-process through :func:`srlab.cli.main`. Rows that need a trained run share one tiny run
(trained once per module on a folder of 32 px pairs) and each work on their own copy of it.
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from srlab import cli, experiment
from srlab.config import load_experiment
from srlab.data.io import write_tiff
from tests.conftest import TINY
from tests.data.conftest import write_pairs

NO_CUDA = not torch.cuda.is_available()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny supervised run on a folder of image pairs (seconds on CPU)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_pairs(root / "pairs", n=5, size=32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRLAB_DATA_DIR", str(root / "data"))
        cfg = load_experiment("edsr_smoke", [*TINY, f"runs_dir={root / 'runs'}", "data=paired",
                                             f"data.path={data}"])
        return experiment.train(cfg)


@dataclass
class Case:
    """What one row works with: its folder, a copy of the trained run (when the row asks for one), the
    monkeypatch, and the paths that must not exist afterwards."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    run: Path | None = None
    absent: list[Path] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return self.tmp / "runs"

    def tiny(self, *extra: str) -> list[str]:
        return [*TINY, f"runs_dir={self.runs_dir}", *extra]

    def pairs(self) -> Path:
        return write_pairs(self.tmp / "pairs", n=5, size=32)

    def image(self, name: str = "cells.tif", array: np.ndarray | None = None, **kwargs) -> Path:
        path = self.tmp / name
        if array is None:
            array = (np.random.default_rng(0).poisson(200, (24, 28)) + 100).astype(np.uint16)
        tifffile.imwrite(path, array, **kwargs)
        return path

    def output(self, name: str = "out_sr.tif") -> Path:
        out = self.tmp / "out" / name
        out.parent.mkdir(exist_ok=True)
        self.absent.append(out)
        return out


# -- simulated file systems: as root, chmod does not stop writes, so refusals are raised where srlab writes --
def refuse_writes_under(mp: pytest.MonkeyPatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make creating files or folders under ``folder`` fail with ``code`` (EROFS: a read-only mount)."""
    real_open, real_mkdir, folder = os.open, os.mkdir, Path(folder).resolve()

    def inside(path) -> bool:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder)

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    mp.setattr(os, "open", guarded_open)
    mp.setattr(os, "mkdir", guarded_mkdir)


def disk_full_torch_save(*args, **kwargs):
    # What torch.save raises when the disk fills while it writes (no errno, no path).
    raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4352 vs 4244")


def disk_full_pwrite(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def no_testing(*args, **kwargs):
    raise AssertionError("srlab test computed metrics before checking it could save them")


def _hr_image_of_pixel_size(pixel_size_nm: float) -> Callable[[Case], list[str]]:
    def argv(c: Case) -> list[str]:
        c.monkeypatch.setenv("SRLAB_DATA_DIR", str(c.tmp / "data"))
        image = (np.random.default_rng(0).poisson(20, (96, 96))).astype(np.uint16)
        path = write_tiff(c.tmp / "sted.tif", image, pixel_size_nm=pixel_size_nm)
        return ["train", "edsr_smoke", *c.tiny(f"data.simulation.hr_images=[{path}]")]
    return argv


# -- the rows ------------------------------------------------------------------------------------------------
@dataclass
class Row:
    id: str
    argv: Callable[[Case], list[str]]
    status: int
    message: str
    needs_run: bool = False
    skip: str | None = None  # a reason to skip on this machine
    not_in: str | None = None  # advice the line must not give


def train(*overrides: str) -> Callable[[Case], list[str]]:
    return lambda c: ["train", "edsr_smoke", *c.tiny(*overrides)]


def _resolver_experiment(c: Case) -> list[str]:
    path = c.tmp / "leaky.yaml"
    path.write_text("defaults: [data/sim_smoke, model/edsr_baseline, paradigm/supervised, trainer/cpu_smoke, "
                    "logger/wandb]\ndata:\n  path: ${oc.env:HOME}\n")
    return ["train", str(path), *c.tiny()]


def _resolver_run_config(c: Case) -> list[str]:
    config = c.run / "config.yaml"
    lines = config.read_text().splitlines()
    lines = ["runs_dir: ${oc.env:HOME}" if line.startswith("runs_dir:") else line for line in lines]
    config.write_text("\n".join(lines) + "\n")
    return ["test", str(c.run)]


def _constant_dataset(c: Case) -> list[str]:
    root = c.tmp / "blank"
    for k in range(5):
        write_tiff(root / "hr" / f"img_{k}.tif", np.full((64, 64), 7, np.uint16), pixel_size_nm=20)
        write_tiff(root / "lr" / f"img_{k}.tif", np.full((32, 32), 7, np.uint16), pixel_size_nm=40)
    return ["train", "edsr_smoke", *c.tiny("data=paired", f"data.path={root}")]


def _ambiguous(first: str, second: str) -> Callable[[Case], list[str]]:
    def argv(c: Case) -> list[str]:
        root = c.pairs()
        shutil.copy(root / "lr" / "img_0.tif", root / "lr" / first)
        shutil.copy(root / "lr" / "img_1.tif", root / "lr" / second)
        return ["train", "edsr_smoke", *c.tiny("data=paired", f"data.path={root}")]
    return argv


def _train_disk_full(c: Case) -> list[str]:
    c.monkeypatch.setattr(torch, "save", disk_full_torch_save)
    return ["train", "edsr_smoke", *c.tiny("data=paired", f"data.path={c.pairs()}")]


def _train_read_only_runs_dir(c: Case) -> list[str]:
    refuse_writes_under(c.monkeypatch, c.runs_dir)
    return ["train", "edsr_smoke", *c.tiny("data=paired", f"data.path={c.pairs()}")]


def _test_read_only(c: Case) -> list[str]:
    import lightning as L
    c.absent.append(c.run / "evaluations")
    refuse_writes_under(c.monkeypatch, c.run)
    c.monkeypatch.setattr(L.Trainer, "test", no_testing)
    return ["test", str(c.run)]


def _test_bad_override(c: Case) -> list[str]:
    c.absent.append(c.run / "evaluations")
    return ["test", str(c.run), "trainer.precision=bogus"]


def _predict(image: Callable[[Case], Path], *options: str, output: Callable[[Case], Path] | None = None):
    def argv(c: Case) -> list[str]:
        out = output(c) if output else c.output()
        return ["predict", str(c.run), str(image(c)), "-o", str(out), "--quiet", *options]
    return argv


def _nan_image(c: Case) -> Path:
    image = np.random.default_rng(0).random((24, 28)).astype(np.float32)
    image[3, 4] = np.nan
    return c.image("nan.tif", image)


def _rgb_image(c: Case) -> Path:
    return c.image("colour.tif", np.zeros((24, 28, 3), np.uint8), photometric="rgb")


def _complex_image(c: Case) -> Path:
    return c.image("complex.tif", np.ones((24, 28), np.complex64))


def _predict_two_into_a_file(c: Case) -> list[str]:
    """Several inputs name an output folder; an existing file there is neither replaced nor used."""
    mine = c.tmp / "mine.tif"
    mine.write_text("mine")
    return ["predict", str(c.run), str(c.image("a.tif")), str(c.image("b.tif")), "-o", str(mine), "--overwrite"]


def _predict_under_a_file(c: Case) -> list[str]:
    """An output folder below an existing file: refused before the network is loaded (mkdir's ENOTDIR)."""
    notes = c.tmp / "notes.txt"
    notes.write_text("mine")
    return ["predict", str(c.run), str(c.image("a.tif")), str(c.image("b.tif")), "-o", f"{notes}/out/"]


def _under_a_file(command: str) -> Callable[[Case], list[str]]:
    """check's and evaluate's output folders below a file: refused before any image is computed."""
    def argv(c: Case) -> list[str]:
        notes = c.tmp / "notes.txt"
        notes.write_text("mine")
        if command == "check":
            return ["check", str(c.image("in.tif")), str(c.image("in_sr.tif")), "-o", f"{notes}/check"]
        return ["evaluate", "bicubic", "--pairs", str(c.pairs()), "--out", f"{notes}/report"]
    return argv


def _predict_into_the_input_folder_again(c: Case) -> list[str]:
    """``-o`` the input folder a second time: the first call's ``a_sr.tif`` is an input and ``a``'s output."""
    raw = c.tmp / "raw"
    raw.mkdir()
    c.image("raw/a.tif"), c.image("raw/a_sr.tif")
    return ["predict", str(c.run), str(raw), "-o", f"{raw}/", "--overwrite"]


def _block_not_utf8(c: Case) -> list[str]:
    """A data block re-saved in Latin-1 (an editor's default on some systems): one line, not a traceback."""
    block = c.tmp / "mycal.yaml"
    block.write_bytes("# measured at 40 \xb5m\nkind: simulated\n".encode("latin-1"))
    return ["show", "edsr_smoke", f"data={block}"]


def _damaged_metrics(command: str, text: str = '{"checkpoint": "best.ckpt",}') -> Callable[[Case], list[str]]:
    """A run whose metrics.json was hand-edited into invalid JSON (or JSON that is not an object): one line
    naming it, not a traceback."""
    def argv(c: Case) -> list[str]:
        assert c.run is not None
        (c.run / "metrics.json").write_text(text)
        if command == "test":
            return ["test", str(c.run)]
        return ["train", "edsr_smoke", f"resume={c.run}"]
    return argv


def _evaluate_damaged_data_json(c: Case) -> list[str]:
    """A run whose data.json was hand-edited into invalid JSON, evaluated: one line naming it, and nothing
    written (the montages wait until every image is scored)."""
    assert c.run is not None
    (c.run / "data.json").write_text('{"lr_pixel_size_nm": 40,}')
    return ["evaluate", str(c.run), "--pairs", str(c.pairs()), "--out", str(c.tmp / "report")]


def _predict_disk_full(c: Case) -> list[str]:
    c.monkeypatch.setattr(os, "pwrite", disk_full_pwrite)
    return _predict(lambda c: c.image())(c)


def _predict_read_only(c: Case) -> list[str]:
    out = c.output()
    refuse_writes_under(c.monkeypatch, out.parent, errno.EACCES)
    return ["predict", str(c.run), str(c.image()), "-o", str(out), "--quiet"]


def _unsafe_checkpoint(c: Case) -> list[str]:
    ckpt = c.run / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["extra"] = Case  # a pickled class: weights_only=True refuses it
    torch.save(state, ckpt)
    return ["predict", str(ckpt), str(c.image()), "-o", str(c.output()), "--quiet"]


def _score_a_tiff(c: Case) -> list[str]:
    gt = c.tmp / "gt.csv"
    gt.write_text("frame,x [nm],y [nm],intensity [photon]\n1,100,100,500\n")
    image = c.image("stack.tif", (np.random.default_rng(1).random((4, 16, 16)) * 60000).astype(np.uint16))
    return ["score", str(gt), str(image)]


ROWS = [
    # 7. config values that Lightning/torch/a network would refuse once the run started
    Row("precision", train("trainer.precision=bogus"), 2, "trainer.precision='bogus'"),
    Row("gpu_without_gpu", train("trainer.accelerator=gpu"), 2, "no CUDA device is available",
        skip=None if NO_CUDA else "this machine has a GPU"),
    Row("devices_0", train("trainer.devices=0"), 2, "trainer.devices=0: must be >= 1"),
    Row("negative_lr", train("paradigm.optimizer.lr=-1"), 2, "paradigm.optimizer.lr=-1.0: the learning rate"),
    Row("negative_workers", train("data.num_workers=-1"), 2, "data.num_workers=-1: must be >= 0"),
    Row("negative_epochs", train("trainer.max_epochs=-5"), 2, "trainer.max_epochs=-5: must be >= 1"),
    Row("zero_epochs", train("trainer.max_epochs=0"), 2, "trainer.max_epochs=0: must be >= 1"),
    # with max_epochs=-1 (a run bounded by max_steps) cosine's T_max was 1: the rate went down and up every other epoch
    Row("cosine_without_epochs", train("paradigm.scheduler.name=cosine", "trainer.max_epochs=-1", "trainer.max_steps=5"),
        2, "paradigm.scheduler.name=cosine anneals over trainer.max_epochs, which is -1"),
    Row("zero_width", train("model.params.features=0"), 2, "model.params.features=0: a width or count"),
    Row("negative_seed", train("seed=-1"), 2, "seed=-1: must be in 0..4294967295"),
    Row("huge_seed", train(f"seed={2**32}"), 2, f"seed={2**32}: must be in 0..4294967295"),
    Row("unclosed_list", train("paradigm.optimizer.betas=[0.9,0.99"), 2,
        "override 'paradigm.optimizer.betas=[0.9,0.99': the value is not valid YAML"),
    Row("show_checks_too", lambda c: ["show", "edsr_smoke", "trainer.devices=0"], 2, "trainer.devices=0"),
    # `srlab show` builds the DataModule as `train` does, so a simulation's settings are checked too
    Row("show_checks_simulation", lambda c: ["show", "edsr_smoke", "data.simulation.hr_target=noisefree"], 2,
        "did you mean 'noise_free'"),
    Row("show_checks_structures", lambda c: ["show", "edsr_smoke", "data.simulation.structures=[microtubule]"],
        2, "did you mean 'microtubules'"),
    Row("test_override", _test_bad_override, 2, "trainer.precision='bogus'", needs_run=True),
    # 8. security edges
    Row("name_escapes_runs_dir", train("name=../escaped"), 2, "name='../escaped': an experiment name is a plain"),
    Row("name_absolute", train("name=/tmp/elsewhere"), 2, "an experiment name is a plain folder name"),
    Row("resolver_override", train("data.path=${oc.env:HOME}"), 2, "'data.path' is '${oc.env:HOME}', which calls"),
    Row("resolver_experiment", _resolver_experiment, 2, "leaky.yaml: 'data.path' is '${oc.env:HOME}'"),
    Row("resolver_run_config", _resolver_run_config, 2, "config.yaml: 'runs_dir' is '${oc.env:HOME}'",
        needs_run=True),
    Row("unsafe_checkpoint", _unsafe_checkpoint, 2, "which srlab never loads", needs_run=True,
        not_in="weights_only=False"),
    # 6. data sanity
    Row("hr_images_missing", train("data.simulation.hr_images=[/no/such/sted.tif]"), 2,
        "data.simulation.hr_images: /no/such/sted.tif: no such file"),
    Row("hr_images_pixel_size", _hr_image_of_pixel_size(55.0), 2,
        "sted.tif: pixel size 55 nm, but the block's HR pixel is"),
    Row("constant_dataset", _constant_dataset, 2, "10 of 10 images constant (every pixel 7"),
    Row("same_stem_two_suffixes", _ambiguous("a.tif", "a.tiff"), 2,
        "'a.tif' and 'a.tiff' have the same name up to suffix or case"),
    Row("same_stem_two_cases", _ambiguous("A.tif", "a.tif"), 2,
        "'A.tif' and 'a.tif' have the same name up to suffix or case"),
    Row("predict_nan", _predict(_nan_image), 2, "nan.tif: 1 of 672 pixel(s) are NaN or infinite", needs_run=True),
    # 7. predict and score inputs
    Row("predict_rgb", _predict(_rgb_image), 2, "an RGB/colour image (axes 'YXS') but the run's network takes 1",
        needs_run=True),
    Row("predict_complex", _predict(_complex_image), 2, "complex.tif: pixel type complex64 is not an intensity",
        needs_run=True),
    Row("predict_cuda_without_cuda", _predict(lambda c: c.image(), "--device", "cuda"), 2,
        "--device cuda: CUDA is not available", needs_run=True, skip=None if NO_CUDA else "CUDA is available"),
    Row("predict_bogus_device", _predict(lambda c: c.image(), "--device", "gpu9"), 2, "--device 'gpu9': not a",
        needs_run=True),
    Row("predict_several_into_a_file", _predict_two_into_a_file, 2,
        "mine.tif: is a file; with 2 inputs -o names an output folder", needs_run=True),
    Row("predict_under_a_file", _predict_under_a_file, 2, "notes.txt is a file, not a folder", needs_run=True),
    Row("predict_into_the_input_folder_again", _predict_into_the_input_folder_again, 2,
        "a_sr.tif is one of the inputs and would be replaced by the output of", needs_run=True),
    Row("check_under_a_file", _under_a_file("check"), 2, "notes.txt is a file, not a folder"),
    Row("evaluate_under_a_file", _under_a_file("evaluate"), 2, "notes.txt is a file, not a folder"),
    Row("test_damaged_metrics", _damaged_metrics("test"), 2, "metrics.json: not valid JSON (", needs_run=True),
    Row("resume_damaged_metrics", _damaged_metrics("resume"), 2, "metrics.json: not valid JSON (", needs_run=True),
    Row("test_metrics_not_an_object", _damaged_metrics("test", '["best.ckpt"]'), 2,
        "metrics.json: not a JSON object as srlab writes it", needs_run=True),
    Row("evaluate_damaged_data_json", _evaluate_damaged_data_json, 2, "data.json: not valid JSON (", needs_run=True),
    Row("score_a_tiff", _score_a_tiff, 2, "stack.tif: not a CSV text file"),
    Row("block_not_utf8", _block_not_utf8, 2, "mycal.yaml: not UTF-8 text (byte 17: invalid start byte)"),
    # 7. the file system refuses a write: exit 1, the path and the reason
    Row("train_disk_full", _train_disk_full, 1, ".ckpt: no space left on device"),
    Row("train_read_only_runs_dir", _train_read_only_runs_dir, 1, "read-only file system"),
    Row("test_read_only", _test_read_only, 1, "run: read-only file system", needs_run=True),
    Row("predict_disk_full", _predict_disk_full, 1, "out_sr.tif: no space left on device", needs_run=True),
    Row("predict_permission", _predict_read_only, 1, "out: permission denied", needs_run=True),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_and_writes_nothing(row: Row, request, tmp_path, monkeypatch, capsys):
    if row.skip:
        pytest.skip(row.skip)
    case = Case(tmp_path, monkeypatch)
    if row.needs_run:
        case.run = Path(shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / "run"))
    argv = row.argv(case)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    status = cli.main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()

    assert status == row.status, err
    assert len(err.splitlines()) == 1 and err.startswith("srlab: error: ") and "Traceback" not in err, err
    assert row.message in err, err
    assert row.not_in is None or row.not_in not in err, err
    leftovers = [p for p in tmp_path.rglob("*") if p.relative_to(tmp_path) not in before]
    if row.id == "train_disk_full":
        # The run directory was made before training started (not this module's concern); what must
        # not be there is a checkpoint or a temporary file of one.
        leftovers = [p for p in leftovers if p.suffix in (".ckpt", ".tmp")]
    assert leftovers == [], leftovers
    assert all(not p.exists() for p in case.absent)


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders; the monkeypatched rows cover it")
def test_read_only_run_folder_for_real(trained_run, tmp_path, capsys):
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    run.chmod(0o555)
    try:
        status = cli.main(["test", str(run)])
    finally:
        run.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert status == 1 and "permission denied" in err and str(run) in err
    assert not (run / "evaluations").exists()


def test_nan_policy_fill_predicts_a_finite_image(trained_run, tmp_path, capsys):
    image = np.random.default_rng(0).random((24, 28)).astype(np.float32)
    image[3, 4] = np.nan
    image[10, 11] = np.inf
    source, out = tmp_path / "nan.tif", tmp_path / "nan_sr.tif"
    tifffile.imwrite(source, image)
    status = cli.main(["predict", str(trained_run), str(source), "-o", str(out), "--quiet", "--nan-policy", "fill"])
    assert status == 0, capsys.readouterr().err
    result = tifffile.imread(out)
    assert result.shape == (48, 56) and np.isfinite(result).all()
    # Filling with the median leaves the finite pixels' normalization as it would be without the bad ones.
    filled = image.copy()
    filled[~np.isfinite(filled)] = np.median(image[np.isfinite(image)])
    reference = tmp_path / "filled.tif"
    tifffile.imwrite(reference, filled)
    assert cli.main(["predict", str(trained_run), str(reference), "-o", str(tmp_path / "ref_sr.tif"),
                     "--quiet"]) == 0
    np.testing.assert_allclose(result, tifffile.imread(tmp_path / "ref_sr.tif"), rtol=1e-5, atol=1e-5)


def test_a_batch_whose_every_input_is_refused_leaves_no_output_folder(trained_run, tmp_path, capsys):
    """Each refusal has its line, then one saying nothing was written — and the folders the call made are
    gone again (it said "the others were written" and left an empty folder)."""
    image = np.random.default_rng(0).random((24, 28)).astype(np.float32)
    image[3, 4] = np.nan
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, image)
    out = tmp_path / "new" / "sr"
    argv = ["predict", str(trained_run), str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", f"{out}/", "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("NaN or infinite" in line for line in err[:2]), err
    assert err[2] == "srlab: error: none of the 2 inputs predicted (see above); nothing written"
    assert not (tmp_path / "new").exists()
    # one input into a folder: its own line is the answer
    assert cli.main(["predict", str(trained_run), str(tmp_path / "a.tif"), "-o", f"{out}/", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite" in err[0] and not (tmp_path / "new").exists()


def test_write_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from srlab import runs

    target = tmp_path / "last.ckpt"
    io = runs.AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    monkeypatch.setattr(torch, "save", disk_full_torch_save)
    with pytest.raises(OSError) as err:
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert torch.equal(io.load_checkpoint(target)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_full_disk_while_writing_json_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from srlab import runs

    target = tmp_path / "metrics.json"
    runs.write_json(target, {"test/psnr": 30.0})
    monkeypatch.setattr(os, "fsync", disk_full_pwrite)
    with pytest.raises(OSError) as err:
        runs.write_json(target, {"test/psnr": 31.0})
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert '"test/psnr": 30.0' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
