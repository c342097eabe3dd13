"""Collect a finished task's files: the decisions behind ``tasks.collect_artifacts``.

The files arrive one of two ways, whichever answers first: the zip appears in a folder
shared with the gateway (``artifacts_dir=``), or ``GET /api/artifacts/{task_id}`` serves
it. A gateway without that route is remembered per client, so later tasks do not ask it
again. The flow decides; the drivers in `agentfm.resources._task_drivers` do the I/O.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from agentfm._base_client import RequestSpec, resolve_timeout
from agentfm._constants import ARTIFACT_POLL_INTERVAL, DEFAULT_ARTIFACTS_DIR
from agentfm._flow import Sleep
from agentfm._poll import poll_until
from agentfm._task_steps import Download, Extract, NoArtifactRoute, TaskFlow
from agentfm._validation import require_task_id
from agentfm.artifacts import ArtifactManager
from agentfm.exceptions import AgentFMError

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

__all__ = ["artifact_spec", "collect_flow", "extract_zip"]

log = logging.getLogger("agentfm.tasks")

_Fetch = Literal["absent", "no_route"]


def artifact_spec(task_id: str, client_timeout: httpx.Timeout) -> RequestSpec:
    """The ``GET /api/artifacts/{task_id}`` request (a long call: the zip may be large)."""
    return RequestSpec(
        "GET",
        f"/api/artifacts/{task_id}",
        idempotent=True,
        timeout=resolve_timeout(client_timeout, None, "long"),
    )


def _fetch_result(exc: AgentFMError) -> _Fetch:
    """Classify a failed ``GET /api/artifacts/{id}``: not there yet, or no such route."""
    if exc.code == "route_not_found" or exc.status == 405:
        return "no_route"
    if exc.status == 404:
        return "absent"
    raise exc


def collect_flow(
    task_id: str,
    artifacts: ArtifactManager | None,
    *,
    route_missing: bool,
    client_timeout: httpx.Timeout,
    timeout: float,
) -> TaskFlow[list[Path]]:
    """Wait up to ``timeout`` seconds for the files of ``task_id``; [] if none arrive.

    Args:
        task_id: The finished task.
        artifacts: The client's manager (a folder shared with the gateway), if any.
        route_missing: Whether the client already knows its gateway has no artifact route.
        client_timeout: The client's timeout (the download is a long call).
        timeout: Seconds to wait for the files.
    """
    task_id = require_task_id(task_id)
    manager = artifacts or ArtifactManager(DEFAULT_ARTIFACTS_DIR, DEFAULT_ARTIFACTS_DIR)
    spec = artifact_spec(task_id, client_timeout)
    for pause in poll_until(timeout, ARTIFACT_POLL_INTERVAL):
        if pause:
            yield Sleep(pause)
        if artifacts is not None:
            zip_path = manager.task_zip(task_id)
            local: list[Path] | None = yield Extract(manager, zip_path, task_id, if_present=True)
            if local is not None:
                return local
        if not route_missing:
            download = manager.extract_dir / f".{task_id}.zip.download"
            try:
                yield Download(spec, download)
            except AgentFMError as exc:
                if _fetch_result(exc) == "no_route":
                    route_missing = True
                    yield NoArtifactRoute()
            else:
                files: list[Path] = yield Extract(manager, download, task_id)
                return files
        if artifacts is None and route_missing:
            log.warning(
                "task %s produced files but this gateway has no artifact route; pass "
                "artifacts_dir= pointing at the gateway's agentfm_artifacts folder",
                task_id,
            )
            return []
    log.warning("files of task %s did not arrive within %ss", task_id, timeout)
    return []


def extract_zip(step: Extract) -> list[Path] | None:
    """Perform an `Extract` step (blocking: the async driver runs it in a thread)."""
    if step.if_present and not step.zip_path.is_file():
        return None
    try:
        return step.manager.extract(step.zip_path, step.task_id)
    finally:
        step.manager.cleanup(step.zip_path)
