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

from ..data.validate import check_source_views
from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..memory import check_fits
from ..paths import check_out_dir

RENDER_JSON = "render.json"
SOURCES_PNG = "sources.png"
VIEWS_DIR = "views"
ORBIT_DIR = "orbit"
ORBIT_VIDEO = "orbit.mp4"
DEFAULT_SOURCES = "0,7,15"
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
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="model file, official last.ckpt, training checkpoint, or a training run folder")
    parser.add_argument("--data", required=True, metavar="SUBJECT_DIR",
                        help="one subject folder (holding annots.npy)")
    parser.add_argument("--frame", type=int, metavar="F",
                        help="frame number (the i of joints3d/<i>.npy; default: the subject's first frame)")
    parser.add_argument("--sources", default=DEFAULT_SOURCES, metavar="C,C,...",
                        help=f"source camera indices (0-based, comma-separated; default {DEFAULT_SOURCES})")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--targets", metavar="C,C,...", help="render these cameras of the data set")
    what.add_argument("--orbit", type=int, metavar="N", help="render N cameras evenly spaced on a circle "
                                                             "around the person and an MP4 of them")
    parser.add_argument("--radius", type=float, metavar="M",
                        help="orbit radius in metres (default: the mean distance of the data set's cameras to "
                             "the keypoints' centre, brought within the model's depth range where needed)")
    parser.add_argument("--elevation", type=float, metavar="DEG",
                        help="orbit cameras' angle above the body's horizontal plane in degrees (default 0)")
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
    parser.add_argument("--downsample", type=float, default=0.5,
                        help="image scale read from disk (default 0.5: ZJU-MoCap's 1024 px -> 512 px)")
    add_sampling_arguments(parser)
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (new or empty)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty DIR: overwrites the files this run writes; nothing is "
                             "deleted (frames of a longer earlier orbit stay; render.json lists this run's)")
    add_device_argument(parser)
    parser.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------- shared checks
def parse_cameras(text: str | None, option: str) -> list[int]:
    """``"0,7,15"`` -> [0, 7, 15]; UserError for an empty list, a non-integer or a duplicate."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise UserError(f"{option} {text!r}: give at least one camera index (comma-separated, e.g. 0,7,15)")
    try:
        cams = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated camera indices such as 0,7,15") from None
    duplicates = sorted({c for c in cams if cams.count(c) > 1})
    if duplicates:
        raise UserError(f"{option} {text!r}: camera {', '.join(map(str, duplicates))} is listed more than once")
    return cams


def _describe_numbers(values: list[int]) -> str:
    if not values:
        return "none"
    if len(values) <= 12:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[:5]))}, ..., {', '.join(map(str, values[-3:]))}"


def open_subject(data: str | Path, downsample: float):
    """The ZJUSubject of ``--data`` (its images are read later, by ``load_checked_model``)."""
    from ..data.zju import ZJUSubject

    if not 0 < downsample <= 1:
        raise UserError(f"--downsample must be in (0, 1], got {downsample}")
    path = Path(data)
    if not path.exists():
        raise UserError(f"{path}: subject folder not found")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (give a subject folder holding annots.npy)")
    if not (path / "annots.npy").is_file():
        inside = sorted(p.name for p in path.iterdir() if p.is_dir() and (p / "annots.npy").is_file())
        hint = f"; subjects inside: {', '.join(inside[:10])}" if inside else ""
        raise UserError(f"{path}: no annots.npy here: not a subject folder{hint}")
    return ZJUSubject(path, downsample=downsample)


def check_frame(subject, frame: int | None) -> int:
    """``frame`` (default: the first) after checking the subject lists it and has its keypoints and vertices."""
    if frame is None:
        frame = subject.frames[0]
    if frame not in subject.frames:
        raise UserError(f"{subject.path}: frame {frame} does not exist; the subject has {len(subject.frames)} "
                        f"frame(s): {_describe_numbers(sorted(subject.frames))}")
    subject.keypoints(frame)   # named errors for missing or malformed files before any heavy work
    subject.bounds(frame)
    return int(frame)


def check_cameras(subject, cams: list[int], option: str) -> None:
    missing = [c for c in cams if not 0 <= c < subject.num_cameras]
    if missing:
        raise UserError(f"{option}: camera {', '.join(map(str, missing))} does not exist; {subject.path} has "
                        f"{subject.num_cameras} cameras, 0 to {subject.num_cameras - 1}")


def add_sampling_arguments(parser) -> None:
    """``--coarse-samples``, ``--fine-samples`` and ``--supersample`` (shared by render, eval)."""
    parser.add_argument("--coarse-samples", type=int, metavar="N",
                        help="coarse samples per ray (default: the checkpoint's setting)")
    parser.add_argument("--fine-samples", type=int, metavar="N",
                        help="fine samples per ray (default: the checkpoint's setting)")
    parser.add_argument("--supersample", type=int, metavar="N",
                        help="N x N rays per pixel, averaged: anti-aliased edges for N^2 times the work "
                             "(default 1)")


def sampling_option_minimums(args) -> tuple:
    """(option, value, minimum) of the sampling options, for the verbs' option checks."""
    return (("--coarse-samples", args.coarse_samples, 1), ("--fine-samples", args.fine_samples, 0),
            ("--supersample", args.supersample, 1))


def sampling_overrides(args) -> dict:
    """The sampling options given on the command line, as RenderConfig fields."""
    return {k: v for k, v in (("coarse_samples", args.coarse_samples), ("fine_samples", args.fine_samples),
                              ("supersample", args.supersample)) if v is not None}


def load_checked_model(checkpoint, device, subject):
    """Load the model, check it takes the subject's keypoint count and read the subject's image size (an
    unreadable image fails before any work) -> (model, info)."""
    from ..model.checkpoint import check_keypoint_count, load_model

    model, _, info = load_model(checkpoint, device)
    check_keypoint_count(model.cfg.num_keypoints, subject.num_keypoints, info["path"], subject.path)
    subject.image_size
    return model, info


def encode_sources(model, subject, frame: int, sources: list[int], device):
    """Read the source views and encode them once -> (SourceEncoding, source images [(H, W, 3) float],
    keypoints (K, 3) tensor, bounds (2, 3) tensor)."""
    import torch

    from ..data.protocol import ENCODE_KEYS, load_sources

    loaded = load_sources(subject, frame, sources)
    with torch.inference_mode():
        enc = model.encode(*(loaded[k].to(device) for k in ENCODE_KEYS))
    images = [image.permute(1, 2, 0).numpy() for image in loaded["src_images"]]
    return enc, images, loaded["keypoints"], loaded["bounds"]


def scaled_camera(K: np.ndarray, size: tuple[int, int], resolution: int | None) -> tuple[np.ndarray, int, int]:
    """Intrinsics (3, 3) and (height, width) for images whose longer side is ``resolution`` pixels (None = keep
    ``size``); K's first two rows scale with the image, as the reader's downsampling does."""
    height, width = size
    K = np.asarray(K, dtype=np.float64).copy()
    if resolution is None:
        return K, int(height), int(width)
    scale = resolution / max(height, width)
    K[:2] *= scale
    return K, max(1, int(round(height * scale))), max(1, int(round(width * scale)))


# ----------------------------------------------------------------------------------------------- the verb
def _check_options(args) -> None:
    for name, value, low in (("--orbit", args.orbit, 1), ("--resolution", args.resolution, 1),
                             *sampling_option_minimums(args)):
        if value is not None and value < low:
            raise UserError(f"{name} must be >= {low}, got {value}")
    if not args.fps > 0:
        raise UserError(f"--fps must be positive, got {args.fps}")
    if args.orbit is None and (args.radius is not None or args.elevation is not None):
        raise UserError("--radius and --elevation apply to --orbit only")
    if args.radius is not None and not args.radius > 0:
        raise UserError(f"--radius must be positive (metres), got {args.radius}")
    if args.elevation is not None and not abs(args.elevation) < 90:
        raise UserError(f"--elevation must lie strictly between -90 and 90 degrees, got {args.elevation}")


def depth_range(Rt: np.ndarray, bounds: np.ndarray) -> tuple[float, float]:
    """Near/far (metres along the ray) for colour-mapping depth: the person's box seen from this camera, so all
    views of one run share the scale (no flicker in an orbit)."""
    R, t = Rt[:, :3], Rt[:, 3]
    centre_cam = -R.T @ t
    box_centre = bounds.mean(axis=0)
    half_diagonal = float(np.linalg.norm(bounds[1] - bounds[0]) / 2)
    distance = float(np.linalg.norm(box_centre - centre_cam))
    return max(distance - half_diagonal, 0.0), distance + half_diagonal


def _as_list(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 8).tolist()


def view_pictures(result: dict, Rt: np.ndarray, bounds: np.ndarray, depth: bool = False,
                  opacity: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """The pictures of one rendered camera (``render_image``'s ``result``; world-to-camera ``Rt`` (3, 4); the
    person's box ``bounds`` (2, 3)) -> ({"rgb": (H, W, 3) float in [0, 1], "depth": (H, W, 3) uint8 colours
    (see ``--depth``), "opacity": (H, W) float}, extra render.json fields (``depth_range_m``)); depth and
    opacity only when asked."""
    from .video import depth_to_color

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
    from .video import write_png

    pictures, fields = view_pictures(result, Rt, bounds, depth, opacity)
    files = {kind: write_png(out / f"{stem}{'' if kind == 'rgb' else '_' + kind}.png", picture)
             .relative_to(out).as_posix() for kind, picture in pictures.items()}
    return pictures, files, fields


def run(args) -> int:
    started = time.perf_counter()
    # every check that needs no heavy work first: bad input stops before anything is loaded or written
    _check_options(args)
    sources = parse_cameras(args.sources, "--sources")
    targets = parse_cameras(args.targets, "--targets") if args.targets is not None else None
    from ..model.checkpoint import resolve_checkpoint_path

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

    import torch
    from tqdm import tqdm

    from ..fileio import atomic_write_text
    from .orbit import describe_body_frame, orbit_cameras
    from .renderer import RenderConfig, render_image
    from .video import VideoWriter, source_strip, write_png

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
        for k, (K_k, Rt_k) in enumerate(orbit_cameras(centre, up, facing, args.orbit, radius, elevation, K)):
            name = f"frame{k:0{digits}d}"
            views.append((name, f"{ORBIT_DIR}/{name}", K_k, Rt_k, height, width,
                          {"azimuth_deg": round(360.0 * k / args.orbit, 6)}))
        orbit_info = {"count": args.orbit, "center": _as_list(centre), "up": _as_list(up), "facing": _as_list(facing),
                      "radius_m": radius, "elevation_deg": elevation, "fps": args.fps, "video": ORBIT_VIDEO,
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
