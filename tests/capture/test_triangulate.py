"""Robust triangulation against known 3D points: exact without noise, outlier views rejected, too few views."""
from __future__ import annotations

import numpy as np
from test_calibration import ring

from keypointnerf.capture.triangulate import dlt, smooth, triangulate, triangulate_joint


def views(count=6):
    cameras = ring(count)
    return cameras, np.stack([c.projection for c in cameras])


def observe(cameras, points):
    """(V, J, 3) [u, v, 1] exact observations."""
    return np.stack([np.concatenate([c.project(points), np.ones((len(points), 1))], axis=1) for c in cameras])


def test_dlt_exact_and_weights_do_not_move_an_exact_point():
    cameras, P = views(3)
    point = np.array([0.1, -0.2, 1.3])
    uv = observe(cameras, point[None])[:, 0, :2]
    np.testing.assert_allclose(dlt(P, uv), point, atol=1e-9)
    np.testing.assert_allclose(dlt(P, uv, np.array([0.2, 1.0, 0.5])), point, atol=1e-9)


def test_outlier_views_are_rejected():
    rng = np.random.default_rng(0)
    cameras, P = views(6)
    points = rng.uniform([-0.3, -0.3, 0.2], [0.3, 0.3, 1.7], (24, 3))
    observed = observe(cameras, points)
    observed[..., :2] += rng.normal(0, 0.5, observed[..., :2].shape)
    # two views of every joint are wrong by 40-80 pixels (a swapped limb, a false detection)
    wrong = np.stack([rng.choice(6, 2, replace=False) for _ in range(24)])
    for j, (a, b) in enumerate(wrong):
        for v in (a, b):
            observed[v, j, :2] += rng.uniform(40, 80, 2) * rng.choice([-1, 1], 2)
    result = triangulate(P, observed, threshold=8.0)
    error = np.linalg.norm(result.points - points, axis=1)
    assert error.max() < 0.015 and error.mean() < 0.006  # metres; 0.5 px noise is ~4 mm per view at 3 m
    for j, (a, b) in enumerate(wrong):
        assert not result.inliers[j, a] and not result.inliers[j, b] and result.inliers[j].sum() == 4
    assert np.all(result.error < 1.5)
    # plain DLT over all views is centimetres off: the rejection is what makes the difference
    plain = np.stack([dlt(P, observed[:, j, :2]) for j in range(24)])
    assert np.linalg.norm(plain - points, axis=1).mean() > 5 * error.mean()


def test_confidence_weighting_and_low_confidence_ignored():
    cameras, P = views(4)
    point = np.array([0.0, 0.1, 1.0])
    observed = observe(cameras, point[None])[:, 0]
    observed[0, :2] += 30.0  # wrong, but also unconfident: not even a candidate
    observed[0, 2] = 0.1
    got, rms, inliers, candidates = triangulate_joint(P, observed[:, :2], observed[:, 2], threshold=5.0)
    np.testing.assert_allclose(got, point, atol=1e-6)
    assert candidates.tolist() == [False, True, True, True] and inliers.tolist() == [False, True, True, True]
    assert rms < 1e-6


def test_fewer_than_two_views_is_nan():
    cameras, P = views(4)
    observed = observe(cameras, np.array([[0.0, 0.0, 1.0]]))[:, 0]
    observed[1:, 2] = 0.0  # seen by one camera only
    got, rms, inliers, _ = triangulate_joint(P, observed[:, :2], observed[:, 2], threshold=5.0)
    assert np.all(np.isnan(got)) and np.isnan(rms) and not inliers.any()
    # two views that disagree by far more than the threshold: no agreement either
    observed[:, 2] = 0.0
    observed[:2, 2] = 1.0
    observed[1, :2] += 100
    got, *_ = triangulate_joint(P, observed[:, :2], observed[:, 2], threshold=5.0)
    assert np.all(np.isnan(got))


def test_smoothing_keeps_a_constant_and_reduces_noise():
    rng = np.random.default_rng(1)
    constant = np.broadcast_to(np.array([0.1, 0.2, 0.3]), (20, 2, 3)).copy()
    np.testing.assert_allclose(smooth(constant, 2.0), constant, atol=1e-12)
    noisy = constant + rng.normal(0, 0.01, constant.shape)
    noisy[5, 1] = np.nan
    out = smooth(noisy, 2.0)
    assert np.isnan(out[5, 1]).all() and np.isfinite(out[4, 1]).all()
    finite = np.isfinite(out).all(-1)
    assert np.abs(out - constant)[finite].std() < 0.5 * np.abs(noisy - constant)[finite].std()
    np.testing.assert_array_equal(smooth(noisy, 0.0)[finite], noisy[finite])
