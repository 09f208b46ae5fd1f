"""The viewer's page (viser): the capture in 3D (camera frustums with their photos, the keypoints as a skeleton,
the person's box), the model's render from the browser's camera behind it, and the controls.

Each browser tab is a client with its own camera; every camera change asks the render worker
(``progressive.ProgressiveRenderer``) for a quarter-size preview, then half and full size while the camera
rests. Changing the frame or the source cameras re-encodes the sources on the worker thread; changing the
resolution renders again; changing the display (colour / depth / opacity) only re-colours the last render.
"""
from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..imaging import to_uint8
from ..options import parse_cameras
from ..render.orbit import describe_body_frame, orbit_cameras
from .progressive import ProgressiveRenderer
from .session import (DISPLAYS, SMPL_PARENTS, ViewCamera, ViewSession, camera_from_pose, camera_pose,
                      next_free_stem, vertical_fov)

SOURCE_COLOUR = (255, 140, 0)
CAMERA_COLOUR = (110, 110, 110)
SKELETON_COLOUR = (230, 40, 60)
BOX_COLOUR = (40, 120, 255)
THUMBNAIL_SIDE = 160          # pixels of a frustum photo's longer side
MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024
INITIAL_ELEVATION_DEG = 30.0


@dataclass(frozen=True)
class CameraState:
    """A browser camera as viser reports it: camera-to-world rotation (w, x, y, z), position (3,) metres
    (OpenCV axes), vertical field of view (radians), width / height of the canvas."""

    wxyz: tuple
    position: tuple
    fov: float
    aspect: float

    @classmethod
    def of(cls, camera) -> "CameraState":
        return cls(tuple(map(float, camera.wxyz)), tuple(map(float, camera.position)), float(camera.fov),
                   float(camera.aspect))


@dataclass
class Rendered:
    """One step of a progressive render: the camera it was rendered for, ``render_image``'s result, whether it is
    the last (full-resolution) step, seconds taken."""

    camera: ViewCamera
    result: dict
    final: bool
    seconds: float


def box_edges(bounds: np.ndarray) -> np.ndarray:
    """The 12 edges (12, 2, 3) of the axis-aligned box ``bounds`` (2, 3) [min, max]."""
    corners = np.array([[bounds[(k >> axis) & 1, axis] for axis in range(3)] for k in range(8)])
    return np.array([[corners[a], corners[a | 1 << axis]] for a in range(8) for axis in range(3)
                     if not a >> axis & 1])


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 resized (area) so its longer side is at most ``side``."""
    image = to_uint8(image)
    scale = side / max(image.shape[:2])
    if scale < 1:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


class ViewerApp:
    """Builds the page on ``server`` (a ``viser.ViserServer``) for ``session`` and serves every client.

    Args:
        out: folder for exports (created on the first one; exports never overwrite).
        resolution: longer side of the full-resolution render in pixels.
        orbit_frames: default frame count of an exported orbit.
    """

    def __init__(self, server, session: ViewSession, out: Path, resolution: int = 256, orbit_frames: int = 48):
        self.server, self.session, self.out = server, session, Path(out)
        self.resolution = int(resolution)
        self.display = DISPLAYS[0]
        self._latest: dict[int, Rendered] = {}          # the newest step shown to each client
        self._clients_lock = threading.Lock()
        self.clients_seen = 0
        self.last_disconnect: float | None = None
        self.status_text = ""
        self._capture_nodes: list = []
        self.worker = ProgressiveRenderer(self._render_steps, self._show, self._report_error)
        server.gui.configure_theme(control_layout="floating", control_width="medium", show_share_button=False)
        self._build_gui(orbit_frames)
        self._build_scene()
        server.on_client_connect(self._on_connect)
        server.on_client_disconnect(self._on_disconnect)

    # ------------------------------------------------------------------------------------------- page
    def _build_gui(self, orbit_frames: int) -> None:
        gui, session, subject = self.server.gui, self.session, self.session.subject
        self.heading = gui.add_markdown(f"**{subject.name}** &middot; {Path(session.info['path']).name} "
                                        f"&middot; {session.device}")
        frames = sorted(subject.frames)
        self.frame_slider = gui.add_slider("Frame", min=frames[0], max=max(frames[-1], frames[0] + 1), step=1,
                                           initial_value=session.frame, disabled=len(frames) < 2,
                                           hint="frame number (the i of joints3d/<i>.npy)")
        self.sources_text = gui.add_text("Sources", ",".join(map(str, session.sources)),
                                         hint="source camera indices, comma-separated (orange frustums); "
                                              "click a frustum to look through it")
        self.resolution_slider = gui.add_slider("Resolution", min=MIN_RESOLUTION, max=MAX_RESOLUTION, step=16,
                                                initial_value=min(max(self.resolution, MIN_RESOLUTION),
                                                                  MAX_RESOLUTION),
                                                hint="longer side of the render in pixels (previews at 1/4 and "
                                                     "1/2 come first)")
        self.display_dropdown = gui.add_dropdown("Display", DISPLAYS, initial_value=self.display,
                                                 hint="colour; depth (TURBO, red = near, as render --depth); "
                                                      "opacity (white = opaque)")
        self.capture_checkbox = gui.add_checkbox("Show capture", True,
                                                 hint="camera frustums with their photos, keypoints, box")
        with gui.add_folder("Export"):
            self.orbit_frames = gui.add_number("Orbit frames", int(orbit_frames), min=1, max=720, step=1)
            self.export_view_button = gui.add_button("Export view (PNG)",
                                                     hint=f"the current view at full resolution into {self.out}")
            self.export_orbit_button = gui.add_button("Export orbit (MP4)",
                                                      hint="keypointnerf render --orbit with these settings; "
                                                           "renders pause meanwhile")
        self.status = gui.add_markdown("waiting for a browser camera")

        self.frame_slider.on_update(lambda _: self._reselect())
        self.sources_text.on_update(lambda _: self._reselect())
        self.resolution_slider.on_update(lambda _: self._set_resolution(self.resolution_slider.value))
        self.display_dropdown.on_update(lambda _: self._set_display(self.display_dropdown.value))
        self.capture_checkbox.on_update(lambda _: self._show_capture(self.capture_checkbox.value))
        self.export_view_button.on_click(lambda event: self._export_view(event.client))
        self.export_orbit_button.on_click(lambda event: self._export_orbit(event.client))

    def _build_scene(self) -> None:
        """Scene nodes of the current frame and sources (called again after a change replaces them by name)."""
        scene, session = self.server.scene, self.session
        keypoints, bounds = session.keypoints, session.bounds_np
        centre = keypoints.mean(axis=0)
        cameras = session.capture_cameras()
        distances = [np.linalg.norm(camera_pose(c.Rt)[1] - centre) for c in cameras]
        frustum_scale = 0.04 * float(np.median(distances))
        nodes = []
        for cam, camera in enumerate(cameras):
            wxyz, position = camera_pose(camera.Rt)
            try:
                photo = thumbnail(session.photo(cam))
            except UserError:
                photo = None                      # a missing view: the frustum without its photo
            is_source = cam in session.sources
            frustum = scene.add_camera_frustum(
                f"/capture/cameras/cam{cam:02d}", fov=vertical_fov(camera.K, camera.height),
                aspect=camera.width / camera.height, scale=frustum_scale, image=photo, format="jpeg",
                wxyz=wxyz, position=position, color=SOURCE_COLOUR if is_source else CAMERA_COLOUR,
                thickness=frustum_scale * (0.06 if is_source else 0.03))
            frustum.on_click(lambda event, camera=camera: self._look_through(event.client, camera))
            nodes.append(frustum)
            nodes.append(scene.add_label(f"/capture/cameras/cam{cam:02d}/label", f"{cam}",
                                         font_screen_scale=0.7))
        if len(keypoints) == len(SMPL_PARENTS):
            bones = np.array([[keypoints[parent], keypoints[joint]]
                              for joint, parent in enumerate(SMPL_PARENTS) if parent >= 0])
            nodes.append(scene.add_line_segments("/capture/skeleton", bones, SKELETON_COLOUR, thickness=0.012))
        nodes.append(scene.add_point_cloud("/capture/keypoints", keypoints.astype(np.float32), SKELETON_COLOUR,
                                           point_size=0.035, point_shape="circle"))
        nodes.append(scene.add_line_segments("/capture/box", box_edges(bounds), BOX_COLOUR, thickness=0.006))
        visible = self.capture_checkbox.value
        for node in nodes:
            node.visible = visible
        self._capture_nodes = nodes

        # the browser orbits around the body's up axis; new pages start in front of the body at the cameras'
        # distance, above the camera ring (the frustums stay out of the way)
        up, facing, _ = describe_body_frame(session.subject, session.frame)
        scene.set_up_direction(tuple(up))
        first = cameras[session.sources[0]]
        radius = float(np.median(distances))
        for _ in range(2):      # move in (or out) until the box fits the model's depth range, when it can
            (_, Rt), = orbit_cameras(centre, up, facing, 1, radius, INITIAL_ELEVATION_DEG, first.K)
            near, far = self.box_depths(ViewCamera(first.K, Rt, first.height, first.width))
            cfg = session.model.cfg
            if far - near < cfg.zfar - cfg.znear:
                radius -= max(far - cfg.zfar, 0.0) - max(cfg.znear - near, 0.0)
        self.server.initial_camera.position = tuple(camera_pose(Rt)[1])
        self.server.initial_camera.look_at = tuple(centre)
        self.server.initial_camera.up = tuple(up)
        self.server.initial_camera.fov = vertical_fov(first.K, first.height)

    def box_depths(self, camera: ViewCamera) -> tuple[float, float]:
        """Nearest and farthest camera depth (metres along z) of the person's box corners from ``camera``: the
        renderer clips rays to the model's [znear, zfar], so a box outside it is cut off."""
        bounds = self.session.bounds_np
        corners = np.array([[bounds[i, 0], bounds[j, 1], bounds[k, 2]] for i in (0, 1) for j in (0, 1)
                            for k in (0, 1)])
        depths = corners @ camera.Rt[:, :3].T[:, 2] + camera.Rt[2, 3]
        return float(depths.min()), float(depths.max())

    # ------------------------------------------------------------------------------------------- clients
    def _on_connect(self, client) -> None:
        with self._clients_lock:
            self.clients_seen += 1
            self.last_disconnect = None
        client.camera.on_update(lambda camera: self.worker.request(client.client_id, CameraState.of(camera)))

    def _on_disconnect(self, client) -> None:
        self.worker.forget(client.client_id)
        self._latest.pop(client.client_id, None)
        with self._clients_lock:
            if not self.server.get_clients():
                self.last_disconnect = time.monotonic()

    def _look_through(self, client, camera: ViewCamera) -> None:
        wxyz, position = camera_pose(camera.Rt)
        with client.atomic():
            client.camera.wxyz = wxyz
            client.camera.position = position
            client.camera.fov = vertical_fov(camera.K, camera.height)

    # ------------------------------------------------------------------------------------------- rendering
    def _render_steps(self, state: CameraState, should_stop):
        """The progressive steps of one browser camera (runs on the worker thread)."""
        resolution = self.resolution
        camera = camera_from_pose(state.wxyz, state.position, state.fov, state.aspect, resolution)
        steps = self.session.steps(resolution)
        for side, cfg in steps:
            step_camera = camera if side == resolution else camera.resized(side)
            started = time.perf_counter()
            result = self.session.render(step_camera, cfg, should_stop)
            yield Rendered(step_camera, result, side == resolution, time.perf_counter() - started)

    def _show(self, key: int, state: CameraState, step: int, rendered: Rendered) -> None:
        client = self.server.get_clients().get(key)
        if client is None:
            return
        self._latest[key] = rendered
        self._paint(client, rendered)
        camera = rendered.camera
        text = f"{camera.width} x {camera.height} px in {rendered.seconds:.1f} s"
        text += "" if rendered.final else " &middot; refining..."
        near, far = self.box_depths(camera)
        cfg = self.session.model.cfg
        if near < cfg.znear or far > cfg.zfar:
            text += (f"<br>**the person's box lies {near:.1f}-{far:.1f} m from this camera; the model renders "
                     f"{cfg.znear:g}-{cfg.zfar:g} m only: parts may be cut off**")
        self._set_status(text)

    def _paint(self, client, rendered: Rendered) -> None:
        image, depth = self.session.picture(rendered.result, rendered.camera, self.display)
        client.scene.set_background_image(image, format="png", depth=depth)

    def _set_status(self, text: str) -> None:
        session = self.session
        self.status_text = (f"frame {session.frame} &middot; sources {', '.join(map(str, session.sources))}"
                            f" &middot; {text}")
        self.status.content = self.status_text

    def _report_error(self, exc: BaseException) -> None:
        traceback.print_exception(exc)
        self._notify_all("Render failed", f"{type(exc).__name__}: {exc}", color="red")

    def _notify_all(self, title: str, body: str, **kwargs) -> None:
        for client in self.server.get_clients().values():
            client.add_notification(title, body, auto_close_seconds=8.0, **kwargs)

    # ------------------------------------------------------------------------------------------- controls
    def _set_resolution(self, value: int) -> None:
        self.resolution = int(value)
        self.worker.refresh()

    def _set_display(self, value: str) -> None:
        self.display = value
        for key, rendered in list(self._latest.items()):
            client = self.server.get_clients().get(key)
            if client is not None:
                self._paint(client, rendered)

    def _show_capture(self, visible: bool) -> None:
        for node in self._capture_nodes:
            node.visible = visible

    def _reselect(self) -> None:
        """Frame or sources changed: re-encode on the worker thread (a burst of slider moves costs one)."""
        def task():
            try:
                frames = self.session.subject.frames
                wanted = min(frames, key=lambda f: abs(f - int(self.frame_slider.value)))
                sources = parse_cameras(self.sources_text.value, "Sources")
                if (wanted, sources) == (self.session.frame, self.session.sources):
                    return
                self._set_status(f"encoding frame {wanted}, sources {', '.join(map(str, sources))}...")
                self.session.select(wanted, sources)
                self._build_scene()
            except UserError as exc:
                self._notify_all("Not changed", str(exc), color="red")
                self._set_status("kept")
            self.worker.refresh()

        self.worker.submit(task)

    def _export_view(self, client) -> Future | None:
        """Export the client's current view (a worker task) -> its Future (of the written files)."""
        if client is None:
            return None
        state = CameraState.of(client.camera)
        notice = client.add_notification("Exporting the view", f"rendering at {self.resolution} px...",
                                         loading=True, with_close_button=False)

        def task():
            camera = camera_from_pose(state.wxyz, state.position, state.fov, state.aspect, self.resolution)
            latest = self._latest.get(client.client_id)
            if (latest is not None and latest.final and latest.camera.height == camera.height
                    and np.array_equal(latest.camera.K, camera.K) and np.array_equal(latest.camera.Rt, camera.Rt)):
                result = latest.result                    # the view on screen is this camera's full render
            else:
                result = self.session.render(camera)
            files = self.session.export_view(self.out, camera, result)
            client.send_file_download(files["rgb"].name, files["rgb"].read_bytes())
            return files

        future = self.worker.submit(task)
        future.add_done_callback(lambda done: self._finish_export(
            notice, done, lambda files: f"wrote {files['rgb']} (+ depth, opacity, json)"))
        return future

    def _export_orbit(self, client) -> Future | None:
        """An orbit of the page's settings, as ``keypointnerf render --orbit`` writes it (a worker task) -> its
        Future (of the video)."""
        if client is None:
            return None
        frames, resolution = int(self.orbit_frames.value), self.resolution
        notice = client.add_notification("Exporting the orbit", f"keypointnerf render --orbit {frames} at "
                                                                f"{resolution} px...", loading=True,
                                         with_close_button=False)

        def task():
            self.out.mkdir(parents=True, exist_ok=True)
            out = self.out / next_free_stem(self.out, "orbit", ("",))
            command = " ".join(self.session.orbit_arguments(out, frames, resolution))
            print(f"keypointnerf view: exporting the orbit (as $ keypointnerf {command})", flush=True)
            video = self.session.export_orbit(out, frames, resolution)
            client.send_file_download(f"{out.name}.mp4", video.read_bytes())
            return video

        future = self.worker.submit(task)
        future.add_done_callback(lambda done: self._finish_export(notice, done, lambda video: f"wrote {video}"))
        return future

    def _finish_export(self, notice, future, describe) -> None:
        if future.cancelled():
            notice.remove()
            return
        error = future.exception()
        notice.loading, notice.with_close_button, notice.auto_close_seconds = False, True, 15.0
        if error is None:
            notice.title, notice.body = "Exported", describe(future.result())
            print(f"keypointnerf view: {notice.body}", flush=True)
        else:
            notice.title, notice.body, notice.color = "Export failed", str(error), "red"
            if not isinstance(error, UserError):
                self._report_error(error)

    # ------------------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Stop rendering (the render in flight ends at its next chunk) and the server."""
        self.worker.close()
        self.server.stop()
