"""Conversion of detected joints to the 24 SMPL-order keypoints."""
from __future__ import annotations

import numpy as np

from keypointnerf.capture import joints
from keypointnerf.data.zju import ZJUSubject


def standing_skeleton() -> np.ndarray:
    """Detected joints of a person facing -Y (anny's convention), +X the subject's left, +Z up."""
    d = {"l_hip": (0.1, 0, 0.9), "r_hip": (-0.1, 0, 0.9), "l_knee": (0.1, 0, 0.5), "r_knee": (-0.1, 0, 0.5),
         "l_ankle": (0.1, 0, 0.1), "r_ankle": (-0.1, 0, 0.1), "l_shoulder": (0.2, 0, 1.4),
         "r_shoulder": (-0.2, 0, 1.4), "l_elbow": (0.45, 0, 1.4), "r_elbow": (-0.45, 0, 1.4),
         "l_wrist": (0.7, 0, 1.4), "r_wrist": (-0.7, 0, 1.4)}
    out = np.full((len(joints.DETECTED), 3), np.nan)
    for i, name in enumerate(joints.DETECTED):
        if name in d:
            out[i] = d[name]
    return out


def test_body_frame_hand_worked():
    mid_hip, mid_shoulder, up, side, forward, scale = joints.body_frame(standing_skeleton())
    np.testing.assert_allclose(mid_hip, [0, 0, 0.9])
    np.testing.assert_allclose(mid_shoulder, [0, 0, 1.4])
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(side, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(forward, [0, -1, 0], atol=1e-12)  # facing -Y
    np.testing.assert_allclose(scale, [0.5])


def test_offsets_hand_worked():
    offsets = {name: (0.0, 0.0, 0.0) for name in joints.OFFSETS}
    offsets["neck"] = (0.2, 0.0, 0.1)       # 0.2 torso lengths up, 0.1 forward
    offsets["l_collar"] = offsets["r_collar"] = (0.0, 0.3, 0.0)
    smpl = joints.to_smpl(standing_skeleton(), offsets)
    index = joints.SMPL_JOINTS.index
    np.testing.assert_allclose(smpl[index("neck")], [0, -0.05, 1.5])
    np.testing.assert_allclose(smpl[index("l_collar")], [0.15, 0, 1.4])
    np.testing.assert_allclose(smpl[index("r_collar")], [-0.15, 0, 1.4])  # mirrored
    np.testing.assert_allclose(smpl[index("l_hand")], [0.8, 0, 1.4])       # wrist + 0.4 (wrist - elbow)
    np.testing.assert_allclose(smpl[index("l_knee")], [0.1, 0, 0.5])       # limb joints unchanged


def test_detected_toes_and_hands_are_used():
    detected = standing_skeleton()
    index = joints.DETECTED.index
    detected[index("l_toe")] = [0.1, -0.2, 0.02]
    detected[index("r_hand")] = [-0.8, 0.01, 1.35]
    smpl = joints.to_smpl(detected)
    np.testing.assert_allclose(smpl[joints.SMPL_JOINTS.index("l_foot")],
                               np.array([0.1, 0, 0.1]) + joints.TOE_FRACTION * np.array([0, -0.2, -0.08]))
    np.testing.assert_allclose(smpl[joints.SMPL_JOINTS.index("r_hand")], [-0.8, 0.01, 1.35])
    assert np.isfinite(smpl).all()


def test_round_trip_on_synthetic_people(synth_set):
    """The limb joints of true keypoints convert back to all 24 within a few centimetres (feet are the worst:
    without toe detections their direction is guessed from the body's)."""
    true = np.stack([ZJUSubject(synth_set / name, cache_mb=0).keypoints(frame)
                     for name in ("synth_000", "synth_001") for frame in (0, 1)]).astype(np.float64)
    converted = joints.to_smpl(joints.from_smpl(true))
    error = np.linalg.norm(converted - true, axis=-1)
    limbs = [joints.SMPL_JOINTS.index(n) for n in joints.REQUIRED]
    assert error[:, limbs].max() < 1e-6
    assert error.mean() < 0.025, error.mean(axis=0)
    assert np.delete(error, [10, 11], axis=1).max() < 0.08
