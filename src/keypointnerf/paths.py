"""Where the package keeps caches: one folder outside the repository, shared by every run and CI.

``KEYPOINTNERF_CACHE`` overrides the default ``~/.cache/keypointnerf``.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KEYPOINTNERF_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache folder (created), or a sub-folder of it."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keypointnerf").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path | None:
    """The source checkout holding this package (for the shipped ``models/``), or None when installed elsewhere."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "keypointnerf").is_dir():
            return parent
    return None
