"""What the README tells a new user, checked against what the code does."""

from __future__ import annotations

import itertools
import socket
from typing import TYPE_CHECKING

import pytest

from agentfm import AgentFMClient, GatewayConnectionError, WorkerRejectedError
from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._openai import flatten_messages
from agentfm.mesh.demo_agents import last_user_turn
from tests.apps._helpers import REPO

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

README = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())


# -- the echo agent on chat routes -------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "turn"),
    [
        ([("user", "hello")], "hello"),
        ([("system", "S"), ("user", "Hi")], "Hi"),
        ([("user", "one"), ("assistant", "two"), ("user", "three\n\nlines")], "three\n\nlines"),
        ([("system", "only a system turn")], "only a system turn"),
        ([("user", "")], ""),
    ],
)
def test_echo_finds_the_last_user_turn_of_the_gateway_flattening(
    messages: list[tuple[str, str]], turn: str
) -> None:
    assert last_user_turn(flatten_messages(messages)) == turn


@pytest.mark.parametrize("prompt", ["plain prompt", "hello\n\nassistant:", "user: no end"])
def test_echo_repeats_anything_else_whole(prompt: str) -> None:
    assert last_user_turn(prompt) is None


def test_readme_echo_example_is_what_chat_agentfm_returns(demo_mesh: EmbeddedMesh) -> None:
    from agentfm_integrations.langchain import ChatAgentFM

    llm = ChatAgentFM(model="echo", gateway_url=demo_mesh.url, api_key=None)
    answers = llm.batch(["one", "two", "three"])
    assert [a.content for a in answers] == ["one\n", "two\n", "three\n"]
    assert "print([a.content for a in answers]) # ['one\\n', 'two\\n', 'three\\n']" in README
    assert llm.invoke("one").content == "one\n"


# -- ChatAgentFM raises LangChain's errors, the SDK's as __cause__ ------------------------


def test_chat_agentfm_errors_are_langchain_model_errors_with_the_sdk_cause() -> None:
    from langchain_core.exceptions import ModelConnectionError

    from agentfm_integrations.langchain import ChatAgentFM

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = ChatAgentFM(
        model="echo", gateway_url=f"http://127.0.0.1:{port}", api_key=None, max_retries=0
    )
    with pytest.raises(ModelConnectionError) as caught:
        llm.invoke("hi")
    assert isinstance(caught.value.__cause__, GatewayConnectionError)
    assert "raise `langchain_core.exceptions` classes (`ModelConnectionError`" in README
    assert "the `agentfm` error is the `__cause__`" in README
    api = " ".join((REPO / "api.md").read_text(encoding="utf-8").split())
    assert "with the `agentfm` error as `__cause__`" in api
    assert "| `GatewayConnectionError` | `ModelConnectionError` |" in api


# -- the failover rule --------------------------------------------------------------------


async def _refuse(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    # What a real worker at capacity sends: one rejection line, no end-of-task marker.
    yield f"❌ ERROR: worker at max capacity ({ctx.task_id})\n"
    raise BreakStream


@pytest.fixture(scope="module")
def refusing_mesh() -> Iterator[EmbeddedMesh]:
    workers = [
        WorkerConfig(f"no{i}", "refuse", CallableAgent(_refuse), max_tasks=4, seed=f"fr:{i}")
        for i in range(2)
    ]
    with EmbeddedMesh(workers, api_keys=[]) as mesh:
        yield mesh


def test_failover_goes_to_untried_peers_then_back_to_a_tried_one(
    refusing_mesh: EmbeddedMesh,
) -> None:
    # README: "to a peer it has not tried while there is one, else (every peer tried) to a
    # tried one other than the last, after a short backoff; with a single peer, that peer
    # gets the prompt again".
    assert "to a peer it has not tried while there is one, else (every peer tried)" in README
    assert "with a single peer, that peer gets the prompt again" in README
    a, b = (w.peer_id for w in refusing_mesh.workers)
    with AgentFMClient(refusing_mesh.url, api_key=None) as client:
        (two,) = client.tasks.scatter(["x"], peer_ids=[a, b], max_retries=3)
        (one,) = client.tasks.scatter(["x"], peer_ids=[a], max_retries=2)
    assert not two.ok
    assert isinstance(two.exception, WorkerRejectedError)
    assert two.attempts == 4
    tried = two.peers_tried
    assert sorted(tried[:2]) == sorted([a, b])  # every peer once first
    assert all(x != y for x, y in itertools.pairwise(tried))  # never the last again
    assert not one.ok
    assert one.peers_tried == [a, a, a]


# -- LlamaIndex on the extractive summarizer ----------------------------------------------


def test_llamaindex_query_engine_on_the_summarizer_answers_from_the_context(
    demo_mesh: EmbeddedMesh,
) -> None:
    from llama_index.core import PromptTemplate
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever  # type: ignore[import-untyped]

    from agentfm_integrations.llama_index import AgentFM

    passages = [
        "Scatter retries a failed prompt on a peer it has not tried yet.",
        "Artifacts are zipped by the worker and extracted per task.",
        "Webhooks are signed with HMAC-SHA256 when a secret is set.",
    ]
    retriever = BM25Retriever.from_defaults(
        nodes=[TextNode(text=t) for t in passages], similarity_top_k=1
    )
    llm = AgentFM(model="summarizer", gateway_url=demo_mesh.url)
    question = "What does scatter do with a failed prompt?"
    # The README's recipe: only the retrieved passages reach the extractive summarizer.
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=llm, text_qa_template=PromptTemplate("{context_str}")
    )
    assert str(engine.query(question)).strip() == passages[0]
    # Without it the summarizer gets LlamaIndex's default QA prompt and extracts from that,
    # which is why the README spells the recipe out.
    default = str(RetrieverQueryEngine.from_args(retriever, llm=llm).query(question))
    assert "context information" in default.lower()
    assert (
        'RetrieverQueryEngine.from_args(retriever, llm=AgentFM(model="summarizer"), '
        'text_qa_template=PromptTemplate("{context_str}"))' in README
    )
