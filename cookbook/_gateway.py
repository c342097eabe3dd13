"""Shared by the cookbook scripts: a gateway to talk to.

When ``AGENTFM_GATEWAY_URL`` is set, the scripts use that gateway (a real AgentFM mesh).
Otherwise they start the embedded demo mesh on a free loopback port and point
``AGENTFM_GATEWAY_URL`` at it, so the rest of every script is exactly the code you would
run against a real mesh: the clients read the URL from the environment.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from agentfm.mesh import EmbeddedMesh, WorkerConfig


@contextmanager
def gateway(
    mesh: EmbeddedMesh | None = None, *, extra_workers: Sequence[WorkerConfig] = ()
) -> Iterator[str]:
    """Yield a gateway URL: the configured one, else ``mesh`` (default: the demo mesh) started.

    ``extra_workers`` join the embedded mesh once it runs; a real gateway gets its workers
    from the swarm, so they are ignored there.
    """
    configured = os.environ.get("AGENTFM_GATEWAY_URL")
    if configured:
        print(f"using the gateway at {configured}")
        yield configured
        return

    from agentfm.mesh import EmbeddedMesh

    with mesh or EmbeddedMesh.demo() as running:
        for config in extra_workers:
            running.add_worker(config)
        os.environ["AGENTFM_GATEWAY_URL"] = running.url
        print(f"started an embedded mesh at {running.url} (set AGENTFM_GATEWAY_URL to use yours)")
        try:
            yield running.url
        finally:
            del os.environ["AGENTFM_GATEWAY_URL"]
