"""Orbit cameras and the body frame by hand; PNG/MP4 writing and source strips; the ``render`` command end to end
on a tiny ZJU-layout subject with a random small model."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from keypointnerf.cli import main
from keypointnerf.data.zju import ZJUSubject, axis_angle_to_matrix
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model
from keypointnerf.geometry import look_at
from keypointnerf.render.orbit import (CANONICAL_FRAMES, body_frame, describe_body_frame, keypoint_body_frame,
                                       orbit_azimuths_deg, orbit_cameras, rh_body_frame)
from keypointnerf.render.video import depth_to_color, source_strip, write_png, write_video
from helpers import assert_names
from zju_fixtures import make_subject, save_pickled

K = np.array([[120.0, 0, 70.0], [0, 118.0, 52.0], [0, 0, 1]])


def _project(K, Rt, point):
    x = Rt[:, :3] @ point + Rt[:, 3]
    uvw = K @ x
    return uvw[:2] / uvw[2], x[2]


def _centre(Rt):
    return -Rt[:, :3].T @ Rt[:, 3]


# ----------------------------------------------------------------------------------------------- orbit geometry
@pytest.mark.parametrize("elevation", [0.0, 25.0, -10.0])
def test_orbit_cameras_by_hand(elevation):
    rng = np.random.default_rng(3)
    center = np.array([0.4, -1.2, 0.9])
    up = rng.normal(size=3)                                   # any tilt, not axis-aligned
    forward = rng.normal(size=3)                              # not orthogonal to up: only its orthogonal part counts
    count, radius = 8, 2.7
    cams = orbit_cameras(center, up, forward, count, radius, elevation, K)
    assert len(cams) == count
    up_unit = up / np.linalg.norm(up)
    front = forward - (forward @ up_unit) * up_unit
    front /= np.linalg.norm(front)
    horizontals = []
    for K_k, Rt in cams:
        assert np.allclose(K_k, K)
        R = Rt[:, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) == pytest.approx(1.0)
        # looks at the centre: it projects to the principal point, in front of the camera
        uv, depth = _project(K, Rt, center)
        assert np.allclose(uv, K[:2, 2], atol=1e-6) and depth == pytest.approx(radius)
        position = _centre(Rt)
        assert np.linalg.norm(position - center) == pytest.approx(radius)
        # elevation above the plane orthogonal to up
        assert (position - center) @ up_unit == pytest.approx(radius * math.sin(math.radians(elevation)))
        # upright: a point above the centre projects straight up (smaller v, same u)
        uv_up, _ = _project(K, Rt, center + 0.3 * up_unit)
        assert uv_up[1] < K[1, 2] - 1.0 and uv_up[0] == pytest.approx(K[0, 2], abs=1e-6)
        offset = position - center
        horizontals.append(offset - (offset @ up_unit) * up_unit)
    # the first camera stands in front of the body
    assert horizontals[0] / np.linalg.norm(horizontals[0]) == pytest.approx(front, abs=1e-9)
    # consecutive cameras 360/count degrees apart, all turning the same way (towards the subject's left)
    left = np.cross(up_unit, front)
    for k in range(count):
        a, b = horizontals[k], horizontals[(k + 1) % count]
        cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
        assert math.degrees(math.acos(np.clip(cosine, -1, 1))) == pytest.approx(360 / count, abs=1e-6)
        assert np.cross(a, b) @ up_unit > 0
    assert horizontals[count // 4] @ left > 0       # a quarter turn later: on the subject's left


def test_orbit_arc_sweeps_in_front_of_the_person():
    center, up, forward = np.array([0.1, 0.2, 1.6]), np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    cams = orbit_cameras(center, up, forward, 5, 0.8, 0.0, K, arc_deg=120.0)
    horizontals = [_centre(Rt) - center for _, Rt in cams]
    # -60, -30, 0, 30, 60 degrees: the middle camera in front, the ends 60 degrees to either side
    signed = [math.degrees(math.atan2(h @ np.cross(up, forward), h @ forward)) for h in horizontals]
    assert signed == pytest.approx([-60.0, -30.0, 0.0, 30.0, 60.0], abs=1e-9)
    assert all(np.linalg.norm(h) == pytest.approx(0.8) for h in horizontals)
    assert orbit_azimuths_deg(4) == [0.0, 90.0, 180.0, 270.0]
    with pytest.raises(ValueError):
        orbit_azimuths_deg(1, 90.0)                     # an arc needs two ends
    with pytest.raises(ValueError):
        orbit_azimuths_deg(4, 400.0)


def test_orbit_argument_checks():
    with pytest.raises(ValueError):
        orbit_cameras(np.zeros(3), [0, 0, 1], [0, 0, 2], 4, 2.0, 0.0, K)      # forward parallel to up
    with pytest.raises(ValueError):
        orbit_cameras(np.zeros(3), [0, 0, 1], [1, 0, 0], 4, 2.0, 90.0, K)
    with pytest.raises(ValueError):
        orbit_cameras(np.zeros(3), [0, 0, 1], [1, 0, 0], 0, 2.0, 0.0, K)
    # look_at alone: the camera's y axis is world down
    Rt = look_at(np.array([0.0, -3.0, 1.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    assert np.allclose(Rt[:, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]])


def _canonical_keypoints(convention: str) -> np.ndarray:
    """24 keypoints of an upright body in a body model's canonical frame (only pelvis, hips and neck matter)."""
    up, facing = CANONICAL_FRAMES[convention]
    left = np.cross(up, facing)   # the subject's left: +X in both models
    assert np.allclose(left, [1, 0, 0])
    keypoints = np.zeros((24, 3))
    keypoints[0] = 0.0
    keypoints[1], keypoints[2] = -0.08 * up + 0.1 * left, -0.08 * up - 0.1 * left
    keypoints[12] = 0.5 * up + 0.03 * facing     # a slight forward lean: facing stays orthogonal to up
    keypoints[15] = 0.65 * up
    return keypoints


@pytest.mark.parametrize("convention", ["smpl", "anny"])
def test_keypoint_frame_matches_rh(convention):
    rotation = axis_angle_to_matrix(np.array([0.3, -1.1, 0.7]))
    keypoints = _canonical_keypoints(convention) @ rotation.T + np.array([0.2, 0.1, 1.0])
    up, facing = keypoint_body_frame(keypoints)
    rh_up, rh_facing = rh_body_frame(rotation, convention)
    assert up @ rh_up > 0.99 and facing @ rh_facing > 0.99
    assert abs(up @ facing) < 1e-9


def _subject_with_body(tmp_path, yaw: float, keypoints=None):
    """The fixture subject with anny-style params (Rh about +Z) and matching keypoints."""
    subject_dir = make_subject(tmp_path, frames=1)
    rotation = axis_angle_to_matrix(np.array([0.0, 0.0, yaw]))
    if keypoints is None:
        keypoints = _canonical_keypoints("anny") @ rotation.T + np.array([0.0, 0.0, 1.0])
    np.save(subject_dir / "joints3d" / "0.npy", keypoints.astype(np.float32))
    save_pickled(subject_dir / "params" / "0.npy", {"Rh": np.array([[0.0, 0.0, yaw]]), "Th": np.zeros((1, 3)),
                                                   "anny_pose": np.zeros((3, 3))})
    return ZJUSubject(subject_dir, downsample=1.0), rotation


def test_body_frame_of_a_subject(tmp_path):
    subject, rotation = _subject_with_body(tmp_path, yaw=2.0)
    up, facing, info = describe_body_frame(subject, 0)
    assert info["source"] == "keypoints" and info["convention"] == "anny"
    # the keypoints lean forward by atan(0.03 / 0.5) = 3.4 degrees; Rh only turns about +Z
    assert info["rh_up_angle_deg"] == pytest.approx(3.43, abs=0.05) and info["rh_facing_angle_deg"] < 3.5
    assert up @ np.array([0.0, 0.0, 1.0]) > 0.99
    assert facing @ (rotation @ np.array([0.0, -1.0, 0.0])) > 0.99     # anny faces -Y before turning
    assert np.allclose(body_frame(subject, 0)[0], up)


def test_body_frame_falls_back_to_rh(tmp_path):
    # keypoints on one vertical line: no left-right axis, so the facing direction must come from Rh
    on_a_line = np.stack([np.zeros(24), np.zeros(24), np.linspace(0.1, 1.7, 24)], axis=1)
    subject, rotation = _subject_with_body(tmp_path, yaw=-0.5, keypoints=on_a_line)
    up, facing, info = describe_body_frame(subject, 0)
    assert info["source"] == "Rh"
    assert np.allclose(up, [0, 0, 1]) and np.allclose(facing, rotation @ np.array([0.0, -1.0, 0.0]))


# ----------------------------------------------------------------------------------------------- pictures
def test_video_round_trip(tmp_path):
    import imageio.v2 as imageio

    frames = [np.full((33, 47, 3), 30 * i, dtype=np.uint8) for i in range(5)]   # odd sizes: padded to even
    path = tmp_path / "clip.mp4"
    assert write_video(path, frames, fps=12) == 5
    assert not list(tmp_path.glob(".*partial*"))
    reader = imageio.get_reader(path)
    try:
        read = [frame for frame in reader]
        assert reader.get_meta_data()["fps"] == pytest.approx(12)
        assert reader.get_meta_data()["codec"] == "h264"
    finally:
        reader.close()
    assert len(read) == 5
    assert read[0].shape == (34, 48, 3)
    for i, frame in enumerate(read):
        assert abs(float(frame[:33, :47].mean()) - 30 * i) < 4


def test_source_strip_and_png(tmp_path):
    images = [np.random.default_rng(0).random((20, 30, 3)).astype(np.float32), np.zeros((20, 10, 3), np.uint8),
              np.ones((40, 40, 3), np.float32)]
    strip = source_strip(images, gap=4)
    assert strip.dtype == np.uint8 and strip.shape == (20, 30 + 10 + 20 + 2 * 4, 3)   # the 40x40 view halves
    assert strip[:, 30:34].max() == 0 and strip[:, -20:].min() == 255
    path = write_png(tmp_path / "sub" / "strip.png", strip)
    assert np.array_equal(np.asarray(Image.open(path)), strip)


def test_depth_colours():
    depth = np.array([[2.0, 4.0, 3.0]])
    opacity = np.array([[1.0, 1.0, 0.2]])
    colours = depth_to_color(depth, opacity, near=2.0, far=4.0)
    assert colours.shape == (1, 3, 3)
    near_rgb, far_rgb = colours[0, 0].astype(int), colours[0, 1].astype(int)
    assert near_rgb[0] > near_rgb[2] and far_rgb[2] > far_rgb[0]    # near red, far blue
    assert colours[0, 2].max() == 0                                   # transparent: black


# ----------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("render_cli")
    subject = make_subject(root / "data", cameras=4, frames=2, size=128)
    torch.manual_seed(0)
    checkpoint = root / "model.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 8, "fine_samples": 8})
    return {"root": root, "subject": subject, "checkpoint": checkpoint}


def _args(scene, out, *extra):
    return ["render", "--checkpoint", str(scene["checkpoint"]), "--data", str(scene["subject"]),
            "--sources", "0,1,2", "--downsample", "1.0", "--device", "cpu", "-o", str(out), *extra]


def _size(path):
    with Image.open(path) as image:
        return image.size


def test_render_orbit_command(scene, capsys):
    import imageio.v2 as imageio

    out = scene["root"] / "orbit"
    assert main(_args(scene, out, "--orbit", "4", "--resolution", "32", "--depth", "--opacity", "--fps", "10")) == 0
    assert _size(out / "sources.png") == (3 * 128 + 2 * 4, 128)
    for k in range(4):
        for suffix in ("", "_depth", "_opacity"):
            assert _size(out / "orbit" / f"frame{k:03d}{suffix}.png") == (32, 32)
    reader = imageio.get_reader(out / "orbit.mp4")
    try:
        assert len([frame for frame in reader]) == 4
    finally:
        reader.close()
    info = json.loads((out / "render.json").read_text())
    assert info["mode"] == "orbit" and info["frame"] == 0 and info["sources"] == [0, 1, 2]
    assert info["data"].endswith("CoreView_377") and info["checkpoint"]["path"].endswith("model.ckpt")
    assert len(info["cameras"]) == 4 and info["orbit"]["radius_m"] == pytest.approx(3.0, abs=1e-3)
    assert info["render_config"]["coarse_samples"] == 8
    # the orbit's cameras are the ones recorded: the keypoints' centre lands on the principal point
    centre = np.array(info["orbit"]["center"])
    for camera in info["cameras"]:
        uv, _ = _project(np.array(camera["K"]), np.array(camera["Rt"]), centre)
        assert np.allclose(uv, np.array(camera["K"])[:2, 2], atol=1e-4)
    assert_names(capsys.readouterr().out, out, 4)      # says where it wrote, and how many frames


def test_render_targets_command_with_force(scene):
    out = scene["root"] / "targets"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(_args(scene, out, "--targets", "3,1", "--resolution", "48")) != 0     # not empty, no --force
    assert main(_args(scene, out, "--targets", "3,1", "--resolution", "48", "--coarse-samples", "4",
                      "--fine-samples", "0", "--force")) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert _size(out / "views" / "cam03.png") == (48, 48) and _size(out / "views" / "cam01.png") == (48, 48)
    assert not (out / "orbit.mp4").exists()
    info = json.loads((out / "render.json").read_text())
    assert [c["camera"] for c in info["cameras"]] == [3, 1]
    assert info["render_config"]["coarse_samples"] == 4 and info["render_config"]["fine_samples"] == 0


@pytest.mark.parametrize("change, expected", [
    ({"--frame": "7"}, ["frame 7", "0, 1"]),                     # the frame and the frames there are
    ({"--sources": "0,1,9"}, ["--sources", "camera 9", "4 cameras"]),
    ({"--sources": "0,1,1"}, ["--sources", "'0,1,1'"]),
    ({"--sources": ","}, ["--sources", "','"]),
    ({"--checkpoint": "missing.ckpt"}, ["missing.ckpt"]),
    ({"--data": "no_such_subject"}, ["no_such_subject"]),
    ({"--radius": "1.5"}, ["--radius 1.5", "2-5 m"]),                # the radius and the model's depth range
])
def test_render_refusals(scene, capsys, change, expected):
    args = _args(scene, scene["root"] / "refused", "--orbit", "2")
    for option, value in change.items():
        value = str(scene["root"] / value) if option in ("--checkpoint", "--data") else value
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    assert main(args) == 2
    assert_names(capsys.readouterr().err, *expected)
    assert not (scene["root"] / "refused").exists()      # refused before writing anything


def test_default_orbit_radius_is_brought_within_the_depth_range(scene, capsys):
    """With the default radius (the cameras' mean distance) outside what the model can see, the orbit takes the
    nearest radius that keeps the whole box within [znear, zfar]; a radius given by the user is refused instead."""
    import dataclasses
    model = KeypointNeRF(model_preset("small"))
    far = scene["root"] / "far_range.ckpt"
    model.cfg = dataclasses.replace(model.cfg, znear=4.0, zfar=8.0)   # depths the scene's cameras never reach
    save_model(far, model, render={"coarse_samples": 4, "fine_samples": 0})
    args = _args(scene, scene["root"] / "fitted", "--orbit", "2", "--resolution", "16")
    args[args.index("--checkpoint") + 1] = str(far)
    assert main(args) == 0
    info = json.loads((scene["root"] / "fitted" / "render.json").read_text())
    assert_names(capsys.readouterr().err, f"{info['orbit']['radius_m']:.2f} m")   # the radius taken is said
    assert 4.0 < info["orbit"]["radius_m"] < 8.0   # the cameras' own mean distance is about 3 m
