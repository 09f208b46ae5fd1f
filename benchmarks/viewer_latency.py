#!/usr/bin/env python3
"""How soon the viewer shows something, and how soon a moving camera frees the worker.

usage: python benchmarks/viewer_latency.py --checkpoint CKPT --data SUBJECT [--resolution 256] [--repeats 3]
           [--threads N]

For the front camera of ``keypointnerf view`` (the body's front, 30 degrees up, at the cameras' distance;
16:9) it times each progressive step (quarter size with coarse samples only, half, full size with the model's
settings) beside the full render alone, and the cancellation latency: a full render is started, ``should_stop``
turns true after 0.3 s, and the time from then until ``RenderCancelled`` is measured (one chunk of rays at most).
Medians of ``--repeats`` runs; the last line is ``preview_s=... full_s=... ratio=... cancel_s=...``.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch

from keypointnerf.options import open_subject
from keypointnerf.render.orbit import describe_body_frame, orbit_cameras
from keypointnerf.render.renderer import RenderCancelled
from keypointnerf.view.session import ViewSession, camera_from_pose, camera_pose, vertical_fov


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    session = ViewSession(args.checkpoint, open_subject(args.data, 0.5), torch.device("cpu"), None, [0, 7, 15])
    centre = session.keypoints.mean(axis=0)
    up, facing, _ = describe_body_frame(session.subject, session.frame)
    first = session.capture_cameras()[0]
    distance = float(np.linalg.norm(camera_pose(first.Rt)[1] - centre))
    (_, Rt), = orbit_cameras(centre, up, facing, 1, distance, 30.0, first.K)
    wxyz, position = camera_pose(Rt)
    camera = camera_from_pose(wxyz, position, vertical_fov(first.K, first.height), 16 / 9, args.resolution)

    steps = session.steps(args.resolution)
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for side, cfg in steps:
            step_camera = camera if side == args.resolution else camera.resized(side)
            started = time.perf_counter()
            session.render(step_camera, cfg)
            name = f"step {step_camera.width}x{step_camera.height}" + (" coarse only" if cfg.fine_samples == 0 else "")
            times.setdefault(name, []).append(time.perf_counter() - started)
        stop, stopped = threading.Event(), []
        timer = threading.Timer(0.3, lambda: (stopped.append(time.perf_counter()), stop.set()))
        timer.start()
        try:
            session.render(camera, should_stop=stop.is_set)
            times.setdefault("cancel", []).append(float("nan"))       # finished before the stop
        except RenderCancelled:
            times.setdefault("cancel", []).append(time.perf_counter() - stopped[0])
        timer.cancel()

    medians = {name: statistics.median(values) for name, values in times.items()}
    full = medians[[n for n in medians if n.startswith("step")][-1]]
    print(f"{'what':<34}{'seconds':>10}{'of full':>10}")
    for name, value in medians.items():
        print(f"{name:<34}{value:>10.3f}{value / full:>10.2f}")
    preview = medians[next(iter(medians))]
    print(f"preview_s={preview:.3f} full_s={full:.3f} ratio={preview / full:.3f} cancel_s={medians['cancel']:.3f}")


if __name__ == "__main__":
    main()
