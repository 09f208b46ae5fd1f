#!/usr/bin/env python3
"""Fast (culled) renderer against the plain path, side by side in one run, same weights and threads.

usage: python benchmarks/render_speed.py [CHECKPOINT] [FIXTURE.npz] [--sizes 128,256,512] [--full-plain]

Renders the parity fixture's target view at several resolutions (its intrinsics scaled by size / fixture size)
with the fast path (rays that cannot meet the visual hull skipped, networks only inside the hull, colour only
where a sample contributes, coarse values reused in the fine pass) and with the plain path that evaluates every
sample of every pixel, coarse and fine, as the official code does. The official renderer (configs/zju.json:
dr_level 5) renders an image as 16 x 16 interleaved sub-images and evaluates all samples of a sub-image's rays
in one network call (H/16 * W/16 rays x 64 coarse, then x 128 fine samples); the ``plain`` row does the same.
The ``plain-4096`` row is the plain path in this package's cache-sized batches of 4096 points, for reference:
on this CPU the official batching alone costs 1.3x at 256x256 and 1.7x at 512x512.
Without CHECKPOINT, the fixture's checkpoint is built with shared/parity/make_checkpoint.py. The plain paths'
cost per pixel does not depend on the image content, so at sizes above 256 they render every 8th row and scale
the time (``--full-plain`` renders it all). Prints seconds, network evaluations per pixel, peak memory, the
speed-ups, and last ``speedup_256=<x> seconds_512=<y>`` (x against the official batching).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from keypointnerf.data.sample import SourceViews
from keypointnerf.errors import UserError
from keypointnerf.model.checkpoint import load_model
from keypointnerf.geometry import pixel_grid
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


OFFICIAL_STRIDE = 16   # 2 ** (dr_level - 1), dr_level 5 in the official configs/zju.json


def official_batching(size: int, cfg: RenderConfig) -> RenderConfig:
    """The plain path batched as the official renderer: one network call per pass over a sub-image's rays."""
    rays = math.ceil(size / OFFICIAL_STRIDE) ** 2
    return dataclasses.replace(cfg, chunk_rays=rays, max_points=rays * (cfg.coarse_samples + cfg.fine_samples))


def measure(model, enc, K, Rt, size, bounds, cfg: RenderConfig, row_step: int = 1):
    pixels = pixel_grid(size, size)
    if row_step > 1:
        pixels = pixels[(pixels[:, 1] % row_step) == 0]
    stats = RenderStats()
    reset_peak_memory()
    start = time.perf_counter()
    with torch.inference_mode():
        out = render_pixels(model, enc, K, Rt, pixels, bounds, cfg, stats=stats)
    seconds = (time.perf_counter() - start) * row_step
    per_pixel = (stats.geometry_evaluations + stats.color_evaluations) / len(pixels)
    return seconds, per_pixel, peak_memory_mb(), out, pixels, stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="checkpoint (default: built from the fixture's recipe)")
    parser.add_argument("fixture", nargs="?", default=str(SHARED / "fixture_A.npz"))
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--full-plain", action="store_true", help="render the plain path at every size fully")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"render_speed: error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    try:
        fixture = np.load(args.fixture, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{args.fixture}: cannot read the fixture ({exc})") from None
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = os.path.join(tempfile.mkdtemp(prefix="kpnerf-bench-"), "fixture.ckpt")
        subprocess.run([sys.executable, str(SHARED / "make_checkpoint.py"), args.fixture, checkpoint], check=True)
    model, _, _ = load_model(checkpoint, "cpu")
    T = lambda name: torch.from_numpy(np.asarray(fixture[name])).float()  # noqa: E731
    images, masks, K, Rt = T("in/images"), T("in/images_masks"), T("in/K"), T("in/Rt")
    base = images.shape[-1]
    with torch.inference_mode():
        enc = model.encode(SourceViews(images[1:], masks[1:], K[1:], Rt[1:], T("in/kpt3d")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fixture {args.fixture}; "
          f"{images.shape[0] - 1} source views of {base}x{base}")
    # warm-up (thread pool, allocator) so that neither path pays the process's first-call costs
    plain = RenderConfig(cull=False)
    for cfg in (RenderConfig(cull=True), plain, official_batching(base // 8, plain)):
        measure(model, enc, K[0] * torch.tensor([[0.125], [0.125], [1.0]]), Rt[0], base // 8, T("in/bounds"), cfg)
    print(f"{'size':>9} {'path':>10} {'seconds':>9} {'evals/px':>9} {'peak MB':>8}  note")
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        Ks = K[0].clone()
        Ks[:2] *= size / base
        bounds = T("in/bounds")
        fast_s, fast_e, fast_m, fast_out, pixels, stats = measure(model, enc, Ks, Rt[0], size, bounds,
                                                                  RenderConfig(cull=True))
        skipped = stats.rays_skipped / len(pixels)
        print(f"{size:>4}x{size:<4} {'fast':>10} {fast_s:>9.2f} {fast_e:>9.1f} {fast_m:>8.0f}  "
              f"{skipped:.0%} of the rays skipped (they cannot meet the visual hull)")
        row_step = 1 if args.full_plain or size <= 256 else 8
        note = f"every {row_step}th row, time scaled" if row_step > 1 else ""
        plain = {}
        for name, cfg in (("plain", official_batching(size, RenderConfig(cull=False))),
                          ("plain-4096", RenderConfig(cull=False))):
            seconds, evals, memory, out, pixels, _ = measure(model, enc, Ks, Rt[0], size, bounds, cfg, row_step)
            rows = pixels[:, 1] * size + pixels[:, 0]
            diff = float((fast_out["rgb"][rows] - out["rgb"]).abs().max())
            batch = f"up to {cfg.max_points} points per call" if name == "plain" else "4096 points per call"
            print(f"{size:>4}x{size:<4} {name:>10} {seconds:>9.2f} {evals:>9.1f} {memory:>8.0f}  {batch}; {note}"
                  f"{'; ' if note else ''}max |fast - plain| {diff:.2g}")
            plain[name] = seconds
        print(f"{'':>9} speed-up {plain['plain'] / fast_s:.1f}x (official batching), "
              f"{plain['plain-4096'] / fast_s:.1f}x (4096-point batches)")
        results[size] = (fast_s, plain["plain"], plain["plain-4096"])
    speedup = results[256][1] / results[256][0] if 256 in results else float("nan")
    seconds_512 = results[512][0] if 512 in results else float("nan")
    if 256 in results:
        print(f"speedup_256_against_4096_point_plain={results[256][2] / results[256][0]:.1f}")
    print(f"speedup_256={speedup:.1f} seconds_512={seconds_512:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
