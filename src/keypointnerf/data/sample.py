"""The one plain structure every data set hands to the model, training, evaluation and rendering.

A *sample* is a dict of tensors (float32 unless said otherwise), one scene, no batch dimension; the
Lightning data loaders add a leading batch dimension of 1. Cameras are OpenCV pinhole: ``x_cam = R x + t``
(world metres), pixel ``(u, v) ~ K x_cam`` with u the column and v the row.

    src_images  (V, 3, H, W)  source images in [0, 1], background set to 0 by the mask
    src_masks   (V, 1, H, W)  foreground masks, 0/1
    src_K       (V, 3, 3)     intrinsics in pixels (after any downsampling)
    src_Rt      (V, 3, 4)     world-to-camera [R|t], t in metres
    tgt_image   (3, H, W)     target image (ground truth), background 0
    tgt_mask    (1, H, W)     target foreground mask, 0/1
    tgt_K       (3, 3), tgt_Rt (3, 4)   the camera to render
    keypoints   (K, 3)        3D keypoints, world metres (K = 24 body joints in SMPL order by default)
    bounds      (2, 3)        axis-aligned person box [min, max] (z widened by 0.05 m)
    pixels      (P, 2) int64  optional: the target pixels (u, v) to render (training patches);
                              absent = the whole image
    meta        dict          subject (str), frame (int), src_cams (list[int]), tgt_cam (int)

Source images and masks of one sample share one size H x W (any size: the model pads them for its encoders);
the target may have another size.
"""
