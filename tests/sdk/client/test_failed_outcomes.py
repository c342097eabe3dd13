"""A task that failed on the worker is never a success, on every path (protocol §5.4).

The worker writes ``⚠️  Sandbox exited: <err>`` and then its *normal* marker when the agent
exits non-zero or is killed, and ``❌ Failed to start task: <err>`` (then ``NO_FILES``) when
it cannot start it. The embedded mesh runs real subprocess agents that do exactly that: one
exits 3, one is killed by its timeout, one cannot start. Each must be a typed failure in
``tasks.run``, ``tasks.stream`` (raised at the end), scatter (a failed result, one per
input), the OpenAI namespace, the CLI's exit code, LangChain and LlamaIndex.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

import agentfm
from agentfm import AgentExitError, AgentFMClient, TaskFailedError, TaskStartError
from agentfm.cli import main
from agentfm.mesh import CallableAgent, CommandAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call, collect

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from agentfm.mesh import AgentContext

EXIT3 = "import sys; print('partial output', flush=True); sys.exit(3)"
SLEEPER = "import time; print('started', flush=True); time.sleep(60)"

# name -> (expected class, check on the error)
KINDS = ["exit3", "killed", "nostart"]


def _echo(prompt: str, ctx: AgentContext) -> str:
    return f"fine: {prompt}\n"


@pytest.fixture(scope="module")
def failing_mesh() -> Iterator[EmbeddedMesh]:
    workers = [
        WorkerConfig("exit3", "exit3", CommandAgent([sys.executable, "-c", EXIT3]), max_tasks=8),
        WorkerConfig(
            "killed",
            "killed",
            CommandAgent([sys.executable, "-c", SLEEPER], timeout=0.5),
            max_tasks=8,
        ),
        WorkerConfig(
            "nostart", "nostart", CommandAgent(["/nonexistent/agentfm-test-agent"]), max_tasks=8
        ),
        WorkerConfig("fine", "fine", CallableAgent(_echo), max_tasks=8),
    ]
    with EmbeddedMesh(workers, api_keys=[]) as mesh:
        yield mesh


@pytest.fixture(params=["sync", "async"])
async def fclient(request: pytest.FixtureRequest, failing_mesh: EmbeddedMesh) -> Any:
    if request.param == "sync":
        with AgentFMClient(failing_mesh.url, api_key=None, routing_warning=False) as c:
            yield c
    else:
        async with agentfm.AsyncAgentFMClient(
            failing_mesh.url, api_key=None, routing_warning=False
        ) as c:
            yield c


def check_failure(exc: BaseException, kind: str, peer: str | None = None) -> None:
    """Assert ``exc`` is the typed failure of ``kind``, with its detail and text kept."""
    assert isinstance(exc, TaskFailedError), repr(exc)
    assert not isinstance(exc, agentfm.IncompleteStreamError)
    assert exc.exit_detail
    assert exc.task_started
    if peer is not None:
        assert exc.peer_id == peer
    if kind == "exit3":
        assert isinstance(exc, AgentExitError)
        assert exc.exit_code == 3
        assert not exc.killed
        assert exc.text == "partial output\n"
    elif kind == "killed":
        assert isinstance(exc, AgentExitError)
        assert exc.killed
        assert exc.signal == "killed"
        assert exc.exit_code is None
        assert "Sandbox exited" not in exc.text
    else:
        assert isinstance(exc, TaskStartError)
        assert "No such file" in exc.exit_detail
        assert exc.text == ""


@pytest.mark.parametrize("kind", KINDS)
async def test_run_raises_the_typed_failure(
    fclient: Any, failing_mesh: EmbeddedMesh, kind: str
) -> None:
    peer = failing_mesh.peer_id(kind)
    with pytest.raises(TaskFailedError) as caught:
        await call(fclient.tasks.run, worker_id=peer, prompt="go")
    check_failure(caught.value, kind, peer)
    assert (caught.value.task_id or "").startswith("task_")


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_yields_the_text_then_raises_at_the_end(
    fclient: Any, failing_mesh: EmbeddedMesh, kind: str
) -> None:
    stream = fclient.tasks.stream(worker_id=failing_mesh.peer_id(kind), prompt="go")
    texts: list[str] = []

    async def drain() -> None:
        if hasattr(stream, "__aiter__"):
            async with stream:
                async for chunk in stream:
                    texts.append(chunk.text)
        else:
            with stream:
                texts.extend(chunk.text for chunk in stream)

    with pytest.raises(TaskFailedError) as caught:
        await drain()
    check_failure(caught.value, kind)
    if kind == "exit3":
        assert "".join(texts).startswith("partial output\n")


async def test_routed_run_fails_over_a_crashed_agent_within_max_retries(
    fclient: Any, failing_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentfm import _routing

    order = [failing_mesh.peer_id("exit3"), failing_mesh.peer_id("fine")]
    monkeypatch.setattr(_routing, "order_peers", lambda *_a, **_k: order)
    monkeypatch.setattr(fclient.workers, "match", _all_workers(fclient))
    result = await call(fclient.tasks.run, model="any", prompt="hi", max_retries=1)
    assert result.text == "fine: hi\n"
    assert result.peers_tried == order
    with pytest.raises(AgentExitError):
        await call(fclient.tasks.run, model="any", prompt="hi", max_retries=0)


def _all_workers(client: Any) -> Any:
    # Every worker "matches", in the order the patched planner decides.
    return lambda model, **_kw: client.workers.list()


@pytest.mark.parametrize("path", ["lean", "httpx"])
async def test_scatter_gives_one_failed_result_per_input(
    fclient: Any, failing_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "httpx":
        monkeypatch.setattr("agentfm._fast_path.supports", lambda url, **_: False)
    for kind in KINDS:
        peer = failing_mesh.peer_id(kind)
        prompts = [f"p{i}" for i in range(5)]
        results = await call(fclient.tasks.scatter, prompts, peer_ids=[peer], max_retries=0)
        assert [r.index for r in results] == list(range(5))
        assert [r.prompt for r in results] == prompts
        assert all(r.status == "failed" and not r.ok for r in results), kind
        for r in results:
            assert r.exception is not None
            check_failure(r.exception, kind, peer)
            assert r.exception.exit_detail in (r.error or "")
            assert r.text == r.exception.text
            assert r.attempts == 1


async def test_scatter_retries_a_crashed_agent_on_another_peer(
    fclient: Any, failing_mesh: EmbeddedMesh
) -> None:
    peers = [failing_mesh.peer_id("exit3"), failing_mesh.peer_id("fine")]
    results = await call(fclient.tasks.scatter, ["a", "b", "c", "d"], peer_ids=peers, max_retries=1)
    assert [r.status for r in results] == ["success"] * 4
    assert all(r.worker_id == peers[1] for r in results)
    retried = [r for r in results if r.attempts == 2]
    assert all(r.peers_tried == peers for r in retried)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_namespace_raises_the_typed_failure(
    fclient: Any, failing_mesh: EmbeddedMesh, stream: bool
) -> None:
    messages = [{"role": "user", "content": "go"}]

    async def complete(peer: str) -> None:
        create = fclient.openai.chat.completions.create
        created = await call(create, model=peer, messages=messages, stream=stream)
        if stream:
            await collect(created)

    for kind in KINDS:
        with pytest.raises(TaskFailedError) as caught:
            await complete(failing_mesh.peer_id(kind))
        assert caught.value.exit_detail
        if kind == "exit3":
            assert isinstance(caught.value, AgentExitError)
            assert caught.value.exit_code == 3
            assert caught.value.text.strip() == "partial output"
    ok = await call(
        fclient.openai.completions.create, model=failing_mesh.peer_id("fine"), prompt="x"
    )
    assert ok.choices[0].text.startswith("fine: x")


@pytest.mark.parametrize("kind", KINDS)
def test_cli_run_exits_1(
    failing_mesh: EmbeddedMesh,
    kind: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("AGENTFM_API_KEY", raising=False)
    argv = ["--gateway", failing_mesh.url, "run", "--peer", failing_mesh.peer_id(kind), "go"]
    code = main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "the task failed" in err
    ok = main(["--gateway", failing_mesh.url, "run", "--model", "fine", "go"])
    assert ok == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_langchain_raises_with_the_typed_cause(
    failing_mesh: EmbeddedMesh, kind: str, tmp_path: Path
) -> None:
    from langchain_core.exceptions import LangChainException

    from agentfm_integrations.langchain import AgentFMLLM, ChatAgentFM

    settings = {"gateway_url": failing_mesh.url, "api_key": None, "max_retries": 0}
    chat = ChatAgentFM(model=kind, artifacts_dir=str(tmp_path), **settings)
    try:
        for run in (
            lambda: chat.invoke("go"),
            lambda: list(chat.stream("go")),
            lambda: chat.batch(["go", "again"]),
            lambda: AgentFMLLM(model=kind, **settings).invoke("go"),
        ):
            with pytest.raises(LangChainException) as caught:
                run()
            check_failure(caught.value.__cause__, kind)  # type: ignore[arg-type]
        with pytest.raises(LangChainException) as acaught:
            await chat.ainvoke("go")
        check_failure(acaught.value.__cause__, kind)  # type: ignore[arg-type]
    finally:
        chat.close()  # no socket left for a later test's warning capture


@pytest.mark.parametrize("kind", KINDS)
async def test_llama_index_raises_the_typed_failure(
    failing_mesh: EmbeddedMesh, kind: str, tmp_path: Path
) -> None:
    from agentfm_integrations.llama_index import AgentFM

    llm = AgentFM(
        model=kind, gateway_url=failing_mesh.url, max_retries=0, artifacts_dir=str(tmp_path)
    )
    try:
        with pytest.raises(TaskFailedError) as caught:
            llm.complete("go")
        check_failure(caught.value, kind)
        with pytest.raises(TaskFailedError) as caught:
            list(llm.stream_complete("go"))
        check_failure(caught.value, kind)
        with pytest.raises(TaskFailedError) as caught:
            await llm.acomplete("go")
        check_failure(caught.value, kind)
    finally:
        llm.close()
        await llm.aclose()
