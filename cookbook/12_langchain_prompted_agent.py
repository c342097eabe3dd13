"""LangChain: the mesh as the agent's brain, with prompted tool calling.

``ChatAgentFM`` drives a LangChain agent (``langchain.agents.create_agent``) that calls two
tools: ``writer``, a mesh agent that writes ``answer.md``, and ``count_words``, a local
Python function. The gateway carries only a prompt string, so the tool calls are
*prompted*: the tools' schemas and a JSON reply contract go into the prompt, and the reply
is parsed and validated into real ``AIMessage.tool_calls``. That needs a worker that
follows instructions; the demo mesh's ``planner`` is a deterministic stand-in for one
(point ``model`` at an Ollama/vLLM-backed worker for a real LLM).

Run it: ``python cookbook/12_langchain_prompted_agent.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _gateway import gateway
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from agentfm_integrations.langchain import AgentFMTool, ChatAgentFM


@tool
def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


class CountCalls(BaseCallbackHandler):
    """Count model calls (each one is a task on the mesh)."""

    calls = 0

    def on_chat_model_start(self, *args: object, **kwargs: object) -> None:
        self.calls += 1


class Verdict(BaseModel):
    """A short structured verdict."""

    topic: str
    words: int


def main() -> None:
    # Where the tools extract files: a temporary folder, removed at the end (name a folder of
    # your own to keep them).
    with tempfile.TemporaryDirectory(prefix="agentfm-agent-") as files, gateway():
        brain = ChatAgentFM(model="planner")  # AGENTFM_GATEWAY_URL; prompted tools: advertised
        writer = AgentFMTool(
            model="writer",
            name="writer",
            description="Writes a note about a topic to answer.md and says how long it is.",
            artifacts_dir=files,
        )
        agent = create_agent(brain, [writer, count_words])
        task = (
            "Ask writer to write 'a note about peer-to-peer meshes', then give the note it "
            "wrote to count_words, and tell me the number of words."
        )
        state = agent.invoke({"messages": [("human", task)]})

        for message in state["messages"]:
            if isinstance(message, AIMessage) and message.tool_calls:
                call = message.tool_calls[0]
                how = message.response_metadata["agentfm"]["reply_format"]
                print(f"model called {call['name']}({call['args']}) [prompted, {how} reply]")
            elif isinstance(message, ToolMessage):
                print(f"tool {message.name} -> {str(message.content).strip()!r}")
                for ref in (message.artifact or {}).get("files", []):
                    head = Path(ref["path"]).read_text(encoding="utf-8").splitlines()[0]
                    print(f"  file {Path(ref['path']).name} ({ref['size']} bytes): {head}")
        print(f"agent answer: {state['messages'][-1].content}")

        # Structured output is prompted too: the schema goes into the prompt, the answer is
        # validated, and an invalid one is re-asked with the error ([planner:wrong-type]
        # makes the planner slip once, as a small model would).
        counter = CountCalls()
        verdict = brain.with_structured_output(Verdict, include_raw=True).invoke(
            "A verdict about 'meshes', 12 words [planner:wrong-type]",
            config={"callbacks": [counter]},
        )
        print(f"structured: {verdict['parsed']!r} after {counter.calls} task(s)")


if __name__ == "__main__":
    main()
