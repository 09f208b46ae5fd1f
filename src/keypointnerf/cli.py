"""The ``keypointnerf`` command: one parser, one verb per concern, the same option names everywhere
(``--data``, ``--checkpoint``, ``--out/-o``, ``--device``, ``--devices``, ``--force``)."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# Each module defines ``register(subparsers)``, which adds its verb(s) and sets ``func(args) -> int``.
VERB_MODULES = [
    "keypointnerf.model.commands",
    "keypointnerf.data.commands",
    "keypointnerf.data.synth.commands",
    "keypointnerf.capture.commands",
    "keypointnerf.train.commands",
    "keypointnerf.eval.commands",
    "keypointnerf.render.commands",
    "keypointnerf.export.commands",
    "keypointnerf.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keypointnerf",
        description="KeypointNeRF: render, train and evaluate generalizable human radiance fields "
                    "from a few calibrated views and 3D keypoints.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"keypointnerf {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"keypointnerf {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"keypointnerf {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
