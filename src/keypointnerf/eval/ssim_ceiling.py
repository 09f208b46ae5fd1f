"""Where the SSIM is lost (``benchmarks/ssim_ceiling.py``): image-based renders of a test view from the model's
depth and from the true surface, beside the model's own render. Colours are bilinear samples of the source
views at the points' projections, as the colour head reads them; world metres, OpenCV cameras."""
from __future__ import annotations

import numpy as np
import torch

from ..data.sample import Sample
from ..data.synth.render import RayCaster
from ..geometry import camera_rays, pixel_grid
from ..model.keypointnerf import KeypointNeRF, SourceEncoding, sample_maps
from ..render.renderer import RenderConfig, render_image

VISIBILITY_TOLERANCE = 0.005   # metres: a source view sees a surface point when its first hit is this close
ROWS = {"model": "model", "model_depth_oracle": "model depth, best view (oracle)",
        "true_surface_nearest": "true surface, nearest visible view",
        "true_surface_oracle": "true surface, best view (oracle)"}


def first_hits(caster: RayCaster, origins: torch.Tensor, directions: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """First hits of rays (N, 3) origins, (N, 3) unit directions (world metres) on the caster's mesh (the ray
    caster that rendered the synthetic photos) -> points (N, 3) (zeros where missed), hit (N,) bool."""
    hit, triangles, barycentric = caster.cast(origins.double().numpy(), directions.double().numpy())
    corners = caster.vertices[caster.faces[triangles]]                               # (H, 3, 3)
    points = torch.zeros(len(origins), 3)
    points[torch.from_numpy(hit)] = torch.from_numpy(np.einsum("hk,hka->ha", barycentric, corners)).float()
    return points, torch.from_numpy(hit)


def visible_from(caster: RayCaster, centres: torch.Tensor, points: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """(V, N) bool: from camera centre v (``centres`` (V, 3), metres) the first hit towards surface point n is
    that point, within :data:`VISIBILITY_TOLERANCE` (a ray that misses, grazing the surface, counts as seeing
    it); False where ``hit`` (N,) is False. The frustum is not tested here."""
    index = hit.nonzero()[:, 0]
    visible = torch.zeros(len(centres), len(points), dtype=torch.bool)
    for view, centre in enumerate(centres.float()):
        offsets = points[index] - centre
        distance = offsets.norm(dim=-1)
        first, first_hit = first_hits(caster, centre.expand(len(index), 3), offsets / distance[:, None])
        first_distance = torch.where(first_hit, (first - centre).norm(dim=-1), torch.full_like(distance, torch.inf))
        visible[view, index] = first_distance > distance - VISIBILITY_TOLERANCE
    return visible


def best_view(colours: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(V, N, 3) candidate colours, (N, 3) ground truth -> (N, 3): per point the candidate closest (L1) to it."""
    choice = (colours - truth[None]).abs().sum(-1).argmin(0)
    return colours.gather(0, choice[None, :, None].expand(1, -1, 3))[0]


def ceiling_images(model: KeypointNeRF, enc: SourceEncoding, sample: Sample, caster: RayCaster,
                   render_cfg: RenderConfig | None) -> dict[str, torch.Tensor]:
    """The rows' (3, H, W) RGB images in [0, 1] (see :data:`ROWS`) for one test sample, ``caster`` on its true
    surface; ``render_cfg`` None skips the model's rows (only the true-surface ones)."""
    height, width = sample.tgt_image.shape[-2:]
    truth = sample.tgt_image.reshape(3, -1).T.float()                             # (N, 3)
    origins, directions = camera_rays(sample.tgt_K, sample.tgt_Rt, pixel_grid(height, width))

    def as_image(colours: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """(N, 3) colours over black with (N,) alpha -> (3, H, W); nothing (not even a NaN) where alpha is 0."""
        return torch.where(alpha[:, None] > 0, colours * alpha[:, None], 0.0).T.reshape(3, height, width)

    images = {}
    if render_cfg is not None:
        rendered = render_image(model, enc, sample.tgt_K, sample.tgt_Rt, height, width, sample.bounds, render_cfg)
        depth, opacity = rendered["depth"].reshape(-1), rendered["opacity"].reshape(-1)
        points = origins + directions * depth[:, None]
        colours = sample_maps(enc.images, model.project(enc, points).xy)             # (V, N, 3)
        images["model"] = rendered["rgb"].float()
        images["model_depth_oracle"] = as_image(best_view(colours, truth), opacity)
    points, hit = first_hits(caster, origins, directions)
    projection = model.project(enc, points)
    colours = sample_maps(enc.images, projection.xy)
    sees = visible_from(caster, enc.centers, points, hit) & (projection.frame_xy.abs() <= 1).all(-1)
    to_point = points[None] - enc.centers[:, None].float()
    closeness = (to_point / to_point.norm(dim=-1, keepdim=True).clamp_min(1e-9) * directions[None]).sum(-1)
    # views that do not see the point rank below every view that does (nearest first among them too)
    closeness = closeness - 4.0 * ~sees
    nearest = colours.gather(0, closeness.argmax(0)[None, :, None].expand(1, -1, 3))[0]
    coverage = hit.float()
    images["true_surface_nearest"] = as_image(nearest, coverage)
    images["true_surface_oracle"] = as_image(best_view(colours, truth), coverage)
    return images
