#!/usr/bin/env python3
"""How close `keypointnerf capture import` comes to the truth on held-out synthetic people, and what that costs
a model.

usage: python benchmarks/capture_accuracy.py WORK [--checkpoint models/small.ckpt] [--subjects 3] [--frames 2]
           [--cameras 23] [--resolution 512] [--seed 101] [--noise 2] [--jpeg 90] [--masks background]
           [--keypoints detect] [--images-per-subject 2] [--frame-step 100] [--reimport]

1. ``keypointnerf synth WORK/truth --style classic`` (people no shipped model saw: another seed; resumes);
2. every subject written as a raw capture (EasyMocap layout: JPEG frames with sensor noise over textured
   background plates, intri.yml/extri.yml, the plates; no masks, no keypoints): WORK/raw/<subject>;
3. ``capture import`` of each into WORK/imported/<subject> (steps 2-3 are skipped when their output exists,
   unless --reimport: a new checkpoint is evaluated on the same imports), then the mean distance (cm) of the
   imported keypoints to the true ones, per joint;
4. unless --checkpoint is '': ``keypointnerf eval`` of the checkpoint (protocol ``all``: sources 0, 7, 15,
   targets 3, 5, 10, 12, 18, 20; 256 px) on the first ``--images-per-subject`` targets of every
   ``--frame-step``-th frame of each subject, three ways:

   - ``true``: the synthetic set (true keypoints, true masks, clean images on black);
   - ``imported keypoints``: the same set with only ``joints3d`` replaced by the imported keypoints (what the
     keypoints cost, all else equal);
   - ``imported``: the imported subject (its masks from the plates, its keypoints, its noisy JPEG frames),

   and prints PSNR / SSIM of each with the per-image difference to ``true`` (mean and standard error over the
   images: the same images, so the difference is measured far more precisely than either mean).
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


def same_masks_subject(truth: Path, imported: Path, out: Path) -> None:
    """``out``: the subject ``truth`` (links to its files) with ``joints3d/`` taken from ``imported``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for entry in truth.iterdir():
        if entry.name != "joints3d":
            (out / entry.name).symlink_to(entry.resolve())
    shutil.copytree(imported / "joints3d", out / "joints3d")


def evaluate(keypointnerf: str, checkpoint: str, subject: Path, out: Path, since: float, args) -> list[dict]:
    """Per-image records of ``keypointnerf eval`` on one subject. An earlier result in ``out`` is reused (a resumed
    run) when it is of the same checkpoint path, data and images, and newer than the checkpoint file and than
    ``since`` (the import's time)."""
    metrics = out / "metrics.json"
    if metrics.is_file():
        report = json.loads(metrics.read_text())
        protocol = report["protocol"]
        same = (Path(report["checkpoint"]).resolve() == Path(checkpoint).resolve()
                and Path(report["data"]) == subject.resolve()
                and (protocol["frame_step"], protocol["max_images"]) == (args.frame_step, args.images_per_subject))
        if same and metrics.stat().st_mtime > max(Path(checkpoint).stat().st_mtime, since):
            print(f"reusing {metrics}")
            return report["images"]
    run([keypointnerf, "eval", "--checkpoint", checkpoint, "--data", str(subject), "--protocol", "all",
         "--frame-step", str(args.frame_step), "--max-images", str(args.images_per_subject), "--out", str(out),
         "--no-images", "--force", "--device", args.device])
    return json.loads((out / "metrics.json").read_text())["images"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    parser.add_argument("--checkpoint", default="models/small.ckpt", help="'' skips the evaluation")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=23)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--masks", default="background")
    parser.add_argument("--keypoints", default="detect")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, 0-255 units")
    parser.add_argument("--jpeg", type=int, default=90, help="JPEG quality of the raw frames")
    parser.add_argument("--images-per-subject", type=int, default=2)
    parser.add_argument("--frame-step", type=int, default=100, help="evaluate every N-th frame (100: the first)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reimport", action="store_true", help="write the raw captures and import them again")
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
        if args.reimport or not (imported / "annots.npy").is_file():
            for folder in (raw, imported):
                shutil.rmtree(folder, ignore_errors=True)
            write_raw_capture(truth_root / name, raw, videos=False, seed=index, noise=args.noise,
                              jpeg_quality=args.jpeg)
            summary = import_capture(raw, imported, ImportOptions(masks=args.masks, keypoints=args.keypoints,
                                                                  progress=False))
            for warning in summary["warnings"]:
                print(f"  warning ({name}): {warning}")
        summary = json.loads((imported / "capture.json").read_text())
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

    conditions = {"true": truth_root, "imported keypoints": work / "same_masks", "imported": work / "imported"}
    records: dict[str, list[dict]] = {label: [] for label in conditions}
    for name in subjects:
        same_masks_subject(truth_root / name, work / "imported" / name, work / "same_masks" / name)
        imported_at = (work / "imported" / name / "capture.json").stat().st_mtime
        for label, root in conditions.items():
            out = work / "eval" / label.replace(" ", "_") / name
            since = 0.0 if label == "true" else imported_at  # the synthetic set does not change with an import
            records[label] += evaluate(keypointnerf, args.checkpoint, root / name, out, since, args)
    reference = records["true"]
    print(f"\n{args.checkpoint}: {len(reference)} images ({len(subjects)} subjects x {args.images_per_subject} "
          f"targets, every {args.frame_step}-th frame), protocol 'all' at 256 px")
    print("| data | PSNR | SSIM | PSNR - true (mean +- s.e.) | SSIM - true |\n| --- | --- | --- | --- | --- |")
    for label, rows in records.items():
        keys = [(r["subject"], r["frame"], r["target_cam"]) for r in rows]
        assert keys == [(r["subject"], r["frame"], r["target_cam"]) for r in reference], "different images"
        psnr, ssim = np.array([r["psnr"] for r in rows]), np.array([r["ssim"] for r in rows])
        dpsnr = psnr - np.array([r["psnr"] for r in reference])
        dssim = ssim - np.array([r["ssim"] for r in reference])
        se = dpsnr.std(ddof=1) / np.sqrt(len(dpsnr)) if len(dpsnr) > 1 else float("nan")
        print(f"| {label} | {psnr.mean():.2f} | {ssim.mean():.4f} | {dpsnr.mean():+.2f} +- {se:.2f} | "
              f"{dssim.mean():+.4f} |")


if __name__ == "__main__":
    main()
