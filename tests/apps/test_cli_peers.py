"""``agentfm-py peers``, ``peers show`` and ``peers comment`` against a real embedded mesh."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from agentfm.mesh import EmbeddedMesh
from tests.apps.test_cli import cli

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[EmbeddedMesh]:
    with EmbeddedMesh.demo(api_keys=[], state_dir=tmp_path) as m:
        yield m


@pytest.mark.parametrize("command", [["peers"], ["peers", "show"], ["peers", "comment"]])
def test_peers_help(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli([*command, "--help"], capsys, monkeypatch)
    assert code == 0
    assert "usage:" in out.lower()


def test_comment_then_table_and_show(
    mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = mesh.peer_id("writer")
    gw = ["--gateway", mesh.url]
    code, out, err = cli(
        [*gw, "peers", "comment", peer, "clean output", "--rating", "0.5"], capsys, monkeypatch
    )
    assert code == 0, err
    assert "recorded: cid 1220" in out
    code, out, _ = cli([*gw, "peers"], capsys, monkeypatch)
    assert code == 0
    line = next(row for row in out.splitlines() if peer in row)
    assert "+0.42" in line  # 0.85 x 0.5, cached after the rated comment
    assert "allowed" in line
    for worker in mesh.workers:
        assert worker.peer_id in out
    code, out, _ = cli([*gw, "peers", "show", peer], capsys, monkeypatch)
    assert code == 0
    assert "honesty   +0.425 from 1 rating(s)" in out
    assert "honesty +0.50 (interactive)" in out
    assert "comment 1220" in out
    code, out, _ = cli([*gw, "peers", "show", peer, "--json"], capsys, monkeypatch)
    body = json.loads(out)
    assert body["summary"]["entries_count"] == 2
    assert body["log"]["returned"] == 2


def test_bad_rating_is_one_clear_line(
    mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = mesh.peer_id("writer")
    code, out, err = cli(
        ["--gateway", mesh.url, "peers", "comment", peer, "x", "--rating", "3"], capsys, monkeypatch
    )
    assert code == 2
    assert "rating must be a finite number" in err
    assert out == ""
