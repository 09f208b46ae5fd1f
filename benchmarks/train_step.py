#!/usr/bin/env python3
"""One training step of this package against the plain path, side by side in one run: same weights, data, seeds
and threads.

usage: python benchmarks/train_step.py [--preset zju|small] [--data PATH] [--threads 1] [--steps 3]
                                       [--plain-patches 16,32] [--full-plain] [--loader-workers N]

A step is forward, backward and the Adam update, on a target patch of the preset (zju: the official
configuration, 64 x 64 patch, 64 + 64 samples, 3 source views of 512 x 512, the official model; the VGG
perceptual term is off: no weights are downloaded). Rows:

* ``training``: the training path (``render.cull``: rays that cannot meet the visual hull skipped, networks only
  at samples inside it, colour only where a sample contributes, coarse values reused in the fine pass;
  ``render.grad_checkpoint``: the point networks recomputed in the backward pass, ``render.max_points`` points
  at a time).
* ``plain``: every sample of every ray through both networks in one call per pass, all activations kept, as the
  official trainer does (no culling, no reuse).

The plain path's memory and time grow with the number of rays (its work per ray does not depend on the image),
and at the official patch it needs about 22 GB: it runs on centred sub-patches (``--plain-patches``) and is
extrapolated linearly in the number of rays to the full patch (a straight line through the two largest
sub-patches; the measured growth is faster than linear, so the extrapolation flatters the plain path), unless
``--full-plain`` or the predicted peak fits comfortably in the available memory. The gradients of the two paths
are compared on the largest patch both ran. Peak memory is the process's resident peak (``VmHWM``, reset before
each step): the model, data and libraries (``base``) plus what the step adds. Before the comparison, ``--steps``
steps of the training path draw their samples from the training data loader (``data.loader_workers``) and
report the share of a step spent waiting for data. Without ``--data`` a synthetic subject (1024 px stored,
512 px read, as ZJU-MoCap) is generated once into the cache. The last line is
``train_speedup=<x> train_memory_ratio=<y>`` (plain seconds / training seconds, training peak / plain peak).
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import dataclasses
import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_speed import peak_memory_mb, reset_peak_memory  # noqa: E402

from keypointnerf.configio import to_dict  # noqa: E402
from keypointnerf.data.sample import Sample  # noqa: E402
from keypointnerf.errors import UserError  # noqa: E402
from keypointnerf.paths import cache_dir  # noqa: E402
from keypointnerf.render.renderer import RenderStats  # noqa: E402
from keypointnerf.train import module as train_module  # noqa: E402
from keypointnerf.train.config import train_preset  # noqa: E402

SYNTH = dict(subjects=1, frames=2, cameras=6, resolution=1024, seed=3)


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def release_memory() -> None:
    """Give freed heap back to the system, so that the next step's peak starts from what is really in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def synthetic_subject() -> Path:
    from keypointnerf.data.synth import generate
    out = cache_dir("benchmarks", "train_step_synth")
    generate(out, workers=1, progress=False, **SYNTH)   # resumes: nothing to do after the first run
    return out


def plain_settings(render_cfg, rays: int):
    """The official trainer's render: every sample in one network call per pass, activations kept."""
    samples = render_cfg.coarse_samples + 2 * max(render_cfg.fine_samples, 0)
    return dataclasses.replace(render_cfg, cull=False, grad_checkpoint=False, chunk_rays=rays,
                               max_points=rays * samples)


def centred_patch(pixels: torch.Tensor, side: int) -> torch.Tensor:
    """The centred side x side sub-patch of a square, row-major patch of pixels (P, 2)."""
    full = int(round(len(pixels) ** 0.5))
    start = (full - side) // 2
    grid = pixels.reshape(full, full, 2)
    return grid[start:start + side, start:start + side].reshape(-1, 2)


class Stepper:
    """Runs one optimisation step of a path from the same initial weights, seeds and sample."""

    def __init__(self, cfg, seed: int = 0):
        torch.manual_seed(seed)
        self.module = train_module.KeypointNeRFTraining(to_dict(cfg))
        self.initial = copy.deepcopy(self.module.model.state_dict())
        self.training_cfg = self.module.render_cfg
        self.stats = RenderStats()
        render = train_module.render_pixels
        train_module.render_pixels = lambda *a, **k: render(*a, **k, stats=self.stats)

    def step(self, sample: Sample, render_cfg, seed: int = 1):
        """-> seconds, peak MB added over the memory in use before, loss, gradients (name -> tensor), stats."""
        module = self.module
        module.model.load_state_dict(self.initial)
        module.model.zero_grad(set_to_none=True)
        module.render_cfg = render_cfg
        optimizer = torch.optim.Adam(module.model.parameters(), lr=module.cfg.optim.lr)
        self.stats = RenderStats()
        release_memory()
        reset_peak_memory()
        before = resident_mb()
        torch.manual_seed(seed)
        module._dropout_rng.manual_seed(seed)
        start = time.perf_counter()
        losses = module._losses(sample)
        losses["loss"].backward()
        optimizer.step()
        seconds = time.perf_counter() - start
        added = peak_memory_mb() - before
        grads = {name: p.grad.detach().clone() for name, p in module.model.named_parameters() if p.grad is not None}
        loss = float(losses["loss"].detach())
        del losses, optimizer
        return seconds, added, loss, grads, self.stats


def loader_steps(stepper: Stepper, cfg, steps: int) -> tuple[Sample, float]:
    """``steps`` training steps fed by the training data loader -> (first sample, share of the steps after the
    first spent waiting for data)."""
    data = train_module.TrainData(cfg)
    loader = data.train_dataloader()
    batches = iter(loader)
    first, waited, stepped = None, 0.0, 0.0
    for index in range(steps):
        start = time.perf_counter()
        try:
            sample = next(batches)
        except StopIteration:   # a new epoch
            batches = iter(loader)
            sample = next(batches)
        wait = time.perf_counter() - start
        seconds, *_ = stepper.step(sample, stepper.training_cfg, seed=100 + index)
        print(f"  loader step {index + 1}/{steps}: waited {wait:.2f} s for data, step {seconds:.2f} s", flush=True)
        if index == 0:
            first = sample
        else:
            waited, stepped = waited + wait, stepped + seconds
    share = waited / (waited + stepped) if steps > 1 else float("nan")
    return first, share


def fit_line(xs, ys):
    """Straight line through the last two points -> f(x)."""
    (x0, y0), (x1, y1) = (xs[-2], ys[-2]), (xs[-1], ys[-1])
    slope = (y1 - y0) / (x1 - x0)
    return lambda x: y1 + slope * (x - x1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="zju", choices=("zju", "small"))
    parser.add_argument("--data", metavar="PATH", help="subject folder or folder of subjects (default: synthetic)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="training-path steps fed by the data loader")
    parser.add_argument("--plain-patches", default=None,
                        help="sub-patch sides the plain path runs on (default: zju 16,32; small 16,24)")
    parser.add_argument("--full-plain", action="store_true", help="also run the plain path on the full patch")
    parser.add_argument("--loader-workers", type=int, default=None, help="data loader workers (default: preset)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"train_step: error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    torch.set_num_threads(args.threads)
    cfg = train_preset(args.preset)
    cfg.data.root = str(Path(args.data).resolve() if args.data else synthetic_subject())
    cfg.data.protocol = "all"
    cfg.loss.perceptual = 0.0
    if args.loader_workers is not None:
        cfg.data.loader_workers = args.loader_workers
    patch = cfg.data.patch_size
    plain_sides = [int(s) for s in (args.plain_patches or ("16,32" if args.preset == "zju" else "16,24")).split(",")]
    if len(plain_sides) < 2 or any(s >= patch or s < 2 for s in plain_sides) or plain_sides != sorted(set(plain_sides)):
        raise UserError(f"--plain-patches: two or more increasing sides below the patch size {patch}")
    render = cfg.render
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; preset {args.preset}: {patch}x{patch} "
          f"patch, {render.coarse_samples} + {render.fine_samples} samples, {cfg.data.num_sources} source views, "
          f"max_points {render.max_points}; data {cfg.data.root}")

    stepper = Stepper(cfg)
    print(f"training path fed by the data loader ({cfg.data.loader_workers} workers):")
    sample, wait_share = loader_steps(stepper, cfg, args.steps)
    print(f"data_wait_share={wait_share:.3f} (of the steps after the first)")
    views = tuple(sample.views.images.shape[-2:])
    print(f"comparison sample: {sample.info}, source views {views[1]}x{views[0]}")

    base = resident_mb()
    pixels = sample.pixels
    rows = []   # (path, side, seconds, added MB, note)

    def measure(path: str, side: int):
        sub = dataclasses.replace(sample, pixels=centred_patch(pixels, side))
        cfg_path = stepper.training_cfg if path == "training" else plain_settings(stepper.training_cfg, side * side)
        seconds, added, loss, grads, stats = stepper.step(sub, cfg_path)
        evaluations = (stats.geometry_evaluations + stats.color_evaluations) / (side * side)
        rows.append((path, side, seconds, added))
        print(f"{side:>3}x{side:<3} {path:>9} {seconds:>9.2f} {base + added:>9.0f} {added:>9.0f} {evaluations:>9.1f}"
              f"  loss {loss:.6f}", flush=True)
        return loss, grads

    print(f"{'patch':>7} {'path':>9} {'seconds':>9} {'peak MB':>9} {'step MB':>9} {'evals/ray':>9}  (base {base:.0f} MB)")
    full_training = measure("training", patch)
    plain_results = {}
    for side in plain_sides:
        plain_results[side] = measure("plain", side)
    plain_rows = [r for r in rows if r[0] == "plain"]
    rays = [r[1] ** 2 for r in plain_rows]
    predicted_added = fit_line(rays, [r[3] for r in plain_rows])(patch * patch)
    room = available_mb()
    if args.full_plain or base + predicted_added < 0.6 * room:
        plain_results[patch] = measure("plain", patch)
        plain_seconds, plain_added, how = rows[-1][2], rows[-1][3], "measured"
    else:
        plain_seconds = fit_line(rays, [r[2] for r in plain_rows])(patch * patch)
        plain_added = predicted_added
        how = (f"extrapolated from {', '.join(f'{s}x{s}' for s in plain_sides)} (predicted peak "
               f"{base + plain_added:.0f} MB; {room:.0f} MB available)")
        print(f"{patch:>3}x{patch:<3} {'plain':>9} {plain_seconds:>9.2f} {base + plain_added:>9.0f} "
              f"{plain_added:>9.0f} {'':>9}  {how}")

    # gradients on the largest patch both paths ran
    side = max(plain_results)
    loss, grads = full_training if side == patch else measure("training", side)
    plain_loss, plain_grads = plain_results[side]
    scale = max(float(g.abs().max()) for g in plain_grads.values())
    worst = max(float((grads[name] - plain_grads[name]).abs().max()) for name in plain_grads)
    same_keys = grads.keys() == plain_grads.keys()
    print(f"{side}x{side} patch: loss training {loss:.7f} plain {plain_loss:.7f}; gradients of "
          f"{len(plain_grads)} tensors{'' if same_keys else ' (DIFFERENT tensors!)'}: max |training - plain| "
          f"{worst:.3g} (largest gradient {scale:.3g})")

    training_seconds, training_added = rows[0][2], rows[0][3]
    speedup = plain_seconds / training_seconds
    ratio = (base + training_added) / (base + plain_added)
    print(f"{args.preset}: training {training_seconds:.1f} s/step ({1 / training_seconds:.3f} steps/s), peak "
          f"{(base + training_added) / 1024:.2f} GB; plain {plain_seconds:.1f} s/step, peak "
          f"{(base + plain_added) / 1024:.2f} GB ({how})")
    print(f"train_speedup={speedup:.1f} train_memory_ratio={ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
