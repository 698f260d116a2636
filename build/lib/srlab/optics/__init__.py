"""Optics: the one place where light becomes pixels.

The image simulator (:mod:`srlab.data.simulate`), the SMLM simulator (:mod:`srlab.smlm.simulate`), the
on-the-fly degradation (:mod:`srlab.data.degrade`), the classical baselines
(:mod:`srlab.models.classical`), the consistency check and the localization loss all take their
physics from here (after DECODE's ``simulation`` package: PSF kernels, camera, structures):

* :mod:`srlab.optics.psf` — FWHM/σ conversions, Airy and Gaussian profiles, the confocal and STED
  laws, point emitters integrated over camera pixels, FWHM measurement;
* :mod:`srlab.optics.modality` — a resolved microscope (:class:`~srlab.optics.modality.Modality`:
  PSF, sampling, optical sectioning, photons, detector) and the table of presets;
* :mod:`srlab.optics.camera` — the detector (:class:`~srlab.optics.camera.Camera`: photons -> ADU
  and back) and the torch noise of the degradation;
* :mod:`srlab.optics.specimens` — microtubules, F-actin, clathrin-coated pits, ER, mitochondria,
  puncta, axonal actin–spectrin rings, branched actin meshes, synaptic nanoclusters, mitochondria
  with cristae and nuclear pores (the registry ``STRUCTURES``), as label densities or as SMLM labels
  along polylines;
* :mod:`srlab.optics.kernels` — Gaussian/Airy kernels, blur, area and bicubic resampling (torch).

Units are in the names (``_nm``, ``_px``, ``photons``, ``_adu``, ``_e``). Nothing here imports the
rest of srlab, so every layer may import it.
"""
