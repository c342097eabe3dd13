"""`AgentFMLLM`: a text-completion LLM served by the AgentFM mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

import agentfm
from agentfm_integrations import _tasks
from agentfm_integrations.langchain._convert import (
    StopScanner,
    to_model_error,
    truncate_at_stop,
)
from agentfm_integrations.langchain._settings import RoutedModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )


class AgentFMLLM(RoutedModel, BaseLLM):
    """Text-completion LLM on the AgentFM mesh; the prompt reaches the agent verbatim.

    When LangChain hands it several prompts at once (``batch`` without
    ``max_concurrency``), they run as one scatter. LangChain's text-LLM batch reports
    failures for the whole call, not per prompt; use `ChatAgentFM` for per-item errors.

    Example:
        ```python
        from agentfm_integrations.langchain import AgentFMLLM

        llm = AgentFMLLM(model="echo")
        llm.batch(["a", "b", "c"])  # one scatter
        ```
    """

    stop: list[str] | None = None
    """Stop sequences, applied client-side."""

    @property
    def _llm_type(self) -> str:
        return "agentfm"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls_params("llm", stop if stop is not None else self.stop, kwargs)

    def _generation(
        self, text: str, stop: list[str] | None, info: dict[str, Any]
    ) -> list[Generation]:
        text, _ = truncate_at_stop(text, stop if stop is not None else self.stop)
        return [Generation(text=text, generation_info={"finish_reason": "stop", **info})]

    def _scatter_result(self, results: list[agentfm.ScatterResult], stop: Any) -> LLMResult:
        generations = []
        for r in results:
            if not r.ok:
                cause = r.exception or agentfm.TaskExecutionError(r.error or "failed")
                raise to_model_error(cause) from cause
            info = {
                "peer_id": r.worker_id,
                "task_id": r.task_id,
                "files": agentfm.describe_files(r.artifacts),
            }
            generations.append(self._generation(r.text, stop, info))
        return LLMResult(generations=generations)

    def _scatter_args(self, model: str, workers: list[agentfm.WorkerProfile]) -> dict[str, Any]:
        return {
            "peer_ids": _tasks.require_peers(model, workers),
            # None: the SDK scatter sizes the batch by the peers' advertised task slots.
            "max_concurrency": None,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }

    @staticmethod
    def _info(result: agentfm.TaskResult) -> dict[str, Any]:
        return {
            "peer_id": result.peer_id,
            "task_id": result.task_id,
            "files": agentfm.describe_files(result.artifacts),
        }

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        model = self._model(kwargs)
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                if len(prompts) > 1:
                    workers = client.workers.match(model)
                    results = client.tasks.scatter(prompts, **self._scatter_args(model, workers))
                    return self._scatter_result(results, stop)
                result, _ = _tasks.run_task(
                    client,
                    model=model,
                    prompt=prompts[0],
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return LLMResult(generations=[self._generation(result.text, stop, self._info(result))])

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        model = self._model(kwargs)
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
                if len(prompts) > 1:
                    workers = await client.workers.match(model)
                    results = await client.tasks.scatter(
                        prompts, **self._scatter_args(model, workers)
                    )
                    return self._scatter_result(results, stop)
                result, _ = await _tasks.arun_task(
                    client,
                    model=model,
                    prompt=prompts[0],
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return LLMResult(generations=[self._generation(result.text, stop, self._info(result))])

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        scan = StopScanner(stop if stop is not None else self.stop)
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                for event in _tasks.stream_task(
                    client,
                    model=self._model(kwargs),
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _tasks.StreamEnd):
                        info = {"peer_id": event.peer_id, "task_id": event.task_id}
                        break
                    if text := scan.feed(event):
                        chunk = GenerationChunk(text=text)
                        if run_manager is not None:
                            run_manager.on_llm_new_token(text, chunk=chunk)
                        yield chunk
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        yield GenerationChunk(text=scan.flush(), generation_info={"finish_reason": "stop", **info})

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        scan = StopScanner(stop if stop is not None else self.stop)
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
                async for event in _tasks.astream_task(
                    client,
                    model=self._model(kwargs),
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _tasks.StreamEnd):
                        info = {"peer_id": event.peer_id, "task_id": event.task_id}
                        break
                    if text := scan.feed(event):
                        chunk = GenerationChunk(text=text)
                        if run_manager is not None:
                            await run_manager.on_llm_new_token(text, chunk=chunk)
                        yield chunk
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        yield GenerationChunk(text=scan.flush(), generation_info={"finish_reason": "stop", **info})
