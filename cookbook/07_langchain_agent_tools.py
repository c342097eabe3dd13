"""LangChain/LangGraph: an agent that calls AgentFM workers as tools and reads their files.

Mesh workers run tasks; they are not tool-calling chat models. So the agent's *brain* here
is a small scripted chat model that always decides to call the ``writer`` tool first and
then reports what came back. Swap it for any tool-calling model (``ChatOpenAI``,
``ChatOllama``…) and nothing else changes: the tools are real and run on the mesh.

Tool results carry the produced files in ``ToolMessage.artifact`` (the text the model sees
stays in ``content``). Run it: ``python cookbook/07_langchain_agent_tools.py``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _gateway import gateway
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.prebuilt import create_react_agent

from agentfm_integrations.langchain import AgentFMToolkit

if TYPE_CHECKING:
    from collections.abc import Sequence

# LangGraph 1.x points to `langchain.agents.create_agent` (the `langchain` package, which
# this project does not depend on); create_react_agent is the same loop until LangGraph 2.
warnings.filterwarnings("ignore", message="create_react_agent has been moved")


class ScriptedBrain(BaseChatModel):
    """Call the first bound tool once, then answer from its result. Not a real LLM."""

    tool_name: str = ""

    @property
    def _llm_type(self) -> str:
        return "scripted-brain"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedBrain:
        # create_react_agent binds the tools; we remember which one to call.
        return self.model_copy(update={"tool_name": tools[0].name})

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"The {last.name} tool answered: {str(last.content).strip()}")
        else:
            call = {"name": self.tool_name, "args": {"prompt": str(last.content)}, "id": "call-1"}
            reply = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def main() -> None:
    # Where the tools extract files: a temporary folder, removed at the end (name a folder of
    # your own to keep them).
    with tempfile.TemporaryDirectory(prefix="agentfm-agent-") as files, gateway():
        # One tool per agent on the mesh; keep the writer, which produces a file.
        tools = [t for t in AgentFMToolkit(artifacts_dir=files).get_tools() if "writer" in t.name]
        print(f"tools: {[t.name for t in tools]}")

        agent = create_react_agent(ScriptedBrain(), tools)
        state = agent.invoke({"messages": [("human", "write a note about the mesh")]})

        for message in state["messages"]:
            if isinstance(message, ToolMessage):
                # content is what the model saw; artifact is for the application: the task id,
                # the peer that ran it, and the files it produced (path, mime type, size, sha256).
                print(f"tool {message.name} content: {str(message.content).strip()!r}")
                artifact = message.artifact
                print(f"tool artifact: task {artifact['task_id']} on {artifact['peer_id']}")
                for ref in artifact["files"]:
                    first_line = Path(ref["path"]).read_text(encoding="utf-8").splitlines()[0]
                    print(
                        f"  file {ref['path']} ({ref['mime_type']}, {ref['size']} bytes): "
                        f"{first_line}"
                    )
    print(f"agent answer: {state['messages'][-1].content}")


if __name__ == "__main__":
    main()
