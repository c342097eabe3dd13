"""LlamaIndex: retrieval-augmented answers with the mesh as the LLM.

BM25 retrieval (no embeddings, no downloads) over a tiny in-memory corpus; the
``summarizer`` demo agent writes the answer from the retrieved text. It is extractive (no
model): it picks sentences from whatever it is given, so it gets only the retrieved
passages instead of LlamaIndex's QA instructions. Point ``model`` at a worker running a
real LLM and drop ``text_qa_template`` for real answers.
Run it: ``python cookbook/08_llamaindex_rag.py``.
"""

from __future__ import annotations

from _gateway import gateway
from llama_index.core import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever

from agentfm import AgentFMClient
from agentfm_integrations.llama_index import AgentFM

DOCS = {
    "scatter": "Scatter sends many prompts to many workers and retries a failed prompt on a peer not yet tried.",
    "artifacts": "Files written by an agent are zipped by the worker and extracted per task by the SDK.",
    "webhooks": "Async tasks call a webhook when done; the body is signed with HMAC-SHA256.",
    "routing": "The gateway routes by peer id, then agent name, then engine, least loaded first.",
}


def main() -> None:
    # The doc name is for us (sources below), not for the LLM's input.
    nodes = [
        TextNode(text=text, metadata={"doc": name}, excluded_llm_metadata_keys=["doc"])
        for name, text in DOCS.items()
    ]
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=2)

    with gateway():
        # Pin the worker by peer id. A name also works ("summarizer"): each call then goes to
        # the least loaded worker of that name, so answers may come from different peers.
        with AgentFMClient() as client:
            summarizer = client.workers.match("summarizer")[0].peer_id
        llm = AgentFM(model=summarizer)  # gateway: AGENTFM_GATEWAY_URL
        engine = RetrieverQueryEngine.from_args(
            retriever, llm=llm, text_qa_template=PromptTemplate("{context_str}")
        )
        response = engine.query("What does scatter do when a worker fails?")

    print(f"answer: {str(response).strip()}")
    for hit in response.source_nodes:
        print(f"source: {hit.node.metadata['doc']} (score {hit.score:.2f})")


if __name__ == "__main__":
    main()
