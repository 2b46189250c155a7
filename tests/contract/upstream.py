"""A stub of the api behind the edge proxy: it echoes each request's path and headers as JSON."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.contract.servers import LOCALHOST


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the upstream received it: method, path with query string, and headers.

    Header names are lowercase. A header sent more than once keeps its last value.
    """

    method: str
    path: str
    headers: dict[str, str]


class _EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1, so that nginx can keep its upstream connections open, as the template configures.
    protocol_version = "HTTP/1.1"
    # Seconds that an idle keepalive connection from nginx may stay open.
    timeout = 30
    server: _EchoServer

    def do_GET(self) -> None:
        received = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
        )
        self.server.record(received)
        body = json.dumps(
            {"method": received.method, "path": received.path, "headers": received.headers}
        ).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The requests are in the server's record, so the default stderr line adds nothing.
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOCALHOST, 0), _EchoHandler)
        self._lock = threading.Lock()
        self._received: list[ReceivedRequest] = []

    def record(self, received: ReceivedRequest) -> None:
        with self._lock:
            self._received.append(received)

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)


class UpstreamStub:
    """The echo server running in a background thread on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self._server = _EchoServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="upstream-stub", daemon=True
        )

    @property
    def address(self) -> str:
        """Return host:port, the form of an nginx upstream server."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def received(self) -> list[ReceivedRequest]:
        """Return every request received so far, oldest first."""
        return self._server.received()

    def start(self) -> None:
        """Serve requests until stop() is called."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
