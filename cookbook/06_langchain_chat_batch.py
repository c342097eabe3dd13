"""LangChain: `ChatAgentFM` in a chain, streaming, and a batch that is one scatter.

``ChatAgentFM`` is a regular LangChain chat model. Its ``batch`` does not loop over
``invoke``: the whole batch goes out as one scatter across every worker that matches
``model``, with failover to an untried peer when one fails.
Run it: ``python cookbook/06_langchain_chat_batch.py``.
"""

from __future__ import annotations

from _gateway import gateway
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentfm_integrations.langchain import ChatAgentFM


def main() -> None:
    with gateway():
        # gateway_url and api_key default to AGENTFM_GATEWAY_URL / AGENTFM_API_KEY.
        llm = ChatAgentFM(model="echo")

        # A chain: prompt template -> mesh -> plain string.
        prompt = ChatPromptTemplate.from_messages([("human", "Say something about {topic}.")])
        chain = prompt | llm | StrOutputParser()
        print(f"chain: {chain.invoke({'topic': 'peer-to-peer meshes'}).strip()!r}")

        # Streaming: chunks as the worker prints them.
        parts = [chunk.content for chunk in llm.stream("stream a short answer")]
        print(f"stream: {len(parts)} chunk(s)")

        # Batch: one scatter for all twelve prompts.
        questions = [f"question {i}" for i in range(12)]
        answers = llm.batch(questions)
        for question, answer in zip(questions, answers, strict=False):
            peer = answer.response_metadata["peer_id"]  # which worker answered
            print(f"{question} -> {str(answer.content).strip()!r} on {peer}")

        # The same chain, batched: the chat-model step still scatters.
        topics = [{"topic": t} for t in ("failover", "artifacts", "webhooks")]
        print(f"chain batch: {chain.batch(topics)}")


if __name__ == "__main__":
    main()
