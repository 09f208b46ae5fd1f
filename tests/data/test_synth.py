"""Synthetic anny people in the ZJU-MoCap layout: files and shapes, determinism, geometry (keypoints on the
masks, left is left, the spine rises), cameras, resume, refusal and --force, the CLI, and the ZJU reader on the
output.

One tiny set (2 subjects x 2 frames x 4 cameras x 256 px) is generated per session. The first run on a machine
builds anny's model cache (about 1-2 minutes once); afterwards the whole file takes well under a minute.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from keypointnerf.cli import main as cli_main
from keypointnerf.data.safe_pickle import load_npy
from keypointnerf.data.synth import generate
from keypointnerf.data.synth import body, writer
from keypointnerf.errors import UserError

from helpers import assert_names

ARGS = dict(subjects=2, frames=2, cameras=4, resolution=256, seed=7, style="classic")
LEFT_RIGHT_PAIRS = [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)]
SPINE = [0, 3, 6, 9, 12, 15]  # root, spine04, spine03, spine01, neck01, head


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _subjects(out: Path) -> list[Path]:
    return [out / f"synth_{i:03d}" for i in range(ARGS["subjects"])]


# ------------------------------------------------------------------------------------------------ layout
def test_layout_files_and_shapes(synth_set):
    split = json.loads((synth_set / "split.json").read_text())
    assert split == {"train": ["synth_000"], "test": ["synth_001"]}
    manifest = json.loads((synth_set / "synth.json").read_text())
    assert manifest["arguments"] == ARGS and manifest["complete"] is True
    assert manifest["subjects"] == ["synth_000", "synth_001"]
    for subject in _subjects(synth_set):
        annots = load_npy(subject / "annots.npy")
        cams = annots["cams"]
        assert [len(cams[k]) for k in ("K", "R", "T", "D")] == [4, 4, 4, 4]
        for c in range(4):
            assert np.asarray(cams["K"][c]).shape == (3, 3)
            R = np.asarray(cams["R"][c])
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(R) == pytest.approx(1.0)
            assert np.asarray(cams["T"][c]).shape == (3, 1)
            assert np.asarray(cams["D"][c]).shape == (5, 1) and not np.any(cams["D"][c])
        assert annots["ims"] == [{"ims": [f"Camera_B{c}/{f:06d}.jpg" for c in range(1, 5)]} for f in range(2)]
        for frame in range(2):
            for c in range(1, 5):
                image = np.asarray(Image.open(subject / f"Camera_B{c}" / f"{frame:06d}.jpg"))
                mask = np.asarray(Image.open(subject / "mask" / f"Camera_B{c}" / f"{frame:06d}.png"))
                assert image.shape == (256, 256, 3) and image.dtype == np.uint8
                assert mask.shape == (256, 256) and mask.dtype == np.uint8
                assert set(np.unique(mask)) == {0, 255}
                # black background, up to JPEG ringing around the person
                background = image[~binary_dilation(mask > 0, iterations=8)]
                assert background.max() <= 12 and background.mean() < 0.2
                assert image[mask > 0].mean() > 20  # a lit person
            joints = np.load(subject / "joints3d" / f"{frame}.npy")
            vertices = np.load(subject / "vertices" / f"{frame}.npy")
            assert joints.shape == (24, 3) and joints.dtype == np.float32
            assert vertices.shape == (13718, 3) and vertices.dtype == np.float32
            params = load_npy(subject / "params" / f"{frame}.npy")
            assert params["Rh"].shape == (1, 3) and params["Th"].shape == (1, 3)
            assert params["anny_pose"].shape == (len(body.POSED_BONES), 3)
            assert params["anny_pose_bones"] == list(body.POSED_BONES)
        # no temporary files left behind
        assert not list(subject.rglob(f"*{writer.TEMP_SUFFIX}"))


def test_world_placement(synth_set):
    """Feet on z = 0, the person near the origin and of adult height, Rh a rotation about +Z, Th the root."""
    for subject in _subjects(synth_set):
        for frame in range(2):
            vertices = np.load(subject / "vertices" / f"{frame}.npy")
            joints = np.load(subject / "joints3d" / f"{frame}.npy")
            params = load_npy(subject / "params" / f"{frame}.npy")
            assert vertices[:, 2].min() == pytest.approx(0.0, abs=1e-5)
            assert 1.3 < vertices[:, 2].max() < 2.2
            assert np.abs(vertices[:, :2].mean(axis=0)).max() < 0.5
            assert params["Rh"][0, 0] == 0 and params["Rh"][0, 1] == 0
            np.testing.assert_allclose(params["Th"][0], joints[0], atol=1e-5)  # root keypoint = Th


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_files_and_other_seed_differs(synth_set, tmp_path):
    again = tmp_path / "again"
    generate(again, workers=1, progress=False, **ARGS)  # one process: the worker count must not matter
    assert _all_files(again) == _all_files(synth_set)
    other = tmp_path / "other"
    generate(other, workers=1, progress=False, **{**ARGS, "seed": 8, "subjects": 1, "frames": 1})
    first = np.load(synth_set / "synth_000" / "vertices" / "0.npy")
    assert not np.allclose(np.load(other / "synth_000" / "vertices" / "0.npy"), first)


# ------------------------------------------------------------------------------------------------ geometry
def _project(K, R, T_mm, points):
    cam = points @ np.asarray(R).T + np.asarray(T_mm).reshape(3) / 1000.0
    uv = cam @ np.asarray(K).T
    return uv[:, :2] / uv[:, 2:3], cam[:, 2]


def test_keypoints_project_onto_the_person(synth_set):
    for subject in _subjects(synth_set):
        cams = load_npy(subject / "annots.npy")["cams"]
        for frame in range(2):
            joints = np.load(subject / "joints3d" / f"{frame}.npy").astype(np.float64)
            for c in range(4):
                mask = np.asarray(Image.open(subject / "mask" / f"Camera_B{c + 1}" / f"{frame:06d}.png")) > 0
                uv, depth = _project(cams["K"][c], cams["R"][c], cams["T"][c], joints)
                assert (depth > 2.5).all()
                pixel = np.round(uv).astype(int)
                inside = (pixel >= 0).all(1) & (pixel < 256).all(1)
                assert inside.all()
                on_mask = mask[pixel[:, 1], pixel[:, 0]]
                assert on_mask.mean() >= 0.85, (subject.name, frame, c, np.flatnonzero(~on_mask))


def test_left_joints_on_the_subjects_left_and_spine_rises(synth_set):
    for subject in _subjects(synth_set):
        for frame in range(2):
            joints = np.load(subject / "joints3d" / f"{frame}.npy")
            rotation = _rot_z(load_npy(subject / "params" / f"{frame}.npy")["Rh"][0, 2])
            left = rotation @ np.array([1.0, 0, 0])  # anny: +X is the subject's left, before the body's turn
            for left_joint, right_joint in LEFT_RIGHT_PAIRS:
                assert (joints[left_joint] - joints[right_joint]) @ left > 0.05, (left_joint, right_joint)
            assert np.all(np.diff(joints[SPINE, 2]) > 0)


def test_motion_over_many_frames_stays_plausible():
    """Longer motions of several people (posing only): joint limits, smoothness, left/right, spine order."""
    model = body.load_anny()
    with body.single_torch_thread():
        for index in range(3):
            rng = np.random.default_rng([11, index])
            phenotype, stature = body.sample_phenotype(rng)
            phenotype = body.fit_height(model, phenotype, stature)
            assert body.rest_stature(model, phenotype) == pytest.approx(stature, abs=0.03)
            motion = body.sample_motion(rng, 40)
            for dof in body.DOFS:
                angles = motion["euler"][:, body.POSED_BONES.index(dof.bone), dof.axis]
                assert (angles >= dof.low).all() and (angles <= dof.high).all(), dof
                assert np.abs(np.diff(angles)).max() < 0.5, dof  # smooth at 0.1 s per frame
            posed = body.pose_frames(model, phenotype, motion)
            assert posed.vertices.shape == (40, 13718, 3)
            for frame in range(40):
                joints = posed.keypoints[frame]
                left = _rot_z(posed.Rh[frame, 2]) @ np.array([1.0, 0, 0])
                for left_joint, right_joint in LEFT_RIGHT_PAIRS:
                    assert (joints[left_joint] - joints[right_joint]) @ left > 0.02, (index, frame, left_joint)
                assert np.all(np.diff(joints[SPINE, 2]) > 0), (index, frame)
                assert posed.vertices[frame, :, 2].min() == pytest.approx(0.0, abs=1e-5)


def test_global_orientation_and_translation_meaning():
    """x_world = R(Rh) (x_anny - root) + Th: turning the body by an angle rotates it about its root."""
    model = body.load_anny()
    rng = np.random.default_rng(3)
    phenotype, _ = body.sample_phenotype(rng)
    motion = body.sample_motion(rng, 2)
    turned = {**motion, "yaw": motion["yaw"] + 1.0, "drift": motion["drift"] + np.array([0.3, -0.2])}
    with body.single_torch_thread():
        a = body.pose_frames(model, phenotype, motion)
        b = body.pose_frames(model, phenotype, turned)
    for frame in range(2):
        expected = (a.vertices[frame] - a.Th[frame]) @ _rot_z(1.0).T
        np.testing.assert_allclose(b.vertices[frame] - b.Th[frame], expected, atol=1e-5)
        np.testing.assert_allclose(b.Th[frame, :2], a.Th[frame, :2] + [0.3, -0.2], atol=1e-9)
    # no motion and no turn: anny's own convention, the left hip at +X
    still = {"euler": np.zeros_like(motion["euler"]), "yaw": np.zeros(2), "drift": np.zeros((2, 2))}
    with body.single_torch_thread():
        rest = body.pose_frames(model, phenotype, still)
    assert rest.keypoints[0, 1, 0] > 0.05 and rest.keypoints[0, 2, 0] < -0.05
    np.testing.assert_allclose(rest.Rh, 0)


def test_cameras_ring_around_the_person(synth_set):
    for subject in _subjects(synth_set):
        cams = load_npy(subject / "annots.npy")["cams"]
        vertices = np.load(subject / "vertices" / "0.npy")
        centre = (vertices.min(0) + vertices.max(0)) / 2
        azimuths = []
        for c in range(4):
            R, T = np.asarray(cams["R"][c]), np.asarray(cams["T"][c]).reshape(3) / 1000.0
            position = -R.T @ T
            assert 3.0 < np.linalg.norm(position[:2] - centre[:2]) < 4.2
            assert 0.95 < position[2] < 1.55
            K = np.asarray(cams["K"][c])
            assert K[0, 2] == K[1, 2] == pytest.approx(127.5) and K[0, 0] == K[1, 1] > 0
            azimuths.append(np.arctan2(position[1] - centre[1], position[0] - centre[0]))
            # the person spans most of the image height in every view
            heights = []
            for frame in range(2):
                mask = np.asarray(Image.open(subject / "mask" / f"Camera_B{c + 1}" / f"{frame:06d}.png")) > 0
                rows = np.flatnonzero(mask.any(axis=1))
                heights.append((rows[-1] - rows[0] + 1) / 256)
            assert 0.6 < max(heights) <= 0.92, heights
        steps = np.mod(np.diff(azimuths + azimuths[:1]), 2 * np.pi)
        np.testing.assert_allclose(steps, np.pi / 2, atol=0.2)  # evenly spaced around the ring, in order


# ------------------------------------------------------------------------------------------------ resume
def test_resume_skips_finished_frames(synth_set, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(synth_set, out)  # copy2: modification times kept
    subject = out / "synth_001"
    missing_image = subject / "Camera_B3" / "000001.jpg"
    original = missing_image.read_bytes()
    missing_image.unlink()
    (subject / "annots.npy").unlink()
    (subject / "Camera_B1" / ".000001.jpg.123.partial").write_bytes(b"half a file")
    kept = [p for p in out.rglob("*.jpg") if not (p.parent.parent == subject and p.name == "000001.jpg")]
    mtimes = {p: p.stat().st_mtime_ns for p in kept}
    summary = generate(out, workers=1, progress=False, **ARGS)
    assert summary["resumed"] and summary["frames_rendered"] == 1 and summary["frames_skipped"] == 3
    assert missing_image.read_bytes() == original
    assert (subject / "annots.npy").is_file()
    assert not list(out.rglob("*.partial"))
    assert len(kept) == 2 * 2 * 4 - 4
    assert {p: p.stat().st_mtime_ns for p in kept} == mtimes  # finished frames untouched
    # everything done: a second resume renders nothing
    again = generate(out, workers=1, progress=False, **ARGS)
    assert again["frames_rendered"] == 0 and again["frames_skipped"] == 4


# ------------------------------------------------------------------------------------------------ refusal / --force
TINY = dict(subjects=2, frames=1, cameras=2, resolution=256, seed=1, style="diverse")


def test_refuses_a_foreign_folder_unless_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match="--force"):
        generate(out, workers=1, progress=False, **TINY)
    assert sorted(os.listdir(out)) == ["notes.txt"]
    generate(out, workers=1, progress=False, force=True, **TINY)
    assert (out / "notes.txt").read_text() == "precious"
    assert (out / "synth_001" / "annots.npy").is_file()


def test_other_arguments_refused_then_replaced_with_force(tmp_path):
    out = tmp_path / "set"
    generate(out, workers=1, progress=False, **TINY)
    changed = {**TINY, "subjects": 1, "seed": 2}
    with pytest.raises(UserError, match=r"--subjects 2\D+1\b.*--seed 1\D+2\b"):     # each option, then and now
        generate(out, workers=1, progress=False, **changed)
    assert json.loads((out / "synth.json").read_text())["arguments"] == TINY            # the set is as it was
    generate(out, workers=1, progress=False, force=True, **changed)
    assert not (out / "synth_001").exists()  # the earlier set's extra subject is gone
    assert json.loads((out / "synth.json").read_text())["arguments"] == changed
    assert json.loads((out / "split.json").read_text()) == {"train": ["synth_000"], "test": []}


def test_bad_arguments_are_user_errors(tmp_path):
    for bad in ({"resolution": 300}, {"resolution": 128}, {"subjects": 0}, {"cameras": 0}, {"seed": -1}):
        with pytest.raises(UserError, match="--" + next(iter(bad))):
            generate(tmp_path / "never", workers=1, progress=False, **{**TINY, **bad})
    assert not (tmp_path / "never").exists()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="a_file"):
        generate(tmp_path / "a_file", workers=1, progress=False, **TINY)
    assert (tmp_path / "a_file").read_text() == "x"


def test_split_rule():
    names = [f"s{i}" for i in range(10)]
    assert writer.split_subjects(names[:1]) == {"train": ["s0"], "test": []}
    assert writer.split_subjects(names[:2]) == {"train": ["s0"], "test": ["s1"]}
    assert writer.split_subjects(names[:5]) == {"train": names[:4], "test": ["s4"]}
    assert writer.split_subjects(names) == {"train": names[:8], "test": ["s8", "s9"]}


# ------------------------------------------------------------------------------------------------ CLI
def test_cli(synth_set, tmp_path, capsys):
    out = tmp_path / "cli"
    shutil.copytree(synth_set, out)
    argv = ["--subjects", "2", "--frames", "2", "--cameras", "4", "--resolution", "256", "--seed", "7",
            "--style", "classic", "--workers", "1", "--no-progress"]
    assert cli_main(["synth", str(out), *argv]) == 0
    assert_names(capsys.readouterr().out, "0 frames rendered", "4 already done")   # the counts: nothing redone
    assert cli_main(["synth", "-o", str(out), *argv]) == 0  # --out is the same as OUT
    capsys.readouterr()
    assert cli_main(["synth", str(out), "--out", str(tmp_path / "elsewhere"), *argv]) == 2
    assert_names(capsys.readouterr().err, out, tmp_path / "elsewhere")            # the two folders given
    assert not (tmp_path / "elsewhere").exists()
    assert cli_main(["synth", str(tmp_path / "x"), "--resolution", "300", "--no-progress"]) == 2
    assert_names(capsys.readouterr().err, "--resolution", 300, 256)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ the ZJU reader
def test_zju_reader_loads_the_output(synth_set):
    from keypointnerf.data.check import check_data
    from keypointnerf.data.datasets import TestDataset, TrainDataset
    from keypointnerf.data.zju import ZJUSubject

    summary = check_data(synth_set, frames_to_decode=2)
    assert summary["ok"], summary
    subject = ZJUSubject(synth_set / "synth_000")
    assert subject.num_cameras == 4 and subject.frames == [0, 1]
    assert subject.stored_size == (256, 256) and subject.image_size == (128, 128)
    image, mask = subject.load_view(1, 2)
    assert image.shape == (128, 128, 3) and mask.shape == (128, 128) and mask.any()
    np.testing.assert_array_equal(subject.keypoints(1), np.load(synth_set / "synth_000" / "joints3d" / "1.npy"))
    params = load_npy(synth_set / "synth_000" / "params" / "1.npy")
    np.testing.assert_allclose(subject.body_orientation(1), _rot_z(float(params["Rh"][0, 2])), atol=1e-6)
    K, Rt = subject.camera(2)
    raw = load_npy(synth_set / "synth_000" / "annots.npy")["cams"]
    np.testing.assert_allclose(K[:2], np.asarray(raw["K"][2])[:2] * 0.5, rtol=1e-6)
    np.testing.assert_allclose(Rt[:, 3], np.asarray(raw["T"][2]).reshape(3) / 1000, rtol=1e-5, atol=1e-6)

    train, test = TrainDataset(synth_set), TestDataset(synth_set)
    assert {train[i].info.subject for i in range(len(train))} == {"synth_000"}
    sample = test[0]
    assert sample.info.subject == "synth_001"
    assert tuple(sample.views.images.shape[-2:]) == (128, 128) and tuple(sample.views.keypoints.shape) == (24, 3)
