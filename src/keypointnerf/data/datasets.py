"""The torch data sets of a protocol's subjects: :class:`TrainDataset` (random source cameras and a target
patch per frame) and :class:`TestDataset` (the protocol's fixed cameras, whole target images); both hand out
:class:`Sample`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import UserError
from .loading import build_sample
from .protocol import FrameRange, Protocol, load_protocol, open_subjects, select_cameras
from .sample import Sample
from .zju import ZJUSubject, common_keypoint_count

SOURCE_LAYOUTS = ("random", "spread")   # how training draws its source cameras (see TrainDataset)


class _ProtocolDataset(Dataset):
    """What both data sets do first: load the protocol (given or by name), open the subjects of its ``split``
    ("train" or "test"; ``subjects``: protocol names of that split, None = all of them) and check them; K is
    ``num_keypoints``, the keypoints per frame every subject has (subjects with different counts are refused)."""

    def __init__(self, split: str, data_root: str | Path, protocol: Protocol | str,
                 subjects: Sequence[str] | None, **reader_kwargs):
        self.protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol, data_root)
        part = getattr(self.protocol, split)
        names = list(subjects) if subjects is not None else list(part)
        unknown = [n for n in names if n not in part]
        if unknown:
            raise UserError(f"not {split} subjects of protocol {self.protocol.name}: {', '.join(unknown)}")
        if not names:
            raise UserError(f"protocol {self.protocol.name} has no {split} subjects")
        self.subjects: dict[str, ZJUSubject] = open_subjects(data_root, names, **reader_kwargs)
        self.num_keypoints = common_keypoint_count(self.subjects)

    @staticmethod
    def _frames(subject: ZJUSubject, frame_range: FrameRange) -> list[int]:
        """The frames ``frame_range`` selects of ``subject``; UserError naming the subject when none."""
        frames = frame_range.select(subject.frames)
        if not frames:
            raise UserError(f"{subject.path}: the protocol's frame range {frame_range} selects no frames "
                            f"({len(subject.frames)} available)")
        return frames


def patch_pixels(mask: np.ndarray, patch_size: int, rng: np.random.Generator) -> np.ndarray | None:
    """(P*P, 2) int64 (u, v) pixels of a ``patch_size`` square centred on a random foreground pixel of
    ``mask`` (H, W), shifted to stay inside the image; row-major (v outer). None when the mask is empty."""
    height, width = mask.shape
    if patch_size > height or patch_size > width:
        raise UserError(f"patch size {patch_size} exceeds the image size {width}x{height}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    pick = rng.integers(rows.size)
    top = int(np.clip(rows[pick] - patch_size // 2, 0, height - patch_size))
    left = int(np.clip(cols[pick] - patch_size // 2, 0, width - patch_size))
    vv, uu = np.meshgrid(np.arange(top, top + patch_size), np.arange(left, left + patch_size), indexing="ij")
    return np.stack([uu.reshape(-1), vv.reshape(-1)], axis=1).astype(np.int64)


class TrainDataset(_ProtocolDataset):
    """Training samples: one item per (train subject, frame) of the protocol.

    Each item draws ``num_sources`` distinct source cameras (``source_layout``: ``"random"``, any of the allowed
    cameras, as the official recipe; ``"spread"``, evenly spaced positions in the list of allowed cameras from a
    random start, as the protocol's test inputs 0, 7, 15 of 23 are: for lists in ring order, as ZJU-MoCap's and
    ``synth``'s camera numbers are) and a target among the other allowed cameras of the same frame, and a
    ``patch_size`` x ``patch_size`` patch of the target centred on a random foreground pixel (``pixels``,
    (P*P, 2) int64 (u, v)); the full target image is in ``tgt_image``.

    Randomness: with ``seed`` None each draw uses fresh entropy; with an int seed an item is a deterministic
    function of (seed, epoch, index, how often this process has drawn that index), so a single-process run is
    reproducible and still varies across epochs; with non-persistent loader workers call
    :meth:`set_epoch` each epoch to vary the draws.

    Args:
        data_root: a subject folder or a folder of subjects.
        protocol: a :class:`Protocol` or a name (``auto``, ``zju_nhp``, ``split``, ``all``).
        cameras: the cameras allowed as sources/targets (None = all of each subject's cameras).
        subjects: restrict to these protocol subject names (None = all train subjects of the protocol).
        downsample, cache_mb: passed to :class:`ZJUSubject`.

    ``num_keypoints`` is K, the keypoints per frame every subject has (subjects with different counts are
    refused).
    """

    def __init__(self, data_root: str | Path, protocol: Protocol | str = "auto", downsample: float = 0.5,
                 patch_size: int = 64, num_sources: int = 3, cameras: Sequence[int] | None = None,
                 subjects: Sequence[str] | None = None, seed: int | None = None, cache_mb: float = 1024,
                 source_layout: str = "random"):
        if source_layout not in SOURCE_LAYOUTS:
            raise UserError(f"data.source_layout {source_layout!r}: expected one of {', '.join(SOURCE_LAYOUTS)}")
        super().__init__("train", data_root, protocol, subjects, downsample=downsample, cache_mb=cache_mb)
        self.source_layout = source_layout
        self.patch_size = int(patch_size)
        self.num_sources = int(num_sources)
        self.seed = seed
        self.epoch = 0
        self._draws: dict[int, int] = {}
        self.cameras: dict[str, list[int]] = {}
        self.items: list[tuple[str, int]] = []
        for name, subject in self.subjects.items():
            allowed = list(range(subject.num_cameras)) if cameras is None else \
                [c for c in cameras if 0 <= c < subject.num_cameras]
            if len(allowed) < self.num_sources + 1:
                raise UserError(f"{subject.path}: {len(allowed)} usable cameras; training needs "
                                f"{self.num_sources} sources and a target")
            self.cameras[name] = allowed
            self.items.extend((name, f) for f in self._frames(subject, self.protocol.train[name]))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        visit = self._draws.get(index, 0)
        self._draws[index] = visit + 1
        return np.random.default_rng([int(self.seed), self.epoch, index, visit])

    def __getitem__(self, index: int) -> Sample:
        name, frame = self.items[index]
        subject = self.subjects[name]
        rng = self._rng(index)
        allowed = self.cameras[name]
        order = [allowed[i] for i in rng.permutation(len(allowed))]
        if self.source_layout == "spread":
            start = int(rng.integers(len(allowed)))
            sources = sorted(allowed[(start + round(k * len(allowed) / self.num_sources)) % len(allowed)]
                             for k in range(self.num_sources))
        else:
            sources = sorted(order[:self.num_sources])
        for target in (c for c in order if c not in sources):  # an empty target mask has nothing to teach
            _, mask = subject.load_view(frame, target)
            pixels = patch_pixels(mask, self.patch_size, rng)
            if pixels is not None:
                return build_sample(subject, frame, sources, target, pixels)
        raise UserError(f"{subject.path}: frame {frame}: every candidate target camera has an empty mask")


class TestDataset(_ProtocolDataset):
    """Evaluation samples: one item per (test subject, frame, target camera), full target image.

    Inputs are the protocol's input cameras (0, 7, 15) and targets each existing protocol target camera
    (3, 5, 10, 12, 18, 20); see :func:`select_cameras` for sets with fewer cameras. ``frame_step`` overrides
    the protocol's step (every 30th frame for ``zju_nhp``); ``input_cams`` / ``target_cams`` override the
    protocol's cameras. ``num_keypoints``: K of every subject, as for :class:`TrainDataset`.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, data_root: str | Path, protocol: Protocol | str = "auto", downsample: float = 0.5,
                 input_cams: Sequence[int] | None = None, target_cams: Sequence[int] | None = None,
                 frame_step: int | None = None, subjects: Sequence[str] | None = None, cache_mb: float = 1024):
        if frame_step is not None and frame_step < 1:
            raise UserError(f"frame step must be >= 1, got {frame_step}")
        super().__init__("test", data_root, protocol, subjects, downsample=downsample, cache_mb=cache_mb)
        inputs = tuple(input_cams) if input_cams is not None else self.protocol.input_cams
        targets = tuple(target_cams) if target_cams is not None else self.protocol.target_cams
        self.cameras: dict[str, tuple[list[int], list[int]]] = {}
        self.items: list[tuple[str, int, int]] = []
        for name, subject in self.subjects.items():
            sources, tgts = select_cameras(subject.num_cameras, inputs, targets)
            self.cameras[name] = (sources, tgts)
            frame_range = self.protocol.test[name]
            if frame_step is not None:
                frame_range = FrameRange(frame_range.start, frame_range.stop, frame_step)
            self.items.extend((name, f, t) for f in self._frames(subject, frame_range) for t in tgts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        name, frame, target = self.items[index]
        subject = self.subjects[name]
        return build_sample(subject, frame, self.cameras[name][0], target)
