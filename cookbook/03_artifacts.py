"""Artifacts: files an agent writes come back to you as local paths.

The ``writer`` demo agent writes ``answer.md`` into its output folder. The worker zips the
folder and ships it to the gateway; ``tasks.run`` fetches the zip (from a shared folder
when the gateway runs on this machine, else over HTTP) and extracts it safely into
``<artifacts_dir>/<task_id>/``. Run it: ``python cookbook/03_artifacts.py``; the files go
to a temporary folder removed when the script ends (give ``artifacts_dir`` a folder of your
own to keep them).
"""

from __future__ import annotations

import tempfile

from _gateway import gateway

from agentfm import AgentFMClient


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="agentfm-artifacts-") as out,
        gateway(),
        AgentFMClient(artifacts_dir=out) as client,
    ):
        writer = client.workers.match("writer")[0]
        result = client.tasks.run(worker_id=writer.peer_id, prompt="a short note about meshes")

        print(f"task {result.task_id} on {result.peer_id}: files_incoming={result.files_incoming}")
        print(f"agent said: {result.text.strip()!r}")
        for path in result.artifacts:
            print(f"artifact: {path} ({path.stat().st_size} bytes)")
            print(path.read_text(encoding="utf-8")[:200])


if __name__ == "__main__":
    main()
