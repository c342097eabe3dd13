"""Pack a task's output folder into ``<artifacts_dir>/<task_id>.zip`` the way the worker does."""

from __future__ import annotations

import os
import shutil
import zipfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def has_output(output_dir: Path) -> bool:
    """Whether the agent left anything in its output folder."""
    try:
        with os.scandir(output_dir) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False


def build_zip(output_dir: Path, artifacts_dir: Path, task_id: str) -> int:
    """Zip ``output_dir`` to ``artifacts_dir/<task_id>.zip`` atomically and return its size.

    Files are Deflate-compressed, directories become ``name/`` entries, symlinks are skipped
    and names use forward slashes. The archive is written as ``.zip.part`` and renamed, so
    a reader never sees a half-written zip.
    """
    artifacts_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    final = artifacts_dir / f"{task_id}.zip"
    part = artifacts_dir / f"{task_id}.zip.part"
    try:
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for root, dirs, files in os.walk(output_dir):
                rel_root = os.path.relpath(root, output_dir)
                prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
                for name in sorted(dirs):
                    path = os.path.join(root, name)
                    if os.path.islink(path):
                        continue
                    zf.write(path, prefix + name + "/")
                # os.walk does not descend into symlinked dirs by default; drop them from the walk.
                dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    zf.write(path, prefix + name)
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return final.stat().st_size


def remove_tree(path: Path) -> None:
    """Delete a task's scratch folder, ignoring one that was never created."""
    shutil.rmtree(path, ignore_errors=True)
