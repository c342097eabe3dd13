"""`AgentFM`: the AgentFM mesh as a LlamaIndex `LLM`, with a scatter-backed batch API.

Routing follows the gateway's `model` rule: a peer id pins one worker; an agent name or
an engine name matches every such worker, least-loaded first.

* Chat calls go through the gateway's OpenAI-compatible route (`/v1/chat/completions`,
  streamed internally so the serving `peer_id` and `task_id` are known), so the gateway's
  own matcher picks the worker.
* Completion calls go through the native task route with the prompt verbatim (the
  OpenAI text-completion route does not say which peer served it); the worker is chosen
  by the SDK's copy of the gateway matcher (`client.workers.match`), with failover to an
  untried peer while no text has been streamed.
* Batches (`batch_complete`, `abatch_complete`, `batch_chat`, `abatch_chat`) and, when
  `coalesce_window_ms` is set, concurrent `acomplete`/`achat` calls run as one SDK
  scatter over all matching peers (the scatter fails items over to untried peers).

Tool calling is not offered: the mesh ignores `tools`, so this is an `LLM`, not a
`FunctionCallingLLM`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, Literal, overload

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from agentfm import AgentFMClient, AsyncAgentFMClient, describe_files, flatten_messages
from agentfm_integrations import _routing
from agentfm_integrations._clients import ClientHolder, client_kwargs
from agentfm_integrations.llama_index._batch import Coalescer, ItemTrace, Kind
from agentfm_integrations.llama_index._convert import (
    ResponseMeta,
    chat_response,
    completion_response,
    messages_to_wire,
    scatter_error,
    scatter_meta,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from pathlib import Path

    from agentfm import ScatterResult

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "AgentFM"]

DEFAULT_CONTEXT_WINDOW = 3900
"""Context window reported in `metadata` unless set: LlamaIndex's own default, since a mesh
agent does not advertise one."""

DEFAULT_NUM_OUTPUT = 256
"""Output budget reported in `metadata` unless set (LlamaIndex's default)."""

dispatcher = get_dispatcher(__name__)


class AgentFM(LLM):
    """Use agents on an AgentFM mesh as a LlamaIndex LLM.

    Example:
        ```python
        from agentfm_integrations.llama_index import AgentFM

        llm = AgentFM(model="echo", gateway_url="http://127.0.0.1:8080")
        print(llm.complete("hello").text)
        answers = await llm.abatch_complete(["a", "b", "c"])  # one scatter
        ```
    """

    model: str = Field(
        description="Peer id (pins one worker), agent name or engine (routed to the "
        "least-loaded match)."
    )
    gateway_url: str | None = Field(
        default=None, description="Gateway URL; None reads AGENTFM_GATEWAY_URL, then the default."
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Gateway bearer key; None reads AGENTFM_API_KEY. Never serialised.",
    )
    timeout: float | None = Field(
        default=None, description="Per-request (per scatter attempt) timeout in seconds."
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Failovers to untried peers per call or batch item, and retries of "
        "idempotent calls.",
    )
    context_window: int = Field(
        default=DEFAULT_CONTEXT_WINDOW, gt=0, description="Context window reported in metadata."
    )
    num_output: int = Field(
        default=DEFAULT_NUM_OUTPUT, gt=0, description="Output token budget reported in metadata."
    )
    artifacts_dir: str | None = Field(
        default=None, description="Where artifact files are extracted; None uses the SDK default."
    )
    fetch_artifacts: bool = Field(
        default=True,
        description="After a chat call, ask the gateway for the task's artifact files.",
    )
    chat_artifact_wait: float = Field(
        default=0.0,
        ge=0,
        description="Seconds a chat call waits for files: the OpenAI-compatible route does "
        "not say whether files are coming, so by default it asks once.",
    )
    artifact_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a completion waits for files its task announced.",
    )
    max_concurrency: int = Field(
        default=8, gt=0, description="Default number of batch items in flight at once."
    )
    coalesce_window_ms: float | None = Field(
        default=None,
        ge=0,
        description="Opt-in: merge acomplete/achat calls made within this window into one "
        "scatter. None disables coalescing.",
    )
    coalesce_max_batch: int = Field(
        default=64, gt=0, description="Flush a coalesced scatter early at this many prompts."
    )

    _clients: ClientHolder | None = PrivateAttr(default=None)
    _given: tuple[AgentFMClient | None, AsyncAgentFMClient | None] = PrivateAttr(
        default=(None, None)
    )
    _coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

    def __init__(
        self,
        model: str,
        *,
        client: AgentFMClient | None = None,
        async_client: AsyncAgentFMClient | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure the LLM.

        Args:
            model: Peer id, agent name or engine name to route to.
            client: A sync SDK client to use instead of building one from the settings
                (it is not closed by `close()`).
            async_client: An async SDK client to use instead of building one per event loop
                (it is not closed by `aclose()`).
            **kwargs: The other fields (`gateway_url`, `api_key`, `timeout`, ...).
        """
        kwargs["model"] = model
        super().__init__(**kwargs)
        self._given = (client, async_client)

    @classmethod
    def class_name(cls) -> str:
        """Return the serialisation key of this class."""
        return "AgentFM"

    @property
    def metadata(self) -> LLMMetadata:
        """Describe the model to LlamaIndex's prompt helpers and agents."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.num_output,
            is_chat_model=True,
            is_function_calling_model=False,
            model_name=self.model,
        )

    def to_payload(self) -> dict[str, Any]:
        """Return what tracing may see: the metadata and routing, never the key."""
        return {**super().to_payload(), "gateway_url": self.gateway_url}

    # -- clients ---------------------------------------------------------------------------

    def _holder(self) -> ClientHolder:
        if self._clients is None:
            settings = client_kwargs(
                gateway_url=self.gateway_url,
                api_key=self.api_key,
                timeout=self.timeout,
                retries=self.max_retries,
                artifacts_dir=self.artifacts_dir,
            )
            client, async_client = self._given
            self._clients = ClientHolder(settings, client=client, async_client=async_client)
        return self._clients

    @property
    def client(self) -> AgentFMClient:
        """The sync SDK client (built from the settings on first use)."""
        return self._holder().sync

    @property
    def async_client(self) -> AsyncAgentFMClient:
        """The async SDK client of the running event loop (built on first use)."""
        return self._holder().async_

    def close(self) -> None:
        """Close the sync client this LLM built."""
        self._holder().close()

    async def aclose(self) -> None:
        """Flush coalesced calls and close the async client this LLM built for this loop."""
        coalescer = self._coalescers.pop(asyncio.get_running_loop(), None)
        if coalescer is not None:
            await coalescer.aclose()
        await self._holder().aclose()

    # -- routing and artifacts ---------------------------------------------------------------

    def _route(self, kwargs: dict[str, Any]) -> str:
        model = kwargs.get("model") or self.model
        return str(model)

    def _peers_for(self, model: str) -> list[str]:
        return _routing.require_peers(model, self.client.workers.match(model))

    async def _apeers_for(self, model: str) -> list[str]:
        return _routing.require_peers(model, await self.async_client.workers.match(model))

    def _files(self, task_id: str | None, wait: float) -> list[Path]:
        if not task_id:
            return []
        return self.client.tasks.collect_artifacts(task_id, timeout=wait)

    async def _afiles(self, task_id: str | None, wait: float) -> list[Path]:
        if not task_id:
            return []
        return await self.async_client.tasks.collect_artifacts(task_id, timeout=wait)

    def _completion_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted or self.completion_to_prompt is None:
            return prompt
        return self.completion_to_prompt(prompt)

    # -- chat: the gateway's OpenAI-compatible route -------------------------------------------

    def _iter_chat(self, messages: Sequence[ChatMessage], model: str) -> ChatResponseGen:
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="v1")
        text = ""
        stream = self.client.openai.chat.completions.create(
            model=model, messages=messages_to_wire(messages), stream=True, timeout=self.timeout
        )
        with stream:
            for chunk in stream:
                meta["peer_id"] = chunk.agentfm_peer_id or meta["peer_id"]
                meta["task_id"] = chunk.agentfm_task_id or meta["task_id"]
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    text += delta
                    yield chat_response(text, meta, delta=delta)
        if self.fetch_artifacts:
            meta["files"] = describe_files(self._files(meta["task_id"], self.chat_artifact_wait))
        yield chat_response(text, meta, delta="")

    async def _aiter_chat(
        self, messages: Sequence[ChatMessage], model: str
    ) -> ChatResponseAsyncGen:
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="v1")
        text = ""
        stream = await self.async_client.openai.chat.completions.create(
            model=model, messages=messages_to_wire(messages), stream=True, timeout=self.timeout
        )
        async with stream:
            async for chunk in stream:
                meta["peer_id"] = chunk.agentfm_peer_id or meta["peer_id"]
                meta["task_id"] = chunk.agentfm_task_id or meta["task_id"]
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    text += delta
                    yield chat_response(text, meta, delta=delta)
        if self.fetch_artifacts:
            files = await self._afiles(meta["task_id"], self.chat_artifact_wait)
            meta["files"] = describe_files(files)
        yield chat_response(text, meta, delta="")

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation; `model=` overrides the routing for this call."""
        *_, last = self._iter_chat(messages, self._route(kwargs))
        last.delta = None
        return last

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a conversation's answer line by line; the last response carries the files."""
        return self._iter_chat(messages, self._route(kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation without blocking the event loop."""
        model = self._route(kwargs)
        if self.coalesce_window_ms is not None:
            prompt = flatten_messages(messages_to_wire(messages))
            result = await self._coalescer().submit(model, prompt)
            meta = scatter_meta(result, model, describe_files(result.artifacts))
            return chat_response(result.text, meta)
        last = [r async for r in self._aiter_chat(messages, model)][-1]
        last.delta = None
        return last

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a conversation's answer without blocking the event loop."""
        return self._aiter_chat(messages, self._route(kwargs))

    # -- completion: the native task route -----------------------------------------------------

    def _iter_complete(self, prompt: str, model: str) -> CompletionResponseGen:
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="task")
        text = ""
        for event in _routing.stream_task(
            self.client,
            model=model,
            prompt=prompt,
            max_retries=self.max_retries,
            timeout=self.timeout,
        ):
            if isinstance(event, _routing.StreamEnd):
                _served(meta, event)
                if event.files_incoming:
                    files = self._files(event.task_id, self.artifact_timeout)
                    meta["files"] = describe_files(files)
                yield completion_response(text, meta, delta="")
            else:
                text += event
                yield completion_response(text, meta, delta=event)

    async def _aiter_complete(self, prompt: str, model: str) -> CompletionResponseAsyncGen:
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="task")
        text = ""
        async for event in _routing.astream_task(
            self.async_client,
            model=model,
            prompt=prompt,
            max_retries=self.max_retries,
            timeout=self.timeout,
        ):
            if isinstance(event, _routing.StreamEnd):
                _served(meta, event)
                if event.files_incoming:
                    files = await self._afiles(event.task_id, self.artifact_timeout)
                    meta["files"] = describe_files(files)
                yield completion_response(text, meta, delta="")
            else:
                text += event
                yield completion_response(text, meta, delta=event)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Run the prompt verbatim as one task; `model=` overrides the routing."""
        *_, last = self._iter_complete(
            self._completion_prompt(prompt, formatted), self._route(kwargs)
        )
        last.delta = None
        return last

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a task's output line by line; the last response carries the files."""
        return self._iter_complete(self._completion_prompt(prompt, formatted), self._route(kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Run the prompt as one task without blocking the event loop."""
        model = self._route(kwargs)
        text = self._completion_prompt(prompt, formatted)
        if self.coalesce_window_ms is not None:
            result = await self._coalescer().submit(model, text)
            meta = scatter_meta(result, model, describe_files(result.artifacts))
            return completion_response(result.text, meta)
        last = [r async for r in self._aiter_complete(text, model)][-1]
        last.delta = None
        return last

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a task's output without blocking the event loop."""
        return self._aiter_complete(self._completion_prompt(prompt, formatted), self._route(kwargs))

    # -- batch: one scatter ------------------------------------------------------------------

    def _scatter(
        self, model: str, prompts: list[str], max_concurrency: int | None
    ) -> Iterator[ScatterResult]:
        """Yield each item's final result as it completes (one SDK scatter)."""
        yield from self.client.tasks.scatter_iter(
            prompts,
            peer_ids=self._peers_for(model),
            max_concurrency=max_concurrency or self.max_concurrency,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )

    async def _ascatter(
        self, model: str, prompts: list[str], max_concurrency: int | None
    ) -> AsyncIterator[ScatterResult]:
        """Yield each item's final result as it completes (one SDK scatter)."""
        async for result in self.async_client.tasks.scatter_iter(
            prompts,
            peer_ids=await self._apeers_for(model),
            max_concurrency=max_concurrency or self.max_concurrency,
            max_retries=self.max_retries,
            timeout=self.timeout,
        ):
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

    def _finish(
        self, kind: Kind, result: ScatterResult, model: str, trace: ItemTrace
    ) -> CompletionResponse | ChatResponse | BaseException:
        if result.status != "success":
            error = scatter_error(result)
            trace.failed(error)
            return error
        meta = scatter_meta(result, model, describe_files(result.artifacts))
        response: CompletionResponse | ChatResponse = (
            completion_response(result.text, meta)
            if kind == "completion"
            else chat_response(result.text, meta)
        )
        trace.succeeded(response)
        return response

    def _start(
        self, kind: Kind, prompts: list[str], chats: Sequence[Sequence[ChatMessage]] | None
    ) -> list[ItemTrace]:
        payload = self.to_payload()
        if kind == "chat" and chats is not None:
            return [ItemTrace(self.callback_manager, payload, messages=m) for m in chats]
        return [ItemTrace(self.callback_manager, payload, prompt=p) for p in prompts]

    @staticmethod
    def _outcome(outputs: list[Any], return_exceptions: bool) -> list[Any]:
        if not return_exceptions:
            for item in outputs:
                if isinstance(item, BaseException):
                    raise item
        return outputs

    def _run_batch(
        self,
        kind: Kind,
        prompts: list[str],
        chats: Sequence[Sequence[ChatMessage]] | None,
        model: str,
        max_concurrency: int | None,
        return_exceptions: bool,
    ) -> list[Any]:
        if not prompts:
            return []
        traces = self._start(kind, prompts, chats)
        outputs: list[Any] = [None] * len(prompts)
        try:
            for result in self._scatter(model, prompts, max_concurrency):
                outputs[result.index] = self._finish(kind, result, model, traces[result.index])
        except BaseException as exc:
            for i, trace in enumerate(traces):
                if outputs[i] is None:
                    trace.failed(exc)
            raise
        return self._outcome(outputs, return_exceptions)

    async def _arun_batch(
        self,
        kind: Kind,
        prompts: list[str],
        chats: Sequence[Sequence[ChatMessage]] | None,
        model: str,
        max_concurrency: int | None,
        return_exceptions: bool,
    ) -> list[Any]:
        if not prompts:
            return []
        traces = self._start(kind, prompts, chats)
        outputs: list[Any] = [None] * len(prompts)
        try:
            async for result in self._ascatter(model, prompts, max_concurrency):
                outputs[result.index] = self._finish(kind, result, model, traces[result.index])
        except BaseException as exc:
            for i, trace in enumerate(traces):
                if outputs[i] is None:
                    trace.failed(exc)
            raise
        return self._outcome(outputs, return_exceptions)

    def _chat_prompts(self, batch: Sequence[Sequence[ChatMessage]]) -> list[str]:
        return [flatten_messages(messages_to_wire(messages)) for messages in batch]

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
            max_concurrency: Items in flight at once (default: the `max_concurrency` field).
            return_exceptions: Put a failed item's exception in its slot instead of raising
                the first one.
            formatted: The prompts are already formatted.
            model: Route this batch by another model than the field.

        Returns:
            One response per prompt, in input order.
        """
        texts = [self._completion_prompt(p, formatted) for p in prompts]
        return self._run_batch(
            "completion", texts, None, model or self.model, max_concurrency, return_exceptions
        )

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
        return await self._arun_batch(
            "completion", texts, None, model or self.model, max_concurrency, return_exceptions
        )

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
            max_concurrency: Items in flight at once (default: the `max_concurrency` field).
            return_exceptions: Put a failed item's exception in its slot instead of raising
                the first one.
            model: Route this batch by another model than the field.

        Returns:
            One response per conversation, in input order.
        """
        return self._run_batch(
            "chat",
            self._chat_prompts(batch),
            batch,
            model or self.model,
            max_concurrency,
            return_exceptions,
        )

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
        return await self._arun_batch(
            "chat",
            self._chat_prompts(batch),
            batch,
            model or self.model,
            max_concurrency,
            return_exceptions,
        )


def _served(meta: ResponseMeta, end: _routing.StreamEnd) -> None:
    """Record which peer served a streamed task, and after how many attempts."""
    meta["peer_id"] = end.peer_id
    meta["task_id"] = end.task_id
    meta["attempts"] = end.attempts
    meta["peers_tried"] = list(end.peers_tried)
