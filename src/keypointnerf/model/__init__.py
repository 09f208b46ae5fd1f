"""The KeypointNeRF model: image encoders, spatial encodings, geometry MLP with view fusion, IBR colour head.

``KeypointNeRF.encode`` runs the image encoders once per set of source views; ``KeypointNeRF.query`` (or
the staged ``project`` / ``geometry`` / ``color`` calls the renderer uses) evaluates any number of points.
"""
from .config import ModelConfig, model_preset
from .keypointnerf import KeypointNeRF, Projection, SourceEncoding

__all__ = ["KeypointNeRF", "ModelConfig", "Projection", "SourceEncoding", "model_preset"]
