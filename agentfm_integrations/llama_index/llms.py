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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.output_parsers.base import OutputParserException

from agentfm import (
    DEFAULT_IDLE_TIMEOUT,
    AgentFMClient,
    AgentFMError,
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
from agentfm_integrations.llama_index._batch_methods import BatchMethods, chat_prompt
from agentfm_integrations.llama_index._convert import (
    ResponseMeta,
    chat_response,
    completion_response,
)
from agentfm_integrations.llama_index._prompted import (
    REQUEST_KEY,
    ToolRequest,
    prompt_for,
    prompted_response,
    tool_spec,
    usage_kwargs,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Sequence

    from llama_index.core.prompts import BasePromptTemplate
    from llama_index.core.tools.types import BaseTool
    from pydantic import BaseModel

    from agentfm import WorkerProfile
    from agentfm_integrations.llama_index._batch import Coalescer

    _ModelT = TypeVar("_ModelT", bound=BaseModel)

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "AgentFM"]

DEFAULT_CONTEXT_WINDOW = 3900
"""Context window reported in `metadata` unless set: LlamaIndex's own default, since a mesh
agent does not advertise one."""

DEFAULT_NUM_OUTPUT = 256
"""Output budget reported in `metadata` unless set (LlamaIndex's default)."""

_ResponseT = TypeVar("_ResponseT", ChatResponse, CompletionResponse, covariant=True)


class _Wrap(Protocol[_ResponseT]):
    """`chat_response` or `completion_response`: how a task's text becomes a response."""

    def __call__(
        self, text: str, meta: ResponseMeta, *, delta: str | None = None
    ) -> _ResponseT: ...


class AgentFM(BatchMethods, RedactedGatewayURL, FunctionCallingLLM):
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
        description="Batch items in flight at once; None: the SDK scatter's default (the "
        "matched peers' advertised task slots).",
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

    # -- prompted tool calling ---------------------------------------------------------------

    def _decide(self, workers: Sequence[WorkerProfile]) -> bool:
        return bool(workers) and all(
            tc.advertises_prompted_tools(w.agent_capability, w.model) for w in workers
        )

    def _prompted_enabled(self) -> bool:
        """Whether prompted tools are on: the flag, else what the matching workers advertise.

        The lookup runs once; when the gateway cannot be asked, the answer is False (not
        confirmed) and is asked again next time.
        """
        if self.prompted_tools is not None:
            return self.prompted_tools
        if self._prompted_ok is None:
            try:
                # One quick probe (no retries): metadata is read often, also offline.
                with self.client.with_options(retries=0) as probe:
                    self._prompted_ok = self._decide(probe.workers.match(self.model))
            except AgentFMError:
                return False
        return self._prompted_ok

    async def _aprompted_enabled(self) -> bool:
        if self.prompted_tools is not None or self._prompted_ok is not None:
            return self._prompted_enabled()
        try:
            async with self.async_client.with_options(retries=0) as probe:
                self._prompted_ok = self._decide(await probe.workers.match(self.model))
        except AgentFMError:
            return False
        return self._prompted_ok

    def _refusal(self) -> ValueError:
        return ValueError(
            f"prompted tool calling / structured output is off for model {self.model!r}: its "
            "workers do not advertise an instruction-following LLM (capability such as "
            "'tool-calling' or 'llm'). Pass prompted_tools=True to AgentFM if they are one."
        )

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Put the tools and the tool choice into the chat kwargs (rendered per call)."""
        del verbose
        specs = [tool_spec(t) for t in tools]
        choice = tc.normalize_tool_choice(kwargs.pop("tool_choice", None), specs)
        if tool_required and choice.mode == "auto":
            choice = tc.Choice("required")
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        request = ToolRequest(specs, choice, allow_parallel_tool_calls) if specs else None
        return {"messages": messages, REQUEST_KEY: request, **kwargs}

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The validated tool calls of a prompted reply, as `ToolSelection`s.

        Raises:
            ValueError: there is none and ``error_on_no_tool_call`` is set; the message
                lists the invalid calls, if the model attempted any.
        """
        selections = [
            ToolSelection(
                tool_id=block.tool_call_id or tc.new_call_id(),
                tool_name=block.tool_name,
                tool_kwargs=block.tool_kwargs if isinstance(block.tool_kwargs, dict) else {},
            )
            for block in response.message.blocks
            if isinstance(block, ToolCallBlock)
        ]
        if not selections and error_on_no_tool_call:
            invalid = response.additional_kwargs.get("invalid_tool_calls") or []
            detail = "; ".join(f"{c['name']}: {c['error']}" for c in invalid)
            raise ValueError(
                "expected at least one tool call" + (f" (invalid: {detail})" if detail else "")
            )
        return selections

    def _request(self, kwargs: dict[str, Any]) -> ToolRequest | tc.OutputSchema | None:
        request = kwargs.pop(REQUEST_KEY, None)
        if request is not None and not self._prompted_enabled():
            raise self._refusal()
        return request  # type: ignore[no-any-return]

    async def _arequest(self, kwargs: dict[str, Any]) -> ToolRequest | tc.OutputSchema | None:
        request = kwargs.pop(REQUEST_KEY, None)
        if request is not None and not await self._aprompted_enabled():
            raise self._refusal()
        return request  # type: ignore[no-any-return]

    @staticmethod
    def _prompt(
        messages: Sequence[ChatMessage], request: ToolRequest | tc.OutputSchema | None
    ) -> str:
        return chat_prompt(messages) if request is None else prompt_for(messages, request)

    # -- structured output -------------------------------------------------------------------

    def _structured_schema(self, output_cls: type[_ModelT]) -> tc.OutputSchema:
        if not self._prompted_enabled():
            raise self._refusal()
        return tc.OutputSchema(
            output_cls.__name__, output_cls.model_json_schema(), output_cls.model_validate
        )

    def _structured_failed(
        self, schema: tc.OutputSchema, error: tc.StructuredOutputError
    ) -> Exception:
        return OutputParserException(
            f"no valid {schema.name!r} after {self.max_reasks + 1} attempt(s): {error}\n"
            f"last reply: {error.raw!r}"
        )

    @staticmethod
    def _reask(
        messages: list[ChatMessage], reply: str, error: tc.StructuredOutputError
    ) -> list[ChatMessage]:
        return [
            *messages,
            ChatMessage(role=MessageRole.ASSISTANT, content=reply),
            ChatMessage(role=MessageRole.USER, content=tc.correction_text(str(error))),
        ]

    def structured_predict(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> _ModelT:
        """Answer with a validated ``output_cls``; re-ask an invalid answer with its error.

        Each re-ask is a new task; after ``max_reasks`` of them LlamaIndex's
        `OutputParserException` is raised. `as_structured_llm` goes through here too.
        """
        schema = self._structured_schema(output_cls)
        messages = prompt.format_messages(llm=self, **prompt_args)
        for attempt in range(self.max_reasks + 1):
            reply = self.chat(messages, **{**(llm_kwargs or {}), REQUEST_KEY: schema})
            text = reply.message.content or ""
            try:
                return tc.parse_structured(text, schema)  # type: ignore[no-any-return]
            except tc.StructuredOutputError as exc:
                if attempt == self.max_reasks:
                    raise self._structured_failed(schema, exc) from exc
                messages = self._reask(messages, text, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def astructured_predict(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> _ModelT:
        """Async twin of `structured_predict`."""
        schema = self._structured_schema(output_cls)
        messages = prompt.format_messages(llm=self, **prompt_args)
        for attempt in range(self.max_reasks + 1):
            reply = await self.achat(messages, **{**(llm_kwargs or {}), REQUEST_KEY: schema})
            text = reply.message.content or ""
            try:
                return tc.parse_structured(text, schema)  # type: ignore[no-any-return]
            except tc.StructuredOutputError as exc:
                if attempt == self.max_reasks:
                    raise self._structured_failed(schema, exc) from exc
                messages = self._reask(messages, text, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def stream_structured_predict(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[_ModelT, None, None]:
        """Yield the validated object once (a partial object would not validate)."""
        yield self.structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)

    async def astream_structured_predict(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[_ModelT, None]:
        """Async twin of `stream_structured_predict` (await it, then iterate)."""
        result = await self.astructured_predict(output_cls, prompt, llm_kwargs, **prompt_args)

        async def once() -> AsyncGenerator[_ModelT, None]:
            yield result

        return once()

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

    def _iter_task(
        self, prompt: str, model: str, wrap: _Wrap[_ResponseT]
    ) -> Generator[_ResponseT, None, None]:
        """Stream one task as responses: one per text piece, then one carrying the files."""
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="task")
        text = ""
        for event in _tasks.stream_task(
            self.client,
            model=model,
            prompt=prompt,
            max_retries=self.max_retries,
            timeout=self.timeout,
            min_honesty=self.min_honesty,
        ):
            if isinstance(event, _tasks.StreamEnd):
                _served(meta, event)
                meta["files"] = self._files(event)
                yield wrap(text, meta, delta="")
            else:
                text += event
                yield wrap(text, meta, delta=event)

    async def _aiter_task(
        self, prompt: str, model: str, wrap: _Wrap[_ResponseT]
    ) -> AsyncGenerator[_ResponseT, None]:
        """Async twin of `_iter_task`."""
        meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="task")
        text = ""
        async for event in _tasks.astream_task(
            self.async_client,
            model=model,
            prompt=prompt,
            max_retries=self.max_retries,
            timeout=self.timeout,
            min_honesty=self.min_honesty,
        ):
            if isinstance(event, _tasks.StreamEnd):
                _served(meta, event)
                meta["files"] = await self._afiles(event)
                yield wrap(text, meta, delta="")
            else:
                text += event
                yield wrap(text, meta, delta=event)

    def _run_task(self, prompt: str, model: str, wrap: _Wrap[_ResponseT]) -> _ResponseT:
        *_, last = self._iter_task(prompt, model, wrap)
        last.delta = None
        return _with_usage(last, prompt)

    async def _arun_task(self, prompt: str, model: str, wrap: _Wrap[_ResponseT]) -> _ResponseT:
        last = [r async for r in self._aiter_task(prompt, model, wrap)][-1]
        last.delta = None
        return _with_usage(last, prompt)

    def _stream_task(
        self, prompt: str, model: str, wrap: _Wrap[_ResponseT]
    ) -> Generator[_ResponseT, None, None]:
        for response in self._iter_task(prompt, model, wrap):
            # The closing response (empty delta, after the task ended) carries the usage.
            yield _with_usage(response, prompt) if response.delta == "" else response

    async def _astream_task(
        self, prompt: str, model: str, wrap: _Wrap[_ResponseT]
    ) -> AsyncGenerator[_ResponseT, None]:
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


def _with_usage(response: _ResponseT, prompt: str) -> _ResponseT:
    """Add the estimated token counts (``usage_estimated`` is True: the gateway counts none)."""
    text = response.message.content if isinstance(response, ChatResponse) else response.text
    response.additional_kwargs.update(usage_kwargs(prompt, text or ""))
    return response


def _served(meta: ResponseMeta, end: _tasks.StreamEnd) -> None:
    """Record which peer served a streamed task, and after how many attempts."""
    meta["peer_id"] = end.peer_id
    meta["task_id"] = end.task_id
    meta["attempts"] = end.attempts
    meta["peers_tried"] = list(end.peers_tried)


def _served_by(served: ChatResponse | CompletionResponse | str) -> str:
    """The peer id behind a response, or the id itself."""
    if isinstance(served, str):
        return served
    peer = served.additional_kwargs.get("peer_id")
    if not isinstance(peer, str) or not peer:
        raise InvalidRequestError("this response carries no peer_id", code="no_peer_id")
    return peer
