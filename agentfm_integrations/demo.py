"""``python3 -m agentfm demo``: the whole project, end to end, on an embedded mesh.

The tour starts `agentfm.mesh.EmbeddedMesh.demo()` on a free loopback port, adds one
``echo`` worker that refuses every task (so failover has something to do), and then:

1. discovers the workers (a table of agent, engine, load, peer id);
2. streams a task from an ``echo`` worker;
3. runs a LangChain chain, ``prompt | ChatAgentFM | StrOutputParser``;
4. sends a batch of prompts through ``ChatAgentFM.batch`` (scatter with failover);
5. calls the ``writer`` agent as a LangChain tool and reads its file from
   ``ToolMessage.artifact``;
6. answers a question over a small built-in corpus with LlamaIndex (BM25 retrieval,
   `AgentFM` as the LLM);
7. prints a report: peers used, failovers, timings and artifact paths.

``--openai-base-url`` (or ``AGENTFM_DEMO_OPENAI_BASE_URL``) adds an `OpenAIProxyAgent`
worker in front of any OpenAI-compatible server (Ollama, vLLM, …); the chain and the RAG
answer then come from that model, through the same mesh.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from langchain_core.language_models import LanguageModelInput

    from agentfm import AgentFMClient
    from agentfm.mesh import AgentContext, EmbeddedMesh, WorkerConfig

__all__ = ["main"]

ENV_OPENAI_BASE_URL = "AGENTFM_DEMO_OPENAI_BASE_URL"
ENV_OPENAI_MODEL = "AGENTFM_DEMO_OPENAI_MODEL"
ENV_OPENAI_API_KEY = "AGENTFM_DEMO_OPENAI_API_KEY"

FLAKY_NAME = "echo"
"""The failing worker shares the healthy echo workers' name, so name-based routing and
scatter include it, exactly as a broken peer would be included on a real mesh."""

LLM_WORKER_NAME = "llm"

COOKBOOK_URL = "https://github.com/agentfm/agentfm-integrations/tree/main/cookbook"
"""Where the cookbook lives: a wheel does not ship the scripts (pyproject's Homepage plus
``/tree/main/cookbook``; tests/e2e/test_packaging.py keeps the two in step)."""

CORPUS: tuple[tuple[str, str], ...] = (
    (
        "mesh.md",
        "AgentFM is a peer-to-peer compute mesh. Workers advertise an agent name and an "
        "engine; a gateway (the boss) routes each task to a worker by peer id, agent name "
        "or engine, preferring the least loaded one.",
    ),
    (
        "scatter.md",
        "Scatter sends many prompts across many workers at once. When a worker fails or "
        "drops a task, scatter retries the prompt on a peer that has not been tried yet, "
        "so one broken worker costs a retry, not a result.",
    ),
    (
        "artifacts.md",
        "Agents can write files into their output folder. The worker zips them and ships the "
        "zip to the gateway, which keeps it under the task id; the SDK extracts it into a "
        "folder per task.",
    ),
    (
        "webhooks.md",
        "Asynchronous tasks return a task id at once. When the task ends the gateway posts "
        "a JSON callback to the webhook URL, signed with HMAC-SHA256 when a secret is set.",
    ),
    (
        "embedded.md",
        "The embedded mesh is a pure Python gateway that speaks the same HTTP protocol as "
        "the Go gateway, with local workers. It is for development, tests and demos; it "
        "does not join a libp2p swarm.",
    ),
)
RAG_QUESTION = "What happens in a scatter when a worker drops a task?"


@dataclass
class _Report:
    """What the tour did, for the summary at the end."""

    timings: dict[str, float] = field(default_factory=dict)
    tasks_per_peer: Counter[str] = field(default_factory=Counter)
    refusals_per_peer: Counter[str] = field(default_factory=Counter)
    failovers: int = 0
    failed_prompts: int = 0
    artifacts: list[Path] = field(default_factory=list)
    current: str = ""

    @contextmanager
    def step(self, name: str, console: Console | None = None) -> Iterator[None]:
        """Time the block under ``name``; with ``console``, open it with a heading."""
        if console is not None:
            console.rule(f"[bold]{name}", align="left")
        self.current = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - start


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentfm-py demo",
        description="End-to-end tour of AgentFM on an embedded mesh: discovery, streaming, "
        "LangChain (chain, batch with failover, tool with a file), LlamaIndex RAG.",
    )
    parser.add_argument(
        "--openai-base-url",
        default=os.environ.get(ENV_OPENAI_BASE_URL) or None,
        help="an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for Ollama) to add "
        f"as a mesh worker; default ${ENV_OPENAI_BASE_URL}",
    )
    parser.add_argument(
        "--openai-model",
        default=os.environ.get(ENV_OPENAI_MODEL) or "llama3.2",
        help=f"model name on that server (default: ${ENV_OPENAI_MODEL} or llama3.2)",
    )
    parser.add_argument(
        "--prompts", type=int, default=24, help="size of the LangChain batch (default: 24)"
    )
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=None,
        help="where task files are extracted and kept (default: a temporary folder, removed "
        "when the demo ends)",
    )
    args = parser.parse_args(argv)
    if args.prompts < 1:
        parser.error("--prompts must be at least 1")
    return args


def _refuse_every_task(prompt: str, ctx: AgentContext) -> Iterator[str]:
    """Agent body of the flaky worker: refuse, the way a real worker at capacity does.

    A real worker that cannot take a task writes one ``❌ ERROR:`` line and closes the
    stream without an end-of-task marker. The SDK types it as a rejection, and scatter
    sends the prompt to another peer (as it does for any failed task; only a task that
    completed is never re-run).
    """
    from agentfm.mesh import BreakStream

    yield f"❌ ERROR: demo worker refuses task {ctx.task_id}. Try another worker.\n"
    raise BreakStream("closed without a marker")


def _flaky_worker() -> WorkerConfig:
    from agentfm.mesh import CallableAgent, WorkerConfig

    return WorkerConfig(
        FLAKY_NAME,
        "echo",
        CallableAgent(_refuse_every_task),
        description="Refuses every task (shows failover).",
        max_tasks=4,
    )


def _llm_worker(base_url: str, model: str) -> WorkerConfig:
    """A worker that forwards its tasks to an OpenAI-compatible server (Ollama, vLLM, …)."""
    from agentfm.mesh import OpenAIProxyAgent, WorkerConfig

    return WorkerConfig(
        LLM_WORKER_NAME,
        model,
        OpenAIProxyAgent(base_url, model, os.environ.get(ENV_OPENAI_API_KEY) or None),
        description=f"{model} at {base_url}",
        max_tasks=4,
    )


def _show_workers(console: Console, client: AgentFMClient, flaky: set[str]) -> None:
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
            _peer_cell(console, w.peer_id),
            note,
        )
    console.print(table)


def _stream_task(console: Console, client: AgentFMClient, peer_id: str, report: _Report) -> None:
    console.print(f"[bold]Streaming[/] a task from echo {_short(peer_id)}:")
    prompt = "first line\nsecond line\nthird line"
    with client.tasks.stream(worker_id=peer_id, prompt=prompt) as stream:
        for chunk in stream:
            if chunk.text.strip():
                console.print(f"  [cyan]│[/] {chunk.text.rstrip()}")
    report.tasks_per_peer[peer_id] += 1


def _langchain_chain(
    console: Console, gateway: str, model: str, label: str, report: _Report
) -> None:
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


def _langchain_batch(
    console: Console, gateway: str, peers: Sequence[str], count: int, report: _Report
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


def _langchain_tool(
    console: Console, gateway: str, writer: str, artifacts_dir: Path, report: _Report
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


def _llamaindex_rag(
    console: Console, gateway: str, model: str, label: str, extractive: bool, report: _Report
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


def _short(peer_id: str) -> str:
    return f"{peer_id[:12]}…{peer_id[-4:]}"


def _peer_cell(console: Console, peer_id: str) -> str:
    """The full peer id when the terminal has room for it, else a recognisable short form."""
    return peer_id if console.width >= 120 else _short(peer_id)


def _print_report(
    console: Console, mesh: EmbeddedMesh, report: _Report, artifacts_dir: Path, *, kept: bool
) -> None:
    names = {w.peer_id: w.name for w in mesh.workers}
    peers = Table(title="Peers used", title_justify="left")
    for column in ("agent", "peer id", "served", "refused"):
        peers.add_column(column, no_wrap=True)
    for peer in sorted(
        report.tasks_per_peer.keys() | report.refusals_per_peer.keys(),
        key=lambda p: (-report.tasks_per_peer[p], p),
    ):
        served, refused = report.tasks_per_peer[peer], report.refusals_per_peer[peer]
        peers.add_row(names.get(peer, "?"), _peer_cell(console, peer), str(served), str(refused))
    console.print(peers)

    timings = Table(title="Timings", title_justify="left")
    timings.add_column("step")
    timings.add_column("seconds", justify="right")
    for name, seconds in report.timings.items():
        timings.add_row(name, f"{seconds:.2f}")
    console.print(timings)

    lines = [
        f"failovers: {report.failovers} (prompts moved to another peer after a refusal)",
        f"failed prompts: {report.failed_prompts}",
        f"artifacts folder: {artifacts_dir}"
        + (
            "" if kept else " (temporary: removed when the demo ends; --artifacts-dir DIR keeps it)"
        ),
        *(f"artifact: {p}" for p in report.artifacts),
    ]
    for line in lines:
        # soft_wrap: long paths stay on one line, so they can be copied.
        console.print(line, soft_wrap=True)


def _check_openai_server(console: Console, base_url: str) -> bool:
    """Whether the OpenAI-compatible server answers ``GET /models``; says why not."""
    import httpx

    try:
        httpx.get(f"{base_url.rstrip('/')}/models", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        console.print(
            f"[red]Cannot use the OpenAI-compatible server at {base_url}: {exc}[/]\n"
            "Is it running? (Ollama: `ollama serve`, base URL http://127.0.0.1:11434/v1)"
        )
        return False
    return True


def _tour(
    console: Console,
    mesh: EmbeddedMesh,
    flaky: set[str],
    args: argparse.Namespace,
    artifacts_dir: Path,
    report: _Report,
) -> None:
    """The steps of the tour, each timed under its name."""
    from agentfm import AgentFMClient

    gateway = mesh.url
    with AgentFMClient(gateway, artifacts_dir=artifacts_dir, api_key=None) as client:
        with report.step("discover", console):
            _show_workers(console, client, flaky)
        healthy_echo = [w for w in client.workers.match("echo") if w.peer_id not in flaky]
        with report.step("stream", console):
            _stream_task(console, client, healthy_echo[0].peer_id, report)
        # The chain and the RAG answer come from one worker, pinned by peer id: the
        # summarizer, or the proxied model when --openai-base-url is given.
        label = LLM_WORKER_NAME if args.openai_base_url else "summarizer"
        text_peer = mesh.peer_id(label)
        with report.step("langchain chain", console):
            _langchain_chain(console, gateway, text_peer, label, report)
        echo_peers = [w.peer_id for w in client.workers.match("echo")]
        with report.step(f"langchain batch x{args.prompts}", console):
            _langchain_batch(console, gateway, echo_peers, args.prompts, report)
        with report.step("langchain tool + artifact", console):
            _langchain_tool(console, gateway, mesh.peer_id("writer"), artifacts_dir, report)
        with report.step("llamaindex rag", console):
            extractive = not args.openai_base_url
            _llamaindex_rag(console, gateway, text_peer, label, extractive, report)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour and return the process exit code (0 when every step worked)."""
    args = _parse_args(argv)
    console = Console(highlight=False)
    report = _Report()

    from agentfm.mesh import EmbeddedMesh

    if args.openai_base_url and not _check_openai_server(console, args.openai_base_url):
        return 2
    total = time.perf_counter()
    with ExitStack() as stack:
        # Files are kept only in a folder the user named; a temporary one goes at the end
        # (entered first, so it is removed after the mesh has stopped).
        artifacts_dir: Path = args.artifacts_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="agentfm-demo-"))
        )
        try:
            with report.step("start mesh"), console.status("starting the embedded mesh…"):
                mesh = stack.enter_context(EmbeddedMesh.demo())
                flaky = {mesh.add_worker(_flaky_worker()).peer_id}
                if args.openai_base_url:
                    mesh.add_worker(_llm_worker(args.openai_base_url, args.openai_model))
            _tour(console, mesh, flaky, args, artifacts_dir, report)
        except Exception as exc:  # one readable line instead of a traceback on a first run
            console.print(f"[red]The tour stopped during {report.current!r}: {exc}[/]")
            return 1
        report.timings["total"] = time.perf_counter() - total
        console.rule("[bold]report", align="left")
        _print_report(console, mesh, report, artifacts_dir, kept=args.artifacts_dir is not None)
    console.print(
        "Next: [bold]agentfm-py mesh serve --demo[/] for a gateway of your own, and the "
        f"cookbook scripts: {COOKBOOK_URL}",
        soft_wrap=True,
    )
    return 0 if report.failed_prompts == 0 else 1
