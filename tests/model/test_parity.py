"""The package reproduces the official model's outputs on the shared parity fixture: the outputs the parity script
saves are compared here with the fixture, against the package's parity tolerances."""
import os
import re
import subprocess
import sys

import numpy as np
import torch

from helpers import REPO
from keypointnerf.model import parity


def _run_script(checkpoint, fixture, *extra):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "parity.py"), str(checkpoint), str(fixture),
                           *extra], capture_output=True, text=True)


def test_saved_outputs_match_the_fixture_within_the_parity_tolerances(fixture_a, official_checkpoint, tmp_path):
    saved = tmp_path / "ours.npz"
    result = _run_script(official_checkpoint, fixture_a, "--save", saved)
    assert result.returncode == 0, result.stdout + result.stderr
    ours, reference = np.load(saved), np.load(fixture_a)
    box = reference["in/mask_at_box"].astype(bool)
    for name in parity.IMAGE_OUTPUTS:
        assert ours[name].shape == reference[name].shape, name
        diff = np.abs(ours[name] - reference[name])
        assert np.percentile(diff[:, box], 99.9) <= parity.IMAGE_P999, name
        assert diff.max() <= parity.IMAGE_MAX, name
    for name, (_, opacity_name) in parity.DEPTH_OUTPUTS.items():
        opaque = reference[opacity_name][0] > 0.5
        assert opaque.sum() > 100
        assert np.percentile(np.abs(ours[name][0] - reference[name][0])[opaque], 99.9) <= parity.DEPTH_P999, name
    valid, reference_valid = ours["query/valid"][:, 0], reference["query/valid"][:, 0].astype(bool)
    assert (valid != reference_valid).mean() <= parity.VALIDITY_MISMATCH
    both = valid & reference_valid
    assert both.sum() > 100
    for name in ("density", "rgb"):
        columns = parity.QUERY_COLUMNS[name]
        ref = reference["query/raw"][both][:, columns]
        relative = np.abs(ours["query/raw"][both][:, columns] - ref) / (1 + np.abs(ref))
        assert relative.max() <= parity.QUERY_RTOL, name


def test_parity_script_fails_on_wrong_weights(fixture_a, official_checkpoint, tmp_path):
    """A real error (here: one changed bias) is caught, so the comparison can fail."""
    ckpt = torch.load(official_checkpoint, weights_only=True)
    ckpt["state_dict"]["model.mlp_tex.out_layer.4.bias"] += 0.5
    ckpt["state_dict"]["model.mlp_geo.layers2.layers.2.linear.bias"] += 0.05
    broken = tmp_path / "broken.ckpt"
    torch.save(ckpt, broken)
    assert _run_script(broken, fixture_a).returncode == 1


def test_speed_benchmark_compares_both_paths_on_the_same_image(fixture_a, official_checkpoint):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "render_speed.py"), str(official_checkpoint),
                             str(fixture_a), "--sizes", "32"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    # the table's rows: size, path, seconds, network evaluations per pixel, peak MB, note
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^\s*32x32\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s", result.stdout, re.MULTILINE)}
    assert set(rows) == {"fast", "plain", "plain-4096"}
    assert rows["plain"][1] == rows["plain-4096"][1] > 2 * rows["fast"][1] > 0    # the fast path skips work
    diffs = [float(d) for d in re.findall(r"max \|fast - plain\| (\S+)", result.stdout)]
    assert len(diffs) == 2 and max(diffs) < 1e-5                                  # and renders the same picture
