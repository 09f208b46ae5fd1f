"""benchmarks/cross_style.py: one eval per (model, set, noise), results reused on a second run, the printed
figures equal to the evaluations' own metrics, noise that reaches the model lowering nothing it should not."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from helpers import REPO
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model

SCRIPT = REPO / "benchmarks" / "cross_style.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load_script():
    spec = importlib.util.spec_from_file_location("cross_style", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cross_style_table_matches_the_evaluations_and_resumes(synth_set, tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = tmp_path / "random.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 4, "fine_samples": 4})
    script = _load_script()
    argv = ["--model", f"rand={checkpoint}", "--set", f"a={synth_set}", "--set", f"b={synth_set}",
            "--protocol", "b=all", "--out", str(tmp_path / "out"), "--noise", "0,2", "--frame-step", "2"]
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    results = {}
    for set_name in ("a", "b"):
        for noise in ("0", "2"):
            report = json.loads((tmp_path / "out" / "rand" / set_name / f"noise{noise}" / "metrics.json").read_text())
            assert report["protocol"]["keypoint_noise_cm"] == float(noise)
            assert report["protocol"]["name"] == ("split" if set_name == "a" else "all")
            results[(set_name, noise)] = report["mean"]
    last = dict(item.split("=") for item in printed.strip().splitlines()[-1].split())
    assert float(last["rand_a_psnr"]) == pytest.approx(results[("a", "0")]["psnr"], abs=0.006)
    assert float(last["rand_b_ssim"]) == pytest.approx(results[("b", "0")]["ssim"], abs=6e-5)
    # set b is the same data with every subject tested: its images include set a's
    assert results[("b", "0")]["count"] > results[("a", "0")]["count"]
    # a second run reuses every result: nothing is evaluated again
    capsys.readouterr()
    assert script.main(argv) == 0
    assert "$ keypointnerf eval" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="NAME=PATH"):
        script.main(["--model", "nothing", "--set", f"a={synth_set}", "--out", str(tmp_path / "x")])


def test_cross_style_noise_sets_and_max_images(synth_set, tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = tmp_path / "random.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 4, "fine_samples": 4})
    script = _load_script()
    out = tmp_path / "out"
    argv = ["--model", f"rand={checkpoint}", "--set", f"a={synth_set}", "--set", f"b={synth_set}",
            "--protocol", "b=all", "--out", str(out), "--noise", "0,2", "--noise-sets", "b", "--max-images", "2"]
    assert script.main(argv) == 0
    made = sorted(str(p.parent.relative_to(out)) for p in out.rglob("metrics.json"))
    assert made == ["rand/a/noise0", "rand/b/noise0", "rand/b/noise2"]
    for path in out.rglob("metrics.json"):
        assert json.loads(path.read_text())["mean"]["count"] == 2
    # results made with other options are not mixed into the table
    with pytest.raises(SystemExit, match="max-images"):
        script.main([*argv[:-2], "--max-images", "3"])
    with pytest.raises(SystemExit, match="--noise-sets"):
        script.main([*argv[:-4], "--noise-sets", "c"])
