"""``keypointnerf render``: render chosen cameras, or a 360-degree orbit video, of one frame of a subject.

Writes into ``--out DIR``::

    sources.png                     the source views side by side (left to right in --sources order)
    views/cam<NN>.png               one per --targets camera           (or, with --orbit N:)
    orbit/frame<NNN>.png            N frames around the person, and orbit.mp4 (H.264)
    ..._depth.png, ..._opacity.png  with --depth / --opacity, next to each rendered image
    render.json                     what was rendered: checkpoint, data, frame, sources, every camera (K, Rt)

The source views are encoded once; every view is rendered from that encoding.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..fileio import atomic_write_text
from ..geometry import scaled_camera
from ..memory import check_fits
from ..model.checkpoint import resolve_checkpoint_path
from ..options import (add_checkpoint_argument, add_sampling_arguments, add_subject_arguments, check_cameras,
                       check_frame, check_minimums, check_source_views, encode_sources, load_checked_model,
                       open_subject, parse_cameras, sampling_option_minimums, sampling_overrides)
from ..paths import check_out_dir
from .orbit import describe_body_frame, orbit_azimuths_deg, orbit_cameras
from .renderer import RenderConfig, render_image
from .video import VideoWriter, source_strip, write_png, write_view

RENDER_JSON = "render.json"
SOURCES_PNG = "sources.png"
VIEWS_DIR = "views"
ORBIT_DIR = "orbit"
ORBIT_VIDEO = "orbit.mp4"
#: an upper bound of what render_image keeps per pixel of an image (rays, their depth bounds, the outputs and
#: their gathered and scattered copies add up to about 250 bytes)
RENDER_BYTES_PER_PIXEL = 512


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="render target cameras or a 360-degree orbit video of one frame from its source views",
        description="Encode the source views of one frame of a ZJU-MoCap-layout subject once and render either "
                    "the given target cameras of the data set (--targets) or N cameras on a circle around the "
                    "person (--orbit, plus an H.264 video). The orbit circles the body's up axis (pelvis -> neck "
                    "keypoints) starting in front of the body (hips' left-right axis x up), looking at the centre "
                    "of the keypoints. Writes DIR/sources.png, DIR/views/cam<NN>.png or DIR/orbit/frame<NNN>.png "
                    "and DIR/orbit.mp4, and DIR/render.json describing every camera.")
    add_checkpoint_argument(parser)
    add_subject_arguments(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--targets", metavar="C,C,...", help="render these cameras of the data set")
    what.add_argument("--orbit", type=int, metavar="N", help="render N cameras evenly spaced on a circle "
                                                             "around the person and an MP4 of them")
    parser.add_argument("--radius", type=float, metavar="M",
                        help="orbit radius in metres (default: the mean distance of the data set's cameras to "
                             "the keypoints' centre, brought within the model's depth range where needed)")
    parser.add_argument("--elevation", type=float, metavar="DEG",
                        help="orbit cameras' angle above the body's horizontal plane in degrees (default 0)")
    parser.add_argument("--arc", type=float, metavar="DEG",
                        help="orbit over an arc of DEG degrees centred in front of the person instead of the whole "
                             "circle (e.g. 120 for a head seen from the front; default 360)")
    parser.add_argument("--resolution", type=int, metavar="PX",
                        help="longer side of the rendered images in pixels (default: the size of the data set's "
                             "images after --downsample); intrinsics are scaled to match")
    parser.add_argument("--fps", type=float, default=30.0, help="orbit video frame rate (default 30)")
    parser.add_argument("--depth", action="store_true",
                        help="also write <name>_depth.png: depth along the ray, colour-mapped with TURBO from red "
                             "(near) to blue (far) over the person's box as seen from that camera; black where "
                             "the opacity is below 0.5")
    parser.add_argument("--opacity", action="store_true",
                        help="also write <name>_opacity.png: accumulated opacity as greyscale (white = opaque)")
    add_sampling_arguments(parser)
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (new or empty)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty DIR: overwrites the files this run writes; nothing is "
                             "deleted (frames of a longer earlier orbit stay; render.json lists this run's)")
    add_device_argument(parser)
    parser.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------- the verb
def _check_options(args) -> None:
    check_minimums(("--orbit", args.orbit, 1), ("--resolution", args.resolution, 1), *sampling_option_minimums(args))
    if not args.fps > 0:
        raise UserError(f"--fps must be positive, got {args.fps}")
    if args.orbit is None and (args.radius is not None or args.elevation is not None or args.arc is not None):
        raise UserError("--radius, --elevation and --arc apply to --orbit only")
    if args.arc is not None and not (0 < args.arc <= 360 and (args.arc == 360 or args.orbit >= 2)):
        raise UserError(f"--arc {args.arc:g}: must be in (0, 360] degrees, with --orbit 2 or more below 360")
    if args.radius is not None and not args.radius > 0:
        raise UserError(f"--radius must be positive (metres), got {args.radius}")
    if args.elevation is not None and not abs(args.elevation) < 90:
        raise UserError(f"--elevation must lie strictly between -90 and 90 degrees, got {args.elevation}")


def _as_list(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 8).tolist()


def run(args) -> int:
    started = time.perf_counter()
    # every check that needs no heavy work first: bad input stops before anything is loaded or written
    _check_options(args)
    sources = parse_cameras(args.sources, "--sources")
    targets = parse_cameras(args.targets, "--targets") if args.targets is not None else None
    checkpoint = resolve_checkpoint_path(args.checkpoint)
    subject = open_subject(args.data, args.downsample)
    frame = check_frame(subject, args.frame)
    check_cameras(subject, sources, "--sources")
    if targets is not None:
        check_cameras(subject, targets, "--targets")
    check_source_views(subject, frame, sources, hint="; choose other --sources")
    _, height, width = scaled_camera(np.eye(3), subject.image_size, args.resolution)
    check_fits(height * width * RENDER_BYTES_PER_PIXEL, f"rendering {width}x{height} images")
    out = Path(args.out)
    check_out_dir(out, args.force)
    device = resolve_device(args.device)

    model, info = load_checked_model(checkpoint, device, subject)
    cfg = RenderConfig.for_checkpoint(info, **sampling_overrides(args))
    enc, source_images, keypoints, bounds = encode_sources(model, subject, frame, sources, device)
    size = subject.image_size

    # ---- the cameras to render: (name, file stem, K, Rt, height, width, extra json)
    views = []
    orbit_info = None
    if targets is not None:
        for cam in targets:
            K, Rt = subject.camera(cam)
            K, height, width = scaled_camera(K, size, args.resolution)
            views.append((f"cam{cam:02d}", f"{VIEWS_DIR}/cam{cam:02d}", K, Rt.astype(np.float64), height, width,
                          {"camera": cam}))
    else:
        centre = keypoints.double().mean(0).numpy()
        up, facing, frame_info = describe_body_frame(subject, frame)
        radius = args.radius
        if radius is None:
            centres = [-(Rt[:, :3].T @ Rt[:, 3]) for Rt in (subject.camera(c)[1].astype(np.float64)
                                                           for c in range(subject.num_cameras))]
            radius = float(np.mean([np.linalg.norm(c - centre) for c in centres]))
        # the model sees depths in [znear, zfar] only (outside them rays are clipped): the person must fit
        half = float(np.linalg.norm((bounds[1] - bounds[0]).double().cpu().numpy())) / 2
        low, high = model.cfg.znear + half, model.cfg.zfar - half
        if not low <= radius <= high:
            message = (f"an orbit of radius {radius:.2f} m puts parts of the person outside the model's depth range "
                       f"{model.cfg.znear:g}-{model.cfg.zfar:g} m (they would be cut off)")
            if args.radius is not None:
                raise UserError(f"--radius {args.radius}: {message}; choose a radius in [{low:.2f}, {high:.2f}]")
            if low <= high:  # the default radius is only a choice: take the nearest one that fits
                fitted = min(max(radius, low), high)
                print(f"note: {message}; the orbit uses radius {fitted:.2f} m instead (--radius sets it)",
                      file=sys.stderr)
                radius = fitted
            else:
                print(f"warning: {message}; the person is too large for that range at any radius", file=sys.stderr)
        elevation = 0.0 if args.elevation is None else args.elevation
        K, height, width = scaled_camera(subject.camera(sources[0])[0], size, args.resolution)
        digits = max(3, len(str(args.orbit - 1)))
        arc = 360.0 if args.arc is None else args.arc
        azimuths = orbit_azimuths_deg(args.orbit, arc)
        for k, (K_k, Rt_k) in enumerate(orbit_cameras(centre, up, facing, args.orbit, radius, elevation, K, arc)):
            name = f"frame{k:0{digits}d}"
            views.append((name, f"{ORBIT_DIR}/{name}", K_k, Rt_k, height, width,
                          {"azimuth_deg": round(azimuths[k], 6)}))
        orbit_info = {"count": args.orbit, "center": _as_list(centre), "up": _as_list(up), "facing": _as_list(facing),
                      "radius_m": radius, "elevation_deg": elevation, "arc_deg": arc, "fps": args.fps, "video": ORBIT_VIDEO,
                      "intrinsics_from_camera": sources[0], "body_frame": frame_info}

    out.mkdir(parents=True, exist_ok=True)
    write_png(out / SOURCES_PNG, source_strip(source_images))
    written = [SOURCES_PNG]
    bounds_np = bounds.numpy().astype(np.float64)
    video = VideoWriter(out / ORBIT_VIDEO, fps=args.fps) if orbit_info is not None else None
    records = []
    try:
        for name, stem, K, Rt, height, width, extra in tqdm(views, desc="render", unit="view"):
            result = render_image(model, enc, torch.from_numpy(K).float(), torch.from_numpy(Rt).float(), height,
                                  width, bounds, cfg)
            pictures, files, fields = write_view(out, stem, result, Rt, bounds_np, args.depth, args.opacity)
            record = {"name": name, **extra, "width": width, "height": height, "K": _as_list(K), "Rt": _as_list(Rt),
                      **fields, "files": files}
            records.append(record)
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
        "checkpoint": {"path": str(Path(info["path"]).resolve()), "kind": info["kind"]},
        "data": str(subject.path.resolve()), "subject": subject.name, "frame": frame, "sources": sources,
        "downsample": subject.downsample, "image_size": list(size), "mode": "orbit" if orbit_info else "targets",
        "targets": targets, "orbit": orbit_info, "render_config": dataclasses.asdict(cfg),
        "bounds": _as_list(bounds_np), "device": str(device),
        "conventions": "OpenCV world-to-camera Rt (x right, y down, z forward), metres; pixel (u, v) ~ K (R x + t)",
        "cameras": records, "files": written, "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_text(out / RENDER_JSON, json.dumps(description, indent=2) + "\n")
    what = f"{len(views)} orbit frames and {ORBIT_VIDEO}" if orbit_info else f"{len(views)} view(s) in {VIEWS_DIR}/"
    print(f"wrote {out}: {what}, {SOURCES_PNG}, {RENDER_JSON} ({description['seconds']:.1f} s)")
    return 0
