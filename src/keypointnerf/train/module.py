"""The Lightning module that trains a KeypointNeRF, and its data loaders.

One training step = one sample (batch 1, as the official recipe): encode the source views (after view dropout),
render the target patch's rays coarse-to-fine with stratified samples and density noise, and minimise
``l1_coarse * L1(coarse) + l1_fine * L1(fine) + perceptual * VGG19(fine patch) + ssim * (1 - SSIM(fine patch))
+ mask * (BCE(coarse opacity, mask) + BCE(fine opacity, mask))``; without fine samples the coarse pass is the
output and is counted once (``l1_fine`` and one BCE).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from ..data.datasets import TestDataset, TrainDataset
from ..data.sample import Sample, noisy_keypoints
from ..errors import UserError
from ..imaging import psnr
from ..model.keypointnerf import KeypointNeRF
from ..render.renderer import RenderConfig, render_image, render_pixels
from .config import TrainConfig, config_from_dict, config_to_dict
from .losses import VGGPerceptualLoss, dssim, silhouette_bce


def first_item(batch: list[Sample]) -> Sample:
    """Collate for batch size 1: the sample itself, no batch dimension."""
    return batch[0]


def _psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return psnr(prediction.detach().clamp(0, 1).cpu().numpy(), target.detach().cpu().numpy())


def drop_views(num_views: int, generator: torch.Generator) -> list[int]:
    """Training-time view dropout: one random view is kept, each other one survives with probability 0.5."""
    keep = int(torch.randint(num_views, (1,), generator=generator, device=generator.device))
    survive = torch.rand(num_views, generator=generator, device=generator.device) >= 0.5
    return [v for v in range(num_views) if v == keep or bool(survive[v])]


def jitter_keypoints(keypoints: torch.Tensor, centimetres: float, generator: torch.Generator) -> torch.Tensor:
    """``keypoints`` (..., K, 3) metres plus Gaussian noise of ``centimetres`` std per coordinate (training-time
    keypoint jitter; drawn on the CPU from ``generator`` so that a seed gives the same draws on any device)."""
    return noisy_keypoints(keypoints, torch.randn(keypoints.shape, generator=generator, dtype=torch.float64),
                           centimetres)


class KeypointNeRFTraining(L.LightningModule):
    """Holds the model (``self.model``) and, when the perceptual loss is on, frozen VGG19 weights (``self.vgg19``).

    ``config`` is the plain-dict form of :class:`TrainConfig` (what the checkpoint's hyper-parameters keep, so a
    checkpoint loads with ``torch.load(weights_only=True)`` and ``keypointnerf.model.checkpoint.load_model``).
    """

    def __init__(self, config: dict, vgg19_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: TrainConfig = config_from_dict(config)
        self.model = KeypointNeRF(self.cfg.model)
        self.vgg19 = VGGPerceptualLoss(vgg19_state) if vgg19_state else None
        self.render_cfg = self.cfg.render
        self.eval_render_cfg = RenderConfig.for_checkpoint({"render": config_to_dict(self.cfg.render)})
        self._dropout_rng = torch.Generator().manual_seed(self.cfg.seed)
        self._jitter_rng = torch.Generator().manual_seed(self.cfg.seed + 1)
        self._val_sample: Sample | None = None
        self._val_held_out = True

    # ------------------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.optim.lr)

    def _losses(self, sample: Sample) -> dict[str, torch.Tensor]:
        source_views = sample.views
        jitter = self.cfg.data.keypoint_jitter_cm
        if jitter > 0:   # the model's keypoints only: sample.bounds (the rays' box) stays the true one
            source_views = dataclasses.replace(
                source_views, keypoints=jitter_keypoints(source_views.keypoints, jitter, self._jitter_rng))
        views, view_mask = source_views.num_views, None
        if self.cfg.data.view_dropout and views > 1:
            # as the official model: every view still bounds the visual hull, dropped ones add no feature/colour
            view_mask = torch.zeros(views, device=self.device)
            view_mask[drop_views(views, self._dropout_rng)] = 1
        # the fast path (render.cull) also skips the dropped views' encoders and per-view networks (same loss and
        # gradients); the plain one computes them, as the official trainer does
        enc = self.model.encode(source_views, view_mask=view_mask, skip_dropped_views=self.render_cfg.cull)
        pixels = sample.pixels
        out = render_pixels(self.model, enc, sample.tgt_K, sample.tgt_Rt, pixels, sample.bounds, self.render_cfg,
                            training=True)
        target = sample.tgt_image[:, pixels[:, 1], pixels[:, 0]].T          # (P, 3)
        # without fine samples the coarse pass is the output: it is counted once, with the output's weights
        two_passes = self.render_cfg.fine_samples > 0
        losses = {"l1_fine": F.l1_loss(out["rgb"], target)}
        total = self.cfg.loss.l1_fine * losses["l1_fine"]
        if two_passes:
            losses["l1_coarse"] = F.l1_loss(out["rgb_coarse"], target)
            total = total + self.cfg.loss.l1_coarse * losses["l1_coarse"]
        if self.cfg.loss.mask > 0:
            mask = sample.tgt_mask[0, pixels[:, 1], pixels[:, 0]]                 # (P,)
            losses["mask"] = silhouette_bce(out["opacity"], mask)
            if two_passes:
                losses["mask"] = losses["mask"] + silhouette_bce(out["opacity_coarse"], mask)
            total = total + self.cfg.loss.mask * losses["mask"]
        side = int(round(math.sqrt(len(pixels))))
        if side * side == len(pixels):   # the image terms need square patches (row-major)
            as_image = lambda rgb: rgb.T.reshape(1, 3, side, side)  # noqa: E731
            if self.vgg19 is not None and self.cfg.loss.perceptual > 0:
                losses["perceptual"] = self.vgg19(as_image(out["rgb"]), as_image(target))
                total = total + self.cfg.loss.perceptual * losses["perceptual"]
            if self.cfg.loss.ssim > 0:
                losses["dssim"] = dssim(as_image(out["rgb"]), as_image(target))
                total = total + self.cfg.loss.ssim * losses["dssim"]
        losses["loss"] = total
        with torch.no_grad():
            losses["psnr"] = torch.tensor(_psnr(out["rgb"], target), device=self.device)
        return losses

    def on_train_start(self) -> None:
        # per rank and per start: DDP ranks must not draw the same jitter, noise and dropout, and a resumed run
        # must not replay the random numbers of its first steps
        seed = self.cfg.seed + 1_000_003 * self.global_rank + self.global_step
        torch.manual_seed(seed)
        self._dropout_rng.manual_seed(seed)
        self._jitter_rng.manual_seed(seed + 1)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # the rate follows the config at every step (also after a resume that changed optim.*)
        lr = self.cfg.optim.lr_at(self.global_step)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def training_step(self, sample: Sample, batch_idx: int) -> torch.Tensor:
        losses = self._losses(sample)
        if not torch.isfinite(losses["loss"]):
            raise UserError(f"step {self.global_step}: the loss is {float(losses['loss'])} (training diverged); "
                            "checkpoints/last.ckpt holds the last good state: lower optim.lr and --resume")
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name in ("loss", "psnr"), on_step=True, batch_size=1)
        self.log("train/lr", self.cfg.optim.lr_at(self.global_step), on_step=True, batch_size=1)
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        every = self.cfg.val_every_steps
        if every > 0 and self.global_step % every == 0 and self.trainer.is_global_zero:
            self._render_validation()

    # ------------------------------------------------------------------------------------------- monitoring
    def _render_validation(self) -> None:
        """Render one view of the protocol's test items (the middle one: held out unless the protocol trains on
        its test subjects, as 'all' does) and log its PSNR and the image (rank 0 only)."""
        if self._val_sample is None:
            try:
                dataset = TestDataset(self.cfg.data.root, self.cfg.data.protocol, downsample=self.cfg.data.downsample,
                                      cache_mb=64)
            except Exception as exc:  # noqa: BLE001 - monitoring must never stop training
                rank_zero_warn(f"validation view disabled: {exc}")
                self.cfg.val_every_steps = 0
                return
            middle = len(dataset) // 2
            self._val_sample = dataset[middle]
            subject = dataset.items[middle][0]       # the protocol's name (info.subject is the folder's)
            self._val_held_out = subject not in dataset.protocol.train     # protocol 'all' trains on every subject
            if not self._val_held_out:
                rank_zero_info(f"protocol {dataset.protocol.name}: the validation view's subject {subject} is "
                               f"also trained on, so val/psnr is not a held-out score")
        sample = self._val_sample.to(self.device)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            enc = self.model.encode(sample.views)
            height, width = sample.tgt_image.shape[-2:]
            out = render_image(self.model, enc, sample.tgt_K, sample.tgt_Rt, height, width, sample.bounds,
                               self.eval_render_cfg)
        self.model.train(was_training)
        value = _psnr(out["rgb"], sample.tgt_image)
        if self.logger is not None:
            # straight to the logger: self.log() from a batch hook would repeat the value at every logging step
            self.logger.log_metrics({"val/psnr": value}, step=self.global_step)
            experiment = getattr(self.logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("val/prediction_target",
                                     torch.cat([out["rgb"].clamp(0, 1), sample.tgt_image], dim=-1), self.global_step)
        kind = "held-out" if self._val_held_out else "validation (trained-on subject)"
        rank_zero_info(f"step {self.global_step}: {kind} view PSNR {value:.2f} dB")

    # ------------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # frozen VGG weights are inputs, not training state: keep them out of every checkpoint (14 MB each);
        # they are re-read from the configured file or initial checkpoint when a run resumes
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("vgg19.")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.vgg19 is not None:
            state = checkpoint["state_dict"]
            for key, value in self.vgg19.state_dict().items():
                state.setdefault(f"vgg19.{key}", value)


class TrainData(L.LightningDataModule):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.dataset: TrainDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            data = self.cfg.data
            self.dataset = TrainDataset(data.root, data.protocol, downsample=data.downsample,
                                        patch_size=data.patch_size, num_sources=data.num_sources,
                                        source_layout=data.source_layout,
                                        seed=self.cfg.seed, cache_mb=data.cache_mb)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        workers = self.cfg.data.loader_workers
        return DataLoader(self.dataset, batch_size=1, shuffle=True, collate_fn=first_item, num_workers=workers,
                          persistent_workers=workers > 0,
                          generator=torch.Generator().manual_seed(self.cfg.seed))


def seed_everything(seed: int) -> None:
    L.seed_everything(seed, workers=True, verbose=False)   # seeds Python, NumPy and torch
