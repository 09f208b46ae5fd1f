"""Rays, near/far, sampling and compositing by hand; the culled renderer equals the plain one."""
import math

import pytest
import torch

from keypointnerf.data.sample import SourceViews
from keypointnerf.errors import UserError
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.render.composite import composite, compositing_weights
from keypointnerf.geometry import camera_rays, pixel_grid
from keypointnerf.model.keypointnerf import silhouette_rectangles
from keypointnerf.render.rays import near_far, rays_meet_silhouettes
from keypointnerf.render.renderer import RenderConfig, RenderStats, render_image, render_pixels, subpixel_offsets
from keypointnerf.render.sampling import coarse_depths, importance_depths

K = torch.tensor([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
IDENTITY = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)


def test_principal_ray_and_pixel_offsets():
    origins, dirs = camera_rays(K, IDENTITY, torch.tensor([[50, 40], [150, 40]]))
    assert torch.allclose(origins, torch.zeros(2, 3))
    assert torch.allclose(dirs[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)   # float32 normalisation
    assert torch.allclose(dirs[1], torch.tensor([1.0, 0.0, 1.0]) / math.sqrt(2), atol=1e-6)
    # a camera moved to (0, 0, -2) looking along +z: world origin is 2 m in front
    Rt = IDENTITY.clone()
    Rt[2, 3] = 2.0
    origins, _ = camera_rays(K, Rt, torch.tensor([[50, 40]]))
    assert torch.allclose(origins, torch.tensor([[0.0, 0.0, -2.0]]))


def test_near_far_by_hand():
    bounds = torch.tensor([[-0.5, -0.5, 3.0], [0.5, 0.5, 4.0]])
    pixels = torch.tensor([[50, 40], [150, 40], [50, 40]])
    origins, dirs = camera_rays(K, IDENTITY, pixels)
    near, far, hits = near_far(origins, dirs, bounds, IDENTITY, znear=2.0, zfar=5.0)
    assert hits.tolist() == [True, False, True]
    assert near[0].item() == pytest.approx(2.99) and far[0].item() == pytest.approx(4.01)
    # the ray at 45 degrees misses the box: distances at depths znear / zfar
    assert near[1].item() == pytest.approx(2.0 * math.sqrt(2)) and far[1].item() == pytest.approx(5.0 * math.sqrt(2))
    # a box that starts closer than znear: clamped to znear's distance
    near, far, hits = near_far(origins[:1], dirs[:1], torch.tensor([[-0.5, -0.5, 1.0], [0.5, 0.5, 6.0]]),
                               IDENTITY, znear=2.0, zfar=5.0)
    assert (near.item(), far.item()) == (pytest.approx(2.0), pytest.approx(5.0))


def test_compositing_by_hand():
    depths = torch.tensor([[1.0, 2.0, 3.0]])
    density = torch.tensor([[0.0, math.log(2.0), 5.0]])          # second sample: alpha = 1/2 over 1 m
    weights = compositing_weights(depths, density)
    assert torch.allclose(weights, torch.tensor([[0.0, 0.5, 0.5]]), atol=1e-6)   # the last absorbs the rest
    out = composite(weights, depths, torch.tensor([[[9.0, 9, 9], [1.0, 0, 0], [0.0, 1, 0]]]))
    assert torch.allclose(out["value"], torch.tensor([[0.5, 0.5, 0.0]]))
    assert out["opacity"].item() == pytest.approx(1.0) and out["depth"].item() == pytest.approx(2.5)


def test_importance_samples_follow_the_weights():
    depths = coarse_depths(torch.tensor([0.0]), torch.tensor([6.3]), 64)
    assert torch.allclose(depths[0, 1] - depths[0, 0], torch.tensor(0.1))
    weights = torch.zeros(1, 64)
    weights[0, 30] = 1.0
    fine = importance_depths(depths, weights, 64)
    # nearly all mass between the midpoints around sample 30: [2.95, 3.05]
    inside = ((fine >= 2.95 - 1e-5) & (fine <= 3.05 + 1e-5)).float().mean()
    assert inside > 0.95
    assert torch.all(fine[:, 1:] >= fine[:, :-1])
    stratified = coarse_depths(torch.zeros(100), torch.full((100,), 6.3), 64, stratified=True)
    assert ((stratified - depths).abs() <= 0.05 + 1e-6).all() and not torch.allclose(stratified, depths.expand(100, -1))


@pytest.fixture(scope="module")
def small_model_and_scene():
    from helpers import make_scene
    torch.manual_seed(3)
    model = KeypointNeRF(model_preset("small")).eval()
    with torch.no_grad():   # a density that is positive inside the hull, so images are not empty
        model.geometry_mlp.fused_out.bias[1] = 3.0
    scene = make_scene(size=128)
    enc = model.encode(scene["views"])
    return model, scene, enc


def test_culled_renderer_equals_plain_renderer(small_model_and_scene):
    model, scene, enc = small_model_and_scene
    size = 48
    K = scene["tgt_K"].clone()
    K[:2] *= size / 128
    fast_stats, plain_stats = RenderStats(), RenderStats()
    fast = render_image(model, enc, K, scene["tgt_Rt"], size, size, scene["bounds"],
                        RenderConfig(cull=True, chunk_rays=500, max_points=1000), stats=fast_stats)
    plain = render_image(model, enc, K, scene["tgt_Rt"], size, size, scene["bounds"],
                         RenderConfig(cull=False), stats=plain_stats)
    assert fast["opacity"].max() > 0.5          # the person is there
    for key in ("rgb", "opacity", "depth", "rgb_coarse", "opacity_coarse", "depth_coarse", "aux"):
        assert torch.allclose(fast[key], plain[key], atol=2e-5), key
    # and it did far less work
    assert fast_stats.geometry_evaluations < plain_stats.geometry_evaluations / 4


def test_subpixel_offsets_by_hand():
    assert subpixel_offsets(1).tolist() == [[0.0, 0.0]]
    assert subpixel_offsets(2).tolist() == [[-0.25, -0.25], [0.25, -0.25], [-0.25, 0.25], [0.25, 0.25]]
    assert torch.allclose(subpixel_offsets(3)[:3, 0], torch.tensor([-1 / 3, 0.0, 1 / 3]))


def test_supersampling_averages_renders_of_shifted_pixel_grids(small_model_and_scene):
    model, scene, enc = small_model_and_scene
    K = scene["tgt_K"].clone()
    K[:2] *= 32 / 128
    args = (model, enc, K, scene["tgt_Rt"], 32, 32, scene["bounds"])
    single = render_image(*args, RenderConfig(supersample=1))
    assert torch.equal(single["rgb"], render_image(*args)["rgb"])
    super2 = render_image(*args, RenderConfig(supersample=2))
    # the ray through pixel (u + du, v + dv) of K is the ray through (u, v) of K with its centre moved by -du, -dv
    shifted = []
    for du, dv in subpixel_offsets(2).tolist():
        moved = K.clone()
        moved[0, 2] -= du
        moved[1, 2] -= dv
        shifted.append(render_image(model, enc, moved, scene["tgt_Rt"], 32, 32, scene["bounds"]))
    stacked = {key: torch.stack([r[key] for r in shifted]) for key in shifted[0]}
    for key in ("rgb", "opacity", "rgb_coarse"):
        assert torch.allclose(super2[key], stacked[key].mean(0), atol=1e-5), key
    # depth is per unit opacity: weighted by the sub-rays' opacities, so empty sub-rays do not pull it to 0
    weighted = (stacked["depth"] * stacked["opacity"]).sum(0) / (stacked["opacity"].sum(0) + 1e-8)
    assert torch.allclose(super2["depth"], weighted, atol=1e-4)
    assert ((super2["depth"] - stacked["depth"].mean(0)).abs() > 1e-2).any()    # which a plain mean is not
    assert torch.equal(super2["hits_box"], stacked["hits_box"].any(0))
    assert not torch.allclose(super2["rgb"], single["rgb"], atol=1e-3)    # edges differ: it did something
    with pytest.raises(UserError, match="render.supersample=0"):
        RenderConfig(supersample=0)


def test_rendering_is_independent_of_chunking_and_pixel_order(small_model_and_scene):
    model, scene, enc = small_model_and_scene
    K = scene["tgt_K"].clone()
    K[:2] *= 32 / 128
    pixels = pixel_grid(32, 32)
    perm = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = render_pixels(model, enc, K, scene["tgt_Rt"], pixels, scene["bounds"], RenderConfig(chunk_rays=1024))
        b = render_pixels(model, enc, K, scene["tgt_Rt"], pixels[perm], scene["bounds"], RenderConfig(chunk_rays=37))
    assert torch.allclose(a["rgb"][perm], b["rgb"], atol=1e-5)


def test_training_render_is_differentiable_and_culled_gradients_match(small_model_and_scene):
    model, scene, _ = small_model_and_scene
    K = scene["tgt_K"].clone()
    K[:2] *= 32 / 128
    pixels = pixel_grid(32, 32)[300:600]
    grads = []
    for cull in (True, False):
        model.zero_grad()
        enc = model.encode(scene["views"])
        out = render_pixels(model, enc, K, scene["tgt_Rt"], pixels, scene["bounds"], RenderConfig(cull=cull))
        (out["rgb"].sum() + out["rgb_coarse"].sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-4, rtol=1e-3)


def test_silhouette_rectangles_by_hand():
    masks = torch.zeros(2, 1, 10, 20)
    masks[0, 0, 2:5, 0:7] = 0.5       # touches the left border: widened on to the frustum's overhang
    rects = silhouette_rectangles(masks, frustum_margin=1.01, margin=2.0)
    assert rects[0].tolist() == pytest.approx([-2.0 - 0.005 * 19, 0.0, 8.0, 6.0])
    assert rects[1, 0] > rects[1, 2]   # an empty silhouette: an empty rectangle


def test_ray_test_by_hand():
    # one camera at the origin looking down +z; the silhouette covers pixels u in [40, 60], v in [30, 50]
    P = (K @ IDENTITY)[None]
    rect = torch.tensor([[40.0, 30.0, 60.0, 50.0]])
    origins = torch.tensor([[0.0, 0, 0], [0.0, 0, 0], [0.3, 0, 1.0], [0.0, 0, 0]])
    directions = torch.nn.functional.normalize(torch.tensor([
        [0.0, 0.0, 1.0],      # through pixel (50, 40): inside
        [0.3, 0.0, 1.0],      # through pixel (~79, 40): outside, at any depth
        [-0.3, 0.0, 1.0],     # starts at u = 80, reaches u = 50 at depth 2 and u = 40 at depth 3
        [0.0, 0.0, 1.0]]), dim=-1)
    near, far = torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([5.0, 5.0, 3.0, 1.5])
    keep = rays_meet_silhouettes(origins, directions, near, far, P, IDENTITY[None], rect, znear=0.2)
    assert keep.tolist() == [True, False, True, True]
    # the last ray ends at depth 1.5, before a 2 m near plane: nothing of it counts
    keep = rays_meet_silhouettes(origins, directions, near, far, P, IDENTITY[None], rect, znear=2.0)
    assert keep.tolist() == [True, False, True, False]
    # the third ray, cut at 0.4 m (depth 1.38, u = 63), ends before it reaches the rectangle
    keep = rays_meet_silhouettes(origins, directions, near, torch.tensor([5.0, 5.0, 0.4, 1.5]), P,
                                 IDENTITY[None], rect, znear=0.2)
    assert keep.tolist() == [True, False, False, True]


@pytest.mark.parametrize("crop", [None, (100, 120)])
def test_skipped_rays_hold_no_point_of_the_visual_hull(small_model_and_scene, crop):
    model, scene, enc = small_model_and_scene
    if crop:   # sources cut at the right and bottom (through the silhouettes), padded again for the encoders
        height, width = crop
        enc = model.encode(SourceViews(scene["images"][..., :height, :width], scene["masks"][..., :height, :width],
                                       scene["K"], scene["Rt"], scene["keypoints"]))
        assert enc.images.shape[-2:] == (128, 128) and scene["masks"][:, 0, height - 1].any()
    K = scene["tgt_K"].clone()
    K[:2] *= 40 / 128
    origins, directions = camera_rays(K, scene["tgt_Rt"], pixel_grid(40, 40))
    near, far, _ = near_far(origins, directions, scene["bounds"], scene["tgt_Rt"], model.cfg.znear, model.cfg.zfar)
    keep = rays_meet_silhouettes(origins, directions, near, far, enc.P, enc.Rt, enc.silhouette_rects,
                                 model.cfg.znear)
    # brute force: 400 points along every ray
    steps = torch.linspace(0, 1, 400)
    depths = near[:, None] + (far - near)[:, None] * steps
    points = origins[:, None] + directions[:, None] * depths[..., None]
    with torch.no_grad():
        has_valid = model.project(enc, points.reshape(-1, 3)).valid.view(len(origins), -1).any(-1)
    assert has_valid.sum() > 100
    assert not (has_valid & ~keep).any()            # never a ray that holds a valid point
    assert (~keep).float().mean() > 0.3             # and it does skip many


def test_ray_test_reaches_past_a_border_touching_silhouette_as_far_as_the_frustum():
    # a silhouette filling a 100 x 100 view: with border padding, points project validly up to
    # |xy| = 1.01, i.e. 0.495 px beyond the first and last pixel centres
    P = (torch.tensor([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]]) @ IDENTITY)[None]
    rect = silhouette_rectangles(torch.ones(1, 1, 100, 100), frustum_margin=1.01, margin=0.0)
    us = torch.tensor([99.4, 99.6, -0.4, -0.6])
    directions = torch.stack([(us - 50) / 100, torch.zeros(4), torch.ones(4)], -1)   # through the centre
    directions = directions / directions.norm(dim=-1, keepdim=True)
    keep = rays_meet_silhouettes(torch.zeros(4, 3), directions, torch.ones(4), torch.full((4,), 2.0), P, IDENTITY[None],
                                 rect, znear=0.5)
    assert keep.tolist() == [True, False, True, False]


def test_fast_equals_plain_for_a_camera_closer_than_znear(small_model_and_scene):
    # 1.5 m from the person, closer than znear (2 m): box exits before znear give near > far for many rays
    model, scene, enc = small_model_and_scene
    Rt = scene["tgt_Rt"].clone()
    center = -Rt[:, :3].T @ Rt[:, 3]
    Rt[:, 3] = -Rt[:, :3] @ (center * 1.5 / center.norm())
    K = scene["tgt_K"].clone()
    K[:2] *= 32 / 128
    origins, directions = camera_rays(K, Rt, pixel_grid(32, 32))
    near, far, _ = near_far(origins, directions, scene["bounds"], Rt, model.cfg.znear, model.cfg.zfar)
    assert (near > far).sum() > 100
    fast = render_image(model, enc, K, Rt, 32, 32, scene["bounds"], RenderConfig(cull=True))
    plain = render_image(model, enc, K, Rt, 32, 32, scene["bounds"], RenderConfig(cull=False))
    reversed_rays = (near > far).view(32, 32)
    assert fast["opacity"][0][reversed_rays].max() > 0.1
    for key in ("rgb", "opacity", "depth", "aux"):
        assert torch.allclose(fast[key], plain[key], atol=2e-5), key
