"""Every tensor the package makes lands on the device of its inputs: with the default device set to ``meta``, a
tensor made without an explicit device lands there and mixing it with the CPU inputs raises, which is where a
CUDA run would fail (CUDA has never run on this project's machines)."""
from __future__ import annotations

import pytest
import torch

from helpers import make_scene
from keypointnerf.data.sample import Sample, SampleInfo
from keypointnerf.render.renderer import RenderConfig, render_image
from keypointnerf.train.config import config_to_dict, train_preset
from keypointnerf.train.module import KeypointNeRFTraining


@pytest.fixture
def default_device_meta():
    yield lambda: torch.set_default_device("meta")
    torch.set_default_device(None)


def test_encode_render_and_a_training_step_make_no_tensor_on_the_default_device(default_device_meta,
                                                                                one_torch_thread):
    scene = make_scene(size=64)
    cfg = train_preset("small")
    cfg.render.coarse_samples, cfg.render.fine_samples = 8, 8
    cfg.loss.perceptual, cfg.loss.ssim, cfg.loss.mask = 0.0, 1.0, 0.5
    cfg.data.view_dropout = True
    torch.manual_seed(0)
    trainer = KeypointNeRFTraining(config_to_dict(cfg))
    model = trainer.model
    with torch.no_grad():   # a density that is positive inside the hull, so every stage has work
        model.geometry_mlp.fused_out.bias[1] = 3.0
    optimizer = trainer.configure_optimizers()
    vv, uu = torch.meshgrid(torch.arange(20, 36), torch.arange(24, 40), indexing="ij")
    sample = Sample(views=scene["views"], bounds=scene["bounds"], tgt_image=scene["tgt_image"],
                    tgt_mask=scene["tgt_mask"], tgt_K=scene["tgt_K"], tgt_Rt=scene["tgt_Rt"],
                    info=SampleInfo("scene", 0, (0, 1, 2), 3), pixels=torch.stack([uu.reshape(-1), vv.reshape(-1)], 1))
    K = scene["tgt_K"].clone()
    K[:2] *= 16 / 64

    default_device_meta()
    assert torch.empty(1).device.type == "meta"
    model.eval()
    with torch.inference_mode():
        enc = model.encode(scene["views"])
        for cull in (True, False):
            image = render_image(model, enc, K, scene["tgt_Rt"], 16, 16, scene["bounds"],
                                 RenderConfig(coarse_samples=8, fine_samples=8, cull=cull, supersample=2))
            assert image["rgb"].device.type == "cpu" and image["opacity"].max() > 0
    model.train()
    losses = trainer._losses(sample)
    losses["loss"].backward()
    optimizer.step()
    assert losses["loss"].device.type == "cpu" and torch.isfinite(losses["loss"])
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
