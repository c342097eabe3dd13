"""AgentFM SDK: discover workers on an AgentFM mesh, run and stream tasks, scatter batches.

Example:
    ```python
    from agentfm import AgentFMClient

    with AgentFMClient() as client:
        peer = client.workers.match("echo")[0].peer_id
        print(client.tasks.run(worker_id=peer, prompt="hello").text)
    ```
"""

from __future__ import annotations

from agentfm._client import DEFAULT_GATEWAY, AgentFMClient, AsyncAgentFMClient
from agentfm._constants import DEFAULT_IDLE_TIMEOUT
from agentfm._redact import redact_url
from agentfm._streaming import AsyncStream, Stream
from agentfm._validation import is_peer_id
from agentfm._version import __version__
from agentfm.artifacts import ArtifactManager, FileRef, describe_files
from agentfm.crypto import SwarmKey
from agentfm.exceptions import (
    AgentExitError,
    AgentFMError,
    AgentFMRoutingWarning,
    AgentFMTimeoutError,
    ArtifactError,
    AsyncCapacityError,
    AuthenticationError,
    DispatchRefusedError,
    GatewayConnectionError,
    GatewayInternalError,
    GatewayProtocolError,
    IncompleteStreamError,
    InvalidRequestError,
    LedgerNotFoundError,
    LedgerUnavailableError,
    MeshOverloadedError,
    ModelNotFoundError,
    NotSelfSubmitterError,
    NoWorkerForModelError,
    OutputTooLargeError,
    PlainTextDispatchRefusedError,
    PlainTextGatewayInternalError,
    PlainTextInvalidRequestError,
    PlainTextWorkerStreamError,
    PlainTextWorkerUnreachableError,
    RateLimitError,
    SignatureRejectedError,
    TaskExecutionError,
    TaskFailedError,
    TaskStartError,
    UntrustedPeersError,
    WorkerNotFoundError,
    WorkerRejectedError,
    WorkerStreamError,
    WorkerUnreachableError,
)
from agentfm.gateway import LocalMeshGateway
from agentfm.models import (
    AsyncTaskAck,
    PeerID,
    ScatterProgress,
    ScatterResult,
    TaskChunk,
    TaskResult,
    WorkerProfile,
)
from agentfm.types.openai import flatten_messages
from agentfm.types.peers import (
    CommentBody,
    CommentReceipt,
    InclusionProof,
    LogHead,
    PeerEntry,
    PeerLog,
    PeerSummary,
    RaterSummary,
    ReputationScore,
)
from agentfm.webhook import WebhookPayload, WebhookReceiver, verify_signature

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_IDLE_TIMEOUT",
    "AgentExitError",
    "AgentFMClient",
    "AgentFMError",
    "AgentFMRoutingWarning",
    "AgentFMTimeoutError",
    "ArtifactError",
    "ArtifactManager",
    "AsyncAgentFMClient",
    "AsyncCapacityError",
    "AsyncStream",
    "AsyncTaskAck",
    "AuthenticationError",
    "CommentBody",
    "CommentReceipt",
    "DispatchRefusedError",
    "FileRef",
    "GatewayConnectionError",
    "GatewayInternalError",
    "GatewayProtocolError",
    "InclusionProof",
    "IncompleteStreamError",
    "InvalidRequestError",
    "LedgerNotFoundError",
    "LedgerUnavailableError",
    "LocalMeshGateway",
    "LogHead",
    "MeshOverloadedError",
    "ModelNotFoundError",
    "NoWorkerForModelError",
    "NotSelfSubmitterError",
    "OutputTooLargeError",
    "PeerEntry",
    "PeerID",
    "PeerLog",
    "PeerSummary",
    "PlainTextDispatchRefusedError",
    "PlainTextGatewayInternalError",
    "PlainTextInvalidRequestError",
    "PlainTextWorkerStreamError",
    "PlainTextWorkerUnreachableError",
    "RateLimitError",
    "RaterSummary",
    "ReputationScore",
    "ScatterProgress",
    "ScatterResult",
    "SignatureRejectedError",
    "Stream",
    "SwarmKey",
    "TaskChunk",
    "TaskExecutionError",
    "TaskFailedError",
    "TaskResult",
    "TaskStartError",
    "UntrustedPeersError",
    "WebhookPayload",
    "WebhookReceiver",
    "WorkerNotFoundError",
    "WorkerProfile",
    "WorkerRejectedError",
    "WorkerStreamError",
    "WorkerUnreachableError",
    "__version__",
    "describe_files",
    "flatten_messages",
    "is_peer_id",
    "redact_url",
    "verify_signature",
]
