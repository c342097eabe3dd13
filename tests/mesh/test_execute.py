"""POST /api/execute and /api/artifacts: validation order, streaming, markers, artifacts."""

from __future__ import annotations

import io
import re
import threading
import zipfile
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.mesh.conftest import execute
from tests.mesh.test_routes import assert_cors, assert_plain

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

NO_FILES = b"\n[AGENTFM: NO_FILES]\n"
FILES_INCOMING = b"\n[AGENTFM: FILES_INCOMING]\n"


def test_success_body_and_headers(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = execute(http, mesh.peer_id("echo"), "héllo <world>\r\nline2")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in resp.headers
    assert_cors(resp)
    # Raw passthrough: CRLF and non-ASCII untouched, marker after an extra newline.
    assert resp.content == "héllo <world>\r\nline2\n".encode() + NO_FILES


def test_async_generator_agent_streams_lines(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    with http.stream(
        "POST", "/api/execute", json={"worker_id": mesh.peer_id("lines"), "prompt": "a b c"}
    ) as resp:
        body = b"".join(resp.iter_raw())
    assert body == b"a\nb\nc\n" + NO_FILES


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"not json", 400, "Invalid JSON payload"),
        (b"", 400, "Invalid JSON payload"),
        (b"[]", 400, "Invalid JSON payload"),
        (b'{"worker_id": 5, "prompt": "x"}', 400, "Invalid JSON payload"),
        (b'{"worker_id": "x", "prompt": "p", "feedback_rating": "1"}', 400, "Invalid JSON payload"),
        (b"null", 400, "worker_id is required"),
        (b'{"prompt": ""}', 400, "worker_id is required"),
        (b'{"worker_id": "nope", "prompt": ""}', 400, "prompt is required"),
        (b'{"worker_id": "nope", "prompt": "x", "task_id": "-bad"}', 400, "Invalid task_id format"),
        (b'{"worker_id": "n", "prompt": "x", "task_id": "k"}', 404, "Worker not found or offline"),
        (b'{"worker_id": "nope", "prompt": "x"} trailing junk', 404, "Worker not found or offline"),
        (b'{"WORKER_ID": "nope", "Prompt": "x"}', 404, "Worker not found or offline"),
    ],
)  # fmt: skip
def test_validation_order(http: httpx.Client, body: bytes, status: int, text: str) -> None:
    resp = http.post("/api/execute", content=body)
    assert_plain(resp, status, text)
    assert_cors(resp)


def test_method_not_allowed(http: httpx.Client) -> None:
    assert_plain(http.get("/api/execute"), 405, "Method not allowed")


def test_task_id_longer_than_128_is_rejected(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = execute(http, mesh.peer_id("echo"), "x", task_id="a" * 129)
    assert_plain(resp, 400, "Invalid task_id format")
    assert execute(http, mesh.peer_id("echo"), "x", task_id="a" * 128).status_code == 200


def test_body_over_one_mib_is_truncated(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    prompt = "x" * (1024 * 1024)
    resp = execute(http, mesh.peer_id("echo"), prompt)
    assert_plain(resp, 400, "Invalid JSON payload")
    # Padding after a complete JSON value is never read, so the request still works.
    body = b'{"worker_id": "%s", "prompt": "p"}' % mesh.peer_id("echo").encode()
    resp = http.post("/api/execute", content=body + b" " * (1024 * 1024 + 10))
    assert resp.content == b"p\n" + NO_FILES


def test_artifacts_zip_many_files_nested_dirs_symlink_skipped(
    http: httpx.Client, mesh: EmbeddedMesh
) -> None:
    resp = execute(http, mesh.peer_id("files"), "go", task_id="files-task-1")
    assert resp.content == b"files written\n" + FILES_INCOMING
    path = mesh.artifacts_dir / "files-task-1.zip"
    assert path.is_file()
    assert not (mesh.artifacts_dir / "files-task-1.zip.part").exists()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"a.txt", "nested/", "nested/deeper/", "nested/deeper/b.txt", "empty_dir/"} <= names
        assert "link.txt" not in names
        assert len([n for n in names if n.startswith("many_")]) == 30
        assert zf.read("nested/deeper/b.txt") == b"beta"
        assert zf.getinfo("a.txt").compress_type == zipfile.ZIP_DEFLATED
    # The HTTP extension serves the same bytes.
    got = http.get("/api/artifacts/files-task-1")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    assert got.headers["content-length"] == str(path.stat().st_size)
    assert got.content == path.read_bytes()
    assert zipfile.ZipFile(io.BytesIO(got.content)).testzip() is None


def test_minted_task_id_names_the_zip(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    before = set(mesh.artifacts_dir.glob("*.zip"))
    assert execute(http, mesh.peer_id("files"), "go").content.endswith(FILES_INCOMING)
    (new,) = set(mesh.artifacts_dir.glob("*.zip")) - before
    assert re.fullmatch(r"task_[0-9a-f]{24}\.zip", new.name)


def test_no_output_means_no_files_and_no_zip(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = execute(http, mesh.peer_id("echo"), "x", task_id="nofiles-1")
    assert resp.content.endswith(NO_FILES)
    assert not (mesh.artifacts_dir / "nofiles-1.zip").exists()
    assert_plain(http.get("/api/artifacts/nofiles-1"), 404, "Artifact not found")
    assert_plain(http.get("/api/artifacts/.hidden"), 404, "Artifact not found")
    assert_plain(http.post("/api/artifacts/nofiles-1"), 405, "Method not allowed")


def test_agent_exception_reports_sandbox_exit_then_marker(
    http: httpx.Client, mesh: EmbeddedMesh
) -> None:
    resp = execute(http, mesh.peer_id("crash"), "x")
    assert resp.status_code == 200
    assert resp.content == (
        "partial output\n⚠️  Sandbox exited: RuntimeError: agent blew up\n".encode() + NO_FILES
    )


def test_break_stream_ends_body_without_marker(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = execute(http, mesh.peer_id("reset"), "x")
    assert resp.status_code == 200
    assert resp.content == b"before reset\n"


def test_capacity_rejection_line_without_marker(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    slow = mesh.peer_id("slow")
    started = threading.Event()
    result: dict[str, bytes] = {}

    def occupy() -> None:
        with (
            httpx.Client(base_url=mesh.url, timeout=30) as c,
            c.stream("POST", "/api/execute", json={"worker_id": slow, "prompt": "0.5"}) as resp,
        ):
            chunks = resp.iter_raw()
            first = next(chunks)
            started.set()
            result["body"] = first + b"".join(chunks)

    thread = threading.Thread(target=occupy)
    thread.start()
    assert started.wait(10)
    workers = http.get("/api/workers").json()["agents"]
    (entry,) = [w for w in workers if w["peer_id"] == slow]
    assert entry["status"] == "BUSY"
    assert entry["current_tasks"] == 1
    resp = execute(http, slow, "0")
    assert resp.status_code == 200
    assert resp.content == (
        "❌ ERROR: Worker is at max capacity (1/1). Try another worker.\n".encode()
    )
    thread.join(10)
    assert result["body"] == b"started\nfinished\n" + NO_FILES


def test_client_disconnect_frees_the_slot(mesh: EmbeddedMesh) -> None:
    slow = mesh.peer_id("slow")
    with httpx.Client(base_url=mesh.url, timeout=30) as c:
        with c.stream("POST", "/api/execute", json={"worker_id": slow, "prompt": "30"}) as resp:
            assert next(resp.iter_raw()) == b"started\n"
        # Closing the stream closed the connection; the task is torn down, not run for 30 s.
        for _ in range(200):
            entry = [w for w in c.get("/api/workers").json()["agents"] if w["peer_id"] == slow]
            if entry[0]["current_tasks"] == 0:
                break
            threading.Event().wait(0.05)
        assert entry[0]["current_tasks"] == 0
