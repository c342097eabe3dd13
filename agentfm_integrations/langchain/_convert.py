"""Pure mapping between LangChain types and the AgentFM SDK.

Nothing here talks to the network: the chat model, the LLM and the tools call these helpers
from both their sync and async paths, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from langchain_core.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

import agentfm
from agentfm_integrations._usage import estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from langchain_core.messages.ai import UsageMetadata

    from agentfm import FileRef

PROVIDER = "agentfm"
"""Value of `ls_provider` and `response_metadata["model_provider"]`."""

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names every major chat-model provider accepts."""


# --------------------------------------------------------------------------------------
# messages → prompt


def message_role(message: BaseMessage) -> str:
    """Return the OpenAI-style role the gateway uses for a LangChain message."""
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, FunctionMessage):
        return "function"
    if isinstance(message, ChatMessage):
        return message.role
    return message.type


def message_text(message: BaseMessage) -> str:
    """Return a message's text, refusing content the mesh cannot carry.

    Raises:
        ValueError: The message holds a non-text block (image, audio, file…). AgentFM
            agents receive one plain-text prompt, so dropping such a block silently
            would change the question.
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            msg = (
                f"AgentFM agents take text only; the {message_role(message)} message "
                f"holds a {block.get('type')!r} content block"
            )
            raise ValueError(msg)
    return "".join(parts)


def to_wire_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Convert LangChain messages to the ``{"role", "content"}`` dicts the gateway reads."""
    return [{"role": message_role(m), "content": message_text(m)} for m in messages]


def to_prompt(messages: Sequence[BaseMessage]) -> str:
    """Flatten a conversation exactly as the gateway's OpenAI route would."""
    return agentfm.flatten_messages(to_wire_messages(messages))


# --------------------------------------------------------------------------------------
# stop sequences (the gateway ignores ``stop``; we apply it here)


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence.

    Returns:
        The kept text and whether a stop sequence was found.
    """
    cut = -1
    for s in stop or ():
        if not s:
            continue
        at = text.find(s)
        if at != -1 and (cut == -1 or at < cut):
            cut = at
    if cut == -1:
        return text, False
    return text[:cut], True


class StopScanner:
    """Apply stop sequences to streamed text that may split a sequence across chunks.

    It holds back the few trailing characters that could still begin a stop sequence,
    so nothing after a stop is ever released.

    Example:
        ```python
        scan = StopScanner(["END"])
        scan.feed("hello E")  # -> "hello "
        scan.feed("ND more")  # -> "" and scan.stopped is True
        ```
    """

    def __init__(self, stop: Sequence[str] | None) -> None:
        self._stop = [s for s in stop or () if s]
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Take the next piece of text and return what is safe to emit now."""
        if self.stopped:
            return ""
        if not self._stop:
            return text
        self._buffer += text
        kept, hit = truncate_at_stop(self._buffer, self._stop)
        if hit:
            self.stopped = True
            self._buffer = ""
            return kept
        if self._hold == 0:
            out, self._buffer = self._buffer, ""
            return out
        out, self._buffer = self._buffer[: -self._hold], self._buffer[-self._hold :]
        return out

    def flush(self) -> str:
        """Return whatever is still held once the stream has ended."""
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out


# --------------------------------------------------------------------------------------
# usage and metadata


def estimated_usage(prompt: str, completion: str) -> UsageMetadata:
    """Build usage counts for a task the gateway reported no usage for."""
    input_tokens = estimate_tokens(prompt)
    output_tokens = estimate_tokens(completion)
    # The token-detail keys are optional at runtime; mypy under ``python_version = 3.10``
    # reads core's TypedDict without its NotRequired markers.
    return cast(
        "UsageMetadata",
        {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


def response_metadata(
    *,
    model: str,
    peer_id: str | None,
    task_id: str | None,
    finish_reason: str,
    files: Sequence[FileRef] = (),
    attempts: int | None = None,
    peers_tried: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the ``response_metadata`` of one answer.

    ``agentfm.usage_estimated`` is always true: neither the native task route nor the
    OpenAI route counts tokens, so ``usage_metadata`` is estimated from characters.
    """
    extra: dict[str, Any] = {"usage_estimated": True}
    if attempts is not None:
        extra["attempts"] = attempts
    if peers_tried is not None:
        extra["peers_tried"] = list(peers_tried)
    if files:
        extra["files"] = [dict(f) for f in files]
    return {
        "model_name": model,
        "model_provider": PROVIDER,
        "finish_reason": finish_reason,
        "peer_id": peer_id,
        "task_id": task_id,
        PROVIDER: extra,
    }


# --------------------------------------------------------------------------------------
# errors

# Most specific first: several SDK errors inherit from two branches.
_ERROR_MAP: tuple[tuple[type[agentfm.AgentFMError], type[ModelError]], ...] = (
    (agentfm.AgentFMTimeoutError, ModelTimeoutError),
    (agentfm.GatewayConnectionError, ModelConnectionError),
    (agentfm.AuthenticationError, ModelAuthenticationError),
    (agentfm.DispatchRefusedError, ModelPermissionDeniedError),
    (agentfm.InvalidRequestError, ModelInvalidRequestError),
    (agentfm.ModelNotFoundError, ModelNotFoundError),
    (agentfm.WorkerNotFoundError, ModelNotFoundError),
    (agentfm.RateLimitError, ModelRateLimitError),
)


def to_model_error(exc: agentfm.AgentFMError) -> ModelError:
    """Map an SDK error onto LangChain's model error taxonomy.

    Anything without a closer match (overload, worker failures, broken streams, artifact
    problems) is a provider-side failure, i.e. `ModelAPIError`. The caller raises the
    result ``from exc`` so the SDK error stays reachable as ``__cause__``.
    """
    for sdk_type, model_type in _ERROR_MAP:
        if isinstance(exc, sdk_type):
            return model_type(str(exc))
    return ModelAPIError(str(exc))


def raise_if_failed(result: agentfm.ScatterResult) -> None:
    """Raise a failed scatter item's error as LangChain's (the SDK error as its cause)."""
    if not result.ok:
        cause = result.exception or agentfm.TaskExecutionError(result.error or "failed")
        raise to_model_error(cause) from cause


# --------------------------------------------------------------------------------------
# tool names


def safe_tool_name(raw: str, *, fallback: str = "agentfm_worker") -> str:
    """Make a string usable as a tool name (``^[a-zA-Z0-9_-]{1,64}$``)."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", raw.strip()).strip("_")
    return (name or fallback)[:64]


def unique_tool_names(bases: Sequence[str], peer_ids: Sequence[str]) -> list[str]:
    """Give each worker a distinct safe name, suffixing a peer-id tail on clashes."""
    safe = [safe_tool_name(b) for b in bases]
    counts: dict[str, int] = {}
    for name in safe:
        counts[name] = counts.get(name, 0) + 1
    out: list[str] = []
    seen: set[str] = set()
    for name, peer in zip(safe, peer_ids, strict=True):
        candidate = name
        if counts[name] > 1 or name in seen:
            tail = safe_tool_name(peer[-8:], fallback="peer")
            candidate = f"{name[: 63 - len(tail)]}_{tail}"
        n = 2
        while candidate in seen:
            suffix = f"_{n}"
            candidate = f"{candidate[: 64 - len(suffix)]}{suffix}"
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def short(text: str, limit: int = 160) -> str:
    """Shorten text to one line for summaries."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def scatter_summary(items: Sequence[Mapping[str, Any]]) -> str:
    """Render a compact, model-readable summary of a scatter's per-item outcomes."""
    ok = sum(1 for it in items if it["status"] == "success")
    lines = [f"{ok}/{len(items)} prompts succeeded."]
    for it in items:
        head = f"[{it['index']}]"
        if it["status"] == "success":
            files = len(it.get("files") or ())
            extra = f" ({files} file{'s' if files != 1 else ''})" if files else ""
            lines.append(f"{head} ok{extra}: {short(str(it['text']))}")
        else:
            lines.append(f"{head} FAILED: {short(str(it.get('error') or 'unknown error'))}")
    return "\n".join(lines)
