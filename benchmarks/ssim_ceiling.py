#!/usr/bin/env python3
"""How much SSIM the geometry allows: the model's renders against image-based renders with known surfaces.

usage: python benchmarks/ssim_ceiling.py CHECKPOINT DATA [--frame-step 8] [--every 4] [--max-images N]

For test images of a synthetic set (``keypointnerf synth``: true body meshes in ``vertices/`` and anny's cached
topology, or a ``faces.npy``), side by side on the same images, SSIM on the bounding rectangle of the person's
box (the ``eval`` protocol) of:

* ``model``: the model's render, as ``keypointnerf eval`` makes it.
* ``model depth, best view``: per pixel, the source view whose colour at the model's surface point (the point at
  the rendered depth) is closest to the ground truth, times the rendered opacity. An oracle (it looks at the
  answer): what any blend of the source pixels could reach with the model's geometry.
* ``true surface, nearest visible view``: the colour at the true surface point from the source view that sees
  it with the ray closest in direction to the target ray (the nearest view at all where none sees it); alpha =
  the true coverage. A plain image-based render with perfect geometry.
* ``true surface, best view``: the oracle view choice at the true surface.

All colours are bilinear samples of the source views at the points' projections, as the colour head reads
them. The last line is ``ssim_model=<a> ssim_model_depth_oracle=<b> ssim_true_surface_nearest=<c>``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

from keypointnerf.data.protocol import ENCODE_KEYS, TestDataset, load_protocol
from keypointnerf.eval.metrics import image_metrics
from keypointnerf.export.mesh import truth_mesh
from keypointnerf.model.checkpoint import load_model
from keypointnerf.model.keypointnerf import KeypointNeRF, SourceEncoding
from keypointnerf.render.rays import camera_rays, pixel_grid
from keypointnerf.render.renderer import RenderConfig, render_image

VISIBILITY_TOLERANCE = 0.005   # metres: a source view sees a surface point when its first hit is this close
ROWS = {"model": "model", "model_depth_oracle": "model depth, best view (oracle)",
        "true_surface_nearest": "true surface, nearest visible view",
        "true_surface_oracle": "true surface, best view (oracle)"}


def source_colours(model: KeypointNeRF, enc: SourceEncoding, points: torch.Tensor) -> torch.Tensor:
    """(V, 3, N) bilinear source colours at the projections of (N, 3) world points (the colour head's samples)."""
    xy = model.project(enc, points).xy
    return F.grid_sample(enc.images, xy.unsqueeze(1), mode="bilinear", padding_mode="border",
                         align_corners=True)[:, :, 0]


def best_view(colours: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(V, 3, N) candidates, (3, N) ground truth -> (3, N): per point the candidate closest to the truth (L1)."""
    choice = (colours - truth[None]).abs().sum(1).argmin(0)
    return colours.gather(0, choice[None, None].expand(1, 3, -1))[0]


def true_surface(mesh, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First hits of rays (N, 3), (N, 3) on a trimesh -> points (N, 3) (zeros where missed), hit (N,) bool."""
    locations, rays, _ = mesh.ray.intersects_location(origins.double().numpy(), directions.double().numpy(),
                                                      multiple_hits=False)
    points = torch.zeros(len(origins), 3)
    hit = torch.zeros(len(origins), dtype=torch.bool)
    points[rays] = torch.as_tensor(locations, dtype=torch.float32)
    hit[rays] = True
    return points, hit


def visible_from_sources(mesh, enc: SourceEncoding, points: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """(V, N) bool: source camera v's first hit towards surface point n is that point (within
    :data:`VISIBILITY_TOLERANCE`); False where ``hit`` is False."""
    index = hit.nonzero()[:, 0]
    visible = torch.zeros(enc.num_views, len(points), dtype=torch.bool)
    for view, centre in enumerate(enc.centers.float()):
        offsets = points[index] - centre
        distance = offsets.norm(dim=-1)
        first_points, first_hit = true_surface(mesh, centre.expand(len(index), 3), offsets / distance[:, None])
        first = torch.where(first_hit, (first_points - centre).norm(dim=-1), torch.full_like(distance, torch.inf))
        visible[view, index] = first > distance - VISIBILITY_TOLERANCE
    return visible


def ceiling_images(model: KeypointNeRF, enc: SourceEncoding, sample: dict, mesh,
                   render_cfg: RenderConfig | None) -> dict[str, torch.Tensor]:
    """The rows' (3, H, W) images for one test sample (``TestDataset`` item); ``render_cfg`` None skips the
    model's rows (only the true-surface ones)."""
    height, width = sample["tgt_image"].shape[-2:]
    truth = sample["tgt_image"].reshape(3, -1).float()
    origins, directions = camera_rays(sample["tgt_K"], sample["tgt_Rt"], pixel_grid(height, width))
    images = {}
    if render_cfg is not None:
        rendered = render_image(model, enc, sample["tgt_K"], sample["tgt_Rt"], height, width, sample["bounds"],
                                render_cfg)
        depth, opacity = rendered["depth"].reshape(-1), rendered["opacity"].reshape(-1)
        colours = source_colours(model, enc, origins + directions * depth[:, None])
        images["model"] = rendered["rgb"].float()
        images["model_depth_oracle"] = (best_view(colours, truth) * opacity).reshape(3, height, width)
    points, hit = true_surface(mesh, origins, directions)
    colours = source_colours(model, enc, points)
    to_point = points[None] - enc.centers[:, None].float()
    closeness = (to_point / to_point.norm(dim=-1, keepdim=True).clamp_min(1e-9) * directions[None]).sum(-1)
    # views that do not see the point rank below every view that does (nearest first among them too)
    closeness = closeness - 4.0 * ~visible_from_sources(mesh, enc, points, hit)
    nearest = colours.gather(0, closeness.argmax(0)[None, None].expand(1, 3, -1))[0]
    coverage = hit.float()
    images["true_surface_nearest"] = (nearest * coverage).reshape(3, height, width)
    images["true_surface_oracle"] = (best_view(colours, truth) * coverage).reshape(3, height, width)
    return images


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
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, info = load_model(args.checkpoint, "cpu")
    render_cfg = RenderConfig.for_checkpoint(info)
    dataset = TestDataset(args.data, load_protocol("auto", args.data), downsample=args.downsample,
                          frame_step=args.frame_step)
    items = list(range(0, len(dataset), args.every))[:args.max_images]
    scores: dict[str, list[float]] = {key: [] for key in ROWS}
    for count, index in enumerate(items, 1):
        subject, frame, target = dataset.items[index]
        mesh, _, how = truth_mesh(dataset.subjects[subject], frame)
        if mesh is None:
            print(f"{subject} frame {frame}: no true surface ({how}); needs a synthetic set", file=sys.stderr)
            return 1
        sample = dataset[index]
        with torch.inference_mode():
            enc = model.encode(*(sample[key] for key in ENCODE_KEYS))
            images = ceiling_images(model, enc, sample, mesh, render_cfg)
        for key, image in images.items():
            scores[key].append(image_metrics(image, sample["tgt_image"], sample["bounds"], sample["tgt_K"],
                                             sample["tgt_Rt"])["ssim"])
        print(f"[{count}/{len(items)}] {subject} frame {frame} camera {target}: "
              + " ".join(f"{key}={values[-1]:.4f}" for key, values in scores.items()), flush=True)
    print(f"\nSSIM (data_range 1.0, bounding rectangle), mean of {len(items)} images:")
    for key, label in ROWS.items():
        print(f"  {label:40s} {np.mean(scores[key]):.4f}")
    print(f"ssim_model={np.mean(scores['model']):.4f} "
          f"ssim_model_depth_oracle={np.mean(scores['model_depth_oracle']):.4f} "
          f"ssim_true_surface_nearest={np.mean(scores['true_surface_nearest']):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
