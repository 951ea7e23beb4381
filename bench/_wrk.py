"""wrk, the C load generator (Debian package `wrk`), driven from the benchmarks: the requests each route
under test takes, its Lua script for bodies, and its printout read back (req/s, p50, p99, failures).

wrk runs in its own process, so the load generator's cost is not the Python client's: a Python client
saturates two cores before either server does, which is what made bench/api_throughput.py's ratios wrong.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

THREADS = 2
CONNECTIONS = 32
# A URL image: checked for syntax at create time and fetched by the worker, so a create does no network I/O.
CREATE_BODY = {
    "model": "kling-o1-image-to-video",
    "prompt": "A cat walking gracefully",
    "image_urls": ["https://example.com/first-frame.jpg"],
}
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    """The `wrk` binary, installed from Debian if missing and allowed (root, apt-get present)."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is not None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing("wrk is not installed: apt-get install wrk (Debian/Ubuntu), or brew install wrk")


@dataclass(frozen=True)
class Seeded:
    """Tasks the read routes ask for: one pending (GET, list), one that ended (its event stream opens, sends
    the terminal event and closes, so wrk sees it as one request)."""

    task_id: str
    ended_task_id: str


def seed(base_url: str, key: str, *, tasks: int = 40) -> Seeded:
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for _ in range(tasks):
            response = client.post("/v1/videos/generations", json=CREATE_BODY)
            response.raise_for_status()
            ids.append(response.json()["id"])
        client.post(f"/v1/tasks/{ids[0]}/cancel").raise_for_status()
    return Seeded(task_id=ids[-1], ended_task_id=ids[0])


# route name -> (what the table calls it, method)
ROUTES: dict[str, str] = {
    "get": "GET /v1/tasks/{id}",
    "list": "GET /v1/tasks?limit=20",
    "create": "POST /v1/videos/generations",
    "events": "GET /v1/tasks/{id}/events (open, ended task)",
}


def request_of(route: str, seeded: Seeded) -> tuple[str, str | None]:
    """The path wrk asks for and its Lua script (None: a plain GET)."""
    if route == "get":
        return f"/v1/tasks/{seeded.task_id}", None
    if route == "list":
        return "/v1/tasks?limit=20", None
    if route == "events":
        return f"/v1/tasks/{seeded.ended_task_id}/events", None
    if route == "create":
        body = json.dumps(CREATE_BODY)
        return "/v1/videos/generations", (
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
    raise ValueError(route)


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    # Answers that were not 2xx/3xx, and socket errors (connect, read, write, timeout): a run with either
    # measured something else than the route, so the bench reports them.
    non_2xx: int
    socket_errors: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse(output: str) -> WrkResult:
    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output)
        if match is None:
            if default is not None:
                return default
            raise ValueError(f"wrk printed no {pattern!r}:\n{output}")
        return match.group(1)

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests_per_s=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"\s50%\s+(\S+)")),
        p99_ms=_ms(find(r"\s99%\s+(\S+)")),
        requests=int(find(r"(\d+) requests in")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str,
    key: str,
    script: str | None,
    *,
    seconds: float,
    home: Path,
    threads: int = THREADS,
    connections: int = CONNECTIONS,
) -> WrkResult:
    args = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {key}",
    ]
    if script is not None:
        path = home / f"wrk-{abs(hash(script))}.lua"
        path.write_text(script)
        args += ["-s", str(path)]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    return parse(done.stdout)
