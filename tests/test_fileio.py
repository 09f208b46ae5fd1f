"""Atomic outputs (``keypointnerf.fileio``): a writer that fails half-way (a full disk) leaves the previous file
intact and nothing behind; outputs get the usual modes; an unwritable output folder is refused up front."""
from __future__ import annotations

import errno
import os
import stat

import pytest
import torch

from keypointnerf import fileio
from keypointnerf.errors import UserError
from keypointnerf.fileio import atomic_torch_save, atomic_write_text, check_writable, read_json_file

from helpers import assert_names


class _DiskFullsAfter:
    """Stands in for ``os.fdopen``: the file object it returns accepts ``limit`` bytes, then raises ENOSPC."""

    def __init__(self, limit: int):
        self.limit = limit
        self.original = os.fdopen

    def __call__(self, fd, mode="r", *args, **kwargs):
        handle = self.original(fd, mode, *args, **kwargs)
        limit = self.limit
        written = [0]
        write = handle.write

        def failing_write(data):
            if written[0] + len(data) > limit:
                write(data[: max(0, limit - written[0])])
                raise OSError(errno.ENOSPC, "No space left on device")
            written[0] += len(data)
            return write(data)

        handle.write = failing_write
        return handle


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from keypointnerf.train.checkpoints import AtomicCheckpointIO

    last = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 5, "w": torch.ones(1000)}, last)
    before = last.read_bytes()
    size = len(before)
    monkeypatch.setattr(fileio.os, "fdopen", _DiskFullsAfter(size // 2))
    with pytest.raises(OSError) as raised:
        AtomicCheckpointIO().save_checkpoint({"global_step": 6, "w": torch.zeros(1000)}, last)
    assert raised.value.errno == errno.ENOSPC
    assert last.read_bytes() == before                           # byte for byte the step-5 checkpoint
    assert _siblings(last.parent) == ["last.ckpt"]               # no temporary file left behind
    monkeypatch.undo()
    AtomicCheckpointIO().save_checkpoint({"global_step": 6, "w": torch.zeros(1000)}, last)
    assert torch.load(last, weights_only=True)["global_step"] == 6


def test_text_and_torch_outputs_get_the_usual_mode_and_replace_atomically(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "metrics.json", "{}\n")
        atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "model.ckpt")
    finally:
        os.umask(previous)
    for name in ("metrics.json", "model.ckpt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    atomic_write_text(tmp_path / "metrics.json", "{\"psnr\": 1}\n")
    assert (tmp_path / "metrics.json").read_text() == "{\"psnr\": 1}\n"
    assert _siblings(tmp_path) == ["metrics.json", "model.ckpt"]


def test_an_interrupted_writer_leaves_the_old_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_writer(path, "w") as handle:
            handle.write("new, but only half")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n" and _siblings(tmp_path) == ["config.yaml"]


def test_unwritable_or_full_output_folders_are_refused_before_any_work(tmp_path, monkeypatch):
    check_writable(tmp_path / "new" / "deeper")                   # a folder to be made under a writable one
    assert not (tmp_path / "new").exists() and _siblings(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as err:
        check_writable(tmp_path / "file" / "out")
    assert_names(str(err.value), "--out", tmp_path / "file" / "out", tmp_path / "file")
    with pytest.raises(UserError) as err:
        check_writable(tmp_path, needed_bytes=2 ** 62)
    assert_names(str(err.value), "--out", tmp_path, f"{2 ** 62 / 2 ** 20:.0f} MB")   # the folder, the space needed

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(fileio.os, "open", read_only)
    with pytest.raises(UserError) as err:
        check_writable(tmp_path / "out")
    assert_names(str(err.value), "--out", tmp_path / "out", "Read-only file system")   # the system's reason


def test_json_inputs_are_read_or_refused_naming_the_file(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"train": ["a"], "test": []}')
    assert read_json_file(path) == {"train": ["a"], "test": []}
    for content in (None, '{"train": [', b"\xff\xfe"):
        if content is None:
            path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(UserError) as err:
            read_json_file(path, "split file")
        assert_names(str(err.value), path, "split file")

