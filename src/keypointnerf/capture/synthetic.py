"""Raw multi-view captures made from synthetic people, in EasyMocap's layout: what a rig records (for tests,
benchmarks and trying ``capture import`` without a rig).

:func:`write_raw_capture` takes one subject of a synthetic set (``keypointnerf synth --style classic``: exact
renders on black with exact masks), composites every view over a textured background plate (optionally with
sensor noise), and writes::

    intri.yml, extri.yml        (cv2.FileStorage, EasyMocap's keys; cameras named 01, 02, ...)
    videos/<cam>.mp4            (or images/<cam>/<frame:06d>.jpg with ``videos=False``)
    background/<cam>.jpg        the clean plates

no masks, no keypoints. The truth (joints, masks, composited images) is returned for the tests to compare with.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from ..data.synth.body import load_anny
from ..data.zju import ZJUSubject
from . import keypoints as kp
from .calibration import Camera, write_easymocap
from .joints import DETECTED


def textured_plate(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: a studio-like background (smooth gradient, coloured blobs, stripes and fine noise)."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width] / max(height, width)
    plate = np.zeros((height, width, 3))
    base = rng.uniform(0.3, 0.8, 3)
    for channel in range(3):
        plate[..., channel] = base[channel] + 0.15 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * u + rng.uniform()))
    stripes = np.sin(2 * np.pi * (u * rng.uniform(6, 12) + v * rng.uniform(2, 5))) > 0.6
    plate[stripes] *= rng.uniform(0.6, 0.85)
    for _ in range(6):
        cu, cv, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.12)
        blob = (u - cu) ** 2 + (v - cv) ** 2 < radius ** 2
        plate[blob] = rng.uniform(0.1, 0.9, 3)
    plate += rng.normal(0, 0.01, plate.shape)
    return (np.clip(plate, 0, 1) * 255).astype(np.uint8)


#: anny's COCO keypoint (``anny.keypoints.KeypointsRegressor.coco``) of each detected joint; a tuple: their mean.
ANNY_COCO = {"l_hip": "left_hip", "r_hip": "right_hip", "l_knee": "left_knee", "r_knee": "right_knee",
             "l_ankle": "left_ankle", "r_ankle": "right_ankle", "l_shoulder": "left_shoulder",
             "r_shoulder": "right_shoulder", "l_elbow": "left_elbow", "r_elbow": "right_elbow",
             "l_wrist": "left_wrist", "r_wrist": "right_wrist", "l_toe": ("left_big_toe", "left_small_toe"),
             "r_toe": ("right_big_toe", "right_small_toe"), "nose": "nose", "l_eye": "left_eye",
             "r_eye": "right_eye", "l_ear": "left_ear", "r_ear": "right_ear", "l_heel": "left_heel",
             "r_heel": "right_heel"}


@lru_cache(maxsize=1)
def anny_coco_weights() -> np.ndarray:
    """(len(DETECTED), V) float64: each detected joint as a blend of anny's mesh vertices, from anny's COCO
    keypoint regressor."""
    from anny.keypoints import KeypointsRegressor  # imported where it is used: importing anny costs seconds
    regressor = KeypointsRegressor.coco(load_anny())
    coco = regressor.regression_weights.double().numpy()
    out = np.zeros((len(DETECTED), coco.shape[1]))
    for i, name in enumerate(DETECTED):
        labels = ANNY_COCO[name] if isinstance(ANNY_COCO[name], tuple) else (ANNY_COCO[name],)
        out[i] = np.mean([coco[regressor.labels.index(label)] for label in labels], axis=0)
    return out


def detector_joints(vertices: np.ndarray) -> np.ndarray:
    """(..., len(DETECTED), 3): where a COCO-trained 2D detector puts the joints of anny bodies with ``vertices``
    (..., V, 3) (anny's own COCO regressor)."""
    return np.einsum("jv,...vd->...jd", anny_coco_weights(), np.asarray(vertices, np.float64))


def camera_names(count: int) -> list[str]:
    return [f"{c + 1:02d}" for c in range(count)]


def write_raw_capture(subject_dir: Path, out: Path, videos: bool = True, seed: int = 0, noise: float = 0.0,
                      jpeg_quality: int = 95) -> dict:
    """Write subject ``subject_dir`` of a synthetic set as a raw capture in ``out`` (module docstring): frames as
    H.264 videos (``videos``) or JPEG files at ``jpeg_quality``, with Gaussian sensor noise of standard deviation
    ``noise`` (0-255 units) on the frames (the plates get their own noise).

    Returns ``{"cameras": [Camera], "joints": (F, 24, 3), "detected": (F, len(DETECTED), 3) (where a COCO-trained
    detector puts the joints: :func:`detector_joints`), "masks": [F][C] (H, W) bool, "images": [F][C] (H, W, 3)
    uint8}``.
    """
    subject = ZJUSubject(subject_dir, downsample=1.0, cache_mb=0)
    names = camera_names(subject.num_cameras)
    cameras = []
    for c, name in enumerate(names):
        raw = subject.raw_camera(c)
        height, width = subject.stored_size
        cameras.append(Camera(name=name, K=raw["K"], R=raw["R"], t=raw["T"], dist=raw["D"], size=(height, width)))
    out.mkdir(parents=True, exist_ok=True)
    write_easymocap(out / "intri.yml", out / "extri.yml", cameras)
    plates = [textured_plate(*subject.stored_size, seed=seed * 100 + c) for c in range(len(cameras))]
    rng = np.random.default_rng(seed)

    def noisy(image: np.ndarray) -> np.ndarray:
        if noise <= 0:
            return image
        return np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)

    (out / "background").mkdir(exist_ok=True)
    for name, plate in zip(names, plates):
        Image.fromarray(noisy(plate)).save(out / "background" / f"{name}.jpg", quality=jpeg_quality)
    images = [[None] * len(cameras) for _ in subject.frames]
    masks = [[None] * len(cameras) for _ in subject.frames]
    for f, frame in enumerate(subject.frames):
        for c in range(len(cameras)):
            render = np.asarray(Image.open(subject.image_path(frame, c)).convert("RGB"))
            mask = np.asarray(Image.open(subject.mask_paths(frame, c)[0])) > 0
            images[f][c] = noisy(np.where(mask[..., None], render, plates[c]))
            masks[f][c] = mask
    for c, name in enumerate(names):
        if videos:
            (out / "videos").mkdir(exist_ok=True)
            height, width = subject.stored_size
            writer = imageio_ffmpeg.write_frames(str(out / "videos" / f"{name}.mp4"), (width, height), fps=10,
                                                 quality=9, macro_block_size=16,
                                                 output_params=["-pix_fmt", "yuv444p"])
            writer.send(None)
            for f in range(len(subject.frames)):
                writer.send(np.ascontiguousarray(images[f][c]))
            writer.close()
        else:
            folder = out / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for f, frame in enumerate(subject.frames):
                Image.fromarray(images[f][c]).save(folder / f"{frame:06d}.jpg", quality=jpeg_quality)
    joints = np.stack([subject.keypoints(frame) for frame in subject.frames]).astype(np.float64)
    detected = np.stack([detector_joints(subject.vertices(frame)) for frame in subject.frames])
    return {"cameras": cameras, "joints": joints, "detected": detected, "masks": masks, "images": images}


def body25_from_detected(detected: np.ndarray, camera: Camera, noise_px: float = 0.0,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """(25, 3) OpenPose BODY_25 [u, v, confidence] of detected joints (len(DETECTED), 3) (NaN: not detected) as
    seen by ``camera``, with Gaussian noise of ``noise_px`` pixels (confidence 0 where a joint is missing; a toe
    tip is written as both the big and the small toe)."""
    uv = camera.project(np.nan_to_num(detected), distort=True)
    if noise_px:
        uv = uv + (rng or np.random.default_rng(0)).normal(0, noise_px, uv.shape)
    body25 = np.zeros((25, 3))
    for i, name in enumerate(DETECTED):
        slots = kp.FORMATS["BODY_25"][name]
        if slots is None or not np.all(np.isfinite(detected[i])):
            continue
        for slot in slots if isinstance(slots, tuple) else (slots,):
            body25[slot] = [uv[i, 0], uv[i, 1], 0.9]
    return body25


def write_openpose_files(out: Path, truth: dict, noise_px: float = 0.0) -> None:
    """openpose/<cam>/<frame:06d>_keypoints.json for every view of a raw capture, from the joints a COCO-trained
    detector would find (``truth["detected"]``)."""
    rng = np.random.default_rng(1)
    for f, detected in enumerate(truth["detected"]):
        for camera in truth["cameras"]:
            kp.write_openpose(out / "openpose" / camera.name / f"{f:06d}_keypoints.json",
                              [body25_from_detected(detected, camera, noise_px, rng)])
