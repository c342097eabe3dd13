"""`ChatAgentFM`: a LangChain chat model served by the AgentFM mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

import agentfm
from agentfm_integrations import _tasks
from agentfm_integrations._clients import AsyncScope, ClientHolder
from agentfm_integrations.langchain import _batch
from agentfm_integrations.langchain._chat_batch import ScatterBatchChatModel
from agentfm_integrations.langchain._convert import (
    PROVIDER,
    StopScanner,
    estimated_usage,
    response_metadata,
    to_model_error,
    to_prompt,
    truncate_at_stop,
)
from agentfm_integrations.langchain._settings import RoutedModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import LangSmithParams
    from langchain_core.runnables import RunnableConfig


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
    """An async SDK client to share; one per call is built from the settings otherwise."""

    _holder: ClientHolder | None = PrivateAttr(default=None)

    # ---------------------------------------------------------------- identity / tracing

    @property
    def _llm_type(self) -> str:
        return "agentfm-chat"

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
        # A fresh async client per call keeps connection pools off event loops they were
        # not made on (``asyncio.run`` twice, per-test loops).
        return self._clients().async_scope()

    def close(self) -> None:
        """Close the SDK client this model built for itself (a shared one is left open)."""
        if self._holder is not None:
            self._holder.close()

    # ---------------------------------------------------------------- helpers

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
        files: Sequence[agentfm.FileRef],
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
            files=agentfm.describe_files(result.artifacts),
            attempts=result.attempts,
            peers_tried=result.peers_tried,
            **kw,
        )

    def _from_task(self, result: agentfm.TaskResult, tried: list[str], **kw: Any) -> ChatResult:
        return self._result(
            text=result.text,
            peer_id=result.peer_id,
            task_id=result.task_id,
            files=agentfm.describe_files(result.artifacts),
            attempts=len(tried),
            peers_tried=tried,
            **kw,
        )

    @staticmethod
    def _last_chunk(
        *,
        prompt: str,
        text: str,
        model: str,
        end: _tasks.StreamEnd,
        files: Sequence[agentfm.FileRef],
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
            result, tried = _tasks.run_task(
                self._sync_client(),
                model=model,
                prompt=prompt,
                max_retries=self.max_retries,
                timeout=self.timeout,
            )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._from_task(result, tried, prompt=prompt, model=model, stop=stop)

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
                result, tried = await _tasks.arun_task(
                    client,
                    model=model,
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._from_task(result, tried, prompt=prompt, model=model, stop=stop)

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
            for event in _tasks.stream_task(
                client,
                model=model,
                prompt=prompt,
                max_retries=self.max_retries,
                timeout=self.timeout,
                stop_when=lambda: scan.stopped,
            ):
                if isinstance(event, _tasks.StreamEnd):
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
                async for event in _tasks.astream_task(
                    client,
                    model=model,
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _tasks.StreamEnd):
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

    def _scatter_settings(
        self, configs: Sequence[RunnableConfig], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": self._model(kwargs),
            "max_concurrency": configs[0].get("max_concurrency") or self.scatter_concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }


def _stream_files(tasks: Any, end: _tasks.StreamEnd) -> list[agentfm.FileRef]:
    if not end.files_incoming or not end.task_id:
        return []
    return agentfm.describe_files(tasks.collect_artifacts(end.task_id))


async def _astream_files(tasks: Any, end: _tasks.StreamEnd) -> list[agentfm.FileRef]:
    if not end.files_incoming or not end.task_id:
        return []
    return agentfm.describe_files(await tasks.collect_artifacts(end.task_id))
