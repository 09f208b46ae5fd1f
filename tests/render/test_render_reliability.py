"""``render`` on bad input and bad luck: a message, never a traceback, nothing half-written left behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from keypointnerf.cli import main

from helpers import assert_names
from zju_fixtures import failing_on_call, make_subject, save_random_small_model, usual_file_mode

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("render_reliability")
    return {"root": root, "subject": make_subject(root / "data", cameras=4, frames=1, size=64),
            "checkpoint": save_random_small_model(root / "model.ckpt")}


def _render(scene, out, *extra, checkpoint=None, subject=None):
    return main(["render", "--checkpoint", str(checkpoint or scene["checkpoint"]), "--data",
                 str(subject or scene["subject"]), "--sources", "0,1,2", "--downsample", "1.0", "--device", "cpu",
                 "-o", str(out), *extra])


def _tree(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mode", [["--targets", "3,1"], ["--orbit", "3", "--resolution", "32"]],
                         ids=["targets", "orbit"])
def test_an_interrupted_render_leaves_no_partial_file_and_every_file_whole(scene, tmp_path, monkeypatch, mode):
    out = tmp_path / "out"
    assert _render(scene, out, *mode) == 0
    before = _tree(out)
    for name in before:                                           # 0644 with the usual umask, not 0600
        assert stat.S_IMODE((out / name).stat().st_mode) == usual_file_mode(), name
    import keypointnerf.render.output as render_output
    monkeypatch.setattr(render_output, "render_image", failing_on_call(render_output.render_image, 2,
                                                                       KeyboardInterrupt))
    assert _render(scene, out, *mode, "--force", "--coarse-samples", "2") == 130
    after = _tree(out)
    assert not [name for name in after if "partial" in name], after.keys()
    assert set(after) == set(before)                 # every file still there, each either old or new, whole
    assert json.loads(after["render.json"]) == json.loads(before["render.json"])   # written last


def _broken_checkpoint(scene, tmp_path, kind):
    path = tmp_path / f"{kind}.ckpt"
    """-> (the broken file, what the message must name besides the file)"""
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return path, []
    checkpoint = torch.load(scene["checkpoint"], weights_only=True)
    if kind == "non-tensor weights":
        checkpoint["state_dict"][next(iter(checkpoint["state_dict"]))] = "not a tensor"
        named = ["state_dict"]
    else:
        checkpoint["render_config"] = {"coarse_samples": -8}
        named = ["render.coarse_samples=-8"]
    torch.save(checkpoint, path)
    return path, named


@pytest.mark.parametrize("kind", ["random bytes", "non-tensor weights", "negative render settings"])
def test_broken_checkpoints_get_a_message(scene, tmp_path, capsys, kind):
    checkpoint, named = _broken_checkpoint(scene, tmp_path, kind)
    assert _render(scene, tmp_path / "out", "--targets", "3", checkpoint=checkpoint) == 2
    assert_names(capsys.readouterr().err, checkpoint, *named)
    assert not (tmp_path / "out").exists()


def test_source_views_of_different_sizes_are_named(scene, tmp_path, capsys):
    subject = tmp_path / "subject"
    shutil.copytree(scene["subject"], subject)
    for folder in ("Camera_B2", "mask/Camera_B2", "mask_cihp/Camera_B2"):
        for path in (subject / folder).iterdir():
            with Image.open(path) as image:
                image.resize((48, 48)).save(path)
    out = tmp_path / "out"
    assert _render(scene, out, "--targets", "3", subject=subject) == 2
    assert_names(capsys.readouterr().err, "camera 0", "64x64", "camera 1", "48x48", "000000.jpg")
    assert not out.exists()


def _full_disk(monkeypatch):
    import keypointnerf.fileio as fileio
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    return "0.0 MB"                                     # the space there is


def _read_only(monkeypatch):
    real_open = os.open

    def refuses_the_probe(path, *args, **kwargs):
        if "keypointnerf-write-test" in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", refuses_the_probe)
    return "Read-only file system"                      # the system's reason


@pytest.mark.parametrize("disk", [_full_disk, _read_only], ids=["full", "read-only"])
def test_an_unwritable_output_folder_is_refused_before_the_model_is_loaded(scene, tmp_path, monkeypatch, capsys,
                                                                          disk):
    import keypointnerf.options as options

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")
    message = disk(monkeypatch)
    monkeypatch.setattr(options, "load_model", must_not_load)
    out = tmp_path / "out"
    assert _render(scene, out, "--targets", "3") == 2
    assert_names(capsys.readouterr().err, "--out", out, message)
    assert not out.exists()


@pytest.mark.parametrize("options, named", [
    (["--sources", "-1,0,1", "--targets", "3"], ["--sources", "camera -1"]),
    (["--targets", "3", "--resolution", "1000000"], ["1000000x1000000"]),         # the size and the memory
    (["--orbit", "-2"], ["--orbit", "-2"]),
])
def test_option_mistakes_get_a_message(scene, tmp_path, capsys, options, named):
    args = ["render", "--checkpoint", str(scene["checkpoint"]), "--data", str(scene["subject"]), "--downsample",
            "1.0", "--device", "cpu", "-o", str(tmp_path / "out"), *options]
    if "--sources" not in options:
        args += ["--sources", "0,1,2"]
    assert main(args) == 2
    assert_names(capsys.readouterr().err, *named)
    assert not (tmp_path / "out").exists()


def test_a_disk_that_fills_up_half_way_gets_a_message_and_keeps_what_was_there(scene, tmp_path, monkeypatch,
                                                                              capsys):
    out = tmp_path / "out"
    assert _render(scene, out, "--targets", "3,1") == 0
    before = _tree(out)
    import keypointnerf.fileio as fileio
    real_replace, replaced = os.replace, []

    def full_after_one_file(source, target):
        if len(replaced) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        replaced.append(target)
        return real_replace(source, target)
    monkeypatch.setattr(fileio.os, "replace", full_after_one_file)
    assert _render(scene, out, "--targets", "3,1", "--force", "--coarse-samples", "2") == 1
    assert_names(capsys.readouterr().err, "No space left on device")       # the system's reason, no traceback
    after = _tree(out)
    assert set(after) == set(before) and after["render.json"] == before["render.json"]

