"""``keypointnerf render``: render chosen cameras, or a 360-degree orbit video, of one frame of a subject.

Writes into ``--out DIR``::

    sources.png                     the source views side by side (left to right in --sources order)
    views/cam<NN>.png               one per --targets camera           (or, with --orbit N:)
    orbit/frame<NNN>.png            N frames around the person, and orbit.mp4 (H.264)
    ..._depth.png, ..._opacity.png  with --depth / --opacity, next to each rendered image
    render.json                     what was rendered: checkpoint, data, frame, sources, every camera (K, Rt)

The source views are encoded once; every view is rendered from that encoding (:mod:`.output`).
"""
from __future__ import annotations

import time
from pathlib import Path

from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..model.checkpoint import resolve_checkpoint_path
from ..options import (add_checkpoint_argument, add_sampling_arguments, add_subject_arguments, check_cameras,
                       check_frame, check_minimums, check_source_views, encode_sources, load_checked_model,
                       open_subject, parse_cameras, sampling_option_minimums, sampling_overrides)
from ..paths import check_out_dir
from .output import (DEFAULT_FPS, ORBIT_VIDEO, RENDER_JSON, SOURCES_PNG, VIEWS_DIR, EncodedFrame, check_render_size,
                     orbit_of, render_to_folder, target_cameras)
from .renderer import RenderConfig


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
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS,
                        help=f"orbit video frame rate (default {DEFAULT_FPS:g})")
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
    check_render_size(subject, args.resolution)
    out = Path(args.out)
    check_out_dir(out, args.force)
    device = resolve_device(args.device)

    model, info = load_checked_model(checkpoint, device, subject)
    cfg = RenderConfig.for_checkpoint(info, **sampling_overrides(args))
    enc, source_images, keypoints, bounds = encode_sources(model, subject, frame, sources, device)
    encoded = EncodedFrame(model, info, subject, frame, sources, enc, source_images, keypoints, bounds, device)
    if targets is not None:
        cameras, orbit = target_cameras(subject, targets, args.resolution), None
    else:
        cameras, orbit = orbit_of(encoded, args.orbit, args.radius, args.elevation, args.resolution, args.fps,
                                  args.arc)
    description = render_to_folder(out, encoded, cfg, cameras, orbit, targets, args.depth, args.opacity, started)
    what = f"{len(cameras)} orbit frames and {ORBIT_VIDEO}" if orbit else f"{len(cameras)} view(s) in {VIEWS_DIR}/"
    print(f"wrote {out}: {what}, {SOURCES_PNG}, {RENDER_JSON} ({description['seconds']:.1f} s)")
    return 0
