"""One worker thread that renders, for each client, its newest camera coarse to fine, and drops work that a newer
camera made stale.

Every request takes a new number from one generation counter; a render checks, between chunks of rays, that its
client's newest request is still the one it works on (``should_stop``), so a moving camera cancels the work in
flight within one chunk. Tasks (re-encoding another frame, exports) run on the same thread between renders: the
model is used by one thread at a time, and a waiting task stops the render in flight too.
"""
from __future__ import annotations

import collections
import threading
import traceback
from concurrent.futures import Future
from typing import Callable, Hashable, Iterator

from ..render.renderer import RenderCancelled


class ProgressiveRenderer:
    """Renders each client's newest request, step by step, on one background thread.

    Args:
        render: ``render(request, should_stop) -> iterator`` of results, coarse to fine; it may raise
            ``RenderCancelled`` when ``should_stop()`` turns true.
        deliver: ``deliver(key, request, step, result)`` for every result whose request is still the newest.
        on_error: called with the exception when a render or a task fails (default: print the traceback); the
            worker goes on.
    """

    def __init__(self, render: Callable[[object, Callable[[], bool]], Iterator],
                 deliver: Callable[[Hashable, object, int, object], None],
                 on_error: Callable[[BaseException], None] | None = None):
        self._render, self._deliver = render, deliver
        self._on_error = on_error or (lambda exc: traceback.print_exception(exc))
        self._condition = threading.Condition()
        self._wanted: dict[Hashable, tuple[int, object]] = {}   # key -> (generation, request)
        self._finished: dict[Hashable, int] = {}                 # key -> generation rendered to the last step
        self._tasks: collections.deque = collections.deque()
        self._generation = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="keypointnerf-view-render", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------- callers
    def request(self, key: Hashable, request: object) -> int:
        """Render ``request`` for ``key`` (a client), replacing (and cancelling) its earlier one -> generation."""
        with self._condition:
            self._generation += 1
            self._wanted[key] = (self._generation, request)
            self._condition.notify_all()
            return self._generation

    def refresh(self) -> None:
        """Render every client's newest request again (the settings it is rendered with changed)."""
        with self._condition:
            for key, (_, request) in list(self._wanted.items()):
                self._generation += 1
                self._wanted[key] = (self._generation, request)
            self._condition.notify_all()

    def forget(self, key: Hashable) -> None:
        """Drop a client (it disconnected): its work in flight stops."""
        with self._condition:
            self._wanted.pop(key, None)
            self._finished.pop(key, None)

    def submit(self, task: Callable[[], object]) -> Future:
        """Run ``task()`` on the worker thread before any further render -> a Future of its result."""
        future: Future = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the renderer is closed")
            self._tasks.append((task, future))
            self._condition.notify_all()
        return future

    def idle(self) -> bool:
        """True when no task waits and every client's newest request is rendered to its last step."""
        with self._condition:
            return not self._tasks and all(self._finished.get(k) == g for k, (g, _) in self._wanted.items())

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the worker (the render in flight stops at its next chunk; waiting tasks are cancelled) -> True
        when the thread ended within ``timeout`` seconds."""
        with self._condition:
            self._closed = True
            while self._tasks:
                self._tasks.popleft()[1].cancel()
            self._condition.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------------------------------- the thread
    def _stale(self, key: Hashable, generation: int) -> bool:
        # read without the lock: single reads of these containers are atomic, and a stale answer only delays a
        # cancellation by one chunk
        wanted = self._wanted.get(key)
        return self._closed or bool(self._tasks) or wanted is None or wanted[0] != generation

    def _next_job(self):
        with self._condition:
            while True:
                if self._closed:
                    return None
                if self._tasks:
                    return ("task", self._tasks.popleft())
                for key, (generation, request) in self._wanted.items():
                    if self._finished.get(key) != generation:
                        return ("render", key, generation, request)
                self._condition.wait()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            if job[0] == "task":
                task, future = job[1]
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(task())
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                        future.set_exception(exc)
                continue
            _, key, generation, request = job
            stale = lambda: self._stale(key, generation)  # noqa: E731
            try:
                for step, result in enumerate(self._render(request, stale)):
                    if stale():
                        break
                    self._deliver(key, request, step, result)
                else:
                    with self._condition:
                        if not stale():
                            self._finished[key] = generation
            except RenderCancelled:
                pass
            except Exception as exc:  # noqa: BLE001 - one failed render must not end the viewer
                with self._condition:
                    self._finished[key] = generation      # not retried until the camera moves again
                self._on_error(exc)
