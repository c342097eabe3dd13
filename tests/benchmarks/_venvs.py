"""The benchmarks' own virtual environments, for clients the dev extra cannot install.

Two venvs live under ``~/.cache/agentfm-bench`` and are built with ``python -m venv`` and
pip from the package index on first use (later runs reuse them):

* ``seed-venv``: agentfm-sdk 0.3.0, whose import name ``agentfm`` clashes with this
  repository's;
* ``openai3-venv``: the newest OpenAI client and LangChain's ``ChatOpenAI`` on top of it.
  The dev extra keeps openai 2.x (httpx 0.28) because llama-index-llms-openai pins
  ``openai<3``; openai 3.x runs on httpx2, and it is what a user installs today.

A venv whose probe import fails, or whose pins changed, is rebuilt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path.home() / ".cache" / "agentfm-bench"


@dataclass(frozen=True)
class BenchVenv:
    """One venv: where it lives, what pip installs in it, and one import that proves it."""

    name: str
    requirements: tuple[str, ...]
    probe: str
    shows: tuple[str, ...]  # distributions whose versions the benchmarks print

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


SEED = BenchVenv("seed-venv", ("agentfm-sdk==0.3.0",), "import agentfm", ("agentfm-sdk", "httpx"))
OPENAI3 = BenchVenv(
    "openai3-venv",
    ("openai==3.57.0", "langchain-openai==1.8.1", "uvloop==0.23.0"),
    "import openai, langchain_openai, uvloop",
    ("openai", "httpx2", "httpx", "langchain-openai", "langchain-core", "uvloop"),
)
# What the main (dev) venv's alternatives are; printed next to the venvs' versions.
MAIN_SHOWS = ("openai", "httpx", "langchain-openai", "langchain-core", "uvloop")

_STAMP = "agentfm-bench-requirements.json"


def ensure(venv: BenchVenv) -> Path:
    """The venv's interpreter, building the venv on first use (or when its pins changed)."""
    stamp = venv.path / _STAMP
    if venv.python.exists() and stamp.exists():
        pinned = json.loads(stamp.read_text()) == list(venv.requirements)
        probe = [str(venv.python), "-P", "-c", venv.probe]
        if pinned and subprocess.run(probe, cwd="/", check=False).returncode == 0:
            return venv.python
    print(f"building {venv.path} ({', '.join(venv.requirements)})", file=sys.stderr)
    shutil.rmtree(venv.path, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    # The interpreter running the benchmark, so every venv has the same CPython.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv.path)], check=True)
    pip = [str(venv.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *venv.requirements], check=True, cwd="/")
    stamp.write_text(json.dumps(list(venv.requirements)))
    return venv.python


def versions(python: Path | str, dists: tuple[str, ...]) -> str:
    """``name version`` for each installed distribution, as ``python`` sees it."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for d in sys.argv[1:]:\n"
        "    try: print(d, m.version(d))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    done = subprocess.run(
        [str(python), "-P", "-c", code, *dists],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return ", ".join(done.stdout.split("\n")[:-1])
