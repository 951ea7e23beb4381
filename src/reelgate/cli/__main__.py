"""`python -m reelgate.cli`, as the tests and benchmarks start processes."""

from reelgate.cli import app

app()
