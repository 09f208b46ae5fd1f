#!/usr/bin/env python3
"""Fit and check the body-frame offsets of ``keypointnerf.capture.joints`` on synthetic anny people.

usage: python benchmarks/capture_joints.py [--people 24] [--frames 6] [--seed 0]

Poses anny people (the synthetic generator's shapes and pose families, no rendering), fits the offsets of the
derived joints (pelvis, spine, neck, collars, head, feet, hands) on the first half of the people from their true
limb joints, and prints the per-joint distance (cm) of the converted joints to the true ones on the held-out
half, with the fitted offsets and with the offsets shipped in ``joints.OFFSETS``. Paste the printed table into
``OFFSETS`` after changing the mapping.
"""
from __future__ import annotations

import argparse

import numpy as np

from keypointnerf.capture import joints
from keypointnerf.data.synth import body, poses


def sample_people(count: int, frames: int, seed: int) -> np.ndarray:
    """(count * frames, 24, 3) true SMPL-order joints of posed anny people (gait sequences and pose families)."""
    model = body.load_anny()
    families = ("gait", "reach", "leg", "lean", "kneel")
    out = []
    with body.single_torch_thread():
        for person in range(count):
            rng = np.random.default_rng([seed, person])
            phenotype, stature = body.sample_phenotype(rng)
            phenotype = body.fit_height(model, phenotype, stature)
            if person % 2 == 0:
                motion = body.sample_motion(rng, frames)
            else:
                motion = poses.sample_family_motion(rng, frames, families, (1.0,) * len(families), "poses")
            out.append(body.pose_frames(model, phenotype, motion).keypoints)
    return np.concatenate(out)


def report(name: str, predicted: np.ndarray, true: np.ndarray) -> None:
    error = np.linalg.norm(predicted - true, axis=-1) * 100  # cm
    print(f"{name}: mean {error.mean():.2f} cm over 24 joints")
    print("  " + "  ".join(f"{n}={e:.1f}" for n, e in zip(joints.SMPL_JOINTS, error.mean(axis=0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    true = sample_people(args.people, args.frames, args.seed)
    half = (args.people // 2) * args.frames
    detected = joints.from_smpl(true)
    fitted = joints.fit_offsets(detected[:half], true[:half])
    print("fitted OFFSETS (paste into joints.py):")
    for name, value in fitted.items():
        print(f"    {name!r}: {value},")
    report("held-out, fitted offsets", joints.to_smpl(detected[half:], fitted), true[half:])
    report("held-out, shipped offsets", joints.to_smpl(detected[half:]), true[half:])


if __name__ == "__main__":
    main()
