"""synth's worker processes end with their parent, even when it is killed and runs no clean-up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux /proc")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_workers_leave_when_synth_is_killed(tmp_path):
    command = [sys.executable, "-c", "import sys; from keypointnerf.cli import main; sys.exit(main(sys.argv[1:]))",
               "synth", str(tmp_path / "set"), "--subjects", "2", "--frames", "6", "--cameras", "8",
               "--resolution", "256", "--workers", "2", "--no-progress"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the pool's two workers (and multiprocessing's resource tracker) are running
        assert _wait_for(lambda: len(_children(parent.pid)) >= 3, 120), "synth started no workers"
        workers = _children(parent.pid)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 20), \
        [pid for pid in workers if _alive(pid)]
