"""``HTTP_PROXY``/``NO_PROXY`` and ``proxy=`` are honoured on every path (issue #15 item 4).

The SDK passes its own transport to httpx, which makes httpx skip the environment; the
proxy is resolved by the SDK instead. A loopback "proxy" records each request line (a
proxied request names the absolute URL) and answers it like the task route, so a call
that succeeds through it proves it went through it: the gateway host does not resolve.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentfm import AgentFMClient, AgentFMError, AsyncAgentFMClient
from tests.helpers import call
from tests.sdk.faults._servers import HeadRecorder

PEER = "12D3KooWJ6Pdbw5PtW1C8y1sViuqoKzeHiKbxz2cNYqeCgnG4yPx"
GATEWAY = "http://gateway.invalid:8080"  # .invalid never resolves (RFC 6761)
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARS, "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def through_proxy(heads: list[bytes]) -> list[bytes]:
    return [h.split(b"\r\n")[0] for h in heads if b" http://gateway.invalid:8080/" in h]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_http_proxy_from_the_environment_is_used(
    flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    with HeadRecorder() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client: Any = cls(GATEWAY, api_key=None, retries=0)
        try:
            assert (await call(client.tasks.run, worker_id=PEER, prompt="x")).text == "ok\n"
            results = await call(client.tasks.scatter, ["a", "b"], peer_ids=[PEER])
            assert [r.text for r in results] == ["ok\n", "ok\n"]
        finally:
            await call(client.close)
    lines = through_proxy(proxy.heads)
    assert lines.count(b"POST http://gateway.invalid:8080/api/execute HTTP/1.1") == 3


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_the_proxy_option_wins_and_no_proxy_bypasses(
    flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    with HeadRecorder() as proxy:
        client: Any = cls(GATEWAY, api_key=None, retries=0, proxy=proxy.url)
        try:
            assert (await call(client.tasks.run, worker_id=PEER, prompt="x")).text == "ok\n"
        finally:
            await call(client.close)
        assert len(through_proxy(proxy.heads)) == 1
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "gateway.invalid")
        direct: Any = cls(GATEWAY, api_key=None, retries=0)
        try:
            with pytest.raises(AgentFMError):  # direct: the name does not resolve
                await call(direct.tasks.run, worker_id=PEER, prompt="x")
        finally:
            await call(direct.close)
    assert len(through_proxy(proxy.heads)) == 1


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_an_injected_http_client_sees_every_request(flavour: str) -> None:
    import httpx

    seen: list[str] = []
    with HeadRecorder() as server:
        if flavour == "sync":
            http: Any = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
            client: Any = AgentFMClient(server.url, api_key=None, retries=0, http_client=http)
        else:

            async def hook(request: httpx.Request) -> None:
                seen.append(request.url.path)

            http = httpx.AsyncClient(event_hooks={"request": [hook]})
            client = AsyncAgentFMClient(server.url, api_key=None, retries=0, http_client=http)
        try:
            assert (await call(client.tasks.run, worker_id=PEER, prompt="x")).text == "ok\n"
            results = await call(client.tasks.scatter, ["a", "b"], peer_ids=[PEER])
            assert [r.text for r in results] == ["ok\n", "ok\n"]
        finally:
            await call(client.close)
            assert not http.is_closed  # the caller's client: the caller closes it
            await call(http.close if flavour == "sync" else http.aclose)
    assert seen.count("/api/execute") == 3
    assert len([h for h in server.heads if h.startswith(b"POST /api/execute ")]) == 3


async def test_max_connections_is_a_real_cap() -> None:
    import asyncio

    import httpx

    from agentfm._transport import AsyncShardedTransport

    opened = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        transport = AsyncShardedTransport(max_connections=5)
        async with httpx.AsyncClient(transport=transport) as http:
            replies = await asyncio.gather(*(http.get(url) for _ in range(12)))
        assert [r.text for r in replies] == ["ok"] * 12
    finally:
        server.close()
        await server.wait_closed()
    assert opened <= 5  # was 8: two shards of 4
