"""Training throughput: srlab's Lightning path against a hand-written loop, and the input pipeline.

**Timing.** A loader wrapper stamps the clock each time it hands out a batch; a step's time is the
interval between stamps (Lightning fetches one batch ahead, which shifts the stamps by one step, not
their spacing). The srlab side is :func:`srlab.experiment.train` itself — run directory, config and
environment files, the real callbacks and progress bar, checkpointing and the final test — with W&B
and validation off; what it spends outside the steps is reported as the fixed cost per run.

**Pairing (CPU).** On a shared machine, load from other processes swings step times by more than the
few percent being measured, even between consecutive runs. So the comparison is interleaved at the
step level: before handing srlab its next batch, the loader runs one step of the hand-written loop
(its own network, optimizer and batch) and times it. Each srlab step is thus timed right next to a
hand-loop step under the same load; the srlab step time is the stamp interval minus that hand-loop
step. Ratios are medians over steps, spreads their interquartile range. On a GPU the hand-loop step
would have to synchronize the device, which would stop srlab's steps from running ahead of the GPU,
so there whole runs alternate instead (A, B, A, B, …).
"""
from __future__ import annotations

import contextlib
import io
import itertools
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from bench_common import markdown_table, sync
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from srlab import build, experiment
from srlab.config import load_experiment
from srlab.data import DATAMODULES, build_datamodule
from srlab.models import count_parameters
from srlab.models.blocks import multiply_adds

# -- loaders that stamp the clock ---------------------------------------------------------------------
STAMPS: list[float] = []
PARTNER_TIMES: list[float] = []
_POOLS: dict[str, dict[str, list[dict]]] = {}
_REAL: dict[str, L.LightningDataModule] = {}
_PARTNER: list[Callable[[], None] | None] = [None]  # the hand-loop step run between srlab's steps


class StampedLoader:
    """Yields ``length`` batches from ``source`` (cycling a list, or iterating a DataLoader), appending
    ``time.perf_counter()`` to :data:`STAMPS` at each hand-out; with a ``partner``, runs and times it
    (into :data:`PARTNER_TIMES`) before every hand-out but the first."""

    def __init__(self, source: Iterable, length: int, partner: Callable[[], None] | None = None):
        self.source, self.length, self.partner = source, length, partner

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator:
        it = iter(self.source)
        for i in range(self.length):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(self.source)
                batch = next(it)
            if self.partner is not None and i > 0:
                start = time.perf_counter()
                self.partner()
                PARTNER_TIMES.append(time.perf_counter() - start)
            STAMPS.append(time.perf_counter())
            yield batch


class InMemoryBatches(L.LightningDataModule):
    """Data kind ``bench_memory`` (registered by the benchmark only): pre-drawn batches held in memory."""

    def __init__(self, cfg, seed: int, *, pool: str = "default", steps: int = 10):
        super().__init__()
        self.pool, self.steps = pool, steps

    def train_dataloader(self) -> StampedLoader:
        return StampedLoader(_POOLS[self.pool]["train"], self.steps, _PARTNER[0])

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_POOLS[self.pool]["test"], batch_size=None)  # items are whole batches

    def val_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class _Alternate:
    """Batches alternately from ``real`` (a DataLoader) and ``memory`` (a list): real, memory, real, …"""

    def __init__(self, real: Iterable, memory: list[dict]):
        self.real, self.memory = real, memory

    def __iter__(self) -> Iterator:
        real, memory = iter(self.real), itertools.cycle(self.memory)
        for i in itertools.count():
            if i % 2:
                yield next(memory)
                continue
            try:
                yield next(real)
            except StopIteration:
                real = iter(self.real)
                yield next(real)


class TimedRealData(L.LightningDataModule):
    """Data kind ``bench_real``: the experiment's own DataModule, its train loader stamped; with
    ``alternate``, every second batch comes from the in-memory pool instead."""

    def __init__(self, cfg, seed: int, *, key: str = "default", steps: int = 10, alternate: bool = False):
        super().__init__()
        self.inner, self.key, self.steps, self.alternate = _REAL[key], key, steps, alternate

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)

    def train_dataloader(self) -> StampedLoader:
        loader = self.inner.train_dataloader()
        return StampedLoader(_Alternate(loader, _POOLS[self.key]["train"]) if self.alternate else loader, self.steps)

    def test_dataloader(self):
        return self.inner.test_dataloader()

    def val_dataloader(self):
        return self.inner.val_dataloader()


def _register_kinds() -> None:
    if "bench_memory" not in DATAMODULES:
        DATAMODULES.register("bench_memory", family="benchmark")(InMemoryBatches)
        DATAMODULES.register("bench_real", family="benchmark")(TimedRealData)


# -- configurations --------------------------------------------------------------------------------
@dataclass
class Case:
    label: str
    model: dict
    batch_size: int
    patch_size: int
    warmup: int
    steps: int

    @property
    def total(self) -> int:
        return self.warmup + self.steps + 2  # +1 for Lightning's prefetch, +1 spare


def case_config(base: str, case: Case, device: torch.device, precision: str, runs_dir: Path) -> DictConfig:
    """``base`` experiment with the case's model/batch/patch, W&B off, no validation, on ``device``."""
    cfg = load_experiment(base, ["logger.wandb.enabled=false", f"runs_dir={runs_dir}",
                                 f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
                                 "trainer.devices=1", f"trainer.precision={precision}",
                                 "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
                                 f"data.batch_size={case.batch_size}", f"data.patch_size={case.patch_size}"])
    cfg.model.name = case.model["name"]
    cfg.model.params = case.model["params"]
    return cfg


def describe_case(case: Case) -> str:
    params = ", ".join(f"{k}={v}" for k, v in case.model["params"].items())
    return (f"{case.label}: `{case.model['name']}` ({params}), batch {case.batch_size}, LR patch "
            f"{case.patch_size}², {case.warmup} warm-up + {case.steps} timed steps per run")


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        stack.callback(logger.setLevel, logger.level)
        logger.setLevel(logging.ERROR)
    return stack


def _with_available_data(cfg: DictConfig, fallback: str = "synthetic") -> DictConfig:
    """The experiment's data block if its kind exists here, else the ``fallback`` block (by name)."""
    if cfg.data.kind in DATAMODULES:
        return cfg
    from srlab.config import apply_overrides

    keep = {k: cfg.data[k] for k in ("batch_size", "patch_size")}
    cfg = apply_overrides(cfg, [f"data={fallback}"])
    cfg.data.batch_size, cfg.data.patch_size = keep["batch_size"], keep["patch_size"]
    return cfg


def draw_pool(cfg: DictConfig, key: str, n_batches: int) -> L.LightningDataModule:
    """Draw ``n_batches`` training batches and one test batch from the experiment's DataModule into
    memory (pool ``key``); returns the DataModule (set up)."""
    dm = build_datamodule(cfg.data, seed=cfg.seed)
    with _quiet():
        dm.prepare_data()
        dm.setup("fit")
    _POOLS[key] = {"train": list(itertools.islice(dm.train_dataloader(), n_batches)),
                   "test": [_small(next(iter(dm.test_dataloader())), int(cfg.data.scale))]}
    return dm


def _small(batch: dict, scale: int, images: int = 2, lr_px: int = 24) -> dict:
    """Two 24² LR crops of a test batch: the final test of a benchmark run is not what is measured."""
    out = {}
    for k, v in batch.items():
        if k in ("lr", "hr") and isinstance(v, torch.Tensor):
            side = lr_px * (scale if k == "hr" else 1)
            out[k] = v[:images, :, :side, :side].contiguous()
        else:
            out[k] = v[:images]
    return out


# -- the two sides ---------------------------------------------------------------------------------
class HandLoop:
    """The hand-written loop: the config's network, loss and optimizer; one ``step()`` per batch."""

    def __init__(self, cfg: DictConfig, device: torch.device, key: str):
        L.seed_everything(cfg.seed, verbose=False)
        self.device = device
        self.network = build.build_network(cfg).to(device).train()
        self.loss = build.build_loss(cfg.paradigm.loss).to(device)
        self.optimizer = build.build_optimizer_factory(cfg.paradigm.optimizer)(self.network.parameters())
        self.bf16 = cfg.trainer.precision.startswith("bf16")
        self.batches = itertools.cycle(_POOLS[key]["train"])

    def step(self) -> None:
        batch = next(self.batches)
        lr = batch["lr"].to(self.device, non_blocking=True)
        hr = batch["hr"].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss(self.network(lr), hr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def _step_times(warmup: int, steps: int) -> list[float]:
    intervals = [b - a for a, b in itertools.pairwise(STAMPS)]
    if len(intervals) < warmup + steps:
        raise RuntimeError(f"expected {warmup + steps + 1} batch stamps, got {len(STAMPS)}")
    return intervals[warmup:warmup + steps]


@dataclass
class Timing:
    steps: list[float]  # seconds per step of the side under test
    partner: list[float]  # paired hand-loop steps (empty when not paired)
    wall: float = 0.0  # the whole call
    window: float = 0.0  # from the first batch handed out to the last


def run_srlab(cfg: DictConfig, case: Case, data_kind: str, key: str, partner: HandLoop | None = None,
              alternate: bool = False) -> Timing:
    """One :func:`srlab.experiment.train` run; per-step times of its steady state."""
    cfg = cfg.copy()
    cfg.data.kind = data_kind
    cfg.data.params = {"pool": key, "steps": case.total} if data_kind == "bench_memory" else \
        {"key": key, "steps": case.total, "alternate": alternate}
    cfg.trainer.max_steps = case.total
    cfg.trainer.max_epochs = -1
    return _timed(lambda: shutil.rmtree(experiment.train(cfg), ignore_errors=True), case, partner)


def run_hand_loop(cfg: DictConfig, case: Case, device: torch.device, key: str,
                  partner: HandLoop | None = None) -> Timing:
    loop = HandLoop(cfg, device, key)

    def run() -> None:
        for _ in StampedLoader(range(case.total), case.total, partner.step if partner else None):
            loop.step()
        sync(device)

    return _timed(run, case, partner)


class _BareTask(L.LightningModule):
    """The minimum Lightning needs: training_step and configure_optimizers."""

    def __init__(self, network: torch.nn.Module, loss: torch.nn.Module, optimizer_factory):
        super().__init__()
        self.network, self.loss, self.optimizer_factory = network, loss, optimizer_factory

    def training_step(self, batch: dict, batch_idx: int):
        return self.loss(self.network(batch["lr"]), batch["hr"])

    def configure_optimizers(self):
        return self.optimizer_factory(self.network.parameters())


def run_bare_lightning(cfg: DictConfig, case: Case, device: torch.device, key: str,
                       partner: HandLoop | None = None) -> Timing:
    L.seed_everything(cfg.seed, verbose=False)
    task = _BareTask(build.build_network(cfg), build.build_loss(cfg.paradigm.loss),
                     build.build_optimizer_factory(cfg.paradigm.optimizer))

    def run() -> None:
        trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                            precision=cfg.trainer.precision, max_steps=case.total, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(task, train_dataloaders=StampedLoader(_POOLS[key]["train"], case.total,
                                                          partner.step if partner else None))

    return _timed(run, case, partner)


def _timed(run: Callable[[], None], case: Case, partner: HandLoop | None) -> Timing:
    STAMPS.clear()
    PARTNER_TIMES.clear()
    _PARTNER[0] = partner.step if partner is not None else None
    start = time.perf_counter()
    try:
        with _quiet():
            run()
    finally:
        _PARTNER[0] = None
    wall = time.perf_counter() - start
    intervals = _step_times(case.warmup, case.steps)
    window = STAMPS[-1] - STAMPS[0]
    if partner is None:
        return Timing(intervals, [], wall, window)
    # PARTNER_TIMES[i] ran inside interval i (between stamps i and i+1).
    paired = PARTNER_TIMES[case.warmup:case.warmup + case.steps]
    return Timing([t - p for t, p in zip(intervals, paired)], paired, wall, window)


def training_flops_per_step(cfg: DictConfig, case: Case) -> float:
    """Forward + backward FLOPs of one step, 3x the forward's (2 FLOPs per multiply-add): the
    backward computes the gradients of activations and of weights, each as costly as the forward."""
    meta_cfg = cfg.copy()
    meta_cfg.model.compile = False
    with torch.device("meta"):
        network = build.build_network(meta_cfg)
    macs = multiply_adds(network, in_channels=cfg.data.channels, height=case.patch_size, width=case.patch_size)
    return 3 * 2 * macs * case.batch_size


def _iqr(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


# -- section 1: framework overhead --------------------------------------------------------------------
def framework_overhead(cases: list[Case], base: str, device: torch.device, precision: str, rounds: int,
                       paired: bool) -> dict:
    _register_kinds()
    rows, details = [], []
    tmp = Path(tempfile.mkdtemp(prefix="srlab-bench-"))
    try:
        for case in cases:
            cfg = _with_available_data(case_config(base, case, device, precision, tmp / "runs"))
            key = f"overhead-{case.label}"
            draw_pool(cfg, key, n_batches=8)
            a, b, ratios, fixed = [], [], [], []
            for _ in range(rounds):
                if paired:
                    t = run_srlab(cfg, case, "bench_memory", key, partner=HandLoop(cfg, device, key))
                    a += t.steps
                    b += t.partner
                    ratios += [q / p for p, q in zip(t.steps, t.partner)]
                else:  # alternate whole runs: srlab, hand loop, srlab, hand loop, ...
                    t = run_srlab(cfg, case, "bench_memory", key)
                    h = run_hand_loop(cfg, case, device, key)
                    a.append(statistics.mean(t.steps))
                    b.append(statistics.mean(h.steps))
                    ratios.append(b[-1] / a[-1])
                fixed.append(t.wall - t.window)
            flops = training_flops_per_step(cfg, case)
            with torch.device("meta"):
                params = count_parameters(build.build_network(cfg))
            lo, ratio, hi = _iqr(ratios)
            overhead = [(p - q) * 1e3 for p, q in zip(a, b)]
            olo, omed, ohi = _iqr(overhead)
            a_med, b_med = statistics.median(a), statistics.median(b)
            rows.append([case.label, f"{params / 1e6:.2f}M", f"{case.batch_size}×{case.patch_size}²",
                         f"{1 / a_med:.2f}", f"{1 / b_med:.2f}", f"**{ratio:.3f}** ({lo:.3f}–{hi:.3f})",
                         f"{omed:.1f} ({olo:.1f}–{ohi:.1f})", f"{flops / b_med / 1e9:.1f}",
                         f"{statistics.median(fixed):.1f}"])
            print(f"  overhead {case.label}: ratio {ratio:.3f}, {omed:+.1f} ms/step", flush=True)
            details.append({"label": case.label, "ratio": ratio, "ratio_q1": lo, "overhead_ms": omed,
                            "step_s": b_med, "flops_per_step": flops, "data": cfg.data.kind,
                            "pairs": len(ratios)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    spread = "interquartile range over steps" if paired else "interquartile range over runs"
    headers = ["model (sizes)", "params", "batch × LR patch", "srlab steps/s", "hand loop steps/s",
               f"ratio srlab / hand ({spread})", "srlab overhead ms/step", "hand loop GFLOP/s", "fixed s/run"]
    return {"table": markdown_table(headers, rows), "cases": details}


# -- where the overhead goes ------------------------------------------------------------------------
@contextlib.contextmanager
def _training_step_without(log: bool, check: bool) -> Iterator[None]:
    """Temporarily replace SupervisedSR.training_step by the same step minus ``self.log`` and/or
    ``check_finite`` (an ablation only: the real step is srlab/paradigms/supervised.py)."""
    from srlab.paradigms.supervised import SupervisedSR

    original = SupervisedSR.training_step

    def training_step(self, batch: dict, batch_idx: int):
        loss = self.loss(self.network(batch["lr"]), batch["hr"])
        if check:
            loss = self.check_finite(loss)
        if log:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    SupervisedSR.training_step = training_step
    try:
        yield
    finally:
        SupervisedSR.training_step = original


BREAKDOWN = (
    ("srlab: `srlab.experiment.train` as shipped", {}),
    ("… progress bar off (`trainer.enable_progress_bar=false`)", {"bar": False}),
    ("… and no per-step `self.log` in training_step", {"bar": False, "log": False}),
    ("… and no `check_finite` (on a GPU: one host sync per step)", {"bar": False, "log": False, "check": False}),
    ("bare `lightning.Trainer` (no callbacks, logger, checkpointing)", {"bare": True}),
    ("hand-written loop (noise floor: hand loop against hand loop)", {"hand": True}),
)


def overhead_breakdown(case: Case, base: str, device: torch.device, precision: str, rounds: int,
                       paired: bool) -> dict:
    """srlab's per-step overhead over the hand loop, with its per-step work removed piece by piece."""
    _register_kinds()
    tmp = Path(tempfile.mkdtemp(prefix="srlab-bench-"))
    extra: dict[str, list[float]] = {label: [] for label, _ in BREAKDOWN}
    try:
        cfg = _with_available_data(case_config(base, case, device, precision, tmp / "runs"))
        key = f"breakdown-{case.label}"
        draw_pool(cfg, key, n_batches=8)
        for _ in range(rounds):
            for label, opts in BREAKDOWN:
                partner = HandLoop(cfg, device, key) if paired else None
                if opts.get("hand"):
                    t = run_hand_loop(cfg, case, device, key, partner)
                elif opts.get("bare"):
                    t = run_bare_lightning(cfg, case, device, key, partner)
                else:
                    c = cfg.copy()
                    c.trainer.enable_progress_bar = opts.get("bar", True)
                    with _training_step_without(log=opts.get("log", True), check=opts.get("check", True)) \
                            if not (opts.get("log", True) and opts.get("check", True)) else contextlib.nullcontext():
                        t = run_srlab(c, case, "bench_memory", key, partner)
                if not paired:
                    partner_steps = run_hand_loop(cfg, case, device, key).steps
                    t = Timing(t.steps, partner_steps[:len(t.steps)])
                extra[label] += [(p - q) * 1e3 for p, q in zip(t.steps, t.partner)]
            print(f"  breakdown round done: {', '.join(f'{_iqr(v)[1]:+.1f}' for v in extra.values())} ms",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for label, values in extra.items():
        lo, med, hi = _iqr(values)
        rows.append([label, f"{med:+.2f}", f"{lo:+.2f} – {hi:+.2f}"])
    table = markdown_table(["configuration", "ms/step above the hand loop (median)", "interquartile range"], rows)
    return {"table": table, "ms": {label: _iqr(v)[1] for label, v in extra.items()}}


# -- section 2: input pipeline ------------------------------------------------------------------------
def loader_rate(dm: L.LightningDataModule, n_batches: int) -> float:
    """Batches per second of the DataModule's train loader alone (no model)."""
    it = iter(dm.train_dataloader())
    next(it)  # worker start-up is a per-epoch cost, not a per-batch one
    start = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    rate = n_batches / (time.perf_counter() - start)
    del it
    return rate


def _with_workers(cfg: DictConfig, workers: int, device: torch.device) -> DictConfig:
    cfg = cfg.copy()
    cfg.data.num_workers = workers
    cfg.data.persistent_workers = workers > 0
    cfg.data.pin_memory = device.type == "cuda"
    return cfg


def _describe_data(cfg: DictConfig) -> str:
    kind, extra = cfg.data.kind, ""
    if cfg.data.path:
        extra = f", path {cfg.data.path}"
    elif kind == "simulated":
        sim = cfg.data.simulation
        extra = f" ({sim.lr.modality} -> {sim.hr.modality}, simulated and cached as TIFFs)"
    aug = "dihedral augmentation" if cfg.data.augment else "no augmentation"
    return f"`{kind}`{extra}, scale {cfg.data.scale}, {aug}"


def input_pipeline(case: Case, base: str, device: torch.device, precision: str, rounds: int,
                   train_workers: list[int], loader_workers: list[int], loader_batches: int) -> dict:
    """Steps/s of ``srlab.experiment.train`` reading the experiment's DataModule against in-memory
    batches, and the loader's own rate at the experiment's configured sizes.

    With ``num_workers=0`` (loading in the training process) one run alternates real and in-memory
    batches, so that the two kinds of steps are timed side by side; with workers, whose prefetching
    depends on the steady demand of every step, whole runs alternate instead."""
    _register_kinds()
    rows, loader_rows, details = [], [], []
    tmp = Path(tempfile.mkdtemp(prefix="srlab-bench-"))
    try:
        cfg0 = _with_available_data(case_config(base, case, device, precision, tmp / "runs"))
        described = _describe_data(cfg0)
        for workers in train_workers:
            cfg = _with_workers(cfg0, workers, device)
            key = f"pipeline-{workers}"
            _REAL[key] = draw_pool(cfg, key, n_batches=8)
            real, memory, ratios = [], [], []
            for _ in range(rounds):
                if workers == 0:
                    # Interval i ends with the fetch of batch i+1: real when i+1 is even.
                    steps = run_srlab(cfg, case, "bench_real", key, alternate=True).steps
                    first_real = (case.warmup + 1) % 2 == 0
                    mine = steps[0 if first_real else 1::2], steps[1 if first_real else 0::2]
                    real += mine[0]
                    memory += mine[1]
                    ratios += [m / r for r, m in zip(*mine)]
                else:
                    real.append(statistics.mean(run_srlab(cfg, case, "bench_real", key).steps))
                    memory.append(statistics.mean(run_srlab(cfg, case, "bench_memory", key).steps))
                    ratios.append(memory[-1] / real[-1])
            del _REAL[key]
            lo, med, hi = _iqr(ratios)
            how = "interleaved steps" if workers == 0 else "alternated runs"
            rows.append([f"{workers}", how, f"{1 / statistics.median(real):.2f}",
                         f"{1 / statistics.median(memory):.2f}", f"**{med:.3f}** ({lo:.3f}–{hi:.3f})"])
            details.append({"workers": workers, "ratio": med})
        configured = _with_available_data(load_experiment(base, ["logger.wandb.enabled=false"]))
        for workers in loader_workers:
            cfg = _with_workers(configured, workers, device)
            dm = build_datamodule(cfg.data, seed=cfg.seed)
            with _quiet():
                dm.prepare_data()
                dm.setup("fit")
            rate = loader_rate(dm, loader_batches)
            del dm
            loader_rows.append([f"{workers}", f"{cfg.data.batch_size} × {cfg.data.patch_size}²", f"{rate:.1f}",
                                f"{rate * cfg.data.batch_size:.0f}"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = markdown_table(["data.num_workers", "compared by", "real DataModule steps/s", "in-memory steps/s",
                            "ratio real / in-memory (interquartile range)"], rows, align="llrrr")
    loader_table = markdown_table(["data.num_workers", "batch × LR patch", "loader alone, batches/s", "patches/s"],
                                  loader_rows)
    return {"table": table, "loader_table": loader_table, "data": described, "cases": details}
