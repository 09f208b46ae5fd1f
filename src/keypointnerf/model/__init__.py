"""The KeypointNeRF model: image encoders, spatial encodings, geometry MLP with view fusion, IBR colour head.

``KeypointNeRF.encode`` runs the image encoders once per set of source views; ``KeypointNeRF.density`` (the
batched visual-hull density the renderer and the mesh export share), ``KeypointNeRF.query`` or the staged
``project`` / ``geometry`` / ``color`` calls evaluate any number of points.
"""
from .config import ModelConfig, model_preset
from .keypointnerf import Geometry, KeypointNeRF, PointDensity, Projection, SourceEncoding

__all__ = ["Geometry", "KeypointNeRF", "ModelConfig", "PointDensity", "Projection", "SourceEncoding", "model_preset"]
