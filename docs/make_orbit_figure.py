"""Rebuild the README's orbit figures from a demo output: the three source photos, a gap, then 8 of the video's
frames.

    python docs/make_orbit_figure.py [demo_output] [docs/orbit.png]
    python docs/make_orbit_figure.py demo_head_output docs/head_orbit.png     # after `keypointnerf demo --head`
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

HEIGHT = 160          # pixels: every panel is scaled to this height
GAP = 16
FRAMES_SHOWN = 8
# the frames are cropped to their middle: a standing person is narrower than the frame, a head nearly as wide
CROP_SHARE = {"person": 0.64, "head": 0.9}


def _scaled(image: np.ndarray, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    return np.asarray(Image.fromarray(image[..., :3]).resize((width, height), Image.LANCZOS))


def main(demo: Path, out: Path) -> None:
    render = json.loads((demo / "orbit" / "render.json").read_text())
    is_head = json.loads((demo / "demo.json").read_text()).get("head", False)
    subject = Path(render["data"])
    sources = []
    for camera in render["sources"]:   # the demo's data comes from synth, which names cameras Camera_B1, ...
        sources.append(_scaled(iio.imread(subject / f"Camera_B{camera + 1}" / f"{render['frame']:06d}.jpg"), HEIGHT))
    frames = sorted((demo / "orbit" / "orbit").glob("*.png"))
    if len(frames) < FRAMES_SHOWN:
        raise SystemExit(f"{demo / 'orbit' / 'orbit'}: {len(frames)} frames, need {FRAMES_SHOWN}: run the demo")
    picked = [frames[round(i * (len(frames) - 1) / (FRAMES_SHOWN - 1))] for i in range(FRAMES_SHOWN)] \
        if is_head else [frames[i * len(frames) // FRAMES_SHOWN] for i in range(FRAMES_SHOWN)]
    panels = []
    for path in picked:
        frame = _scaled(iio.imread(path), HEIGHT)
        width = round(frame.shape[1] * CROP_SHARE["head" if is_head else "person"])
        left = (frame.shape[1] - width) // 2
        panels.append(frame[:, left:left + width])
    gap = np.full((HEIGHT, GAP, 3), 255, np.uint8)
    iio.imwrite(out, np.concatenate([*sources, gap, *panels], axis=1))
    print(f"{out}: {len(sources)} source photos + {len(panels)} orbit frames")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output"),
         Path(sys.argv[2] if len(sys.argv) > 2 else "docs/orbit.png"))
