#!/usr/bin/env python3
"""Fit and check the joint regressor of ``keypointnerf.capture.joints`` (detected joints -> the 24 keypoints).

usage: python benchmarks/capture_joints.py [--people 150] [--frames 6] [--held-out 30] [--seed 7] [--write]

Poses anny people (the synthetic generator's shapes; gait sequences and all pose families; no rendering), takes
where a COCO-trained detector puts their joints (anny's own COCO keypoint regressor on the posed mesh:
``keypointnerf.capture.synthetic.detector_joints``) and their true 24 keypoints, fits the regressor on
``--people`` people and prints the per-joint distance (cm) to the true keypoints on ``--held-out`` other people
(seed + 1, 4 frames each), for each variant (limb joints only, + face, + feet, + both), with the inputs clean
and with 1 cm of noise per coordinate (what triangulation adds), next to the shipped regressor and to taking the
detected limb joints as the keypoints. ``--write`` replaces the shipped ``src/keypointnerf/capture/joint_regressor.npz``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from keypointnerf.capture import joints
from keypointnerf.capture.synthetic import detector_joints
from keypointnerf.data.synth import body, poses

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "keypointnerf" / "capture" / joints.REGRESSOR_FILE


def sample_people(count: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(detected (count * frames, len(DETECTED), 3), true (count * frames, 24, 3)) of posed anny people: one in
    three walks (gait), the others move through key poses of every family (reach, leg, lean, kneel, gait)."""
    model = body.load_anny()
    detected, true = [], []
    families = poses.POSE_FAMILIES
    with body.single_torch_thread():
        for person in tqdm(range(count), desc=f"people (seed {seed})", leave=False):
            rng = np.random.default_rng([seed, person])
            phenotype, stature = body.sample_phenotype(rng)
            phenotype = body.fit_height(model, phenotype, stature)
            if person % 3 == 0:
                motion = body.sample_motion(rng, frames)
            else:
                motion = poses.sample_family_motion(rng, frames, families, (1.0,) * len(families), "poses")
            posed = body.pose_frames(model, phenotype, motion)
            detected.append(detector_joints(posed.vertices))
            true.append(posed.keypoints.astype(np.float64))
    return np.concatenate(detected), np.concatenate(true)


def without(detected: np.ndarray, groups: tuple[str, ...]) -> np.ndarray:
    """The detected joints with the optional groups not in ``groups`` removed (NaN)."""
    out = detected.copy()
    for group, names in joints.GROUPS.items():
        if group not in groups:
            out[..., [joints.DETECTED.index(n) for n in names], :] = np.nan
    return out


def errors_cm(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.linalg.norm(predicted - true, axis=-1).mean(axis=0) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=0.005, help="fitting noise, metres per coordinate")
    parser.add_argument("--write", action="store_true", help="replace the shipped regressor with the fitted one")
    args = parser.parse_args()
    train = sample_people(args.people, args.frames, args.seed)
    test_detected, test_true = sample_people(args.held_out, 4, args.seed + 1)
    fitted = joints.fit_regressor(*train, noise=args.noise)
    rng = np.random.default_rng(0)
    noisy = test_detected + rng.normal(0, 0.01, test_detected.shape)
    rows = {}
    limbs_only = np.full_like(test_true, np.nan)
    for name in joints.REQUIRED:  # detected limb joints taken as the keypoints (no regressor): for the limbs only
        limbs_only[:, joints.SMPL_JOINTS.index(name)] = test_detected[:, joints.DETECTED.index(name)]
    rows["detected limb joints as they are"] = errors_cm(limbs_only, test_true)
    for groups in joints.VARIANTS:
        label = joints.variant_name(groups)
        rows[f"fitted, {label}"] = errors_cm(joints.to_smpl(without(test_detected, groups), fitted), test_true)
        rows[f"fitted, {label}, 1 cm noise"] = errors_cm(joints.to_smpl(without(noisy, groups), fitted), test_true)
        if SHIPPED.is_file():
            rows[f"shipped, {label}"] = errors_cm(joints.to_smpl(without(test_detected, groups),
                                                                 joints.JointRegressor.load(SHIPPED)), test_true)
    print(f"held-out: {args.held_out} people x 4 frames; distance to the true keypoints, cm")
    print("| inputs | mean | " + " | ".join(joints.SMPL_JOINTS) + " |")
    print("| --- " * (len(joints.SMPL_JOINTS) + 2) + "|")
    for label, error in rows.items():
        print(f"| {label} | {np.nanmean(error):.2f} | " + " | ".join(f"{e:.1f}" for e in error) + " |")
    if args.write:
        fitted.save(SHIPPED)
        print(f"wrote {SHIPPED}")


if __name__ == "__main__":
    main()
