"""Rebuild docs/synth_heads.png from a head set: frame 0 of every head from 8 of its cameras (evenly picked
along the arc), each view centred in a white square tile.

    keypointnerf synth heads --subject head --subjects 4 --frames 4 --cameras 12 --resolution 256 --seed 0
    python docs/make_synth_heads_figure.py [heads] [docs/synth_heads.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

TILE = 128            # pixels: every view is scaled to fit a square of this side
CAMERAS_SHOWN = 8


def main(heads: Path, out: Path) -> None:
    rows = []
    for subject in sorted(p for p in heads.iterdir() if p.name.startswith("synth_")):
        cameras = sorted(subject.glob("Camera_B*"), key=lambda p: int(p.name[len("Camera_B"):]))
        picked = [cameras[i] for i in np.linspace(0, len(cameras) - 1, CAMERAS_SHOWN).round().astype(int)]
        row = []
        for camera in picked:
            view = Image.open(camera / "000000.jpg").convert("RGB")
            view.thumbnail((TILE, TILE), Image.LANCZOS)
            tile = Image.new("RGB", (TILE, TILE), (255, 255, 255))
            tile.paste(view, ((TILE - view.width) // 2, (TILE - view.height) // 2))
            row.append(tile)
        rows.append(row)
    sheet = Image.new("RGB", (TILE * CAMERAS_SHOWN, TILE * len(rows)), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(tile, (TILE * c, TILE * r))
    # 256 colours, dithered (no banding on the smooth backgrounds): a third of the bytes
    palette = sheet.quantize(256, method=Image.Quantize.MEDIANCUT)
    sheet.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)
    print(f"wrote {out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "heads"),
         Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent / "synth_heads.png"))
