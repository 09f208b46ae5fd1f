"""``keypointnerf synth OUT``: generate (or resume) a synthetic set of anny people in the ZJU-MoCap layout."""
from __future__ import annotations

import argparse

from ...errors import UserError
from .camera_effects import EFFECT_LEVELS
from .styles import STYLE_NAMES
from .writer import generate


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate synthetic people or heads (anny body model) in the ZJU-MoCap layout",
        description="Generate synthetic people with the anny body model: random adult shapes, textured clothes, "
                    "poses over the joints' full range, random lights, rendered on the CPU into a rig of calibrated "
                    "cameras (with a camera's blur, noise and JPEG, and inexact mattes) and "
                    "written in the ZJU-MoCap layout (annots.npy, Camera_B<c>/, mask/, joints3d/, vertices/, "
                    "params/, split.json). The same seed gives identical files. Running again with the same "
                    "arguments resumes: finished frames are skipped. The first run builds anny's model cache "
                    "(about 1-2 minutes, 1.75 GB of memory; 49 MB kept on disk).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_positional", nargs="?", metavar="OUT", help="output folder")
    parser.add_argument("-o", "--out", default=None, help="output folder (same as OUT)")
    parser.add_argument("--subjects", type=int, default=10, metavar="N", help="number of people")
    parser.add_argument("--frames", type=int, default=30, metavar="F", help="frames per person (0.1 s apart)")
    parser.add_argument("--cameras", type=int, default=23, metavar="C", help="cameras on the ring")
    parser.add_argument("--resolution", type=int, default=512, metavar="R",
                        help="stored image side in pixels, a multiple of 256 (the reader halves it: 512 -> 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--style", default="diverse", choices=STYLE_NAMES,
                        help="what the people, lights and cameras are drawn from: diverse (training: many textures, "
                             "poses, lights, rigs, camera effects), heldout (families diverse never draws: the "
                             "cross-style benchmark), classic (the original generator)")
    parser.add_argument("--effects", default=None, choices=EFFECT_LEVELS,
                        help="camera effects in place of the style's: none (exact renders on black, exact masks) or "
                             "real (background plates, blur, noise, JPEG, inexact mattes); the same seed draws the "
                             "same people, poses, lights and rigs either way (default: the style's)")
    parser.add_argument("--subject", default="body", choices=("body", "head"),
                        help="body: whole people, keypoints the 24 SMPL-order joints; head: close-range head-and-neck "
                             "captures with facial expressions, cameras 0.4-1.2 m in front of the face, keypoints 22 "
                             "facial landmarks (train them with --preset head)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="rendering processes (default: one per CPU core)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder that is not an earlier output of the same arguments "
                             "(its earlier synthetic subjects are replaced; other files are left alone); with the "
                             "same arguments, start over instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.out_positional and args.out and args.out_positional != args.out:
        raise UserError(f"OUT {args.out_positional!r} and --out {args.out!r} differ: give the folder once")
    out = args.out_positional or args.out
    if not out:
        raise UserError("no output folder: give OUT (or --out DIR)")
    summary = generate(out, subjects=args.subjects, frames=args.frames, cameras=args.cameras,
                       resolution=args.resolution, seed=args.seed, workers=args.workers, force=args.force,
                       progress=not args.no_progress, style=args.style, subject=args.subject,
                       effects=args.effects)
    kind = "heads" if args.subject == "head" else "subjects"
    print(f"keypointnerf synth: {len(summary['subjects'])} {args.style} {kind} x {args.frames} frames x "
          f"{args.cameras} cameras (resolution {args.resolution}) in {summary['out']}: {summary['frames_rendered']} frames rendered, "
          f"{summary['frames_skipped']} already done, {summary['seconds']:.1f} s")
    return 0
