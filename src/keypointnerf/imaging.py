"""Image conversions and measures every package uses: the one 8-bit conversion (PNGs, videos, mesh colours and
the metrics' quantisation all use it, so a written image is exactly what was scored) and PSNR."""
from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0          # dB: PSNR of identical images (MSE 0) and the ceiling of every PSNR


def to_uint8(image) -> np.ndarray:
    """(H, W[, C]) float in [0, 1] (clipped) or uint8 -> uint8 ``round(clip(x, 0, 1) * 255)``; torch tensors
    (C, H, W) are accepted too."""
    if hasattr(image, "detach"):   # a torch tensor, channels first
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3:
            image = image.transpose(1, 2, 0)
            if image.shape[2] == 1:
                image = image[..., 0]
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of (H, W, C) images in [0, 1] (peak 1), over all pixels or those where ``mask`` (H, W) is true.

    Capped at :data:`PSNR_CAP` (100 dB) so identical images give 100 instead of infinity; no real render comes
    near the cap (100 dB is an RMS error of 1e-5, far below one 8-bit step).
    """
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    if mask is not None:
        diff = diff[np.asarray(mask, dtype=bool)]
    if diff.size == 0:
        raise ValueError("PSNR of an empty region")
    mse = float(np.mean(diff * diff))
    if mse <= 10.0 ** (-PSNR_CAP / 10.0):
        return PSNR_CAP
    return min(PSNR_CAP, -10.0 * math.log10(mse))
