"""Own captures: calibration IO, frames, masks, 2D keypoints, robust triangulation and the import into the ZJU-MoCap layout (``keypointnerf capture import``)."""
