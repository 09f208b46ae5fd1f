#!/usr/bin/env python3
"""Where the SSIM is lost: the model's renders beside image-based renders from the model's depth and from the
true surface.

usage: python benchmarks/ssim_ceiling.py CHECKPOINT DATA [--frame-step 8] [--every 4] [--max-images N]
                                         [--downsample 0.5] [--threads N]

For test images of a synthetic set (``keypointnerf synth``: true body meshes in ``vertices/`` and anny's cached
topology, or a ``faces.npy``), side by side on the same images, SSIM on the bounding rectangle of the person's
box (the ``eval`` protocol) of:

* ``model``: the model's render, as ``keypointnerf eval`` makes it.
* ``model depth, best view``: per pixel, the source view whose colour at the model's surface point (the point at
  the rendered depth) is closest (L1) to the ground truth, times the rendered opacity. An oracle (it looks at
  the answer) choosing one source pixel per target pixel on the model's geometry; a blend of several views
  could still do better.
* ``true surface, nearest visible view``: the colour at the true surface point from the source view that sees
  it with the ray closest in direction to the target ray (the nearest view at all where none sees it); alpha =
  the true coverage. A plain image-based render with perfect geometry.
* ``true surface, best view``: the oracle view choice at the true surface.

All colours are bilinear samples of the source views at the points' projections, as the colour head reads
them; all rows trace one ray through each pixel centre, so their outlines are hard where the ground truth of a
downsampled set is area-averaged. The last line is
``ssim_model=<a> ssim_model_depth_oracle=<b> ssim_true_surface_nearest=<c> ssim_true_surface_oracle=<d>``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from keypointnerf.data.datasets import TestDataset
from keypointnerf.data.protocol import load_protocol
from keypointnerf.data.synth.render import RayCaster
from keypointnerf.errors import UserError
from keypointnerf.eval.metrics import image_metrics
from keypointnerf.eval.ssim_ceiling import ROWS, ceiling_images
from keypointnerf.export.mesh import truth_mesh
from keypointnerf.model.checkpoint import load_model
from keypointnerf.render.renderer import RenderConfig

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--frame-step", type=int, default=8)
    parser.add_argument("--every", type=int, default=4, help="score every N-th test image (default 4)")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--downsample", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    for name in ("frame_step", "every", "max_images", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    except UserError as exc:   # a missing or unreadable checkpoint or data set: the message names the file
        print(f"ssim_ceiling: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Score the selected images and print the table; 0, or 1 when the set has no true surface."""
    model, _, info = load_model(args.checkpoint, "cpu")
    render_cfg = RenderConfig.for_checkpoint(info)
    dataset = TestDataset(args.data, load_protocol("auto", args.data), downsample=args.downsample,
                          frame_step=args.frame_step)
    items = list(range(0, len(dataset), args.every))[:args.max_images]
    if not items:
        print(f"{args.data}: no test images selected", file=sys.stderr)
        return 1
    scores: dict[str, list[float]] = {key: [] for key in ROWS}
    for count, index in enumerate(items, 1):
        subject, frame, target = dataset.items[index]
        mesh, _, how = truth_mesh(dataset.subjects[subject], frame)  # before any rendering: fail fast
        if mesh is None:
            print(f"{subject} frame {frame}: no true surface ({how}); needs a synthetic set", file=sys.stderr)
            return 1
        sample = dataset[index]
        with torch.inference_mode():
            enc = model.encode(sample.views)
            images = ceiling_images(model, enc, sample, RayCaster(mesh.vertices, mesh.faces), render_cfg)
        for key, image in images.items():
            scores[key].append(image_metrics(image, sample.tgt_image, sample.bounds, sample.tgt_K,
                                             sample.tgt_Rt)["ssim"])
        print(f"[{count}/{len(items)}] {subject} frame {frame} camera {target}: "
              + " ".join(f"{key}={values[-1]:.4f}" for key, values in scores.items()), flush=True)
    print(f"\nSSIM (data_range 1.0, bounding rectangle), mean of {len(items)} images:")
    for key, label in ROWS.items():
        print(f"  {label:40s} {np.mean(scores[key]):.4f}")
    print(f"ssim_model={np.mean(scores['model']):.4f} "
          f"ssim_model_depth_oracle={np.mean(scores['model_depth_oracle']):.4f} "
          f"ssim_true_surface_nearest={np.mean(scores['true_surface_nearest']):.4f} "
          f"ssim_true_surface_oracle={np.mean(scores['true_surface_oracle']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
