"""Appearance of synthetic people: skin tone, hair, eyes, a top, trousers / shorts / a skirt and shoes, with
patterns (stripes, checks, dots, a chest emblem) fixed to the body.

Everything is decided in the subject's *rest pose* (anny frame, metres), so patterns move with the body: each
mesh vertex carries attributes (rest position with the arms rotated to hang down, soft body-part weights from
the skinning weights, position along the arm and the leg); the renderer interpolates them at every ray hit and
:func:`albedo` turns them into a colour per pixel (crisp garment borders and stripes at any resolution).
"""
from __future__ import annotations

import numpy as np

from . import textures

#: Body parts, the columns of the part weights.
PARTS = ("head", "neck", "eye", "torso", "pelvis", "arm", "hand", "leg", "foot")

# attribute columns: pattern position (3), part weights (len(PARTS)), arm coordinate, leg coordinate
_POS = slice(0, 3)
_PARTS = slice(3, 3 + len(PARTS))
_ARM_T = 3 + len(PARTS)
_LEG_T = _ARM_T + 1
NUM_ATTRIBUTES = _LEG_T + 1

SKIN_TONES = np.array([
    (0.98, 0.86, 0.77), (0.95, 0.79, 0.67), (0.88, 0.69, 0.55), (0.80, 0.60, 0.45), (0.66, 0.47, 0.33),
    (0.52, 0.36, 0.25), (0.40, 0.27, 0.19), (0.30, 0.20, 0.14),
])
HAIR_COLOURS = np.array([
    (0.05, 0.04, 0.04), (0.16, 0.10, 0.06), (0.32, 0.20, 0.11), (0.72, 0.58, 0.34), (0.50, 0.22, 0.10),
    (0.62, 0.62, 0.62), (0.12, 0.12, 0.30), (0.75, 0.30, 0.45),
])
HAIR_COLOUR_PROBABILITY = np.array([0.28, 0.24, 0.18, 0.12, 0.07, 0.06, 0.025, 0.025])
SHOE_COLOURS = np.array([(0.06, 0.06, 0.06), (0.92, 0.92, 0.90), (0.35, 0.22, 0.12), (0.45, 0.45, 0.48)])
#: The ``classic`` look's garment patterns and their probabilities.
CLASSIC_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots")
CLASSIC_PATTERN_PROBABILITY = (0.4, 0.2, 0.12, 0.16, 0.12)
LOOKS = ("classic", "diverse")


def part_of_bone(name: str) -> str:
    """The body part an anny bone belongs to."""
    base = name.split(".")[0]
    if base == "head":
        return "head"
    if base.startswith("neck"):
        return "neck"
    if base == "eye":
        return "eye"
    if base.startswith(("spine", "clavicle", "shoulder")):
        return "torso"
    if base in ("root", "pelvis"):
        return "pelvis"
    if base.startswith(("upperarm", "lowerarm")):
        return "arm"
    if base.startswith(("wrist", "finger", "metacarpal")):
        return "hand"
    if base.startswith(("upperleg", "lowerleg")):
        return "leg"
    if base.startswith(("foot", "toe")):
        return "foot"
    return "torso"  # tongue, jaw, ... (hidden inside the head or torso)


def _classic_garment(rng: np.random.Generator, avoid: np.ndarray | None = None) -> dict:
    """A garment of the ``classic`` look: solid, stripes, checks or dots at 5-14 cm."""
    base = textures.random_colour(rng)
    while avoid is not None and np.linalg.norm(base - avoid) < 0.3:
        base = textures.random_colour(rng)
    second = textures.contrasting(rng, base)
    pattern = str(rng.choice(CLASSIC_PATTERNS, p=CLASSIC_PATTERN_PROBABILITY))
    period, duty = float(rng.uniform(0.05, 0.14)), float(rng.uniform(0.3, 0.6))
    texture = {"family": "solid", "colour": base, "colour2": second}
    if pattern in ("hstripes", "vstripes"):
        vertical = pattern == "vstripes"
        texture.update(family="stripes", direction=np.array([1.0, 0.0, 0.0] if vertical else [0.0, 0.0, 1.0]),
                       period=period, duty=duty, colours=2, offset=0.5 * duty if vertical else 0.0)
    elif pattern == "checks":
        texture.update(family="checks", period=period)
    elif pattern == "dots":
        texture.update(family="dots", period=period, radius=0.3)
    return {"colour": base, "texture": texture}


def _garment(rng: np.random.Generator, families: dict[str, float], avoid: np.ndarray | None = None) -> dict:
    """A garment of the ``diverse`` look: a texture of one of ``families`` (name -> weight)."""
    base = textures.random_colour(rng)
    while avoid is not None and np.linalg.norm(base - avoid) < 0.3:
        base = textures.random_colour(rng)
    names = list(families)
    weights = np.asarray([families[n] for n in names], np.float64)
    family = str(rng.choice(names, p=weights / weights.sum()))
    return {"colour": base, "texture": textures.sample_texture(rng, family, base)}


def sample_look(rng: np.random.Generator, kind: str = "classic", texture_families: dict[str, float] | None = None
                ) -> dict:
    """A random outfit and complexion (colours in [0, 1] sRGB; lengths are fractions along limbs).

    ``kind`` ``"classic"``: eight skin tones, garments solid, striped, checked or dotted at 5-14 cm;
    ``"diverse"``: skin tones anywhere between those eight, with a faint mottling; hair colours varied and
    streaked; garments with a texture from ``texture_families`` (family -> weight, see :mod:`.textures`).
    """
    if kind not in LOOKS:
        raise ValueError(f"unknown look {kind!r}; expected one of {', '.join(LOOKS)}")
    diverse = kind == "diverse"
    if diverse:
        position = rng.uniform(0, len(SKIN_TONES) - 1)
        low = int(position)
        skin = SKIN_TONES[low] + (position - low) * (SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low])
        skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1)
        top = _garment(rng, texture_families)
        bottom = _garment(rng, texture_families, avoid=top["colour"])
    else:
        skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 0.02, 3), 0, 1)
        top = _classic_garment(rng)
        bottom = _classic_garment(rng, avoid=top["colour"])
    bottom_kind = str(rng.choice(["trousers", "shorts", "knee_length", "capri"], p=[0.55, 0.2, 0.15, 0.1]))
    if bottom_kind == "trousers" and rng.random() < 0.5:  # plain trousers are the common case
        bottom["texture"] = {"family": "solid", "colour": bottom["colour"], "colour2": bottom["colour"]}
    hem = {"trousers": rng.uniform(0.94, 0.99), "capri": rng.uniform(0.68, 0.8),
           "shorts": rng.uniform(0.3, 0.45), "knee_length": rng.uniform(0.35, 0.62)}[bottom_kind]
    sleeve_kind = str(rng.choice(["long", "short", "sleeveless"], p=[0.4, 0.45, 0.15]))
    sleeve = {"long": rng.uniform(0.93, 1.0), "short": rng.uniform(0.25, 0.5),
              "sleeveless": rng.uniform(-0.05, 0.02)}[sleeve_kind]
    hair_style = str(rng.choice(["short", "long", "bald"], p=[0.55, 0.37, 0.08]))
    emblem = rng.random() < 0.45
    look = {
        "kind": kind, "skin": skin,
        "hair": HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_COLOUR_PROBABILITY)] * rng.uniform(0.9, 1.1),
        "hair_style": hair_style,
        "hairline_front": float(rng.uniform(0.035, 0.06)),  # above the eyes (m)
        "hairline_back": float(rng.uniform(-0.05, 0.03)),  # relative to the head joint (m)
        "hair_length": float(rng.uniform(0.05, 0.22)) if hair_style == "long" else 0.0,  # below the neck (m)
        "eyes": np.array([0.9, 0.9, 0.88]), "iris": np.array([0.25, 0.16, 0.08]) * rng.uniform(0.5, 1.6),
        "top": top, "sleeve_kind": sleeve_kind, "sleeve": float(sleeve),
        "neckline": float(rng.uniform(0.15, 0.7)),  # from spine01 (0) to neck01 (1)
        "neck_width": float(rng.uniform(0.05, 0.09)),  # half width of the neck opening (m)
        "top_hem": float(rng.uniform(0.2, 0.85)),  # from the root (0) to spine03 (1)
        "bottom": bottom, "bottom_kind": bottom_kind, "hem": float(hem),
        "shoes": SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))] if rng.random() < 0.7 else
        textures.random_colour(rng),
        "shoe_top": float(rng.uniform(0.9, 0.97) if rng.random() < 0.85 else rng.uniform(0.72, 0.8)),  # boots
        "emblem": bool(emblem), "emblem_colour": textures.contrasting(rng, top["colour"], 0.5),
        "emblem_radius": float(rng.uniform(0.035, 0.07)), "emblem_x": float(rng.uniform(-0.07, 0.07)),
        "skin_mottle": 0.0, "hair_streaks": 0.0,
    }
    if diverse:
        look["hair"] = np.clip(look["hair"] * rng.uniform(0.85, 1.15, 3), 0, 1)
        look["skin_mottle"] = float(rng.uniform(0.0, 0.06))   # relative brightness variation, ~2 cm blotches
        look["hair_streaks"] = float(rng.uniform(0.05, 0.25))  # relative brightness variation, fine strands
        look["noise_seed"] = int(rng.integers(1 << 30))
    return look


def look_summary(look: dict) -> dict:
    """The look as JSON-ready values (for ``synth.json``)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return [round(float(x), 3) for x in value]
        if isinstance(value, float):
            return round(value, 3)
        return value
    return plain(look)


# ----------------------------------------------------------------------------------------------- attributes
def _axis_coordinate(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    axis = end - start
    return (points - start) @ axis / float(axis @ axis)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation taking direction a to direction b (shortest arc)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def vertex_attributes(rest_vertices: np.ndarray, rest_heads: dict[str, np.ndarray],
                      part_weights: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Per-vertex attributes of one subject for :func:`albedo`.

    Args:
        rest_vertices: (V, 3) the subject's unposed vertices (anny frame, metres).
        rest_heads: bone name -> (3,) rest bone head.
        part_weights: (V, len(PARTS)) soft body-part weights (columns in :data:`PARTS` order).
    Returns:
        attributes (V, NUM_ATTRIBUTES) float32 and landmarks (heights and depths in the rest frame, metres).
    """
    position = rest_vertices.copy()
    side_left = rest_vertices[:, 0] > 0
    arm_t = np.zeros(len(rest_vertices))
    leg_t = np.zeros(len(rest_vertices))
    arm_weight = part_weights[:, PARTS.index("arm")] + part_weights[:, PARTS.index("hand")]
    for side, mask in (("L", side_left), ("R", ~side_left)):
        shoulder, wrist = rest_heads[f"upperarm01.{side}"], rest_heads[f"wrist.{side}"]
        hip, ankle = rest_heads[f"upperleg01.{side}"], rest_heads[f"foot.{side}"]
        arm_t[mask] = _axis_coordinate(rest_vertices[mask], shoulder, wrist)
        leg_t[mask] = _axis_coordinate(rest_vertices[mask], hip, ankle)
        # arms hang straight down in pattern space, so stripes ring the sleeves like the torso
        rotation = _rotation_between(wrist - shoulder, np.array([0.0, 0.0, -1.0]))
        hanging = mask & (arm_weight > 0.5)
        position[hanging] = (rest_vertices[hanging] - shoulder) @ rotation.T + shoulder
    attributes = np.concatenate([position, part_weights, arm_t[:, None], leg_t[:, None]], axis=1)
    head_mask = part_weights[:, PARTS.index("head")] > 0.5
    landmarks = {
        "root_z": float(rest_heads["root"][2]), "spine03_z": float(rest_heads["spine03"][2]),
        "spine01_z": float(rest_heads["spine01"][2]), "neck01_z": float(rest_heads["neck01"][2]),
        "head_z": float(rest_heads["head"][2]), "head_y": float(rest_heads["head"][1]),
        "eye_z": float(rest_heads["eye.L"][2]), "eye_y": float(rest_heads["eye.L"][1]),
        "eye_x": float(abs(rest_heads["eye.L"][0])),
        "head_back_y": float(rest_vertices[head_mask, 1].max()), "torso_y": float(rest_heads["spine01"][1]),
        "shoulder_z": float(rest_heads["shoulder01.L"][2]),
    }
    return attributes.astype(np.float32), landmarks


# ----------------------------------------------------------------------------------------------- colours
def albedo(look: dict, landmarks: dict[str, float], attributes: np.ndarray) -> np.ndarray:
    """(N, 3) surface colours in [0, 1] from interpolated attributes (N, NUM_ATTRIBUTES)."""
    position = attributes[:, _POS].astype(np.float64)
    part = np.array(PARTS)[attributes[:, _PARTS].argmax(axis=1)]
    arm_t, leg_t = attributes[:, _ARM_T], attributes[:, _LEG_T]
    x, y, z = position[:, 0], position[:, 1], position[:, 2]
    L = landmarks
    colour = np.broadcast_to(look["skin"], position.shape).copy()
    if look.get("skin_mottle", 0) > 0:
        colour *= 1 + look["skin_mottle"] * (2 * textures.fractal_noise(position, 0.02, look["noise_seed"]) - 1)[:, None]

    # torso and hips: the top above its hem, the bottom garment below; skin above the neckline
    trunk = np.isin(part, ("torso", "pelvis"))
    hem_z = L["root_z"] + look["top_hem"] * (L["spine03_z"] - L["root_z"])
    neckline_z = L["spine01_z"] + look["neckline"] * (L["neck01_z"] - L["spine01_z"])
    # the neck opening: the line rises towards the shoulders and is higher at the back than at the front
    opening = neckline_z + 2.0 * np.maximum(0, np.abs(x) - look["neck_width"]) + 0.05 * np.clip(
        (y - L["torso_y"]) / 0.1, 0, 1)
    top = (trunk & (z >= hem_z) & (z < opening)) | ((part == "arm") & (arm_t < look["sleeve"]))
    bottom = (trunk & (z < hem_z)) | ((part == "leg") & (leg_t < look["hem"]))
    colour[top] = textures.evaluate(look["top"]["texture"], position[top])
    if look["emblem"]:
        emblem_z = L["spine01_z"] - 0.06
        on_emblem = top & (part == "torso") & (y < L["torso_y"]) & (
            (x - look["emblem_x"]) ** 2 + (z - emblem_z) ** 2 < look["emblem_radius"] ** 2)
        colour[on_emblem] = look["emblem_colour"]
    colour[bottom] = textures.evaluate(look["bottom"]["texture"], position[bottom])
    shoes = (part == "foot") | ((part == "leg") & (leg_t > look["shoe_top"]))
    colour[shoes] = look["shoes"]

    # hair: above a hairline that is high at the forehead and low at the back of the head
    if look["hair_style"] != "bald":
        depth = np.clip((y - L["eye_y"]) / max(L["head_back_y"] - L["eye_y"], 1e-3), 0, 1)
        front_z = L["eye_z"] + look["hairline_front"]
        back_z = L["head_z"] + look["hairline_back"]
        hairline = front_z + (back_z - front_z) * np.sqrt(depth)
        hair = np.isin(part, ("head", "neck")) & (z > hairline)
        if look["hair_style"] == "long":  # falls over the neck and upper back
            hair |= np.isin(part, ("head", "neck", "torso")) & (y > L["head_y"] + 0.03) & (
                z > L["shoulder_z"] - look["hair_length"]) & (np.abs(x) < 0.13)
        colour[hair] = look["hair"]
        if look.get("hair_streaks", 0) > 0:  # strands: noise stretched along the vertical
            stretched = position[hair] * np.array([1.0, 1.0, 0.15])
            colour[hair] *= 1 + look["hair_streaks"] * (
                2 * textures.fractal_noise(stretched, 0.004, look["noise_seed"] + 1, 2) - 1)[:, None]
        # eyebrows
        brow = (part == "head") & (y < L["eye_y"] + 0.01) & (z > L["eye_z"] + 0.016) & (
            z < L["eye_z"] + 0.025) & (np.abs(np.abs(x) - L["eye_x"]) < 0.02)
        colour[brow] = look["hair"] * 0.8
    eyes = part == "eye"
    colour[eyes] = np.where((y[eyes] < L["eye_y"] - 0.008)[:, None], look["iris"][None], look["eyes"][None])
    return np.clip(colour, 0, 1)
