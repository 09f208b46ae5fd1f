"""What a real camera and a real matte add to a clean render: a background, mild blur, sensor noise, JPEG
compression, and mask edges that are not pixel-exact.

Settings are drawn once per subject (:func:`sample_effects`, a JSON-ready dict) and applied per view
(:func:`apply_effects`); the background of a camera is the same in every frame (a clean plate), drawn from the
subject seed and the camera index.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter

EFFECT_LEVELS = ("none", "real")


def sample_effects(rng: np.random.Generator, level: str) -> dict:
    """Per-subject settings: ``none`` (exact renders: black background, exact masks, JPEG quality 95) or ``real``."""
    if level == "none":
        return {"level": level, "background": False, "blur_px": 0.0, "noise": 0.0, "shot_noise": 0.0,
                "jpeg_quality": 95, "matte_blur_px": 0.0, "matte_threshold": 0.5, "matte_grow_px": 0}
    if level != "real":
        raise ValueError(f"unknown effect level {level!r}; expected one of {', '.join(EFFECT_LEVELS)}")
    return {
        "level": level, "background": True,
        "blur_px": float(rng.uniform(0.0, 0.8)),          # Gaussian sigma at stored resolution
        "noise": float(rng.uniform(0.0, 0.02)),           # read noise, sigma in [0, 1] units
        "shot_noise": float(rng.uniform(0.0, 0.02)),      # signal-dependent: sigma = shot_noise * sqrt(value)
        "jpeg_quality": int(rng.integers(70, 96)),
        "matte_blur_px": float(rng.uniform(0.5, 1.2)),    # the matte's edge: blurred coverage, thresholded
        "matte_threshold": float(rng.uniform(0.35, 0.65)),
        "matte_grow_px": int(rng.choice([-1, 0, 1], p=[0.1, 0.7, 0.2])),  # a pixel too tight or too loose
    }


@functools.lru_cache(maxsize=32)
def background_plate(seed: tuple[int, ...], height: int, width: int) -> np.ndarray:
    """(H, W, 3) float [0, 1], read-only: a smooth wall of random colour with a vertical gradient and soft
    blotches (the same for the same arguments: a camera's clean plate)."""
    rng = np.random.default_rng(list(seed))
    top, bottom = rng.uniform(0.15, 0.85, 3), rng.uniform(0.1, 0.8, 3)
    rows = np.linspace(0, 1, height)[:, None, None]
    plate = top * (1 - rows) + bottom * rows
    # blotches about a twelfth of the image across: smoothed noise on a coarse grid, resized
    coarse = gaussian_filter(rng.normal(size=(24, 24)), sigma=1.5, mode="wrap")
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    blotches /= max(np.abs(blotches).max(), 1e-9)
    plate = np.clip(plate + 0.12 * blotches[..., None] * rng.uniform(0.5, 1.0, 3), 0, 1)
    plate.flags.writeable = False  # shared by the cache
    return plate


def soft_matte(mask: np.ndarray, effects: dict) -> np.ndarray:
    """(H, W) bool: a matte of the exact ``mask`` whose edge is moved about a pixel (blur, threshold, grow)."""
    matte = mask.astype(np.float64)
    if effects["matte_blur_px"] > 0:
        matte = gaussian_filter(matte, effects["matte_blur_px"]) >= effects["matte_threshold"]
    else:
        matte = matte > 0.5
    grow = effects["matte_grow_px"]
    if grow:
        matte = (binary_dilation if grow > 0 else binary_erosion)(matte, iterations=abs(grow))
    return matte


def apply_effects(image: np.ndarray, mask: np.ndarray, effects: dict, background: np.ndarray | None,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One view as a camera and a matting tool would give it.

    Args:
        image: (H, W, 3) float [0, 1] render, background 0; mask: (H, W) bool exact coverage;
        background: (H, W, 3) float [0, 1] plate or None (black).
    Returns:
        (H, W, 3) uint8 image (before JPEG: the writer compresses at ``effects["jpeg_quality"]``) and the
        (H, W) bool matte.
    """
    picture = image if background is None else np.where(mask[..., None], image, background)
    if effects["blur_px"] > 0:
        picture = gaussian_filter(picture, sigma=(effects["blur_px"], effects["blur_px"], 0))
    if effects["noise"] > 0 or effects["shot_noise"] > 0:
        sigma = np.sqrt(effects["noise"] ** 2 + effects["shot_noise"] ** 2 * np.clip(picture, 0, 1))
        picture = picture + sigma * rng.normal(size=picture.shape)
    return np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8), soft_matte(mask, effects)
