"""Every ```python block of README.md runs as written against a demo gateway."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.apps._helpers import REPO, assert_ok, clean_env, run_python

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.mesh import EmbeddedMesh

BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    # Blocks written for "a running gateway" find the demo mesh through the same variable a
    # user sets; blocks that start their own embedded mesh simply ignore it.
    env = clean_env({"AGENTFM_GATEWAY_URL": demo_mesh.url})
    assert_ok(run_python([str(script)], env=env, cwd=tmp_path))
