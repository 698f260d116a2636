"""srlab — PyTorch Lightning experiments for deep-learning super-resolution of microscopy images.

Importing srlab sets two environment defaults *before* the libraries that read them are imported:

* ``NO_ALBUMENTATIONS_UPDATE=1`` — albumentations otherwise checks PyPI for a newer release on import,
  which hangs or warns on machines without internet.
* ``WANDB_MODE=offline`` — runs are tracked locally (``wandb sync`` uploads them later); set
  ``WANDB_MODE=online`` (or ``logger.wandb.mode=online``) to log live.

Both are defaults only: a value the user exported wins.
"""
import os as _os

# Whether the user chose a W&B mode themselves (then it wins over logger.wandb.mode). A process started
# by one that imported srlab inherits srlab's own default: the marker tells it apart from the user's
# choice (else a child, e.g. a test worker, would take "offline" as the user's and ignore the config).
_WANDB_MODE_MARKER = "SRLAB_WANDB_MODE_DEFAULT"
_WANDB_MODE_FROM_USER = "WANDB_MODE" in _os.environ and (
    _os.environ.get(_WANDB_MODE_MARKER) != _os.environ["WANDB_MODE"])
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if not _WANDB_MODE_FROM_USER:
    _os.environ["WANDB_MODE"] = _os.environ[_WANDB_MODE_MARKER] = "offline"
_os.environ.setdefault("WANDB_SILENT", "true")

__version__ = "0.1.0"

import warnings as _warnings

# Lightning 2.6 warns about its own use of a torch.utils._pytree API on every fit/test; nothing a user
# can act on.
_warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
