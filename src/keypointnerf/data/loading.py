"""Reading one frame of a subject into the typed structures of :mod:`.sample`: its source views
(:func:`load_sources`) and a whole :class:`Sample` with one target view (:func:`build_sample`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from .sample import Sample, SampleInfo, SourceViews
from .zju import ZJUSubject


def _hwc_to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def load_sources(subject: ZJUSubject, frame: int, src_cams: Sequence[int]) -> SourceViews:
    """The source views ``src_cams`` of one frame and its keypoints (see :class:`SourceViews`)."""
    src_images, src_masks, src_K, src_Rt = [], [], [], []
    for cam in src_cams:
        image, mask = subject.load_view(frame, cam)
        K, Rt = subject.camera(cam)
        src_images.append(_hwc_to_chw(image))
        src_masks.append(torch.from_numpy(mask.astype(np.float32))[None])
        src_K.append(torch.from_numpy(K))
        src_Rt.append(torch.from_numpy(Rt))
    sizes = {tuple(image.shape[1:]) for image in src_images}
    if len(sizes) > 1:
        listed = ", ".join(f"camera {c} {image.shape[2]}x{image.shape[1]}" for c, image in zip(src_cams, src_images))
        raise UserError(f"{subject.path}: the source views of frame {frame} differ in size ({listed}); the model "
                        f"encodes the views of one frame at one size (see keypointnerf data check)")
    return SourceViews(images=torch.stack(src_images), masks=torch.stack(src_masks), K=torch.stack(src_K),
                       Rt=torch.stack(src_Rt), keypoints=torch.from_numpy(subject.keypoints(frame)))


def build_sample(subject: ZJUSubject, frame: int, src_cams: Sequence[int], tgt_cam: int,
                 pixels: np.ndarray | None = None) -> Sample:
    """The :class:`Sample` of one frame of ``subject``: sources ``src_cams``, target ``tgt_cam`` (whole image, or
    only ``pixels`` (P, 2) (u, v) when given)."""
    tgt_image, tgt_mask = subject.load_view(frame, tgt_cam)
    tgt_K, tgt_Rt = subject.camera(tgt_cam)
    return Sample(
        views=load_sources(subject, frame, src_cams),
        bounds=torch.from_numpy(subject.bounds(frame)),
        tgt_image=_hwc_to_chw(tgt_image),
        tgt_mask=torch.from_numpy(tgt_mask.astype(np.float32))[None],
        tgt_K=torch.from_numpy(tgt_K),
        tgt_Rt=torch.from_numpy(tgt_Rt),
        info=SampleInfo(subject=subject.name, frame=int(frame), src_cams=tuple(int(c) for c in src_cams),
                        tgt_cam=int(tgt_cam)),
        pixels=None if pixels is None else torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.int64)))
