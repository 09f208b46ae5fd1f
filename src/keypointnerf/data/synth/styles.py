"""Style families of synthetic people: which looks, textures, poses, lights, rigs and camera effects a set draws
from. ``keypointnerf synth --style NAME`` picks one; each subject records what it drew in its ``subject.json``.

- ``classic``: the original generator: eight skin tones, garments solid / striped / checked / dotted at 5-14 cm,
  an in-place walk or stance, one fixed studio light, a ZJU-MoCap-like ring of square cameras, exact renders.
- ``diverse`` (for training): continuous skin tones and streaked hair; textures ``solid``, ``stripes``,
  ``checks``, ``dots``, ``noise``, ``prints`` and ``photo`` down to sub-centimetre scales; poses of the ``gait``,
  ``reach``, ``leg`` and ``lean`` families, as sequences or independent poses; random studio lighting with
  optional soft shadows; varied rigs (distance, height, tilt, roll, focal length, principal point, irregular
  spacing, framing, image size); backgrounds, blur, sensor noise, JPEG and inexact mattes.
- ``heldout`` (never trained on: the cross-style benchmark): textures of the ``plaid`` and ``camo`` families
  only, poses of the ``kneel`` family only, ``dramatic`` coloured side lighting with shadows; rigs and camera
  effects as ``diverse``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import UserError

STYLE_NAMES = ("classic", "diverse", "heldout")


@dataclass(frozen=True)
class Style:
    """What one style draws from: family name -> weight for textures, poses, motions and lights."""

    name: str
    look: str                                   # appearance.LOOKS
    textures: dict[str, float] = field(default_factory=dict)  # textures.TEXTURE_FAMILIES (diverse looks only)
    poses: dict[str, float] = field(default_factory=dict)     # poses.POSE_FAMILIES
    motions: dict[str, float] = field(default_factory=dict)   # poses.MOTIONS
    lighting: dict[str, float] = field(default_factory=dict)  # lighting.LIGHTING_FAMILIES
    rig: str = "ring"                           # cameras.RIG_FAMILIES
    effects: str = "none"                       # camera_effects.EFFECT_LEVELS

    def summary(self) -> dict:
        return {"name": self.name, "look": self.look, "textures": self.textures, "poses": self.poses,
                "motions": self.motions, "lighting": self.lighting, "rig": self.rig, "effects": self.effects}


STYLES = {
    "classic": Style("classic", look="classic", poses={"gait": 1.0}, motions={"sequence": 1.0},
                     lighting={"fixed": 1.0}, rig="ring", effects="none"),
    "diverse": Style("diverse", look="diverse",
                     textures={"solid": 0.12, "stripes": 0.16, "checks": 0.14, "dots": 0.12, "noise": 0.16,
                               "prints": 0.15, "photo": 0.15},
                     poses={"gait": 0.2, "reach": 0.3, "leg": 0.25, "lean": 0.25},
                     motions={"sequence": 0.7, "poses": 0.3}, lighting={"fixed": 0.1, "studio": 0.9},
                     rig="varied", effects="real"),
    "heldout": Style("heldout", look="diverse", textures={"plaid": 0.5, "camo": 0.5}, poses={"kneel": 1.0},
                     motions={"sequence": 0.7, "poses": 0.3}, lighting={"dramatic": 1.0}, rig="varied",
                     effects="real"),
}


def get_style(name: str) -> Style:
    if name not in STYLES:
        raise UserError(f"--style {name!r}: expected one of {', '.join(STYLE_NAMES)}")
    return STYLES[name]
