"""The tour is an application of its own: the SDK finds ``agentfm-py demo`` through an entry
point, and importing the SDK's CLI never imports ``agentfm_integrations``."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest

from tests.apps._helpers import assert_ok, clean_env, pyproject, run_python

if TYPE_CHECKING:
    from pathlib import Path

GROUP = "agentfm.cli"
TOUR = "agentfm_integrations.demo:main"


def _shadow_distribution(root: Path, entry_points_txt: str | None) -> dict[str, str]:
    """An environment in which ``agentfm-integrations``' metadata is the one under ``root``.

    importlib.metadata keeps the first distribution of a name on ``sys.path``, so a
    dist-info folder early on ``PYTHONPATH`` replaces the installed one's entry points.
    """
    info = root / "agentfm_integrations-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: agentfm-integrations\nVersion: 0.0.0\n", encoding="utf-8"
    )
    if entry_points_txt is not None:
        (info / "entry_points.txt").write_text(entry_points_txt, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return clean_env({"PYTHONPATH": path})


def test_pyproject_declares_the_tour_as_a_command_and_a_script() -> None:
    project = pyproject()["project"]
    assert project["entry-points"][GROUP] == {"demo": TOUR}
    assert project["scripts"]["agentfm-demo"] == TOUR
    assert project["scripts"]["agentfm-py"] == "agentfm.cli:main"


def test_the_installed_metadata_has_the_tour_entry_point() -> None:
    # What `agentfm-py demo` will find; an editable install made before the entry point
    # existed lacks it (re-run: pip install -e ".[all]").
    found = [ep.value for ep in entry_points(group=GROUP, name="demo")]
    assert found == [TOUR], "the installed metadata is stale: pip install -e '.[all]' again"


def test_importing_the_cli_does_not_import_the_integrations() -> None:
    code = (
        "import sys\n"
        "import agentfm, agentfm.cli, agentfm.mesh\n"
        "agentfm.cli._build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agentfm_integrations'))\n"
    )
    assert assert_ok(run_python(["-c", code])) == "[]\n"


def test_demo_command_is_whatever_the_entry_point_names(tmp_path: Path) -> None:
    # A stand-in tour proves the dispatch goes through the metadata: no name of the real
    # tour is written into the SDK.
    (tmp_path / "stand_in_tour.py").write_text(
        "import sys\n"
        "def main(argv):\n"
        "    loaded = any(m.split('.')[0] == 'agentfm_integrations' for m in sys.modules)\n"
        "    print('stand-in tour', argv, 'integrations imported:', loaded)\n"
        "    return 7\n",
        encoding="utf-8",
    )
    env = _shadow_distribution(tmp_path, f"[{GROUP}]\ndemo = stand_in_tour:main\n")
    proc = run_python(["-m", "agentfm", "demo", "--prompts", "3"], env=env)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "stand-in tour ['--prompts', '3'] integrations imported: False\n"


def test_demo_without_the_entry_point_says_how_to_install_it(tmp_path: Path) -> None:
    proc = run_python(["-m", "agentfm", "demo"], env=_shadow_distribution(tmp_path, None))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "the 'demo' command is not installed" in proc.stderr
    assert "pip install 'agentfm-integrations[all]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_whose_module_cannot_be_imported_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "broken_tour.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'langchain_core'\", name='langchain_core')\n",
        encoding="utf-8",
    )
    env = _shadow_distribution(tmp_path, f"[{GROUP}]\ndemo = broken_tour:main\n")
    proc = run_python(["-m", "agentfm", "demo"], env=env)
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: No module named 'langchain_core'. "
        "The demo command needs: pip install 'agentfm-integrations[all]'\n"
    )


@pytest.mark.parametrize("argv", [["-m", "agentfm_integrations.demo"], ["-m", "agentfm", "demo"]])
def test_both_entry_points_run_the_same_tour(argv: list[str]) -> None:
    proc = run_python([*argv, "--help"])
    out = assert_ok(proc)
    assert out.startswith("usage: agentfm-py demo ")
    assert "--openai-base-url" in out
