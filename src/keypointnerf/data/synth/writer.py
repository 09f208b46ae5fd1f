"""Write a synthetic data set of anny people in the ZJU-MoCap layout (see ``zju_mocap_format.md``)::

    <out>/synth.json                      generator arguments and versions (written first; "complete" at the end)
    <out>/split.json                      {"train": [...], "test": [...]}: the last ~20% of the subjects test
    <out>/synth_000/annots.npy            cameras (K pixels, R, T millimetres, D zeros) and image lists
    <out>/synth_000/subject.json          what the subject drew: style, shape, look, motion, lights, rig, effects
    <out>/synth_000/Camera_B<c>/<frame:06d>.jpg          c = 1..C
    <out>/synth_000/mask/Camera_B<c>/<frame:06d>.png     0/255 (the ray hits; with camera effects, a matte
                                                         whose edge is off by about a pixel)
    <out>/synth_000/joints3d/<frame>.npy  (24, 3) float32 world keypoints (SMPL order, anny bone heads); heads
                                          (``subject="head"``): (22, 3) facial landmarks (``head.FACE_LANDMARKS``)
    <out>/synth_000/vertices/<frame>.npy  (V, 3) float32 anny vertices, world metres (heads: the head and neck)
    <out>/synth_000/params/<frame>.npy    pickled dict: Rh (1, 3) axis-angle, Th (1, 3) metres
                                          (x_world = R(Rh) (x_anny - root_anny) + Th), anny_pose (K, 3) extrinsic
                                          XYZ angles of anny_pose_bones, anny_phenotype (6,) of
                                          anny_phenotype_labels; heads also anny_expression (E,) of
                                          anny_expression_units

World: metres, +Z up, feet on z = 0, the person near the origin. Every file is written under a temporary name
and renamed, so an interrupted run leaves only complete files; a frame is finished when all its files exist,
and running again with the same arguments skips finished frames (``annots.npy`` is written when a subject is
complete). The output depends only on the arguments (and the anny version), not on the number of workers.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from ... import __version__
from ...errors import UserError
from . import appearance, body, camera_effects, cameras as camera_rig, head, lighting as lights, poses, render, styles

#: Bump whenever the generated content changes for given arguments: resuming across versions is refused.
SYNTH_VERSION = 2
MANIFEST = "synth.json"
SPLIT = "split.json"
SUBJECT_FILE = "subject.json"  # what one subject drew: style, shape, look, motion, lights, rig, camera effects
SUBJECT_PATTERN = re.compile(r"synth_\d{3,}")
TEMP_SUFFIX = ".partial"
SUBJECT_KINDS = ("body", "head")
#: Stored sizes are multiples of this: the reader halves them to multiples of 128, which the encoders take
#: without padding.
RESOLUTION_MULTIPLE = 256
JPEG_QUALITY = 95


def _weighted_choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], np.float64)
    return str(rng.choice(names, p=p / p.sum()))


def subject_name(index: int) -> str:
    return f"synth_{index:03d}"


def camera_folder(cam: int) -> str:
    """Folder of 0-based camera ``cam``: ``Camera_B<cam + 1>``."""
    return f"Camera_B{cam + 1}"


def split_subjects(names: list[str]) -> dict[str, list[str]]:
    """The last ~20% of the subjects (at least one when there are two or more) are the test set."""
    test = max(1, round(0.2 * len(names))) if len(names) >= 2 else 0
    return {"train": names[:len(names) - test], "test": names[len(names) - test:]}


def frame_files(subject_dir: Path, frame: int, num_cameras: int) -> list[Path]:
    """Every file of one frame (images, masks, keypoints, vertices, params)."""
    files = []
    for cam in range(num_cameras):
        files.append(subject_dir / camera_folder(cam) / f"{frame:06d}.jpg")
        files.append(subject_dir / "mask" / camera_folder(cam) / f"{frame:06d}.png")
    files += [subject_dir / kind / f"{frame}.npy" for kind in ("joints3d", "vertices", "params")]
    return files


def frame_done(subject_dir: Path, frame: int, num_cameras: int) -> bool:
    return all(path.is_file() for path in frame_files(subject_dir, frame, num_cameras))


# ----------------------------------------------------------------------------------------------- atomic writes
def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _commit(temporary: Path, path: Path) -> None:
    os.replace(temporary, path)


def save_npy_atomic(path: Path, value: Any) -> None:
    """``np.save`` under a temporary name, then rename (dicts are pickled, as ZJU-MoCap's files are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    with open(temporary, "wb") as stream:
        np.save(stream, value, allow_pickle=isinstance(value, dict))
    _commit(temporary, path)


def save_image_atomic(path: Path, array: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """A uint8 image (H, W[, 3]) as JPEG (``.jpg``, at ``quality``) or PNG (``.png``), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    if path.suffix == ".jpg":
        Image.fromarray(array).save(temporary, format="JPEG", quality=int(quality))
    else:
        Image.fromarray(array).save(temporary, format="PNG")
    _commit(temporary, path)


def write_text_atomic(path: Path, text: str) -> None:
    temporary = _temporary(path)
    temporary.write_text(text)
    _commit(temporary, path)


# ----------------------------------------------------------------------------------------------- rendering tasks
_WORKER_FACES: np.ndarray | None = None


def _init_worker(faces: np.ndarray, parent_pid: int | None = None) -> None:
    global _WORKER_FACES
    _WORKER_FACES = faces
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """A worker's watch: a parent killed by a signal runs no clean-up, and its workers would go on rendering
    frames nobody collects; they leave within ``poll_s`` of it instead."""
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


@contextlib.contextmanager
def _single_threaded_children():
    """Start worker processes with one BLAS/OpenMP thread each (one process per core; with more threads the
    workers slow each other down about 3x). The variables must be set before the children start: numpy reads
    them when it is imported."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _render_frame(task: dict) -> tuple[int, int]:
    """Render and write every file of one frame. Returns (subject index, frame)."""
    subject_dir, frame = Path(task["subject_dir"]), task["frame"]
    images, masks = render.render_views(
        task["vertices"], _WORKER_FACES, task["attributes"], task["look"], task["landmarks"], task["K"], task["R"],
        task["t"], task["width"], task["height"], task["lighting"], task["effects"], task["plate_seed"],
        task["frame_seed"], task.get("albedo", appearance.albedo))
    for cam in range(len(images)):
        save_image_atomic(subject_dir / camera_folder(cam) / f"{frame:06d}.jpg", images[cam],
                          task["effects"]["jpeg_quality"])
        save_image_atomic(subject_dir / "mask" / camera_folder(cam) / f"{frame:06d}.png",
                          masks[cam].astype(np.uint8) * 255)
    save_npy_atomic(subject_dir / "joints3d" / f"{frame}.npy", task["keypoints"])
    save_npy_atomic(subject_dir / "vertices" / f"{frame}.npy", task["vertices"])
    save_npy_atomic(subject_dir / "params" / f"{frame}.npy", task["params"])
    return task["subject_index"], frame


# ----------------------------------------------------------------------------------------------- planning
def _draw_effects(rng: np.random.Generator, style: styles.Style, effects: str | None) -> dict:
    """The camera effects of a subject: the style's draw, then ``effects``' in its place when that is another
    level (the style's is drawn all the same, so that a seed keeps its people, poses, lights and rigs)."""
    drawn = camera_effects.sample_effects(rng, style.effects)
    return drawn if effects is None or effects == style.effects else camera_effects.sample_effects(rng, effects)


class _SubjectPlan:
    """One subject: its body over all frames, cameras, look, lights and camera effects (all drawn from ``seed``
    and the index)."""

    def __init__(self, model, part_weights, index: int, seed: int, frames: int, num_cameras: int, resolution: int,
                 style: styles.Style, effects: str | None = None):
        rng = np.random.default_rng([seed, index])
        self.index, self.name, self.seed, self.style = index, subject_name(index), seed, style
        phenotype, stature = body.sample_phenotype(rng)
        self.phenotype = body.fit_height(model, phenotype, stature)
        self.look = appearance.sample_look(rng, style.look, style.textures)
        if style.poses == {"gait": 1.0}:
            motion = body.sample_motion(rng, frames)
            self.motion_summary = {"motion": "sequence", "families": ["gait"]}
        else:
            kind = _weighted_choice(rng, style.motions)
            motion = poses.sample_family_motion(rng, frames, tuple(style.poses), tuple(style.poses.values()), kind)
            self.motion_summary = {"motion": kind, "families": motion["families"], "key_frames": motion["key_frames"]}
        self.posed = body.pose_frames(model, self.phenotype, motion)
        self.attributes, self.landmarks = appearance.vertex_attributes(
            self.posed.rest_vertices, self.posed.rest_heads, part_weights)
        points = self.posed.vertices[:, ::5].reshape(-1, 3).astype(np.float64)
        self.rig = camera_rig.sample_rig(rng, style.rig, num_cameras, resolution, points)
        self.K, self.R, self.t = self.rig.K, self.rig.R, self.rig.t
        self.lighting = lights.sample_lighting(rng, _weighted_choice(rng, style.lighting))
        self.effects = _draw_effects(rng, style, effects)

    def params(self, frame: int) -> dict:
        return {
            "Rh": self.posed.Rh[frame][None].astype(np.float32),
            "Th": self.posed.Th[frame][None].astype(np.float32),
            "anny_pose": self.posed.euler[frame].astype(np.float32),
            "anny_pose_bones": list(body.POSED_BONES),
            "anny_phenotype": np.array([self.phenotype[k] for k in body.PHENOTYPE_LABELS], np.float32),
            "anny_phenotype_labels": list(body.PHENOTYPE_LABELS),
        }

    def task(self, subject_dir: Path, frame: int) -> dict:
        return {
            "subject_index": self.index, "subject_dir": str(subject_dir), "frame": frame,
            "vertices": self.posed.vertices[frame], "keypoints": self.posed.keypoints[frame],
            "params": self.params(frame), "attributes": self.attributes, "look": self.look,
            "landmarks": self.landmarks, "K": self.K, "R": self.R, "t": self.t, "width": self.rig.width,
            "height": self.rig.height, "lighting": self.lighting, "effects": self.effects,
            "plate_seed": [self.seed, self.index, 1], "frame_seed": [self.seed, self.index, 2, frame],
        }

    def annots(self, frames: int) -> dict:
        num_cameras = len(self.K)
        return {
            "cams": {
                "K": [self.K[c].copy() for c in range(num_cameras)],
                "R": [self.R[c].copy() for c in range(num_cameras)],
                "T": [(self.t[c] * 1000.0).reshape(3, 1) for c in range(num_cameras)],  # millimetres
                "D": [np.zeros((5, 1)) for _ in range(num_cameras)],
            },
            "ims": [{"ims": [f"{camera_folder(c)}/{frame:06d}.jpg" for c in range(num_cameras)]}
                    for frame in range(frames)],
        }

    def summary(self) -> dict:
        rest_z = self.posed.rest_vertices[:, 2]
        return {"name": self.name, "style": self.style.name,
                "phenotype": {k: round(v, 4) for k, v in self.phenotype.items()},
                "stature_m": round(float(rest_z.max() - rest_z.min()), 3),
                "look": appearance.look_summary(self.look), "motion": self.motion_summary,
                "lighting": appearance.look_summary(self.lighting), "rig": self.rig.settings,
                "camera_effects": self.effects}

    def release(self) -> None:
        """Drop the per-frame arrays once every task is submitted (annots and summary stay available)."""
        self.summary_cache = self.summary()
        self.posed.vertices = self.posed.vertices[:, :0]


class _HeadPlan(_SubjectPlan):
    """One head subject (``subject="head"``, see :mod:`.head`): shape, face look, expressions and head poses,
    a face rig, lights and camera effects (drawn from ``seed`` and the index)."""

    def __init__(self, model, part_weights, mesh: "_HeadMesh", index: int, seed: int, frames: int,
                 num_cameras: int, resolution: int, style: styles.Style, effects: str | None = None):
        rng = np.random.default_rng([seed, index, 7])   # heads and bodies of one seed differ
        self.index, self.name, self.seed, self.style = index, subject_name(index), seed, style
        phenotype, stature = body.sample_phenotype(rng)
        self.phenotype = body.fit_height(model, phenotype, stature)
        self.look = head.sample_face_look(rng, appearance.sample_look(rng, style.look, style.textures or None))
        kind = _weighted_choice(rng, style.motions) if style.motions else "sequence"
        motion = head.sample_head_motion(rng, frames, kind)
        self.motion_summary = {"motion": kind, "expressions": motion["expressions"],
                               "key_frames": motion["key_frames"]}
        self.posed = head.pose_heads(model, self.phenotype, motion, mesh.vertices)
        vertex_attributes, self.landmarks = appearance.vertex_attributes(
            self.posed.rest_vertices, self.posed.rest_heads, part_weights)
        self.attributes = head.corner_attributes(vertex_attributes, mesh.full_faces, mesh.corner_uv)
        points = self.posed.vertices.reshape(-1, 3).astype(np.float64)
        centre = (points.min(axis=0) + points.max(axis=0)) / 2   # the head-and-neck box: it fills the images
        ears = self.posed.keypoints[0, [head.LANDMARK_NAMES.index("ear_left"), head.LANDMARK_NAMES.index("ear_right")]]
        facing = self.posed.keypoints[0, head.LANDMARK_NAMES.index("nose_tip")] - ears.mean(axis=0)
        self.rig = head.face_rig(rng, num_cameras, resolution, points[::3], centre, facing)
        self.K, self.R, self.t = self.rig.K, self.rig.R, self.rig.t
        self.lighting = lights.sample_lighting(rng, _weighted_choice(rng, style.lighting))
        self.effects = _draw_effects(rng, style, effects)

    def params(self, frame: int) -> dict:
        return {**super().params(frame), "anny_pose_bones": list(head.HEAD_BONES),
                "anny_expression": self.posed.expression[frame].astype(np.float32),
                "anny_expression_units": list(head.EXPRESSION_UNITS)}

    def task(self, subject_dir: Path, frame: int) -> dict:
        return {**super().task(subject_dir, frame), "albedo": head.albedo}

    def summary(self) -> dict:
        return {**super().summary(), "subject": "head"}


class _HeadMesh:
    """The head-and-neck part of anny's mesh: ``vertices`` (V',) kept indices, ``faces`` (T', 3) renumbered into
    them, ``full_faces`` (T', 3) the same triangles in full-mesh numbering, ``corner_uv`` (T', 3, 2)."""

    def __init__(self, model, part_weights):
        faces = body.triangle_faces(model)
        self.vertices = head.head_vertices(part_weights)
        rows, self.faces = head.head_faces(faces, self.vertices)
        self.full_faces = faces[rows]
        uv = model.texture_coordinates.numpy()
        self.corner_uv = uv[model.face_texture_coordinate_indices.numpy()[rows]]


# ----------------------------------------------------------------------------------------------- output folder
def _identity(subjects: int, frames: int, cameras: int, resolution: int, seed: int, style: str,
              effects: str | None = None, subject: str = "body") -> dict:
    arguments = {"subjects": subjects, "frames": frames, "cameras": cameras, "resolution": resolution,
                 "seed": seed, "style": style}
    if effects is not None:
        arguments["effects"] = effects
    if subject != "body":  # body sets made before heads existed keep their identity (and resume)
        arguments["subject"] = subject
    return {"format_version": SYNTH_VERSION, "anny_version": body.anny_version(), "arguments": arguments}


def _read_manifest(out: Path) -> dict | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _differences(old: dict, new: dict) -> list[str]:
    found = []
    for key in ("format_version", "anny_version"):
        if old.get(key) != new[key]:
            found.append(f"{key} {old.get(key)!r} there, {new[key]!r} now")
    old_args = old.get("arguments") if isinstance(old.get("arguments"), dict) else {}
    for key, value in new["arguments"].items():
        if old_args.get(key) != value:
            found.append(f"--{key} {old_args.get(key)!r} there, {value!r} now")
    return found


def _prepare_output(out: Path, identity: dict, force: bool) -> bool:
    """Check and prepare ``out``. Returns True when resuming an earlier run with the same arguments."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return False
    manifest = _read_manifest(out)
    same = manifest is not None and not _differences(manifest, identity)
    if same and not force:
        return True
    if not force:
        if manifest is None:
            reason = f"it is not empty and holds no readable {MANIFEST} of an earlier synthetic set"
        else:
            reason = "it holds a synthetic set made with other arguments (" + "; ".join(
                _differences(manifest, identity)) + ")"
        raise UserError(f"{out}: refusing to write here: {reason}; choose another folder, or pass --force to "
                        f"replace its synthetic subjects (other files are left alone)")
    if manifest is not None:  # --force: remove the earlier synthetic subjects, nothing else
        for name in manifest.get("subjects", []):
            if isinstance(name, str) and SUBJECT_PATTERN.fullmatch(name) and (out / name).is_dir():
                shutil.rmtree(out / name)
    return False


def _remove_partial_files(subject_dir: Path) -> None:
    if subject_dir.is_dir():
        for path in subject_dir.rglob(f".*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)


def _manifest(identity: dict, names: list[str], complete: bool, details: list[dict] | None = None) -> str:
    manifest = {
        "generator": "keypointnerf synth", **identity, "keypointnerf_version": __version__,
        "complete": complete, "subjects": names, "frame_interval_s": body.FRAME_INTERVAL,
        "world": "metres, +Z up, feet on z=0; cameras OpenCV world-to-camera, T in millimetres",
        "keypoints": list(head.LANDMARK_NAMES if identity["arguments"].get("subject") == "head"
                          else body.SMPL_JOINT_BONES),
    }
    if details is not None:
        manifest["details"] = details
    return json.dumps(manifest, indent=2) + "\n"


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_arguments(subjects, frames, cameras, resolution, seed, workers) -> None:
    for option, value, minimum in (("--subjects", subjects, 1), ("--frames", frames, 1), ("--cameras", cameras, 1),
                                   ("--seed", seed, 0), ("--workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise UserError(f"{option} {value!r}: expected an integer >= {minimum}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < \
            RESOLUTION_MULTIPLE or resolution % RESOLUTION_MULTIPLE or resolution > 8192:
        raise UserError(f"--resolution {resolution!r}: must be a multiple of {RESOLUTION_MULTIPLE} (256 to 8192): "
                        f"the reader halves the stored images to sides the encoders take without padding "
                        f"(multiples of 128; e.g. 512 stored -> 256 used)")


# ----------------------------------------------------------------------------------------------- entry point
def generate(out: str | Path, subjects: int = 10, frames: int = 30, cameras: int = 23, resolution: int = 512,
             seed: int = 0, workers: int | None = None, force: bool = False, progress: bool = True,
             style: str = "diverse", effects: str | None = None, subject: str = "body") -> dict:
    """Generate (or resume) a synthetic set of anny people in the ZJU-MoCap layout (see the module docstring).

    Args:
        out: output folder; must be missing, empty, or an earlier (possibly interrupted) output of the same
            arguments, which is resumed: finished frames are skipped. ``force`` replaces the synthetic subjects of
            an earlier set made with other arguments (and starts over when they match) and allows writing
            into a non-empty folder; other files there are left alone.
        subjects, frames, cameras: counts; resolution: stored image side in pixels (a multiple of 256);
        seed: the same seed gives identical arrays; workers: rendering processes (default: one per core);
        style: a name of :data:`styles.STYLES` (what looks, poses, lights, rigs and camera effects to draw).
        effects: a level of :data:`camera_effects.EFFECT_LEVELS` in place of the style's (None: the style's);
            the people, poses, lights and rigs stay those the style draws with the same seed, so ``none`` gives
            clean renders of the same set.
        subject: ``"body"`` (whole people) or ``"head"`` (close-range heads with facial landmarks, see
            :mod:`.head`; the style gives their looks, lights and camera effects).
    Returns:
        ``{"out", "subjects", "frames_rendered", "frames_skipped", "resumed", "seconds"}``.
    Raises:
        UserError for bad arguments or an output folder it must not write into.
    """
    workers = default_workers() if workers is None else workers
    style_spec = styles.get_style(style)
    if effects is not None and effects not in camera_effects.EFFECT_LEVELS:
        raise UserError(f"--effects {effects!r}: expected one of {', '.join(camera_effects.EFFECT_LEVELS)}")
    if subject not in SUBJECT_KINDS:
        raise UserError(f"--subject {subject!r}: expected one of {', '.join(SUBJECT_KINDS)}")
    _check_arguments(subjects, frames, cameras, resolution, seed, workers)
    subjects, frames, cameras, resolution, seed, workers = map(int, (subjects, frames, cameras, resolution, seed,
                                                                     workers))
    started = time.monotonic()
    out = Path(out)
    identity = _identity(subjects, frames, cameras, resolution, seed, style, effects, subject)
    resumed = _prepare_output(out, identity, force)
    names = [subject_name(i) for i in range(subjects)]
    if not resumed:
        write_text_atomic(out / MANIFEST, _manifest(identity, names, complete=False))

    with body.single_torch_thread():
        model = body.load_anny()
        faces = body.triangle_faces(model)
        weights, parts = body.skinning_parts(model, appearance.part_of_bone)
        part_weights = weights[:, [parts.index(p) for p in appearance.PARTS]]
        head_mesh = _HeadMesh(model, part_weights) if subject == "head" else None
        if head_mesh is not None:
            faces = head_mesh.faces

        def plans() -> Iterator[_SubjectPlan]:
            for index in range(subjects):
                if head_mesh is not None:
                    yield _HeadPlan(model, part_weights, head_mesh, index, seed, frames, cameras, resolution,
                                    style_spec, effects)
                else:
                    yield _SubjectPlan(model, part_weights, index, seed, frames, cameras, resolution, style_spec,
                                       effects)

        plans_by_index: dict[int, _SubjectPlan] = {}
        remaining: dict[int, int] = {}
        counts = {"rendered": 0, "skipped": 0}
        bar = tqdm(total=subjects * frames, desc="synth", unit="frame", disable=not progress, dynamic_ncols=True)

        def finish_subject(plan: _SubjectPlan) -> None:
            subject_dir = out / plan.name
            annots_path = subject_dir / "annots.npy"
            if not (resumed and annots_path.is_file()):
                write_text_atomic(subject_dir / SUBJECT_FILE, json.dumps(plan.summary(), indent=1) + "\n")
                save_npy_atomic(annots_path, plan.annots(frames))

        def completed(result: tuple[int, int]) -> None:
            index, _ = result
            counts["rendered"] += 1
            bar.update(1)
            remaining[index] -= 1
            if remaining[index] == 0:
                finish_subject(plans_by_index[index])

        executor = None
        in_flight: set = set()
        environment = contextlib.ExitStack()
        if workers > 1:
            environment.enter_context(_single_threaded_children())
            executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(faces, os.getpid()))
        else:
            _init_worker(faces)
        try:
            for plan in plans():
                subject_dir = out / plan.name
                plans_by_index[plan.index] = plan
                _remove_partial_files(subject_dir)
                todo = [f for f in range(frames) if not (resumed and frame_done(subject_dir, f, cameras))]
                counts["skipped"] += frames - len(todo)
                bar.update(frames - len(todo))
                bar.set_postfix_str(plan.name)
                remaining[plan.index] = len(todo)
                if not todo:
                    finish_subject(plan)
                for frame in todo:
                    task = plan.task(subject_dir, frame)
                    if executor is None:
                        completed(_render_frame(task))
                        continue
                    in_flight.add(executor.submit(_render_frame, task))
                    while len(in_flight) >= 2 * workers:  # bounded: each task carries ~1 MB of arrays
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            completed(future.result())
                plan.release()
            while in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    completed(future.result())
        except BaseException:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
                executor = None
            raise
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
            environment.close()
            bar.close()

    write_text_atomic(out / SPLIT, json.dumps(split_subjects(names), indent=2) + "\n")
    details = [plans_by_index[i].summary_cache for i in range(subjects)]
    write_text_atomic(out / MANIFEST, _manifest(identity, names, complete=True, details=details))
    return {"out": str(out), "subjects": names, "frames_rendered": counts["rendered"],
            "frames_skipped": counts["skipped"], "resumed": resumed,
            "seconds": round(time.monotonic() - started, 2)}
