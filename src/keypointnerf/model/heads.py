"""Point-wise networks: the per-view geometry MLP, the fusion MLP, and the image-based-rendering colour head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


INITIAL_RAW_DENSITY = 0.5   # per metre; the bias of the fresh density output (see GeometryMLP)


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation ``weight = v * (g / |v|)`` (row norms), the official layer's
    parameterisation, so that ``weight_g`` / ``weight_v`` map one to one."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        plain = nn.Linear(in_features, out_features)
        self.weight_v = nn.Parameter(plain.weight.detach().clone())
        self.weight_g = nn.Parameter(plain.weight.detach().norm(dim=1, keepdim=True))
        self.bias = nn.Parameter(plain.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, torch._weight_norm(self.weight_v, self.weight_g, 0), self.bias)


def weighted_mean_variance(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """features (V, N, C), weights (V, N, 1) summing to ~1 over V -> (N, 2C) = [mean, variance]."""
    mean = (features * weights).sum(0)
    variance = (weights * (features - mean).pow(2)).sum(0)
    return torch.cat([mean, variance], dim=-1)


class GeometryMLP(nn.Module):
    """Per-view MLP on [spatial encoding, geometry feature] (+ high-res feature half-way) -> per-view feature;
    fused over views by weighted mean and variance; fusion MLP -> (aux, raw density).

    Softplus (beta 100) follows the hidden layers only.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden, hidden_hr = cfg.geo_mlp_hidden, cfg.geo_mlp_highres_hidden
        self.view_in = WeightNormLinear(cfg.spatial_channels + cfg.geo_out_channels, hidden)
        self.view_hidden = WeightNormLinear(hidden, hidden)
        self.view_highres = WeightNormLinear(hidden + cfg.geo_highres_channels, hidden_hr)
        self.view_out = nn.Linear(hidden_hr, cfg.view_feature_channels)
        self.fused_in = WeightNormLinear(2 * cfg.view_feature_channels, cfg.fused_hidden)
        self.fused_hidden = WeightNormLinear(cfg.fused_hidden, cfg.fused_hidden)
        self.fused_out = nn.Linear(cfg.fused_hidden, 2)
        # a fresh network's raw density is nearly the same at every point (about +-0.1); were it negative, relu
        # would give no density, no gradient, and training from scratch would never start (with PyTorch's default
        # bias, 5 of 12 seeds)
        with torch.no_grad():
            self.fused_out.bias[1] = INITIAL_RAW_DENSITY

    @staticmethod
    def _act(x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, beta=100)

    def per_view(self, spatial: torch.Tensor, geo_feature: torch.Tensor, highres_feature: torch.Tensor) -> torch.Tensor:
        """(V, N, S), (V, N, Cg), (V, N, Ch) -> (V, N, view_feature_channels)."""
        x = self._act(self.view_in(torch.cat([spatial, geo_feature], dim=-1)))
        x = self._act(self.view_hidden(x))
        x = self._act(self.view_highres(torch.cat([x, highres_feature], dim=-1)))
        return self.view_out(x)

    def fused(self, fused_feature: torch.Tensor) -> torch.Tensor:
        """(N, 2 * view_feature_channels) -> (N, 2) = [aux, raw density]."""
        x = self._act(self.fused_in(fused_feature))
        x = self._act(self.fused_hidden(x))
        return self.fused_out(x)


class ColorHead(nn.Module):
    """Image-based-rendering colour head (after IBRNet): blends the source pixels' colours.

    Per view it reads ``[rgb (3), texture feature, compressed fused feature]`` and the ray feature
    ``[normalise(d - c_v), <d, c_v>]`` (4), and returns the softmax-blended source RGB.
    """

    def __init__(self, feature_channels: int):
        super().__init__()
        c = feature_channels
        self.sharpness = nn.Parameter(torch.tensor(0.2))
        self.ray_encoder = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Linear(16, c), nn.ELU())
        self.base = nn.Sequential(nn.Linear(3 * c, 64), nn.ELU(), nn.Linear(64, 32), nn.ELU())
        self.visibility1 = nn.Sequential(nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 33), nn.ELU())
        self.visibility2 = nn.Sequential(nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 1), nn.Sigmoid())
        self.out = nn.Sequential(nn.Linear(32 + 1 + 4, 16), nn.ELU(), nn.Linear(16, 8), nn.ELU(), nn.Linear(8, 1))

    def forward(self, features: torch.Tensor, ray_feature: torch.Tensor, mask: torch.Tensor,
                feature_views: torch.Tensor | None = None) -> torch.Tensor:
        """features (V', N, C) with the source RGB first, ray_feature (V, N, 4), mask (V, N, 1) in {0, 1}
        -> (N, 3) blended RGB. ``feature_views`` (V',): the views ``features`` belong to (None: all V); every
        other view must be masked (0) at every point: it then changes nothing but the views' similarity floor.
        """
        similarity = torch.exp(self.sharpness.abs() * (ray_feature[..., 3:] - 1))
        weights = (similarity - similarity.min(dim=0, keepdim=True).values) * mask
        weights = weights / (weights.sum(0, keepdim=True) + 1e-8)
        if feature_views is not None:
            weights, ray_feature, mask = weights[feature_views], ray_feature[feature_views], mask[feature_views]
        rgb = features[..., :3]
        x = features + self.ray_encoder(ray_feature)
        pooled = weighted_mean_variance(x, weights)                                   # (N, 2C)
        x = self.base(torch.cat([pooled.unsqueeze(0).expand(x.shape[0], -1, -1), x], dim=-1))
        residual_logit = self.visibility1(x * weights)
        x = x + residual_logit[..., :-1]
        visibility = torch.sigmoid(residual_logit[..., -1:]) * mask
        visibility = self.visibility2(x * visibility) * mask
        logits = self.out(torch.cat([x, visibility, ray_feature], dim=-1))
        logits = logits.masked_fill(mask == 0, -1e9)
        return (torch.softmax(logits, dim=0) * rgb).sum(0)
