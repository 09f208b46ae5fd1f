"""Spatial encodings of a query point, per source view (the paper's relative encoding and its ablations).

All encodings use the ``[value, sin(pi 2^l value), cos(pi 2^l value)]`` layout, l = 0..L-1, laid out as
blocks: the raw values, then sin and cos for l = 0, then l = 1, ...
"""
from __future__ import annotations

import math

import torch


def frequency_encode(values: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(..., C) -> (..., C * (1 + 2 * frequencies)) as ``[v, sin(pi v), cos(pi v), sin(2 pi v), ...]`` blocks."""
    blocks = [values]
    for level in range(frequencies):
        scaled = values * (math.pi * 2.0 ** level)
        blocks += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(blocks, dim=-1)


def rel_z_decay(points_cam: torch.Tensor, keypoints_cam: torch.Tensor, frequencies: int,
                sigma: float) -> torch.Tensor:
    """The relative spatial encoding of KeypointNeRF.

    points_cam (V, N, 3) and keypoints_cam (V, K, 3) in camera coordinates (metres) ->
    (V, N, K * (1 + 2 * frequencies)): the depth of each point relative to every keypoint, frequency-encoded and
    damped by ``exp(-|x_c - k_c|^2 / (2 sigma^2))`` of that keypoint. The distances are taken per camera although
    they do not depend on it: world-space distances round differently and move densities by ~1e-4.
    """
    dz = points_cam[..., None, 2] - keypoints_cam[:, None, :, 2]                    # (V, N, K)
    damping = keypoint_damping(points_cam, keypoints_cam, sigma)
    encoded = frequency_encode(dz, frequencies).unflatten(-1, (1 + 2 * frequencies, dz.shape[-1]))
    return (encoded * damping.unsqueeze(-2)).flatten(-2)


def keypoint_damping(points: torch.Tensor, keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """``exp(-|x - k|^2 / (2 sigma^2))`` for points (..., N, 3) and keypoints (..., K, 3) -> (..., N, K)."""
    sq_dist = (points[..., :, None, :] - keypoints[..., None, :, :]).pow(2).sum(-1)
    return torch.exp(-sq_dist / (2.0 * sigma ** 2))


def absolute_xyz(points_world: torch.Tensor, center: torch.Tensor, num_views: int,
                 frequencies: int) -> torch.Tensor:
    """(N, 3) world points -> (V, N, 3 * (1 + 2 F)): the global encoding of the ablation, same for every view."""
    encoded = frequency_encode(points_world - center, frequencies)
    return encoded.unsqueeze(0).expand(num_views, -1, -1)


def camera_xyz(points_cam: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(V, N, 3) camera-space points -> (V, N, 3 * (1 + 2 F))."""
    return frequency_encode(points_cam, frequencies)


def relative_xyz(points_cam: torch.Tensor, keypoints_cam: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(V, N, 3), (V, K, 3) -> (V, N, K * 3 * (1 + 2 F)): offsets to every keypoint, no damping.

    The layout is ``[offsets (K*3), sin(pi offsets) (K*3), cos(...) ...]``, offsets ordered keypoint-major.
    """
    offsets = points_cam[:, :, None, :] - keypoints_cam[:, None, :, :]
    return frequency_encode(offsets.flatten(2), frequencies)
