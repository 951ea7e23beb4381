"""Frames rendered ahead on a thread: same order, errors where they happened, the producer stops with the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from reelgate.engines.motion.ahead import rendered_ahead


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(rendered_ahead(iter(range(50)), depth=3)) == list(range(50))


def test_an_error_while_producing_is_raised_at_its_item() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("render failed")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="render failed"):
        for item in rendered_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_producer() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        index = 0
        while True:
            produced.append(index)
            yield index
            index += 1

    for item in rendered_ahead(endless(), depth=2):
        if item == 5:
            break
    # The producer ran at most `depth` (+ the one it was putting) past the consumer, then stopped.
    assert len(produced) <= 5 + 1 + 2 + 1
    assert not any(t.name == "motion-frames" and t.is_alive() for t in threading.enumerate())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(rendered_ahead(iter([1]), depth=0))
