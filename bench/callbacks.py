"""Callback delivery under a burst: 200 tasks end at once (cancelled through the API in quick succession) on
`reelgate serve --workers 0` with SQLite; a local HTTPS receiver (self-signed CA, trusted through
REELGATE_EGRESS_CA_BUNDLE) records when each request arrives. A quarter of the receivers answer 500 three
times, so their callbacks run the whole 1/2/4 s retry schedule.

    .venv/bin/python bench/callbacks.py [--tasks 200] [--failing-share 0.25]

Figures, all from this machine's clock:
- terminal commit -> first attempt: arrival of a task's first request minus its `finished_at` (stamped just
  before the terminal transaction commits);
- the same for tasks ending one at a time (nothing else going on);
- retry drift: arrival of retry k minus (the moment the receiver finished answering attempt k-1 + 1/2/4 s);
- baseline, measured in the same run: one signed POST through the egress client straight to the receiver
  (no database, no queue), one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import ssl
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import trustme
from _common import (
    free_port,
    fresh_home,
    percentile,
    prepared_settings,
    settings_env,
    start_process,
    summary_ms,
    wait_ready,
)
from PIL import Image
from skimage import data
from sqlalchemy import select

from reelgate.config import Settings
from reelgate.db.models import Task
from reelgate.egress.client import EgressClient
from reelgate.resources import database_for
from reelgate.webhooks.signing import generate_secret, signature_headers

RETRY_DELAYS_S = (1.0, 2.0, 4.0)
FAILURES_BEFORE_SUCCESS = 3


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        arrived = time.time()
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = self.server.arrivals[self.path]
        failing = self.path.startswith("/fail/") and len(seen) < FAILURES_BEFORE_SUCCESS
        status = 500 if failing else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with self.server.arrived:
            seen.append((arrived, time.time()))
            self.server.arrived.notify_all()


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    # A burst opens many connections at once; the default backlog of 5 would make the kernel drop SYNs
    # and measure TCP's 1 s retransmit instead of the service.
    request_queue_size = 1024

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        # path -> [(arrived, answered)] in order of arrival
        self.arrivals: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.arrived = threading.Condition()

    def wait_first(self, path: str, timeout_s: float) -> None:
        with self.arrived:
            self.arrived.wait_for(lambda: bool(self.arrivals.get(path)), timeout_s)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def _image_uri() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())[::8, ::8]).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def end_tasks_at_once(base_url: str, key: str, urls: list[str]) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    image = _image_uri()
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        task_ids = []
        for url in urls:
            body = {"model": "kling-o1-image-to-video", "prompt": "zoom", "image_urls": [image], "callback_url": url}
            response = await client.post("/v1/videos/generations", json=body)
            response.raise_for_status()
            task_ids.append(response.json()["id"])
        limit = asyncio.Semaphore(4)

        async def cancel(task_id: str) -> None:
            async with limit:
                (await client.post(f"/v1/tasks/{task_id}/cancel")).raise_for_status()

        await asyncio.gather(*(cancel(task_id) for task_id in task_ids))
    return task_ids


async def end_tasks_one_by_one(base_url: str, key: str, receiver: Receiver, urls: list[str]) -> list[str]:
    """The same path with nothing else going on: each task ends after the previous callback arrived."""
    headers = {"Authorization": f"Bearer {key}"}
    image = _image_uri()
    task_ids = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        for url in urls:
            body = {"model": "kling-o1-image-to-video", "prompt": "zoom", "image_urls": [image], "callback_url": url}
            response = await client.post("/v1/videos/generations", json=body)
            response.raise_for_status()
            task_id = response.json()["id"]
            (await client.post(f"/v1/tasks/{task_id}/cancel")).raise_for_status()
            path = httpx.URL(url).path
            await asyncio.to_thread(receiver.wait_first, path, 10.0)
            task_ids.append(task_id)
    return task_ids


async def finished_at(settings: Settings, task_ids: list[str]) -> dict[str, float]:
    db = database_for(settings)
    try:
        async with db.read() as session:
            rows = await session.execute(select(Task.id, Task.finished_at).where(Task.id.in_(task_ids)))
            return {task_id: float(at) for task_id, at in rows.all() if at is not None}
    finally:
        await db.dispose()


async def baseline(ca_file: str, url: str, count: int) -> list[float]:
    secret = generate_secret()
    body = '{"id": "task-unified-1-abcdefgh", "status": "failed"}'
    latencies = []
    async with EgressClient(allow_private_networks=True, ca_bundle=ca_file) as client:
        for index in range(count):
            started = time.perf_counter()
            headers = signature_headers(
                webhook_id=f"msg_{index}", timestamp_s=int(time.time()), body=body, signing_secrets=[secret]
            )
            response = await client.post_json(url, body=body.encode(), headers=headers, timeout_s=10)
            assert response.status == 200
            latencies.append(time.perf_counter() - started)
    return latencies


def wait_for_arrivals(receiver: Receiver, paths: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = all(
            len(receiver.arrivals.get(path, [])) >= (FAILURES_BEFORE_SUCCESS + 1 if path.startswith("/fail/") else 1)
            for path in paths
        )
        if done:
            return
        time.sleep(0.1)
    raise RuntimeError("not every callback arrived in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--failing-share", type=float, default=0.25)
    parser.add_argument("--single", type=int, default=50, help="tasks ended one at a time, for comparison")
    parser.add_argument("--quick", action="store_true", help="20 tasks in the burst, 5 one at a time: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.tasks, options.single = 20, 5

    home = fresh_home("callbacks")
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(tls)
    ca_file = str(Path(home) / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    receiver = Receiver(tls)
    threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"https://localhost:{receiver.server_address[1]}"

    settings, key = prepared_settings(home, idle_worker=True, poll_interval_s=0.5, allow_private_networks=True)
    env = {
        **settings_env(settings),
        "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
        "REELGATE_EGRESS_CA_BUNDLE": ca_file,
    }
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_process(
        ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"], env, home / "serve.log"
    )
    try:
        wait_ready(f"{base_url}/readyz")
        reference = asyncio.run(baseline(ca_file, f"{base}/baseline", options.tasks))
        single_paths = [f"/single/{i}" for i in range(options.single)]
        single_ids = asyncio.run(end_tasks_one_by_one(base_url, key, receiver, [base + p for p in single_paths]))
        failing = round(options.tasks * options.failing_share)
        paths = [f"/fail/{i}" if i < failing else f"/ok/{i}" for i in range(options.tasks)]
        task_ids = asyncio.run(end_tasks_at_once(base_url, key, [base + path for path in paths]))
        wait_for_arrivals(receiver, paths, timeout_s=60)
        ended = asyncio.run(finished_at(settings, task_ids + single_ids))
    finally:
        server.terminate()
        server.wait(timeout=30)
        receiver.shutdown()

    first_latency = [
        receiver.arrivals[path][0][0] - ended[task_id] for path, task_id in zip(paths, task_ids, strict=True)
    ]
    single_latency = [
        receiver.arrivals[path][0][0] - ended[task_id] for path, task_id in zip(single_paths, single_ids, strict=True)
    ]
    drift: dict[int, list[float]] = {k: [] for k in range(len(RETRY_DELAYS_S))}
    for path in paths[:failing]:
        seen = receiver.arrivals[path]
        for k, delay_s in enumerate(RETRY_DELAYS_S):
            drift[k].append(seen[k + 1][0] - (seen[k][1] + delay_s))
    print(f"callbacks: {options.tasks} tasks ended at once (cancelled through the API, 4 at a time), SQLite")
    print(f"  baseline: one signed POST via the egress client   {summary_ms(reference)}")
    print(f"  one task ending alone: commit -> first attempt     {summary_ms(single_latency)}")
    print(f"  burst: terminal commit -> first attempt arrives    {summary_ms(first_latency)}")
    for k, delay_s in enumerate(RETRY_DELAYS_S):
        print(f"  retry {k + 1} (+{delay_s:g} s) drift, {failing} series          {summary_ms(drift[k])}")
    reference_p50 = max(percentile(reference, 50), 1e-9)
    print(f"  ratio alone p50 / baseline p50 = {percentile(single_latency, 50) / reference_p50:.1f}x")
    print(f"  ratio burst p50 / baseline p50 = {percentile(first_latency, 50) / reference_p50:.1f}x")


if __name__ == "__main__":
    main()
