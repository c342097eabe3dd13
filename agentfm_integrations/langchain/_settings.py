"""Settings shared by `ChatAgentFM`, `AgentFMLLM` and the tools: connection and routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import LangSmithParams
from langchain_core.utils import from_env, secret_from_env
from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from agentfm import DEFAULT_IDLE_TIMEOUT, redact_url
from agentfm_integrations._clients import client_kwargs
from agentfm_integrations._redaction import RedactedGatewayURL
from agentfm_integrations._tasks import route_kwargs
from agentfm_integrations._usage import estimate_tokens
from agentfm_integrations.langchain._convert import PROVIDER


class MeshSettings(RedactedGatewayURL):
    """Gateway, key, timeout, retries and artifact folder, read from the env when unset."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    # A validation alias (not `alias`) keeps `gateway_url=` the name type checkers see, while
    # `base_url=` still works at runtime for users coming from ChatOpenAI.
    gateway_url: str | None = Field(
        default_factory=from_env("AGENTFM_GATEWAY_URL", default=None),
        validation_alias=AliasChoices("gateway_url", "base_url"),
    )
    """Gateway base URL; ``AGENTFM_GATEWAY_URL`` or the SDK default when unset."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("AGENTFM_API_KEY", default=None)
    )
    """Gateway bearer token; ``AGENTFM_API_KEY`` when unset."""
    timeout: float | None = None
    """Seconds allowed for each task attempt; no limit when unset."""
    idle_timeout: float | None = Field(default=DEFAULT_IDLE_TIMEOUT, gt=0)
    """Seconds a task stream may stay silent before the call fails (None: no bound)."""
    max_retries: int = 2
    """Failover attempts on other peers, and SDK retries of idempotent calls."""
    artifacts_dir: str | None = None
    """Where produced files are extracted (per task); the SDK default when unset."""
    min_honesty: float | None = None
    """Only dispatch to peers whose honesty score is at least this (trust-aware routing)."""

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "AGENTFM_API_KEY"}

    def _sdk_kwargs(self) -> dict[str, Any]:
        return client_kwargs(
            gateway_url=self.gateway_url,
            api_key=self.api_key,
            timeout=self.timeout,
            retries=self.max_retries,
            artifacts_dir=Path(self.artifacts_dir) if self.artifacts_dir else None,
            idle_timeout=self.idle_timeout,
        )

    def _route(self, model: str) -> dict[str, Any]:
        """The routing keywords of an SDK call to ``model`` (failover, timeout, trust)."""
        return route_kwargs(
            model, max_retries=self.max_retries, timeout=self.timeout, min_honesty=self.min_honesty
        )

    def settings(self) -> dict[str, Any]:
        """Return the connection settings, to build another component on the same mesh."""
        return {
            "gateway_url": self.gateway_url,
            "api_key": self.api_key,
            "timeout": self.timeout,
            "idle_timeout": self.idle_timeout,
            "max_retries": self.max_retries,
            "artifacts_dir": self.artifacts_dir,
        }


class RoutedModel(MeshSettings):
    """A language model's connection settings, routing target and tracing identity."""

    model_name: str = Field(alias="model")
    """Routing target: a peer id, an agent name or an engine name."""

    def _model(self, kwargs: dict[str, Any]) -> str:
        """The routing target of one call (``model=`` overrides the field)."""
        return str(kwargs.get("model") or self.model_name)

    def get_num_tokens(self, text: str) -> int:
        """Estimate tokens as the usage metadata does (about four characters per token).

        Mesh agents run arbitrary engines with no shared tokenizer, so this is an estimate
        (it keeps ``trim_messages(token_counter=llm)`` working without ``transformers``).
        """
        return estimate_tokens(text)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "gateway_url": redact_url(self.gateway_url)}

    def _ls_params(
        self, model_type: Literal["chat", "llm"], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER, ls_model_name=self._model(kwargs), ls_model_type=model_type
        )
        if stop:
            params["ls_stop"] = stop
        return params
