"""Local fake upstreams over real HTTPS (uvicorn in a thread, trustme certificates) that follow each
provider's documented protocol field by field (the sources are named in engines/relay/kling.py and fal.py).

Each fake keeps what it received, so tests can assert on what the relay really sent (the JWT, the body, the
number of submits), and takes a script of what to answer (status sequences, error codes, slow answers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import trustme
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from reelgate.media.video import ffmpeg_exe
from tests.e2e.processes import free_port

KLING_ACCESS_KEY = "ak-test-access"
KLING_SECRET_KEY = "sk-test-secret-0123456789abcdefghijklmnop"
FAL_KEY = "fal-key-id:fal-key-secret"


def make_video(path: Path) -> bytes:
    """A real 1 s H.264 MP4, what an upstream's CDN would serve."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=24",
           "-t", "1", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return path.read_bytes()


def _is_jpeg(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size if image.format == "JPEG" else None
    except Exception:
        return None


@dataclass
class KlingFake:
    """Kling's Omni-Video endpoints. `statuses` is the sequence one task walks through, one per poll."""

    base_url: str = ""
    statuses: list[str] = field(default_factory=lambda: ["submitted", "processing", "succeed"])
    failure_message: str = ""
    # Service codes answered to the next submits instead of accepting (e.g. 1303, 5000), one per submit.
    submit_codes: deque[int] = field(default_factory=deque)
    # Codes answered to the next polls (e.g. 5000), one per poll.
    poll_codes: deque[int] = field(default_factory=deque)
    # Accept the next submit, then hold the answer this long (the client times out: an ambiguous submit).
    submit_hang_s: float = 0.0
    submits: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    polls: int = 0
    external_lookups: int = 0
    auth_failures: list[int] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Polls wait until this is set (lets a test kill a worker between the submit and the first poll's answer).
    polls_open: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.polls_open.set()

    def check_jwt(self, request: Request) -> JSONResponse | None:
        """Kling's rules: `Authorization: Bearer <JWT>`, HS256 with the secret key, iss = access key, exp, nbf;
        401 with 1001 (empty), 1002 (invalid), 1003 (not yet valid), 1004 (expired), 1000 (failed)."""
        header = request.headers.get("authorization", "")
        code: int | None = None
        if not header:
            code = 1001
        elif not header.startswith("Bearer "):
            code = 1002
        else:
            try:
                claims = jwt.decode(
                    header[len("Bearer ") :],
                    KLING_SECRET_KEY,
                    algorithms=["HS256"],
                    options={"require": ["iss", "exp", "nbf"]},
                )
                if claims["iss"] != KLING_ACCESS_KEY:
                    code = 1000
                elif claims["exp"] - claims["nbf"] > 1800 + 5 + 1:
                    code = 1002
            except jwt.ExpiredSignatureError:
                code = 1004
            except jwt.ImmatureSignatureError:
                code = 1003
            except jwt.InvalidTokenError:
                code = 1002
        if code is None:
            return None
        self.auth_failures.append(code)
        return _kling(401, code, "Authentication failed", None)

    def router(self, app: FastAPI) -> None:
        @app.post("/v1/videos/omni-video")
        async def submit(request: Request) -> Response:
            if (refused := self.check_jwt(request)) is not None:
                return refused
            body = await request.json()
            self.submits.append(body)
            if self.submit_codes:
                code = self.submit_codes.popleft()
                http = 429 if code in (1302, 1303, 1102) else 500 if code >= 5000 else 400
                return _kling(http, code, f"scripted code {code}", None)
            problem = _check_kling_body(body)
            if problem:
                return _kling(400, 1201, problem, None)
            external = body["external_task_id"]
            if any(t["task_info"]["external_task_id"] == external for t in self.tasks.values()):
                return _kling(400, 1201, "external_task_id already exists", None)
            task_id = f"kt{uuid.uuid4().hex[:16]}"
            self.tasks[task_id] = {
                "task_id": task_id,
                "task_status": "submitted",
                "task_info": {"external_task_id": external},
                "created_at": int(time.time() * 1000),
                "updated_at": int(time.time() * 1000),
                "polls": 0,
            }
            self.accepted += 1
            if self.submit_hang_s:
                hang, self.submit_hang_s = self.submit_hang_s, 0.0
                await asyncio.sleep(hang)
            return _kling(200, 0, "SUCCEED", _public(self.tasks[task_id]))

        @app.get("/v1/videos/omni-video")
        async def by_external(request: Request, external_task_id: str = "") -> Response:
            if (refused := self.check_jwt(request)) is not None:
                return refused
            self.external_lookups += 1
            for task in self.tasks.values():
                if task["task_info"]["external_task_id"] == external_task_id:
                    return _kling(200, 0, "SUCCEED", _public(task))
            return _kling(404, 1203, "task not found", None)

        @app.get("/v1/videos/omni-video/{task_id}")
        async def query(task_id: str, request: Request) -> Response:
            if (refused := self.check_jwt(request)) is not None:
                return refused
            await asyncio.to_thread(self.polls_open.wait)
            self.polls += 1
            if self.poll_codes:
                code = self.poll_codes.popleft()
                return _kling(500 if code >= 5000 else 400, code, f"scripted code {code}", None)
            task = self.tasks.get(task_id)
            if task is None:
                return _kling(404, 1203, "task not found", None)
            status = self.statuses[min(task["polls"], len(self.statuses) - 1)]
            task["polls"] += 1
            task["task_status"] = status
            task["updated_at"] = int(time.time() * 1000)
            if status == "failed":
                task["task_status_msg"] = self.failure_message
            if status == "succeed":
                task["task_result"] = {
                    "videos": [{"id": f"v-{task_id}", "url": f"{self.base_url}/cdn/{task_id}.mp4", "duration": "5.1"}]
                }
            return _kling(200, 0, "SUCCEED", _public(task))


def _public(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "polls"}


def _kling(http: int, code: int, message: str, data: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data}, http)


def _check_kling_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    if body.get("model_name") != "kling-video-o1":
        return "model_name must be kling-video-o1"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt or len(prompt) > 2500:
        return "prompt must be 1..2500 characters"
    if body.get("mode") not in ("std", "pro"):
        return "mode must be std or pro"
    if body.get("duration") not in ("5", "10"):
        return "duration must be the string 5 or 10 with first/last frames"
    if not isinstance(body.get("external_task_id"), str):
        return "external_task_id must be a string"
    images = body.get("image_list")
    if not isinstance(images, list) or not 1 <= len(images) <= 2:
        return "image_list must hold a first frame and optionally an end frame"
    for index, item in enumerate(images):
        expected = ["first_frame", "end_frame"][index]
        if not isinstance(item, dict) or item.get("type") != expected:
            return f"image_list[{index}].type must be {expected}"
        raw = item.get("image_url")
        if not isinstance(raw, str) or raw.startswith("data:"):
            return "image_url must be a URL or base64 without a data: prefix"
        try:
            size = _is_jpeg(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            return "image_url is not valid base64"
        if size is None or min(size) < 300 or not 1 / 2.5 <= size[0] / size[1] <= 2.5:
            return "image must be at least 300px with a ratio within 1:2.5..2.5:1"
    return ""


@dataclass
class FalFake:
    """fal's queue for fal-ai/kling-video/o1/image-to-video; status/result/cancel under the app id."""

    base_url: str = ""
    # One per status poll; the last repeats. IN_QUEUE entries carry their queue position.
    statuses: list[tuple[str, int]] = field(
        default_factory=lambda: [("IN_QUEUE", 2), ("IN_QUEUE", 1), ("IN_PROGRESS", 0), ("COMPLETED", 0)]
    )
    # An error the result GET answers instead of the video: (HTTP status, body).
    result_error: tuple[int, dict[str, Any]] | None = None
    submit_statuses: deque[int] = field(default_factory=deque)
    submits: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_polls: int = 0

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {FAL_KEY}"

    def router(self, app: FastAPI) -> None:
        model = "fal-ai/kling-video/o1/image-to-video"
        app_id = "fal-ai/kling-video"

        @app.post(f"/{model}")
        async def submit(request: Request) -> Response:
            if not self.authorized(request):
                return JSONResponse({"detail": "Invalid key"}, 401)
            body = await request.json()
            self.submits.append(body)
            if self.submit_statuses:
                return JSONResponse({"detail": "scripted"}, self.submit_statuses.popleft())
            problem = _check_fal_body(body)
            if problem:
                return JSONResponse({"detail": [{"loc": ["body"], "msg": problem, "type": "value_error"}]}, 422)
            request_id = str(uuid.uuid4())
            self.requests[request_id] = {"polls": 0, "status": "IN_QUEUE", "cancelled": False}
            base = f"{self.base_url}/{app_id}/requests/{request_id}"
            return JSONResponse(
                {
                    "request_id": request_id,
                    "response_url": base,
                    "status_url": f"{base}/status",
                    "cancel_url": f"{base}/cancel",
                }
            )

        @app.get(f"/{app_id}/requests/{{request_id}}/status")
        async def status(request_id: str, request: Request) -> Response:
            if not self.authorized(request):
                return JSONResponse({"detail": "Invalid key"}, 401)
            entry = self.requests.get(request_id)
            if entry is None:
                return JSONResponse({"detail": "Request not found"}, 404)
            self.status_polls += 1
            if entry["cancelled"]:
                return JSONResponse(
                    {"status": "COMPLETED", "response_url": f"{self.base_url}/{app_id}/requests/{request_id}"}
                )
            name, position = self.statuses[min(entry["polls"], len(self.statuses) - 1)]
            entry["polls"] += 1
            entry["status"] = name
            answer: dict[str, Any] = {"status": name, "response_url": f"{self.base_url}/{app_id}/requests/{request_id}"}
            if name == "IN_QUEUE":
                answer["queue_position"] = position
            return JSONResponse(answer)

        @app.get(f"/{app_id}/requests/{{request_id}}")
        async def result(request_id: str, request: Request) -> Response:
            if not self.authorized(request):
                return JSONResponse({"detail": "Invalid key"}, 401)
            entry = self.requests.get(request_id)
            if entry is None:
                return JSONResponse({"detail": "Request not found"}, 404)
            if entry["cancelled"]:
                return JSONResponse({"detail": "Request was cancelled"}, 400)
            if self.result_error is not None:
                return JSONResponse(self.result_error[1], self.result_error[0])
            return JSONResponse(
                {
                    "video": {
                        "url": f"{self.base_url}/cdn/{request_id}.mp4",
                        "content_type": "video/mp4",
                        "file_name": "output.mp4",
                    }
                }
            )

        @app.put(f"/{app_id}/requests/{{request_id}}/cancel")
        async def cancel(request_id: str, request: Request) -> Response:
            if not self.authorized(request):
                return JSONResponse({"detail": "Invalid key"}, 401)
            entry = self.requests.get(request_id)
            if entry is None:
                return JSONResponse({"status": "NOT_FOUND"}, 404)
            self.cancels.append(request_id)
            if entry["status"] == "IN_QUEUE":
                entry["cancelled"] = True
                return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)


def _check_fal_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return "prompt is required"
    if body.get("duration") not in ("5", "10"):
        return "duration must be '5' or '10'"
    for name in ("start_image_url", "end_image_url"):
        value = body.get(name)
        if value is None and name == "end_image_url":
            continue
        prefix = "data:image/jpeg;base64,"
        if not isinstance(value, str) or not value.startswith(prefix):
            return f"{name} must be a URL or data URI"
        size = _is_jpeg(base64.b64decode(value[len(prefix) :]))
        if size is None or min(size) < 300:
            return f"{name}: min width/height 300px"
    extra = set(body) - {"prompt", "start_image_url", "end_image_url", "duration"}
    return f"unexpected fields {sorted(extra)}" if extra else ""


@dataclass
class Upstreams:
    base_url: str
    ca_path: Path
    kling: KlingFake
    fal: FalFake
    video: bytes
    video_requests: list[str]


@contextmanager
def fake_upstreams(tmp_path: Path) -> Iterator[Upstreams]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path = tmp_path / "fake-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path, key_path = tmp_path / "fake-cert.pem", tmp_path / "fake-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    base_url = f"https://127.0.0.1:{port}"
    video = make_video(tmp_path / "upstream.mp4")
    kling, fal = KlingFake(base_url=base_url), FalFake(base_url=base_url)
    video_requests: list[str] = []
    app = FastAPI()
    kling.router(app)
    fal.router(app)

    @app.get("/cdn/{name}")
    async def cdn(name: str) -> Response:
        video_requests.append(name)
        return Response(video, media_type="video/mp4")

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.02)
    try:
        yield Upstreams(base_url, ca_path, kling, fal, video, video_requests)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
