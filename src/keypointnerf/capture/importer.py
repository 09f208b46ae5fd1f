"""Turn a multi-view capture (EasyMocap layout) into a subject in the ZJU-MoCap layout the reader takes.

Source (``SRC``)::

    intri.yml, extri.yml (or calibration.json)     cameras, in the order of ``names`` (see calibration.py)
    images/<cam>/<frame>.jpg  or  videos/<cam>.mp4 frames, synchronised by index
    background/<cam>.jpg                           clean plates (for --masks background)
    mask/<cam>/<frame>.png                         masks (for --masks files; non-zero = person)
    openpose/<cam>/<frame>_keypoints.json          2D keypoints (for --keypoints openpose)

Output (``SUBJECT_DIR``)::

    annots.npy                     cameras (K, R, T millimetres, D) in the calibration's order, image lists
    Camera_B<c>/<frame:06d>.jpg    c = 1..C in the calibration's order (capture.json maps names to folders)
    mask/Camera_B<c>/<frame:06d>.png   0/255
    joints3d/<frame>.npy           (24, 3) float32 SMPL-order keypoints, metres, the calibration's world frame
    vertices/<frame>.npy           (N, 3) float32 visual-hull points (voxel centres inside the masks): no body
                                   model is fitted; the reader takes their box as the person's bounds
    capture.json                   what was done: options, camera names, per-joint reprojection errors,
                                   views used, frames dropped, warnings

Frames where a required joint cannot be triangulated (fewer than 2 views agree) are left out, with a warning
naming the frame, the joint and the cameras that saw it. Every file is written under a temporary name and
renamed; ``annots.npy`` is written last.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.zju import read_image_file, read_mask_file
from ..errors import UserError
from ..paths import check_out_dir
from . import detector as pose_detector, joints as joint_map
from .calibration import Camera, check_person_in_front, read_calibration
from .frames import CameraFrames, open_frames
from .keypoints import openpose_files, read_openpose
from .masks import DEFAULT_THRESHOLD, SegmentationModel, check_mask, plate_mask
from .triangulate import DEFAULT_MIN_CONFIDENCE, smooth, triangulate

JPEG_QUALITY = 95
#: Visual hull: voxel side (metres) and the margin (metres) around the keypoints' box that it carves.
HULL_VOXEL = 0.02
HULL_MARGIN = 0.4
#: A voxel belongs to the hull when at most this many views see it outside their mask.
HULL_MISSES = 1
MASK_MODES = ("files", "background", "detect")
KEYPOINT_MODES = ("openpose", "detect")


@dataclass
class ImportOptions:
    """Options of :func:`import_capture` (the CLI's names; thresholds in pixels, 0-255 units, frames)."""

    masks: str = "auto"
    keypoints: str = "auto"
    calibration: str | None = None
    mask_threshold: float = DEFAULT_THRESHOLD
    reprojection_threshold: float | None = None  # default: max(8, 2.5% of the longer image side)
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    smooth: float = 0.0
    frame_step: int = 1
    max_frames: int | None = None
    force: bool = False
    progress: bool = True


def camera_folder(index: int) -> str:
    return f"Camera_B{index + 1}"


# ----------------------------------------------------------------------------------------------- writing
def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _save_npy(path: Path, value) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            np.save(stream, value, allow_pickle=isinstance(value, dict))  # annots: a dict, as ZJU-MoCap's
    _write_atomic(path, write)


def _save_image(path: Path, image: np.ndarray) -> None:
    _write_atomic(path, lambda temporary: Image.fromarray(image).save(
        temporary, format="JPEG" if path.suffix == ".jpg" else "PNG", quality=JPEG_QUALITY))


# ----------------------------------------------------------------------------------------------- per view
def _resolve_modes(source: Path, options: ImportOptions) -> tuple[str, str]:
    masks, keypoints = options.masks, options.keypoints
    if masks == "auto":
        masks = "files" if (source / "mask").is_dir() else "background" if (source / "background").is_dir() \
            else None
        if masks is None:
            raise UserError(f"{source}: no mask/ or background/ folder: give masks (mask/<cam>/<frame>.png), clean "
                            f"plates (background/<cam>.jpg), or use --masks detect")
    if keypoints == "auto":
        keypoints = "openpose" if (source / "openpose").is_dir() else "detect"
    if masks not in MASK_MODES:
        raise UserError(f"--masks {masks!r}: expected one of {', '.join(MASK_MODES)}")
    if keypoints not in KEYPOINT_MODES:
        raise UserError(f"--keypoints {keypoints!r}: expected one of {', '.join(KEYPOINT_MODES)}")
    return masks, keypoints


def _plate(source: Path, frames: CameraFrames) -> np.ndarray:
    name = frames.camera.name
    for suffix in (".jpg", ".jpeg", ".png"):
        path = source / "background" / f"{name}{suffix}"
        if path.is_file():
            plate = read_image_file(path)
            if plate.shape[:2] != tuple(frames.size):
                raise UserError(f"{path}: background plate is {plate.shape[1]}x{plate.shape[0]}, camera {name!r}'s "
                                f"images are {frames.size[1]}x{frames.size[0]}")
            return plate
    raise UserError(f"{source / 'background'}: no clean plate for camera {name!r} (expected "
                    f"background/{name}.jpg) for --masks background")


def _mask_file(source: Path, frames: CameraFrames, index: int) -> np.ndarray:
    folder = source / "mask" / frames.camera.name
    stem = frames.stem(index)
    for suffix in (".png", ".jpg"):
        if (folder / f"{stem}{suffix}").is_file():
            mask = read_mask_file(folder / f"{stem}{suffix}")
            break
    else:
        raise UserError(f"{folder / (stem + '.png')}: mask missing (camera {frames.camera.name!r}, frame {index})")
    if mask.shape != tuple(frames.size):
        raise UserError(f"{folder / (stem + '.png')}: mask is {mask.shape[1]}x{mask.shape[0]}, the images "
                        f"{frames.size[1]}x{frames.size[0]}")
    return mask


def visual_hull(cameras: list[Camera], masks: list[np.ndarray], center_box: np.ndarray) -> np.ndarray:
    """(N, 3) float32 centres of the voxels (side ``HULL_VOXEL``) of ``center_box`` (2, 3) enlarged by
    ``HULL_MARGIN`` that project inside the masks of all views but at most ``HULL_MISSES`` (a view where a voxel
    falls outside the image or behind the camera counts as a miss)."""
    low, high = center_box[0] - HULL_MARGIN, center_box[1] + HULL_MARGIN
    axes = [np.arange(low[d], high[d] + HULL_VOXEL / 2, HULL_VOXEL) for d in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    misses = np.zeros(len(grid), np.int32)
    for camera, mask in zip(cameras, masks):
        uv = np.round(camera.project(grid, distort=True)).astype(np.int64)
        inside = (camera.depth(grid) > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < mask.shape[1]) & (uv[:, 1] >= 0) & \
            (uv[:, 1] < mask.shape[0])
        hit = np.zeros(len(grid), bool)
        hit[inside] = mask[uv[inside, 1], uv[inside, 0]]
        misses += inside & ~hit
        misses += ~inside  # outside the image: no evidence for it; counts as a miss
    return grid[misses <= HULL_MISSES].astype(np.float32)


# ----------------------------------------------------------------------------------------------- entry point
def import_capture(source: str | Path, out: str | Path, options: ImportOptions | None = None) -> dict:
    """Import a capture (module docstring). Returns the summary also written to ``capture.json``.

    Raises UserError for bad input: a calibration problem (naming the camera), a camera without images, image
    sizes that disagree, missing plates, masks or keypoint files, an empty mask, or no frame with every required
    joint seen by 2 agreeing views.
    """
    options = options or ImportOptions()
    started = time.monotonic()
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError(f"{source}: not a folder")
    if options.frame_step < 1 or (options.max_frames is not None and options.max_frames < 1):
        raise UserError("--frame-step and --max-frames must be >= 1")
    if options.smooth < 0:
        raise UserError(f"--smooth {options.smooth}: must be >= 0 (frames)")
    cameras, calibration_file = read_calibration(source, options.calibration)
    masks_mode, keypoints_mode = _resolve_modes(source, options)
    sources, count, warnings = open_frames(source, cameras)
    indices = list(range(0, count, options.frame_step))[:options.max_frames]
    plates = [_plate(source, s) for s in sources] if masks_mode == "background" else None
    openpose = None
    if keypoints_mode == "openpose":
        openpose = [openpose_files(source / "openpose" / s.camera.name, [s.stem(i) for i in range(count)])
                    for s in sources]
    segmenter = detector = None
    if masks_mode == "detect":
        segmenter = SegmentationModel()
    if keypoints_mode == "detect":
        detector = pose_detector.PoseDetector()
    out_exists = out.exists()
    check_out_dir(out, options.force, "annots.npy, capture.json and the Camera_B*/, mask/, joints3d/, vertices/ "
                                      "folders")
    if out_exists and options.force:
        for name in ["joints3d", "vertices", "mask"] + [camera_folder(c) for c in range(len(cameras))]:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / "annots.npy").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    largest_side = max(max(s.size) for s in sources)
    threshold = options.reprojection_threshold or max(8.0, 0.025 * largest_side)
    projections = np.stack([c.projection for c in cameras])
    names = [c.name for c in cameras]
    kept: list[int] = []
    detected3d: dict[int, np.ndarray] = {}
    errors, inlier_counts, seen_counts = [], [], []
    iterators = [s.iterate(indices) for s in sources]
    try:
        for index in tqdm(indices, desc="capture import", unit="frame", disable=not options.progress,
                          dynamic_ncols=True):
            images = []
            for s, iterator in zip(sources, iterators):
                got = next(iterator, None)
                if got is None or got[0] != index:  # a video shorter than its header says
                    raise UserError(f"{s.location}: frame {index} cannot be decoded (camera {s.camera.name!r})")
                images.append(got[1])
            masks, keypoints2d, nobody = [], [], 0
            for c, (s, image) in enumerate(zip(sources, images)):
                where = f"{s.describe(index)}"
                if masks_mode == "files":
                    mask = _mask_file(source, s, index)
                elif masks_mode == "background":
                    mask = plate_mask(image, plates[c], options.mask_threshold)
                else:
                    mask = segmenter(image)
                check_mask(mask, s.camera.name, where)
                masks.append(mask)
                if openpose is not None:
                    points = read_openpose(openpose[c][index], mask)
                    if points is None:
                        warnings.append(f"{openpose[c][index]}: nobody in the keypoint file (camera "
                                        f"{s.camera.name!r}, frame {index})")
                else:
                    points = detector(image, mask)
                    if points is None:
                        warnings.append(f"{where}: the detector found nobody (camera {s.camera.name!r}, frame "
                                        f"{index})")
                if points is None:
                    nobody += 1
                    points = np.zeros((len(joint_map.DETECTED), 3))
                points = points.copy()
                points[:, :2] = s.camera.undistort_points(points[:, :2])
                keypoints2d.append(points)
            if nobody == len(cameras):
                warnings.append(f"frame {index}: left out: nobody found in any camera")
                continue
            result = triangulate(projections, np.stack(keypoints2d), threshold, options.min_confidence)
            missing = [j for j, name in enumerate(joint_map.DETECTED)
                       if name in joint_map.REQUIRED and not np.all(np.isfinite(result.points[j]))]
            if missing:
                seen = [f"{joint_map.DETECTED[j]} (detected by cameras "
                        f"{[names[v] for v in np.flatnonzero(result.candidates[j])]})" for j in missing]
                warnings.append(f"frame {index}: left out: fewer than 2 views agree within {threshold:.1f} px on "
                                + ", ".join(seen))
                continue
            center = np.nanmean(result.points, axis=0)
            check_person_in_front(cameras, center, f"frame {index}")
            box = np.stack([np.nanmin(result.points, axis=0), np.nanmax(result.points, axis=0)])
            hull = visual_hull(cameras, masks, box)
            if len(hull) < 8:
                warnings.append(f"frame {index}: the masks of the cameras do not overlap around the keypoints "
                                f"(visual hull empty): left out")
                continue
            for c, (s, image, mask) in enumerate(zip(sources, images, masks)):
                path = out / camera_folder(c) / f"{index:06d}.jpg"
                if s.files and s.files[index].suffix.lower() in (".jpg", ".jpeg"):
                    _write_atomic(path, lambda temporary, src=s.files[index]: shutil.copyfile(src, temporary))
                else:
                    _save_image(path, image)
                _save_image(out / "mask" / camera_folder(c) / f"{index:06d}.png", mask.astype(np.uint8) * 255)
            _save_npy(out / "vertices" / f"{index}.npy", hull)
            detected3d[index] = result.points
            errors.append(result.error)
            inlier_counts.append(result.inliers.sum(axis=1))
            seen_counts.append(result.candidates.sum(axis=1))
            kept.append(index)
    finally:
        for iterator in iterators:
            iterator.close()
        for model in (segmenter, detector):
            if model is not None:
                model.close()
    if not kept:
        raise UserError(f"{source}: no frame could be imported ({len(indices)} tried): "
                        + "; ".join(warnings[-3:]))

    sequence = smooth(np.stack([detected3d[i] for i in kept]), options.smooth)
    smpl = joint_map.to_smpl(sequence)
    for position, index in enumerate(kept):
        _save_npy(out / "joints3d" / f"{index}.npy", smpl[position].astype(np.float32))
        for c, camera in enumerate(cameras):
            uv = camera.project(smpl[position])
            height, width = sources[c].size
            outside = (camera.depth(smpl[position]) <= 0) | (uv[:, 0] < 0) | (uv[:, 0] >= width) | \
                (uv[:, 1] < 0) | (uv[:, 1] >= height)
            if outside.any():
                warnings.append(f"frame {index}: {int(outside.sum())} keypoint(s) ("
                                f"{', '.join(joint_map.SMPL_JOINTS[j] for j in np.flatnonzero(outside))}) lie "
                                f"outside camera {camera.name!r}'s image")

    errors, inlier_counts, seen_counts = np.stack(errors), np.stack(inlier_counts), np.stack(seen_counts)
    per_joint = {name: {"reprojection_error_px": _round(np.nanmean(errors[:, j])) if np.isfinite(
        errors[:, j]).any() else None, "views_used": _round(inlier_counts[:, j].mean()),
        "views_detected": _round(seen_counts[:, j].mean())} for j, name in enumerate(joint_map.DETECTED)}
    summary = {
        "source": str(source), "calibration": str(calibration_file), "masks": masks_mode,
        "keypoints": keypoints_mode, "cameras": {camera_folder(c): name for c, name in enumerate(names)},
        "frames": kept, "frames_dropped": [i for i in indices if i not in kept],
        "reprojection_threshold_px": round(float(threshold), 2), "min_confidence": options.min_confidence,
        "mask_threshold": options.mask_threshold if masks_mode == "background" else None,
        "smooth_frames": options.smooth, "per_joint": per_joint,
        "mean_reprojection_error_px": _round(np.nanmean(errors)), "joint_order": list(joint_map.SMPL_JOINTS),
        "warnings": warnings, "seconds": round(time.monotonic() - started, 1),
    }
    _write_atomic(out / "capture.json", lambda temporary: temporary.write_text(json.dumps(summary, indent=1) + "\n"))
    annots = {
        "cams": {"K": [c.K.copy() for c in cameras], "R": [c.R.copy() for c in cameras],
                 "T": [(c.t * 1000.0).reshape(3, 1) for c in cameras],  # millimetres, as ZJU-MoCap
                 "D": [np.asarray(c.dist, np.float64).reshape(-1, 1) for c in cameras]},
        "ims": [{"ims": [f"{camera_folder(c)}/{i:06d}.jpg" for c in range(len(cameras))]} for i in kept],
    }
    _save_npy(out / "annots.npy", annots)
    return summary


def _round(value) -> float:
    return round(float(value), 2)
