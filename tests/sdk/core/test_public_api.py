"""The public surface: top-level exports and the 0.3.0 module paths keep working."""

from __future__ import annotations

import importlib
import inspect

import pytest

import agentfm

EXPECTED_ALL = {
    "UntrustedPeersError",
    "SignatureRejectedError",
    "NotSelfSubmitterError",
    "LedgerUnavailableError",
    "LedgerNotFoundError",
    "ReputationScore",
    "RaterSummary",
    "PeerSummary",
    "PeerLog",
    "PeerEntry",
    "LogHead",
    "InclusionProof",
    "CommentReceipt",
    "CommentBody",
    "DEFAULT_GATEWAY",
    "DEFAULT_IDLE_TIMEOUT",
    "AgentFMClient",
    "AgentExitError",
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
    "DispatchRefusedError",
    "FileRef",
    "GatewayConnectionError",
    "GatewayInternalError",
    "GatewayProtocolError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "LocalMeshGateway",
    "MeshOverloadedError",
    "ModelNotFoundError",
    "NoWorkerForModelError",
    "OutputTooLargeError",
    "PeerID",
    "PlainTextDispatchRefusedError",
    "PlainTextGatewayInternalError",
    "PlainTextInvalidRequestError",
    "PlainTextWorkerStreamError",
    "PlainTextWorkerUnreachableError",
    "RateLimitError",
    "ScatterProgress",
    "ScatterResult",
    "Stream",
    "SwarmKey",
    "TaskChunk",
    "TaskExecutionError",
    "TaskFailedError",
    "TaskStartError",
    "TaskResult",
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
}

# Every name of sdk-surface.md §2.1, module by module.
SEED_MODULES = {
    "agentfm.client": {"DEFAULT_GATEWAY", "AgentFMClient"},
    "agentfm.async_client": {"DEFAULT_GATEWAY", "AsyncAgentFMClient"},
    "agentfm.models": {
        "AsyncTaskAck",
        "PeerID",
        "ScatterResult",
        "TaskChunk",
        "TaskResult",
        "WorkerProfile",
        "WorkersResponse",
    },
    "agentfm.exceptions": {
        "AgentFMError",
        "ArtifactError",
        "AuthenticationError",
        "GatewayConnectionError",
        "GatewayInternalError",
        "GatewayProtocolError",
        "InvalidRequestError",
        "MeshOverloadedError",
        "ModelNotFoundError",
        "TaskExecutionError",
        "WorkerNotFoundError",
        "WorkerStreamError",
        "WorkerUnreachableError",
        "from_envelope",
    },
    "agentfm.streaming": {
        "ARTIFACT_INCOMING",
        "ARTIFACT_NONE",
        "SENTINEL_PREFIX",
        "SSE_DONE",
        "SentinelFilter",
        "classify_sse_line",
        "filter_iter",
        "parse_sse_lines",
    },
    "agentfm.artifacts": {"DEFAULT_MAX_EXTRACT_BYTES", "ArtifactManager"},
    "agentfm.webhook": {
        "WebhookCallback",
        "WebhookPayload",
        "WebhookReceiver",
        "DEFAULT_MAX_BODY_BYTES",
        "SIGNATURE_HEADER",
    },
    "agentfm.crypto": {"HEADER", "KEY_HEX_LEN", "SwarmKey"},
    "agentfm.daemon": {"LocalMeshGateway"},
    "agentfm.openai": {
        "AgentFMRoutingWarning",
        "OpenAINamespace",
        "AsyncOpenAINamespace",
        "ChatCompletion",
        "ChatCompletionChunk",
        "ChatMessage",
        "ModelEntry",
        "ModelsList",
        "TextCompletion",
        "TextCompletionChunk",
        "Usage",
    },
    "agentfm.openai.models": {
        "ChatChoice",
        "ChatChoiceDelta",
        "ChatChunkChoice",
        "CompletionChoice",
        "TextCompletionChunkChoice",
        "coerce_messages",
        "ChatCompletion",
        "ModelsList",
    },
}


def test_top_level_all_is_pinned() -> None:
    assert set(agentfm.__all__) == EXPECTED_ALL
    for name in agentfm.__all__:
        assert hasattr(agentfm, name), name


def test_every_exception_is_exported_and_rooted() -> None:
    import agentfm.exceptions as exc_module

    for name in exc_module.__all__:
        obj = getattr(exc_module, name)
        if inspect.isclass(obj) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, agentfm.AgentFMError), name
            assert getattr(agentfm, name) is obj


@pytest.mark.parametrize("module", sorted(SEED_MODULES))
def test_seed_module_paths_keep_their_names(module: str) -> None:
    imported = importlib.import_module(module)
    for name in SEED_MODULES[module]:
        assert hasattr(imported, name), f"{module}.{name}"


def test_seed_keywords_and_defaults() -> None:
    from agentfm.resources.tasks import AsyncTasks, Tasks
    from agentfm.resources.workers import AsyncWorkers, Workers

    for cls in (Tasks, AsyncTasks):
        run = inspect.signature(cls.run).parameters
        assert run["artifact_timeout"].default == 120.0
        assert "worker_id" in run
        assert "prompt" in run
        scatter = inspect.signature(cls.scatter).parameters
        assert scatter["max_concurrency"].default == 8
        assert scatter["max_retries"].default == 2
        by_model = inspect.signature(cls.scatter_by_model).parameters
        assert {"model", "max_workers", "pick", "wait_for_workers"} <= set(by_model)
        assert "webhook_url" in inspect.signature(cls.submit_async).parameters
        assert "task_id" in inspect.signature(cls.stream).parameters
    for wcls in (Workers, AsyncWorkers):
        params = inspect.signature(wcls.list).parameters
        assert params["poll_timeout"].default == 15.0
        assert params["poll_interval"].default == 1.0
        assert params["wait_for_workers"].default == 0
    client = inspect.signature(agentfm.AgentFMClient).parameters
    assert client["retries"].default == 2
    assert {"gateway_url", "timeout", "artifacts_dir", "api_key"} <= set(client)
    gateway = inspect.signature(agentfm.LocalMeshGateway).parameters
    assert gateway["binary_path"].default == "agentfm"
    assert gateway["startup_timeout"].default == 15.0
    assert agentfm.DEFAULT_GATEWAY == "http://127.0.0.1:8080"


def test_importing_agentfm_does_not_import_frameworks() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agentfm, agentfm.openai;"
        "heavy=('langchain_core','llama_index','starlette','uvicorn');"
        "bad=[m for m in sys.modules if m.split('.')[0] in heavy];"
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
