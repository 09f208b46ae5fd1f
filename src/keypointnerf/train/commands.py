"""``keypointnerf train``: train a KeypointNeRF with Lightning, on one CPU or many GPUs, into a run folder.

A run folder holds::

    RUN_DIR/config.yaml               the resolved TrainConfig (plain YAML; later commands and --resume read it)
    RUN_DIR/checkpoints/last.ckpt     the latest Lightning checkpoint (written atomically), plus step*.ckpt
    RUN_DIR/logs/                     TensorBoard event files
    RUN_DIR/model.ckpt                the trained model in this package's format (written when training ends)

``--checkpoint RUN_DIR`` of the other commands reads ``checkpoints/last.ckpt`` (or ``model.ckpt``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

from ..configio import apply_overrides, load_yaml, save_yaml, to_dict
from ..data.datasets import TrainDataset
from ..data.protocol import load_protocol, open_subjects
from ..data.zju import common_keypoint_count
from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..fileio import atomic_torch_save, atomic_write_bytes, check_writable
from ..memory import check_fits
from ..model.checkpoint import check_keypoint_count, copy_matching_parameters, load_model, model_bytes, save_model
from ..options import check_cameras_see_person
from .config import TrainConfig, train_preset
from .losses import load_vgg19_weights

# Lightning, and this package's modules built on it (``checkpoints``, ``module``), are imported by the functions
# that need them: importing Lightning takes longer than all the rest of the command line, and every other verb
# would wait for it.

RUN_FILES = ("config.yaml", "checkpoints", "logs", "model.ckpt", "vgg19.pth")
# keys a resumed run may change: a later phase's losses, schedule and training sampling, and the renderer's
# memory bounds (same results); nothing the weights' shapes, the renderer's output or the data's scale depend on
RESUMABLE_PREFIXES = ("optim.", "loss.", "checkpoint_every_steps", "val_every_steps", "log_every_steps",
                      "data.loader_workers", "data.cache_mb", "data.root", "data.view_dropout", "data.patch_size",
                      "data.source_layout", "data.keypoint_jitter_cm", "render.grad_checkpoint", "render.max_points", "render.chunk_rays")

# Lightning precisions offered: float32, and bf16 autocast (float32's range: no loss scaling, no scaler state)
PRECISIONS = ("32", "bf16-mixed")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a KeypointNeRF (Lightning; one CPU or many GPUs) into a run folder",
        description="Train KeypointNeRF on ZJU-MoCap or any data set in its layout (e.g. from 'keypointnerf synth'). "
                    "The run folder gets config.yaml, checkpoints/ (last.ckpt, atomic), logs/ (TensorBoard) and, at "
                    "the end, model.ckpt. A killed run continues with --resume from its last checkpoint (same global "
                    "step, optimizer state and learning rate).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default=None, choices=("zju", "small", "head"),
                        help="zju: the official recipe; small: a CPU-sized model; head: small for close-range heads "
                             "(synth --subject head) (default: zju; with --resume the run's own config)")
    parser.add_argument("--data", metavar="PATH", help="subject folder or folder of subjects (ZJU-MoCap layout)")
    parser.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.max_steps=2000 --set "
                             "model.spatial_encoding=abs_xyz (repeatable; see RUN_DIR/config.yaml for the keys)")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR from checkpoints/last.ckpt")
    parser.add_argument("--force", action="store_true",
                        help="start over in an existing run folder (its config, checkpoints, logs and model are "
                             "replaced; other files are left alone)")
    parser.add_argument("--init", metavar="CHECKPOINT", default=None,
                        help="start from these weights (an official last.ckpt, an imported model, or a run): "
                             "fine-tuning; the model architecture comes from that checkpoint (--set model.* may "
                             "change only model.image_pool, model.znear and model.zfar)")
    parser.add_argument("--transfer", metavar="CHECKPOINT", default=None,
                        help="start from the weights of a model made for other data (another keypoint count, "
                             "spatial encoding or depth range, e.g. the body model for heads): every parameter "
                             "whose name and shape agree is copied (the image encoders, most of the MLPs), the "
                             "others start new; the architecture comes from --preset and --set")
    parser.add_argument("--vgg-weights", metavar="FILE", default=None,
                        help="torchvision-layout VGG19 state dict for the perceptual loss (same as --set "
                             "loss.vgg_weights=FILE); without it the VGG tensors of --init are used, else the loss "
                             "runs without the perceptual term")
    add_device_argument(parser)
    parser.add_argument("--devices", type=int, default=1, metavar="N", help="processes / GPUs per node")
    parser.add_argument("--num-nodes", type=int, default=1, metavar="N", help="machines (multi-node DDP)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ...")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _is_launcher() -> bool:
    """True only in the process that prepares the run folder: False in the processes DDP's launcher starts
    (they re-run this command) and on every node but the first."""
    from lightning.fabric.utilities.rank_zero import _get_rank
    node = int(os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or 0)
    return (_get_rank() or 0) == 0 and node == 0


def _prepare_config(args, out: Path, init_model=None):
    """The run's TrainConfig: its config.yaml with the allowed overrides (--resume), else the preset with the
    overrides, the data path and the architecture of the --init model."""
    if args.resume:
        if args.force or args.init or args.transfer:
            raise UserError("--resume continues a run as it was: it takes neither --force, --init nor --transfer")
        if not (out / "config.yaml").is_file():
            raise UserError(f"{out}: no config.yaml: not a run folder to resume (start it without --resume)")
        cfg = load_yaml(TrainConfig, out / "config.yaml")
        if args.preset and args.preset != cfg.preset:
            raise UserError(f"{out}: the run was made with --preset {cfg.preset}, not {args.preset}")
        for item in args.overrides:
            if not item.split("=", 1)[0].strip().startswith(RESUMABLE_PREFIXES):
                raise UserError(f"--set {item!r}: a resumed run can change only {', '.join(RESUMABLE_PREFIXES)}")
        overrides = list(args.overrides) + ([f"data.root={Path(args.data).resolve()}"] if args.data else [])
        cfg = apply_overrides(cfg, overrides)
        if args.vgg_weights:
            cfg.loss.vgg_weights = str(Path(args.vgg_weights).resolve())
        from .checkpoints import find_resume_checkpoint
        args.resume_from = find_resume_checkpoint(out / "checkpoints")
        saved, _, _ = load_model(args.resume_from)   # refuses a checkpoint of another model config
        if saved.cfg != cfg.model:
            raise UserError(f"{args.resume_from}: its model architecture differs from {out / 'config.yaml'}; "
                            "resume with the config the run was started with")
        _take_keypoint_count(cfg, str(args.resume_from))
        return cfg

    cfg = train_preset(args.preset or "zju")
    if init_model is not None:
        cfg.model = init_model.cfg
    cfg = apply_overrides(cfg, args.overrides)
    if init_model is not None:
        _check_init_fits(init_model, cfg.model, args.init)
    if not args.data:
        raise UserError("--data PATH is required (a subject folder or a folder of subjects)")
    cfg.data.root = str(Path(args.data).resolve())
    if args.vgg_weights:
        cfg.loss.vgg_weights = args.vgg_weights
    if cfg.loss.vgg_weights:
        cfg.loss.vgg_weights = str(Path(cfg.loss.vgg_weights).resolve())
    if init_model is not None:
        _take_keypoint_count(cfg, args.init)
    elif any(item.split("=", 1)[0].strip() == "model.num_keypoints" for item in args.overrides):
        _take_keypoint_count(cfg, "--set model.num_keypoints")
    else:
        _take_keypoint_count(cfg, None)
    return cfg


def _take_keypoint_count(cfg, fixed_by: str | None) -> None:
    """The model takes K keypoints, the count of the training data: a new run's model is made for it; a
    model whose K is fixed already (``fixed_by``: the --resume or --init checkpoint, or --set) must match it.
    Every DDP process reads it (a cheap look at each training subject's first keypoints file)."""
    root = Path(cfg.data.root)
    if not cfg.data.root or not root.is_dir():
        return   # refused with the other data problems (see _check_data)
    names = list(load_protocol(cfg.data.protocol, root).train)
    if not names:
        return   # refused with the other data problems (no training frames)
    count = common_keypoint_count(open_subjects(root, names, downsample=cfg.data.downsample, cache_mb=0))
    if fixed_by is None:
        cfg.model.num_keypoints = count
    else:
        check_keypoint_count(cfg.model.num_keypoints, count, fixed_by, root)


# model settings a fine-tuning run (--init) may change: none of them reshapes a weight or changes what a layer's
# input means, only the scale the encoders see the sources at and the depth range that normalises z
INIT_ADJUSTABLE_MODEL_FIELDS = ("image_pool", "znear", "zfar")


def _check_init_fits(init_model, model_cfg, init_path: str) -> None:
    """--init with --set model.*: only :data:`INIT_ADJUSTABLE_MODEL_FIELDS` may differ from the checkpoint's
    model; any other change (a width, the encoding, GroupNorm's grouping) is refused, the fields named."""
    given = dataclasses.asdict(init_model.cfg)
    changed = [f"model.{k} {given[k]!r} -> {v!r}" for k, v in dataclasses.asdict(model_cfg).items()
               if v != given[k] and k not in INIT_ADJUSTABLE_MODEL_FIELDS]
    if changed:
        raise UserError(f"--init {init_path}: {'; '.join(changed)} would change its weights' shapes or meaning; "
                        f"fine-tuning may change only model.{', model.'.join(INIT_ADJUSTABLE_MODEL_FIELDS)}")


def _check_data(cfg) -> None:
    root = Path(cfg.data.root)
    if not root.exists():
        raise UserError(f"--data {root}: no such folder")
    data = cfg.data
    dataset = TrainDataset(root, data.protocol, downsample=data.downsample, patch_size=data.patch_size,
                           num_sources=data.num_sources, source_layout=data.source_layout, cache_mb=16)
    if len(dataset) == 0:
        raise UserError(f"--data {root}: no training frames")
    for name, subject in dataset.subjects.items():
        if data.patch_size > min(subject.image_size):
            raise UserError(f"data.patch_size={data.patch_size}: larger than the {subject.image_size[1]}x"
                            f"{subject.image_size[0]} images of {subject.path} (after data.downsample)")
        first = next(frame for subject_name, frame in dataset.items if subject_name == name)
        check_cameras_see_person(subject, first, dataset.cameras[name], "training",
                                 "; fix or leave out that camera (see keypointnerf data check)")


def _check_optimisation(cfg) -> None:
    """Refuse data, loss and schedule settings that could only fail later (or silently train nothing)."""
    optim, loss, data = cfg.optim, cfg.loss, cfg.data
    for name, value, least in (("data.patch_size", data.patch_size, 1), ("data.num_sources", data.num_sources, 1),
                               ("data.loader_workers", data.loader_workers, 0), ("optim.epochs", optim.epochs, 1),
                               ("checkpoint_every_steps", cfg.checkpoint_every_steps, 1),
                               ("log_every_steps", cfg.log_every_steps, 1),
                               ("val_every_steps", cfg.val_every_steps, 0)):
        if value < least:
            raise UserError(f"{name}={value}: must be at least {least}")
    if optim.precision not in PRECISIONS:
        raise UserError(f"optim.precision={optim.precision}: expected one of {', '.join(PRECISIONS)}")
    if optim.max_steps == 0 or optim.max_steps < -1:
        raise UserError(f"optim.max_steps={optim.max_steps}: must be a positive number of steps, or -1 (no limit)")
    if not 0 < data.downsample <= 1:
        raise UserError(f"data.downsample={data.downsample}: must be in (0, 1]")
    for name, value in (("data.cache_mb", data.cache_mb), ("optim.grad_clip", optim.grad_clip),
                        ("data.keypoint_jitter_cm", data.keypoint_jitter_cm)):
        if not 0 <= value < math.inf:
            raise UserError(f"{name}={value}: must be finite and >= 0")
    for name, value in (("optim.lr", optim.lr), ("optim.lr_final", optim.lr_final)):
        if not math.isfinite(value) or value < 0 or (name == "optim.lr" and value == 0):
            raise UserError(f"{name}={value}: must be a finite, positive learning rate")
    for name in ("l1_coarse", "l1_fine", "perceptual", "ssim", "mask"):
        if not math.isfinite(getattr(loss, name)) or getattr(loss, name) < 0:
            raise UserError(f"loss.{name}={getattr(loss, name)}: a loss weight must be finite and >= 0")
    if cfg.render.supersample != 1:
        # training renders rays, not images; the held-out view would silently cost supersample^2 times more
        raise UserError(f"render.supersample={cfg.render.supersample}: training renders one ray per pixel "
                        "(supersample with eval or render instead)")
    if loss.ssim > 0 and cfg.data.patch_size < 7:
        raise UserError(f"loss.ssim needs data.patch_size of at least 7 (the SSIM window), not {cfg.data.patch_size}")
    if optim.lr_decay_start >= 0 and optim.max_steps <= optim.lr_decay_start:
        raise UserError(f"optim.lr_decay_start={optim.lr_decay_start} needs optim.max_steps above it "
                        f"(it is {optim.max_steps}): the decay ends at max_steps")


def _vgg_state(cfg, init_vgg: dict | None):
    """VGG19 tensors for the perceptual loss (the configured file, else those of the --init checkpoint), or
    None (said once)."""
    from lightning.pytorch.utilities import rank_zero_warn
    if cfg.loss.perceptual <= 0:
        return None
    if cfg.loss.vgg_weights:
        return load_vgg19_weights(cfg.loss.vgg_weights)
    if init_vgg:
        return init_vgg
    rank_zero_warn("perceptual loss off: no VGG19 weights (give --vgg-weights FILE, a torchvision-layout "
                   "vgg19 state dict, or --init an official checkpoint that holds them); training goes on with "
                   "the L1 terms only")
    return None


def run(args) -> int:
    out = Path(args.out)
    for option, value in (("--threads", args.threads), ("--devices", args.devices), ("--num-nodes", args.num_nodes)):
        if value is not None and value < 1:
            raise UserError(f"{option} {value}: must be at least 1")
    if "spawn" in args.strategy:
        # a spawned worker's step count and optimizer state do not come back to the main process
        raise UserError(f"--strategy {args.strategy}: not supported (use ddp)")
    if args.init and args.force and Path(args.init).resolve().is_relative_to(out.resolve()):
        raise UserError(f"--init {args.init} lies inside --out {out}, which --force would clear first")
    launcher = _is_launcher()
    if launcher and not args.resume and out.exists() and any(out.iterdir()):
        if not args.force and any((out / name).exists() for name in RUN_FILES):
            raise UserError(f"{out}: holds a run already; pass --resume to continue it or --force to start over")
    if args.init and args.transfer:
        raise UserError("--init (fine-tune that model) and --transfer (a new model seeded with its matching "
                        "weights) exclude each other")
    init_model = init_vgg = transfer_model = None
    if args.init and not args.resume:
        init_model, init_vgg, _ = load_model(args.init)
    if args.transfer and not args.resume:
        transfer_model, _, _ = load_model(args.transfer)
    cfg = _prepare_config(args, out, init_model)
    _check_optimisation(cfg)
    # the weights, their gradients and Adam's two moments
    check_fits(4 * model_bytes(cfg.model), "training this model (weights, gradients and optimiser state)")
    if launcher:
        check_writable(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if launcher:
        _check_data(cfg)
    vgg = _vgg_state(cfg, init_vgg)
    if args.resume and cfg.loss.perceptual > 0 and not cfg.loss.vgg_weights:
        from lightning.pytorch.utilities import rank_zero_warn
        rank_zero_warn("the run trains without the perceptual term (it had no VGG19 weights); give "
                       "--vgg-weights FILE to add it from here on")

    if launcher and not args.resume:
        if args.force:
            for name in RUN_FILES:
                path = out / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        out.mkdir(parents=True, exist_ok=True)
        if vgg is not None and not cfg.loss.vgg_weights:
            # VGG tensors that came with --init: kept beside the run, so that --resume finds them again
            atomic_torch_save(vgg, out / "vgg19.pth")
            cfg.loss.vgg_weights = str((out / "vgg19.pth").resolve())
        save_yaml(cfg, out / "config.yaml")
    elif launcher:
        # the run folder holds the config in force; the one it replaces is kept beside it (copied first, then
        # replaced atomically: config.yaml is never missing)
        previous = load_yaml(type(cfg), out / "config.yaml")
        if previous != cfg:
            phase = 1 + sum(1 for _ in out.glob("config.phase*.yaml"))
            atomic_write_bytes(out / f"config.phase{phase}.yaml", (out / "config.yaml").read_bytes())
            save_yaml(cfg, out / "config.yaml")
    return _fit(cfg, args, out, device, vgg, init_model, transfer_model)


def _fit(cfg, args, out: Path, device, vgg, init_model, transfer_model=None) -> int:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from .checkpoints import LAST, AtomicCheckpointIO, SaveOnInterrupt
    from .module import KeypointNeRFTraining, TrainData, seed_everything

    seed_everything(cfg.seed)
    module = KeypointNeRFTraining(to_dict(cfg), vgg)
    if init_model is not None:
        module.model.load_state_dict(init_model.state_dict())
    if transfer_model is not None:
        copied, kept = copy_matching_parameters(module.model, transfer_model)
        total = sum(p.numel() for p in module.model.parameters())
        copied_names = set(copied)
        share = sum(p.numel() for n, p in module.model.named_parameters() if n in copied_names) / total
        print(f"--transfer {args.transfer}: {len(copied)} parameters copied ({100 * share:.1f}% of the weights); "
              f"new: {', '.join(kept) or 'none'}", flush=True)
    checkpoints = out / "checkpoints"

    on_interrupt = SaveOnInterrupt(checkpoints / LAST)
    callbacks = [
        ModelCheckpoint(dirpath=checkpoints, filename="step{step:07d}", auto_insert_metric_name=False,
                        every_n_train_steps=max(1, cfg.checkpoint_every_steps), save_top_k=1, save_last=True,
                        save_on_train_epoch_end=True, enable_version_counter=False),
        on_interrupt]
    if not args.no_progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    devices = [device.index] if device.index is not None and args.devices == 1 else args.devices  # --device cuda:N
    trainer = L.Trainer(
        default_root_dir=out, accelerator=accelerator, devices=devices, num_nodes=args.num_nodes,
        strategy=args.strategy, max_epochs=cfg.optim.epochs, max_steps=cfg.optim.max_steps,
        gradient_clip_val=cfg.optim.grad_clip or None, precision=cfg.optim.precision, callbacks=callbacks,
        logger=TensorBoardLogger(save_dir=str(out), name="logs", version=""),
        log_every_n_steps=max(1, cfg.log_every_steps), enable_progress_bar=not args.no_progress,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, plugins=[AtomicCheckpointIO()])
    ckpt_path = str(args.resume_from) if args.resume else None
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=TrainData(cfg), ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl-C into exit(1) and SIGTERM into exit(0) after its clean-up: a stopped run must not
        # look like a finished one (the command's convention: 130 for Ctrl-C, 143 for SIGTERM)
        if isinstance(on_interrupt.exception, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if isinstance(on_interrupt.exception, SIGTERMException):
            raise UserError(f"terminated (SIGTERM) at step {trainer.global_step}; {checkpoints / LAST} holds the "
                            f"run so far: --resume continues it", exit_code=143) from None
        raise
    finally:
        signal.signal(signal.SIGINT, sigint)      # Lightning ignores further Ctrl-C during its shut-down
    # the final state (ModelCheckpoint saves on its step interval and at epoch ends, not when max_steps stops)
    trainer.save_checkpoint(checkpoints / LAST, weights_only=False)
    if trainer.is_global_zero:
        module.model.to("cpu")
        save_model(out / "model.ckpt", module.model, provenance={"run": str(out.resolve()), "preset": cfg.preset,
                                                                 "global_step": int(trainer.global_step)},
                   render=cfg.render_settings())
        print(f"keypointnerf train: {trainer.global_step} steps; model written to {out / 'model.ckpt'}",
              file=sys.stderr)
    return 0
