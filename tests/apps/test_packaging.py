"""What a wheel user gets: the licence, the extras the README names, the install hints."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.apps._helpers import COOKBOOK, REPO, clean_env, pyproject, run_python

if TYPE_CHECKING:
    from pathlib import Path

PROJECT = "agentfm-integrations"


@pytest.mark.slow
def test_wheel_ships_the_mit_license(tmp_path: Path) -> None:
    # The real build (hatchling, as pip would run it), without network: --no-isolation
    # uses the hatchling of this environment (the dev extra installs it).
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        licences = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licences, names
        text = zf.read(licences[0]).decode()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        commands = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 AgentFM contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    assert text == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "License-File: LICENSE" in metadata
    # The packages themselves, typed; not the cookbook (the demo links to it online).
    assert "agentfm/py.typed" in names
    assert "agentfm_integrations/demo/__init__.py" in names
    assert "agentfm_integrations/demo/__main__.py" in names
    # `agentfm-py demo` finds the tour through this entry point (the SDK does not import it).
    assert b"[agentfm.cli]\ndemo = agentfm_integrations.demo:main\n" in commands
    assert not any(n.startswith("cookbook/") for n in names)


def _third_party_imports(paths: list[Path]) -> set[str]:
    """Dotted module names imported by ``paths``, minus the stdlib and this project."""
    local = {"agentfm", "agentfm_integrations", "_gateway"}
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.add(name)
    return found


def _owner(module: str) -> str:
    """The installed distribution whose files provide ``module``."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is not installed"
    origin = spec.origin
    assert origin, module
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if str(dist.locate_file(file)) == origin:
                return canonicalize_name(dist.metadata["Name"])
    raise AssertionError(f"no distribution owns {origin}")


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution ``pip install`` of ``requirements`` brings in (installed metadata)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        env = {**default_environment(), "extra": extra}
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        for wanted in ["", *sorted(req.extras)]:
            key = f"{name}[{wanted}]"
            if key in seen:
                continue
            seen.add(key)
            if name == PROJECT:
                extras = pyproject()["project"]["optional-dependencies"]
                deps = pyproject()["project"]["dependencies"] if not wanted else extras[wanted]
                todo += [(Requirement(d), "") for d in deps]
                continue
            for dep in importlib.metadata.requires(name) or []:
                todo.append((Requirement(dep), wanted))
    return {key.split("[")[0] for key in seen}


def test_all_extra_installs_everything_the_cookbook_and_demo_import() -> None:
    # README: `pip install -e ".[all]"`, then every cookbook script and the demo run.
    scripts = sorted(COOKBOOK.glob("*.py")) + sorted((COOKBOOK / "agents").glob("*.py"))
    scripts += sorted((REPO / "agentfm_integrations" / "demo").glob("*.py"))
    needed = {module: _owner(module) for module in _third_party_imports(scripts)}
    assert "openai" in needed
    assert "langgraph.prebuilt" in needed
    installed = _closure([f"{PROJECT}[all]"])
    missing = {m: d for m, d in needed.items() if d not in installed}
    assert not missing, f"[all] does not install {missing}"


# A finder that makes one top-level module look absent, as in an environment installed
# without the `mesh` extra.
HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


@pytest.mark.parametrize("module", ["cryptography", "starlette", "uvicorn"])
def test_mesh_without_its_extra_says_how_to_install_it(module: str) -> None:
    code = HIDE.format(module=module) + "import agentfm.mesh\n"
    proc = run_python(["-c", code])
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f'ImportError: agentfm.mesh needs {module}: pip install "agentfm-integrations[mesh]"'
    )
    # The CLI says the same in one line.
    cli = HIDE.format(module=module) + "from agentfm.cli import main\nraise SystemExit(main())\n"
    proc = run_python(["-c", cli, "mesh", "serve", "--demo"], env=clean_env())
    assert proc.returncode == 2
    assert proc.stderr == (
        f'error: agentfm.mesh needs {module}: pip install "agentfm-integrations[mesh]"\n'
    )
    # The SDK itself does not need the extra.
    proc = run_python(["-c", HIDE.format(module=module) + "import agentfm; agentfm.AgentFMClient"])
    assert proc.returncode == 0, proc.stderr
