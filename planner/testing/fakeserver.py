"""What the fake Hub (fakehub.py) and the fake Ollama registry (fakeregistry.py) share: bytes kept in
memory or in a local (sparse) file, a pair of threaded HTTP servers on 127.0.0.1 with free ports
(the API and the CDN it redirects to), and the handler plumbing: quiet logs, a JSON answer, a byte
range of a file streamed in chunks (stopping when the fake closes), an abrupt connection reset."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 64 * 1024


class Readable:
    """Bytes served from memory (`data`) or from a local file (`source`)."""

    data: bytes | None
    source: Path | None

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[offset:offset + n]
        assert self.source is not None
        with open(self.source, "rb") as f:
            f.seek(offset)
            return f.read(n)


@dataclass
class RequestRecord:
    """One request a fake server answered: which server, what was asked, what it sent."""

    server: str
    path: str
    status: int = 0
    bytes_sent: int = 0
    range: str | None = None
    authorization: str | None = None


class LocalServers:
    """Two threaded HTTP servers on 127.0.0.1, each on a free port: `roles[0]` answers at `url`,
    `roles[1]` (the CDN) at `cdn_url`. Subclasses say how a role's server is made (`_make_server`)."""

    def _start(self, roles: tuple[str, str]) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()  # connections a handler thread still serves
        self._servers = [self._make_server(role) for role in roles]
        self.url, self.cdn_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in self._servers)
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
                         for s in self._servers]
        for t in self._threads:
            t.start()

    def _make_server(self, role: str) -> ThreadingHTTPServer:
        raise NotImplementedError

    def close(self) -> None:
        """Stop both servers and hang up every kept-alive connection: a pooled client connection
        must never reach this fake's handler threads once a later test's fake has the port."""
        self._stop.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()
        with self._lock:
            open_now, self._open = list(self._open), set()
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _track(self, conn: socket.socket, serving: bool) -> None:
        with self._lock:
            (self._open.add if serving else self._open.discard)(conn)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log; `rec` is the request's record (status, bytes sent) and
    `fake` the LocalServers it belongs to."""

    protocol_version = "HTTP/1.1"
    method = "GET"
    rec: RequestRecord
    fake: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        super().finish()

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self.rec.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        """An answer with a body (none for HEAD)."""
        self._send_headers(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})})
        if self.method != "HEAD" and body:
            self.wfile.write(body)
            self.rec.bytes_sent += len(body)

    def _send_range_headers(self, start: int, end: int, size: int, partial: bool,
                            extra: dict[str, str] | None = None) -> None:
        """The headers of bytes [start, end) of a `size`-byte file: 206 with Content-Range for a range."""
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "Content-Length": str(end - start)}
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self._send_headers(206 if partial else 200, {**headers, **(extra or {})})

    def _stream(self, f: Readable, start: int, limit: int) -> None:
        """Bytes [start, limit) of `f` in chunks, until the fake closes."""
        pos = start
        while pos < limit and not self.fake._stop.is_set():
            chunk = f.read(pos, min(CHUNK, limit - pos))
            if not chunk:
                break
            self.wfile.write(chunk)
            self.rec.bytes_sent += len(chunk)
            pos += len(chunk)

    def _reset(self) -> None:
        """End the connection with a TCP reset (SO_LINGER 0), as a proxy that drops it does."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
