"""Per-item tracing for batches, and the coalescer that merges concurrent calls into a scatter.

LlamaIndex has no batch API, so a batch is traced as N ordinary LLM calls: each item gets
the same start/end instrumentation events (and legacy callback events) that the
`llm_completion_callback`/`llm_chat_callback` decorators emit for a single call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import active_span_id

from agentfm_integrations.llama_index._convert import scatter_error

if TYPE_CHECKING:
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse

    from agentfm import ScatterResult

dispatcher = get_dispatcher(__name__)

Kind = Literal["completion", "chat"]


class ItemTrace:
    """Start/end events for one batch item, mirroring the LlamaIndex LLM decorators."""

    def __init__(
        self,
        callback_manager: CallbackManager,
        model_dict: dict[str, Any],
        *,
        prompt: str | None = None,
        messages: Sequence[ChatMessage] | None = None,
    ) -> None:
        self._cm = callback_manager
        self._prompt = prompt
        self._messages = list(messages) if messages is not None else None
        self._span_id = active_span_id.get()
        if self._messages is not None:
            dispatcher.event(
                LLMChatStartEvent(
                    model_dict=model_dict,
                    messages=self._messages,
                    additional_kwargs={},
                    span_id=self._span_id,
                )
            )
            payload: dict[str, Any] = {EventPayload.MESSAGES: self._messages}
        else:
            dispatcher.event(
                LLMCompletionStartEvent(
                    model_dict=model_dict,
                    prompt=prompt or "",
                    additional_kwargs={},
                    span_id=self._span_id,
                )
            )
            payload = {EventPayload.PROMPT: prompt}
        payload[EventPayload.SERIALIZED] = model_dict
        self._event_id = self._cm.on_event_start(CBEventType.LLM, payload=payload)

    def succeeded(self, response: CompletionResponse | ChatResponse) -> None:
        """Close the item with its response."""
        if self._messages is not None:
            dispatcher.event(
                LLMChatEndEvent(
                    messages=self._messages,
                    response=response,  # type: ignore[arg-type]
                    span_id=self._span_id,
                )
            )
            payload: dict[str, Any] = {
                EventPayload.MESSAGES: self._messages,
                EventPayload.RESPONSE: response,
            }
        else:
            dispatcher.event(
                LLMCompletionEndEvent(
                    prompt=self._prompt or "",
                    response=response,  # type: ignore[arg-type]
                    span_id=self._span_id,
                )
            )
            payload = {EventPayload.PROMPT: self._prompt, EventPayload.COMPLETION: response}
        self._cm.on_event_end(CBEventType.LLM, payload=payload, event_id=self._event_id)

    def failed(self, exc: BaseException) -> None:
        """Close the item with its error."""
        dispatcher.event(ExceptionEvent(exception=exc, span_id=self._span_id))
        self._cm.on_event_end(
            CBEventType.LLM, payload={EventPayload.EXCEPTION: exc}, event_id=self._event_id
        )


RunScatter = Callable[[str, list[str]], Awaitable[list["ScatterResult"]]]


class Coalescer:
    """Merge calls made within a short window into one scatter per model.

    Callers `await submit(model, prompt)`; the first call for a model opens a window of
    `window_s` seconds, and every call for that model arriving in it joins the same
    scatter (flushed early once `max_batch` prompts are queued).
    """

    def __init__(self, run: RunScatter, window_s: float, max_batch: int) -> None:
        self._run = run
        self._window_s = window_s
        self._max_batch = max_batch
        self._pending: dict[str, list[tuple[str, asyncio.Future[ScatterResult]]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, model: str, prompt: str) -> ScatterResult:
        """Queue one prompt and wait for its scatter result (raises the item's error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ScatterResult] = loop.create_future()
        queue = self._pending.setdefault(model, [])
        queue.append((prompt, future))
        if len(queue) >= self._max_batch:
            self._flush(model)
        elif model not in self._timers:
            self._timers[model] = loop.call_later(self._window_s, self._flush, model)
        return await future

    def _flush(self, model: str) -> None:
        timer = self._timers.pop(model, None)
        if timer is not None:
            timer.cancel()
        items = self._pending.pop(model, [])
        if not items:
            return
        task = asyncio.get_running_loop().create_task(self._dispatch(model, items))
        # Keep a strong reference: the loop only holds weak ones to running tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(
        self, model: str, items: list[tuple[str, asyncio.Future[ScatterResult]]]
    ) -> None:
        try:
            results = await self._run(model, [prompt for prompt, _ in items])
        except BaseException as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(items, results, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if result.status != "success":
                future.set_exception(scatter_error(result))
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        """Flush what is queued and wait for in-flight scatters."""
        for model in list(self._pending):
            self._flush(model)
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
