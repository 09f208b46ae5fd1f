"""``eval --force`` keeps the previous results until the new ones are complete; outputs get the usual modes."""
from __future__ import annotations

import stat

import pytest
import torch

from keypointnerf.cli import main
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model

from zju_fixtures import make_subject, write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_force")
    data = root / "data"
    make_subject(data, name="B", cameras=5, frames=1, size=64)
    write_split(data, train=[], test=["B"])
    torch.manual_seed(0)
    checkpoint = root / "model.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 4, "fine_samples": 0})
    return data, checkpoint


def _eval(setup, out, *extra):
    data, checkpoint = setup
    return main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                 "--downsample", "1.0", "--device", "cpu", *extra])


def _tree(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ValueError("a bad image")], ids=["ctrl-c", "bad image"])
def test_eval_force_interrupted_half_way_leaves_the_previous_results(setup, tmp_path, monkeypatch, failure):
    out = tmp_path / "out"
    assert _eval(setup, out) == 0
    before = _tree(out)
    assert set(before) == {"metrics.json", "images/B_0000_cam01.png", "images/B_0000_cam04.png"}
    for name in before:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name   # not the 0600 of a temporary file

    import keypointnerf.eval.metrics as metrics
    original = metrics.image_metrics
    calls = []

    def fails_on_the_second_image(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise failure
        return original(*args, **kwargs)
    monkeypatch.setattr(metrics, "image_metrics", fails_on_the_second_image)
    code = _eval(setup, out, "--force", "--coarse-samples", "2")
    assert code == (130 if failure is KeyboardInterrupt else 2)
    assert _tree(out) == before                                   # metrics.json and images byte-identical
    assert sorted(p.name for p in out.iterdir()) == ["images", "metrics.json"]    # no staging folder left

    monkeypatch.undo()
    assert _eval(setup, out, "--force", "--coarse-samples", "2") == 0
    assert _tree(out)["metrics.json"] != before["metrics.json"]
    assert sorted(p.name for p in out.iterdir()) == ["images", "metrics.json"]
