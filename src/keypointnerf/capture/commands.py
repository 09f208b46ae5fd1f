"""``keypointnerf capture import SRC --out SUBJECT_DIR``: a multi-view capture (EasyMocap layout) -> a subject in
the ZJU-MoCap layout, with triangulated keypoints and no body-model fit."""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from .importer import KEYPOINT_MODES, MASK_MODES, ImportOptions, import_capture
from .masks import DEFAULT_THRESHOLD
from .triangulate import DEFAULT_MIN_CONFIDENCE


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "capture", help="bring your own multi-view capture in (EasyMocap layout -> ZJU-MoCap layout)",
        description="Tools for your own calibrated multi-view captures.")
    verbs = parser.add_subparsers(dest="capture_verb", metavar="SUBVERB")
    imp = verbs.add_parser(
        "import", help="turn a capture into a subject folder that train/eval/render read",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Read a capture in EasyMocap's layout (intri.yml/extri.yml or calibration.json; "
                    "images/<cam>/<frame>.jpg or videos/<cam>.mp4; optional background/<cam>.jpg, "
                    "mask/<cam>/<frame>.png, openpose/<cam>/<frame>_keypoints.json), make masks, triangulate "
                    "2D keypoints robustly into the 24 SMPL-order keypoints the model uses, and write a subject "
                    "in the ZJU-MoCap layout (annots.npy, Camera_B<c>/, mask/, joints3d/, vertices/ = visual hull "
                    "points, capture.json with per-joint reprojection errors). No body model is fitted.")
    imp.add_argument("source", metavar="SRC", help="capture folder (EasyMocap layout)")
    imp.add_argument("-o", "--out", required=True, metavar="SUBJECT_DIR", help="output subject folder (new or empty)")
    imp.add_argument("--masks", default="auto", choices=("auto",) + MASK_MODES,
                     help="files: mask/<cam>/<frame>.png; background: difference to the clean plates "
                          "background/<cam>.jpg; detect: a segmentation model (needs .[detect]); auto: files if "
                          "mask/ exists, else background")
    imp.add_argument("--keypoints", default="auto", choices=("auto",) + KEYPOINT_MODES,
                     help="openpose: openpose/<cam>/<frame>_keypoints.json (BODY_25, COCO-18 or COCO-17); detect: "
                          "the built-in detector (needs .[detect]); auto: openpose if openpose/ exists")
    imp.add_argument("--calibration", metavar="FILE",
                     help="calibration.json, or intri.yml (extri.yml beside it), instead of the ones in SRC")
    imp.add_argument("--mask-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="T",
                     help="--masks background: largest channel difference (0-255) to the plate that counts as "
                          "the person (raised automatically above 4 robust standard deviations of the noise)")
    imp.add_argument("--reprojection-threshold", type=float, metavar="PX",
                     help="a view agrees with a triangulated joint within this many pixels (default: the larger "
                          "of 8 and 2.5%% of the longer image side)")
    imp.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                     help="2D keypoints below this confidence are ignored")
    imp.add_argument("--smooth", type=float, default=0.0, metavar="SIGMA",
                     help="temporal Gaussian smoothing of the 3D keypoints, in frames (0: off)")
    imp.add_argument("--frame-step", type=int, default=1, metavar="N", help="import every N-th frame")
    imp.add_argument("--max-frames", type=int, metavar="N", help="import at most N frames")
    imp.add_argument("--force", action="store_true",
                     help="write into a non-empty SUBJECT_DIR (replaces what this command writes there; other "
                          "files are kept)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_import(args) -> int:
    if args.reprojection_threshold is not None and args.reprojection_threshold <= 0:
        raise UserError(f"--reprojection-threshold {args.reprojection_threshold}: must be > 0 pixels")
    options = ImportOptions(masks=args.masks, keypoints=args.keypoints, calibration=args.calibration,
                            mask_threshold=args.mask_threshold, reprojection_threshold=args.reprojection_threshold,
                            min_confidence=args.min_confidence, smooth=args.smooth, frame_step=args.frame_step,
                            max_frames=args.max_frames, force=args.force, progress=not args.no_progress)
    summary = import_capture(args.source, args.out, options)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    worst = max(summary["per_joint"].items(), key=lambda kv: kv[1]["reprojection_error_px"] or 0)
    print(f"keypointnerf capture import: {len(summary['frames'])} frame(s) x {len(summary['cameras'])} cameras into "
          f"{args.out} (masks: {summary['masks']}, keypoints: {summary['keypoints']}); mean reprojection error "
          f"{summary['mean_reprojection_error_px']} px (worst joint {worst[0]}: "
          f"{worst[1]['reprojection_error_px']} px); {len(summary['frames_dropped'])} frame(s) left out; "
          f"{summary['seconds']} s. Details: {args.out}/capture.json")
    return 0
