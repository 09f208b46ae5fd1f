"""Choosing the torch device from the ``--device cpu|cuda|auto`` option; nothing else names a device."""
from __future__ import annotations

import torch

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` without a GPU is an error, not a fallback."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)}")


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto", metavar="{cpu,cuda,auto}",
                        help="where to run: cpu, cuda (or cuda:N), or auto = cuda when available (default: auto)")
