#!/usr/bin/env python3
"""How close `keypointnerf capture import` comes to the truth on held-out synthetic people, and what that costs
the shipped model.

usage: python benchmarks/capture_accuracy.py WORK [--subjects 3] [--frames 2] [--cameras 23] [--resolution 512]
           [--seed 101] [--masks background] [--keypoints detect] [--noise 2] [--jpeg 90]
           [--checkpoint models/small.ckpt] [--max-images 8]

1. ``keypointnerf synth WORK/truth --style classic`` (people the shipped model never saw: another seed);
2. every subject written as a raw capture (EasyMocap layout: JPEG frames with sensor noise over textured
   background plates, intri.yml/extri.yml, the plates; no masks, no keypoints): WORK/raw/<subject>;
3. ``capture import`` of each into WORK/imported/<subject>, then the mean distance (cm) of the imported keypoints
   to the true ones, per joint;
4. unless --checkpoint is empty: ``keypointnerf eval`` of the checkpoint on the true subjects (true keypoints and
   masks) and on the imported ones (same frames, cameras and order), PSNR / SSIM side by side.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from keypointnerf.capture.importer import ImportOptions, import_capture
from keypointnerf.capture.joints import SMPL_JOINTS
from keypointnerf.capture.synthetic import write_raw_capture
from keypointnerf.data.zju import ZJUSubject


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=23)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--masks", default="background")
    parser.add_argument("--keypoints", default="detect")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, 0-255 units")
    parser.add_argument("--jpeg", type=int, default=90, help="JPEG quality of the raw frames")
    parser.add_argument("--checkpoint", default="models/small.ckpt", help="'' skips the evaluation")
    parser.add_argument("--max-images", type=int, default=8)
    args = parser.parse_args()
    work = Path(args.work)
    keypointnerf = str(Path(sys.executable).parent / "keypointnerf")
    truth_root = work / "truth"
    run([keypointnerf, "synth", str(truth_root), "--subjects", str(args.subjects), "--frames", str(args.frames),
         "--cameras", str(args.cameras), "--resolution", str(args.resolution), "--seed", str(args.seed),
         "--style", "classic", "--no-progress"])
    subjects = sorted(p.name for p in truth_root.iterdir() if (p / "annots.npy").is_file())
    errors = []
    for index, name in enumerate(subjects):
        raw, imported = work / "raw" / name, work / "imported" / name
        for folder in (raw, imported):
            shutil.rmtree(folder, ignore_errors=True)
        write_raw_capture(truth_root / name, raw, videos=False, seed=index, noise=args.noise,
                          jpeg_quality=args.jpeg)
        summary = import_capture(raw, imported, ImportOptions(masks=args.masks, keypoints=args.keypoints,
                                                              progress=False))
        for warning in summary["warnings"]:
            print(f"  warning ({name}): {warning}")
        true, got = ZJUSubject(truth_root / name, cache_mb=0), ZJUSubject(imported, cache_mb=0)
        for frame in got.frames:
            errors.append(np.linalg.norm(got.keypoints(frame) - true.keypoints(frame), axis=-1) * 100)
        print(f"{name}: {len(got.frames)}/{len(true.frames)} frames imported, mean reprojection error "
              f"{summary['mean_reprojection_error_px']} px, {summary['seconds']} s")
    errors = np.stack(errors)
    print(f"\nkeypoint distance to the truth, cm ({len(errors)} frames, masks {args.masks}, keypoints "
          f"{args.keypoints}): mean {errors.mean():.2f}, median {np.median(errors):.2f}")
    print("| joint | mean cm |\n| --- | --- |")
    for j, name in enumerate(SMPL_JOINTS):
        print(f"| {name} | {errors[:, j].mean():.1f} |")
    if not args.checkpoint:
        return
    results = {}
    for label, root in (("true keypoints and masks", truth_root), ("imported", work / "imported")):
        out = work / "eval" / label.split()[0]
        run([keypointnerf, "eval", "--checkpoint", args.checkpoint, "--data", str(root), "--protocol", "all",
             "--out", str(out), "--max-images", str(args.max_images), "--no-images", "--force"])
        results[label] = json.loads((out / "metrics.json").read_text())["mean"]
    print("\n| data | PSNR | SSIM |\n| --- | --- | --- |")
    for label, mean in results.items():
        print(f"| {label} | {mean['psnr']:.2f} | {mean['ssim']:.3f} |")


if __name__ == "__main__":
    main()
