"""A real HTTP server on 127.0.0.1 for download tests: `routes[path] = (body, mode)`, `requests` records paths."""
from __future__ import annotations

import http.server
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.routes[path] = (body, mode)`; mode: ok | truncate | stall | redirect:<path>."""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        srv = self.server
        srv.requests.append(self.path)
        route = srv.routes.get(self.path)
        try:
            if route is None:
                self.send_error(404, "Not Found")
                return
            body, mode = route
            if mode.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", mode[len("redirect:"):])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "ok":
                self.wfile.write(body)
            elif mode == "truncate":  # promise len(body) bytes, send a third, hang up
                self.wfile.write(body[: len(body) // 3])
                self.close_connection = True
            elif mode == "stall":  # send a little, then nothing for longer than the client waits
                self.wfile.write(body[:1000])
                self.wfile.flush()
                time.sleep(1.5)
            else:
                raise AssertionError(mode)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


class LocalServer:
    def __init__(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def routes(self) -> dict:
        return self.httpd.routes

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
