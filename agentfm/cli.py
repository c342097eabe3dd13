"""``agentfm-py``: talk to an AgentFM gateway (or run one) from the shell.

Commands: ``ping``, ``workers``, ``models``, ``peers``, ``chat``, ``run``, ``scatter``,
``mesh serve`` and ``demo``; ``agentfm-py --help`` shows examples. The gateway URL and key come from
``--gateway``/``--api-key`` or ``AGENTFM_GATEWAY_URL``/``AGENTFM_API_KEY``. SDK errors become
one ``error: …`` line on stderr and exit code 2; a task that ran and failed (the agent
crashed, was killed or could not start; the stream was cut) exits 1, as does a scatter with
a failed item.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agentfm._cli_peers import add_peers_parser, cmd_peers
from agentfm._cli_support import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Console,
    Progress,
    fit_peer_ids,
    make_client,
)
from agentfm._redact import redact_text
from agentfm._version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from agentfm import (
        AgentFMClient,
        AgentFMError,
        ScatterResult,
        WorkerProfile,
    )

__all__ = ["main"]


_EXAMPLES = """examples:
  agentfm-py mesh serve --demo                 # a gateway with demo workers, here
  agentfm-py models                            # who is on the mesh, and how busy
  agentfm-py chat --model echo "hello"         # stream an answer
  agentfm-py run --model writer "a haiku" --out ./files
  agentfm-py scatter prompts.txt --model echo --out results.jsonl
  agentfm-py peers                             # reputation and trust of each peer
  agentfm-py peers comment 12D3KooW… "fast and right" --rating 0.5
  agentfm-py demo                              # the end-to-end tour

Each command has --help. The gateway and key also come from AGENTFM_GATEWAY_URL and
AGENTFM_API_KEY."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentfm-py",
        description="Talk to an AgentFM mesh gateway, or run an embedded one on this machine.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agentfm-py {__version__}")
    parser.add_argument(
        "--gateway",
        default=None,
        help="gateway URL (default: $AGENTFM_GATEWAY_URL, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--api-key", default=None, help="bearer key for the gateway (default: $AGENTFM_API_KEY)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds for short calls such as listing workers (default: 30); tasks are "
        "not cut short unless a command says so",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("ping", help="check that the gateway answers")

    p = sub.add_parser("workers", help="list workers as JSON")
    p.add_argument("--model", help="only workers whose engine is MODEL")
    p.add_argument("--available", action="store_true", help="only workers with free capacity")

    p = sub.add_parser("models", help="table of workers: agent, engine, load, status")
    p.add_argument("--json", action="store_true", help="print the /v1/models JSON instead")

    p = sub.add_parser("chat", help="send one message and stream the answer")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--peer", help="peer id of the worker to use (12D3KooW…)")
    target.add_argument("--model", help="agent or engine name; the gateway picks the least loaded")
    p.add_argument("message", nargs="?", help="the message (or use --prompt)")
    p.add_argument("--prompt", help="the message (0.3.0 spelling)")
    p.add_argument(
        "--stream", dest="stream", action="store_true", default=True, help=argparse.SUPPRESS
    )
    p.add_argument(
        "--no-stream", dest="stream", action="store_false", help="wait for the whole answer"
    )

    p = sub.add_parser("run", help="run a task on the native route and save its files")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--peer", help="peer id of the worker")
    target.add_argument("--model", help="agent or engine name; the least loaded match is used")
    p.add_argument("prompt", help="the task prompt")
    p.add_argument(
        "--out",
        default="agentfm_artifacts",
        help="folder for artifacts (default: ./agentfm_artifacts)",
    )

    p = sub.add_parser(
        "scatter", help="run one task per line of a file, across many peers; JSONL out"
    )
    p.add_argument("prompts_file", help="file with one prompt per line ('-' for stdin)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--model", help="spread over every worker matching this agent or engine name"
    )
    target.add_argument("--peer", action="append", help="peer id (repeat for several)")
    p.add_argument("--out", default="-", help="JSONL output file (default: stdout)")
    p.add_argument(
        "--concurrency", type=int, default=8, help="tasks in flight at once (default: 8)"
    )
    p.add_argument("--retries", type=int, default=2, help="failovers per prompt (default: 2)")
    p.add_argument(
        "--task-timeout", type=float, default=None, help="seconds per attempt (default: none)"
    )

    add_peers_parser(sub)

    # `mesh serve` and `demo` own their options (and --help): everything after the
    # command name is handed to them untouched (see `main`).

    mesh = sub.add_parser("mesh", help="run an embedded gateway on this machine")
    mesh_sub = mesh.add_subparsers(dest="mesh_command", metavar="MESH_COMMAND")
    mesh_sub.add_parser(
        "serve", help="serve the gateway protocol with local workers", add_help=False
    )
    sub.add_parser("demo", help="the end-to-end tour on an embedded demo mesh", add_help=False)
    return parser


@contextmanager
def _friendly_errors(args: argparse.Namespace, err: Console) -> Iterator[None]:
    """Turn SDK errors into one clear line on stderr and exit code 2."""
    from agentfm import (
        DEFAULT_GATEWAY,
        AgentFMError,
        AuthenticationError,
        GatewayConnectionError,
        IncompleteStreamError,
        RateLimitError,
        TaskExecutionError,
    )

    try:
        yield
    except (TaskExecutionError, IncompleteStreamError) as exc:
        # The gateway answered, and the task itself failed: a failed outcome, not a usage
        # or connection error.
        err.print(f"error: the task failed: {exc.message}", style="red")
        raise SystemExit(EXIT_FAILED) from None
    except AuthenticationError as exc:
        # The message is the gateway's ("invalid API key", "missing or malformed Bearer
        # token"); the key itself is never part of it.
        err.print(
            f"error: the gateway rejected the API key ({exc.message}); "
            "set AGENTFM_API_KEY or pass --api-key",
            style="red",
        )
        raise SystemExit(EXIT_ERROR) from None
    except RateLimitError as exc:
        err.print(f"error: the gateway is rate limiting this client ({exc.message})", style="red")
        raise SystemExit(EXIT_ERROR) from None
    except GatewayConnectionError as exc:
        url = redact_text(args.gateway or os.environ.get("AGENTFM_GATEWAY_URL") or DEFAULT_GATEWAY)
        # The SDK's message already names the gateway ("could not reach the gateway at …:
        # Connection refused"); say it once, and name it only if the message does not.
        detail = exc.message.rstrip(".")
        if url.rstrip("/") not in detail:
            detail = f"cannot reach the gateway at {url}: {detail}"
        err.print(
            f"error: {detail}. Is it running? Start a local one with: agentfm-py mesh serve --demo",
            style="red",
        )
        raise SystemExit(EXIT_ERROR) from None
    except AgentFMError as exc:
        err.print(f"error: {exc.message}", style="red")
        raise SystemExit(EXIT_ERROR) from None


def _unknown_model(model: str) -> AgentFMError:
    """The one "unknown model" error of ``chat``, ``run`` and ``scatter``."""
    from agentfm import WorkerNotFoundError

    return WorkerNotFoundError(
        f"no worker matches {model!r} (a peer id, agent name or engine); see: agentfm-py models",
        code="model_not_found",
    )


def _pick_worker(client: AgentFMClient, peer: str | None, model: str | None) -> WorkerProfile:
    """The worker a ``--peer``/``--model`` pair designates (least loaded match for a model)."""
    from agentfm import WorkerNotFoundError

    if peer is not None:
        # Any string is looked up, as the gateway does; the hint covers a name given by mistake.
        try:
            return client.workers.get(peer)
        except WorkerNotFoundError:
            raise WorkerNotFoundError(
                f"no worker with peer id {peer!r} on this mesh (for an agent or engine name "
                "use --model); see: agentfm-py models",
                code="worker_not_found",
            ) from None
    assert model is not None  # argparse makes exactly one of the two required
    matches = client.workers.match(model)
    if not matches:
        raise _unknown_model(model)
    return matches[0]


def _cmd_ping(args: argparse.Namespace, out: Console, err: Console) -> int:
    with make_client(args) as client:
        if client.ping():
            out.print("ok")
            return EXIT_OK
    err.print("unreachable")
    return EXIT_FAILED


def _cmd_workers(args: argparse.Namespace, out: Console, err: Console) -> int:
    with make_client(args) as client:
        workers = client.workers.list(model=args.model, available_only=args.available)
    out.write(json.dumps([w.model_dump(mode="json") for w in workers], indent=2) + "\n")
    return EXIT_OK


def _cmd_models(args: argparse.Namespace, out: Console, err: Console) -> int:
    with make_client(args) as client:
        if args.json:
            models = client.openai.models.list()
            out.write(models.model_dump_json(indent=2) + "\n")
            return EXIT_OK
        workers = client.workers.list()
        gateway = client.gateway_url
    columns = ["agent", "engine", "load", "status", "cpu", "peer id"]
    rows = [
        [
            w.name or "-",
            w.engine or "-",
            f"{w.current_tasks}/{w.max_tasks}",
            w.status or "-",
            f"{w.cpu_usage_pct:.0f}%",
            w.peer_id,
        ]
        for w in workers
    ]
    fit_peer_ids(rows, columns, out, err)
    out.table(columns, rows, title=f"{len(rows)} worker(s) on {gateway}")
    return EXIT_OK


def _cmd_chat(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agentfm import AgentFMRoutingWarning, ModelNotFoundError

    message = args.message if args.message is not None else args.prompt
    if not message:
        err.print("error: give a message (positional) or --prompt")
        return EXIT_ERROR
    messages = [{"role": "user", "content": message}]
    with make_client(args) as client, warnings.catch_warnings():
        # --model asks for name routing on purpose; the SDK's reminder to pin a peer id
        # would only be noise here.
        warnings.simplefilter("ignore", AgentFMRoutingWarning)
        # --peer names one worker: check it the way `run` does, so both commands say the
        # same thing about a bad or absent peer id.
        model = _pick_worker(client, args.peer, None).peer_id if args.peer else args.model
        try:
            if args.stream:
                with client.openai.chat.completions.create(
                    model=model, messages=messages, stream=True
                ) as stream:
                    # Trailing newlines are held back so the answer ends with exactly one.
                    held = ""
                    for chunk in stream:
                        for choice in chunk.choices:
                            if choice.delta.content:
                                text = held + choice.delta.content
                                shown = text.rstrip("\n")
                                out.write(shown)
                                held = text[len(shown) :]
                task_id: str | None = stream.task_id
                peer_id = stream.peer_id
            else:
                completion = client.openai.chat.completions.create(model=model, messages=messages)
                task_id, peer_id = None, (model if args.peer else None)
                out.write((completion.choices[0].message.content or "").rstrip("\n"))
            out.write("\n")
        except ModelNotFoundError:
            raise _unknown_model(model) from None
    # The chat route returns text only. An agent that writes files (writer's "wrote
    # answer.md") leaves them with the gateway, which files them under the task id.
    where = f"<its artifacts folder>/{task_id}.zip" if task_id else "its artifacts folder"
    target = f"--peer {peer_id}" if peer_id else f"--model {model}"
    err.print(
        f"files the agent wrote (if any) stay with the gateway, in {where}; "
        f'to save them here: agentfm-py run {target} "…" --out DIR',
        style="dim",
    )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agentfm._validation import require_prompt

    # The SDK would refuse it anyway; refuse before announcing a worker for it.
    require_prompt(args.prompt)
    with make_client(args, artifacts_dir=args.out) as client:
        worker = _pick_worker(client, args.peer, args.model)
        err.print(f"running on {worker.name or '-'} ({worker.peer_id})", style="dim")
        # Stream the text live, then fetch the files the worker announced, which is what
        # tasks.run does in one call, minus the live output.
        stream = client.tasks.stream(worker_id=worker.peer_id, prompt=args.prompt)
        with stream:
            for chunk in stream:
                out.write(chunk.text)
        files: list[Path] = []
        if stream.files_incoming and stream.task_id is not None:
            files = client.tasks.collect_artifacts(stream.task_id)
    for path in files:
        err.print(f"saved {path}", style="green")
    if not files:
        err.print("no files produced", style="dim")
    return EXIT_OK


def _read_prompts(source: str) -> list[str]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _cmd_scatter(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agentfm import PeerID

    try:
        prompts = _read_prompts(args.prompts_file)
    except OSError as exc:
        err.print(f"error: cannot read {args.prompts_file}: {exc.strerror or exc}", style="red")
        return EXIT_ERROR
    if not prompts:
        err.print("error: the prompts file has no non-empty line", style="red")
        return EXIT_ERROR
    with make_client(args) as client:
        if args.model:
            peers = [w.peer_id for w in client.workers.match(args.model)]
            if not peers:
                raise _unknown_model(args.model)
        else:
            peers = [PeerID(peer) for peer in args.peer]
        sink: TextIO = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
        try:
            failed = _scatter_to_jsonl(client, prompts, peers, args, sink, err)
        finally:
            if sink is not sys.stdout:
                sink.close()
    err.print(
        f"{len(prompts) - failed} succeeded, {failed} failed", style="red" if failed else "green"
    )
    return EXIT_FAILED if failed else EXIT_OK


def _scatter_to_jsonl(
    client: AgentFMClient,
    prompts: list[str],
    peers: Sequence[str],
    args: argparse.Namespace,
    sink: TextIO,
    err: Console,
) -> int:
    """Run the scatter and write one JSON line per prompt, in input order; return failures.

    Results arrive in completion order; each line is written as soon as every line before
    it is known, so a long job's output grows steadily instead of all at the end.
    """
    pending: dict[int, ScatterResult] = {}
    next_index = failed = 0
    with Progress(err, total=len(prompts)) as progress:
        results = client.tasks.scatter_iter(
            prompts,
            peer_ids=peers,
            max_concurrency=args.concurrency,
            max_retries=args.retries,
            timeout=args.task_timeout,
            on_progress=progress.update,
        )
        for result in results:
            failed += 0 if result.ok else 1
            pending[result.index] = result
            while next_index in pending:
                line = pending.pop(next_index).model_dump(mode="json", exclude={"exception"})
                sink.write(json.dumps(line) + "\n")
                next_index += 1
            sink.flush()
    return failed


def _cmd_mesh(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.mesh_command != "serve":
        err.print("usage: agentfm-py mesh serve [--demo] [--config FILE] [--host H] [--port P]")
        return EXIT_ERROR
    try:
        from agentfm.mesh import serve_main
    except ImportError as exc:
        # agentfm.mesh's own message names what is missing and the pip command.
        err.print(f"error: {exc}")
        return EXIT_ERROR
    return serve_main(list(args.passthrough))


# Commands that live outside the SDK (the tour, in agentfm_integrations) are found through
# this entry-point group, so the SDK's import graph never reaches the package providing them.
COMMANDS_GROUP = "agentfm.cli"


def _cmd_entry_point(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the ``main(argv) -> int`` that the ``agentfm.cli`` entry point names ``args.command``."""
    from importlib.metadata import entry_points

    install = "pip install 'agentfm-integrations[all]'"
    found = list(entry_points(group=COMMANDS_GROUP, name=args.command))
    if not found:
        err.print(
            f"error: the {args.command!r} command is not installed (no {COMMANDS_GROUP!r} entry "
            f"point names it). Install it with: {install} (an editable install made before "
            "the entry point existed needs `pip install -e` again)"
        )
        return EXIT_ERROR
    try:
        command = found[0].load()
    except ImportError as exc:
        err.print(f"error: {exc}. The {args.command} command needs: {install}")
        return EXIT_ERROR
    return int(command(list(args.passthrough)))


_COMMANDS = {
    "ping": _cmd_ping,
    "workers": _cmd_workers,
    "models": _cmd_models,
    "chat": _cmd_chat,
    "run": _cmd_run,
    "scatter": _cmd_scatter,
    "mesh": _cmd_mesh,
    "demo": _cmd_entry_point,
    "peers": cmd_peers,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = _build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if passthrough and args.command not in ("mesh", "demo"):
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    args.passthrough = passthrough
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    out, err = Console(sys.stdout), Console(sys.stderr)
    if args.command in ("mesh", "demo"):
        return _COMMANDS[args.command](args, out, err)
    try:
        with _friendly_errors(args, err):
            return _COMMANDS[args.command](args, out, err)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
