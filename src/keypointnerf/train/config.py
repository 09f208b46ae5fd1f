"""Training configuration: typed dataclasses, named presets, saved as plain YAML in every run folder.

``zju`` is the official ZJU-MoCap recipe (the released model's architecture, 64 + 64 samples, 64x64 patches,
Adam 5e-4, 30 epochs, L1 coarse + 10 L1 fine + 0.5 VGG19 perceptual). ``small`` is a CPU configuration: small
encoders and MLPs (a ~5 MB model), fewer samples per ray and smaller patches, same losses and data protocol.
``head`` is ``small`` for close-range heads (depth range and keypoint damping at head scale).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..configio import from_dict, to_dict
from ..errors import UserError
from ..model.config import ModelConfig, model_preset
from ..render.renderer import RenderConfig


@dataclass
class DataConfig:
    root: str = ""                 # a subject folder or a folder of subjects (ZJU-MoCap layout)
    protocol: str = "auto"         # auto | zju_nhp | split | all (see keypointnerf.data.protocol)
    downsample: float = 0.5        # the reader's image scale (ZJU: 1024 -> 512)
    patch_size: int = 64           # target patch side in pixels, centred on a random foreground pixel
    num_sources: int = 3
    source_layout: str = "random"  # random (official) | spread: evenly spaced around the camera ring, as tested
    view_dropout: bool = True      # keep one random source view, drop each other one with probability 0.5
    keypoint_jitter_cm: float = 0.0  # Gaussian noise (std, cm per coordinate) on the keypoints the model sees
                                   # (not on the box that bounds the rays): robustness to triangulation error
    loader_workers: int = 0        # DataLoader worker processes (0 = in the training process)
    cache_mb: float = 64           # decoded views kept in memory, per subject (a data set of 30 subjects: 30x)


@dataclass
class LossConfig:
    l1_coarse: float = 1.0         # L1 of the coarse pass; without fine samples that pass is the output and
    l1_fine: float = 10.0          # takes l1_fine instead (and one mask term), so nothing is counted twice
    perceptual: float = 0.5        # VGG19 perceptual loss on the fine patch (needs VGG19 weights)
    vgg_weights: str = ""          # torchvision-layout VGG19 state dict (features.<i>.weight/bias); "" = none
    ssim: float = 0.0              # D-SSIM (1 - SSIM, 7x7 uniform window as evaluated) on the fine patch
    mask: float = 0.0              # BCE of coarse + fine opacity against the target mask (off as the official
                                   # recipe: real masks are noisy at the edges; exact on synthetic people)


@dataclass
class OptimConfig:
    lr: float = 5e-4
    epochs: int = 30
    max_steps: int = -1            # -1 = no limit other than epochs
    grad_clip: float = 0.0         # 0 = off
    lr_decay_start: int = -1       # from this global step, cosine decay of lr to lr_final at max_steps (-1 = off)
    lr_final: float = 0.0
    precision: str = "32"          # Lightning's Trainer(precision=): 32, or bf16-mixed (forward pass under bf16
                                   # autocast; weights, gradients and Adam stay float32; see the README for its
                                   # measured effect on the loss)

    def lr_at(self, step: int) -> float:
        """The learning rate of global step ``step``: constant, or the cosine decay once it has started."""
        if self.lr_decay_start < 0 or step < self.lr_decay_start:
            return self.lr
        span = max(1, self.max_steps - self.lr_decay_start)
        progress = min(1.0, (step - self.lr_decay_start) / span)
        return self.lr_final + (self.lr - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainConfig:
    preset: str = "zju"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    render: RenderConfig = field(default_factory=lambda: RenderConfig(stratified=True, density_noise_std=0.01))
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint_every_steps: int = 500   # also at the end of every epoch
    val_every_steps: int = 0            # render one held-out view and log its PSNR (0 = off)
    log_every_steps: int = 10

    def render_settings(self) -> dict:
        """The sampling settings stored with exported models (what evaluation and rendering reuse)."""
        return {"coarse_samples": self.render.coarse_samples, "fine_samples": self.render.fine_samples}


def _small() -> TrainConfig:
    return TrainConfig(
        preset="small",
        model=model_preset("small"),
        render=RenderConfig(coarse_samples=32, fine_samples=32, stratified=True, density_noise_std=0.01),
        data=DataConfig(patch_size=32),
        optim=OptimConfig(lr=5e-4, epochs=1000, max_steps=20000),
        checkpoint_every_steps=250, val_every_steps=1000)


def _head() -> TrainConfig:
    """``small`` for heads (``keypointnerf synth --subject head``): the model's depth range fits cameras 0.4-1.2 m
    from the face (0.15-1.6 m), and each landmark's damping reaches 5 cm (landmarks lie 1-8 cm apart, body
    joints 10-50 cm). The keypoint count comes from the data (22 landmarks)."""
    cfg = _small()
    cfg.preset = "head"
    cfg.model = model_preset("small", znear=0.15, zfar=1.6, spatial_sigma=0.05)
    return cfg


TRAIN_PRESETS = {"zju": TrainConfig, "small": _small, "head": _head}


def train_preset(name: str) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]()


def config_from_dict(data: dict, where: str = "config") -> TrainConfig:
    return from_dict(TrainConfig, data, where)


def config_to_dict(cfg: TrainConfig) -> dict:
    return to_dict(cfg)
