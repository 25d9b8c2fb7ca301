#!/usr/bin/env python3
"""Server RSS per connection with and without permessage-deflate.

Starts the sprocket binary with the given extra arguments, opens N
WebSocket connections to /echo (offering permessage-deflate or not),
reads the server's VmRSS from /proc, then has every connection exchange
one compressed message (the "active" figure: codec state allocated where
the configuration keeps it), and reads VmRSS again.

Usage: bench/deflate_memory.py SPROCKET_BIN [-n N] [--size BYTES]
                               [--offer OFFER|--no-offer] [-- ARGS...]
Prints one line of JSON: baseline, idle and active RSS in KiB and the
per-connection deltas in bytes.
"""
import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, offer):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n" % key)
    if offer:
        req += "Sec-WebSocket-Extensions: %s\r\n" % offer
    s.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("handshake failed")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    negotiated = b"permessage-deflate" in head
    return s, negotiated


def masked_frame(first, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", first, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return hdr + mask + body


def read_frame(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("closed")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0, exact(n)


def message(size):
    rows = []
    i = 0
    while len(json.dumps(rows)) < size:
        rows.append({"id": i, "topic": "prices", "value": i * 3.5})
        i += 1
    return json.dumps(rows).encode()[:size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--offer", default="permessage-deflate; client_max_window_bits")
    ap.add_argument("--no-offer", action="store_true")
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    a.args = extra
    offer = None if a.no_offer else a.offer
    port = free_port()
    proc = subprocess.Popen([a.bin, "--listen", "127.0.0.1:%d" % port,
                             "--max-connections", str(a.n + 10)] + a.args,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.2)
        base = rss_kib(proc.pid)
        conns = []
        negotiated = True
        for _ in range(a.n):
            s, ok = connect(port, offer)
            negotiated = negotiated and ok
            conns.append(s)
        time.sleep(0.3)
        idle = rss_kib(proc.pid)
        msg = message(a.size)
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
        assert packed.endswith(b"\x00\x00\xff\xff")
        frame = masked_frame(0xC1, packed[:-4]) if negotiated else masked_frame(0x81, msg)
        rsv1 = 0
        for s in conns:
            s.sendall(frame)
            b0, _ = read_frame(s)
            rsv1 += (b0 >> 6) & 1
        time.sleep(0.3)
        active = rss_kib(proc.pid)
        for s in conns:
            s.close()
        print(json.dumps({
            "args": a.args, "offer": offer, "negotiated": negotiated,
            "connections": a.n, "message": a.size, "compressed_replies": rsv1,
            "rss_kib": {"baseline": base, "idle": idle, "active": active},
            "bytes_per_conn": {"idle": (idle - base) * 1024 // a.n,
                               "active": (active - base) * 1024 // a.n},
        }))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
