"""Retrieval-augmented generation with `AgentFM` as the LLM: BM25 locally, no downloads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever

from agentfm_integrations.llama_index import AgentFM

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

CORPUS = [
    "The lighthouse keeper of Skerryvore logs the tide at dawn with a brass gauge.",
    "Quokkas live on Rottnest Island and are famous for appearing to smile.",
    "A sourdough starter needs flour, water and regular feeding to stay active.",
    "Basalt columns at the Giant's Causeway formed when lava cooled slowly.",
]


def _engine(llm: AgentFM) -> RetrieverQueryEngine:
    nodes = [TextNode(text=text) for text in CORPUS]
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=1)
    return RetrieverQueryEngine.from_args(retriever, llm=llm)


def test_query_engine_sends_retrieved_context_to_the_agent(demo_mesh: EmbeddedMesh) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url)
    response = _engine(llm).query("Where do quokkas live?")
    # The echo agent answers with the prompt it received: the retrieved node must be in it,
    # and a node BM25 did not pick must not.
    assert "Rottnest Island" in str(response)
    assert "Skerryvore" not in str(response)
    assert [n.node.get_content() for n in response.source_nodes] == [CORPUS[1]]
    llm.close()


async def test_async_query_engine(demo_mesh: EmbeddedMesh) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url)
    response = await _engine(llm).aquery("How did the basalt columns form?")
    assert "lava cooled slowly" in str(response)
    assert "sourdough" not in str(response)
    await llm.aclose()
