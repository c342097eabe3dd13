"""`AgentFMLLM`: a text-completion LLM served by the AgentFM mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

import agentfm
from agentfm_integrations import _tasks
from agentfm_integrations.langchain._convert import (
    StopScanner,
    raise_if_failed,
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
        return self._ls_params("llm", self._stop(stop), kwargs)

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        return stop if stop is not None else self.stop

    def _generation(self, text: str, stop: list[str] | None, **info: Any) -> list[Generation]:
        text, _ = truncate_at_stop(text, self._stop(stop))
        return [Generation(text=text, generation_info={"finish_reason": "stop", **info})]

    def _scatter_result(self, results: list[agentfm.ScatterResult], stop: Any) -> LLMResult:
        generations = []
        for r in results:
            raise_if_failed(r)
            files = agentfm.describe_files(r.artifacts)
            generations.append(
                self._generation(r.text, stop, peer_id=r.worker_id, task_id=r.task_id, files=files)
            )
        return LLMResult(generations=generations)

    def _task_result(self, r: agentfm.TaskResult, stop: list[str] | None) -> LLMResult:
        files = agentfm.describe_files(r.artifacts)
        generation = self._generation(
            r.text, stop, peer_id=r.peer_id, task_id=r.task_id, files=files
        )
        return LLMResult(generations=[generation])

    def _scatter_args(
        self, route: dict[str, Any], workers: list[agentfm.WorkerProfile]
    ) -> dict[str, Any]:
        # max_concurrency None: the SDK scatter sizes the batch by the peers' task slots.
        scatter = {k: v for k, v in route.items() if k != "model"}
        peers = _tasks.require_peers(route["model"], workers)
        return {**scatter, "peer_ids": peers, "max_concurrency": None}

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        route = self._route(self._model(kwargs))
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                if len(prompts) > 1:
                    workers = client.workers.match(route["model"], min_honesty=self.min_honesty)
                    results = client.tasks.scatter(prompts, **self._scatter_args(route, workers))
                    return self._scatter_result(results, stop)
                result = client.tasks.run(prompt=prompts[0], **route)
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._task_result(result, stop)

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        route = self._route(self._model(kwargs))
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as c:
                if len(prompts) > 1:
                    workers = await c.workers.match(route["model"], min_honesty=self.min_honesty)
                    results = await c.tasks.scatter(prompts, **self._scatter_args(route, workers))
                    return self._scatter_result(results, stop)
                result = await c.tasks.run(prompt=prompts[0], **route)
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        return self._task_result(result, stop)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        out, route = _TextStream(self._stop(stop)), self._route(self._model(kwargs))
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                for event in _tasks.stream_task(
                    client, prompt=prompt, stop_when=out.stopped, **route
                ):
                    if chunk := out.feed(event):
                        if run_manager is not None:
                            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        yield out.close()

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        out, route = _TextStream(self._stop(stop)), self._route(self._model(kwargs))
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as c:
                async for event in _tasks.astream_task(
                    c, prompt=prompt, stop_when=out.stopped, **route
                ):
                    if chunk := out.feed(event):
                        if run_manager is not None:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
        except agentfm.AgentFMError as exc:
            raise to_model_error(exc) from exc
        yield out.close()


class _TextStream:
    """A streamed completion: stop sequences applied, and who served it once it ended."""

    def __init__(self, stop: list[str] | None) -> None:
        self._scan = StopScanner(stop)
        self._info: dict[str, Any] = {}

    def stopped(self) -> bool:
        return self._scan.stopped

    def feed(self, event: str | _tasks.StreamEnd) -> GenerationChunk | None:
        """The chunk to emit for the next text piece (None for the end of the task)."""
        if isinstance(event, _tasks.StreamEnd):
            self._info = {"peer_id": event.peer_id, "task_id": event.task_id}
            return None
        text = self._scan.feed(event)
        return GenerationChunk(text=text) if text else None

    def close(self) -> GenerationChunk:
        """The closing chunk: any held-back text, the finish reason and the serving peer."""
        info = {"finish_reason": "stop", **self._info}
        return GenerationChunk(text=self._scan.flush(), generation_info=info)
