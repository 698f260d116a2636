"""Losses registered by name (``paradigm.loss.name``): the pixel losses of the survey's Table 1, total
variation and SRGAN's VGG19 feature loss; plus :class:`AdversarialLoss`, the GAN objectives
(``paradigm.params.adversarial_loss``) used by the adversarial paradigms."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from srlab.errors import OptionError
from srlab.registry import LOSSES


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


# --------------------------------------------------------------------------------------------------
# Regularizers and adversarial objectives (GAN paradigms)
# --------------------------------------------------------------------------------------------------
@LOSSES.register("tv", paper="SRGAN (Ledig et al., CVPR 2017, arXiv:1609.04802)")
class TotalVariationLoss(nn.Module):
    """Total variation: the mean isotropic gradient magnitude sqrt(∂x² + ∂y² + ε²) of the prediction.

    SRGAN's regularizer l_TV (Ledig et al. 2017, arXiv:1609.04802 v1, weight 2·10⁻⁸), normalized by the
    number of pixels as in the paper. It takes ``(pred, target=None)``: the target is ignored, so the
    loss can sit in the same slot as the pixel losses.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor | None = None) -> Tensor:
        dy = pred[..., 1:, :-1] - pred[..., :-1, :-1]
        dx = pred[..., :-1, 1:] - pred[..., :-1, :-1]
        return torch.sqrt(dx**2 + dy**2 + self.eps**2).mean()


ADVERSARIAL_KINDS = ("bce", "lsgan", "hinge")


class AdversarialLoss(nn.Module):
    """The GAN objective on raw discriminator logits (image-level ``(N, 1)`` or patch ``(N, 1, h, w)``).

    - ``bce``: the original non-saturating GAN (Goodfellow et al., NeurIPS 2014) as binary cross-entropy
      with logits — SRGAN's ``-log D(G(x))`` generator loss (Ledig et al. 2017).
    - ``lsgan``: least squares (Mao et al., ICCV 2017, arXiv:1611.04076): D → 1 on real, 0 on fake; the
      generator pushes D(G(x)) → 1. The form of the cross-modality GAN (Wang et al., Nat. Methods 2019).
    - ``hinge``: D minimizes relu(1 − D(real)) + relu(1 + D(fake)), G minimizes −D(G(x)) (Miyato et al.,
      ICLR 2018), used by Bulat et al. (ECCV 2018, arXiv:1807.11458).
    """

    def __init__(self, kind: str = "bce"):
        super().__init__()
        if kind not in ADVERSARIAL_KINDS:
            raise OptionError(f"adversarial_loss must be one of {', '.join(ADVERSARIAL_KINDS)}, got {kind!r}")
        self.kind = kind

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The discriminator's loss on a batch of real and one of generated samples."""
        if self.kind == "bce":
            return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                    + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        if self.kind == "lsgan":
            return ((real_logits - 1) ** 2).mean() + (fake_logits**2).mean()
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator(self, fake_logits: Tensor) -> Tensor:
        """The generator's loss: make the discriminator call its samples real."""
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        if self.kind == "lsgan":
            return ((fake_logits - 1) ** 2).mean()
        return -fake_logits.mean()

    def score(self, logits: Tensor) -> Tensor:
        """Mean D(x) for logging: a probability for ``bce`` (sigmoid), the raw output otherwise."""
        logits = logits.detach().float()
        return torch.sigmoid(logits).mean() if self.kind == "bce" else logits.mean()


# --------------------------------------------------------------------------------------------------
# VGG19 feature (perceptual) loss — weights from a local file only
# --------------------------------------------------------------------------------------------------
# torchvision's VGG19 ``features`` (configuration E of Simonyan & Zisserman, ICLR 2015, arXiv:1409.1556):
# numbers are 3x3 conv widths, "M" a 2x2 max-pool. Laid out identically so that torchvision's state dict
# (``features.<index>.weight``) loads without renaming.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names() -> list[str]:
    """Names of the VGG19 ``features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    names, block, index = [], 1, 1
    for item in _VGG19_LAYOUT:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


def vgg19_features(until: str) -> nn.Sequential:
    """VGG19 ``features`` up to and including layer ``until`` (e.g. ``relu5_4``), randomly initialized."""
    names = vgg19_layer_names()
    if until not in names:
        raise OptionError(f"layer must be a VGG19 layer name (e.g. relu2_2, relu5_4), got {until!r}")
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers[: names.index(until) + 1])


@LOSSES.register("vgg19", paper="SRGAN VGG54 (Ledig et al., CVPR 2017, arXiv:1609.04802)")
class VGGFeatureLoss(nn.Module):
    """SRGAN's content loss: MSE between VGG19 feature maps φ_{5,4} of prediction and target.

    Ledig et al. 2017 (arXiv:1609.04802), Sec. 2.2.1: φ_{i,j} is the feature map after the j-th
    convolution (and its ReLU) before the i-th max-pool; VGG54 = ``relu5_4``; feature maps rescaled by
    1/12.75 so the loss is comparable to MSE. The ImageNet-trained weights are read ONLY from
    ``weights_path`` — a local torchvision ``vgg19`` state dict (``features.N.weight/bias``), loaded with
    ``weights_only=True``; nothing is downloaded. One-channel microscopy images are repeated to three
    channels and normalized with the ImageNet mean/std the network was trained with.
    """

    def __init__(self, weights_path: str | None = None, layer: str = "relu5_4", feature_scale: float = 1 / 12.75):
        super().__init__()
        if not weights_path:
            raise OptionError("the vgg19 loss needs paradigm.loss.params.weights_path: a local VGG19 state "
                             "dict file (torchvision's vgg19 weights); srlab never downloads weights")
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise OptionError(f"paradigm.loss.params.weights_path: no such file {str(path)!r}")
        features = vgg19_features(layer)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
            raise OptionError(f"{path}: cannot be read as a torch state dict ({str(err).splitlines()[0][:120]})") \
                from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise TypeError(f"{path}: not a VGG19 state dict (a {type(state).__name__})")
        picked = {k: state.get(f"features.{k}", state.get(k)) for k in features.state_dict()}
        missing = sorted(k for k, v in picked.items() if v is None)
        if missing:
            raise OptionError(f"{path}: not a VGG19 state dict (missing features.{missing[0]}"
                             f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''})")
        try:
            features.load_state_dict(picked)
        except RuntimeError as err:
            raise OptionError(f"{path}: VGG19 weights of the wrong shape "
                             f"({str(err).splitlines()[-1].strip()[:120]})") from None
        # Held outside the module tree: the fixed, externally supplied weights stay out of every
        # checkpoint (they would add up to 80 MB) and out of the optimizers; moved to the data's device
        # on first use.
        self._features = (features.requires_grad_(False).eval(),)
        self.weights_path = str(path)
        self.feature_scale = feature_scale
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _embed(self, x: Tensor) -> Tensor:
        features = self._features[0]
        if features[0].weight.device != x.device:
            features.to(x.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"the vgg19 loss takes 1- or 3-channel images, got {x.shape[1]} channels")
        return features((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)) * self.feature_scale

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_features = self._embed(target)
        return F.mse_loss(self._embed(pred), target_features)
