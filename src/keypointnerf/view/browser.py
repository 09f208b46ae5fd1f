"""Screenshots of a page in headless Chromium, driven over the DevTools protocol (for the viewer's tests and the
README's picture).

Chromium comes from the system (Debian: ``apt-get install chromium``; ``make browser`` does it); it is started
with a fresh profile, no network services of its own, and its DevTools endpoint on the loopback address only.
The protocol is spoken with ``websockets`` (a dependency of viser, the ``view`` extra).
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome executable (``KEYPOINTNERF_CHROMIUM`` overrides), or None."""
    override = os.environ.get("KEYPOINTNERF_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessChromium:
    """A headless Chromium with one page: ``open(url)``, then ``screenshot()`` as often as needed; ``close()`` (or
    the ``with`` block) ends the browser and deletes its profile."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 800,
                 start_timeout: float = 30.0):
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError("no Chromium found (install Debian's chromium package: make browser)")
        self._profile = tempfile.mkdtemp(prefix="keypointnerf-chromium-")
        self._process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._ids = itertools.count(1)
        self._socket = None
        try:
            self._connect(start_timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float) -> None:
        from websockets.sync.client import connect

        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"Chromium exited at start (code {self._process.returncode})")
            text = port_file.read_text() if port_file.is_file() else ""
            if text.count("\n") >= 1:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Chromium did not open its DevTools port within {timeout:.0f} s")
            time.sleep(0.1)
        port = int(text.split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as response:
            targets = json.loads(response.read())
        page = next(t for t in targets if t.get("type") == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
        self.call("Page.enable")

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        """Send one DevTools command and wait for its answer (events in between are skipped)."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """Run JavaScript in the page -> its value (JSON-serialisable results only)."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def screenshot(self) -> np.ndarray:
        """The page as (H, W, 3) uint8 RGB."""
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    def wait_for(self, condition: Callable[[np.ndarray], bool], timeout: float, interval: float = 1.0):
        """Screenshots until ``condition(image)`` holds -> (image, True), or (last image, False) after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            image = self.screenshot()
            if condition(image):
                return image, True
            if time.monotonic() > deadline:
                return image, False
            time.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._socket = None
        # the browser's own helper processes share its process group (a new session of its own)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self._process.poll() is not None:
                break
            try:
                os.killpg(self._process.pid, sig)
                self._process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
