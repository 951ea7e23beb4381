"""Strict query strings: a misspelt parameter (`?limt=5`) is an error naming it, not silently ignored."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request

from reelgate.errors import ApiError


def reject_unknown_query(request: Request, *, allowed: Iterable[str]) -> None:
    known = set(allowed)
    for name in request.query_params:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise ApiError(400, f"Unknown query parameter {name!r} (allowed: {expected})", param=name or "query")
