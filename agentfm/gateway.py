"""`LocalMeshGateway`: run the Go ``agentfm`` gateway binary as a child process.

Without the Go binary, `agentfm.mesh.EmbeddedMesh` runs a wire-compatible gateway in-process.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from agentfm._constants import ENV_API_KEY
from agentfm.exceptions import GatewayConnectionError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["LocalMeshGateway"]

log = logging.getLogger("agentfm.gateway")

_PROBE_TIMEOUT = 1.0
_PROBE_INTERVAL = 0.25
_STOP_GRACE = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalMeshGateway:
    """Start ``agentfm -mode api`` locally and wait until it answers.

    Args:
        binary_path: The gateway binary (PATH lookup unless it contains a slash).
        port: API port; 0 picks a free one.
        swarm_key: Path of a private-network swarm key.
        bootstrap: Multiaddr of a lighthouse to bootstrap from.
        debug: Let the gateway log to this process's stdout/stderr.
        log_file: Log file (default ``./.agentfm-gateway-<port>.log``) when not ``debug``.
        startup_timeout: Seconds to wait for readiness.
        api_key: Key used for the readiness probe, and given to the gateway as
            ``AGENTFM_API_KEYS`` unless that is already set.
        extra_args: More command-line arguments for the gateway.

    Example:
        ```python
        with LocalMeshGateway(port=0) as gw, AgentFMClient(gw.url) as client:
            print(client.workers.list())
        ```
    """

    def __init__(
        self,
        *,
        binary_path: str = "agentfm",
        port: int = 8080,
        swarm_key: str | Path | None = None,
        bootstrap: str | None = None,
        debug: bool = False,
        log_file: str | Path | None = None,
        startup_timeout: float = 15.0,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary_path = binary_path
        self.port = port
        self.swarm_key = swarm_key
        self.bootstrap = bootstrap
        self.debug = debug
        self.log_file = log_file
        self.startup_timeout = startup_timeout
        self.api_key = api_key if api_key is not None else (os.environ.get(ENV_API_KEY) or None)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"LocalMeshGateway(url={self.url!r}, running={self.process is not None})"

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        resolved = shutil.which(self.binary_path)
        if resolved is None:
            raise FileNotFoundError(
                f"AgentFM gateway binary {self.binary_path!r} not found. Install the Go "
                "'agentfm' binary, or run a gateway in-process with agentfm.mesh.EmbeddedMesh "
                "(pip install 'agentfm-integrations[mesh]')."
            )
        command = [resolved, "-mode", "api", "-apiport", str(self.port)]
        if self.swarm_key is not None:
            key = Path(self.swarm_key).expanduser()
            if not key.is_file():
                raise FileNotFoundError(f"swarm key not found: {key}")
            command += ["-swarmkey", str(key)]
        if self.bootstrap:
            command += ["-bootstrap", self.bootstrap]
        return command + self.extra_args

    def start(self) -> LocalMeshGateway:
        """Start the gateway and block until it is ready.

        Raises:
            FileNotFoundError: The binary or the swarm key is missing.
            GatewayConnectionError: The gateway exited or did not become ready in time.
        """
        if self.process is not None:
            raise RuntimeError("LocalMeshGateway.start() called twice; call stop() first")
        if self.port == 0:
            self.port = _free_port()
        command = self._command()
        env = dict(os.environ)
        if self.api_key and not env.get("AGENTFM_API_KEYS"):
            env["AGENTFM_API_KEYS"] = self.api_key
        output: Any = None
        if not self.debug:
            path = Path(self.log_file or f".agentfm-gateway-{self.port}.log")
            self._log = open(path, "ab")  # noqa: SIM115 - closed in stop()
            output = self._log
        log.info("starting %s", " ".join(command))
        self.process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=_PROBE_TIMEOUT, headers=headers) as probe:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise GatewayConnectionError(
                        f"agentfm exited early with code {code}", code="gateway_exited"
                    )
                try:
                    if probe.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(_PROBE_INTERVAL)
        raise GatewayConnectionError(
            f"agentfm did not become ready at {self.url} within {self.startup_timeout}s",
            code="gateway_not_ready",
        )

    def stop(self) -> None:
        """Stop the gateway: SIGTERM, time to drain, then SIGKILL."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalMeshGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
