"""``keypointnerf eval``: render the test views of a protocol with a checkpoint and score them.

Writes ``<out>/metrics.json`` (per image, mean, per subject) and, unless ``--no-images``, one PNG per image in
``<out>/images/``: prediction | ground truth | error, side by side.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..configio import to_dict
from ..data.datasets import TestDataset
from ..data.protocol import PROTOCOL_NAMES, load_protocol
from ..data.sample import noisy_keypoints
from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..fileio import atomic_write_text
from ..model.checkpoint import check_keypoint_count, load_model, resolve_checkpoint_path
from ..options import (add_checkpoint_argument, add_downsample_argument, add_sampling_arguments, check_minimums,
                       check_source_views, sampling_option_minimums, sampling_overrides)
from ..paths import check_out_dir
from ..render.renderer import RenderConfig, render_image
from .metrics import box_rectangle, image_metrics, load_lpips, quantize_8bit

METRICS_FILE = "metrics.json"
IMAGES_DIR = "images"
ERROR_GAIN = 4   # the error panel shows |prediction - ground truth| x 4, clipped: small errors stay visible
METRIC_KEYS = ("psnr", "ssim", "ssim_official", "psnr_box", "lpips")
METRICS_NOTE = ("psnr/ssim on the bounding rectangle of the projected box (KeypointNeRF), psnr_box inside the "
                "projected box (Neural Human Performer), ssim data_range 1.0; ssim_official data_range 2.0 "
                "(scikit-image 0.19 behaviour)")
# the names this command gives its images; with --force only files so named are removed from images/
_IMAGE_NAME = re.compile(r".+_\d{4,}_cam\d{2,}\.png")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="render a protocol's test views and compute PSNR / SSIM (/ LPIPS)",
        description="Render every test image of the ZJU-MoCap protocol (or a synthetic set's split.json) from "
                    "its input cameras with a checkpoint and score it against the ground truth. PSNR and SSIM "
                    "are computed on the bounding rectangle of the projected person box (KeypointNeRF's "
                    "evaluation) on 8-bit images; 'ssim' uses data_range 1.0 (correct), 'ssim_official' data_range "
                    "2.0 (what scikit-image 0.19 used for the published tables: compare those with it); "
                    "'psnr_box' is PSNR over the pixels whose ray meets the box (Neural Human Performer). "
                    "Writes OUT/metrics.json and OUT/images/<subject>_<frame>_cam<target>.png = prediction | "
                    f"ground truth | absolute error x{ERROR_GAIN} (clipped to white).")
    add_checkpoint_argument(parser)
    parser.add_argument("--data", required=True, metavar="PATH", help="folder of subjects (or one subject)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (new or empty)")
    parser.add_argument("--split", default="test", choices=("test", "train"),
                        help="test (default) or train: the protocol's training frames seen from its test cameras")
    parser.add_argument("--protocol", default="auto", choices=PROTOCOL_NAMES,
                        help="zju_nhp (the paper's split), split (split.json at PATH), all (every subject "
                             "and frame at PATH), auto = split when split.json exists, else zju_nhp when a "
                             "folder is named after a ZJU-MoCap subject, else all (default)")
    parser.add_argument("--frame-step", type=int, metavar="N",
                        help="use every N-th frame instead of the protocol's step (every 30th for zju_nhp)")
    parser.add_argument("--max-images", type=int, metavar="N", help="stop after the first N images")
    add_downsample_argument(parser, help="image scale read from disk (default 0.5, the protocol's 512x512)")
    add_device_argument(parser)
    parser.add_argument("--force", action="store_true",
                        help=f"write into a non-empty DIR: replaces {METRICS_FILE} and this command's images "
                             f"in {IMAGES_DIR}/ (nothing else is deleted)")
    parser.add_argument("--lpips-weights", metavar="FILE",
                        help="torch state dict with VGG16 'features.*' (torchvision layout) and LPIPS "
                             "'lin0..lin4' (the lpips package's vgg.pth layout); without it LPIPS is skipped")
    parser.add_argument("--keypoint-noise", type=float, default=0.0, metavar="CM",
                        help="add Gaussian noise of this standard deviation (centimetres, per coordinate) to the "
                             "3D keypoints the model sees (robustness to keypoint error; the person's box is "
                             "left as it is)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of --keypoint-noise (the same seed draws the same noise for each subject "
                             "and frame)")
    add_sampling_arguments(parser)
    parser.add_argument("--no-images", action="store_true", help="write metrics.json only")
    parser.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ checks
def _check_options(args) -> None:
    check_minimums(("--frame-step", args.frame_step, 1), ("--max-images", args.max_images, 1),
                   *sampling_option_minimums(args))
    if not 0 < args.downsample <= 1:
        raise UserError(f"--downsample must be in (0, 1], got {args.downsample}")
    if not 0 <= args.keypoint_noise < 100:  # also refuses NaN
        raise UserError(f"--keypoint-noise must be in [0, 100) centimetres, got {args.keypoint_noise}")


def _replace_images(out: Path, staged: Path | None) -> None:
    """Put this run's images (``staged``, None = --no-images) in place of an earlier run's: its PNGs in
    images/ are removed (no stale result stays next to new ones), any other file is left alone."""
    images = out / IMAGES_DIR
    if images.is_dir():
        for path in images.iterdir():
            if path.is_file() and _IMAGE_NAME.fullmatch(path.name):
                path.unlink()
    if staged is None:
        return
    images.mkdir(exist_ok=True)
    for path in staged.iterdir():
        os.replace(path, images / path.name)
    staged.rmdir()


def _check_views(dataset, count: int) -> None:
    """Every target camera must see the person's box (a rectangle of at least the SSIM window): checked for
    all images before the first is rendered, so a bad camera cannot stop an evaluation half-way."""
    checked = set()
    for name, frame, target in dataset.items[:count]:
        subject = dataset.subjects[name]
        if (name, frame) not in checked:
            check_source_views(subject, frame, dataset.cameras[name][0],
                               hint="; the protocol's input cameras cannot serve this frame (nothing was rendered)")
            checked.add((name, frame))
        K, Rt = subject.camera(target)
        height, width = subject.image_size
        top, bottom, left, right = box_rectangle(subject.bounds(frame), K, Rt, height, width)
        if bottom - top < 7 or right - left < 7:
            raise UserError(f"{subject.path}: frame {frame}, camera {target}: the person's box is not in view "
                            f"(rows {top}-{bottom}, columns {left}-{right} of {width}x{height}); nothing was rendered")


def keypoint_noise(keypoints, centimetres: float, seed: int, subject_index: int, frame: int):
    """``keypoints`` (K, 3) metres plus Gaussian noise of ``centimetres`` per coordinate, drawn from (seed,
    subject index, frame): the same draw for every target camera of a frame and on every run."""
    if centimetres == 0:
        return keypoints
    draws = np.random.default_rng([seed, subject_index, frame]).standard_normal(tuple(keypoints.shape))
    return noisy_keypoints(keypoints, torch.from_numpy(draws), centimetres)


# ------------------------------------------------------------------------------------------------ outputs
def comparison_image(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(H, 3W, 3) uint8: prediction | ground truth | ``|pred - gt| * ERROR_GAIN`` clipped, from (H, W, 3) uint8."""
    error = np.abs(pred.astype(np.int16) - gt.astype(np.int16)) * ERROR_GAIN
    return np.concatenate([pred, gt, np.clip(error, 0, 255).astype(np.uint8)], axis=1)


def _means(records: list[dict]) -> dict:
    """Mean of each metric over ``records`` (None when any image lacks it, e.g. LPIPS without weights)."""
    means: dict = {}
    for key in METRIC_KEYS:
        values = [r[key] for r in records]
        means[key] = None if not values or any(v is None for v in values) else float(np.mean(values))
    means["count"] = len(records)
    return means


def _format(means: dict) -> str:
    lpips = "n/a" if means["lpips"] is None else f"{means['lpips']:.4f}"
    return (f"PSNR {means['psnr']:.2f} dB  SSIM {means['ssim']:.4f}  SSIM(official, data_range 2) "
            f"{means['ssim_official']:.4f}  PSNR(box) {means['psnr_box']:.2f} dB  LPIPS {lpips}  "
            f"({means['count']} images)")


# ------------------------------------------------------------------------------------------------ the verb
def run(args) -> int:
    start = time.perf_counter()
    # every check that needs no heavy work comes first: bad input stops before anything is loaded or written
    out = Path(args.out)
    check_out_dir(out, args.force, replaced=f"its {METRICS_FILE} and {IMAGES_DIR}/")
    _check_options(args)
    checkpoint = resolve_checkpoint_path(args.checkpoint)
    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"{data}: data folder not found")
    device = resolve_device(args.device)

    lpips = load_lpips(args.lpips_weights, device) if args.lpips_weights else None
    protocol = load_protocol(args.protocol, data)
    if args.protocol == "auto" and protocol.name == "all":
        print(f"protocol 'all': {data} has no split.json and no ZJU-MoCap subject folder, so every subject and "
              f"frame is tested ({', '.join(protocol.test)}); --frame-step N thins the frames")
    if args.split == "train":
        if not protocol.train:
            raise UserError(f"protocol {protocol.name} has no train subjects")
        # the train frames seen from the protocol's test cameras: the same data set over another frame list
        protocol = dataclasses.replace(protocol, test=dict(protocol.train))
    dataset = TestDataset(data, protocol, downsample=args.downsample, frame_step=args.frame_step)
    count = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    _check_views(dataset, count)
    model, _, info = load_model(checkpoint, device)
    check_keypoint_count(model.cfg.num_keypoints, dataset.num_keypoints, info["path"], data)
    render_cfg = RenderConfig.for_checkpoint(info, **sampling_overrides(args))

    # an earlier run's results stay whole until this one is: images are staged beside them and metrics.json
    # is replaced atomically at the end
    out.mkdir(parents=True, exist_ok=True)
    staged = None if args.no_images else Path(tempfile.mkdtemp(dir=out, prefix=f".{IMAGES_DIR}.", suffix=".partial"))
    try:
        report = _evaluate(args, model, info, dataset, count, render_cfg, lpips, protocol, data, device, staged,
                           start)
        atomic_write_text(out / METRICS_FILE, json.dumps(report, indent=2, allow_nan=False) + "\n")
        _replace_images(out, staged)
    finally:
        if staged is not None and staged.exists():
            shutil.rmtree(staged, ignore_errors=True)

    mean, per_subject = report["mean"], report["per_subject"]
    print(f"mean: {_format(mean)}")
    if len(per_subject) > 1:
        for name, means in per_subject.items():
            print(f"  {name}: {_format(means)}")
    print(f"wrote {out / METRICS_FILE}" + ("" if args.no_images else f" and {len(report['images'])} images in "
                                           f"{out / IMAGES_DIR}") + f" ({report['seconds']:.1f} s)")
    return 0


def _evaluate(args, model, info, dataset, count, render_cfg, lpips, protocol, data, device, staged, start) -> dict:
    """Render and score the first ``count`` items -> the report of metrics.json; comparison images go to
    ``staged`` (None: none)."""
    if lpips is None:
        print("LPIPS skipped: no weights file given (--lpips-weights FILE); metrics.json records lpips as null")

    records: list[dict] = []
    subject_order = list(dataset.subjects)
    encoded_key, encoding = None, None
    progress = tqdm(range(count), desc="eval", unit="image")
    for index in progress:
        subject, frame, target = dataset.items[index]
        sample = dataset[index]
        # items come grouped by (subject, frame): encode the source views once for all target cameras
        if (subject, frame) != encoded_key:
            keypoints = keypoint_noise(sample.views.keypoints, args.keypoint_noise, args.seed,
                                       subject_order.index(subject), frame)
            with torch.inference_mode():
                encoding = model.encode(dataclasses.replace(sample.views, keypoints=keypoints).to(device))
            encoded_key = (subject, frame)
        height, width = sample.tgt_image.shape[-2:]
        rendered = render_image(model, encoding, sample.tgt_K, sample.tgt_Rt, height, width, sample.bounds,
                                render_cfg)
        pred = rendered["rgb"].float().cpu()
        try:
            values = image_metrics(pred, sample.tgt_image, sample.bounds, sample.tgt_K, sample.tgt_Rt, lpips=lpips)
        except ValueError as exc:
            raise UserError(f"{subject} frame {frame} camera {target}: cannot score the image ({exc})") from None
        records.append({"subject": subject, "frame": int(frame), "target_cam": int(target),
                        "source_cams": list(sample.info.src_cams), **values})
        if staged is not None:
            panel = comparison_image(quantize_8bit(pred), quantize_8bit(sample.tgt_image))
            Image.fromarray(panel).save(staged / f"{subject}_{frame:04d}_cam{target:02d}.png")
        progress.set_postfix(psnr=f"{values['psnr']:.2f}")
    progress.close()

    mean = _means(records)
    subjects = list(dict.fromkeys(r["subject"] for r in records))
    per_subject = {s: _means([r for r in records if r["subject"] == s]) for s in subjects}
    report = {
        "checkpoint": info["path"],
        "checkpoint_kind": info["kind"],
        "model_config": to_dict(model.cfg),
        "render_config": to_dict(render_cfg),
        "data": str(data.resolve()),
        "protocol": {
            "name": protocol.name,
            "split": args.split,
            "input_cams": list(protocol.input_cams),     # as the protocol names them
            "target_cams": list(protocol.target_cams),
            # the cameras used per subject (sets with fewer cameras get substitutes; see select_cameras)
            "cameras": {name: {"input": list(src), "target": list(tgt)}
                        for name, (src, tgt) in dataset.cameras.items()},
            "frame_step": args.frame_step,
            "max_images": args.max_images,
            "downsample": args.downsample,
            "keypoint_noise_cm": args.keypoint_noise,
            "keypoint_noise_seed": args.seed,
            "metrics_note": METRICS_NOTE,
        },
        "images": records,
        "mean": mean,
        "per_subject": per_subject,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return report
