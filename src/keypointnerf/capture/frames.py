"""The frames of a capture, per camera: ``images/<cam>/<frame>.jpg`` (sorted by name) or ``videos/<cam>.mp4``.

Cameras are synchronised by index: the i-th image (sorted by file name) or the i-th video frame of every camera
is frame i. Images are (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from ..data.zju import read_image_file
from ..errors import UserError
from .calibration import Camera

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


class CameraFrames:
    """The frames of one camera. ``count`` frames, ``size`` (H, W), ``describe(i)`` names frame i's source."""

    def __init__(self, camera: Camera, root: Path):
        self.camera = camera
        image_folder = root / "images" / camera.name
        videos = [root / "videos" / f"{camera.name}{s}" for s in VIDEO_SUFFIXES]
        videos = [v for v in videos if v.is_file()]
        self.video: Path | None = None
        self.files: list[Path] = []
        if image_folder.is_dir():
            self.files = sorted(p for p in image_folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                                and not p.name.startswith("."))
            if not self.files:
                raise UserError(f"{image_folder}: no images (.jpg, .png) for camera {camera.name!r}")
            self.count = len(self.files)
            self.size = read_image_file(self.files[0]).shape[:2]
            self.location = image_folder
        elif videos:
            self.video = videos[0]
            try:
                reader = imageio_ffmpeg.read_frames(str(self.video))
                meta = next(reader)
                reader.close()
                self.count = imageio_ffmpeg.count_frames_and_secs(str(self.video))[0]
            except (OSError, RuntimeError, StopIteration) as exc:
                raise UserError(f"{self.video}: unreadable video for camera {camera.name!r} ({exc})") from None
            width, height = meta["size"]
            self.size = (int(height), int(width))
            self.location = self.video
        else:
            raise UserError(f"{root}: camera {camera.name!r} is in the calibration but has no images "
                            f"(neither images/{camera.name}/ nor videos/{camera.name}.mp4)")
        if self.count == 0:
            raise UserError(f"{self.location}: no frames for camera {camera.name!r}")

    def describe(self, index: int) -> str:
        return str(self.files[index]) if self.files else f"{self.video} frame {index}"

    def stem(self, index: int) -> str:
        """The name of frame ``index`` used for matching per-frame files (mask, OpenPose JSON)."""
        return self.files[index].stem if self.files else f"{index:06d}"

    def iterate(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, image) for the (sorted) ``indices``; a video is decoded once, front to back."""
        if self.files:
            for index in indices:
                yield index, self._checked(read_image_file(self.files[index]), index)
            return
        wanted = set(indices)
        last = max(indices) if indices else -1
        reader = imageio_ffmpeg.read_frames(str(self.video), pix_fmt="rgb24")
        try:
            meta = next(reader)
            width, height = meta["size"]
            for index, raw in enumerate(reader):
                if index > last:
                    break
                if index in wanted:
                    yield index, np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()
        finally:
            reader.close()

    def _checked(self, image: np.ndarray, index: int) -> np.ndarray:
        if image.shape[:2] != tuple(self.size):
            raise UserError(f"{self.files[index]}: image size {image.shape[1]}x{image.shape[0]} differs from "
                            f"{self.size[1]}x{self.size[0]} of camera {self.camera.name!r}'s first image and its "
                            f"calibration (camera {self.camera.name!r}, frame {index})")
        return image


def open_frames(root: Path, cameras: list[Camera]) -> tuple[list[CameraFrames], int, list[str]]:
    """Every camera's frames, checked against the calibration. Returns (per camera, frame count, warnings).

    Raises UserError naming the camera when it has no images, or when its image size disagrees with the
    calibration (the stated size, or a principal point outside the image). Cameras with different frame
    counts are cut to the shortest (a warning).
    """
    sources = [CameraFrames(camera, root) for camera in cameras]
    warnings = []
    for source in sources:
        height, width = source.size
        camera = source.camera
        if camera.size is not None and tuple(camera.size) != (height, width):
            raise UserError(f"{source.location}: camera {camera.name!r}: images are {width}x{height} (width x "
                            f"height) but the calibration says {camera.size[1]}x{camera.size[0]}")
        cx, cy = camera.K[0, 2], camera.K[1, 2]
        if not (0 < cx < width and 0 < cy < height):
            raise UserError(f"{source.location}: camera {camera.name!r}: the calibration's principal point "
                            f"({cx:g}, {cy:g}) lies outside its {width}x{height} images: the images do not "
                            f"have the calibrated size (resized or another camera?)")
    counts = [s.count for s in sources]
    count = min(counts)
    if len(set(counts)) > 1:
        warnings.append("cameras have different frame counts (" + ", ".join(
            f"{s.camera.name}: {s.count}" for s in sources) + f"); using the first {count} of each")
    known = {c.name for c in cameras}
    for folder in ("images", "videos"):
        if (root / folder).is_dir():
            extra = sorted({p.stem if folder == "videos" else p.name for p in (root / folder).iterdir()
                            if not p.name.startswith(".")} - known)
            if extra:
                warnings.append(f"{root / folder}: {extra} not in the calibration: ignored")
    return sources, count, warnings
