"""Image metrics of the ZJU-MoCap protocol: PSNR / SSIM on the person's box, optional LPIPS.

Conventions (those of ``keypointnerf.data.sample``): images are (3, H, W) RGB in [0, 1] (torch tensors or
numpy arrays); cameras are OpenCV pinhole, ``x_cam = R x + t`` (world metres), pixel ``(u, v) ~ K x_cam`` with u
the column and v the row and pixel (u, v) centred on the integer coordinates (as the renderer's rays);
``bounds`` (2, 3) is the axis-aligned person box [min, max] in world metres.

Every metric is computed on 8-bit quantised images, ``round(clip(x, 0, 1) * 255) / 255``: the official
evaluation writes PNGs and reads them back, so its numbers are those of the 8-bit images.

* ``psnr`` / ``ssim`` / ``ssim_official`` / ``lpips``: on the bounding rectangle of the 8 projected box
  corners (KeypointNeRF's evaluation crop), see :func:`box_rectangle`.
* ``psnr_box``: over the pixels whose ray meets the box (Neural Human Performer's ``mask_at_box``), see
  :func:`box_pixel_mask`.
* ``ssim`` uses ``data_range=1.0`` (correct for [0, 1] images); ``ssim_official`` uses ``data_range=2.0``: what
  scikit-image 0.19, which produced the published numbers, silently used for float images (the range of the
  float dtype, -1..1). Only ``ssim_official`` is comparable with published tables. It is normally higher than
  ``ssim`` for the same pair: SSIM's stabilising constants grow with the square of the range and pull the
  local terms towards 1.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch import nn

from ..errors import UserError
from ..geometry import camera_rays, pixel_grid
from ..imaging import psnr, to_uint8
from ..render.rays import near_far

SSIM_WINDOW = 7           # pixels: scikit-image's default uniform window, as the official evaluation
SSIM_DATA_RANGE = 1.0     # the correct range of [0, 1] images
SSIM_OFFICIAL_DATA_RANGE = 2.0   # scikit-image 0.19's implicit range for float images (published numbers)
_EDGE_EPS = 1e-6          # pixels: projected corners within this of an integer count as on it (float noise)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def quantize_8bit(image: Any) -> np.ndarray:
    """(3, H, W) image in [0, 1] (tensor or array) -> (H, W, 3) uint8 ``round(clip(x, 0, 1) * 255)``."""
    array = _numpy(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {array.shape}")
    return to_uint8(array.transpose(1, 2, 0))


def ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = SSIM_DATA_RANGE) -> float:
    """Mean SSIM of (H, W, 3) images in [0, 1]: scikit-image, colour channels averaged, 7x7 uniform window.

    ``data_range`` 1.0 is correct for [0, 1] images; 2.0 reproduces the published (scikit-image 0.19) numbers.
    Both sides need at least 7 pixels.
    """
    height, width = pred.shape[:2]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"a {width}x{height} region is smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    return float(structural_similarity(np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64),
                                       channel_axis=-1, win_size=SSIM_WINDOW, data_range=data_range))


def box_corners(bounds: Any) -> np.ndarray:
    """The 8 corners (8, 3) of the box ``bounds`` (2, 3) [min, max], world metres."""
    box = _numpy(bounds)
    if box.shape != (2, 3):
        raise ValueError(f"bounds must have shape (2, 3), got {box.shape}")
    return np.array([[box[i, 0], box[j, 1], box[k, 2]] for i, j, k in itertools.product((0, 1), repeat=3)])


def box_rectangle(bounds: Any, K: Any, Rt: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """The bounding rectangle of the person's box in an image, as KeypointNeRF's evaluation crops it.

    Args:
        bounds: (2, 3) box [min, max], world metres.
        K: (3, 3) intrinsics in pixels; Rt: (3, 4) world-to-camera [R|t], t in metres.
        height, width: image size in pixels.

    Returns:
        ``(top, bottom, left, right)`` pixel indices with bottom/right exclusive, so that
        ``image[:, top:bottom, left:right]`` is the crop: every pixel row v with
        ``floor(min v) <= v <= ceil(max v)`` (columns likewise) over the 8 projected corners, clipped to the
        image. Corners on or behind the camera plane make the projection unbounded: the whole image is returned.
        An empty rectangle (box outside the view) has top == bottom or left == right.
    """
    K, Rt = _numpy(K), _numpy(Rt)
    cam = box_corners(bounds) @ Rt[:, :3].T + Rt[:, 3]
    if np.any(cam[:, 2] <= 1e-9):
        return 0, int(height), 0, int(width)
    pix = cam @ K.T
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    # epsilon: corners landing exactly on a pixel centre must not gain a row from float noise
    top = int(np.clip(np.floor(v.min() + _EDGE_EPS), 0, height))
    bottom = int(np.clip(np.ceil(v.max() - _EDGE_EPS) + 1, 0, height))
    left = int(np.clip(np.floor(u.min() + _EDGE_EPS), 0, width))
    right = int(np.clip(np.ceil(u.max() - _EDGE_EPS) + 1, 0, width))
    return top, max(top, bottom), left, max(left, right)


def box_pixel_mask(bounds: Any, K: Any, Rt: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels whose ray meets the box ``bounds`` (2, 3) (world metres) widened by 1 cm on every
    side — Neural Human Performer's ``mask_at_box`` (its near/far test widens the box so) and the rays this
    renderer traces inside the box. K (3, 3) pixels, Rt (3, 4) world-to-camera.

    Rays are the renderer's (``keypointnerf.render.rays``: through ``K^-1 [u, v, 1]``, no half-pixel offset).
    """
    K = torch.as_tensor(_numpy(K))
    Rt = torch.as_tensor(_numpy(Rt))
    box = torch.as_tensor(_numpy(bounds))
    origins, directions = camera_rays(K, Rt, pixel_grid(height, width))
    origins, directions = origins.double(), directions.double()
    _, _, hits = near_far(origins, directions, box, Rt, znear=1e-6, zfar=1e6)  # depths unused: hits only
    return hits.reshape(height, width).numpy()


def image_metrics(pred: Any, gt: Any, bounds: Any, K: Any, Rt: Any, lpips: "LPIPS | None" = None
                  ) -> dict[str, float | None]:
    """Metrics of one rendered image against its ground truth.

    Args:
        pred, gt: (3, H, W) RGB in [0, 1] (tensors or arrays; quantised to 8 bits here, see the module doc).
        bounds: (2, 3) person box, world metres; K (3, 3) pixels; Rt (3, 4) world-to-camera of the image.
        lpips: an :class:`LPIPS` network, or None to skip LPIPS.

    Returns:
        ``psnr`` (dB, on the box's bounding rectangle, capped at 100), ``ssim`` (rectangle, data_range 1.0:
        the correct one), ``ssim_official`` (rectangle, data_range 2.0: comparable with published tables),
        ``psnr_box`` (dB, pixels whose ray meets the box only), ``lpips`` (rectangle; None without a network).

    Raises:
        ValueError: the box covers no pixel of the image, or its rectangle is smaller than the SSIM window.
    """
    pred8, gt8 = quantize_8bit(pred), quantize_8bit(gt)
    if pred8.shape != gt8.shape:
        raise ValueError(f"prediction {pred8.shape[:2]} and ground truth {gt8.shape[:2]} differ in size")
    height, width = pred8.shape[:2]
    p, g = pred8.astype(np.float64) / 255.0, gt8.astype(np.float64) / 255.0
    top, bottom, left, right = box_rectangle(bounds, K, Rt, height, width)
    if bottom <= top or right <= left:
        raise ValueError("the person's box projects outside the image")
    mask = box_pixel_mask(bounds, K, Rt, height, width)
    if not mask.any():
        raise ValueError("no pixel's ray meets the person's box")
    p_crop, g_crop = p[top:bottom, left:right], g[top:bottom, left:right]
    return {
        "psnr": psnr(p_crop, g_crop),
        "ssim": ssim(p_crop, g_crop, SSIM_DATA_RANGE),
        "ssim_official": ssim(p_crop, g_crop, SSIM_OFFICIAL_DATA_RANGE),
        "psnr_box": psnr(p, g, mask),
        "lpips": None if lpips is None else lpips.distance(p_crop, g_crop),
    }


# ----------------------------------------------------------------------------------------------------- LPIPS
# VGG16's convolutional part, numbered as torchvision's ``vgg16().features`` so its state dict loads unchanged:
# an int is a 3x3 convolution with that many outputs followed by a ReLU, "M" a 2x2 max-pool.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_LPIPS_TAPS = (3, 8, 15, 22, 29)                 # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS normalises [-1, 1] inputs to ImageNet statistics with these constants (not learned, not in weight files)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_MIN_SIDE = 16     # pixels: four max-pools before relu5_3 need at least this much


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional layers up to relu5_3 (indices 0..29 of torchvision's ``features``)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class _LinearHead(nn.Module):
    """A 1x1 convolution to one channel, no bias; ``model.1`` as in the lpips package (its ``model.0`` is a
    dropout, a no-op at evaluation, here an identity)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))
        # released LPIPS weights are non-negative; random ones should be too so distances stay >= 0
        nn.init.uniform_(self.model[1].weight, 0.0, 1.0 / channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS (Zhang et al. 2018), VGG16 variant, version 0.1: a learned perceptual distance, lower = closer.

    State dict: ``features.<i>.weight|bias`` (VGG16, torchvision layout) and ``lin<k>.model.1.weight``
    (k = 0..4, shapes (1, C_k, 1, 1), the lpips package's layout). Freshly constructed weights are random;
    use :func:`load_lpips` for real ones.
    """

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        for k, channels in enumerate(_LPIPS_CHANNELS):
            setattr(self, f"lin{k}", _LinearHead(channels))
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) between images a, b (N, 3, H, W) in [0, 1]. Sides below 16 pixels are padded by
        replicating the border (relu5_3 sits behind four 2x max-pools)."""
        height, width = a.shape[-2:]
        pad_h, pad_w = max(0, _LPIPS_MIN_SIDE - height), max(0, _LPIPS_MIN_SIDE - width)
        if pad_h or pad_w:
            pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
            a, b = F.pad(a, pads, mode="replicate"), F.pad(b, pads, mode="replicate")
        x = torch.cat([a, b]).float()
        x = ((x * 2 - 1) - self.shift) / self.scale
        total = x.new_zeros(a.shape[0])
        taps = iter(enumerate(_LPIPS_TAPS))
        k, tap = next(taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index != tap:
                continue
            fa, fb = x.chunk(2)
            # unit length along channels, then a learned per-channel weighting of the squared difference
            fa = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{k}")((fa - fb) ** 2).mean(dim=(1, 2, 3))
            k, tap = next(taps, (None, None))
            if tap is None:
                break
        return total

    def distance(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """LPIPS of two (H, W, 3) images in [0, 1] (numpy), on this module's device."""
        device = self.shift.device
        to_tensor = lambda image: torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)),  # noqa: E731
                                                  dtype=torch.float32, device=device)[None]
        with torch.inference_mode():
            return float(self(to_tensor(pred), to_tensor(gt))[0])


def load_lpips(path: str | Path, device: torch.device | str = "cpu") -> LPIPS:
    """The LPIPS network with the weights of ``path``, in eval mode on ``device``.

    The file is a torch state dict read with ``torch.load(weights_only=True)`` (no code runs) holding VGG16's
    ``features.<i>.weight|bias`` (torchvision layout) and ``lin0..lin4`` as ``lin<k>.model.1.weight`` (the lpips
    package's ``weights/v0.1/vgg.pth``). A whole ``lpips.LPIPS(net="vgg").state_dict()`` is accepted too
    (``net.slice<n>.<i>.*`` taken as ``features.<i>.*``; its ``lins.*`` duplicates and ``scaling_layer.*``
    constants ignored). Missing, unreadable, incomplete or mis-shaped files raise UserError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: LPIPS weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch says, the file is unusable
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a readable torch file of LPIPS weights ({detail})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict of LPIPS weights, found {type(state).__name__}")
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = str(key)
        if key.startswith(("lins.", "scaling_layer.")):
            continue
        match = re.fullmatch(r"net\.slice\d\.(\d+)\.(weight|bias)", key)
        mapped[f"features.{match.group(1)}.{match.group(2)}" if match else key] = value
    model = LPIPS()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    wrong = [k for k in expected if k in mapped and (not isinstance(mapped[k], torch.Tensor)
                                                     or tuple(mapped[k].shape) != tuple(expected[k].shape))]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else ""))
        if wrong:
            parts.append(f"mis-shaped {', '.join(wrong[:5])}")
        raise UserError(f"{path}: not VGG16 LPIPS weights (features.* + lin0..lin4): " + "; ".join(parts))
    bad = [k for k, v in mapped.items() if not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{path}: LPIPS tensor(s) with NaN or infinite values: {', '.join(bad[:5])}")
    model.load_state_dict({k: v.float() for k, v in mapped.items()})
    return model.to(device).eval()
