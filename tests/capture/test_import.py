"""``keypointnerf capture import`` end to end on raw captures made from synthetic people, and its bad inputs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from keypointnerf.capture import keypoints as kp
from keypointnerf.capture.importer import ImportOptions, import_capture
from keypointnerf.capture.synthetic import body25_from_joints, write_openpose_files, write_raw_capture
from keypointnerf.cli import main
from keypointnerf.data.check import check_data
from keypointnerf.data.zju import ZJUSubject
from keypointnerf.errors import UserError


@pytest.fixture(scope="module")
def raw(synth_set, tmp_path_factory):
    """synth_000 as a raw capture (videos, intri/extri, background plates) plus OpenPose files with 0.5 px
    noise written from the true joints."""
    out = tmp_path_factory.mktemp("capture") / "raw"
    truth = write_raw_capture(synth_set / "synth_000", out)
    write_openpose_files(out, truth, noise_px=0.5)
    return out, truth


def copy(raw, tmp_path):
    source, truth = raw
    target = tmp_path / "raw"
    shutil.copytree(source, target)
    return target, truth


def test_openpose_import_end_to_end(raw, tmp_path):
    source, truth = raw
    out = tmp_path / "subject"
    assert main(["capture", "import", str(source), "--out", str(out), "--masks", "background", "--keypoints",
                 "openpose", "--no-progress"]) == 0
    summary = check_data(out)
    assert summary["ok"], summary["subjects"][0]["problems"]
    subject = ZJUSubject(out, cache_mb=0)
    assert subject.frames == [0, 1] and subject.num_cameras == 4
    imported = np.stack([subject.keypoints(f) for f in subject.frames])
    error = np.linalg.norm(imported - truth["joints"], axis=-1)
    assert error.mean() < 0.03 and np.median(error) < 0.01, error.mean(axis=0)
    # cameras as written by the rig's calibration, T in millimetres
    np.testing.assert_allclose(subject.raw_camera(2)["R"], truth["cameras"][2].R, atol=1e-9)
    np.testing.assert_allclose(subject.raw_camera(2)["T"], truth["cameras"][2].t, atol=1e-9)
    # the bounds (visual hull) hold every keypoint
    for f in subject.frames:
        box = subject.bounds(f)
        assert np.all(subject.keypoints(f) >= box[0] - 0.02) and np.all(subject.keypoints(f) <= box[1] + 0.02)
    # masks from the plates match the true masks
    _, mask = subject.load_view(0, 1)
    report = json.loads((out / "capture.json").read_text())
    assert report["cameras"] == {"Camera_B1": "01", "Camera_B2": "02", "Camera_B3": "03", "Camera_B4": "04"}
    assert report["per_joint"]["l_knee"]["views_used"] == 4 and report["per_joint"]["l_knee"][
        "reprojection_error_px"] < 2
    assert mask.any()
    # a second run refuses to overwrite, --force replaces
    assert main(["capture", "import", str(source), "--out", str(out), "--no-progress"]) == 2
    assert main(["capture", "import", str(source), "--out", str(out), "--force", "--no-progress"]) == 0


def test_masks_from_plates_match_truth(raw, tmp_path):
    source, truth = raw
    out = tmp_path / "subject"
    import_capture(source, out, ImportOptions(masks="background", keypoints="openpose", progress=False))
    subject = ZJUSubject(out, downsample=1.0, cache_mb=0)
    ious = []
    for cam in range(4):
        mask = np.asarray(Image.open(subject.mask_paths(1, cam)[0])) > 0
        true = truth["masks"][1][cam]
        ious.append((mask & true).sum() / (mask | true).sum())
    assert min(ious) > 0.92 and np.mean(ious) > 0.95, ious  # 256 px frames of an H.264 video


def test_camera_without_images(raw, tmp_path):
    source, _ = copy(raw, tmp_path)
    (source / "videos" / "03.mp4").unlink()
    with pytest.raises(UserError, match="camera '03'.*no images"):
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert not (tmp_path / "out").exists()


def test_image_size_disagrees_with_calibration(raw, tmp_path):
    source, _ = copy(raw, tmp_path)
    text = (source / "intri.yml").read_text().replace("W_02: 256", "W_02: 320")
    (source / "intri.yml").write_text(text)
    with pytest.raises(UserError, match="'02'.*256x256.*320x256"):
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))


def test_camera_missing_from_calibration_is_a_warning(raw, tmp_path):
    source, _ = copy(raw, tmp_path)
    shutil.copy(source / "videos" / "01.mp4", source / "videos" / "09.mp4")
    summary = import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert any("['09'] not in the calibration" in w for w in summary["warnings"])


def test_joint_seen_by_one_view_drops_the_frame(raw, tmp_path):
    source, truth = copy(raw, tmp_path)
    for camera in truth["cameras"][1:]:  # frame 1: the left wrist is only detected by camera 01
        path = source / "openpose" / camera.name / "000001_keypoints.json"
        people = json.loads(path.read_text())["people"]
        points = np.asarray(people[0]["pose_keypoints_2d"]).reshape(-1, 3)
        points[kp.FORMATS["BODY_25"]["l_wrist"]] = 0
        kp.write_openpose(path, [points])
    summary = import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert summary["frames"] == [0] and summary["frames_dropped"] == [1]
    assert any(w.startswith("frame 1: left out") and "l_wrist (detected by cameras ['01'])" in w
               for w in summary["warnings"])
    assert check_data(tmp_path / "out")["ok"]


def test_nobody_found(raw, tmp_path):
    source, truth = copy(raw, tmp_path)
    for path in (source / "openpose").rglob("*.json"):
        kp.write_openpose(path, [])
    with pytest.raises(UserError, match="no frame could be imported.*nobody found in any camera"):
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))


def test_the_person_in_the_mask_is_chosen(raw, tmp_path):
    """A second, more confident person outside the mask (a bystander) is not taken."""
    source, truth = copy(raw, tmp_path)
    for f in range(2):
        for camera in truth["cameras"]:
            person = body25_from_joints(truth["joints"][f], camera)
            bystander = person.copy()
            bystander[:, 0] = np.where(bystander[:, 2] > 0, 5.0, 0.0)  # at the image's left edge
            bystander[:, 2] = np.where(bystander[:, 2] > 0, 1.0, 0.0)
            kp.write_openpose(source / "openpose" / camera.name / f"{f:06d}_keypoints.json", [bystander, person])
    import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    imported = ZJUSubject(tmp_path / "out", cache_mb=0).keypoints(0)
    assert np.linalg.norm(imported - truth["joints"][0], axis=-1).mean() < 0.03


def test_images_folder_and_coco17(raw, synth_set, tmp_path):
    """Per-camera image folders instead of videos, keypoints in COCO-17 order."""
    source = tmp_path / "raw"
    truth = write_raw_capture(synth_set / "synth_001", source, videos=False, seed=1)
    for f, joints in enumerate(truth["joints"]):
        for camera in truth["cameras"]:
            body25 = body25_from_joints(joints, camera)
            coco = np.zeros((17, 3))
            for name, slot in kp.FORMATS["COCO-17"].items():
                if slot is not None:
                    coco[slot] = body25[kp.FORMATS["BODY_25"][name]]
            kp.write_openpose(source / "openpose" / camera.name / f"{f:06d}_keypoints.json", [coco])
    summary = import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert summary["masks"] == "background" and summary["keypoints"] == "openpose"
    imported = np.stack([ZJUSubject(tmp_path / "out", cache_mb=0).keypoints(f) for f in (0, 1)])
    assert np.linalg.norm(imported - truth["joints"], axis=-1).mean() < 0.03
    # JPEG frames are copied byte for byte
    assert (tmp_path / "out" / "Camera_B2" / "000001.jpg").read_bytes() == \
        (source / "images" / "02" / "000001.jpg").read_bytes()


def test_detect_without_the_extra_says_how_to_install(raw, tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name == "mediapipe" or name.startswith("mediapipe."):
            raise ImportError("No module named 'mediapipe'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    source, _ = raw
    assert main(["capture", "import", str(source), "--out", str(tmp_path / "out"), "--keypoints", "detect",
                 "--no-progress"]) == 2
    with pytest.raises(UserError, match=r"pip install -e '\.\[detect\]'"):
        import_capture(source, tmp_path / "out2", ImportOptions(masks="detect", keypoints="openpose", progress=False))


def test_builtin_detector_end_to_end(raw, tmp_path):
    """--masks detect --keypoints detect with the optional extra (MediaPipe, weights in the wheel)."""
    from keypointnerf.capture.detector import import_mediapipe
    try:
        import_mediapipe("--keypoints detect")
    except UserError as exc:
        pytest.skip(f"the optional extra .[detect] is not installed or not usable here: {exc}")
    source, truth = raw
    out = tmp_path / "subject"
    summary = import_capture(source, out, ImportOptions(masks="detect", keypoints="detect", progress=False))
    assert summary["frames"] == [0, 1]
    assert check_data(out)["ok"]
    subject = ZJUSubject(out, downsample=1.0, cache_mb=0)
    imported = np.stack([subject.keypoints(f) for f in subject.frames])
    assert np.linalg.norm(imported - truth["joints"], axis=-1).mean() < 0.05
    for cam in range(4):
        mask = np.asarray(Image.open(subject.mask_paths(0, cam)[0])) > 0
        true = truth["masks"][0][cam]
        assert (mask & true).sum() / (mask | true).sum() > 0.85
