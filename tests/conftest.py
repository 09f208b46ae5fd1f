"""Shared test fixtures: paths to the read-only reference material and a small random scene."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KEYPOINTNERF_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"


#: The tiny synthetic set shared by the data, training and rendering tests (tests/data/test_synth.py checks it).
TINY_SYNTH = dict(subjects=2, frames=2, cameras=4, resolution=256, seed=7, style="classic")


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """2 anny people (classic style: exact renders on black) x 2 frames x 4 cameras, 256 px stored (128 px after the
    reader's 0.5), split 1 train / 1 test."""
    from keypointnerf.data.synth import generate
    out = tmp_path_factory.mktemp("synth") / "set"
    summary = generate(out, workers=2, progress=False, **TINY_SYNTH)
    assert summary["frames_rendered"] == 4 and summary["frames_skipped"] == 0 and not summary["resumed"]
    return out


@pytest.fixture(scope="session")
def fixture_a() -> Path:
    path = PARITY / "fixture_A.npz"
    if not path.is_file():
        pytest.skip(f"parity fixture not found at {path} (set KEYPOINTNERF_SHARED)")
    return path


@pytest.fixture(scope="session")
def official_checkpoint(fixture_a, tmp_path_factory) -> Path:
    """The fixture's weights written as an official Lightning last.ckpt by the shared recipe."""
    out = tmp_path_factory.mktemp("official") / "last.ckpt"
    subprocess.run([sys.executable, str(PARITY / "make_checkpoint.py"), str(fixture_a), str(out)], check=True)
    return out


def make_scene(views: int = 3, size: int = 128, seed: int = 0):
    """A synthetic scene: an ellipsoid 'person' at the origin seen by cameras on a ring 3 m away.

    -> dict with images (V,3,H,W), masks (V,1,H,W), K (V,3,3), Rt (V,3,4), keypoints (24,3), bounds (2,3),
    and a target camera tgt_K, tgt_Rt.
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
    from keypointnerf.render.rays import camera_rays, pixel_grid
    pixels = pixel_grid(size, size)
    masks, images = [], []
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
        masks.append(mask)
        images.append(image)
    bounds = torch.stack([-radii, radii])
    return {"images": torch.stack(images[:views]), "masks": torch.stack(masks[:views]), "K": K[:views],
            "Rt": Rt[:views], "keypoints": keypoints, "bounds": bounds, "tgt_K": K[views], "tgt_Rt": Rt[views],
            "tgt_image": images[views], "tgt_mask": masks[views]}


@pytest.fixture
def scene():
    return make_scene()


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a small shared machine a second thread mostly waits for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
