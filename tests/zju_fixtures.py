"""Tiny ZJU-MoCap-layout subjects built with numpy for the data tests (independent of the synth generator).

The "person" is an ellipsoid (centre (0, 0, 1) m, radii 0.3, 0.2, 0.7; world z up) coloured by position,
seen by a ring of cameras 3 m away at height 1 m, ray-cast analytically. Stored images are *distorted* when
D is non-zero (each stored pixel's ray goes through its undistorted coordinates), so undistortion must
recover the pinhole view. Background is grey (0.5) so zeroing by the mask is observable.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CENTRE = np.array([0.0, 0.0, 1.0])
RADII = np.array([0.3, 0.2, 0.7])
ZJU_313_NUMBERS = list(range(1, 20)) + [22, 23]


def fibonacci_sphere(count: int) -> np.ndarray:
    i = np.arange(count) + 0.5
    phi = np.arccos(1 - 2 * i / count)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def ring_camera(index: int, count: int, size: int, radius: float = 3.0):
    """K (3,3), R (3,3), t (3,) metres of camera ``index`` of a ring looking at the body centre."""
    angle = 2 * np.pi * index / count
    position = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.0])
    forward = (CENTRE - position) / np.linalg.norm(CENTRE - position)
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    t = -R @ position
    f = 0.9 * size
    K = np.array([[f, 0, size / 2 + 1.5], [0, f * 1.01, size / 2 - 2.0], [0, 0, 1]])
    return K, R, t


def render(K, R, t, D, size: int):
    """(image (H,W,3) float in [0,1] with grey background, mask (H,W) bool) of the ellipsoid, distorted by D."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)
    if np.any(D):
        normalized = cv2.undistortPoints(pixels[:, None, :], K, D).reshape(-1, 2)
    else:
        normalized = (pixels - K[:2, 2]) / np.diag(K)[:2]
    dirs_cam = np.concatenate([normalized, np.ones((len(normalized), 1))], axis=1)
    dirs = dirs_cam @ R  # R^T d
    origin = -R.T @ t
    o = (origin - CENTRE) / RADII
    d = dirs / RADII
    a = (d * d).sum(1)
    b = 2 * (d @ o)
    c = o @ o - 1
    disc = b * b - 4 * a * c
    hit = disc > 0
    s = (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a)
    hit &= s > 0
    points = origin + s[:, None] * dirs
    colour = np.stack([0.2 + 0.7 * (points[:, 2] - 0.3) / 1.4,
                       0.5 + 0.4 * points[:, 0] / 0.3,
                       0.5 + 0.4 * points[:, 1] / 0.2], axis=1).clip(0.05, 1.0)
    image = np.where(hit[:, None], colour, 0.5).reshape(size, size, 3)
    return image, hit.reshape(size, size)


def keypoints_inside() -> np.ndarray:
    """(24, 3) points well inside the ellipsoid."""
    return (CENTRE + 0.6 * RADII * fibonacci_sphere(24)).astype(np.float32)


def save_pickled(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array(obj, dtype=object), allow_pickle=True)


def make_subject(root: Path, name: str = "CoreView_377", cameras: int = 4, frames: int = 2, size: int = 128,
                 layout: str = "B", renamed_on_disk: bool = False, distortion=None, mask_mode: str = "both",
                 new_fit: bool = False) -> Path:
    """Write one subject folder and return it.

    layout "B": ``Camera_B<c+1>/<frame:06d>.jpg``, frames 0..F-1; layout "long": ``Camera (<n>)/`` (n from
    [1..19, 22, 23] with 21 cameras) with long 1-based names; ``renamed_on_disk`` stores ``000001.jpg``-style
    names while annots.npy keeps the long ones. mask_mode: "both" (mask = left half of the person, mask_cihp =
    right half), "mask" (only mask/), "cihp" (only mask_cihp/).
    """
    subject = root / name
    subject.mkdir(parents=True)
    D = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64)
    frame_numbers = list(range(frames)) if layout == "B" else list(range(1, frames + 1))
    calib = [ring_camera(c, cameras, size) for c in range(cameras)]
    folders, ims = [], []
    for c in range(cameras):
        if layout == "B":
            folders.append(f"Camera_B{c + 1}")
        else:
            folders.append(f"Camera ({ZJU_313_NUMBERS[c] if cameras == 21 else c + 1})")
    for frame in frame_numbers:
        entry = []
        for c, folder in enumerate(folders):
            if layout == "B":
                listed = f"{frame:06d}.jpg"
            else:
                number = folder.split("(")[1].rstrip(")")
                listed = f"CoreView_313_Camera_({number})_{frame:04d}_2019-08-23_16-08-50.592.jpg"
            entry.append(f"{folder}/{listed}")
            disk_name = f"{frame:06d}.jpg" if renamed_on_disk else listed
            K, R, t = calib[c]
            image, hit = render(K, R, t, D, size)
            (subject / folder).mkdir(exist_ok=True)
            Image.fromarray((image * 255).round().astype(np.uint8)).save(subject / folder / disk_name, quality=95)
            stem = Path(disk_name).stem
            left = np.zeros_like(hit)
            left[:, : size // 2] = True
            parts = {"both": {"mask": hit & left, "mask_cihp": hit & ~left},
                     "mask": {"mask": hit}, "cihp": {"mask_cihp": hit}}[mask_mode]
            for kind, part in parts.items():
                (subject / kind / folder).mkdir(parents=True, exist_ok=True)
                value = 255 if kind == "mask" else 7  # cihp stores part labels
                Image.fromarray(part.astype(np.uint8) * value).save(subject / kind / folder / f"{stem}.png")
        ims.append({"ims": entry})
        keypoints = keypoints_inside() + np.float32(0.01 * frame)
        (subject / "joints3d").mkdir(exist_ok=True)
        np.save(subject / "joints3d" / f"{frame}.npy", keypoints)
        vertex_dir = subject / ("new_vertices" if new_fit else "vertices")
        vertex_dir.mkdir(exist_ok=True)
        np.save(vertex_dir / f"{frame}.npy", (CENTRE + RADII * fibonacci_sphere(300)).astype(np.float32))
        save_pickled(subject / ("new_params" if new_fit else "params") / f"{frame}.npy",
                     {"Rh": np.array([[0.0, 0.0, 0.1 * frame]]), "Th": np.array([[0.0, 0.0, 0.0]]),
                      "poses": np.zeros((1, 72)), "shapes": np.zeros((1, 10))})
    annots = {"cams": {"K": [k for k, _, _ in calib], "R": [r for _, r, _ in calib],
                       "T": [(t * 1000.0).reshape(3, 1) for _, _, t in calib],
                       "D": [D.reshape(5, 1).copy() for _ in calib]},
              "ims": ims}
    save_pickled(subject / "annots.npy", annots)
    return subject


def write_split(root: Path, train: list[str], test: list[str]) -> None:
    (root / "split.json").write_text(json.dumps({"train": train, "test": test}))


class MarkerPayload:
    """Unpickling this calls ``command`` (a shell command) through ``reducer``."""

    def __init__(self, reducer, args):
        self.reducer = reducer
        self.args = args

    def __reduce__(self):
        return self.reducer, self.args


def save_random_small_model(path: Path, coarse_samples: int = 4, fine_samples: int = 0, seed: int = 0) -> Path:
    """A randomly initialised ``small`` model file with cheap sampling settings (for command tests)."""
    import torch

    from keypointnerf.model import KeypointNeRF, model_preset
    from keypointnerf.model.checkpoint import save_model

    torch.manual_seed(seed)
    save_model(path, KeypointNeRF(model_preset("small")),
               render={"coarse_samples": coarse_samples, "fine_samples": fine_samples})
    return path


def usual_file_mode() -> int:
    """The mode a new file gets here: 0666 less the umask (0644 with the usual umask 022)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def failing_on_call(function, call: int, exception: BaseException | type):
    """``function``, except that its ``call``-th call (1-based) raises ``exception`` instead: a failure or a
    Ctrl-C half-way through a command."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise exception
        return function(*args, **kwargs)
    return wrapper
