"""``keypointnerf demo``: a person no model has seen, from three photos to new views and a 360-degree video.

The demo runs the package's own commands, and prints each one so that it can be repeated by hand:

1. ``keypointnerf synth --style heldout``: one new synthetic person of a style the shipped model never trained on
   (other clothes' textures, kneeling poses, coloured side light; a seed it never saw), 23 cameras;
2. ``keypointnerf eval``: renders the six held-out cameras (3, 5, 10, 12, 18, 20) from cameras 0, 7 and 15 and
   prints PSNR / SSIM against the true pictures;
3. ``keypointnerf render --orbit``: a 360-degree turntable video around the person, from the same three photos.

``demo --head`` does the same for a head with the shipped ``models/head.ckpt``: a new synthetic head
(``synth --subject head``, 12 cameras on a frontal arc, 22 facial landmarks as keypoints), its held-out cameras
rendered from three evenly spaced ones, and a 120-degree sweep in front of the face.
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from . import cli
from .device import add_device_argument
from .errors import UserError
from .data.protocol import select_cameras
from .paths import repo_root

DEMO_SEED = 2026            # the shipped model was trained on other seeds: this person is new to it
DEMO_STYLE = "heldout"      # and of a style family no training draw came from
MARKER = "demo.json"
HEAD_CAMERAS = 12           # a frontal arc of cameras, as synth --subject head makes them
HEAD_ARC_DEG = 120.0        # the head's orbit: a sweep in front of the face (its back is never seen)
# (frames, side in pixels) of the videos: a head fills its frames, every ray meets its visual hull and costs ~10x
# a body's, so its sweep has fewer and smaller frames to stay within the demo's minutes on a 2-core CPU
BODY_ORBIT = (48, 256)
HEAD_ORBIT = (24, 160)


def shipped_model(name: str = "small.ckpt") -> Path | None:
    root = repo_root()
    path = root / "models" / name if root else None
    return path if path and path.is_file() else None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="render new views and a 360-degree video of a person the model has never seen",
        description="Generate a new synthetic person of a style the shipped model never trained on (23 cameras), "
                    "then, from three of its photos (cameras 0, 7, "
                    "15) and its 3D keypoints, render the six held-out views with PSNR/SSIM against the truth and "
                    "a 360-degree video. Each step is a keypointnerf command, printed as it runs. Running the "
                    "demo again reuses the person and replaces the demo's own outputs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--head", action="store_true",
                        help="a head instead of a body: synth --subject head (12 cameras on a frontal arc, 22 "
                             "facial landmarks) and the shipped models/head.ckpt; the video sweeps 120 degrees "
                             "in front of the face")
    parser.add_argument("-o", "--out", default=None, metavar="DIR",
                        help="output folder (default demo_output, or demo_head_output with --head)")
    parser.add_argument("--checkpoint", default=None, metavar="FILE_OR_RUN_DIR",
                        help="model to use (default: the shipped models/small.ckpt, models/head.ckpt with --head)")
    # no argparse default: the default depends on --head (and the help would print "default: None")
    parser.add_argument("--orbit-frames", type=int, default=argparse.SUPPRESS, metavar="N",
                        help=f"frames of the video (default {BODY_ORBIT[0]}; {HEAD_ORBIT[0]} with --head)")
    parser.add_argument("--resolution", type=int, default=argparse.SUPPRESS, metavar="PX",
                        help=f"side of the video's frames (default {BODY_ORBIT[1]}; {HEAD_ORBIT[1]} with --head)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="which new person to generate")
    add_device_argument(parser)
    parser.add_argument("--force", action="store_true", help="use DIR even if it holds files that are not "
                                                             "an earlier demo's (they are left alone)")
    parser.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ keypointnerf {shlex.join(argv)}", flush=True)
    code = cli.main(argv)
    if code:
        raise UserError(f"the step '{title}' failed (exit {code}); see the message above", exit_code=code)


def run(args) -> int:
    started = time.monotonic()
    shipped = "head.ckpt" if args.head else "small.ckpt"
    checkpoint = Path(args.checkpoint) if args.checkpoint else shipped_model(shipped)
    if checkpoint is None:
        raise UserError(f"no model: the shipped models/{shipped} is missing from this checkout; give --checkpoint "
                        "(a model file or a training run folder)")
    if not checkpoint.exists():
        raise UserError(f"--checkpoint {checkpoint}: not found")
    default_frames, default_side = HEAD_ORBIT if args.head else BODY_ORBIT
    orbit_frames, side = getattr(args, "orbit_frames", default_frames), getattr(args, "resolution", default_side)
    for option, value in (("--orbit-frames", orbit_frames), ("--resolution", side)):
        if value < 1:  # refused before the minutes of synth and eval, not at the render step
            raise UserError(f"{option} must be >= 1, got {value}")
    out = Path(args.out or ("demo_head_output" if args.head else "demo_output"))
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file() and not args.force:
        raise UserError(f"{out}: exists and is not an earlier demo output; choose another --out or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"checkpoint": str(checkpoint), "seed": args.seed, "head": args.head},
                                         indent=1))
    data = out / ("head" if args.head else "person")
    device = ["--device", args.device]
    if args.head:
        who, cameras, kind = "head", HEAD_CAMERAS, ["--subject", "head"]
        what = "cameras on a frontal arc, 22 facial landmarks"
        orbit, video = ["--arc", f"{HEAD_ARC_DEG:g}"], f"a {HEAD_ARC_DEG:g}-degree sweep in front of the face"
    else:
        who, cameras, kind = "person", 23, []
        what = "calibrated cameras, 3D keypoints"
        orbit, video = [], "a 360-degree video"
    sources = ",".join(map(str, select_cameras(cameras)[0]))  # what eval's protocol takes for this rig

    _step(f"1/3 a new {who} of a style the model never trained on: {cameras} {what} (anny body model, CPU ray "
          "casting)",
          ["synth", str(data), "--subjects", "1", "--frames", "1", "--cameras", str(cameras), "--resolution",
           "512", "--seed", str(args.seed), "--style", DEMO_STYLE, *kind])
    # the one subject is for testing only: the 'split' protocol then renders its held-out cameras
    (data / "split.json").write_text(json.dumps({"train": [], "test": ["synth_000"]}))
    _step(f"2/3 held-out views from cameras {sources}, compared with the true pictures",
          ["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out / "views"), "--force",
           *device])
    _step(f"3/3 {video} from the same three photos",
          ["render", "--checkpoint", str(checkpoint), "--data", str(data / "synth_000"), "--frame", "0",
           "--sources", sources, "--orbit", str(orbit_frames), *orbit, "--resolution", str(side),
           "--out", str(out / "orbit"), "--force", *device])

    metrics = json.loads((out / "views" / "metrics.json").read_text())["mean"]
    minutes = (time.monotonic() - started) / 60
    print(f"\nkeypointnerf demo: done in {minutes:.1f} min. Held-out views of a {who} the model never saw: "
          f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} (bounding rectangle of the {who}'s box; "
          f"PSNR inside the box {metrics['psnr_box']:.2f} dB)")
    print(f"  source photos + new views (prediction | truth | error): {out / 'views' / 'images'}")
    print(f"  {video[2:] if video.startswith('a ') else video}: {out / 'orbit' / 'orbit.mp4'} "
          f"(frames in {out / 'orbit' / 'orbit'})")
    print(f"  the {who}'s data (ZJU-MoCap layout): {data}")
    return 0
