"""Frames rendered ahead, on a thread of their own, while the caller writes the previous ones.

Writing a frame to ffmpeg blocks until the encoder has read it (a 720p yuv420p frame is 1.4 MB, the
pipe holds 64 KB to 1 MB), so a loop that renders and then writes leaves a core idle while it waits.
Rendered on a thread (OpenCV's warps and blends release the GIL), the next frames are being made while
the last one is being read. The order is kept, so the output is the same bytes as without the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

# A few frames are enough to cover the encoder's hiccups (a keyframe, lookahead), and bound the memory
# (4 x 1.4 MB at 720p).
DEFAULT_DEPTH = 4
_POLL_S = 0.1


class _Done:
    """The producer's last item: the iterator ended, or raised `error`."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def rendered_ahead(items: Iterator[T], depth: int = DEFAULT_DEPTH) -> Iterator[T]:
    """`items`, in order, produced up to `depth` ahead on a daemon thread. An exception raised while
    producing is raised here, at the item where it happened; leaving the loop early (or an error in
    the consumer) stops the producer at its next item."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.Queue[T | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _Done) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, who raises it where it happened
            put(_Done(error))
            return
        put(_Done(None))

    thread = threading.Thread(target=produce, name="motion-frames", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
