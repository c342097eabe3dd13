"""Wire and result models: workers, tasks, scatter results."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic resolves it at runtime
from pathlib import Path  # noqa: TC003 - pydantic resolves it at runtime
from typing import Literal, NewType

from pydantic import BaseModel, ConfigDict, Field

from agentfm.exceptions import AgentFMError  # noqa: TC001 - pydantic resolves it at runtime

__all__ = [
    "AsyncTaskAck",
    "PeerID",
    "ScatterProgress",
    "ScatterResult",
    "TaskChunk",
    "TaskResult",
    "WorkerProfile",
    "WorkersResponse",
]

PeerID = NewType("PeerID", str)
"""A libp2p peer id (``12D3KooW…``), the only stable identity of a worker."""

_HARDWARE_SEPARATORS = (" (CPU: ", " (GPU VRAM: ")


def engine_from_hardware(hardware: str) -> str:
    """Return the engine name that the gateway renders as the prefix of ``hardware``.

    The cut is at the LAST ``" (CPU: "`` / ``" (GPU VRAM: "`` so an engine whose own name
    contains ``" ("`` survives intact.
    """
    cut = max(hardware.rfind(sep) for sep in _HARDWARE_SEPARATORS)
    return hardware if cut < 0 else hardware[:cut]


class WorkerProfile(BaseModel):
    """One worker as listed by ``GET /api/workers``.

    Example:
        ```python
        for w in client.workers.list(available_only=True):
            print(w.peer_id, w.agent_name, w.engine, w.free_slots)
        ```
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    peer_id: PeerID
    author: str = "Anonymous"
    name: str = ""
    status: str = "UNKNOWN"
    hardware: str = ""
    description: str = ""
    cpu_usage_pct: float = 0.0
    ram_free_gb: float = 0.0
    current_tasks: int = 0
    max_tasks: int = 0
    has_gpu: bool = False
    gpu_used_gb: float = 0.0
    gpu_total_gb: float = 0.0
    gpu_usage_pct: float = 0.0
    agent_image_ref: str | None = None
    agent_image_digest: str | None = None
    agent_capability: str | None = None
    honesty_score: float | None = None
    is_equivocator: bool = False
    dispatch_allowed: bool = True
    dispatch_refuse_reason: str | None = None
    online: bool = True
    last_seen: datetime | None = None

    @property
    def agent_name(self) -> str:
        """The agent name (``name``)."""
        return self.name

    @property
    def engine(self) -> str:
        """The engine/model string, parsed from ``hardware``."""
        return engine_from_hardware(self.hardware)

    @property
    def model(self) -> str:
        """Alias of `engine`, the 0.3.0 name."""
        return self.engine

    @property
    def is_available(self) -> bool:
        """Whether the worker reports ``AVAILABLE`` and is online."""
        return self.online and self.status.upper() == "AVAILABLE"

    @property
    def load_ratio(self) -> float:
        """``current_tasks / max_tasks`` (0.0 when ``max_tasks`` is not positive)."""
        return self.current_tasks / self.max_tasks if self.max_tasks > 0 else 0.0

    @property
    def free_slots(self) -> int:
        """Task slots not in use according to telemetry."""
        return max(0, self.max_tasks - self.current_tasks)


class WorkersResponse(BaseModel):
    """The body of ``GET /api/workers``."""

    model_config = ConfigDict(extra="ignore")

    success: bool = True
    agents: list[WorkerProfile] = Field(default_factory=list)
    online_count: int | None = None
    offline_count: int | None = None


class TaskChunk(BaseModel):
    """One piece of a task's output stream.

    ``kind="text"`` chunks carry output; a final ``kind="marker"`` chunk with empty text
    says the worker shipped files (``FILES_INCOMING``).
    """

    model_config = ConfigDict(frozen=True)

    text: str
    kind: Literal["text", "marker"] = "text"


class TaskResult(BaseModel):
    """The outcome of `tasks.run`.

    Example:
        ```python
        result = client.tasks.run(worker_id=peer, prompt="write a haiku")
        print(result.text, result.artifacts)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    worker_id: PeerID
    text: str
    artifacts: list[Path] = Field(default_factory=list)
    duration_seconds: float = 0.0
    task_id: str = ""
    files_incoming: bool = False
    peers_tried: list[str] = Field(default_factory=list)
    """Peers tried, the serving one last (more than one after a ``model=`` failover)."""

    @property
    def peer_id(self) -> PeerID:
        """The serving worker's peer id (same as ``worker_id``)."""
        return self.worker_id

    @property
    def attempts(self) -> int:
        """How many peers were tried, the serving one included."""
        return len(self.peers_tried) or 1


class AsyncTaskAck(BaseModel):
    """The 202 answer of ``POST /api/execute/async``."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    status: str = "queued"
    message: str = ""


class ScatterResult(BaseModel):
    """The outcome of one prompt of a scatter: exactly one per input, ``index`` is its position.

    Example:
        ```python
        for r in client.tasks.scatter(prompts, peer_ids=peers):
            print(r.index, r.ok, r.text if r.ok else r.error)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt: str
    worker_id: PeerID
    status: Literal["success", "failed"]
    text: str = ""
    artifacts: list[Path] = Field(default_factory=list)
    error: str | None = None
    index: int = 0
    task_id: str | None = None
    attempts: int = 0
    peers_tried: list[str] = Field(default_factory=list)
    duration_seconds: float = 0.0
    exception: AgentFMError | None = Field(default=None, exclude=True, repr=False)

    @property
    def ok(self) -> bool:
        """True when the prompt succeeded."""
        return self.status == "success"

    @property
    def peer_id(self) -> PeerID:
        """The peer of the last attempt (same as ``worker_id``)."""
        return self.worker_id


class ScatterProgress(BaseModel):
    """A snapshot passed to a scatter ``on_progress`` callback."""

    model_config = ConfigDict(frozen=True)

    total: int
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    failovers: int = 0
