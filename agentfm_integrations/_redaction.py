"""One mixin that keeps URL userinfo out of what a framework object shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_serializer

from agentfm import redact_url

__all__ = ["RedactedGatewayURL"]


class RedactedGatewayURL(BaseModel):
    """Show ``gateway_url`` with its userinfo (a proxy's password) redacted.

    Covers repr/str (which LangChain's "not_implemented" dumps embed) and pydantic
    serialisation (``model_dump``, LangChain callbacks and tracing, LlamaIndex
    ``to_json``/``to_dict``). The field itself keeps the real URL for the SDK client.
    """

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "gateway_url" else value

    @field_serializer("gateway_url", check_fields=False)
    def _shown_gateway_url(self, value: str | None) -> str | None:
        return redact_url(value)
