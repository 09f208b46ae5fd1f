"""From detected body keypoints (3D, triangulated) to the 24 SMPL-order keypoints the model uses.

The detected set (:data:`DETECTED`) is what 2D detectors give: hips, knees, ankles, shoulders, elbows, wrists
(the "limb" joints, required), and when available the face (nose, eyes, ears) and the feet (toe tips, heels).
The 24 keypoints are those of the synthetic people (``keypointnerf.data.synth.body.SMPL_JOINT_BONES``) and of
ZJU-MoCap's ``joints3d``, in SMPL order::

    0 pelvis   1 l_hip  2 r_hip  3 spine1  4 l_knee  5 r_knee  6 spine2  7 l_ankle  8 r_ankle  9 spine3
    10 l_foot 11 r_foot 12 neck 13 l_collar 14 r_collar 15 head 16 l_shoulder 17 r_shoulder 18 l_elbow
    19 r_elbow 20 l_wrist 21 r_wrist 22 l_hand 23 r_hand

Mapping: a linear joint regressor (:class:`JointRegressor`, shipped as ``joint_regressor.npz``). Each of the 24
keypoints is an affine combination of the detected joints (weights summing to 1) plus an offset in the body
frame, scaled by the torso length ``s = |mid_shoulder - mid_hip|``::

    joint_k = sum_j W[k, j] detected_j + s * (a_k up + b_k side + c_k forward)

with ``up = mid_shoulder - mid_hip`` (normalised), ``side`` the subject's left (from the right to the left hip,
orthogonal to up) and ``forward = side x up`` (where the person faces). The map is unchanged by moving, turning
or scaling the person. Detected joints are not a body model's joints (on anny people, a COCO detector's hips sit
1-2 cm lower, closer together and further forward than the rig's, its shoulders 2 cm higher), so every keypoint,
the limb joints included, is regressed.

The weights were fitted by least squares (``benchmarks/capture_joints.py``) on posed synthetic anny people:
inputs their COCO keypoints from anny's own COCO regressor (``anny.keypoints.KeypointsRegressor.coco``: the
joints as 2D detectors trained on COCO place them), targets their true 24 keypoints, with the inputs perturbed
by triangulation-sized noise and every body also mirrored (left/right symmetric maps). Four variants are fitted:
the limb joints alone, with the face (nose, eyes, ears), with the feet (toe tips, heels), with both; each frame
uses the richest variant whose inputs were all triangulated.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

SMPL_JOINTS = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3", "l_foot",
    "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
    "r_wrist", "l_hand", "r_hand",
)
LIMBS = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
REQUIRED = tuple(f"{side}_{limb}" for limb in LIMBS for side in ("l", "r"))
#: Optional groups of detected joints: a regressor variant uses a group when all of its joints were triangulated.
GROUPS = {"face": ("nose", "l_eye", "r_eye", "l_ear", "r_ear"), "feet": ("l_toe", "r_toe", "l_heel", "r_heel")}
#: The detected joints, in the order of the (J, 3) arrays of this package: the required limb joints, the face,
#: the feet (toe tips: the midpoint of the big and small toes where a format has both; heels).
DETECTED = REQUIRED + GROUPS["face"] + GROUPS["feet"]
#: The regressor variants, richest first: the optional groups each uses.
VARIANTS = (("face", "feet"), ("face",), ("feet",), ())
REGRESSOR_FILE = "joint_regressor.npz"


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


def variant_inputs(groups: tuple[str, ...]) -> tuple[str, ...]:
    """The detected joints a variant reads: the required ones and its optional groups."""
    return REQUIRED + tuple(name for group in groups for name in GROUPS[group])


def variant_name(groups: tuple[str, ...]) -> str:
    return "+".join(("limbs",) + tuple(groups))


@dataclass(frozen=True)
class JointRegressor:
    """Per variant name (:func:`variant_name`): ``weights`` (24, len(inputs)) rows summing to 1, over the
    variant's inputs (:func:`variant_inputs`), and ``offsets`` (24, 3) (a up, b side, c forward) in torso
    lengths."""

    weights: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]

    def apply(self, detected: np.ndarray, groups: tuple[str, ...]) -> np.ndarray:
        """(..., 24, 3) from detected joints (..., len(DETECTED), 3) with the variant of ``groups``."""
        name = variant_name(groups)
        columns = [DETECTED.index(n) for n in variant_inputs(groups)]
        _, _, up, side, forward, scale = body_frame(detected)
        basis = np.stack([up, side, forward], axis=-2)  # (..., 3, 3): rows are the axes
        combined = np.einsum("kj,...jd->...kd", self.weights[name], detected[..., columns, :])
        return combined + scale[..., None] * np.einsum("kc,...cd->...kd", self.offsets[name], basis)

    def save(self, path) -> None:
        arrays = {}
        for name in self.weights:
            arrays[f"{name}/weights"] = self.weights[name]
            arrays[f"{name}/offsets"] = self.offsets[name]
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> "JointRegressor":
        with np.load(path, allow_pickle=False) as data:
            weights = {key.split("/")[0]: data[key] for key in data.files if key.endswith("/weights")}
            offsets = {key.split("/")[0]: data[key] for key in data.files if key.endswith("/offsets")}
        for groups in VARIANTS:
            name = variant_name(groups)
            shape = (len(SMPL_JOINTS), len(variant_inputs(groups)))
            if name not in weights or weights[name].shape != shape or offsets[name].shape != (len(SMPL_JOINTS), 3):
                raise ValueError(f"{path}: variant {name!r} missing or not of shape {shape}")
        return cls(weights, offsets)


@lru_cache(maxsize=1)
def shipped_regressor() -> JointRegressor:
    """The regressor shipped with the package (``keypointnerf/capture/joint_regressor.npz``)."""
    with resources.as_file(resources.files(__package__) / REGRESSOR_FILE) as path:
        return JointRegressor.load(path)


def to_smpl(detected: np.ndarray, regressor: JointRegressor | None = None) -> np.ndarray:
    """(..., 24, 3) SMPL-order keypoints from detected joints (..., len(DETECTED), 3), NaN where not detected:
    the REQUIRED joints must be finite; each frame uses the richest variant whose optional groups are finite."""
    regressor = regressor or shipped_regressor()
    detected = np.asarray(detected, np.float64)
    present = {group: np.isfinite(detected[..., [DETECTED.index(n) for n in names], :]).all(axis=(-1, -2))
               for group, names in GROUPS.items()}
    out = np.full(detected.shape[:-2] + (len(SMPL_JOINTS), 3), np.nan)
    chosen = np.zeros(detected.shape[:-2], bool)
    for groups in VARIANTS:
        usable = ~chosen
        for group in groups:
            usable &= present[group]
        if usable.any():
            filled = np.where(np.isfinite(detected), detected, 0.0)
            out = np.where(usable[..., None, None], regressor.apply(filled, groups), out)
            chosen |= usable
    return out


MIRROR = {name: (("r" if name[0] == "l" else "l") + name[1:]) if name[:2] in ("l_", "r_") else name
          for name in DETECTED + SMPL_JOINTS}


def mirrored(points: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Points (..., len(names), 3) reflected through the x = 0 plane with left and right swapped: the mirror
    image of a body, as another body."""
    order = [names.index(MIRROR[n]) for n in names]
    return points[..., order, :] * np.array([-1.0, 1.0, 1.0])


def fit_regressor(detected: np.ndarray, smpl: np.ndarray, noise: float = 0.005, copies: int = 4,
                  ridge: float = 1e-4, seed: int = 0) -> JointRegressor:
    """Least-squares :class:`JointRegressor` from detected joints (N, len(DETECTED), 3) (NaN where a format has
    none) and the true 24 keypoints (N, 24, 3) of the same bodies. Every body is used with its mirror image, and
    ``copies`` times with Gaussian noise of ``noise`` metres per coordinate on the detected joints (what
    triangulation adds: the fit learns not to lean on one joint); ``ridge`` pulls the weights towards 0 (relative
    to the data's scale; the mid-hip takes the rest of the sum)."""
    detected = np.concatenate([detected, mirrored(detected, DETECTED)])
    smpl = np.concatenate([smpl, mirrored(smpl, SMPL_JOINTS)])
    rng = np.random.default_rng(seed)
    noisy = np.concatenate([detected + rng.normal(0, noise, detected.shape) for _ in range(copies)])
    targets = np.concatenate([smpl] * copies)
    weights, offsets = {}, {}
    for groups in VARIANTS:
        inputs = variant_inputs(groups)
        # relative to the mid-hip, the right hip is minus the left: it gets no column of its own
        free = [name for name in inputs if name != "r_hip"]
        points = noisy[:, [DETECTED.index(n) for n in inputs]]
        usable = np.isfinite(points).all(axis=(1, 2))
        if not usable.any():
            raise ValueError(f"no body has all the joints of variant {variant_name(groups)!r}")
        mid_hip, _, up, side, forward, scale = body_frame(noisy[usable])
        relative = noisy[usable][:, [DETECTED.index(n) for n in free]] - mid_hip[:, None]
        # unknowns per keypoint: a weight per free input (the mid-hip takes the rest) and (a, b, c)
        design = np.concatenate([relative, scale[:, None] * np.stack([up, side, forward], 1)], axis=1)
        design = design.transpose(0, 2, 1).reshape(-1, design.shape[1])  # (3N, J - 1 + 3)
        target = (targets[usable] - mid_hip[:, None]).transpose(0, 2, 1).reshape(-1, len(SMPL_JOINTS))
        gram = design.T @ design
        gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
        solution = np.linalg.solve(gram, design.T @ target)  # (J - 1 + 3, 24)
        w = np.zeros((len(SMPL_JOINTS), len(inputs)))
        w[:, [inputs.index(n) for n in free]] = solution[:len(free)].T
        rest = 1.0 - w.sum(axis=1)  # the mid-hip's weight, shared by the two hips
        for hip in ("l_hip", "r_hip"):
            w[:, inputs.index(hip)] += rest / 2
        name = variant_name(groups)
        weights[name], offsets[name] = w, solution[len(free):].T
    return JointRegressor(weights, offsets)
