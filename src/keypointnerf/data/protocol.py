"""Train/test protocols and the torch data sets that turn subjects into samples (:class:`Sample`).

Two kinds of protocol:

* ``"zju_nhp"`` — the Neural Human Performer split used by the paper: train subjects 313, 315, 377, 386, 390,
  392, 396 on fixed frame ranges, test subjects 387, 393, 394 every 30th frame of 0-653 / 0-657 / 0-858, input
  cameras 0, 7, 15 and target cameras 3, 5, 10, 12, 18, 20 (6 x 73 = 438 test images).
* ``"split"`` — synthetic sets: ``split.json`` at the data root, ``{"train": [subject folder names], "test":
  [...]}``; every frame of a subject is used; the cameras are the protocol's 0, 7, 15 / 3, 5, ... when the set
  has enough of them.

* ``"all"`` — any other set (own captures, people from another generator): every subject folder found is
  both a train and a test subject, every frame.

``"auto"`` picks ``split`` when the data root holds ``split.json``, else ``zju_nhp`` when a subject folder
is named after a ZJU-MoCap subject (``CoreView_313``, ``313``; the missing ones are then an error), else
``all``.

Frame ranges are *positions* in a subject's frame list (``ZJUSubject.frames``, the order of ``annots.npy``),
Python-slice style (stop exclusive), as the reference implementation indexes them; for subjects 313/315 the
first position holds frame number 1.

Cameras when a set has fewer than the protocol names (any requested input index >= the camera count, e.g. a
synthetic set with 8 cameras): the inputs become ``len(inputs)`` evenly spaced cameras ``round(k * C / n)``
and the targets every other camera. Requested target cameras that do not exist are dropped (a 21-camera
subject keeps all six).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .sample import Sample, SampleInfo, SourceViews
from .zju import ZJUSubject, common_keypoint_count, discover_subjects

PROTOCOL_NAMES = ("auto", "zju_nhp", "split", "all")
SPLIT_FILE = "split.json"
DEFAULT_INPUT_CAMS = (0, 7, 15)
DEFAULT_TARGET_CAMS = (3, 5, 10, 12, 18, 20)
SOURCE_LAYOUTS = ("random", "spread")   # how training draws its source cameras (see TrainDataset)


@dataclass(frozen=True)
class FrameRange:
    """Positions ``start:stop:step`` in a subject's frame list (stop exclusive; None = to the end)."""

    start: int = 0
    stop: int | None = None
    step: int = 1

    def select(self, frames: Sequence[int]) -> list[int]:
        return list(frames[self.start:self.stop:self.step])


@dataclass
class Protocol:
    """Which subjects and frames to train and test on, and which cameras to use at test time."""

    name: str
    train: dict[str, FrameRange]
    test: dict[str, FrameRange]
    input_cams: tuple[int, ...] = DEFAULT_INPUT_CAMS
    target_cams: tuple[int, ...] = DEFAULT_TARGET_CAMS
    data_root: Path | None = field(default=None, compare=False)


def zju_nhp_protocol() -> Protocol:
    """The Neural Human Performer split of ZJU-MoCap (the paper's)."""
    return Protocol(
        name="zju_nhp",
        train={
            "CoreView_313": FrameRange(0, 60, 1),
            "CoreView_315": FrameRange(0, 400, 6),
            "CoreView_377": FrameRange(0, 300, 30),
            "CoreView_386": FrameRange(0, 300, 6),
            "CoreView_390": FrameRange(700, 1000, 6),
            "CoreView_392": FrameRange(0, 300, 6),
            "CoreView_396": FrameRange(810, 1080, 5),
        },
        test={
            "CoreView_387": FrameRange(0, 654, 30),
            "CoreView_393": FrameRange(0, 658, 30),
            "CoreView_394": FrameRange(0, 859, 30),
        },
    )


def split_file_protocol(data_root: str | Path, test_frame_step: int = 1) -> Protocol:
    """The protocol of a synthetic set from ``<data_root>/split.json`` (``{"train": [...], "test": [...]}``,
    subject folder names); all frames of each subject (every ``test_frame_step``-th for testing)."""
    path = Path(data_root) / SPLIT_FILE
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing (the 'split' protocol needs it)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    if not isinstance(split, dict):
        raise UserError(f"{path}: expected an object with 'train' and 'test' lists")
    parts = {}
    for key in ("train", "test"):
        names = split.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"{path}: '{key}' must be a list of subject folder names")
        parts[key] = names
    if not parts["train"] and not parts["test"]:
        raise UserError(f"{path}: both 'train' and 'test' are empty")
    return Protocol(name="split", train={n: FrameRange() for n in parts["train"]},
                    test={n: FrameRange(0, None, test_frame_step) for n in parts["test"]},
                    data_root=Path(data_root))


def all_subjects_protocol(data_root: str | Path) -> Protocol:
    """Every subject folder under ``data_root`` (or ``data_root`` itself) for training and testing, all frames."""
    names = [p.name for p in discover_subjects(data_root)]
    return Protocol(name="all", train={n: FrameRange() for n in names}, test={n: FrameRange() for n in names},
                    data_root=Path(data_root))


def _holds_zju_subjects(data_root: str | Path) -> bool:
    """Whether a subject folder is named exactly after a ZJU-MoCap protocol subject (``CoreView_313`` or ``313``;
    not ``person_313``)."""
    protocol = zju_nhp_protocol()
    names = {*protocol.train, *protocol.test}
    names |= {_subject_id(name) for name in names}
    return any(p.name in names for p in discover_subjects(data_root))


def load_protocol(name: str, data_root: str | Path) -> Protocol:
    """``"zju_nhp"``, ``"split"`` (reads ``split.json``), ``"all"`` or ``"auto"``: ``split`` when split.json
    exists, else ``zju_nhp`` when a folder is named after a ZJU-MoCap subject, else ``all``."""
    if name == "auto":
        if (Path(data_root) / SPLIT_FILE).is_file():
            name = "split"
        else:
            name = "zju_nhp" if _holds_zju_subjects(data_root) else "all"
    if name == "all":
        return all_subjects_protocol(data_root)
    if name == "zju_nhp":
        protocol = zju_nhp_protocol()
        protocol.data_root = Path(data_root)
        return protocol
    if name == "split":
        return split_file_protocol(data_root)
    raise UserError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")


def _subject_id(name: str) -> str | None:
    match = re.search(r"(\d+)$", name)
    return match.group(1) if match else None


def resolve_subject_folders(data_root: str | Path, names: Sequence[str]) -> dict[str, Path]:
    """Map protocol subject names to folders under ``data_root``: exact folder name, else the same trailing
    number (``CoreView_313`` matches a folder ``313``). ``data_root`` may itself be the one subject.
    Raises UserError listing names without a folder."""
    folders = discover_subjects(data_root)
    by_name = {p.name: p for p in folders}
    by_id: dict[str, Path] = {}
    for p in folders:
        sid = _subject_id(p.name)
        if sid is not None:
            by_id.setdefault(sid, p)
    resolved, missing = {}, []
    for name in names:
        folder = by_name.get(name) or by_id.get(_subject_id(name) or "\0")
        if folder is None:
            missing.append(name)
        else:
            resolved[name] = folder
    if missing:
        raise UserError(f"{data_root}: protocol subjects not found: {', '.join(missing)} "
                        f"(found: {', '.join(sorted(by_name)) or 'none'})")
    return resolved


def select_cameras(num_cameras: int, input_cams: Sequence[int] = DEFAULT_INPUT_CAMS,
                   target_cams: Sequence[int] = DEFAULT_TARGET_CAMS) -> tuple[list[int], list[int]]:
    """(source cameras, target cameras) for a subject with ``num_cameras`` cameras.

    The requested inputs when they all exist, else ``len(input_cams)`` evenly spaced ones (``round(k*C/n)``);
    the requested targets that exist and are not inputs, else (none left, or inputs replaced) every non-input
    camera.
    """
    n = len(input_cams)
    if n == 0 or n >= num_cameras:
        raise UserError(f"{n} input cameras need at least {n + 1} cameras; the subject has {num_cameras}")
    if all(0 <= c < num_cameras for c in input_cams) and len(set(input_cams)) == n:
        sources = list(input_cams)
        targets = [c for c in target_cams if 0 <= c < num_cameras and c not in sources]
    else:
        sources = sorted({int(round(k * num_cameras / n)) % num_cameras for k in range(n)})
        targets = []
    if not targets:
        targets = [c for c in range(num_cameras) if c not in sources]
    return sources, targets


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


def open_subjects(data_root: str | Path, names: Sequence[str], **reader_kwargs) -> dict[str, ZJUSubject]:
    """``{protocol name: ZJUSubject}`` for ``names`` under ``data_root`` (reader options passed through).
    Fails early (UserError) on an unreadable first image or subjects whose keypoint counts differ."""
    folders = resolve_subject_folders(data_root, names)
    subjects = {name: ZJUSubject(folder, **reader_kwargs) for name, folder in folders.items()}
    for subject in subjects.values():
        subject.image_size  # reads one image header: a broken set fails here, not mid-run
    common_keypoint_count(subjects)
    return subjects


def _open_split(data_root: str | Path, protocol: Protocol | str, split: str, subjects: Sequence[str] | None,
                **reader_kwargs) -> tuple[Protocol, dict[str, ZJUSubject]]:
    """The protocol (given or loaded by name) and the opened subjects of its ``split`` ("train" or "test"):
    ``subjects`` (protocol names of that split) or all of them."""
    protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol, data_root)
    part = getattr(protocol, split)
    names = list(subjects) if subjects is not None else list(part)
    unknown = [n for n in names if n not in part]
    if unknown:
        raise UserError(f"not {split} subjects of protocol {protocol.name}: {', '.join(unknown)}")
    if not names:
        raise UserError(f"protocol {protocol.name} has no {split} subjects")
    return protocol, open_subjects(data_root, names, **reader_kwargs)


class TrainDataset(Dataset):
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
        self.source_layout = source_layout
        self.protocol, self.subjects = _open_split(data_root, protocol, "train", subjects, downsample=downsample,
                                                   cache_mb=cache_mb)
        self.num_keypoints = common_keypoint_count(self.subjects)
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
            frames = self.protocol.train[name].select(subject.frames)
            if not frames:
                raise UserError(f"{subject.path}: the protocol's frame range {self.protocol.train[name]} selects "
                                f"no frames ({len(subject.frames)} available)")
            self.items.extend((name, f) for f in frames)

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


class TestDataset(Dataset):
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
        self.protocol, self.subjects = _open_split(data_root, protocol, "test", subjects, downsample=downsample,
                                                   cache_mb=cache_mb)
        self.num_keypoints = common_keypoint_count(self.subjects)
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
            frames = frame_range.select(subject.frames)
            if not frames:
                raise UserError(f"{subject.path}: the protocol's frame range {frame_range} selects no frames "
                                f"({len(subject.frames)} available)")
            self.items.extend((name, f, t) for f in frames for t in tgts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        name, frame, target = self.items[index]
        subject = self.subjects[name]
        return build_sample(subject, frame, self.cameras[name][0], target)
