"""Rebuild docs/viewer.png: `keypointnerf view` with the shipped model on a `make demo` person, in headless Chromium.

    python docs/make_viewer_screenshot.py [demo_output] [docs/viewer.png]

Needs the 'view' extra and Chromium (`make browser`). The page is captured once the full-resolution render of its
camera is on screen (the software WebGL notice of a GPU-less browser is hidden).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 720
RESOLUTION = 384


def main(demo: Path, out: Path) -> None:
    from keypointnerf.view.browser import HeadlessChromium

    subject = demo / "person" / "synth_000"
    if not (subject / "annots.npy").is_file():
        raise SystemExit(f"{subject}: no person here: run `make demo` first")
    server = subprocess.Popen(
        [sys.executable, "-m", "keypointnerf.cli", "view", "--checkpoint", str(ROOT / "models" / "small.ckpt"),
         "--data", str(subject), "--sources", "0,7,15", "--port", "0", "--resolution", str(RESOLUTION),
         "--close-after", "2", "-o", str(demo / "view")], stdout=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stdout:
            print(line, end="")
            if "keypointnerf view: serving" in line:
                url = line.split(" at ")[1].split()[0]
                break
        if url is None:
            raise SystemExit("the viewer did not start")
        with HeadlessChromium(width=WIDTH, height=HEIGHT) as browser:
            browser.open(url)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                time.sleep(2)
                text = browser.evaluate("document.body.innerText") or ""
                if f"{RESOLUTION} x " in text and " px in " in text and "refining" not in text:
                    break
            else:
                raise SystemExit("no full-resolution render within 10 minutes")
            browser.evaluate("document.querySelectorAll('.mantine-Notifications-root')"
                             ".forEach(e => e.style.display = 'none')")
            time.sleep(5)                      # the page's fade-in settles
            Image.fromarray(browser.screenshot()).save(out)
        print(f"{out}: the viewer's page, {WIDTH} x {HEIGHT}")
    finally:
        server.wait(60)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output"),
         Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "docs" / "viewer.png"))
