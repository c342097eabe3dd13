"""Shared fixtures: one demo mesh per session, and sync/async clients bound to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from agentfm import AgentFMClient, AsyncAgentFMClient
    from agentfm.mesh import EmbeddedMesh


@pytest.fixture(scope="session")
def demo_mesh() -> Iterator[EmbeddedMesh]:
    """The built-in demo mesh on a free loopback port, shared by the session."""
    from agentfm.mesh import EmbeddedMesh

    with EmbeddedMesh.demo() as mesh:
        yield mesh


@pytest.fixture
def client(demo_mesh: EmbeddedMesh, tmp_path: Path) -> Iterator[AgentFMClient]:
    from agentfm import AgentFMClient

    with AgentFMClient(demo_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None) as c:
        yield c


@pytest.fixture
async def aclient(demo_mesh: EmbeddedMesh, tmp_path: Path) -> AsyncIterator[AsyncAgentFMClient]:
    from agentfm import AsyncAgentFMClient

    async with AsyncAgentFMClient(
        demo_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None
    ) as c:
        yield c


@pytest.fixture(params=["sync", "async"])
async def any_client(
    request: pytest.FixtureRequest, demo_mesh: EmbeddedMesh, tmp_path: Path
) -> AsyncIterator[Any]:
    """The sync and the async client in turn; drive calls with ``tests.helpers.call``."""
    from agentfm import AgentFMClient, AsyncAgentFMClient

    if request.param == "sync":
        with AgentFMClient(demo_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None) as c:
            yield c
    else:
        async with AsyncAgentFMClient(
            demo_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None
        ) as c:
            yield c
