"""Synthetic people for training and tests: ``anny`` bodies (Apache-2.0 code, CC0 assets; its own ``anny`` rig and
topology) with random adult shapes, clothes and smooth motion, ray-cast on the CPU into a ring of calibrated
cameras and written in the ZJU-MoCap layout, so the ZJU reader serves both.

    from keypointnerf.data.synth import generate
    generate("data/synth", subjects=10, frames=30, cameras=23, resolution=512, seed=0)

or ``keypointnerf synth OUT --subjects 10 --frames 30 --cameras 23 --resolution 512 --seed 0``.
"""
from .writer import SYNTH_VERSION, default_workers, generate

__all__ = ["generate", "default_workers", "SYNTH_VERSION"]
