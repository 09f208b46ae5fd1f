"""``keypointnerf view``: the browser camera as a pinhole camera by hand; the render callback gives ``render``'s
pixels; progressive rendering and its cancellation; exports; the page in headless Chromium; stopping the server
(Ctrl-C, the last page closed); refusals. A tiny ZJU-layout subject and a random small model keep it fast."""
from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from keypointnerf.cli import main
from keypointnerf.errors import UserError
from keypointnerf.model import KeypointNeRF, model_preset
from keypointnerf.model.checkpoint import save_model
from keypointnerf.geometry import look_at, scaled_camera
from keypointnerf.options import open_subject
from keypointnerf.render.renderer import RenderCancelled
from keypointnerf.view.progressive import ProgressiveRenderer
from keypointnerf.view.session import (ViewCamera, ViewSession, camera_from_pose, camera_pose, vertical_fov,
                                       z_depth)
from helpers import assert_names
from zju_fixtures import make_subject

viser = pytest.importorskip("viser", reason="the viewer's tests need the 'view' extra: pip install -e '.[view]'")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    subject = make_subject(root / "data", cameras=4, frames=2, size=64)
    torch.manual_seed(0)
    checkpoint = root / "model.ckpt"
    save_model(checkpoint, KeypointNeRF(model_preset("small")), render={"coarse_samples": 8, "fine_samples": 8})
    return {"root": root, "subject": subject, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def session(scene):
    subject = open_subject(scene["subject"], 1.0)
    return ViewSession(scene["checkpoint"], subject, torch.device("cpu"), None, [0, 1, 2])


def _dataset_camera(session, cam: int, resolution: int) -> ViewCamera:
    """Camera ``cam`` of the subject as ``render --targets cam --resolution`` renders it."""
    K, Rt = session.subject.camera(cam)
    K, height, width = scaled_camera(K, session.subject.image_size, resolution)
    return ViewCamera(K, Rt.astype(np.float64), height, width)


def _project(camera: ViewCamera, point) -> np.ndarray:
    x = camera.Rt[:, :3] @ point + camera.Rt[:, 3]
    return (camera.K @ x)[:2] / x[2]


# ----------------------------------------------------------------------------------------------- cameras
@pytest.mark.parametrize("aspect, long_side, expected", [(16 / 9, 320, (180, 320)), (0.5, 100, (100, 50))])
def test_browser_camera_by_hand(aspect, long_side, expected):
    position, target, up = np.array([0.3, -2.5, 1.4]), np.array([0.1, 0.2, 0.9]), np.array([0.0, 0.0, 1.0])
    Rt = look_at(position, target, up)
    wxyz, centre = camera_pose(Rt)
    assert np.allclose(centre, position) and np.linalg.norm(wxyz) == pytest.approx(1.0)
    fov = math.radians(50)
    camera = camera_from_pose(wxyz, position, fov, aspect, long_side)
    assert (camera.height, camera.width) == expected
    assert np.allclose(camera.Rt, Rt, atol=1e-12)                      # the pose round trip
    # the looked-at point lands in the middle of the image; square pixels
    assert np.allclose(_project(camera, target), [(camera.width - 1) / 2, (camera.height - 1) / 2])
    assert camera.K[0, 0] == camera.K[1, 1]
    # a point fov/2 above the optical axis lands on the image's top edge (v = -0.5: pixel centres are integers)
    R = Rt[:, :3]
    forward, down = R[2], R[1]
    edge = position + 2.0 * (math.cos(fov / 2) * forward - math.sin(fov / 2) * down)
    assert _project(camera, edge)[1] == pytest.approx(-0.5, abs=1e-9)
    assert vertical_fov(camera.K, camera.height) == pytest.approx(fov)


def test_z_depth_by_hand():
    camera = ViewCamera(np.array([[2.0, 0, 1.0], [0, 2.0, 0.0], [0, 0, 1]]), np.eye(3, 4), 1, 3)
    # pixel (u, 0): ray through ((u - 1) / 2, 0, 1): cosine to the axis 1 / sqrt(1 + ((u - 1) / 2)^2)
    depth = z_depth(np.full((1, 3), 3.0), camera)
    assert np.allclose(depth[0], [3 / math.sqrt(1.25), 3.0, 3 / math.sqrt(1.25)])


# ----------------------------------------------------------------------------------------------- the render callback
def test_render_callback_gives_render_pixels(scene, session):
    """Camera in, image out: the viewer's full-resolution render of camera 3, exported, is ``render``'s PNG."""
    out = scene["root"] / "render_cam3"
    assert main(["render", "--checkpoint", str(scene["checkpoint"]), "--data", str(scene["subject"]),
                 "--sources", "0,1,2", "--downsample", "1.0", "--device", "cpu", "--targets", "3",
                 "--resolution", "48", "--depth", "--opacity", "-o", str(out)]) == 0
    camera = _dataset_camera(session, 3, 48)
    result = session.render(camera)
    files = session.export_view(scene["root"] / "exports", camera, result)
    for kind, suffix in (("rgb", ""), ("depth", "_depth"), ("opacity", "_opacity")):
        ours = np.asarray(Image.open(files[kind]))
        theirs = np.asarray(Image.open(out / "views" / f"cam03{suffix}.png"))
        assert ours.shape[:2] == (48, 48) and np.array_equal(ours, theirs), kind
    assert np.asarray(Image.open(files["opacity"])).max() > 0          # something was rendered


def test_render_stops_between_chunks(session):
    """``should_stop`` is asked before every chunk of rays; true -> RenderCancelled, never true -> same pixels."""
    import dataclasses

    camera = _dataset_camera(session, 3, 32)
    cfg = dataclasses.replace(session.cfg, chunk_rays=64)
    calls = []
    reference = session.render(camera, cfg)
    assert torch.equal(session.render(camera, cfg, should_stop=lambda: calls.append(1) and False)["rgb"],
                       reference["rgb"])
    chunks = len(calls)
    assert chunks >= 3                                     # several chunks: the test below stops in the middle
    asked = []
    with pytest.raises(RenderCancelled):
        session.render(camera, cfg, should_stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(asked) == 3


def test_progressive_steps_end_with_the_browser_camera(scene, session):
    """The page's render callback: a browser camera -> previews, then the full render of exactly that camera."""
    from keypointnerf.view.app import CameraState, ViewerApp

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        app = ViewerApp(server, session, scene["root"] / "app_exports", resolution=64)
        position = np.array([0.5, -3.2, 1.3])
        Rt = look_at(position, np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))
        wxyz, _ = camera_pose(Rt)
        state = CameraState(tuple(wxyz), tuple(position), math.radians(45), 4 / 3)
        steps = list(app._render_steps(state, lambda: False))
        assert [(s.camera.width, s.camera.height, s.final) for s in steps] == [(16, 12, False), (32, 24, False),
                                                                               (64, 48, True)]
        assert steps[0].result["rgb"].shape == (3, 12, 16)
        # the last step is render_image of the browser's camera with the model's settings
        focal = 24 / math.tan(math.radians(45) / 2)
        K = np.array([[focal, 0, 31.5], [0, focal, 23.5], [0, 0, 1]])
        expected = session.render(ViewCamera(K, Rt, 48, 64))
        # the camera went through a quaternion and back: equal up to float rounding (~4e-6 seen)
        assert torch.allclose(steps[-1].result["rgb"], expected["rgb"], atol=1e-4)
        assert expected["opacity"].max() > 0.5                                # the person is in view
        image, depth = session.picture(steps[-1].result, steps[-1].camera, "depth")
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and depth.shape == (48, 64)

        # the export buttons of a page whose camera is that one
        client = _FakeClient(state)
        files = app._export_view(client).result(300)
        assert np.array_equal(np.asarray(Image.open(files["rgb"])),
                              np.rint(expected["rgb"].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8))
        app.resolution, app.orbit_frames.value = 32, 2
        video = app._export_orbit(client).result(300)
        assert video.name == "orbit.mp4" and video.parent.name == "orbit_000" and video.is_file()
        assert [name for name, _ in client.downloads] == [files["rgb"].name, "orbit_000.mp4"]
        assert client.downloads[0][1] == files["rgb"].read_bytes()
        app.worker.close()
    finally:
        server.stop()


class _FakeClient:
    """What the export buttons use of a page's client handle."""

    client_id = 7

    def __init__(self, state):
        self.camera = type("Camera", (), {"wxyz": state.wxyz, "position": state.position, "fov": state.fov,
                                          "aspect": state.aspect})()
        self.downloads = []

    def add_notification(self, title, body, **kwargs):
        from types import SimpleNamespace

        return SimpleNamespace(title=title, body=body, **kwargs)

    def send_file_download(self, name, content, *args, **kwargs):
        self.downloads.append((name, content))


# ----------------------------------------------------------------------------------------------- progressive rendering
def test_progressive_renderer_cancels_moved_cameras():
    delivered = []
    first_step_done = threading.Event()

    def render(request, should_stop):
        for step in range(3):
            if request == "A" and step == 1:       # A0 was shown: the camera moves while A works on A1
                first_step_done.set()
                time.sleep(0.2)
            for _ in range(50):                       # "chunks" of a step
                if should_stop():
                    raise RenderCancelled
                time.sleep(0.002)
            yield f"{request}{step}"

    worker = ProgressiveRenderer(render, lambda key, request, step, result: delivered.append((key, result)))
    try:
        worker.request("client", "A")
        assert first_step_done.wait(10)
        worker.request("client", "B")
        ran = worker.submit(lambda: "task ran")
        assert ran.result(10) == "task ran"
        deadline = time.monotonic() + 10
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.idle()
        # A's later steps were dropped; B was rendered to its last step, once
        assert [r for _, r in delivered if r.startswith("A")] == ["A0"]
        assert [r for _, r in delivered if r.startswith("B")] == ["B0", "B1", "B2"]
        # a setting change renders the newest request again; a forgotten client is not rendered
        worker.refresh()
        deadline = time.monotonic() + 10
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r for _, r in delivered][-3:] == ["B0", "B1", "B2"] and delivered.count(("client", "B2")) == 2
        worker.forget("client")
        worker.refresh()
        assert worker.idle()
    finally:
        assert worker.close(10)


def test_progressive_renderer_survives_errors():
    errors = []

    def render(request, should_stop):
        if request == "bad":
            raise ValueError("broken")
        yield request

    delivered = []
    worker = ProgressiveRenderer(render, lambda *args: delivered.append(args[3]), errors.append)
    try:
        worker.request(1, "bad")
        worker.request(2, "good")
        deadline = time.monotonic() + 10
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delivered == ["good"] and [str(e) for e in errors] == ["broken"]
        with pytest.raises(ZeroDivisionError):
            worker.submit(lambda: 1 / 0).result(10)
    finally:
        worker.close()


# ----------------------------------------------------------------------------------------------- exports
def test_exports_never_overwrite(scene, session):
    import json

    out = scene["root"] / "numbered"
    camera = _dataset_camera(session, 1, 24)
    result = session.render(camera)
    first = session.export_view(out, camera, result)
    second = session.export_view(out, camera, result)
    assert first["rgb"].name == "view_000.png" and second["rgb"].name == "view_001.png"
    record = json.loads(first["json"].read_text())
    assert record["frame"] == 0 and record["sources"] == [0, 1, 2] and record["camera"]["width"] == 24
    assert np.allclose(record["camera"]["Rt"], camera.Rt) and record["camera"]["files"]["rgb"] == "view_000.png"
    # the orbit export writes what `keypointnerf render --orbit` writes with the session's frame, sources and
    # settings: the same files, the same pixels, the same cameras
    orbit = out / "orbit_000"
    assert session.export_orbit(orbit, 2, 24) == orbit / "orbit.mp4"
    verb = out / "by_the_verb"
    assert main(session.orbit_arguments(verb, 2, 24)) == 0
    info, by_verb = (json.loads((folder / "render.json").read_text()) for folder in (orbit, verb))
    assert (orbit / "orbit.mp4").is_file() and len(info["cameras"]) == 2
    assert info["frame"] == 0 and info["sources"] == [0, 1, 2] and info["cameras"][0]["width"] == 24
    assert info["cameras"] == by_verb["cameras"] and info["orbit"] == by_verb["orbit"]
    assert info["files"] == by_verb["files"]
    for name in info["files"]:
        if name.endswith(".png"):
            assert (orbit / name).read_bytes() == (verb / name).read_bytes(), name
    with pytest.raises(UserError, match="orbit_000"):                      # an export never overwrites
        session.export_orbit(orbit, 2, 24)


# ----------------------------------------------------------------------------------------------- the server
def _start_viewer(scene, *extra) -> tuple[subprocess.Popen, str]:
    """``keypointnerf view`` in a child process on a free loopback port -> (process, page URL)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keypointnerf.cli", "view", "--checkpoint", str(scene["checkpoint"]),
         "--data", str(scene["subject"]), "--sources", "0,1,2", "--downsample", "1.0", "--device", "cpu",
         "--port", "0", "--resolution", "96", "-o", str(scene["root"] / "served"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "keypointnerf view: serving" in line:
            url = line.split(" at ")[1].split()[0]
            return process, url
    process.kill()
    raise AssertionError("the viewer did not start:\n" + "".join(lines))


def _finish(process: subprocess.Popen, timeout: float = 30) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the viewer did not stop within {timeout} s:\n{output}")
    return output


def _port_closed(url: str) -> bool:
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_ctrl_c_stops_the_server(scene):
    process, url = _start_viewer(scene, "--close-after", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as response:              # the page is served
            assert response.status == 200 and b"<html" in response.read().lower()
        process.send_signal(signal.SIGINT)
        output = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Traceback" not in output, output      # a clean stop, the port freed
    assert _port_closed(url)


def test_closing_the_last_page_stops_the_server(scene):
    from websockets.sync.client import connect

    import msgspec
    from viser._messages import ViewerCameraMessage

    process, url = _start_viewer(scene, "--close-after", "1")
    try:
        # what a page does: connect, report its camera, receive the render; then close as a closed tab does
        with connect(url.replace("http://", "ws://"), subprotocols=[f"viser-v{viser.__version__}"],
                     open_timeout=30) as page:
            Rt = look_at(np.array([0.4, -3.0, 1.2]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))
            wxyz, position = camera_pose(Rt)
            camera = ViewerCameraMessage(wxyz=tuple(wxyz), position=tuple(position), fov=0.8, near=0.01, far=1000.0,
                                         image_height=300, image_width=400, look_at=(0.0, 0.0, 1.0),
                                         up_direction=(0.0, 0.0, 1.0))
            page.send(msgspec.msgpack.encode(camera.as_serializable_dict()))
            deadline = time.monotonic() + 60
            while b"BackgroundImageMessage" not in page.recv(timeout=max(0.1, deadline - time.monotonic())):
                pass                                                            # the scene, then a render
        output = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Traceback" not in output, output      # it stopped on its own, no signal
    assert _port_closed(url)


def test_page_in_headless_chromium(scene, session):
    """The page in a real browser: the render of the person shows where the model's opacity says it should."""
    from keypointnerf.view.app import ViewerApp
    from keypointnerf.view.browser import HeadlessChromium, find_chromium

    if find_chromium() is None:
        pytest.skip("Chromium not found: `make browser` (Debian's chromium package, as root) installs it")
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    app = ViewerApp(server, session, scene["root"] / "browser_exports", resolution=96)
    app._show_capture(False)                 # only the render: the frustums' photos show people too
    try:
        with HeadlessChromium(width=800, height=600) as browser:
            browser.open(f"http://127.0.0.1:{server.get_port()}/")

            def final_render():
                """The full render of the page's current camera, once the worker has nothing left to do."""
                latest = next(iter(app._latest.values()), None)
                return latest if latest is not None and latest.final and app.worker.idle() else None

            deadline = time.monotonic() + 120
            while final_render() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert final_render() is not None, f"no full render reached the page; status: {app.status_text!r}"

            def person_visible(image):
                rendered = final_render()
                if rendered is None:
                    return False
                expected, _ = session.picture(rendered.result, rendered.camera)
                opacity = rendered.result["opacity"][0].numpy()
                # the render fills the canvas, the whole window here: sample it at the screenshot's pixels
                height, width = image.shape[:2]
                rows = ((np.arange(height) + 0.5) * opacity.shape[0] / height).astype(int)
                cols = ((np.arange(width) + 0.5) * opacity.shape[1] / width).astype(int)
                person = opacity[rows][:, cols] > 0.9
                expected = expected[rows][:, cols].astype(float)
                clear = np.zeros_like(person)
                clear[200:, : width // 2] = True               # away from the control panel and notifications
                person, empty = person & clear, ~person & clear
                brightness = image.max(axis=2).astype(float)
                if person.sum() < 500 or empty.sum() < 500:
                    return False
                matches = np.abs(image.astype(float) - expected)[person].mean() < 30
                return bool(matches and brightness[person].mean() > brightness[empty].mean() + 10)

            image, ok = browser.wait_for(person_visible, timeout=60)
            Image.fromarray(image).save(scene["root"] / "page.png")
            assert ok, f"the rendered person is not visible in the screenshot {scene['root'] / 'page.png'}"
        # the browser closed: the page's connection ends
        deadline = time.monotonic() + 30
        while app.last_disconnect is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert app.last_disconnect is not None
    finally:
        app.close()


@pytest.mark.parametrize("change, expected", [
    ({"--frame": "9"}, ["frame 9"]),
    ({"--sources": "0,1,7"}, ["--sources", "camera 7"]),
    ({"--checkpoint": "missing.ckpt"}, ["missing.ckpt"]),
    ({"--resolution": "8"}, ["--resolution", "32", "8"]),                     # the option, its minimum, the value
    ({"--host": "192.0.2.1"}, ["--host 192.0.2.1"]),                          # not this machine's address
])
def test_view_refusals(scene, capsys, change, expected):
    args = ["view", "--checkpoint", str(scene["checkpoint"]), "--data", str(scene["subject"]), "--sources", "0,1,2",
            "--port", "0"]
    for option, value in change.items():
        value = str(scene["root"] / value) if option == "--checkpoint" else value
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    assert main(args) == 2
    assert_names(capsys.readouterr().err, *expected)


def test_missing_viser_says_how_to_install(scene, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)                          # import viser -> ImportError
    assert main(["view", "--checkpoint", str(scene["checkpoint"]), "--data", str(scene["subject"]),
                 "--sources", "0,1,2"]) == 2
    assert_names(capsys.readouterr().err, "viser", ".[view]")                     # the package and the extra
