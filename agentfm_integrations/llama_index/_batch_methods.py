"""`AgentFM`'s batch methods and coalescing mode: each batch is one SDK scatter.

`BatchMethods` is a mixin of `AgentFM` (in `llms.py`), kept apart so each file reads in one
sitting. A batch scatters its prompts over every peer matching the model; the scatter
fails items over to untried peers by itself. Each item is traced as an ordinary LLM call
(`ItemTrace`), and with `coalesce_window_ms` set, concurrent `acomplete`/`achat` calls
share one scatter (`Coalescer`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal, overload

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

from agentfm import describe_files, flatten_messages
from agentfm_integrations import _tasks
from agentfm_integrations.llama_index._batch import Coalescer, ItemTrace, Kind
from agentfm_integrations.llama_index._convert import (
    chat_response,
    completion_response,
    messages_to_wire,
    scatter_error,
    scatter_meta,
)
from agentfm_integrations.llama_index._prompted import usage_kwargs

if TYPE_CHECKING:
    import weakref
    from collections.abc import AsyncIterator, Iterator, Sequence

    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
    from llama_index.core.callbacks import CallbackManager

    from agentfm import AgentFMClient, AsyncAgentFMClient, ScatterResult, WorkerProfile
    from agentfm_integrations.llama_index._convert import ResponseMeta

dispatcher = get_dispatcher(__name__)


def chat_prompt(messages: Sequence[ChatMessage]) -> str:
    """Flatten a conversation into the prompt the gateway's chat route would send an agent."""
    return flatten_messages(messages_to_wire(messages))


class BatchMethods:
    """Batch and coalescing methods of `AgentFM`, each batch one scatter over matching peers."""

    if TYPE_CHECKING:
        # Provided by `AgentFM`: its pydantic fields, clients and LlamaIndex plumbing.
        model: str
        timeout: float | None
        max_retries: int
        min_honesty: float | None
        max_concurrency: int | None
        coalesce_window_ms: float | None
        coalesce_max_batch: int
        callback_manager: CallbackManager
        _coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer]

        @property
        def client(self) -> AgentFMClient: ...

        @property
        def async_client(self) -> AsyncAgentFMClient: ...

        def to_payload(self) -> dict[str, Any]: ...

        def _completion_prompt(self, prompt: str, formatted: bool) -> str: ...

    # -- one scatter -------------------------------------------------------------------------

    def _scatter_args(
        self, model: str, workers: Sequence[WorkerProfile], max_concurrency: int | None
    ) -> dict[str, Any]:
        """``scatter_iter`` keywords over the peers matching ``model``.

        ``max_concurrency`` None (and the field None): the SDK sizes the scatter by the peers'
        advertised task slots.
        """
        return {
            "peer_ids": _tasks.require_peers(model, workers),
            "max_concurrency": max_concurrency or self.max_concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "min_honesty": self.min_honesty,
        }

    def _scatter(
        self, model: str, prompts: list[str], max_concurrency: int | None
    ) -> Iterator[ScatterResult]:
        """Yield each item's final result as it completes (one SDK scatter)."""
        workers = self.client.workers.match(model, min_honesty=self.min_honesty)
        args = self._scatter_args(model, workers, max_concurrency)
        yield from self.client.tasks.scatter_iter(prompts, **args)

    async def _ascatter(
        self, model: str, prompts: list[str], max_concurrency: int | None
    ) -> AsyncIterator[ScatterResult]:
        """Async twin of `_scatter`."""
        client = self.async_client
        workers = await client.workers.match(model, min_honesty=self.min_honesty)
        args = self._scatter_args(model, workers, max_concurrency)
        async for result in client.tasks.scatter_iter(prompts, **args):
            yield result

    async def _scatter_all(self, model: str, prompts: list[str]) -> list[ScatterResult]:
        results: list[ScatterResult | None] = [None] * len(prompts)
        async for result in self._ascatter(model, prompts, None):
            results[result.index] = result
        return [r for r in results if r is not None]

    def _coalescer(self) -> Coalescer:
        loop = asyncio.get_running_loop()
        coalescer = self._coalescers.get(loop)
        if coalescer is None:
            window = (self.coalesce_window_ms or 0.0) / 1000.0
            coalescer = Coalescer(self._scatter_all, window, self.coalesce_max_batch)
            self._coalescers[loop] = coalescer
        return coalescer

    async def _coalesced(self, model: str, prompt: str) -> tuple[ScatterResult, ResponseMeta]:
        """Run ``prompt`` in the coalesced scatter; return its result and provenance."""
        result = await self._coalescer().submit(model, prompt)
        return result, scatter_meta(result, model, describe_files(result.artifacts))

    # -- per-item tracing ----------------------------------------------------------------------

    def _start(
        self,
        kind: Kind,
        prompts: list[str],
        chats: Sequence[Sequence[ChatMessage]] | None,
        model: str | None,
        max_concurrency: int | None,
    ) -> _BatchRun | None:
        """Open one traced LLM call per item (None for an empty batch: nothing to run)."""
        if not prompts:
            return None
        payload = self.to_payload()
        if kind == "chat" and chats is not None:
            traces = [ItemTrace(self.callback_manager, payload, messages=m) for m in chats]
        else:
            traces = [ItemTrace(self.callback_manager, payload, prompt=p) for p in prompts]
        return _BatchRun(kind, prompts, model or self.model, max_concurrency, traces)

    def _run_batch(self, run: _BatchRun | None, return_exceptions: bool) -> list[Any]:
        if run is None:
            return []
        with run:
            for result in self._scatter(run.model, run.prompts, run.max_concurrency):
                run.take(result)
        return run.outcome(return_exceptions)

    async def _arun_batch(self, run: _BatchRun | None, return_exceptions: bool) -> list[Any]:
        if run is None:
            return []
        with run:
            async for result in self._ascatter(run.model, run.prompts, run.max_concurrency):
                run.take(result)
        return run.outcome(return_exceptions)

    # -- public batch methods --------------------------------------------------------------------

    @overload
    def batch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        formatted: bool = ...,
        model: str | None = ...,
    ) -> list[CompletionResponse]: ...

    @overload
    def batch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        formatted: bool = ...,
        model: str | None = ...,
    ) -> list[CompletionResponse | BaseException]: ...

    @dispatcher.span
    def batch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        formatted: bool = False,
        model: str | None = None,
    ) -> list[CompletionResponse] | list[CompletionResponse | BaseException]:
        """Complete many prompts as one scatter over every matching peer.

        Each prompt is one task, retried on an untried peer if its worker fails. Every item
        emits its own LLM start/end events.

        Args:
            prompts: The prompts, sent verbatim (after `completion_to_prompt` unless
                `formatted`).
            max_concurrency: Items in flight at once (default: the `max_concurrency` field,
                else None: the SDK sizes it by the peers' advertised task slots).
            return_exceptions: Put a failed item's exception in its slot instead of raising
                the first one.
            formatted: The prompts are already formatted.
            model: Route this batch by another model than the field.

        Returns:
            One response per prompt, in input order.
        """
        texts = [self._completion_prompt(p, formatted) for p in prompts]
        run = self._start("completion", texts, None, model, max_concurrency)
        return self._run_batch(run, return_exceptions)

    @overload
    async def abatch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        formatted: bool = ...,
        model: str | None = ...,
    ) -> list[CompletionResponse]: ...

    @overload
    async def abatch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        formatted: bool = ...,
        model: str | None = ...,
    ) -> list[CompletionResponse | BaseException]: ...

    @dispatcher.span
    async def abatch_complete(
        self,
        prompts: Sequence[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        formatted: bool = False,
        model: str | None = None,
    ) -> list[CompletionResponse] | list[CompletionResponse | BaseException]:
        """Complete many prompts as one scatter, without blocking the event loop.

        See `batch_complete` for the arguments.
        """
        texts = [self._completion_prompt(p, formatted) for p in prompts]
        run = self._start("completion", texts, None, model, max_concurrency)
        return await self._arun_batch(run, return_exceptions)

    @overload
    def batch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        model: str | None = ...,
    ) -> list[ChatResponse]: ...

    @overload
    def batch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        model: str | None = ...,
    ) -> list[ChatResponse | BaseException]: ...

    @dispatcher.span
    def batch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        model: str | None = None,
    ) -> list[ChatResponse] | list[ChatResponse | BaseException]:
        """Answer many conversations as one scatter over every matching peer.

        Each conversation is flattened exactly as the gateway flattens a chat request
        (`agentfm.flatten_messages`), so an agent sees the same prompt as from `chat`.

        Args:
            batch: The conversations.
            max_concurrency: Items in flight at once (default: the `max_concurrency` field,
                else None: the SDK sizes it by the peers' advertised task slots).
            return_exceptions: Put a failed item's exception in its slot instead of raising
                the first one.
            model: Route this batch by another model than the field.

        Returns:
            One response per conversation, in input order.
        """
        prompts = [chat_prompt(messages) for messages in batch]
        run = self._start("chat", prompts, batch, model, max_concurrency)
        return self._run_batch(run, return_exceptions)

    @overload
    async def abatch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        model: str | None = ...,
    ) -> list[ChatResponse]: ...

    @overload
    async def abatch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        model: str | None = ...,
    ) -> list[ChatResponse | BaseException]: ...

    @dispatcher.span
    async def abatch_chat(
        self,
        batch: Sequence[Sequence[ChatMessage]],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        model: str | None = None,
    ) -> list[ChatResponse] | list[ChatResponse | BaseException]:
        """Answer many conversations as one scatter, without blocking the event loop.

        See `batch_chat` for the arguments.
        """
        prompts = [chat_prompt(messages) for messages in batch]
        run = self._start("chat", prompts, batch, model, max_concurrency)
        return await self._arun_batch(run, return_exceptions)


class _BatchRun:
    """One batch's per-item outcomes and traces, filled as scatter results arrive.

    Used as a context manager: if the scatter itself breaks, every item still open is
    traced as failed with that error before it propagates.
    """

    def __init__(
        self,
        kind: Kind,
        prompts: list[str],
        model: str,
        max_concurrency: int | None,
        traces: list[ItemTrace],
    ) -> None:
        self._kind = kind
        self.prompts = prompts
        self.model = model
        self.max_concurrency = max_concurrency
        self._traces = traces
        self._outputs: list[Any] = [None] * len(prompts)

    def __enter__(self) -> _BatchRun:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        for output, trace in zip(self._outputs, self._traces, strict=True):
            if output is None:
                trace.failed(exc)

    def take(self, result: ScatterResult) -> None:
        """Close one item with its response, or its error."""
        trace, prompt = self._traces[result.index], self.prompts[result.index]
        if result.status != "success":
            error = scatter_error(result)
            trace.failed(error)
            self._outputs[result.index] = error
            return
        meta = scatter_meta(result, self.model, describe_files(result.artifacts))
        wrap = completion_response if self._kind == "completion" else chat_response
        response: CompletionResponse | ChatResponse = wrap(result.text, meta)
        response.additional_kwargs.update(usage_kwargs(prompt, result.text))
        trace.succeeded(response)
        self._outputs[result.index] = response

    def outcome(self, return_exceptions: bool) -> list[Any]:
        """The responses in input order; the first error raised unless ``return_exceptions``."""
        if not return_exceptions:
            for item in self._outputs:
                if isinstance(item, BaseException):
                    raise item
        return self._outputs
