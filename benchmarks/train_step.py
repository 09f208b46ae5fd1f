#!/usr/bin/env python3
"""One training step of this package against the plain path, side by side in one run: same weights, data, seeds
and threads.

usage: python benchmarks/train_step.py [--preset zju|small] [--data PATH] [--threads 1] [--steps 3] [--samples 3]
                                       [--plain-patches 16,24] [--full-plain] [--loader-workers 0,1]
                                       [--loader-cache-mb 16] [--precision bf16-mixed]

A step is forward, backward and the Adam update, on a target patch of the preset (zju: the official
configuration, 64 x 64 patch, 64 + 64 samples, 3 source views of 512 x 512, the official model; the VGG
perceptual term is off: no weights are downloaded). Rows:

* ``training``: the training path (``render.cull``: rays that cannot meet the visual hull skipped, networks only
  at samples inside it, colour only where a sample contributes, coarse values reused in the fine pass, the
  encoders and per-view networks only on the views that view dropout keeps; ``render.grad_checkpoint``: the point
  networks recomputed in the backward pass, ``render.max_points`` points at a time).
* ``plain``: every sample of every ray through both networks in one call per pass, all activations kept, every
  source view encoded, as the official trainer does (no culling, no reuse).

View dropout (``data.view_dropout``, on in both presets, as in the official recipe) keeps k of the V source views
with probability C(V-1, k-1) / 2^(V-1) (3 views: 1, 2, 3 with 1/4, 1/2, 1/4). The training path's cost depends on
k, and on the patch (how many of its rays meet the visual hull, and how deep): it runs once per k (a seed whose
draw keeps k views) on each of ``--samples`` samples of the data set, and its step is the expected one: the mean
over the samples of the probability-weighted mean over k; its peak is the largest. The plain path's cost depends
on neither: it runs on the first sample with the draw of the most likely k, on which the gradients are compared.

The plain path's memory and time grow with the number of rays (its work per ray does not depend on the image),
and at the official patch it needs about 22 GB: it runs on centred sub-patches (``--plain-patches``) and is
extrapolated linearly in the number of rays to the full patch (a straight line through the two largest
sub-patches), unless
``--full-plain`` or the predicted peak fits comfortably in the available memory. The gradients of the two paths
are compared on the largest patch both ran. Times are the process's CPU seconds (``time.process_time``; one
thread, so they do not count the time other jobs on a shared machine take the core away; the wall time is printed
beside them). Peak memory is the process's resident peak (``VmHWM``, reset before
each step): the model, data and libraries (``base``) plus what the step adds.

Before the comparison, for each count of ``--loader-workers`` (``data.loader_workers``: 0 = in the training
process, 1 = one worker process that prefetches while the step runs), ``--steps`` steps of the training path draw
their samples from the training data loader and report the share of a step spent waiting for data (the steps
after the first, which includes opening the data set and starting the worker). The view cache is set to
``--loader-cache-mb`` (default 16: one sample's four views, decoded once each), so that a step decodes its views
as on ZJU-MoCap, whose thousands of views rarely repeat in the cache. Without ``--data`` a synthetic subject
(1024 px stored, 512 px read, as ZJU-MoCap) is generated once into the cache. The last line is
``train_speedup=<x> train_memory_ratio=<y>`` (plain seconds / training seconds, training peak / plain peak).

``--precision bf16-mixed`` measures bf16 autocast instead of the plain path: the training path's step in float32
and under Lightning's ``bf16-mixed`` autocast (``--set optim.precision=bf16-mixed`` of ``keypointnerf train``),
same weights, sample and seeds, on the full patch and, at ``zju``, on the ``--plain-patches``' largest side;
it prints the seconds, peaks, losses and the gradients' largest difference, and last ``bf16_loss_rel_diff=<r>
bf16_grad_rel_diff=<g> bf16_speedup=<s>`` (|loss difference| / fp32 loss, largest gradient difference / largest
fp32 gradient, fp32 seconds / bf16 seconds).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import dataclasses
import gc
import math
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

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

    def step(self, sample: Sample, render_cfg, seed: int = 1, precision: str = "32"):
        """-> CPU seconds, wall seconds, peak MB added over the memory in use before, loss, gradients (name ->
        tensor), stats.

        ``precision``: "32", or a Lightning mixed precision ("bf16-mixed"): the forward pass runs in the
        autocast context Lightning's ``Trainer(precision=...)`` puts around ``training_step`` (the backward pass
        and the optimiser step outside it, as there)."""
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
        autocast = (contextlib.nullcontext() if precision == "32" else
                    MixedPrecision(precision, "cpu").forward_context())
        start, cpu_start = time.perf_counter(), time.process_time()
        with autocast:
            losses = module._losses(sample)
        losses["loss"].backward()
        optimizer.step()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        added = peak_memory_mb() - before
        grads = {name: p.grad.detach().clone() for name, p in module.model.named_parameters() if p.grad is not None}
        loss = float(losses["loss"].detach())
        del losses, optimizer
        return cpu_seconds, seconds, added, loss, grads, self.stats


def loader_steps(stepper: Stepper, cfg, steps: int) -> tuple[dict, float]:
    """``steps`` training steps fed by the training data loader of ``cfg`` -> (first sample, share of the steps
    after the first spent waiting for data)."""
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
        _, seconds, *_ = stepper.step(sample, stepper.training_cfg, seed=100 + index)
        print(f"  loader step {index + 1}/{steps}: waited {wait:.2f} s for data, step {seconds:.2f} s (wall)",
              flush=True)
        if index == 0:
            first = sample
        else:
            waited, stepped = waited + wait, stepped + seconds
    share = waited / (waited + stepped) if steps > 1 else float("nan")
    del batches, loader   # ends the worker processes before the comparison
    release_memory()
    return first, share


def dropout_draws(cfg) -> list[tuple[int, int, float]]:
    """(kept views k, a step seed whose view-dropout draw keeps k views, probability of k) for every k; one
    (V, 1, 1.0) without view dropout."""
    views = cfg.data.num_sources
    if not cfg.data.view_dropout or views < 2:
        return [(views, 1, 1.0)]
    draws, seed = {}, 1
    while len(draws) < views:
        draws.setdefault(len(train_module.drop_views(views, torch.Generator().manual_seed(seed))), seed)
        seed += 1
    return [(k, draws[k], math.comb(views - 1, k - 1) / 2 ** (views - 1)) for k in sorted(draws)]


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
    parser.add_argument("--samples", type=int, default=3,
                        help="samples (patches) the training path's step is averaged over (default 3)")
    parser.add_argument("--plain-patches", default="16,24",
                        help="sub-patch sides the plain path runs on (default 16,24)")
    parser.add_argument("--full-plain", action="store_true", help="also run the plain path on the full patch")
    parser.add_argument("--loader-workers", default="0,1", help="data loader worker counts to measure (default 0,1)")
    parser.add_argument("--loader-cache-mb", type=float, default=16,
                        help="the view cache while the loader is measured (default 16 MB: one sample's views)")
    parser.add_argument("--precision", default="32", choices=("32", "bf16-mixed"),
                        help="bf16-mixed: compare the training path under bf16 autocast with float32 instead of "
                             "the plain path")
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
    patch = cfg.data.patch_size
    plain_sides = [int(s) for s in args.plain_patches.split(",")]
    if len(plain_sides) < 2 or any(s >= patch or s < 2 for s in plain_sides) or plain_sides != sorted(set(plain_sides)):
        raise UserError(f"--plain-patches: two or more increasing sides below the patch size {patch}")
    worker_counts = [int(w) for w in args.loader_workers.split(",")] if args.loader_workers else []
    if any(w < 0 for w in worker_counts) or args.steps < 2 or args.loader_cache_mb < 0 or args.samples < 1:
        raise UserError("--loader-workers: counts >= 0; --steps: at least 2; --loader-cache-mb: >= 0; --samples: "
                        "at least 1")
    render = cfg.render
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; preset {args.preset}: {patch}x{patch} "
          f"patch, {render.coarse_samples} + {render.fine_samples} samples, {cfg.data.num_sources} source views, "
          f"max_points {render.max_points}; data {cfg.data.root}")

    stepper = Stepper(cfg)
    shares = {}
    for workers in worker_counts:
        loader_cfg = copy.deepcopy(cfg)
        loader_cfg.data.loader_workers, loader_cfg.data.cache_mb = workers, args.loader_cache_mb
        print(f"training path fed by the data loader ({workers} workers, view cache {args.loader_cache_mb:g} MB):")
        _, shares[workers] = loader_steps(stepper, loader_cfg, args.steps)
    for workers, share in shares.items():
        print(f"data_wait_share={share:.3f} with {workers} loader workers (of the steps after the first)")
    # the training path's cost depends on the patch (how many of its rays meet the visual hull, how deep): it
    # runs on several samples of the data set (each visit of an item draws new views, target and patch)
    data = train_module.TrainData(cfg)
    data.setup()
    samples = [data.dataset[index % len(data.dataset)] for index in range(args.samples)]
    sample = samples[0]
    for index, each in enumerate(samples):
        views = tuple(each.views.images.shape[-2:])
        print(f"sample {index}{' (the comparison sample)' if index == 0 else ''}: {each.info}, source views "
              f"{views[1]}x{views[0]}")

    base = resident_mb()
    rows = []   # (path, side, seconds, added MB, note)

    draws = dropout_draws(cfg)
    likely_seed = max(draws, key=lambda draw: draw[2])[1]

    def measure(path: str, side: int, precision: str = "32", seed: int = likely_seed, on: Sample = sample):
        sub = dataclasses.replace(on, pixels=centred_patch(on.pixels, side))
        cfg_path = stepper.training_cfg if path != "plain" else plain_settings(stepper.training_cfg, side * side)
        seconds, wall, added, loss, grads, stats = stepper.step(sub, cfg_path, seed=seed, precision=precision)
        evaluations = (stats.geometry_evaluations + stats.color_evaluations) / (side * side)
        rows.append((path, side, seconds, added))
        kept = next(f"{k} of {cfg.data.num_sources}" for k, s, _ in draws if s == seed)
        print(f"{side:>3}x{side:<3} {path:>10} {seconds:>9.2f} {base + added:>9.0f} {added:>9.0f} {evaluations:>9.1f}"
              f"  loss {loss:.6f}, sample {next(i for i, s in enumerate(samples) if s is on)}, {kept} views kept "
              f"(wall {wall:.1f} s)", flush=True)
        return loss, grads

    def compare(name: str, reference: tuple, other: tuple, side: int) -> tuple[float, float]:
        """Prints the losses and the gradients' largest difference -> (that difference, largest gradient)."""
        (loss, grads), (other_loss, other_grads) = reference, other
        scale = max(float(g.abs().max()) for g in grads.values())
        worst = max(float((other_grads[key] - grads[key]).abs().max()) for key in grads)
        same_keys = grads.keys() == other_grads.keys()
        print(f"{side}x{side} patch: loss {name} {other_loss:.7f} reference {loss:.7f}; gradients of {len(grads)} "
              f"tensors{'' if same_keys else ' (DIFFERENT tensors!)'}: max |{name} - reference| {worst:.3g} "
              f"(largest gradient {scale:.3g})")
        return worst, scale

    print(f"{'patch':>7} {'path':>10} {'CPU s':>9} {'peak MB':>9} {'step MB':>9} {'evals/ray':>9}  (base {base:.0f} MB)")
    if args.precision != "32":
        return compare_precision(args, patch, plain_sides, measure, compare, rows)
    full_training, training_seconds, training_added = None, 0.0, 0.0
    for on in samples:
        for _, seed, probability in draws:
            result = measure("training", patch, seed=seed, on=on)
            if on is sample and seed == likely_seed:
                full_training = result
            training_seconds += probability * rows[-1][2] / len(samples)
            training_added = max(training_added, rows[-1][3])
    if len(draws) > 1 or len(samples) > 1:
        print(f"{patch:>3}x{patch:<3} {'training':>10} {training_seconds:>9.2f} {base + training_added:>9.0f} "
              f"{training_added:>9.0f} {'':>9}  expected: mean over the samples of the view-dropout draws weighted "
              "by their probability (" + ", ".join(f"{k} views: {p:g}" for k, _, p in draws) + "); peak: the largest")
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
        print(f"{patch:>3}x{patch:<3} {'plain':>10} {plain_seconds:>9.2f} {base + plain_added:>9.0f} "
              f"{plain_added:>9.0f} {'':>9}  {how}")

    # gradients on the largest patch both paths ran: the plain path is the reference
    side = max(plain_results)
    training = full_training if side == patch else measure("training", side)
    compare("training", plain_results[side], training, side)

    speedup = plain_seconds / training_seconds
    ratio = (base + training_added) / (base + plain_added)
    print(f"{args.preset}: training {training_seconds:.1f} CPU s/step ({1 / training_seconds:.3f} steps/s), peak "
          f"{(base + training_added) / 1024:.2f} GB; plain {plain_seconds:.1f} CPU s/step, peak "
          f"{(base + plain_added) / 1024:.2f} GB ({how})")
    print(f"train_speedup={speedup:.1f} train_memory_ratio={ratio:.3f}")
    return 0


def compare_precision(args, patch: int, plain_sides: list[int], measure, compare, rows) -> int:
    """The training path in float32 and under ``args.precision`` autocast, on one patch side (``small``: the
    full patch; ``zju``: the largest of ``--plain-patches``, as bf16 emulated on a CPU without bf16 instructions is
    several times slower)."""
    bf16_instructions = any(flag in Path("/proc/cpuinfo").read_text().split() for flag in ("avx512_bf16", "amx_bf16"))
    print(f"CPU bf16 instructions (avx512_bf16/amx_bf16): {'yes' if bf16_instructions else 'no (emulated)'}")
    side = patch if args.preset == "small" else plain_sides[-1]
    reference = measure("training", side)
    other = measure(args.precision, side, precision=args.precision)
    worst, scale = compare(args.precision, reference, other, side)
    (_, _, fp32_seconds, _), (_, _, other_seconds, _) = rows[-2], rows[-1]
    loss_rel = abs(other[0] - reference[0]) / abs(reference[0])
    print(f"bf16_loss_rel_diff={loss_rel:.3g} bf16_grad_rel_diff={worst / scale:.3g} "
          f"bf16_speedup={fp32_seconds / other_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
