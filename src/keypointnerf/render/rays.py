"""Camera rays and their near/far distances inside the person's box. Distances are metres along unit rays."""
from __future__ import annotations

import torch

from ..model.keypointnerf import FRUSTUM_MARGIN

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


SILHOUETTE_MARGIN_PX = 2.0   # the silhouette rectangles are widened by this: bilinear support + rounding


def silhouette_rectangles(masks: torch.Tensor, frustum_margin: float = FRUSTUM_MARGIN,
                          margin: float = SILHOUETTE_MARGIN_PX) -> torch.Tensor:
    """(V, 1, H, W) masks -> (V, 4) pixel rectangles ``[u_min, v_min, u_max, v_max]`` around every non-zero mask
    pixel, widened by ``margin``; a view with an empty mask gets an empty rectangle (min > max).

    Masks are sampled with border padding, so a silhouette that touches the image border reaches on to the
    frustum's limit (normalised coordinate ``frustum_margin``): that side is widened by the overhang as well.
    """
    height, width = masks.shape[-2:]
    overhang = (frustum_margin - 1.0) * 0.5 * masks.new_tensor([width - 1, height - 1, width - 1, height - 1])
    rects = []
    for mask in masks[:, 0].gt(0):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        if len(rows) == 0:
            rects.append(masks.new_tensor([1.0, 1.0, -1.0, -1.0]))
            continue
        rect = torch.stack([cols[0], rows[0], cols[-1], rows[-1]]).to(masks.dtype)
        at_border = torch.stack([cols[0] == 0, rows[0] == 0, cols[-1] == width - 1, rows[-1] == height - 1])
        widen = margin + at_border.to(masks.dtype) * overhang
        rects.append(rect + torch.stack([-widen[0], -widen[1], widen[2], widen[3]]))
    return torch.stack(rects)


def rays_meet_silhouettes(origins: torch.Tensor, directions: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
                          P: torch.Tensor, Rt: torch.Tensor, rectangles: torch.Tensor, znear: float) -> torch.Tensor:
    """(R,) bool: False only where no point of the ray between near and far lies in front of depth ``znear`` and
    inside the silhouette rectangle of every view. origins, unit directions (R, 3) and near, far (R,) in world
    metres; P = K [R|t] and Rt (V, 3, 4) world-to-camera; rectangles (V, 4) pixels; znear metres.

    A conservative test of the visual hull: such rays cannot hold a valid sample. The projection of a ray is
    linear in its distance t once the depth is positive, so every condition ``c0 + c1 t >= 0`` bounds t from one
    side and the test intersects intervals.
    """
    # near > far happens (a box exit nearer than znear): the samples still span both, so does the test
    low, high = torch.minimum(near, far), torch.maximum(near, far)

    def constrain(c0: torch.Tensor, c1: torch.Tensor) -> None:
        nonlocal low, high
        bound = -c0 / torch.where(c1 == 0, torch.ones_like(c1), c1)   # a tiny c1 keeps its sign: a far bound
        low = torch.where(c1 > 0, torch.maximum(low, bound), low)
        high = torch.where(c1 < 0, torch.minimum(high, bound), high)
        high = torch.where((c1 == 0) & (c0 < 0), torch.full_like(high, -float("inf")), high)

    for view in range(P.shape[0]):
        cam0, cam1 = origins @ Rt[view, :, :3].T + Rt[view, :, 3], directions @ Rt[view, :, :3].T
        constrain(cam0[:, 2] - znear, cam1[:, 2])                       # in front of the near plane
        h0, h1 = origins @ P[view, :, :3].T + P[view, :, 3], directions @ P[view, :, :3].T
        u_min, v_min, u_max, v_max = rectangles[view].tolist()
        for axis, lowest, highest in ((0, u_min, u_max), (1, v_min, v_max)):
            constrain(h0[:, axis] - lowest * h0[:, 2], h1[:, axis] - lowest * h1[:, 2])
            constrain(highest * h0[:, 2] - h0[:, axis], highest * h1[:, 2] - h1[:, axis])
    slack = 1e-4 * (far - near).abs() + 1e-6   # float rounding of the bounds: err towards keeping a ray
    return low <= high + slack
