"""The one stream driver per I/O flavour: open, feed the decoder, flush, parse each item.

Both flavours run the same cases over a mock gateway injected as ``http_client=``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from agentfm import (
    AgentFMClient,
    AgentFMError,
    AsyncAgentFMClient,
    GatewayProtocolError,
    OutputTooLargeError,
    WorkerRejectedError,
)
from agentfm._base_client import RequestSpec
from agentfm._constants import ARTIFACT_NONE
from agentfm._decoders import BytesDecoder, MarkerDecoder
from agentfm._streaming import AsyncStream, Stream, StreamState

if TYPE_CHECKING:
    from collections.abc import Callable

GW = "http://stream.test"
SPEC = RequestSpec("POST", "/api/execute", json={"prompt": "p"})
BODY = b"one\ntwo\n\n" + ARTIFACT_NONE.encode() + b"\n"


def answer(body: bytes, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return handler


def run_sync(handler: Any, **kwargs: Any) -> list[str]:
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = AgentFMClient(GW, http_client=http, api_key=None, retries=0)
        return list(client.stream(SPEC, kwargs.pop("decoder", MarkerDecoder()), str, **kwargs))


def run_async(handler: Any, **kwargs: Any) -> list[str]:
    async def go() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = AsyncAgentFMClient(GW, http_client=http, api_key=None, retries=0)
            decoder = kwargs.pop("decoder", MarkerDecoder())
            return [item async for item in client.stream(SPEC, decoder, str, **kwargs)]

    return asyncio.run(go())


FLAVOURS = [pytest.param(run_sync, id="sync"), pytest.param(run_async, id="async")]


@pytest.mark.parametrize("drive", FLAVOURS)
def test_items_come_decoded_and_the_end_check_runs(drive: Any) -> None:
    ended: list[bool] = []
    assert "".join(drive(answer(BODY), on_end=lambda: ended.append(True))) == "one\ntwo\n"
    assert ended == [True]


@pytest.mark.parametrize("drive", FLAVOURS)
def test_a_failure_after_the_200_is_marked_started(drive: Any) -> None:
    decoder = MarkerDecoder()
    with pytest.raises(WorkerRejectedError) as caught:
        drive(answer(b"\xe2\x9d\x8c ERROR: full\n"), decoder=decoder, on_end=decoder.raise_for_end)
    assert caught.value.task_started is True


@pytest.mark.parametrize("drive", FLAVOURS)
def test_the_output_cap_is_counted_on_raw_bytes(drive: Any) -> None:
    with pytest.raises(OutputTooLargeError) as caught:
        drive(answer(BODY), max_output_bytes=4)
    assert caught.value.task_started is True


@pytest.mark.parametrize("drive", FLAVOURS)
def test_on_error_decides_what_is_raised(drive: Any) -> None:
    seen: list[AgentFMError] = []

    def on_error(exc: AgentFMError) -> AgentFMError:
        seen.append(exc)
        return GatewayProtocolError("mapped", code="mapped")

    with pytest.raises(GatewayProtocolError, match="mapped"):
        drive(answer(BODY), max_output_bytes=1, on_error=on_error)
    assert [type(exc) for exc in seen] == [OutputTooLargeError]


@pytest.mark.parametrize("drive", FLAVOURS)
def test_an_error_status_is_typed_and_not_marked_started(drive: Any) -> None:
    with pytest.raises(AgentFMError) as caught:
        drive(answer(b"404 page not found", status=404))
    assert caught.value.code == "route_not_found"
    assert not getattr(caught.value, "task_started", False)


def test_bytes_decoder_passes_the_body_through() -> None:
    with httpx.Client(transport=httpx.MockTransport(answer(BODY))) as http:
        client = AgentFMClient(GW, http_client=http, api_key=None)
        pieces = list(client.stream(SPEC, BytesDecoder(), bytes))
    assert b"".join(pieces) == BODY


def failing_source(state: StreamState) -> Any:
    raise WorkerRejectedError("no", code="worker_rejected")
    yield  # pragma: no cover - makes this a generator


async def afailing_source(state: StreamState) -> Any:
    raise WorkerRejectedError("no", code="worker_rejected")
    yield  # pragma: no cover - makes this an async generator


def test_start_replays_the_first_item_and_surfaces_errors_in_both_wrappers() -> None:
    stream = Stream(lambda state: iter(["a", "b"]), StreamState()).start()
    assert list(stream) == ["a", "b"]
    broken = Stream(failing_source, StreamState())
    with pytest.raises(WorkerRejectedError):
        broken.start()
    assert list(broken) == []

    async def go() -> None:
        async def items(state: StreamState) -> Any:
            for item in ("a", "b"):
                yield item

        astream = await AsyncStream(items, StreamState()).start()
        assert [item async for item in astream] == ["a", "b"]
        abroken = AsyncStream(afailing_source, StreamState())
        with pytest.raises(WorkerRejectedError):
            await abroken.start()
        assert [item async for item in abroken] == []

    asyncio.run(go())


def test_an_exhausted_stream_is_finished_and_a_failed_one_is_not() -> None:
    done = StreamState()
    assert list(Stream(lambda state: iter(["x"]), done)) == ["x"]
    assert done.finished is True
    failed = StreamState()
    with pytest.raises(WorkerRejectedError):
        list(Stream(failing_source, failed))
    assert failed.finished is False
