"""The tour's driver: start the mesh, run every step, print the report."""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from agentfm_integrations.demo._report import Report, print_report
from agentfm_integrations.demo._settings import COOKBOOK_URL, LLM_WORKER_NAME, parse_args
from agentfm_integrations.demo._steps import (
    langchain_batch,
    langchain_chain,
    langchain_tool,
    llamaindex_rag,
    show_workers,
    stream_task,
)
from agentfm_integrations.demo._workers import check_openai_server, flaky_worker, llm_worker

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from agentfm.mesh import EmbeddedMesh


def _tour(
    console: Console,
    mesh: EmbeddedMesh,
    flaky: set[str],
    args: argparse.Namespace,
    artifacts_dir: Path,
    report: Report,
) -> None:
    """The steps of the tour, each timed under its name."""
    from agentfm import AgentFMClient

    gateway = mesh.url
    with AgentFMClient(gateway, artifacts_dir=artifacts_dir, api_key=None) as client:
        with report.step("discover", console):
            show_workers(console, client, flaky)
        healthy_echo = [w for w in client.workers.match("echo") if w.peer_id not in flaky]
        with report.step("stream", console):
            stream_task(console, client, healthy_echo[0].peer_id, report)
        # The chain and the RAG answer come from one worker, pinned by peer id: the
        # summarizer, or the proxied model when --openai-base-url is given.
        label = LLM_WORKER_NAME if args.openai_base_url else "summarizer"
        text_peer = mesh.peer_id(label)
        with report.step("langchain chain", console):
            langchain_chain(console, gateway, text_peer, label, report)
        echo_peers = [w.peer_id for w in client.workers.match("echo")]
        with report.step(f"langchain batch x{args.prompts}", console):
            langchain_batch(console, gateway, echo_peers, args.prompts, report)
        with report.step("langchain tool + artifact", console):
            langchain_tool(console, gateway, mesh.peer_id("writer"), artifacts_dir, report)
        with report.step("llamaindex rag", console):
            extractive = not args.openai_base_url
            llamaindex_rag(console, gateway, text_peer, label, extractive, report)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour and return the process exit code (0 when every step worked)."""
    args = parse_args(argv)
    console = Console(highlight=False)
    report = Report()

    from agentfm.mesh import EmbeddedMesh

    if args.openai_base_url and not check_openai_server(console, args.openai_base_url):
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
                flaky = {mesh.add_worker(flaky_worker()).peer_id}
                if args.openai_base_url:
                    mesh.add_worker(llm_worker(args.openai_base_url, args.openai_model))
            _tour(console, mesh, flaky, args, artifacts_dir, report)
        except Exception as exc:  # one readable line instead of a traceback on a first run
            console.print(f"[red]The tour stopped during {report.current!r}: {exc}[/]")
            return 1
        report.timings["total"] = time.perf_counter() - total
        console.rule("[bold]report", align="left")
        print_report(console, mesh, report, artifacts_dir, kept=args.artifacts_dir is not None)
    console.print(
        "Next: [bold]agentfm-py mesh serve --demo[/] for a gateway of your own, and the "
        f"cookbook scripts: {COOKBOOK_URL}",
        soft_wrap=True,
    )
    return 0 if report.failed_prompts == 0 else 1
