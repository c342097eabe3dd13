"""`AgentFMLLM`: a text-completion LLM served by the AgentFM mesh."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, SecretStr

import agentfm
from agentfm_integrations.langchain import _mesh
from agentfm_integrations.langchain._convert import (
    PROVIDER,
    StopScanner,
    estimate_tokens,
    file_refs,
    to_model_error,
    truncate_at_stop,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )


class AgentFMLLM(BaseLLM):
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

    model_config = ConfigDict(populate_by_name=True)

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
    """Failover attempts on other peers."""
    stop: list[str] | None = None
    """Stop sequences, applied client-side."""
    artifacts_dir: str | None = None
    """Where produced files are extracted; the SDK default when unset."""

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "AGENTFM_API_KEY"}

    @property
    def _llm_type(self) -> str:
        return "agentfm"

    def get_num_tokens(self, text: str) -> int:
        """Estimate tokens at about four characters per token (engines vary per worker)."""
        return estimate_tokens(text)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "gateway_url": self.gateway_url}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="llm",
        )
        if stop := (stop if stop is not None else self.stop):
            params["ls_stop"] = stop
        return params

    def _sdk_kwargs(self) -> dict[str, Any]:
        return _mesh.client_kwargs(
            gateway_url=self.gateway_url,
            api_key=self.api_key,
            timeout=self.timeout,
            retries=self.max_retries,
            artifacts_dir=Path(self.artifacts_dir) if self.artifacts_dir else None,
        )

    def _generation(
        self, text: str, stop: list[str] | None, info: dict[str, Any]
    ) -> list[Generation]:
        text, _ = truncate_at_stop(text, stop if stop is not None else self.stop)
        return [Generation(text=text, generation_info={"finish_reason": "stop", **info})]

    def _scatter_result(self, results: list[agentfm.ScatterResult], stop: Any) -> LLMResult:
        generations = []
        for r in sorted(results, key=lambda r: r.index):
            if not r.ok:
                cause = r.exception or agentfm.TaskExecutionError(r.error or "failed")
                raise to_model_error(cause) from cause
            info = {"peer_id": r.worker_id, "task_id": r.task_id, "files": file_refs(r.artifacts)}
            generations.append(self._generation(r.text, stop, info))
        return LLMResult(generations=generations)

    @staticmethod
    def _info(result: agentfm.TaskResult) -> dict[str, Any]:
        return {
            "peer_id": result.peer_id,
            "task_id": result.task_id,
            "files": file_refs(result.artifacts),
        }

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        model = str(kwargs.get("model") or self.model_name)
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                if len(prompts) > 1:
                    workers = client.workers.match(model)
                    results = list(
                        _mesh.scatter_failover(
                            client,
                            prompts,
                            peers=_mesh.require_peers(model, workers),
                            max_concurrency=_mesh.mesh_capacity(workers),
                            max_retries=self.max_retries,
                            timeout=self.timeout,
                        )
                    )
                    return self._scatter_result(results, stop)
                result, _ = _mesh.run_task(
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
        model = str(kwargs.get("model") or self.model_name)
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
                if len(prompts) > 1:
                    workers = await client.workers.match(model)
                    results = [
                        r
                        async for r in _mesh.ascatter_failover(
                            client,
                            prompts,
                            peers=_mesh.require_peers(model, workers),
                            max_concurrency=_mesh.mesh_capacity(workers),
                            max_retries=self.max_retries,
                            timeout=self.timeout,
                        )
                    ]
                    return self._scatter_result(results, stop)
                result, _ = await _mesh.arun_task(
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
                for event in _mesh.stream_task(
                    client,
                    model=str(kwargs.get("model") or self.model_name),
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _mesh.StreamEnd):
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
                async for event in _mesh.astream_task(
                    client,
                    model=str(kwargs.get("model") or self.model_name),
                    prompt=prompt,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    stop_when=lambda: scan.stopped,
                ):
                    if isinstance(event, _mesh.StreamEnd):
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
