"""The main job: ``python -m agentfm demo`` runs every step and reports what happened."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from agentfm.mesh import EmbeddedMesh
from tests.apps._helpers import assert_ok, clean_env, pyproject, run_python


@pytest.mark.slow
def test_demo_runs_every_step_and_reports(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    tmp = tmp_path / "tmp"  # a private temporary folder, empty before the run
    tmp.mkdir()
    proc = run_python(
        ["-m", "agentfm", "demo", "--prompts", "20", "--artifacts-dir", str(kept)],
        env=clean_env({"TMPDIR": str(tmp)}),
    )
    out = assert_ok(proc)
    assert list(tmp.iterdir()) == []  # the mesh's folders are gone; the named one stays
    assert proc.stderr == ""  # a first run shows no warning, log line or traceback
    for step in (
        "discover",
        "stream",
        "langchain chain",
        "langchain batch x20",
        "langchain tool + artifact",
        "llamaindex rag",
        "total",
    ):
        timings = out.split("Timings")[-1]
        assert re.search(rf"{re.escape(step)}\s+│\s+\d+\.\d\d", timings), f"no time for {step}"
    assert "Batch: 20/20 answers" in out
    assert re.search(r"│ first line\n.*│ second line\n.*│ third line", out)  # streamed
    failovers = re.search(r"failovers: (\d+)", out)
    assert failovers is not None
    # The mesh has a worker that drops every task and scatter gives it work in the first
    # wave, so at least one prompt must have failed over for the batch to be complete.
    assert int(failovers.group(1)) >= 1
    assert "failed prompts: 0" in out
    artifacts = re.findall(r"artifact: (\S+)", out)
    assert artifacts, out
    for path in artifacts:
        assert Path(path).is_file()
        assert Path(path).is_relative_to(kept)
    assert "(temporary" not in out
    assert re.search(r"sources: \S+", out)
    # Peers used: the healthy echo workers, summarizer and writer at least.
    assert len(set(re.findall(r"12D3KooW\w+", out.split("Peers used")[1]))) >= 3


@pytest.mark.slow
def test_demo_through_an_openai_compatible_server(tmp_path: Path) -> None:
    # Any OpenAI-compatible server will do; a second embedded mesh serves /v1 and plays
    # the part of Ollama, with its echo workers as the "model".
    with EmbeddedMesh.demo() as upstream:
        proc = run_python(
            ["-m", "agentfm", "demo", "--prompts", "20", "--artifacts-dir", str(tmp_path)],
            env=clean_env(
                {
                    "AGENTFM_DEMO_OPENAI_BASE_URL": f"{upstream.url}/v1",
                    "AGENTFM_DEMO_OPENAI_MODEL": "echo",
                }
            ),
        )
    out = assert_ok(proc)
    assert "LangChain chain (llm):" in out
    assert "LlamaIndex RAG (llm)" in out
    # The upstream echo answers with the last user turn of what its /v1 route got, which is
    # the demo mesh's flattened chat ("user: ..."): the prompt made the round trip.
    assert "│ user: Summarize for a new user" in out
    # A real model gets LlamaIndex's usual QA prompt (the extractive one does not).
    assert "Query: What happens in a scatter when a worker drops a task?" in out
    assert "failed prompts: 0" in out


def test_demo_explains_an_unreachable_openai_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentfm_integrations.demo import main

    monkeypatch.setenv("COLUMNS", "200")
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--openai-base-url", f"http://127.0.0.1:{port}/v1"]) == 2
    out = capsys.readouterr().out
    assert f"Cannot use the OpenAI-compatible server at http://127.0.0.1:{port}/v1" in out
    assert "Is it running?" in out


@pytest.mark.slow
def test_demo_without_artifacts_dir_leaves_nothing_behind(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run_python(
        ["-m", "agentfm", "demo", "--prompts", "2"], env=clean_env({"TMPDIR": str(tmp)})
    )
    out = assert_ok(proc)
    # The files were extracted into a temporary folder (the report says so) ...
    folder = re.search(r"artifacts folder: (\S+) \(temporary: removed when the demo ends", out)
    assert folder, out
    assert Path(folder.group(1)).parent == tmp
    assert re.search(rf"artifact: {re.escape(folder.group(1))}/task_\w+/answer\.md", out)
    # ... which is gone, with everything else the run created there.
    assert list(tmp.iterdir()) == []
    from agentfm_integrations.demo import COOKBOOK_URL

    assert f"cookbook scripts: {COOKBOOK_URL}" in out


def test_demo_points_to_the_cookbook_online() -> None:
    from agentfm_integrations import demo

    # A wheel has no cookbook/ folder: the demo links to the repository's.
    homepage = pyproject()["project"]["urls"]["Homepage"]
    assert f"{homepage}/tree/main/cookbook" == demo.COOKBOOK_URL
