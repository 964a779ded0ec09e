"""A real git server on 127.0.0.1 for tests: `git http-backend` (git's own smart-HTTP CGI) behind a small HTTP
server that demands basic auth, as a private GitHub/GitLab repository does.

The server speaks CGI to http-backend as Apache or nginx+fcgiwrap would (GIT_PROJECT_ROOT, PATH_INFO,
QUERY_STRING, CONTENT_TYPE, REMOTE_USER, GIT_PROTOCOL from the Git-Protocol header, chunked request bodies
decoded). `stall_fetch` makes it hold every fetch request open, so that a test can kill a pull in the middle.
"""
from __future__ import annotations

import base64
import gzip
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _is_fetch(body: bytes, headers: Any) -> bool:
    """An upload-pack request that asks for objects (protocol v2 `command=fetch`, v0 `want`)."""
    if headers.get("Content-Encoding", "") == "gzip":
        body = gzip.decompress(body)
    return b"command=fetch" in body or b"want " in body


class GitHttpServer:
    """`with GitHttpServer(root, users={"bot": "pw"}) as server:` serves ROOT/NAME.git at server.url + NAME.git."""

    def __init__(self, root: Path, users: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.users = dict(users or {})
        self.stall_fetch = threading.Event()
        self.release = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, authenticated user
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _user(self) -> str | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return None
                return user if server.users.get(user) == password else None

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _deny(self) -> None:
                body = b"Authentication required\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, method: str) -> None:
                body = self._body() if method == "POST" else b""
                user = self._user()
                parts = urlsplit(self.path)
                server.requests.append((method, parts.path, user))
                if server.users and user is None:
                    self._deny()
                    return
                if method == "POST" and server.stall_fetch.is_set() and _is_fetch(body, self.headers):
                    server.release.wait(120)
                env = {"GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1", "PATH": "/usr/bin:/bin",
                       "REQUEST_METHOD": method, "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "REMOTE_USER": user or "", "REMOTE_ADDR": self.client_address[0],
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                       "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", "")}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                     check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = out.partition(b"\n\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler
