"""Small raw servers for cases the embedded mesh cannot produce."""

from __future__ import annotations

import contextlib
import socket
import threading


class HeadRecorder:
    """A raw server that records each request head and answers like a task route."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        body = b"ok\n\n[AGENTFM: NO_FILES]\n"
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            # One thread per connection: a kept-alive client must not block the next one.
            threading.Thread(target=self._handle, args=(conn, reply), daemon=True).start()

    def _handle(self, conn: socket.socket, reply: bytes) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            raise OSError
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    self.heads.append(head)
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    while len(data) < length:
                        data += conn.recv(65536)
                    data = data[length:]
                    conn.sendall(reply)

    def __enter__(self) -> HeadRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
