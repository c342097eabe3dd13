"""Hostile artifact zips from a compromised worker, end to end through the real gateway."""

from __future__ import annotations

import os
import stat
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import AgentFMClient, ArtifactError, AsyncAgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

ABSOLUTE_TARGET = Path("/tmp") / f"agentfm-reliability-{uuid.uuid4().hex}.txt"


def _patch_sizes(path: Path, declared: int) -> None:
    """Make every header of the single member claim ``declared`` uncompressed bytes."""
    raw = bytearray(path.read_bytes())
    local = raw.find(b"PK\x03\x04")
    raw[local + 22 : local + 26] = declared.to_bytes(4, "little")
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def hostile_zip(kind: str, path: Path) -> None:
    """Write the zip a malicious worker would ship for ``kind``."""
    if kind == "corrupt":
        path.write_bytes(b"PK\x03\x04" + os.urandom(512))
        return
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if kind != "bomb_size":
            zf.writestr("ok.txt", b"fine")
        if kind == "slip":
            zf.writestr("../../escape.txt", b"evil")
        elif kind == "slip_nested":
            zf.writestr("sub/../../../escape.txt", b"evil")
        elif kind == "absolute":
            zf.writestr(str(ABSOLUTE_TARGET), b"evil")
        elif kind == "symlink":
            info = zipfile.ZipInfo("link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        elif kind == "duplicate":
            with pytest.warns(UserWarning, match="Duplicate name"):
                zf.writestr("ok.txt", b"second")
        elif kind == "bomb_count":
            for i in range(10_001):
                zf.writestr(f"f{i}", b"")
        elif kind == "bomb_size":
            zf.writestr("zeros.bin", b"\0" * 1024)
    if kind == "bomb_size":
        _patch_sizes(path, 3 * 1024**3)  # claims 3 GiB: over every default cap


KINDS = [
    "slip",
    "slip_nested",
    "absolute",
    "symlink",
    "duplicate",
    "bomb_count",
    "bomb_size",
    "corrupt",
]


def _writer(prompt: str, ctx: AgentContext) -> str:
    (ctx.output_dir / "kind").write_text(prompt)
    return "wrote files\n"


@pytest.fixture(scope="module")
def evil_mesh() -> Iterator[EmbeddedMesh]:
    """A gateway whose worker ships the hostile zip named by the prompt."""
    from agentfm.mesh import _worker

    real = _worker.build_zip

    def evil_build_zip(output_dir: Path, artifacts_dir: Path, task_id: str) -> int:
        kind = (output_dir / "kind").read_text()
        if kind == "honest":
            return real(output_dir, artifacts_dir, task_id)
        target = artifacts_dir / f"{task_id}.zip"
        hostile_zip(kind, target)
        return target.stat().st_size

    worker = WorkerConfig("evil", "evil", CallableAgent(_writer), max_tasks=4, seed="r:evil")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_worker, "build_zip", evil_build_zip)
        with EmbeddedMesh([worker], api_keys=[]) as mesh:
            yield mesh


@pytest.fixture(params=["sync", "async"])
async def eclient(
    request: pytest.FixtureRequest, evil_mesh: EmbeddedMesh, tmp_path: Path
) -> AsyncIterator[Any]:
    out = tmp_path / "sandbox" / "out"
    if request.param == "sync":
        with AgentFMClient(evil_mesh.url, artifacts_dir=out, api_key=None) as c:
            yield c
    else:
        async with AsyncAgentFMClient(evil_mesh.url, artifacts_dir=out, api_key=None) as c:
            yield c


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_zip_is_refused_and_leaves_nothing(
    eclient: Any, evil_mesh: EmbeddedMesh, tmp_path: Path, kind: str
) -> None:
    sandbox = tmp_path / "sandbox"
    with pytest.raises(ArtifactError) as err:
        await call(eclient.tasks.run, worker_id=evil_mesh.peer_id("evil"), prompt=kind)
    # The text of the task survives on the error; the files do not.
    assert err.value.result.text == "wrote files\n"
    assert err.value.result.files_incoming
    # Nothing outside the task folder, no staging folder, no half-downloaded zip.
    assert _all_files(sandbox) in ([], ["out"])
    assert not (tmp_path / "escape.txt").exists()
    assert not ABSOLUTE_TARGET.exists()


async def test_honest_zip_still_extracts(eclient: Any, evil_mesh: EmbeddedMesh) -> None:
    result = await call(eclient.tasks.run, worker_id=evil_mesh.peer_id("evil"), prompt="honest")
    assert [p.name for p in result.artifacts] == ["kind"]
    assert result.artifacts[0].read_text() == "honest"
    assert result.artifacts[0].parent.name == result.task_id


async def test_hostile_zip_over_a_shared_folder(evil_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    # The client shares the gateway's artifact folder: the zip is read in place.
    async with AsyncAgentFMClient(
        evil_mesh.url, artifacts_dir=evil_mesh.artifacts_dir, api_key=None
    ) as client:
        task_id = f"task_{uuid.uuid4().hex}"
        with pytest.raises(ArtifactError):
            await client.tasks.run(
                worker_id=evil_mesh.peer_id("evil"), prompt="slip", task_id=task_id
            )
    assert not (evil_mesh.artifacts_dir / task_id).exists()
    assert not (evil_mesh.artifacts_dir / f"{task_id}.zip").exists()
    assert not (evil_mesh.artifacts_dir.parent / "escape.txt").exists()
    assert not list(evil_mesh.artifacts_dir.glob(f".{task_id}*"))
