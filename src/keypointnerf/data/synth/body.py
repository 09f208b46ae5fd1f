"""Bodies for synthetic people: the ``anny`` model (its own ``anny`` rig and topology), random adult shapes,
smooth random motion within joint limits, and the 24 SMPL-order keypoints taken from the posed rig.

anny's frame: metres, +Z up, the body faces -Y, +X is the subject's left. World placement of a posed body
(SMPL-style global orientation and translation)::

    x_world = R(Rh) @ (x_anny - root_anny) + Th

with ``root_anny`` the posed root bone head, ``Rh`` a rotation about +Z (the body turns on the spot) and ``Th`` the
root's world position, chosen so that the lowest vertex touches z = 0 and the person stays near the origin.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from scipy.spatial.transform import Rotation

from ...paths import cache_dir, cache_root

#: anny bones whose heads give the 24 keypoints, in SMPL joint order (pelvis, left hip, right hip, spine1, ...).
SMPL_JOINT_BONES = (
    "root", "upperleg01.L", "upperleg01.R", "spine04", "lowerleg01.L", "lowerleg01.R", "spine03", "foot.L",
    "foot.R", "spine01", "toe2-1.L", "toe2-1.R", "neck01", "shoulder01.L", "shoulder01.R", "head",
    "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R", "finger3-1.L",
    "finger3-1.R",
)
#: anny's phenotype parameters (each in [0, 1]) in the order of the ``params`` files.
PHENOTYPE_LABELS = ("gender", "age", "muscle", "weight", "height", "proportions")
#: Seconds between consecutive frames of the generated motion.
FRAME_INTERVAL = 0.1
#: The cached build file later loads need; everything else anny writes while building is deleted.
_KEEP_PREFIX = "build_compact_model_data_"


@dataclass(frozen=True)
class Dof:
    """One rotational degree of freedom: the bone, the world-aligned rest axis (0 = X, 1 = Y, 2 = Z) of anny's
    ``local-ref`` pose parameters, and its limits in radians."""

    bone: str
    axis: int
    low: float
    high: float


# Signs (measured on anny 0.6.2, local-ref): upperleg01 -X flexes the hip forward, lowerleg01 +X bends the knee,
# foot +X points the toes down, spine/neck +X bends forward, upperarm01.L +Y (.R -Y) lowers the arm from the
# rest A-pose, upperarm +X swings the arm backward, lowerarm -X bends the elbow further.
DOFS = (
    Dof("upperleg01.L", 0, -1.10, 0.45), Dof("upperleg01.R", 0, -1.10, 0.45),
    Dof("upperleg01.L", 1, -0.35, 0.10), Dof("upperleg01.R", 1, -0.10, 0.35),
    Dof("upperleg01.L", 2, -0.30, 0.30), Dof("upperleg01.R", 2, -0.30, 0.30),
    Dof("lowerleg01.L", 0, 0.00, 1.80), Dof("lowerleg01.R", 0, 0.00, 1.80),
    Dof("foot.L", 0, -0.35, 0.45), Dof("foot.R", 0, -0.35, 0.45),
    Dof("spine03", 0, -0.12, 0.30), Dof("spine03", 1, -0.12, 0.12), Dof("spine03", 2, -0.30, 0.30),
    Dof("spine01", 0, -0.12, 0.30), Dof("spine01", 1, -0.12, 0.12), Dof("spine01", 2, -0.30, 0.30),
    Dof("neck01", 0, -0.30, 0.35), Dof("neck01", 1, -0.20, 0.20), Dof("neck01", 2, -0.60, 0.60),
    Dof("upperarm01.L", 0, -1.00, 0.60), Dof("upperarm01.R", 0, -1.00, 0.60),
    Dof("upperarm01.L", 1, -0.70, 0.80), Dof("upperarm01.R", 1, -0.80, 0.70),
    Dof("upperarm01.L", 2, -0.40, 0.40), Dof("upperarm01.R", 2, -0.40, 0.40),
    Dof("lowerarm01.L", 0, -1.50, 0.20), Dof("lowerarm01.R", 0, -1.50, 0.20),
)
POSED_BONES = tuple(dict.fromkeys(d.bone for d in DOFS))


# ----------------------------------------------------------------------------------------------- the model
def _prune_cache(folder: Path) -> None:
    """Delete anny's intermediate build files (~0.8 GB) once the compact model file exists: later loads read only
    ``build_compact_model_data_*.safetensors`` (~49 MB)."""
    for version_dir in folder.glob("v*"):
        files = list(version_dir.glob("*.safetensors"))
        if not any(f.name.startswith(_KEEP_PREFIX) for f in files):
            continue
        for f in files:
            if not f.name.startswith(_KEEP_PREFIX):
                with contextlib.suppress(OSError):
                    f.unlink()


@contextlib.contextmanager
def single_torch_thread():
    """Run torch with one thread (anny is 5-10x slower with two on this kind of CPU); restores the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.lru_cache(maxsize=1)
def load_anny():
    """anny's default full-body model (``anny`` rig and topology, float64, ``local-ref`` poses, linear blend
    skinning), built on first use into ``cache_dir("anny")`` (about 1-2 minutes and 1.75 GB of memory once), then
    loaded from its ~49 MB cache file in about a second. Kept for the life of the process (read-only use)."""
    import anny  # imported where it is used: importing anny takes seconds, and only synth needs it
    import anny.paths

    folder = cache_dir("anny")
    previous = anny.paths.get_anny_cache_path()
    anny.paths.set_anny_cache_path(folder)
    try:
        try:
            model = anny.Anny(rig="anny", topology="anny", skinning_method="lbs")
        except Exception:
            # a build interrupted while writing leaves a truncated cache file: rebuild once from scratch
            cached = list(folder.glob("v*/*.safetensors"))
            if not cached:
                raise
            for path in cached:
                path.unlink(missing_ok=True)
            model = anny.Anny(rig="anny", topology="anny", skinning_method="lbs")
    finally:
        anny.paths.set_anny_cache_path(previous)
    _prune_cache(folder)
    return model.eval()


def cached_anny_faces(num_vertices: int) -> np.ndarray | None:
    """anny's triangles (T, 3) int64 from the compact model file :func:`load_anny` caches, read without building
    anny's model nor creating the cache; None when there is no such file or its topology does not have
    ``num_vertices`` vertices."""
    files = sorted((cache_root() / "anny").glob(f"v*/{_KEEP_PREFIX}*.safetensors"), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for path in files:
        try:
            with safe_open(str(path), framework="numpy") as data:
                if not {"faces", "template_vertices"} <= set(data.keys()):
                    continue
                if data.get_slice("template_vertices").get_shape()[0] != num_vertices:
                    continue
                faces = np.asarray(data.get_tensor("faces"), dtype=np.int64)
        except Exception:  # noqa: BLE001 - an unreadable cache just means: no faces
            continue
        if faces.ndim == 2 and faces.shape[1] == 3 and faces.min() >= 0 and faces.max() < num_vertices:
            return faces
    return None


def anny_version() -> str:
    import anny
    return str(anny.__version__)


# ----------------------------------------------------------------------------------------------- sampling
def sample_phenotype(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Random adult shape: anny phenotype values in [0, 1] (age 0.62-0.95 is adult to late middle age; in anny
    gender 0 is the masculine and 1 the feminine end) and a target stature in metres, for :func:`fit_height`."""
    gender = float(rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.75, 1.0), rng.uniform(0.25, 0.75)],
                              p=[0.42, 0.42, 0.16]))
    phenotype = {
        "gender": gender,
        "age": float(rng.uniform(0.62, 0.95)),
        "muscle": float(np.clip(rng.normal(0.5, 0.15), 0.15, 0.9)),
        "weight": float(np.clip(rng.normal(0.45, 0.15), 0.15, 0.85)),
        "height": 0.5,
        "proportions": float(rng.uniform(0.3, 0.8)),
    }
    stature = float(np.clip(rng.normal(1.77 - 0.14 * gender, 0.07), 1.5, 1.95))
    return phenotype, stature


def rest_stature(model, phenotype: dict[str, float]) -> float:
    """Height (m) of the unposed body: top of the head to the soles."""
    with torch.no_grad():
        out = model(phenotype_kwargs={k: float(v) for k, v in phenotype.items()})
    z = out["rest_vertices"][0, :, 2]
    return float(z.max() - z.min())


def fit_height(model, phenotype: dict[str, float], stature: float) -> dict[str, float]:
    """``phenotype`` with the ``height`` value that gives ``stature`` metres (anny's stature is close to linear in
    it; clipped to [0, 1])."""
    low = rest_stature(model, {**phenotype, "height": 0.3})
    high = rest_stature(model, {**phenotype, "height": 0.7})
    height = 0.3 + 0.4 * (stature - low) / (high - low)
    return {**phenotype, "height": float(np.clip(height, 0.0, 1.0))}


def _smooth_noise(rng: np.random.Generator, times: np.ndarray, amplitude: float, terms: int = 2) -> np.ndarray:
    """A smooth random curve: a sum of sinusoids with frequencies 0.1-0.6 Hz, peak about ``amplitude``."""
    curve = np.zeros_like(times)
    for _ in range(terms):
        frequency = rng.uniform(0.1, 0.6)
        curve += rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * frequency * times + rng.uniform(0, 2 * np.pi))
    return amplitude * curve / terms


def _squash(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values smoothly into (low, high) (identity-like near the middle): joint limits without kinks."""
    mid, half = (low + high) / 2, (high - low) / 2
    return mid + half * np.tanh((values - mid) / half)


def sample_motion(rng: np.random.Generator, frames: int) -> dict[str, np.ndarray]:
    """A smooth random motion: an in-place walking-like gait of random amplitude mixed with slow random curves of
    every joint in :data:`DOFS`, and a turn about the vertical axis.

    Returns ``{"euler": (F, len(POSED_BONES), 3) extrinsic XYZ angles (radians) of the local-ref pose of
    POSED_BONES, "yaw": (F,) radians, "drift": (F, 2) metres}``.
    """
    times = np.arange(frames) * FRAME_INTERVAL
    period = rng.uniform(0.9, 1.4)
    phase = 2 * np.pi * times / period + rng.uniform(0, 2 * np.pi)
    gait = rng.choice([rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.45)], p=[0.3, 0.7])  # standing or walking
    liveliness = rng.uniform(0.5, 1.5)
    arm_lowering = rng.uniform(0.3, 0.65)
    elbow_bend = rng.uniform(-0.5, 0.0)
    swing, swing_phase = np.sin(phase), np.cos(phase)

    # mean pose + gait term per DOF (by bone and axis)
    base = {
        ("upperleg01.L", 0): -gait * swing, ("upperleg01.R", 0): gait * swing,
        ("upperleg01.L", 1): -0.04, ("upperleg01.R", 1): 0.04,
        ("lowerleg01.L", 0): 0.08 + 2.4 * gait * np.maximum(0, swing_phase),
        ("lowerleg01.R", 0): 0.08 + 2.4 * gait * np.maximum(0, -swing_phase),
        ("foot.L", 0): 0.5 * gait * np.maximum(0, -swing), ("foot.R", 0): 0.5 * gait * np.maximum(0, swing),
        ("spine03", 0): 0.03, ("spine01", 0): 0.03,
        ("spine03", 2): 0.15 * gait * swing,
        ("upperarm01.L", 0): 1.2 * gait * swing, ("upperarm01.R", 0): -1.2 * gait * swing,
        ("upperarm01.L", 1): arm_lowering, ("upperarm01.R", 1): -arm_lowering,
        ("lowerarm01.L", 0): elbow_bend - 0.6 * gait * np.maximum(0, -swing),
        ("lowerarm01.R", 0): elbow_bend - 0.6 * gait * np.maximum(0, swing),
    }
    noise_amplitude = {"upperleg01": 0.12, "lowerleg01": 0.15, "foot": 0.08, "spine03": 0.07, "spine01": 0.07,
                       "neck01": 0.2, "upperarm01": 0.3, "lowerarm01": 0.35}
    euler = np.zeros((frames, len(POSED_BONES), 3))
    for dof in DOFS:
        amplitude = noise_amplitude[dof.bone.split(".")[0]] * liveliness
        if dof.axis != 0 and dof.bone.startswith(("upperleg", "spine")):
            amplitude *= 0.5
        values = np.broadcast_to(base.get((dof.bone, dof.axis), 0.0), times.shape) + _smooth_noise(
            rng, times, amplitude)
        euler[:, POSED_BONES.index(dof.bone), dof.axis] = _squash(values, dof.low, dof.high)
    yaw_rate = rng.choice([-1, 1]) * rng.uniform(0.1, 0.7)
    yaw = rng.uniform(0, 2 * np.pi) + yaw_rate * times + _smooth_noise(rng, times, 0.3)
    drift = np.stack([_smooth_noise(rng, times, 0.12), _smooth_noise(rng, times, 0.12)], axis=1)
    return {"euler": euler, "yaw": yaw, "drift": drift}


# ----------------------------------------------------------------------------------------------- posing
def _euler_to_matrices(euler: np.ndarray) -> np.ndarray:
    """(..., 3) extrinsic XYZ angles -> (..., 3, 3) rotations ``Rz @ Ry @ Rx``."""
    flat = euler.reshape(-1, 3)
    return Rotation.from_euler("xyz", flat).as_matrix().reshape(*euler.shape[:-1], 3, 3)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class PosedFrames:
    """Posed bodies of one subject, world frame (metres).

    vertices (F, V, 3) float32; keypoints (F, 24, 3) float32 (SMPL order); Rh (F, 3) axis-angle; Th (F, 3);
    euler (F, len(POSED_BONES), 3) the pose parameters; rest_vertices (V, 3) and rest_heads {bone: (3,)} of the
    subject's unposed anny body (anny frame), for appearance.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    Rh: np.ndarray
    Th: np.ndarray
    euler: np.ndarray
    rest_vertices: np.ndarray
    rest_heads: dict[str, np.ndarray]


def pose_frames(model, phenotype: dict[str, float], motion: dict[str, np.ndarray], batch: int = 16) -> PosedFrames:
    """Run anny for every frame of ``motion`` and place the bodies in the world (see the module docstring)."""
    labels = list(model.bone_labels)
    joint_index = [labels.index(b) for b in SMPL_JOINT_BONES]
    root_index = labels.index("root")
    rotations = _euler_to_matrices(motion["euler"])  # (F, B, 3, 3)
    frames = rotations.shape[0]
    vertices, joints, roots = [], [], []
    rest_vertices = rest_heads = None
    with torch.no_grad():
        for start in range(0, frames, batch):
            stop = min(frames, start + batch)
            pose = {}
            for b, bone in enumerate(POSED_BONES):
                transform = torch.eye(4, dtype=torch.float64).repeat(stop - start, 1, 1)
                transform[:, :3, :3] = torch.from_numpy(rotations[start:stop, b])
                pose[bone] = transform
            out = model(pose_parameters=pose, phenotype_kwargs={k: float(v) for k, v in phenotype.items()})
            heads = out["bone_poses"][:, :, :3, 3].numpy()
            vertices.append(out["vertices"].numpy())
            joints.append(heads[:, joint_index])
            roots.append(heads[:, root_index])
            if rest_vertices is None:
                rest_vertices = out["rest_vertices"][0].numpy()
                rest_heads = {name: out["rest_bone_heads"][0, i].numpy().copy() for i, name in enumerate(labels)}
    vertices, joints, roots = np.concatenate(vertices), np.concatenate(joints), np.concatenate(roots)

    world_vertices = np.empty(vertices.shape, np.float32)
    world_joints = np.empty(joints.shape, np.float32)
    Rh = np.zeros((frames, 3))
    Th = np.zeros((frames, 3))
    for f in range(frames):
        R = _rot_z(motion["yaw"][f])
        local_vertices = (vertices[f] - roots[f]) @ R.T
        Th[f, :2] = motion["drift"][f]
        Th[f, 2] = -local_vertices[:, 2].min()  # feet on the ground
        world_vertices[f] = local_vertices + Th[f]
        world_joints[f] = (joints[f] - roots[f]) @ R.T + Th[f]
        Rh[f, 2] = np.angle(np.exp(1j * motion["yaw"][f]))  # wrapped to (-pi, pi]
    return PosedFrames(vertices=world_vertices, keypoints=world_joints, Rh=Rh, Th=Th, euler=motion["euler"],
                       rest_vertices=rest_vertices, rest_heads=rest_heads)


def skinning_parts(model, part_of_bone) -> tuple[np.ndarray, list[str]]:
    """(V, P) per-vertex weights of body parts (skinning weights summed by ``part_of_bone(name) -> part``)."""
    labels = list(model.bone_labels)
    parts = list(dict.fromkeys(part_of_bone(name) for name in labels))
    bone_part = np.array([parts.index(part_of_bone(name)) for name in labels])
    indices = model.vertex_bone_indices.numpy()
    weights = model.vertex_bone_weights.numpy()
    result = np.zeros((indices.shape[0], len(parts)))
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    np.add.at(result, (rows, bone_part[indices.reshape(-1)]), weights.reshape(-1))
    return result, parts


def triangle_faces(model) -> np.ndarray:
    """(T, 3) int32 triangles of anny's mesh."""
    return model.get_triangular_faces().numpy().astype(np.int32)
