"""2D body keypoints per view: OpenPose-style JSON files (BODY_25, COCO-18 or COCO-17 order), converted to the
detected joints of :mod:`.joints` (``DETECTED``: hips, knees, ankles, shoulders, elbows, wrists, nose, eyes,
ears, toe tips, heels).

``openpose/<cam>/<name>_keypoints.json`` as OpenPose writes it::

    {"people": [{"pose_keypoints_2d": [u0, v0, c0, u1, v1, c1, ...]}, ...]}

in pixels of the (distorted) image. The order is told by the length: 25 points BODY_25, 18 OpenPose COCO,
17 COCO-17 (``nose, l_eye, r_eye, l_ear, r_ear, l_shoulder, r_shoulder, ...``, the MS-COCO order, which most
detectors write). Files are matched to frames by the image's name (``<image stem>_keypoints.json``), else by
position in the sorted list (videos). When a file lists several people, the one with the largest summed
confidence inside the view's mask is taken.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import read_json_file
from .joints import DETECTED

#: Where each detected joint is in each format (a tuple: the mean of those points; None: not given).
FORMATS: dict[str, dict[str, int | tuple[int, ...] | None]] = {
    "BODY_25": {"l_hip": 12, "r_hip": 9, "l_knee": 13, "r_knee": 10, "l_ankle": 14, "r_ankle": 11,
                "l_shoulder": 5, "r_shoulder": 2, "l_elbow": 6, "r_elbow": 3, "l_wrist": 7, "r_wrist": 4,
                "l_toe": (19, 20), "r_toe": (22, 23),
                "nose": 0, "l_eye": 16, "r_eye": 15, "l_ear": 18, "r_ear": 17, "l_heel": 21, "r_heel": 24},
    "COCO-18": {"l_hip": 11, "r_hip": 8, "l_knee": 12, "r_knee": 9, "l_ankle": 13, "r_ankle": 10,
                "l_shoulder": 5, "r_shoulder": 2, "l_elbow": 6, "r_elbow": 3, "l_wrist": 7, "r_wrist": 4,
                "l_toe": None, "r_toe": None,
                "nose": 0, "l_eye": 15, "r_eye": 14, "l_ear": 17, "r_ear": 16, "l_heel": None, "r_heel": None},
    "COCO-17": {"l_hip": 11, "r_hip": 12, "l_knee": 13, "r_knee": 14, "l_ankle": 15, "r_ankle": 16,
                "l_shoulder": 5, "r_shoulder": 6, "l_elbow": 7, "r_elbow": 8, "l_wrist": 9, "r_wrist": 10,
                "l_toe": None, "r_toe": None,
                "nose": 0, "l_eye": 1, "r_eye": 2, "l_ear": 3, "r_ear": 4, "l_heel": None, "r_heel": None},
}
FORMAT_BY_LENGTH = {25: "BODY_25", 18: "COCO-18", 17: "COCO-17"}


def convert(points: np.ndarray, fmt: str) -> np.ndarray:
    """(len(DETECTED), 3) [u, v, confidence] from a detector's (N, 3) points in format ``fmt``; confidence 0
    where the format has no such joint (or any of the averaged points is missing)."""
    table = FORMATS[fmt]
    out = np.zeros((len(DETECTED), 3))
    for i, name in enumerate(DETECTED):
        where = table[name]
        if where is None:
            continue
        rows = points[list(where) if isinstance(where, tuple) else [where]]
        if np.all(rows[:, 2] > 0):
            out[i, :2] = rows[:, :2].mean(axis=0)
            out[i, 2] = rows[:, 2].min()
    return out


def _people(path: Path) -> list[np.ndarray]:
    data = read_json_file(path, "OpenPose JSON file")
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise UserError(f"{path}: expected an OpenPose file with a 'people' list")
    out = []
    for number, person in enumerate(people):
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        try:
            array = np.asarray(values, np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise UserError(f"{path}: people[{number}].pose_keypoints_2d is not a list of u, v, confidence "
                            f"triples") from None
        if len(array) not in FORMAT_BY_LENGTH:
            raise UserError(f"{path}: people[{number}] has {len(array)} keypoints; expected 25 (BODY_25), 18 "
                            f"(OpenPose COCO) or 17 (COCO-17)")
        if not np.all(np.isfinite(array)):
            raise UserError(f"{path}: people[{number}] has NaN or infinite values")
        out.append(array)
    return out


def read_openpose(path: Path, mask: np.ndarray | None = None) -> np.ndarray | None:
    """(len(DETECTED), 3) [u, v, confidence] of the person in an OpenPose JSON file (the one with the largest
    confidence inside ``mask`` (H, W) bool when given), or None when the file lists nobody."""
    people = _people(path)
    if not people:
        return None
    converted = [convert(p, FORMAT_BY_LENGTH[len(p)]) for p in people]

    def score(points: np.ndarray) -> float:
        confidence = points[:, 2].copy()
        if mask is not None:
            u = np.clip(np.round(points[:, 0]).astype(int), 0, mask.shape[1] - 1)
            v = np.clip(np.round(points[:, 1]).astype(int), 0, mask.shape[0] - 1)
            confidence *= mask[v, u]
        return float(confidence.sum())

    return max(converted, key=score)


def openpose_files(folder: Path, stems: list[str]) -> list[Path]:
    """The JSON file of each frame (image stems ``stems``) in ``folder``: ``<stem>_keypoints.json`` when those
    exist, else the sorted ``*_keypoints.json`` (or ``*.json``) files by position. Raises UserError when a
    frame has none."""
    if not folder.is_dir():
        raise UserError(f"{folder}: folder missing (--keypoints openpose reads openpose/<camera>/"
                        f"<frame>_keypoints.json)")
    by_name = [folder / f"{stem}_keypoints.json" for stem in stems]
    if all(p.is_file() for p in by_name):
        return by_name
    files = sorted(folder.glob("*_keypoints.json")) or sorted(folder.glob("*.json"))
    if len(files) < len(stems):
        missing = next(p for p in by_name if not p.is_file())
        raise UserError(f"{missing}: missing ({folder} holds {len(files)} JSON files for {len(stems)} frames)")
    return files[:len(stems)]


def write_openpose(path: Path, people: list[np.ndarray]) -> None:
    """Write an OpenPose JSON file listing ``people`` ((N, 3) [u, v, confidence] each)."""
    data = {"version": 1.3, "people": [{"pose_keypoints_2d": np.asarray(p, float).ravel().round(3).tolist()}
                                       for p in people]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
