#!/usr/bin/env python3
"""In-distribution against held-out style, and robustness to keypoint error, for one or more models.

usage: python benchmarks/cross_style.py --model NAME=CHECKPOINT [--model NAME=CHECKPOINT ...]
           --set NAME=DATA [--set NAME=DATA ...] [--protocol NAME=PROTOCOL ...] --out DIR [--noise 0,1,2,4]
           [--noise-sets NAME,...] [--frame-step N] [--max-images N] [--seed S] [--plot FILE.png] [--threads N]

Each (model, set, keypoint noise) is one ``keypointnerf eval`` (the same protocol: 3 input views, bounding-
rectangle PSNR / SSIM with data_range 1) written to ``DIR/<model>/<set>/noise<cm>/metrics.json``; a result that is
already there is reused, so an interrupted run continues where it stopped. Typical sets: the test split of a
``synth --style diverse`` set (in distribution) and a ``synth --style heldout`` set (a style no training draw
came from; ``--protocol heldout=all`` tests all its people, not only its split's test part). Prints one table: PSNR / SSIM per model, set and noise, and per model the drop from the first set to
each other one; ``--noise-sets`` limits the noisy runs to some sets (the others at noise 0 only), ``--max-images``
keeps each evaluation to its first N images (people in order); ``--plot`` draws PSNR and SSIM against the keypoint noise (needs matplotlib:
``pip install -e '.[bench]'``). The last line is ``<model>_<set>_psnr=<x> ...`` at noise 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keypointnerf.cli import main as keypointnerf


def _pairs(values: list[str], option: str, paths: bool = True) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{option} {value!r}: expected NAME=" + ("PATH" if paths else "VALUE"))
        if paths and not Path(path).exists():
            raise SystemExit(f"{option} {value!r}: {path} not found")
        pairs[name] = path
    return pairs


def _evaluate(checkpoint: str, data: str, protocol: str, out: Path, noise: float, args) -> dict:
    metrics = out / "metrics.json"
    if metrics.is_file():
        kept = json.loads(metrics.read_text())["protocol"]
        if (kept.get("frame_step"), kept.get("max_images")) != (args.frame_step, args.max_images):
            raise SystemExit(f"{metrics}: made with --frame-step {kept.get('frame_step')} --max-images "
                             f"{kept.get('max_images')}, not the options given; choose another --out")
    else:
        argv = ["eval", "--checkpoint", checkpoint, "--data", data, "--out", str(out), "--force", "--no-images",
                "--protocol", protocol, "--keypoint-noise", f"{noise:g}", "--seed", str(args.seed),
                "--device", "cpu"]
        if args.frame_step:
            argv += ["--frame-step", str(args.frame_step)]
        if args.max_images:
            argv += ["--max-images", str(args.max_images)]
        print(f"$ keypointnerf {' '.join(argv)}", flush=True)
        code = keypointnerf(argv)
        if code:
            raise SystemExit(f"keypointnerf eval failed (exit {code}) for {checkpoint} on {data}")
    return json.loads(metrics.read_text())["mean"]


def _plot(results: dict, noises: list[float], first_set: str, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot: matplotlib is not installed (pip install -e '.[bench]'); {path} not written")
        return
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for (model, set_name), by_noise in results.items():
        style = "-" if set_name == first_set else "--"
        for axis, key in zip(axes, ("psnr", "ssim")):
            levels = sorted(by_noise)
            if len(levels) < 2:
                continue
            axis.plot(levels, [by_noise[n][key] for n in levels], style, marker="o", label=f"{model}, {set_name}")
    for axis, label in zip(axes, ("PSNR (dB)", "SSIM")):
        axis.set_xlabel("Gaussian noise on the 3D keypoints (cm)")
        axis.set_ylabel(label)
        axis.set_xticks(noises)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial.png")
    figure.savefig(temporary, dpi=110)
    temporary.replace(path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT")
    parser.add_argument("--set", action="append", required=True, metavar="NAME=DATA")
    parser.add_argument("--protocol", action="append", default=[], metavar="NAME=PROTOCOL",
                        help="the eval protocol of set NAME (default auto)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--noise", default="0", help="keypoint noise levels in cm, comma-separated (default 0)")
    parser.add_argument("--noise-sets", default=None, metavar="NAME,...",
                        help="the sets evaluated at every noise level (default all; the others at noise 0 only)")
    parser.add_argument("--frame-step", type=int, default=None, metavar="N")
    parser.add_argument("--max-images", type=int, default=None, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, metavar="FILE.png")
    parser.add_argument("--threads", type=int, default=None, metavar="N")
    args = parser.parse_args(argv)
    models, sets = _pairs(args.model, "--model"), _pairs(args.set, "--set")
    protocols = _pairs(args.protocol, "--protocol", paths=False)
    unknown = set(protocols) - set(sets)
    if unknown:
        raise SystemExit(f"--protocol names sets that --set does not give: {', '.join(sorted(unknown))}")
    noise_sets = set(sets) if args.noise_sets is None else set(args.noise_sets.split(","))
    if noise_sets - set(sets):
        raise SystemExit("--noise-sets names sets that --set does not give: "
                         + ", ".join(sorted(noise_sets - set(sets))))
    try:
        noises = sorted({float(n) for n in args.noise.split(",")})
    except ValueError:
        raise SystemExit(f"--noise {args.noise!r}: expected numbers separated by commas") from None
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        import torch
        torch.set_num_threads(args.threads)
    out = Path(args.out)

    results: dict = {}
    for model, checkpoint in models.items():
        for set_name, data in sets.items():
            results[(model, set_name)] = {
                n: _evaluate(checkpoint, data, protocols.get(set_name, "auto"),
                             out / model / set_name / f"noise{n:g}", n, args)
                for n in (noises if set_name in noise_sets else noises[:1])}

    print(f"\n{'model':>14} {'set':>14} " + " ".join(f"{f'noise {n:g} cm':>17}" for n in noises))
    for (model, set_name), by_noise in results.items():
        cells = " ".join(f"{by_noise[n]['psnr']:7.2f} / {by_noise[n]['ssim']:.4f}" if n in by_noise
                         else f"{'-':>17}" for n in noises)
        print(f"{model:>14} {set_name:>14} {cells}")
    set_names = list(sets)
    for model in models:
        first = results[(model, set_names[0])][noises[0]]
        for other in set_names[1:]:
            drop = results[(model, other)][noises[0]]
            print(f"{model}: {set_names[0]} -> {other}: PSNR {first['psnr'] - drop['psnr']:+.2f} dB lower, "
                  f"SSIM {first['ssim'] - drop['ssim']:+.4f} lower")
    if args.plot:
        _plot(results, noises, set_names[0], Path(args.plot))
    print(" ".join(f"{model}_{set_name}_psnr={by_noise[noises[0]]['psnr']:.2f} "
                   f"{model}_{set_name}_ssim={by_noise[noises[0]]['ssim']:.4f}"
                   for (model, set_name), by_noise in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
