"""Our SDK (sync and async) against the demo mesh: the client cannot tell it from the real one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from agentfm import WorkerNotFoundError
from agentfm.mesh._peerid import peer_id_from_seed, seed_from_text
from tests.helpers import call, collect

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh


async def test_workers_list(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    workers = await call(any_client.workers.list)
    assert [w.peer_id for w in workers] == [w.peer_id for w in demo_mesh.workers]
    echo = [w for w in workers if w.name == "echo"]
    assert len(echo) == 2
    assert all(w.model == "echo" and w.is_available and w.online for w in echo)


async def test_run_with_artifacts(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    result = await call(any_client.tasks.run, worker_id=demo_mesh.peer_id("writer"), prompt="hi")
    assert result.files_incoming is True
    assert result.text.startswith("wrote answer.md")
    assert [p.name for p in result.artifacts] == ["answer.md"]
    assert result.artifacts[0].read_text() == "# Answer\n\nhi\n"


async def test_stream_lines(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    stream = any_client.tasks.stream(worker_id=demo_mesh.peer_id("echo"), prompt="one\ntwo")
    chunks = await collect(stream)
    assert [c.text for c in chunks if c.kind == "text"] == ["one\n", "two\n"]


async def test_unknown_worker(any_client: Any) -> None:
    absent = peer_id_from_seed(seed_from_text("not in the mesh"))
    with pytest.raises(WorkerNotFoundError):
        await call(any_client.tasks.run, worker_id=absent, prompt="x")


async def test_openai_chat(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    resp = await call(
        any_client.openai.chat.completions.create,
        model=demo_mesh.peer_id("echo"),
        messages=[{"role": "user", "content": "hey"}],
    )
    # The demo echo answers a chat with the last user turn.
    assert resp.choices[0].message.content == "hey\n\n"
