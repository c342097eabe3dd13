"""``agentfm-py mesh serve``: run an embedded mesh in the foreground."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentfm.mesh.embedded import EmbeddedMesh

# Stop cleanly (in-flight tasks finish, the temporary folders go) on Ctrl-C, `kill` and a
# closed terminal alike.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentfm-py mesh serve",
        description="Serve an embedded AgentFM gateway with local workers.",
    )
    parser.add_argument("--demo", action="store_true", help="add the built-in demo workers")
    parser.add_argument("--config", type=Path, help="TOML file describing the workers")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--state-dir", type=Path, help="keep the gateway key and reputation ledger here"
    )
    return parser


def serve_main(argv: list[str] | None = None) -> int:
    """Run ``mesh serve`` until SIGINT/SIGTERM/SIGHUP; return the process exit code.

    Once ready, it prints the URL as the only line on stdout (for scripts), and on stderr
    the workers and an ``export AGENTFM_GATEWAY_URL=…`` line. ``--demo`` adds the demo
    workers, ``--config`` the workers of a TOML file; with neither the gateway serves no
    workers, and says so.
    """
    from agentfm.mesh._auth import AuthConfigError
    from agentfm.mesh._config import demo_workers
    from agentfm.mesh.embedded import EmbeddedMesh

    args = _parser().parse_args(argv)
    try:
        if args.config is not None:
            mesh = EmbeddedMesh.from_toml(args.config)
            if args.demo:
                mesh._configs.extend(demo_workers())
        elif args.demo:
            mesh = EmbeddedMesh.demo()
        else:
            mesh = EmbeddedMesh()
        if args.host is not None:
            mesh.host = args.host
        if args.state_dir is not None:
            mesh.state_dir = args.state_dir
        # The real gateway's -apiport default; a config file may choose another.
        mesh.port = args.port if args.port is not None else (mesh.port or 8080)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
        try:
            mesh.start()
        except BaseException:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            raise
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"agentfm-py mesh serve: port {mesh.port} on {mesh.host} is already in use "
                "(another gateway?); choose one with --port N, or --port 0 for any free port",
                file=sys.stderr,
            )
        else:
            print(f"agentfm-py mesh serve: {exc}", file=sys.stderr)
        return 1
    except (AuthConfigError, ValueError, RuntimeError) as exc:
        print(f"agentfm-py mesh serve: {exc}", file=sys.stderr)
        return 1
    try:
        _announce(mesh)
        while not stop.wait(0.5):
            if not mesh.running:
                print("agentfm-py mesh serve: server stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        mesh.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _announce(mesh: EmbeddedMesh) -> None:
    """The URL alone on stdout (scripts read that line), then on stderr what a person needs."""
    print(mesh.url, flush=True)
    lines: list[str] = []
    workers = mesh.workers
    if workers:
        lines.append(f"serving {len(workers)} worker(s):")
        width = max(len(w.name) for w in workers)
        lines += [f"  {w.name:<{width}}  {w.engine:<12}  {w.peer_id}" for w in workers]
    else:
        lines.append(
            "serving no workers: add --demo for the demo workers, or --config FILE for your own"
        )
    lines += [
        "use it from another shell with:",
        f"  export AGENTFM_GATEWAY_URL={mesh.url}",
        "Ctrl-C stops the gateway.",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
