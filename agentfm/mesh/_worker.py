"""Workers: their configuration, identity, telemetry and the per-task run loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentfm.mesh._artifacts import build_zip, has_output, remove_tree
from agentfm.mesh._gojson import gofloat
from agentfm.mesh.agents import Agent, AgentContext, BreakStream, SandboxExit, StartFailed

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from pathlib import Path

    from agentfm.mesh._metrics import Metrics

FILES_INCOMING = b"\n[AGENTFM: FILES_INCOMING]\n"
NO_FILES = b"\n[AGENTFM: NO_FILES]\n"
MAX_NAME = 20
MAX_AUTHOR = 50
MAX_DESCRIPTION = 3000


class StreamReset(Exception):
    """The task stream was reset: the body ends with no marker (OpenAI routes: a read error)."""

    def __str__(self) -> str:
        return "stream reset"


@dataclass
class WorkerConfig:
    """One worker of an embedded mesh.

    Args:
        name: agent name (``-agent``), at most 20 characters.
        engine: engine/model string (``-model``); the prefix of ``hardware``.
        agent: the backend that runs each task.
        author: ``-author``, at most 50 characters.
        description: ``-desc``, truncated to 3000 characters.
        max_tasks: concurrent tasks before the worker rejects more (``-maxtasks``).
        seed: derive the Ed25519 identity from this value, so the peer id is stable.
        key_file: keep the identity in this libp2p key file (created when missing).
        has_gpu: advertise a GPU with ``gpu_total_gb`` / ``gpu_used_gb`` of VRAM.
        image_ref: advertised container image reference (``agent_image_ref``).
        image_digest: advertised image digest (``agent_image_digest``).
        capability: capability tag; defaults to the kebab-case agent name.

    Example:
        >>> from agentfm.mesh import CallableAgent
        >>> cfg = WorkerConfig("shout", "upper", CallableAgent(lambda p, ctx: p.upper()))
    """

    name: str
    engine: str
    agent: Agent
    author: str = "agentfm"
    description: str = ""
    max_tasks: int = 1
    seed: str | bytes | None = None
    key_file: str | Path | None = None
    has_gpu: bool = False
    gpu_total_gb: float = 0.0
    gpu_used_gb: float = 0.0
    image_ref: str = ""
    image_digest: str = ""
    capability: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_NAME:
            raise ValueError(f"worker name must be 1..{MAX_NAME} characters: {self.name!r}")
        if len(self.author) > MAX_AUTHOR:
            raise ValueError(f"worker author must be at most {MAX_AUTHOR} characters")
        if self.max_tasks < 1:
            raise ValueError("max_tasks must be at least 1")
        self.description = self.description[:MAX_DESCRIPTION]
        self.gpu_total_gb = float(self.gpu_total_gb)
        self.gpu_used_gb = float(self.gpu_used_gb)
        if self.seed is not None and self.key_file is not None:
            raise ValueError("give either seed or key_file, not both")


def kebab(name: str) -> str:
    """Capability tag derived from an agent name: lowercase words joined by ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def rfc3339(ts: float) -> str:
    """Format like Go's ``time.Time`` JSON (RFC 3339 with trimmed nanoseconds, UTC)."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


class Worker:
    """A live worker handle: identity, load, telemetry and the task runner.

    Attributes:
        peer_id: the libp2p peer id (``12D3KooW…``).
        name: agent name.
        engine: engine/model string.
        max_tasks: capacity.
        current_tasks: tasks running now.
        online: whether the worker is in the live table.
    """

    def __init__(self, config: WorkerConfig, peer_id: str, cores: int) -> None:
        self.config = config
        self.peer_id = peer_id
        self.name = config.name
        self.engine = config.engine
        self.max_tasks = config.max_tasks
        self.current_tasks = 0
        self.online = True
        self.last_seen = time.time()
        if config.has_gpu:
            self.hardware = (
                f"{config.engine} (GPU VRAM: {config.gpu_used_gb:.1f}/{config.gpu_total_gb:.1f} GB)"
            )
        else:
            self.hardware = f"{config.engine} (CPU: {cores} Cores)"
        self.capability = config.capability if config.capability is not None else kebab(self.name)

    def __repr__(self) -> str:
        return f"Worker(name={self.name!r}, engine={self.engine!r}, peer_id={self.peer_id!r})"

    @property
    def status(self) -> str:
        """``BUSY`` at capacity, else ``AVAILABLE``."""
        return "BUSY" if self.current_tasks >= self.max_tasks else "AVAILABLE"

    @property
    def load_ratio(self) -> float:
        """Share of the capacity in use, the matcher's first sort key."""
        return self.current_tasks / self.max_tasks

    def _gpu_usage_pct(self) -> float:
        cfg = self.config
        if not cfg.has_gpu or cfg.gpu_total_gb <= 0:
            return 0.0
        return round(100.0 * cfg.gpu_used_gb / cfg.gpu_total_gb, 2)

    def _gpu_image_trust(self, prefix: str, tag_prefix: str) -> list[tuple[str, Any]]:
        """The GPU, image and trust fields both listings share, in the gateway's order.

        ``/api/workers`` names them bare with ``agent_`` tags; ``/v1/models`` prefixes all
        with ``agentfm_``. Empty image and capability tags are left out; the trust fields
        are placeholders that `_peers.apply_trust` fills in.
        """
        cfg = self.config
        gpu = (
            ("has_gpu", cfg.has_gpu),
            ("gpu_used_gb", gofloat(cfg.gpu_used_gb if cfg.has_gpu else 0.0)),
            ("gpu_total_gb", gofloat(cfg.gpu_total_gb if cfg.has_gpu else 0.0)),
            ("gpu_usage_pct", gofloat(self._gpu_usage_pct())),
        )
        trust = (("honesty_score", 0), ("is_equivocator", False), ("dispatch_allowed", True))
        return [
            *((prefix + key, value) for key, value in gpu),
            *worker_tags(self, tag_prefix),
            *((prefix + key, value) for key, value in trust),
        ]

    def profile(self, cpu: float, ram: float) -> dict[str, Any]:
        """The ``/api/workers`` entry, in the gateway's field order."""
        cfg = self.config
        entry: dict[str, Any] = {
            "peer_id": self.peer_id,
            "author": cfg.author,
            "name": self.name,
            "status": self.status,
            "hardware": self.hardware,
            "description": cfg.description,
            "cpu_usage_pct": gofloat(cpu),
            "ram_free_gb": gofloat(ram),
            "current_tasks": self.current_tasks,
            "max_tasks": self.max_tasks,
        }
        entry.update(self._gpu_image_trust("", "agent_"))
        entry["online"] = self.online
        entry["last_seen"] = rfc3339(self.last_seen)
        return entry

    def model_entry(self, created: int, cpu: float, ram: float) -> dict[str, Any]:
        """The ``/v1/models`` entry, in the gateway's field order."""
        cfg = self.config
        head = " · ".join(part for part in (self.name, self.engine) if part)
        if cfg.description:
            description = f"{head} — {cfg.description}" if head else cfg.description
        else:
            description = head
        entry: dict[str, Any] = {
            "id": self.peer_id,
            "object": "model",
            "created": created,
            "owned_by": cfg.author or "agentfm",
        }
        optional = (
            ("description", description),
            ("agentfm_name", self.name),
            ("agentfm_engine", self.engine),
            ("agentfm_status", self.status),
            ("agentfm_hardware", self.hardware),
        )
        entry.update((k, v) for k, v in optional if v)
        entry["agentfm_current_tasks"] = self.current_tasks
        entry["agentfm_max_tasks"] = self.max_tasks
        entry["agentfm_cpu_usage_pct"] = gofloat(cpu)
        entry["agentfm_ram_free_gb"] = gofloat(ram)
        entry.update(self._gpu_image_trust("agentfm_", "agentfm_"))
        entry["agentfm_online"] = True
        return entry

    def _release_slot(self, ctx: AgentContext) -> None:
        """Free the task's slot once its agent has really stopped.

        Agent code on a thread (a sync `CallableAgent`) cannot be killed: until it returns,
        the slot stays taken, so the telemetry and the capacity check tell the truth.
        """
        running = ctx.still_running
        if not running:
            self.current_tasks -= 1
            return
        loop = asyncio.get_running_loop()
        left = [len(running)]

        def one_done(_: object) -> None:
            left[0] -= 1
            if left[0] == 0:
                self.current_tasks -= 1

        def from_thread(future: object) -> None:
            # The mesh may have stopped meanwhile; then there is no slot left to free.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(one_done, future)

        for future in running:
            future.add_done_callback(from_thread)

    async def run(
        self, task_id: str, prompt: str, run_root: Path, artifacts_dir: Path, metrics: Metrics
    ) -> AsyncGenerator[bytes, None]:
        """Run one task as the worker would and yield the bytes of its task stream.

        Yields the agent's raw output, then the terminal marker. A worker at capacity yields
        only its rejection line.

        Raises:
            StreamReset: the agent raised :class:`BreakStream`; no marker was sent.
        """
        if self.current_tasks >= self.max_tasks:
            metrics.tasks["rejected"] += 1
            metrics.stream_errors["task", "capacity_rejected"] += 1
            yield (
                f"❌ ERROR: Worker is at max capacity ({self.current_tasks}/{self.max_tasks}). "
                "Try another worker.\n"
            ).encode()
            return
        self.current_tasks += 1
        started = time.monotonic()
        status = "ok"
        ctx = AgentContext(task_id, self.engine, self.name, run_root / f"run_{os.urandom(8).hex()}")
        stream = self.config.agent.stream(prompt, ctx)
        try:
            try:
                async for chunk in stream:
                    if chunk:
                        yield chunk
            except BreakStream:
                status = "error"
                metrics.stream_errors["task", "reset"] += 1
                raise StreamReset from None
            except StartFailed as exc:
                status = "error"
                yield f"❌ Failed to start task: {exc}\n".encode()
            except SandboxExit as exc:
                status = "timeout" if "signal: killed" in str(exc) else "error"
                yield f"⚠️  Sandbox exited: {exc}\n".encode()
            except Exception as exc:
                status = "error"
                yield f"⚠️  Sandbox exited: {type(exc).__name__}: {exc}\n".encode()
            finally:
                await stream.aclose()
            if ctx.output_dir_used and has_output(ctx.output_dir):
                size = await asyncio.to_thread(build_zip, ctx.output_dir, artifacts_dir, task_id)
                metrics.artifacts_built += 1
                metrics.artifact_bytes += size
                yield FILES_INCOMING
            else:
                yield NO_FILES
        finally:
            self._release_slot(ctx)
            metrics.observe_task(status, time.monotonic() - started)
            if ctx.output_dir_used:
                await asyncio.to_thread(remove_tree, ctx.output_dir)


def worker_tags(worker: Worker, prefix: str) -> list[tuple[str, str]]:
    """The worker's non-empty image and capability tags, named ``prefix`` + field.

    Every listing carries them under its own prefix: ``agent_`` (``/api/workers``, peer
    reputation), ``agentfm_`` (``/v1/models``), ``advertised_`` (peer summary).
    """
    cfg = worker.config
    tags = (
        ("image_ref", cfg.image_ref),
        ("image_digest", cfg.image_digest),
        ("capability", worker.capability),
    )
    return [(prefix + key, value) for key, value in tags if value]
