"""The gateway's live state: worker table, telemetry, event bus, async tasks, counters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentfm.mesh._auth import FailureLimiter
from agentfm.mesh._gojson import encode, gofloat
from agentfm.mesh._hostinfo import CpuSampler, ram_free_gb
from agentfm.mesh._metrics import Metrics
from agentfm.mesh._trust import Reputation

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.mesh._ledger import CommentStore
    from agentfm.mesh._worker import Worker

TELEMETRY_INTERVAL = 2.0
EVENT_BUFFER = 16


@dataclass
class GatewaySettings:
    """Configuration fixed at start-up."""

    artifacts_dir: Path
    run_root: Path
    api_keys: tuple[bytes, ...]
    webhook_secret: str
    allow_private_webhooks: bool
    allow_file_origin: bool
    max_async_tasks: int
    boss_peer_id: str
    heartbeat_interval: float = 15.0
    reputation_floor: float = -0.5
    version: str = "1.3.0"


class MeshState:
    """Everything the HTTP handlers read and the mesh mutates, owned by one event loop."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.workers: dict[str, Worker] = {}
        self.offline: dict[str, Worker] = {}
        self.metrics = Metrics()
        self.limiter = FailureLimiter()
        self.cpu = CpuSampler()
        self.ram = ram_free_gb()
        self.subscribers: set[asyncio.Queue[bytes | None]] = set()
        self.async_tasks: set[asyncio.Task[None]] = set()
        self.started = time.time()
        self.closing = False
        # Disabled until the mesh opens its ledger (agentfm.mesh._peers.open_trust).
        self.reputation = Reputation(None, settings.reputation_floor)
        self.comments: CommentStore | None = None

    # -- worker table -------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        """Put ``worker`` in the live table and announce it (``worker_online``)."""
        worker.online = True
        worker.last_seen = time.time()
        self.offline.pop(worker.peer_id, None)
        first_sighting = worker.peer_id not in self.workers
        self.workers[worker.peer_id] = worker
        if first_sighting:
            self.publish(
                "worker_online",
                {
                    "agent_name": worker.name,
                    "honesty_score": gofloat(self.reputation.score(worker.peer_id)),
                    "peer_id": worker.peer_id,
                },
            )

    def remove_worker(self, peer_id: str) -> Worker | None:
        """Evict a worker (``worker_offline``); its last profile stays for ``include_offline``."""
        worker = self.workers.pop(peer_id, None)
        if worker is None:
            return None
        worker.online = False
        self.offline[peer_id] = worker
        self.publish("worker_offline", {"peer_id": peer_id})
        return worker

    def telemetry_tick(self) -> None:
        """Refresh host readings and every live worker's pulse, like a GossipSub round."""
        self.cpu.sample()
        self.ram = ram_free_gb()
        now = time.time()
        for worker in self.workers.values():
            worker.last_seen = now

    async def telemetry_loop(self) -> None:
        """Run :meth:`telemetry_tick` every 2 s until cancelled."""
        while True:
            await asyncio.sleep(TELEMETRY_INTERVAL)
            self.telemetry_tick()

    # -- events -------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A bounded queue receiving every future event frame (``None`` means: stop)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(EVENT_BUFFER)
        self.subscribers.add(queue)
        return queue

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send one SSE event to every subscriber; a full subscriber misses it."""
        frame = f"event: {event}\ndata: {encode(data)}\n\n".encode()
        for queue in self.subscribers:
            if queue.full():
                continue
            queue.put_nowait(frame)

    def close_subscribers(self) -> None:
        """End every open event stream (shutdown)."""
        self.closing = True
        for queue in self.subscribers:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
