"""Rebuild docs/orbit.png from a `make demo` output: the three source photos, a gap, then 8 of the orbit's frames.

    python docs/make_orbit_figure.py [demo_output] [docs/orbit.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

HEIGHT = 160          # pixels: every panel is scaled to this height
FRAME_WIDTH = 102     # the orbit frames are cropped to their middle (the person is narrower than the frame)
GAP = 16
SOURCE_CAMERAS = (0, 7, 15)
FRAMES_SHOWN = 8


def _scaled(image: np.ndarray, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    return np.asarray(Image.fromarray(image[..., :3]).resize((width, height), Image.LANCZOS))


def main(demo: Path, out: Path) -> None:
    person = demo / "person" / "synth_000"
    sources = [_scaled(iio.imread(person / f"Camera_B{c + 1}" / "000000.jpg"), HEIGHT) for c in SOURCE_CAMERAS]
    frames = sorted((demo / "orbit" / "orbit").glob("*.png"))
    if len(frames) < FRAMES_SHOWN:
        raise SystemExit(f"{demo / 'orbit' / 'orbit'}: {len(frames)} frames, need {FRAMES_SHOWN}: run `make demo`")
    picked = [frames[i * len(frames) // FRAMES_SHOWN] for i in range(FRAMES_SHOWN)]
    panels = []
    for path in picked:
        frame = _scaled(iio.imread(path), HEIGHT)
        left = (frame.shape[1] - FRAME_WIDTH) // 2
        panels.append(frame[:, left:left + FRAME_WIDTH])
    gap = np.full((HEIGHT, GAP, 3), 255, np.uint8)
    iio.imwrite(out, np.concatenate([*sources, gap, *panels], axis=1))
    print(f"{out}: {len(sources)} source photos + {len(panels)} orbit frames")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output"),
         Path(sys.argv[2] if len(sys.argv) > 2 else "docs/orbit.png"))
