"""Volume compositing along rays (black background)."""
from __future__ import annotations

import torch

LAST_INTERVAL = 1e10   # the last sample's interval: whatever density remains is absorbed there


def compositing_weights(depths: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """depths (R, S) sorted distances, density (R, S) = valid * relu(raw density) -> weights (R, S).

    ``w_i = (1 - exp(-sigma_i delta_i)) * prod_{j<i} (1 - (1 - exp(-sigma_j delta_j)))``.
    """
    deltas = torch.cat([depths[:, 1:] - depths[:, :-1], torch.full_like(depths[:, :1], LAST_INTERVAL)], dim=-1)
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(1.0 - alpha, dim=-1)
    transmittance = torch.cat([torch.ones_like(alpha[:, :1]), transmittance[:, :-1]], dim=-1)
    return alpha * transmittance


def composite(weights: torch.Tensor, depths: torch.Tensor, values: torch.Tensor | None = None) -> dict:
    """weights, depths (R, S), values (R, S, C) -> ``opacity`` (R,), ``depth`` (R,), ``value`` (R, C)."""
    opacity = weights.sum(-1)
    out = {"opacity": opacity, "depth": (weights * depths).sum(-1) / (opacity + 1e-8)}
    if values is not None:
        out["value"] = (weights.unsqueeze(-1) * values).sum(-2)
    return out
