"""/v1/chat/completions and /v1/completions: raw wire checks and the official openai package."""

from __future__ import annotations

import json
import re
import threading

import httpx
import openai
import pytest

from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._openai import flatten_messages

ENVELOPE_CT = "application/json"


def sse_events(body: bytes) -> list[str]:
    """Split an SSE body into its data payloads, asserting the exact framing."""
    assert body.endswith(b"data: [DONE]\n\n")
    frames = body.decode().split("\n\n")
    assert frames[-1] == ""
    out = []
    for frame in frames[:-1]:
        assert frame.startswith("data: ")
        assert "\n" not in frame
        out.append(frame[len("data: ") :])
    return out


def envelope(resp: httpx.Response, status: int, err_type: str, code: str) -> str:
    assert resp.status_code == status
    assert resp.headers["content-type"] == ENVELOPE_CT
    assert resp.content.endswith(b"}\n")
    body = resp.json()
    assert list(body["error"]) == ["message", "type", "code"]
    assert body["error"]["type"] == err_type
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_flattening_exact() -> None:
    assert (
        flatten_messages([("system", "S"), ("user", "Hi"), ("", "anon"), ("assistant", "")])
        == "system: S\n\nuser: Hi\n\nuser: anon\n\nassistant:"
    )


def test_chat_non_stream_body(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions",
        json={
            "model": "echo",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
            "temperature": 0.2,
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", body["id"])
    assert body["object"] == "chat.completion"
    # The echo agent returns the flattened prompt; the marker line is dropped.
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "system: S\n\nuser: Hi\n\nassistant:\n\n"},
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_chat_stream_framing(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = http.post(
        "/v1/chat/completions",
        json={"model": " LINES ", "stream": True, "messages": [{"content": "a b"}]},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-accel-buffering"] == "no"
    payloads = sse_events(resp.content)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["model"] == " LINES " for c in chunks)
    assert all(c["agentfm_peer_id"] == mesh.peer_id("lines") for c in chunks)
    assert all(re.fullmatch(r"task_[0-9a-f]{24}", c["agentfm_task_id"]) for c in chunks)
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks]
    # "user: a b\n\nassistant:" split into words by the lines agent, marker dropped.
    assert deltas == [
        ({"role": "assistant", "content": ""}, None),
        ({"role": "", "content": "user:\n"}, None),
        ({"role": "", "content": "a\n"}, None),
        ({"role": "", "content": "b\n"}, None),
        ({"role": "", "content": "assistant:\n"}, None),
        ({"role": "", "content": "\n"}, None),
        ({"role": "", "content": ""}, "stop"),
    ]
    assert list(chunks[0]) == [
        "id", "object", "created", "model", "choices", "agentfm_peer_id", "agentfm_task_id",
    ]  # fmt: skip


def test_completions_stream_and_non_stream(http: httpx.Client) -> None:
    resp = http.post("/v1/completions", json={"model": "echo-engine", "prompt": "x\r\ny"})
    body = resp.json()
    assert re.fullmatch(r"cmpl-[0-9a-f]{24}", body["id"])
    assert body["object"] == "text_completion"
    # CR stripped and each line re-terminated in the non-stream answer.
    assert body["choices"] == [{"index": 0, "text": "x\ny\n\n", "finish_reason": "stop"}]
    resp = http.post(
        "/v1/completions", json={"model": "echo-engine", "prompt": "p", "stream": True}
    )
    chunks = [json.loads(p) for p in sse_events(resp.content)[:-1]]
    assert [c["choices"][0] for c in chunks] == [
        {"index": 0, "text": "p\n", "finish_reason": None},
        {"index": 0, "text": "\n", "finish_reason": None},
        {"index": 0, "text": "", "finish_reason": "stop"},
    ]
    assert all("agentfm_peer_id" not in c for c in chunks)


def test_stream_error_in_band(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions",
        json={"model": "reset", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 200
    chunks = [json.loads(p) for p in sse_events(resp.content)[:-1]]
    assert chunks[-2]["choices"][0]["delta"]["content"] == "before reset\n"
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {"role": "", "content": "\n[stream error: stream reset]\n"},
        "finish_reason": "stop",
    }


def test_non_stream_read_failure_is_502(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions", json={"model": "reset", "messages": [{"content": "x"}]}
    )
    msg = envelope(resp, 502, "server_error", "worker_stream_failed")
    assert msg == "worker stream read failed: stream reset"


@pytest.mark.parametrize(
    ("route", "body", "status", "code", "message"),
    [
        ("chat", b"{", 400, "invalid_request_error", "invalid JSON payload"),
        ("chat", b'{"model": "echo", "messages": [{"content": ["part"]}]}', 400,
         "invalid_request_error", "invalid JSON payload"),
        ("chat", b'{"model": "echo", "stream": "yes", "messages": []}', 400,
         "invalid_request_error", "invalid JSON payload"),
        ("chat", b'{"model": "  ", "messages": []}', 400, "model_required",
         "field 'model' is required"),
        ("chat", b'{"model": "echo", "messages": []}', 400, "prompt_required",
         "field 'messages' must contain at least one message"),
        ("text", b'{"model": "echo"}', 400, "prompt_required", "field 'prompt' is required"),
        ("text", b'{"model": "echo", "prompt": " "}', 400, "prompt_required",
         "field 'prompt' must not be empty"),
        ("text", b'{"model": "echo", "prompt": ["a"]}', 400, "unsupported_prompt_type",
         "array form of 'prompt' is not supported in this build; pass a single string"),
        ("text", b'{"model": "echo", "prompt": 5}', 400, "unsupported_prompt_type",
         "field 'prompt' must be a string"),
    ],
)  # fmt: skip
def test_validation_errors(
    http: httpx.Client, route: str, body: bytes, status: int, code: str, message: str
) -> None:
    path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
    resp = http.post(path, content=body)
    assert envelope(resp, status, "invalid_request_error", code) == message


def test_method_not_allowed(http: httpx.Client) -> None:
    for path in ("/v1/chat/completions", "/v1/completions"):
        msg = envelope(http.get(path), 405, "invalid_request_error", "method_not_allowed")
        assert msg == "POST only"


def test_model_not_found(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": [{"content": "x"}]}
    )
    msg = envelope(resp, 404, "invalid_request_error", "model_not_found")
    assert msg.startswith("model 'gpt-4' not available on this mesh.")


def test_matcher_tiers_and_least_loaded() -> None:
    from agentfm.mesh._openai import MeshOverloaded, ModelNotFound, pick_worker

    mk = lambda name, engine: EmbeddedMesh()._make_worker(  # noqa: E731
        WorkerConfig(name, engine, CallableAgent(lambda p, c: p), max_tasks=2)
    )
    a, b, c = mk("alpha", "llama"), mk("beta", "llama"), mk("llama", "other")
    cpu = lambda w: 0.0  # noqa: E731
    assert pick_worker([a, b, c], a.peer_id, cpu) is a  # tier 1: exact peer id
    assert pick_worker([a, b, c], "LLAMA", cpu) is c  # tier 2 (name) beats tier 3 (engine)
    c.current_tasks = 2
    with pytest.raises(MeshOverloaded):  # the first non-empty tier is used exclusively
        pick_worker([a, b, c], "llama", cpu)
    a.current_tasks = 1
    assert pick_worker([a, b], "Llama", cpu) is b  # least loaded engine match
    with pytest.raises(ModelNotFound):
        pick_worker([a, b, c], "nothing", cpu)
    with pytest.raises(ModelNotFound):
        pick_worker([a, b, c], " ", cpu)


def test_mesh_overloaded_503(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    started = threading.Event()

    def occupy() -> None:
        with (
            httpx.Client(base_url=mesh.url, timeout=30) as c,
            c.stream(
                "POST", "/api/execute", json={"worker_id": mesh.peer_id("slow"), "prompt": "0.5"}
            ) as resp,
        ):
            it = resp.iter_raw()
            next(it)
            started.set()
            b"".join(it)

    thread = threading.Thread(target=occupy)
    thread.start()
    assert started.wait(10)
    resp = http.post("/v1/chat/completions", json={"model": "slow", "messages": [{"content": "1"}]})
    msg = envelope(resp, 503, "server_error", "mesh_overloaded")
    assert msg == "all workers matching model 'slow' are at capacity"
    assert "retry-after" not in resp.headers
    thread.join(10)


# -- the official openai package ---------------------------------------------------------
@pytest.fixture
def oai(mesh: EmbeddedMesh) -> openai.OpenAI:
    return openai.OpenAI(base_url=mesh.url + "/v1", api_key="unused", max_retries=0)


def test_openai_models_list(oai: openai.OpenAI, mesh: EmbeddedMesh) -> None:
    ids = [m.id for m in oai.models.list()]
    assert ids == [w.peer_id for w in mesh.workers]


def test_openai_chat_non_stream(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="echo", messages=[{"role": "user", "content": "Hi"}])
    assert resp.choices[0].message.content == "user: Hi\n\nassistant:\n\n"
    assert resp.choices[0].finish_reason == "stop"


def test_openai_chat_stream(oai: openai.OpenAI, mesh: EmbeddedMesh) -> None:
    stream = oai.chat.completions.create(
        model="lines", messages=[{"role": "user", "content": "one two"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "user:\none\ntwo\nassistant:\n\n"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[0].model_extra == {
        "agentfm_peer_id": mesh.peer_id("lines"),
        "agentfm_task_id": chunks[0].model_extra["agentfm_task_id"],
    }


def test_openai_completions(oai: openai.OpenAI) -> None:
    resp = oai.completions.create(model="echo", prompt="plain")
    assert resp.choices[0].text == "plain\n\n"
    streamed = "".join(
        c.choices[0].text for c in oai.completions.create(model="echo", prompt="s", stream=True)
    )
    assert streamed == "s\n\n"


def test_openai_errors_are_typed(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        oai.completions.create(model="echo", prompt=" ")


async def test_async_openai_client(mesh: EmbeddedMesh) -> None:
    client = openai.AsyncOpenAI(base_url=mesh.url + "/v1", api_key="unused", max_retries=0)
    async with client:
        resp = await client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "async"}]
        )
        assert resp.choices[0].message.content == "user: async\n\nassistant:\n\n"


def test_proxy_agent_against_fake_openai_server() -> None:
    """OpenAIProxyAgent streams tokens from an OpenAI-compatible upstream (here: a second mesh)."""
    from agentfm.mesh import OpenAIProxyAgent

    async def tokens(prompt: str, ctx: AgentContext) -> str:
        return f"upstream saw [{prompt}]"

    upstream = EmbeddedMesh([WorkerConfig("llm", "tiny", CallableAgent(tokens))], api_keys=[])
    with upstream:
        proxy = OpenAIProxyAgent(upstream.url + "/v1", "tiny", api_key="k")
        with EmbeddedMesh([WorkerConfig("proxy", "tiny-proxy", proxy)], api_keys=[]) as front:
            resp = httpx.post(
                front.url + "/api/execute",
                json={"worker_id": front.peer_id("proxy"), "prompt": "hello"},
                timeout=30,
            )
    # The upstream flattens the single user message and answers line by line.
    assert resp.content == b"upstream saw [user: hello\n\nassistant:]\n\n[AGENTFM: NO_FILES]\n"
