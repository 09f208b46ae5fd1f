"""``keypointnerf view``: an interactive viewer in the browser (viser, the optional ``view`` extra).

Serves a page on this machine showing one frame of a subject in 3D (camera frustums with their photos, the
keypoints as a skeleton, the person's box) with the model's render from the browser's camera behind it.
Ctrl-C stops the server; so does closing the last page (after ``--close-after`` seconds without one).
"""
from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from ..device import add_device_argument, resolve_device
from ..errors import UserError
from ..model.checkpoint import resolve_checkpoint_path
from ..options import (add_checkpoint_argument, add_sampling_arguments, add_subject_arguments, check_cameras,
                       check_frame, check_minimums, open_subject, parse_cameras, sampling_option_minimums,
                       sampling_overrides)
from .app import ViewerApp
from .session import ViewSession

DEFAULT_PORT = 8080
DEFAULT_RESOLUTION = 256
DEFAULT_OUT = "view_output"
INSTALL_HINT = "pip install -e '.[view]' in a checkout of keypointnerf (or pip install 'keypointnerf[view]')"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view", help="look around one frame of a subject in the browser, rendered live from any angle",
        description="Serve a page (viser) on this machine showing one frame of a ZJU-MoCap-layout subject in 3D: "
                    "the cameras with their photos (orange: the source views), the keypoints as a skeleton, the "
                    "person's box, and the model's render from the browser's camera, progressively (a "
                    "quarter-size preview at once, half and full size while the camera rests). Controls: frame, "
                    "source cameras, resolution, colour / depth / opacity display, and exports of the view (PNG "
                    "as render writes it) and of a 360-degree orbit (keypointnerf render --orbit). Needs the "
                    f"'view' extra: {INSTALL_HINT}.")
    add_checkpoint_argument(parser)
    add_subject_arguments(parser, frame_help="frame shown first")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to serve on (default {DEFAULT_PORT}; the next free one when taken; 0: any "
                             f"free port); the address is printed")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves the "
                             "network, without any access control)")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, metavar="PX",
                        help=f"longer side of the full-resolution render in pixels (default {DEFAULT_RESOLUTION}; "
                             "also a control on the page)")
    parser.add_argument("--orbit-frames", type=int, default=48, metavar="N",
                        help="frames of an exported orbit video (default 48; also a control on the page)")
    parser.add_argument("--close-after", type=float, default=10.0, metavar="S",
                        help="stop S seconds after the last page was closed, unless one is opened again "
                             "(default 10; 0: keep serving until Ctrl-C)")
    add_sampling_arguments(parser)
    parser.add_argument("-o", "--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for exports (default {DEFAULT_OUT}; created on the first export; each "
                             "export takes new names view_NNN.* / orbit_NNN/, nothing is overwritten)")
    add_device_argument(parser)
    parser.set_defaults(func=run)


def require_viser():
    """The viser module, or a UserError saying how to install the extra."""
    try:
        import viser
    except ImportError as exc:
        raise UserError(f"the viewer needs the viser package ({exc}); install the 'view' extra: "
                        f"{INSTALL_HINT}") from None
    return viser


def _check_options(args) -> None:
    check_minimums(("--resolution", args.resolution, 32), ("--orbit-frames", args.orbit_frames, 1),
                   *sampling_option_minimums(args))
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0-65535, got {args.port}")
    if not args.close_after >= 0:
        raise UserError(f"--close-after must be >= 0 seconds, got {args.close_after}")


def _check_host(host: str) -> None:
    """UserError when nothing can listen on ``host`` (viser would try 1000 ports there, then wait forever)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        raise UserError(f"--host {host}: cannot listen on this address ({exc})") from None


def _stop_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt (a clean stop) -> the previous handler, or None off the main thread."""
    try:
        return signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:        # not the main thread (e.g. a test driving the verb in a thread)
        return None


def run(args) -> int:
    _check_options(args)
    sources = parse_cameras(args.sources, "--sources")
    checkpoint = resolve_checkpoint_path(args.checkpoint)
    subject = open_subject(args.data, args.downsample)
    frame = check_frame(subject, args.frame)
    check_cameras(subject, sources, "--sources")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give a folder for --out")
    _check_host(args.host)
    viser = require_viser()
    device = resolve_device(args.device)

    session = ViewSession(checkpoint, subject, device, frame, sources, sampling_overrides(args))
    server = viser.ViserServer(host=args.host, port=args.port, label="keypointnerf", verbose=False)
    previous_handler = _stop_on_sigterm()
    app = None
    try:
        app = ViewerApp(server, session, out, resolution=args.resolution, orbit_frames=args.orbit_frames)
        host = "localhost" if args.host in ("0.0.0.0", "::") else args.host
        print(f"keypointnerf view: serving {subject.name} frame {frame} at http://{host}:{server.get_port()}/ "
              f"(Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(0.2)
            closed_at = app.last_disconnect
            if args.close_after > 0 and closed_at is not None and time.monotonic() - closed_at > args.close_after:
                print("keypointnerf view: the page was closed; stopping", flush=True)
                break
    except KeyboardInterrupt:
        print("keypointnerf view: stopping", flush=True)
    finally:
        if app is not None:
            app.close()
        else:
            server.stop()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return 0
