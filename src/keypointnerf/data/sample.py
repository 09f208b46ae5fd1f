"""The typed structures every data set hands to the model, training, evaluation and rendering.

Tensors are float32 unless said otherwise, one scene, no batch dimension (the training loader's collate hands
over the one sample of a batch as it is). Cameras are OpenCV pinhole: ``x_cam = R x + t`` (world metres), pixel
``(u, v) ~ K x_cam`` with u the column and v the row. Source images and masks of one sample share one size
H x W (any size: the model pads them for its encoders); the target may have another size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SourceViews:
    """The V calibrated source views of one frame and its keypoints: what ``KeypointNeRF.encode`` takes."""

    images: torch.Tensor      # (V, 3, H, W) source RGB in [0, 1], background set to 0 by the mask
    masks: torch.Tensor       # (V, 1, H, W) foreground masks, 0/1
    K: torch.Tensor           # (V, 3, 3) intrinsics in pixels (after any downsampling)
    Rt: torch.Tensor          # (V, 3, 4) world-to-camera [R|t], t in metres
    keypoints: torch.Tensor   # (K, 3) 3D keypoints, world metres (by default K = 24 body joints, SMPL order)

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "SourceViews":
        return SourceViews(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class SampleInfo:
    """Where a sample comes from."""

    subject: str
    frame: int
    src_cams: tuple[int, ...]
    tgt_cam: int


@dataclass(frozen=True)
class Sample:
    """One training or test item: source views, the person's box and one target view."""

    views: SourceViews
    bounds: torch.Tensor      # (2, 3) axis-aligned person box [min, max], world metres (z widened by 0.05 m)
    tgt_image: torch.Tensor   # (3, H', W') target image (ground truth), background 0
    tgt_mask: torch.Tensor    # (1, H', W') target foreground mask, 0/1
    tgt_K: torch.Tensor       # (3, 3) the camera to render
    tgt_Rt: torch.Tensor      # (3, 4)
    info: SampleInfo
    # (P, 2) int64 the target pixels (u, v) to render (training patches); None = the whole image
    pixels: torch.Tensor | None = field(default=None)

    def to(self, device) -> "Sample":
        return dataclasses.replace(
            self, views=self.views.to(device), bounds=self.bounds.to(device), tgt_image=self.tgt_image.to(device),
            tgt_mask=self.tgt_mask.to(device), tgt_K=self.tgt_K.to(device), tgt_Rt=self.tgt_Rt.to(device),
            pixels=None if self.pixels is None else self.pixels.to(device))


def noisy_keypoints(keypoints: torch.Tensor, standard_normal: torch.Tensor, centimetres: float) -> torch.Tensor:
    """``keypoints`` (..., K, 3) metres plus Gaussian noise of ``centimetres`` standard deviation per coordinate,
    from ``standard_normal``: N(0, 1) draws of the same shape (float64, any generator: training's torch
    generator, evaluation's per-frame numpy seed), in the keypoints' dtype and device."""
    noise = standard_normal * (centimetres / 100.0)
    return keypoints + noise.to(device=keypoints.device, dtype=keypoints.dtype)
