"""``EmbeddedMesh``: the gateway and its workers in a background thread of this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentfm.mesh._app import GatewayApp
from agentfm.mesh._auth import check_bind, parse_keys
from agentfm.mesh._hostinfo import cpu_cores
from agentfm.mesh._peerid import load_or_create_key, peer_id_from_seed, seed_from_text
from agentfm.mesh._peers import open_trust, trust_loop
from agentfm.mesh._server import (
    HEAD_LIMIT,
    HEAD_TIMEOUT,
    http_protocol,
    new_loop,
    raise_nofile_limit,
)
from agentfm.mesh._state import GatewaySettings, MeshState
from agentfm.mesh._worker import Worker, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

log = logging.getLogger("agentfm.mesh")

DEFAULT_MAX_ASYNC_TASKS = 256
STARTUP_TIMEOUT = 30.0


class EmbeddedMesh:
    """An AgentFM gateway with local workers, served over HTTP on this machine.

    The server runs in a background thread with its own event loop, so synchronous code
    (tests, notebooks) can talk to it with any HTTP client. Routes and bytes follow the
    real gateway's protocol; ``GET /api/artifacts/{task_id}`` is the one addition.

    Args:
        workers: the workers to start with (more can be added with :meth:`add_worker`).
        host: bind address; a non-loopback one needs API keys or
            ``AGENTFM_ALLOW_UNAUTH_PUBLIC=1``.
        port: TCP port, 0 for a free one.
        api_keys: bearer keys (each at least 16 characters); ``None`` reads
            ``AGENTFM_API_KEYS``.
        artifacts_dir: where ``<task_id>.zip`` files land; a temporary folder (removed on
            stop) when omitted.
        webhook_secret: HMAC secret for webhooks; ``None`` reads ``AGENTFM_WEBHOOK_SECRET``.
        allow_private_webhooks: deliver webhooks to loopback/private addresses (also on with
            ``AGENTFM_WEBHOOK_ALLOW_PRIVATE=1``).
        key_dir: keep each worker's Ed25519 key here, so peer ids survive restarts.
        max_async_tasks: in-flight cap of ``/api/execute/async``.
        graceful_timeout: seconds in-flight requests get to finish on :meth:`stop`.
        state_dir: keep the gateway's key, its reputation ledger (``api_ledger.db``) and
            comment bodies here, so the log survives restarts; default ``key_dir``, else a
            temporary folder removed on stop.
        ledger: False runs without a ledger, answering ``/v1/peers/*`` as a Go gateway
            whose ledger failed to open (503/501, neutral trust fields).
        reputation_floor: peers scoring strictly below it are refused dispatch (403);
            -1.0 disables the gate.
        head_timeout: seconds a client has to send a request head (Go: 10); heads are
            also capped at 1 MB (431), and the soft open-files limit is raised to the
            hard one on start, as the Go gateway does.

    Example:
        >>> with EmbeddedMesh.demo() as mesh:  # doctest: +SKIP
        ...     print(mesh.url, mesh.peer_id("echo"))
    """

    def __init__(
        self,
        workers: Sequence[WorkerConfig] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Sequence[str] | None = None,
        artifacts_dir: str | Path | None = None,
        webhook_secret: str | None = None,
        allow_private_webhooks: bool = False,
        key_dir: str | Path | None = None,
        max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS,
        graceful_timeout: float = 10.0,
        heartbeat_interval: float = 15.0,
        state_dir: str | Path | None = None,
        ledger: bool = True,
        reputation_floor: float = -0.5,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self._configs = list(workers)
        self._api_keys = api_keys
        self._artifacts_arg = Path(artifacts_dir) if artifacts_dir is not None else None
        self._webhook_secret = webhook_secret
        self._allow_private = allow_private_webhooks
        self.key_dir = Path(key_dir) if key_dir is not None else None
        self.max_async_tasks = max_async_tasks
        self.graceful_timeout = graceful_timeout
        self.heartbeat_interval = heartbeat_interval
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.ledger_enabled = ledger
        self.reputation_floor = float(reputation_floor)
        self.head_timeout = head_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: MeshState | None = None
        self._server: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._temp_dirs: list[Path] = []
        self._name_counts: dict[str, int] = {}
        self._url = ""
        self._artifacts_dir: Path | None = None

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def demo(cls, **kwargs: Any) -> EmbeddedMesh:
        """A mesh with the demo workers: two ``echo``, ``writer``, ``summarizer``, ``planner``."""
        from agentfm.mesh._config import demo_workers

        return cls(demo_workers(), **kwargs)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> EmbeddedMesh:
        """Build a mesh from a TOML file (format in :mod:`agentfm.mesh._config`)."""
        from agentfm.mesh._config import load_toml

        workers, options = load_toml(Path(path))
        options.update(overrides)
        return cls(workers, **options)

    # -- properties -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (set once started)."""
        if not self._url:
            raise RuntimeError("the mesh is not running; call start() first")
        return self._url

    @property
    def artifacts_dir(self) -> Path:
        """Folder where ``<task_id>.zip`` artifacts land."""
        if self._artifacts_dir is None:
            raise RuntimeError("the mesh is not running; call start() first")
        return self._artifacts_dir

    @property
    def workers(self) -> list[Worker]:
        """Live worker handles (``.peer_id``, ``.name``, ``.engine``, ``.max_tasks``, …)."""
        if self._state is None:
            return []
        return list(tuple(self._state.workers.values()))

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._ready.is_set() and self._thread is not None and self._thread.is_alive()

    def peer_id(self, name: str) -> str:
        """Peer id of the first live worker whose name, else engine, equals ``name`` (any case).

        Raises:
            KeyError: no worker matches.
        """
        folded = name.casefold()
        workers = self.workers
        for worker in workers:
            if worker.name.casefold() == folded:
                return worker.peer_id
        for worker in workers:
            if worker.engine.casefold() == folded:
                return worker.peer_id
        raise KeyError(f"no worker named {name!r}")

    # -- identities -----------------------------------------------------------------------
    def _key_path(self, name: str) -> Path | None:
        if self.key_dir is None:
            return None
        index = self._name_counts.get(name, 0)
        self._name_counts[name] = index + 1
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return self.key_dir / (f"{stem}.key" if index == 0 else f"{stem}-{index}.key")

    def _make_worker(self, config: WorkerConfig) -> Worker:
        if config.seed is not None:
            seed = seed_from_text(config.seed)
        elif config.key_file is not None:
            seed = load_or_create_key(Path(config.key_file))
        else:
            path = self._key_path(config.name)
            seed = load_or_create_key(path) if path is not None else os.urandom(32)
        return Worker(config, peer_id_from_seed(seed), cpu_cores())

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> EmbeddedMesh:
        """Bind, start serving in a background thread and return once ready.

        Raises:
            AuthConfigError: a key is too short, or a public bind has no keys.
            RuntimeError: already started, or the server failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("EmbeddedMesh already started")
        raw_keys = self._api_keys
        keys = parse_keys(raw_keys if raw_keys is not None else os.environ.get("AGENTFM_API_KEYS"))
        check_bind(self.host, keys)
        raise_nofile_limit()
        workers = [self._make_worker(cfg) for cfg in self._configs]
        if len({w.peer_id for w in workers}) != len(workers):
            raise ValueError("two workers share one identity (same seed or key file)")
        key_home = self.key_dir or self.state_dir
        gateway_seed = load_or_create_key(key_home / "gateway.key") if key_home else os.urandom(32)
        run_root = Path(tempfile.mkdtemp(prefix="agentfm-mesh-"))
        self._temp_dirs.append(run_root)
        state_home = self.state_dir or self.key_dir or run_root / "state"
        if self._artifacts_arg is None:
            artifacts = run_root / "artifacts"
        else:
            artifacts = self._artifacts_arg.resolve()
        artifacts.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._artifacts_dir = artifacts
        secret = self._webhook_secret
        if secret is None:
            secret = os.environ.get("AGENTFM_WEBHOOK_SECRET", "")
        settings = GatewaySettings(
            artifacts_dir=artifacts,
            run_root=run_root / "runs",
            api_keys=keys,
            webhook_secret=secret,
            allow_private_webhooks=self._allow_private
            or os.environ.get("AGENTFM_WEBHOOK_ALLOW_PRIVATE") == "1",
            allow_file_origin=os.environ.get("AGENTFM_ALLOW_FILE_ORIGIN") == "1",
            max_async_tasks=self.max_async_tasks,
            boss_peer_id=peer_id_from_seed(gateway_seed),
            heartbeat_interval=self.heartbeat_interval,
            reputation_floor=self.reputation_floor,
        )
        self._state = MeshState(settings)
        try:
            open_trust(self._state, gateway_seed, state_home if self.ledger_enabled else None)
        except Exception:
            self._cleanup_dirs()
            raise
        for worker in workers:
            self._state.add_worker(worker)
        # One telemetry round for all: equal pulses keep the configured order in listings.
        self._state.telemetry_tick()

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            self._cleanup_dirs()
            raise
        sock.setblocking(False)
        port = sock.getsockname()[1]
        shown = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        if self.host in ("0.0.0.0", "::", ""):
            shown = "127.0.0.1"
        self._url = f"http://{shown}:{port}"
        self.port = port
        self._thread = threading.Thread(
            target=self._thread_main, args=(sock,), name="agentfm-mesh", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or self._error is not None:
            self._thread.join(5)
            self._cleanup_dirs()
            raise RuntimeError(f"embedded mesh failed to start: {self._error!r}")
        log.info("embedded mesh serving on %s", self._url)
        return self

    def _thread_main(self, sock: socket.socket) -> None:
        loop = new_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:
            self._error = exc
            log.exception("embedded mesh crashed")
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        import uvicorn

        assert self._state is not None
        state = self._state
        ready = self._ready

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                # Signals belong to whoever embeds the mesh (serve_main installs its own).
                yield

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                ready.set()

        config = uvicorn.Config(
            GatewayApp(state),
            http=http_protocol(self.head_timeout),
            h11_max_incomplete_event_size=HEAD_LIMIT,
            loop="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=math.ceil(self.graceful_timeout),
        )
        server = _Server(config)
        self._server = server
        telemetry = asyncio.ensure_future(state.telemetry_loop())
        trust = asyncio.ensure_future(trust_loop(state))
        try:
            await server.serve(sockets=[sock])
        finally:
            telemetry.cancel()
            trust.cancel()
            # Async tasks run under the gateway's root context: shutdown cancels them.
            for task in list(state.async_tasks):
                task.cancel()
            if state.async_tasks:
                await asyncio.wait(list(state.async_tasks), timeout=30)
            every = [*state.workers.values(), *state.offline.values()]
            agents = {id(w.config.agent): w.config.agent for w in every}
            for agent in agents.values():
                with contextlib.suppress(Exception):
                    await agent.aclose()
            if state.reputation.ledger is not None:
                state.reputation.ledger.close()
            sock.close()

    def _begin_shutdown(self) -> None:
        assert self._state is not None
        self._state.close_subscribers()
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving: in-flight requests get ``graceful_timeout`` seconds, then are cancelled.

        Subprocess agents are killed and reaped, async tasks cancelled, temp folders removed.
        """
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._begin_shutdown)
        thread.join(timeout if timeout is not None else self.graceful_timeout + 35)
        self._thread = None
        self._cleanup_dirs()

    def _cleanup_dirs(self) -> None:
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs.clear()

    # -- runtime changes ------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any) -> Any:
        loop = self._loop
        if loop is None or self._state is None or not self.running:
            raise RuntimeError("the mesh is not running")
        future: Future[Any] = Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(10)

    def add_worker(self, config: WorkerConfig) -> Worker:
        """Bring a new worker online (emits ``worker_online``) and return its handle."""
        worker = self._make_worker(config)
        assert self._state is not None
        if worker.peer_id in self._state.workers:
            raise ValueError(f"a worker with peer id {worker.peer_id} is already online")
        self._call(self._state.add_worker, worker)
        return worker

    def remove_worker(self, peer_id_or_name: str) -> Worker:
        """Take a worker offline (emits ``worker_offline``); in-flight tasks still finish.

        Raises:
            KeyError: no such live worker.
        """
        assert self._state is not None
        peer_id = peer_id_or_name
        if peer_id not in self._state.workers:
            peer_id = self.peer_id(peer_id_or_name)
        worker = self._call(self._state.remove_worker, peer_id)
        if worker is None:
            raise KeyError(peer_id_or_name)
        return worker  # type: ignore[no-any-return]

    # -- context managers -----------------------------------------------------------------
    def __enter__(self) -> EmbeddedMesh:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedMesh:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self._url or "not started"
        return f"EmbeddedMesh({where}, workers={len(self.workers) or len(self._configs)})"
