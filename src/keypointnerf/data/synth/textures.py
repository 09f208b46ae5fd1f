"""Procedural garment textures, evaluated per ray hit at the surface point's rest-frame pattern position.

A texture is a plain dict (JSON-ready but for numpy colours) drawn by :func:`sample_texture` from one family and
evaluated by :func:`evaluate` at (N, 3) pattern positions (metres, the subject's rest frame with the arms
hanging, see :mod:`.appearance`), so a pattern moves with the body and stays crisp at any image resolution.

Families (scales in metres; a 256-px view of these rigs covers about 0.5-1 cm of body per pixel):

- ``solid``: one colour.
- ``stripes``: bands along a random direction (mostly horizontal or vertical), two or three colours,
  period 0.6-14 cm.
- ``checks``: a 3D checkerboard, cells 0.8-10 cm.
- ``plaid``: two perpendicular sets of bands of several widths over a base colour (tartan-like), overlaps darker.
- ``dots``: a lattice of discs, period 0.8-9 cm.
- ``noise``: multi-octave value noise between two or three colours, finest period 0.6-6 cm (heathered or
  mottled cloth, denim-like speckle).
- ``prints``: small motifs (discs, squares, crosses, rings) in cells of 1.5-6 cm, each cell with its own offset
  and colour from a small palette.
- ``photo``: patches of photographs that scikit-image ships (``skimage.data``, bundled, nothing downloaded),
  planar-projected and mirror-tiled, 15-60 cm across; greyscale ones (brick, grass, gravel) tinted.
- ``camo``: smooth noise quantised into three or four colour regions.
"""
from __future__ import annotations

import colorsys
import functools

import numpy as np
import skimage.data

TEXTURE_FAMILIES = ("solid", "stripes", "checks", "plaid", "dots", "noise", "prints", "photo", "camo")
#: skimage.data images bundled with the wheel (colour ones used as they are, greyscale ones tinted).
PHOTOS_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
PHOTOS_GREY = ("brick", "grass", "gravel", "camera", "coins", "text")
MOTIFS = ("disc", "square", "cross", "ring")

#: Everyday garment colours (navy, denim, khaki, black, white, grey, olive, burgundy).
NEUTRALS = np.array([
    (0.12, 0.15, 0.32), (0.25, 0.36, 0.55), (0.72, 0.64, 0.45), (0.08, 0.08, 0.09), (0.93, 0.93, 0.91),
    (0.50, 0.50, 0.52), (0.33, 0.37, 0.20), (0.45, 0.10, 0.15),
])


# ----------------------------------------------------------------------------------------------- colours
def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A garment colour: an everyday neutral half of the time, else any hue (sRGB in [0, 1])."""
    if rng.random() < 0.5:
        return NEUTRALS[rng.integers(len(NEUTRALS))] * rng.uniform(0.9, 1.05)
    hue, saturation, value = rng.random(), rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.95)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value))


def contrasting(rng: np.random.Generator, colour: np.ndarray, distance: float = 0.35) -> np.ndarray:
    """A random colour at least ``distance`` (RGB) from ``colour`` (its complement if none is found)."""
    for _ in range(50):
        other = random_colour(rng)
        if np.linalg.norm(other - colour) > distance:
            return other
    return 1.0 - colour


# ----------------------------------------------------------------------------------------------- noise
def _hash(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) values for integer lattice points (a 64-bit mixing hash; wraps on purpose)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             ^ iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
             ^ iz.astype(np.uint64) * np.uint64(0x165667B19E3779F9)
             ^ np.uint64(seed) * np.uint64(0x27D4EB2F165667C5))
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(points: np.ndarray, period: float, seed: int) -> np.ndarray:
    """(N,) smooth value noise in [0, 1] at (N, 3) points, lattice spacing ``period`` metres (trilinear, smoothstep)."""
    p = points / period
    cell = np.floor(p)
    f = p - cell
    f = f * f * (3 - 2 * f)
    cell = cell.astype(np.int64)
    result = np.zeros(len(points))
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                result += wx * wy * wz * _hash(cell[:, 0] + dx, cell[:, 1] + dy, cell[:, 2] + dz, seed)
    return result


def fractal_noise(points: np.ndarray, period: float, seed: int, octaves: int = 3) -> np.ndarray:
    """(N,) sum of ``octaves`` value-noise layers from ``period`` down by halves, normalised to about [0, 1]."""
    total, weight, norm = np.zeros(len(points)), 1.0, 0.0
    for octave in range(octaves):
        total += weight * value_noise(points, period / 2 ** octave, seed + 7919 * octave)
        norm += weight
        weight *= 0.5
    return total / norm


# ----------------------------------------------------------------------------------------------- photos
@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """(H, W, 3) float32 [0, 1] image from ``skimage.data`` (bundled in the scikit-image wheel)."""
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if image.max() > 1.0:
        image = image / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


# ----------------------------------------------------------------------------------------------- sampling
def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _band_direction(rng: np.random.Generator) -> np.ndarray:
    """Mostly horizontal bands (varying along z), often vertical ones, sometimes diagonal."""
    kind = rng.choice(["horizontal", "vertical", "diagonal"], p=[0.5, 0.3, 0.2])
    if kind == "horizontal":
        return np.array([0.0, 0.0, 1.0])
    if kind == "vertical":
        angle = rng.uniform(0, np.pi)
        return np.array([np.cos(angle), np.sin(angle), 0.0])
    return _unit(rng)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_texture(rng: np.random.Generator, family: str, base: np.ndarray) -> dict:
    """A random texture of ``family`` on a garment of colour ``base`` (see the module docstring)."""
    second = contrasting(rng, base)
    texture: dict = {"family": family, "colour": np.asarray(base, np.float64), "colour2": second}
    if family == "solid":
        pass
    elif family == "stripes":
        texture.update(direction=_band_direction(rng), period=_log_uniform(rng, 0.006, 0.14),
                       duty=float(rng.uniform(0.25, 0.6)), colours=int(rng.choice([2, 3], p=[0.7, 0.3])),
                       offset=float(rng.random()),
                       colour3=contrasting(rng, second))
    elif family == "checks":
        texture.update(period=_log_uniform(rng, 0.008, 0.10))
    elif family == "plaid":
        texture.update(period=_log_uniform(rng, 0.03, 0.16), angle=float(rng.uniform(0, np.pi)),
                       bands=rng.uniform(0.05, 0.35, size=3), colour3=contrasting(rng, base),
                       strength=float(rng.uniform(0.5, 0.85)))
    elif family == "dots":
        texture.update(period=_log_uniform(rng, 0.008, 0.09), radius=float(rng.uniform(0.18, 0.4)))
    elif family == "noise":
        texture.update(period=_log_uniform(rng, 0.006, 0.06), octaves=int(rng.integers(2, 5)),
                       contrast=float(rng.uniform(0.4, 1.0)), seed=int(rng.integers(1 << 30)),
                       colour3=contrasting(rng, base, 0.2) if rng.random() < 0.4 else None)
    elif family == "prints":
        texture.update(period=_log_uniform(rng, 0.015, 0.06), size=float(rng.uniform(0.15, 0.35)),
                       motif=str(rng.choice(MOTIFS)), palette=[second, contrasting(rng, base), random_colour(rng)],
                       seed=int(rng.integers(1 << 30)))
    elif family == "photo":
        grey = rng.random() < 0.35
        name = str(rng.choice(PHOTOS_GREY if grey else PHOTOS_COLOUR))
        u = _unit(rng)
        v = np.cross(u, _unit(rng))
        texture.update(photo=name, tint=grey, axis_u=u, axis_v=v / np.linalg.norm(v),
                       size=float(rng.uniform(0.15, 0.6)), offset=rng.uniform(0, 1, size=2))
    elif family == "camo":
        texture.update(period=_log_uniform(rng, 0.04, 0.15), seed=int(rng.integers(1 << 30)),
                       palette=[base, second, contrasting(rng, base, 0.25), contrasting(rng, second, 0.25)][
                           :int(rng.integers(3, 5))])
    else:
        raise ValueError(f"unknown texture family {family!r}; expected one of {', '.join(TEXTURE_FAMILIES)}")
    return texture


# ----------------------------------------------------------------------------------------------- evaluation
def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None] * (1 - t[:, None]) + b[None] * t[:, None]


def evaluate(texture: dict, position: np.ndarray) -> np.ndarray:
    """(N, 3) colours in [0, 1] of ``texture`` at (N, 3) pattern positions (metres)."""
    family = texture["family"]
    base, second = np.asarray(texture["colour"]), np.asarray(texture["colour2"])
    n = len(position)
    if family == "solid" or n == 0:
        return np.broadcast_to(base, (n, 3)).copy()
    if family == "stripes":
        phase = np.mod(position @ texture["direction"] / texture["period"] + texture.get("offset", 0.0), 1.0)
        colour = np.where((phase < texture["duty"])[:, None], second[None], base[None])
        if texture["colours"] == 3:  # a thin third band in the middle of the base colour's part
            third = np.abs(phase - (1 + texture["duty"]) / 2) < (1 - texture["duty"]) / 6
            colour[third] = texture["colour3"]
        return colour
    if family == "checks":
        cells = np.floor(position / texture["period"]).astype(np.int64)
        return np.where((cells.sum(axis=1) % 2 == 1)[:, None], second[None], base[None])
    if family == "plaid":
        c, s = np.cos(texture["angle"]), np.sin(texture["angle"])
        across = np.mod(np.stack([position[:, 0] * c + position[:, 1] * s, position[:, 2]], 1) / texture["period"],
                        1.0)  # (N, 2): horizontal and vertical band phases
        bands = np.asarray(texture["bands"])
        wide = (across < bands[0]).astype(np.float64)
        thin = (np.abs(across - 0.5 - bands[1] / 2) < bands[2] / 4).astype(np.float64)
        colour = np.broadcast_to(base, (n, 3)).copy()
        strength = texture["strength"]
        for axis in range(2):
            weight = strength * wide[:, axis, None]
            colour = colour * (1 - weight) + second[None] * weight
            colour = np.where(thin[:, axis, None] > 0, np.asarray(texture["colour3"])[None], colour)
        overlap = wide.prod(axis=1)
        return np.clip(colour * (1 - 0.25 * overlap[:, None]), 0, 1)
    if family == "dots":
        offset = np.mod(position, texture["period"]) - texture["period"] / 2
        inside = np.linalg.norm(offset, axis=1) < texture["radius"] * texture["period"]
        return np.where(inside[:, None], second[None], base[None])
    if family == "noise":
        value = fractal_noise(position, texture["period"], texture["seed"], texture["octaves"])
        value = np.clip(0.5 + (value - 0.5) * 2.2 * texture["contrast"], 0, 1)
        if texture.get("colour3") is not None:
            low = _mix(base, second, np.clip(2 * value, 0, 1))
            return np.where((value > 0.5)[:, None], _mix(second, np.asarray(texture["colour3"]),
                                                         np.clip(2 * value - 1, 0, 1)), low)
        return _mix(base, second, value)
    if family == "prints":
        period = texture["period"]
        cell = np.floor(position / period).astype(np.int64)
        seed = texture["seed"]
        jitter = np.stack([_hash(cell[:, 0], cell[:, 1], cell[:, 2], seed + k) for k in range(3)], 1)
        centre = (cell + 0.25 + 0.5 * jitter) * period
        local = (position - centre) / (texture["size"] * period)  # motif units: inside within about 1
        distance = np.linalg.norm(local, axis=1)
        motif = texture["motif"]
        if motif == "disc":
            inside = distance < 1
        elif motif == "ring":
            inside = (distance < 1) & (distance > 0.55)
        elif motif == "square":
            inside = np.abs(local).max(axis=1) < 0.85
        else:  # cross: two bars
            sorted_abs = np.sort(np.abs(local), axis=1)
            inside = (sorted_abs[:, 2] < 1.1) & (sorted_abs[:, 1] < 0.3)
        palette = np.asarray(texture["palette"])
        pick = np.minimum((_hash(cell[:, 0], cell[:, 1], cell[:, 2], seed + 3) * len(palette)).astype(int),
                          len(palette) - 1)
        return np.where(inside[:, None], palette[pick], base[None])
    if family == "photo":
        image = photo(texture["photo"])
        height, width = image.shape[:2]
        u = position @ np.asarray(texture["axis_u"]) / texture["size"] + texture["offset"][0]
        v = position @ np.asarray(texture["axis_v"]) / texture["size"] + texture["offset"][1]
        # mirror tiling: no seams where the patch repeats
        u, v = 1 - np.abs(np.mod(u, 2.0) - 1), 1 - np.abs(np.mod(v, 2.0) - 1)
        columns = np.clip((u * (width - 1)).round().astype(int), 0, width - 1)
        rows = np.clip((v * (height - 1)).round().astype(int), 0, height - 1)
        colour = image[rows, columns].astype(np.float64)
        if texture["tint"]:
            grey = colour.mean(axis=1, keepdims=True)
            colour = base[None] * (0.35 + 0.9 * grey)
        return np.clip(colour, 0, 1)
    if family == "camo":
        value = fractal_noise(position, texture["period"], texture["seed"], 2)
        palette = np.asarray(texture["palette"])
        # equal-area-ish bins of the noise's central range
        edges = np.quantile(np.linspace(0.25, 0.75, 64), np.linspace(0, 1, len(palette) + 1)[1:-1])
        return palette[np.searchsorted(edges, value)]
    raise ValueError(f"unknown texture family {family!r}")
