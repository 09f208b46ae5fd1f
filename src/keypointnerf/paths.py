"""Where the package keeps caches: one folder outside the repository, shared by every run and CI.

``KEYPOINTNERF_CACHE`` overrides the default ``~/.cache/keypointnerf``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .fileio import check_writable

CACHE_ENV = "KEYPOINTNERF_CACHE"


def cache_root() -> Path:
    """The cache folder, not created (reading a cache must not write)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keypointnerf").expanduser()


def cache_dir(*parts: str) -> Path:
    """The cache folder (created), or a sub-folder of it."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_out_dir(out: Path, force: bool, replaced: str = "the files this command writes there") -> None:
    """Refuse an --out that is a file, a non-empty folder without --force (``replaced`` says what --force
    would overwrite there; everything else is kept), or a folder that cannot be written (read-only, full)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: folder exists and is not empty; pass --force to overwrite {replaced} "
                        f"(other files are kept), or choose another --out")
    check_writable(out)


def repo_root() -> Path | None:
    """The source checkout holding this package (for the shipped ``models/``), or None when installed elsewhere."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "keypointnerf").is_dir():
            return parent
    return None
