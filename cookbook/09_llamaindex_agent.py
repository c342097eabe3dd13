"""LlamaIndex: a FunctionAgent with the AgentFM tool spec, reading files from tool events.

``AgentFMToolSpec`` turns the mesh into LlamaIndex tools: ``run_task``, ``scatter`` and
``list_workers``. Mesh workers run tasks; they are not tool-calling models. So the agent's
*brain* here is LlamaIndex's ``MockFunctionCallingLLM`` driven by a short script (call
``run_task`` on the writer once, then report). Swap in any function-calling LLM and the rest
stays the same: the tools are real and run on the mesh.

Every ``ToolCallResult`` event carries the tool's output; for ``run_task`` its
``raw_output`` is a mapping with the text, the peer id and the produced ``files``.
Run it: ``python cookbook/09_llamaindex_agent.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import TYPE_CHECKING, Any

from _gateway import gateway
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM

from agentfm_integrations.llama_index import AgentFMToolSpec

if TYPE_CHECKING:
    from collections.abc import Sequence


def scripted_brain(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """First turn: ask the writer. After the tool answered: say what it returned."""
    tool_results = [m for m in messages if m.role == MessageRole.TOOL]
    if tool_results:
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Done. {tool_results[-1].content}")
    request = str(messages[-1].content)
    call = ToolCallBlock(
        tool_call_id="call-1",
        tool_name="run_task",
        tool_kwargs={"prompt": request, "model": "writer"},
    )
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])


async def run() -> None:
    # Where the tools extract files: a temporary folder, removed at the end (name a folder of
    # your own to keep them).
    with tempfile.TemporaryDirectory(prefix="agentfm-agent-") as files, gateway():
        tools = AgentFMToolSpec(artifacts_dir=files).to_tool_list()  # AGENTFM_GATEWAY_URL
        print(f"tools: {[t.metadata.name for t in tools]}")

        brain = MockFunctionCallingLLM(response_generator=scripted_brain)
        agent = FunctionAgent(tools=tools, llm=brain, system_prompt="Use the mesh agents.")
        handler = agent.run("Write a short note about meshes.")
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                report = event.tool_output.raw_output  # the application-side result
                paths = [f["path"] for f in report["files"]]
                print(f"tool {event.tool_name} -> peer {report['peer_id']}, files {paths}")
        answer = await handler
    print(f"agent answer: {answer}")


if __name__ == "__main__":
    asyncio.run(run())
