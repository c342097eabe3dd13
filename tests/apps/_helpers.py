"""Helpers for end-to-end tests: run the project's entry points as a user would."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
COOKBOOK = REPO / "cookbook"

# A script that needs longer than this is hung, not slow: every one finishes in seconds.
SCRIPT_TIMEOUT = 180.0


def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml (tomllib from 3.11, its tomli backport before)."""
    toml: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    data: dict[str, Any] = toml.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any AgentFM settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFM_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Rich would otherwise size tables for an 80-column pipe and fold long peer ids.
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


def run_python(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` with this interpreter and return the finished process."""
    return subprocess.run(
        [sys.executable, *args],
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Fail with the captured output unless the process exited 0; return its stdout."""
    if proc.returncode != 0:
        pytest.fail(
            f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout
