"""``keypointnerf capture import`` end to end on raw captures made from synthetic people, and its bad inputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keypointnerf.capture import keypoints as kp
from keypointnerf.capture.importer import ImportOptions, import_capture
from keypointnerf.capture.synthetic import body25_from_detected, write_openpose_files, write_raw_capture
from keypointnerf.cli import main
from keypointnerf.data.check import check_data
from keypointnerf.data.zju import ZJUSubject
from keypointnerf.errors import UserError

from helpers import assert_names


@pytest.fixture(scope="module")
def raw(synth_set, tmp_path_factory):
    """synth_000 as a raw capture (videos, intri/extri, background plates) plus OpenPose files with 0.5 px
    noise written from where a COCO-trained detector puts the joints (anny's COCO regressor)."""
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
    assert error.mean() < 0.02 and error.max() < 0.06, error.mean(axis=0)
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
    with pytest.raises(UserError, match="camera '03'"):
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert not (tmp_path / "out").exists()


def test_image_size_disagrees_with_calibration(raw, tmp_path):
    source, _ = copy(raw, tmp_path)
    text = (source / "intri.yml").read_text().replace("W_02: 256", "W_02: 320")
    (source / "intri.yml").write_text(text)
    with pytest.raises(UserError, match="'02'.*256x256.*320x256"):              # the camera and both sizes
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert not (tmp_path / "out").exists()


def test_camera_missing_from_calibration_is_a_warning(raw, tmp_path):
    source, _ = copy(raw, tmp_path)
    shutil.copy(source / "videos" / "01.mp4", source / "videos" / "09.mp4")
    summary = import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert any("'09'" in w for w in summary["warnings"])                      # the camera left aside is named


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
    assert any("frame 1" in w and "l_wrist" in w and "'01'" in w for w in summary["warnings"])  # frame, joint, camera
    assert check_data(tmp_path / "out")["ok"]


def test_nobody_found(raw, tmp_path):
    source, truth = copy(raw, tmp_path)
    for path in (source / "openpose").rglob("*.json"):
        kp.write_openpose(path, [])
    with pytest.raises(UserError) as err:
        import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert_names(str(err.value), source, "frame 1")                    # the capture, the frames left out
    assert not (tmp_path / "out" / "annots.npy").exists()


def test_the_person_in_the_mask_is_chosen(raw, tmp_path):
    """A second, more confident person outside the mask (a bystander) is not taken."""
    source, truth = copy(raw, tmp_path)
    for f in range(2):
        for camera in truth["cameras"]:
            person = body25_from_detected(truth["detected"][f], camera)
            bystander = person.copy()
            bystander[:, 0] = np.where(bystander[:, 2] > 0, 5.0, 0.0)  # at the image's left edge
            bystander[:, 2] = np.where(bystander[:, 2] > 0, 1.0, 0.0)
            kp.write_openpose(source / "openpose" / camera.name / f"{f:06d}_keypoints.json", [bystander, person])
    import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    imported = ZJUSubject(tmp_path / "out", cache_mb=0).keypoints(0)
    assert np.linalg.norm(imported - truth["joints"][0], axis=-1).mean() < 0.02


def test_images_folder_and_coco17(raw, synth_set, tmp_path):
    """Per-camera image folders instead of videos, keypoints in COCO-17 order."""
    source = tmp_path / "raw"
    truth = write_raw_capture(synth_set / "synth_001", source, videos=False, seed=1)
    for f, detected in enumerate(truth["detected"]):
        for camera in truth["cameras"]:
            body25 = body25_from_detected(detected, camera)
            coco = np.zeros((17, 3))
            for name, slot in kp.FORMATS["COCO-17"].items():
                if slot is not None:
                    coco[slot] = body25[kp.FORMATS["BODY_25"][name]]  # COCO-17 has no feet: none is a tuple
            kp.write_openpose(source / "openpose" / camera.name / f"{f:06d}_keypoints.json", [coco])
    summary = import_capture(source, tmp_path / "out", ImportOptions(progress=False))
    assert summary["masks"] == "background" and summary["keypoints"] == "openpose"
    imported = np.stack([ZJUSubject(tmp_path / "out", cache_mb=0).keypoints(f) for f in (0, 1)])
    assert np.linalg.norm(imported - truth["joints"], axis=-1).mean() < 0.02
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
    with pytest.raises(UserError, match=r"--masks detect.*\.\[detect\]"):          # the option and the extra to install
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


SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "small.ckpt"


@pytest.mark.parametrize("keypoints", ["openpose", "detect"])
def test_raw_capture_to_orbit_video(raw, tmp_path, keypoints):
    """From a raw capture (videos, intri.yml/extri.yml, background plates; no masks) to a 360-degree video:
    capture import with the plates and OpenPose files or the built-in detector, data check, render --orbit
    with the shipped model (tiny: 3 frames of 24 px, coarse samples only)."""
    if keypoints == "detect":
        from keypointnerf.capture.detector import import_mediapipe
        try:
            import_mediapipe("--keypoints detect")
        except UserError as exc:
            pytest.skip(f"the optional extra .[detect] is not installed or not usable here: {exc}")
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"{SHIPPED_MODEL} not found")
    import imageio.v2 as imageio

    source, truth = raw
    subject, out = tmp_path / "subject", tmp_path / "orbit"
    assert main(["capture", "import", str(source), "--out", str(subject), "--masks", "background", "--keypoints",
                 keypoints, "--no-progress"]) == 0
    assert main(["data", "check", str(subject)]) == 0
    imported = ZJUSubject(subject, cache_mb=0)
    error = np.linalg.norm(np.stack([imported.keypoints(f) for f in imported.frames]) - truth["joints"], axis=-1)
    assert error.mean() < 0.05
    assert main(["render", "--checkpoint", str(SHIPPED_MODEL), "--data", str(subject), "--sources", "0,1,2",
                 "--orbit", "3", "--resolution", "24", "--coarse-samples", "8", "--fine-samples", "0", "--device",
                 "cpu", "-o", str(out)]) == 0
    reader = imageio.get_reader(out / "orbit.mp4")
    try:
        frames = [np.asarray(frame) for frame in reader]
    finally:
        reader.close()
    assert len(frames) == 3
    for k in range(3):  # a person in the middle of every orbit frame, background at its corners
        image = np.asarray(Image.open(out / "orbit" / f"frame{k:03d}.png").convert("L"), float)
        assert image.shape == (24, 24)
        assert image[8:16, 9:15].mean() > image[:3, :3].mean() + 10


class ScriptedDetector:
    """Stands in for the built-in detector: the projection of the COCO-style joints of ``truth`` for each call
    (cameras in order, frame after frame), None (nobody found) for the cameras in ``blind``."""

    def __init__(self, truth, blind=()):
        self.truth, self.blind, self.calls = truth, set(blind), 0

    def __call__(self, image, mask=None):
        cameras = self.truth["cameras"]
        frame, camera = divmod(self.calls, len(cameras))
        self.calls += 1
        if cameras[camera].name in self.blind:
            return None
        detected = self.truth["detected"][frame]
        points = np.ones((len(detected), 3))
        points[:, :2] = cameras[camera].project(detected, distort=True)
        return points

    def close(self):
        pass


def test_detector_finding_nobody_names_camera_and_frame(raw, tmp_path, monkeypatch):
    import keypointnerf.capture.detector as detector_module
    source, truth = raw
    monkeypatch.setattr(detector_module, "PoseDetector", lambda: ScriptedDetector(truth, blind={"02"}))
    summary = import_capture(source, tmp_path / "out", ImportOptions(masks="background", keypoints="detect",
                                                                     progress=False))
    assert summary["frames"] == [0, 1]  # three cameras still see everyone
    blind = [w for w in summary["warnings"] if str(source / "videos" / "02.mp4") in w]   # each view without a person
    assert len(blind) == 2 and all(f"frame {f}" in w and "camera '02'" in w for f, w in zip((0, 1), blind))
    assert summary["per_joint"]["l_knee"]["views_detected"] == 3
    imported = ZJUSubject(tmp_path / "out", cache_mb=0)
    assert np.linalg.norm(imported.keypoints(1) - truth["joints"][1], axis=-1).mean() < 0.02

    monkeypatch.setattr(detector_module, "PoseDetector", lambda: ScriptedDetector(truth, blind={"01", "02", "03",
                                                                                                 "04"}))
    with pytest.raises(UserError, match=r"camera '04', frame 1"):               # the views that had nobody
        import_capture(source, tmp_path / "none", ImportOptions(masks="background", keypoints="detect",
                                                                progress=False))
    assert not (tmp_path / "none" / "annots.npy").exists()


def test_image_of_another_size_names_camera_and_frame(raw, synth_set, tmp_path):
    source = tmp_path / "raw"
    write_openpose_files(source, write_raw_capture(synth_set / "synth_001", source, videos=False, seed=1))
    path = source / "images" / "03" / "000001.jpg"
    Image.open(path).resize((200, 256)).save(path)
    with pytest.raises(UserError, match=r"03/000001\.jpg.*200x256.*256x256.*camera '03', frame 1"):
        import_capture(source, tmp_path / "out", ImportOptions(keypoints="openpose", progress=False))
