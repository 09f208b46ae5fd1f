#!/usr/bin/env python3
"""Compare this package's KeypointNeRF with the official model's outputs on a parity fixture.

usage: python benchmarks/parity.py CHECKPOINT FIXTURE.npz [--save OUT.npz] [--device cpu|cuda|auto]

CHECKPOINT is any checkpoint the package accepts (an official ``last.ckpt`` such as the one
``shared/parity/make_checkpoint.py`` writes for the fixture, or an imported one). Renders the fixture's target
view from its source views, evaluates its query points, and checks every output against the tolerances of
``shared/parity/README.md``. Last line: ``parity: ok max_abs_err=<x>`` (exit 0) or ``parity: FAIL ...`` (exit 1).
``--save`` writes the rendered outputs and ``query/raw`` under the fixture's own names.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from keypointnerf.data.sample import SourceViews
from keypointnerf.device import resolve_device
from keypointnerf.errors import UserError
from keypointnerf.model.checkpoint import load_model
from keypointnerf.model.parity import (DEPTH_OUTPUTS, DEPTH_P999, IMAGE_MAX, IMAGE_OUTPUTS, IMAGE_P999, QUERY_COLUMNS,
                                       QUERY_RTOL, VALIDITY_MISMATCH, official_query_layout)
from keypointnerf.render.renderer import RenderConfig, render_image


def run(checkpoint: str, fixture_path: str, save: str | None, device_name: str) -> int:
    device = resolve_device(device_name)
    try:
        fixture = np.load(fixture_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{fixture_path}: cannot read the fixture ({exc})") from None
    model, _, info = load_model(checkpoint, device)
    model.cfg.znear, model.cfg.zfar = float(fixture["in/znear"]), float(fixture["in/zfar"])

    def tensor(name):
        return torch.from_numpy(np.asarray(fixture[name])).to(device)

    images, masks = tensor("in/images").float(), tensor("in/images_masks").float()
    K, Rt = tensor("in/K").float(), tensor("in/Rt").float()
    height, width = images.shape[-2:]
    print(f"checkpoint: {info['path']} ({info['kind']}); fixture: {fixture_path}; "
          f"{images.shape[0] - 1} source views, {width}x{height}; device {device}")

    start = time.perf_counter()
    with torch.no_grad():
        enc = model.encode(SourceViews(images[1:], masks[1:], K[1:], Rt[1:], tensor("in/kpt3d").float()))
        rendered = render_image(model, enc, K[0], Rt[0], height, width, tensor("in/bounds").float(),
                                RenderConfig())
        query = model.query(enc, tensor("query/points").float(), tensor("query/view_dirs").float())
    seconds = time.perf_counter() - start
    ours = {name: rendered[key].cpu().numpy() for name, key in IMAGE_OUTPUTS.items()}
    ours.update({name: rendered[key].cpu().numpy() for name, (key, _) in DEPTH_OUTPUTS.items()})
    ours["out/sdf"] = rendered["aux"].cpu().numpy()
    raw, valid = official_query_layout(query).cpu().numpy(), query["valid"].cpu().numpy()
    print(f"rendered and queried in {seconds:.1f} s (official code here: "
          f"{json.loads(str(fixture['meta'])).get('render_seconds', float('nan')):.0f} s)")

    failures = []
    box = fixture["in/mask_at_box"].astype(bool)
    hits = rendered["hits_box"].cpu().numpy()
    print(f"rays meeting the box: {int(hits.sum())} (reference {int(box.sum())}, differing {int((hits != box).sum())})")

    ref_valid = fixture["query/valid"][:, 0].astype(bool)
    mismatch = float((ref_valid != valid).mean())
    both = ref_valid & valid
    ref_raw = fixture["query/raw"]
    print(f"query: {int(ref_valid.sum())}/{len(ref_valid)} valid in the reference, validity differs at "
          f"{mismatch:.2%}")
    if mismatch > VALIDITY_MISMATCH:
        failures.append(f"query/valid differs at {mismatch:.2%} of points")
    for name in ("density", "rgb", "aux"):
        cols = QUERY_COLUMNS[name]
        diff = np.abs(raw[both][:, cols] - ref_raw[both][:, cols])
        ratio = diff / (1 + np.abs(ref_raw[both][:, cols]))
        worst = float(ratio.max()) if ratio.size else 0.0
        note = "" if name != "aux" else " (informative)"
        print(f"query/{name}: max |diff| {float(diff.max()) if diff.size else 0:.3g}, "
              f"max |diff|/(1+|ref|) {worst:.3g}{note}")
        if name != "aux" and worst > QUERY_RTOL:
            failures.append(f"query/{name} relative error {worst:.3g} > {QUERY_RTOL}")

    for name in IMAGE_OUTPUTS:
        diff = np.abs(ours[name] - fixture[name])
        p999 = float(np.percentile(diff[:, box], 99.9)) if box.any() else 0.0
        worst = float(diff.max())
        print(f"{name}: p99.9 in box {p999:.3g}, max {worst:.3g}")
        if p999 > IMAGE_P999:
            failures.append(f"{name} p99.9 {p999:.3g} > {IMAGE_P999}")
        if worst > IMAGE_MAX:
            failures.append(f"{name} max {worst:.3g} > {IMAGE_MAX}")
    for name, (_, opacity_name) in DEPTH_OUTPUTS.items():
        opaque = fixture[opacity_name][0] > 0.5
        diff = np.abs(ours[name][0] - fixture[name][0])[opaque]
        p999 = float(np.percentile(diff, 99.9)) if diff.size else 0.0
        print(f"{name}: p99.9 where opacity > 0.5 ({int(opaque.sum())} px) {p999:.3g} m")
        if p999 > DEPTH_P999:
            failures.append(f"{name} p99.9 {p999:.3g} m > {DEPTH_P999}")
    sdf_diff = np.abs(ours["out/sdf"] - fixture["out/sdf"])
    print(f"out/sdf: max {float(sdf_diff.max()):.3g} (informative)")

    if save:
        np.savez_compressed(save, **{name: value.astype(np.float32) for name, value in ours.items()},
                            **{"query/raw": raw.astype(np.float32), "query/valid": valid[:, None]})
        print(f"saved outputs to {save}")
    max_abs = float(np.abs(ours["out/tex_fg_fine"] - fixture["out/tex_fg_fine"]).max())
    if failures:
        print("parity: FAIL " + "; ".join(failures))
        return 1
    print(f"parity: ok max_abs_err={max_abs:.3g}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="official last.ckpt, an imported model file, or a run folder")
    parser.add_argument("fixture", help="parity fixture .npz (see shared/parity/README.md)")
    parser.add_argument("--save", metavar="OUT.npz", help="write our outputs under the fixture's names")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    args = parser.parse_args(argv)
    try:
        return run(args.checkpoint, args.fixture, args.save, args.device)
    except UserError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        print("parity: FAIL could not run")
        return 2


if __name__ == "__main__":
    sys.exit(main())
