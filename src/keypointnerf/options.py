"""What several verbs share: their common options (checkpoint, subject, frame, source cameras, sampling) and the
checks and loading behind them (open a subject, check a frame and cameras, load a model, encode source views).

Every check raises :class:`UserError` naming the option or file and the problem, before any heavy work.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch

from .data.loading import load_sources
from .data.protocol import DEFAULT_INPUT_CAMS
from .data.validate import view_findings
from .data.zju import ZJUSubject, image_file_size, read_mask_file
from .errors import UserError
from .model.checkpoint import check_keypoint_count, load_model
from .model.keypointnerf import KeypointNeRF, SourceEncoding

#: the default --sources: the protocol's input cameras
DEFAULT_SOURCES = ",".join(map(str, DEFAULT_INPUT_CAMS))
DEFAULT_DOWNSAMPLE = 0.5


# ----------------------------------------------------------------------------------------------- options
def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="model file, official last.ckpt, training checkpoint, or a training run folder")


def add_downsample_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument("--downsample", type=float, default=DEFAULT_DOWNSAMPLE,
                        help=help or "image scale read from disk (default 0.5: ZJU-MoCap's 1024 px -> 512 px)")


def add_subject_arguments(parser: argparse.ArgumentParser, frame_help: str = "frame number") -> None:
    """``--data SUBJECT_DIR``, ``--frame``, ``--sources`` and ``--downsample`` of the verbs that show one frame."""
    parser.add_argument("--data", required=True, metavar="SUBJECT_DIR", help="one subject folder (holding annots.npy)")
    parser.add_argument("--frame", type=int, metavar="F",
                        help=f"{frame_help} (the i of joints3d/<i>.npy; default: the subject's first frame)")
    parser.add_argument("--sources", default=DEFAULT_SOURCES, metavar="C,C,...",
                        help=f"source camera indices (0-based, comma-separated; default {DEFAULT_SOURCES})")
    add_downsample_argument(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--coarse-samples``, ``--fine-samples`` and ``--supersample`` (see :func:`sampling_overrides`)."""
    parser.add_argument("--coarse-samples", type=int, metavar="N",
                        help="coarse samples per ray (default: the checkpoint's setting)")
    parser.add_argument("--fine-samples", type=int, metavar="N",
                        help="fine samples per ray (default: the checkpoint's setting)")
    parser.add_argument("--supersample", type=int, metavar="N",
                        help="N x N rays per pixel, averaged: anti-aliased edges for N^2 times the work "
                             "(default 1)")


def check_minimums(*checks: tuple[str, int | None, int]) -> None:
    """UserError for the first (option, value, minimum) whose given value is below its minimum."""
    for name, value, low in checks:
        if value is not None and value < low:
            raise UserError(f"{name} must be >= {low}, got {value}")


def sampling_option_minimums(args) -> tuple:
    """(option, value, minimum) of the sampling options, for :func:`check_minimums`."""
    return (("--coarse-samples", args.coarse_samples, 1), ("--fine-samples", args.fine_samples, 0),
            ("--supersample", args.supersample, 1))


def sampling_overrides(args) -> dict:
    """The sampling options given on the command line, as RenderConfig fields."""
    return {k: v for k, v in (("coarse_samples", args.coarse_samples), ("fine_samples", args.fine_samples),
                              ("supersample", args.supersample)) if v is not None}


# ----------------------------------------------------------------------------------------------- checks
def parse_cameras(text: str | None, option: str) -> list[int]:
    """``"0,7,15"`` -> [0, 7, 15]; UserError for an empty list, a non-integer or a duplicate."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise UserError(f"{option} {text!r}: give at least one camera index (comma-separated, e.g. 0,7,15)")
    try:
        cams = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated camera indices such as 0,7,15") from None
    duplicates = sorted({c for c in cams if cams.count(c) > 1})
    if duplicates:
        raise UserError(f"{option} {text!r}: camera {', '.join(map(str, duplicates))} is listed more than once")
    return cams


def _describe_numbers(values: list[int]) -> str:
    if not values:
        return "none"
    if len(values) <= 12:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[:5]))}, ..., {', '.join(map(str, values[-3:]))}"


def open_subject(data: str | Path, downsample: float) -> ZJUSubject:
    """The ZJUSubject of ``--data`` (its images are read later, by :func:`load_checked_model`)."""
    if not 0 < downsample <= 1:
        raise UserError(f"--downsample must be in (0, 1], got {downsample}")
    path = Path(data)
    if not path.exists():
        raise UserError(f"{path}: subject folder not found")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (give a subject folder holding annots.npy)")
    if not (path / "annots.npy").is_file():
        inside = sorted(p.name for p in path.iterdir() if p.is_dir() and (p / "annots.npy").is_file())
        hint = f"; subjects inside: {', '.join(inside[:10])}" if inside else ""
        raise UserError(f"{path}: no annots.npy here: not a subject folder{hint}")
    return ZJUSubject(path, downsample=downsample)


def check_frame(subject: ZJUSubject, frame: int | None) -> int:
    """``frame`` (default: the first) after checking the subject lists it and has its keypoints and vertices."""
    if frame is None:
        frame = subject.frames[0]
    if frame not in subject.frames:
        raise UserError(f"{subject.path}: frame {frame} does not exist; the subject has {len(subject.frames)} "
                        f"frame(s): {_describe_numbers(sorted(subject.frames))}")
    subject.keypoints(frame)   # named errors for missing or malformed files before any heavy work
    subject.bounds(frame)
    return int(frame)


def check_cameras(subject: ZJUSubject, cams: list[int], option: str) -> None:
    missing = [c for c in cams if not 0 <= c < subject.num_cameras]
    if missing:
        raise UserError(f"{option}: camera {', '.join(map(str, missing))} does not exist; {subject.path} has "
                        f"{subject.num_cameras} cameras, 0 to {subject.num_cameras - 1}")


def check_cameras_see_person(subject: ZJUSubject, frame: int, cams: Sequence[int], role: str = "source",
                             hint: str = "") -> None:
    """Refuse, naming camera and file, a camera of ``cams`` that faces away from the person of ``frame`` or sees
    none of its keypoints (what would render blank or broken pictures)."""
    keypoints = subject.keypoints(frame)
    for cam in cams:
        height, width = image_file_size(subject.image_path(frame, cam))
        K, Rt = subject.camera(cam)
        scale = subject.downsample
        problem, _ = view_findings(keypoints, K, Rt, int(height * scale), int(width * scale))
        if problem:
            raise UserError(f"{subject.path / 'annots.npy'}: {role} camera {cam} ({subject.camera_folder(cam)}) "
                            f"{problem} in frame {frame} ({subject.keypoints_path(frame)}){hint}")


def check_source_views(subject: ZJUSubject, frame: int, cams: Sequence[int], hint: str = "") -> None:
    """Refuse source views that would give a blank or broken picture, before any work: a camera that faces
    away or does not see the person, an empty mask, views of different sizes. Errors name camera and file;
    ``hint`` (e.g. "; choose other --sources") ends them."""
    check_cameras_see_person(subject, frame, cams, "source", hint)
    sizes = {}
    for cam in cams:
        sizes[cam] = image_file_size(subject.image_path(frame, cam))
        masks = subject.mask_paths(frame, cam)
        if masks and not any(read_mask_file(path).any() for path in masks):
            raise UserError(f"{masks[0]}: the mask of source camera {cam} ({subject.camera_folder(cam)}), frame "
                            f"{frame}, is empty (no person in the view){hint}")
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"camera {c} {w}x{h} ({subject.image_path(frame, c).name})"
                           for c, (h, w) in sizes.items())
        raise UserError(f"{subject.path}: the source views of frame {frame} differ in size ({listed}); the model "
                        f"encodes the views of one frame at one size{hint}")


# ----------------------------------------------------------------------------------------------- loading
def load_checked_model(checkpoint: str | Path, device: torch.device, subject: ZJUSubject
                       ) -> tuple[KeypointNeRF, dict]:
    """Load the model, check it takes the subject's keypoint count and read the subject's image size (an
    unreadable image fails before any work) -> (model, info)."""
    model, _, info = load_model(checkpoint, device)
    check_keypoint_count(model.cfg.num_keypoints, subject.num_keypoints, info["path"], subject.path)
    subject.image_size
    return model, info


def encode_sources(model: KeypointNeRF, subject: ZJUSubject, frame: int, sources: list[int], device: torch.device
                   ) -> tuple[SourceEncoding, list, torch.Tensor, torch.Tensor]:
    """Read the source views and encode them once -> (SourceEncoding, source images [(H, W, 3) float],
    keypoints (K, 3) tensor, bounds (2, 3) tensor)."""
    views = load_sources(subject, frame, sources)
    with torch.inference_mode():
        enc = model.encode(views.to(device))
    images = [image.permute(1, 2, 0).numpy() for image in views.images]
    return enc, images, views.keypoints, torch.from_numpy(subject.bounds(frame))
