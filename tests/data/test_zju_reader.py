"""The ZJU-MoCap reader on tiny hand-built subjects (both camera-folder conventions)."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from keypointnerf.data.zju import ZJUSubject, discover_subjects, frame_number_from_name
from keypointnerf.errors import UserError
from helpers import assert_names
from zju_fixtures import keypoints_inside, make_subject, ring_camera, save_pickled


@pytest.fixture(scope="module")
def b_subject(tmp_path_factory):
    """4 cameras, 3 frames, 256x256 stored (read at 0.5 -> 128x128), no distortion, split masks."""
    return make_subject(tmp_path_factory.mktemp("b"), cameras=4, frames=3, size=256)


def project(K, Rt, points):
    x = points @ Rt[:, :3].T + Rt[:, 3]
    uv = x @ K.T
    return uv[:, :2] / uv[:, 2:3]


def test_frame_numbers_from_names():
    assert frame_number_from_name("Camera_B3/000042.jpg") == 42
    assert frame_number_from_name("Camera (22)/CoreView_313_Camera_(22)_0007_2019-08-23_16-08-50.592.jpg") == 7
    assert frame_number_from_name("whatever.jpg") is None


def test_counts_cameras_and_metres(b_subject):
    subject = ZJUSubject(b_subject, downsample=0.5)
    assert subject.num_cameras == 4 and subject.frames == [0, 1, 2]
    assert subject.image_size == (128, 128) and subject.stored_size == (256, 256)
    K_stored, R, t = ring_camera(1, 4, 256)
    K, Rt = subject.camera(1)
    # T is stored in millimetres; Rt carries metres
    np.testing.assert_allclose(Rt[:, 3], t, atol=1e-5)
    np.testing.assert_allclose(Rt[:, :3], R, atol=1e-6)
    # downsampling scales rows 0 and 1 of K, without half-pixel correction
    np.testing.assert_allclose(K[:2], K_stored[:2] * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(K[2], [0, 0, 1])
    assert ZJUSubject(b_subject, downsample=1.0).camera(1)[0][0, 2] == pytest.approx(K_stored[0, 2])


def test_known_point_projects_by_hand(tmp_path):
    subject = make_subject(tmp_path, cameras=4, frames=1, size=256)
    annots_path = subject / "annots.npy"
    from keypointnerf.data.safe_pickle import load_npy
    annots = load_npy(annots_path)
    annots["cams"]["K"][0] = np.array([[300.0, 0, 128], [0, 300.0, 120], [0, 0, 1]])
    annots["cams"]["R"][0] = np.eye(3)
    annots["cams"]["T"][0] = np.array([[0.0], [0.0], [3000.0]])  # 3 m in front of the camera
    save_pickled(annots_path, annots)
    K, Rt = ZJUSubject(subject, downsample=0.5).camera(0)
    # (0.1, 0.2, 0) -> camera (0.1, 0.2, 3); u = 150 * 0.1 / 3 + 64 = 69, v = 150 * 0.2 / 3 + 60 = 70
    np.testing.assert_allclose(project(K, Rt, np.array([[0.1, 0.2, 0.0]])), [[69.0, 70.0]], atol=1e-4)


def test_view_content_matches_geometry_and_background_is_zero(b_subject):
    subject = ZJUSubject(b_subject, downsample=0.5)
    for cam in range(subject.num_cameras):
        image, mask = subject.load_view(2, cam)
        assert image.shape == (128, 128, 3) and image.dtype == np.float32 and mask.dtype == np.uint8
        assert 0.0 <= image.min() and image.max() <= 1.0
        K, Rt = subject.camera(cam)
        centre_uv = project(K, Rt, np.array([[0.0, 0.0, 1.0]]))[0].round().astype(int)
        assert mask[centre_uv[1], centre_uv[0]] == 1 and image[centre_uv[1], centre_uv[0]].sum() > 0.3
        # the stored background is grey (0.5): it must be zeroed wherever the mask is 0
        assert np.all(image[mask == 0] == 0)
        assert mask[:5, :5].sum() == 0 and mask.sum() > 100
        # every keypoint (inside the body) lands on the mask
        uv = project(K, Rt, subject.keypoints(2)).round().astype(int)
        assert mask[uv[:, 1], uv[:, 0]].all()


def test_mask_is_union_of_mask_and_cihp(b_subject, tmp_path):
    full = ZJUSubject(b_subject, downsample=1.0).load_view(0, 0)[1]
    # the fixture split the person: mask/ has the left half, mask_cihp/ the right half
    left = np.asarray(Image.open(b_subject / "mask" / "Camera_B1" / "000000.png")) > 0
    right = np.asarray(Image.open(b_subject / "mask_cihp" / "Camera_B1" / "000000.png")) > 0
    assert left.any() and right.any() and not (left & right).any()
    np.testing.assert_array_equal(full.astype(bool), left | right)

    only_mask = make_subject(tmp_path, name="m", cameras=4, frames=1, size=128, mask_mode="mask")
    assert ZJUSubject(only_mask, downsample=1.0).load_view(0, 0)[1].sum() > 50
    only_cihp = make_subject(tmp_path, name="c", cameras=4, frames=1, size=128, mask_mode="cihp")
    assert ZJUSubject(only_cihp, downsample=1.0).load_view(0, 3)[1].sum() > 50
    shutil.rmtree(only_cihp / "mask_cihp" / "Camera_B4")
    with pytest.raises(UserError, match=r"mask/Camera_B4/000000.png"):
        ZJUSubject(only_cihp, downsample=1.0).load_view(0, 3)


def test_downsampling_interpolation(b_subject):
    """Area interpolation for images, nearest for masks."""
    full_image, full_mask = ZJUSubject(b_subject, downsample=1.0).load_view(1, 2)
    half_image, half_mask = ZJUSubject(b_subject, downsample=0.5).load_view(1, 2)
    # nearest: the half mask is a subsample of the full mask (pixel 2i or 2i+1), never an average
    assert set(np.unique(half_mask)) <= {0, 1}
    assert np.abs(half_mask.astype(int).sum() * 4 - full_mask.astype(int).sum()) < 0.1 * full_mask.sum()
    # area: inside the body, a 2x2 block average of the full-resolution (pre-zeroing) image
    raw = np.asarray(Image.open(b_subject / "Camera_B3" / "000001.jpg")).astype(np.float32) / 255
    block = raw.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3))
    inside = cv2.erode(half_mask, np.ones((3, 3), np.uint8)).astype(bool)
    np.testing.assert_allclose(half_image[inside], block[inside], atol=1e-5)


def test_undistortion_round_trip(tmp_path):
    D = np.array([-0.25, 0.08, 0.002, -0.001, 0.0])
    subject_dir = make_subject(tmp_path, cameras=4, frames=1, size=256, distortion=D)
    subject = ZJUSubject(subject_dir, downsample=1.0)
    raw = subject.raw_camera(1)
    np.testing.assert_allclose(raw["D"], D)
    # put a bright dot where a world point lands *with* distortion, full masks so nothing is zeroed
    point = np.array([[-1.0, 0.0, 1.9]])  # far off the optical axis of camera 1
    distorted, _ = cv2.projectPoints(point, cv2.Rodrigues(raw["R"])[0], raw["T"], raw["K"], D)
    du, dv = distorted.reshape(2)
    pinhole = project(raw["K"], np.concatenate([raw["R"], raw["T"][:, None]], 1), point)[0]
    assert np.hypot(du - pinhole[0], dv - pinhole[1]) > 3  # the distortion is large enough to matter here
    v, u = np.mgrid[0:256, 0:256]
    dot = np.exp(-((u - du) ** 2 + (v - dv) ** 2) / (2 * 1.5 ** 2))
    Image.fromarray((np.repeat(dot[..., None], 3, 2) * 255).round().astype(np.uint8)).save(
        subject_dir / "Camera_B2" / "000000.jpg", quality=100)
    for kind in ("mask", "mask_cihp"):
        Image.fromarray(np.full((256, 256), 255, np.uint8)).save(subject_dir / kind / "Camera_B2" / "000000.png")

    def dot_centre(image):
        weight = image.mean(axis=2)
        weight = np.where(weight > 0.2, weight, 0)
        return np.array([(weight * u).sum(), (weight * v).sum()]) / weight.sum()

    image, mask = ZJUSubject(subject_dir, downsample=1.0).load_view(0, 1)
    assert np.hypot(*(dot_centre(image) - pinhole)) < 1.0
    skipped = ZJUSubject(subject_dir, downsample=1.0, undistort=False).load_view(0, 1)[0]
    assert np.hypot(*(dot_centre(skipped) - pinhole)) > 3
    # and the image is what cv2.undistort produces from the stored (float) image
    stored = np.asarray(Image.open(subject_dir / "Camera_B2" / "000000.jpg")).astype(np.float32) / 255
    np.testing.assert_allclose(image, cv2.undistort(stored, raw["K"], D), atol=1e-5)


def test_313_layout_long_names_21_cameras(tmp_path):
    subject_dir = make_subject(tmp_path, name="CoreView_313", cameras=21, frames=2, size=128, layout="long")
    subject = ZJUSubject(subject_dir, downsample=1.0)
    assert subject.num_cameras == 21 and subject.frames == [1, 2]  # 1-based
    assert subject.camera_folder(18) == "Camera (19)" and subject.camera_folder(19) == "Camera (22)"
    assert subject.camera_folder(20) == "Camera (23)"
    assert subject.image_path(2, 20).name == "CoreView_313_Camera_(23)_0002_2019-08-23_16-08-50.592.jpg"
    image, mask = subject.load_view(2, 20)
    K, Rt = subject.camera(20)
    uv = project(K, Rt, subject.keypoints(2)).round().astype(int)
    assert mask[uv[:, 1], uv[:, 0]].all()
    # frame 2's .npy files (1-based like the image number) are the ones read
    np.testing.assert_allclose(subject.keypoints(2), keypoints_inside() + 0.02, atol=1e-6)


def test_313_layout_renamed_on_disk(tmp_path):
    """annots.npy lists the original long names, the files were renamed to 000001.jpg style."""
    subject_dir = make_subject(tmp_path, name="CoreView_315", cameras=21, frames=2, size=128, layout="long",
                               renamed_on_disk=True)
    subject = ZJUSubject(subject_dir, downsample=1.0)
    assert subject.image_path(1, 19) == subject_dir / "Camera (22)" / "000001.jpg"
    assert [p.name for p in subject.mask_paths(1, 19)] == ["000001.png", "000001.png"]
    assert subject.load_view(1, 19)[1].sum() > 20


def test_bounds_orientation_and_new_fit_folders(tmp_path):
    subject_dir = make_subject(tmp_path, cameras=4, frames=2, size=128, new_fit=True)
    np.save(subject_dir / "new_vertices" / "1.npy", np.array([[0, 0, 0], [1, 2, 3], [-1, 0.5, 1.0]], np.float32))
    subject = ZJUSubject(subject_dir, downsample=1.0)
    np.testing.assert_allclose(subject.bounds(1), [[-1, 0, -0.05], [1, 2, 3.05]], atol=1e-6)
    save_pickled(subject_dir / "new_params" / "1.npy", {"Rh": np.array([[0.0, 0.0, np.pi / 2]]),
                                                        "Th": np.array([[0.1, 0.2, 0.3]])})
    rotation = subject.body_orientation(1)
    np.testing.assert_allclose(rotation @ [1.0, 0, 0], [0, 1, 0], atol=1e-9)
    np.testing.assert_allclose(subject.body_translation(1), [0.1, 0.2, 0.3])


def test_bad_inputs_raise_user_errors(b_subject, tmp_path):
    with pytest.raises(UserError) as err:
        ZJUSubject(b_subject, downsample=0.001).image_size
    assert_names(str(err.value), b_subject, "0.001", "0x0")                     # the scale and what it leaves
    subject_dir = tmp_path / "s"
    shutil.copytree(b_subject, subject_dir)
    bad = np.ones((24, 3), np.float32)
    bad[3, 1] = np.nan
    np.save(subject_dir / "joints3d" / "1.npy", bad)
    with pytest.raises(UserError, match=r"joints3d/1.npy.*NaN"):
        ZJUSubject(subject_dir).keypoints(1)
    np.save(subject_dir / "joints3d" / "2.npy", np.ones((23, 3)))
    with pytest.raises(UserError, match=r"joints3d/2.npy.*\(23, 3\)"):
        ZJUSubject(subject_dir).keypoints(2)
    with pytest.raises(UserError) as err:
        ZJUSubject(subject_dir).camera(4)
    assert_names(str(err.value), subject_dir, "camera 4")


def test_view_cache_reuses_and_bounds_memory(b_subject):
    cached = ZJUSubject(b_subject, downsample=0.5, cache_mb=1)
    first = cached.load_view(0, 0)
    assert cached.load_view(0, 0)[0] is first[0]
    for cam in range(4):  # 128x128 views take 0.2 MB each; 1 MB holds them all
        cached.load_view(1, cam)
    assert cached._cache.bytes <= 2 ** 20
    uncached = ZJUSubject(b_subject, downsample=0.5, cache_mb=0)
    assert uncached.load_view(0, 0)[0] is not uncached.load_view(0, 0)[0]
    np.testing.assert_array_equal(uncached.load_view(0, 0)[0], first[0])


def test_discover_subjects(b_subject, tmp_path):
    assert discover_subjects(b_subject) == [b_subject]
    assert discover_subjects(b_subject.parent) == [b_subject]
    with pytest.raises(UserError) as err:
        discover_subjects(tmp_path)
    assert_names(str(err.value), tmp_path, "annots.npy")                      # the folder and the file looked for
