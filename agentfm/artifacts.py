"""Artifact zips: find them, and extract them safely into one folder per task.

The gateway delivers a task's files as ``<task_id>.zip`` (in its ``agentfm_artifacts/``
folder, or over HTTP where the gateway offers ``GET /api/artifacts/{task_id}``). Extraction
refuses anything that could escape the task folder or exhaust the disk: absolute paths,
``..`` components, symlink members, duplicate names, too many members, and members or totals
beyond the size caps (checked on the bytes actually written, not on the zip's claims). A
failed extraction leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import shutil
import stat
import time
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypedDict

from agentfm._constants import (
    ARTIFACT_POLL_INTERVAL,
    DEFAULT_ARTIFACTS_DIR,
    DEFAULT_MAX_EXTRACT_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_MEMBERS,
)
from agentfm._poll import poll_until
from agentfm.exceptions import ArtifactError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "DEFAULT_MAX_EXTRACT_BYTES",
    "ArtifactManager",
    "FileRef",
    "describe_files",
    "safe_extract",
]

log = logging.getLogger("agentfm.artifacts")

_COPY_CHUNK = 64 * 1024
_HASH_CHUNK = 64 * 1024


class FileRef(TypedDict):
    """A produced file described by reference, never by content.

    A plain mapping, so it can go straight into JSON metadata (LangChain's
    ``response_metadata``, LlamaIndex's ``raw``).

    Example:
        ```python
        {"path": "/tmp/a/task_1/answer.md", "mime_type": "text/markdown",
         "size": 1234, "sha256": "9f86d0..."}
        ```
    """

    path: str
    mime_type: str
    size: int
    sha256: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(paths: Iterable[str | Path]) -> list[FileRef]:
    """Describe extracted files by path, mime type, size and sha256.

    Paths that are not regular files (directories, files removed since) are skipped; the
    order of ``paths`` is kept. The mime type is guessed from the name
    (``application/octet-stream`` when unknown).

    Example:
        ```python
        result = client.tasks.run(worker_id=peer, prompt="write a report")
        for ref in describe_files(result.artifacts):
            print(ref["path"], ref["mime_type"], ref["size"], ref["sha256"])
        ```
    """
    refs: list[FileRef] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            continue
        mime, _ = mimetypes.guess_type(path.name)
        refs.append(
            FileRef(
                path=str(path),
                mime_type=mime or "application/octet-stream",
                size=path.stat().st_size,
                sha256=_sha256(path),
            )
        )
    return refs


def _member_path(name: str) -> PurePosixPath:
    """Validate a zip member name and return it as a relative path."""
    if "\x00" in name:
        raise ArtifactError(f"artifact member name contains NUL: {name!r}", code="unsafe_artifact")
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise ArtifactError(
            f"artifact member has an absolute path: {name!r}", code="unsafe_artifact"
        )
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArtifactError(f"artifact member escapes its folder: {name!r}", code="unsafe_artifact")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def safe_extract(
    zip_path: Path,
    dest: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` (replaced if it exists) and return the file paths.

    Raises:
        ArtifactError: The zip is corrupt or unsafe, or exceeds a cap. ``dest`` is untouched.
    """
    dest = dest.resolve()
    staging = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            if len(members) > max_members:
                raise ArtifactError(
                    f"artifact has {len(members)} members (cap {max_members})",
                    code="artifact_too_large",
                )
            seen: set[str] = set()
            plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            for info in members:
                rel = _member_path(info.filename)
                key = str(rel)
                if key in seen:
                    raise ArtifactError(
                        f"artifact has duplicate member {key!r}", code="unsafe_artifact"
                    )
                seen.add(key)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ArtifactError(
                        f"artifact member is a symlink: {info.filename!r}", code="unsafe_artifact"
                    )
                if info.file_size > max_file_bytes:
                    raise ArtifactError(
                        f"artifact member {key!r} is {info.file_size} bytes (cap {max_file_bytes})",
                        code="artifact_too_large",
                    )
                plan.append((info, rel))
            staging.mkdir(parents=True)
            root = staging.resolve()
            total = 0
            files: list[Path] = []
            for info, rel in plan:
                target = (root / rel).resolve()
                if target != root and root not in target.parents:
                    raise ArtifactError(
                        f"artifact member escapes its folder: {info.filename!r}",
                        code="unsafe_artifact",
                    )
                if info.is_dir() or str(rel) == ".":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as source, open(target, "xb") as sink:
                    while chunk := source.read(_COPY_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > max_file_bytes:
                            raise ArtifactError(
                                f"artifact member {str(rel)!r} exceeds {max_file_bytes} bytes",
                                code="artifact_too_large",
                            )
                        if total > max_total_bytes:
                            raise ArtifactError(
                                f"artifact exceeds {max_total_bytes} bytes in total",
                                code="artifact_too_large",
                            )
                        sink.write(chunk)
                files.append(rel)  # type: ignore[arg-type]
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
        return [dest / str(rel) for rel in files]
    except ArtifactError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
    ) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(
            f"cannot extract artifact {zip_path.name}: {exc}", code="corrupt_artifact"
        ) from None


class ArtifactManager:
    """Find artifact zips in ``watch_dir`` and extract them into ``extract_dir/<task_id>/``.

    Example:
        ```python
        manager = ArtifactManager("agentfm_artifacts", "out")
        files = manager.collect_for_task(ack.task_id, timeout=60)
        ```
    """

    def __init__(
        self,
        watch_dir: str | Path = DEFAULT_ARTIFACTS_DIR,
        extract_dir: str | Path = DEFAULT_ARTIFACTS_DIR,
        max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_members: int = DEFAULT_MAX_MEMBERS,
    ) -> None:
        self.watch_dir = Path(watch_dir).expanduser().resolve()
        self.extract_dir = Path(extract_dir).expanduser().resolve()
        self.max_extract_bytes = max_extract_bytes
        self.max_file_bytes = min(max_file_bytes, max_extract_bytes)
        self.max_members = max_members

    def __repr__(self) -> str:
        watch, extract = str(self.watch_dir), str(self.extract_dir)
        return f"ArtifactManager(watch_dir={watch!r}, extract_dir={extract!r})"

    def task_zip(self, task_id: str) -> Path:
        """Where the gateway drops the zip of ``task_id``."""
        return self.watch_dir / f"{Path(task_id).name}.zip"

    def task_dir(self, task_id: str) -> Path:
        """The folder the files of ``task_id`` are extracted into."""
        return self.extract_dir / Path(task_id).name

    def latest_zip(self) -> Path | None:
        """Return the newest ``*.zip`` in ``watch_dir`` (by mtime), or None."""
        newest: tuple[float, Path] | None = None
        try:
            candidates = list(self.watch_dir.glob("*.zip"))
        except OSError:
            return None
        for path in candidates:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue  # removed while we looked
            if newest is None or mtime > newest[0]:
                newest = (mtime, path)
        return newest[1] if newest else None

    def wait_for_new_zip(
        self,
        since: float,
        timeout: float = 120.0,
        stable_for: float = 0.0,
        poll_interval: float = 0.5,
    ) -> Path | None:
        """Wait for a zip newer than ``since`` (epoch seconds); None on timeout."""
        for pause in poll_until(timeout, poll_interval):
            time.sleep(pause)
            latest = self.latest_zip()
            try:
                if (
                    latest is not None
                    and latest.stat().st_mtime > since
                    and self._stable(latest, stable_for)
                ):
                    return latest
            except OSError:
                pass
        return None

    def wait_for_task_zip(
        self,
        task_id: str,
        timeout: float = 120.0,
        stable_for: float = 0.0,
        poll_interval: float = 0.5,
    ) -> Path | None:
        """Wait for ``<watch_dir>/<task_id>.zip``; None on timeout.

        The gateway writes ``.zip.part`` and renames it, so a zip that exists is complete;
        ``stable_for`` adds a size-stability wait for gateways that write in place.
        """
        if not task_id:
            return None
        path = self.task_zip(task_id)
        for pause in poll_until(timeout, poll_interval):
            time.sleep(pause)
            if path.is_file() and self._stable(path, stable_for):
                return path
        return None

    def _stable(self, path: Path, stable_for: float) -> bool:
        if stable_for <= 0:
            return True
        size = path.stat().st_size
        time.sleep(stable_for)
        return size > 0 and path.stat().st_size == size

    def extract(self, zip_path: str | Path, task_id: str | None = None) -> list[Path]:
        """Safely extract ``zip_path`` into ``extract_dir/<task_id or zip stem>/``.

        Raises:
            ArtifactError: The zip is missing, corrupt, unsafe or too large.
        """
        zip_path = Path(zip_path)
        if not zip_path.is_file():
            raise ArtifactError(f"artifact zip not found: {zip_path}", code="artifact_missing")
        folder = task_id or zip_path.name.removesuffix(".zip")
        self.extract_dir.mkdir(parents=True, exist_ok=True)
        return safe_extract(
            zip_path,
            self.task_dir(folder),
            max_total_bytes=self.max_extract_bytes,
            max_file_bytes=self.max_file_bytes,
            max_members=self.max_members,
        )

    def cleanup(self, zip_path: str | Path) -> None:
        """Delete a zip, logging (not raising) on failure."""
        try:
            Path(zip_path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete %s: %s", zip_path, exc)

    def collect_since(self, since: float, timeout: float = 120.0) -> list[Path]:
        """Wait for the next zip newer than ``since``, extract it and delete it.

        Not safe when several tasks finish at once; prefer `collect_for_task`.
        """
        path = self.wait_for_new_zip(since, timeout=timeout)
        if path is None:
            return []
        files = self.extract(path)
        self.cleanup(path)
        return files

    def collect_for_task(self, task_id: str, timeout: float = 120.0) -> list[Path]:
        """Wait for the zip of ``task_id``, extract it into its folder and delete it."""
        path = self.wait_for_task_zip(
            task_id, timeout=timeout, poll_interval=ARTIFACT_POLL_INTERVAL
        )
        if path is None:
            return []
        files = self.extract(path, task_id)
        self.cleanup(path)
        return files
