"""sprocket's Pusher HTTP API and webhooks against the real Python server
SDK (PyPI `pusher`, pinned in requirements.txt): trigger, trigger_batch,
channels_info, channel_info, users_info, and validate_webhook on the
webhooks sprocket sends. Subscribers are raw WebSocket clients (the
standard library only), authorised with the SDK's own `authenticate`.

Run by tests/pusher/run.sh (which installs the SDK); by hand:
    PYTHONPATH=DIR_WITH_PUSHER SPROCKET_BIN=target/release/sprocket \\
        python3 tests/pusher/sdk_python.py
"""

import base64
import http.server
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import pusher

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APP, KEY, SECRET = "4242", "app-key", "app-secret"


class Ws:
    """A minimal WebSocket client (RFC 6455): text frames, masked."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101 "):
            raise AssertionError(f"handshake refused: {head!r}")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("the server closed the connection")
        self.buf += chunk

    def send(self, message):
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        else:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def recv(self, timeout=5.0):
        """The next Pusher message (a dict, `data` decoded when it is a
        JSON string), skipping control frames; None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is not None:
                opcode, payload = frame
                if opcode == 1:
                    msg = json.loads(payload)
                    if isinstance(msg.get("data"), str):
                        try:
                            msg["data"] = json.loads(msg["data"])
                        except ValueError:
                            pass
                    return msg
                if opcode == 8:
                    raise AssertionError(f"closed by the server: {payload!r}")
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                return None

    def _frame(self):
        if len(self.buf) < 2:
            return None
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        at = 2
        if n == 126:
            if len(self.buf) < 4:
                return None
            (n,) = struct.unpack("!H", self.buf[2:4])
            at = 4
        elif n == 127:
            if len(self.buf) < 10:
                return None
            (n,) = struct.unpack("!Q", self.buf[2:10])
            at = 10
        if len(self.buf) < at + n:
            return None
        payload, self.buf = self.buf[at : at + n], self.buf[at + n :]
        return opcode, payload

    def expect(self, event, timeout=5.0):
        """The next message but pings and pongs; it must be `event`."""
        while True:
            msg = self.recv(timeout)
            if msg is None:
                raise AssertionError(f"no {event} within {timeout} s")
            if msg["event"] in ("pusher:ping", "pusher:pong"):
                continue
            if msg["event"] != event:
                raise AssertionError(f"expected {event}, got {msg}")
            return msg

    def close(self):
        self.sock.close()


class Hooks(http.server.BaseHTTPRequestHandler):
    """Receives sprocket's webhooks: (headers, raw body) into `received`."""

    received = queue.Queue()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hooks.received.put((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class PythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
        threading.Thread(target=cls.hooks.serve_forever, daemon=True).start()
        bin_ = os.environ.get("SPROCKET_BIN") or os.path.join(ROOT, "target/release/sprocket")
        if not os.path.exists(bin_):
            raise RuntimeError(f"sprocket binary not found: {bin_} (cargo build --release, or set SPROCKET_BIN)")
        cls.server = subprocess.Popen(
            [
                bin_,
                "--listen", "127.0.0.1:0",
                "--pusher-app", f"{APP}:{KEY}:{SECRET}",
                "--pusher-webhook", f"http://127.0.0.1:{cls.hooks.server_port}/hooks",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
        )
        log, deadline = "", time.monotonic() + 10
        while time.monotonic() < deadline:
            line = cls.server.stderr.readline()
            if not line:
                break
            log += line
            m = re.search(r"listening on ws://[\d.]+:(\d+)", line)
            if m:
                cls.port = int(m.group(1))
                break
        if not getattr(cls, "port", None):
            cls.server.kill()
            raise RuntimeError(f"sprocket did not report its address:\n{log}")
        # Keep reading its log, so that a full pipe never blocks it.
        threading.Thread(target=lambda: cls.server.stderr.read(), daemon=True).start()
        cls.sdk = pusher.Pusher(
            app_id=APP, key=KEY, secret=SECRET, ssl=False, host="127.0.0.1", port=cls.port
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        try:
            cls.server.wait(5)
        except subprocess.TimeoutExpired:
            cls.server.kill()
        cls.hooks.shutdown()
        cls.hooks.server_close()

    def connect(self):
        ws = Ws(self.port, f"/app/{KEY}?protocol=7&client=python-test")
        hello = ws.expect("pusher:connection_established")
        self.addCleanup(ws.close)
        return ws, hello["data"]["socket_id"]

    def subscribe(self, ws, socket_id, channel, member=None):
        if channel.startswith(("private-", "presence-")):
            # The SDK's own signature (as a Django or Flask auth endpoint).
            data = self.sdk.authenticate(channel, socket_id, member)
        else:
            data = {}
        ws.send({"event": "pusher:subscribe", "data": {"channel": channel, **data}})
        return ws.expect("pusher_internal:subscription_succeeded")

    def test_trigger_reaches_subscribers_and_socket_id_excludes(self):
        a, sa = self.connect()
        b, _ = self.connect()
        self.subscribe(a, sa, "py-orders")
        self.subscribe(b, _, "py-orders")
        self.assertEqual(self.sdk.trigger("py-orders", "shipped", {"id": 1, "note": "é & ü"}), {})
        for ws in (a, b):
            msg = ws.expect("shipped")
            self.assertEqual(msg["channel"], "py-orders")
            self.assertEqual(msg["data"], {"id": 1, "note": "é & ü"})
        self.sdk.trigger(["py-orders", "py-other"], "paid", {"id": 2}, socket_id=sa)
        self.assertEqual(b.expect("paid")["data"], {"id": 2})
        self.assertIsNone(a.recv(0.3), "the excluded socket got the event")

    def test_trigger_batch(self):
        ws, sid = self.connect()
        self.subscribe(ws, sid, "private-py-batch", None)
        self.sdk.trigger_batch(
            [
                {"channel": "private-py-batch", "name": "one", "data": {"n": 1}},
                {"channel": "private-py-batch", "name": "two", "data": "plain text"},
            ]
        )
        self.assertEqual(ws.expect("one")["data"], {"n": 1})
        self.assertEqual(ws.expect("two")["data"], "plain text")

    def test_channel_info_users_info_and_channels_info(self):
        ann1, s1 = self.connect()
        ann2, s2 = self.connect()
        bob, s3 = self.connect()
        self.subscribe(ann1, s1, "presence-py-room", {"user_id": "ann", "user_info": {"name": "Ann"}})
        self.subscribe(ann2, s2, "presence-py-room", {"user_id": "ann", "user_info": {"name": "Ann"}})
        ok = self.subscribe(bob, s3, "presence-py-room", {"user_id": "bob"})
        self.assertEqual(ok["data"]["presence"]["count"], 2)
        self.assertEqual(ann1.expect("pusher_internal:member_added")["data"]["user_id"], "bob")
        self.subscribe(bob, s3, "py-lobby")

        info = self.sdk.channel_info("presence-py-room", ["user_count", "subscription_count"])
        self.assertEqual(info, {"occupied": True, "user_count": 2, "subscription_count": 3})
        self.assertEqual(self.sdk.channel_info("py-nobody"), {"occupied": False})
        users = self.sdk.users_info("presence-py-room")
        self.assertEqual(sorted(u["id"] for u in users["users"]), ["ann", "bob"])

        listed = self.sdk.channels_info("presence-py-", ["user_count"])
        self.assertEqual(listed, {"channels": {"presence-py-room": {"user_count": 2}}})
        everything = self.sdk.channels_info()
        self.assertIn("py-lobby", everything["channels"])
        self.assertIn("presence-py-room", everything["channels"])

        # Bob leaves: one user, two connections.
        bob.send({"event": "pusher:unsubscribe", "data": {"channel": "presence-py-room"}})
        self.assertEqual(ann1.expect("pusher_internal:member_removed")["data"], {"user_id": "bob"})
        info = self.sdk.channel_info("presence-py-room", ["user_count", "subscription_count"])
        self.assertEqual(info, {"occupied": True, "user_count": 1, "subscription_count": 2})

    def test_the_api_refuses_a_wrong_secret(self):
        wrong = pusher.Pusher(
            app_id=APP, key=KEY, secret="not-it", ssl=False, host="127.0.0.1", port=self.port
        )
        with self.assertRaises(pusher.errors.PusherBadAuth):
            wrong.trigger("py-orders", "x", {})

    def test_validate_webhook_accepts_what_sprocket_sends(self):
        ws, sid = self.connect()
        self.subscribe(ws, sid, "presence-py-hooked", {"user_id": "carol"})
        wanted = {
            ("channel_occupied", "presence-py-hooked", None),
            ("member_added", "presence-py-hooked", "carol"),
        }
        seen, checked = set(), 0
        deadline = time.monotonic() + 5
        while not wanted <= seen and time.monotonic() < deadline:
            try:
                headers, body = Hooks.received.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            headers = {k.lower(): v for k, v in headers.items()}
            valid = self.sdk.validate_webhook(
                headers["x-pusher-key"], headers["x-pusher-signature"], body.decode()
            )
            self.assertIsNotNone(valid, f"validate_webhook refused {body!r}")
            self.assertEqual(valid, json.loads(body))
            checked += 1
            # Tampered with, or signed with another secret: refused.
            self.assertIsNone(
                self.sdk.validate_webhook(
                    headers["x-pusher-key"], headers["x-pusher-signature"], body.decode() + " "
                )
            )
            for e in valid["events"]:
                seen.add((e["name"], e.get("channel"), e.get("user_id")))
        self.assertTrue(wanted <= seen, f"webhooks seen: {seen}")
        self.assertGreater(checked, 0)


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
