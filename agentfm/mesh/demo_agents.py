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


def python_agent_argv(agent: str) -> list[str]:
    """argv that runs one of these agents in a fresh interpreter quickly (``-S``: stdlib only)."""
    return [sys.executable, "-S", __file__, agent]


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


# --------------------------------------------------------------------------------------
# planner: a deterministic stand-in for an instruction-following LLM (prompted tool calling)

_TAG = r"<{0}>(.*?)</{0}>"
_SEGMENT = re.compile(r"(?:^|\n\n)(system|user|assistant|tool|developer|function):(?: |$)")
_DIRECTIVE = re.compile(r"\[planner:([a-z-]+)\]")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_PHRASE = re.compile(r"\b(?:in|about|for|named|called|of)\s+(.+)$", re.IGNORECASE)
_GENERIC_WORDS = frozenset(["get", "tool", "function", "run", "the", "my", "do", "make"])


def _tag(prompt: str, name: str) -> object | None:
    import json

    found = re.search(_TAG.format(name), prompt, re.DOTALL)
    if found is None:
        return None
    try:
        value: object = json.loads(found.group(1))
    except ValueError:
        return found.group(1).strip()
    return value


def _segments(prompt: str) -> list[tuple[str, str]]:
    """Split the gateway's flattened chat (``role: content`` blocks) back into messages."""
    parts = _SEGMENT.split(prompt)
    pairs = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    if pairs and pairs[-1] == ("assistant", ""):
        pairs.pop()
    return pairs


def _call_syntax(text: str, name: str) -> list[str] | None:
    """The raw arguments of ``name(...)`` written in the text, or None."""
    found = re.search(re.escape(name) + r"\(([^)]*)\)", text)
    if found is None:
        return None
    inner = found.group(1).strip()
    return [a.strip() for a in inner.split(",")] if inner else []


def _literal(raw: str) -> object:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw.strip("'\"")


def _mentions(text: str, name: str) -> int | None:
    """Where the text first refers to a tool: by call, by name, or by a distinctive word."""
    at = text.find(name)
    if at != -1:
        return at
    lowered = text.lower()
    words = [w for w in re.split(r"[_\-]+", name.lower()) if len(w) > 3]
    hits = [lowered.find(w) for w in words if w not in _GENERIC_WORDS and w in lowered]
    return min(hits) if hits else None


class _Filler:
    """Fill a tool's required arguments from the request, or from the last tool result."""

    def __init__(self, request: str, last_result: str | None) -> None:
        self.request = request
        self.numbers = [float(n) if "." in n else int(n) for n in _NUMBER.findall(request)]
        self.last_result = last_result

    def text(self, key: str) -> str:
        import json

        if self.last_result is not None:
            try:
                parsed = json.loads(self.last_result)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and key in parsed:
                return str(parsed[key])
            return self.last_result
        quoted = _QUOTED.search(self.request)
        if quoted:
            return quoted.group(1) or quoted.group(2)
        phrase = _PHRASE.search(self.request)
        if phrase:
            return phrase.group(1).strip().rstrip("?.!")
        return self.request.strip() or key

    def value(self, key: str, schema: dict[str, object]) -> object:
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list):
            typed = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if typed:
                return self.value(key, typed[0])
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        kind = schema.get("type")
        if kind in ("integer", "number"):
            if self.numbers:
                number = self.numbers.pop(0)
                return int(number) if kind == "integer" else number
            low, above = schema.get("minimum"), schema.get("exclusiveMinimum")
            if isinstance(low, (int, float)) and low > 1:
                return int(low)
            if isinstance(above, (int, float)) and above >= 1:
                return int(above) + 1
            return 1
        if kind == "boolean":
            return True
        if kind == "array":
            items = schema.get("items")
            return [self.value(key, items)] if isinstance(items, dict) else []
        if kind == "object":
            return _fill_object(schema, self)
        return self.text(key)


def _fill_object(schema: dict[str, object], filler: _Filler) -> dict[str, object]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    needed = required if isinstance(required, list) else list(props)
    return {k: filler.value(k, props.get(k) or {}) for k in needed}


def _arguments(tool: dict[str, object], request: str, last_result: str | None) -> dict[str, object]:
    name = str(tool.get("name"))
    schema = tool.get("parameters")
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties")
    keys = list(props) if isinstance(props, dict) else []
    args: dict[str, object] = {}
    written = _call_syntax(request, name)
    if written is not None:
        for position, raw in enumerate(written):
            key, sep, value = raw.partition("=")
            if sep and key.strip() in keys:
                args[key.strip()] = _literal(value.strip())
            elif position < len(keys):
                args[keys[position]] = _literal(raw)
        return args
    return _fill_object(schema, _Filler(request, last_result))


def _break_types(values: dict[str, object]) -> dict[str, object]:
    """The small-model slip: the first argument with the wrong JSON type."""
    broken = dict(values)
    for key, value in broken.items():
        broken[key] = "three" if isinstance(value, (int, float)) else 42
        break
    return broken


def _dress(reply: str, mistakes: set[str]) -> str:
    if "prose" in mistakes:
        return f"Sure! Here is my answer:\n```json\n{reply}\n```\nHope that helps."
    if "no-json" in mistakes:
        return "I think the answer is obvious, so here it is in plain words.\n"
    return reply


def plan_reply(prompt: str) -> str:
    """Answer a prompt that carries the integrations' reply contract, deterministically.

    It reads ``<tools>``/``<tool_choice>`` or ``<schema>`` from the prompt and answers with
    the contract's JSON: the next tool the request mentions (by ``name(args)``, by name or
    by a distinctive word of the name), with arguments taken from the request or from the
    previous tool result; a final answer once every mentioned tool has answered; or an
    object valid for the schema. ``[planner:prose]``, ``[planner:wrong-type]``,
    ``[planner:unknown-tool]`` and ``[planner:no-json]`` in the request make the mistakes a
    small model makes; they stop after a ``<correction>`` unless ``[planner:stubborn]``.
    """
    import json

    segments = _segments(prompt)
    requests = [
        i
        for i, (role, text) in enumerate(segments)
        if role == "user" and "<correction>" not in text
    ]
    last = requests[-1] if requests else -1
    request = segments[last][1] if last >= 0 else _plain_text(prompt)
    mistakes = set(_DIRECTIVE.findall(request))
    if "<correction>" in prompt and "stubborn" not in mistakes:
        mistakes = set()
    request = _DIRECTIVE.sub("", request).strip()

    schema = _tag(prompt, "schema")
    if isinstance(schema, dict):
        value = _fill_object(schema, _Filler(request, None))
        if "wrong-type" in mistakes:
            value = _break_types(value)
        return _dress(json.dumps(value, ensure_ascii=False), mistakes) + "\n"

    tools = _tag(prompt, "tools")
    if not isinstance(tools, list):
        return f"planner: no reply contract in the prompt. You said: {request}\n"
    by_name = {str(t.get("name")): t for t in tools if isinstance(t, dict)}
    choice = str(_tag(prompt, "tool_choice") or "auto")
    results: list[dict[str, object]] = []
    called: set[str] = set()
    for role, text in segments[last + 1 :]:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if role == "tool" and isinstance(data, dict) and isinstance(data.get("tool_result"), dict):
            results.append(data["tool_result"])
        elif role == "assistant" and isinstance(data, dict):
            called.update(str(c.get("name")) for c in data.get("tool_calls", []))
    called.update(str(r.get("name")) for r in results)
    spots = {name: _mentions(request, name) for name in by_name}
    wanted = sorted((at, name) for name, at in spots.items() if at is not None)
    pending = [name for _, name in wanted if name not in called]
    if choice in by_name:
        target: str | None = choice
    elif pending and choice != "none":
        target = pending[0]
    elif choice == "required":
        target = wanted[0][1] if wanted else next(iter(by_name), None)
    else:
        target = None
    if target is None:
        if results:
            answer = "; ".join(
                f"{r.get('name')} returned {str(r.get('content')).strip()}" for r in results
            )
        else:
            answer = f"No tool is needed for this. You said: {request}"
        return _dress(json.dumps({"final_answer": answer}, ensure_ascii=False), mistakes) + "\n"
    last_result = str(results[-1].get("content")) if results else None
    args = _arguments(by_name[target], request, last_result)
    if "wrong-type" in mistakes:
        args = _break_types(args)
    name = "web_search" if "unknown-tool" in mistakes else target
    reply = json.dumps({"tool_calls": [{"name": name, "arguments": args}]}, ensure_ascii=False)
    return _dress(reply, mistakes) + "\n"


_PLANNER_PIECE = 256
"""Characters per write of the planner's reply."""


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
    elif agent == "planner":
        # Written in pieces, as a model streams tokens; the bytes are those of plan_reply.
        reply = plan_reply(prompt)
        for start in range(0, len(reply), _PLANNER_PIECE):
            out.write(reply[start : start + _PLANNER_PIECE])
            out.flush()
    else:
        sys.stderr.write(f"unknown demo agent {agent!r}\n")
        return 2
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
