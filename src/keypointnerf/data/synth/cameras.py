"""A ring of calibrated cameras around a synthetic person, ZJU-MoCap-like (3-4 m away, 1-1.5 m high).

OpenCV convention: ``x_cam = R x_world + t`` (x right, y down, z forward), pixel ``(u, v) ~ K x_cam`` with the
pixel centres at integer coordinates.
"""
from __future__ import annotations

import numpy as np

from ...render.orbit import look_at

#: Fraction of the image height (and width) the person may span in the tightest view, over all frames.
FILL = 0.9


#: World +Z is up in the synthetic scenes (and upwards in every image).
WORLD_UP = np.array([0.0, 0.0, 1.0])


def ring_cameras(rng: np.random.Generator, num_cameras: int, resolution: int,
                 body_points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num_cameras`` cameras evenly spaced on a ring (with a little jitter) around the person.

    Args:
        body_points: (N, 3) world points covering the person over all frames (e.g. subsampled vertices); the
            cameras look at their box centre and the focal length makes them span at most FILL of the image.
    Returns:
        K (C, 3, 3) pixels for a resolution x resolution image, R (C, 3, 3), t (C, 3) metres.
    """
    low, high = body_points.min(axis=0), body_points.max(axis=0)
    centre = (low + high) / 2
    offset = rng.uniform(0, 2 * np.pi)
    Rs, ts = [], []
    for c in range(num_cameras):
        azimuth = offset + 2 * np.pi * c / num_cameras + rng.uniform(-0.08, 0.08)
        distance = rng.uniform(3.2, 3.9)
        height = rng.uniform(1.0, 1.5)
        position = np.array([centre[0] + distance * np.cos(azimuth), centre[1] + distance * np.sin(azimuth), height])
        target = np.array([centre[0], centre[1], centre[2]]) + rng.uniform(-0.04, 0.04, 3)
        Rt = look_at(position, target, WORLD_UP)
        R, t = Rt[:, :3], Rt[:, 3]
        Rs.append(R)
        ts.append(t)
    R, t = np.stack(Rs), np.stack(ts)
    # each camera's focal length makes the person span at most FILL of its image over all frames (ZJU-MoCap's
    # cameras differ in focal length too)
    cam_points = np.einsum("cij,nj->cni", R, body_points) + t[:, None]
    extent = np.abs(cam_points[..., :2] / cam_points[..., 2:3]).max(axis=(1, 2))  # (C,)
    K = np.zeros((num_cameras, 3, 3))
    for c in range(num_cameras):
        f = FILL * (resolution / 2) / float(extent[c]) * rng.uniform(0.94, 1.0)
        K[c] = [[f, 0.0, (resolution - 1) / 2], [0.0, f, (resolution - 1) / 2], [0.0, 0.0, 1.0]]
    return K, R, t
