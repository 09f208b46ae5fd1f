"""The ZJU-MoCap reader (and synthetic subjects written in the same layout).

One :class:`ZJUSubject` per ``CoreView_<id>/`` folder (see ``/work/shared/spec/zju_mocap_format.md``)::

    annots.npy                      cameras (K, R, T in millimetres, D) and per-frame image paths
    Camera_B<c>/<frame:06d>.jpg     or, for subjects 313/315, ``Camera (<c>)/`` with long 1-based names
    mask/<camera>/<stem>.png        foreground masks; mask_cihp/ likewise; the union is used
    joints3d/<i>.npy                (K, 3) world keypoints, metres (K = 24 SMPL-order body joints for
                                    ZJU-MoCap; any K the same in every frame, e.g. facial landmarks)
    vertices/<i>.npy | new_vertices/<i>.npy   (N, 3) body vertices -> person box
    params/<i>.npy   | new_params/<i>.npy     pickled dict with Rh (axis-angle) and Th

Frame identity is the integer ``i`` of the ``.npy`` files, which is also the number in the image file name
(``000000.jpg`` -> 0; for 313/315 the 5th ``_``-separated field of the long name, 1-based, or the renamed
``000001.jpg`` -> 1). :attr:`ZJUSubject.frames` lists them in ``annots.npy`` order; protocols select frames by
position in that list (as Neural Human Performer does).

Views are prepared as the reference pipeline does: read, undistort with K, D (bilinear for images, nearest for
masks), downsample by ``downsample`` (area for images, nearest for masks; ``K[:2] *= downsample``, no
half-pixel correction), zero the background. The reader never crops or pads (the model pads source views
for its encoders; padding targets would change what the evaluation measures).

Cameras are OpenCV: ``x_cam = R x_world + t`` with t in metres (``T / 1000``), ``(u, v) ~ K x_cam``.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import UserError
from .safe_pickle import load_npy
from .validate import camera_problems, point_problems, require_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_FOLDERS = ("mask", "mask_cihp")
#: Camera folder numbers of subjects 313/315 (21 cameras): index i -> ``Camera (<n>)``.
ZJU_313_CAMERA_NUMBERS = list(range(1, 20)) + [22, 23]
#: Keypoints per frame of ZJU-MoCap and the body sets (SMPL joint order); other sets may have any count.
NUM_KEYPOINTS = 24
#: z margin added below and above the vertex box (metres), as the reference readers do.
BOUNDS_Z_MARGIN = 0.05


def frame_number_from_name(name: str) -> int | None:
    """The frame number in an image or mask file name, or None.

    ``000123.jpg`` -> 123; ``CoreView_313_Camera_(1)_0001_2019-08-23_16-08-50.592.jpg`` -> 1 (5th ``_`` field).
    """
    base = os.path.basename(name)
    stem = os.path.splitext(base)[0]
    if stem.isdigit():
        return int(stem)
    fields = base.split("_")
    if len(fields) > 4 and fields[4].isdigit():
        return int(fields[4])
    return None


def discover_subjects(path: str | Path) -> list[Path]:
    """Subject folders under ``path``: ``[path]`` when it holds ``annots.npy``, else its sub-folders that do
    (sorted by name). Raises UserError when there are none."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a folder")
    if (path / "annots.npy").is_file():
        return [path]
    subjects = sorted(p for p in path.iterdir() if p.is_dir() and (p / "annots.npy").is_file())
    if not subjects:
        raise UserError(f"{path}: no annots.npy here or in any sub-folder (expected a ZJU-MoCap subject folder "
                        f"or a folder of them)")
    return subjects


def read_image_file(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB. Raises UserError for missing, truncated or corrupt files."""
    try:
        with Image.open(path) as im:
            im.load()  # decodes fully: a truncated JPEG raises here
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"{path}: image missing") from None
    except Exception as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None


def read_mask_file(path: Path) -> np.ndarray:
    """A mask file as (H, W) bool, non-zero = person (any channel)."""
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"{path}: mask missing") from None
    except Exception as exc:
        raise UserError(f"{path}: unreadable mask ({exc})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] != 2 else arr[..., 0]
    return arr > 0


def image_file_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError:
        raise UserError(f"{path}: image missing") from None
    except Exception as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None
    return height, width


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis-angle (radians) -> (3, 3) rotation matrix."""
    matrix, _ = cv2.Rodrigues(np.asarray(rotvec, dtype=np.float64).reshape(3, 1))
    return matrix


def _as_matrix(value: Any, shape: tuple[int, ...], what: str, source: Path) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {what} is not numeric") from None
    if arr.size != int(np.prod(shape)):
        raise UserError(f"{source}: {what} has shape {arr.shape}, expected {shape}")
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{source}: {what} contains NaN or infinite values")
    return arr


def load_point_array(path: Path, what: str, num_points: int | None = None) -> np.ndarray:
    """A (N, 3) float array from a ``.npy`` file, checked for shape, finiteness and a real spread (not all zero
    or one point: see ``validate.point_problems``)."""
    arr = load_npy(require_file(path, what))
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise UserError(f"{path}: {what} is not a numeric array")
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1 or (num_points and arr.shape[0] != num_points):
        expected = f"({num_points}, 3)" if num_points else "(N, 3)"
        raise UserError(f"{path}: {what} has shape {arr.shape}, expected {expected}")
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{path}: {what} contains NaN or infinite values")
    problems = point_problems(arr, what)
    if problems:
        raise UserError(f"{path}: {problems[0]}")
    return arr.astype(np.float32)


def keypoint_count_mismatch(counts: dict[str, int]) -> str:
    """The message for subjects (name or path -> K) whose keypoint counts differ."""
    groups: dict[int, list[str]] = {}
    for name, count in counts.items():
        groups.setdefault(count, []).append(str(name))
    listed = "; ".join(f"{count} in {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                       for count, names in sorted(groups.items()))
    return f"subjects with different keypoint counts ({listed}): one model takes one count; use them apart"


def common_keypoint_count(subjects: dict[str, "ZJUSubject"]) -> int:
    """K shared by every subject (name -> subject); UserError naming them when the counts differ."""
    counts = {subject.path: subject.num_keypoints for subject in subjects.values()}
    if len(set(counts.values())) > 1:
        raise UserError(keypoint_count_mismatch(counts))
    return next(iter(counts.values()))


class _ViewCache:
    """A per-process LRU of prepared views, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.items: OrderedDict = OrderedDict()

    def get(self, key):
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key, value: tuple[np.ndarray, ...]) -> None:
        size = sum(a.nbytes for a in value)
        if size > self.max_bytes:
            return
        if key in self.items:
            self.bytes -= sum(a.nbytes for a in self.items.pop(key))
        self.items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= sum(a.nbytes for a in old)


class ZJUSubject:
    """One ZJU-MoCap-layout subject folder.

    Args:
        path: the subject folder (holds ``annots.npy``).
        downsample: image scale factor applied after undistortion (0.5 turns 1024x1024 into 512x512).
        body_fit: "auto" (``new_vertices``/``new_params`` when those folders exist, else ``vertices``/``params``),
            "new" or "old".
        cache_mb: size of the in-memory LRU of prepared views (per process; 0 disables).
        undistort: apply the distortion vector D (False only for experiments).

    Attributes:
        path, name, num_cameras, frames (list[int], annots order), downsample; :attr:`num_keypoints` (read
        from the first frame's keypoints file).
    """

    def __init__(self, path: str | Path, downsample: float = 0.5,
                 body_fit: str = "auto", cache_mb: float = 1024, undistort: bool = True):
        self.path = Path(path)
        self.name = self.path.name
        if not (0 < downsample <= 1):
            raise UserError(f"downsample must be in (0, 1], got {downsample}")
        if body_fit not in ("auto", "new", "old"):
            raise UserError(f"body_fit must be auto, new or old, got {body_fit!r}")
        self.downsample = float(downsample)
        self.body_fit = body_fit
        self.undistort = undistort
        self._cache = _ViewCache(cache_mb * 2 ** 20)
        self._folder_index: dict[Path, dict[int, str]] = {}
        self._stored_size: tuple[int, int] | None = None
        self._num_keypoints: int | None = None
        self._parse_annots()

    # ----------------------------------------------------------------- annotations
    def _parse_annots(self) -> None:
        annots_path = self.path / "annots.npy"
        if annots_path.is_dir():
            raise UserError(f"{annots_path}: is a folder, not the annotations file")
        if not annots_path.is_file():
            raise UserError(f"{annots_path}: missing (not a ZJU-MoCap subject folder)")
        annots = load_npy(annots_path)
        if not isinstance(annots, dict) or "cams" not in annots or "ims" not in annots:
            raise UserError(f"{annots_path}: expected a dict with 'cams' and 'ims'")
        cams = annots["cams"]
        if not isinstance(cams, dict) or not all(k in cams for k in ("K", "R", "T")):
            raise UserError(f"{annots_path}: 'cams' must hold K, R and T lists")
        num = len(cams["K"])
        if num == 0:
            raise UserError(f"{annots_path}: no cameras")
        for key in ("R", "T") + (("D",) if "D" in cams else ()):
            if len(cams[key]) != num:
                raise UserError(f"{annots_path}: cams['{key}'] has {len(cams[key])} entries, cams['K'] has {num}")
        self._K = np.stack([_as_matrix(k, (3, 3), f"cams['K'][{c}]", annots_path) for c, k in enumerate(cams["K"])])
        self._R = np.stack([_as_matrix(r, (3, 3), f"cams['R'][{c}]", annots_path) for c, r in enumerate(cams["R"])])
        self._T_mm = np.stack([_as_matrix(t, (3,), f"cams['T'][{c}]", annots_path) for c, t in enumerate(cams["T"])])
        wrong = [f"camera {c}: {problem}" for c in range(num) for problem in camera_problems(self._K[c], self._R[c])]
        if wrong:
            raise UserError(f"{annots_path}: {'; '.join(wrong[:6])}{' ...' if len(wrong) > 6 else ''}")
        self._D: list[np.ndarray] = []
        for c in range(num):
            d = np.zeros(5) if "D" not in cams or cams["D"][c] is None else cams["D"][c]
            size = int(np.size(d))
            if size not in (4, 5, 8, 12, 14):
                raise UserError(f"{annots_path}: cams['D'][{c}] has {size} coefficients (OpenCV takes 4, 5, 8, "
                                f"12 or 14)")
            self._D.append(_as_matrix(d, (size,), f"cams['D'][{c}]", annots_path))
        self.num_cameras = num

        ims = annots["ims"]
        if not isinstance(ims, (list, tuple)) or len(ims) == 0:
            raise UserError(f"{annots_path}: 'ims' must be a non-empty list of per-frame entries")
        self._image_relpaths: dict[int, list[str]] = {}
        frames: list[int] = []
        for position, entry in enumerate(ims):
            paths = entry.get("ims") if isinstance(entry, dict) else None
            if not isinstance(paths, (list, tuple)) or len(paths) != num:
                raise UserError(f"{annots_path}: ims[{position}] must list {num} image paths (one per camera)")
            paths = [str(p) for p in paths]
            frame = frame_number_from_name(paths[0])
            if frame is None:
                raise UserError(f"{annots_path}: ims[{position}]: cannot read a frame number from {paths[0]!r}")
            if frame in self._image_relpaths:
                raise UserError(f"{annots_path}: frame {frame} is listed twice")
            self._image_relpaths[frame] = paths
            frames.append(frame)
        self.frames: list[int] = frames
        self._camera_folders = [self._resolve_camera_folder(c, self._image_relpaths[frames[0]][c])
                                for c in range(num)]

    def _resolve_camera_folder(self, cam: int, relpath: str) -> str:
        folder = os.path.dirname(relpath)
        if folder and (self.path / folder).is_dir():
            return folder
        candidates = [f"Camera_B{cam + 1}"]
        if self.num_cameras == len(ZJU_313_CAMERA_NUMBERS):
            candidates.append(f"Camera ({ZJU_313_CAMERA_NUMBERS[cam]})")
        candidates.append(f"Camera ({cam + 1})")
        for candidate in candidates:
            if (self.path / candidate).is_dir():
                return candidate
        return folder or candidates[0]

    def camera_folder(self, cam: int) -> str:
        """The folder name of camera ``cam`` (e.g. ``Camera_B1`` or ``Camera (22)``)."""
        self._check_cam(cam)
        return self._camera_folders[cam]

    def _check_cam(self, cam: int) -> None:
        if not 0 <= cam < self.num_cameras:
            raise UserError(f"{self.path}: camera {cam} does not exist ({self.num_cameras} cameras)")

    def _check_frame(self, frame: int) -> None:
        if frame not in self._image_relpaths:
            raise UserError(f"{self.path}: frame {frame} is not listed in annots.npy")

    def _index(self, folder: Path) -> dict[int, str]:
        """frame number -> file name for the image-like files of ``folder`` (cached)."""
        index = self._folder_index.get(folder)
        if index is None:
            index = {}
            if folder.is_dir():
                for name in sorted(os.listdir(folder)):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        number = frame_number_from_name(name)
                        if number is not None:
                            index.setdefault(number, name)
            self._folder_index[folder] = index
        return index

    # ----------------------------------------------------------------- files
    def image_path(self, frame: int, cam: int) -> Path:
        """The image file of (frame, camera): the annots path when it exists, else the file of that frame
        number in the camera folder (original long or renamed short names); the annots path when neither."""
        self._check_frame(frame)
        self._check_cam(cam)
        listed = self.path / self._image_relpaths[frame][cam]
        if listed.is_file():
            return listed
        folder = self.path / self._camera_folders[cam]
        name = self._index(folder).get(frame)
        return folder / name if name else listed

    def mask_paths(self, frame: int, cam: int) -> list[Path]:
        """Existing mask files of (frame, camera) among ``mask/`` and ``mask_cihp/`` (0, 1 or 2 paths)."""
        image = self.image_path(frame, cam)
        found = []
        for kind in MASK_FOLDERS:
            folder = self.path / kind / self._camera_folders[cam]
            direct = folder / (image.stem + ".png")
            if direct.is_file():
                found.append(direct)
                continue
            name = self._index(folder).get(frame)
            if name:
                found.append(folder / name)
        return found

    def expected_mask_path(self, frame: int, cam: int) -> Path:
        return self.path / "mask" / self._camera_folders[cam] / (self.image_path(frame, cam).stem + ".png")

    def _fit_folder(self, kind: str) -> Path:
        new, old = self.path / f"new_{kind}", self.path / kind
        if self.body_fit == "new":
            return new
        if self.body_fit == "old":
            return old
        return new if new.is_dir() else old

    def keypoints_path(self, frame: int) -> Path:
        return self.path / "joints3d" / f"{frame}.npy"

    def vertices_path(self, frame: int) -> Path:
        return self._fit_folder("vertices") / f"{frame}.npy"

    def params_path(self, frame: int) -> Path:
        return self._fit_folder("params") / f"{frame}.npy"

    # ----------------------------------------------------------------- cameras
    @property
    def stored_size(self) -> tuple[int, int]:
        """(H, W) of the stored images (read from the first frame's first camera)."""
        if self._stored_size is None:
            self._stored_size = image_file_size(self.image_path(self.frames[0], 0))
        return self._stored_size

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of prepared views (after downsampling). Raises UserError when downsampling leaves less
        than 2x2 pixels."""
        height, width = self.stored_size
        size = (int(height * self.downsample), int(width * self.downsample))
        self._check_size(size, self.image_path(self.frames[0], 0))
        return size

    def _check_size(self, size: tuple[int, int], source: Path) -> None:
        if min(size) < 2:
            raise UserError(f"{source}: downsampling by {self.downsample:g} leaves a {size[1]}x{size[0]} "
                            f"(width x height) image, smaller than 2x2; choose a larger downsampling factor")

    def camera(self, cam: int) -> tuple[np.ndarray, np.ndarray]:
        """(K (3, 3), Rt (3, 4)) float32 of camera ``cam`` for prepared views: K scaled by ``downsample``
        (rows 0 and 1), Rt world-to-camera with t in metres."""
        self._check_cam(cam)
        K = self._K[cam].copy()
        K[:2] *= self.downsample
        Rt = np.concatenate([self._R[cam], self._T_mm[cam][:, None] / 1000.0], axis=1)
        return K.astype(np.float32), Rt.astype(np.float32)

    def raw_camera(self, cam: int) -> dict[str, np.ndarray]:
        """The stored calibration of camera ``cam`` (float64): K at stored resolution, R, T (3,) in metres, D (k,) OpenCV distortion."""
        self._check_cam(cam)
        return {"K": self._K[cam].copy(), "R": self._R[cam].copy(), "T": self._T_mm[cam] / 1000.0,
                "D": self._D[cam].copy()}

    # ----------------------------------------------------------------- views
    def load_view(self, frame: int, cam: int) -> tuple[np.ndarray, np.ndarray]:
        """The prepared view of (frame, camera).

        Returns:
            image (H, W, 3) float32 RGB in [0, 1], background 0; mask (H, W) uint8 0/1, the union of ``mask``
            and ``mask_cihp``; H, W = stored size * downsample. Both are read-only (shared with the
            view cache).
        """
        key = (frame, cam)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        image_path = self.image_path(frame, cam)
        image = read_image_file(image_path)
        mask_files = self.mask_paths(frame, cam)
        if not mask_files:
            raise UserError(f"{self.expected_mask_path(frame, cam)}: mask missing (neither mask/ nor mask_cihp/ "
                            f"has a mask for {image_path.name})")
        mask = np.zeros(image.shape[:2], dtype=bool)
        for mask_file in mask_files:
            part = read_mask_file(mask_file)
            if part.shape != mask.shape:
                raise UserError(f"{mask_file}: mask size {part.shape[1]}x{part.shape[0]} differs from the image "
                                f"size {mask.shape[1]}x{mask.shape[0]}")
            mask |= part
        image, mask = self._prepare(image, mask.astype(np.uint8), cam, image_path)
        image.flags.writeable = False  # shared with the cache
        mask.flags.writeable = False
        self._cache.put(key, (image, mask))
        return image, mask

    def _prepare(self, image_u8: np.ndarray, mask: np.ndarray, cam: int, source: Path):
        height, width = image_u8.shape[:2]
        out_size = (int(height * self.downsample), int(width * self.downsample))
        self._check_size(out_size, source)
        image = image_u8.astype(np.float32) / 255.0
        D = self._D[cam]
        if self.undistort and np.any(D != 0):
            K = self._K[cam]
            map_x, map_y = cv2.initUndistortRectifyMap(K, D, None, K, (width, height), cv2.CV_32FC1)
            # fixed-point maps for the image: what cv2.undistort uses
            fixed_xy, fixed_frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
            image = cv2.remap(image, fixed_xy, fixed_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        if out_size != (height, width):
            image = cv2.resize(image, (out_size[1], out_size[0]), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (out_size[1], out_size[0]), interpolation=cv2.INTER_NEAREST)
        image = np.ascontiguousarray(image, dtype=np.float32)
        image[mask == 0] = 0.0
        return image, mask

    # ----------------------------------------------------------------- body
    @property
    def num_keypoints(self) -> int:
        """K, the keypoints per frame: the row count of the first listed frame's ``joints3d`` file (every
        other frame must have as many)."""
        if self._num_keypoints is None:
            self._num_keypoints = len(load_point_array(self.keypoints_path(self.frames[0]), "keypoints"))
        return self._num_keypoints

    def keypoints(self, frame: int) -> np.ndarray:
        """(K, 3) float32 world keypoints (metres) from ``joints3d/<frame>.npy``: K = :attr:`num_keypoints`
        (24 in SMPL joint order for bodies)."""
        return load_point_array(self.keypoints_path(frame), "keypoints", self.num_keypoints)

    def vertices(self, frame: int) -> np.ndarray:
        """(N, 3) float32 body vertices (world metres)."""
        return load_point_array(self.vertices_path(frame), "vertices")

    def bounds(self, frame: int) -> np.ndarray:
        """(2, 3) float32 person box [min, max] of the body vertices, z widened by 0.05 m on both ends."""
        vertices = self.vertices(frame)
        box = np.stack([vertices.min(axis=0), vertices.max(axis=0)]).astype(np.float32)
        box[0, 2] -= BOUNDS_Z_MARGIN
        box[1, 2] += BOUNDS_Z_MARGIN
        return box

    def body_params(self, frame: int) -> dict[str, Any]:
        """The body-model fit of ``frame`` (``params/<frame>.npy``), loaded without running code."""
        path = require_file(self.params_path(frame), "body-model parameters")
        params = load_npy(path)
        if not isinstance(params, dict):
            raise UserError(f"{path}: expected a pickled dict (with Rh and Th)")
        return params

    def body_orientation(self, frame: int) -> np.ndarray:
        """(3, 3) float64 global body rotation (from the axis-angle ``Rh``), used to orient orbits."""
        path = self.params_path(frame)
        params = self.body_params(frame)
        if "Rh" not in params:
            raise UserError(f"{path}: no 'Rh' entry")
        return axis_angle_to_matrix(_as_matrix(params["Rh"], (3,), "Rh", path))

    def body_translation(self, frame: int) -> np.ndarray:
        """(3,) float64 global body translation ``Th`` (metres)."""
        path = self.params_path(frame)
        params = self.body_params(frame)
        if "Th" not in params:
            raise UserError(f"{path}: no 'Th' entry")
        return _as_matrix(params["Th"], (3,), "Th", path)

    def __repr__(self) -> str:
        return (f"ZJUSubject({str(self.path)!r}, cameras={self.num_cameras}, frames={len(self.frames)}, "
                f"downsample={self.downsample:g})")
