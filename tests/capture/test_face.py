"""Facial landmarks of own captures: the MediaPipe mapping covers the synthetic landmark set, triangulation
recovers exactly projected landmarks, and (with the ``detect`` extra) the detector's landmarks on synthetic
heads triangulate within a centimetre of the truth."""
from __future__ import annotations

import numpy as np
import pytest

from keypointnerf.capture.face import MEDIAPIPE_FACE_INDEX, triangulate_landmarks
from keypointnerf.data.synth.head import LANDMARK_NAMES


def _projections(subject) -> np.ndarray:
    return np.stack([K.astype(np.float64) @ Rt.astype(np.float64)
                     for K, Rt in (subject.camera(c) for c in range(subject.num_cameras))])


def test_the_mapping_covers_every_landmark_once():
    assert list(MEDIAPIPE_FACE_INDEX) == list(LANDMARK_NAMES)
    indices = list(MEDIAPIPE_FACE_INDEX.values())
    assert len(set(indices)) == len(indices) and all(0 <= i < 468 for i in indices)


def test_exact_detections_triangulate_back(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.normal([0, 0, 1.6], 0.05, (len(LANDMARK_NAMES), 3))
    projections = []
    for angle in np.radians([-60, -20, 20, 60]):
        position = np.array([0.7 * np.sin(angle), -0.7 * np.cos(angle), 1.6])
        forward = (np.array([0, 0, 1.6]) - position) / 0.7
        right = np.cross(forward, [0, 0, -1.0])
        R = np.stack([right, np.cross(forward, right), forward])
        projections.append(np.array([[500.0, 0, 128], [0, 500, 128], [0, 0, 1]]) @ np.c_[R, -R @ position])
    projections = np.stack(projections)
    detections = []
    for P in projections:
        x = np.c_[truth, np.ones(len(truth))] @ P.T
        detections.append(np.c_[x[:, :2] / x[:, 2:], np.ones(len(truth))])
    detections[1] = None                            # no face found in that view
    result = triangulate_landmarks(projections, detections, threshold=4.0)
    assert np.allclose(result.points, truth, atol=1e-6)
    assert not result.candidates[:, 1].any() and result.inliers[:, [0, 2, 3]].all()


def test_detected_landmarks_on_synthetic_heads_are_near_the_truth(tmp_path):
    pytest.importorskip("mediapipe")
    from keypointnerf.capture.face import FaceLandmarkDetector
    from keypointnerf.data.synth import generate
    from keypointnerf.data.zju import ZJUSubject, read_image_file

    generate(tmp_path / "heads", subjects=1, frames=1, cameras=8, resolution=256, seed=5, style="classic",
             subject="head", workers=2, progress=False)
    subject = ZJUSubject(tmp_path / "heads" / "synth_000", downsample=1.0)
    detector = FaceLandmarkDetector()
    try:
        detections = [detector(read_image_file(subject.image_path(0, c))) for c in range(subject.num_cameras)]
    finally:
        detector.close()
    assert sum(d is not None for d in detections) >= 3
    result = triangulate_landmarks(_projections(subject), detections, threshold=8.0)
    error = np.linalg.norm(result.points - subject.keypoints(0), axis=1)
    inner = [LANDMARK_NAMES.index(n) for n in ("nose_tip", "nasion", "eye_inner_left", "eye_inner_right",
                                                "mouth_left", "mouth_right", "upper_lip", "lower_lip", "chin")]
    assert np.isfinite(error[inner]).all() and np.median(error[inner]) < 0.01, dict(zip(LANDMARK_NAMES, error))
