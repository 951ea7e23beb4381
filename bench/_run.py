"""Run every benchmark under bench/, one after another, and fail if any of them fails.

    .venv/bin/python bench/_run.py --quick     # make bench-smoke: tiny counts, a few minutes, run by CI
    .venv/bin/python bench/_run.py             # make bench: the documented sizes (docs/benchmarks.md)
    .venv/bin/python bench/_run.py motion.py   # some of them

A benchmark is any `bench/*.py` not starting with `_` (those are the helpers they share) and not listed in
NOT_BENCHMARKS, so a new script is run without anyone remembering to add it. Each runs as its own process
(`--quick` passed through), its output printed as it comes under its name; the exit status is not 0 when one
exited non-zero or ran past its limit. Nothing here looks at the figures: a smoke run proves the scripts still
run end to end (the API, the models and the settings they use have not moved under them), not how fast.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

# Modules under bench/ that are not benchmarks, and why; everything else is run.
NOT_BENCHMARKS = {
    "bare_app.py": "the baseline FastAPI app the API benchmarks serve beside reelgate",
}

# Per-script limits: a smoke run that takes longer than this is broken (a hang), not slow.
QUICK_LIMIT_S = 600
FULL_LIMIT_S = 3600


@dataclass(frozen=True)
class Outcome:
    script: str
    returncode: int | None  # None: killed at the limit
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def discover(directory: Path) -> list[Path]:
    return sorted(
        path for path in directory.glob("*.py") if not path.name.startswith("_") and path.name not in NOT_BENCHMARKS
    )


def run_one(script: Path, *, quick: bool, limit_s: float) -> Outcome:
    args = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(f"\n=== {script.name}: {' '.join([Path(args[0]).name, *args[1:]])}", flush=True)
    started = time.monotonic()
    # The benchmark's own stdout and stderr go straight to ours: its figures are the point of running it.
    process = subprocess.Popen(args, cwd=script.parent.parent)
    try:
        returncode: int | None = process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        returncode = None
    outcome = Outcome(script.name, returncode, time.monotonic() - started)
    verdict = "ok" if outcome.ok else ("timed out" if returncode is None else f"FAILED (exit {returncode})")
    print(f"=== {script.name}: {verdict} in {outcome.seconds:.1f} s", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each script's quick mode (make bench-smoke)")
    parser.add_argument("--dir", type=Path, default=BENCH_DIR, help="where the benchmarks are (default: bench/)")
    parser.add_argument("scripts", nargs="*", help="file names to run (default: every benchmark)")
    options = parser.parse_args(argv)

    found = discover(options.dir)
    if options.scripts:
        unknown = sorted(set(options.scripts) - {path.name for path in found})
        if unknown:
            parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(p.name for p in found)})")
        found = [path for path in found if path.name in options.scripts]
    if not found:
        parser.error(f"no benchmarks under {options.dir}")

    mode = "quick (smoke)" if options.quick else "full"
    print(f"bench: {len(found)} benchmarks, {mode}: {', '.join(path.name for path in found)}", flush=True)
    for name, why in NOT_BENCHMARKS.items():
        if (options.dir / name).exists():
            print(f"bench: not run: {name} ({why})", flush=True)
    limit_s = QUICK_LIMIT_S if options.quick else FULL_LIMIT_S
    outcomes = [run_one(path, quick=options.quick, limit_s=limit_s) for path in found]

    print(f"\nbench: {mode} summary", flush=True)
    for outcome in outcomes:
        status = "ok" if outcome.ok else ("timed out" if outcome.returncode is None else f"exit {outcome.returncode}")
        print(f"  {outcome.script:24s} {status:10s} {outcome.seconds:7.1f} s", flush=True)
    failed = [outcome.script for outcome in outcomes if not outcome.ok]
    if failed:
        print(f"bench: {len(failed)} failed: {', '.join(failed)}", flush=True)
        return 1
    print(f"bench: all {len(outcomes)} ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
