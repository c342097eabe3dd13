"""The steps of the tour: discovery, streaming, LangChain (chain, batch, tool), LlamaIndex RAG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from agentfm_integrations.demo._report import peer_cell, short
from agentfm_integrations.demo._settings import CORPUS, RAG_QUESTION

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.language_models import LanguageModelInput
    from rich.console import Console

    from agentfm import AgentFMClient
    from agentfm_integrations.demo._report import Report


def show_workers(console: Console, client: AgentFMClient, flaky: set[str]) -> None:
    table = Table(title=f"Workers on {client.gateway_url}", title_justify="left")
    for column in ("agent", "engine", "load", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("peer id", no_wrap=True)
    table.add_column("note", overflow="fold")
    for w in client.workers.list():
        note = "refuses every task" if w.peer_id in flaky else w.description
        table.add_row(
            w.name,
            w.engine,
            f"{w.current_tasks}/{w.max_tasks}",
            w.status,
            peer_cell(console, w.peer_id),
            note,
        )
    console.print(table)


def stream_task(console: Console, client: AgentFMClient, peer_id: str, report: Report) -> None:
    console.print(f"[bold]Streaming[/] a task from echo {short(peer_id)}:")
    prompt = "first line\nsecond line\nthird line"
    with client.tasks.stream(worker_id=peer_id, prompt=prompt) as stream:
        for chunk in stream:
            if chunk.text.strip():
                console.print(f"  [cyan]│[/] {chunk.text.rstrip()}")
    report.tasks_per_peer[peer_id] += 1


def langchain_chain(console: Console, gateway: str, model: str, label: str, report: Report) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from agentfm_integrations.langchain import ChatAgentFM

    prompt = ChatPromptTemplate.from_messages(
        [("human", "Summarize for a new user in three sentences:\n\n{text}")]
    )
    chain = prompt | ChatAgentFM(model=model, gateway_url=gateway) | StrOutputParser()
    answer = chain.invoke({"text": " ".join(text for _, text in CORPUS)})
    console.print(f"[bold]LangChain chain[/] ({label}):")
    for line in answer.strip().splitlines():
        console.print(f"  [cyan]│[/] {line}")
    report.tasks_per_peer[model] += 1


def langchain_batch(
    console: Console, gateway: str, peers: Sequence[str], count: int, report: Report
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    from agentfm_integrations.langchain import ChatAgentFM

    prompts: list[LanguageModelInput] = [
        f"Question {i + 1}: what is {i + 1} squared?" for i in range(count)
    ]
    llm = ChatAgentFM(model="echo", gateway_url=gateway)

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("ChatAgentFM.batch (scatter)", total=count)

        class _Advance(BaseCallbackHandler):
            """Moves the bar as each prompt of the batch finishes, whatever its outcome."""

            def on_llm_end(self, response: Any, **kwargs: Any) -> None:
                progress.advance(bar)

            def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
                progress.advance(bar)

        results = llm.batch(prompts, config={"callbacks": [_Advance()]}, return_exceptions=True)

    for result in results:
        if isinstance(result, BaseException):
            report.failed_prompts += 1
            continue
        meta = result.response_metadata
        peer = meta.get("peer_id")
        if peer:
            report.tasks_per_peer[peer] += 1
        # peers_tried lists every peer the prompt went to; all but the last one failed it.
        tried = meta.get("agentfm", {}).get("peers_tried", [])
        for refused in tried[:-1]:
            report.refusals_per_peer[refused] += 1
        report.failovers += max(0, len(tried) - 1)
    ok = count - report.failed_prompts
    console.print(
        f"[bold]Batch[/]: {ok}/{count} answers, {report.failovers} failover(s) "
        f"across {len(peers)} echo peers"
    )


def langchain_tool(
    console: Console, gateway: str, writer: str, artifacts_dir: Path, report: Report
) -> None:
    from agentfm_integrations.langchain import AgentFMTool

    tool = AgentFMTool(
        name="writer",
        description="Writes a short document to answer.md.",
        model=writer,
        gateway_url=gateway,
        artifacts_dir=str(artifacts_dir),
    )
    message = tool.invoke(
        {
            "type": "tool_call",
            "id": "call-demo-1",
            "name": tool.name,
            "args": {"prompt": "a four-line poem about peers"},
        }
    )
    files = [Path(p) for p in _artifact_paths(message.artifact)]
    report.artifacts.extend(files)
    report.tasks_per_peer[writer] += 1
    console.print(
        f"[bold]LangChain tool[/] {tool.name}: {str(message.content).strip()[:120]!r} "
        f"→ {len(files)} file(s)"
    )
    for path in files:
        console.print(f"  [green]{path}[/]")


def _artifact_paths(artifact: Any) -> list[str]:
    """Paths listed in an `AgentFMTool` artifact (``{"files": [{"path": …}, …]}``)."""
    files = artifact.get("files", []) if isinstance(artifact, dict) else []
    return [str(f["path"]) for f in files]


def llamaindex_rag(
    console: Console, gateway: str, model: str, label: str, extractive: bool, report: Report
) -> None:
    from llama_index.core import PromptTemplate
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever  # type: ignore[import-untyped]

    from agentfm_integrations.llama_index import AgentFM

    nodes = [
        TextNode(text=text, metadata={"source": name}, excluded_llm_metadata_keys=["source"])
        for name, text in CORPUS
    ]
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=2)
    # The summarizer picks sentences from its input, instructions included, so it gets
    # only the retrieved passages; a real model gets LlamaIndex's usual QA prompt.
    options: dict[str, Any] = (
        {"text_qa_template": PromptTemplate("{context_str}")} if extractive else {}
    )
    llm = AgentFM(model=model, gateway_url=gateway)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm, **options)
    response = engine.query(RAG_QUESTION)
    sources = [str(n.node.metadata.get("source", "?")) for n in response.source_nodes]
    console.print(f"[bold]LlamaIndex RAG[/] ({label}) Q: {RAG_QUESTION}")
    for line in str(response).strip().splitlines():
        console.print(f"  [cyan]│[/] {line}")
    console.print(f"  sources: {', '.join(sources)}")
    report.tasks_per_peer[model] += 1
