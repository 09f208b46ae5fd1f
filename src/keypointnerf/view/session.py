"""What the viewer shows, without a browser: a model, one subject, its frame and source views encoded once, and
renders from any pinhole camera.

Renders are ``render_image`` calls with the model's render settings, as ``keypointnerf render`` makes them, so
the last (full-resolution) step of a progressive render has the pixels ``render`` writes for that camera;
exports go through ``render``'s own writers (``view_pictures`` / ``write_view``, ``render.output`` for the orbit).

Cameras are OpenCV pinhole: K (3, 3) in pixels, world-to-camera [R|t] (3, 4), metres (x right, y down,
z forward), the ray of pixel (u, v) through ``K^-1 [u, v, 1]``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..fileio import atomic_write_text
from ..geometry import scaled_camera
from ..imaging import to_uint8
from ..options import check_cameras, check_frame, check_source_views, encode_sources, load_checked_model
from ..paths import check_out_dir
from ..render.output import (DEFAULT_FPS, ORBIT_VIDEO, EncodedFrame, check_render_size, orbit_of,
                             render_to_folder)
from ..render.renderer import RenderConfig, render_image
from ..render.video import view_pictures, write_view

#: parent joint of each of the 24 SMPL keypoints (-1: the pelvis, the root), for drawing the skeleton
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
#: what the render shows: its colours, its depth colour-mapped (as ``render --depth``), its opacity
DISPLAYS = ("colour", "depth", "opacity")
#: the shortest side a preview step is rendered at
MIN_PREVIEW_SIDE = 16
#: depth (metres) given to the browser where the render is transparent: the scene shows through
EMPTY_DEPTH = 100.0
VIEW_JSON_FORMAT = "keypointnerf-view-export"


@dataclass(frozen=True)
class ViewCamera:
    """A camera to render: K (3, 3) float64 pixels, Rt (3, 4) float64 world-to-camera, image height x width."""

    K: np.ndarray
    Rt: np.ndarray
    height: int
    width: int

    def resized(self, long_side: int) -> "ViewCamera":
        """The same camera for an image whose longer side is ``long_side`` pixels (K scaled as ``render
        --resolution`` scales it)."""
        K, height, width = scaled_camera(self.K, (self.height, self.width), long_side)
        return ViewCamera(K, self.Rt, height, width)


def quaternion_to_matrix(wxyz) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> rotation matrix (3, 3) float64."""
    return Rotation.from_quat(np.asarray(wxyz, dtype=np.float64), scalar_first=True).as_matrix()


def camera_pose(Rt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera [R|t] (3, 4) -> (wxyz (4,): the camera-to-world rotation R^T as a unit quaternion,
    position (3,) = -R^T t, metres): the pose as the browser's camera and viser's scene nodes take it."""
    Rt = np.asarray(Rt, dtype=np.float64)
    R, t = Rt[:, :3], Rt[:, 3]
    return Rotation.from_matrix(R.T).as_quat(scalar_first=True), -R.T @ t


def camera_from_pose(wxyz, position, fov_y: float, aspect: float, long_side: int) -> ViewCamera:
    """The browser's camera as a pinhole camera whose image's longer side has ``long_side`` pixels.

    Args:
        wxyz: (4,) unit quaternion of the camera-to-world rotation (viser's ``CameraHandle.wxyz``: OpenCV
            axes, x right, y down, z forward).
        position: (3,) camera centre in world metres.
        fov_y: vertical field of view in radians.
        aspect: image width / height.
        long_side: pixels of the longer image side (>= 1).
    Returns:
        square pixels, the principal point in the image's centre ((W - 1) / 2, (H - 1) / 2), and
        fy = (H / 2) / tan(fov_y / 2), so the image spans exactly the field of view.
    """
    if aspect >= 1:
        width, height = int(long_side), max(1, int(round(long_side / aspect)))
    else:
        width, height = max(1, int(round(long_side * aspect))), int(long_side)
    focal = (height / 2) / math.tan(fov_y / 2)
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    R = quaternion_to_matrix(wxyz).T
    t = -R @ np.asarray(position, dtype=np.float64)
    return ViewCamera(K, np.concatenate([R, t[:, None]], axis=1), height, width)


def vertical_fov(K: np.ndarray, height: int) -> float:
    """Vertical field of view (radians) of a camera with intrinsics K and ``height`` rows."""
    return 2 * math.atan2(height / 2, float(K[1, 1]))


def z_depth(depth: np.ndarray, camera: ViewCamera) -> np.ndarray:
    """Depth along each pixel's ray (H, W) -> depth along the camera's z axis (H, W) (what a 3D viewer's depth
    buffer holds): the ray's distance times the cosine between the ray and the optical axis."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(camera.K).T
    return depth / np.linalg.norm(rays, axis=-1)


def next_free_stem(out: Path, prefix: str, suffixes: tuple[str, ...]) -> str:
    """``<prefix>_<NNN>``, the first number for which no ``out/<stem><suffix>`` exists (exports never
    overwrite)."""
    number = 0
    while any((out / f"{prefix}_{number:03d}{suffix}").exists() for suffix in suffixes):
        number += 1
    return f"{prefix}_{number:03d}"


class ViewSession:
    """A model and one subject: the frame and source views currently encoded, rendered from any camera.

    Not thread-safe: one thread (the viewer's render worker) calls ``select``, ``render`` and the exports.
    """

    def __init__(self, checkpoint: Path, subject, device, frame: int | None, sources: list[int],
                 sampling: dict | None = None):
        self.checkpoint, self.subject, self.device = Path(checkpoint), subject, device
        self.sampling = dict(sampling or {})
        self.model, self.info = load_checked_model(checkpoint, device, subject)
        self.cfg = RenderConfig.for_checkpoint(self.info, **self.sampling)
        self.frame: int = -1
        self.sources: list[int] = []
        self.select(frame, sources)

    # ------------------------------------------------------------------------------------------- state
    def select(self, frame: int | None, sources: list[int]) -> None:
        """Encode the source views ``sources`` of ``frame`` (None: the first frame), checked as ``render`` checks
        them (UserError naming the problem; the previous selection stays)."""
        frame = check_frame(self.subject, frame)
        check_cameras(self.subject, sources, "--sources")
        enc, images, keypoints, bounds = encode_sources(self.model, self.subject, frame, sources, self.device)
        self.encoded = EncodedFrame(self.model, self.info, self.subject, frame, list(sources), enc, images, keypoints,
                                    bounds, self.device)
        self.enc, self.frame, self.sources = enc, frame, list(sources)
        self.bounds = bounds
        self.keypoints = keypoints.numpy().astype(np.float64)

    @property
    def bounds_np(self) -> np.ndarray:
        """(2, 3) float64 the person's box [min, max], world metres."""
        return self.bounds.numpy().astype(np.float64)

    def capture_cameras(self) -> list[ViewCamera]:
        """Every camera of the subject, at the size of its prepared views."""
        height, width = self.subject.image_size
        return [ViewCamera(K.astype(np.float64), Rt.astype(np.float64), height, width)
                for K, Rt in (self.subject.camera(c) for c in range(self.subject.num_cameras))]

    def photo(self, cam: int) -> np.ndarray:
        """(H, W, 3) float in [0, 1]: camera ``cam``'s prepared view of the current frame (background black)."""
        return self.subject.load_view(self.frame, cam)[0]

    # ------------------------------------------------------------------------------------------- rendering
    def steps(self, long_side: int) -> list[tuple[int, object]]:
        """The progressive steps for images whose longer side is ``long_side``: (side, RenderConfig) pairs, a
        quarter-size preview with coarse samples only, half size, then full size with the model's settings."""
        sides = sorted({max(MIN_PREVIEW_SIDE, long_side // 4), max(MIN_PREVIEW_SIDE, long_side // 2), long_side})
        sides = [side for side in sides if side <= long_side]
        preview = dataclasses.replace(self.cfg, fine_samples=0)
        return [(side, preview if k == 0 and len(sides) > 1 else self.cfg) for k, side in enumerate(sides)]

    def render(self, camera: ViewCamera, cfg=None, should_stop: Callable[[], bool] | None = None) -> dict:
        """``render_image`` of ``camera`` from the current encoding (``cfg``: default the model's settings, as
        ``render`` uses them); ``should_stop()`` true between chunks of rays raises ``RenderCancelled``."""
        return render_image(self.model, self.enc, torch.from_numpy(camera.K).float(),
                            torch.from_numpy(camera.Rt).float(), camera.height, camera.width, self.bounds,
                            cfg or self.cfg, should_stop=should_stop)

    def picture(self, result: dict, camera: ViewCamera, display: str = "colour") -> tuple[np.ndarray, np.ndarray]:
        """What the browser shows of a render -> (image (H, W, 3) uint8, z-depth (H, W) float32 metres for
        compositing with the 3D scene; ``EMPTY_DEPTH`` where the opacity is below 0.5)."""

        if display not in DISPLAYS:
            raise ValueError(f"display must be one of {DISPLAYS}, got {display!r}")
        pictures, _ = view_pictures(result, camera.Rt, self.bounds_np, depth=display == "depth",
                                    opacity=display == "opacity")
        image = to_uint8(pictures[{"colour": "rgb"}.get(display, display)])
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        opacity = result["opacity"][0].float().cpu().numpy()
        depth = z_depth(result["depth"][0].float().cpu().numpy().astype(np.float64), camera)
        depth = np.where(opacity >= 0.5, depth, EMPTY_DEPTH).astype(np.float32)
        return image, depth

    # ------------------------------------------------------------------------------------------- exports
    def describe(self) -> dict:
        """What is shown: checkpoint, data, frame, sources and render settings (render.json's fields)."""
        return {"checkpoint": {"path": str(Path(self.info["path"]).resolve()), "kind": self.info["kind"]},
                "data": str(self.subject.path.resolve()), "subject": self.subject.name, "frame": self.frame,
                "sources": self.sources, "downsample": self.subject.downsample,
                "render_config": dataclasses.asdict(self.cfg), "bounds": self.bounds_np.round(8).tolist(),
                "device": str(self.device)}

    def export_view(self, out: Path, camera: ViewCamera, result: dict) -> dict[str, Path]:
        """Write a full-resolution render of ``camera`` as ``render`` writes a view: ``out/view_NNN.png``,
        ``_depth.png``, ``_opacity.png`` (the first free NNN), and ``view_NNN.json`` (the camera and
        :meth:`describe`) -> {"rgb"|"depth"|"opacity"|"json": path}."""
        out.mkdir(parents=True, exist_ok=True)
        stem = next_free_stem(out, "view", (".png", ".json"))
        _, files, fields = write_view(out, stem, result, camera.Rt, self.bounds_np, depth=True, opacity=True)
        record = {"format": VIEW_JSON_FORMAT, "command": "view", **self.describe(),
                  "camera": {"width": camera.width, "height": camera.height, "K": camera.K.round(8).tolist(),
                             "Rt": camera.Rt.round(8).tolist(), **fields, "files": files},
                  "conventions": "OpenCV world-to-camera Rt (x right, y down, z forward), metres; "
                                 "pixel (u, v) ~ K (R x + t)"}
        atomic_write_text(out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        return {**{kind: out / name for kind, name in files.items()}, "json": out / f"{stem}.json"}

    def export_orbit(self, out: Path, frames: int, resolution: int) -> Path:
        """Write an orbit of ``frames`` views of the current frame, sources and settings at ``resolution`` px into
        ``out`` (a new folder), as ``keypointnerf render --orbit`` (:meth:`orbit_arguments`) writes it -> the
        video's path."""
        check_source_views(self.subject, self.frame, self.sources)
        check_render_size(self.subject, resolution)
        check_out_dir(out, force=False)
        cameras, orbit = orbit_of(self.encoded, frames, None, None, resolution, DEFAULT_FPS)
        render_to_folder(out, self.encoded, self.cfg, cameras, orbit)
        return out / ORBIT_VIDEO

    def orbit_arguments(self, out: Path, frames: int, resolution: int) -> list[str]:
        """The ``keypointnerf render --orbit`` command line that writes what :meth:`export_orbit` writes."""
        argv = ["render", "--checkpoint", str(self.checkpoint), "--data", str(self.subject.path),
                "--frame", str(self.frame), "--sources", ",".join(map(str, self.sources)),
                "--orbit", str(frames), "--resolution", str(resolution),
                "--downsample", repr(float(self.subject.downsample)), "--device", str(self.device), "-o", str(out)]
        for name, value in self.sampling.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        return argv
