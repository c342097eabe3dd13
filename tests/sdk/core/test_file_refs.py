"""`describe_files`: produced files described by reference (path, mime, size, sha256)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import agentfm
from agentfm.artifacts import FileRef, describe_files

if TYPE_CHECKING:
    from pathlib import Path


def test_each_file_gets_path_mime_size_and_sha256(tmp_path: Path) -> None:
    report = tmp_path / "answer.md"
    report.write_text("# hi\n", encoding="utf-8")
    blob = tmp_path / "data.unknownext"
    blob.write_bytes(bytes(range(256)) * 300)  # several hash blocks

    refs = describe_files([report, str(blob)])

    assert refs == [
        FileRef(
            path=str(report),
            mime_type="text/markdown",
            size=5,
            sha256=hashlib.sha256(b"# hi\n").hexdigest(),
        ),
        FileRef(
            path=str(blob),
            mime_type="application/octet-stream",
            size=256 * 300,
            sha256=hashlib.sha256(bytes(range(256)) * 300).hexdigest(),
        ),
    ]


def test_directories_and_missing_paths_are_skipped_order_kept(tmp_path: Path) -> None:
    first, second = tmp_path / "b.png", tmp_path / "a.txt"
    first.write_bytes(b"png")
    second.write_bytes(b"txt")
    (tmp_path / "sub").mkdir()

    refs = describe_files([first, tmp_path / "sub", tmp_path / "gone.txt", second])

    assert [r["path"] for r in refs] == [str(first), str(second)]
    assert [r["mime_type"] for r in refs] == ["image/png", "text/plain"]


def test_refs_are_plain_json_and_exported(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}", encoding="utf-8")
    (ref,) = agentfm.describe_files(iter([path]))
    assert json.loads(json.dumps(ref)) == ref
    assert agentfm.FileRef is FileRef
    assert describe_files([]) == []
