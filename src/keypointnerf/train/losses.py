"""Training losses: L1 on the coarse and fine colours, the VGG19 perceptual loss (offline weights only), D-SSIM
and a silhouette term on the rendered opacity.

The perceptual loss compares VGG19 features of prediction and target (ImageNet-normalised RGB) after relu1_1,
relu2_1, relu3_1 and relu4_1 (``features[:2]``, ``[2:7]``, ``[7:12]``, ``[12:21]`` in torchvision's layout),
weighted 1/16, 1/8, 1/4 and 1, with the L1 distance. Nothing is downloaded: the weights come from a local
torchvision-layout state dict or from the VGG19 tensors of an official KeypointNeRF checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's VGG19 ``features`` up to relu4_1: conv widths ("M" = 2x2 max pooling)
_VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512]
SLICE_ENDS = (2, 7, 12, 21)
SLICE_WEIGHTS = (1 / 16, 1 / 8, 1 / 4, 1.0)


def _vgg19_features() -> nn.Sequential:
    layers, channels = [], 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)   # 21 modules: indices match torchvision's features[:21]


class VGGPerceptualLoss(nn.Module):
    """L1 between VGG19 features of two (B, 3, H, W) images in [0, 1]; frozen weights."""

    def __init__(self, state_dict: dict[str, torch.Tensor], source: str = "VGG19 weights"):
        super().__init__()
        self.features = _vgg19_features()
        wanted = self.features.state_dict()
        given = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
        missing = [k for k in wanted if k not in given]
        wrong = [k for k in wanted if k in given and tuple(given[k].shape) != tuple(wanted[k].shape)]
        if missing or wrong:
            detail = f"missing features.{missing[0]}" if missing else \
                f"features.{wrong[0]} has shape {tuple(given[wrong[0]].shape)}, expected {tuple(wanted[wrong[0]].shape)}"
            raise UserError(f"{source}: not VGG19 weights in torchvision layout ({detail})")
        self.features.load_state_dict({k: given[k] for k in wanted})
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (prediction - self.mean) / self.std
        y = (target - self.mean) / self.std
        loss, start = prediction.new_zeros(()), 0
        for end, weight in zip(SLICE_ENDS, SLICE_WEIGHTS):
            block = self.features[start:end]
            x, y = block(x), block(y)
            loss = loss + weight * F.l1_loss(x, y.detach())
            start = end
        return loss

    def export_state(self) -> dict[str, torch.Tensor]:
        """The weights in torchvision layout (what checkpoints store as ``vgg19``)."""
        return {f"features.{k}": v.detach().cpu() for k, v in self.features.state_dict().items()}


def load_vgg19_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A local torchvision-layout VGG19 state dict (``vgg19-*.pth``), read without executing code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: VGG19 weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise UserError(f"{path}: not a readable VGG19 state dict ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict of tensors")
    return state


def dssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` of two (B, 3, H, W) images in [0, 1] with the evaluation's 7x7 uniform window (H, W >= 7)."""
    return 1.0 - structural_similarity_index_measure(prediction, target.detach(), gaussian_kernel=False,
                                                     kernel_size=7, data_range=1.0)


def silhouette_bce(opacity: torch.Tensor, mask: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Binary cross-entropy between the accumulated opacity (R,) of rays and the target's foreground mask (R,) (0/1).

    Pushes ghost limbs (opacity well below 1 inside the silhouette) and haze outside it to 0 or 1. ``eps`` inside
    the logarithms keeps empty and solid rays finite without clamping, so a nearly empty ray in the mask still
    gets a (bounded) gradient.
    """
    mask = mask.to(opacity.dtype)
    return -(mask * torch.log(opacity + eps) + (1 - mask) * torch.log(1 - opacity + eps)).mean()
