"""Evaluation on the ZJU-MoCap protocol: image metrics (``metrics``) and the ``keypointnerf eval`` verb
(``commands``)."""
from .metrics import LPIPS, box_pixel_mask, box_rectangle, image_metrics, load_lpips, quantize_8bit, ssim

__all__ = ["LPIPS", "box_pixel_mask", "box_rectangle", "image_metrics", "load_lpips", "quantize_8bit", "ssim"]
