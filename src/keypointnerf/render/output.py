"""Rendering cameras of one encoded frame into a folder: the folder ``keypointnerf render`` writes (its layout is
in :mod:`.commands`), which the viewer's orbit export writes too.

Cameras are OpenCV pinhole: K (3, 3) pixels, world-to-camera [R|t] (3, 4), metres.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from ..data.zju import ZJUSubject
from ..errors import UserError
from ..fileio import atomic_write_text
from ..geometry import scaled_camera
from ..memory import check_fits
from ..model.keypointnerf import KeypointNeRF, SourceEncoding
from .orbit import describe_body_frame, orbit_azimuths_deg, orbit_cameras
from .renderer import RenderConfig, render_image
from .video import VideoWriter, source_strip, write_png, write_view

RENDER_JSON = "render.json"
SOURCES_PNG = "sources.png"
VIEWS_DIR = "views"
ORBIT_DIR = "orbit"
ORBIT_VIDEO = "orbit.mp4"
DEFAULT_FPS = 30.0
#: an upper bound of what render_image keeps per pixel of an image (rays, their depth bounds, the outputs and
#: their gathered and scattered copies add up to about 250 bytes)
RENDER_BYTES_PER_PIXEL = 512


@dataclass(frozen=True)
class EncodedFrame:
    """One frame's source views encoded by a model: what every view rendered of that frame starts from."""

    model: KeypointNeRF
    info: dict                  # the model's checkpoint: load_model's info ("path", "kind", ...)
    subject: ZJUSubject
    frame: int
    sources: list[int]
    enc: SourceEncoding
    source_images: list         # [(H, W, 3) float in [0, 1]] the source views as encoded, in ``sources`` order
    keypoints: torch.Tensor     # (K, 3) world metres
    bounds: torch.Tensor        # (2, 3) the person's box [min, max], world metres
    device: torch.device


class CameraToRender(NamedTuple):
    """One image to render: its name, file stem (relative to the output folder), K (3, 3) and Rt (3, 4) float64,
    size, and what render.json records about it beside the camera."""

    name: str
    stem: str
    K: np.ndarray
    Rt: np.ndarray
    height: int
    width: int
    extra: dict


def check_render_size(subject: ZJUSubject, resolution: int | None) -> None:
    """Refuse (UserError) images of ``resolution`` (longer side; None = the subject's size) too large to render
    in the memory available."""
    _, height, width = scaled_camera(np.eye(3), subject.image_size, resolution)
    check_fits(height * width * RENDER_BYTES_PER_PIXEL, f"rendering {width}x{height} images")


def as_list(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 8).tolist()


def target_cameras(subject: ZJUSubject, targets: list[int], resolution: int | None) -> list[CameraToRender]:
    """The data set's cameras ``targets`` at ``resolution`` (longer side; None = the subject's image size)."""
    cameras = []
    for cam in targets:
        K, Rt = subject.camera(cam)
        K, height, width = scaled_camera(K, subject.image_size, resolution)
        cameras.append(CameraToRender(f"cam{cam:02d}", f"{VIEWS_DIR}/cam{cam:02d}", K, Rt.astype(np.float64), height,
                                      width, {"camera": cam}))
    return cameras


def orbit_of(encoded: EncodedFrame, count: int, radius: float | None, elevation: float | None,
             resolution: int | None, fps: float, arc: float | None = None) -> tuple[list[CameraToRender], dict]:
    """``count`` cameras on a circle around the person, or on an ``arc`` (degrees, None = 360) of it centred in
    front (see ``orbit_cameras``) -> (cameras, render.json's "orbit" record).

    ``radius`` (metres) None: the mean distance of the data set's cameras to the keypoints' centre, brought within
    the model's depth range where needed (said on stderr); a given radius outside it is a UserError.
    ``elevation`` (degrees above the body's horizontal plane) None: 0. The intrinsics are the first source
    camera's, scaled to ``resolution``."""
    model, subject, frame, sources = encoded.model, encoded.subject, encoded.frame, encoded.sources
    centre = encoded.keypoints.double().mean(0).numpy()
    up, facing, frame_info = describe_body_frame(subject, frame)
    given_radius = radius
    if radius is None:
        centres = [-(Rt[:, :3].T @ Rt[:, 3]) for Rt in (subject.camera(c)[1].astype(np.float64)
                                                       for c in range(subject.num_cameras))]
        radius = float(np.mean([np.linalg.norm(c - centre) for c in centres]))
    # the model sees depths in [znear, zfar] only (outside them rays are clipped): the person must fit
    bounds = encoded.bounds
    half = float(np.linalg.norm((bounds[1] - bounds[0]).double().cpu().numpy())) / 2
    low, high = model.cfg.znear + half, model.cfg.zfar - half
    if not low <= radius <= high:
        message = (f"an orbit of radius {radius:.2f} m puts parts of the person outside the model's depth range "
                   f"{model.cfg.znear:g}-{model.cfg.zfar:g} m (they would be cut off)")
        if given_radius is not None:
            raise UserError(f"--radius {given_radius}: {message}; choose a radius in [{low:.2f}, {high:.2f}]")
        if low <= high:  # the default radius is only a choice: take the nearest one that fits
            fitted = min(max(radius, low), high)
            print(f"note: {message}; the orbit uses radius {fitted:.2f} m instead (--radius sets it)",
                  file=sys.stderr)
            radius = fitted
        else:
            print(f"warning: {message}; the person is too large for that range at any radius", file=sys.stderr)
    elevation = 0.0 if elevation is None else elevation
    K, height, width = scaled_camera(subject.camera(sources[0])[0], subject.image_size, resolution)
    digits = max(3, len(str(count - 1)))
    arc = 360.0 if arc is None else arc
    azimuths = orbit_azimuths_deg(count, arc)
    cameras = []
    for k, (K_k, Rt_k) in enumerate(orbit_cameras(centre, up, facing, count, radius, elevation, K, arc)):
        name = f"frame{k:0{digits}d}"
        cameras.append(CameraToRender(name, f"{ORBIT_DIR}/{name}", K_k, Rt_k, height, width,
                                      {"azimuth_deg": round(azimuths[k], 6)}))
    orbit = {"count": count, "center": as_list(centre), "up": as_list(up), "facing": as_list(facing),
             "radius_m": radius, "elevation_deg": elevation, "arc_deg": arc, "fps": fps, "video": ORBIT_VIDEO,
             "intrinsics_from_camera": sources[0], "body_frame": frame_info}
    return cameras, orbit


def render_to_folder(out: Path, encoded: EncodedFrame, cfg: RenderConfig, cameras: list[CameraToRender],
                     orbit: dict | None = None, targets: list[int] | None = None, depth: bool = False,
                     opacity: bool = False, started: float | None = None) -> dict:
    """Render ``cameras`` from ``encoded`` into ``out``: sources.png, one image per camera (with ``depth`` /
    ``opacity`` pictures beside) and, with ``orbit`` (the record :func:`orbit_of` made), the video at
    ``orbit["fps"]``; render.json last -> its content.

    ``targets``: the target camera numbers, recorded in render.json; ``started``: ``time.perf_counter()`` when
    the work began, for render.json's "seconds" (default: now)."""
    started = time.perf_counter() if started is None else started
    subject = encoded.subject
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / SOURCES_PNG, source_strip(encoded.source_images))
    written = [SOURCES_PNG]
    bounds_np = encoded.bounds.numpy().astype(np.float64)
    video = VideoWriter(out / ORBIT_VIDEO, fps=orbit["fps"]) if orbit is not None else None
    records = []
    try:
        for name, stem, K, Rt, height, width, extra in tqdm(cameras, desc="render", unit="view"):
            result = render_image(encoded.model, encoded.enc, torch.from_numpy(K).float(),
                                  torch.from_numpy(Rt).float(), height, width, encoded.bounds, cfg)
            pictures, files, fields = write_view(out, stem, result, Rt, bounds_np, depth, opacity)
            records.append({"name": name, **extra, "width": width, "height": height, "K": as_list(K),
                            "Rt": as_list(Rt), **fields, "files": files})
            written.extend(files.values())
            if video is not None:
                video.append(pictures["rgb"])
        if video is not None:
            video.close()
            written.append(ORBIT_VIDEO)
    except BaseException:
        if video is not None:
            video.abort()
        raise

    description = {
        "command": "render",
        "checkpoint": {"path": str(Path(encoded.info["path"]).resolve()), "kind": encoded.info["kind"]},
        "data": str(subject.path.resolve()), "subject": subject.name, "frame": encoded.frame,
        "sources": encoded.sources, "downsample": subject.downsample, "image_size": list(subject.image_size),
        "mode": "orbit" if orbit else "targets", "targets": targets, "orbit": orbit,
        "render_config": dataclasses.asdict(cfg), "bounds": as_list(bounds_np), "device": str(encoded.device),
        "conventions": "OpenCV world-to-camera Rt (x right, y down, z forward), metres; pixel (u, v) ~ K (R x + t)",
        "cameras": records, "files": written, "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_text(out / RENDER_JSON, json.dumps(description, indent=2) + "\n")
    return description
