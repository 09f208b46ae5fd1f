"""Shared test fixtures (the helpers they use live in ``helpers.py``)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import PARITY, TINY_SYNTH, make_scene

# A shell that starts the suite in the background (`make test &`, nohup) ignores SIGINT, and the commands the tests
# start would inherit that: the Ctrl-C tests need Python's own handler, as an interactive run has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """2 anny people (classic style: exact renders on black) x 2 frames x 4 cameras, 256 px stored (128 px after the
    reader's 0.5), split 1 train / 1 test."""
    from keypointnerf.data.synth import generate
    out = tmp_path_factory.mktemp("synth") / "set"
    summary = generate(out, workers=2, progress=False, **TINY_SYNTH)
    assert summary["frames_rendered"] == 4 and summary["frames_skipped"] == 0 and not summary["resumed"]
    return out


@pytest.fixture(scope="session")
def fixture_a() -> Path:
    path = PARITY / "fixture_A.npz"
    if not path.is_file():
        pytest.skip(f"parity fixture not found at {path} (set KEYPOINTNERF_SHARED)")
    return path


@pytest.fixture(scope="session")
def official_checkpoint(fixture_a, tmp_path_factory) -> Path:
    """The fixture's weights written as an official Lightning last.ckpt by the shared recipe."""
    out = tmp_path_factory.mktemp("official") / "last.ckpt"
    subprocess.run([sys.executable, str(PARITY / "make_checkpoint.py"), str(fixture_a), str(out)], check=True)
    return out


@pytest.fixture
def scene():
    return make_scene()


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a small shared machine a second thread mostly waits for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
