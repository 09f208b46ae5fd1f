"""Synthetic heads (``synth --subject head``): layout and reader, the facial landmarks (on the mesh where they
should be, projecting onto the head in every image), expressions, the face rig, seeding, and a training step
with the ``head`` preset.

One tiny set (2 heads x 2 frames x 4 cameras x 256 px, classic style: exact masks) is generated per module.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.ndimage import distance_transform_edt

from keypointnerf.cli import main as cli_main
from keypointnerf.data.safe_pickle import load_npy
from keypointnerf.data.synth import appearance, body, generate, head, styles, writer
from keypointnerf.data.zju import ZJUSubject
from keypointnerf.model.checkpoint import load_model

ARGS = dict(subjects=2, frames=2, cameras=4, resolution=256, seed=3, style="classic", subject="head")
NAMES = head.LANDMARK_NAMES


@pytest.fixture(scope="module")
def head_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("heads") / "set"
    summary = generate(out, workers=2, progress=False, **ARGS)
    assert summary["frames_rendered"] == 4
    return out


@pytest.fixture(scope="module")
def anny_parts():
    with body.single_torch_thread():
        model = body.load_anny()
        weights, parts = body.skinning_parts(model, appearance.part_of_bone)
    return model, weights[:, [parts.index(p) for p in appearance.PARTS]]


def _rest(model, **phenotype):
    import torch
    with torch.no_grad():
        return model(phenotype_kwargs=phenotype)["rest_vertices"][0].numpy()


def test_layout_and_reader(head_set):
    manifest = json.loads((head_set / "synth.json").read_text())
    assert manifest["complete"] and manifest["keypoints"] == list(NAMES)
    assert manifest["arguments"]["subject"] == "head"
    for name in ("synth_000", "synth_001"):
        subject = ZJUSubject(head_set / name, downsample=0.5)
        assert subject.num_keypoints == len(NAMES) == 22 and subject.num_cameras == 4
        vertices = subject.vertices(1)
        assert vertices.shape == (4665, 3)                         # the head and neck only
        box = subject.bounds(1)
        assert 0.2 < box[1, 2] - box[0, 2] < 0.45 and (box[1, :2] - box[0, :2] < 0.35).all()
        params = subject.body_params(0)
        assert params["anny_expression"].shape == (len(head.EXPRESSION_UNITS),)
        assert params["anny_pose_bones"] == list(head.HEAD_BONES)
        assert json.loads((head_set / name / "subject.json").read_text())["subject"] == "head"
    assert cli_main(["data", "check", str(head_set)]) == 0


def test_landmarks_are_where_their_names_say(anny_parts):
    model, _ = anny_parts
    for phenotype in ({}, {"gender": 1.0, "age": 0.9, "weight": 0.8}):
        points = dict(zip(NAMES, _rest(model, **phenotype)[head.LANDMARK_VERTICES]))
        for name in NAMES:
            if name.endswith("_left"):   # +X is the subject's left; the right side mirrors the left
                right = points[name[:-5] + "_right"]
                assert points[name][0] > 0.01
                assert np.allclose(points[name], right * [-1, 1, 1], atol=0.003), name
        stack = np.stack(list(points.values()))
        assert NAMES[int(np.argmin(stack[:, 1]))] == "nose_tip"    # the face looks along -Y
        assert NAMES[int(np.argmin(stack[:, 2]))] == "chin" and NAMES[int(np.argmax(stack[:, 2]))] == "forehead"
        assert points["upper_lip"][2] > points["lower_lip"][2] > points["chin"][2]
        assert points["brow_inner_left"][2] > points["eye_inner_left"][2] > points["nose_tip"][2]
        assert 0.025 < points["eye_outer_left"][0] - points["eye_inner_left"][0] < 0.04   # an eye's width
        assert points["ear_left"][1] > points["jaw_left"][1] > points["mouth_left"][1]   # ears at the back


def test_mouth_corners_lie_on_anny_lips_mask(anny_parts):
    model, _ = anny_parts
    lips = head._uv_masks()[0]
    uv = model.texture_coordinates.numpy()
    corners = model.face_texture_coordinate_indices.numpy()
    faces = body.triangle_faces(model)
    for name in ("mouth_left", "mouth_right", "upper_lip", "lower_lip"):
        vertex = head.LANDMARK_VERTICES[NAMES.index(name)]
        at = uv[corners[faces == vertex]]
        assert head._lookup(lips, at).max() > 0.3, name
    nose = uv[corners[faces == head.LANDMARK_VERTICES[0]]]
    assert head._lookup(lips, nose).max() < 0.05


def test_jaw_open_moves_the_chin_down_and_not_the_forehead(anny_parts):
    model, part_weights = anny_parts
    kept = head.head_vertices(part_weights)
    still = {"euler": np.zeros((2, len(head.HEAD_BONES), 3)), "expression": np.zeros((2, len(head.EXPRESSION_UNITS))),
             "yaw": np.zeros(2)}
    still["expression"][1, head.EXPRESSION_UNITS.index("jawOpen")] = 1.0
    with body.single_torch_thread():
        posed = head.pose_heads(model, {}, still, kept)
    chin, forehead = NAMES.index("chin"), NAMES.index("forehead")
    assert posed.keypoints[1, chin, 2] < posed.keypoints[0, chin, 2] - 0.01
    assert np.linalg.norm(posed.keypoints[1, forehead] - posed.keypoints[0, forehead]) < 1e-3
    # standing: the (unposed) body's soles on z = 0, so the head is at about head height
    assert 1.4 < posed.keypoints[0, :, 2].mean() < 1.8


def test_landmarks_project_onto_the_head_in_every_image(head_set, anny_parts):
    landmark_rows = np.searchsorted(head.head_vertices(anny_parts[1]), head.LANDMARK_VERTICES)  # stored vertices
    for name in ("synth_000", "synth_001"):
        subject = head_set / name
        cams = load_npy(subject / "annots.npy")["cams"]
        for frame in range(2):
            points = np.load(subject / "joints3d" / f"{frame}.npy").astype(np.float64)
            vertices = np.load(subject / "vertices" / f"{frame}.npy")
            assert np.array_equal(points, vertices[landmark_rows])
            for c in range(4):
                mask = np.asarray(Image.open(subject / "mask" / f"Camera_B{c + 1}" / f"{frame:06d}.png")) > 0
                height, width = mask.shape
                cam = points @ np.asarray(cams["R"][c]).T + np.asarray(cams["T"][c]).reshape(3) / 1000
                uv = cam @ np.asarray(cams["K"][c]).T
                pixel = np.round(uv[:, :2] / uv[:, 2:3]).astype(int)
                assert ((pixel >= 0) & (pixel < [width, height])).all()
                # a surface point projects inside the silhouette, seen or hidden (on a profile's edge, the nose
                # tip, lips and chin may round to the pixel just outside)
                outside = distance_transform_edt(~mask)[pixel[:, 1], pixel[:, 0]]
                assert (outside <= 1.5).all(), (name, frame, c, outside)
                rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                # the head fills the frame: more than half of it in one direction
                assert max((rows[-1] - rows[0]) / height, (columns[-1] - columns[0]) / width) > 0.5
                assert 0.25 < cam[:, 2].min() and cam[:, 2].max() < 1.5  # close range


def test_face_rig_is_in_front_of_the_face_and_seeded(anny_parts):
    model, part_weights = anny_parts
    mesh = writer._HeadMesh(model, part_weights)
    style = styles.get_style("diverse")
    with body.single_torch_thread():
        plan = writer._HeadPlan(model, part_weights, mesh, 0, 11, 3, 8, 256, style)
        again = writer._HeadPlan(model, part_weights, mesh, 0, 11, 3, 8, 256, style)
        other = writer._HeadPlan(model, part_weights, mesh, 0, 12, 3, 8, 256, style)
    assert np.array_equal(plan.posed.keypoints, again.posed.keypoints) and np.array_equal(plan.K, again.K)
    assert not np.allclose(plan.posed.keypoints, other.posed.keypoints)
    points = plan.posed.keypoints[0]
    centre = points.mean(axis=0)
    facing = points[NAMES.index("nose_tip")] - points[[NAMES.index("ear_left"), NAMES.index("ear_right")]].mean(0)
    facing[2] = 0
    facing /= np.linalg.norm(facing)
    positions = -np.einsum("cji,cj->ci", plan.R, plan.t)
    distance = np.linalg.norm(positions - centre, axis=1)
    assert (distance > 0.3).all() and (distance < 1.45).all()
    assert ((positions - centre) @ facing > -0.1 * distance).all()     # no camera behind the head
    # in azimuth order around the face (ring order, as the protocol's camera picks expect)
    left = np.cross([0.0, 0.0, 1.0], facing)
    azimuth = np.arctan2((positions - centre) @ left, (positions - centre) @ facing)
    assert (np.diff(azimuth) > -0.2).all()


def test_a_training_step_with_the_head_preset(head_set, tmp_path):
    run = tmp_path / "run"
    assert cli_main(["train", "--preset", "head", "--data", str(head_set), "--out", str(run), "--device", "cpu",
                     "--threads", "1", "--no-progress", "--set", "optim.max_steps=1", "--set",
                     "render.coarse_samples=8", "--set", "render.fine_samples=8", "--set", "data.patch_size=16",
                     "--set", "val_every_steps=0"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["preset"] == "head" and config["model"]["num_keypoints"] == 22
    assert config["model"]["znear"] == 0.15 and config["model"]["zfar"] == 1.6
    model, _, _ = load_model(run / "model.ckpt")
    assert model.cfg.num_keypoints == 22


def test_uv_mask_lookup_is_bilinear_for_any_number_of_points():
    # a ramp along u: bilinear interpolation reproduces it exactly inside the texture; more points than
    # OpenCV takes in one row (32767) are looked up as well
    height, width = 64, 128
    mask = np.tile(np.arange(width, dtype=np.float32), (height, 1))
    uv = np.random.default_rng(0).uniform([0.01, 0.0], [0.99, 1.0], size=(40_000, 2))
    expected = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    assert np.allclose(head._lookup(mask, uv), expected, atol=1e-2)
    assert head._lookup(mask, uv[:3]).shape == (3,)
