"""Robust multi-view triangulation of 2D keypoints.

For one joint seen in V views (undistorted pixels ``uv`` (V, 2), confidences ``w`` (V,)):

1. candidates: views with confidence >= ``min_confidence``; fewer than 2 -> not triangulated (NaN);
2. hypotheses (RANSAC over view pairs, exhaustive for small rigs): every pair of candidates is triangulated
   (DLT); a view is an inlier of a hypothesis when the point is in front of it and reprojects within
   ``threshold`` pixels; the hypothesis with the largest summed inlier confidence wins (ties: smaller error);
3. the point is the confidence-weighted DLT over the winner's inliers (rows scaled by the confidence), and the
   inliers are recomputed once with it. Views outside are outliers (a wrong detection, the other leg).

The reprojection error reported is the confidence-weighted RMS over the inlier views, in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

#: Confidence below which a 2D keypoint is ignored.
DEFAULT_MIN_CONFIDENCE = 0.3
#: Maximum number of view pairs tried per joint (all of them below this; a fixed random subset above).
MAX_PAIRS = 300


@dataclass
class Triangulated:
    """Points (J, 3) metres (NaN where fewer than 2 views agree), error (J,) RMS reprojection pixels over the
    inlier views (NaN likewise), inliers (J, V) bool, candidates (J, V) bool (confident detections)."""

    points: np.ndarray
    error: np.ndarray
    inliers: np.ndarray
    candidates: np.ndarray


def dlt(projections: np.ndarray, uv: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted DLT: the 3D point (..., 3) from projections (..., V, 3, 4), pixels (..., V, 2) and weights
    (..., V) (default 1). Each view adds the rows ``u P[2] - P[0]`` and ``v P[2] - P[1]``, normalised and scaled
    by its weight; the point is the right singular vector of the smallest singular value."""
    P = np.asarray(projections, np.float64)
    uv = np.asarray(uv, np.float64)
    w = np.ones(uv.shape[:-1]) if weights is None else np.asarray(weights, np.float64)
    rows = np.stack([uv[..., 0:1] * P[..., 2, :] - P[..., 0, :], uv[..., 1:2] * P[..., 2, :] - P[..., 1, :]],
                    axis=-2)  # (..., V, 2, 4)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
    rows = rows * w[..., None, None]
    A = rows.reshape(rows.shape[:-3] + (-1, 4))
    _, _, vt = np.linalg.svd(A)
    X = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return X[..., :3] / X[..., 3:4]


def reproject(projections: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (..., V, 2) and depths (..., V) of points (..., 3) in every view (..., V, 3, 4)."""
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    x = np.einsum("...vij,...j->...vi", projections, homogeneous)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x[..., :2] / x[..., 2:3], x[..., 2]


def _inliers(projections, uv, candidates, point, threshold):
    pixels, depth = reproject(projections, point)
    error = np.linalg.norm(pixels - uv, axis=-1)
    return candidates & (depth > 0) & (error < threshold), error


def triangulate_joint(projections: np.ndarray, uv: np.ndarray, confidence: np.ndarray, threshold: float,
                      min_confidence: float = DEFAULT_MIN_CONFIDENCE, rng: np.random.Generator | None = None
                      ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """One joint: projections (V, 3, 4), uv (V, 2) undistorted pixels, confidence (V,). Returns (point (3,),
    RMS error px, inliers (V,), candidates (V,)); the point is NaN when fewer than 2 views agree."""
    candidates = (confidence >= min_confidence) & np.all(np.isfinite(uv), axis=-1)
    nothing = (np.full(3, np.nan), float("nan"), np.zeros(len(uv), bool), candidates)
    views = np.flatnonzero(candidates)
    if len(views) < 2:
        return nothing
    pairs = np.array(list(combinations(views, 2)))
    if len(pairs) > MAX_PAIRS:
        rng = rng or np.random.default_rng(0)
        pairs = pairs[rng.choice(len(pairs), MAX_PAIRS, replace=False)]
    hypotheses = dlt(projections[pairs], uv[pairs], confidence[pairs])  # (P, 3)
    pixels, depth = reproject(projections[None], hypotheses)  # (P, V, 2), (P, V)
    error = np.linalg.norm(pixels - uv[None], axis=-1)
    inside = candidates[None] & (depth > 0) & (error < threshold) & np.all(np.isfinite(hypotheses), -1)[:, None]
    score = (inside * confidence[None]).sum(axis=1)
    mean_error = np.where(inside, error, 0).sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
    best = np.lexsort((mean_error, -score))[0]
    inliers = inside[best]
    if inliers.sum() < 2:
        return nothing
    for _ in range(2):  # refit on the inliers, then take the inliers of the refit
        point = dlt(projections[inliers], uv[inliers], confidence[inliers])
        refit, err = _inliers(projections, uv, candidates, point, threshold)
        if refit.sum() < 2 or np.array_equal(refit, inliers):
            break
        inliers = refit
    point = dlt(projections[inliers], uv[inliers], confidence[inliers])
    _, err = _inliers(projections, uv, candidates, point, threshold)
    weights = confidence[inliers]
    rms = float(np.sqrt((weights * err[inliers] ** 2).sum() / weights.sum()))
    return point, rms, inliers, candidates


def triangulate(projections: np.ndarray, keypoints: np.ndarray, threshold: float,
                min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Triangulated:
    """Every joint of one frame: projections (V, 3, 4), keypoints (V, J, 3) [u, v, confidence] in undistorted
    pixels (confidence 0 = not seen)."""
    views, joints = keypoints.shape[:2]
    points = np.full((joints, 3), np.nan)
    error = np.full(joints, np.nan)
    inliers = np.zeros((joints, views), bool)
    candidates = np.zeros((joints, views), bool)
    for j in range(joints):
        points[j], error[j], inliers[j], candidates[j] = triangulate_joint(
            projections, keypoints[:, j, :2], keypoints[:, j, 2], threshold, min_confidence)
    return Triangulated(points, error, inliers, candidates)


def smooth(points: np.ndarray, sigma: float) -> np.ndarray:
    """Temporal Gaussian smoothing of a sequence (F, J, 3) with ``sigma`` frames (0: unchanged); NaN entries
    are skipped (each output is the weighted mean of the finite neighbours) and stay NaN."""
    if sigma <= 0:
        return points.copy()
    frames = points.shape[0]
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    finite = np.isfinite(points).all(axis=-1)
    filled = np.where(finite[..., None], points, 0.0)
    out = np.full_like(points, np.nan)
    for f in range(frames):
        index = f + offsets
        valid = (index >= 0) & (index < frames)
        w = kernel[valid][:, None] * finite[index[valid]]  # (K, J)
        total = w.sum(axis=0)
        mean = (w[..., None] * filled[index[valid]]).sum(axis=0) / np.maximum(total, 1e-12)[:, None]
        out[f] = np.where(finite[f][:, None], mean, np.nan)
    return out
