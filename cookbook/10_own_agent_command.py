"""Run your own program as a mesh worker, described in a TOML file.

``10_own_agent.toml`` declares two ``wordcount`` workers that run ``agents/wordcount.py``
for each task. This script always starts that mesh itself (it is about *hosting* a worker;
on a real mesh the Go worker does this part): the same file works with
``agentfm-py mesh serve --config cookbook/10_own_agent.toml``.
Run it: ``python cookbook/10_own_agent_command.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agentfm import AgentFMClient
from agentfm.mesh import EmbeddedMesh

CONFIG = Path(__file__).with_name("10_own_agent.toml")


def main() -> None:
    with (
        # The tasks' files go to a temporary folder, removed at the end.
        tempfile.TemporaryDirectory(prefix="agentfm-wordcount-") as files,
        # Keyword arguments override the file: any free port, so 8080 may stay busy.
        EmbeddedMesh.from_toml(CONFIG, port=0) as mesh,
        AgentFMClient(mesh.url, artifacts_dir=files) as client,
    ):
        workers = client.workers.match("wordcount")
        for w in workers:
            print(f"worker: {w.name} engine={w.engine} {w.peer_id}")

        result = client.tasks.run(worker_id=workers[0].peer_id, prompt="the mesh runs my own code")
        print(f"answer: {result.text.strip()}")
        for path in result.artifacts:
            print(f"artifact: {path.name}: {path.read_text(encoding='utf-8')}")

        # Your workers take part in everything else too, e.g. a scatter over both replicas.
        results = client.tasks.scatter(
            ["one two", "three four five", "six"], peer_ids=[w.peer_id for w in workers]
        )
        print(f"scatter: {[r.text.splitlines()[0] for r in results]}")


if __name__ == "__main__":
    main()
