"""From detected body keypoints (3D, triangulated) to the 24 SMPL-order keypoints the model uses.

The detected set (:data:`DETECTED`) is what 2D detectors give: hips, knees, ankles, shoulders, elbows, wrists
(the "limb" joints), and when available a toe tip and a hand point per side. The 24 keypoints are those of the
synthetic people (``keypointnerf.data.synth.body.SMPL_JOINT_BONES``) and of ZJU-MoCap's ``joints3d``, in SMPL
order::

    0 pelvis   1 l_hip  2 r_hip  3 spine1  4 l_knee  5 r_knee  6 spine2  7 l_ankle  8 r_ankle  9 spine3
    10 l_foot 11 r_foot 12 neck 13 l_collar 14 r_collar 15 head 16 l_shoulder 17 r_shoulder 18 l_elbow
    19 r_elbow 20 l_wrist 21 r_wrist 22 l_hand 23 r_hand

Mapping: each SMPL joint is an anchor made of detected joints plus an offset in the body frame, scaled by the
torso length ``s = |mid_shoulder - mid_hip|``::

    joint = anchor + s * (a * up + b * side + c * forward)

with ``up = mid_shoulder - mid_hip`` (normalised), ``side`` the subject's left (from the right to the left hip,
orthogonal to up; ``b`` flips sign for right-side joints) and ``forward = side x up`` (where the person faces).

    limb joints (hips, knees, ankles, shoulders, elbows, wrists)   anchor: the detected joint
    pelvis, spine1, spine2, spine3                                 anchor: mid_hip
    neck, collars, head                                            anchor: mid_shoulder
    feet (toe bases)      anchor: ankle; when a toe tip is detected: ankle + 0.75 (toe - ankle), no offset
    hands (knuckles)      anchor: wrist + 0.4 (wrist - elbow); when a hand point is detected: that point, no offset

The offsets (:data:`OFFSETS`) were fitted by least squares on the true joints of synthetic anny people
(:func:`fit_offsets`, ``benchmarks/capture_joints.py``); the limb joints have none (a detector's hips sit
elsewhere than a body model's: a detector-specific table can be fitted the same way).
"""
from __future__ import annotations

import numpy as np

SMPL_JOINTS = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3", "l_foot",
    "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
    "r_wrist", "l_hand", "r_hand",
)
LIMBS = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
#: The detected joints, in the order of the (J, 3) arrays of this package. Toes and hands are optional.
DETECTED = tuple(f"{side}_{limb}" for limb in LIMBS for side in ("l", "r")) + ("l_toe", "r_toe", "l_hand", "r_hand")
REQUIRED = tuple(f"{side}_{limb}" for limb in LIMBS for side in ("l", "r"))
#: The anchor of each derived joint (the joints not in LIMBS).
ANCHORS = {"pelvis": "mid_hip", "spine1": "mid_hip", "spine2": "mid_hip", "spine3": "mid_hip",
           "neck": "mid_shoulder", "l_collar": "mid_shoulder", "r_collar": "mid_shoulder", "head": "mid_shoulder",
           "l_foot": "ankle", "r_foot": "ankle", "l_hand": "hand", "r_hand": "hand"}
#: (a up, b side, c forward) in torso lengths, for left-side joints (right: b negated); fitted on synthetic people.
OFFSETS = {
    "pelvis": (0.0217, -0.0001, 0.0182), "spine1": (0.1998, 0.0012, -0.0718), "spine2": (0.357, 0.0015, -0.0536),
    "spine3": (0.8003, -0.0007, -0.103), "neck": (0.2136, 0.0001, -0.0188), "l_collar": (0.0847, 0.2357, 0.0157),
    "r_collar": (0.0847, 0.2357, 0.0157), "head": (0.4172, 0.0035, 0.0643), "l_foot": (-0.1722, 0.0074, 0.2196),
    "r_foot": (-0.1722, 0.0074, 0.2196), "l_hand": (0.0069, -0.006, 0.0291), "r_hand": (0.0069, -0.006, 0.0291),
}
#: Toe base = ankle + TOE_FRACTION (detected toe tip - ankle); hand (no hand point) = wrist + HAND_EXTENSION
#: (wrist - elbow).
TOE_FRACTION = 0.75
HAND_EXTENSION = 0.4


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def body_frame(detected: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mid_hip, mid_shoulder, up, side, forward, scale) of detected joints (..., len(DETECTED), 3)."""
    index = {name: i for i, name in enumerate(DETECTED)}
    l_hip, r_hip = detected[..., index["l_hip"], :], detected[..., index["r_hip"], :]
    l_sh, r_sh = detected[..., index["l_shoulder"], :], detected[..., index["r_shoulder"], :]
    mid_hip, mid_shoulder = (l_hip + r_hip) / 2, (l_sh + r_sh) / 2
    torso = mid_shoulder - mid_hip
    scale = np.linalg.norm(torso, axis=-1, keepdims=True)
    up = _unit(torso)
    across = (l_hip - r_hip) + (l_sh - r_sh)
    side = _unit(across - (across * up).sum(-1, keepdims=True) * up)
    forward = np.cross(side, up)
    return mid_hip, mid_shoulder, up, side, forward, scale


def _anchors(detected: np.ndarray) -> dict[str, np.ndarray]:
    """The anchor point (..., 3) of every derived joint (feet and hands from the limb joints only)."""
    index = {name: i for i, name in enumerate(DETECTED)}
    point = lambda name: detected[..., index[name], :]  # noqa: E731
    mid_hip, mid_shoulder, *_ = body_frame(detected)
    anchors = {}
    for name, kind in ANCHORS.items():
        side = name[0]
        if kind == "mid_hip":
            anchors[name] = mid_hip
        elif kind == "mid_shoulder":
            anchors[name] = mid_shoulder
        elif kind == "ankle":
            anchors[name] = point(f"{side}_ankle")
        else:
            wrist, elbow = point(f"{side}_wrist"), point(f"{side}_elbow")
            anchors[name] = wrist + HAND_EXTENSION * (wrist - elbow)
    return anchors


def _detected_extremities(detected: np.ndarray) -> dict[str, np.ndarray]:
    """Feet and hands (..., 3) from detected toe tips and hand points (NaN where those are missing)."""
    index = {name: i for i, name in enumerate(DETECTED)}
    out = {}
    for side in ("l", "r"):
        ankle, toe = detected[..., index[f"{side}_ankle"], :], detected[..., index[f"{side}_toe"], :]
        out[f"{side}_foot"] = ankle + TOE_FRACTION * (toe - ankle)
        out[f"{side}_hand"] = detected[..., index[f"{side}_hand"], :]
    return out


def to_smpl(detected: np.ndarray, offsets: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
    """(..., 24, 3) SMPL-order keypoints from detected joints (..., len(DETECTED), 3) (NaN where not detected;
    the REQUIRED joints must be finite, the toes and hands may be NaN)."""
    offsets = OFFSETS if offsets is None else offsets
    detected = np.asarray(detected, np.float64)
    index = {name: i for i, name in enumerate(DETECTED)}
    _, _, up, side, forward, scale = body_frame(detected)
    anchors = _anchors(detected)
    extremities = _detected_extremities(detected)
    out = np.empty(detected.shape[:-2] + (len(SMPL_JOINTS), 3))
    for j, name in enumerate(SMPL_JOINTS):
        if name in anchors:
            a, b, c = offsets[name]
            sign = -1.0 if name.startswith("r_") else 1.0
            out[..., j, :] = anchors[name] + scale * (a * up + sign * b * side + c * forward)
            if name in extremities:
                out[..., j, :] = np.where(np.isfinite(extremities[name]), extremities[name], out[..., j, :])
        else:
            out[..., j, :] = detected[..., index[name], :]
    return out


def from_smpl(smpl: np.ndarray) -> np.ndarray:
    """(..., len(DETECTED), 3) the limb joints of SMPL-order keypoints (..., 24, 3); toes and hands NaN (the
    inverse of :func:`to_smpl` on the limb joints; for tests and fitting)."""
    smpl = np.asarray(smpl, np.float64)
    out = np.full(smpl.shape[:-2] + (len(DETECTED), 3), np.nan)
    for i, name in enumerate(DETECTED):
        if name in SMPL_JOINTS and name not in ANCHORS:
            out[..., i, :] = smpl[..., SMPL_JOINTS.index(name), :]
    return out


def fit_offsets(detected: np.ndarray, smpl: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Least-squares body-frame offsets (a, b, c) of every derived joint from detected joints (N, len(DETECTED),
    3) and the true SMPL-order joints (N, 24, 3) of the same bodies (left and right sides fitted together)."""
    detected = np.asarray(detected, np.float64)
    smpl = np.asarray(smpl, np.float64)
    _, _, up, side, forward, scale = body_frame(detected)
    anchors = _anchors(detected)
    fitted = {}
    for name in ANCHORS:
        sign = -1.0 if name.startswith("r_") else 1.0
        residual = (smpl[:, SMPL_JOINTS.index(name)] - anchors[name]) / scale  # (N, 3)
        basis = np.stack([up, sign * side, forward], axis=-1)  # (N, 3, 3): columns are the frame's axes
        # the frame is orthonormal: the coefficients are the residual's coordinates in it
        coefficients = np.einsum("nij,ni->nj", basis, residual)
        fitted[name] = coefficients.mean(axis=0)
    for left in [n for n in fitted if n.startswith("l_")]:  # one symmetric value per pair
        right = "r_" + left[2:]
        mean = (fitted[left] + fitted[right]) / 2
        fitted[left] = fitted[right] = mean
    return {name: tuple(round(float(v), 4) for v in value) for name, value in fitted.items()}
