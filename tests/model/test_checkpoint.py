"""Official checkpoint import: safe loading, complete mapping, refusal of broken files, round trips."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from keypointnerf.cli import main as cli_main
from keypointnerf.errors import UserError
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import load_model, official_key, safe_torch_load, save_model
from helpers import SHARED, assert_names


def test_every_official_tensor_is_mapped_or_deliberately_dropped():
    listing = SHARED / "reference" / "state_dict_keys.txt"
    if not listing.is_file():
        pytest.skip(f"reference key list not found at {listing} (set KEYPOINTNERF_SHARED)")
    keys = [line.split("\t")[0] for line in listing.read_text().splitlines() if line.startswith("model.")]
    model = KeypointNeRF()
    ours = set(model.state_dict())
    mapped = {official_key(k) for k in keys} - {None}
    # every tensor of our model comes from exactly one official tensor
    assert ours <= mapped
    dropped = [k for k in keys if official_key(k) is None or official_key(k) not in ours]
    assert all(".vgg_loss." in k or ".downsample.0." in k or ".bn4." in k for k in dropped), dropped


def test_import_checkpoint_command_round_trip(official_checkpoint, tmp_path, capsys):
    out = tmp_path / "model.ckpt"
    assert cli_main(["import-checkpoint", str(official_checkpoint), "-o", str(out)]) == 0
    official, vgg_a, info_a = load_model(official_checkpoint)
    imported, vgg_b, info_b = load_model(out)
    assert (info_a["kind"], info_b["kind"]) == ("official", "package")
    assert len(vgg_b) == 18 and set(vgg_a) == set(vgg_b)   # the 9 convs of VGG19 up to relu4_1, weight + bias
    for (name, a), (_, b) in zip(official.state_dict().items(), imported.state_dict().items()):
        assert torch.equal(a, b), name
    # refuses to overwrite without --force
    before = out.read_bytes()
    assert cli_main(["import-checkpoint", str(official_checkpoint), "-o", str(out)]) == 2
    assert_names(capsys.readouterr().err, out, "--force")
    assert out.read_bytes() == before
    assert cli_main(["import-checkpoint", str(official_checkpoint), "-o", str(out), "--force"]) == 0


def test_weight_norm_layers_are_applied(official_checkpoint):
    """weight = v * g / |v| row-wise: the imported layer reproduces the official parameterisation."""
    ckpt = torch.load(official_checkpoint, weights_only=True)["state_dict"]
    model, _, _ = load_model(official_checkpoint)
    v = ckpt["model.mlp_geo.layers1.layers.0.linear.weight_v"]
    g = ckpt["model.mlp_geo.layers1.layers.0.linear.weight_g"]
    x = torch.randn(5, v.shape[1])
    expected = x @ (v * (g / v.norm(dim=1, keepdim=True))).T + ckpt["model.mlp_geo.layers1.layers.0.linear.bias"]
    assert torch.allclose(model.geometry_mlp.view_in(x), expected, atol=1e-5)


@pytest.mark.parametrize("damage", ["missing", "misshaped", "nan"])
def test_broken_official_checkpoints_are_refused(official_checkpoint, tmp_path, damage):
    ckpt = torch.load(official_checkpoint, weights_only=True)
    key = "model.geo_encoder.m0.b3_2.conv2.weight"
    if damage == "missing":
        del ckpt["state_dict"][key]
    elif damage == "misshaped":
        ckpt["state_dict"][key] = torch.zeros(3, 3)
    else:
        ckpt["state_dict"][key][0, 0, 0, 0] = float("nan")
    path = tmp_path / f"{damage}.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(UserError) as err:
        load_model(path)
    # the file and the tensor (as this package names it, or as the file does), and a wrong shape's numbers
    named = {"missing": [official_key(key)], "misshaped": [key, (3, 3)], "nan": [official_key(key)]}[damage]
    assert_names(str(err.value), path, *named)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")   # torch's note on the raw pickle: expected here
def test_checkpoint_with_code_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": exploit}}, f)
    with pytest.raises(UserError):
        load_model(path)
    # also through torch.save's zip format
    torch.save({"state_dict": {"x": exploit}, "hyper_parameters": {}}, tmp_path / "evil2.ckpt")
    loaded = safe_torch_load(tmp_path / "evil2.ckpt")
    assert not marker.exists()
    assert not isinstance(loaded["state_dict"]["x"], int)     # an inert placeholder, never os.system's result
    with pytest.raises(UserError):
        load_model(tmp_path / "evil2.ckpt")
    assert not marker.exists()


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(UserError, match="nope.ckpt"):
        load_model(tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="garbage.ckpt"):
        load_model(garbage)


def test_package_round_trip_small_model_and_wrong_architecture(tmp_path):
    model = KeypointNeRF(model_preset("small", spatial_encoding="abs_xyz"))
    path = tmp_path / "small.ckpt"
    save_model(path, model)
    loaded, _, info = load_model(path)
    assert loaded.cfg == model.cfg and info["kind"] == "package"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    # a state dict that does not fit its config is refused with the offending tensor named
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["geo_channels"] = 128
    torch.save(ckpt, path)
    with pytest.raises(UserError) as err:
        load_model(path)
    assert_names(str(err.value), path, "geometry_encoder.")     # the file and the tensors that do not fit


def test_cli_reports_errors_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "keypointnerf.cli", "import-checkpoint",
                             str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x.ckpt")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert_names(result.stderr, tmp_path / "missing.ckpt")
    assert not (tmp_path / "x.ckpt").exists()


def test_import_keeps_the_render_settings_a_model_was_trained_with(tmp_path):
    from keypointnerf.model import KeypointNeRF, model_preset
    from keypointnerf.model.checkpoint import save_model
    from keypointnerf.render.renderer import RenderConfig
    source, out = tmp_path / "trained.ckpt", tmp_path / "copy.ckpt"
    save_model(source, KeypointNeRF(model_preset("small")), render={"coarse_samples": 32, "fine_samples": 16})
    assert cli_main(["import-checkpoint", str(source), "-o", str(out)]) == 0
    _, _, info = load_model(out)
    cfg = RenderConfig.for_checkpoint(info, fine_samples=8)
    assert (cfg.coarse_samples, cfg.fine_samples, cfg.stratified) == (32, 8, False)
