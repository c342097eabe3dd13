"""Render api.md from the live code: signatures and first docstring paragraphs.

Run ``python -m tests.apps.render_api_md`` from the repository root after changing a public
API; `test_api_doc.py` fails while a public name is missing from api.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

from pydantic import BaseModel

OUT: list[str] = []
DOCUMENTED: set[str] = set()
OURS = ("agentfm", "agentfm_integrations")


def w(line: str = "") -> None:
    """Append one line of Markdown."""
    OUT.append(line)


def first(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def clean(sig: str) -> str:
    """A signature as a reader wants it: no quotes around annotations, no self, no privates."""
    sig = re.sub(r"(:\s|->\s)'([^']*)'", r"\1\2", sig)
    sig = re.sub(r"\(_self, ", "(", sig)
    sig = re.sub(r"\(self: BaseModel, ", "(", sig)
    sig = re.sub(r"\bself,\s*", "", sig).replace("(self)", "()")
    sig = re.sub(r",?\s*_shared: [^,)]*(= None)?", "", sig)
    sig = sig.replace("builtins.", "").replace(" | _Unset", "")
    sig = re.sub(r"<agentfm\._client\._Unset object at 0x[0-9a-f]+>|<unset>", "<env>", sig)
    return re.sub(r"\s*->\s*None$", "", sig)


def signature(obj: object) -> str:
    try:
        return clean(str(inspect.signature(obj)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(…)"


def own_public(cls: type) -> list[tuple[str, str, str, str]]:
    """(kind, name, signature, summary) of the public members this project defines on ``cls``."""
    rows = []
    for name in sorted(dir(cls)):
        if name.startswith("_") or name == "model_post_init":
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith(OURS):
            continue
        raw = vars(owner)[name]
        if isinstance(raw, property) or type(raw).__name__ == "cached_property":
            fn = raw.fget if isinstance(raw, property) else raw.func
            rows.append(("property", name, "", first(fn)))
        elif isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
            fn = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            kind = "classmethod" if isinstance(raw, classmethod) else "method"
            if inspect.iscoroutinefunction(fn):
                kind = "async " + kind
            rows.append((kind, name, signature(getattr(cls, name)), first(fn)))
    return rows


def model_fields(cls: type[BaseModel], own_only: bool) -> list[tuple[str, str, str]]:
    """(name, type = default, description) of ``cls``'s fields (``own_only``: ours, not the
    framework base class's)."""
    rows = []
    declared: set[str] = set()
    for klass in cls.__mro__:
        if own_only and not klass.__module__.startswith(OURS):
            continue
        declared |= set(getattr(klass, "__annotations__", {}))
    for name, info in cls.model_fields.items():
        if own_only and name not in declared:
            continue
        ann = info.annotation
        ann = ann.__name__ if isinstance(ann, type) else str(ann)
        ann = ann.replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
        ann = re.sub(r"agentfm[\w.]*\.", "", ann)
        if info.is_required():
            default = "required"
        elif info.default_factory is not None:
            default = "factory"
        else:
            default = repr(info.default)
        alias = f" (alias `{info.alias}`)" if info.alias and info.alias != name else ""
        desc = info.description or ""
        rows.append((f"`{name}`{alias}", f"`{ann}` = {default}", desc))
    return rows


def cls_block(cls: type, *, fields: str = "none", init: bool = True) -> None:
    """Document a class: constructor (``init``), fields (``"all"``/``"own"``), members."""
    name = cls.__name__
    DOCUMENTED.add(name)
    if init and fields == "none" and not issubclass(cls, BaseException):
        w(f"### `{name}{signature(cls)}`")
    else:
        w(f"### `{name}`")
    w()
    w(first(cls))
    w()
    if fields != "none" and issubclass(cls, BaseModel):
        rows = model_fields(cls, own_only=(fields == "own"))
        if rows:
            w("| field | type = default | |")
            w("|---|---|---|")
            for a, b, c in rows:
                w(f"| {a} | {b.replace('|', '&#124;')} | {c.replace('|', '&#124;')} |")
            w()
    elif dataclasses.is_dataclass(cls):
        w("| field | type = default |")
        w("|---|---|")
        for f in dataclasses.fields(cls):
            default = (
                "required"
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                else ("factory" if f.default is dataclasses.MISSING else repr(f.default))
            )
            t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            w(f"| `{f.name}` | `{t.replace('|', '&#124;')}` = {default} |")
        w()
    rows = own_public(cls)
    for kind, m, sig, doc in rows:
        DOCUMENTED.add(m)
        head = f"`{m}`" if kind == "property" else f"`{m}{sig}`"
        w(f"- {kind} {head}" + (f": {doc}" if doc else ""))
    if rows:
        w()


def fn_block(fn: object, name: str) -> None:
    """Document a function."""
    DOCUMENTED.add(name)
    w(f"### `{name}{signature(fn)}`")
    w()
    w(first(fn))
    w()


def exc_tree() -> None:
    """The exception tree drawn in `agentfm.exceptions`, then one line per class."""
    import agentfm.exceptions as e

    doc = inspect.getdoc(e) or ""
    m = re.search(r"```(?:text)?\n(.*?)```", doc, re.S)
    w("## Exceptions")
    w()
    w(
        "Every class is exported from `agentfm` and carries `.message`, `.code`, `.status`, "
        "`.response` and `.retry_after`; the API key never appears in a message."
    )
    w()
    if m:
        w("```text")
        w(m.group(1).rstrip())
        w("```")
    else:
        w("```text")
        w(doc)
        w("```")
    w()
    for name in e.__all__:
        DOCUMENTED.add(name)
        obj = getattr(e, name)
        if inspect.isclass(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__)
            w(f"- `{name}` ({bases}): {first(obj)}")
        elif callable(obj):
            w(f"- `{name}{signature(obj)}`: {first(obj)}")
    w()


def render_body() -> str:
    """The generated part of api.md, section by section."""
    OUT.clear()
    import agentfm
    import agentfm.mesh as mesh
    from agentfm.resources.openai import AsyncOpenAINamespace, OpenAINamespace
    from agentfm.resources.openai.chat import AsyncChatCompletions, ChatCompletions
    from agentfm.resources.openai.completions import AsyncCompletions, Completions
    from agentfm.resources.openai.models import AsyncModels, Models
    from agentfm.resources.peers import AsyncPeers, Peers
    from agentfm.resources.tasks import AsyncTasks, Tasks
    from agentfm.resources.workers import AsyncWorkers, Workers

    w("## Clients")
    w()
    cls_block(agentfm.AgentFMClient)
    cls_block(agentfm.AsyncAgentFMClient)
    w(
        "Both are context managers (`with` / `async with`). `gateway_url` defaults to "
        "`AGENTFM_GATEWAY_URL`, then `DEFAULT_GATEWAY` (`http://127.0.0.1:8080`); `api_key` "
        "omitted reads `AGENTFM_API_KEY`, `None` disables auth."
    )
    w()
    w("## `client.workers`")
    w()
    cls_block(Workers, init=False)
    cls_block(AsyncWorkers, init=False)
    w("## `client.tasks`")
    w()
    cls_block(Tasks, init=False)
    cls_block(AsyncTasks, init=False)
    w("## `client.peers`")
    w()
    cls_block(Peers, init=False)
    cls_block(AsyncPeers, init=False)
    w("## `client.openai`")
    w()
    w(
        "`client.openai.models`, `client.openai.chat.completions`, `client.openai.completions`, "
        "shaped like the official `openai` package."
    )
    w()
    for c in (
        OpenAINamespace,
        AsyncOpenAINamespace,
        Models,
        AsyncModels,
        ChatCompletions,
        AsyncChatCompletions,
        Completions,
        AsyncCompletions,
    ):
        cls_block(c, init=False)
    w("## Streams")
    w()
    cls_block(agentfm.Stream, init=False)
    cls_block(agentfm.AsyncStream, init=False)
    w("## Results and wire models (`agentfm.models`)")
    w()
    for name in (
        "WorkerProfile",
        "TaskChunk",
        "TaskResult",
        "ScatterResult",
        "ScatterProgress",
        "AsyncTaskAck",
    ):
        c = getattr(agentfm, name)
        if issubclass(c, BaseModel):
            cls_block(c, fields="all")
        else:
            cls_block(c)
    DOCUMENTED.add("PeerID")
    w("### `PeerID`")
    w()
    w('`NewType("PeerID", str)`: a libp2p peer id (`12D3KooW…`).')
    w()
    w(
        "OpenAI-shaped models (`ChatCompletion`, `ChatCompletionChunk`, `TextCompletion`, "
        "`TextCompletionChunk`, `ModelsList`, `ModelEntry`, `ChatMessage`, `Usage`, …) live in "
        "`agentfm.openai` / `agentfm.types.openai`; they mirror the OpenAI schema plus "
        "`agentfm_*` extras."
    )
    w()
    exc_tree()
    w("## Artifacts, webhooks, keys, the Go gateway")
    w()
    cls_block(agentfm.ArtifactManager)
    cls_block(agentfm.WebhookReceiver)
    cls_block(agentfm.WebhookPayload, fields="all")
    fn_block(agentfm.verify_signature, "verify_signature")
    cls_block(agentfm.SwarmKey)
    cls_block(agentfm.LocalMeshGateway)
    w("## Helpers")
    w()
    fn_block(agentfm.flatten_messages, "flatten_messages")
    fn_block(agentfm.is_peer_id, "is_peer_id")
    for name in agentfm.__all__:
        if name not in DOCUMENTED and not name.startswith("__"):
            obj = getattr(agentfm, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            if inspect.isclass(obj):
                cls_block(obj)
            elif callable(obj):
                fn_block(obj, name)
            else:
                DOCUMENTED.add(name)
                w(f"### `{name}` = `{obj!r}`")
                w()

    w("## `agentfm.mesh`: the embedded gateway")
    w()
    cls_block(mesh.EmbeddedMesh)
    cls_block(mesh.WorkerConfig)
    cls_block(mesh.Worker, init=False)
    for name in ("Agent", "CallableAgent", "CommandAgent", "OpenAIProxyAgent", "AgentContext"):
        cls_block(getattr(mesh, name))
    cls_block(mesh.BreakStream)
    for name in mesh.__all__:
        obj = getattr(mesh, name)
        if name in DOCUMENTED:
            continue
        if inspect.isclass(obj):
            cls_block(obj)
        else:
            fn_block(obj, name)

    import agentfm_integrations.langchain as lc

    w("## `agentfm_integrations.langchain`")
    w()
    w(
        "Each class also has the standard LangChain interface of its base class "
        "(`invoke`/`ainvoke`, `stream`/`astream`, `batch`/`abatch`, …); listed here are the "
        "fields and the methods this package defines."
    )
    w()
    for name in lc.__all__:
        obj = getattr(lc, name)
        cls_block(obj, fields="own")

    import agentfm_integrations.llama_index as li

    w("## `agentfm_integrations.llama_index`")
    w()
    w(
        "`AgentFM` also has LlamaIndex's `LLM` interface (`complete`, `chat`, their stream and "
        "async twins, `predict`, …); listed are its fields and the methods this package defines."
    )
    w()
    for name in li.__all__:
        obj = getattr(li, name)
        if inspect.isclass(obj):
            cls_block(obj, fields="own" if issubclass(obj, BaseModel) else "none")
        elif callable(obj):
            fn_block(obj, name)
        else:
            DOCUMENTED.add(name)
            w(f"### `{name}` = `{obj!r}`")
            w()
    w("## Prompted tool calling and structured output")
    w()
    w(
        "The gateway carries one prompt string and drops `tools`, `tool_choice` and "
        "`response_format`, so `ChatAgentFM.bind_tools`/`with_structured_output` and "
        "`AgentFM.chat_with_tools`/`structured_predict` are *prompted*: the tools' JSON "
        "schemas (or the output schema), the conversation with earlier tool calls and "
        "results, and a one-JSON-object reply contract are written into the prompt. The "
        "reply is parsed leniently (fences, prose, `json-repair`) and validated strictly "
        "against each tool's schema; what does not validate goes to `invalid_tool_calls` "
        "(LlamaIndex: `additional_kwargs['invalid_tool_calls']`), never run. Structured "
        "answers that fail validation are re-asked with the error up to `max_reasks`, then "
        "the framework's `OutputParserException` is raised; batches re-ask only failed items. "
        "Answers are marked `agentfm.prompted` in `response_metadata` / `additional_kwargs`."
    )
    w()
    w(
        "`prompted_tools`: `None` (default) enables it when every worker matching `model` "
        "advertises an instruction-following LLM (capability words `tool`, `tools`, "
        "`function`, `llm`, `instruct`, or an `…instruct…` engine); `True` forces it on for "
        "an LLM worker, `False` turns it off (workers that are programs, not models). "
        "LlamaIndex's `metadata.is_function_calling_model` follows it."
    )
    w()
    text = "\n".join(OUT)
    text = re.sub(r"(?<!`)``([^`\n]+)``(?!`)", r"`\1`", text)
    return re.sub(r":(?:mod|class|meth|func):`", "`", text)


START = "<!-- generated:start -->"
END = "<!-- generated:end -->"


def render(current: str) -> str:
    """``current`` with the part between the markers rendered afresh (prose kept)."""
    head, _, rest = current.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n\n{render_body()}\n\n{END}{tail}"


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[2] / "api.md"
    target.write_text(render(target.read_text(encoding="utf-8")), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
