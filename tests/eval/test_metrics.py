"""Image metrics of the evaluation: known answers worked out by hand, and LPIPS from a local weights file."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keypointnerf.errors import UserError
from keypointnerf.eval.metrics import LPIPS, box_pixel_mask, box_rectangle, image_metrics, load_lpips, quantize_8bit
from keypointnerf.imaging import PSNR_CAP, psnr

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# a unit cube at the origin seen from 3 m straight on: identity R, t = (0, 0, 3), f = 100, c = (64, 64).
# Front face (z = 2.5): u = 64 +- 100 * 0.5 / 2.5 = 44 .. 84; back face (z = 3.5): 64 +- 14.29. So the
# corners span pixels 44..84 in both directions: rows/columns [44, 85) with an exclusive end.
SIZE = 128
CUBE = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
K = np.array([[100.0, 0.0, 64.0], [0.0, 100.0, 64.0], [0.0, 0.0, 1.0]])
RT = np.hstack([np.eye(3), [[0.0], [0.0], [3.0]]])


def on_8bit_grid(rng, low=0, high=255, shape=(3, SIZE, SIZE)):
    return rng.integers(low, high + 1, size=shape) / 255.0


def test_box_rectangle_of_a_cube_seen_head_on():
    assert box_rectangle(CUBE, K, RT, SIZE, SIZE) == (44, 85, 44, 85)
    # torch inputs (float32, as in samples) give the same pixels: no float noise adds a row
    assert box_rectangle(torch.tensor(CUBE, dtype=torch.float32), torch.tensor(K, dtype=torch.float32),
                         torch.tensor(RT, dtype=torch.float32), SIZE, SIZE) == (44, 85, 44, 85)


def test_box_rectangle_is_clipped_to_the_image():
    K_left = K.copy()
    K_left[0, 2] = 10.0   # u = 10 +- 20: columns -10 .. 30 -> [0, 31)
    assert box_rectangle(CUBE, K_left, RT, SIZE, SIZE) == (44, 85, 0, 31)
    shifted = RT.copy()
    shifted[0, 3] = 0.5   # x + 0.5 in [0, 1]: u from 64 (both faces) to 64 + 100 / 2.5 = 104
    assert box_rectangle(CUBE, K, shifted, SIZE, SIZE) == (44, 85, 64, 105)


def test_box_behind_the_camera_gives_the_whole_image():
    behind = RT.copy()
    behind[2, 3] = 0.2    # the camera sits inside the cube: corners behind it, the projection is unbounded
    assert box_rectangle(CUBE, K, behind, 96, SIZE) == (0, 96, 0, SIZE)


def test_box_pixel_mask_follows_the_rays():
    mask = box_pixel_mask(CUBE, K, RT, SIZE, SIZE)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == bool
    # pixel u = 45: the ray's x at the front face is -0.19 * 2.5 = -0.475, inside; u = 43: x = -0.21 * z,
    # below -0.5 for every z in [2.5, 3.5], outside
    assert mask[64, 45] and not mask[64, 43] and mask[64, 64]
    assert mask[45, 64] and not mask[43, 64] and not mask[0, 0]
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (44, 85, 44, 85)
    # widened by 1 cm as Neural Human Performer's near/far test: corner pixel (44, 44) looks along
    # (-0.2, -0.2, 1) and meets the front face z = 2.49 at x = y = -0.498, inside -0.51: the whole rectangle
    assert mask.sum() == 41 * 41


def test_psnr_of_a_constant_error_is_known():
    rng = np.random.default_rng(0)
    gt = on_8bit_grid(rng, 0, 204)
    pred = gt + 51 / 255          # an exact 8-bit step, no clipping: e = 0.2 everywhere
    expected = -10 * math.log10((51 / 255) ** 2)   # 13.979 dB
    values = image_metrics(torch.tensor(pred), torch.tensor(gt), CUBE, K, RT)
    assert values["psnr"] == pytest.approx(expected, abs=1e-9)
    assert values["psnr_box"] == pytest.approx(expected, abs=1e-9)
    assert values["lpips"] is None


def test_identical_images_cap_psnr_and_give_ssim_one():
    rng = np.random.default_rng(1)
    gt = on_8bit_grid(rng)
    # differences below half an 8-bit step vanish in the quantisation, as in the official PNG round trip
    values = image_metrics(gt + 0.4 / 255 * (gt < 0.5), gt, CUBE, K, RT)
    assert values["psnr"] == PSNR_CAP and values["psnr_box"] == PSNR_CAP
    assert values["ssim"] == pytest.approx(1.0) and values["ssim_official"] == pytest.approx(1.0)
    assert psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3))) == PSNR_CAP


def test_ssim_official_exceeds_ssim_for_a_noisy_pair():
    rng = np.random.default_rng(2)
    gt = on_8bit_grid(rng)
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    values = image_metrics(pred, gt, CUBE, K, RT)
    assert 0 < values["ssim"] < values["ssim_official"] < 1


def test_psnr_box_counts_only_pixels_inside_the_box():
    rng = np.random.default_rng(3)
    gt = on_8bit_grid(rng, 0, 204)
    # the cube turned 45 degrees about the optical axis projects to a diamond: its rectangle's corners miss it
    c = math.cos(math.pi / 4)
    diamond = np.hstack([[[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]], [[0.0], [0.0], [3.0]]])
    mask = box_pixel_mask(CUBE, K, diamond, SIZE, SIZE)
    top, bottom, left, right = box_rectangle(CUBE, K, diamond, SIZE, SIZE)
    rect = np.zeros_like(mask)
    rect[top:bottom, left:right] = True
    outside_box = rect & ~mask
    assert outside_box[top, left] and outside_box.sum() > 0.3 * rect.sum()
    # pixels of the rectangle outside the box differ: the rectangle PSNR sees them, psnr_box does not
    pred = gt + 51 / 255 * outside_box
    values = image_metrics(pred, gt, CUBE, K, diamond)
    assert values["psnr_box"] == PSNR_CAP and values["psnr"] < 50
    # pixels outside the rectangle do not count for either
    far = np.zeros_like(mask)
    far[:10, :10] = True
    assert image_metrics(gt + 51 / 255 * far, gt, CUBE, K, RT)["psnr"] == PSNR_CAP
    # an error inside the box only: the same squared error over fewer pixels, so a lower psnr_box
    values = image_metrics(gt + 51 / 255 * mask, gt, CUBE, K, diamond)
    assert values["psnr_box"] == pytest.approx(-10 * math.log10((51 / 255) ** 2))
    assert values["psnr"] > values["psnr_box"]


def test_quantize_rounds_and_clips():
    image = np.array([-0.1, 0.5 / 255 - 1e-6, 0.5 / 255 + 1e-6, 1.2]).reshape(1, 2, 2).repeat(3, 0)
    assert quantize_8bit(image)[..., 0].ravel().tolist() == [0, 0, 1, 255]


def test_box_outside_the_view_is_an_error():
    far_right = K.copy()
    far_right[0, 2] = -500.0
    with pytest.raises(ValueError, match="box"):                             # the person's box is named
        image_metrics(np.zeros((3, SIZE, SIZE)), np.zeros((3, SIZE, SIZE)), CUBE, far_right, RT)


# ----------------------------------------------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.pth"
    torch.save(LPIPS().state_dict(), path)
    return path


def test_lpips_from_random_weights(lpips_file):
    lpips = load_lpips(lpips_file)
    rng = np.random.default_rng(4)
    a = on_8bit_grid(rng, shape=(40, 40, 3))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert lpips.distance(a, a) == 0.0
    assert lpips.distance(a, b) > 0
    assert lpips.distance(a[:9, :12], b[:9, :12]) > 0   # smaller than relu5_3 needs: padded, still works
    gt = on_8bit_grid(rng)
    assert image_metrics(gt, gt, CUBE, K, RT, lpips=lpips)["lpips"] == 0.0
    assert image_metrics(np.clip(gt + 0.1, 0, 1), gt, CUBE, K, RT, lpips=lpips)["lpips"] > 0


def test_lpips_accepts_the_lpips_package_layout(lpips_file, tmp_path):
    ours = torch.load(lpips_file, weights_only=True)
    # lpips.LPIPS(net="vgg").state_dict(): VGG split into slices (indices kept), lins duplicates, scaling consts
    slices = [(1, 0, 4), (2, 4, 9), (3, 9, 16), (4, 16, 23), (5, 23, 30)]
    theirs = {}
    for key, value in ours.items():
        if key.startswith("features."):
            index = int(key.split(".")[1])
            n = next(s for s, lo, hi in slices if lo <= index < hi)
            theirs[f"net.slice{n}.{key[len('features.'):]}"] = value
        else:
            theirs[key] = value
            theirs["lins." + key[len("lin"):]] = value
    theirs["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    path = tmp_path / "full.pth"
    torch.save(theirs, path)
    loaded = load_lpips(path)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, ours[key]), key


def test_lpips_bad_files_name_the_file(lpips_file, tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError, match="nope.pth"):
        load_lpips(missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(UserError, match="corrupt.pth"):
        load_lpips(corrupt)
    partial = tmp_path / "partial.pth"
    state = torch.load(lpips_file, weights_only=True)
    del state["lin4.model.1.weight"]
    torch.save(state, partial)
    with pytest.raises(UserError, match="partial.pth.*lin4"):
        load_lpips(partial)
