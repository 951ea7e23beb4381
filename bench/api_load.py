"""The API's hot routes under load, against a bare FastAPI app with the same routes (bench/bare_app.py) on the
same uvicorn, in the same run, with wrk (a C load generator in its own process, `-t2 -c32`).

    .venv/bin/python bench/api_load.py [--seconds 5] [--rounds 3] [--backends sqlite,postgres] [--api-processes 1]
                                       [--quick]

`--api-processes 2`: reelgate's API in two processes sharing the port (rate limits counted in Redis,
REELGATE_BENCH_REDIS_URL, default the tests' Redis on loopback, database 14); the bare app stays one process.

reelgate runs as `reelgate serve --workers 0` (API only: a worker advertised in the registry stands for one
elsewhere, so creates are accepted and stay pending). Routes: `GET /v1/tasks/{id}` (a poll), `GET
/v1/tasks?limit=20` (a page of 20 task objects), `POST /v1/videos/generations` (a URL image: authenticated,
validated, credits reserved and the task committed, one transaction each), and opening the event stream of an
ended task (its terminal event, then the stream ends). On SQLite, creates are measured again with
`REELGATE_SQLITE_SYNCHRONOUS=FULL` (an fsync per commit). PostgreSQL is the tests' (127.0.0.1:5432, database
`test`, a throwaway schema); it is skipped, saying why, where unreachable.

Each route is measured in rounds: reelgate, then the bare app right after it. The ratio of a round is reelgate's
req/s over the bare app's; a row's ratio is the median round's, with the lowest and highest beside it (the
speed of a shared host drifts from one run to the next by more than the differences measured here, so a ratio
is only taken between two runs back to back). Each run: req/s, p50 and p99 (wrk's). Runs with non-2xx answers
or socket errors are flagged: they measured something else. Beside each reelgate run: the cores its process
(with its children) and PostgreSQL's processes used on average (from /proc), and its CPU per request: a
process at a full core is bound by its own CPU per request. `--quick`: one round of 2 s per measurement (a
smoke run; its figures are not for quoting).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import _cpu
from _common import PostgresSchema, free_port, fresh_home, prepare_load, settings_env, start_process, wait_ready
from _wrk import ROUTES, WrkMissing, WrkResult, request_of, run_wrk, seed, wrk_path

BENCH_DIR = Path(__file__).parent
# `--api-processes` above 1: the tests' Redis (a database of its own), where the processes count rate limits.
REDIS_URL = os.environ.get("REELGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass(frozen=True)
class Row:
    backend: str
    route: str
    # (reelgate, bare) per round, each pair measured back to back: the machine's speed drifts between runs
    # (a shared host), so a ratio is only ever taken within a round.
    rounds: list[tuple[WrkResult, WrkResult]]
    # Cores reelgate's process (and PostgreSQL's) used during each reelgate run, None where /proc is absent.
    cpu: list[_cpu.CpuUse | None]

    @property
    def ratios(self) -> list[float]:
        return [_ratio(ours, bare) for ours, bare in self.rounds]

    @property
    def median_round(self) -> tuple[WrkResult, WrkResult]:
        """The round whose ratio is the median (the lower middle of an even number)."""
        ranked = sorted(self.rounds, key=lambda pair: _ratio(*pair))
        return ranked[(len(ranked) - 1) // 2]

    @property
    def ratio(self) -> float:
        return _ratio(*self.median_round)

    @property
    def ours(self) -> WrkResult:
        return self.median_round[0]

    @property
    def bare(self) -> WrkResult:
        return self.median_round[1]


def _ratio(ours: WrkResult, bare: WrkResult) -> float:
    return ours.requests_per_s / bare.requests_per_s if bare.requests_per_s else float("nan")


def _flag(result: WrkResult) -> str:
    problems = []
    if result.non_2xx:
        problems.append(f"{result.non_2xx} non-2xx")
    if result.socket_errors:
        problems.append(f"{result.socket_errors} socket errors")
    return f"  [{', '.join(problems)}]" if problems else ""


def _cpu_line(use: _cpu.CpuUse | None, result: WrkResult) -> str:
    """The cores reelgate's process and PostgreSQL's used, and reelgate's CPU per request."""
    if use is None or not result.requests_per_s:
        return ""
    database = f", PostgreSQL {use.database_cores:.2f}" if use.database_cores >= 0.005 else ""
    per_request_ms = use.server_cores / result.requests_per_s * 1000
    return f"   cores: reelgate {use.server_cores:.2f}{database}; {per_request_ms:.3f} ms CPU/request"


def _line(label: str, result: WrkResult) -> str:
    return (
        f"    {label:8s} {result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"{_flag(result)}"
    )


def start_bare(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = start_process(
        [
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--app-dir",
            str(BENCH_DIR),
        ],
        {},
        home / "bare.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/readyz")
    return process, base


def measure_backend(
    home: Path,
    schema: PostgresSchema | None,
    bare_base: str,
    routes: list[str],
    *,
    seconds: float,
    rounds: int,
    api_processes: int,
    label: str,
    overrides: dict[str, object] | None = None,
) -> list[Row]:
    home.mkdir(parents=True, exist_ok=True)
    load = prepare_load(home, schema, **(overrides or {}))
    env = settings_env(load.settings)
    if api_processes > 1:
        # Several processes count one rate limit only through Redis (serve refuses to start without it).
        env["REELGATE_REDIS_URL"] = REDIS_URL
    if "sqlite_synchronous" in (overrides or {}):
        env["REELGATE_SQLITE_SYNCHRONOUS"] = str((overrides or {})["sqlite_synchronous"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"]
    if api_processes != 1:
        args += ["--api-processes", str(api_processes)]
    server = start_process(args, env, home / f"serve-{label}.log")
    rows = []
    try:
        wait_ready(f"{base}/readyz")
        seeded = seed(base, load.key)
        for route in routes:
            path, script = request_of(route, seeded)
            # A short warm-up of both (connections, caches, the first compiled statements), then the runs.
            run_wrk(base + path, load.key, script, seconds=1, home=home)
            print(f"  {label:24s} {ROUTES[route]}", flush=True)
            pairs, cpu = [], []
            for _ in range(rounds):
                before = _cpu.sample(server.pid) if _cpu.available() else None
                ours = run_wrk(base + path, load.key, script, seconds=seconds, home=home)
                use = _cpu.used(before, _cpu.sample(server.pid)) if before is not None else None
                bare = run_wrk(bare_base + path, load.key, script, seconds=seconds, home=home)
                pairs.append((ours, bare))
                cpu.append(use)
                print(_line("reelgate", ours) + _cpu_line(use, ours), flush=True)
                print(_line("bare", bare) + f"   ratio {_ratio(ours, bare):.2f}", flush=True)
            rows.append(Row(label, route, pairs, cpu))
            print(f"    ratio reelgate/bare = {rows[-1].ratio:.2f} (median of {rounds})", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="reelgate-then-bare pairs per route (median ratio)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 s per measurement: a smoke run")
    options = parser.parse_args()
    seconds = 2.0 if options.quick else options.seconds
    rounds = 1 if options.quick else max(1, options.rounds)
    routes = [route.strip() for route in options.routes.split(",") if route.strip()]
    try:
        wrk_path()
    except WrkMissing as missing:
        print(f"api_load: skipped: {missing}")
        return

    home = fresh_home("load")
    print(
        f"api_load: wrk -t2 -c32, {seconds:g} s per run, {rounds} rounds of reelgate then bare per route, "
        f"loopback, serve --workers 0 --api-processes {options.api_processes}, against bare FastAPI (same uvicorn)"
    )
    bare, bare_base = start_bare(home)
    rows: list[Row] = []
    try:
        for backend in [name.strip() for name in options.backends.split(",") if name.strip()]:
            if backend == "sqlite":
                rows += measure_backend(
                    home / "sqlite",
                    None,
                    bare_base,
                    routes,
                    seconds=seconds,
                    rounds=rounds,
                    api_processes=options.api_processes,
                    label="SQLite",
                )
                if "create" in routes:
                    rows += measure_backend(
                        home / "sqlite-full",
                        None,
                        bare_base,
                        ["create"],
                        seconds=seconds,
                        rounds=rounds,
                        api_processes=options.api_processes,
                        label="SQLite synchronous=FULL",
                        overrides={"sqlite_synchronous": "FULL"},
                    )
            elif backend == "postgres":
                postgres = PostgresSchema()
                with postgres as schema:
                    if schema is None:
                        print(f"  PostgreSQL: skipped: {postgres.problem}")
                        continue
                    rows += measure_backend(
                        home / "postgres",
                        schema,
                        bare_base,
                        routes,
                        seconds=seconds,
                        rounds=rounds,
                        api_processes=options.api_processes,
                        label="PostgreSQL",
                    )
            else:
                raise SystemExit(f"unknown backend {backend!r} (sqlite, postgres)")
    finally:
        bare.terminate()
        bare.wait(timeout=30)

    print(
        "summary (the median round): req/s reelgate / bare = ratio [lowest-highest round]; reelgate p50 / p99; "
        "cores reelgate's process used (PostgreSQL's)"
    )
    for row in rows:
        use = row.cpu[row.rounds.index(row.median_round)]
        cores = "" if use is None else f"   cores {use.server_cores:.2f}"
        if use is not None and use.database_cores >= 0.005:
            cores += f" ({use.database_cores:.2f})"
        print(
            f"  {row.backend:24s} {ROUTES[row.route]:45s} {row.ours.requests_per_s:7.0f} / "
            f"{row.bare.requests_per_s:7.0f} = {row.ratio:4.2f} [{min(row.ratios):4.2f}-{max(row.ratios):4.2f}]"
            f"   p50 {row.ours.p50_ms:6.2f} ms  p99 {row.ours.p99_ms:6.2f} ms{cores}{_flag(row.ours)}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
