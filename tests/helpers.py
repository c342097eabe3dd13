"""Helpers that let one test body drive the sync and the async client alike."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` and await the result when the client under test is async."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


async def collect(stream: Iterable[T] | AsyncIterable[T]) -> list[T]:
    """Drain a sync or async stream into a list."""
    if isinstance(stream, AsyncIterable):
        return [item async for item in stream]
    return list(stream)
