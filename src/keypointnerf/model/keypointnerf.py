"""The KeypointNeRF network: encode the source views once, then query any number of 3D points.

Conventions: world units are metres; cameras are OpenCV pinhole (x right, y down, z forward) with
world-to-camera ``[R|t]`` (V, 3, 4) and intrinsics ``K`` (V, 3, 3) in pixels. Pixel (u, v) is the integer
column / row; normalised image coordinates are ``2u/(W-1) - 1`` (``align_corners=True`` sampling).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sample import SourceViews
from . import spatial
from .config import ModelConfig
from .encoders import GeometryEncoder, TextureEncoder
from .heads import ColorHead, GeometryMLP, weighted_mean_variance

FRUSTUM_MARGIN = 1.01      # |xy| bound of the frustum test, normalised image coordinates
MASK_THRESHOLD = 0.1       # a point is inside a view's silhouette where the sampled mask exceeds this
VIEW_WEIGHT_BORDER = 0.1   # view weights fade out within this fraction of the frustum's border
SILHOUETTE_MARGIN_PX = 2.0  # the silhouette rectangles are widened by this: bilinear support + rounding


@dataclass(frozen=True)
class SourceEncoding:
    """Everything the point queries need about one set of V source views (made once by ``encode``, never changed:
    a variant is a new encoding, e.g. ``dataclasses.replace(enc, view_mask=...)``)."""

    images: torch.Tensor          # (V, 3, H, W) source RGB in [0, 1], background 0 (padded, see image_size)
    masks: torch.Tensor           # (V, 1, H, W) foreground masks in [0, 1] (padded likewise)
    # the feature maps of the views ``feature_views`` (V' = V when that is None)
    geo_features: torch.Tensor    # (V', Cg, H/8, W/8)
    highres_features: torch.Tensor  # (V', Ch, H/2, W/2)
    tex_features: torch.Tensor    # (V', Ct, H/4, W/4)
    Rt: torch.Tensor              # (V, 3, 4) world-to-camera
    P: torch.Tensor               # (V, 3, 4) K [R|t]
    centers: torch.Tensor         # (V, 3) camera centres in world metres
    keypoints: torch.Tensor       # (K, 3) world metres
    keypoints_cam: torch.Tensor   # (V, K, 3) camera coordinates
    # (H, W) of the views as given: the frame of the frustum test and the view weights' border fade. The maps
    # above may be larger (padding at the right and bottom for the encoders)
    image_size: tuple[int, int]
    # (V,) 0/1 training-time view dropout: a dropped view still bounds the visual hull but adds nothing to the
    # fused feature or the colour blend; None = every view counts (inference)
    view_mask: torch.Tensor | None = None
    # (V',) int64, ascending: the views whose feature maps were computed and whose per-view networks run, when
    # only the views ``view_mask`` keeps are (``encode(..., skip_dropped_views=True)``, some view dropped);
    # None = every view
    feature_views: torch.Tensor | None = None
    # (V, 4) pixel rectangles around the silhouettes in the views as given (see :func:`silhouette_rectangles`),
    # for culling rays; derived from masks when the encoding is made (so also in a dataclasses.replace copy)
    silhouette_rects: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        height, width = self.image_size
        object.__setattr__(self, "silhouette_rects", silhouette_rectangles(self.masks[..., :height, :width]))

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    def of_feature_views(self, per_view: torch.Tensor) -> torch.Tensor:
        """The rows of a (V, ...) per-view tensor that belong to ``feature_views`` -> (V', ...)."""
        return per_view if self.feature_views is None else per_view[self.feature_views]


@dataclass
class Projection:
    """Where N points fall in the V source views."""

    points_cam: torch.Tensor      # (V, N, 3) camera coordinates, metres
    xy: torch.Tensor              # (V, N, 2) where the (padded) maps are sampled, normalised ([-1, 1] inside)
    frame_xy: torch.Tensor        # (V, N, 2) normalised coordinates in the views as given (= xy unless padded)
    z_normalised: torch.Tensor    # (V, N) 2 (z - znear) / (zfar - znear) - 1
    valid: torch.Tensor           # (N,) bool: inside every view's frustum and silhouette (the visual hull)


@dataclass(frozen=True)
class Geometry:
    """The geometry network's answer for N points."""

    raw_density: torch.Tensor     # (N,) density before the relu and the visual-hull mask (1/m)
    aux: torch.Tensor             # (N,) the auxiliary output channel (informative: composited into ``aux``)
    fused: torch.Tensor           # (N, 2 * view_feature_channels) the fused view features the colour head takes


@dataclass(frozen=True)
class PointDensity:
    """Density of N points of which M were run through the geometry network (see ``KeypointNeRF.density``)."""

    density: torch.Tensor         # (N,) volume density (1/m): relu(raw_density) inside the visual hull, 0 outside
    raw_density: torch.Tensor     # (N,) before the relu; 0 where not evaluated
    aux: torch.Tensor             # (N,) 0 where not evaluated
    valid: torch.Tensor           # (N,) bool: inside the visual hull
    evaluated: torch.Tensor       # (M,) int64: the points evaluated, ascending
    fused: torch.Tensor           # (M, 2 * view_feature_channels) their fused view features
    projection: "Projection"      # of all N points


def volume_density(raw_density: torch.Tensor, valid: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) ``valid * relu(raw_density + noise)``: the density of the renderer and the mesh export (``noise``
    (N,), already scaled, only in training renders)."""
    if noise is not None:
        raw_density = raw_density + noise.reshape(raw_density.shape)
    return valid.to(raw_density.dtype) * torch.relu(raw_density)


def _scatter_rows(values: torch.Tensor, index: torch.Tensor, total: int) -> torch.Tensor:
    """(M, ...) rows placed at ``index`` (M,) of a (total, ...) zero tensor (differentiable)."""
    return values.new_zeros((total,) + values.shape[1:]).index_copy(0, index, values)


def silhouette_rectangles(masks: torch.Tensor, frustum_margin: float = FRUSTUM_MARGIN,
                          margin: float = SILHOUETTE_MARGIN_PX) -> torch.Tensor:
    """(V, 1, H, W) masks -> (V, 4) pixel rectangles ``[u_min, v_min, u_max, v_max]`` around every non-zero mask
    pixel, widened by ``margin``; a view with an empty mask gets an empty rectangle (min > max).

    Masks are sampled with border padding, so a silhouette that touches the image border reaches on to the
    frustum's limit (normalised coordinate ``frustum_margin``): that side is widened by the overhang as well.
    """
    height, width = masks.shape[-2:]
    overhang = (frustum_margin - 1.0) * 0.5 * masks.new_tensor([width - 1, height - 1, width - 1, height - 1])
    rects = []
    for mask in masks[:, 0].gt(0):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        if len(rows) == 0:
            rects.append(masks.new_tensor([1.0, 1.0, -1.0, -1.0]))
            continue
        rect = torch.stack([cols[0], rows[0], cols[-1], rows[-1]]).to(masks.dtype)
        at_border = torch.stack([cols[0] == 0, rows[0] == 0, cols[-1] == width - 1, rows[-1] == height - 1])
        widen = margin + at_border.to(masks.dtype) * overhang
        rects.append(rect + torch.stack([-widen[0], -widen[1], widen[2], widen[3]]))
    return torch.stack(rects)


def _to_homogeneous(points: torch.Tensor) -> torch.Tensor:
    return torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)


def sample_maps(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of (V, C, h, w) maps at (V, N, 2) normalised coordinates -> (V, N, C)."""
    samples = F.grid_sample(maps, xy.unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=True)
    return samples[:, :, 0].transpose(1, 2)


class KeypointNeRF(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.geometry_encoder = GeometryEncoder(cfg)
        self.texture_encoder = TextureEncoder(cfg)
        self.geometry_mlp = GeometryMLP(cfg)
        self.compress = nn.Linear(2 * cfg.view_feature_channels, cfg.color_compress_channels)
        self.color_head = ColorHead(3 + cfg.tex_out_channels + cfg.color_compress_channels)
        # centre of the absolute-xyz ablation encoding (zeros in the released model)
        self.register_buffer("spatial_center", torch.zeros(3))

    # ---------------------------------------------------------------- source views
    def encode(self, views: SourceViews, view_mask: torch.Tensor | None = None,
               skip_dropped_views: bool = False) -> SourceEncoding:
        """Run the image encoders on V source views (``view_mask``: see :class:`SourceEncoding`).

        ``skip_dropped_views``: run the encoders, and later the per-view networks, only on the views ``view_mask``
        keeps. A dropped view's features reach the outputs only multiplied by its weight 0 (in the fusion and in
        the colour blend), so the outputs and every gradient are those of encoding all views, for the kept
        views' cost (training with view dropout: 2 of 3 views on average). The dropped views still bound the
        visual hull and take part in the colour head's view similarities.

        The encoders need H and W divisible by ``cfg.size_multiple`` (128 officially); other sizes are padded
        with background at the right and bottom, which keeps every pixel coordinate (and K) as it is. Only the
        encoders see the padding: the frustum test and the border fade of the view weights refer to the views as
        given, and the maps are sampled as if they ended at the views' edges (border padding there), so a padded
        view differs from an unpadded one only in what the encoders' receptive fields see near its right and
        bottom edges.
        """
        images, masks = views.images, views.masks
        count, _, height, width = images.shape
        if masks.shape != (count, 1, height, width):
            raise ValueError(f"masks have shape {tuple(masks.shape)}, expected {(count, 1, height, width)}")
        if views.keypoints.shape != (self.cfg.num_keypoints, 3):
            raise ValueError(f"keypoints have shape {tuple(views.keypoints.shape)}, expected "
                             f"({self.cfg.num_keypoints}, 3) (model.num_keypoints)")
        multiple = self.cfg.size_multiple
        pad_bottom, pad_right = -height % multiple, -width % multiple
        if pad_bottom or pad_right:
            images = F.pad(images, (0, pad_right, 0, pad_bottom))
            masks = F.pad(masks, (0, pad_right, 0, pad_bottom))
        images, masks, K, Rt, keypoints = (t.float() for t in (images, masks, views.K, views.Rt, views.keypoints))
        # pool first, then normalise: the official order (the other order moves densities by ~1e-4)
        pooled = F.avg_pool2d(images, self.cfg.image_pool) if self.cfg.image_pool > 1 else images
        pooled = pooled * 2 - 1
        feature_views = None
        if skip_dropped_views and view_mask is not None and not bool(view_mask.all()):
            feature_views = view_mask.nonzero()[:, 0]
            pooled = pooled[feature_views]
        geo_features, highres_features = self.geometry_encoder(pooled)
        tex_features = self.texture_encoder(pooled)
        R, t = Rt[:, :, :3], Rt[:, :, 3]
        return SourceEncoding(
            images=images, masks=masks, geo_features=geo_features, highres_features=highres_features,
            tex_features=tex_features, Rt=Rt, P=K @ Rt,
            centers=-(R.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1),
            keypoints=keypoints, keypoints_cam=_to_homogeneous(keypoints).unsqueeze(0) @ Rt.transpose(1, 2),
            image_size=(height, width), view_mask=view_mask, feature_views=feature_views)

    # ---------------------------------------------------------------- point queries, in stages
    def project(self, enc: SourceEncoding, points: torch.Tensor) -> Projection:
        """Project (N, 3) world points into every source view and test the visual hull."""
        height, width = enc.image_size
        homogeneous = _to_homogeneous(points).unsqueeze(0)                       # (1, N, 4)
        points_cam = homogeneous @ enc.Rt.transpose(1, 2)                        # (V, N, 3)
        pixels = homogeneous @ enc.P.transpose(1, 2)
        uv = pixels[..., :2] / pixels[..., 2:]
        frame_xy = 2 * uv / uv.new_tensor([width - 1, height - 1]) - 1
        xy = frame_xy
        padded_height, padded_width = enc.images.shape[-2:]
        if (padded_height, padded_width) != (height, width):
            # clamping to the views' edges is what border-padded sampling of unpadded maps would do
            edge = uv.new_tensor([width - 1, height - 1])
            xy = 2 * torch.minimum(uv.clamp_min(0), edge) / uv.new_tensor([padded_width - 1, padded_height - 1]) - 1
        cfg = self.cfg
        z_normalised = 2 * (points_cam[..., 2] - cfg.znear) / (cfg.zfar - cfg.znear) - 1
        in_frustum = (frame_xy.abs() <= FRUSTUM_MARGIN).all(-1) & (z_normalised >= -1)
        in_silhouette = sample_maps(enc.masks, xy)[..., 0] > MASK_THRESHOLD
        valid = (in_frustum & in_silhouette).all(0)
        return Projection(points_cam, xy, frame_xy, z_normalised, valid)

    def view_weights(self, proj: Projection, view_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(V, N, 1) fusion weights: fade out near the frustum's borders, zero where invalid or where
        ``view_mask`` (V,) is 0, sum to ~1."""
        p = 0.5 * torch.cat([proj.frame_xy, proj.z_normalised.unsqueeze(-1)], dim=-1) + 0.5
        border = torch.minimum(p, 1 - p)
        weights = torch.sigmoid(5 * (border / VIEW_WEIGHT_BORDER - 1)).prod(-1, keepdim=True)
        weights = weights * proj.valid[None, :, None]
        if view_mask is not None:
            weights = weights * view_mask.to(weights.dtype)[:, None, None]
        return weights / (weights.sum(0, keepdim=True) + 1e-6)

    def spatial_encoding(self, enc: SourceEncoding, points: torch.Tensor, proj: Projection) -> torch.Tensor:
        """(V', N, cfg.spatial_channels) encoding of (N, 3) world points in the views ``enc.feature_views``."""
        cfg = self.cfg
        points_cam, keypoints_cam = enc.of_feature_views(proj.points_cam), enc.of_feature_views(enc.keypoints_cam)
        if cfg.spatial_encoding == "rel_z_decay":
            return spatial.rel_z_decay(points_cam, keypoints_cam, cfg.spatial_frequencies, cfg.spatial_sigma)
        if cfg.spatial_encoding == "abs_xyz":
            return spatial.absolute_xyz(points, self.spatial_center, len(points_cam), cfg.spatial_frequencies)
        if cfg.spatial_encoding == "cam_xyz":
            return spatial.camera_xyz(points_cam, cfg.spatial_frequencies)
        return spatial.relative_xyz(points_cam, keypoints_cam, cfg.spatial_frequencies)

    def geometry(self, enc: SourceEncoding, points: torch.Tensor, proj: Projection) -> Geometry:
        """The geometry network at (N, 3) world points whose projection is ``proj`` (no visual-hull mask)."""
        xy = enc.of_feature_views(proj.xy)
        per_view = self.geometry_mlp.per_view(self.spatial_encoding(enc, points, proj),
                                              sample_maps(enc.geo_features, xy),
                                              sample_maps(enc.highres_features, xy))
        # the views without features have weight 0: leaving them out of the sums changes no value
        fused = weighted_mean_variance(per_view, enc.of_feature_views(self.view_weights(proj, enc.view_mask)))
        raw = self.geometry_mlp.fused(fused)
        return Geometry(raw_density=raw[:, 1], aux=raw[:, 0], fused=fused)

    def color(self, enc: SourceEncoding, points: torch.Tensor, proj: Projection, fused: torch.Tensor,
              view_dirs: torch.Tensor) -> torch.Tensor:
        """RGB (N, 3) in [0, 1] seen along unit ``view_dirs`` (N, 3) (the target rays' directions)."""
        views = enc.num_views
        to_point = points.unsqueeze(0) - enc.centers[:, None, :]                 # (V, N, 3)
        to_point = to_point / to_point.norm(dim=-1, keepdim=True)
        diff = view_dirs.unsqueeze(0) - to_point
        diff = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        cosine = (view_dirs.unsqueeze(0) * to_point).sum(-1, keepdim=True)
        ray_feature = torch.cat([diff, cosine], dim=-1)
        xy = enc.of_feature_views(proj.xy)
        features = torch.cat([enc.of_feature_views(sample_maps(enc.images, proj.xy)), sample_maps(enc.tex_features, xy),
                              self.compress(fused).unsqueeze(0).expand(len(xy), -1, -1)], dim=-1)
        mask = proj.valid[None, :, None].expand(views, -1, -1).to(features.dtype)
        if enc.view_mask is not None:
            mask = mask * enc.view_mask.to(mask.dtype)[:, None, None]
        return self.color_head(features, ray_feature, mask, enc.feature_views)

    def density(self, enc: SourceEncoding, points: torch.Tensor, max_points: int = 4096, hull_only: bool = True,
                run: Callable | None = None) -> PointDensity:
        """The density of (N, 3) world points, the network run ``max_points`` at a time: only at the points inside
        the visual hull (``hull_only``; every other point has density 0 by definition) or at all of them.
        ``run(function, *args)`` calls the network on a batch (e.g. with activation checkpointing)."""
        run = run or (lambda function, *args: function(*args))
        proj = self.project(enc, points)
        evaluated = proj.valid.nonzero()[:, 0] if hull_only else torch.arange(len(points), device=points.device)
        parts = [run(self.geometry, enc, points[index], self.subset(proj, index))
                 for index in evaluated.split(max_points)]
        if parts:
            raw_density = _scatter_rows(torch.cat([part.raw_density for part in parts]), evaluated, len(points))
            aux = _scatter_rows(torch.cat([part.aux for part in parts]), evaluated, len(points))
            fused = torch.cat([part.fused for part in parts])
        else:
            raw_density = aux = points.new_zeros(len(points))
            fused = points.new_zeros(0, 2 * self.cfg.view_feature_channels)
        return PointDensity(density=volume_density(raw_density, proj.valid), raw_density=raw_density, aux=aux,
                            valid=proj.valid, evaluated=evaluated, fused=fused, projection=proj)

    def query(self, enc: SourceEncoding, points: torch.Tensor, view_dirs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluate every point (no culling). points, view_dirs (N, 3) -> ``raw_density``, ``aux`` (N,),
        ``rgb`` (N, 3), ``valid`` (N,) bool."""
        proj = self.project(enc, points)
        geometry = self.geometry(enc, points, proj)
        rgb = self.color(enc, points, proj, geometry.fused, view_dirs)
        return {"raw_density": geometry.raw_density, "aux": geometry.aux, "rgb": rgb, "valid": proj.valid}

    @staticmethod
    def subset(proj: Projection, index: torch.Tensor) -> Projection:
        """The projection of the points ``index`` (M,) only."""
        return Projection(proj.points_cam[:, index], proj.xy[:, index], proj.frame_xy[:, index],
                          proj.z_normalised[:, index], proj.valid[index])
