"""``eval --force`` keeps the previous results until the new ones are complete; outputs get the usual modes."""
from __future__ import annotations

import stat

import pytest

from keypointnerf.cli import main

from zju_fixtures import failing_on_call, make_subject, save_random_small_model, usual_file_mode, write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_force")
    data = root / "data"
    make_subject(data, name="B", cameras=5, frames=1, size=64)
    write_split(data, train=[], test=["B"])
    return data, save_random_small_model(root / "model.ckpt")


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
    for name in before:                                           # 0644 with the usual umask, not 0600
        assert stat.S_IMODE((out / name).stat().st_mode) == usual_file_mode(), name

    import keypointnerf.eval.commands as eval_verb
    monkeypatch.setattr(eval_verb, "image_metrics", failing_on_call(eval_verb.image_metrics, 2, failure))
    code = _eval(setup, out, "--force", "--coarse-samples", "2")
    assert code == (130 if failure is KeyboardInterrupt else 2)
    assert _tree(out) == before                                   # metrics.json and images byte-identical
    assert sorted(p.name for p in out.iterdir()) == ["images", "metrics.json"]    # no staging folder left

    monkeypatch.undo()
    assert _eval(setup, out, "--force", "--coarse-samples", "2") == 0
    assert _tree(out)["metrics.json"] != before["metrics.json"]
    assert sorted(p.name for p in out.iterdir()) == ["images", "metrics.json"]
