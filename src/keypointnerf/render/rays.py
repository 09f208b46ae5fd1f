"""Camera rays and their near/far distances inside the person's box. Distances are metres along unit rays."""
from __future__ import annotations

import torch

BOX_MARGIN = 0.01   # metres added to every side of the person's box


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


def near_far(origins: torch.Tensor, directions: torch.Tensor, bounds: torch.Tensor, Rt: torch.Tensor,
             znear: float, zfar: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays (P, 3) through the box ``bounds`` (2, 3) widened by 1 cm.

    Where a ray misses the box, or the entry lies closer than camera depth ``znear`` (the exit beyond ``zfar``),
    the distance at which the ray reaches that depth is used instead. -> near (P,), far (P,), hits_box (P,) bool.
    """
    low = bounds[0].to(origins) - BOX_MARGIN
    high = bounds[1].to(origins) + BOX_MARGIN
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t_low, t_high = (low - origins) / safe, (high - origins) / safe
    entry = torch.minimum(t_low, t_high).amax(-1)
    exit_ = torch.maximum(t_low, t_high).amin(-1)
    hits = (exit_ > entry) & (exit_ > 0)
    # distance along a unit ray per metre of camera depth: 1 / (R d).z
    depth_rate = directions @ Rt[:, :3].to(origins)[2]
    at_znear, at_zfar = znear / depth_rate, zfar / depth_rate
    near = torch.where(hits & (entry * depth_rate >= znear), entry, at_znear)
    far = torch.where(hits & (exit_ * depth_rate <= zfar), exit_, at_zfar)
    return near, far, hits
