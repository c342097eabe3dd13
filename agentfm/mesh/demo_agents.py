"""Deterministic, offline demo agents; also runnable as ``python demo_agents.py <agent> <prompt>``.

Only the standard library is imported so a subprocess agent starts quickly.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter

_WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ROLE_PREFIX = re.compile(r"^(system|user|assistant|tool|developer):\s?", re.MULTILINE)
# A turn of the gateway's chat flattening: "<role>: <content>" at the start or after the blank
# line that ends the previous turn.
_TURN = re.compile(r"(?:\A|\n\n)(system|user|assistant|tool|developer|function): ")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)


def echo_lines(prompt: str) -> list[str]:
    """The prompt back, line by line (each line keeps or gains its newline)."""
    lines = prompt.splitlines(keepends=True) or [""]
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def last_user_turn(prompt: str) -> str | None:
    """The last user message of a flattened chat prompt; None when ``prompt`` is not one.

    The gateway turns chat messages into ``"user: Hi\n\nassistant:"`` (protocol: prompt
    flattening). Echoing that whole transcript reads as an empty conversation, so on a chat
    route the echo agent answers with what the user said last (the last turn of any role
    when no user spoke).
    """
    if not prompt.endswith("assistant:"):
        return None
    body = prompt[: -len("assistant:")]
    if not body:  # every message was empty
        return ""
    turns = list(_TURN.finditer(body))
    if not turns or turns[0].start() != 0 or not body.endswith("\n\n"):
        return None
    ends = [t.start() for t in turns[1:]] + [len(body) - 2]
    contents = [(t.group(1), body[t.end() : end]) for t, end in zip(turns, ends, strict=True)]
    users = [text for role, text in contents if role == "user"]
    return users[-1] if users else contents[-1][1]


def _plain_text(prompt: str) -> str:
    """Strip the chat flattening (``role: `` prefixes, trailing ``assistant:``)."""
    text = prompt.strip()
    if text.endswith("assistant:"):
        text = text[: -len("assistant:")]
    return _ROLE_PREFIX.sub("", text).strip()


def summarize(prompt: str, max_sentences: int = 3) -> str:
    """Extractive summary: the highest-scoring sentences by content-word frequency, in order."""
    text = _plain_text(prompt)
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    if not sentences:
        return "(nothing to summarize)\n"
    if len(sentences) <= max_sentences:
        return "\n".join(sentences) + "\n"
    freq = Counter(
        w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS
    )

    def score(sentence: str) -> float:
        words = [w.lower() for w in _WORD.findall(sentence)]
        content = [w for w in words if w not in _STOPWORDS]
        return sum(freq[w] for w in content) / (len(content) or 1) if content else 0.0

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
    keep = sorted(ranked[:max_sentences])
    return "\n".join(sentences[i] for i in keep) + "\n"


def write_answer(prompt: str, output_dir: str) -> str:
    """Write ``answer.md`` (a heading plus the prompt) and return the progress line."""
    body = f"# Answer\n\n{_plain_text(prompt)}\n"
    path = os.path.join(output_dir, "answer.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(body)
    return f"wrote answer.md ({len(body.encode())} bytes)\n"


def main(argv: list[str]) -> int:
    """Subprocess entry point: ``<agent> <prompt>``, the prompt last as the worker passes it."""
    if len(argv) < 2:
        sys.stderr.write("usage: demo_agents.py {echo|writer|summarize} PROMPT\n")
        return 2
    agent, prompt = argv[0], argv[-1]
    out = sys.stdout
    if agent == "echo":
        turn = last_user_turn(prompt)
        for line in echo_lines(prompt if turn is None else turn):
            out.write(line)
            out.flush()
    elif agent == "writer":
        out.write(write_answer(prompt, os.environ.get("AGENTFM_OUTPUT_DIR", ".")))
    elif agent == "summarize":
        out.write(summarize(prompt))
    else:
        sys.stderr.write(f"unknown demo agent {agent!r}\n")
        return 2
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
