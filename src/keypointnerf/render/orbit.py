"""Cameras on a circle around a person (360-degree orbit videos) and the body's up / facing directions.

Cameras are OpenCV pinhole, world-to-camera: ``x_cam = R x_world + t`` (x right, y down, z forward), metres.

Which way is "up" and "front"
-----------------------------
The two data sources disagree on the body model's canonical frame: SMPL fits (ZJU-MoCap) are +Y up and face +Z,
anny fits (the synthetic sets, see ``data/synth/body.py``) are +Z up and face -Y; in both +X is the subject's left.
``params/<i>.npy``'s ``Rh`` rotates that canonical frame into the world, so reading it needs to know which body
model made the file. The 24 keypoints, however, are in SMPL joint order for both sources, so
:func:`body_frame` derives the directions from them (one rule for every data set):

* up = pelvis (0) -> neck (12), normalised;
* facing = (left hip (1) - right hip (2)) x up (left x up is the front for a right-handed body frame: SMPL
  X x Y = +Z, anny X x Z = -Y), made orthogonal to up.

``Rh`` is used only to check the result (:func:`rh_body_frame`, canonical frame picked from the keys of the
params file) and as the fallback when the keypoints are degenerate (coincident hips, hips along the spine) or
are not the 24 body joints (another keypoint set, such as facial landmarks: ``Rh`` alone gives the frame).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UserError
from ..geometry import look_at, orthogonal_unit, unit

PELVIS, LEFT_HIP, RIGHT_HIP, NECK = 0, 1, 2, 12
#: canonical (up, facing) of the body models in their own frame
CANONICAL_FRAMES = {
    "smpl": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "anny": (np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])),
}
def orbit_azimuths_deg(count: int, arc_deg: float = 360.0) -> list[float]:
    """Azimuths (degrees, 0 = in front, positive towards the subject's left) of ``count`` orbit cameras: the full
    circle in steps of 360 / count, or for an arc below 360 degrees ``count`` (>= 2) evenly spaced from -arc/2 to
    +arc/2, both ends included (a sweep in front of a face)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not 0 < arc_deg <= 360:
        raise ValueError(f"arc must be in (0, 360] degrees, got {arc_deg}")
    if arc_deg == 360:
        return [360.0 * k / count for k in range(count)]
    if count < 2:
        raise ValueError(f"an arc needs at least 2 cameras, got {count}")
    return [-arc_deg / 2 + arc_deg * k / (count - 1) for k in range(count)]


def orbit_cameras(center, up, forward, count: int, radius_m: float, elevation_deg: float = 0.0,
                  K=None, arc_deg: float = 360.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` cameras evenly spaced on a circle (or an arc of it) around ``center``, all looking at it.

    Args:
        center: (3,) world point the cameras look at (metres).
        up: (3,) the body's up direction (any length); the circle lies in the plane orthogonal to it and
            images are upright with respect to it.
        forward: (3,) the direction the body faces; only its part orthogonal to ``up`` is used. The first camera
            stands in front of the body (at ``center + radius * forward`` when the elevation is 0) and the next
            ones follow towards the subject's left (counter-clockwise seen from above).
        count: number of cameras (>= 1); consecutive ones are 360 / count degrees apart.
        radius_m: distance of every camera from ``center`` (metres, > 0).
        elevation_deg: angle of the cameras above the plane orthogonal to ``up`` through ``center``
            (|elevation| < 90; negative = below).
        K: (3, 3) intrinsics in pixels given to every camera (copied).
        arc_deg: 360 for the whole circle, less for an arc centred on ``forward``
            (see :func:`orbit_azimuths_deg`).
    Returns:
        list of (K (3, 3), Rt (3, 4)) float64 numpy arrays, world-to-camera.
    """
    azimuths = orbit_azimuths_deg(count, arc_deg)
    if not radius_m > 0:
        raise ValueError(f"radius must be positive, got {radius_m}")
    if not abs(elevation_deg) < 90:
        raise ValueError(f"elevation must lie strictly between -90 and 90 degrees, got {elevation_deg}")
    if K is None:
        raise ValueError("K (3, 3) is required")
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    center = np.asarray(center, dtype=np.float64).reshape(3)
    up = unit(np.asarray(up, dtype=np.float64).reshape(3))
    front = orthogonal_unit(np.asarray(forward, dtype=np.float64).reshape(3), up)
    left = np.cross(up, front)                     # the subject's left (SMPL: Y x Z = +X)
    elevation = math.radians(elevation_deg)
    cameras = []
    for azimuth_deg in azimuths:
        azimuth = math.radians(azimuth_deg)
        horizontal = math.cos(azimuth) * front + math.sin(azimuth) * left
        position = center + radius_m * (math.cos(elevation) * horizontal + math.sin(elevation) * up)
        cameras.append((K.copy(), look_at(position, center, up)))
    return cameras


# ----------------------------------------------------------------------------------------------- body frame
def keypoint_body_frame(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up and facing unit vectors (3,) of a body from its (24, 3) SMPL-order keypoints (see the module docstring).
    Raises ValueError when the keypoints are degenerate or not 24."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (24, 3):
        raise ValueError(f"{len(keypoints)} keypoints are not the 24 SMPL-order body joints")
    up = unit(keypoints[NECK] - keypoints[PELVIS])
    left = keypoints[LEFT_HIP] - keypoints[RIGHT_HIP]
    facing = orthogonal_unit(np.cross(left, up), up)
    return up, facing


def params_convention(params: dict[str, Any]) -> str:
    """``"anny"`` for the synthetic generator's params files (they carry ``anny_*`` entries), else ``"smpl"``."""
    return "anny" if any(str(key).startswith("anny_") for key in params) else "smpl"


def rh_body_frame(rotation: np.ndarray, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """Up and facing (3,) in world coordinates from the global rotation ``R(Rh)`` (3, 3) and the body model's
    canonical frame (``"smpl"``: +Y up, faces +Z; ``"anny"``: +Z up, faces -Y)."""
    up, facing = CANONICAL_FRAMES[convention]
    rotation = np.asarray(rotation, dtype=np.float64)
    return rotation @ up, rotation @ facing


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(unit(a) @ unit(b), -1.0, 1.0))))


def body_frame(subject, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """The body's up and facing directions (3,) float64 unit vectors in world coordinates (facing orthogonal to
    up) for one frame of a ``ZJUSubject``: from the keypoints, ``Rh`` as the fallback (module docstring)."""
    up, facing, _ = describe_body_frame(subject, frame)
    return up, facing


def describe_body_frame(subject, frame: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`body_frame` plus how it was found.

    Returns:
        up (3,), facing (3,), and ``info``: ``source``
        ("keypoints" or "Rh"), ``convention`` of the params file, and when both are available
        ``rh_up_angle_deg`` / ``rh_facing_angle_deg``, the angles between the keypoint estimate and ``Rh``'s
        (large values flag odd keypoints or an unexpected params convention; nothing is changed).
    """
    info: dict[str, Any] = {}
    rh_frame = None
    try:
        params = subject.body_params(frame)
        convention = params_convention(params)
        rh_frame = rh_body_frame(subject.body_orientation(frame), convention)
        info["convention"] = convention
    except Exception as exc:  # noqa: BLE001 - Rh is optional here: only a check and a fallback
        info["rh_error"] = str(exc)
    try:
        up, facing = keypoint_body_frame(subject.keypoints(frame))
        info["source"] = "keypoints"
    except ValueError as exc:
        if rh_frame is None:
            raise UserError(f"{subject.keypoints_path(frame)}: cannot tell the body's up and facing directions "
                            f"({exc}) and {subject.params_path(frame)} gives no usable Rh "
                            f"({info.get('rh_error')})") from None
        up = unit(rh_frame[0])
        facing = orthogonal_unit(rh_frame[1], up)
        info["source"] = "Rh"
        return up, facing, info
    if rh_frame is not None:
        info["rh_up_angle_deg"] = round(_angle_deg(up, rh_frame[0]), 2)
        info["rh_facing_angle_deg"] = round(_angle_deg(facing, rh_frame[1]), 2)
    return up, facing, info
