"""A small soak in the default run: every task succeeds and no descriptor is leaked."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest

from agentfm.mesh import EmbeddedMesh
from tests.reliability.conftest import wait_until
from tests.reliability.soak import open_fds, run_soak, soak_workers

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def soak_mesh() -> Iterator[EmbeddedMesh]:
    with EmbeddedMesh(soak_workers(), api_keys=[]) as mesh:
        yield mesh


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_small_soak_has_no_errors_and_no_fd_growth(soak_mesh: EmbeddedMesh, flavour: str) -> None:
    # Earlier tests in the same process may still be dropping sockets; settle them first.
    gc.collect()
    before = open_fds()
    report = run_soak(soak_mesh, tasks=500, concurrency=64, flavour=flavour, rounds=5)
    assert report.tasks == 500
    assert report.errors == 0
    assert report.wrong == 0
    # Five rounds of 100 tasks on one client reuse the same pooled connections: the count
    # after the last round is the count after the warm-up one.
    # A leak would show at least one descriptor per concurrent connection (64); the small
    # slack absorbs sockets that other tests' clients release while this one runs.
    assert report.fds_end <= report.fds_start + 8
    # Once the client is closed, the server side lets go of its sockets too.
    assert wait_until(lambda: open_fds() <= before + 8)
