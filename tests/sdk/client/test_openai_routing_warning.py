"""``routing_warning=False``: /v1 calls by agent or engine name without AgentFMRoutingWarning."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from agentfm import AgentFMRoutingWarning
from tests.helpers import call, collect

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

MESSAGES = [{"role": "user", "content": "by name"}]


async def _by_name_calls(client: Any) -> list[type[Warning]]:
    """Make every kind of /v1 call by name; return the warning categories they raised."""
    client.openai._warner.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reply = await call(client.openai.chat.completions.create, model="echo", messages=MESSAGES)
        assert "by name" in (reply.choices[0].message.content or "")
        stream = await call(
            client.openai.chat.completions.create, model="echo", messages=MESSAGES, stream=True
        )
        assert await collect(stream)
        text = await call(client.openai.completions.create, model="summarizer", prompt="p q r")
        assert text.choices
    # A ResourceWarning here is the garbage collector finalising some earlier test's object at
    # a moment it chose; it says nothing about these calls, so only it is left out.
    return [w.category for w in caught if not issubclass(w.category, ResourceWarning)]


async def test_default_still_warns_once_per_model(any_client: Any) -> None:
    assert any_client.routing_warning is True
    assert await _by_name_calls(any_client) == [AgentFMRoutingWarning, AgentFMRoutingWarning]


async def test_with_options_turns_it_off_and_copies_keep_it(any_client: Any) -> None:
    quiet = any_client.with_options(routing_warning=False)
    try:
        assert quiet.routing_warning is False
        assert await _by_name_calls(quiet) == []
        again = quiet.with_options(timeout=30.0)
        try:
            assert again.routing_warning is False
            assert await _by_name_calls(again) == []
        finally:
            await call(again.close)
        # The original client is untouched.
        assert await _by_name_calls(any_client) == [AgentFMRoutingWarning, AgentFMRoutingWarning]
    finally:
        await call(quiet.close)


async def test_constructor_option(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    quiet = type(any_client)(demo_mesh.url, api_key=None, routing_warning=False)
    try:
        assert quiet.routing_warning is False
        assert await _by_name_calls(quiet) == []
        loud = quiet.with_options(routing_warning=True)
        try:
            assert await _by_name_calls(loud) == [AgentFMRoutingWarning, AgentFMRoutingWarning]
        finally:
            await call(loud.close)
    finally:
        await call(quiet.close)
