"""Image encoders, run once per set of source views.

- ``GeometryEncoder``: a one-stack hourglass (GroupNorm, pre-activation ConvBlocks) giving a coarse feature map
  at 1/8 of the source resolution and a high-resolution map at 1/2.
- ``TextureEncoder``: a ResNet-style encoder-decoder (replication padding, InstanceNorm) giving a map at 1/4.

Both take the source images already pooled and normalised to [-1, 1] (see ``KeypointNeRF.encode``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Pre-activation residual block: three 3x3 convs of out/2, out/4, out/4 channels, concatenated.

    Each conv is preceded by GroupNorm + ReLU; the shortcut is GroupNorm + ReLU + 1x1 conv when the channel
    count changes, the identity otherwise. (N, in, h, w) -> (N, out, h, w).
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        half, quarter = out_channels // 2, out_channels // 4
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = _conv3x3(in_channels, half)
        self.norm2 = nn.GroupNorm(groups, half)
        self.conv2 = _conv3x3(half, quarter)
        self.norm3 = nn.GroupNorm(groups, quarter)
        self.conv3 = _conv3x3(quarter, quarter)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.GroupNorm(groups, in_channels), nn.ReLU(),
                                          nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.norm1(x)))
        out2 = self.conv2(F.relu(self.norm2(out1)))
        out3 = self.conv3(F.relu(self.norm3(out2)))
        residual = x if self.shortcut is None else self.shortcut(x)
        return torch.cat([out1, out2, out3], dim=1) + residual


class HourglassLevel(nn.Module):
    """One level: a full-resolution branch plus (pool -> block -> deeper level -> block -> bicubic x2)."""

    def __init__(self, depth: int, channels: int, groups: int):
        super().__init__()
        self.skip = ConvBlock(channels, channels, groups)
        self.down = ConvBlock(channels, channels, groups)
        self.inner = HourglassLevel(depth - 1, channels, groups) if depth > 1 else ConvBlock(channels, channels, groups)
        self.up = ConvBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.avg_pool2d(x, 2, stride=2))))
        return self.skip(x) + F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=True)


class GeometryEncoder(nn.Module):
    """(N, 3, h, w) pooled image in [-1, 1] -> (coarse (N, geo_out, h/4, w/4), high-res (N, highres, h, w)).

    Relative to the full source image (h = H / 2) the maps are at H/8 and H/2.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g = cfg.norm_groups
        self.conv1 = nn.Conv2d(3, cfg.geo_stem_channels, 7, stride=2, padding=3)
        self.norm1 = nn.GroupNorm(g, cfg.geo_stem_channels)
        self.block1 = ConvBlock(cfg.geo_stem_channels, cfg.geo_mid_channels, g)
        self.highres_up = nn.ConvTranspose2d(cfg.geo_mid_channels, cfg.geo_highres_hidden, 3, stride=2, padding=1,
                                             output_padding=1, bias=False)
        self.highres_norm = nn.GroupNorm(g, cfg.geo_highres_hidden)
        self.highres_out = nn.Conv2d(cfg.geo_highres_hidden, cfg.geo_highres_channels, 5, padding=2)
        self.block2 = ConvBlock(cfg.geo_mid_channels, cfg.geo_mid_channels, g)
        self.block3 = ConvBlock(cfg.geo_mid_channels, cfg.geo_channels, g)
        self.hourglass = HourglassLevel(cfg.geo_depth, cfg.geo_channels, g)
        self.head_block = ConvBlock(cfg.geo_channels, cfg.geo_channels, g)
        self.head_conv = nn.Conv2d(cfg.geo_channels, cfg.geo_channels, 1)
        self.head_norm = nn.GroupNorm(g, cfg.geo_channels)
        self.out = nn.Conv2d(cfg.geo_channels, cfg.geo_out_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.block1(F.relu(self.norm1(self.conv1(x))))
        highres = self.highres_out(F.relu(self.highres_norm(self.highres_up(x))))
        x = self.block3(self.block2(F.avg_pool2d(x, 2, stride=2)))
        x = self.head_block(self.hourglass(x))
        x = F.relu(self.head_norm(self.head_conv(x)))
        return self.out(x), highres


class ResidualBlock(nn.Module):
    """x + (pad -> 3x3 conv -> InstanceNorm -> ReLU -> pad -> 3x3 conv -> InstanceNorm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReplicationPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReplicationPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TextureEncoder(nn.Module):
    """(N, 3, h, w) pooled image in [-1, 1] -> (N, tex_out, h * 2^(up - down), ...), i.e. H/4 for the official
    3 downsamplings and 2 upsamplings of the h = H/2 input."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.tex_base_channels
        layers: list[nn.Module] = [nn.ReplicationPad2d(3), nn.Conv2d(3, c, 7), nn.InstanceNorm2d(c), nn.ReLU()]
        for _ in range(cfg.tex_downsamplings):
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU()]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(cfg.tex_res_blocks)]
        for _ in range(cfg.tex_upsamplings):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ReplicationPad2d(3), nn.Conv2d(c, cfg.tex_out_channels, 7)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
