"""Small helpers shared by the client tests."""

from __future__ import annotations

from typing import Any


async def drain_into(stream: Any, sink: list[Any]) -> None:
    """Collect a sync or async stream into ``sink`` so items survive an exception."""
    if hasattr(stream, "__aiter__"):
        async for item in stream:
            sink.append(item)
    else:
        sink.extend(stream)
