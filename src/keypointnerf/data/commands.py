"""``keypointnerf data check PATH``: validate a ZJU-MoCap-layout subject or folder of subjects."""
from __future__ import annotations

import json
import sys

from ..errors import UserError
from .check import check_data


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="inspect data sets (ZJU-MoCap layout, real or synthetic)",
        description="Tools for data sets in the ZJU-MoCap layout.")
    verbs = parser.add_subparsers(dest="data_verb", metavar="SUBVERB")
    check = verbs.add_parser(
        "check", help="validate a subject folder or a folder of subjects",
        description="Check that a ZJU-MoCap-layout subject (or every subject under a folder) is usable: "
                    "annots.npy and params load without running code, frame lists agree across cameras, masks, "
                    "joints3d and vertices, cameras are real (positive focal lengths, R a rotation), arrays have "
                    "the right shapes, finite values and are not all zero, every camera faces the person and sees "
                    "some keypoints, and images and masks decode (on a few evenly spaced frames unless "
                    "--all-frames) with non-empty masks and one size per subject. Prints a JSON summary to "
                    "stdout and every problem and warning (keypoints outside some image: a partial view), naming "
                    "its file, to stderr; exits 0 when usable (warnings or not), 1 when there is a problem.")
    check.add_argument("path", metavar="PATH", help="subject folder (holds annots.npy) or a folder of subjects")
    check.add_argument("--downsample", type=float, default=0.5,
                       help="the downsampling the reader will apply (default 0.5): the summary's prepared_size")
    check.add_argument("--frames", type=int, default=4, metavar="N",
                       help="decode images and masks of N evenly spaced frames per subject (default 4)")
    check.add_argument("--all-frames", action="store_true", help="decode images and masks of every frame")
    check.set_defaults(func=run)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run(args) -> int:
    try:
        summary = check_data(args.path, downsample=args.downsample, frames_to_decode=max(1, args.frames),
                             all_frames=args.all_frames)
    except UserError as exc:  # no subject found: a data problem like the others, so exit 1
        raise UserError(str(exc), exit_code=1) from None
    print(json.dumps(summary, indent=2))
    for subject in summary["subjects"]:
        for problem in subject["problems"]:
            print(f"problem: {problem}", file=sys.stderr)
        hidden = subject["problem_count"] - len(subject["problems"])
        if hidden > 0:
            print(f"problem: {subject['path']}: ... and {hidden} more problems", file=sys.stderr)
        for warning in subject["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        hidden = subject["warning_count"] - len(subject["warnings"])
        if hidden > 0:
            print(f"warning: {subject['path']}: ... and {hidden} more warnings", file=sys.stderr)
    for problem in summary.get("split_problems", []) + summary.get("keypoint_problems", []):
        print(f"problem: {problem}", file=sys.stderr)
    if not summary["ok"]:
        print(f"keypointnerf data check: {summary['problem_count']} problem(s) in {args.path}", file=sys.stderr)
        return 1
    if summary["warning_count"]:
        print(f"keypointnerf data check: usable, with {summary['warning_count']} warning(s) in {args.path}",
              file=sys.stderr)
    return 0
