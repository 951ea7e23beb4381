"""Where an authenticated request's time goes: `reelgate serve --workers 0` under py-spy while wrk drives one
route, then the functions that hold the most samples (inclusive and own), as docs/benchmarks.md quotes them.

    .venv/bin/python bench/_profile_api.py [--route get|list|create|events] [--seconds 10] [--postgres]

A helper for finding costs, not a benchmark: it prints no ratio and joins no `make bench`. py-spy samples the
server's Python stacks 200 times a second (`--idle` off: only samples where the process is on a CPU), so
the shares are of the CPU time the server spends, which is what bounds its throughput on a saturated core.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import PostgresSchema, free_port, fresh_home, prepare_load, settings_env, start_process, wait_ready
from _wrk import request_of, run_wrk, seed

NATIVE = False


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    # py-spy's raw lines: "thread;frame;frame;... count"; a frame is "function (file:line)".
    frames = [
        frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
        for frame in stack.split(";")[1:]
    ]
    return frames, int(count)


def report(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    print(f"{total} samples on CPU")
    print("inclusive (the function and what it calls):")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("own (the function itself):")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--route", choices=("get", "list", "create", "events"), default="get")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--native", action="store_true", help="also sample C frames (SQLite, the drivers)")
    options = parser.parse_args()
    global NATIVE
    NATIVE = options.native
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    home = fresh_home("profile")
    with PostgresSchema(enabled=options.postgres) as schema:
        load = prepare_load(home, schema)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = home / "serve.log"
        server = start_process(
            ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"], settings_env(load.settings), log
        )
        try:
            wait_ready(f"{base}/readyz")
            seeded = seed(base, load.key)
            raw = home / "profile.txt"
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    *(["--native"] if NATIVE else []),
                    "--pid",
                    str(server.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "-o",
                    str(raw),
                    "--duration",
                    str(options.seconds + 1),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            path, script = request_of(options.route, seeded)
            result = run_wrk(base + path, load.key, script, seconds=options.seconds, home=home)
            spy.wait(timeout=60)
            print(
                f"{options.route}: {result.requests_per_s:.0f} req/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
            )
            report(raw, options.top)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
