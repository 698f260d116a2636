"""Pixel losses of the survey's Table 1, registered by name (``paradigm.loss.name``)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from srlab.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")


@LOSSES.register("mse", paper="SRCNN/ESPCN/FSRCNN/VDSR")
class MSELoss(nn.MSELoss):
    """Mean squared error, the loss of SRCNN, ESPCN, FSRCNN and VDSR."""

    def __init__(self):
        super().__init__()


@LOSSES.register("l1", paper="EDSR/RDN/RCAN")
class L1Loss(nn.L1Loss):
    """Mean absolute error; EDSR (Lim et al. 2017) found it converges better than MSE."""

    def __init__(self):
        super().__init__()


@LOSSES.register("charbonnier", paper="LapSRN")
class CharbonnierLoss(nn.Module):
    """sqrt((x - y)² + ε²), a differentiable L1 (Lai et al., LapSRN, CVPR 2017)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


@LOSSES.register("mse_ssim", paper="DFCAN (Qiao et al., Nat Methods 2021)")
class MSESSIMLoss(nn.Module):
    """MSE + λ·(1 − SSIM), DFCAN's loss (Qiao et al., Nature Methods 2021), λ = 0.1 by default."""

    def __init__(self, ssim_weight: float = 0.1):
        super().__init__()
        self.ssim_weight = ssim_weight

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        ssim = structural_similarity_index_measure(pred, target, data_range=1.0)
        return torch.mean((pred - target) ** 2) + self.ssim_weight * (1.0 - ssim)
