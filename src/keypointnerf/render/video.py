"""Writing rendered pictures: 8-bit PNGs, H.264 MP4 videos (imageio + imageio-ffmpeg), strips of source views and
colour-mapped depth.

Images here are numpy arrays (H, W, 3) (or (H, W) greyscale), either float in [0, 1] or uint8.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import imageio.v2 as imageio
import numpy as np
from PIL import Image

from ..errors import UserError
from ..fileio import atomic_path, atomic_writer, temporary_sibling
from ..imaging import to_uint8

#: imageio's ffmpeg quality scale (0-10, 10 = best); 8 keeps renders sharp at a modest size
DEFAULT_QUALITY = 8


def write_png(path: str | Path, image) -> Path:
    """Write an image (see :func:`to_uint8`) as PNG atomically (temporary file + rename); creates the folder."""
    path = Path(path)
    with atomic_writer(path) as handle:
        Image.fromarray(to_uint8(image)).save(handle, format="PNG")
    return path


def pad_to_even(image: np.ndarray) -> np.ndarray:
    """Pad (H, W, C) with black on the bottom/right to even sides: H.264 in yuv420p halves the chroma
    resolution, so odd sides cannot be encoded (padding keeps the pixels; a resize would blur them)."""
    height, width = image.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (image.ndim - 2))


class VideoWriter:
    """An H.264 (libx264, yuv420p) MP4 written frame by frame; the file appears under its name only when closed
    successfully (written under a temporary name, then renamed).

    Usage: ``with VideoWriter(path, fps=30) as video: video.append(frame)``; frames (H, W, 3) float in [0, 1]
    or uint8, all of the same size; odd sizes are padded by one black row/column (:func:`pad_to_even`).
    """

    def __init__(self, path: str | Path, fps: float = 30, quality: float = DEFAULT_QUALITY):
        if not fps > 0:
            raise UserError(f"video frame rate must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._writer = None
        self._temporary = temporary_sibling(self.path)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # macro_block_size=1: imageio would otherwise resize frames to multiples of 16
            self._writer = imageio.get_writer(self._temporary, format="FFMPEG", mode="I", fps=self.fps,
                                              codec="libx264", pixelformat="yuv420p", quality=self.quality,
                                              macro_block_size=1, ffmpeg_log_level="error")
        except Exception as exc:  # noqa: BLE001 - a missing ffmpeg binary or codec is the user's to fix
            raise UserError(f"{self.path}: cannot start the H.264 encoder ({exc}); is imageio-ffmpeg "
                            f"installed?") from None

    def append(self, frame) -> None:
        frame = to_uint8(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        frame = pad_to_even(np.ascontiguousarray(frame[..., :3]))
        if self._size is None:
            self._size = frame.shape[:2]
            self._open()
        elif frame.shape[:2] != self._size:
            raise ValueError(f"video frames must share one size: {frame.shape[:2]} after {self._size}")
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> Path:
        if self._writer is None:
            raise ValueError(f"{self.path}: no frames were written")
        try:
            self._writer.close()
            self._writer = None
            with atomic_path(self.path) as temporary:
                os.replace(self._temporary, temporary)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - already failing; only clean up
                pass
            self._writer = None
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames: Iterable, fps: float = 30, quality: float = DEFAULT_QUALITY) -> int:
    """Write ``frames`` (each (H, W, 3) float in [0, 1] or uint8) as an H.264 MP4 -> the number of frames."""
    with VideoWriter(path, fps=fps, quality=quality) as video:
        for frame in frames:
            video.append(frame)
    return video.frames


def source_strip(images: Sequence, height: int | None = None, gap: int = 4) -> np.ndarray:
    """The source views side by side, left to right, as one (H, sum W + gap * (V - 1), 3) uint8 image.

    images: V images (H_v, W_v, 3), float in [0, 1] or uint8 (or torch (3, H, W)); each is resized (area
    interpolation) to ``height`` rows (default: the first image's height) keeping its aspect ratio; ``gap``
    black columns separate them.
    """
    if not len(images):
        raise ValueError("no images for the strip")
    tiles = [to_uint8(image) for image in images]
    tiles = [np.repeat(t[..., None], 3, axis=2) if t.ndim == 2 else t[..., :3] for t in tiles]
    height = int(height or tiles[0].shape[0])
    resized = []
    for tile in tiles:
        if tile.shape[0] != height:
            width = max(1, int(round(tile.shape[1] * height / tile.shape[0])))
            tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA)
        resized.append(tile)
    width = sum(t.shape[1] for t in resized) + gap * (len(resized) - 1)
    strip = np.zeros((height, width, 3), dtype=np.uint8)
    left = 0
    for tile in resized:
        strip[:, left:left + tile.shape[1]] = tile
        left += tile.shape[1] + gap
    return strip


def depth_to_color(depth, opacity, near: float, far: float, min_opacity: float = 0.5) -> np.ndarray:
    """Colour-map a depth image for viewing -> (H, W, 3) uint8.

    depth, opacity: (H, W) (or (1, H, W)) metres along the ray and accumulated opacity. Depths are normalised
    linearly from ``near`` (red) to ``far`` (blue) with OpenCV's TURBO colour map; pixels with opacity below
    ``min_opacity`` (empty space, whose expected depth means nothing) are black.
    """
    depth = np.asarray(depth.detach().cpu() if hasattr(depth, "detach") else depth, dtype=np.float64)
    opacity = np.asarray(opacity.detach().cpu() if hasattr(opacity, "detach") else opacity, np.float64)
    depth = depth[0] if depth.ndim == 3 else depth            # (1, H, W) renderer layout -> (H, W)
    opacity = opacity[0] if opacity.ndim == 3 else opacity
    scaled = np.clip((far - depth) / max(far - near, 1e-9), 0.0, 1.0)        # near -> 1 -> red end of TURBO
    colours = cv2.applyColorMap((scaled * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    colours = np.ascontiguousarray(colours)
    colours[opacity < min_opacity] = 0
    return colours


def depth_range(Rt: np.ndarray, bounds: np.ndarray) -> tuple[float, float]:
    """Near/far (metres along the ray) for colour-mapping depth: the person's box seen from this camera, so all
    views of one run share the scale (no flicker in an orbit)."""
    R, t = Rt[:, :3], Rt[:, 3]
    centre_cam = -R.T @ t
    box_centre = bounds.mean(axis=0)
    half_diagonal = float(np.linalg.norm(bounds[1] - bounds[0]) / 2)
    distance = float(np.linalg.norm(box_centre - centre_cam))
    return max(distance - half_diagonal, 0.0), distance + half_diagonal


def view_pictures(result: dict, Rt: np.ndarray, bounds: np.ndarray, depth: bool = False,
                  opacity: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """The pictures of one rendered camera (``render_image``'s ``result``; world-to-camera ``Rt`` (3, 4); the
    person's box ``bounds`` (2, 3)) -> ({"rgb": (H, W, 3) float in [0, 1], "depth": (H, W, 3) uint8 colours
    (see ``--depth``), "opacity": (H, W) float}, extra render.json fields (``depth_range_m``)); depth and
    opacity only when asked."""
    pictures = {"rgb": result["rgb"].float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()}
    fields = {}
    if depth:
        near, far = depth_range(Rt, bounds)
        pictures["depth"] = depth_to_color(result["depth"].cpu(), result["opacity"].cpu(), near, far)
        fields["depth_range_m"] = [round(near, 6), round(far, 6)]
    if opacity:
        pictures["opacity"] = result["opacity"][0].float().cpu().clamp(0, 1).numpy()
    return pictures, fields


def write_view(out: Path, stem: str, result: dict, Rt: np.ndarray, bounds: np.ndarray, depth: bool = False,
               opacity: bool = False) -> tuple[dict[str, np.ndarray], dict, dict]:
    """Write :func:`view_pictures` as ``out/<stem>.png``, ``<stem>_depth.png``, ``<stem>_opacity.png`` ->
    (pictures, files {"rgb"|"depth"|"opacity": path relative to ``out``}, extra render.json fields)."""
    pictures, fields = view_pictures(result, Rt, bounds, depth, opacity)
    files = {kind: write_png(out / f"{stem}{'' if kind == 'rgb' else '_' + kind}.png", picture)
             .relative_to(out).as_posix() for kind, picture in pictures.items()}
    return pictures, files, fields
