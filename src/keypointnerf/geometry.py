"""Camera geometry every package uses: unit vectors, look-at cameras, pixel grids and camera rays.

Cameras are OpenCV pinhole, world-to-camera: ``x_cam = R x_world + t`` (x right, y down, z forward), metres;
pixel ``(u, v) ~ K x_cam`` with u the column and v the row, centred on the integer coordinates.
"""
from __future__ import annotations

import numpy as np
import torch

#: metres added to every side of the person's box: the rays' near/far box and the mesh export's grid
BOX_MARGIN = 0.01
_DEGENERATE = 1e-6


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` (3,) normalised, as float64 (ValueError when its length is (near) zero or not finite)."""
    v = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm < _DEGENERATE:
        raise ValueError(f"cannot normalise the vector {v}")
    return v / norm


def orthogonal_unit(v: np.ndarray, unit_axis: np.ndarray) -> np.ndarray:
    """The part of ``v`` orthogonal to ``unit_axis``, normalised (ValueError when (anti-)parallel)."""
    v = np.asarray(v, dtype=np.float64)
    return unit(v - (v @ unit_axis) * unit_axis)


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 4) float64 world-to-camera [R|t] of a camera at ``position`` (3,) looking at ``target`` (3,), with the
    world direction ``up`` (3,) pointing up in the image (the image's v axis is -up projected)."""
    forward = unit(np.asarray(target, np.float64) - np.asarray(position, np.float64))
    down = -orthogonal_unit(up, forward)
    right = np.cross(down, forward)          # x = y cross z for a right-handed camera
    R = np.stack([right, down, forward])
    t = -R @ np.asarray(position, np.float64)
    return np.concatenate([R, t[:, None]], axis=1)


def pixel_grid(height: int, width: int, device=None) -> torch.Tensor:
    """All pixels of an image as (H*W, 2) int64 (u, v), row-major (v slowest)."""
    v, u = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def camera_rays(K: torch.Tensor, Rt: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of pixels (P, 2) (u, v) of camera K (3, 3), [R|t] (3, 4) -> origins (P, 3), unit directions (P, 3).

    The ray of pixel (u, v) passes through ``K^-1 [u, v, 1]`` (no half-pixel offset), in world coordinates.
    """
    K, Rt = K.float(), Rt.float()
    R, t = Rt[:, :3], Rt[:, 3]
    homogeneous = torch.cat([pixels.to(K.dtype), torch.ones_like(pixels[:, :1], dtype=K.dtype)], dim=-1)
    directions = (homogeneous @ torch.linalg.inv(K).T) @ R
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origin = -(R.T @ t)
    return origin.expand_as(directions), directions


def scaled_camera(K: np.ndarray, size: tuple[int, int], resolution: int | None) -> tuple[np.ndarray, int, int]:
    """Intrinsics (3, 3) and (height, width) for images whose longer side is ``resolution`` pixels (None = keep
    ``size``); K's first two rows scale with the image, as the reader's downsampling does."""
    height, width = size
    K = np.asarray(K, dtype=np.float64).copy()
    if resolution is None:
        return K, int(height), int(width)
    scale = resolution / max(height, width)
    K[:2] *= scale
    return K, max(1, int(round(height * scale))), max(1, int(round(width * scale)))
