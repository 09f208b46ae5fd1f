"""Any number of keypoints K: the reader, ``data check``, the model (encode, render), training and a checkpoint
round trip with K = 11, and the refusal of data whose K differs from the checkpoint's (render, eval, export,
train --init / --resume)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from keypointnerf.cli import main
from keypointnerf.data.check import check_data
from keypointnerf.data.datasets import TrainDataset
from keypointnerf.data.loading import load_sources
from keypointnerf.data.zju import ZJUSubject
from keypointnerf.errors import UserError
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import load_model, save_model
from keypointnerf.render.orbit import describe_body_frame
from keypointnerf.render.renderer import RenderConfig, render_image

from helpers import assert_names
from zju_fixtures import CENTRE, RADII, fibonacci_sphere, make_subject, save_pickled, write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 11


def _with_keypoints(subject_dir, count: int):
    """Replace every frame's keypoints of a fixture subject by ``count`` points inside its ellipsoid."""
    for path in (subject_dir / "joints3d").glob("*.npy"):
        np.save(path, (CENTRE + 0.6 * RADII * fibonacci_sphere(count)).astype(np.float32))
    return subject_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A split set of two 11-keypoint subjects (train A, test B; 4 cameras, 1 frame, 64 px) and a random small
    model file for 24 keypoints."""
    root = tmp_path_factory.mktemp("k11")
    for name in ("A", "B"):
        _with_keypoints(make_subject(root, name=name, cameras=4, frames=1, size=64), K)
    write_split(root, train=["A"], test=["B"])
    torch.manual_seed(0)
    body_model = root / "body24.ckpt"
    save_model(body_model, KeypointNeRF(model_preset("small")), render={"coarse_samples": 4, "fine_samples": 0})
    return {"root": root, "body_model": body_model}


def test_the_reader_takes_k_from_the_data_and_refuses_a_frame_with_another(tmp_path):
    subject_dir = _with_keypoints(make_subject(tmp_path, cameras=4, frames=2, size=64), K)
    subject = ZJUSubject(subject_dir)
    assert subject.num_keypoints == K and subject.keypoints(1).shape == (K, 3)
    np.save(subject_dir / "joints3d" / "1.npy", np.zeros((24, 3), np.float32) + np.arange(3, dtype=np.float32))
    with pytest.raises(UserError) as err:
        ZJUSubject(subject_dir).keypoints(1)
    assert_names(str(err.value), subject_dir / "joints3d" / "1.npy", (24, 3), (11, 3))


def test_data_check_reports_k_and_mixed_counts(tmp_path):
    for name, count in (("A", K), ("B", K), ("C", 24)):
        _with_keypoints(make_subject(tmp_path, name=name, cameras=4, frames=1, size=64), count)
    summary = check_data(tmp_path)
    assert [s["keypoints"] for s in summary["subjects"]] == [K, K, 24]
    assert all(s["problem_count"] == 0 for s in summary["subjects"])
    assert not summary["ok"] and summary["problem_count"] == 1
    assert_names(summary["keypoint_problems"][0], "11 in", "24 in", tmp_path / "C")   # the counts and who has them
    with pytest.raises(UserError) as err:   # the datasets refuse such a set
        TrainDataset(tmp_path, "all", downsample=1.0, patch_size=8)
    assert_names(str(err.value), "11 in", "24 in", tmp_path / "C")


def test_encode_and_render_with_k_keypoints(data):
    subject = ZJUSubject(data["root"] / "A", downsample=1.0)
    views = load_sources(subject, 0, [0, 1, 2])
    bounds = torch.from_numpy(subject.bounds(0))
    assert views.keypoints.shape == (K, 3)
    torch.manual_seed(0)
    for encoding, channels in (("rel_z_decay", 7 * K), ("rel_xyz", 21 * K)):
        model = KeypointNeRF(model_preset("small", num_keypoints=K, spatial_encoding=encoding)).eval()
        assert model.cfg.spatial_channels == channels
        with torch.no_grad():
            enc = model.encode(views)
            K_t, Rt_t = (torch.from_numpy(a) for a in subject.camera(3))
            result = render_image(model, enc, K_t, Rt_t, 64, 64, bounds,
                                  RenderConfig(coarse_samples=8, fine_samples=0))
        assert result["rgb"].shape == (3, 64, 64) and torch.isfinite(result["rgb"]).all()
    with pytest.raises(ValueError, match=r"\(24, 3\).*\(11, 3\)"):          # the shape given and the one expected
        model.encode(dataclasses.replace(views, keypoints=torch.zeros(24, 3)))


def test_checkpoint_records_k_and_round_trips(tmp_path):
    torch.manual_seed(1)
    model = KeypointNeRF(model_preset("small", num_keypoints=K)).eval()
    save_model(tmp_path / "m.ckpt", model)
    loaded, _, _ = load_model(tmp_path / "m.ckpt")
    assert loaded.cfg.num_keypoints == K and loaded.cfg == model.cfg
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_training_takes_k_from_the_data_and_its_model_renders_it(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "small", "--data", str(data["root"]), "--out", str(run), "--device", "cpu",
                 "--no-progress", "--set", "optim.max_steps=1", "--set", "render.coarse_samples=4",
                 "--set", "render.fine_samples=0", "--set", "data.patch_size=8", "--set", "val_every_steps=0",
                 "--set", "data.downsample=1.0"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["num_keypoints"] == K
    model, _, info = load_model(run / "model.ckpt")
    assert model.cfg.num_keypoints == K and info["kind"] == "package"
    # the trained model renders the 11-keypoint data; resuming on 24-keypoint data is refused
    assert main(["render", "--checkpoint", str(run / "model.ckpt"), "--data", str(data["root"] / "B"),
                 "--sources", "0,1,2", "--targets", "3", "--downsample", "1.0", "--device", "cpu",
                 "-o", str(tmp_path / "views")]) == 0
    capsys.readouterr()
    body = tmp_path / "body"
    make_subject(body, name="C", cameras=4, frames=1, size=64)
    assert main(["train", "--out", str(run), "--resume", "--data", str(body), "--no-progress",
                 "--set", "optim.max_steps=2"]) == 2
    err = capsys.readouterr().err
    assert_names(err, run / "checkpoints" / "last.ckpt", body, 11, 24)   # both files and both counts


def test_another_k_is_refused_naming_both(data, tmp_path, capsys):
    common = ["--checkpoint", str(data["body_model"]), "--device", "cpu"]
    subject = str(data["root"] / "B")
    commands = {
        "render": ["render", *common, "--data", subject, "--sources", "0,1,2", "--targets", "3", "--downsample", "1.0",
                   "-o", str(tmp_path / "r")],
        "eval": ["eval", *common, "--data", str(data["root"]), "--downsample", "1.0", "-o", str(tmp_path / "e")],
        "export": ["export-mesh", *common, "--data", subject, "--sources", "0,1,2", "--downsample", "1.0",
                   "-o", str(tmp_path / "m.ply")],
        "train --init": ["train", "--init", str(data["body_model"]), "--data", str(data["root"]), "--out",
                         str(tmp_path / "t"), "--no-progress"],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert_names(err, data["body_model"], 24, 11)
    assert not any((tmp_path / name).exists() for name in ("r", "e", "m.ply", "t"))
    # an explicit model.num_keypoints that disagrees with the data is refused too
    assert main(["train", "--preset", "small", "--data", str(data["root"]), "--out", str(tmp_path / "t2"),
                 "--set", "model.num_keypoints=24"]) == 2
    assert_names(capsys.readouterr().err, "model.num_keypoints", 24, 11)
    assert not (tmp_path / "t2").exists()


def test_orbit_frame_of_other_keypoints_comes_from_rh(tmp_path):
    subject_dir = _with_keypoints(make_subject(tmp_path, cameras=4, frames=1, size=64), K)
    save_pickled(subject_dir / "params" / "0.npy", {"Rh": np.array([[0.0, 0.0, 0.5]]), "Th": np.zeros((1, 3)),
                                                   "anny_pose": np.zeros((4, 3))})
    up, facing, info = describe_body_frame(ZJUSubject(subject_dir), 0)
    assert info["source"] == "Rh"
    assert np.allclose(up, [0, 0, 1]) and np.allclose(facing, [np.sin(0.5), -np.cos(0.5), 0.0])
    (subject_dir / "params" / "0.npy").unlink()
    with pytest.raises(UserError) as err:
        describe_body_frame(ZJUSubject(subject_dir), 0)
    assert_names(str(err.value), subject_dir / "joints3d" / "0.npy", 11, 24)


def test_transfer_seeds_a_model_for_other_keypoints_with_the_matching_weights(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--preset", "small", "--data", str(data["root"]), "--out", str(run), "--device", "cpu",
            "--no-progress", "--transfer", str(data["body_model"]), "--set", "optim.max_steps=1",
            "--set", "render.coarse_samples=4", "--set", "render.fine_samples=0", "--set", "data.patch_size=8",
            "--set", "val_every_steps=0", "--set", "data.downsample=1.0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    body, _, _ = load_model(data["body_model"])
    model, _, _ = load_model(run / "model.ckpt")
    assert model.cfg.num_keypoints == K
    given = dict(body.named_parameters())
    moved = {name: (p - given[name]).abs().max().item() for name, p in model.named_parameters()
             if name in given and given[name].shape == p.shape}
    # what was copied is printed: the model it came from, how many parameters and their share of the weights
    share = sum(p.numel() for name, p in model.named_parameters() if name in moved) / \
        sum(p.numel() for p in model.parameters())
    assert_names(printed, data["body_model"], len(moved), f"{100 * share:.1f}%")
    # one Adam step of lr 5e-4 moves a weight by about 5e-4 at most: the copied ones stayed next to the body's
    assert any(name.startswith("geometry_encoder.") for name in moved)
    assert max(moved.values()) < 2e-3
    # the layers that read the keypoints' encoding have another shape for 11 keypoints: they start new
    assert any(given.get(name) is None or given[name].shape != p.shape for name, p in model.named_parameters())
    # --transfer with --init or --resume is refused, naming both options
    assert main([*argv[:argv.index("--set")], "--init", str(data["body_model"]), "--out", str(tmp_path / "x")]) == 2
    assert_names(capsys.readouterr().err, "--init", "--transfer")
    before = (run / "model.ckpt").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--transfer", str(data["body_model"])]) == 2
    assert_names(capsys.readouterr().err, "--resume", "--transfer")
    assert not (tmp_path / "x").exists() and (run / "model.ckpt").read_bytes() == before
