"""CPU ray-cast rendering of a posed mesh: one ray per pixel (through the pixel centre, OpenCV pinhole), the
first hit gives the mask; attributes interpolated at the hit give the colour (:mod:`.appearance`), shaded with
smooth vertex normals under fixed lights. Background 0.

Uses Embree (``embreex``) when installed, else trimesh's pure-numpy ray tests (correct but far slower).
"""
from __future__ import annotations

import numpy as np

from . import appearance


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
        try:
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError:  # platforms without embree wheels
            import trimesh
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
        import trimesh
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
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    directions = pixels @ np.linalg.inv(K).T @ R  # camera -> world: R^T d, written for row vectors
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -R.T @ t
    return np.broadcast_to(origin, directions.shape), directions


def render_views(vertices: np.ndarray, faces: np.ndarray, attributes: np.ndarray, look: dict,
                 landmarks: dict[str, float], K: np.ndarray, R: np.ndarray, t: np.ndarray, resolution: int):
    """Render a posed mesh from C cameras.

    Args:
        vertices (V, 3) world metres; faces (T, 3); attributes (V, NUM_ATTRIBUTES) from
        :func:`appearance.vertex_attributes`; K (C, 3, 3), R (C, 3, 3), t (C, 3) metres.
    Returns:
        images (C, H, W, 3) uint8 (background 0) and masks (C, H, W) bool (ray hits), H = W = resolution.
    """
    caster = RayCaster(vertices, faces)
    normals = vertex_normals(np.asarray(vertices, np.float64), faces)
    images = np.zeros((len(K), resolution, resolution, 3), np.uint8)
    masks = np.zeros((len(K), resolution, resolution), bool)
    for c in range(len(K)):
        origins, directions = pixel_rays(K[c], R[c], t[c], resolution, resolution)
        hit, triangles, barycentric = caster.cast(origins, directions)
        corners = faces[triangles]  # (H, 3)
        interpolated = np.einsum("hk,hka->ha", barycentric, attributes[corners])
        normal = np.einsum("hk,hka->ha", barycentric, normals[corners])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        facing = np.sum(normal * directions[hit], axis=1) > 0
        normal[facing] *= -1  # seen from behind (thin parts, interpolation): light the visible side
        colour = appearance.shade(appearance.albedo(look, landmarks, interpolated), normal)
        image = images[c].reshape(-1, 3)
        image[hit] = np.round(colour * 255).astype(np.uint8)
        masks[c].reshape(-1)[hit] = True
    return images, masks
