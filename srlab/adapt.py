"""``srlab adapt RUN FOLDER``: fine-tune a trained run on the user's own unlabelled LR images.

The adaptation is an ordinary tracked run of experiment ``<name>_adapt`` (config.yaml, data.json,
W&B, checkpoints, metrics.json), trained by :func:`srlab.experiment.train` from the source run's
network with the ``adaptation`` paradigm (:mod:`srlab.paradigms.adaptation`) on the ``adapt`` data
kind (:class:`srlab.data.datamodules.AdaptDataModule`): the run's own data block is the anchor, the
folder is ``data.real_lr``. It lands beside the source run: ``<runs_dir>/<name>_adapt/<timestamp>``.

The forward model's blur comes from the data block (:func:`forward_blur`), and so does its noise model
(:func:`forward_noise`): the consistency residuals are weighted by the inverse variance of the block's
Poisson–Gaussian camera — for a calibrated block, the one measured on the user's images.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from srlab.errors import SrlabError

# The fine-tuning defaults (each a key=value override away).
ADAPT_LR = 5e-5
ADAPT_MAX_EPOCHS = 20


def forward_blur(data: DictConfig) -> tuple[float, str, str]:
    """FWHM (HR pixels) of the Gaussian that takes an SR output to the LR image's resolution, which
    fields it came from, and the downsampling after it (``area``, or a degrade block's ``bicubic``):
    :func:`srlab.data.physics.relative_blur` of the data block; where the block does not say (your own
    pairs), give ``paradigm.params.blur_fwhm_hr_px``."""
    from srlab.data.physics import relative_blur

    blur = relative_blur(data)
    if blur is None:
        raise SrlabError(f"srlab adapt: data.kind={data.kind} with data.path gives no PSF for the forward model (a "
                         f"degrade block needs data.hr_pixel_size_nm=<nm>); give paradigm.params.blur_fwhm_hr_px=<FWHM "
                         f"in HR pixels of the blur from SR to LR>, or --data <block> with a simulated block (srlab "
                         f"calibrate writes one)")
    px = blur.hr_pixel_size_nm
    return blur.fwhm_nm / px, f"{blur.source} = {blur.fwhm_nm / px:.2f} HR px ({px:g} nm)", blur.downsampling


def forward_noise(data: DictConfig) -> tuple[float, str] | None:
    """The noise floor of the consistency weighting (``noise_weighting: poisson``) from the data block's
    LR camera, and which fields it came from; ``None`` when the block does not say (your own pairs).

    In photons, an LR pixel of normalized intensity ``x`` (1 = the brightest structures, ``signal_photons``
    above the background) has variance ``F·(x·S + B) + (r/G)²`` (shot noise of signal ``S`` and background
    ``B``, excess factor ``F`` = 2 for an EMCCD, read noise ``r`` e⁻ over the EM gain ``G``). Its inverse, up
    to a constant, is ``1 / (x + floor)`` with ``floor = (B + (r/G)²/F) / S`` — the weight
    :func:`srlab.paradigms.adaptation.consistency_error` applies.

    * ``simulated``/``paired`` without ``data.path``: the simulator's resolved LR modality (a calibrated
      block's measured photons, background and read noise; else the preset's).
    * ``degrade``: the middles of ``data.degradation.photons``, ``background_photons``, ``read_noise_e``.
    """
    from srlab.data import DATAMODULES
    from srlab.data.physics import degradation_middle, simulated_pairs

    spec = simulated_pairs(data)
    if spec is not None:
        lr = spec.lr
        multiplies = lr.detector == "emccd" and lr.em_gain > 1
        excess, gain = (2.0, lr.em_gain) if multiplies else (1.0, 1.0)
        signal, background, read = lr.signal_photons, lr.background_photons, lr.read_noise_e / gain
        where = f"data.simulation.lr ({lr.name}, {lr.detector})"
    elif DATAMODULES.entry(str(data.kind)).family == "degradation":
        signal, background, read = (degradation_middle(data, k) for k in ("photons", "background_photons",
                                                                            "read_noise_e"))
        excess = 1.0
        where = "data.degradation"
    else:
        return None
    if not signal > 0:
        return None
    floor = (background + read**2 / excess) / signal
    return floor, (f"Poisson–Gaussian weights 1/(x + {floor:.3g}): background {background:.3g} + read noise "
                   f"({read:.3g} e-)² over signal {signal:.3g} photons, from {where}")


#: Out-of-focus light the LR images have beyond the HR's (the block's largest haze fraction times the
#: difference of the two modalities' axial weights at the haze layer's defocus) below which none is fitted.
HAZE_NEGLIGIBLE = 0.05


@dataclasses.dataclass(frozen=True)
class BlockHaze:
    """The out-of-focus haze a data block's simulation puts into its LR images, as :func:`forward_haze`
    judges it: the largest haze fraction, its layer's defocus, each modality's name and axial weight there,
    the σ (LR pixels) it is smooth on, and whether a consistency fit takes it (``fitted``; ``reason`` when not).
    ``amount`` is the top of the per-image range ``lowest``–``amount``."""

    amount: float
    lowest: float
    defocus_nm: float
    lr_name: str
    hr_name: str
    lr_weight: float
    hr_weight: float
    sigma_px: float
    psf_sigma_nm: float
    defocus_sigma_nm: float
    reason: str | None  # None: fitted

    @property
    def fitted(self) -> bool:
        return self.reason is None


def block_haze(data: DictConfig) -> BlockHaze | None:
    """:class:`BlockHaze` of the data block ``data``; ``None`` where it does not simulate its pairs (your own
    pairs, a ``degrade`` block). The decision of :func:`forward_haze`, in one place for it and for
    ``srlab calibrate``'s summary."""
    from srlab.data.physics import simulated_pairs
    from srlab.optics.psf import FWHM_PER_SIGMA
    from srlab.paradigms.adaptation import MIN_HAZE_SIGMA_PX

    spec = simulated_pairs(data)
    if spec is None:
        return None
    lr, hr = spec.lr, spec.hr
    lowest, haze = spec.haze_range or (spec.out_of_focus_fraction, spec.out_of_focus_fraction)
    weights = lr.axial_weight(spec.defocus_nm), hr.axial_weight(spec.defocus_nm)
    psf_nm, defocus_nm = lr.fwhm_nm / FWHM_PER_SIGMA, lr.defocus_sigma_nm(spec.defocus_nm)
    sigma_px = (psf_nm**2 + defocus_nm**2) ** 0.5 / lr.pixel_size_nm
    # haze the HR sees as much of is in the output already; haze as sharp as structure cannot be told from it
    reason = ("the two modalities collect about as much of it" if haze * (weights[0] - weights[1]) < HAZE_NEGLIGIBLE
              else "blurred so little that it cannot be told from structure" if sigma_px < MIN_HAZE_SIGMA_PX
              else None)
    return BlockHaze(haze, lowest, spec.defocus_nm, lr.name, hr.name, weights[0], weights[1], sigma_px, psf_nm, defocus_nm,
                     reason)


def forward_haze(data: DictConfig) -> tuple[float, str] | None:
    """σ (LR pixels) of the out-of-focus haze in the real LR images, from the data block's simulation,
    and how it was found; ``None`` where the block puts no haze worth fitting in them (or does not say:
    your own pairs, a ``degrade`` block; :func:`block_haze`).

    The forward model re-images the SR output, which is an estimate of the HR image: the in-focus plane as
    the HR modality sees it. What the LR detector also collects from out of focus (a widefield camera, all
    of it; a SIM or STED target much less or as little as a confocal) has no counterpart there, and fitting
    it pushed haze into the output: on srlab's own widefield → SIM simulation (``sim_sim``, haze 0.5 at 600
    nm) adapting a network trained on that very block cost SSIM on 12 of 12 fields (−0.042), while without
    the haze it gained on 12 of 12 (BENCHMARKS.md, *`srlab adapt` and out-of-focus haze*). The haze is the
    specimen blurred by the LR PSF and the defocus disk, so it is smooth on the scale
    σ = √(σ_PSF² + σ_defocus²); the consistency fit then takes any background that smooth as part of the fit
    (:func:`srlab.paradigms.adaptation.consistency_error`), as it took a constant offset before."""
    haze = block_haze(data)
    if haze is None or not haze.fitted:
        return None
    return haze.sigma_px, (f"backgrounds as smooth as σ {haze.sigma_px:.2f} LR px fitted, the out-of-focus haze of "
                           f"data.simulation (fraction up to {haze.amount:g} at {haze.defocus_nm:g} nm, axial weight "
                           f"{haze.lr_weight:.2g} {haze.lr_name} / {haze.hr_weight:.2g} {haze.hr_name}: PSF σ {haze.psf_sigma_nm:.0f} nm, "
                           f"defocus σ {haze.defocus_sigma_nm:.0f} nm)")


#: The share of each real LR image's photons that the network sees in the photon split (the rest is
#: its target): half, as in Noise2Noise-style splits of one acquisition.
SPLIT_FRACTION = 0.5


def forward_photon_split(data: DictConfig) -> tuple[dict[str, float], str] | None:
    """The real LR images' detector for the photon split (:meth:`srlab.optics.camera.Camera.split`),
    from the data block's LR camera, and which fields it came from; ``None`` when the block does not
    say (your own pairs, a ``degrade`` block). An EMCCD's counts are split in units of its excess noise.

    The split is exact when the block's camera is the one that took the images — a block from
    ``srlab calibrate`` (gain and offset measured on them); with a preset's camera it is approximate."""
    from srlab.data.physics import simulated_pairs

    spec = simulated_pairs(data)
    if spec is None:
        return None
    camera = spec.lr.camera
    split = {"e_per_adu": float(camera.e_per_adu), "offset_adu": float(camera.offset_adu),
             "read_noise_e": float(camera.read_noise_e), "fraction": SPLIT_FRACTION}
    if camera.multiplies:
        split["em_gain"] = float(camera.em_gain)
    return split, (f"{camera.e_per_adu:.4g} e-/ADU, offset {camera.offset_adu:.4g} ADU, read noise "
                   f"{camera.read_noise_e:.3g} e-" + (f", EM gain {camera.em_gain:g}" if camera.multiplies else "")
                   + ", from data.simulation.lr")


def _data_block(block: str) -> dict[str, Any]:
    """A data block by name, looked up as ``data=NAME`` is (the user's ``./experiments/data`` and
    ``$SRLAB_EXPERIMENTS`` before srlab's own: :func:`srlab.config.find_config`), or a ``.yaml`` path."""
    from srlab.config import EXPERIMENTS_DIR, _read_yaml, _stems, find_config

    path = Path(block)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SrlabError(f"--data {block}: no such file")
        return _read_yaml(path)
    found = find_config(f"data/{block}.yaml")
    if found is None:
        valid = ", ".join(_stems("data", EXPERIMENTS_DIR))
        raise SrlabError(f"--data {block}: unknown data block; valid: {valid} (or a .yaml file)")
    return _read_yaml(found)


def adaptation_config(source: DictConfig, source_checkpoint: Path, folder: str | Path, *,
                      data_block: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config of the adaptation run of ``source`` (a run's config) to the images in ``folder``."""
    from srlab.build import SR_TASK, paradigm_tasks, pin_network_psf
    from srlab.config import apply_overrides
    from srlab.data import DATAMODULES
    from srlab.data.config import data_schema
    from srlab.data.datamodules import ANCHOR_FAMILIES
    from srlab.data.io import list_tiffs
    from srlab.experiment import pin_network_data
    from srlab.paradigms.losses import LOSSES

    if SR_TASK not in paradigm_tasks(source.paradigm.name):
        what = " or ".join(sorted(paradigm_tasks(source.paradigm.name)))
        raise SrlabError(f"srlab adapt: '{source.name}' is a {what} run (paradigm '{source.paradigm.name}'); adapt "
                         f"takes an SR run")
    list_tiffs(folder, what="real LR images")  # a wrong folder fails before anything is built
    c = OmegaConf.to_container(source, resolve=True)
    data = c["data"]
    if data_block is not None:
        data = _data_block(data_block)
        if int(data.get("scale", 2)) != int(source.data.scale):
            raise SrlabError(f"--data {data_block}: scale {data.get('scale', 2)} but the run's network is "
                             f"x{source.data.scale}")
    kind = str(data.get("kind", "simulated"))
    if kind not in DATAMODULES:
        raise SrlabError(f"srlab adapt: unknown data.kind={kind}")
    if data_block is None:  # a multi-scale run: the primary scale's pairs, which its validation and test used
        data = DATAMODULES.get(kind).evaluation_block(data)
        kind = str(data.get("kind", "simulated"))
    if DATAMODULES.entry(kind).family not in ANCHOR_FAMILIES:
        whose = "run's" if data_block is None else f"--data {data_block}"
        raise SrlabError(f"srlab adapt: the {whose} data.kind={kind} has no pairs for the anchor loss; give "
                         f"--data <block> with a simulated, paired or degrade block (the one the network "
                         f"should stay close to, e.g. a calibrated block)")
    foreign = sorted(set(data) - {f.name for f in dataclasses.fields(data_schema("adapt"))})
    if foreign:  # e.g. a multiscale block's scales: the adapt block is one scale's pairs plus real images
        whose = "run's data" if data_block is None else "--data"
        raise SrlabError(f"srlab adapt: the {whose} block (data.kind={kind}) has "
                         f"{', '.join('data.' + k for k in foreign)}, which an adapt block cannot hold; give --data "
                         f"<block> with a single-scale simulated, paired or degrade block")
    run_dir = source_checkpoint.parent.parent if source_checkpoint.parent.name == "checkpoints" \
        else source_checkpoint.parent
    loss = c["paradigm"]["loss"] if c["paradigm"]["loss"]["name"] in LOSSES else {"name": "l1", "params": {}}
    c.update({
        "name": f"{source.name}_adapt", "resume": None, "profile": None, "profiles": {},
        "runs_dir": str(run_dir.parent.parent),
        "description": f"{source.name} ({run_dir}) fine-tuned on the real LR images of {Path(folder).resolve()}",
        "data": {**data, "kind": "adapt", "real_lr": str(Path(folder).expanduser().resolve()),
                 "params": {"anchor_kind": kind, "anchor_params": dict(data.get("params") or {})}},
        "paradigm": {"name": "adaptation", "loss": loss,
                     "optimizer": {"name": "adam", "lr": ADAPT_LR}, "scheduler": {"name": "none"},
                     "ema_decay": 0.0, "params": {"source_run": str(source_checkpoint)}},
    })
    c["trainer"]["max_epochs"] = ADAPT_MAX_EPOCHS
    c["trainer"]["max_steps"] = -1
    cfg = apply_overrides(OmegaConf.create(c), list(overrides))
    pin_network_psf(cfg, source)  # the adapt block implies no PSF: the source network's stays
    # --data brings the anchor's images, not the normalization and channels the network learned on
    pin_network_data(cfg, source, overrides)
    # the block as the forward_* helpers read it (its kind, simulation or degradation; never data.params,
    # which the photon split below changes), merged once for all four
    block = OmegaConf.merge(cfg.data, {"kind": kind})
    if "blur_fwhm_hr_px" not in cfg.paradigm.params:
        fwhm_px, how, downsampling = forward_blur(block)
        cfg.paradigm.params.blur_fwhm_hr_px = round(fwhm_px, 4)
        cfg.paradigm.params.setdefault("downsampling", downsampling)
        cfg.description += f"; forward model: {how}, then {cfg.paradigm.params.downsampling} downsampling"
    given = cfg.data.params.get("photon_split", "unset")
    if given == "unset" or OmegaConf.is_dict(given):
        # the block's camera, under what the overrides gave (photon_split.fraction=0.3 keeps the camera)
        split = forward_photon_split(block)
        if split is not None:
            merged = {**split[0], **(OmegaConf.to_container(given) if given != "unset" else {})}
            cfg.data.params.photon_split = merged
            fraction = merged.get("fraction")
            cfg.description += (f"; photon split {fraction:g}/{1 - fraction:g} of the real LR images ({split[1]})"
                                if isinstance(fraction, (int, float)) else f"; photon split ({split[1]})")
        elif given == "unset":
            cfg.data.params.photon_split = None
    if "haze_sigma_lr_px" not in cfg.paradigm.params:
        haze = forward_haze(block)
        if haze is not None:
            cfg.paradigm.params.haze_sigma_lr_px = round(haze[0], 3)
            cfg.description += f"; haze: {haze[1]}"
    if "noise_weighting" not in cfg.paradigm.params:
        noise = forward_noise(block)
        if noise is not None:
            cfg.paradigm.params.noise_weighting = "poisson"
            cfg.paradigm.params.noise_floor = round(max(noise[0], 1e-4), 5)
            cfg.description += f"; noise model: {noise[1]}"
    return cfg


def adapt(run: str | Path, folder: str | Path, *, data_block: str | None = None,
          overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Adapt run ``run`` to the real LR images in ``folder``; returns the new run directory.

    ``overrides`` may hold ``resume=ADAPT_RUN`` to continue an interrupted adaptation."""
    from srlab import experiment, runs

    resume = [o for o in overrides if o.removeprefix("--").startswith("resume=")]
    rest = [o for o in overrides if o not in resume]
    if resume:
        from srlab.config import load_resolved

        target = resume[-1].split("=", 1)[1]
        saved = load_resolved(runs.resolve_run_dir(target) / "config.yaml")
        if saved.paradigm.name != "adaptation":
            raise SrlabError(f"resume={target}: not an adaptation run (paradigm '{saved.paradigm.name}')")
        planned = experiment.plan_resume(saved.name, target, rest)
        if planned is None:
            return runs.resolve_run_dir(target)
        cfg, plan = planned
        network = None
        if plan.checkpoint is None:  # stopped before its first checkpoint: start again from the source
            network, _ = experiment.load_network(cfg.paradigm.params.source_run)
        return experiment.train(cfg, plan, network=network)
    from srlab.inference.loader import tested_checkpoint

    network, source = experiment.load_network(run)
    # The checkpoint of the network just loaded: the one given, else the one the run's test used.
    ckpt = Path(run) if Path(run).suffix == ".ckpt" else tested_checkpoint(runs.resolve_run_dir(run))
    if ckpt is None:
        raise SrlabError(f"{run}: no checkpoints/best.ckpt or last.ckpt to adapt from")
    cfg = adaptation_config(source, ckpt.resolve(), folder, data_block=data_block, overrides=rest)
    run_dir = experiment.train(cfg, network=network.train())
    summary(run_dir)
    return run_dir


def summary(run_dir: Path) -> None:
    """Print consistency and anchor PSNR before → after from the run's metrics.json."""
    m = json.loads((run_dir / "metrics.json").read_text())

    def pair(key: str, unit: str, digits: int) -> str:
        before, after = m.get(f"test/before_{key}"), m.get(f"test/{key}")
        if before is None or after is None:
            return "n/a"
        return f"{before:.{digits}f} → {after:.{digits}f}{unit}"

    from srlab.config import load_resolved

    cfg = load_resolved(run_dir / "config.yaml")
    split = cfg.data.params.get("photon_split")
    against = " (output of one half of the photons vs the other half)" if split else ""
    clean = (f" (against their noise-free HR {pair('noise_free_psnr', ' dB', 2)})"
             if "test/before_noise_free_psnr" in m else "")
    print(f"srlab adapt: held-out real images, consistency PSNR{against} {pair('consistency_psnr', ' dB', 2)} "
          f"(MSE {pair('consistency', '', 5)}); anchor test PSNR on the run's own pairs {pair('psnr', ' dB', 2)}"
          f"{clean}")
    haze = float(cfg.paradigm.params.get("haze_sigma_lr_px") or 0.0)
    if haze > 0:
        # the fitted background absorbs more of the residual than a constant does: the readings are higher
        # than those of an adaptation without it on the same images
        print(f"  consistency read with backgrounds as smooth as σ {haze:g} LR px fitted (the out-of-focus "
              f"haze): compare it only with adaptations of the same paradigm.params.haze_sigma_lr_px")
    epochs = still_improving(run_dir, cfg)
    if epochs is not None:
        print(f"  note: the held-out consistency was still rising at the last of the {epochs} epochs (no early "
              f"stop; the checkpoint kept is the last one): a longer adaptation may gain more — a new run: "
              f"srlab adapt {cfg.paradigm.params.source_run} {cfg.data.real_lr} trainer.max_epochs={2 * epochs} "
              f"(with the --data and key=value options this one had)")


def still_improving(run_dir: Path, cfg: DictConfig) -> int | None:
    """``trainer.max_epochs`` where the adaptation ran all of them without stopping early and its best
    checkpoint (the one its test and ``srlab predict`` use) is its last: the early stopping's held-out
    consistency was still rising when the epochs ran out (on the 10x -> 20x check, 2 of 4 adaptations at the
    default 20 epochs). ``None`` otherwise, and where early stopping is off (``paradigm.params.patience=0``)."""
    import inspect

    from srlab import runs
    from srlab.paradigms.adaptation import PhysicsAdaptation

    default_patience = inspect.signature(PhysicsAdaptation).parameters["patience"].default
    max_epochs = cfg.trainer.get("max_epochs")
    last, best = runs.last_checkpoint(run_dir), run_dir / "checkpoints" / "best.ckpt"
    if not max_epochs or max_epochs < 1 or cfg.paradigm.params.get("patience", default_patience) <= 0 \
            or last is None or not best.is_file():
        return None
    last_ckpt = runs.load_checkpoint(last)
    if int(last_ckpt.get("epoch", -1)) + 1 < int(max_epochs):
        return None  # stopped early (or interrupted): the best checkpoint is not read
    return int(max_epochs) if runs.load_checkpoint(best).get("global_step") == last_ckpt.get("global_step") else None
