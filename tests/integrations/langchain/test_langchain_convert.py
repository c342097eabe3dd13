"""Pure mapping between LangChain types and the SDK (no sockets)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from langchain_core import exceptions as lc_exc
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

import agentfm
from agentfm_integrations.langchain import _convert as cv

if TYPE_CHECKING:
    from pathlib import Path


def test_messages_flatten_like_the_gateway() -> None:
    messages = [
        SystemMessage("S"),
        HumanMessage("Hi", name="bob"),
        AIMessage("Hello"),
        ChatMessage(role="critic", content="meh"),
        ToolMessage("42", tool_call_id="t1"),
    ]
    assert cv.to_wire_messages(messages) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "critic", "content": "meh"},
        {"role": "tool", "content": "42"},
    ]
    assert cv.to_prompt([SystemMessage("S"), HumanMessage("Hi")]) == (
        "system: S\n\nuser: Hi\n\nassistant:"
    )


def test_text_blocks_are_joined_and_media_refused() -> None:
    msg = HumanMessage(content=[{"type": "text", "text": "a"}, "b"])
    assert cv.message_text(msg) == "ab"
    image = HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])
    with pytest.raises(ValueError, match="text only"):
        cv.message_text(image)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("hello you there", ["you"], ("hello ", True)),
        ("hello", ["you"], ("hello", False)),
        ("a STOP b END", ["END", "STOP"], ("a ", True)),
        ("abc", None, ("abc", False)),
        ("abc", [""], ("abc", False)),
    ],
)
def test_truncate_at_stop(text: str, stop: list[str] | None, expected: tuple[str, bool]) -> None:
    assert cv.truncate_at_stop(text, stop) == expected


@pytest.mark.parametrize("split", range(1, 14))
def test_stop_scanner_handles_a_stop_split_across_chunks(split: int) -> None:
    text = "hello END more"
    scan = cv.StopScanner(["END"])
    out = scan.feed(text[:split])
    out += scan.feed(text[split:])
    out += scan.flush()
    assert out == "hello "
    assert scan.stopped


def test_stop_scanner_releases_everything_without_a_stop() -> None:
    scan = cv.StopScanner(["XYZ"])
    out = "".join(scan.feed(p) for p in ["ab", "cX", "Y", "d"]) + scan.flush()
    assert out == "abcXYd"
    assert not scan.stopped
    assert cv.StopScanner(None).feed("abc") == "abc"


def test_usage_is_estimated_and_flagged() -> None:
    usage = cv.estimated_usage("x" * 8, "y" * 5)
    assert usage == {"input_tokens": 2, "output_tokens": 2, "total_tokens": 4}
    md = cv.response_metadata(model="echo", peer_id="p", task_id="t", finish_reason="stop")
    assert md["model_provider"] == "agentfm"
    assert md["agentfm"]["usage_estimated"] is True
    assert "files" not in md["agentfm"]


@pytest.mark.parametrize(
    ("sdk_error", "model_error"),
    [
        (agentfm.RateLimitError, lc_exc.ModelRateLimitError),
        (agentfm.AgentFMTimeoutError, lc_exc.ModelTimeoutError),
        (agentfm.GatewayConnectionError, lc_exc.ModelConnectionError),
        (agentfm.AuthenticationError, lc_exc.ModelAuthenticationError),
        (agentfm.DispatchRefusedError, lc_exc.ModelPermissionDeniedError),
        (agentfm.InvalidRequestError, lc_exc.ModelInvalidRequestError),
        (agentfm.ModelNotFoundError, lc_exc.ModelNotFoundError),
        (agentfm.WorkerNotFoundError, lc_exc.ModelNotFoundError),
        (agentfm.MeshOverloadedError, lc_exc.ModelAPIError),
        (agentfm.WorkerStreamError, lc_exc.ModelAPIError),
        (agentfm.IncompleteStreamError, lc_exc.ModelAPIError),
        (agentfm.WorkerRejectedError, lc_exc.ModelAPIError),
    ],
)
def test_errors_map_to_core_model_errors(
    sdk_error: type[agentfm.AgentFMError], model_error: type[Exception]
) -> None:
    mapped = cv.to_model_error(sdk_error("boom"))
    assert type(mapped) is model_error
    assert str(mapped) == "boom"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("echo", "echo"),
        ("Deep Research (v2)!", "Deep_Research_v2"),
        ("ünïcode", "n_code"),
        ("", "agentfm_worker"),
        ("x" * 80, "x" * 64),
    ],
)
def test_safe_tool_name(raw: str, expected: str) -> None:
    assert cv.safe_tool_name(raw) == expected
    assert cv.TOOL_NAME_RE.match(cv.safe_tool_name(raw))


def test_unique_tool_names_suffix_clashes_with_peer_tail() -> None:
    names = cv.unique_tool_names(
        ["echo", "echo", "writer"], ["12D3KooWaaaaAAAA", "12D3KooWbbbbBBBB", "12D3KooWcccc"]
    )
    assert names == ["echo_aaaaAAAA", "echo_bbbbBBBB", "writer"]
    assert all(cv.TOOL_NAME_RE.match(n) for n in names)


def test_scatter_summary_lists_failures() -> None:
    summary = cv.scatter_summary(
        [
            {"index": 0, "status": "success", "text": "hello\nworld", "files": [{}]},
            {"index": 1, "status": "failed", "text": "", "error": "peer reset"},
        ]
    )
    assert summary.splitlines() == [
        "1/2 prompts succeeded.",
        "[0] ok (1 file): hello world",
        "[1] FAILED: peer reset",
    ]


def test_import_without_langchain_names_the_extra(tmp_path: Path) -> None:
    # A meta-path blocker stands in for an environment without langchain-core.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'langchain_core':\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import agentfm\n"
        "assert not any(m.startswith('langchain') for m in sys.modules)\n"
        "try:\n"
        "    import agentfm_integrations.langchain\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert 'pip install "agentfm-integrations[langchain]"' in out
