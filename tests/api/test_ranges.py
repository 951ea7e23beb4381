"""Byte ranges of the files route: the single ranges players send, and what cannot be served as one."""

from __future__ import annotations

import pytest

from reelgate.api.ranges import byte_range
from reelgate.errors import ApiError


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),  # a suffix longer than the object is the whole object
        ("bytes=900-5000", (900, 1000)),  # the end is clamped to the object
        ("bytes=0-0", (0, 1)),
        ("bytes=5-2", None),  # invalid: ignored, the whole object is sent
        ("bytes=0-1,5-6", None),  # several ranges: served whole
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_single_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=2000-2100", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_with_the_size(header: str) -> None:
    with pytest.raises(ApiError) as raised:
        byte_range(header, 1000)
    assert raised.value.status == 416 and raised.value.headers["Content-Range"] == "bytes */1000"
