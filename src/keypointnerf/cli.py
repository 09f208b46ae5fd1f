"""The ``keypointnerf`` command: one parser, one verb per concern, the same option names everywhere
(``--data``, ``--checkpoint``, ``--out/-o``, ``--device``, ``--devices``, ``--force``)."""
from __future__ import annotations

import argparse
import re
import sys

from . import __version__, demo
from .capture import commands as capture_commands
from .data import commands as data_commands
from .data.synth import commands as synth_commands
from .errors import UserError
from .eval import commands as eval_commands
from .export import commands as export_commands
from .fileio import ENVIRONMENT_ERRNOS, describe_os_error
from .model import commands as model_commands
from .render import commands as render_commands
from .train import commands as train_commands
from .view import commands as view_commands

# Each module defines ``register(subparsers)``, which adds its verb(s) and sets ``func(args) -> int``.
VERB_MODULES = [model_commands, data_commands, synth_commands, capture_commands, train_commands, eval_commands,
                render_commands, export_commands, view_commands, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keypointnerf",
        description="KeypointNeRF: render, train and evaluate generalizable human radiance fields "
                    "from a few calibrated views and 3D keypoints.")
    parser.add_argument("--version", action="version", version=f"keypointnerf {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in VERB_MODULES:
        module.register(subparsers)
    return parser


_NEGATIVE_VALUE = re.compile(r"-\d[\d.,eE+-]*")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--sources -1,0,1`` -> ``--sources=-1,0,1``: argparse takes a value starting with '-' for an option
    unless it is a plain number, so such values would get "expected one argument" instead of the verb's own
    message about them (no option of this command starts with '-' and a digit)."""
    joined: list[str] = []
    for token in argv:
        if joined and joined[-1].startswith("--") and "=" not in joined[-1] and _NEGATIVE_VALUE.fullmatch(token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))
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
    except OSError as exc:
        # a full or read-only disk, a permission: the machine's state, not a bug (outputs are written atomically,
        # so what was there before is intact)
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"keypointnerf {args.verb}: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
