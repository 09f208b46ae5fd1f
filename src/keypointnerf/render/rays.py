"""Near/far distances of camera rays inside the person's box, and the conservative visual-hull test of rays.
Distances are metres along unit rays."""
from __future__ import annotations

import torch

from ..geometry import BOX_MARGIN


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
