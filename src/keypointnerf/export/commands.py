"""``keypointnerf export-mesh``: the surface a model sees in one frame, as a coloured PLY mesh.

Writes ``FILE.ply`` (vertices in world metres, uint8 vertex colours) and ``FILE.json`` beside it (what was
exported, the density range, and with ``--truth`` the Chamfer distance to the true body surface in cm).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..fileio import atomic_write_text, check_writable
from ..model.checkpoint import resolve_checkpoint_path
from ..options import (add_checkpoint_argument, add_subject_arguments, check_cameras, check_frame, check_source_views,
                       encode_sources, load_checked_model, open_subject, parse_cameras)
from .mesh import (ModelDensity, chamfer_distance, check_threshold, density_grid, extract_mesh, sample_surface,
                   truth_points, vertex_colors, write_ply)

DEFAULT_TRUTH_POINTS = 50000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-mesh", help="extract the surface of one frame as a coloured PLY mesh (marching cubes)",
        description="Encode the source views of one frame and evaluate the model's density, relu(raw density) "
                    "inside the visual hull of the sources and 0 outside it, on a regular grid over the person's "
                    "box; extract the iso-surface density = THRESHOLD with marching cubes (world metres) and "
                    "colour every vertex with the model's colour head, looking at it from the source camera "
                    "that faces its surface most directly (largest cosine between the vertex normal and the "
                    "direction to the camera). Writes FILE.ply and FILE.json; --truth adds the symmetric Chamfer "
                    "distance (cm) to the subject's true body surface (vertices/<frame>.npy).")
    add_checkpoint_argument(parser)
    add_subject_arguments(parser)
    parser.add_argument("--grid", type=int, default=128, metavar="N",
                        help="grid points along the longest side of the person's box (cubic voxels; default 128: "
                             "about 1.4 cm for a standing adult)")
    parser.add_argument("--threshold", type=float, default=5.0,
                        help="density level of the surface, in 1/m (default 5.0)")
    parser.add_argument("--truth", action="store_true",
                        help="also compute the Chamfer distance to the true body surface (cm) and print it")
    parser.add_argument("--truth-points", type=int, default=DEFAULT_TRUTH_POINTS, metavar="N",
                        help=f"points sampled on each surface for --truth (default {DEFAULT_TRUTH_POINTS}, fixed seed)")
    parser.add_argument("-o", "--out", required=True, metavar="FILE.ply", help="mesh file to write")
    parser.add_argument("--force", action="store_true", help="overwrite FILE.ply and FILE.json if they exist")
    add_device_argument(parser)
    parser.set_defaults(func=run)


def _check_options(args) -> Path:
    if args.grid < 2:
        raise UserError(f"--grid must be >= 2, got {args.grid}")
    if args.grid > 1024:
        raise UserError(f"--grid {args.grid}: at most 1024 (the grid's memory grows with the cube of it)")
    check_threshold(args.threshold)
    if args.truth_points < 1:
        raise UserError(f"--truth-points must be >= 1, got {args.truth_points}")
    out = Path(args.out)
    if out.suffix.lower() != ".ply":
        raise UserError(f"{out}: the mesh file name must end in .ply")
    for path in (out, out.with_suffix(".json")):
        if path.is_dir():
            raise UserError(f"{path}: is a folder; give a file name")
        if path.exists() and not args.force:
            raise UserError(f"{path}: exists; pass --force to overwrite it")
    check_writable(out.parent)
    return out


def run(args) -> int:
    started = time.perf_counter()
    out = _check_options(args)
    sources = parse_cameras(args.sources, "--sources")
    checkpoint = resolve_checkpoint_path(args.checkpoint)
    subject = open_subject(args.data, args.downsample)
    frame = check_frame(subject, args.frame)
    check_cameras(subject, sources, "--sources")
    check_source_views(subject, frame, sources, hint="; choose other --sources")
    device = resolve_device(args.device)

    model, info = load_checked_model(checkpoint, device, subject)
    enc, _, _, bounds = encode_sources(model, subject, frame, sources, device)
    density = ModelDensity(model, enc)
    grid = density_grid(density, bounds.numpy(), args.grid, progress=True)
    total = int(np.prod(grid.shape))
    if density.evaluated:
        hint = (f" (raw density inside the visual hull of the sources: {density.hull_min:.4g} to "
                f"{density.hull_max:.4g}; {density.evaluated} of {total} grid points inside the hull)")
    else:
        hint = f" (no grid point lies inside the visual hull of sources {args.sources})"
    mesh = extract_mesh(grid, args.threshold, hint=hint)
    colors = vertex_colors(model, enc, np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals))
    write_ply(out, mesh, colors)

    report = {
        "command": "export-mesh",
        "checkpoint": {"path": str(Path(info["path"]).resolve()), "kind": info["kind"]},
        "data": str(subject.path.resolve()), "subject": subject.name, "frame": frame, "sources": sources,
        "downsample": subject.downsample, "mesh": out.name,
        "grid": {"resolution": args.grid, "shape": list(grid.shape), "spacing_m": grid.spacing,
                 "origin": np.round(grid.origin, 8).tolist(), "points_inside_hull": density.evaluated},
        "threshold": args.threshold,
        "density_range": [float(grid.values.min()), float(grid.values.max())],
        "raw_density_range_inside_hull": [density.hull_min, density.hull_max] if density.evaluated else None,
        "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
        "watertight": bool(mesh.is_watertight),
        "units": "metres (world frame of the data set)",
        "vertex_colors": "model colour seen from the source camera facing the vertex normal most directly",
    }
    message = f"wrote {out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces"
    if args.truth:
        truth, how = truth_points(subject, frame, args.truth_points, seed=1)
        predicted = sample_surface(mesh, args.truth_points, seed=0)
        a_to_b, b_to_a, symmetric = chamfer_distance(predicted, truth)
        report["truth"] = {"source": str(subject.vertices_path(frame)), "truth_surface": how,
                           "mesh_points": args.truth_points, "chamfer_cm": round(100 * symmetric, 4),
                           "mesh_to_truth_cm": round(100 * a_to_b, 4), "truth_to_mesh_cm": round(100 * b_to_a, 4),
                           "definition": "mean of the two mean nearest-neighbour distances"}
        message += (f"; Chamfer to the true surface {100 * symmetric:.2f} cm (mesh->truth {100 * a_to_b:.2f}, "
                    f"truth->mesh {100 * b_to_a:.2f})")
    report["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    print(message)
    return 0
