"""Lighting of synthetic people: an ambient term and directional lights (world frame), Lambert shading, and
optional soft shadows (shadow rays towards each light, jittered over a small cone).

A lighting is a dict ``{"family", "ambient": (3,) RGB, "lights": [{"direction": (3,) unit, towards the light,
"colour": (3,) RGB intensity}], "shadows": bool, "softness": cone half-angle in radians}``.

Families:

- ``fixed``: the ``classic`` style's studio light: ambient 0.45, a key light from above front-left (0.5) and a
  dim fill from the back right (0.25), white, no shadows;
- ``studio``: a random key light (elevation 15-75 degrees, any azimuth, intensity 0.35-0.8, warm or cool tint),
  a fill roughly opposite (0.08-0.35), a tinted ambient 0.2-0.55; soft shadows half of the time;
- ``dramatic``: a strong, saturated coloured key light low from the side (elevation 0-25 degrees), a dim fill
  of another colour, low ambient, always with shadows.
"""
from __future__ import annotations

import colorsys

import numpy as np

LIGHTING_FAMILIES = ("fixed", "studio", "dramatic")
SHADOW_RAYS = 4  # rays per light and surface point (jittered within the cone: soft edges)
SHADOW_OFFSET = 2e-3  # metres along the normal, so a shadow ray does not hit its own triangle


def _direction(azimuth: float, elevation: float) -> np.ndarray:
    return np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])


def _tint(rng: np.random.Generator, saturation_high: float) -> np.ndarray:
    """An RGB tint with mean 1 (a light colour): hue anywhere, saturation up to ``saturation_high``."""
    rgb = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, saturation_high), 1.0))
    return rgb / rgb.mean()


def sample_lighting(rng: np.random.Generator, family: str) -> dict:
    if family == "fixed":
        return {"family": family, "ambient": np.full(3, 0.45), "shadows": False, "softness": 0.0,
                "lights": [{"direction": _unit(np.array([0.35, -0.45, 0.82])), "colour": np.full(3, 0.5)},
                           {"direction": _unit(np.array([-0.5, 0.6, 0.3])), "colour": np.full(3, 0.25)}]}
    if family == "studio":
        azimuth = rng.uniform(0, 2 * np.pi)
        key = {"direction": _direction(azimuth, np.radians(rng.uniform(15, 75))),
               "colour": rng.uniform(0.35, 0.8) * _tint(rng, 0.15)}
        fill = {"direction": _direction(azimuth + np.pi + rng.uniform(-1.0, 1.0), np.radians(rng.uniform(0, 50))),
                "colour": rng.uniform(0.08, 0.35) * _tint(rng, 0.15)}
        return {"family": family, "ambient": rng.uniform(0.2, 0.55) * _tint(rng, 0.1), "lights": [key, fill],
                "shadows": bool(rng.random() < 0.5), "softness": float(np.radians(rng.uniform(2, 10)))}
    if family == "dramatic":
        azimuth = rng.uniform(0, 2 * np.pi)
        key = {"direction": _direction(azimuth, np.radians(rng.uniform(0, 25))),
               "colour": rng.uniform(0.6, 0.95) * _tint(rng, 0.5)}
        fill = {"direction": _direction(azimuth + np.pi + rng.uniform(-0.8, 0.8), np.radians(rng.uniform(10, 60))),
                "colour": rng.uniform(0.1, 0.3) * _tint(rng, 0.5)}
        return {"family": family, "ambient": rng.uniform(0.15, 0.3) * _tint(rng, 0.2), "lights": [key, fill],
                "shadows": True, "softness": float(np.radians(rng.uniform(1, 6)))}
    raise ValueError(f"unknown lighting family {family!r}; expected one of {', '.join(LIGHTING_FAMILIES)}")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _cone_directions(rng: np.random.Generator, direction: np.ndarray, half_angle: float, count: int) -> np.ndarray:
    """(count, 3) unit directions within ``half_angle`` of ``direction`` (the first is ``direction`` itself)."""
    if count == 1 or half_angle <= 0:
        return direction[None]
    helper = np.array([1.0, 0, 0]) if abs(direction[0]) < 0.9 else np.array([0, 1.0, 0])
    a = _unit(np.cross(direction, helper))
    b = np.cross(direction, a)
    out = [direction]
    for k in range(1, count):
        angle = 2 * np.pi * (k + rng.random()) / (count - 1)
        radius = np.tan(half_angle) * np.sqrt(rng.uniform(0.3, 1.0))
        out.append(_unit(direction + radius * (np.cos(angle) * a + np.sin(angle) * b)))
    return np.stack(out)


def visibility(caster, points: np.ndarray, normals: np.ndarray, lighting: dict,
               rng: np.random.Generator) -> np.ndarray:
    """(N, L) fraction of each light's shadow rays from surface points (N, 3) with unit normals (N, 3) that reach
    the light (1 everywhere without shadows). ``caster.cast(origins, directions)`` returns ``(hit, ...)``."""
    lights = lighting["lights"]
    result = np.ones((len(points), len(lights)))
    if not lighting["shadows"] or len(points) == 0:
        return result
    origins = points + SHADOW_OFFSET * normals
    for index, light in enumerate(lights):
        directions = _cone_directions(rng, np.asarray(light["direction"]), lighting["softness"], SHADOW_RAYS)
        lit = np.zeros(len(points))
        for direction in directions:
            facing = normals @ direction > 0  # the back side is dark anyway: no ray needed
            hit = np.zeros(len(points), bool)
            if facing.any():
                hit[facing] = caster.cast(origins[facing], np.broadcast_to(direction, (int(facing.sum()), 3)))[0]
            lit += ~hit
        result[:, index] = lit / len(directions)
    return result


def shade(albedo: np.ndarray, normals: np.ndarray, lighting: dict, light_visibility: np.ndarray | None = None
          ) -> np.ndarray:
    """Lambert shading: (N, 3) albedo, (N, 3) unit normals, optional (N, L) light visibility -> (N, 3) in [0, 1]."""
    light = np.broadcast_to(np.asarray(lighting["ambient"], np.float64), albedo.shape).copy()
    for index, source in enumerate(lighting["lights"]):
        lambert = np.clip(normals @ np.asarray(source["direction"]), 0, None)
        if light_visibility is not None:
            lambert = lambert * light_visibility[:, index]
        light += lambert[:, None] * np.asarray(source["colour"])[None]
    return np.clip(albedo * light, 0, 1)
