"""Coarse-to-fine volume rendering of a KeypointNeRF, in chunks of rays with bounded memory.

Two paths compute the same pictures:
- the fast path (``cull=True``) skips rays that cannot meet the visual hull (a conservative test against the
  silhouettes' rectangles), evaluates the networks only at samples inside the hull (every other sample has
  density 0 by definition), evaluates colour only where a sample's compositing weight is non-zero, and reuses
  the coarse samples' values in the fine pass;
- the plain path (``cull=False``) evaluates every sample of both passes, as the official code does; it is the
  reference the fast path is tested and benchmarked against.

Training renders (``training=True``) draw their random numbers (coarse jitter, density noise, importance draws)
once per pixel (:class:`RayDraws`), so the two paths, any chunking and any culling see the same numbers and give
the same loss and gradients. With ``grad_checkpoint`` the point networks keep only their inputs and outputs for
the backward pass and recompute the rest there, batch by batch: the memory of a training step then grows by
a few KB per evaluated point instead of about 25 KB (official model, measured), for the same gradients.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from ..errors import UserError
from ..geometry import camera_rays, pixel_grid
from ..model.keypointnerf import KeypointNeRF, PointDensity, Projection, SourceEncoding, volume_density
from .composite import composite, compositing_weights
from .rays import near_far, rays_meet_silhouettes
from .sampling import coarse_depths, importance_depths


@dataclass
class RenderConfig:
    coarse_samples: int = 64
    fine_samples: int = 64
    chunk_rays: int = 2048          # rays per chunk: bounds memory
    max_points: int = 4096          # points per network call: small batches stay in cache (faster on CPU)
    cull: bool = True               # exact visual-hull culling (False = the plain reference path)
    box_rays_only: bool = False     # True: rays that miss the box stay empty (the official code traces them)
    stratified: bool = False        # jitter coarse samples (training)
    density_noise_std: float = 0.0  # noise added to the raw density (training)
    supersample: int = 1            # render_image: n x n rays per pixel, averaged (anti-aliasing; n^2 x the work)
    grad_checkpoint: bool = True    # with gradients: recompute the point networks' activations in the backward
                                    # pass, max_points at a time, instead of keeping them (same gradients)

    def __post_init__(self):
        for name, least in (("coarse_samples", 1), ("fine_samples", 0), ("chunk_rays", 1), ("max_points", 1),
                            ("supersample", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UserError(f"render.{name}={value!r}: must be an integer >= {least}")
        if not 0 <= self.density_noise_std < float("inf"):
            raise UserError(f"render.density_noise_std={self.density_noise_std!r}: must be finite and >= 0")

    @classmethod
    def for_checkpoint(cls, info: dict, **overrides) -> "RenderConfig":
        """The settings stored with a model (``load_model``'s ``info["render"]``), then ``overrides``; the
        training-only fields (jitter, noise) are dropped: renders are deterministic."""
        known = {f.name for f in dataclasses.fields(cls)} - {"stratified", "density_noise_std"}
        stored = {k: v for k, v in (info.get("render") or {}).items() if k in known}
        try:
            cls(**stored)
        except UserError as exc:
            raise UserError(f"{info.get('path', 'the checkpoint')}: its render settings: {exc}") from None
        return cls(**{**stored, **overrides})


class RenderCancelled(Exception):
    """Raised by :func:`render_pixels` / :func:`render_image` when their ``should_stop()`` turns true (checked
    before every chunk of rays): an interactive viewer drops a render whose camera has moved."""


@dataclass
class RenderStats:
    """How much work a render did (for benchmarks): point counts per network, rays traced and skipped."""

    samples: int = 0
    geometry_evaluations: int = 0
    color_evaluations: int = 0
    rays: int = 0
    rays_skipped: int = 0   # rays that cannot meet the visual hull, left empty without tracing (culled path)


@dataclass
class RayDraws:
    """The random numbers of a training render, per ray: drawn once per pixel (:meth:`draw`), so that culling,
    chunking and the path taken do not change which numbers a ray gets. A field is None when unused."""

    coarse_jitter: torch.Tensor | None = None   # (R, coarse_samples) uniform [0, 1): stratified coarse depths
    coarse_noise: torch.Tensor | None = None    # (R, coarse_samples) standard normal: noise of the raw density
    fine_u: torch.Tensor | None = None          # (R, fine_samples) uniform [0, 1): importance draws
    fine_noise: torch.Tensor | None = None      # (R, fine_samples) standard normal

    @classmethod
    def draw(cls, rays: int, cfg: "RenderConfig", device) -> "RayDraws":
        coarse, fine, noisy = cfg.coarse_samples, max(cfg.fine_samples, 0), cfg.density_noise_std > 0
        return cls(coarse_jitter=torch.rand(rays, coarse, device=device) if cfg.stratified else None,
                   coarse_noise=torch.randn(rays, coarse, device=device) if noisy else None,
                   fine_u=torch.rand(rays, fine, device=device),
                   fine_noise=torch.randn(rays, fine, device=device) if noisy else None)

    def subset(self, index: torch.Tensor) -> "RayDraws":
        return RayDraws(*(None if t is None else t[index]
                          for t in (getattr(self, f.name) for f in dataclasses.fields(self))))


def _in_batches(count: int, size: int):
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


# ----------------------------------------------------------------------------------------------- shared pieces
class _Networks:
    """The model's point networks during one render: batched (``cfg.max_points``), counted in ``stats``, and with
    ``cfg.grad_checkpoint`` their activations recomputed in the backward pass instead of kept."""

    def __init__(self, model: KeypointNeRF, enc: SourceEncoding, cfg: RenderConfig, stats: RenderStats):
        self.model, self.enc, self.cfg, self.stats = model, enc, cfg, stats
        # recomputing costs one more forward pass of the networks: only worth it when a backward pass follows
        self.recompute = cfg.grad_checkpoint and torch.is_grad_enabled()

    def _run(self, function, *args):
        if self.recompute:
            return checkpoint(function, *args, use_reentrant=False)
        return function(*args)

    def density(self, points: torch.Tensor, hull_only: bool) -> PointDensity:
        """Density of points (N, 3): the networks inside the visual hull only, or at every point."""
        result = self.model.density(self.enc, points, self.cfg.max_points, hull_only=hull_only, run=self._run)
        self.stats.geometry_evaluations += len(result.evaluated)
        return result

    def colors(self, points: torch.Tensor, view_dirs: torch.Tensor, fused: torch.Tensor, proj: Projection
               ) -> torch.Tensor:
        """Colours (M, 3) of points (M, 3) seen along view_dirs (M, 3), given their fused features (M, C) and
        projection."""
        out = []
        # split, not sliced: the backward of a slice fills a zero tensor of the whole input, once per batch
        for part, fused_part in zip(_in_batches(len(points), self.cfg.max_points), fused.split(self.cfg.max_points)):
            index = torch.arange(part.start, part.stop, device=points.device)
            out.append(self._run(self.model.color, self.enc, points[part], self.model.subset(proj, index),
                                 fused_part, view_dirs[part]))
        self.stats.color_evaluations += len(points)
        return torch.cat(out) if out else points.new_zeros(0, 3)


def _sample_points(origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Points at ``depths`` (R, S) along rays (R, 3) -> points (R*S, 3), their rays' directions (R*S, 3)."""
    points = origins[:, None, :] + directions[:, None, :] * depths[..., None]
    return points.reshape(-1, 3), directions[:, None, :].expand(points.shape).reshape(-1, 3)


def _density(geometry: PointDensity, cfg: RenderConfig, noise: torch.Tensor | None) -> torch.Tensor:
    """(N,) density of the render: ``noise`` (standard normal, training only) scaled by cfg.density_noise_std."""
    scaled = None if noise is None or cfg.density_noise_std <= 0 else noise * cfg.density_noise_std
    return volume_density(geometry.raw_density, geometry.valid, scaled)


def _composited_aux(weights: torch.Tensor, aux: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """(R,) the auxiliary channel ``aux`` (R, S) composited with ``weights`` (R, S), per unit ``opacity`` (R,)."""
    return (weights * aux).sum(-1) / (opacity + 1e-8)


def _outputs(coarse: dict, fine: dict, aux: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"rgb": fine["value"], "opacity": fine["opacity"], "depth": fine["depth"], "rgb_coarse": coarse["value"],
            "opacity_coarse": coarse["opacity"], "depth_coarse": coarse["depth"], "aux": aux}


# ----------------------------------------------------------------------------------------------- the two paths
def render_rays_reference(model: KeypointNeRF, enc: SourceEncoding, origins: torch.Tensor, directions: torch.Tensor,
                          near: torch.Tensor, far: torch.Tensor, cfg: RenderConfig, training: bool,
                          stats: RenderStats, draws: RayDraws) -> dict[str, torch.Tensor]:
    """The plain path (``cfg.cull`` False), as the official code renders: the networks at every sample of both
    passes, the fine pass evaluating the merged coarse and fine samples again. Arguments and outputs: see
    :func:`render_rays`."""
    nets = _Networks(model, enc, cfg, stats)
    rays, n_coarse = len(origins), cfg.coarse_samples
    # ---- coarse pass
    depths_c = coarse_depths(near, far, n_coarse, stratified=training and cfg.stratified, jitter=draws.coarse_jitter)
    points_c, dirs_c = _sample_points(origins, directions, depths_c)
    geometry_c = nets.density(points_c, hull_only=False)
    weights_c = compositing_weights(depths_c, _density(geometry_c, cfg, draws.coarse_noise).view(rays, n_coarse))
    rgb_c = nets.colors(points_c, dirs_c, geometry_c.fused, geometry_c.projection)
    coarse = composite(weights_c, depths_c, rgb_c.view(rays, n_coarse, 3))
    if cfg.fine_samples <= 0:
        stats.samples += rays * n_coarse
        return _outputs(coarse, coarse, _composited_aux(weights_c, geometry_c.aux.view(rays, -1), coarse["opacity"]))
    # ---- fine pass: importance samples merged with the coarse ones, all evaluated (a sample's density noise is
    # its own, whichever pass evaluates it)
    depths_f = importance_depths(depths_c, weights_c, cfg.fine_samples, deterministic=not training, u=draws.fine_u)
    depths_all, order = torch.sort(torch.cat([depths_c, depths_f], dim=-1), dim=-1)
    n_all = depths_all.shape[1]
    points_all, dirs_all = _sample_points(origins, directions, depths_all)
    geometry_all = nets.density(points_all, hull_only=False)
    noise_all = None if draws.coarse_noise is None else \
        torch.cat([draws.coarse_noise, draws.fine_noise], dim=-1).gather(1, order)
    weights_all = compositing_weights(depths_all, _density(geometry_all, cfg, noise_all).view(rays, n_all))
    rgb_all = nets.colors(points_all, dirs_all, geometry_all.fused, geometry_all.projection)
    fine = composite(weights_all, depths_all, rgb_all.view(rays, n_all, 3))
    stats.samples += rays * (n_coarse + n_all)
    return _outputs(coarse, fine, _composited_aux(weights_all, geometry_all.aux.view(rays, n_all), fine["opacity"]))


def _colors_where(nets: _Networks, points: torch.Tensor, view_dirs: torch.Tensor, geometry: PointDensity,
                  todo: torch.Tensor, rgb: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 3): ``rgb`` (zeros when None) with the colours of the points ``todo`` (N,) bool filled in; those
    points must lie inside the visual hull (evaluated by ``nets.density``), as every point of non-zero weight does."""
    index = todo.nonzero()[:, 0]
    rgb = points.new_zeros(len(points), 3) if rgb is None else rgb
    if len(index):
        fused = geometry.fused[torch.searchsorted(geometry.evaluated, index)]
        values = nets.colors(points[index], view_dirs[index], fused, nets.model.subset(geometry.projection, index))
        rgb = rgb.index_copy(0, index, values)
    return rgb


def render_rays_culled(model: KeypointNeRF, enc: SourceEncoding, origins: torch.Tensor, directions: torch.Tensor,
                       near: torch.Tensor, far: torch.Tensor, cfg: RenderConfig, training: bool,
                       stats: RenderStats, draws: RayDraws) -> dict[str, torch.Tensor]:
    """The fast path (``cfg.cull`` True), the same pictures as :func:`render_rays_reference`: the geometry network
    only at samples inside the visual hull (every other sample has density 0), the colour head only at samples of
    non-zero compositing weight, and the fine pass evaluating only its new samples (the coarse ones keep their
    values; the merged samples are composited in depth order). Arguments and outputs: see :func:`render_rays`."""
    nets = _Networks(model, enc, cfg, stats)
    rays, n_coarse = len(origins), cfg.coarse_samples
    # ---- coarse pass
    depths_c = coarse_depths(near, far, n_coarse, stratified=training and cfg.stratified, jitter=draws.coarse_jitter)
    points_c, dirs_c = _sample_points(origins, directions, depths_c)
    geometry_c = nets.density(points_c, hull_only=True)
    density_c = _density(geometry_c, cfg, draws.coarse_noise).view(rays, n_coarse)
    weights_c = compositing_weights(depths_c, density_c)
    colored_c = (weights_c > 0).reshape(-1)
    rgb_c = _colors_where(nets, points_c, dirs_c, geometry_c, colored_c)
    coarse = composite(weights_c, depths_c, rgb_c.view(rays, n_coarse, 3))
    if cfg.fine_samples <= 0:
        stats.samples += rays * n_coarse
        return _outputs(coarse, coarse, _composited_aux(weights_c, geometry_c.aux.view(rays, -1), coarse["opacity"]))
    # ---- fine pass: only the importance samples are new
    depths_f = importance_depths(depths_c, weights_c, cfg.fine_samples, deterministic=not training, u=draws.fine_u)
    points_f, dirs_f = _sample_points(origins, directions, depths_f)
    geometry_f = nets.density(points_f, hull_only=True)
    density_f = _density(geometry_f, cfg, draws.fine_noise).view(rays, -1)
    # the merged samples (coarse then fine, in this order) composited in depth order
    depths = torch.cat([depths_c, depths_f], dim=-1)
    sorted_depths, order = torch.sort(depths, dim=-1)
    sorted_weights = compositing_weights(sorted_depths, torch.cat([density_c, density_f], dim=-1).gather(1, order))
    weights = torch.zeros_like(sorted_weights).scatter(1, order, sorted_weights)
    needed = weights > 0
    rgb_c = _colors_where(nets, points_c, dirs_c, geometry_c, needed[:, :n_coarse].reshape(-1) & ~colored_c, rgb_c)
    rgb_f = _colors_where(nets, points_f, dirs_f, geometry_f, needed[:, n_coarse:].reshape(-1))
    rgb = torch.cat([rgb_c.view(rays, n_coarse, 3), rgb_f.view(rays, -1, 3)], dim=1)
    fine = composite(weights, depths, rgb)
    aux = torch.cat([geometry_c.aux.view(rays, -1), geometry_f.aux.view(rays, -1)], dim=-1)
    stats.samples += rays * (n_coarse + depths.shape[1])
    return _outputs(coarse, fine, _composited_aux(weights, aux, fine["opacity"]))


def render_rays(model: KeypointNeRF, enc: SourceEncoding, origins: torch.Tensor, directions: torch.Tensor,
                near: torch.Tensor, far: torch.Tensor, cfg: RenderConfig | None = None, training: bool = False,
                stats: RenderStats | None = None, draws: RayDraws | None = None) -> dict[str, torch.Tensor]:
    """Render R rays (origins, unit directions (R, 3); near, far (R,) metres) in one go (no chunking), by the
    culled or the reference path (``cfg.cull``).

    -> ``rgb`` (R, 3), ``opacity`` (R,), ``depth`` (R,) of the fine pass, the same with suffix ``_coarse``, and
    ``aux`` (R,): the composited auxiliary channel of the fine pass. ``draws``: the rays' random numbers when
    ``training`` (drawn here when None).
    """
    cfg = cfg or RenderConfig()
    stats = stats if stats is not None else RenderStats()
    if not training:
        draws = RayDraws()
    elif draws is None:
        draws = RayDraws.draw(len(origins), cfg, origins.device)
    stats.rays += len(origins)
    path = render_rays_culled if cfg.cull else render_rays_reference
    return path(model, enc, origins, directions, near, far, cfg, training, stats, draws)


def render_pixels(model: KeypointNeRF, enc: SourceEncoding, K: torch.Tensor, Rt: torch.Tensor, pixels: torch.Tensor,
                  bounds: torch.Tensor, cfg: RenderConfig | None = None, training: bool = False,
                  stats: RenderStats | None = None, progress: bool = False,
                  should_stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """Render target pixels (P, 2) (u, v) of camera K (3, 3), [R|t] (3, 4) in chunks of rays.

    -> per-pixel outputs of ``render_rays`` (P, ...) plus ``hits_box`` (P,) bool; pixels whose ray misses the
    box are empty (zeros) unless ``cfg.box_rays_only`` is False. ``should_stop()`` true before a chunk raises
    :class:`RenderCancelled`.
    """
    cfg = cfg or RenderConfig()
    stats = stats if stats is not None else RenderStats()
    device = enc.images.device
    K, Rt, pixels, bounds = K.to(device).float(), Rt.to(device).float(), pixels.to(device), bounds.to(device).float()
    origins, directions = camera_rays(K, Rt, pixels)
    near, far, hits = near_far(origins, directions, bounds, Rt, model.cfg.znear, model.cfg.zfar)
    keep = hits if cfg.box_rays_only else torch.ones_like(hits)
    if cfg.cull:
        # rays that cannot meet the visual hull stay empty, as evaluating them would leave them
        meets = rays_meet_silhouettes(origins, directions, near, far, enc.P, enc.Rt, enc.silhouette_rects,
                                      model.cfg.znear)
        stats.rays_skipped += int((keep & ~meets).sum())
        keep = keep & meets
    traced = keep.nonzero()[:, 0]
    # every pixel draws its numbers, traced or not: the paths and chunkings then give every ray the same ones
    draws = RayDraws.draw(len(pixels), cfg, device) if training else None
    outputs: dict[str, list] = {}
    parts = list(_in_batches(len(traced), cfg.chunk_rays))
    for part in tqdm(parts, desc="rendering", unit="chunk", disable=not progress, leave=False):
        if should_stop is not None and should_stop():
            raise RenderCancelled
        index = traced[part]
        result = render_rays(model, enc, origins[index], directions[index], near[index], far[index], cfg,
                             training=training, stats=stats, draws=None if draws is None else draws.subset(index))
        for key, value in result.items():
            outputs.setdefault(key, []).append(value)
    full = {}
    for key in ("rgb", "opacity", "depth", "rgb_coarse", "opacity_coarse", "depth_coarse", "aux"):
        shape = (len(pixels), 3) if key.startswith("rgb") else (len(pixels),)
        values = torch.cat(outputs[key]) if key in outputs else origins.new_zeros((0,) + shape[1:])
        full[key] = values.new_zeros(shape).index_copy(0, traced, values) if len(traced) < len(pixels) else values
    full["hits_box"] = hits
    return full


# outputs normalised by a ray's opacity, and the opacity that weights them when sub-rays are averaged
_PER_OPACITY = {"depth": "opacity", "aux": "opacity", "depth_coarse": "opacity_coarse"}


def subpixel_offsets(n: int, device=None) -> torch.Tensor:
    """(n*n, 2) (du, dv) offsets in pixels of an n x n grid of rays centred on the pixel's ray: the centres of
    n x n equal cells of the pixel's footprint [-0.5, 0.5]^2 (n = 2: +-0.25; n = 3: -1/3, 0, 1/3)."""
    steps = (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n - 0.5
    dv, du = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([du.reshape(-1), dv.reshape(-1)], dim=-1)


def render_image(model: KeypointNeRF, enc: SourceEncoding, K: torch.Tensor, Rt: torch.Tensor, height: int,
                 width: int, bounds: torch.Tensor, cfg: RenderConfig | None = None,
                 stats: RenderStats | None = None, progress: bool = False,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """Render a whole (height x width) image -> ``rgb`` (3, H, W), ``opacity`` (1, H, W), ``depth`` (1, H, W)
    (metres along the ray), the ``_coarse`` counterparts, ``aux`` (1, H, W) and ``hits_box`` (H, W) bool.

    With ``cfg.supersample`` n > 1 each pixel averages n x n rays spread over its footprint
    (:func:`subpixel_offsets`), rendered one shifted grid at a time (memory as for n = 1), as a camera
    integrates light over a pixel and as a downsampled photo's pixels are area averages: edges come out
    anti-aliased instead of stair-stepped. Colours and opacities are plain means; depth and ``aux``, which are
    per unit opacity, are opacity-weighted means (an empty sub-ray does not pull an edge's depth towards 0);
    ``hits_box``: any sub-ray. ``should_stop``: see :func:`render_pixels`.
    """
    cfg = cfg or RenderConfig()
    samples = int(cfg.supersample)
    if samples < 1:
        raise ValueError(f"supersample must be >= 1, got {samples}")
    pixels = pixel_grid(height, width, device=enc.images.device)
    if samples == 1:
        with torch.inference_mode():
            flat = render_pixels(model, enc, K, Rt, pixels, bounds, cfg, stats=stats, progress=progress,
                                 should_stop=should_stop)
    else:
        sums: dict[str, torch.Tensor] = {}
        for offset in subpixel_offsets(samples, pixels.device):
            with torch.inference_mode():
                part = render_pixels(model, enc, K, Rt, pixels + offset, bounds, cfg, stats=stats,
                                     progress=progress, should_stop=should_stop)
            for key, value in part.items():
                if key in _PER_OPACITY:
                    value = value * part[_PER_OPACITY[key]]
                if key not in sums:
                    sums[key] = value
                else:
                    sums[key] = sums[key] | value if key == "hits_box" else sums[key] + value
        flat = {}
        for key, value in sums.items():
            if key in _PER_OPACITY:
                flat[key] = value / (sums[_PER_OPACITY[key]] + 1e-8)
            else:
                flat[key] = value if key == "hits_box" else value / samples ** 2
    images = {}
    for key, value in flat.items():
        if value.dim() == 2:
            images[key] = value.T.reshape(-1, height, width)
        elif key == "hits_box":
            images[key] = value.reshape(height, width)
        else:
            images[key] = value.reshape(1, height, width)
    return images
