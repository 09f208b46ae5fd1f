"""Model hyper-parameters as a typed dataclass; ``official`` matches the released ZJU checkpoint exactly."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import UserError

SPATIAL_ENCODINGS = ("rel_z_decay", "abs_xyz", "cam_xyz", "rel_xyz")


# integer settings that may be 0 (every other one counts channels, levels or keypoints: at least 1)
COUNTS_FROM_ZERO = ("tex_upsamplings", "tex_res_blocks", "spatial_frequencies")


@dataclass
class ModelConfig:
    # geometry encoder (stacked hourglass, 1 stack)
    geo_channels: int = 256            # hourglass width
    geo_depth: int = 4                 # hourglass levels (inputs must be divisible by 2^(3+depth) pixels)
    geo_stem_channels: int = 64        # conv1 output
    geo_mid_channels: int = 128        # conv2 / conv3 output
    geo_out_channels: int = 64         # feature map at H/8
    geo_highres_channels: int = 8      # feature map at H/2
    geo_highres_hidden: int = 32       # transposed-conv width of the high-resolution branch
    norm_groups: int = 32              # GroupNorm groups everywhere in the geometry encoder
    # texture encoder (ResNet-style encoder-decoder)
    tex_base_channels: int = 64
    tex_downsamplings: int = 3
    tex_upsamplings: int = 2
    tex_res_blocks: int = 4
    tex_out_channels: int = 8
    # spatial encoding
    spatial_encoding: str = "rel_z_decay"
    spatial_frequencies: int = 3
    spatial_sigma: float = 0.1          # metres: Gaussian damping of rel_z_decay
    num_keypoints: int = 24
    # per-view geometry MLP, fusion MLP, colour head
    geo_mlp_hidden: int = 128           # two layers on [encoding, geometry feature]
    geo_mlp_highres_hidden: int = 120   # after concatenating the high-res feature
    view_feature_channels: int = 64     # per-view output, fused by weighted mean + variance
    fused_hidden: int = 64
    color_compress_channels: int = 24
    # cameras
    znear: float = 2.0                  # metres; normalises depth for validity and view weights
    zfar: float = 5.0
    image_pool: int = 2                 # encoders see the source images average-pooled by this factor

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, least = getattr(self, f.name), 0 if f.name in COUNTS_FROM_ZERO else 1
            if f.type in (int, "int") and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise UserError(f"model.{f.name}={value!r}: must be an integer >= {least}")
        if not 0 < self.spatial_sigma < math.inf:
            raise UserError(f"model.spatial_sigma ({self.spatial_sigma}) must be a positive length in metres")
        if self.spatial_encoding not in SPATIAL_ENCODINGS:
            raise UserError(f"model.spatial_encoding {self.spatial_encoding!r}: expected one of "
                            f"{', '.join(SPATIAL_ENCODINGS)}")
        # ConvBlocks normalise c, c/2 and c/4 channels; the stem and high-res branch their own width
        needs = {"geo_channels": self.geo_channels // 4, "geo_mid_channels": self.geo_mid_channels // 4,
                 "geo_stem_channels": self.geo_stem_channels // 2, "geo_highres_hidden": self.geo_highres_hidden}
        for name, channels in needs.items():
            if channels < self.norm_groups or channels % self.norm_groups:
                raise UserError(f"model.{name}={getattr(self, name)} does not fit GroupNorm with "
                                f"model.norm_groups={self.norm_groups}")
        if self.image_pool < 1:
            raise UserError(f"model.image_pool ({self.image_pool}) must be at least 1 (1 = full resolution)")
        if not 0 < self.znear < math.inf:   # also refuses NaN
            # points at or behind a source camera would project mirrored: the hull is defined in front only
            raise UserError(f"model.znear ({self.znear}) must be positive (metres in front of the cameras)")
        if not self.znear < self.zfar < math.inf:
            raise UserError(f"model.zfar ({self.zfar}) must exceed model.znear ({self.znear})")

    @property
    def size_multiple(self) -> int:
        """Source images need height and width divisible by this many pixels."""
        return self.image_pool * 4 * 2 ** self.geo_depth  # pool, stride-2 conv1, pool, hourglass

    @property
    def spatial_channels(self) -> int:
        """Width of the spatial encoding per view: (1 + 2 * frequencies) per coordinate."""
        per_value = 1 + 2 * self.spatial_frequencies
        return {
            "rel_z_decay": per_value * self.num_keypoints,
            "abs_xyz": per_value * 3,
            "cam_xyz": per_value * 3,
            "rel_xyz": per_value * 3 * self.num_keypoints,
        }[self.spatial_encoding]


MODEL_PRESETS = {
    # the released ZJU-MoCap model (configuration zju.json of the official code)
    "official": {},
    # a CPU-sized model: small encoders, same structure
    "small": dict(geo_channels=64, geo_mid_channels=64, geo_stem_channels=32, geo_out_channels=32,
                  geo_highres_hidden=16, norm_groups=8, tex_base_channels=16, tex_res_blocks=2,
                  geo_mlp_hidden=96, geo_mlp_highres_hidden=64, view_feature_channels=48, fused_hidden=48),
}


def model_preset(name: str, **overrides) -> ModelConfig:
    if name not in MODEL_PRESETS:
        raise UserError(f"unknown model preset {name!r}; known: {', '.join(MODEL_PRESETS)}")
    return dataclasses.replace(ModelConfig(**MODEL_PRESETS[name]), **overrides)
