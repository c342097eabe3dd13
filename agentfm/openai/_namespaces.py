"""0.3.0 private module path kept for test suites that reset the routing warning.

One of the 0.3.0 paths `agentfm._compat` lists.

0.3.0 kept the models it had already warned about in ``_warned_about_routing``; tests
written against it call ``_warned_about_routing.discard(model)`` to make a warning fire
again. Here it is the warner's own set, so that still works.
"""

from __future__ import annotations

from agentfm.resources.openai import AsyncOpenAINamespace, OpenAINamespace
from agentfm.resources.openai._common import GLOBAL_WARNER

__all__ = ["AsyncOpenAINamespace", "OpenAINamespace"]

_warned_about_routing: set[str] = GLOBAL_WARNER._seen
