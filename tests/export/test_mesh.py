"""Chamfer distances with known answers; density grids and marching cubes on analytic shapes (a real sphere is
told from a hull-like box blob); the model's density with hull culling; the ``export-mesh`` command."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import trimesh

from helpers import assert_names, make_scene
from keypointnerf.cli import main
from keypointnerf.errors import UserError
from keypointnerf.export.mesh import (ModelDensity, chamfer_distance, density_grid, extract_mesh, grid_layout,
                                      sample_surface, truth_points, view_directions_from_cameras)
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model
from zju_fixtures import make_subject

RADIUS = 0.3
BOX = np.array([[-RADIUS] * 3, [RADIUS] * 3])


def sphere_density(points):
    """A soft ball: 20 / m deep inside, 10 / m exactly at radius 0.3 m, ramping over ~2 cm."""
    r = np.linalg.norm(points, axis=1)
    return 20.0 / (1.0 + np.exp(-(RADIUS - r) / 0.01))


def box_density(points):
    """What a model that only reproduces the visual hull would give: a solid blob filling the sphere's box."""
    return torch.from_numpy(np.where(np.abs(points).max(axis=1) <= RADIUS, 20.0, 0.0))   # torch output is fine


@pytest.fixture(scope="module")
def true_sphere_points():
    return sample_surface(trimesh.creation.icosphere(subdivisions=5, radius=RADIUS), 20000, seed=1)


# ----------------------------------------------------------------------------------------------- chamfer
def test_chamfer_known_answers():
    u, v = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    plane = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1)
    shifted = plane + np.array([0.0, 0.0, 0.01])                   # 1 cm above
    assert chamfer_distance(plane, shifted) == pytest.approx((0.01, 0.01, 0.01))
    assert chamfer_distance(plane, plane) == (0.0, 0.0, 0.0)
    # asymmetric: a single point at the origin vs. the origin and a point 1 m away
    a, b = np.zeros((1, 3)), np.array([[0.0, 0, 0], [1.0, 0, 0]])
    assert chamfer_distance(a, b) == pytest.approx((0.0, 0.5, 0.25))
    with pytest.raises(ValueError):
        chamfer_distance(a, np.zeros((0, 3)))


# ----------------------------------------------------------------------------------------------- grids and meshes
def test_grid_layout_has_cubic_voxels_covering_the_box():
    bounds = np.array([[-0.3, -0.2, 0.0], [0.3, 0.2, 1.8]])
    origin, spacing, shape = grid_layout(bounds, 64, margin=0.01)
    assert shape[2] == 64 and spacing == pytest.approx(1.82 / 63)
    far_corner = origin + spacing * (np.array(shape) - 1)
    assert np.all(origin <= bounds[0] - 0.01 + 1e-9) and np.all(far_corner >= bounds[1] + 0.01 - 1e-9)
    assert np.allclose((origin + far_corner) / 2, bounds.mean(0))


def test_sphere_mesh_is_accurate_and_a_box_blob_is_not(true_sphere_points):
    grid = density_grid(sphere_density, BOX, resolution=64, batch=10000)   # several batches
    mesh = extract_mesh(grid, threshold=10.0)
    assert mesh.is_watertight and mesh.volume > 0                          # closed, faces outwards
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - RADIUS) < 0.01 and radii.std() < 0.005
    _, _, chamfer = chamfer_distance(sample_surface(mesh, 20000, seed=0), true_sphere_points)
    assert chamfer < 0.01

    blob = extract_mesh(density_grid(box_density, BOX, resolution=64), threshold=10.0)
    _, _, blob_chamfer = chamfer_distance(sample_surface(blob, 20000, seed=0), true_sphere_points)
    assert blob_chamfer > 0.02


def test_empty_surface_names_the_density_range():
    grid = density_grid(lambda p: np.full(len(p), 0.5), BOX, resolution=8)
    with pytest.raises(UserError) as err:
        extract_mesh(grid, threshold=5.0)
    assert_names(str(err.value), "threshold 5", "0.5 to 0.5", "8x8x8")    # the threshold and the range seen
    with pytest.raises(UserError, match="--threshold"):
        extract_mesh(grid, threshold=0.0)


def test_view_directions_come_from_the_camera_facing_the_surface():
    centers = np.array([[3.0, 0, 0], [-3.0, 0, 0], [0, 3.0, 0]])
    vertices = np.array([[0.2, 0, 0], [0, 0.2, 0]])
    normals = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    dirs = view_directions_from_cameras(vertices, normals, centers)
    assert np.allclose(dirs, [[-1, 0, 0], [0, -1, 0]])    # from camera 0, then camera 2, towards the vertex


def test_model_density_runs_networks_only_inside_the_hull():
    torch.manual_seed(0)
    scene = make_scene()
    model = KeypointNeRF(model_preset("small")).eval()
    with torch.no_grad():
        model.geometry_mlp.fused_out.bias[1] = 7.0          # density 7 + (small random part) inside the hull
        enc = model.encode(scene["views"])
    density = ModelDensity(model, enc, max_points=500)
    grid = density_grid(density, scene["bounds"].numpy(), resolution=16, batch=1000)
    points = grid.points(np.stack(np.unravel_index(np.arange(grid.values.size), grid.shape), axis=1))
    valid = model.project(enc, torch.from_numpy(points).float()).valid.numpy().reshape(grid.shape)
    assert 0 < valid.sum() < valid.size
    assert grid.evaluated == density.evaluated == valid.sum()
    assert np.all(grid.values[~valid] == 0) and np.all(grid.values[valid] > 0)
    assert density.hull_min > 0


def test_truth_points_with_and_without_faces(tmp_path, monkeypatch):
    class Subject:
        path = tmp_path / "subj"

        def vertices(self, frame):
            return trimesh.creation.icosphere(subdivisions=2, radius=0.5).vertices.astype(np.float32)

    Subject.path.mkdir()
    points, how = truth_points(Subject(), 0, 500, seed=0)
    assert "point cloud" in how and len(points) == 162
    np.save(Subject.path / "faces.npy", trimesh.creation.icosphere(subdivisions=2, radius=0.5).faces)
    points, how = truth_points(Subject(), 0, 500, seed=0)
    assert "faces.npy" in how and points.shape == (500, 3)
    assert np.allclose(np.linalg.norm(points, axis=1), 0.5, atol=0.03)     # on the (coarse) sphere's faces


def test_anny_faces_read_from_the_cache_without_building(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from keypointnerf.data.synth.body import cached_anny_faces

    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    (tmp_path / "anny" / "v99").mkdir(parents=True)
    save_file({"faces": faces, "template_vertices": np.zeros((4, 3))},
              str(tmp_path / "anny" / "v99" / "build_compact_model_data_x.safetensors"))
    monkeypatch.setenv("KEYPOINTNERF_CACHE", str(tmp_path))
    assert np.array_equal(cached_anny_faces(4), faces)
    assert cached_anny_faces(5) is None                      # another topology: not used


# ----------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_cli")
    subject = make_subject(root / "data", cameras=4, frames=2, size=128)
    checkpoints = {}
    for name, bias in (("solid", 50.0), ("empty", -3.0)):
        torch.manual_seed(0)
        model = KeypointNeRF(model_preset("small"))
        with torch.no_grad():   # constant density: the mesh is the sources' visual hull (fine for a path test)
            model.geometry_mlp.fused_out.weight.zero_()
            model.geometry_mlp.fused_out.bias[1] = bias
        checkpoints[name] = root / f"{name}.ckpt"
        save_model(checkpoints[name], model, render={"coarse_samples": 8, "fine_samples": 8})
    return {"root": root, "subject": subject, **checkpoints}


def _args(files, checkpoint, out, *extra):
    return ["export-mesh", "--checkpoint", str(files[checkpoint]), "--data", str(files["subject"]),
            "--sources", "0,1,2", "--downsample", "1.0", "--grid", "24", "--device", "cpu", "-o", str(out), *extra]


def test_export_mesh_command(scene_files, capsys):
    out = scene_files["root"] / "hull.ply"
    assert main(_args(scene_files, "solid", out, "--truth", "--truth-points", "3000", "--frame", "1")) == 0
    mesh = trimesh.load(out, process=False)
    assert len(mesh.faces) > 100 and mesh.is_watertight
    colors = np.asarray(mesh.visual.vertex_colors)
    assert colors.dtype == np.uint8 and colors.shape == (len(mesh.vertices), 4)
    # the hull of the ellipsoid (centre (0, 0, 1) m, radii 0.3, 0.2, 0.7) in world metres, inside the grid
    low, high = mesh.vertices.min(0), mesh.vertices.max(0)
    assert np.all(low > [-0.4, -0.3, 0.2]) and np.all(high < [0.4, 0.3, 1.8]) and high[2] - low[2] > 1.2
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["frame"] == 1 and report["sources"] == [0, 1, 2] and report["vertices"] == len(mesh.vertices)
    truth = report["truth"]
    assert "point cloud" in truth["truth_surface"]            # the fixture's 300 vertices, no faces
    assert 0 < truth["chamfer_cm"] < 20
    assert truth["chamfer_cm"] == pytest.approx((truth["mesh_to_truth_cm"] + truth["truth_to_mesh_cm"]) / 2,
                                                abs=1e-3)
    printed = re.search(r"(\d+\.\d+) cm", capsys.readouterr().out)            # the distance is printed
    assert printed and float(printed.group(1)) == pytest.approx(truth["chamfer_cm"], abs=0.006)
    # an existing file is kept without --force
    before = out.read_bytes()
    assert main(_args(scene_files, "solid", out)) == 2
    assert_names(capsys.readouterr().err, out, "--force")
    assert out.read_bytes() == before


def test_export_mesh_refuses_an_empty_surface(scene_files, capsys):
    out = scene_files["root"] / "empty.ply"
    assert main(_args(scene_files, "empty", out)) == 2
    err = capsys.readouterr().err
    assert_names(err, "0 to 0", "-3 to -3")           # the density range on the grid and inside the hull
    assert not out.exists()


def test_export_mesh_refuses_a_missing_frame(scene_files, capsys):
    assert main(_args(scene_files, "solid", scene_files["root"] / "x.ply", "--frame", "5")) == 2
    assert_names(capsys.readouterr().err, scene_files["subject"], "frame 5")
    assert not (scene_files["root"] / "x.ply").exists()
