"""`ChatAgentFM`: a LangChain chat model served by the AgentFM mesh."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import get_config_list
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

import agentfm
from agentfm_integrations.langchain import _batch, _mesh
from agentfm_integrations.langchain._convert import (
    PROVIDER,
    FileRef,
    StopScanner,
    estimate_tokens,
    estimated_usage,
    file_refs,
    response_metadata,
    to_model_error,
    to_prompt,
    truncate_at_stop,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.runnables import RunnableConfig


class ChatAgentFM(BaseChatModel):
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

    Tool calling and structured output are not offered: mesh agents take a plain prompt.

    Example:
        ```python
        from agentfm_integrations.langchain import ChatAgentFM

        llm = ChatAgentFM(model="echo", gateway_url="http://127.0.0.1:8080")
        llm.invoke("hello").content
        llm.batch([f"item {i}" for i in range(50)])  # one scatter
        llm.invoke("hello", model="12D3KooW...")  # pin a peer for one call
        ```
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_name: str = Field(alias="model")
    """Routing target: a peer id, an agent name or an engine name."""
    gateway_url: str | None = Field(
        default_factory=from_env("AGENTFM_GATEWAY_URL", default=None), alias="base_url"
    )
    """Gateway base URL; ``AGENTFM_GATEWAY_URL`` or the SDK default when unset."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("AGENTFM_API_KEY", default=None)
    )
    """Gateway bearer token; ``AGENTFM_API_KEY`` when unset."""
    timeout: float | None = None
    """Seconds allowed for each task attempt; no limit when unset."""
    max_retries: int = 2
    """Failover attempts on other peers, and SDK retries of idempotent calls."""
    streaming: bool = False
    """Use the streaming route for ``invoke`` too."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences, applied client-side (the gateway ignores them)."""
    temperature: float | None = None
    """Recorded for tracing only: mesh agents take no sampling parameters."""
    max_tokens: int | None = None
    """Recorded for tracing only: mesh agents take no length limit."""
    artifacts_dir: str | None = None
    """Where produced files are extracted (per task); the SDK default when unset."""
    use_scatter: bool = True
    """Run ``batch`` and friends as one scatter; False keeps LangChain's per-input calls."""
    scatter_concurrency: int | None = None
    """Scatter parallelism when the config sets no ``max_concurrency``; default: the
    matched peers' advertised task slots."""
    client: agentfm.AgentFMClient | None = Field(default=None, exclude=True, repr=False)
    """A sync SDK client to share; one is built from the settings otherwise."""
    async_client: agentfm.AsyncAgentFMClient | None = Field(default=None, exclude=True, repr=False)
    """An async SDK client to share; one per call is built from the settings otherwise."""

    _own_client: agentfm.AgentFMClient | None = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # ---------------------------------------------------------------- identity / tracing

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "AGENTFM_API_KEY"}

    @property
    def _llm_type(self) -> str:
        return "agentfm-chat"

    def get_num_tokens(self, text: str) -> int:
        """Estimate tokens as the usage metadata does (about four characters per token).

        Mesh agents run arbitrary engines with no shared tokenizer, so this is an estimate
        (it keeps ``trim_messages(token_counter=llm)`` working without ``transformers``).
        """
        return estimate_tokens(text)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "gateway_url": self.gateway_url}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop := self._stop(stop):
            params["ls_stop"] = stop
        return params

    # ---------------------------------------------------------------- clients

    def _sdk_kwargs(self) -> dict[str, Any]:
        return _mesh.client_kwargs(
            gateway_url=self.gateway_url,
            api_key=self.api_key,
            timeout=self.timeout,
            retries=self.max_retries,
            artifacts_dir=Path(self.artifacts_dir) if self.artifacts_dir else None,
        )

    def _sync_client(self) -> agentfm.AgentFMClient:
        if self.client is not None:
            return self.client
        with self._client_lock:
            if self._own_client is None:
                self._own_client = agentfm.AgentFMClient(**self._sdk_kwargs())
            return self._own_client

    def _async_client(self) -> _AsyncClientScope:
        return _AsyncClientScope(self.async_client, self._sdk_kwargs())

    def close(self) -> None:
        """Close the SDK client this model built for itself (a shared one is left open)."""
        with self._client_lock:
            own, self._own_client = self._own_client, None
        if own is not None:
            own.close()

    # ---------------------------------------------------------------- helpers

    def _model(self, kwargs: dict[str, Any]) -> str:
        return str(kwargs.get("model") or self.model_name)

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        return stop if stop is not None else self.stop

    def _result(
        self,
        *,
        text: str,
        prompt: str,
        model: str,
        stop: list[str] | None,
        peer_id: str | None,
        task_id: str | None,
        files: Sequence[FileRef],
        attempts: int | None,
        peers_tried: Sequence[str] | None,
    ) -> ChatResult:
        text, _ = truncate_at_stop(text, stop)
        message = AIMessage(
            content=text,
            usage_metadata=estimated_usage(prompt, text),
            response_metadata=response_metadata(
                model=model,
                peer_id=peer_id,
                task_id=task_id,
                finish_reason="stop",
                files=files,
                attempts=attempts,
                peers_tried=peers_tried,
            ),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _from_scatter(
        self, job: _batch.ScatterJob, index: int, result: agentfm.ScatterResult, **kw: Any
    ) -> ChatResult:
        if not result.ok:
            cause = result.exception or agentfm.TaskExecutionError(result.error or "failed")
            raise to_model_error(cause) from cause
        return self._result(
            text=result.text,
            prompt=job.prompts[index],
            peer_id=result.worker_id,
            task_id=result.task_id,
            files=file_refs(result.artifacts),
            attempts=result.attempts,
            peers_tried=result.peers_tried,
            **kw,
        )

    @staticmethod
    def _last_chunk(
        *, prompt: str, text: str, model: str, end: _mesh.StreamEnd, files: Sequence[FileRef]
    ) -> ChatGenerationChunk:
        # Usage and metadata go on this one chunk only: merging chunks concatenates strings
        # and adds token counts.
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                chunk_position="last",
                usage_metadata=estimated_usage(prompt, text),
                response_metadata=response_metadata(
                    model=model,
                    peer_id=end.peer_id,
                    task_id=end.task_id,
                    finish_reason="stop",
                    files=files,
                    attempts=end.attempts,
                    peers_tried=end.peers_tried,
                ),
            )
        )

    @staticmethod
    def _text_chunk(text: str) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(content=text, response_metadata={"model_provider": PROVIDER})
        )

    # ---------------------------------------------------------------- generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, stop = self._model(kwargs), self._stop(stop)
        item = _batch.lookup(self, run_manager)
        if item is not None:
            job, index = item
            try:
                scattered = job.result(index)
            except agentfm.AgentFMError as exc:
                raise to_model_error(exc) from exc
            return self._from_scatter(job, index, scattered, model=model, stop=stop)
        prompt = to_prompt(messages)
        try:
            result, tried = _mesh.run_task(
                self._sync_client(),
                model=model,
                prompt=prompt,
                max_retries=self.max_retries,
                timeout=self.timeout,
            )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._result(
            text=result.text,
            prompt=prompt,
            model=model,
            stop=stop,
            peer_id=result.peer_id,
            task_id=result.task_id,
            files=file_refs(result.artifacts),
            attempts=len(tried),
            peers_tried=tried,
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, stop = self._model(kwargs), self._stop(stop)
        item = _batch.lookup(self, run_manager)
        if item is not None:
            job, index = item
            try:
                scattered = await job.aresult(index)
            except agentfm.AgentFMError as exc:
                raise to_model_error(exc) from exc
            return self._from_scatter(job, index, scattered, model=model, stop=stop)
        prompt = to_prompt(messages)
        try:
            async with self._async_client() as client:
                result, tried = await _mesh.arun_task(
                    client,
                    model=model,
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._result(
            text=result.text,
            prompt=prompt,
            model=model,
            stop=stop,
            peer_id=result.peer_id,
            task_id=result.task_id,
            files=file_refs(result.artifacts),
            attempts=len(tried),
            peers_tried=tried,
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, prompt = self._model(kwargs), to_prompt(messages)
        scan = StopScanner(self._stop(stop))
        client = self._sync_client()
        emitted: list[str] = []
        try:
            for event in _mesh.stream_task(
                client,
                model=model,
                prompt=prompt,
                max_retries=self.max_retries,
                timeout=self.timeout,
                stop_when=lambda: scan.stopped,
            ):
                if isinstance(event, _mesh.StreamEnd):
                    end = event
                    break
                if text := scan.feed(event):
                    emitted.append(text)
                    chunk = self._text_chunk(text)
                    if run_manager is not None:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            files = _stream_files(client.tasks, end)
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        if tail := scan.flush():
            emitted.append(tail)
            yield self._text_chunk(tail)
        yield self._last_chunk(
            prompt=prompt, text="".join(emitted), model=model, end=end, files=files
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, prompt = self._model(kwargs), to_prompt(messages)
        scan = StopScanner(self._stop(stop))
        emitted: list[str] = []
        try:
            async with self._async_client() as client:
                async for event in _mesh.astream_task(
                    client,
                    model=model,
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _mesh.StreamEnd):
                        end = event
                        break
                    if text := scan.feed(event):
                        emitted.append(text)
                        chunk = self._text_chunk(text)
                        if run_manager is not None:
                            await run_manager.on_llm_new_token(text, chunk=chunk)
                        yield chunk
                files = await _astream_files(client.tasks, end)
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        if tail := scan.flush():
            emitted.append(tail)
            yield self._text_chunk(tail)
        yield self._last_chunk(
            prompt=prompt, text="".join(emitted), model=model, end=end, files=files
        )

    # ---------------------------------------------------------------- scatter batch

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        # A scatter item already has its answer on the way; streaming it again would send a
        # second task (and core calls ``_stream`` without the run manager that names it).
        if _batch.lookup(self, run_manager) is not None:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _should_use_protocol_streaming(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        if _batch.lookup(self, run_manager) is not None:
            return False
        return super()._should_use_protocol_streaming(
            async_api=async_api, run_manager=run_manager, **kwargs
        )

    def _scatter_prompts(self, inputs: Sequence[LanguageModelInput]) -> list[str] | None:
        """Return one prompt per input when this batch should be one scatter, else None."""
        if not self.use_scatter or len(inputs) < 2 or self.rate_limiter is not None:
            return None
        # With a cache, hits must not cost a task; core's per-input path checks it first.
        if isinstance(self.cache, BaseCache) or (self.cache is None and get_llm_cache()):
            return None
        try:
            return [to_prompt(self._convert_input(i).to_messages()) for i in inputs]
        except (ValueError, TypeError):
            # Let core's per-input path raise the conversion error for the item at fault.
            return None

    def _scatter_settings(
        self, configs: Sequence[RunnableConfig], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": self._model(kwargs),
            "max_concurrency": configs[0].get("max_concurrency") or self.scatter_concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Answer every input with one scatter across the matching peers.

        Each input is still its own LLM run (callbacks, tracing, per-item errors with
        ``return_exceptions``), results come back in input order, and
        ``config["max_concurrency"]`` caps the scatter's parallelism.
        """
        if not inputs:
            return []
        prompts = self._scatter_prompts(inputs)
        if prompts is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        with _batch.ScatterJob(self, prompts) as job:
            job.run_sync(self._sync_client(), **self._scatter_settings(configs, kwargs))
            return super().batch(
                inputs, job.tag(configs), return_exceptions=return_exceptions, **kwargs
            )

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async twin of `batch`: one scatter, one LLM run per input."""
        if not inputs:
            return []
        prompts = self._scatter_prompts(inputs)
        if prompts is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        configs = get_config_list(config, len(inputs))
        async with self._async_client() as client:
            with _batch.ScatterJob(self, prompts) as job:
                job.start_async(client, **self._scatter_settings(configs, kwargs))
                try:
                    return await super().abatch(
                        inputs, job.tag(configs), return_exceptions=return_exceptions, **kwargs
                    )
                finally:
                    await job.astop()

    @overload
    def batch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: Literal[False] = False,
        **kwargs: Any,
    ) -> Iterator[tuple[int, AIMessage]]: ...

    @overload
    def batch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: Literal[True],
        **kwargs: Any,
    ) -> Iterator[tuple[int, AIMessage | Exception]]: ...

    def batch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> Iterator[tuple[int, AIMessage | Exception]]:
        """Like `batch` (one scatter), yielding ``(index, result)`` as items finish."""
        core: Any = super()
        prompts = self._scatter_prompts(inputs) if inputs else None
        if prompts is None:
            yield from core.batch_as_completed(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
            return
        configs = get_config_list(config, len(inputs))
        with _batch.ScatterJob(self, prompts) as job:
            job.run_sync(self._sync_client(), **self._scatter_settings(configs, kwargs))
            yield from core.batch_as_completed(
                inputs, job.tag(configs), return_exceptions=return_exceptions, **kwargs
            )

    @overload
    def abatch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: Literal[False] = False,
        **kwargs: Any | None,
    ) -> AsyncIterator[tuple[int, AIMessage]]: ...

    @overload
    def abatch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: Literal[True],
        **kwargs: Any | None,
    ) -> AsyncIterator[tuple[int, AIMessage | Exception]]: ...

    async def abatch_as_completed(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> AsyncIterator[tuple[int, AIMessage | Exception]]:
        """Async twin of `batch_as_completed`."""
        core: Any = super()
        prompts = self._scatter_prompts(inputs) if inputs else None
        if prompts is None:
            async for item in core.abatch_as_completed(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            ):
                yield item
            return
        configs = get_config_list(config, len(inputs))
        async with self._async_client() as client:
            with _batch.ScatterJob(self, prompts) as job:
                job.start_async(client, **self._scatter_settings(configs, kwargs))
                try:
                    async for item in core.abatch_as_completed(
                        inputs, job.tag(configs), return_exceptions=return_exceptions, **kwargs
                    ):
                        yield item
                finally:
                    await job.astop()


class _AsyncClientScope:
    """Yield the shared async client, or a fresh one closed on exit.

    A fresh client per call keeps connection pools off event loops they were not made on
    (``asyncio.run`` twice, per-test loops).
    """

    def __init__(self, shared: agentfm.AsyncAgentFMClient | None, kwargs: dict[str, Any]) -> None:
        self._shared = shared
        self._kwargs = kwargs
        self._own: agentfm.AsyncAgentFMClient | None = None

    async def __aenter__(self) -> agentfm.AsyncAgentFMClient:
        if self._shared is not None:
            return self._shared
        self._own = agentfm.AsyncAgentFMClient(**self._kwargs)
        return self._own

    async def __aexit__(self, *exc: object) -> Literal[False]:
        if self._own is not None:
            await self._own.aclose()
        return False


def _stream_files(tasks: Any, end: _mesh.StreamEnd) -> list[FileRef]:
    if not end.files_incoming or not end.task_id:
        return []
    return file_refs(tasks.collect_artifacts(end.task_id))


async def _astream_files(tasks: Any, end: _mesh.StreamEnd) -> list[FileRef]:
    if not end.files_incoming or not end.task_id:
        return []
    return file_refs(await tasks.collect_artifacts(end.task_id))
