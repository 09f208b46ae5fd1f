"""Protocols (NHP split, split.json) and the train/test data sets built on the ZJU reader."""
from __future__ import annotations

import pytest
import torch

from keypointnerf.data.datasets import TestDataset, TrainDataset
from keypointnerf.data.protocol import (FrameRange, load_protocol, resolve_subject_folders, select_cameras,
                                        zju_nhp_protocol)
from keypointnerf.errors import UserError
from zju_fixtures import make_subject, write_split


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A split.json set: train subject A (8 cameras, 3 frames), test subject B (8 cameras, 2 frames);
    256x256 stored, read at 0.5 -> 128x128."""
    root = tmp_path_factory.mktemp("split")
    make_subject(root, name="A", cameras=8, frames=3, size=256)
    make_subject(root, name="B", cameras=8, frames=2, size=256)
    write_split(root, train=["A"], test=["B"])
    return root


@pytest.fixture(scope="module")
def zju_root(tmp_path_factory):
    """A 23-camera test subject named like the real one (128x128 stored, read at 1.0)."""
    root = tmp_path_factory.mktemp("zju")
    make_subject(root, name="CoreView_387", cameras=23, frames=2, size=128)
    return root


def test_nhp_preset_frame_counts():
    protocol = zju_nhp_protocol()
    assert list(protocol.test) == ["CoreView_387", "CoreView_393", "CoreView_394"]
    frames = list(range(2000))
    counts = [len(r.select(frames)) for r in protocol.test.values()]
    assert counts == [22, 22, 29] and sum(counts) * len(protocol.target_cams) == 438
    assert protocol.input_cams == (0, 7, 15) and protocol.target_cams == (3, 5, 10, 12, 18, 20)
    assert protocol.train["CoreView_396"].select(frames)[:2] == [810, 815]
    assert len(protocol.train["CoreView_313"].select(frames)) == 60
    assert FrameRange(0, 654, 30).select(frames)[-1] == 630


def test_camera_selection():
    assert select_cameras(23) == ([0, 7, 15], [3, 5, 10, 12, 18, 20])
    assert select_cameras(21) == ([0, 7, 15], [3, 5, 10, 12, 18, 20])
    # 8 cameras: evenly spaced inputs round(k * 8 / 3) = 0, 3, 5 and every other camera as a target
    assert select_cameras(8) == ([0, 3, 5], [1, 2, 4, 6, 7])
    # explicit indices that exist are kept; missing targets are dropped
    assert select_cameras(12, (0, 4, 8), (2, 6, 10, 18)) == ([0, 4, 8], [2, 6, 10])
    with pytest.raises(UserError):
        select_cameras(3)


def test_split_protocol_and_subject_resolution(synth_root, zju_root, tmp_path):
    protocol = load_protocol("auto", synth_root)
    assert protocol.name == "split" and list(protocol.train) == ["A"] and list(protocol.test) == ["B"]
    assert load_protocol("auto", zju_root).name == "zju_nhp"
    # no split.json and no folder named after a ZJU-MoCap subject: every subject and frame, train and test
    others = tmp_path / "others"
    make_subject(others, name="person_a", cameras=4, frames=2, size=128)
    make_subject(others, name="person_b", cameras=4, frames=1, size=128)
    make_subject(others, name="synth_392", cameras=4, frames=1, size=128)     # a number is not a ZJU name
    protocol = load_protocol("auto", others)
    assert protocol.name == "all" and list(protocol.train) == list(protocol.test) == ["person_a", "person_b", "synth_392"]
    assert protocol.test["person_a"] == FrameRange()
    assert load_protocol("all", others / "person_b").test == {"person_b": FrameRange()}
    # one ZJU-MoCap subject present: the paper's split, whose missing subjects are an error later
    make_subject(others, name="387", cameras=4, frames=1, size=128)
    assert load_protocol("auto", others).name == "zju_nhp"
    assert resolve_subject_folders(zju_root, ["CoreView_387"])["CoreView_387"].name == "CoreView_387"
    make_subject(tmp_path, name="393", cameras=4, frames=1, size=128)
    assert resolve_subject_folders(tmp_path, ["CoreView_393"])["CoreView_393"].name == "393"
    with pytest.raises(UserError, match="CoreView_394"):
        resolve_subject_folders(tmp_path, ["CoreView_393", "CoreView_394"])


def test_train_items_and_patches(synth_root):
    dataset = TrainDataset(synth_root, seed=3)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        for _ in range(3):
            sample = dataset[index]
            src = list(sample.info.src_cams)
            assert len(set(src)) == 3 and sample.info.tgt_cam not in src
            assert sample.views.images.shape == (3, 3, 128, 128) and sample.views.masks.shape == (3, 1, 128, 128)
            assert sample.views.K.shape == (3, 3, 3) and sample.views.Rt.shape == (3, 3, 4)
            assert sample.tgt_image.shape == (3, 128, 128) and sample.tgt_mask.shape == (1, 128, 128)
            assert sample.views.keypoints.shape == (24, 3) and sample.bounds.shape == (2, 3)
            assert sample.views.images.dtype == torch.float32
            pixels = sample.pixels
            assert pixels.dtype == torch.int64 and pixels.shape == (64 * 64, 2)
            u, v = pixels[:, 0], pixels[:, 1]
            assert u.max() - u.min() == 63 and v.max() - v.min() == 63 and len({tuple(p) for p in pixels.tolist()}) == 4096
            assert u.min() >= 0 and v.min() >= 0 and u.max() < 128 and v.max() < 128
            # the patch is centred on a foreground pixel (shifted only to stay inside the image)
            on_mask = sample.tgt_mask[0, v, u]
            assert on_mask.sum() > 0
            if 0 < u.min() and u.max() < 127 and 0 < v.min() and v.max() < 127:  # not shifted at a border
                assert sample.tgt_mask[0, v.min() + 32, u.min() + 32] == 1
            assert torch.equal(sample.tgt_image[:, v, u].sum(0) > 0, on_mask > 0)
            assert sample.info.subject == "A" and sample.info.frame == index


def test_spread_sources_are_evenly_spaced_around_the_ring_from_every_start(synth_root):
    dataset = TrainDataset(synth_root, seed=5, patch_size=8, source_layout="spread")
    layouts, targets = set(), set()
    for _ in range(40):
        sample = dataset[0]
        src, target = list(sample.info.src_cams), sample.info.tgt_cam
        # 3 of 8 cameras numbered around the ring: offsets round(k * 8 / 3) = 0, 3, 5 from a random start
        gaps = sorted((b - a) % 8 for a, b in zip(src, src[1:] + src[:1]))
        assert gaps == [2, 3, 3] and target not in src
        layouts.add(tuple(src))
        targets.add(target)
    assert len(layouts) >= 6 and len(targets) >= 4           # every start and every other camera get drawn
    with pytest.raises(UserError, match="data.source_layout 'ring'"):
        TrainDataset(synth_root, source_layout="ring")


def test_train_seeding(synth_root):
    first = [TrainDataset(synth_root, seed=11)[1] for _ in range(2)]
    assert first[0].info == first[1].info and torch.equal(first[0].pixels, first[1].pixels)
    dataset = TrainDataset(synth_root, seed=11)
    draws = [(tuple(list(s.info.src_cams)), s.info.tgt_cam, tuple(s.pixels[0].tolist()))
             for s in (dataset[1] for _ in range(6))]
    assert len(set(draws)) > 1  # redraws of one item vary (epochs see different cameras / patches)


def test_test_dataset_split_set_with_8_cameras(synth_root):
    dataset = TestDataset(synth_root)
    assert dataset.cameras["B"] == ([0, 3, 5], [1, 2, 4, 6, 7])
    assert len(dataset) == 2 * 5
    sample = dataset[0]
    assert sample.pixels is None and list(sample.info.src_cams) == [0, 3, 5]
    assert sample.tgt_image.shape == (3, 128, 128)
    moved = sample.to("meta")      # every tensor of a sample goes with it
    tensors = [*vars(moved.views).values(), moved.bounds, moved.tgt_image, moved.tgt_mask, moved.tgt_K, moved.tgt_Rt]
    assert len(tensors) == 10 and all(t.device.type == "meta" for t in tensors)
    assert moved.views.images.shape == sample.views.images.shape and moved.info == sample.info


def test_test_dataset_nhp_cameras_and_frames(zju_root):
    dataset = TestDataset(zju_root, protocol="zju_nhp", downsample=1.0, subjects=["CoreView_387"])
    assert len(dataset) == 6  # 2 frames, every 30th -> frame 0, six targets
    assert [item[2] for item in dataset.items] == [3, 5, 10, 12, 18, 20]
    targets = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        assert list(sample.info.src_cams) == [0, 7, 15] and sample.info.frame == 0
        targets.add(sample.info.tgt_cam)
        assert sample.views.K.shape == (3, 3, 3)
    assert targets == {3, 5, 10, 12, 18, 20}
    every = TestDataset(zju_root, protocol="zju_nhp", downsample=1.0, subjects=["CoreView_387"], frame_step=1,
                        input_cams=(1, 2, 3), target_cams=(4,))
    assert [item[1:] for item in every.items] == [(0, 4), (1, 4)]
    with pytest.raises(UserError, match="CoreView_393"):
        TestDataset(zju_root, protocol="zju_nhp", downsample=1.0)
