"""``keypointnerf demo`` end to end with a small random model (the shipped one is checked by test_shipped_model)."""
from __future__ import annotations

import json

import torch

from keypointnerf.cli import main
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model

from helpers import assert_names


def test_demo_runs_every_step_and_says_where_the_outputs_are(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = tmp_path / "random.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 4, "fine_samples": 4})
    out = tmp_path / "demo"
    args = ["demo", "--checkpoint", str(checkpoint), "--out", str(out), "--orbit-frames", "3", "--resolution", "32",
            "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    person = json.loads((out / "person" / "synth.json").read_text())["arguments"]
    assert person["style"] == "heldout"  # a style no training draw came from
    metrics = json.loads((out / "views" / "metrics.json").read_text())
    # each step's command is printed to be repeated by hand; then where the results are and the scores
    assert_names(printed, "keypointnerf synth", "keypointnerf eval", "keypointnerf render", out / "orbit" / "orbit.mp4",
                 f"{metrics['mean']['psnr']:.2f} dB")
    assert metrics["mean"]["count"] == 6 and metrics["protocol"]["cameras"]["synth_000"]["input"] == [0, 7, 15]
    assert len(list((out / "views" / "images").glob("*.png"))) == 6
    assert len(list((out / "orbit" / "orbit").glob("*.png"))) == 3 and (out / "orbit" / "orbit.mp4").stat().st_size
    # again: the person is reused (synth resumes), the demo's own outputs are replaced
    synth_json = (out / "person" / "synth.json").read_bytes()
    assert main(args) == 0
    assert_names(capsys.readouterr().out, "0 frames rendered", "1 already done")
    assert (out / "person" / "synth.json").read_bytes() == synth_json


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["demo", "--out", str(out), "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert_names(capsys.readouterr().err, "--checkpoint", tmp_path / "none.ckpt")
    checkpoint = tmp_path / "m.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")))
    assert main(["demo", "--out", str(out), "--checkpoint", str(checkpoint)]) == 2
    assert_names(capsys.readouterr().err, out, "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_head_demo_renders_a_head_from_its_frontal_arc(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = tmp_path / "random_head.ckpt"
    model = KeypointNeRF(model_preset("small", znear=0.15, zfar=1.6, spatial_sigma=0.05, num_keypoints=22))
    save_model(checkpoint, model, render={"coarse_samples": 4, "fine_samples": 4})
    out = tmp_path / "demo"
    args = ["demo", "--head", "--checkpoint", str(checkpoint), "--out", str(out), "--orbit-frames", "3",
            "--resolution", "32", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    head = json.loads((out / "head" / "synth.json").read_text())["arguments"]
    assert head["subject"] == "head" and head["style"] == "heldout" and head["cameras"] == 12
    metrics = json.loads((out / "views" / "metrics.json").read_text())
    # the head's data, the video and the scores are where the demo says
    assert_names(printed, out / "head", out / "orbit" / "orbit.mp4", f"{metrics['mean']['psnr']:.2f} dB")
    # three evenly spaced inputs of the 12, the other 9 rendered and scored
    assert metrics["protocol"]["cameras"]["synth_000"]["input"] == [0, 4, 8]
    assert metrics["mean"]["count"] == 9
    render = json.loads((out / "orbit" / "render.json").read_text())
    assert render["orbit"]["arc_deg"] == 120.0
    assert [camera["azimuth_deg"] for camera in render["cameras"]] == [-60.0, 0.0, 60.0]


def test_demo_refuses_an_empty_video_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    for option in ("--orbit-frames", "--resolution"):
        assert main(["demo", "--head", option, "0", "--out", str(out)]) == 2
        assert_names(capsys.readouterr().err, option)
        assert not out.exists()                     # refused before the synth step wrote anything
