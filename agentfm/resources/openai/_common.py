"""Pure helpers shared by the OpenAI-compatible resources."""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from agentfm._base_client import RequestSpec, resolve_timeout
from agentfm._constants import PEER_ID_PREFIX_ED25519, STREAM_ERROR_PREFIX
from agentfm._decoders import failure_from_tail, strip_failure_line
from agentfm._resource import validate
from agentfm._sse import SSEDecoder, SSEEvent
from agentfm._validation import is_peer_id, require_prompt, require_timeout
from agentfm.exceptions import AgentFMRoutingWarning, WorkerStreamError

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from agentfm._streaming import StreamState

M = TypeVar("M", bound=BaseModel)


class RoutingWarner:
    """Warn once per model string that is not a peer id (the gateway then picks the worker)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(self, model: str) -> None:
        """Emit `AgentFMRoutingWarning` the first time ``model`` is not a peer id.

        A ``12D3KooW…`` string is taken as meant for a peer id even when it is not a
        well-formed one (test placeholders): 0.3.0 stayed silent for it too.
        """
        if is_peer_id(model) or model.startswith(PEER_ID_PREFIX_ED25519):
            return
        with self._lock:
            if model in self._seen:
                return
            self._seen.add(model)
        warnings.warn(
            f"model={model!r} is not a peer id: the gateway routes it to any worker whose "
            "agent name or engine matches. Pin a worker with a peer id from "
            "client.workers.list() for reproducible routing.",
            AgentFMRoutingWarning,
            stacklevel=4,
        )

    def reset(self) -> None:
        """Forget which models were warned about."""
        with self._lock:
            self._seen.clear()


GLOBAL_WARNER = RoutingWarner()


def completion_spec(
    client_timeout: httpx.Timeout, path: str, body: dict[str, Any], timeout: float | None
) -> RequestSpec:
    """A ``POST /v1/…`` request: never retried once sent, no read timeout by default."""
    return RequestSpec(
        "POST", path, json=body, timeout=resolve_timeout(client_timeout, timeout, "long")
    )


def check_common(model: object, timeout: float | None) -> tuple[str, float | None]:
    """Validate ``model`` and ``timeout`` before sending."""
    return require_prompt(model, name="model"), require_timeout(timeout)


def parse_model(cls: type[M], body: Any, what: str) -> M:
    """Validate a JSON body, turning a mismatch into `GatewayProtocolError`."""
    return validate(cls, body, f"unexpected {what} from the gateway")


def parse_chunk(cls: type[M], data: str) -> M:
    """Validate one SSE ``data:`` payload."""
    return validate(cls, data, "unexpected stream event from the gateway", raw=True)


def check_stream_error(text: str | None, finish_reason: str | None) -> None:
    """Raise `WorkerStreamError` for the gateway's in-band ``[stream error: …]`` chunk."""
    if text and finish_reason == "stop":
        stripped = text.strip()
        if stripped.startswith(STREAM_ERROR_PREFIX) and stripped.endswith("]"):
            raise WorkerStreamError(stripped[1:-1], code="worker_stream_failed")


_TAIL = 1024


def raise_for_failed_content(text: str | None) -> None:
    """Raise the typed failure when a completion's content ends with a §5.4 failure line.

    The gateway drops the worker's marker lines on the OpenAI routes but keeps the rest,
    so a crashed agent (``⚠️  Sandbox exited: …``) or one that could not start
    (``❌ Failed to start task: …``) would otherwise look like an answer.
    """
    if not text:
        return
    failure = failure_from_tail(text[-_TAIL:])
    if failure is not None:
        failure.text = strip_failure_line(text)
        failure.task_started = True
        raise failure


class FailureWatch:
    """Follow a streamed completion's content to raise a §5.4 failure at its end."""

    def __init__(self) -> None:
        self._seen: list[str] = []  # references to the chunks' strings
        self._tail = ""

    def see(self, text: str | None) -> None:
        """Note one chunk's content."""
        if text:
            self._seen.append(text)
            self._tail = (self._tail + text)[-_TAIL:]

    def check(self) -> None:
        """Raise the failure if the content ended with a failure line (after ``[DONE]``)."""
        if failure_from_tail(self._tail) is not None:
            raise_for_failed_content("".join(self._seen))


class CompletionStream(Generic[M]):
    """What one streamed completion needs from the client's ``stream`` driver.

    ``parse`` validates each event and follows its content (``content_of``), and ``on_end``
    raises a §5.4 failure once ``[DONE]`` came: both sides run exactly this.
    """

    def __init__(
        self,
        chunk: Callable[[str], M],
        content_of: Callable[[M], list[str | None]],
    ) -> None:
        self.decoder = SSEDecoder()
        self._chunk = chunk
        self._content_of = content_of
        self._watch = FailureWatch()

    def parse(self, event: SSEEvent) -> M:
        """One event as a chunk, its content noted."""
        chunk = self._chunk(event.data)
        for text in self._content_of(chunk):
            self._watch.see(text)
        return chunk

    def on_end(self) -> None:
        """Raise the failure the content ended with, if any."""
        self._watch.check()


def note_ids(state: StreamState, peer_id: str | None, task_id: str | None) -> None:
    """Remember the serving peer and task id announced by chunks."""
    if peer_id and state.peer_id is None:
        state.peer_id = peer_id
    if task_id and state.task_id is None:
        state.task_id = task_id
