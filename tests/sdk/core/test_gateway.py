"""LocalMeshGateway with a stand-in binary (the Go gateway is not needed)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from agentfm import AgentFMClient, GatewayConnectionError, LocalMeshGateway

if TYPE_CHECKING:
    from pathlib import Path

FAKE_GATEWAY = """#!{python}
import http.server, sys
port = int(sys.argv[sys.argv.index("-apiport") + 1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{{"online_workers": 0, "status": "ok"}}'
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        print("request", *a, flush=True)
print("fake gateway up", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    path = tmp_path / "agentfm"
    path.write_text(FAKE_GATEWAY.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_missing_binary_points_to_the_embedded_mesh(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="EmbeddedMesh"):
        LocalMeshGateway(binary_path=str(tmp_path / "nope")).start()


@pytest.mark.parametrize("debug", [True, False])
def test_start_stop_with_port_zero(fake_binary: Path, tmp_path: Path, debug: bool) -> None:
    log_file = tmp_path / "gw.log"
    with LocalMeshGateway(
        binary_path=str(fake_binary), port=0, debug=debug, log_file=log_file
    ) as gw:
        assert gw.port != 0
        assert gw.process is not None
        with AgentFMClient(gw.url, api_key=None) as client:
            assert client.ping()
        with pytest.raises(RuntimeError, match="called twice"):
            gw.start()  # 0.3.0's message
    assert gw.process is None
    assert log_file.exists() is (not debug)


def test_early_exit_is_reported(tmp_path: Path) -> None:
    failing = tmp_path / "agentfm"
    failing.write_text(f"#!{sys.executable}\nraise SystemExit(3)\n")
    failing.chmod(0o755)
    with pytest.raises(GatewayConnectionError, match="code 3"):
        LocalMeshGateway(binary_path=str(failing), port=0, log_file=tmp_path / "l.log").start()
