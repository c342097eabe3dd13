"""Safe extraction of artifact zips, including crafted hostile ones."""

from __future__ import annotations

import stat
import zipfile
from typing import TYPE_CHECKING

import pytest

from agentfm import ArtifactError, ArtifactManager
from agentfm.artifacts import safe_extract

if TYPE_CHECKING:
    from pathlib import Path


def make_zip(path: Path, members: list[tuple[str, bytes]], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_extracts_into_a_per_task_folder(tmp_path: Path) -> None:
    manager = ArtifactManager(tmp_path, tmp_path / "out")
    zip_path = make_zip(tmp_path / "task_1.zip", [("answer.md", b"# hi"), ("sub/dir/x.txt", b"x")])
    files = manager.extract(zip_path)
    assert sorted(p.relative_to(tmp_path / "out" / "task_1").as_posix() for p in files) == [
        "answer.md",
        "sub/dir/x.txt",
    ]
    assert (tmp_path / "out" / "task_1" / "answer.md").read_bytes() == b"# hi"


def test_two_tasks_do_not_collide(tmp_path: Path) -> None:
    manager = ArtifactManager(tmp_path, tmp_path)
    a = manager.extract(make_zip(tmp_path / "task_a.zip", [("same.txt", b"a")]))
    b = manager.extract(make_zip(tmp_path / "task_b.zip", [("same.txt", b"b")]))
    assert a[0].read_bytes() == b"a"
    assert b[0].read_bytes() == b"b"


@pytest.mark.parametrize(
    "name", ["../escape.txt", "a/../../escape.txt", "/etc/evil", "C:/evil.txt", "..\\evil.txt"]
)
def test_zip_slip_and_absolute_paths_are_refused(tmp_path: Path, name: str) -> None:
    zip_path = tmp_path / "task_x.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("ok.txt", b"fine")
        archive.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(ArtifactError):
        safe_extract(zip_path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert list(tmp_path.glob(".dest*")) == []


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "t.zip", [("a.txt", b"a")], symlink="link")
    with pytest.raises(ArtifactError, match="symlink"):
        safe_extract(zip_path, tmp_path / "dest")


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    zip_path = tmp_path / "t.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("a.txt", b"1")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("a.txt", b"2")
    with pytest.raises(ArtifactError, match="duplicate"):
        safe_extract(zip_path, tmp_path / "dest")


def test_zip_bomb_caps(tmp_path: Path) -> None:
    big = make_zip(tmp_path / "big.zip", [("zeros.bin", b"\0" * 200_000)])
    with pytest.raises(ArtifactError, match=r"cap|exceeds"):
        safe_extract(big, tmp_path / "d1", max_file_bytes=100_000)
    many = make_zip(tmp_path / "many.zip", [(f"f{i}", b"x" * 60_000) for i in range(3)])
    with pytest.raises(ArtifactError, match="in total"):
        safe_extract(many, tmp_path / "d2", max_total_bytes=100_000)
    with pytest.raises(ArtifactError, match="members"):
        safe_extract(many, tmp_path / "d3", max_members=2)
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))


def test_lying_size_header_is_caught_while_copying(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "liar.zip", [("a.bin", b"\0" * 100_000)])
    raw = bytearray(zip_path.read_bytes())
    # Shrink the declared uncompressed size in the central directory to 10 bytes.
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError):
        safe_extract(zip_path, tmp_path / "dest", max_file_bytes=1000)
    assert not (tmp_path / "dest").exists()


def test_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArtifactError, match="cannot extract"):
        ArtifactManager(tmp_path, tmp_path).extract(bad)
    with pytest.raises(ArtifactError, match="not found"):
        ArtifactManager(tmp_path, tmp_path).extract(tmp_path / "missing.zip")


def test_collect_for_task_waits_and_cleans_up(tmp_path: Path) -> None:
    manager = ArtifactManager(tmp_path, tmp_path / "out")
    assert manager.collect_for_task("task_none", timeout=0.05) == []
    make_zip(tmp_path / "task_ok.zip", [("r.txt", b"r")])
    files = manager.collect_for_task("task_ok", timeout=1)
    assert [f.name for f in files] == ["r.txt"]
    assert not (tmp_path / "task_ok.zip").exists()
    assert manager.latest_zip() is None
    make_zip(tmp_path / "task_new.zip", [("n.txt", b"n")])
    assert manager.latest_zip() == tmp_path / "task_new.zip"
    assert [f.name for f in manager.collect_since(0, timeout=1)] == ["n.txt"]
