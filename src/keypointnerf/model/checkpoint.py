"""Model checkpoints: this package's format, official KeypointNeRF ``last.ckpt`` files, and training runs.

Nothing here executes code from a file: tensors are read with ``torch.load(weights_only=True)``; a Lightning
file whose extra entries hold classes that loader refuses is read with an unpickler that turns every
unknown class into an inert placeholder (its tensors still load, no constructor or function of the file runs).
"""
from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import _weights_only_unpickler as wou

from ..configio import from_dict, to_dict
from ..errors import UserError
from ..fileio import atomic_torch_save
from ..memory import check_fits
from .config import ModelConfig
from .keypointnerf import KeypointNeRF

FORMAT = "keypointnerf-model"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------- safe reading
class _Inert:
    """Stands for a class the file names but this package does not trust: it stores its arguments, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


def _inert_pickle_module():
    allowed = wou._get_allowed_globals()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            key = f"{module}.{name}"
            if key in allowed:
                return allowed[key]
            if module in ("collections",) and name == "OrderedDict":
                return OrderedDict
            return type(f"Inert_{name}", (_Inert,), {"__module__": "keypointnerf.inert"})

    module = type(pickle)("keypointnerf_inert_pickle")
    module.Unpickler = Unpickler
    module.load = lambda f, **kw: Unpickler(f, **kw).load()
    module.__dict__.update({k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL")})
    return module


def safe_torch_load(path: str | Path) -> Any:
    """Read a torch file without executing any code it contains; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass   # classes beyond plain containers: fall back to inert placeholders below
    except Exception as exc:  # noqa: BLE001 - truncated or random bytes fail in many ways (struct.error, ...)
        raise UserError(f"{path}: not a readable torch checkpoint ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_inert_pickle_module())
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise UserError(f"{path}: not a readable torch checkpoint ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None


# ----------------------------------------------------------------------------------------------- official names
_BLOCK_PARTS = [(r"bn1\.", "norm1."), (r"bn2\.", "norm2."), (r"bn3\.", "norm3."),
                (r"bn4\.", "shortcut.0."), (r"downsample\.2\.", "shortcut.2."), (r"(conv[123]\.)", r"\1")]
_GEO_TOP = {"conv1.": "conv1.", "bn1.": "norm1.", "unpack1.conv.": "highres_up.", "unpack1.norm.": "highres_norm.",
            "conv_out.": "highres_out.", "conv_last0.": "head_conv.", "bn_end0.": "head_norm.", "l0.": "out."}
_GEO_BLOCKS = {"conv2": "block1", "conv3": "block2", "conv4": "block3", "top_m_0": "head_block"}
_MLP_GEO = {"layers1.layers.0": "view_in", "layers1.layers.1": "view_hidden", "layers1.layers.2": "view_highres",
            "layers1.layers.3": "view_out", "layers2.layers.0": "fused_in", "layers2.layers.1": "fused_hidden",
            "layers2.layers.2": "fused_out"}
_MLP_TEX = {"ani_al": "sharpness", "ray_encoder.": "ray_encoder.", "base_layer.": "base.",
            "vis_layer1.": "visibility1.", "vis_layer2.": "visibility2.", "out_layer.": "out."}


def _block_param(rest: str) -> str | None:
    for pattern, repl in _BLOCK_PARTS:
        if re.match(pattern, rest):
            return re.sub("^" + pattern, repl, rest)
    return None


def _hourglass_path(name: str, depth: int) -> str | None:
    """``b1_4`` -> ``hourglass.skip`` etc.; official levels count down from ``depth`` to 1."""
    match = re.fullmatch(r"b([123])_(\d+)|b2_plus_(\d+)", name)
    if not match:
        return None
    if match.group(3):
        return "hourglass." + "inner." * (depth - 1) + "inner"
    role = {"1": "skip", "2": "down", "3": "up"}[match.group(1)]
    return "hourglass." + "inner." * (depth - int(match.group(2))) + role


def official_key(key: str, depth: int = 4) -> str | None:
    """Map one official ``model.<...>`` key to this package's name; None for tensors the model does not use
    (the VGG loss network, the duplicate GroupNorm registered under ``downsample.0``)."""
    if not key.startswith("model.") or key.startswith("model.vgg_loss.") or ".downsample.0." in key:
        return None
    key = key[len("model."):]
    if key.startswith("geo_encoder."):
        rest = key[len("geo_encoder."):]
        for old, new in _GEO_TOP.items():
            if rest.startswith(old):
                return "geometry_encoder." + new + rest[len(old):]
        block, _, param = rest.partition(".")
        if block == "m0":
            block, _, param = param.partition(".")
            path = _hourglass_path(block, depth)
        else:
            path = _GEO_BLOCKS.get(block)
        mapped = _block_param(param) if path else None
        return f"geometry_encoder.{path}.{mapped}" if mapped else None
    if key.startswith("tex_encoder."):
        return "texture_encoder." + re.sub(r"^(layers\.\d+\.)layers\.", r"\1body.", key[len("tex_encoder."):])
    if key.startswith("mlp_geo."):
        match = re.fullmatch(r"mlp_geo\.(layers\d\.layers\.\d)\.linear\.(\w+)", key)
        if match and match.group(1) in _MLP_GEO:
            return f"geometry_mlp.{_MLP_GEO[match.group(1)]}.{match.group(2)}"
        return None
    if key.startswith("mlp_tex."):
        rest = key[len("mlp_tex."):]
        for old, new in _MLP_TEX.items():
            if rest.startswith(old):
                return "color_head." + new + rest[len(old):]
        return None
    if key.startswith("ibr_compress_gfeat."):
        return "compress." + key[len("ibr_compress_gfeat."):]
    if key == "sp_encoder.center":
        return "spatial_center"
    return None


def vgg19_from_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The perceptual loss's VGG19 tensors in torchvision layout: ``features.<i>.weight`` / ``.bias``."""
    out = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"model\.vgg_loss\.vgg_net\.slice\d+\.(\d+)\.(weight|bias)", key)
        if match:
            out[f"features.{match.group(1)}.{match.group(2)}"] = value
    return out


def _official_spatial_type(ckpt: dict, first_layer_in: int, geo_channels: int) -> str:
    width = first_layer_in - geo_channels
    try:
        declared = ckpt["hyper_parameters"]["cfg"]["models"]["KeypointNeRF"]["sp_args"]["sp_type"]
    except (KeyError, TypeError):
        declared = None
    by_width = {168: "rel_z_decay", 504: "rel_xyz", 21: "abs_xyz"}
    if declared in ("rel_z_decay", "rel_xyz", "abs_xyz", "cam_xyz"):
        return declared
    if declared == "xyz":
        return "abs_xyz"
    if width in by_width:
        return by_width[width]
    raise UserError(f"cannot tell the spatial encoding of an official checkpoint whose first MLP layer reads "
                    f"{first_layer_in} values")


def import_official(ckpt: dict, source: str) -> tuple[KeypointNeRF, dict[str, torch.Tensor]]:
    """Build the model from an official Lightning checkpoint dict; refuse missing or mis-shaped tensors."""
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{source}: no 'state_dict' in the file: not a KeypointNeRF Lightning checkpoint")
    first = state.get("model.mlp_geo.layers1.layers.0.linear.weight_v")
    if first is None:
        raise UserError(f"{source}: tensor model.mlp_geo.layers1.layers.0.linear.weight_v is missing")
    cfg = ModelConfig(spatial_encoding=_official_spatial_type(ckpt, first.shape[1], 64))
    model = KeypointNeRF(cfg)
    expected = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = official_key(key)
        if name is None:
            continue
        if name not in expected and ".shortcut.0." in name:
            continue   # the official blocks register a shortcut GroupNorm even where the shortcut is the identity
        if name not in expected:
            raise UserError(f"{source}: unexpected tensor {key} (no such layer in KeypointNeRF)")
        if tuple(value.shape) != tuple(expected[name].shape):
            raise UserError(f"{source}: tensor {key} has shape {tuple(value.shape)}, "
                            f"expected {tuple(expected[name].shape)}")
        mapped[name] = value.float()
    missing = sorted(set(expected) - set(mapped))
    if missing:
        raise UserError(f"{source}: {len(missing)} tensor(s) missing (named as in this package): "
                        + ", ".join(missing[:5]))
    bad = [k for k, v in mapped.items() if not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{source}: tensor(s) with NaN or infinite values: {', '.join(bad[:5])}")
    model.load_state_dict(mapped)
    return model, vgg19_from_official(state)


# ----------------------------------------------------------------------------------------------- this package
def package_checkpoint(model: KeypointNeRF, vgg19: dict | None = None, provenance: dict | None = None,
                       render: dict | None = None) -> dict:
    """The dict this package saves: plain containers and tensors only (loadable with weights_only=True).

    ``render`` holds the sampling the model was trained with (``RenderConfig`` fields such as
    ``coarse_samples``/``fine_samples``), so later commands render it as it was trained; {} = the defaults."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "model_config": to_dict(model.cfg),
            "render_config": dict(render or {}),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "vgg19": {k: v.detach().cpu() for k, v in (vgg19 or {}).items()},
            "provenance": provenance or {}}


def save_model(path: str | Path, model: KeypointNeRF, vgg19: dict | None = None,
               provenance: dict | None = None, render: dict | None = None) -> None:
    """Write atomically (a temporary sibling, synced, then renamed: see ``keypointnerf.fileio``)."""
    atomic_torch_save(package_checkpoint(model, vgg19, provenance, render), path)


def model_bytes(cfg: ModelConfig) -> int:
    """Bytes of the parameters and buffers of a model of ``cfg``, counted without allocating them."""
    with torch.device("meta"):
        model = KeypointNeRF(cfg)
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def build_model(cfg: ModelConfig, what: str) -> KeypointNeRF:
    """``KeypointNeRF(cfg)`` once its weights are known to fit in memory (a file may claim any width)."""
    check_fits(model_bytes(cfg), what)
    return KeypointNeRF(cfg)


def _model_from_package_state(cfg_dict: dict, state: dict, source: str) -> KeypointNeRF:
    if not isinstance(cfg_dict, dict):
        raise UserError(f"{source}: its model config is not a mapping")
    cfg = from_dict(ModelConfig, cfg_dict, where=f"{source} model config")
    model = build_model(cfg, f"{source}: the model")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}")
        if wrong:
            parts.append("mis-shaped " + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                                                   for k in wrong[:5]))
        raise UserError(f"{source}: checkpoint does not fit its model config: " + "; ".join(parts))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{source}: tensor(s) with NaN or infinite values: {', '.join(bad[:5])}")
    model.load_state_dict(state)
    return model


def copy_matching_parameters(target: KeypointNeRF, source: KeypointNeRF) -> tuple[list[str], list[str]]:
    """Copy into ``target`` every parameter of ``source`` with the same name and shape (transfer from a model made
    for other data: another keypoint count, spatial encoding or depth range). Buffers are not copied.

    Returns:
        (copied, kept): the names of ``target``'s parameters that were copied, and of those left as they were.
    """
    given = dict(source.named_parameters())
    copied, kept = [], []
    with torch.no_grad():
        for name, parameter in target.named_parameters():
            other = given.get(name)
            if other is not None and other.shape == parameter.shape:
                parameter.copy_(other)
                copied.append(name)
            else:
                kept.append(name)
    return copied, kept


def check_keypoint_count(model_keypoints: int, data_keypoints: int, checkpoint: str | Path, data: str | Path
                         ) -> None:
    """Refuse data whose keypoint count K differs from the model's (a checkpoint's model config records its K,
    ``num_keypoints``); the message names both counts, the checkpoint and the data."""
    if model_keypoints != data_keypoints:
        raise UserError(f"{checkpoint}: the model takes {model_keypoints} keypoints per frame, but {data} has "
                        f"{data_keypoints}; use a model trained on data with {data_keypoints} keypoints")


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A file, or a run folder (its ``checkpoints/last.ckpt``, else ``model.ckpt``)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "model.ckpt"):
            if candidate.is_file():
                return candidate
        raise UserError(f"{path}: run folder holds no checkpoints/last.ckpt or model.ckpt")
    if not path.exists():
        raise UserError(f"{path}: checkpoint not found")
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu"
               ) -> tuple[KeypointNeRF, dict[str, torch.Tensor], dict]:
    """Load any checkpoint this package accepts -> (model in eval mode on ``device``, VGG19 tensors, info).

    Accepted: this package's model file, an official KeypointNeRF Lightning ``last.ckpt``, a training run's
    Lightning checkpoint (or its run folder). ``info`` has ``kind``, ``path`` and ``render`` (the sampling
    settings stored with the model, a dict of ``RenderConfig`` fields; {} = the defaults).
    """
    path = resolve_checkpoint_path(path)
    ckpt = safe_torch_load(path)
    source = str(path)
    if not isinstance(ckpt, dict):
        raise UserError(f"{source}: not a checkpoint (top level is {type(ckpt).__name__})")
    for entry in ("state_dict", "vgg19"):
        tensors = ckpt.get(entry)
        if tensors is None:
            continue
        bad = [str(k) for k, v in tensors.items() if not torch.is_tensor(v)] if isinstance(tensors, dict) else [""]
        if bad:
            raise UserError(f"{source}: its {entry} must map names to tensors"
                            + (f" ({', '.join(bad[:5])} are not)" if any(bad) else ""))
    if ckpt.get("format") == FORMAT:
        if not isinstance(ckpt.get("model_config"), dict) or "state_dict" not in ckpt:
            raise UserError(f"{source}: a keypointnerf model file without its model_config or state_dict")
        model = _model_from_package_state(ckpt["model_config"], ckpt["state_dict"], source)
        vgg, kind = ckpt.get("vgg19") or {}, "package"
        render = ckpt.get("render_config") or {}
    elif isinstance(ckpt.get("state_dict"), dict) and "model.mlp_geo.layers1.layers.0.linear.weight_v" in ckpt["state_dict"]:
        model, vgg = import_official(ckpt, source)
        kind, render = "official", {}
    elif isinstance(ckpt.get("state_dict"), dict) and isinstance(ckpt.get("hyper_parameters"), dict):
        hparams = ckpt["hyper_parameters"]
        cfg = (hparams.get("config") or {}).get("model") if isinstance(hparams.get("config"), dict) else None
        if cfg is None:
            raise UserError(f"{source}: Lightning checkpoint without a keypointnerf model config")
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        model = _model_from_package_state(cfg, state, source)
        vgg = {k[len("vgg19."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("vgg19.")}
        kind = "training"
        # the sampling a run was trained with; its training-only settings (jitter, noise, chunking) stay behind
        render = {k: v for k, v in (hparams["config"].get("render") or {}).items()
                  if k in ("coarse_samples", "fine_samples")}
    else:
        raise UserError(f"{source}: not a keypointnerf, official KeypointNeRF or training checkpoint")
    model = model.to(device).eval()
    if not isinstance(render, dict):
        raise UserError(f"{source}: render settings are not a mapping")
    return model, vgg, {"kind": kind, "path": source, "render": dict(render)}
