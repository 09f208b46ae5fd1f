"""The one validation of cameras, keypoints and views, shared by the reader (``zju``), ``data check``, ``render``,
``eval`` and ``train``: what cannot be right is a *problem* (the data cannot be used: an error), what is
normal in real rigs but worth knowing is a *warning* (toes or a raised hand outside one camera's image).

Cameras are OpenCV: ``x_cam = R x_world + t`` (metres), ``(u, v) ~ K x_cam``; images (H, W).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError

#: largest |R R^T - I| entry accepted for a rotation (calibration files store a few decimals)
ROTATION_TOLERANCE = 1e-2
#: points closer together than this (metres) in every axis are one point: a placeholder, not a body
MIN_POINT_SPREAD = 1e-3


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a file; UserError saying it is missing or a folder otherwise."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise UserError(f"{path}: {what} file missing")
    return path


def camera_problems(K: np.ndarray, R: np.ndarray) -> list[str]:
    """What is wrong with intrinsics K (3, 3) and rotation R (3, 3) (finite values assumed): [] when usable."""
    problems = []
    fx, fy = float(K[0, 0]), float(K[1, 1])
    if not (fx > 0 and fy > 0):
        problems.append(f"focal lengths must be positive (K[0,0] = {fx:g}, K[1,1] = {fy:g})")
    if not np.allclose(K[2], [0.0, 0.0, 1.0], atol=1e-6):
        problems.append(f"the last row of K must be 0 0 1, not {' '.join(f'{v:g}' for v in K[2])}")
    deviation = float(np.abs(R @ R.T - np.eye(3)).max())
    determinant = float(np.linalg.det(R))
    if deviation > ROTATION_TOLERANCE or determinant <= 0:
        problems.append(f"R is not a rotation (|R R^T - I| up to {deviation:.3g}, det {determinant:.3g}; "
                        f"expected an orthonormal matrix with det +1)")
    return problems


def point_problems(points: np.ndarray, what: str) -> list[str]:
    """What is wrong with (N, 3) points (finite values assumed): all zero, or all in one spot."""
    if points.size and not np.any(points):
        return [f"all {what} are zero (a placeholder, not a body)"]
    if len(points) > 1 and float(np.ptp(points, axis=0).max()) < MIN_POINT_SPREAD:
        return [f"all {len(points)} {what} lie within {MIN_POINT_SPREAD * 1000:g} mm of each other"]
    return []


def view_findings(points: np.ndarray, K: np.ndarray, Rt: np.ndarray, height: int, width: int
                  ) -> tuple[str | None, str | None]:
    """How camera (K, Rt (3, 4)) with (H, W) images sees keypoints (N, 3) -> (problem, warning), either None.

    Problem: the camera faces away (the keypoints' centre is behind it) or no keypoint projects inside its
    image (the person is out of view). Warning: some keypoints project outside (a partial view)."""
    points = np.asarray(points, dtype=np.float64)
    R, t = np.asarray(Rt, np.float64)[:, :3], np.asarray(Rt, np.float64)[:, 3]
    x_cam = points @ R.T + t
    if (points.mean(axis=0) @ R.T + t)[2] <= 0:
        return "faces away from the person (the keypoints' centre is behind the camera)", None
    uv = x_cam @ np.asarray(K, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uv[:, :2] / uv[:, 2:3]
    inside = (x_cam[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    if not inside.any():
        return (f"sees none of the {len(points)} keypoints inside its {width}x{height} image (the person is out "
                f"of view)"), None
    if not inside.all():
        outside = np.flatnonzero(~inside)
        return None, (f"{outside.size} keypoint(s) (indices {outside[:6].tolist()}"
                      f"{'...' if outside.size > 6 else ''}) project outside its {width}x{height} image")
    return None, None

