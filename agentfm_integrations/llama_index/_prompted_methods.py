"""`AgentFM`'s prompted tool calling and structured output (a mixin, like `BatchMethods`).

The mesh carries one prompt string, so tools and output schemas are written into the prompt
(`agentfm_integrations._tool_calling`) and the reply is parsed back here. Whether that is
on follows ``prompted_tools``, else what the matching workers advertise (looked up once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.output_parsers.base import OutputParserException

from agentfm import AgentFMError
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations.llama_index._batch_methods import chat_prompt
from agentfm_integrations.llama_index._prompted import (
    REQUEST_KEY,
    ToolRequest,
    prompt_for,
    tool_spec,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Sequence

    from llama_index.core.llms.llm import LLM
    from llama_index.core.prompts import BasePromptTemplate
    from llama_index.core.tools.types import BaseTool
    from pydantic import BaseModel

    from agentfm import AgentFMClient, AsyncAgentFMClient, WorkerProfile

    _ModelT = TypeVar("_ModelT", bound=BaseModel)
    _Ask = tuple[list[ChatMessage], dict[str, Any]]
    """One chat of a structured-output round: its messages and keyword arguments."""

__all__ = ["PromptedMethods"]


class PromptedMethods:
    """Prompted tool calling and structured output of `AgentFM`."""

    if TYPE_CHECKING:
        # Provided by `AgentFM`: its pydantic fields, clients and chat calls.
        model: str
        prompted_tools: bool | None
        max_reasks: int
        _prompted_ok: bool | None

        @property
        def client(self) -> AgentFMClient: ...

        @property
        def async_client(self) -> AsyncAgentFMClient: ...

        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse: ...

        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse: ...

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

    def _structured_flow(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> Generator[_Ask, str, _ModelT]:
        """The re-ask loop as a generator: it yields each chat to send, is sent the reply's
        text, and returns the validated object (or raises once ``max_reasks`` ran out), so
        the sync and async drivers only send the chats."""
        schema = self._structured_schema(output_cls)
        messages = prompt.format_messages(llm=cast("LLM", self), **prompt_args)
        kwargs = {**(llm_kwargs or {}), REQUEST_KEY: schema}
        for attempt in range(self.max_reasks + 1):
            text = yield messages, kwargs
            try:
                return tc.parse_structured(text, schema)  # type: ignore[no-any-return]
            except tc.StructuredOutputError as exc:
                if attempt == self.max_reasks:
                    raise self._structured_failed(schema, exc) from exc
                messages = self._reask(messages, text, exc)
        raise AssertionError("unreachable")  # pragma: no cover

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
        flow = self._structured_flow(output_cls, prompt, llm_kwargs, prompt_args)
        messages, kwargs = next(flow)
        while True:
            reply = self.chat(messages, **kwargs)
            try:
                messages, kwargs = flow.send(reply.message.content or "")
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def astructured_predict(
        self,
        output_cls: type[_ModelT],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> _ModelT:
        """Async twin of `structured_predict`."""
        flow = self._structured_flow(output_cls, prompt, llm_kwargs, prompt_args)
        messages, kwargs = next(flow)
        while True:
            reply = await self.achat(messages, **kwargs)
            try:
                messages, kwargs = flow.send(reply.message.content or "")
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

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
