"""Structured config of the data block (``data:`` in an experiment).

Every physical quantity is a typed field whose name carries its unit (``pixel_size_nm``,
``wavelength_nm``, ``psf_fwhm_nm``, ``photons``); OmegaConf rejects unknown keys and wrong types, so a
misspelt option fails with one line naming it.

``data.kind`` picks the DataModule (:data:`srlab.data.DATAMODULES`):

* ``simulated`` / ``paired`` — LR/HR TIFF pairs (``lr/`` and ``hr/`` matched by file name, or a CSV
  manifest) under ``data.path``; without a path, the optics simulator (``data.simulation``) generates
  and caches a dataset and the same paired code serves it.
* ``degrade`` — HR images only; LR made on the fly by ``data.degradation`` (torch, CPU or training device).
* ``unpaired`` — a set of real LR images and a set of HR images, sampled independently, plus held-out
  pairs for validation/test; ``data.real_lr`` names a folder of the user's own LR images to train on.
* ``multiframe`` — T sub-pixel-shifted LR frames of one field and the HR image of the reference
  frame (:mod:`srlab.data.multiframe`), for multi-frame SR.
* ``multiscale`` — simulated pairs at several scales, one per training batch, for MDSR
  (:mod:`srlab.data.multiscale`).
* ``smlm`` — simulated single-molecule localization frames (:mod:`srlab.smlm.datamodule`).
* ``quality`` — simulated STED images with a known quality score (:mod:`srlab.data.quality`).

``data.params`` holds the few options only one kind takes (folder names, manifest), checked against
that kind's signature.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The share of a simulated dataset's HR pixels that the user's HR images hold by default
#: (``simulation.hr_image_share``; ``srlab calibrate --hr-specimens`` writes it).
HR_IMAGE_SHARE = 0.5


@dataclass
class ModalityConfig:
    """One imaging modality of the simulator (:mod:`srlab.data.simulate`).

    ``modality`` names a preset (``srlab.data.simulate.PRESETS``: widefield, confocal, sted, resolft,
    sim, tirf, tirfsim, widefield10x, widefield20x, storm); every field left ``null`` takes the preset's value.
    Wavelengths are vacuum wavelengths in nm; photon counts are *detected* photons (photo-electrons).
    """

    modality: str = "confocal"
    wavelength_nm: float | None = None  # emission (detection) wavelength
    excitation_wavelength_nm: float | None = None  # confocal/STED/RESOLFT excitation
    na: float | None = None  # numerical aperture of the objective
    immersion_index: float | None = None  # refractive index of the immersion medium
    pixel_size_nm: float | None = None  # in the sample plane; for the HR side default = LR / scale
    psf: str | None = None  # "airy" or "gaussian" (σ = 0.21 λ/NA)
    pinhole_au: float | None = None  # confocal pinhole diameter in Airy units
    saturation_factor: float | None = None  # STED/RESOLFT I/I_sat
    sim_resolution_gain: float | None = None  # SIM: widefield FWHM / SIM FWHM (2 for linear SIM)
    penetration_depth_nm: float | None = None  # TIRF evanescent field 1/e depth
    signal_photons: float | None = None  # photons at the brightest structures (99.9th percentile)
    background_photons: float | None = None  # uniform background per pixel
    detector: str | None = None  # "counting" (PMT/HyD), "scmos" or "emccd"
    read_noise_e: float | None = None  # camera read noise, electrons rms
    e_per_adu: float | None = None  # electrons per grey level (camera conversion factor)
    offset_adu: float | None = None  # camera baseline; below 0: more subtracted before writing, dark pixels clip at 0
    em_gain: float | None = None  # EMCCD multiplication gain
    bit_depth: int | None = None  # files are uint8 (<= 8 bits) or uint16, clipped to 2**bit_depth - 1
    # A measured resolution (written by `srlab calibrate`): the PSF becomes a Gaussian of this FWHM,
    # overriding the one wavelength/NA/modality imply. null: the modality's own PSF law.
    psf_fwhm_nm: float | None = None


@dataclass
class SimulationConfig:
    """A simulated dataset: specimens drawn on a fine grid, imaged by an LR and an HR modality.

    The HR pixel size defaults to the LR pixel size divided by ``data.scale``; ``lr_size_px`` is the
    image size in LR pixels (HR images are ``scale`` × larger). The dataset is cached under
    ``$SRLAB_DATA_DIR`` (default ``./data``) keyed by a hash of the resolved settings.

    ``structures`` are names of :data:`srlab.optics.specimens.STRUCTURES`. The ``*_range`` fields
    randomize each image: structure density (a factor on ``density_scale``), widths (tube, bundle,
    ring and cluster diameters), each structure's brightness (relative, among the structures of one
    image), labelling sparsity (the fraction of label sites kept), out-of-focus haze (the defocused
    layer's density relative to the in-focus one) and a slow illumination gradient (brightness
    ``1 + a·r`` with ``r`` a ramp from -1 to 1 across the field in a random direction).
    """

    lr: ModalityConfig = field(default_factory=lambda: ModalityConfig(modality="confocal"))
    hr: ModalityConfig = field(default_factory=lambda: ModalityConfig(modality="sted"))
    structures: list[str] = field(default_factory=lambda: ["microtubules", "actin", "ccps", "er"])
    structures_per_image: int = 1  # 1: one label per image, as in single-colour imaging
    n_images: int = 48
    lr_size_px: int = 128
    specimen_pixel_size_nm: float | None = None  # fine grid; null: <= 10 nm and <= HR FWHM / 8
    label_size_nm: float = 8.0  # σ of the label's displacement from the structure (antibodies)
    density_scale: float = 1.0  # multiplies every structure's number per µm²
    out_of_focus_fraction: float = 0.5  # labelled structures in a defocused layer, relative to in focus
    defocus_nm: float = 600.0  # distance of that layer from the focal plane
    seed: int = 0  # the dataset's seed (independent of the training seed, so runs share data)
    # Domain randomization: [lo, hi] ranges drawn uniformly per image (from the dataset's seed); the
    # defaults draw nothing new, so existing datasets and their cache keys are unchanged.
    density_range: list[float] = field(default_factory=lambda: [1.0, 1.0])  # × density_scale
    width_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])  # × widths, diameters
    intensity_range: list[float] = field(default_factory=lambda: [1.0, 1.0])  # × each structure's brightness
    labelling_fraction_range: list[float] = field(default_factory=lambda: [1.0, 1.0])  # label sites kept
    haze_range: list[float] | None = None  # out-of-focus fraction per image; null: out_of_focus_fraction
    illumination_gradient_range: list[float] = field(default_factory=lambda: [0.0, 0.0])  # ramp amplitude
    # The user's HR images of the target modality as further specimens (:mod:`srlab.data.user_specimens`:
    # the LR side imaged from them by the LR modality), holding ``hr_image_share`` of the HR pixels;
    # training images only. ``srlab calibrate --hr`` writes its HR images here.
    hr_images: list[str] = field(default_factory=list)
    hr_image_share: float = HR_IMAGE_SHARE
    hr_image_channel: int | None = None  # which channel of multi-channel hr_images files (0-based)
    # FWHM (nm) of the Gaussian that, before the s × s pixel integration, makes the LR of the user's hr_images;
    # null: the block's two PSFs in quadrature (srlab.data.physics.pair_blur). Opt-in: srlab calibrate prints
    # the blur read off the LR and HR images' spectra (srlab.calibration.relative_blur), does not write it
    hr_image_blur_fwhm_nm: float | None = None
    # The share of each hr_images image's photons its LR is made of, the rest its target (independent noise;
    # srlab.data.user_specimens.pairs); auto: halves for a photon-counting HR detector, the whole image for a
    # camera (srlab.data.simulate.AUTO_PHOTON_SPLIT); null: the whole image for both (before 2026-12-07)
    hr_image_photon_split: Any = "auto"
    # The HR images the networks learn: "acquired" (through the HR detector: shot noise, camera) or
    # "noise_free" (the detector's expected photons, what the target microscope resolves; the user's own
    # hr_images stay as acquired); "auto": noise_free for a rendering of localizations (STORM) without
    # hr_images, acquired otherwise. See srlab.data.simulate.HR_TARGETS and hr_target_for.
    hr_target: str = "auto"


@dataclass
class DegradationConfig:
    """HR -> LR model of the ``degrade`` kind (:class:`srlab.data.degrade.Degradation`).

    A value is fixed (``200``) or a range ``[lo, hi]`` sampled uniformly per patch. ``photons`` is the
    expected photon count of an LR pixel of normalized intensity 1 (bright structure); background in
    photons per LR pixel; read noise in electrons rms. ``on_device``: the DataModule returns HR patches
    only and synthesizes LR on the training device (``on_after_batch_transfer``).
    """

    psf: str = "gaussian"  # "gaussian" or "airy"
    psf_fwhm_nm: Any = 200.0
    downsampling: str = "area"  # "area" (camera pixel integration) or "bicubic"
    photons: Any = 50.0
    background_photons: Any = 2.0
    read_noise_e: Any = 1.0
    on_device: bool = False


@dataclass
class DataBlock:
    """What every data kind's block has: the kind, the scale, channels, patches and batches, the loader's
    processes, the percentile normalization (:mod:`srlab.data.normalize`), and ``params`` for the few
    options one DataModule takes by keyword (checked against its signature)."""

    kind: str = "simulated"
    scale: int = 2
    channels: int = 1
    patch_size: int = 32
    batch_size: int = 16
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    low_percentile: float = 0.1
    high_percentile: float = 99.9
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig(DataBlock):
    """Where images come from and how patches are served.

    Patch sizes are in LR pixels; the HR patch is ``scale`` × larger. Images are percentile-normalized
    per image (``low_percentile``/``high_percentile``, :mod:`srlab.data.normalize`). The train/val/test
    split is by source file (a stack's slices stay together), drawn with ``split_seed`` — fixed by
    default so every run on the same data is tested on the same images.
    """

    path: str | None = None
    # which channel of the user's multi-channel files (0-based: data.path, data.real_lr); srlab's own
    # simulated images have one channel and are read whatever it says
    channel: int | None = None
    augment: bool = True  # dihedral group (flips, 90° rotations), same on LR and HR
    intensity_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])  # same gain on LR, HR
    patches_per_epoch: int = 1024
    eval_crop_size: int = 64  # LR px; fixed validation/test crops
    eval_crops_per_image: int = 1
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    min_foreground_fraction: float = 0.0  # > 0: resample patches with less foreground than this
    foreground_threshold: float = 0.2  # normalized intensity above which a pixel counts as foreground
    lr_pixel_size_nm: float | None = None  # overrides/fills the files' calibration
    hr_pixel_size_nm: float | None = None
    # A folder of the user's own real LR TIFFs (any bit depth; percentile-normalized like the rest),
    # unpaired with any HR image. kind=unpaired: they replace the training LR (Bulat et al.'s degradation
    # is then learned from the user's microscope); validation/test stay the held-out simulated (or
    # data.path) pairs. kind=adapt (`srlab adapt`): the unlabelled images a trained network is
    # fine-tuned on. null: no real images.
    real_lr: str | None = None
    # Pairs read from data.path (kind paired; unpaired's paired/ folder) are two acquisitions, rarely aligned to
    # a fraction of an HR pixel: true brings each HR into its LR's frame by its measured alignment (a shift per
    # pair, the folder's magnification, rotation, aspect and shear) and leaves out the border that brings in
    # (srlab.data.registration). srlab's simulated pairs are aligned by construction.
    register: bool = False
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


@dataclass
class DegradeDataConfig(DataConfig):
    """``kind: degrade`` — HR images (folder or simulator) and the HR -> LR model applied on the fly."""

    kind: str = "degrade"
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


@dataclass
class AdaptDataConfig(DataConfig):
    """``kind: adapt`` (``srlab adapt``) — the trained run's block, on which its pairs (the anchor,
    ``data.params.anchor_kind``) are drawn, plus ``real_lr``: a degrade anchor brings its
    ``degradation`` (left ``null`` for the other anchors)."""

    kind: str = "adapt"
    degradation: DegradationConfig | None = None


@dataclass
class SMLMDataConfig(DataBlock):
    """``kind: smlm`` — simulated single-molecule frames (:mod:`srlab.smlm`), nothing of the image kinds.

    ``scale`` is the upsampling factor of the density map (8 in Deep-STORM and Deep-ULM); patches are in
    camera pixels. Training: ``train_frames`` independent frames, a new specimen every
    ``frames_per_specimen``; validation and test: one held-out specimen each, ``val_frames`` /
    ``test_frames`` consecutive frames. Targets are Gaussians of ``target_sigma_px`` (HR px) holding
    ``emitter_mass`` each. ``simulation`` holds :class:`srlab.smlm.simulate.SMLMConfig` fields (density,
    photons, PSF, camera; checked by name and value when the DataModule is built, also by ``srlab show``).
    The validation and test acquisitions are drawn with ``split_seed``, not the run's seed (as the image
    kinds' splits are), so every run on the same block is tuned and tested on the same frames.
    """

    kind: str = "smlm"
    scale: int = 8
    patch_size: int = 26
    train_frames: int = 2048
    val_frames: int = 32
    test_frames: int = 64
    frames_per_specimen: int = 64
    target_sigma_px: float = 1.0
    emitter_mass: float = 100.0
    split_seed: int = 0  # the held-out (validation, test) acquisitions; the training stream uses the run's seed
    simulation: dict[str, Any] = field(default_factory=dict)


@dataclass
class MultiFrameDataConfig(DataConfig):
    """``kind: multiframe`` — T LR frames of one field with known sub-pixel shifts, and the HR image of
    the reference frame (:mod:`srlab.data.multiframe`).

    ``frames`` is T; frame ``T // 2`` is the reference (unshifted, registered with the HR image). The
    simulator draws each other frame's shift (dy, dx) uniformly from ``shift_range_px`` (LR pixels) per
    axis; ``data.path`` holds ``lr/`` T-stacks, ``hr/`` images and optionally ``shifts.csv``."""

    kind: str = "multiframe"
    frames: int = 4
    shift_range_px: list[float] = field(default_factory=lambda: [-0.5, 0.5])


@dataclass
class MultiScaleDataConfig(DataConfig):
    """``kind: multiscale`` — simulated pairs at several scales for one multi-scale network (MDSR,
    :mod:`srlab.data.multiscale`): training batches alternate over ``scales``, one scale per batch;
    validation and test use ``scale`` (the primary scale, one of ``scales``).

    The HR side is the same at every scale (``data.simulation.hr`` at LR pixel / ``scale``); the LR
    modality is sampled at ``s ×`` the HR pixel for scale ``s``, and ``lr_size_px`` is that of the
    primary scale (other scales image the same field size). ``patch_size`` is in LR pixels at every
    scale, as in the MDSR paper (48 x 48 LR patches)."""

    kind: str = "multiscale"
    scales: list[int] = field(default_factory=lambda: [2, 3, 4])


@dataclass
class QualityDataConfig(DataBlock):
    """``kind: quality`` — simulated STED images of known quality for a rating network
    (:mod:`srlab.data.quality`, which documents the score). ``patch_size`` is the image side in pixels of
    ``pixel_size_nm``; ``scale`` is 1 (nothing is upsampled). Each image draws its degradations uniformly
    from the ``*_range`` fields (photons log-uniformly): PSF FWHM, peak signal photons, the fraction of
    signal bleached by the end of the scan, and the rms line-to-line gain jitter of scan stripes.
    Training: ``train_items`` new images every epoch; validation and test: fixed ``val_items`` /
    ``test_items`` images from streams disjoint from training."""

    kind: str = "quality"
    scale: int = 1
    patch_size: int = 64
    batch_size: int = 32
    train_items: int = 2048
    val_items: int = 256
    test_items: int = 512
    pixel_size_nm: float = 20.0
    structures: list[str] = field(default_factory=lambda: ["microtubules", "actin", "ccps", "er"])
    # × the specimens' structures per µm²: a field of ~1 µm holds few structures at the simulator's densities
    density_scale: float = 4.0
    fwhm_nm_range: list[float] = field(default_factory=lambda: [40.0, 250.0])
    photons_range: list[float] = field(default_factory=lambda: [3.0, 100.0])
    bleaching_range: list[float] = field(default_factory=lambda: [0.0, 0.5])
    stripes_range: list[float] = field(default_factory=lambda: [0.0, 0.5])
    background_photons: float = 1.0


# data.kind -> the schema its block is checked against (a discriminated union: a block holds only the
# keys its kind uses, and an unused key is an error). Kinds not listed use DataConfig.
DATA_SCHEMAS: dict[str, type] = {"degrade": DegradeDataConfig, "adapt": AdaptDataConfig, "smlm": SMLMDataConfig,
                                 "multiframe": MultiFrameDataConfig, "multiscale": MultiScaleDataConfig,
                                 "quality": QualityDataConfig}


def data_schema(kind: Any) -> type:
    return DATA_SCHEMAS.get(str(kind), DataConfig)
