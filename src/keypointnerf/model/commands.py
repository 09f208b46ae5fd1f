"""``keypointnerf import-checkpoint``: convert an official KeypointNeRF ``last.ckpt`` into this package's format."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..fileio import check_writable
from .checkpoint import load_model, save_model


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-checkpoint", help="convert an official KeypointNeRF checkpoint (last.ckpt) to this package's format",
        description="Read an official KeypointNeRF Lightning checkpoint without executing code from it, map "
                    "every tensor (weight-normalised layers included; the VGG19 tensors kept for the perceptual "
                    "loss) and write this package's model file. Files with missing or mis-shaped tensors are "
                    "refused. Any command that takes --checkpoint also reads the official file directly.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="official last.ckpt (or any accepted checkpoint)")
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help="model file to write (e.g. model.ckpt)")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"{out}: exists; pass --force to overwrite it")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a folder; give a file name")
    check_writable(out.parent)
    model, vgg19, info = load_model(args.checkpoint)
    save_model(out, model, vgg19, provenance={"imported_from": str(Path(args.checkpoint).resolve()),
                                              "source_kind": info["kind"]}, render=info["render"])
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {info['kind']} checkpoint, spatial encoding {model.cfg.spatial_encoding}, "
          f"{params:,} parameters, {len(vgg19)} VGG19 tensors")
    return 0
