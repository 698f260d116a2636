"""Single-molecule localization microscopy (PALM/STORM): localizations, simulation, fitting, scoring.

* :mod:`srlab.smlm.localizations` — the table of molecule positions, ThunderSTORM CSV files, camera stacks.
* :mod:`srlab.smlm.simulate` — the acquisition simulator (specimens, blinking, PSF, camera via :mod:`srlab.optics`).
* :mod:`srlab.smlm.datamodule` — Deep-STORM's training frames; the DataModule of ``data.kind: smlm``.
* :mod:`srlab.smlm.localize` — density maps and raw frames (Gaussian fitting) to molecules; whole stacks.
* :mod:`srlab.smlm.score` — the SMLM challenge's matching and metrics (Jaccard, RMSE, efficiency).
"""
from __future__ import annotations

# srlab.data imports srlab.smlm.datamodule to register the ``smlm`` DataModule, and the modules here read
# TIFFs through srlab.data.io: importing srlab.data first gives one import order (srlab.data, then the
# modules here) whichever module of this package a caller imports first.
import srlab.data  # noqa: F401
