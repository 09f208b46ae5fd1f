"""Rendering: near/far and the rays' visual-hull test (``rays``), sample placement (``sampling``), compositing
(``composite``), chunked image rendering by the culled path or the plain reference path (``renderer``), pictures
and videos (``video``), orbit cameras (``orbit``), a frame's cameras rendered into a folder (``output``)."""
from .renderer import RenderCancelled, RenderConfig, render_image, render_rays

__all__ = ["RenderCancelled", "RenderConfig", "render_image", "render_rays"]
