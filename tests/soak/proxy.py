"""A loopback TCP forwarder between one remote worker and its API replica, which can catch that worker at the
one moment a partition matters most: in the middle of handing in its work.

A SIGSTOP from outside lands wherever the worker happens to be (mostly inside its engine, where the next beat
simply learns the lease is gone). The soak needs the worker frozen between a granted upload and its finish,
so that what it does after SIGCONT is a late upload and a late finish. The forwarder sees every call the
worker makes; when an armed trap matches the upload call for the poster or the video, it runs the trap's
`hold` (which freezes the worker, waits until another worker has finished the task, then thaws it) either
before the call reaches the API (`when="request"`: the upload is asked for late, and refused) or before the
API's answer reaches the worker (`when="answer"`: the worker got an upload link while its lease held, and
uses it, and finishes, after the lease is gone).

A hold that only waits (tests/e2e/test_remote_workers.py) is a slow link instead: the worker's other calls,
on other connections, go on meanwhile.

Bytes are forwarded unchanged; the forwarder only looks at them. A replica that is down makes the connection
fail, as it would without the forwarder.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

_UPLOAD_CALL = re.compile(rb"POST /worker/v1/tasks/(?P<task>[^/\s]+)/upload HTTP/1\.1\r\n")
_OBJECT = re.compile(rb'"object":\s*"(?P<object>poster|video)"')
_ATTEMPT = re.compile(rb'"attempt":\s*(?P<attempt>\d+)')
# The head and JSON body of an upload call are far below this; what is read while looking for them is kept.
_LOOK_AHEAD_BYTES = 16384


@dataclass(frozen=True)
class Trap:
    stored: Literal["poster", "video"]
    when: Literal["request", "answer"]
    # Runs in the forwarder's thread with the task id and the attempt the call names, while the call (or its
    # answer) waits.
    hold: Callable[[str, int], None]
    # Tasks whose calls pass untouched (a task already partitioned: its next calls are part of that partition).
    not_for: frozenset[str] = frozenset()


class TrapProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._trap: Trap | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="trap-proxy")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, trap: Trap) -> None:
        with self._lock:
            self._trap = trap

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._trap is not None

    def _take(self, stored: bytes, task_id: str) -> Trap | None:
        """The armed trap if it is for this object and task (disarmed: each fires once)."""
        with self._lock:
            trap = self._trap
            if trap is None or trap.stored.encode() != stored or task_id in trap.not_for:
                return None
            self._trap = None
            return trap

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()  # the replica is down: the worker sees a refused connection and retries
            return
        upstream.settimeout(None)
        # Set by the request pump when the answer to a trapped call must wait; read by the answer pump.
        held_answer: list[tuple[Trap, str, int]] = []
        answer_ready = threading.Event()
        answers = threading.Thread(
            target=self._answers, args=(upstream, client, held_answer, answer_ready), daemon=True
        )
        answers.start()
        try:
            self._requests(client, upstream, held_answer, answer_ready)
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            answers.join(timeout=300)
            client.close()
            upstream.close()

    def _requests(
        self,
        client: socket.socket,
        upstream: socket.socket,
        held_answer: list[tuple[Trap, str, int]],
        answer_ready: threading.Event,
    ) -> None:
        pending = b""
        while True:
            try:
                chunk = client.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            call = _UPLOAD_CALL.search(pending)
            if call is not None and self.armed:
                found = _OBJECT.search(pending, call.end())
                if found is None and len(pending) - call.start() < _LOOK_AHEAD_BYTES:
                    continue  # the body is still on its way
                attempt = _ATTEMPT.search(pending, call.end())
                task_id = call.group("task").decode()
                trap = self._take(found.group("object"), task_id) if found and attempt else None
                if trap is not None and attempt is not None:
                    number = int(attempt.group("attempt"))
                    if trap.when == "request":
                        trap.hold(task_id, number)
                    else:
                        held_answer.append((trap, task_id, number))
                        answer_ready.set()
            try:
                upstream.sendall(pending)
            except OSError:
                return
            pending = b""

    @staticmethod
    def _answers(
        upstream: socket.socket,
        client: socket.socket,
        held_answer: list[tuple[Trap, str, int]],
        answer_ready: threading.Event,
    ) -> None:
        while True:
            try:
                chunk = upstream.recv(65536)
            except OSError:
                return
            if not chunk:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
                return
            if answer_ready.is_set() and held_answer:
                trap, task_id, number = held_answer.pop()
                answer_ready.clear()
                trap.hold(task_id, number)
            try:
                client.sendall(chunk)
            except OSError:
                return
