"""Point everything at a real AgentFM gateway with two environment variables.

    export AGENTFM_GATEWAY_URL=http://my-gateway:8080   # the Go gateway's HTTP API
    export AGENTFM_API_KEY=...                          # one of its AGENTFM_API_KEYS
    python cookbook/11_real_gateway.py

Every client in this project (``AgentFMClient``, ``ChatAgentFM``, LlamaIndex ``AgentFM``,
the ``agentfm-py`` CLI) reads these two variables, so no code changes between the
embedded mesh and a real one. Artifacts: the Go gateway writes ``<task_id>.zip`` into its
own ``agentfm_artifacts/`` folder, so run next to it (or share that folder) and pass it as
``artifacts_dir``; the embedded mesh also serves the zips over HTTP
(``GET /api/artifacts/{task_id}``), which the SDK uses when no local zip appears.

With no ``AGENTFM_GATEWAY_URL`` set (as in CI), this script starts an embedded mesh that
*requires* an API key, exports the same two variables for it, and runs the same code, so
what you see is exactly the real-gateway path, authentication included.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import TYPE_CHECKING

from agentfm import AgentFMClient, AuthenticationError
from agentfm_integrations.langchain import ChatAgentFM

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def real_or_stand_in() -> Iterator[None]:
    if os.environ.get("AGENTFM_GATEWAY_URL"):
        print(f"real gateway: {os.environ['AGENTFM_GATEWAY_URL']}")
        yield
        return
    from agentfm.mesh import EmbeddedMesh

    key = secrets.token_hex(16)  # gateways require keys of at least 16 characters
    with EmbeddedMesh.demo(api_keys=[key]) as mesh:
        os.environ["AGENTFM_GATEWAY_URL"] = mesh.url
        os.environ["AGENTFM_API_KEY"] = key
        print(f"no AGENTFM_GATEWAY_URL: demonstrating on an embedded mesh with auth at {mesh.url}")
        yield


def main() -> None:
    with real_or_stand_in():
        # Nothing below mentions a URL or a key: both come from the environment.
        with AgentFMClient() as client:
            print(f"gateway healthy: {client.ping()}")
            workers = client.workers.list()
            print(f"{len(workers)} worker(s): {sorted({w.name for w in workers})}")

            # A wrong key is a typed, readable error (never a stack of httpx internals).
            with client.with_options(api_key="not-a-valid-key-0000") as wrong:
                try:
                    wrong.workers.list()
                except AuthenticationError as exc:
                    print(f"wrong key rejected: {exc.status} {exc.code}")

            model = workers[0].name
        print(f"ChatAgentFM({model!r}): {ChatAgentFM(model=model).invoke('hello').content!r}")


if __name__ == "__main__":
    main()
