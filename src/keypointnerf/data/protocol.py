"""Train/test protocols: which subjects, frames and cameras a data set is trained and tested on.

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

The torch data sets built on a protocol are in :mod:`.datasets`; reading one frame into a :class:`Sample` is in
:mod:`.loading`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..fileio import read_json_file
from .zju import ZJUSubject, common_keypoint_count, discover_subjects

PROTOCOL_NAMES = ("auto", "zju_nhp", "split", "all")
SPLIT_FILE = "split.json"
DEFAULT_INPUT_CAMS = (0, 7, 15)
DEFAULT_TARGET_CAMS = (3, 5, 10, 12, 18, 20)


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
    split = read_json_file(path, "split file of the 'split' protocol")
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


def open_subjects(data_root: str | Path, names: Sequence[str], **reader_kwargs) -> dict[str, ZJUSubject]:
    """``{protocol name: ZJUSubject}`` for ``names`` under ``data_root`` (reader options passed through).
    Fails early (UserError) on an unreadable first image or subjects whose keypoint counts differ."""
    folders = resolve_subject_folders(data_root, names)
    subjects = {name: ZJUSubject(folder, **reader_kwargs) for name, folder in folders.items()}
    for subject in subjects.values():
        subject.image_size  # reads one image header: a broken set fails here, not mid-run
    common_keypoint_count(subjects)
    return subjects


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
