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

Tool calling is not offered: the mesh ignores `tools`, so this is an `LLM`, not a
`FunctionCallingLLM`.
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
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from agentfm import AgentFMClient, AsyncAgentFMClient, FileRef, describe_files
from agentfm_integrations import _tasks
from agentfm_integrations._clients import ClientHolder, client_kwargs
from agentfm_integrations.llama_index._batch_methods import BatchMethods, chat_prompt
from agentfm_integrations.llama_index._convert import (
    ResponseMeta,
    chat_response,
    completion_response,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Sequence

    from agentfm_integrations.llama_index._batch import Coalescer

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


class AgentFM(BatchMethods, LLM):
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
        description="Collect the files a chat or completion task announces; False leaves "
        "them on the gateway.",
    )
    artifact_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a chat or completion call waits for files its task announced.",
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
        return last

    async def _arun_task(self, prompt: str, model: str, wrap: _Wrap[_ResponseT]) -> _ResponseT:
        last = [r async for r in self._aiter_task(prompt, model, wrap)][-1]
        last.delta = None
        return last

    # -- chat ------------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation as one task; `model=` overrides the routing for this call."""
        return self._run_task(chat_prompt(messages), self._route(kwargs), chat_response)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a conversation's answer line by line; the last response carries the files."""
        return self._iter_task(chat_prompt(messages), self._route(kwargs), chat_response)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation without blocking the event loop."""
        model = self._route(kwargs)
        if self.coalesce_window_ms is not None:
            result, meta = await self._coalesced(model, chat_prompt(messages))
            return chat_response(result.text, meta)
        return await self._arun_task(chat_prompt(messages), model, chat_response)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a conversation's answer without blocking the event loop."""
        return self._aiter_task(chat_prompt(messages), self._route(kwargs), chat_response)

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
        return self._iter_task(text, self._route(kwargs), completion_response)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Run the prompt as one task without blocking the event loop."""
        model = self._route(kwargs)
        text = self._completion_prompt(prompt, formatted)
        if self.coalesce_window_ms is not None:
            result, meta = await self._coalesced(model, text)
            return completion_response(result.text, meta)
        return await self._arun_task(text, model, completion_response)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a task's output without blocking the event loop."""
        text = self._completion_prompt(prompt, formatted)
        return self._aiter_task(text, self._route(kwargs), completion_response)


def _served(meta: ResponseMeta, end: _tasks.StreamEnd) -> None:
    """Record which peer served a streamed task, and after how many attempts."""
    meta["peer_id"] = end.peer_id
    meta["task_id"] = end.task_id
    meta["attempts"] = end.attempts
    meta["peers_tried"] = list(end.peers_tried)
