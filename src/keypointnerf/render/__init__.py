"""Rendering: rays and near/far (``rays``), sample placement (``sampling``), compositing (``composite``),
chunked image rendering with exact visual-hull culling and a plain reference path (``renderer``)."""
from .renderer import RenderCancelled, RenderConfig, render_image, render_rays

__all__ = ["RenderCancelled", "RenderConfig", "render_image", "render_rays"]
