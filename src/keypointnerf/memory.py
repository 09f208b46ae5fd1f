"""Checking a size against the machine's memory before allocating it: a setting that would need tens of GB is
refused with a message instead of a swap storm, an out-of-memory kill or a traceback."""
from __future__ import annotations

import os

from .errors import UserError


def available_bytes() -> int | None:
    """Memory the system can give a new allocation now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(needed_bytes: float, what: str) -> None:
    """UserError naming ``what`` when ``needed_bytes`` exceed the memory available now."""
    available = available_bytes()
    if available is not None and needed_bytes > available:
        raise UserError(f"{what} needs about {needed_bytes / 2 ** 30:.1f} GB of memory; "
                        f"{available / 2 ** 30:.1f} GB are available")
