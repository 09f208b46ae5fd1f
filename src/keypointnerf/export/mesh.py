"""Surfaces from a KeypointNeRF: density on a regular grid, marching cubes, vertex colours, PLY, and the Chamfer
distance to the true body mesh.

Units are metres throughout (the Chamfer numbers are converted to centimetres only where the command reports
them). Cameras are OpenCV world-to-camera ``[R|t]``.

Density is the renderer's: ``relu(raw density) * valid`` with ``valid`` the visual hull of the source views
(``model.project``); the networks run only at grid points inside the hull, every other point is exactly 0, as
in the renderer's culling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import trimesh
import trimesh.sample
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes
from tqdm import tqdm

from ..errors import UserError
from ..data.synth.body import cached_anny_faces
from ..fileio import atomic_write_bytes
from ..geometry import BOX_MARGIN
from ..imaging import to_uint8

#: grid points per density call: bounds the memory of one call (V x N projections and features)
GRID_BATCH = 32768


# ----------------------------------------------------------------------------------------------- the grid
@dataclass
class DensityGrid:
    """Density samples on a regular grid of cubic voxels.

    values (nx, ny, nz) float32: density (1/m) at ``origin + spacing * (i, j, k)``; origin (3,) metres;
    spacing: voxel side in metres; evaluated: grid points at which the density function reported work
    (for a model: points inside the visual hull), None when unknown.
    """

    values: np.ndarray
    origin: np.ndarray
    spacing: float
    evaluated: int | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)

    def points(self, index: np.ndarray) -> np.ndarray:
        """World positions (N, 3) of grid indices (N, 3) (fractional indices allowed)."""
        return self.origin + self.spacing * np.asarray(index, dtype=np.float64)


def grid_layout(bounds, resolution: int, margin: float = BOX_MARGIN) -> tuple[np.ndarray, float, tuple[int, ...]]:
    """Origin (3,), voxel side (metres) and shape (nx, ny, nz) of a grid covering ``bounds`` (2, 3) widened by
    ``margin`` on each side, with ``resolution`` points along its longest side and cubic voxels (the grid is
    centred on the box; the shorter sides get as many points as cover them)."""
    bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    if resolution < 2:
        raise UserError(f"grid resolution must be at least 2, got {resolution}")
    low, high = bounds[0] - margin, bounds[1] + margin
    size = high - low
    if not np.all(size > 0):
        raise UserError(f"empty box {bounds.tolist()}")
    spacing = float(size.max() / (resolution - 1))
    shape = tuple(int(math.ceil(s / spacing - 1e-9)) + 1 for s in size)
    centre = (low + high) / 2
    origin = centre - spacing * (np.array(shape) - 1) / 2
    return origin, spacing, shape


def density_grid(density_fn: Callable, bounds, resolution: int = 128, batch: int = GRID_BATCH,
                 margin: float = BOX_MARGIN, progress: bool = False) -> DensityGrid:
    """Evaluate ``density_fn`` on the grid of :func:`grid_layout`, ``batch`` points at a time.

    density_fn(points (N, 3) float32 numpy, world metres) -> (N,) densities (numpy or torch, >= 0). When it has
    an ``evaluated`` attribute (a counter, as :class:`ModelDensity` keeps), the grid records how it grew.
    """
    origin, spacing, shape = grid_layout(bounds, resolution, margin)
    total = int(np.prod(shape))
    values = np.empty(total, dtype=np.float32)
    before = getattr(density_fn, "evaluated", None)
    for start in tqdm(range(0, total, batch), desc="density", unit="batch", disable=not progress, leave=False):
        flat = np.arange(start, min(start + batch, total))
        index = np.stack(np.unravel_index(flat, shape), axis=1)
        points = (origin + spacing * index).astype(np.float32)
        result = density_fn(points)
        if hasattr(result, "detach"):
            result = result.detach().cpu().numpy()
        result = np.asarray(result, dtype=np.float32).reshape(-1)
        if result.shape[0] != len(flat):
            raise ValueError(f"density_fn returned {result.shape[0]} values for {len(flat)} points")
        values[start:start + len(flat)] = result
    after = getattr(density_fn, "evaluated", None)
    evaluated = after - before if isinstance(before, int) and isinstance(after, int) else None
    return DensityGrid(values.reshape(shape), origin, spacing, evaluated)


# ----------------------------------------------------------------------------------------------- the model
class ModelDensity:
    """The density of a model for one encoding of source views (``KeypointNeRF.density``), as a ``density_fn``.

    Points outside the visual hull get 0 without running the networks; inside, the geometry networks run
    ``max_points`` at a time. ``evaluated`` counts network evaluations and ``hull_min`` / ``hull_max`` track the
    range of the raw density inside the hull.
    """

    def __init__(self, model, enc, max_points: int = 4096):
        self.model, self.enc, self.max_points = model, enc, int(max_points)
        self.evaluated = 0
        self.hull_min = math.inf
        self.hull_max = -math.inf

    def __call__(self, points) -> np.ndarray:
        with torch.inference_mode():
            points = torch.as_tensor(np.asarray(points, dtype=np.float32), device=self.enc.images.device)
            result = self.model.density(self.enc, points, self.max_points)
            raw = result.raw_density[result.evaluated]
            if len(raw):
                self.hull_min = min(self.hull_min, float(raw.min()))
                self.hull_max = max(self.hull_max, float(raw.max()))
            self.evaluated += len(result.evaluated)
        return result.density.cpu().numpy()


# ----------------------------------------------------------------------------------------------- the surface
def check_threshold(threshold: float) -> None:
    """UserError unless the iso-surface's density ``threshold`` is positive (density is >= 0 everywhere)."""
    if not threshold > 0:
        raise UserError(f"--threshold must be positive (density is >= 0 everywhere), got {threshold}")


def extract_mesh(grid: DensityGrid, threshold: float, hint: str = ""):
    """The iso-surface ``density == threshold`` as a ``trimesh.Trimesh`` in world metres, faces oriented
    outwards (towards lower density).

    The grid is padded with one layer of zeros first, so a body touching the grid's side still gives a closed
    surface. Raises UserError when the threshold is not positive or no grid value exceeds it (empty surface;
    the message gives the range seen, plus ``hint``).
    """
    check_threshold(threshold)
    values = grid.values
    low, high = float(values.min()), float(values.max())
    if not high > threshold:
        raise UserError(f"threshold {threshold:g} gives an empty surface: the density on the "
                        f"{'x'.join(map(str, grid.shape))} grid ranges from {low:.4g} to {high:.4g}"
                        f"{hint}; choose a threshold below {high:.4g}")
    padded = np.pad(values, 1, mode="constant", constant_values=0.0)
    vertices, faces, _, _ = marching_cubes(padded, level=float(threshold), spacing=(grid.spacing,) * 3,
                                           gradient_direction="descent")
    vertices = vertices + (grid.origin - grid.spacing)      # undo the padding's one-voxel shift
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    # "descent" orients faces by the density gradient; check on the signed volume rather than trusting it
    if mesh.is_volume or mesh.is_watertight:
        if mesh.volume < 0:
            mesh.invert()
    return mesh


def view_directions_from_cameras(vertices: np.ndarray, normals: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Unit view directions (N, 3) for colouring surface vertices (N, 3) with outward normals (N, 3), given the
    source camera centres (V, 3).

    Each vertex is looked at from the source camera that faces its surface most directly (largest cosine between
    the normal and the direction to the camera centre): the direction is from that centre to the vertex. The
    colour head then weights that camera most, which sees the vertex best, and the colours are those of a real
    viewpoint rather than an extrapolated one.
    """
    to_cameras = centers[None, :, :] - vertices[:, None, :]                       # (N, V, 3)
    to_cameras = to_cameras / np.linalg.norm(to_cameras, axis=-1, keepdims=True)
    best = np.argmax((to_cameras * normals[:, None, :]).sum(-1), axis=1)
    directions = vertices - centers[best]
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def vertex_colors(model, enc, vertices: np.ndarray, normals: np.ndarray, max_points: int = 4096) -> np.ndarray:
    """(N, 3) uint8 colours of mesh vertices (N, 3) (metres) from ``model.color`` along the view directions of
    :func:`view_directions_from_cameras`."""
    if len(vertices) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    centers = enc.centers.detach().cpu().numpy().astype(np.float64)
    directions = view_directions_from_cameras(np.asarray(vertices, np.float64), np.asarray(normals, np.float64),
                                              centers)
    device = enc.images.device
    out = []
    with torch.inference_mode():
        for start in range(0, len(vertices), max_points):
            points = torch.as_tensor(vertices[start:start + max_points], dtype=torch.float32, device=device)
            dirs = torch.as_tensor(directions[start:start + max_points], dtype=torch.float32, device=device)
            proj = model.project(enc, points)
            fused = model.geometry(enc, points, proj).fused
            out.append(model.color(enc, points, proj, fused, dirs).cpu().numpy())
    return to_uint8(np.nan_to_num(np.concatenate(out), nan=0.0))


def write_ply(path: str | Path, mesh, colors: np.ndarray | None = None) -> Path:
    """Write ``mesh`` (trimesh) as binary PLY with optional (N, 3) uint8 vertex colours, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)
    if colors is not None:
        alpha = np.full((len(colors), 1), 255, dtype=np.uint8)
        out.visual.vertex_colors = np.concatenate([np.asarray(colors, np.uint8), alpha], axis=1)
    atomic_write_bytes(path, trimesh.exchange.ply.export_ply(out, encoding="binary"))
    return path


# ----------------------------------------------------------------------------------------------- evaluation
def chamfer_distance(points_a, points_b) -> tuple[float, float, float]:
    """Chamfer distance between point sets a (N, 3) and b (M, 3), in the points' units.

    -> (mean over a of the distance to the nearest point of b, the same from b to a, their average = the
    symmetric Chamfer distance). Two parallel planes 1 cm apart sampled densely give (1, 1, 1) cm.
    """
    a = np.asarray(points_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(points_b, dtype=np.float64).reshape(-1, 3)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("chamfer_distance needs two non-empty point sets")
    a_to_b = float(cKDTree(b).query(a)[0].mean())
    b_to_a = float(cKDTree(a).query(b)[0].mean())
    return a_to_b, b_to_a, (a_to_b + b_to_a) / 2


def sample_surface(mesh, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points sampled uniformly by area on a trimesh (fixed ``seed``: reproducible)."""
    points, _ = trimesh.sample.sample_surface(mesh, int(count), seed=seed)
    return np.asarray(points, dtype=np.float64)


def _faces_file(subject_dir: Path, num_vertices: int) -> np.ndarray | None:
    """A ``faces.npy`` (T, 3) integer array in the subject folder or its parent, when it fits the vertices."""
    for path in (subject_dir / "faces.npy", subject_dir.parent / "faces.npy"):
        if path.is_file():
            try:
                faces = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue
            if faces.ndim == 2 and faces.shape[1] == 3 and faces.dtype.kind in "iu" and len(faces) and \
                    faces.min() >= 0 and faces.max() < num_vertices:
                return faces.astype(np.int64)
    return None


def truth_mesh(subject, frame: int):
    """The true body surface of one frame -> (trimesh.Trimesh or None, vertices (M, 3) metres, how).

    The vertices are ``vertices/<frame>.npy``. Faces come from a ``faces.npy`` next to the data, else (anny's
    topology, the synthetic sets) from the synthetic generator's cached anny model (:func:`cached_anny_faces`);
    without faces the mesh is None and only the vertices are known.
    """
    vertices = subject.vertices(frame).astype(np.float64)
    faces = _faces_file(Path(subject.path), len(vertices))
    how = "faces.npy"
    if faces is None:
        faces = cached_anny_faces(len(vertices))
        how = "anny cached topology"
    if faces is None:
        return None, vertices, "no faces found"
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False), vertices, how


def truth_points(subject, frame: int, count: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Points on the true body surface of one frame (:func:`truth_mesh`) -> (points (M, 3) metres, how they were
    obtained): with faces, ``count`` points sampled on the surface (fixed ``seed``); without faces the vertices
    themselves are the truth (a point cloud): they are dense (anny ~0.5-1 cm apart, SMPL ~1-2 cm), so distances
    to them overstate a point-to-surface distance by a few millimetres at most.
    """
    mesh, vertices, how = truth_mesh(subject, frame)
    if mesh is None:
        return vertices, f"vertices as a point cloud ({len(vertices)} points; no faces found)"
    return sample_surface(mesh, count, seed), f"{count} surface samples ({how}, {len(mesh.faces)} triangles)"
