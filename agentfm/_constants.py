"""Defaults, environment variable names and wire constants, in one place."""

from __future__ import annotations

import re

from agentfm._version import __version__

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
"""Gateway URL used when neither the argument nor ``AGENTFM_GATEWAY_URL`` is set."""

ENV_GATEWAY_URL = "AGENTFM_GATEWAY_URL"
ENV_API_KEY = "AGENTFM_API_KEY"
ENV_WEBHOOK_SECRET = "AGENTFM_WEBHOOK_SECRET"

USER_AGENT = f"agentfm-python/{__version__}"

DEFAULT_RETRIES = 2
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 30.0
"""Read timeout of short JSON calls (``/api/workers``, ``/v1/models``, ``/health``)."""

# Tasks answer only when the agent is done (up to the gateway's 12-minute write deadline),
# so their read timeout is unbounded unless the caller passes ``timeout=``.
TASK_READ_TIMEOUT: float | None = None

DEFAULT_IDLE_TIMEOUT: float | None = 600.0
"""Seconds a task stream may stay silent before the client gives up (``idle_timeout``).

The Go gateway ends a task after 10 minutes without a byte from its agent, so a client
bound below that would cut tasks the gateway still serves."""

# The gateway keeps idle connections for 120 s, uvicorn (embedded mesh) for 5 s. Expiring ours
# earlier means a pooled socket is never reused just as the server closes it.
KEEPALIVE_EXPIRY = 3.0
# Connections per pool shard: httpx's pool does work proportional to requests x connections
# on every request, so many small pools are cheaper than one big one.
POOL_SHARD_SIZE = 4

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_BACKOFF_BASE = 0.5
RETRY_BACKOFF_MAX = 8.0
RETRY_JITTER = 0.25
RETRY_AFTER_MAX = 120.0

ARTIFACT_INCOMING = "[AGENTFM: FILES_INCOMING]"
ARTIFACT_NONE = "[AGENTFM: NO_FILES]"
SENTINEL_PREFIX = "[AGENTFM:"
WORKER_REJECTION_PREFIX = "❌ ERROR:"
SSE_DONE_PAYLOAD = "[DONE]"
STREAM_ERROR_PREFIX = "[stream error:"

TASK_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
PEER_ID_PREFIX_ED25519 = "12D3KooW"

DEFAULT_ARTIFACT_TIMEOUT = 120.0
ARTIFACT_POLL_INTERVAL = 0.1
DEFAULT_ARTIFACTS_DIR = "agentfm_artifacts"
DEFAULT_MAX_EXTRACT_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 10_000
MAX_REQUEST_BODY = 1024 * 1024
"""The gateway reads JSON request bodies through this limit and truncates the rest."""
