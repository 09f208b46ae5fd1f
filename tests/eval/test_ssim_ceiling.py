"""The SSIM ceiling (keypointnerf.eval.ssim_ceiling and benchmarks/ssim_ceiling.py): image-based renders from the
true surface, checked where the answer is known."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh

from helpers import REPO
from keypointnerf.data.loading import build_sample
from keypointnerf.data.protocol import open_subjects
from keypointnerf.data.synth.render import RayCaster
from keypointnerf.eval import ssim_ceiling as ceiling
from keypointnerf.eval.metrics import image_metrics
from keypointnerf.export.mesh import truth_mesh
from keypointnerf.geometry import camera_rays, pixel_grid
from keypointnerf.model import KeypointNeRF
from keypointnerf.model.config import ModelConfig

SCRIPT = REPO / "benchmarks" / "ssim_ceiling.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _source_camera_sample(synth_set):
    """A sample whose target camera is source camera 0 (full resolution), its encoding and its true surface."""
    subject = next(iter(open_subjects(synth_set, ["synth_000"], downsample=1.0).values()))
    mesh, _, how = truth_mesh(subject, 0)
    assert mesh is not None, how
    sample = build_sample(subject, 0, [0, 1, 2], 0)
    model = KeypointNeRF(ModelConfig())
    with torch.inference_mode():
        enc = model.encode(sample.views)
    return model, enc, sample, RayCaster(mesh.vertices, mesh.faces)


def test_true_surface_render_from_a_source_camera_gives_back_its_photo(synth_set):
    """Target camera = source camera 0: every covered pixel's true surface point projects back onto that pixel
    of view 0, which sees it straight on, so the nearest-view render is the photo itself there."""
    model, enc, sample, caster = _source_camera_sample(synth_set)
    with torch.inference_mode():
        images = ceiling.ceiling_images(model, enc, sample, caster, render_cfg=None)
    photo = sample.tgt_image
    covered = images["true_surface_nearest"].abs().sum(0) > 0
    inside = torch.from_numpy(np.asarray(sample.tgt_mask[0] > 0.5)) & covered
    assert inside.sum() > 500
    # float32 ray-cast and reprojection land within ~1e-4 px of the pixel: far below an 8-bit step (3.9e-3)
    assert (images["true_surface_nearest"][:, inside] - photo[:, inside]).abs().max() < 1e-3
    ssim = image_metrics(images["true_surface_nearest"], photo, sample.bounds, sample.tgt_K, sample.tgt_Rt)["ssim"]
    assert ssim > 0.98


def test_model_depth_row_with_the_true_depth_equals_the_true_surface_row(synth_set, monkeypatch):
    """Given the true depth and coverage as the 'render', the model-depth oracle must pick the same colours as the
    true-surface oracle: both read the source views at the same points."""
    model, enc, sample, caster = _source_camera_sample(synth_set)
    height, width = sample.tgt_image.shape[-2:]
    origins, directions = camera_rays(sample.tgt_K, sample.tgt_Rt, pixel_grid(height, width))
    points, hit = ceiling.first_hits(caster, origins, directions)
    depth = torch.where(hit, (points - origins).norm(dim=-1), 0.0)

    def true_render(*args, **kwargs):
        return {"rgb": torch.zeros(3, height, width), "depth": depth.reshape(1, height, width),
                "opacity": hit.float().reshape(1, height, width)}

    monkeypatch.setattr(ceiling, "render_image", true_render)
    with torch.inference_mode():
        images = ceiling.ceiling_images(model, enc, sample, caster, render_cfg=object())
    assert hit.sum() > 500
    # float rounding of the two paths moves a few colours by ~2e-4 on some CPUs; a wrong view pick moves one by ~0.1
    assert torch.allclose(images["model_depth_oracle"], images["true_surface_oracle"], atol=1e-3)


def test_visibility_on_a_sphere():
    """A unit sphere seen from 3 m on +z: the near pole is visible, the far pole hidden, a missed ray is not."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    caster = RayCaster(sphere.vertices, sphere.faces)
    centres = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, -3.0]])
    points = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    hit = torch.tensor([True, True, False])
    visible = ceiling.visible_from(caster, centres, points * 0.999, hit)   # just inside the faceted surface
    assert visible.tolist() == [[True, False, False], [False, True, False]]


def test_script_scores_the_model_as_eval_does(synth_set, tmp_path):
    from keypointnerf.cli import main as cli

    checkpoint = REPO / "models" / "small.ckpt"
    result = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(synth_set), "--frame-step", "1",
                             "--every", "1", "--max-images", "1", "--threads", "1"],
                            capture_output=True, text=True, check=True)
    scores = dict(re.findall(r"(ssim_\w+)=([0-9.]+)", result.stdout.splitlines()[-1]))
    assert cli(["eval", "--checkpoint", str(checkpoint), "--data", str(synth_set), "--out", str(tmp_path / "eval"),
                "--max-images", "1", "--no-images", "--device", "cpu"]) == 0
    reference = json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"][0]["ssim"]
    assert float(scores["ssim_model"]) == pytest.approx(reference, abs=1e-4)


def test_script_names_a_missing_checkpoint_and_fails(synth_set, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.ckpt"), str(synth_set)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "none.ckpt" in result.stderr and "Traceback" not in result.stderr
