"""`AgentFM`: the AgentFM mesh as a LlamaIndex `LLM`, with a scatter-backed batch API.

Routing follows the gateway's `model` rule: a peer id pins one worker; an agent name or
an engine name matches every such worker, least-loaded first.

* Chat and completion calls run as one task on the native task route, where the stream
  names the serving peer and the task and says whether files follow (`FILES_INCOMING`).
  The worker is chosen by the SDK's copy of the gateway matcher (`client.workers.match`),
  with failover to an untried peer while no text has been streamed. A completion sends
  its prompt verbatim; a chat sends its messages flattened exactly as the gateway's
  OpenAI-compatible route flattens them (`agentfm.flatten_messages`), so an agent sees
  the same prompt either way.
* Batches (`batch_complete`, `abatch_complete`, `batch_chat`, `abatch_chat`) and, when
  `coalesce_window_ms` is set, concurrent `acomplete`/`achat` calls run as one SDK
  scatter over all matching peers (see `_batch_methods.py`).

Tool calling and structured output are *prompted* (the mesh carries one prompt string and
ignores `tools`): this is a `FunctionCallingLLM` whose `chat_with_tools` writes the tools'
schemas and a JSON reply contract into the prompt and parses the reply into `ToolSelection`s,
and whose `structured_predict` validates the answer and re-asks on failure. It only works
with workers that are instruction-following LLMs, so `prompted_tools` (default: what the
workers advertise) also decides `metadata.is_function_calling_model`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

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
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM

from agentfm import (
    DEFAULT_IDLE_TIMEOUT,
    AgentFMClient,
    AsyncAgentFMClient,
    CommentReceipt,
    FileRef,
    InvalidRequestError,
    describe_files,
    redact_url,
)
from agentfm_integrations import _tasks
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations._clients import ClientHolder, client_kwargs
from agentfm_integrations._redaction import RedactedGatewayURL
from agentfm_integrations.llama_index._batch_methods import BatchMethods
from agentfm_integrations.llama_index._convert import (
    ResponseT,
    TaskResponses,
    Wrap,
    chat_response,
    completion_response,
)
from agentfm_integrations.llama_index._prompted import (
    ToolRequest,
    prompted_response,
    usage_kwargs,
)
from agentfm_integrations.llama_index._prompted_methods import PromptedMethods

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Sequence

    from pydantic import BaseModel

    from agentfm_integrations.llama_index._batch import Coalescer

    _ModelT = TypeVar("_ModelT", bound=BaseModel)

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "AgentFM"]

DEFAULT_CONTEXT_WINDOW = 3900
"""Context window reported in `metadata` unless set: LlamaIndex's own default, since a mesh
agent does not advertise one."""

DEFAULT_NUM_OUTPUT = 256
"""Output budget reported in `metadata` unless set (LlamaIndex's default)."""


class AgentFM(BatchMethods, PromptedMethods, RedactedGatewayURL, FunctionCallingLLM):
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
    idle_timeout: float | None = Field(
        default=DEFAULT_IDLE_TIMEOUT,
        gt=0,
        description="Seconds a task stream may stay silent before the call fails; None: no bound.",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Failovers to untried peers per call or batch item, and retries of "
        "idempotent calls.",
    )
    min_honesty: float | None = Field(
        default=None,
        description="Only dispatch to peers whose honesty score is at least this.",
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
        description="Collect the files a chat or completion task announces; False leaves "
        "them on the gateway.",
    )
    artifact_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a chat or completion call waits for files its task announced.",
    )
    max_concurrency: int | None = Field(
        default=None,
        gt=0,
        description="Batch items in flight at once; None: the SDK scatter sizes it by the "
        "matched peers' advertised task slots.",
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
    prompted_tools: bool | None = Field(
        default=None,
        description="Prompted tool calling and structured output. None: on when every "
        "worker matching `model` advertises an instruction-following capability "
        "(tool-calling, llm, instruct...) or an ...instruct... engine (looked up once).",
    )
    max_reasks: int = Field(
        default=2,
        ge=0,
        description="Structured output: re-asks of an invalid answer, with its error.",
    )

    _clients: ClientHolder | None = PrivateAttr(default=None)
    _given: tuple[AgentFMClient | None, AsyncAgentFMClient | None] = PrivateAttr(
        default=(None, None)
    )
    _coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )
    _prompted_ok: bool | None = PrivateAttr(default=None)

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
            is_function_calling_model=self._prompted_enabled(),
            model_name=self.model,
        )

    def to_payload(self) -> dict[str, Any]:
        """Return what tracing may see: the metadata and routing, never the key."""
        return {**super().to_payload(), "gateway_url": redact_url(self.gateway_url)}

    # -- clients ---------------------------------------------------------------------------

    def _holder(self) -> ClientHolder:
        if self._clients is None:
            settings = client_kwargs(
                gateway_url=self.gateway_url,
                api_key=self.api_key,
                timeout=self.timeout,
                retries=self.max_retries,
                artifacts_dir=self.artifacts_dir,
                idle_timeout=self.idle_timeout,
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

    def rate_worker(
        self,
        served: ChatResponse | CompletionResponse | str,
        rating: float,
        comment: str = "rated by a LlamaIndex app",
    ) -> CommentReceipt:
        """Rate the worker that served a response (``additional_kwargs["peer_id"]``).

        The gateway signs a comment and an ``honesty`` rating (-1..1) into its ledger.
        """
        return self.client.peers.comment(_served_by(served), comment, rating=rating)

    async def arate_worker(
        self,
        served: ChatResponse | CompletionResponse | str,
        rating: float,
        comment: str = "rated by a LlamaIndex app",
    ) -> CommentReceipt:
        """Async twin of `rate_worker`."""
        return await self.async_client.peers.comment(_served_by(served), comment, rating=rating)

    async def aclose(self) -> None:
        """Flush coalesced calls and close the async client this LLM built for this loop."""
        coalescer = self._coalescers.pop(asyncio.get_running_loop(), None)
        if coalescer is not None:
            await coalescer.aclose()
        await self._holder().aclose()

    # -- one task on the native route ----------------------------------------------------------

    def _route(self, kwargs: dict[str, Any]) -> str:
        model = kwargs.get("model") or self.model
        return str(model)

    def _completion_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted or self.completion_to_prompt is None:
            return prompt
        return self.completion_to_prompt(prompt)

    def _wants_files(self, end: _tasks.StreamEnd) -> str | None:
        """The task id whose files to collect, or None (no files announced, or not wanted)."""
        if self.fetch_artifacts and end.files_incoming and end.task_id:
            return end.task_id
        return None

    def _files(self, end: _tasks.StreamEnd) -> list[FileRef]:
        task_id = self._wants_files(end)
        if task_id is None:
            return []
        tasks = self.client.tasks
        return describe_files(tasks.collect_artifacts(task_id, timeout=self.artifact_timeout))

    async def _afiles(self, end: _tasks.StreamEnd) -> list[FileRef]:
        task_id = self._wants_files(end)
        if task_id is None:
            return []
        tasks = self.async_client.tasks
        files = await tasks.collect_artifacts(task_id, timeout=self.artifact_timeout)
        return describe_files(files)

    def _task_route(self, model: str) -> dict[str, Any]:
        return _tasks.route_kwargs(
            model, max_retries=self.max_retries, timeout=self.timeout, min_honesty=self.min_honesty
        )

    def _iter_task(
        self, prompt: str, model: str, wrap: Wrap[ResponseT]
    ) -> Generator[ResponseT, None, None]:
        """Stream one task as responses: one per text piece, then one carrying the files."""
        out = TaskResponses(model, wrap)
        for event in _tasks.stream_task(self.client, prompt=prompt, **self._task_route(model)):
            if isinstance(event, _tasks.StreamEnd):
                yield out.end(event, self._files(event))
            else:
                yield out.piece(event)

    async def _aiter_task(
        self, prompt: str, model: str, wrap: Wrap[ResponseT]
    ) -> AsyncGenerator[ResponseT, None]:
        """Async twin of `_iter_task`."""
        out = TaskResponses(model, wrap)
        route = self._task_route(model)
        async for event in _tasks.astream_task(self.async_client, prompt=prompt, **route):
            if isinstance(event, _tasks.StreamEnd):
                yield out.end(event, await self._afiles(event))
            else:
                yield out.piece(event)

    def _run_task(self, prompt: str, model: str, wrap: Wrap[ResponseT]) -> ResponseT:
        *_, last = self._iter_task(prompt, model, wrap)
        last.delta = None
        return _with_usage(last, prompt)

    async def _arun_task(self, prompt: str, model: str, wrap: Wrap[ResponseT]) -> ResponseT:
        last = [r async for r in self._aiter_task(prompt, model, wrap)][-1]
        last.delta = None
        return _with_usage(last, prompt)

    def _stream_task(
        self, prompt: str, model: str, wrap: Wrap[ResponseT]
    ) -> Generator[ResponseT, None, None]:
        for response in self._iter_task(prompt, model, wrap):
            # The closing response (empty delta, after the task ended) carries the usage.
            yield _with_usage(response, prompt) if response.delta == "" else response

    async def _astream_task(
        self, prompt: str, model: str, wrap: Wrap[ResponseT]
    ) -> AsyncGenerator[ResponseT, None]:
        async for response in self._aiter_task(prompt, model, wrap):
            yield _with_usage(response, prompt) if response.delta == "" else response

    def _prompted_stream(
        self, prompt: str, model: str, request: ToolRequest | tc.OutputSchema
    ) -> Generator[ChatResponse, None, None]:
        # A prompted reply is parsed once whole: its text and tool calls come in one piece.
        done = prompted_response(self._run_task(prompt, model, chat_response), request)
        done.delta = done.message.content or ""
        yield done

    async def _aprompted_stream(
        self, prompt: str, model: str, request: ToolRequest | tc.OutputSchema
    ) -> AsyncGenerator[ChatResponse, None]:
        done = prompted_response(await self._arun_task(prompt, model, chat_response), request)
        done.delta = done.message.content or ""
        yield done

    # -- chat ------------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation as one task; `model=` overrides the routing for this call."""
        request = self._request(kwargs)
        response = self._run_task(
            self._prompt(messages, request), self._route(kwargs), chat_response
        )
        return response if request is None else prompted_response(response, request)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a conversation's answer line by line; the last response carries the files.

        With tools or a schema (prompted), the reply comes as one response once parsed.
        """
        request = self._request(kwargs)
        prompt, model = self._prompt(messages, request), self._route(kwargs)
        if request is not None:
            return self._prompted_stream(prompt, model, request)
        return self._stream_task(prompt, model, chat_response)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation without blocking the event loop."""
        model, request = self._route(kwargs), await self._arequest(kwargs)
        prompt = self._prompt(messages, request)
        if self.coalesce_window_ms is not None:
            result, meta = await self._coalesced(model, prompt)
            response = _with_usage(chat_response(result.text, meta), prompt)
        else:
            response = await self._arun_task(prompt, model, chat_response)
        return response if request is None else prompted_response(response, request)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a conversation's answer without blocking the event loop."""
        request = await self._arequest(kwargs)
        prompt, model = self._prompt(messages, request), self._route(kwargs)
        if request is not None:
            return self._aprompted_stream(prompt, model, request)
        return self._astream_task(prompt, model, chat_response)

    # -- completion --------------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Run the prompt verbatim as one task; `model=` overrides the routing."""
        text = self._completion_prompt(prompt, formatted)
        return self._run_task(text, self._route(kwargs), completion_response)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a task's output line by line; the last response carries the files."""
        text = self._completion_prompt(prompt, formatted)
        return self._stream_task(text, self._route(kwargs), completion_response)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Run the prompt as one task without blocking the event loop."""
        model = self._route(kwargs)
        text = self._completion_prompt(prompt, formatted)
        if self.coalesce_window_ms is not None:
            result, meta = await self._coalesced(model, text)
            return _with_usage(completion_response(result.text, meta), text)
        return await self._arun_task(text, model, completion_response)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a task's output without blocking the event loop."""
        text = self._completion_prompt(prompt, formatted)
        return self._astream_task(text, self._route(kwargs), completion_response)


def _with_usage(response: ResponseT, prompt: str) -> ResponseT:
    """Add the estimated token counts (``usage_estimated`` is True: the gateway counts none)."""
    text = response.message.content if isinstance(response, ChatResponse) else response.text
    response.additional_kwargs.update(usage_kwargs(prompt, text or ""))
    return response


def _served_by(served: ChatResponse | CompletionResponse | str) -> str:
    """The peer id behind a response, or the id itself."""
    if isinstance(served, str):
        return served
    peer = served.additional_kwargs.get("peer_id")
    if not isinstance(peer, str) or not peer:
        raise InvalidRequestError("this response carries no peer_id", code="no_peer_id")
    return peer
