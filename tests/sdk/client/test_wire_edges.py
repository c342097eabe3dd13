"""Wire cases a real gateway cannot produce on demand, mocked with respx (sync and async)."""

from __future__ import annotations

import json
import logging
import zipfile
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from agentfm import (
    AgentFMClient,
    AsyncAgentFMClient,
    AsyncCapacityError,
    AuthenticationError,
    DispatchRefusedError,
    GatewayConnectionError,
    GatewayProtocolError,
    IncompleteStreamError,
    InvalidRequestError,
    MeshOverloadedError,
    RateLimitError,
    WorkerNotFoundError,
    WorkerStreamError,
)
from tests.helpers import call, collect
from tests.sdk.client._util import drain_into

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

GW = "http://gw.test"
PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
PLAIN = {"content-type": "text/plain; charset=utf-8"}


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces, optionally ending in a transport error."""

    def __init__(self, pieces: list[bytes], error: Exception | None = None) -> None:
        self.pieces = pieces
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.error is not None:
            raise self.error


def envelope(code: str, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"message": f"{code} happened", "type": "server_error", "code": code}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture(params=["sync", "async"])
async def mclient(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    with respx.mock(base_url=GW, assert_all_called=False) as mock:
        if request.param == "sync":
            with AgentFMClient(
                GW, api_key="secret-key-0123456789", artifacts_dir=tmp_path / "a"
            ) as c:
                c.mock = mock
                yield c
        else:
            async with AsyncAgentFMClient(
                GW, api_key="secret-key-0123456789", artifacts_dir=tmp_path / "a"
            ) as c:
                c.mock = mock
                yield c


def execute(mclient: Any, *pieces: bytes, error: Exception | None = None) -> respx.Route:
    return mclient.mock.post("/api/execute").mock(
        return_value=httpx.Response(
            200, headers={"content-type": "text/plain"}, stream=Chunks(list(pieces), error)
        )
    )


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, "prompt is required\n", InvalidRequestError),
        (403, "dispatch refused: reputation_below_floor\n", DispatchRefusedError),
        (404, "Worker not found or offline\n", WorkerNotFoundError),
        (405, "Method not allowed\n", InvalidRequestError),
    ],
)
async def test_plain_text_errors_on_execute(
    mclient: Any, status: int, body: str, cls: type
) -> None:
    mclient.mock.post("/api/execute").respond(status, text=body, headers=PLAIN)
    with pytest.raises(cls) as info:
        await call(mclient.tasks.run, worker_id=PEER, prompt="x")
    assert info.value.status == status
    assert body.strip() in info.value.message
    if status in (400, 403, 405):
        assert isinstance(info.value, GatewayProtocolError)


async def test_request_body_and_auth_header(mclient: Any) -> None:
    route = execute(mclient, b"ok\n\n[AGENTFM: NO_FILES]\n")
    health = mclient.mock.get("/health").respond(200, json={"status": "ok", "online_workers": 0})
    result = await call(mclient.tasks.run, worker_id=PEER, prompt="héllo", task_id="task_abc")
    sent = route.calls.last.request
    assert json.loads(sent.content) == {"worker_id": PEER, "prompt": "héllo", "task_id": "task_abc"}
    assert sent.headers["authorization"] == "Bearer secret-key-0123456789"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("agentfm-python/")
    assert result.text == "ok\n"
    assert await call(mclient.ping)
    assert "authorization" not in health.calls.last.request.headers


async def test_stream_cut_mid_line(mclient: Any) -> None:
    execute(mclient, b"line one\nline t", b"wo is cu")
    stream = mclient.tasks.stream(worker_id=PEER, prompt="x")
    seen: list[Any] = []
    with pytest.raises(IncompleteStreamError) as info:
        await drain_into(stream, seen)
    assert "".join(c.text for c in seen) == "line one\nline two is cu"
    assert info.value.task_started


async def test_transport_error_mid_stream(mclient: Any) -> None:
    execute(mclient, b"partial\n", error=httpx.RemoteProtocolError("peer closed connection"))
    with pytest.raises(WorkerStreamError) as info:
        await call(mclient.tasks.run, worker_id=PEER, prompt="x")
    assert not isinstance(info.value, IncompleteStreamError)
    assert "peer closed" in info.value.message


async def test_marker_split_across_chunks(mclient: Any) -> None:
    execute(mclient, b"made a file\n\n[AGENTFM: FILES_", b"INCOM", b"ING]\n")
    mclient.mock.get(url__regex=r"/api/artifacts/.*").respond(
        404, text="Artifact not found\n", headers=PLAIN
    )
    stream = mclient.tasks.stream(worker_id=PEER, prompt="x")
    chunks = await collect(stream)
    assert [c.kind for c in chunks][-1] == "marker"
    assert "".join(c.text for c in chunks) == "made a file\n"
    assert stream.files_incoming


async def test_utf8_split_across_chunks(mclient: Any) -> None:
    raw = "héllo 😀\n\n[AGENTFM: NO_FILES]\n".encode()
    execute(mclient, *[raw[i : i + 1] for i in range(len(raw))])
    result = await call(mclient.tasks.run, worker_id=PEER, prompt="x")
    assert result.text == "héllo 😀\n"


async def test_missing_marker_after_clean_eof(mclient: Any) -> None:
    execute(mclient, b"all output but no marker\n")
    with pytest.raises(IncompleteStreamError):
        await call(mclient.tasks.run, worker_id=PEER, prompt="x")


async def test_http_artifacts_with_route_and_without(
    mclient: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = tmp_path / "z.zip"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("r.txt", "remote")
    execute(mclient, b"x\n\n[AGENTFM: FILES_INCOMING]\n")
    route = mclient.mock.get("/api/artifacts/task_http").mock(
        side_effect=[
            httpx.Response(404, text="Artifact not found\n", headers=PLAIN),
            httpx.Response(200, content=buffer.read_bytes()),
        ]
    )
    result = await call(mclient.tasks.run, worker_id=PEER, prompt="x", task_id="task_http")
    assert route.call_count == 2
    assert [p.read_text() for p in result.artifacts] == ["remote"]
    # A gateway without the route answers Go's mux 404: fall back to the shared folder.
    mclient.mock.get("/api/artifacts/task_local").respond(
        404, text="404 page not found\n", headers=PLAIN
    )
    shared = tmp_path / "a"
    with zipfile.ZipFile(shared / "task_local.zip", "w") as archive:
        archive.writestr("l.txt", "local")
    result = await call(mclient.tasks.run, worker_id=PEER, prompt="x", task_id="task_local")
    assert [p.read_text() for p in result.artifacts] == ["local"]
    mclient.mock.get("/api/artifacts/task_gone").respond(
        404, text="404 page not found\n", headers=PLAIN
    )
    result = await call(
        mclient.tasks.run, worker_id=PEER, prompt="x", task_id="task_gone", artifact_timeout=0.2
    )
    assert result.artifacts == []
    assert mclient._artifact_route_missing


async def test_no_route_and_no_shared_folder_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with respx.mock(base_url=GW) as mock, AgentFMClient(GW, api_key=None) as client:
        mock.post("/api/execute").respond(200, content=b"x\n\n[AGENTFM: FILES_INCOMING]\n")
        mock.get(url__regex=r"/api/artifacts/.*").respond(
            404, text="404 page not found\n", headers=PLAIN
        )
        with caplog.at_level(logging.WARNING, logger="agentfm"):
            result = client.tasks.run(worker_id=PEER, prompt="x")
    assert result.files_incoming
    assert result.artifacts == []
    assert "no artifact route" in caplog.text


def sse(*events: object, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chat_chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": PEER,
        "choices": [
            {"index": 0, "delta": {"role": "", "content": content}, "finish_reason": finish}
        ],
        "agentfm_peer_id": PEER,
        "agentfm_task_id": "task_000000000000000000000000",
    }


def sse_route(mclient: Any, path: str, body: bytes) -> respx.Route:
    return mclient.mock.post(path).mock(
        return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Chunks([body])
        )
    )


async def test_sse_in_band_stream_error(mclient: Any) -> None:
    sse_route(
        mclient,
        "/v1/chat/completions",
        sse(chat_chunk("hi\n"), chat_chunk("\n[stream error: deadline exceeded]\n", "stop")),
    )
    stream = await call(
        mclient.openai.chat.completions.create,
        model=PEER,
        messages=[{"role": "user", "content": "x"}],
        stream=True,
    )
    with pytest.raises(WorkerStreamError, match="deadline exceeded"):
        await collect(stream)
    assert stream.task_id == "task_000000000000000000000000"


async def test_sse_missing_done(mclient: Any) -> None:
    sse_route(mclient, "/v1/chat/completions", sse(chat_chunk("hi\n"), done=False))
    stream = await call(
        mclient.openai.chat.completions.create,
        model=PEER,
        messages=[{"role": "user", "content": "x"}],
        stream=True,
    )
    with pytest.raises(IncompleteStreamError):
        await collect(stream)


async def test_sse_garbage_chunk_is_a_protocol_error(mclient: Any) -> None:
    sse_route(mclient, "/v1/completions", b"data: {not json\n\ndata: [DONE]\n\n")
    with pytest.raises(GatewayProtocolError):
        # The first event is read when the stream is created, so the error may come from either.
        await collect(
            await call(mclient.openai.completions.create, model=PEER, prompt="x", stream=True)
        )


async def test_429_retry_after_is_honoured_on_get(mclient: Any) -> None:
    route = mclient.mock.get("/api/workers").mock(
        side_effect=[
            httpx.Response(429, text="slow down\n", headers={"Retry-After": "0", **PLAIN}),
            httpx.Response(200, json={"success": True, "agents": []}),
        ]
    )
    assert await call(mclient.workers.list) == []
    assert route.call_count == 2


async def test_rate_limited_is_typed_and_not_retried(mclient: Any) -> None:
    route = mclient.mock.get("/v1/models").mock(
        return_value=envelope("rate_limited", 429, {"Retry-After": "60"})
    )
    with pytest.raises(RateLimitError) as info:
        await call(mclient.openai.models.list)
    assert info.value.retry_after == 60.0
    assert route.call_count == 1


async def test_401_is_typed(mclient: Any) -> None:
    mclient.mock.get("/api/workers").mock(return_value=envelope("invalid_api_key", 401))
    with pytest.raises(AuthenticationError) as info:
        await call(mclient.workers.list)
    assert "secret-key" not in str(info.value)
    assert "secret-key" not in repr(info.value)


async def test_503_async_capacity_is_typed_and_never_resent(mclient: Any) -> None:
    route = mclient.mock.post("/api/execute/async").mock(
        return_value=envelope("async_capacity_exhausted", 503, {"Retry-After": "5"})
    )
    with pytest.raises(AsyncCapacityError) as info:
        await call(mclient.tasks.submit_async, worker_id=PEER, prompt="x")
    assert route.call_count == 1
    assert info.value.retry_after == 5.0


async def test_get_is_retried_on_503(mclient: Any) -> None:
    child = mclient.with_options(retries=1)
    route = mclient.mock.get("/api/workers").mock(return_value=envelope("mesh_overloaded", 503))
    with pytest.raises(MeshOverloadedError):
        await call(child.workers.list)
    assert route.call_count == 2
    await call(child.close)


async def test_post_retried_only_when_never_sent(mclient: Any) -> None:
    ack = {"message": "Task dispatched to P2P mesh.", "status": "queued", "task_id": "task_x"}
    refused = mclient.mock.post("/api/execute/async").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(202, json=ack)]
    )
    assert (await call(mclient.tasks.submit_async, worker_id=PEER, prompt="x")).task_id == "task_x"
    assert refused.call_count == 2
    broken = mclient.mock.post("/v1/chat/completions").mock(
        side_effect=httpx.ReadError("reset after send")
    )
    with pytest.raises(GatewayConnectionError):
        await call(
            mclient.openai.chat.completions.create,
            model=PEER,
            messages=[{"role": "user", "content": "x"}],
        )
    assert broken.call_count == 1


async def test_non_stream_chat_502_is_not_retried(mclient: Any) -> None:
    route = mclient.mock.post("/v1/chat/completions").mock(
        return_value=envelope("worker_stream_failed", 502)
    )
    with pytest.raises(WorkerStreamError):
        await call(
            mclient.openai.chat.completions.create,
            model=PEER,
            messages=[{"role": "user", "content": "x"}],
        )
    assert route.call_count == 1


async def test_malformed_bodies_never_leak_json_or_pydantic_errors(mclient: Any) -> None:
    mclient.mock.get("/api/workers").respond(200, text="{nope")
    with pytest.raises(GatewayProtocolError):
        await call(mclient.workers.list)
    mclient.mock.get("/v1/models").respond(200, json={"object": "list", "data": [{"id": 3}]})
    with pytest.raises(GatewayProtocolError):
        await call(mclient.openai.models.list)
    mclient.mock.post("/api/execute/async").respond(202, json={"nope": True})
    with pytest.raises(GatewayProtocolError):
        await call(mclient.tasks.submit_async, worker_id=PEER, prompt="x")


async def test_hostile_artifact_keeps_the_text(mclient: Any, tmp_path: Path) -> None:
    from agentfm import ArtifactError

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../escape.txt", "gotcha")
    execute(mclient, b"here you go\n\n[AGENTFM: FILES_INCOMING]\n")
    mclient.mock.get("/api/artifacts/task_evil").respond(200, content=evil.read_bytes())
    with pytest.raises(ArtifactError) as info:
        await call(mclient.tasks.run, worker_id=PEER, prompt="x", task_id="task_evil")
    assert info.value.result.text == "here you go\n"
    assert info.value.task_started
    assert not (tmp_path / "escape.txt").exists()
    assert not any(p.name.startswith(".task_evil") for p in (tmp_path / "a").iterdir())
