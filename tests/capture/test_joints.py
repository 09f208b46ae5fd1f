"""Conversion of detected joints to the 24 SMPL-order keypoints (the joint regressor)."""
from __future__ import annotations

import numpy as np
import pytest

from keypointnerf.capture import joints
from keypointnerf.data.zju import ZJUSubject

INDEX = joints.SMPL_JOINTS.index


def standing_skeleton() -> np.ndarray:
    """Detected joints of a person facing -Y (anny's convention), +X the subject's left, +Z up; the optional
    joints NaN."""
    d = {"l_hip": (0.1, 0, 0.9), "r_hip": (-0.1, 0, 0.9), "l_knee": (0.1, 0, 0.5), "r_knee": (-0.1, 0, 0.5),
         "l_ankle": (0.1, 0, 0.1), "r_ankle": (-0.1, 0, 0.1), "l_shoulder": (0.2, 0, 1.4),
         "r_shoulder": (-0.2, 0, 1.4), "l_elbow": (0.45, 0, 1.4), "r_elbow": (-0.45, 0, 1.4),
         "l_wrist": (0.7, 0, 1.4), "r_wrist": (-0.7, 0, 1.4)}
    out = np.full((len(joints.DETECTED), 3), np.nan)
    for i, name in enumerate(joints.DETECTED):
        if name in d:
            out[i] = d[name]
    return out


def hand_made_regressor() -> joints.JointRegressor:
    """A symmetric regressor: every keypoint at the mid-hip, except the pelvis (0.1 torso lengths forward), the
    collars (between a shoulder and the mid-shoulder, 0.2 up) and, in the variants with a face, the head (the
    nose)."""
    weights, offsets = {}, {}
    for groups in joints.VARIANTS:
        inputs = joints.variant_inputs(groups)
        w = np.zeros((24, len(inputs)))
        o = np.zeros((24, 3))
        w[:, inputs.index("l_hip")] = w[:, inputs.index("r_hip")] = 0.5
        o[INDEX("pelvis")] = (0.0, 0.0, 0.1)
        for side, other in (("l", "r"), ("r", "l")):
            row = INDEX(f"{side}_collar")
            w[row] = 0
            w[row, inputs.index(f"{side}_shoulder")] = 0.75
            w[row, inputs.index(f"{other}_shoulder")] = 0.25
            o[row] = (0.2, 0.0, 0.0)
        if "face" in groups:
            w[INDEX("head")] = 0
            w[INDEX("head"), inputs.index("nose")] = 1
        weights[joints.variant_name(groups)], offsets[joints.variant_name(groups)] = w, o
    return joints.JointRegressor(weights, offsets)


def test_body_frame_hand_worked():
    mid_hip, mid_shoulder, up, side, forward, scale = joints.body_frame(standing_skeleton())
    np.testing.assert_allclose(mid_hip, [0, 0, 0.9])
    np.testing.assert_allclose(mid_shoulder, [0, 0, 1.4])
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(side, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(forward, [0, -1, 0], atol=1e-12)  # facing -Y
    np.testing.assert_allclose(scale, [0.5])


def test_regressor_hand_worked_and_variant_choice():
    regressor = hand_made_regressor()
    detected = standing_skeleton()
    smpl = joints.to_smpl(detected, regressor)
    np.testing.assert_allclose(smpl[INDEX("pelvis")], [0, -0.05, 0.9])       # 0.1 x 0.5 m forward (-Y)
    np.testing.assert_allclose(smpl[INDEX("l_collar")], [0.1, 0, 1.5])       # 0.75 * 0.2 + 0.25 * -0.2; 0.1 up
    np.testing.assert_allclose(smpl[INDEX("r_collar")], [-0.1, 0, 1.5])
    np.testing.assert_allclose(smpl[INDEX("head")], [0, 0, 0.9])             # no face: the limbs variant
    # with the whole face, the face variant; with part of it, the limbs variant again
    face = {"nose": (0, -0.1, 1.6), "l_eye": (0.03, -0.08, 1.65), "r_eye": (-0.03, -0.08, 1.65),
            "l_ear": (0.07, 0, 1.62), "r_ear": (-0.07, 0, 1.62)}
    for name, point in face.items():
        detected[joints.DETECTED.index(name)] = point
    np.testing.assert_allclose(joints.to_smpl(detected, regressor)[INDEX("head")], [0, -0.1, 1.6])
    detected[joints.DETECTED.index("r_ear")] = np.nan
    np.testing.assert_allclose(joints.to_smpl(detected, regressor)[INDEX("head")], [0, 0, 0.9])
    # frames of a sequence choose their variants independently
    both = np.stack([standing_skeleton(), detected])
    detected[joints.DETECTED.index("r_ear")] = face["r_ear"]
    both[1] = detected
    np.testing.assert_allclose(joints.to_smpl(both, regressor)[:, INDEX("head")], [[0, 0, 0.9], [0, -0.1, 1.6]])


def test_regressor_is_unchanged_by_moving_turning_and_scaling_the_person():
    regressor = joints.shipped_regressor()
    rng = np.random.default_rng(3)
    detected = standing_skeleton()
    detected[len(joints.REQUIRED):] = rng.normal(0, 0.1, (len(joints.DETECTED) - len(joints.REQUIRED), 3)) + \
        (0, 0, 1.2)
    angle = 0.7
    R = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = 1.3 * detected @ R.T + (2.0, -1.0, 0.5)
    np.testing.assert_allclose(joints.to_smpl(moved, regressor),
                               1.3 * joints.to_smpl(detected, regressor) @ R.T + (2.0, -1.0, 0.5), atol=1e-9)


def test_fit_recovers_a_regressor():
    """Bodies made by a known symmetric regressor: the fit (no noise) reproduces its keypoints on other bodies."""
    truth = hand_made_regressor()
    rng = np.random.default_rng(0)

    base = standing_skeleton()
    base[len(joints.REQUIRED):] = rng.normal(0, 0.1, (len(joints.DETECTED) - len(joints.REQUIRED), 3))

    def bodies(count):
        detected = base[None] + rng.normal(0, 0.05, (count, len(joints.DETECTED), 3))
        return detected, joints.to_smpl(detected, truth)

    fitted = joints.fit_regressor(*bodies(200), noise=0.0, ridge=1e-9)
    detected, expected = bodies(20)
    np.testing.assert_allclose(joints.to_smpl(detected, fitted), expected, atol=1e-6)
    for name, weights in fitted.weights.items():
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-9)


def test_shipped_regressor_file(tmp_path):
    regressor = joints.shipped_regressor()
    for groups in joints.VARIANTS:
        weights = regressor.weights[joints.variant_name(groups)]
        assert weights.shape == (24, len(joints.variant_inputs(groups)))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    # left/right symmetric: a mirrored body gives mirrored keypoints
    detected = standing_skeleton() + np.random.default_rng(1).normal(0, 0.03, (len(joints.DETECTED), 3))
    np.testing.assert_allclose(joints.to_smpl(joints.mirrored(detected, joints.DETECTED), regressor),
                               joints.mirrored(joints.to_smpl(detected, regressor), joints.SMPL_JOINTS), atol=2e-3)
    regressor.save(tmp_path / "copy.npz")
    loaded = joints.JointRegressor.load(tmp_path / "copy.npz")
    np.testing.assert_array_equal(loaded.weights["limbs+face"], regressor.weights["limbs+face"])
    np.savez(tmp_path / "broken.npz", **{"limbs/weights": np.zeros((24, 3))})
    with pytest.raises(ValueError, match="variant 'limbs"):
        joints.JointRegressor.load(tmp_path / "broken.npz")


@pytest.mark.parametrize("groups", joints.VARIANTS)
def test_shipped_regressor_on_synthetic_people(synth_set, groups):
    """Where a COCO detector puts the joints of the test set's people (anny's COCO regressor on their meshes)
    -> within 2 cm of their true 24 keypoints on average with every variant (people the fit never saw)."""
    from keypointnerf.capture.synthetic import detector_joints
    subjects = [ZJUSubject(synth_set / name, cache_mb=0) for name in ("synth_000", "synth_001")]
    true = np.stack([s.keypoints(f) for s in subjects for f in s.frames]).astype(np.float64)
    detected = np.stack([detector_joints(s.vertices(f)) for s in subjects for f in s.frames])
    for group, names in joints.GROUPS.items():
        if group not in groups:
            detected[:, [joints.DETECTED.index(n) for n in names]] = np.nan
    error = np.linalg.norm(joints.to_smpl(detected) - true, axis=-1)
    assert error.mean() < 0.02 and error.max() < 0.08, error.mean(axis=0)
    # taking the detector's limb joints as the keypoints would be worse
    limbs = [INDEX(n) for n in joints.REQUIRED]
    as_detected = np.linalg.norm(detected[:, :len(joints.REQUIRED)] - true[:, limbs], axis=-1).mean()
    assert error[:, limbs].mean() < as_detected
