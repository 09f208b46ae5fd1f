#!/usr/bin/env python3
"""Fast (culled) renderer against the plain path, side by side in one run, same weights and threads.

usage: python benchmarks/render_speed.py [CHECKPOINT] [FIXTURE.npz] [--sizes 128,256,512] [--full-plain]

Renders the parity fixture's target view at several resolutions (its intrinsics scaled by size / fixture size)
with the fast path (networks only inside the visual hull, colour only where a sample contributes, coarse
values reused in the fine pass) and with the plain path that evaluates every sample of every pixel, coarse
and fine, as the official code does. Without CHECKPOINT, the fixture's checkpoint is built with
shared/parity/make_checkpoint.py. The plain path's cost per pixel does not depend on the image content, so
at sizes above 256 it renders every 8th row and scales the time (``--full-plain`` renders it all).
Prints seconds, network evaluations per pixel, peak memory, the speed-up, and last
``speedup_256=<x> seconds_512=<y>``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from keypointnerf.model.checkpoint import load_model
from keypointnerf.render.rays import pixel_grid
from keypointnerf.render.renderer import RenderConfig, RenderStats, render_pixels

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "parity"


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS counter of this process (Linux); harmless elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model, enc, K, Rt, size, bounds, cull: bool, row_step: int = 1):
    pixels = pixel_grid(size, size)
    if row_step > 1:
        pixels = pixels[(pixels[:, 1] % row_step) == 0]
    stats = RenderStats()
    reset_peak_memory()
    start = time.perf_counter()
    with torch.inference_mode():
        out = render_pixels(model, enc, K, Rt, pixels, bounds, RenderConfig(cull=cull), stats=stats)
    seconds = (time.perf_counter() - start) * row_step
    per_pixel = (stats.geometry_evaluations + stats.color_evaluations) / len(pixels)
    return seconds, per_pixel, peak_memory_mb(), out, pixels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="checkpoint (default: built from the fixture's recipe)")
    parser.add_argument("fixture", nargs="?", default=str(SHARED / "fixture_A.npz"))
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--full-plain", action="store_true", help="render the plain path at every size fully")
    args = parser.parse_args(argv)

    fixture = np.load(args.fixture, allow_pickle=False)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = os.path.join(tempfile.mkdtemp(prefix="kpnerf-bench-"), "fixture.ckpt")
        subprocess.run([sys.executable, str(SHARED / "make_checkpoint.py"), args.fixture, checkpoint], check=True)
    model, _, _ = load_model(checkpoint, "cpu")
    T = lambda name: torch.from_numpy(np.asarray(fixture[name])).float()  # noqa: E731
    images, masks, K, Rt = T("in/images"), T("in/images_masks"), T("in/K"), T("in/Rt")
    base = images.shape[-1]
    with torch.inference_mode():
        enc = model.encode(images[1:], masks[1:], K[1:], Rt[1:], T("in/kpt3d"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fixture {args.fixture}; "
          f"{images.shape[0] - 1} source views of {base}x{base}")
    print(f"{'size':>9} {'path':>6} {'seconds':>9} {'evals/px':>9} {'peak MB':>8}  note")
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        Ks = K[0].clone()
        Ks[:2] *= size / base
        fast_s, fast_e, fast_m, fast_out, _ = measure(model, enc, Ks, Rt[0], size, T("in/bounds"), cull=True)
        row_step = 1 if args.full_plain or size <= 256 else 8
        plain_s, plain_e, plain_m, plain_out, pixels = measure(model, enc, Ks, Rt[0], size, T("in/bounds"),
                                                               cull=False, row_step=row_step)
        rows = (pixels[:, 1] * size + pixels[:, 0])
        diff = float((fast_out["rgb"][rows] - plain_out["rgb"]).abs().max())
        note = f"every {row_step}th row, time scaled" if row_step > 1 else ""
        print(f"{size:>4}x{size:<4} {'fast':>6} {fast_s:>9.2f} {fast_e:>9.1f} {fast_m:>8.0f}")
        print(f"{size:>4}x{size:<4} {'plain':>6} {plain_s:>9.2f} {plain_e:>9.1f} {plain_m:>8.0f}  {note}")
        print(f"{'':>9} speed-up {plain_s / fast_s:.1f}x; max |fast - plain| on the image {diff:.2g}")
        results[size] = (fast_s, plain_s)
    speedup = results[256][1] / results[256][0] if 256 in results else float("nan")
    seconds_512 = results[512][0] if 512 in results else float("nan")
    print(f"speedup_256={speedup:.1f} seconds_512={seconds_512:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
