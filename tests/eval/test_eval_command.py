"""``keypointnerf eval`` end to end on a tiny ZJU-layout set with a random small model, and its refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from keypointnerf.cli import main
from keypointnerf.eval.metrics import LPIPS
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model

from helpers import assert_names
from zju_fixtures import make_subject, write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """split.json set, test subject B: 5 cameras (inputs 0, 2, 3; targets 1, 4), 2 frames, 128x128."""
    root = tmp_path_factory.mktemp("zju")
    make_subject(root, name="B", cameras=5, frames=2, size=128)
    write_split(root, train=[], test=["B"])
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    save_model(path, KeypointNeRF(model_preset("small")), render={"coarse_samples": 8, "fine_samples": 8})
    return path


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.pth"
    torch.save(LPIPS().state_dict(), path)
    return path


def run_eval(checkpoint, data, out, *options):
    return main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                 "--downsample", "1.0", "--device", "cpu", *options])


def test_eval_end_to_end(checkpoint, data_root, lpips_file, tmp_path, capsys, monkeypatch):
    encodes = []
    original = KeypointNeRF.encode

    def counting_encode(self, *args, **kwargs):
        encodes.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KeypointNeRF, "encode", counting_encode)
    out = tmp_path / "out"
    assert run_eval(checkpoint, data_root, out) == 0
    stdout = capsys.readouterr().out
    assert sum("--lpips-weights" in line for line in stdout.splitlines()) == 1   # LPIPS's absence said once

    report = json.loads((out / "metrics.json").read_text())
    mean = report["mean"]
    assert_names(stdout, out / "metrics.json", f"{mean['psnr']:.2f} dB", f"{mean['ssim']:.4f}")  # the means printed
    assert {"checkpoint", "checkpoint_kind", "model_config", "render_config", "data", "protocol", "images",
            "mean", "per_subject", "seconds"} <= set(report)
    assert report["checkpoint_kind"] == "package" and report["checkpoint"] == str(checkpoint)
    assert report["render_config"]["coarse_samples"] == 8 and report["render_config"]["fine_samples"] == 8
    protocol = report["protocol"]
    assert protocol["name"] == "split" and protocol["split"] == "test" and protocol["downsample"] == 1.0
    assert protocol["cameras"] == {"B": {"input": [0, 2, 3], "target": [1, 4]}}
    assert "data_range 2.0" in protocol["metrics_note"]

    images = report["images"]
    assert len(images) == 4 == report["mean"]["count"]   # 2 frames x 2 target cameras
    assert [(r["frame"], r["target_cam"]) for r in images] == [(0, 1), (0, 4), (1, 1), (1, 4)]
    assert len(encodes) == 2   # once per frame, shared by its target cameras
    for record in images:
        assert record["subject"] == "B" and record["source_cams"] == [0, 2, 3] and record["lpips"] is None
        assert 0 < record["psnr"] < 100 and 0 < record["psnr_box"] < 100
        assert -1 <= record["ssim"] <= record["ssim_official"] <= 1
    for key in ("psnr", "ssim", "ssim_official", "psnr_box"):
        assert report["mean"][key] == pytest.approx(np.mean([r[key] for r in images]))
        assert report["per_subject"]["B"][key] == pytest.approx(report["mean"][key])
    assert report["mean"]["lpips"] is None

    pngs = sorted(p.name for p in (out / "images").iterdir())
    assert pngs == ["B_0000_cam01.png", "B_0000_cam04.png", "B_0001_cam01.png", "B_0001_cam04.png"]
    with Image.open(out / "images" / pngs[0]) as panel:
        assert panel.size == (3 * 128, 128)
        pixels = np.asarray(panel.convert("RGB"))
    # the middle panel is the ground truth: background zeroed by the mask, the person visible
    assert pixels[:, 128:256].max() > 0 and pixels[0, 128:256].max() == 0

    # --force: replaces metrics.json and this command's images, keeps other files; LPIPS with a weights file
    (out / "notes.txt").write_text("mine")
    # (and --checkpoint given as the folder holding model.ckpt, as for a run folder)
    assert run_eval(checkpoint.parent, data_root, out, "--force", "--max-images", "1", "--no-images",
                    "--lpips-weights", str(lpips_file), "--coarse-samples", "4", "--fine-samples", "0",
                    "--supersample", "2") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["mean"]["count"] == 1 and report["mean"]["lpips"] > 0
    assert report["checkpoint"] == str(checkpoint)
    assert report["render_config"]["coarse_samples"] == 4 and report["render_config"]["fine_samples"] == 0
    assert report["render_config"]["supersample"] == 2
    assert (out / "notes.txt").read_text() == "mine" and list((out / "images").iterdir()) == []


def test_refuses_a_non_empty_out_dir(checkpoint, data_root, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert run_eval(checkpoint, data_root, out) == 2
    assert_names(capsys.readouterr().err, out, "--force")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_refuses_missing_inputs_and_wrong_checkpoints(checkpoint, data_root, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "no_such.ckpt"
    assert run_eval(missing, data_root, out) == 2
    assert_names(capsys.readouterr().err, missing)
    assert run_eval(checkpoint, tmp_path / "no_data", out) == 2
    assert_names(capsys.readouterr().err, tmp_path / "no_data")
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"weights": torch.zeros(3)}, wrong)
    assert run_eval(wrong, data_root, out) == 2
    assert_names(capsys.readouterr().err, wrong)
    assert run_eval(checkpoint, data_root, out, "--lpips-weights", str(tmp_path / "absent.pth")) == 2
    assert_names(capsys.readouterr().err, tmp_path / "absent.pth")
    assert run_eval(checkpoint, data_root, out, "--split", "train") == 2   # split.json lists no train subject
    assert_names(capsys.readouterr().err, "train")
    assert run_eval(checkpoint, data_root, out, "--supersample", "0") == 2
    assert_names(capsys.readouterr().err, "--supersample", "0")
    assert not out.exists()   # nothing written by a refused run


def test_train_split_uses_the_protocol_train_frames(checkpoint, tmp_path):
    root = tmp_path / "data"
    make_subject(root, name="A", cameras=5, frames=1, size=128)
    make_subject(root, name="B", cameras=5, frames=1, size=128)
    write_split(root, train=["A"], test=["B"])
    out = tmp_path / "out"
    assert run_eval(checkpoint, root, out, "--split", "train", "--max-images", "1", "--no-images") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"]["split"] == "train"
    assert [r["subject"] for r in report["images"]] == ["A"] and list(report["per_subject"]) == ["A"]


def test_a_set_from_elsewhere_is_evaluated_whole_at_its_own_image_size(checkpoint, tmp_path):
    # no split.json, folder names of no ZJU-MoCap subject, 120 x 120 views (not a multiple of 128)
    root = tmp_path / "data"
    make_subject(root, name="person_a", cameras=5, frames=2, size=120)
    make_subject(root, name="person_b", cameras=5, frames=1, size=120)
    out = tmp_path / "out"
    assert run_eval(checkpoint, root, out, "--frame-step", "2") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"]["name"] == "all"
    # every subject, every 2nd frame, 5 cameras: inputs 0, 2, 3 (evenly spaced), targets 1 and 4
    assert [(r["subject"], r["frame"], r["target_cam"]) for r in report["images"]] == [
        ("person_a", 0, 1), ("person_a", 0, 4), ("person_b", 0, 1), ("person_b", 0, 4)]
    with Image.open(out / "images" / "person_a_0000_cam01.png") as panel:
        assert panel.size == (3 * 120, 120)


def test_a_target_camera_that_misses_the_person_stops_before_rendering(checkpoint, tmp_path, capsys):
    from keypointnerf.data.safe_pickle import load_npy
    from zju_fixtures import save_pickled
    root = tmp_path / "data"
    subject = make_subject(root, name="B", cameras=5, frames=1, size=128)
    write_split(root, train=[], test=["B"])
    annots = load_npy(subject / "annots.npy")
    annots["cams"]["T"][4] = annots["cams"]["T"][4] + np.array([[20000.0], [0.0], [0.0]])  # 20 m sideways
    save_pickled(subject / "annots.npy", annots)
    out = tmp_path / "out"
    assert run_eval(checkpoint, root, out) == 2
    assert_names(capsys.readouterr().err, subject, "frame 0", "camera 4")
    assert not (out / "metrics.json").exists() and not list((out / "images").glob("*.png"))


def test_keypoint_noise_is_seeded_and_reaches_the_model(checkpoint, data_root, tmp_path, monkeypatch):
    from keypointnerf.eval.commands import keypoint_noise

    keypoints = torch.zeros(24, 3)
    assert keypoint_noise(keypoints, 0.0, 0, 0, 0) is keypoints
    noisy = keypoint_noise(keypoints, 2.0, 5, 1, 3)
    torch.testing.assert_close(noisy, keypoint_noise(keypoints, 2.0, 5, 1, 3))  # same draw for the same frame
    assert not torch.equal(noisy, keypoint_noise(keypoints, 2.0, 6, 1, 3))
    assert not torch.equal(noisy, keypoint_noise(keypoints, 2.0, 5, 1, 4))
    many = keypoint_noise(torch.zeros(20000, 3), 2.0, 0, 0, 0)
    assert float(many.std()) == pytest.approx(0.02, rel=0.03)  # centimetres -> metres

    seen = []
    original = KeypointNeRF.encode

    def recording_encode(self, views, *rest, **kwargs):
        seen.append(views.keypoints.clone())
        return original(self, views, *rest, **kwargs)

    monkeypatch.setattr(KeypointNeRF, "encode", recording_encode)
    assert run_eval(checkpoint, data_root, tmp_path / "clean", "--no-images", "--max-images", "1") == 0
    assert run_eval(checkpoint, data_root, tmp_path / "noisy", "--no-images", "--max-images", "1",
                    "--keypoint-noise", "3", "--seed", "2") == 0
    clean, noisy = seen
    assert 0.005 < float((noisy - clean).std()) < 0.06
    report = json.loads((tmp_path / "noisy" / "metrics.json").read_text())
    assert report["protocol"]["keypoint_noise_cm"] == 3.0 and report["protocol"]["keypoint_noise_seed"] == 2
    assert run_eval(checkpoint, data_root, tmp_path / "bad", "--keypoint-noise", "-1") == 2
