"""Training: configs and presets, the perceptual loss, view dropout, and the ``train`` command end to end:
resume after SIGKILL at the saved step with the saved optimizer state, 2-process DDP on the CPU (gloo), and
refusals of bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from keypointnerf.cli import main as cli_main
from keypointnerf.data.sample import Sample, SampleInfo
from keypointnerf.errors import UserError
from keypointnerf.model.checkpoint import load_model
from keypointnerf.train.config import OptimConfig, TrainConfig, train_preset
from keypointnerf.train.losses import VGGPerceptualLoss, _vgg19_features, dssim, load_vgg19_weights, silhouette_bce
from keypointnerf.train.module import drop_views, jitter_keypoints

from helpers import assert_names

# a tiny, fast training set-up for the 128 px test images
FAST = ["--set", "render.coarse_samples=8", "--set", "render.fine_samples=8", "--set", "data.patch_size=16",
        "--set", "val_every_steps=0", "--set", "data.cache_mb=64"]


def _train_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "keypointnerf.cli", "train", "--preset", "small", "--data", str(data), "--out",
            str(out), "--device", "cpu", "--threads", "1", "--no-progress", *FAST, *extra]


def _read_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _adam_step(checkpoint: dict) -> int:
    states = checkpoint["optimizer_states"][0]["state"]
    return int(next(iter(states.values()))["step"])


# ------------------------------------------------------------------------------------------------ config
def test_presets_and_yaml_round_trip(tmp_path):
    from keypointnerf.configio import load_yaml, save_yaml
    zju, small = train_preset("zju"), train_preset("small")
    assert zju.model.geo_channels == 256 and zju.render.coarse_samples == 64 and zju.data.patch_size == 64
    assert zju.loss.l1_coarse == 1.0 and zju.loss.l1_fine == 10.0 and zju.loss.perceptual == 0.5
    assert zju.optim.lr == 5e-4 and zju.optim.epochs == 30
    assert small.model.geo_channels < zju.model.geo_channels and small.render.coarse_samples < 64
    save_yaml(small, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "!!python" not in text                      # plain YAML, no pickled objects
    assert load_yaml(TrainConfig, tmp_path / "c.yaml") == small
    with pytest.raises(UserError, match="huge"):
        train_preset("huge")
    # a config written before render.grad_checkpoint existed still loads, with the key's default
    data = yaml.safe_load(text)
    del data["render"]["grad_checkpoint"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))
    assert load_yaml(TrainConfig, tmp_path / "old.yaml") == small and small.render.grad_checkpoint


def test_small_model_fits_the_size_budget():
    from keypointnerf.model.keypointnerf import KeypointNeRF
    model = KeypointNeRF(train_preset("small").model)
    megabytes = sum(p.numel() for p in model.parameters()) * 4 / 1e6
    assert megabytes <= 25


# ------------------------------------------------------------------------------------------------ losses
@pytest.fixture
def vgg_file(tmp_path) -> Path:
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in _vgg19_features().state_dict().items()}
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    return path


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_difference(vgg_file):
    loss = VGGPerceptualLoss(load_vgg19_weights(vgg_file))
    image = torch.rand(1, 3, 32, 32)
    assert float(loss(image, image)) == 0.0
    small = float(loss(image + 0.01 * torch.randn_like(image), image))
    large = float(loss(image + 0.2 * torch.randn_like(image), image))
    assert 0 < small < large
    prediction = image.clone().requires_grad_(True)
    loss(prediction, torch.rand_like(image)).backward()
    assert prediction.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())   # frozen


def test_vgg_weights_errors_name_the_file(tmp_path, vgg_file):
    with pytest.raises(UserError, match="missing.pth"):
        load_vgg19_weights(tmp_path / "missing.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="broken.pth"):
        load_vgg19_weights(broken)
    state = load_vgg19_weights(vgg_file)
    with pytest.raises(UserError, match=r"x.pth.*features.0.bias"):             # the file and the tensor
        VGGPerceptualLoss({"features.0.weight": state["features.0.weight"]}, source="x.pth")
    with pytest.raises(UserError, match=r"x.pth.*features.2.weight.*\(1,\)"):    # and the wrong shape
        VGGPerceptualLoss({**state, "features.2.weight": torch.zeros(1)}, source="x.pth")


def test_learning_rate_is_constant_then_follows_a_cosine_to_its_final_value():
    optim = OptimConfig(lr=1e-3, max_steps=300, lr_decay_start=100, lr_final=1e-4)
    assert optim.lr_at(0) == optim.lr_at(99) == 1e-3
    assert optim.lr_at(100) == pytest.approx(1e-3)
    assert optim.lr_at(200) == pytest.approx(5.5e-4)            # half way: the mean of the two rates
    assert optim.lr_at(300) == optim.lr_at(400) == pytest.approx(1e-4)
    assert OptimConfig(lr=1e-3).lr_at(10**6) == 1e-3


def test_dssim_matches_the_evaluation_ssim_and_has_gradients():
    from skimage.metrics import structural_similarity
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 32, 32, generator=generator)
    b = (a + 0.1 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
    as_numpy = lambda x: x[0].permute(1, 2, 0).double().numpy()  # noqa: E731
    expected = structural_similarity(as_numpy(a), as_numpy(b), channel_axis=-1, win_size=7, data_range=1.0)
    prediction = a.clone().requires_grad_()
    loss = dssim(prediction, b)
    assert 1 - float(loss.detach()) == pytest.approx(expected, abs=0.005)   # torchmetrics pads where skimage crops
    assert float(dssim(a, a)) == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert prediction.grad.abs().sum() > 0


def test_silhouette_bce_known_values_and_gradient_of_an_empty_ray():
    # -(ln 0.5 + ln 0.1) / 2 = 1.4979 (eps 1e-4 inside the logs moves it by 5e-4)
    value = silhouette_bce(torch.tensor([0.5, 0.9]), torch.tensor([1.0, 0.0]))
    assert float(value) == pytest.approx(1.4979, abs=1e-3)
    assert float(silhouette_bce(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))) < 2e-4
    empty = torch.zeros(1, requires_grad=True)          # an empty ray inside the mask must be pushed to opacity 1
    loss = silhouette_bce(empty, torch.ones(1))
    loss.backward()
    assert torch.isfinite(loss) and -1e4 - 1 < float(empty.grad) < -1e3


@pytest.mark.parametrize("fine_samples", [0, 8])
def test_loss_counts_each_render_pass_once(monkeypatch, fine_samples):
    # a stub render: coarse rgb 0.25, output rgb 0.5, coarse opacity 0.9, output opacity 0.5; target 0, mask 1
    import math
    from types import SimpleNamespace

    from keypointnerf.train import module as train_module
    from keypointnerf.train.config import config_to_dict
    cfg = train_preset("small")
    cfg.render.fine_samples = fine_samples
    cfg.loss.perceptual, cfg.loss.ssim, cfg.loss.mask = 0.0, 0.0, 1.0
    trainer = train_module.KeypointNeRFTraining(config_to_dict(cfg))
    monkeypatch.setattr(trainer.model, "encode", lambda *inputs, **options: SimpleNamespace(num_views=3))
    rays = 16
    stub = {"rgb_coarse": torch.full((rays, 3), 0.25), "rgb": torch.full((rays, 3), 0.5),
            "opacity_coarse": torch.full((rays,), 0.9), "opacity": torch.full((rays,), 0.5)}
    if fine_samples == 0:   # as the renderer: with one pass the output is that pass
        stub.update(rgb_coarse=stub["rgb"], opacity_coarse=stub["opacity"])
    monkeypatch.setattr(train_module, "render_pixels", lambda *args, **kwargs: stub)
    pixels = torch.stack([torch.arange(rays) % 4, torch.arange(rays) // 4], dim=1)
    sample = Sample(views=SimpleNamespace(num_views=3), bounds=None, tgt_image=torch.zeros(3, 4, 4),
                    tgt_mask=torch.ones(1, 4, 4), tgt_K=None, tgt_Rt=None, info=None, pixels=pixels)
    total = float(trainer._losses(sample)["loss"])
    eps = 1e-4   # silhouette_bce's
    if fine_samples == 0:   # 10 * 0.5 + 1 * -ln(0.5)
        expected = 10 * 0.5 - math.log(0.5 + eps)
    else:                   # 10 * 0.5 + 1 * 0.25 - ln(0.5) - ln(0.9)
        expected = 10 * 0.5 + 0.25 - math.log(0.5 + eps) - math.log(0.9 + eps)
    assert total == pytest.approx(expected, rel=1e-5)


def _scene_sample(scene: dict, uu: torch.Tensor, vv: torch.Tensor) -> Sample:
    """A training sample of ``helpers.make_scene``'s scene whose target patch is the pixels (uu, vv)."""
    return Sample(views=scene["views"], bounds=scene["bounds"], tgt_image=scene["tgt_image"],
                  tgt_mask=scene["tgt_mask"], tgt_K=scene["tgt_K"], tgt_Rt=scene["tgt_Rt"],
                  info=SampleInfo("scene", 0, (0, 1, 2), 3), pixels=torch.stack([uu.reshape(-1), vv.reshape(-1)], 1))


def _seed_keeping(views: int, kept: int) -> int:
    """A seed of the view-dropout generator whose first draw keeps ``kept`` of ``views`` views."""
    return next(seed for seed in range(100) if len(drop_views(views, torch.Generator().manual_seed(seed))) == kept)


@pytest.mark.parametrize("kept", [1, 2, 3])
def test_training_path_gives_the_plain_paths_loss_and_gradients(monkeypatch, one_torch_thread, kept):
    # the training step's render (culled rays and samples, coarse values reused, networks recomputed in the
    # backward pass, the dropped views neither encoded nor run through the per-view networks) against the plain
    # one (every sample of every ray, every view, activations kept), with the training randomness on: jitter,
    # density noise, random importance draws, view dropout keeping `kept` of the 3 views
    from helpers import make_scene

    from keypointnerf.render.renderer import RenderStats
    from keypointnerf.train import module as train_module
    from keypointnerf.train.config import config_to_dict
    cfg = train_preset("small")
    cfg.render.coarse_samples, cfg.render.fine_samples, cfg.render.max_points = 16, 16, 500
    cfg.loss.ssim, cfg.loss.mask = 1.0, 0.5
    scene = make_scene(size=64)
    # a 16 x 16 patch across the top of the silhouette: some of its rays cannot meet the visual hull
    vv, uu = torch.meshgrid(torch.arange(0, 16), torch.arange(24, 40), indexing="ij")
    sample = _scene_sample(scene, uu, vv)
    results, render = {}, train_module.render_pixels
    for path, settings in (("training", {}), ("plain", {"cull": False, "grad_checkpoint": False})):
        torch.manual_seed(0)
        trainer = train_module.KeypointNeRFTraining(config_to_dict(cfg))
        with torch.no_grad():   # a density that is positive inside the hull, so the patch is not empty
            trainer.model.geometry_mlp.fused_out.bias[1] = 3.0
        for key, value in settings.items():
            setattr(trainer.render_cfg, key, value)
        stats, encodings, encode = RenderStats(), [], trainer.model.encode
        monkeypatch.setattr(train_module, "render_pixels", lambda *a, **k: render(*a, **k, stats=stats))
        monkeypatch.setattr(trainer.model, "encode", lambda *a, **k: encodings.append(encode(*a, **k)) or encodings[-1])
        torch.manual_seed(1)
        trainer._dropout_rng.manual_seed(_seed_keeping(3, kept))
        losses = trainer._losses(sample)
        losses["loss"].backward()
        grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
        results[path] = float(losses["loss"].detach()), grads, stats
        (enc,) = encodings
        assert int(enc.view_mask.sum()) == kept
        # the fast path encodes only the kept views; the plain one all three
        assert len(enc.geo_features) == (kept if path == "training" else 3)
    (loss, grads, stats), (plain_loss, plain_grads, plain_stats) = results["training"], results["plain"]
    assert stats.rays_skipped > 0 and stats.geometry_evaluations < plain_stats.geometry_evaluations / 2
    assert loss == pytest.approx(plain_loss, rel=1e-5)
    assert grads.keys() == plain_grads.keys() and len(grads) == len(list(trainer.model.parameters()))
    # float tolerance against the largest gradient (some are 0 up to rounding: biases before InstanceNorm)
    scale = max(float(g.abs().max()) for g in plain_grads.values())
    assert scale > 0
    worst = max(float((grads[name] - plain_grads[name]).abs().max()) for name in grads)
    print(f"largest gradient {scale:.3g}, largest difference {worst:.3g}")
    for name, grad in grads.items():
        assert torch.allclose(grad, plain_grads[name], rtol=1e-4, atol=1e-6 * scale), name


def test_view_dropout_keeps_at_least_one_view_and_drops_half_of_the_others():
    generator = torch.Generator().manual_seed(0)
    draws = [drop_views(3, generator) for _ in range(3000)]
    assert all(1 <= len(d) <= 3 and d == sorted(set(d)) for d in draws)
    # a view is kept when chosen (1/3) or when it survives otherwise (2/3 * 1/2): 2/3 in all
    kept = torch.tensor([[v in d for v in range(3)] for d in draws], dtype=torch.float).mean(0)
    assert torch.allclose(kept, torch.full((3,), 2 / 3), atol=0.03)
    assert drop_views(1, generator) == [0]


def test_keypoint_jitter_has_the_asked_spread_and_repeats_for_a_seed():
    keypoints = torch.rand(24, 3, dtype=torch.float32)
    draws = torch.stack([jitter_keypoints(keypoints, 2.0, torch.Generator().manual_seed(s)) for s in range(400)])
    noise = draws - keypoints
    assert draws.dtype == torch.float32
    assert abs(float(noise.mean())) < 0.001 and abs(float(noise.std()) - 0.02) < 0.0005   # 2 cm in metres
    again = jitter_keypoints(keypoints, 2.0, torch.Generator().manual_seed(7))
    assert torch.equal(again, draws[7])


# ------------------------------------------------------------------------------------------------ command
def test_train_resumes_after_sigkill_at_the_saved_step(synth_set, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(_train_command(synth_set, run, "--set", "optim.max_steps=100000", "--set",
                                              "checkpoint_every_steps=2"),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    saved_step = 0
    while time.time() < deadline and process.poll() is None:
        if last.is_file():
            try:
                saved_step = int(_read_checkpoint(last)["global_step"])
            except Exception:  # noqa: BLE001 - the file may be mid-rename; read again
                saved_step = 0
            if saved_step >= 4:
                break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert saved_step >= 4, process.stderr.read().decode()[-2000:]
    killed = _read_checkpoint(last)                       # whatever the kill left must be a complete file
    step = int(killed["global_step"])
    assert step >= 4 and _adam_step(killed) == step
    weights_at_kill = {k: v.clone() for k, v in killed["state_dict"].items()}

    # a later phase: its own learning-rate schedule, a D-SSIM term and a mask term
    resume = [sys.executable, "-m", "keypointnerf.cli", "train", "--out", str(run), "--resume", "--set",
              f"optim.max_steps={step + 3}", "--set", "optim.lr=2e-4", "--set", f"optim.lr_decay_start={step}",
              "--set", "optim.lr_final=1e-5", "--set", "loss.ssim=0.5", "--set", "loss.mask=1",
              "--set", "data.view_dropout=false", "--set", "log_every_steps=1", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    final = _read_checkpoint(last)
    # continued from the saved step with the saved Adam state: from scratch it would be step 3 / Adam step 3
    assert int(final["global_step"]) == step + 3
    assert _adam_step(final) == step + 3
    moved = [k for k in weights_at_kill if not torch.equal(weights_at_kill[k], final["state_dict"][k])]
    assert moved, "the resumed run did not train"
    # the optimiser ran the new schedule, not the restored rate; the D-SSIM and mask terms were part of the loss
    phase = OptimConfig(lr=2e-4, max_steps=step + 3, lr_decay_start=step, lr_final=1e-5)
    assert final["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(phase.lr_at(step + 2))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "logs"), size_guidance={"scalars": 0})
    events.Reload()
    logged_lr = {e.step: e.value for e in events.Scalars("train/lr")}
    assert logged_lr[step] == pytest.approx(2e-4) and logged_lr[step + 2] == pytest.approx(phase.lr_at(step + 2))
    assert 0 < events.Scalars("train/dssim")[-1].value < 1
    assert events.Scalars("train/mask")[-1].value > 0
    # the folder holds the config now in force, and the one it replaced
    in_force = yaml.safe_load((run / "config.yaml").read_text())
    assert in_force["optim"]["max_steps"] == step + 3 and in_force["data"]["view_dropout"] is False
    assert yaml.safe_load((run / "config.phase1.yaml").read_text())["optim"]["max_steps"] == 100000
    model, _, info = load_model(run / "model.ckpt")
    assert info["render"] == {"coarse_samples": 8, "fine_samples": 8}
    assert model.cfg == train_preset("small").model


def test_ddp_two_processes_on_cpu(synth_set, tmp_path):
    run = tmp_path / "ddp"
    result = subprocess.run(_train_command(synth_set, run, "--set", "optim.max_steps=2", "--devices", "2",
                                           "--strategy", "ddp", "--set", "val_every_steps=1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr and "gloo" in result.stderr
    checkpoint = _read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert int(checkpoint["global_step"]) == 2
    assert (run / "model.ckpt").is_file() and (run / "config.yaml").is_file()
    # rank 0 rendered the held-out view after each step, once each
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/psnr")] == [1, 2]


def test_bad_input_stops_before_any_work(synth_set, tmp_path, capsys):
    base = ["train", "--preset", "small", "--device", "cpu", "--no-progress"]
    assert cli_main(base + ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r1")]) == 2
    assert_names(capsys.readouterr().err, tmp_path / "nowhere")
    assert not (tmp_path / "r1").exists()

    assert cli_main(base + ["--data", str(synth_set), "--out", str(tmp_path / "r2"), "--set", "optim.speed=3"]) == 2
    assert_names(capsys.readouterr().err, "optim.speed")
    # each refused setting is named with its value (and the setting it conflicts with, or the choices there are)
    for settings, named in ((["optim.max_steps=10", "optim.lr_decay_start=10"], ["optim.lr_decay_start=10",
                                                                                  "optim.max_steps"]),
                            (["loss.ssim=1", "data.patch_size=4"], ["loss.ssim", "data.patch_size", "7"]),
                            (["optim.lr_final=nan"], ["optim.lr_final=nan"]),
                            (["loss.ssim=-1"], ["loss.ssim=-1"]),
                            (["render.supersample=2"], ["render.supersample=2"]),
                            (["loss.mask=nan"], ["loss.mask=nan"]),
                            (["optim.precision=16-mixed"], ["optim.precision=16-mixed", "32", "bf16-mixed"])):
        overrides = [arg for setting in settings for arg in ("--set", setting)]
        assert cli_main(base + ["--data", str(synth_set), "--out", str(tmp_path / "r5"), *overrides]) == 2, settings
        assert_names(capsys.readouterr().err, *named)
    assert not (tmp_path / "r5").exists()

    existing = tmp_path / "r3"
    (existing / "checkpoints").mkdir(parents=True)
    (existing / "config.yaml").write_text("keep: me\n")
    assert cli_main(base + ["--data", str(synth_set), "--out", str(existing)]) == 2
    assert_names(capsys.readouterr().err, existing, "--force")
    assert (existing / "config.yaml").read_text() == "keep: me\n"     # nothing overwritten

    assert cli_main(base + ["--out", str(tmp_path / "r4"), "--resume"]) == 2
    assert_names(capsys.readouterr().err, tmp_path / "r4", "config.yaml")
    assert not (tmp_path / "r4").exists()


def test_resume_refuses_architecture_changes(tmp_path, capsys):
    from keypointnerf.configio import save_yaml
    from keypointnerf.model.checkpoint import save_model
    from keypointnerf.model.keypointnerf import KeypointNeRF
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_yaml(train_preset("small"), run / "config.yaml")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert cli_main(["train", "--out", str(run), "--resume", "--set", "model.geo_channels=32"]) == 2
    assert_names(capsys.readouterr().err, "model.geo_channels")
    assert cli_main(["train", "--out", str(run), "--resume"]) == 2          # an empty file is no checkpoint
    assert_names(capsys.readouterr().err, run / "checkpoints" / "last.ckpt")
    # a model file is no training checkpoint: nothing to resume from
    save_model(run / "checkpoints" / "last.ckpt", KeypointNeRF(train_preset("small").model))
    assert cli_main(["train", "--out", str(run), "--resume"]) == 2
    assert_names(capsys.readouterr().err, run / "checkpoints" / "last.ckpt")
    # a training checkpoint of another architecture than the run's config
    from keypointnerf.configio import to_dict
    other = train_preset("zju")
    torch.save({"state_dict": {f"model.{k}": v for k, v in KeypointNeRF(other.model).state_dict().items()},
                "global_step": 1, "optimizer_states": [], "hyper_parameters": {"config": to_dict(other)}},
               run / "checkpoints" / "last.ckpt")
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    assert cli_main(["train", "--out", str(run), "--resume"]) == 2
    assert_names(capsys.readouterr().err, run / "checkpoints" / "last.ckpt", run / "config.yaml")   # the two that differ
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_fine_tuning_from_an_official_checkpoint_uses_its_vgg_weights(official_checkpoint, synth_set, tmp_path):
    run = tmp_path / "finetune"
    result = subprocess.run(_train_command(synth_set, run, "--init", str(official_checkpoint), "--set",
                                           "optim.max_steps=1", "--set", "log_every_steps=1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    model, _, _ = load_model(run / "model.ckpt")
    official, _, _ = load_model(official_checkpoint)
    assert model.cfg == official.cfg                            # the architecture came from the checkpoint
    # one Adam step from the official weights: every trained tensor moves by about lr, not more
    state = model.state_dict()
    steps = [float((state[k] - v).abs().max()) for k, v in official.state_dict().items() if v.is_floating_point()]
    assert max(steps) > 0 and max(steps) < 10 * train_preset("small").optim.lr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert "train/perceptual" in events.Tags()["scalars"]     # the official file's VGG19 tensors serve the loss
    # the VGG tensors are kept beside the run, so a resumed run still has its perceptual term
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["loss"]["vgg_weights"] == str((run / "vgg19.pth").resolve())
    resume = [sys.executable, "-m", "keypointnerf.cli", "train", "--out", str(run), "--resume", "--set",
              "optim.max_steps=2", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/perceptual")][-1] >= 1


def test_training_checkpoint_of_another_architecture_is_refused(tmp_path):
    from keypointnerf.model.checkpoint import save_model
    from keypointnerf.model.keypointnerf import KeypointNeRF
    path = tmp_path / "m.ckpt"
    save_model(path, KeypointNeRF(train_preset("small").model))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model_config"]["geo_out_channels"] = 16          # claims another architecture
    torch.save(checkpoint, path)
    with pytest.raises(UserError) as err:
        load_model(path)
    assert_names(str(err.value), path, 16)                          # the file, the claimed channels in the shapes


def test_fine_tuning_may_change_only_settings_that_keep_the_weights_meaning(synth_set, tmp_path, capsys):
    init = Path(__file__).resolve().parents[2] / "models" / "small.ckpt"    # --init needs a trained model
    start, _, _ = load_model(init)
    assert start.cfg.image_pool == 1
    base = ["train", "--preset", "small", "--data", str(synth_set), "--device", "cpu", "--threads", "1",
            "--no-progress", "--init", str(init), *FAST]
    # a wider geometry encoder (other shapes), GroupNorm over other groups (same shapes, other meaning):
    # refused before any work, the field named
    for override, named in (("model.geo_out_channels=16", ["model.geo_out_channels", "32", "16"]),
                            ("model.norm_groups=4", ["model.norm_groups", "8", "4"])):
        out = tmp_path / override
        assert cli_main(base + ["--out", str(out), "--set", override]) == 2
        assert_names(capsys.readouterr().err, init, *named, "model.image_pool")   # ... and what may change
        assert not out.exists()
    # the scale the encoders see the sources at is no weight: one step at image_pool 2 from the same weights
    run = tmp_path / "pool2"
    assert cli_main(base + ["--out", str(run), "--set", "model.image_pool=2", "--set", "optim.max_steps=1"]) == 0
    model, _, _ = load_model(run / "model.ckpt")
    assert model.cfg.image_pool == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["image_pool"] == 2
    steps = [float((model.state_dict()[k] - v).abs().max()) for k, v in start.state_dict().items()
             if v.is_floating_point()]
    assert 0 < max(steps) < 10 * train_preset("small").optim.lr     # one Adam step from the given weights


def test_bf16_mixed_training_step_runs_on_the_cpu_and_stays_near_the_float32_loss(one_torch_thread):
    # optim.precision=bf16-mixed: the step's forward pass under the autocast Lightning's Trainer puts around
    # training_step (MixedPrecision.forward_context), the backward pass outside it; same weights, sample and seeds
    from helpers import make_scene
    from lightning.pytorch.plugins.precision import MixedPrecision

    from keypointnerf.train import module as train_module
    from keypointnerf.train.config import config_to_dict
    cfg = train_preset("small")
    cfg.render.coarse_samples, cfg.render.fine_samples = 8, 8
    cfg.data.view_dropout = False
    scene = make_scene(size=32)
    vv, uu = torch.meshgrid(torch.arange(12, 20), torch.arange(12, 20), indexing="ij")   # 8 x 8 on the person
    sample = _scene_sample(scene, uu, vv)
    results = {}
    for precision in ("32", "bf16-mixed"):
        torch.manual_seed(0)
        trainer = train_module.KeypointNeRFTraining(config_to_dict(cfg))
        with torch.no_grad():   # a density that is positive inside the hull, so the patch is not empty
            trainer.model.geometry_mlp.fused_out.bias[1] = 3.0
        torch.manual_seed(1)
        if precision == "32":
            losses = trainer._losses(sample)
        else:
            with MixedPrecision(precision, "cpu").forward_context():
                losses = trainer._losses(sample)
        losses["loss"].backward()
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        results[precision] = float(losses["loss"].detach()), losses["loss"].dtype
    (loss, dtype), (bf16_loss, bf16_dtype) = results["32"], results["bf16-mixed"]
    assert dtype == bf16_dtype == torch.float32 and loss > 0
    # bf16 keeps 8 bits of mantissa (~0.4 % per rounding); measured here: a few % (see the README)
    assert bf16_loss == pytest.approx(loss, rel=0.1)
    assert bf16_loss != loss    # the autocast was in force


def test_a_loader_worker_decodes_each_view_once_and_serves_later_samples_from_its_cache(synth_set, tmp_path,
                                                                                           monkeypatch):
    # data.loader_workers=1: the worker process (forked, persistent across epochs) reads each image file once
    import os

    from keypointnerf.data import zju
    from keypointnerf.train.module import TrainData
    log = tmp_path / "decodes.txt"
    read = zju.read_image_file

    def counted(path):
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {path}\n")
        return read(path)

    monkeypatch.setattr(zju, "read_image_file", counted)
    cfg = train_preset("small")
    cfg.data.root, cfg.data.patch_size, cfg.data.loader_workers = str(synth_set), 16, 1
    loader = TrainData(cfg).train_dataloader()
    samples = [sample for _ in range(3) for sample in loader]      # 3 epochs of the 2 training frames
    assert len(samples) == 6
    decodes = [line.split(" ", 1) for line in log.read_text().splitlines()]
    paths = [path for _, path in decodes]
    assert {pid for pid, _ in decodes} != {str(os.getpid())}       # decoded in the worker, not here
    assert len(paths) == len(set(paths)) >= 4                      # every image file once
    views = {(s.info.frame, cam) for s in samples for cam in [*s.info.src_cams, s.info.tgt_cam]}
    assert len(paths) >= len(views)
