"""Pose families for synthetic people: key poses over the full range of each joint, as motion sequences (key
poses blended smoothly over time, plus small smooth noise) or as independent poses (a new key pose every frame).

Angles are anny ``local-ref`` rotations (radians) about the rest pose's world-aligned axes (0 = X, 1 = Y, 2 = Z);
signs measured on anny 0.6.2 (see :mod:`.body`): ``upperarm01.L`` Y -0.7 holds the arm horizontal, -2.2 overhead,
+0.8 hanging; its Z -1.5 swings it forward in front of the chest (more: across the body); ``lowerarm01`` X -2 bends
the elbow fully; ``upperleg01`` X -1.6 lifts the leg forward to horizontal, ``upperleg01.L`` Y -0.8 lifts it
sideways; ``lowerleg01`` X bends the knee (2.3 fully). A left-side pose mirrors to the right by negating its Y and Z
angles.

Families:

- ``gait``: a moment of a walk (the ``classic`` style instead moves with the continuous in-place walk of
  :func:`.body.sample_motion`);
- ``reach``: arms overhead, forward, sideways, across the body, crossed in front of the face, hands on hips;
- ``leg``: high kicks, sideways leg lifts, squats, lunges;
- ``lean``: bending forward and sideways, twisting the torso, turning the head;
- ``kneel``: kneeling on one or both knees, sitting on the heels, crouching.
"""
from __future__ import annotations

import numpy as np

from .body import FRAME_INTERVAL, POSED_BONES, _smooth_noise

POSE_FAMILIES = ("gait", "reach", "leg", "lean", "kneel")
MOTIONS = ("sequence", "poses")

#: Limits of every joint the families move: (bone, axis) -> (low, high) radians (the left side; the right side
#: mirrors them, see :func:`limits`).
LEFT_LIMITS = {
    ("upperleg01.L", 0): (-2.0, 0.6), ("upperleg01.L", 1): (-0.9, 0.35), ("upperleg01.L", 2): (-0.6, 0.6),
    ("lowerleg01.L", 0): (0.0, 2.3), ("foot.L", 0): (-0.6, 0.7),
    ("upperarm01.L", 0): (-1.8, 0.9), ("upperarm01.L", 1): (-2.4, 0.8), ("upperarm01.L", 2): (-2.0, 0.8),
    ("lowerarm01.L", 0): (-2.4, 0.2),
}
CENTRE_LIMITS = {
    ("spine03", 0): (-0.3, 0.5), ("spine03", 1): (-0.3, 0.3), ("spine03", 2): (-0.5, 0.5),
    ("spine01", 0): (-0.3, 0.5), ("spine01", 1): (-0.3, 0.3), ("spine01", 2): (-0.5, 0.5),
    ("neck01", 0): (-0.5, 0.6), ("neck01", 1): (-0.4, 0.4), ("neck01", 2): (-1.0, 1.0),
}


def _right(bone: str) -> str:
    return bone[:-2] + ".R"


def mirror(left: dict[tuple[str, int], float]) -> dict[tuple[str, int], float]:
    """A left-side pose as the same pose of the right side (Y and Z angles negated)."""
    return {(_right(bone), axis): (value if axis == 0 else -value) for (bone, axis), value in left.items()}


def limits() -> dict[tuple[str, int], tuple[float, float]]:
    """(bone, axis) -> (low, high) of every joint the families move, both sides."""
    result = dict(CENTRE_LIMITS)
    for (bone, axis), (low, high) in LEFT_LIMITS.items():
        result[(bone, axis)] = (low, high)
        result[(_right(bone), axis)] = (low, high) if axis == 0 else (-high, -low)
    return result


# ----------------------------------------------------------------------------------------------- key poses
def _arm(rng: np.random.Generator, kind: str) -> dict:
    """A left-arm pose of ``kind``."""
    u = rng.uniform
    if kind == "relaxed":
        return {("upperarm01.L", 1): u(0.2, 0.75), ("upperarm01.L", 0): u(-0.4, 0.4), ("lowerarm01.L", 0): u(-0.8, 0)}
    if kind == "overhead":
        return {("upperarm01.L", 1): u(-2.4, -1.7), ("upperarm01.L", 0): u(-0.4, 0.3),
                ("upperarm01.L", 2): u(-0.4, 0.3), ("lowerarm01.L", 0): u(-1.2, 0)}
    if kind == "side":
        return {("upperarm01.L", 1): u(-1.2, -0.4), ("upperarm01.L", 0): u(-0.4, 0.4), ("lowerarm01.L", 0): u(-1.5, 0)}
    if kind == "forward":
        return {("upperarm01.L", 0): u(-1.8, -0.9), ("upperarm01.L", 1): u(-0.6, 0.3), ("lowerarm01.L", 0): u(-0.8, 0)}
    if kind == "across":
        return {("upperarm01.L", 1): u(-0.9, -0.3), ("upperarm01.L", 2): u(-2.0, -1.4), ("lowerarm01.L", 0): u(-1.2, 0)}
    if kind == "face":  # forearm raised in front of the face or crossed over the chest
        return {("upperarm01.L", 1): u(-0.9, -0.2), ("upperarm01.L", 2): u(-1.9, -1.2),
                ("lowerarm01.L", 0): u(-2.4, -1.6)}
    if kind == "hip":
        return {("upperarm01.L", 1): u(0.1, 0.4), ("upperarm01.L", 2): u(0.3, 0.8), ("lowerarm01.L", 0): u(-1.9, -1.3)}
    raise ValueError(kind)


def _leg(rng: np.random.Generator, kind: str) -> dict:
    """A left-leg pose of ``kind`` (``stand`` is a loose stance)."""
    u = rng.uniform
    if kind == "stand":
        return {("upperleg01.L", 0): u(-0.3, 0.2), ("upperleg01.L", 1): u(-0.25, 0.05),
                ("lowerleg01.L", 0): u(0.0, 0.4), ("foot.L", 0): u(-0.1, 0.2)}
    if kind == "kick":
        return {("upperleg01.L", 0): u(-2.0, -1.1), ("upperleg01.L", 1): u(-0.3, 0.1),
                ("lowerleg01.L", 0): u(0.0, 0.9), ("foot.L", 0): u(-0.2, 0.6)}
    if kind == "side_lift":
        return {("upperleg01.L", 1): u(-0.9, -0.5), ("upperleg01.L", 0): u(-0.4, 0.1),
                ("lowerleg01.L", 0): u(0.0, 0.5)}
    if kind == "squat":
        return {("upperleg01.L", 0): u(-1.9, -1.1), ("upperleg01.L", 1): u(-0.4, -0.1),
                ("lowerleg01.L", 0): u(1.5, 2.3), ("foot.L", 0): u(-0.6, -0.2)}
    if kind == "lunge_front":
        return {("upperleg01.L", 0): u(-1.4, -0.8), ("lowerleg01.L", 0): u(0.8, 1.5), ("foot.L", 0): u(-0.3, 0.0)}
    if kind == "lunge_back":
        return {("upperleg01.L", 0): u(0.2, 0.6), ("lowerleg01.L", 0): u(0.5, 1.2), ("foot.L", 0): u(0.2, 0.7)}
    if kind == "kneel":  # thigh upright, shin on the ground
        return {("upperleg01.L", 0): u(-0.1, 0.15), ("upperleg01.L", 1): u(-0.2, 0.05),
                ("lowerleg01.L", 0): u(1.6, 1.9), ("foot.L", 0): u(0.3, 0.7)}
    if kind == "kneel_up":  # the front leg of a one-knee kneel
        return {("upperleg01.L", 0): u(-1.8, -1.3), ("lowerleg01.L", 0): u(1.4, 1.9), ("foot.L", 0): u(-0.4, 0.0)}
    if kind == "heels":  # sitting on the heels
        return {("upperleg01.L", 0): u(-1.0, -0.6), ("lowerleg01.L", 0): u(2.1, 2.3), ("foot.L", 0): u(0.4, 0.7)}
    raise ValueError(kind)


def _both_legs(rng: np.random.Generator, left_kind: str, right_kind: str) -> dict:
    return {**_leg(rng, left_kind), **mirror(_leg(rng, right_kind))}


def _both_arms(rng: np.random.Generator, kinds: tuple[str, ...], p: list[float]) -> dict:
    left = str(rng.choice(kinds, p=p))
    right = left if rng.random() < 0.4 else str(rng.choice(kinds, p=p))  # symmetric poses are common
    return {**_arm(rng, left), **mirror(_arm(rng, right))}


def _spine(rng: np.random.Generator, scale: float) -> dict:
    u = rng.uniform
    return {("spine03", 0): scale * u(-0.1, 0.3), ("spine03", 1): scale * u(-0.1, 0.1),
            ("spine03", 2): scale * u(-0.2, 0.2), ("spine01", 0): scale * u(-0.1, 0.3),
            ("spine01", 1): scale * u(-0.1, 0.1), ("spine01", 2): scale * u(-0.2, 0.2),
            ("neck01", 0): u(-0.3, 0.35), ("neck01", 1): u(-0.2, 0.2), ("neck01", 2): u(-0.6, 0.6)}


def key_pose(rng: np.random.Generator, family: str) -> dict[tuple[str, int], float]:
    """One random key pose of ``family``: (bone, axis) -> angle; joints not named are at rest."""
    swap = rng.random() < 0.5  # which side does the one-sided move

    def sided(left_kind: str, right_kind: str) -> dict:
        return _both_legs(rng, right_kind, left_kind) if swap else _both_legs(rng, left_kind, right_kind)

    if family == "gait":  # a moment of a walk: legs and arms swinging in opposition
        stride = rng.uniform(-0.45, 0.45)
        u = rng.uniform
        return {("upperleg01.L", 0): -stride, ("upperleg01.R", 0): stride,
                ("lowerleg01.L", 0): u(0.05, 0.2) + u(0, 1.1) * max(0.0, stride),
                ("lowerleg01.R", 0): u(0.05, 0.2) + u(0, 1.1) * max(0.0, -stride),
                **_arm(rng, "relaxed"), **mirror(_arm(rng, "relaxed")),
                ("upperarm01.L", 0): 1.2 * stride, ("upperarm01.R", 0): -1.2 * stride, **_spine(rng, 0.3)}
    if family == "reach":
        arms = _both_arms(rng, ("overhead", "side", "forward", "across", "face", "hip", "relaxed"),
                          [0.25, 0.12, 0.13, 0.16, 0.16, 0.08, 0.10])
        return {**arms, **sided("stand", "stand"), **_spine(rng, 0.6)}
    if family == "leg":
        kind = str(rng.choice(["kick", "side_lift", "squat", "lunge"], p=[0.3, 0.2, 0.3, 0.2]))
        if kind == "squat":
            legs = _both_legs(rng, "squat", "squat")
            spine = {("spine03", 0): rng.uniform(0.1, 0.5), ("spine01", 0): rng.uniform(0.1, 0.5)}
        else:
            legs = sided("lunge_front", "lunge_back") if kind == "lunge" else sided(kind, "stand")
            spine = _spine(rng, 0.5)
        arms = _both_arms(rng, ("side", "forward", "overhead", "relaxed", "hip"), [0.3, 0.25, 0.15, 0.2, 0.1])
        return {**arms, **legs, **spine}
    if family == "lean":
        u = rng.uniform
        spine = {("spine03", 0): u(-0.3, 0.5), ("spine01", 0): u(-0.3, 0.5), ("spine03", 1): u(-0.3, 0.3),
                 ("spine01", 1): u(-0.3, 0.3), ("spine03", 2): u(-0.5, 0.5), ("spine01", 2): u(-0.5, 0.5),
                 ("neck01", 0): u(-0.5, 0.6), ("neck01", 1): u(-0.4, 0.4), ("neck01", 2): u(-1.0, 1.0)}
        arms = _both_arms(rng, ("relaxed", "side", "forward", "hip", "across"), [0.35, 0.2, 0.2, 0.15, 0.1])
        return {**arms, **sided("stand", "stand"), **spine}
    if family == "kneel":
        kind = str(rng.choice(["both", "one", "heels", "crouch"], p=[0.3, 0.35, 0.2, 0.15]))
        legs = {"both": lambda: _both_legs(rng, "kneel", "kneel"), "one": lambda: sided("kneel_up", "kneel"),
                "heels": lambda: _both_legs(rng, "heels", "heels"),
                "crouch": lambda: _both_legs(rng, "squat", "squat")}[kind]()
        arms = _both_arms(rng, ("relaxed", "side", "forward", "overhead", "hip", "face"),
                          [0.3, 0.15, 0.2, 0.15, 0.1, 0.1])
        return {**arms, **legs, **_spine(rng, 0.7)}
    raise ValueError(f"unknown pose family {family!r}; expected one of {', '.join(POSE_FAMILIES)}")


# ----------------------------------------------------------------------------------------------- motion
def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def key_frame_indices(rng: np.random.Generator, frames: int, motion: str) -> list[int]:
    """The frames that get a key pose: every frame (``"poses"``), or frame 0 and then every 8-20 frames, up to
    the first one at or past the last frame (``"sequence"``; at least two keys)."""
    if motion == "poses":
        return list(range(frames))
    key_frames, frame = [0], 0
    while frame < frames - 1:
        frame += int(rng.integers(8, 21))
        key_frames.append(frame)
    if len(key_frames) < 2:  # a one-frame sequence still blends between two keys
        key_frames.append(1)
    return key_frames


def sample_family_motion(rng: np.random.Generator, frames: int, families: tuple[str, ...],
                         weights: tuple[float, ...], motion: str) -> dict:
    """A motion built from key poses of ``families`` (drawn with ``weights``).

    ``motion`` ``"sequence"``: key poses 0.8-2 s apart, blended with a smoothstep and overlaid with small smooth
    noise, a slow turn and drift; ``"poses"``: an independent key pose, heading and position every frame.

    Returns ``{"euler": (F, len(POSED_BONES), 3), "yaw": (F,), "drift": (F, 2), "families": [family per key
    pose], "key_frames": [frame index of each key pose]}`` (angles in radians, drift in metres), every angle
    clipped to :func:`limits`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {', '.join(MOTIONS)}")
    p = np.asarray(weights, np.float64) / np.sum(weights)
    bounds = limits()
    times = np.arange(frames) * FRAME_INTERVAL
    key_frames = key_frame_indices(rng, frames, motion)
    chosen = [str(rng.choice(families, p=p)) for _ in key_frames]
    keys = [key_pose(rng, family) for family in chosen]

    index = {bone: b for b, bone in enumerate(POSED_BONES)}
    key_euler = np.zeros((len(keys), len(POSED_BONES), 3))
    for k, pose in enumerate(keys):
        for (bone, axis), value in pose.items():
            key_euler[k, index[bone], axis] = value
    if motion == "poses":
        euler = key_euler[:frames].copy()
        yaw = rng.uniform(0, 2 * np.pi, size=frames)
        drift = rng.uniform(-0.15, 0.15, size=(frames, 2))
    else:
        euler = np.zeros((frames, len(POSED_BONES), 3))
        for f in range(frames):
            k = np.searchsorted(key_frames, f, side="right") - 1
            k = min(k, len(key_frames) - 2)
            t = _smoothstep(np.clip((f - key_frames[k]) / (key_frames[k + 1] - key_frames[k]), 0, 1))
            euler[f] = (1 - t) * key_euler[k] + t * key_euler[k + 1]
        for (bone, axis) in bounds:
            euler[:, index[bone], axis] += _smooth_noise(rng, times, 0.08)
        yaw_rate = rng.choice([-1, 1]) * rng.uniform(0.0, 0.6)
        yaw = rng.uniform(0, 2 * np.pi) + yaw_rate * times + _smooth_noise(rng, times, 0.3)
        drift = np.stack([_smooth_noise(rng, times, 0.12), _smooth_noise(rng, times, 0.12)], axis=1)
    for (bone, axis), (low, high) in bounds.items():
        euler[:, index[bone], axis] = np.clip(euler[:, index[bone], axis], low, high)
    return {"euler": euler, "yaw": yaw, "drift": drift, "families": chosen, "key_frames": key_frames}
