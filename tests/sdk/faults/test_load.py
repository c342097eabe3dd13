"""A small soak in the default run: every task succeeds and no descriptor is leaked."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest

from agentfm.mesh import EmbeddedMesh
from tests.sdk.faults.conftest import wait_until
from tests.sdk.faults.soak import (
    POOLED_SOCKETS,
    open_fds,
    run_soak,
    settle_mesh_sockets,
    soak_workers,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def soak_mesh() -> Iterator[EmbeddedMesh]:
    with EmbeddedMesh(soak_workers(), api_keys=[]) as mesh:
        yield mesh


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_small_soak_has_no_errors_and_no_fd_growth(soak_mesh: EmbeddedMesh, flavour: str) -> None:
    port = soak_mesh.port
    # This module's mesh serves only this test: no connection to it may be open yet.
    assert settle_mesh_sockets(port) == 0
    gc.collect()
    before = open_fds()
    report = run_soak(soak_mesh, tasks=500, concurrency=64, flavour=flavour, rounds=5)
    assert report.tasks == 500
    assert report.errors == 0
    assert report.wrong == 0
    # Each scatter closes its up to 64 task connections when it returns; run_soak waits for
    # those sockets (both ends live in this process) to be gone before it counts descriptors,
    # leaving only the client's pooled keep-alive connection. A connection that never closes
    # stays in this count however long the wait.
    assert report.mesh_sockets <= POOLED_SOCKETS, report.lines()
    # With the connections settled, nothing else may grow over 500 tasks: a leaked file,
    # pipe or event loop per task or per round would show here. The slack is that one pooled
    # connection, which may have been open at the end but not at the start; sockets other
    # tests' clients still release can only lower the count.
    assert report.fds_end <= report.fds_start + POOLED_SOCKETS, report.lines()
    # Once the client is closed, every connection to the mesh closes, and the client's own
    # descriptors (event loop, wake-up pipe) go too.
    assert settle_mesh_sockets(port) == 0
    assert wait_until(lambda: open_fds() <= before), (open_fds(), before)
