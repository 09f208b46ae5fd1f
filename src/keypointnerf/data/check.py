"""Validate ZJU-MoCap-layout data (real or synthetic) before training or evaluating on it.

:func:`check_subject` runs, for one subject folder:

* ``annots.npy`` loads with the restricted unpickler (a pickle that would run code is a problem) and has
  consistent cameras (K, R, T, D finite and well shaped, positive focal lengths, R a rotation) and per-frame
  image lists;
* every listed frame has an image for every camera, a mask (``mask/`` or ``mask_cihp/``), ``joints3d/<i>.npy``
  and ``vertices/<i>.npy`` (or ``new_vertices/``): a missing one is an inconsistent frame list;
* every keypoint and vertex file has the right shape, only finite values and a real spread (not all zero);
  every camera sees the person (faces the keypoints' centre, at least one keypoint inside its image: keypoints
  outside some image, such as toes or a raised hand, are only a warning); ``params/<i>.npy`` (or
  ``new_params/``) load safely and hold ``Rh`` (a missing params folder is only a warning: only orbit
  rendering needs it);
* on a subset of frames (``frames_to_decode`` evenly spaced, or all with ``all_frames``), every camera's image
  decodes completely (a truncated JPEG is a problem), its masks decode with the image's size and their union is
  not empty, and all images share one size.

Each problem and warning is a string ``"<file>: <what>"``. A problem means the data cannot be used as it is,
a warning that it can, with a caveat. Cameras and keypoints are judged by ``validate`` (as the reader, render,
eval and train judge them).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .protocol import SPLIT_FILE, split_file_protocol
from .validate import view_findings
from .zju import (ZJUSubject, discover_subjects, keypoint_count_mismatch, load_point_array, read_image_file,
                  read_mask_file)

MAX_LISTED_PROBLEMS = 100


class _Report:
    def __init__(self):
        self.problems: list[str] = []
        self.count = 0
        self.warnings: list[str] = []
        self.warning_count = 0

    def problem(self, message: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(message)

    def warning(self, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_LISTED_PROBLEMS:
            self.warnings.append(message)

    def user_error(self, exc: UserError) -> None:
        self.problem(str(exc))


def _npy_frames(folder: Path) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(n[:-4]) for n in os.listdir(folder) if n.endswith(".npy") and n[:-4].isdigit()
            and not (folder / n).is_dir()}


def _evenly_spaced(items: list[int], count: int) -> list[int]:
    if count >= len(items):
        return list(items)
    positions = np.unique(np.round(np.linspace(0, len(items) - 1, count)).astype(int))
    return [items[p] for p in positions]


def check_subject(path: str | Path, downsample: float = 0.5, frames_to_decode: int = 4,
                  all_frames: bool = False) -> dict[str, Any]:
    """Check one subject folder. Returns a JSON-ready summary with ``problems`` (list of
    ``"<file>: <problem>"``, at most 100 listed), ``problem_count`` and ``warnings``."""
    path = Path(path)
    report = _Report()
    summary: dict[str, Any] = {"name": path.name, "path": str(path), "cameras": None, "frames": None,
                               "image_size": None, "prepared_size": None, "keypoints": None}
    try:
        subject = ZJUSubject(path, downsample=downsample, cache_mb=0)
    except UserError as exc:
        report.user_error(exc)
        return _finish(summary, report)
    summary["cameras"] = subject.num_cameras
    summary["frames"] = len(subject.frames)
    summary["camera_folders"] = [subject.camera_folder(c) for c in range(subject.num_cameras)]
    frames = subject.frames

    # --- frame lists: images and masks of every camera, keypoints and vertices of every frame
    usable_frames = set(frames)
    for cam in range(subject.num_cameras):
        folder = path / subject.camera_folder(cam)
        if not folder.is_dir():
            report.problem(f"{folder}: camera folder missing (camera {cam})")
            usable_frames.clear()
            continue
        for frame in frames:
            image = subject.image_path(frame, cam)
            if not image.is_file():
                report.problem(f"{image}: image missing (frame {frame}, camera {cam})")
                usable_frames.discard(frame)
            elif not subject.mask_paths(frame, cam):
                report.problem(f"{subject.expected_mask_path(frame, cam)}: mask missing (neither mask/ nor "
                               f"mask_cihp/ has one for frame {frame}, camera {cam})")
                usable_frames.discard(frame)
    keypoint_folder = path / "joints3d"
    vertex_folder = subject.vertices_path(frames[0]).parent
    for folder, what in ((keypoint_folder, "keypoints"), (vertex_folder, "vertices")):
        available = _npy_frames(folder)
        if not folder.is_dir():
            report.problem(f"{folder}: {what} folder missing")
            continue
        for frame in frames:
            if frame not in available:
                report.problem(f"{folder / f'{frame}.npy'}: {what} file missing (frame {frame} is listed in "
                               f"annots.npy)")

    # --- arrays of every frame
    keypoints: dict[int, np.ndarray] = {}
    try:
        num_keypoints = subject.num_keypoints   # K of the first frame; every frame must have as many
    except UserError:
        num_keypoints = None                     # that file's problem is reported with the others below
    for frame in frames:
        if subject.keypoints_path(frame).exists():
            try:
                keypoints[frame] = load_point_array(subject.keypoints_path(frame), "keypoints", num_keypoints)
            except UserError as exc:
                report.user_error(exc)
        if subject.vertices_path(frame).exists():
            try:
                subject.vertices(frame)
            except UserError as exc:
                report.user_error(exc)
    summary["keypoints"] = num_keypoints
    summary["keypoint_frames"] = len(keypoints)

    params_folder = subject.params_path(frames[0]).parent
    if not params_folder.is_dir():
        report.warning(f"{params_folder}: missing (body orientation for orbit rendering unavailable)")
    else:
        for frame in frames:
            params_path = subject.params_path(frame)
            if not params_path.exists():
                report.problem(f"{params_path}: body-model parameters missing (frame {frame})")
                continue
            try:
                subject.body_orientation(frame)
            except UserError as exc:
                report.user_error(exc)

    # --- images: size from the first readable one
    stored_size = None
    for frame in frames:
        if frame in usable_frames:
            try:
                stored_size = read_image_file(subject.image_path(frame, 0)).shape[:2]
                break
            except UserError:
                continue
    if stored_size is not None:
        summary["image_size"] = list(stored_size)
        prepared = (int(stored_size[0] * downsample), int(stored_size[1] * downsample))
        summary["prepared_size"] = list(prepared)

    # --- how every camera sees the keypoints (undistorted pinhole at stored resolution): a camera facing away or
    # seeing none of them is a problem; some keypoints outside an image (toes, a raised hand) only a warning
    if stored_size is not None and keypoints:
        height, width = stored_size
        cams = [subject.raw_camera(c) for c in range(subject.num_cameras)]
        for frame, points in keypoints.items():
            for cam, calib in enumerate(cams):
                Rt = np.concatenate([calib["R"], calib["T"][:, None]], axis=1)
                problem, warning = view_findings(points, calib["K"], Rt, height, width)
                where = f"{subject.keypoints_path(frame)}: camera {cam} ({subject.camera_folder(cam)})"
                if problem:
                    report.problem(f"{where} {problem}")
                elif warning:
                    report.warning(f"{where}: {warning}")

    # --- decode images and masks of a frame subset
    decode = [frame for frame in frames if frame in usable_frames]
    decode = decode if all_frames else _evenly_spaced(decode, frames_to_decode)
    summary["frames_decoded"] = len(decode)
    for frame in decode:
        for cam in range(subject.num_cameras):
            image_path = subject.image_path(frame, cam)
            try:
                image = read_image_file(image_path)
            except UserError as exc:
                report.user_error(exc)
                continue
            if stored_size is not None and image.shape[:2] != tuple(stored_size):
                report.problem(f"{image_path}: image size {image.shape[1]}x{image.shape[0]} differs from "
                               f"{stored_size[1]}x{stored_size[0]} of the other images")
            union = np.zeros(image.shape[:2], dtype=bool)
            mask_ok = True
            for mask_path in subject.mask_paths(frame, cam):
                try:
                    mask = read_mask_file(mask_path)
                except UserError as exc:
                    report.user_error(exc)
                    mask_ok = False
                    continue
                if mask.shape != union.shape:
                    report.problem(f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its "
                                   f"image's {union.shape[1]}x{union.shape[0]}")
                    mask_ok = False
                    continue
                union |= mask
            if mask_ok and not union.any():
                report.problem(f"{subject.expected_mask_path(frame, cam)}: empty mask (no foreground pixel in "
                               f"{' or '.join(p.parent.parent.name for p in subject.mask_paths(frame, cam))} for "
                               f"frame {frame}, camera {cam})")
    return _finish(summary, report)


def _finish(summary: dict[str, Any], report: _Report) -> dict[str, Any]:
    summary["problems"] = report.problems
    summary["problem_count"] = report.count
    summary["warnings"] = report.warnings
    summary["warning_count"] = report.warning_count
    return summary


def check_data(path: str | Path, downsample: float = 0.5, frames_to_decode: int = 4,
               all_frames: bool = False) -> dict[str, Any]:
    """Check a subject folder or a folder of subjects. Returns ``{"path", "ok", "problem_count",
    "subjects": [per-subject summaries]}``; ``ok`` is True when no subject has a problem."""
    subjects = discover_subjects(path)
    results = [check_subject(s, downsample=downsample, frames_to_decode=frames_to_decode, all_frames=all_frames)
               for s in subjects]
    total = sum(r["problem_count"] for r in results)
    summary: dict[str, Any] = {"path": str(path), "ok": True, "problem_count": total,
                               "warning_count": sum(r["warning_count"] for r in results), "subjects": results}
    counts = {r["keypoints"] for r in results if r["keypoints"] is not None}
    if len(counts) > 1:  # one model takes one K: a set mixing counts cannot be trained or evaluated together
        summary["keypoint_problems"] = [keypoint_count_mismatch({r["path"]: r["keypoints"] for r in results
                                                                 if r["keypoints"] is not None})]
        summary["problem_count"] += 1
    split_path = Path(path) / SPLIT_FILE
    if split_path.is_file():
        split_problems = []
        try:
            protocol = split_file_protocol(path)
            names = {p.name for p in subjects}
            for part, listed in (("train", protocol.train), ("test", protocol.test)):
                split_problems += [f"{split_path}: {part} subject {n!r} has no folder with annots.npy"
                                   for n in listed if n not in names]
        except UserError as exc:
            split_problems.append(str(exc))
        summary["split_problems"] = split_problems
        summary["problem_count"] += len(split_problems)
    summary["ok"] = summary["problem_count"] == 0
    return summary

