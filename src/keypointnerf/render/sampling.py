"""Where along each ray the networks are evaluated: uniform coarse samples and importance (fine) samples."""
from __future__ import annotations

import torch


def coarse_depths(near: torch.Tensor, far: torch.Tensor, count: int, stratified: bool = False,
                  jitter: torch.Tensor | None = None) -> torch.Tensor:
    """(R,), (R,) -> (R, count) distances: ``near + (far - near) * linspace(0, 1, count)``; with ``stratified``
    each sample is jittered uniformly within its interval (training), by ``jitter`` (R, count) in [0, 1) when
    given, else by fresh uniform draws."""
    steps = torch.linspace(0.0, 1.0, count, device=near.device, dtype=near.dtype)
    depths = near[:, None] + (far - near)[:, None] * steps
    if stratified:
        mids = 0.5 * (depths[:, 1:] + depths[:, :-1])
        upper = torch.cat([mids, depths[:, -1:]], dim=-1)
        lower = torch.cat([depths[:, :1], mids], dim=-1)
        depths = lower + (upper - lower) * (torch.rand_like(depths) if jitter is None else jitter)
    return depths


def importance_depths(depths: torch.Tensor, weights: torch.Tensor, count: int,
                      deterministic: bool = True, u: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``count`` distances per ray from the coarse compositing weights (piecewise-linear inverse CDF).

    depths, weights (R, S) -> (R, count). The PDF lives on the S-1 interval midpoints, with the weights of the
    S-2 interior samples (+1e-5); ``deterministic`` uses ``linspace(0, 1, count)`` instead of uniform draws, ``u``
    (R, count) in [0, 1) are given draws.
    """
    bins = 0.5 * (depths[:, 1:] + depths[:, :-1])                                     # (R, S-1)
    pdf = weights[:, 1:-1].detach() + 1e-5
    pdf = pdf / pdf.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], dim=-1)   # (R, S-1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, count, device=depths.device, dtype=depths.dtype).expand(len(depths), count)
    elif u is None:
        u = torch.rand(len(depths), count, device=depths.device, dtype=depths.dtype)
    u = u.contiguous()
    above = torch.searchsorted(cdf, u, right=True)
    below = (above - 1).clamp_min(0)
    above = above.clamp_max(cdf.shape[-1] - 1)
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    bin_below, bin_above = bins.gather(1, below), bins.gather(1, above)
    span = cdf_above - cdf_below
    span = torch.where(span < 1e-5, torch.ones_like(span), span)
    return (bin_below + (u - cdf_below) / span * (bin_above - bin_below)).detach()
