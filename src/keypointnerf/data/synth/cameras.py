"""Rigs of calibrated cameras around a synthetic person.

OpenCV convention: ``x_cam = R x_world + t`` (x right, y down, z forward), pixel ``(u, v) ~ K x_cam`` with the
pixel centres at integer coordinates.

Two rig families:

- ``ring`` (the ``classic`` style): ZJU-MoCap-like, evenly spaced (a little jitter) 3.2-3.9 m away, 1-1.5 m high,
  square images, the person spanning up to 90% of the tightest view;
- ``varied``: every camera 2.7-4.3 m away (a per-rig mean, +-10% per camera; moved along its line of sight where
  needed to keep the person within :data:`DEPTH_RANGE`) and 0.4-2.3 m high, looking at a point
  jittered around the person (tilt), rolled up to +-4 degrees, spaced irregularly around the ring (up to +-35% of
  the even spacing, the order kept), principal point up to 6% of the image off centre, the person spanning 45-92%
  of the image (per rig, +-8% per camera), and one image size per rig drawn from :data:`IMAGE_SIZES` (scaled
  with the resolution).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import look_at

RIG_FAMILIES = ("ring", "varied")
#: Fraction of the image height (and width) the person may span in the tightest view, over all frames (``ring``).
FILL = 0.9
#: Stored (width, height) sizes of the ``varied`` rigs (the reader halves them); portrait, square, landscape.
IMAGE_SIZES = ((512, 512), (384, 512), (448, 576), (512, 384), (640, 480), (576, 448))

#: Camera depths (metres) every point of the person keeps in ``varied`` rigs: the model's default znear / zfar
#: (2 m, 5 m) less the 0.3 m over which its view weights fade out (points nearer than znear are invalid).
DEPTH_RANGE = (2.3, 4.7)

#: World +Z is up in the synthetic scenes (and upwards in every image).
WORLD_UP = np.array([0.0, 0.0, 1.0])


@dataclass
class Rig:
    """C cameras: K (C, 3, 3) pixels, R (C, 3, 3), t (C, 3) metres; every image is width x height pixels."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    settings: dict  # the drawn rig parameters, for the subject's metadata


def roll(Rt: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a world-to-camera [R|t] about the camera's optical axis."""
    c, s = np.cos(angle), np.sin(angle)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return roll @ Rt


def focal_for_fill(R: np.ndarray, t: np.ndarray, body_points: np.ndarray, width: int, height: int,
                    principal: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """(C,) focal lengths (pixels) making the person span ``fill`` of the image in the tighter direction, measured
    from the principal point to the far edge over all frames."""
    cam = np.einsum("cij,nj->cni", R, body_points) + t[:, None]
    x, y = cam[..., 0] / cam[..., 2], cam[..., 1] / cam[..., 2]  # (C, N) normalised coordinates
    half = []
    for axis_values, size, centre in ((x, width, principal[:, 0]), (y, height, principal[:, 1])):
        # the largest focal length keeping every point inside fill of the image on both sides of the centre
        room_low = centre - (1 - fill) * size / 2
        room_high = (size - 1) - centre - (1 - fill) * size / 2
        low = -axis_values.min(axis=1)
        high = axis_values.max(axis=1)
        half.append(np.minimum(room_low / np.maximum(low, 1e-6), room_high / np.maximum(high, 1e-6)))
    return np.minimum(*half)


def keep_within_depths(position: np.ndarray, forward: np.ndarray, points: np.ndarray,
                       depth_range: tuple[float, float]) -> np.ndarray:
    """The camera ``position`` (3,) moved along its unit viewing direction ``forward`` (3,) so that every one of
    ``points`` (N, 3) lies ``depth_range`` (near, far) metres deep, where that is possible."""
    depths = (points - position) @ forward
    return position - forward * (max(0.0, depth_range[0] - depths.min()) - max(0.0, depths.max() - depth_range[1]))


def jittered_principal_points(rng: np.random.Generator, num_cameras: int, width: int, height: int,
                              jitter: float) -> np.ndarray:
    """(C, 2) principal points up to ``jitter`` of the image size off its centre, pixels."""
    return np.stack([(width - 1) / 2 + rng.uniform(-jitter, jitter, num_cameras) * width,
                     (height - 1) / 2 + rng.uniform(-jitter, jitter, num_cameras) * height], axis=1)


def intrinsics(focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """(C, 3, 3) pinhole intrinsics from focal lengths (C,) and principal points (C, 2), pixels."""
    K = np.zeros((len(focal), 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, :2, 2] = principal
    K[:, 2, 2] = 1.0
    return K


def ring_cameras(rng: np.random.Generator, num_cameras: int, resolution: int, body_points: np.ndarray) -> Rig:
    """The ``ring`` family: ``num_cameras`` cameras evenly spaced on a ring (with a little jitter).

    Args:
        body_points: (N, 3) world points covering the person over all frames (e.g. subsampled vertices); the
            cameras look at their box centre and the focal length makes them span at most FILL of the image.
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
        Rs.append(Rt[:, :3])
        ts.append(Rt[:, 3])
    R, t = np.stack(Rs), np.stack(ts)
    # each camera's focal length makes the person span at most FILL of its image over all frames (ZJU-MoCap's
    # cameras differ in focal length too)
    cam_points = np.einsum("cij,nj->cni", R, body_points) + t[:, None]
    extent = np.abs(cam_points[..., :2] / cam_points[..., 2:3]).max(axis=(1, 2))  # (C,)
    K = np.zeros((num_cameras, 3, 3))
    for c in range(num_cameras):
        f = FILL * (resolution / 2) / float(extent[c]) * rng.uniform(0.94, 1.0)
        K[c] = [[f, 0.0, (resolution - 1) / 2], [0.0, f, (resolution - 1) / 2], [0.0, 0.0, 1.0]]
    return Rig(K=K, R=R, t=t, width=resolution, height=resolution, settings={"family": "ring", "fill": FILL})


def varied_cameras(rng: np.random.Generator, num_cameras: int, resolution: int, body_points: np.ndarray) -> Rig:
    """The ``varied`` family (see the module docstring); ``body_points`` as for :func:`ring_cameras`; the image
    sizes of :data:`IMAGE_SIZES` are for ``resolution`` 512 and scale with it (multiples of 4 pixels)."""
    low, high = body_points.min(axis=0), body_points.max(axis=0)
    centre = (low + high) / 2
    width, height = (4 * round(side * resolution / 512 / 4) for side in IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))])
    distance_mean = rng.uniform(2.7, 4.3)
    height_low = rng.uniform(0.4, 1.6)
    height_high = min(2.3, height_low + rng.uniform(0.1, 0.9))
    fill_mean = rng.uniform(0.45, 0.92)
    spacing_jitter = rng.uniform(0.0, 0.35)
    offset = rng.uniform(0, 2 * np.pi)
    Rs, ts = [], []
    for c in range(num_cameras):
        azimuth = offset + 2 * np.pi * (c + rng.uniform(-spacing_jitter, spacing_jitter)) / num_cameras
        distance = distance_mean * rng.uniform(0.9, 1.1)
        position = np.array([centre[0] + distance * np.cos(azimuth), centre[1] + distance * np.sin(azimuth),
                             rng.uniform(height_low, height_high)])
        target = centre + np.array([*rng.uniform(-0.1, 0.1, 2), rng.uniform(-0.25, 0.25)])
        forward = (target - position) / np.linalg.norm(target - position)
        position = keep_within_depths(position, forward, body_points, DEPTH_RANGE)
        Rt = roll(look_at(position, target, WORLD_UP), np.radians(rng.uniform(-4, 4)))
        Rs.append(Rt[:, :3])
        ts.append(Rt[:, 3])
    R, t = np.stack(Rs), np.stack(ts)
    principal = jittered_principal_points(rng, num_cameras, width, height, 0.06)
    fill = np.clip(fill_mean * rng.uniform(0.92, 1.08, num_cameras), 0.3, 0.95)
    K = intrinsics(focal_for_fill(R, t, body_points, width, height, principal, fill), principal)
    settings = {"family": "varied", "distance_m": round(float(distance_mean), 3),
                "height_m": [round(float(height_low), 3), round(float(height_high), 3)],
                "fill": round(float(fill_mean), 3), "spacing_jitter": round(float(spacing_jitter), 3),
                "image_size": [int(width), int(height)]}
    return Rig(K=K, R=R, t=t, width=int(width), height=int(height), settings=settings)


def sample_rig(rng: np.random.Generator, family: str, num_cameras: int, resolution: int,
               body_points: np.ndarray) -> Rig:
    """A rig of ``family`` (``resolution`` is the square image side of ``ring`` rigs)."""
    if family == "ring":
        return ring_cameras(rng, num_cameras, resolution, body_points)
    if family == "varied":
        return varied_cameras(rng, num_cameras, resolution, body_points)
    raise ValueError(f"unknown rig family {family!r}; expected one of {', '.join(RIG_FAMILIES)}")
