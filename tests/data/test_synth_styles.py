"""The diverse and held-out styles of ``synth``: textures (hand-worked values, ranges, determinism), pose
families (limits, mirroring, what the poses look like on anny), lights and shadows, camera effects, varied
rigs, and a tiny generated set of each style that the reader and ``data check`` accept."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from keypointnerf.data.check import check_data
from keypointnerf.data.safe_pickle import load_npy
from keypointnerf.data.synth import body, camera_effects, cameras, generate, lighting, poses, styles, textures
from keypointnerf.data.synth.render import RayCaster
from keypointnerf.data.zju import ZJUSubject
from keypointnerf.errors import UserError

POINTS = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2000, 3))


# ------------------------------------------------------------------------------------------------ textures
@pytest.mark.parametrize("family", textures.TEXTURE_FAMILIES)
def test_every_texture_family_is_deterministic_and_in_range(family):
    base = np.array([0.2, 0.3, 0.6])
    a = textures.sample_texture(np.random.default_rng(4), family, base)
    b = textures.sample_texture(np.random.default_rng(4), family, base)
    colours = textures.evaluate(a, POINTS)
    assert colours.shape == (len(POINTS), 3)
    assert colours.min() >= 0 and colours.max() <= 1
    np.testing.assert_array_equal(colours, textures.evaluate(b, POINTS))
    if family != "solid":  # a pattern: more than one colour over half a metre
        assert len(np.unique(colours.round(3), axis=0)) > 1
    assert textures.evaluate(a, POINTS[:0]).shape == (0, 3)


def test_stripes_checks_and_dots_hand_worked():
    white, black = np.ones(3), np.zeros(3)
    stripes = {"family": "stripes", "colour": white, "colour2": black, "direction": np.array([0.0, 0, 1]),
               "period": 0.1, "duty": 0.3, "colours": 2}
    z = np.array([[0, 0, 0.01], [0, 0, 0.05], [0, 0, 0.11], [0.3, 0.2, 0.25]])
    np.testing.assert_array_equal(textures.evaluate(stripes, z), [black, white, black, white])
    checks = {"family": "checks", "colour": white, "colour2": black, "period": 0.1}
    cells = np.array([[0.05, 0.05, 0.05], [0.15, 0.05, 0.05], [0.15, 0.15, 0.05], [-0.05, 0.05, 0.05]])
    np.testing.assert_array_equal(textures.evaluate(checks, cells), [white, black, white, black])
    dots = {"family": "dots", "colour": white, "colour2": black, "period": 0.1, "radius": 0.3}
    np.testing.assert_array_equal(textures.evaluate(dots, np.array([[0.05, 0.05, 0.05], [0.0, 0.0, 0.0]])),
                                  [black, white])


def test_value_noise_is_smooth_and_matches_the_lattice():
    period = 0.05
    corner = np.array([[2 * period, 3 * period, -period]])
    expected = textures._hash(np.array([2]), np.array([3]), np.array([-1]), 9)
    np.testing.assert_allclose(textures.value_noise(corner, period, 9), expected, atol=1e-12)
    line = np.stack([np.linspace(0, 0.5, 2001), np.zeros(2001), np.zeros(2001)], 1)
    values = textures.value_noise(line, period, 9)
    assert 0 <= values.min() and values.max() <= 1
    assert np.abs(np.diff(values)).max() < 0.02  # 0.25 mm steps: continuous
    assert values.std() > 0.05  # and not constant


def test_photo_texture_reads_the_bundled_photo():
    image = textures.photo("astronaut")
    assert image.shape == (512, 512, 3) and 0 <= image.min() and image.max() <= 1
    texture = {"family": "photo", "colour": np.zeros(3), "colour2": np.ones(3), "photo": "astronaut",
               "tint": False, "axis_u": np.array([1.0, 0, 0]), "axis_v": np.array([0, 0, 1.0]), "size": 0.5,
               "offset": np.zeros(2)}
    point = np.array([[0.25, 0.0, 0.1]])  # u = 0.5, v = 0.2 of the image
    np.testing.assert_allclose(textures.evaluate(texture, point)[0], image[round(0.2 * 511), round(0.5 * 511)])


# ------------------------------------------------------------------------------------------------ poses
def test_mirror_is_an_involution_and_limits_are_symmetric():
    pose = {("upperarm01.L", 0): 0.3, ("upperarm01.L", 1): -1.2, ("upperarm01.L", 2): 0.4}
    right = poses.mirror(pose)
    assert right == {("upperarm01.R", 0): 0.3, ("upperarm01.R", 1): 1.2, ("upperarm01.R", 2): -0.4}
    back = {(bone[:-2] + ".L", axis): value for (bone, axis), value in poses.mirror(right).items()}
    assert back == pose
    limits = poses.limits()
    assert limits[("upperarm01.R", 1)] == (-0.8, 2.4) and limits[("lowerleg01.R", 0)] == (0.0, 2.3)


@pytest.mark.parametrize("motion", poses.MOTIONS)
def test_family_motion_within_limits(motion):
    rng = np.random.default_rng(5)
    result = poses.sample_family_motion(rng, 30, poses.POSE_FAMILIES, (1,) * len(poses.POSE_FAMILIES), motion)
    assert result["euler"].shape == (30, len(body.POSED_BONES), 3)
    for (bone, axis), (low, high) in poses.limits().items():
        angles = result["euler"][:, body.POSED_BONES.index(bone), axis]
        assert (angles >= low - 1e-12).all() and (angles <= high + 1e-12).all(), (bone, axis)
    assert set(result["families"]) <= set(poses.POSE_FAMILIES)
    if motion == "sequence":  # smooth: key poses 0.8-2 s apart
        assert np.abs(np.diff(result["euler"], axis=0)).max() < 0.6
    else:
        assert len(result["key_frames"]) == 30


def _posed_keypoints(pose: dict) -> np.ndarray:
    model = body.load_anny()
    euler = np.zeros((1, len(body.POSED_BONES), 3))
    for (bone, axis), value in pose.items():
        euler[0, body.POSED_BONES.index(bone), axis] = value
    motion = {"euler": euler, "yaw": np.zeros(1), "drift": np.zeros((1, 2))}
    phenotype = {k: 0.5 for k in body.PHENOTYPE_LABELS}
    with body.single_torch_thread():
        return body.pose_frames(model, phenotype, motion).keypoints[0]


def test_pose_families_look_like_their_names():
    """On anny: arms overhead put both wrists above the head, a high kick lifts the ankle to hip height, a
    two-knee kneel puts the knees on the ground, a squat lowers the pelvis."""
    rng = np.random.default_rng(1)
    HEAD, PELVIS, L_WRIST, R_WRIST, L_KNEE, R_KNEE, L_ANKLE, L_HIP = 15, 0, 20, 21, 4, 5, 7, 1
    rest = _posed_keypoints({})
    overhead = _posed_keypoints({**poses._arm(rng, "overhead"), **poses.mirror(poses._arm(rng, "overhead"))})
    assert overhead[L_WRIST, 2] > overhead[HEAD, 2] and overhead[R_WRIST, 2] > overhead[HEAD, 2]
    kick = _posed_keypoints(poses._leg(rng, "kick"))
    assert kick[L_ANKLE, 2] > kick[L_HIP, 2] - 0.35  # ankle up near hip height (rest: ~0.8 m below)
    assert rest[L_ANKLE, 2] < rest[L_HIP, 2] - 0.6
    kneel = _posed_keypoints(poses._both_legs(rng, "kneel", "kneel"))
    assert max(kneel[L_KNEE, 2], kneel[R_KNEE, 2]) < 0.12  # knees on the ground (feet on z = 0 by placement)
    squat = _posed_keypoints(poses._both_legs(rng, "squat", "squat"))
    assert squat[PELVIS, 2] < rest[PELVIS, 2] - 0.25


# ------------------------------------------------------------------------------------------------ lights
def test_fixed_lighting_hand_worked():
    fixed = lighting.sample_lighting(np.random.default_rng(0), "fixed")
    up = np.array([[0.0, 0.0, 1.0]])
    key, fill = (np.asarray(light["direction"]) for light in fixed["lights"])
    expected = 0.45 + 0.5 * key[2] + 0.25 * fill[2]
    np.testing.assert_allclose(lighting.shade(np.full((1, 3), 0.5), up, fixed), [[0.5 * expected] * 3])
    # a normal facing away from both lights gets the ambient only
    away = -(key + fill) / np.linalg.norm(key + fill)
    if (away @ key) <= 0 and (away @ fill) <= 0:
        np.testing.assert_allclose(lighting.shade(np.full((1, 3), 0.5), away[None], fixed), [[0.225] * 3])


def test_shadow_rays_find_a_blocker():
    # a large triangle at z = 1 between the light (straight up) and the point at the origin
    vertices = np.array([[-5.0, -5, 1], [5, -5, 1], [0, 5, 1]])
    caster = RayCaster(vertices, np.array([[0, 1, 2]]))
    light = {"family": "test", "ambient": np.zeros(3), "shadows": True, "softness": np.radians(3),
             "lights": [{"direction": np.array([0.0, 0, 1]), "colour": np.ones(3)}]}
    points = np.array([[0.0, 0, 0], [20.0, 0, 0]])  # under the triangle, and far beside it
    normals = np.array([[0.0, 0, 1], [0.0, 0, 1]])
    visible = lighting.visibility(caster, points, normals, light, np.random.default_rng(0))
    np.testing.assert_array_equal(visible[:, 0], [0.0, 1.0])
    shaded = lighting.shade(np.ones((2, 3)), normals, light, visible)
    np.testing.assert_allclose(shaded, [[0, 0, 0], [1, 1, 1]])


# ------------------------------------------------------------------------------------------------ camera effects
def test_no_effects_is_exact_and_real_effects_stay_near_the_edge():
    rng = np.random.default_rng(2)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 20:44] = True
    image = np.where(mask[..., None], 0.6, 0.0)
    none = camera_effects.sample_effects(rng, "none")
    picture, matte = camera_effects.apply_effects(image, mask, none, None, rng)
    np.testing.assert_array_equal(matte, mask)
    assert (picture == np.round(image * 255)).all()
    real = camera_effects.sample_effects(rng, "real")
    plate = camera_effects.background_plate((1, 2, 3), 64, 64)
    np.testing.assert_array_equal(plate, camera_effects.background_plate((1, 2, 3), 64, 64))
    assert not np.array_equal(plate, camera_effects.background_plate((1, 2, 4), 64, 64))
    picture, matte = camera_effects.apply_effects(image, mask, real, plate, rng)
    from scipy.ndimage import binary_dilation, binary_erosion
    near_edge = binary_dilation(mask, iterations=3) & ~binary_erosion(mask, iterations=3)
    assert not (matte ^ mask)[~near_edge].any()  # the matte differs from the truth only near the edge
    far_outside = ~binary_dilation(mask, iterations=4)
    assert np.abs(picture[far_outside] / 255.0 - plate[far_outside]).mean() < 0.05  # the plate shows there


# ------------------------------------------------------------------------------------------------ rigs
def test_varied_rig_frames_the_person():
    rng = np.random.default_rng(3)
    body_points = np.random.default_rng(0).uniform([-0.3, -0.2, 0.0], [0.3, 0.2, 1.8], size=(500, 3))
    for _ in range(5):
        rig = cameras.sample_rig(rng, "varied", 12, 512, body_points)
        assert (rig.width, rig.height) in cameras.IMAGE_SIZES
        for c in range(12):
            cam = body_points @ rig.R[c].T + rig.t[c]
            low, high = cameras.DEPTH_RANGE  # the model's working depths
            assert (cam[:, 2] > low - 0.05).all() and (cam[:, 2] < high + 0.05).all()
            uv = cam @ rig.K[c].T
            uv = uv[:, :2] / uv[:, 2:]
            assert (uv >= 0).all() and (uv[:, 0] <= rig.width - 1).all() and (uv[:, 1] <= rig.height - 1).all()
            span = max(np.ptp(uv[:, 0]) / rig.width, np.ptp(uv[:, 1]) / rig.height)
            assert 0.2 < span <= 0.96
            assert abs(rig.K[c, 0, 2] - (rig.width - 1) / 2) <= 0.061 * rig.width
            np.testing.assert_allclose(rig.R[c] @ rig.R[c].T, np.eye(3), atol=1e-9)
        # the ring keeps its order: azimuths increase (mod 2 pi) by less than half a turn
        positions = np.einsum("cji,cj->ci", rig.R, -rig.t)
        azimuth = np.arctan2(positions[:, 1], positions[:, 0])
        steps = np.mod(np.diff(np.r_[azimuth, azimuth[0]]), 2 * np.pi)
        assert (steps < np.pi / 2).all() and steps.sum() == pytest.approx(2 * np.pi)


# ------------------------------------------------------------------------------------------------ styles
def test_the_heldout_style_shares_no_family_with_diverse():
    diverse, heldout = styles.STYLES["diverse"], styles.STYLES["heldout"]
    assert not set(diverse.textures) & set(heldout.textures)
    assert not set(diverse.poses) & set(heldout.poses)
    assert not set(diverse.lighting) & set(heldout.lighting)


@pytest.mark.parametrize("style", ["diverse", "heldout"])
def test_a_tiny_set_of_each_style_reads_back(style, tmp_path):
    out = tmp_path / style
    generate(out, subjects=2, frames=1, cameras=4, resolution=256, seed=3, style=style, workers=1,
             progress=False)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["arguments"]["style"] == style
    spec = styles.STYLES[style]
    for name in ("synth_000", "synth_001"):
        meta = json.loads((out / name / "subject.json").read_text())
        assert meta["style"] == style
        assert {meta["look"]["top"]["texture"]["family"], meta["look"]["bottom"]["texture"]["family"]} <= \
            set(spec.textures) | {"solid"}  # plain trousers are solid in every style
        assert set(meta["motion"]["families"]) <= set(spec.poses)
        assert meta["lighting"]["family"] in spec.lighting
        assert meta["camera_effects"]["level"] == "real"
        width, height = meta["rig"]["image_size"]
        subject = ZJUSubject(out / name)
        assert subject.stored_size == (height, width)
        joints = np.load(out / name / "joints3d" / "0.npy")
        cams = load_npy(out / name / "annots.npy")["cams"]
        on_mask = []
        for c in range(4):
            mask = np.asarray(Image.open(out / name / "mask" / f"Camera_B{c + 1}" / "000000.png")) > 0
            cam = joints @ np.asarray(cams["R"][c]).T + np.asarray(cams["T"][c]).reshape(3) / 1000
            uv = cam @ np.asarray(cams["K"][c]).T
            pixel = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
            inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
            assert inside.all()
            on_mask.append(mask[pixel[:, 1], pixel[:, 0]])
        assert np.mean(on_mask) > 0.8
    summary = check_data(out, frames_to_decode=1)
    assert summary["ok"], summary


def test_effects_none_renders_the_same_people_clean(tmp_path):
    real, clean = tmp_path / "real", tmp_path / "clean"
    common = dict(subjects=1, frames=1, cameras=3, resolution=256, seed=5, style="heldout", workers=1,
                  progress=False)
    generate(real, **common)
    generate(clean, effects="none", **common)
    assert json.loads((clean / "synth.json").read_text())["arguments"]["effects"] == "none"
    meta_real = json.loads((real / "synth_000" / "subject.json").read_text())
    meta_clean = json.loads((clean / "synth_000" / "subject.json").read_text())
    assert meta_clean["camera_effects"]["level"] == "none" and meta_real["camera_effects"]["level"] == "real"
    for key in ("phenotype", "look", "motion", "lighting", "rig"):
        assert meta_clean[key] == meta_real[key], key
    for array in ("joints3d/0.npy", "vertices/0.npy"):
        np.testing.assert_array_equal(np.load(real / "synth_000" / array), np.load(clean / "synth_000" / array))
    image = np.asarray(Image.open(clean / "synth_000" / "Camera_B1" / "000000.jpg")).astype(int)
    mask = np.asarray(Image.open(clean / "synth_000" / "mask" / "Camera_B1" / "000000.png")) > 0
    noisy = np.asarray(Image.open(real / "synth_000" / "Camera_B1" / "000000.jpg")).astype(int)
    away = ~binary_dilation(mask, iterations=3)         # off the person's anti-aliased edge and JPEG ringing
    assert mask.any() and image[away].max() <= 8       # a black background
    assert np.abs(noisy - image)[away].mean() > 20     # where the real set has its background plate


def test_an_unknown_effect_level_is_refused(tmp_path):
    with pytest.raises(UserError, match="--effects"):
        generate(tmp_path / "x", subjects=1, frames=1, cameras=3, resolution=256, effects="grainy", workers=1,
                 progress=False)
