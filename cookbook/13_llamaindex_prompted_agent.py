"""LlamaIndex: a FunctionAgent whose LLM is the mesh, with prompted tool calling.

``AgentFM`` is a ``FunctionCallingLLM``: ``chat_with_tools`` writes the tools' schemas and a
JSON reply contract into the prompt (the gateway carries only a prompt string) and parses
the reply into ``ToolSelection``s after validating the arguments. The demo mesh's
``planner`` is a deterministic stand-in for an instruction-following LLM; it advertises
the ``tool-calling`` capability, so ``metadata.is_function_calling_model`` is true for it.

The agent calls ``writer`` (a mesh agent that writes ``answer.md``) and then
``count_words`` (local Python), and the application reads the file from the tool result.
Run it: ``python cookbook/13_llamaindex_prompted_agent.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from _gateway import gateway
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from agentfm_integrations.llama_index import AgentFM, AgentFMTaskTool


def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


class Verdict(BaseModel):
    """A short structured verdict."""

    topic: str
    words: int


async def run() -> None:
    # Where the tools extract files: a temporary folder, removed at the end (name a folder of
    # your own to keep them).
    with tempfile.TemporaryDirectory(prefix="agentfm-agent-") as files, gateway():
        llm = AgentFM(model="planner")  # AGENTFM_GATEWAY_URL
        print(f"function calling model: {llm.metadata.is_function_calling_model}")
        writer = AgentFMTaskTool(
            "writer",
            name="writer",
            description="Writes a note about a topic to answer.md and says how long it is.",
            artifacts_dir=files,
        )
        agent = FunctionAgent(tools=[writer, FunctionTool.from_defaults(count_words)], llm=llm)
        handler = agent.run(
            "Ask writer to write 'a note about peer-to-peer meshes', then give the note it "
            "wrote to count_words, and tell me the number of words."
        )
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                print(
                    f"tool {event.tool_name}({event.tool_kwargs}) -> {event.tool_output.content!r}"
                )
                raw = event.tool_output.raw_output
                for ref in raw.get("files", []) if isinstance(raw, dict) else []:
                    text = await asyncio.to_thread(Path(ref["path"]).read_text, "utf-8")
                    head = text.splitlines()[0]
                    print(f"  file {Path(ref['path']).name} ({ref['size']} bytes): {head}")
        answer = await handler
        print(f"agent answer: {answer}")

        verdict = await llm.astructured_predict(
            Verdict, PromptTemplate("A verdict about '{topic}', 12 words"), topic="meshes"
        )
        print(f"structured: {verdict!r}")


if __name__ == "__main__":
    asyncio.run(run())
