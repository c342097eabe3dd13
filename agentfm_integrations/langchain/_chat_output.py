"""What one `ChatAgentFM` call answers: a `ChatResult`, or the chunks of a stream.

The model class (``chat_models.py``) decides where a call goes; this module shapes what
comes back (stop sequences, usage, provenance metadata, prompted tool calls), the same way
for an answer from a task, from a scatter item, and from a stream. `ChatStream` holds a
stream's state so the sync and async drivers are only their loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

import agentfm
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations.langchain._convert import (
    PROVIDER,
    StopScanner,
    estimated_usage,
    raise_if_failed,
    response_metadata,
    truncate_at_stop,
)
from agentfm_integrations.langchain._prompted import tool_chunk

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentfm_integrations._tasks import StreamEnd
    from agentfm_integrations.langchain._prompted import Prompted

__all__ = ["ChatCall", "ChatStream", "Served", "last_chunk", "text_chunk"]


@dataclass(frozen=True)
class Served:
    """Who served an answer, and what it produced."""

    peer_id: str | None
    task_id: str | None
    files: Sequence[agentfm.FileRef]
    attempts: int | None
    peers_tried: Sequence[str] | None

    @classmethod
    def of_task(cls, result: agentfm.TaskResult) -> Served:
        tried = list(result.peers_tried)
        files = agentfm.describe_files(result.artifacts)
        return cls(result.peer_id, result.task_id, files, len(tried), tried)

    @classmethod
    def of_scatter(cls, result: agentfm.ScatterResult) -> Served:
        files = agentfm.describe_files(result.artifacts)
        return cls(result.worker_id, result.task_id, files, result.attempts, result.peers_tried)

    @classmethod
    def of_stream(cls, end: StreamEnd, files: Sequence[agentfm.FileRef]) -> Served:
        return cls(end.peer_id, end.task_id, files, end.attempts, end.peers_tried)

    def metadata(self, model: str) -> dict[str, Any]:
        return response_metadata(
            model=model,
            peer_id=self.peer_id,
            task_id=self.task_id,
            finish_reason="stop",
            files=self.files,
            attempts=self.attempts,
            peers_tried=self.peers_tried,
        )


@dataclass(frozen=True)
class ChatCall:
    """One call's routing target, stop sequences and reply contract (tools or a schema)."""

    model: str
    stop: list[str] | None
    request: Prompted | None

    def result(self, prompt: str, text: str, served: Served) -> ChatResult:
        """The `ChatResult` of a whole answer."""
        text, _ = truncate_at_stop(text, self.stop)
        meta = served.metadata(self.model)
        usage = estimated_usage(prompt, text)
        if self.request is None:
            message = AIMessage(content=text, usage_metadata=usage, response_metadata=meta)
        else:
            content, calls, invalid, info = self.request.parse(text)
            meta[PROVIDER].update(info)
            if calls:
                meta["finish_reason"] = "tool_calls"
            message = AIMessage(
                content=content,
                tool_calls=calls,
                invalid_tool_calls=invalid,
                usage_metadata=usage,
                response_metadata=meta,
            )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def from_scatter(self, prompt: str, result: agentfm.ScatterResult) -> ChatResult:
        """The answer of a scatter item, or its error as LangChain's model error."""
        raise_if_failed(result)
        return self.result(prompt, result.text, Served.of_scatter(result))


class ChatStream:
    """One streamed answer: stop sequences, the final-answer text of a prompted reply, and
    the closing chunk that carries usage and metadata."""

    def __init__(self, call: ChatCall, prompt: str, route: dict[str, Any]) -> None:
        self._call = call
        self._prompt = prompt
        self._scan = StopScanner(call.stop)
        # A tool-calling reply streams only its well-formed final answer; structured
        # output is parsed whole.
        request = call.request
        self._answer = (
            tc.FinalAnswerStream() if request is not None and request.schema is None else None
        )
        self._emitted: list[str] = []
        self._end: StreamEnd | None = None
        self.task_kwargs: dict[str, Any] = {"prompt": prompt, "stop_when": self.stopped, **route}
        """Keywords of `_tasks.stream_task` for this stream."""

    def stopped(self) -> bool:
        """Whether a stop sequence has been seen (the task can be ended early)."""
        return self._scan.stopped

    def feed(self, event: str | StreamEnd) -> ChatGenerationChunk | None:
        """The chunk to emit for the next event of the task's stream, if any."""
        if not isinstance(event, str):
            self._end = event
            return None
        kept = self._scan.feed(event)
        if kept:
            self._emitted.append(kept)
        piece = self._streamable(kept)
        return text_chunk(piece) if piece else None

    def files_task(self) -> str | None:
        """The task whose files the finished stream announced, if any."""
        end = self._ended()
        return end.task_id if end.files_incoming and end.task_id else None

    def close(self, files: Sequence[agentfm.FileRef]) -> list[ChatGenerationChunk]:
        """The chunks after the task ended: any held-back text, then the closing chunk."""
        chunks: list[ChatGenerationChunk] = []
        if tail := self._scan.flush():
            self._emitted.append(tail)
            if piece := self._streamable(tail):
                chunks.append(text_chunk(piece))
        chunks.append(
            last_chunk(
                prompt=self._prompt,
                text="".join(self._emitted),
                model=self._call.model,
                end=self._ended(),
                files=files,
                request=self._call.request,
                streamed=self._answer.finish() if self._answer is not None else "",
            )
        )
        return chunks

    def _ended(self) -> StreamEnd:
        if self._end is None:  # pragma: no cover - stream_task always ends with one
            raise RuntimeError("the task stream ended without its StreamEnd")
        return self._end

    def _streamable(self, text: str) -> str:
        """What of ``text`` streams now: all of it without a reply contract, else only a
        well-formed final answer's decoded text (the rest is parsed once whole)."""
        if not text:
            return ""
        if self._call.request is None:
            return text
        return self._answer.feed(text) if self._answer is not None else ""


def last_chunk(
    *,
    prompt: str,
    text: str,
    model: str,
    end: StreamEnd,
    files: Sequence[agentfm.FileRef],
    request: Prompted | None = None,
    streamed: str = "",
) -> ChatGenerationChunk:
    """The closing chunk of a stream whose whole text was ``text``.

    ``streamed``: the final-answer text a prompted reply already streamed.
    """
    # Usage and metadata go on this one chunk only: merging chunks concatenates strings
    # and adds token counts.
    meta = Served.of_stream(end, files).metadata(model)
    usage = estimated_usage(prompt, text)
    if request is None:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="", chunk_position="last", usage_metadata=usage, response_metadata=meta
            )
        )
    # A prompted reply is only known once whole: every tool call arrives in this one
    # chunk, with the text unless a well-formed final answer already streamed.
    content, calls, invalid, info = request.parse(text)
    meta[PROVIDER].update(info)
    if streamed:
        rest = tc.stream_remainder(streamed, content)
        if rest is None:
            # The whole-reply parse is the answer (invoke() returns it), but streamed
            # text cannot be taken back: say so, and carry the parsed answer here.
            meta[PROVIDER]["stream_mismatch"] = True
            meta[PROVIDER]["final_answer"] = content
        content = rest or ""
    if calls:
        meta["finish_reason"] = "tool_calls"
    return ChatGenerationChunk(
        message=tool_chunk(
            content,
            calls,
            invalid,
            chunk_position="last",
            usage_metadata=usage,
            response_metadata=meta,
        )
    )


def text_chunk(text: str) -> ChatGenerationChunk:
    """A chunk of streamed answer text."""
    return ChatGenerationChunk(
        message=AIMessageChunk(content=text, response_metadata={"model_provider": PROVIDER})
    )
