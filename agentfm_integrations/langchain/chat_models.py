"""`ChatAgentFM`: a LangChain chat model served by the AgentFM mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, PrivateAttr

import agentfm
from agentfm_integrations import _tasks
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations._clients import AsyncScope, ClientHolder
from agentfm_integrations.langchain._batch import lookup
from agentfm_integrations.langchain._chat_batch import ScatterBatchChatModel
from agentfm_integrations.langchain._chat_output import ChatCall, ChatStream, Served
from agentfm_integrations.langchain._convert import (
    to_model_error,
    to_prompt,
)
from agentfm_integrations.langchain._prompted import (
    SCHEMA_KEY,
    Prompted,
    PromptedStructuredOutput,
    output_schema,
    tool_spec,
)
from agentfm_integrations.langchain._settings import RoutedModel

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import LangSmithParams, LanguageModelInput
    from langchain_core.load.serializable import SerializedConstructor, SerializedNotImplemented
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable, RunnableConfig
    from langchain_core.tools import BaseTool


class ChatAgentFM(RoutedModel, ScatterBatchChatModel):
    """Chat model whose answers come from agents on an AgentFM mesh.

    ``model`` routes the request exactly like the gateway does: a peer id pins one worker;
    otherwise an agent name, then an engine name, is matched case-insensitively and the
    least-loaded matching worker serves it, with failover to an untried peer (a task whose
    stream broke is re-run elsewhere: like any model call, it is treated as safe to repeat;
    nothing is re-run once text has been streamed to the caller). The conversation is
    flattened into one prompt as the gateway's OpenAI route does.

    ``batch``/``abatch``/``batch_as_completed``/``abatch_as_completed`` submit **one
    scatter** across every matching peer and still give each input its own traced run.

    Files an agent produces are downloaded and listed by reference under
    ``response_metadata["agentfm"]["files"]`` (path, mime type, size, sha256).

    Tool calling (`bind_tools`) and structured output (`with_structured_output`) are
    *prompted*: the gateway carries one prompt string, so the tools' schemas, the
    conversation and a JSON reply contract go into the prompt and the reply is parsed and
    validated here (``response_metadata["agentfm"]["prompted"]`` says so). This only works
    when the worker is an instruction-following LLM; ``prompted_tools`` turns it on or off.

    Example:
        ```python
        from agentfm_integrations.langchain import ChatAgentFM

        llm = ChatAgentFM(model="echo", gateway_url="http://127.0.0.1:8080")
        llm.invoke("hello").content
        llm.batch([f"item {i}" for i in range(50)])  # one scatter
        llm.invoke("hello", model="12D3KooW...")  # pin a peer for one call
        ```
    """

    streaming: bool = False
    """Use the streaming route for ``invoke`` too."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences, applied client-side (the gateway ignores them)."""
    temperature: float | None = None
    """Recorded for tracing only: mesh agents take no sampling parameters."""
    max_tokens: int | None = None
    """Recorded for tracing only: mesh agents take no length limit."""
    client: agentfm.AgentFMClient | None = Field(default=None, exclude=True, repr=False)
    """A sync SDK client to share; one is built from the settings otherwise."""
    async_client: agentfm.AsyncAgentFMClient | None = Field(default=None, exclude=True, repr=False)
    """An async SDK client to share; one per event loop is built from the settings otherwise."""
    prompted_tools: bool | None = None
    """Prompted tool calling and structured output. None (default): on when every worker
    matching ``model`` advertises an instruction-following capability (``tool-calling``,
    ``llm``, ``instruct``…) or an ``…instruct…`` engine; False refuses them clearly."""
    max_reasks: int = Field(default=2, ge=0)
    """Structured output: how many times an invalid answer is re-asked with its error."""

    _holder: ClientHolder | None = PrivateAttr(default=None)
    _prompted_ok: dict[str, bool] = PrivateAttr(default_factory=dict)

    # ---------------------------------------------------------------- identity / tracing

    @property
    def _llm_type(self) -> str:
        return "agentfm-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Serialisable with `langchain_core.load.dumpd`; the key goes to ``lc_secrets``."""
        return True

    def to_json(self) -> SerializedConstructor | SerializedNotImplemented:
        """Serialise as LangChain does, with URL userinfo (a proxy's password) redacted."""
        data = super().to_json()
        if data["type"] != "constructor":
            return data
        # A copy: the base class hands out the model's own ``lc_kwargs`` dict.
        kwargs = dict(data["kwargs"])
        for name in ("gateway_url", "base_url"):
            if isinstance(kwargs.get(name), str):
                kwargs[name] = agentfm.redact_url(kwargs[name])
        return {**data, "kwargs": kwargs}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = self._ls_params("chat", self._stop(stop), kwargs)
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        return params

    # ---------------------------------------------------------------- clients

    def _clients(self) -> ClientHolder:
        if self._holder is None:
            self._holder = ClientHolder(
                self._sdk_kwargs(), client=self.client, async_client=self.async_client
            )
        return self._holder

    def _sync_client(self) -> agentfm.AgentFMClient:
        return self._clients().sync

    def _async_client(self) -> AsyncScope:
        # One async client (one pool) per event loop: connections stay on the loop that
        # opened them (``asyncio.run`` twice, per-test loops) and are reused across calls.
        return self._clients().async_scope()

    def close(self) -> None:
        """Close the SDK client this model built for itself (a shared one is left open)."""
        if self._holder is not None:
            self._holder.close()

    # ---------------------------------------------------------------- reputation

    def rate_worker(
        self, served: BaseMessage | str, rating: float, comment: str = "rated by a LangChain app"
    ) -> agentfm.CommentReceipt:
        """Rate the worker that served an answer (its ``response_metadata["peer_id"]``).

        The gateway signs a comment and an ``honesty`` rating (-1..1) into its ledger, so
        the peer's reputation, and trust-aware routing with ``min_honesty``, follow it.
        """
        return self._sync_client().peers.comment(_served_by(served), comment, rating=rating)

    async def arate_worker(
        self, served: BaseMessage | str, rating: float, comment: str = "rated by a LangChain app"
    ) -> agentfm.CommentReceipt:
        """Async twin of `rate_worker`."""
        async with self._async_client() as client:
            return await client.peers.comment(_served_by(served), comment, rating=rating)

    async def aclose(self) -> None:
        """Close the async SDK client this model built for the running event loop."""
        if self._holder is not None:
            await self._holder.aclose()

    # ---------------------------------------------------------------- prompted tools

    def _refuse_prompted(self, model: str) -> ValueError:
        return ValueError(
            f"prompted tool calling / structured output is off for model {model!r}: its "
            "workers do not advertise an instruction-following LLM (capability such as "
            "'tool-calling' or 'llm'). Pass prompted_tools=True to ChatAgentFM if they are one."
        )

    def _prompted_decision(self, model: str, workers: Sequence[agentfm.WorkerProfile]) -> bool:
        # No match: let the task itself fail with the gateway's model_not_found.
        ok = not workers or all(
            tc.advertises_prompted_tools(w.agent_capability, w.model) for w in workers
        )
        self._prompted_ok[model] = ok
        return ok

    def _needs_lookup(self, call: ChatCall) -> bool:
        """Whether serving ``call`` needs the workers' capabilities (not yet known)."""
        if call.request is None or self.prompted_tools is True:
            return False
        return self.prompted_tools is None and call.model not in self._prompted_ok

    def _prompted_verdict(self, call: ChatCall) -> ChatCall:
        if call.request is None or self.prompted_tools is True:
            return call
        if self.prompted_tools is None and self._prompted_ok[call.model]:
            return call
        raise self._refuse_prompted(call.model)

    def _check_prompted(self, call: ChatCall) -> ChatCall:
        """Return ``call`` if this model may serve it, else raise (prompted tools off)."""
        if self._needs_lookup(call):
            self._prompted_decision(call.model, self._sync_client().workers.match(call.model))
        return self._prompted_verdict(call)

    async def _acheck_prompted(self, call: ChatCall) -> ChatCall:
        """Async twin of `_check_prompted`."""
        if self._needs_lookup(call):
            workers = await self._clients().async_.workers.match(call.model)
            self._prompted_decision(call.model, workers)
        return self._prompted_verdict(call)

    @staticmethod
    def _task_prompt(messages: list[BaseMessage], request: Prompted | None) -> str:
        return to_prompt(messages) if request is None else request.prompt(messages)

    def bind_tools(
        self,
        tools: Sequence[builtins.dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: builtins.dict[str, Any] | str | bool | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model through the prompt (prompted tool calling).

        The reply is parsed into ``AIMessage.tool_calls`` (with ids) after each call's
        arguments are validated against its tool's schema; what does not validate lands in
        ``invalid_tool_calls`` with the reason. ``tool_choice`` may be ``"auto"``,
        ``"any"``/``"required"``/True, ``"none"``, a tool name or an OpenAI-style dict; it is
        stated in the prompt and checked on the reply. ``strict`` is accepted for
        compatibility: arguments are always validated. ``bind_tools([])`` binds nothing.

        Raises:
            ValueError: ``prompted_tools`` is False, or ``tool_choice`` names an unbound tool.
        """
        del strict  # validation is always strict
        if not tools:
            return self.bind(**kwargs)
        if self.prompted_tools is False:
            raise self._refuse_prompted(self.model_name)
        specs = [convert_to_openai_tool(t) for t in tools]
        tc.normalize_tool_choice(tool_choice, [tool_spec(t) for t in specs])
        bound: dict[str, Any] = {"tools": specs, **kwargs}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            bound["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(**bound)

    def with_structured_output(
        self,
        schema: builtins.dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, builtins.dict[str, Any] | BaseModel]:
        """Answer with an object of ``schema`` (pydantic class, TypedDict or JSON Schema).

        The schema goes into the prompt; the reply is parsed and validated, and an invalid
        one is re-asked as a new task carrying the validation error, up to ``max_reasks``
        times (in a batch, only the failed items; each round is one scatter). Then
        `OutputParserException` is raised, or returned as ``parsing_error`` with
        ``include_raw=True``. Every ``method`` works the same way here (prompted JSON);
        ``json_mode`` accepts ``schema=None`` and returns any JSON object.

        Raises:
            ValueError: ``prompted_tools`` is False.
        """
        if self.prompted_tools is False:
            raise self._refuse_prompted(self.model_name)
        max_reasks = int(kwargs.pop("max_reasks", self.max_reasks))
        target, reported = output_schema(schema)
        bound = self.bind(
            **{
                SCHEMA_KEY: dict(target.json_schema),
                "ls_structured_output_format": {
                    "kwargs": {"method": method, "strict": strict},
                    "schema": reported,
                },
            },
            **kwargs,
        )
        return PromptedStructuredOutput(
            self, bound, target, include_raw=include_raw, max_reasks=max_reasks
        )

    # ---------------------------------------------------------------- generation

    def _call(self, stop: list[str] | None, kwargs: dict[str, Any]) -> ChatCall:
        return ChatCall(self._model(kwargs), self._stop(stop), Prompted.from_kwargs(kwargs))

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        return stop if stop is not None else self.stop

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, item = self._call(stop, kwargs), lookup(self, run_manager)
        if item is None:
            self._check_prompted(call)
        try:
            if item is not None:  # a scatter item: its answer is on the way
                job, index = item
                return call.from_scatter(job.prompts[index], job.result(index))
            prompt = self._task_prompt(messages, call.request)
            result = self._sync_client().tasks.run(prompt=prompt, **self._route(call.model))
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return call.result(prompt, result.text, Served.of_task(result))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, item = self._call(stop, kwargs), lookup(self, run_manager)
        if item is None:
            await self._acheck_prompted(call)
        try:
            if item is not None:
                job, index = item
                return call.from_scatter(job.prompts[index], await job.aresult(index))
            prompt = self._task_prompt(messages, call.request)
            client = self._clients().async_
            result = await client.tasks.run(prompt=prompt, **self._route(call.model))
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return call.result(prompt, result.text, Served.of_task(result))

    def _chat_stream(self, messages: list[BaseMessage], call: ChatCall) -> ChatStream:
        prompt = self._task_prompt(messages, call.request)
        return ChatStream(call, prompt, self._route(call.model))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._check_prompted(self._call(stop, kwargs))
        out, client = self._chat_stream(messages, call), self._sync_client()
        try:
            for event in _tasks.stream_task(client, **out.task_kwargs):
                if chunk := out.feed(event):
                    if run_manager is not None:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            files = client.tasks.collect_artifacts(t) if (t := out.files_task()) else []
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        yield from out.close(agentfm.describe_files(files))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = await self._acheck_prompted(self._call(stop, kwargs))
        out, client = self._chat_stream(messages, call), self._clients().async_
        try:
            async for event in _tasks.astream_task(client, **out.task_kwargs):
                if chunk := out.feed(event):
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            files = await client.tasks.collect_artifacts(t) if (t := out.files_task()) else []
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        for chunk in out.close(agentfm.describe_files(files)):
            yield chunk

    # ---------------------------------------------------------------- scatter batch

    def _batch_prompt(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        return self._task_prompt(messages, Prompted.from_kwargs(kwargs))

    def _before_scatter(self, kwargs: dict[str, Any]) -> None:
        self._check_prompted(self._call(None, kwargs))

    async def _abefore_scatter(self, kwargs: dict[str, Any]) -> None:
        await self._acheck_prompted(self._call(None, kwargs))

    def _scatter_settings(
        self, configs: Sequence[RunnableConfig], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            **self._route(self._model(kwargs)),
            "max_concurrency": configs[0].get("max_concurrency") or self.scatter_concurrency,
        }


def _served_by(served: BaseMessage | str) -> str:
    """The peer id behind an answer, or the id itself."""
    if isinstance(served, str):
        return served
    peer = served.response_metadata.get("peer_id")
    if not isinstance(peer, str) or not peer:
        raise agentfm.InvalidRequestError(
            "this message carries no peer_id in its response_metadata", code="no_peer_id"
        )
    return peer
