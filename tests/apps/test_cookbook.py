"""Every cookbook script runs, standalone, against its own embedded mesh and says what it did."""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

from tests.apps._helpers import COOKBOOK, assert_ok, clean_env, run_python

# What each script must print for the run to count: a line that only appears when the
# interesting part (the failover, the file, the webhook, the tool artifact...) happened.
EXPECTED: dict[str, list[str]] = {
    "01_quickstart.py": [
        r"started an embedded mesh at http://127\.0\.0\.1:\d+",
        r"picked echo \(12D3KooW\w+\)",
        r"run answer: '.*hello, mesh.*'",
        r"streamed task \S+ from 12D3KooW\w+",
    ],
    "02_batch_scatter.py": [
        r"scattering 30 prompts over 3 echo workers",
        r"30/30 succeeded; [1-9]\d* needed a failover",
    ],
    "03_artifacts.py": [
        r"files_incoming=True",
        r"artifact: \S+answer\.md \([1-9]\d* bytes\)",
    ],
    "04_async_webhook.py": [
        r"submitted (task_\w+): queued",
        r"webhook: task task_\w+ is completed \(worker 12D3KooW\w+\)",
        r"a forged, unsigned callback gets HTTP 401",
    ],
    "05_openai_dropin.py": [
        r"model: 12D3KooW\w+ \(echo, echo\)",
        r"model: 12D3KooW\w+ \(writer, markdown\)",
        r"reply: '.*hello from openai.*'",
        r"streamed [1-9]\d* chunk\(s\): '.*now stream it.*'",
    ],
    "06_langchain_chat_batch.py": [
        r"chain: '.*peer-to-peer meshes.*'",
        r"stream: [1-9]\d* chunk\(s\)",
        r"question 11 -> '.*question 11.*' on 12D3KooW\w+",
        r"chain batch: \[.*failover.*artifacts.*webhooks.*\]",
    ],
    "07_langchain_agent_tools.py": [
        r"tools: \[.*writer.*\]",
        r"tool artifact: task task_\w+ on 12D3KooW\w+",
        r"  file \S+/answer\.md \(text/markdown, [1-9]\d* bytes\): # Answer",
        r"agent answer: The \S+ tool answered: ",
    ],
    "08_llamaindex_rag.py": [
        # The extractive summarizer answers with sentences of the retrieved passages.
        r"answer: Scatter sends many prompts .* retries a failed prompt",
        r"source: scatter \(score",
    ],
    "09_llamaindex_agent.py": [
        r"tools: \['run_task', 'scatter', 'list_workers'\]",
        r"tool run_task -> peer 12D3KooW\w+, files \['\S+/answer\.md'\]",
        r"agent answer: Done\. wrote answer\.md",
    ],
    "10_own_agent_command.py": [
        r"worker: wordcount engine=wordcount-v1 12D3KooW\w+",
        r"answer: 6 words",
        r'artifact: report\.json: \{"words": 6',
        r"scatter: \['2 words', '3 words', '1 words'\]",
    ],
    "14_trust_aware_batch.py": [
        r"rated 12D3KooW\w+ -1\.0 \(wrong answers\)",
        r"probe: 3 echo peers, 1 answered wrongly",
        r"proof verifies: True; tampered: False",
        r"trust-aware scatter: 20/20 answered, 0 by the untrusted peer",
        r"LangChain batch with min_honesty=0\.0: 8 answers, 0 by the untrusted peer",
    ],
    "11_real_gateway.py": [
        r"no AGENTFM_GATEWAY_URL: demonstrating on an embedded mesh with auth",
        r"gateway healthy: True",
        r"wrong key rejected: 401 invalid_api_key",
        r"ChatAgentFM\('\w+'\): '.+'",
    ],
    "12_langchain_prompted_agent.py": [
        r"model called writer\(\{'prompt': 'a note about peer-to-peer meshes'\}\) \[prompted",
        r"  file answer\.md \([1-9]\d* bytes\): # Answer",
        r"tool count_words -> '4'",
        r"agent answer: writer returned wrote answer\.md .*; count_words returned 4",
        r"structured: Verdict\(topic='meshes', words=12\) after 2 task\(s\)",
    ],
    "13_llamaindex_prompted_agent.py": [
        r"function calling model: True",
        r"tool writer\(\{'prompt': 'a note about peer-to-peer meshes'\}\)",
        r"  file answer\.md \([1-9]\d* bytes\): # Answer",
        r"tool count_words\(.*\) -> '4'",
        r"agent answer: writer returned wrote answer\.md .*; count_words returned 4",
        r"structured: Verdict\(topic='meshes', words=12\)",
    ],
}


def test_every_script_has_expectations() -> None:
    scripts = sorted(p.name for p in COOKBOOK.glob("[0-9][0-9]_*.py"))
    assert scripts == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_cookbook_script(script: str, tmp_path: Path) -> None:
    # A private, empty temporary folder for the script: whatever it creates there (its
    # mesh's working folders, the folders it extracts files into) must be gone at the end.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run_python([str(COOKBOOK / script)], env=clean_env({"TMPDIR": str(tmp)}))
    out = assert_ok(proc)
    assert sorted(p.name for p in tmp.iterdir()) == [], f"{script} left files behind"
    # A reader copies these scripts: no stack trace, warning or stray log line either.
    assert "Traceback" not in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    missing = [p for p in EXPECTED[script] if not re.search(p, out)]
    assert not missing, f"{script} output lacks {missing}:\n{out}"


def _uses_the_shared_gateway(script: str) -> bool:
    """Whether ``script`` gets its gateway from ``_gateway.gateway()`` (env or own mesh)."""
    tree = ast.parse((COOKBOOK / script).read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "gateway"
        for node in ast.walk(tree)
    )


def test_readme_names_the_scripts_that_ignore_agentfm_gateway_url() -> None:
    # README: "each one runs on its own embedded mesh (or on your gateway when
    # AGENTFM_GATEWAY_URL is set), except 10_own_agent_command.py". 11 reads the variable
    # itself; every other script goes through _gateway.gateway().
    own = {"11_real_gateway.py"}
    readme = (COOKBOOK.parent / "README.md").read_text(encoding="utf-8")
    for script in sorted(EXPECTED):
        if script in own:
            assert "AGENTFM_GATEWAY_URL" in (COOKBOOK / script).read_text(encoding="utf-8")
        elif not _uses_the_shared_gateway(script):
            assert f"except `{script}`" in readme, f"README does not say {script} is an exception"
