"""``agentfm-py mesh serve``: run an embedded mesh in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


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
    """Run ``mesh serve`` until SIGINT/SIGTERM; print one line with the URL once ready.

    Without ``--config`` the demo workers are served. Returns the process exit code.
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
        else:
            mesh = EmbeddedMesh.demo()
        if args.host is not None:
            mesh.host = args.host
        if args.state_dir is not None:
            mesh.state_dir = args.state_dir
        # The real gateway's -apiport default; a config file may choose another.
        mesh.port = args.port if args.port is not None else (mesh.port or 8080)
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            mesh.start()
        except BaseException:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            raise
    except (AuthConfigError, ValueError, OSError, RuntimeError) as exc:
        print(f"agentfm-py mesh serve: {exc}", file=sys.stderr)
        return 1
    try:
        print(mesh.url, flush=True)
        while not stop.wait(0.5):
            if not mesh.running:
                print("agentfm-py mesh serve: server stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        mesh.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
