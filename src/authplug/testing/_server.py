"""A real HTTP(S) server on a free loopback port, in a background thread."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["LoopbackServer", "Request", "Response"]


@dataclass(frozen=True, slots=True)
class Request:
    """What the server received.

    Attributes:
        method: the HTTP method.
        path: the path, without the query string.
        query: the query string's parameters, each with every value given.
        headers: the request's headers, under lower-case names.
        body: the body (a chunked body is read whole).
        client_cert: the client certificate the peer presented (TLS servers), as
            ``ssl.SSLSocket.getpeercert()`` gives it, or None.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_cert: Mapping[str, Any] | None = None

    def form(self) -> dict[str, str]:
        """The body as a form (last value wins)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def args(self) -> dict[str, str]:
        """The query string's parameters (last value wins)."""
        return {k: v[-1] for k, v in self.query.items()}


@dataclass(frozen=True, slots=True)
class Response:
    """What the server answers.

    Attributes:
        status: the HTTP status.
        body: the body (``Content-Length`` is added).
        headers: the response's headers.
    """

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: object, **headers: str) -> Response:
        """A JSON answer.

        Args:
            status: the HTTP status.
            data: what to encode as JSON.
            **headers: more headers (``Content-Type`` is ``application/json``).

        Returns:
            The response.
        """
        return cls(
            status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers}
        )

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        """A text answer.

        Args:
            status: the HTTP status.
            text: the body, encoded as UTF-8.
            content_type: the ``Content-Type``.

        Returns:
            The response.
        """
        return cls(status, text.encode(), {"Content-Type": content_type})


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    app: Handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client hanging up (a test's timeout, a refused TLS peer) is normal."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read counters, not access logs."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_cert=cert or None,
        )
        try:
            response = self.server.app(request)
        except Exception as exc:  # an emulator bug must show, not hang the client
            response = Response.text(500, f"emulator error: {type(exc).__name__}: {exc}")
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        # Head and body in one write: two small writes meet the peer's delayed ACK.
        buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
        buffer.append(b"\r\n")
        if self.command != "HEAD":
            buffer.append(response.body)
        self.flush_headers()

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class LoopbackServer:
    """Serves ``app`` on ``127.0.0.1`` at a free port until stopped.

    Use as a context manager; ``url`` is ``http://127.0.0.1:PORT`` (``https`` when an
    ``ssl_context`` is given).

    Args:
        app: called with each :class:`Request` (in the server's threads) and returns
            the :class:`Response`; an exception it raises is answered with a 500.
        ssl_context: serve HTTPS with this server-side context.

    Attributes:
        port: the port it listens on (chosen at construction).
        url: ``http://127.0.0.1:PORT``, or ``https://`` with an ``ssl_context``.
    """

    def __init__(self, app: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.app = app
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        # How often the serving loop looks whether it was asked to stop: a test suite
        # stops a server per test, and waits for this on each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._started = False

    def start(self) -> LoopbackServer:
        """Serve in a background thread (nothing more when already serving).

        Returns:
            The server itself.
        """
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._started:
            self._server.shutdown()
            self._thread.join()
            self._started = False
        self._server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
