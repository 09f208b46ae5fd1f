"""Test helpers, imported as a module (``import helpers``): paths to the read-only reference material, the tiny
synthetic set's recipe and a small random scene."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from keypointnerf.data.sample import SourceViews
from keypointnerf.geometry import camera_rays, pixel_grid

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KEYPOINTNERF_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"


#: The tiny synthetic set shared by the data, training and rendering tests (tests/data/test_synth.py checks it).
TINY_SYNTH = dict(subjects=2, frames=2, cameras=4, resolution=256, seed=7, style="classic")


def make_scene(views: int = 3, size: int = 128, seed: int = 0):
    """A synthetic scene: an ellipsoid 'person' at the origin seen by cameras on a ring 3 m away.

    -> dict with images (V,3,H,W), masks (V,1,H,W), K (V,3,3), Rt (V,3,4), keypoints (24,3), the same as
    ``views`` (SourceViews), bounds (2,3), and a target camera tgt_K, tgt_Rt with its tgt_image, tgt_mask.
    """
    gen = torch.Generator().manual_seed(seed)
    angles = torch.linspace(0, 2 * np.pi, views + 2)[:-1]
    Ks, Rts = [], []
    focal = 1.6 * size
    for angle in angles:
        center = torch.tensor([3.0 * float(torch.cos(angle)), 3.0 * float(torch.sin(angle)), 0.1])
        forward = -center / center.norm()
        up = torch.tensor([0.0, 0.0, 1.0])
        right = torch.linalg.cross(forward, -up)
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        R = torch.stack([right, down, forward])
        t = -R @ center
        Ks.append(torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1.0]]))
        Rts.append(torch.cat([R, t[:, None]], dim=1))
    K, Rt = torch.stack(Ks), torch.stack(Rts)
    keypoints = torch.randn(24, 3, generator=gen) * torch.tensor([0.15, 0.1, 0.45])
    radii = torch.tensor([0.3, 0.2, 0.8])
    # masks: the projected ellipsoid, by testing pixel rays against it
    pixels = pixel_grid(size, size)
    masks_all, images_all = [], []
    for v in range(views + 1):
        o, d = camera_rays(K[v], Rt[v], pixels)
        o_s, d_s = o / radii, d / radii
        a = (d_s * d_s).sum(-1)
        b = 2 * (o_s * d_s).sum(-1)
        c = (o_s * o_s).sum(-1) - 1
        hit = (b * b - 4 * a * c) > 0
        mask = hit.reshape(1, size, size).float()
        texture = torch.rand(3, size // 8, size // 8, generator=gen)
        image = torch.nn.functional.interpolate(texture[None], size=(size, size), mode="bilinear")[0] * mask
        masks_all.append(mask)
        images_all.append(image)
    bounds = torch.stack([-radii, radii])
    images, masks = torch.stack(images_all[:views]), torch.stack(masks_all[:views])
    return {"images": images, "masks": masks, "K": K[:views], "Rt": Rt[:views], "keypoints": keypoints,
            "views": SourceViews(images, masks, K[:views], Rt[:views], keypoints),
            "bounds": bounds, "tgt_K": K[views], "tgt_Rt": Rt[views], "tgt_image": images_all[views],
            "tgt_mask": masks_all[views]}


def assert_names(text: str, *names) -> None:
    """A message about a user's mistake names what it is about: every one of ``names`` (files, options, cameras,
    numbers; compared as ``str``) appears in ``text``, and no traceback does. The wording is free."""
    missing = [str(name) for name in names if str(name) not in text]
    assert not missing, f"{missing} not named in: {text}"
    assert "Traceback" not in text, text
