"""AgentFMLLM (text completion) against real embedded meshes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from langchain_core import exceptions as lc_exc

import agentfm
from agentfm_integrations.langchain import AgentFMLLM
from tests.integrations.langchain.conftest import ENGINE

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh


def _llm(mesh: EmbeddedMesh, artifacts_dir: str, model: str = "echo") -> AgentFMLLM:
    return AgentFMLLM(model=model, gateway_url=mesh.url, api_key=None, artifacts_dir=artifacts_dir)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_prompt_reaches_the_agent_verbatim(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    llm = _llm(demo_mesh, artifacts_dir)
    text = llm.invoke("plain words") if mode == "sync" else await llm.ainvoke("plain words")
    assert text.strip() == "plain words"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_and_stop(demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str) -> None:
    llm = _llm(demo_mesh, artifacts_dir)
    if mode == "sync":
        pieces = list(llm.stream("keep CUT drop", stop=["CUT"]))
    else:
        pieces = [p async for p in llm.astream("keep CUT drop", stop=["CUT"])]
    assert "".join(pieces).strip() == "keep"


def test_generation_info_names_peer_task_and_files(
    demo_mesh: EmbeddedMesh, artifacts_dir: str
) -> None:
    result = _llm(demo_mesh, artifacts_dir, model="writer").generate(["a note"])
    info = result.generations[0][0].generation_info
    assert info is not None
    assert info["peer_id"] == demo_mesh.peer_id("writer")
    assert info["task_id"]
    assert info["files"]
    assert info["files"][0]["path"].endswith("answer.md")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_scatters_with_failover(
    failing_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    llm = _llm(failing_mesh, artifacts_dir, model=ENGINE)
    prompts = [f"line {i}" for i in range(20)]
    out = llm.batch(prompts) if mode == "sync" else await llm.abatch(prompts)
    assert [p in o for p, o in zip(prompts, out, strict=True)] == [True] * 20


def test_errors_map_to_core_types(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    with pytest.raises(lc_exc.ModelNotFoundError) as info:
        _llm(demo_mesh, artifacts_dir, model="missing").invoke("hi")
    assert isinstance(info.value.__cause__, agentfm.ModelNotFoundError)
