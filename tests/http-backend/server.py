#!/usr/bin/env python3
"""A small real HTTP/1.1 backend for tests/http_client.rs.

Binds 127.0.0.1:0, prints "PORT <n>" on stdout, and serves until killed.
Each connection gets its own handler instance, so `requests` counts the
requests seen on that connection (proof of keep-alive reuse).

  GET  /json           200, JSON with Content-Length: the client's port and
                       the per-connection request count
  POST /echo           200, JSON: method, body length, body, content type
  GET  /chunked        200, Transfer-Encoding: chunked, written by hand with a
                       chunk extension and a trailer
  GET  /close          an HTTP/1.0 response with neither Content-Length nor
                       Transfer-Encoding: the body ends when the server closes
  GET  /nocontent      204
  GET  /large?n=N      200 with a declared N-byte body
  GET  /large-chunked?n=N   200, N bytes in 64 KiB chunks
  GET  /slow           never answers (until the client goes away)
  GET  /idle-close     200 like /json, then the server closes the connection
                       after 50 ms without a next request (an idle timeout)
  GET  /closed         JSON list of client ports whose connection the server
                       closed on that idle timeout
"""

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLOSED_PORTS = []
CLOSED_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.requests = 0
        self.idle_close = False

    def log_message(self, fmt, *args):
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        if self.close_connection and self.idle_close:
            with CLOSED_LOCK:
                CLOSED_PORTS.append(self.client_address[1])

    def send_body(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value):
        self.send_body(200, json.dumps(value).encode())

    def do_GET(self):
        self.requests += 1
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        n = int(query.get("n", ["0"])[0])
        route = {
            "/json": self.json,
            "/host": lambda: self.send_body(200, (self.headers.get("Host") or "").encode(), "text/plain"),
            "/chunked": self.chunked,
            "/close": self.close_delimited,
            "/nocontent": self.no_content,
            "/large": lambda: self.send_body(200, b"x" * n, "text/plain"),
            "/large-chunked": lambda: self.large_chunked(n),
            "/slow": self.slow,
            "/idle-close": self.idle,
            "/closed": self.closed,
        }.get(url.path)
        if route is None:
            self.send_body(404, b"not found\n", "text/plain")
        else:
            route()

    def do_POST(self):
        self.requests += 1
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_json(
            {
                "method": "POST",
                "length": len(body),
                "body": body.decode("utf-8", "replace"),
                "content_type": self.headers.get("Content-Type"),
                "port": self.client_address[1],
                "requests": self.requests,
            }
        )

    def json(self):
        self.send_json({"port": self.client_address[1], "requests": self.requests})

    def chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum")
        self.end_headers()
        for i, part in enumerate([b"Wiki", b"pedia ", b"in\r\n\r\nchunks."]):
            ext = b";n=%d" % i if i == 1 else b""
            self.wfile.write(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
        self.wfile.write(b"0\r\nX-Checksum: 42\r\n\r\n")

    def close_delimited(self):
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        self.wfile.write(b"until the server closes\n" * 3)
        self.close_connection = True

    def no_content(self):
        self.send_response(204)
        self.end_headers()

    def large_chunked(self, n):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while n > 0:
                part = b"y" * min(n, 65536)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                n -= len(part)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def slow(self):
        # Answer nothing; wait until the client closes (or 60 s).
        self.connection.settimeout(60)
        try:
            self.connection.recv(1)
        except OSError:
            pass
        self.close_connection = True

    def idle(self):
        self.json()
        self.idle_close = True
        self.connection.settimeout(0.05)

    def closed(self):
        with CLOSED_LOCK:
            ports = list(CLOSED_PORTS)
        self.send_json({"closed": ports})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
