"""`ScatterBatchChatModel`: the ``batch`` family of a chat model, run as one mesh scatter.

Each override submits one `ScatterJob` for all inputs and then hands the tagged
inputs to core's own implementation, so every input is still its own traced LLM run.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Literal, overload

from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables.config import get_config_list

from agentfm_integrations.langchain._batch import ScatterJob
from agentfm_integrations.langchain._convert import to_prompt

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from langchain_core.language_models import LanguageModelInput
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.runnables import RunnableConfig

    import agentfm
    from agentfm_integrations._clients import AsyncScope


class ScatterBatchChatModel(BaseChatModel):
    """A chat model whose ``batch`` and friends run as one scatter across the mesh."""

    use_scatter: bool = True
    """Run ``batch`` and friends as one scatter; False keeps LangChain's per-input calls."""
    scatter_concurrency: int | None = None
    """Scatter parallelism when the config sets no ``max_concurrency``; None: the SDK
    scatter sizes it by the matched peers' advertised task slots."""

    @abstractmethod
    def _sync_client(self) -> agentfm.AgentFMClient:
        """The sync SDK client the scatter runs on."""

    @abstractmethod
    def _async_client(self) -> AsyncScope:
        """The async SDK client the scatter runs on, as an ``async with`` scope."""

    @abstractmethod
    def _scatter_settings(
        self, configs: Sequence[RunnableConfig], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Keyword arguments of `ScatterJob.run_sync` / ``start_async``."""

    def _batch_prompt(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        """The task prompt of one batch input (``kwargs``: the bound and per-call ones)."""
        return to_prompt(messages)

    def _before_scatter(self, kwargs: dict[str, Any]) -> None:
        """Refuse a batch the model cannot serve, before any task is sent (sync path)."""

    async def _abefore_scatter(self, kwargs: dict[str, Any]) -> None:
        """Async twin of `_before_scatter`."""

    def _scatter_prompts(
        self, inputs: Sequence[LanguageModelInput], kwargs: dict[str, Any]
    ) -> list[str] | None:
        """Return one prompt per input when this batch should be one scatter, else None."""
        if not self.use_scatter or len(inputs) < 2 or self.rate_limiter is not None:
            return None
        # With a cache, hits must not cost a task; core's per-input path checks it first.
        if isinstance(self.cache, BaseCache) or (self.cache is None and get_llm_cache()):
            return None
        try:
            return [
                self._batch_prompt(self._convert_input(i).to_messages(), kwargs) for i in inputs
            ]
        except (ValueError, TypeError):
            # Let core's per-input path raise the conversion error for the item at fault.
            return None

    @contextlib.contextmanager
    def _scattered(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None,
        kwargs: dict[str, Any],
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Start one scatter for ``inputs`` and yield core's ``(config, kwargs)`` for them.

        Without a scatter (see `_scatter_prompts`) the caller's own arguments come back.
        """
        prompts = self._scatter_prompts(inputs, kwargs) if inputs else None
        if prompts is None:
            yield config, kwargs
            return
        self._before_scatter(kwargs)
        configs = get_config_list(config, len(inputs))
        with ScatterJob(self, prompts) as job:
            job.run_sync(self._sync_client(), **self._scatter_settings(configs, kwargs))
            yield job.tag(configs), _no_stream(kwargs)

    @contextlib.asynccontextmanager
    async def _ascattered(
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        """Async twin of `_scattered`: the scatter runs as a task on the running loop."""
        prompts = self._scatter_prompts(inputs, kwargs) if inputs else None
        if prompts is None:
            yield config, kwargs
            return
        await self._abefore_scatter(kwargs)
        configs = get_config_list(config, len(inputs))
        async with self._async_client() as client:
            with ScatterJob(self, prompts) as job:
                job.start_async(client, **self._scatter_settings(configs, kwargs))
                try:
                    yield job.tag(configs), _no_stream(kwargs)
                finally:
                    await job.astop()

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
        with self._scattered(inputs, config, kwargs) as (configs, call_kwargs):
            return super().batch(
                inputs, configs, return_exceptions=return_exceptions, **call_kwargs
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
        async with self._ascattered(inputs, config, kwargs) as (configs, call_kwargs):
            return await super().abatch(
                inputs, configs, return_exceptions=return_exceptions, **call_kwargs
            )

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
        with self._scattered(inputs, config, kwargs) as (configs, call_kwargs):
            yield from core.batch_as_completed(
                inputs, configs, return_exceptions=return_exceptions, **call_kwargs
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
        async with self._ascattered(inputs, config, kwargs) as (configs, call_kwargs):
            async for item in core.abatch_as_completed(
                inputs, configs, return_exceptions=return_exceptions, **call_kwargs
            ):
                yield item


def _no_stream(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call kwargs of scatter items: ``stream=False``, core's public per-call opt-out.

    A scatter item already has its answer on the way, so it must reach ``_generate`` (which
    waits for it) rather than ``_stream`` (a second task) even when ``streaming=True`` or a
    streaming callback handler is attached; ``stream=False`` outranks both in core.
    """
    return {**kwargs, "stream": False}
