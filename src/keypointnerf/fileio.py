"""Files in and out: writing outputs so that nothing the user had is lost (atomic replacement, an early
writability check), and reading a JSON input with a message naming the file.

Every file this package writes goes through :func:`atomic_writer`: the bytes go to a temporary sibling in the
same folder (so the final rename never crosses a file system), are flushed to disk (``fsync``), and only then
replace the target with ``os.replace``. A full disk, a kill or Ctrl-C half-way leaves the previous file as it
was and no temporary file behind (but after SIGKILL, which nobody can catch). Files get the usual modes (0666
less the umask, i.e. 0644), not the 0600 of ``tempfile``.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Iterator

import torch

from .errors import UserError

#: The prefix of the temporary siblings (hidden files); ``*.partial`` in their names marks them as incomplete.
TEMPORARY_PREFIX = "."
TEMPORARY_MARK = ".partial"


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` for its incomplete content (same folder: same file system)."""
    return path.with_name(f"{TEMPORARY_PREFIX}{path.stem}.{os.getpid()}.{secrets.token_hex(3)}"
                          f"{TEMPORARY_MARK}{path.suffix}")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path for a writer that needs a file name (an image or video encoder); when the
    block ends without an exception the file is synced and renamed to ``path``, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_writer(path, "w") as f: f.write(...)``: ``path`` changes only once the block completes."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as temporary:
        # O_EXCL on a fresh random name; 0o666 lets the umask decide the mode as for any other output
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_writer` (serialised in memory first: a write error such as a full
    disk then reaches the caller as the OSError it is, not as torch's "unexpected pos")."""

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def read_json_file(path: str | os.PathLike, what: str = "JSON file") -> object:
    """The parsed content of the JSON file ``path``; a UserError naming the file (as ``what``, e.g. "calibration
    file") when it is missing or not readable JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {what} missing") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc})") from None


#: below this much free space an output folder is refused before any work (a rendered image is ~1 MB)
MIN_FREE_BYTES = 16 * 2 ** 20


def check_writable(folder: str | os.PathLike, option: str = "--out", needed_bytes: int = MIN_FREE_BYTES) -> None:
    """Refuse an output folder that cannot be written (read-only, no permission, a full disk) before any work.

    The folder need not exist: its nearest existing parent is probed by creating and removing a small file
    there, and its free space is compared with ``needed_bytes``. Nothing is left behind."""
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise UserError(f"{option} {folder}: {probe_in} is a file, not a folder")
    probe = probe_in / f"{TEMPORARY_PREFIX}keypointnerf-write-test.{os.getpid()}.{secrets.token_hex(3)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot write in {probe_in} ({describe_os_error(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(probe_in).free
    if free < needed_bytes:
        raise UserError(f"{option} {folder}: only {free / 2 ** 20:.1f} MB free on its disk, "
                        f"{needed_bytes / 2 ** 20:.0f} MB needed")


#: errors of the machine, not of the program: reported in one line, never as a traceback
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO, errno.EFBIG,
                      errno.EMFILE, errno.ENFILE}


def describe_os_error(exc: OSError) -> str:
    """"No space left on device" and the like, with a hint for the common cases."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space; files written before are intact)"
    elif exc.errno == errno.EROFS:
        text += " (a read-only file system)"
    return text
