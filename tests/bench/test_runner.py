"""bench/_run.py, the runner behind `make bench` and `make bench-smoke`: it finds every benchmark, passes
--quick through, and fails when one fails (so CI's smoke run catches a broken benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "_run.py"


def _run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), "--dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _script(directory: Path, name: str, body: str) -> None:
    (directory / name).write_text("import sys\n" + body + "\n")


def test_a_failing_benchmark_fails_the_run_and_every_one_is_named(tmp_path: Path) -> None:
    _script(tmp_path, "good.py", "print('good ran with', sys.argv[1:])")
    _script(tmp_path, "broken.py", "raise SystemExit(3)")
    _script(tmp_path, "_helper.py", "raise SystemExit('a helper module is not run')")

    result = _run(tmp_path, "--quick")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "good ran with ['--quick']" in result.stdout
    assert "broken.py: FAILED (exit 3)" in result.stdout
    assert "bench: 1 failed: broken.py" in result.stdout
    assert "_helper" not in result.stdout


def test_all_passing_benchmarks_exit_zero_and_full_mode_passes_no_quick_flag(tmp_path: Path) -> None:
    _script(tmp_path, "one.py", "print('one ran with', sys.argv[1:])")
    _script(tmp_path, "two.py", "print('two ran')")

    result = _run(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "one ran with []" in result.stdout
    assert "bench: all 2 ran" in result.stdout


def test_an_unknown_benchmark_name_is_refused(tmp_path: Path) -> None:
    _script(tmp_path, "one.py", "pass")

    result = _run(tmp_path, "nope.py")

    assert result.returncode == 2
    assert "no such benchmark: nope.py" in result.stderr


def _benchmarks() -> list[Path]:
    sys.path.insert(0, str(RUNNER.parent))
    try:
        import _run  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return list(_run.discover(RUNNER.parent))


@pytest.mark.parametrize("script", _benchmarks(), ids=lambda path: path.name)
def test_every_benchmark_has_a_quick_mode(script: Path) -> None:
    """make bench-smoke passes --quick to every script: one without it would fail CI only at the very end."""
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout
