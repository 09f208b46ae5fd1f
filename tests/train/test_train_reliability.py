"""No run lost: an interrupted or failing resume leaves the run's files as they were, an unreadable last.ckpt
falls back to the newest readable checkpoint, Ctrl-C exits 130 with the progress kept, and settings that
could only fail later are refused up front with a message."""
from __future__ import annotations

import os
import shutil
import signal
import stat

import pytest
import torch

from keypointnerf.cli import main as cli_main
from keypointnerf.train.module import KeypointNeRFTraining

from helpers import assert_names
from zju_fixtures import usual_file_mode

FAST = ["--set", "render.coarse_samples=8", "--set", "render.fine_samples=8", "--set", "data.patch_size=16",
        "--set", "val_every_steps=0", "--set", "data.cache_mb=64"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(data, out, *extra):
    return cli_main(["train", "--preset", "small", "--data", str(data), "--out", str(out), "--device", "cpu",
                     "--no-progress", *FAST, *extra])


def _resume(out, *extra):
    return cli_main(["train", "--out", str(out), "--resume", "--device", "cpu", "--no-progress", *extra])


def _files(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and "logs" not in p.parts}


def _step(path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    adam = next(iter(checkpoint["optimizer_states"][0]["state"].values()))
    return int(checkpoint["global_step"]), int(adam["step"])


@pytest.fixture(scope="module")
def trained(synth_set, tmp_path_factory):
    """A run of 2 steps, a checkpoint at each: checkpoints/last.ckpt and step0000002.ckpt, and model.ckpt."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert _train(synth_set, run, "--set", "optim.max_steps=2", "--set", "checkpoint_every_steps=1") == 0
    assert {"checkpoints/last.ckpt", "checkpoints/step0000002.ckpt", "model.ckpt"} <= set(_files(run))
    for name in ("config.yaml", "model.ckpt", "checkpoints/last.ckpt"):      # the usual mode, not 0600
        assert stat.S_IMODE((run / name).stat().st_mode) == usual_file_mode(), name
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _interrupt_restore(monkeypatch):
    from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(_CheckpointConnector, "restore_training_state", interrupted)


def _interrupt_first_step(monkeypatch):
    def interrupted(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)             # a real Ctrl-C, before the first step of the resumed run
    monkeypatch.setattr(KeypointNeRFTraining, "on_train_start", interrupted)


@pytest.mark.parametrize("interrupt", [_interrupt_restore, _interrupt_first_step], ids=["restoring", "starting"])
def test_interrupting_a_resume_at_its_start_leaves_the_checkpoints_byte_identical(run, monkeypatch, interrupt):
    before = _files(run)
    interrupt(monkeypatch)
    assert _resume(run, "--set", "optim.max_steps=4") == 130                  # 128 + SIGINT
    after = _files(run)
    # the run's checkpoints and model are untouched (a resumed run that changed max_steps keeps its config beside)
    assert {k: v for k, v in after.items() if "config" not in k} == {k: v for k, v in before.items()
                                                                     if "config" not in k}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # Ctrl-C works again afterwards


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])   # 128 + the signal
def test_a_signal_during_training_exits_non_zero_and_keeps_the_steps_taken(run, monkeypatch, signum, code):
    model = (run / "model.ckpt").read_bytes()
    original = KeypointNeRFTraining.training_step

    def step(self, sample, batch_idx):
        if self.global_step == 3:
            os.kill(os.getpid(), signum)
        return original(self, sample, batch_idx)
    monkeypatch.setattr(KeypointNeRFTraining, "training_step", step)
    assert _resume(run, "--set", "optim.max_steps=10") == code
    saved, adam = _step(run / "checkpoints" / "last.ckpt")
    assert 3 <= saved <= 4 and adam == saved                        # the steps taken, saved on the signal
    assert (run / "model.ckpt").read_bytes() == model                # a stopped run exports no model


def test_an_unreadable_last_checkpoint_falls_back_to_the_newest_readable_one(run, capsys):
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])                      # truncated, as by a full disk
    assert _resume(run, "--set", "optim.max_steps=3") == 0
    assert_names(capsys.readouterr().err, last, "step0000002.ckpt")        # the unreadable file and the one taken
    assert _step(last) == (3, 3)                                    # continued from step 2, not from scratch
    for name in ("last.ckpt", "step0000002.ckpt"):
        (run / "checkpoints" / name).write_bytes(b"junk")
    for path in (run / "checkpoints").glob("step*.ckpt"):
        path.write_bytes(b"junk")
    model = (run / "model.ckpt").read_bytes()
    assert _resume(run, "--set", "optim.max_steps=4") == 2
    assert_names(capsys.readouterr().err, run / "checkpoints")
    assert (run / "model.ckpt").read_bytes() == model


@pytest.mark.parametrize("option, named", [                 # the setting and its value (numbers that show why)
    (["--threads", "-1"], ["--threads -1"]),
    (["--devices", "0"], ["--devices 0"]),
    (["--set", "data.patch_size=0"], ["data.patch_size=0"]),
    (["--set", "data.patch_size=4096"], ["data.patch_size=4096", "128x128"]),
    (["--set", "optim.max_steps=0"], ["optim.max_steps=0"]),
    (["--set", "render.chunk_rays=0"], ["render.chunk_rays=0"]),
    (["--set", "render.coarse_samples=-4"], ["render.coarse_samples=-4"]),
    (["--set", "model.tex_out_channels=-1"], ["model.tex_out_channels=-1"]),
    (["--set", "model.geo_mlp_hidden=2000000"], ["GB"]),                   # the memory it would need
    (["--set", "data.keypoint_jitter_cm=nan"], ["data.keypoint_jitter_cm=nan"]),
    (["--set", "data.keypoint_jitter_cm=-1"], ["data.keypoint_jitter_cm=-1"]),
])
def test_settings_that_could_only_fail_later_are_refused_up_front(synth_set, tmp_path, capsys, option, named):
    out = tmp_path / "run"
    assert _train(synth_set, out, *option) == 2
    assert_names(capsys.readouterr().err, *named)
    assert not out.exists()
