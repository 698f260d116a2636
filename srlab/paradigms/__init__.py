"""Training paradigms: one LightningModule per way of training, all sharing :class:`SRTask`."""
from __future__ import annotations

import lightning as L

from srlab.registry import Registry

PARADIGMS: Registry[L.LightningModule] = Registry("paradigm")

# Importing the modules registers the paradigms.
from srlab.paradigms import adaptation, degradation_gan, gan, localization, residual, supervised  # noqa: F401
