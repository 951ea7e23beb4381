"""Create and query throughput and latency under concurrent load on loopback, against a bare FastAPI app with
the same routes (same server, same client, same machine, same run) as the baseline.

    .venv/bin/python bench/api_throughput.py [--requests 2000] [--concurrency 32]

reelgate runs as `reelgate serve --workers 0` (API only: the numbers are the API's, not the engine's) on
SQLite, each create a real authenticated, validated, credit-reserving, committed task.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from _common import free_port, fresh_home, prepared_settings, settings_env, start_process, summary_ms, wait_ready

BODY = {
    "model": "kling-o1-image-to-video",
    "prompt": "A cat walking gracefully",
    "image_urls": ["https://example.com/first-frame.jpg"],
}


async def load(base_url: str, key: str, requests: int, concurrency: int) -> dict[str, tuple[float, list[float]]]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: dict[str, tuple[float, list[float]]] = {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as client:
        ids: list[str] = []

        async def create_one() -> float:
            started = time.perf_counter()
            response = await client.post("/v1/videos/generations", json=BODY)
            response.raise_for_status()
            ids.append(response.json()["id"])
            return time.perf_counter() - started

        async def query_one(index: int) -> float:
            started = time.perf_counter()
            response = await client.get(f"/v1/tasks/{ids[index % len(ids)]}")
            response.raise_for_status()
            return time.perf_counter() - started

        semaphore = asyncio.Semaphore(concurrency)

        async def bounded(index: int, make: Callable[[int], Awaitable[float]]) -> float:
            async with semaphore:
                return await make(index)

        async def create_indexed(_index: int) -> float:
            return await create_one()

        for name, make in (("create", create_indexed), ("query", query_one)):
            wall = time.perf_counter()
            latencies = await asyncio.gather(*(bounded(i, make) for i in range(requests)))
            results[name] = (requests / (time.perf_counter() - wall), list(latencies))
    return results


def run_server(
    args: list[str], env: dict[str, str], log: Path, base_url: str, key: str, requests: int, concurrency: int
) -> dict[str, tuple[float, list[float]]]:
    process = start_process(args, env, log)
    try:
        wait_ready(f"{base_url}/readyz")
        asyncio.run(load(base_url, key, requests // 10, concurrency))  # warm-up
        return asyncio.run(load(base_url, key, requests, concurrency))
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="100 requests per kind: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.requests = 100

    home = fresh_home("api")
    settings, key = prepared_settings(home, idle_worker=True)
    port = free_port()
    ours = run_server(
        ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"],
        settings_env(settings),
        home / "serve.log",
        f"http://127.0.0.1:{port}",
        key,
        options.requests,
        options.concurrency,
    )
    port = free_port()
    bare = run_server(
        [
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--app-dir",
            str(Path(__file__).parent),
        ],
        {},
        home / "bare.log",
        f"http://127.0.0.1:{port}",
        key,
        options.requests,
        options.concurrency,
    )

    print(
        f"api_throughput: {options.requests} requests per kind, concurrency {options.concurrency}, loopback, "
        f"SQLite, 1 API process"
    )
    for kind in ("create", "query"):
        ours_rps, ours_lat = ours[kind]
        bare_rps, bare_lat = bare[kind]
        print(f"  {kind:6s} reelgate {ours_rps:8.1f} req/s  {summary_ms(ours_lat)}")
        print(f"  {kind:6s} bare     {bare_rps:8.1f} req/s  {summary_ms(bare_lat)}")
        print(f"  {kind:6s} ratio reelgate/bare throughput = {ours_rps / bare_rps:.2f}")


if __name__ == "__main__":
    main()
