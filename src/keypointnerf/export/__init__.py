"""Exporting what a model has learned as geometry: marching-cubes meshes with vertex colours (``mesh``), and
their Chamfer distance to the true body surface."""
from .mesh import DensityGrid, ModelDensity, chamfer_distance, density_grid, extract_mesh

__all__ = ["DensityGrid", "ModelDensity", "chamfer_distance", "density_grid", "extract_mesh"]
