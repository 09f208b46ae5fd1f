"""Masks from clean background plates."""
from __future__ import annotations

import numpy as np

from keypointnerf.capture.masks import fill_holes, keep_main_regions, plate_mask
from keypointnerf.capture.synthetic import textured_plate
from keypointnerf.data.zju import ZJUSubject


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_fill_holes_and_regions_hand_worked():
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True
    mask[5:8, 5:8] = False   # a hole of 9 pixels: filled
    mask[17, 17] = True      # a speck: dropped
    filled = keep_main_regions(fill_holes(mask, max_fraction=0.1))
    expected = np.zeros((20, 20), bool)
    expected[2:12, 2:12] = True
    np.testing.assert_array_equal(filled, expected)
    # 9 pixels over 10 % of the 91-pixel mask: background seen through the body (between the legs), kept
    np.testing.assert_array_equal(fill_holes(mask, max_fraction=0.09), mask)


def test_background_between_the_legs_stays_background():
    """Two legs joined at the hips and touching at the feet enclose background: not a hole."""
    mask = np.zeros((60, 40), bool)
    mask[5:20, 10:30] = True     # hips
    mask[20:50, 10:16] = True    # left leg
    mask[20:50, 24:30] = True    # right leg
    mask[50:55, 10:30] = True    # feet touching
    mask[8, 20] = False          # a one-pixel hole (the shirt matches the plate): filled
    filled = fill_holes(mask)
    assert filled[8, 20] and not filled[20:50, 16:24].any()


def test_plate_mask_recovers_synthetic_people(synth_set):
    """Renders composited over textured plates, with sensor noise: the mask from differencing matches the
    rendered mask (IoU > 0.92 in every view, 0.95 on average)."""
    rng = np.random.default_rng(0)
    subject = ZJUSubject(synth_set / "synth_000", downsample=1.0, cache_mb=0)
    from PIL import Image
    ious = []
    for cam in range(subject.num_cameras):
        render = np.asarray(Image.open(subject.image_path(0, cam)).convert("RGB"))
        truth = np.asarray(Image.open(subject.mask_paths(0, cam)[0])) > 0
        plate = textured_plate(*truth.shape, seed=cam)
        image = np.where(truth[..., None], render, plate).astype(np.float64)
        image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
        noisy_plate = np.clip(plate + rng.normal(0, 3, plate.shape), 0, 255).astype(np.uint8)
        mask = plate_mask(image, noisy_plate)
        ious.append(iou(mask, truth))
    assert min(ious) > 0.92 and np.mean(ious) > 0.95, ious


def test_plate_mask_of_an_empty_scene_is_empty():
    plate = textured_plate(64, 64, seed=3)
    noisy = np.clip(plate + np.random.default_rng(0).normal(0, 2, plate.shape), 0, 255).astype(np.uint8)
    assert not plate_mask(noisy, plate).any()
