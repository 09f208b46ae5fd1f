"""CPU ray-cast rendering of a posed mesh: one ray per pixel (through the pixel centre, OpenCV pinhole), the
first hit gives the mask; attributes interpolated at the hit give the colour (:mod:`.appearance`), shaded with
smooth vertex normals under the subject's lights (:mod:`.lighting`, shadow rays for soft shadows), then the
camera effects (:mod:`.camera_effects`: background plate, blur, noise, inexact matte).

Uses Embree (``embreex``) when installed, else trimesh's pure-numpy ray tests (correct but far slower).
"""
from __future__ import annotations

import numpy as np
import trimesh

from . import appearance, camera_effects, lighting as lights


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a triangle mesh (V, 3), (T, 3)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)  # length = 2 x area: area weighting for free
    normals = np.zeros_like(vertices)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, k], weights=face_normals[:, axis], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


class RayCaster:
    """First hits of rays on one triangle mesh: ``cast(origins (N,3), directions (N,3)) -> (hit (N,) bool,
    triangle (H,), barycentric (H, 3))`` for the rays that hit."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int32)
        try:  # embreex has wheels for x86-64 only (pyproject.toml)
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError:
            self._scene = None
            self._mesh = trimesh.Trimesh(self.vertices, self.faces, process=False)
            self._intersector = trimesh.ray.ray_triangle.RayMeshIntersector(self._mesh)
            return
        self._scene = rtcore_scene.EmbreeScene()
        TriangleMesh(scene=self._scene, vertices=self.vertices.astype(np.float32), indices=self.faces)

    def cast(self, origins: np.ndarray, directions: np.ndarray):
        if self._scene is not None:
            result = self._scene.run(origins.astype(np.float32), directions.astype(np.float32), output=1)
            hit = result["geomID"] != -1
            u, v = result["u"][hit].astype(np.float64), result["v"][hit].astype(np.float64)
            return hit, result["primID"][hit].astype(np.int64), np.stack([1 - u - v, u, v], axis=1)
        triangles, rays, locations = self._intersector.intersects_id(
            origins, directions, multiple_hits=False, return_locations=True)
        hit = np.zeros(len(origins), bool)
        hit[rays] = True
        order = np.argsort(rays)
        triangles, locations = triangles[order], locations[order]
        barycentric = trimesh.triangles.points_to_barycentric(self._mesh.triangles[triangles], locations)
        return hit, triangles.astype(np.int64), barycentric


def pixel_rays(K: np.ndarray, R: np.ndarray, t: np.ndarray, height: int, width: int):
    """Rays through every pixel centre (row-major): origins (H*W, 3), unit directions (H*W, 3), world frame."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    to_world = np.linalg.inv(K).T @ R  # (3, 3): row vector (u, v, 1) -> world direction (R^T K^-1 written for rows)
    # written out per row of to_world: a (N, 3) @ (3, 3) product is slow in some BLAS builds
    directions = u.reshape(-1, 1) * to_world[0] + v.reshape(-1, 1) * to_world[1] + to_world[2]
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -R.T @ t
    return np.broadcast_to(origin, directions.shape), directions


def render_views(vertices: np.ndarray, faces: np.ndarray, attributes: np.ndarray, look: dict,
                 landmarks: dict[str, float], K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int,
                 lighting: dict, effects: dict, plate_seed: list[int], frame_seed: list[int],
                 albedo=appearance.albedo):
    """Render a posed mesh from C cameras.

    Args:
        vertices (V, 3) world metres; faces (T, 3); attributes (V, NUM_ATTRIBUTES) from
        :func:`appearance.vertex_attributes`, or (T, 3, A) per triangle corner (attributes that differ across
        UV seams, e.g. :func:`head.corner_attributes`); albedo(look, landmarks, interpolated attributes (N, A))
        -> (N, 3) colours; K (C, 3, 3), R (C, 3, 3), t (C, 3) metres; lighting from
        :func:`lighting.sample_lighting`; effects from :func:`camera_effects.sample_effects`; plate_seed: seeds
        the cameras' background plates (the same in every frame); frame_seed: seeds this frame's noise and
        shadow-ray jitter.
    Returns:
        images (C, H, W, 3) uint8 and masks (C, H, W) bool (the matte: the ray hits, edges moved as
        ``effects`` says), H = height, W = width.
    """
    caster = RayCaster(vertices, faces)
    vertices = np.asarray(vertices, np.float64)
    normals = vertex_normals(vertices, faces)
    rng = np.random.default_rng(frame_seed)
    images = np.zeros((len(K), height, width, 3), np.uint8)
    masks = np.zeros((len(K), height, width), bool)
    for c in range(len(K)):
        origins, directions = pixel_rays(K[c], R[c], t[c], height, width)
        hit, triangles, barycentric = caster.cast(origins, directions)
        corners = faces[triangles]  # (H, 3)
        corner_values = attributes[triangles] if attributes.ndim == 3 else attributes[corners]
        interpolated = np.einsum("hk,hka->ha", barycentric, corner_values)
        normal = np.einsum("hk,hka->ha", barycentric, normals[corners])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        facing = np.sum(normal * directions[hit], axis=1) > 0
        normal[facing] *= -1  # seen from behind (thin parts, interpolation): light the visible side
        points = np.einsum("hk,hka->ha", barycentric, vertices[corners])
        visible = lights.visibility(caster, points, normal, lighting, rng)
        colour = lights.shade(albedo(look, landmarks, interpolated), normal, lighting, visible)
        picture = np.zeros((height * width, 3))
        picture[hit] = colour
        plate = camera_effects.background_plate((*plate_seed, c), height, width) if effects["background"] else None
        images[c], masks[c] = camera_effects.apply_effects(picture.reshape(height, width, 3),
                                                           hit.reshape(height, width), effects, plate, rng)
    return images, masks
