"""pyzmq peers for tests/zmtp_interop.rs (pyzmq's wheel bundles its own libzmq).

    python3 peer.py heartbeat PORT     PUSH with heartbeats; waits for "go" on stdin
    python3 peer.py wrong TYPE PORT    a socket of TYPE (PUB, REQ, ...) that must be refused
    python3 peer.py mechanism M PORT   a PUSH using mechanism M (PLAIN or CURVE)

Prints one line per finding on stdout, for the test to check.
"""
import sys

import zmq
from zmq.utils.monitor import recv_monitor_message

EVENTS = {
    getattr(zmq, name): name
    for name in dir(zmq)
    if name.startswith("EVENT_") and isinstance(getattr(zmq, name), int)
}


def watch(sock):
    return sock.get_monitor_socket(
        zmq.EVENT_CONNECTED
        | zmq.EVENT_DISCONNECTED
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_MONITOR_STOPPED
    )


def events(mon, until, timeout_ms):
    """Monitor events until one named in `until` (or the timeout)."""
    seen = []
    while mon.poll(timeout_ms):
        ev = recv_monitor_message(mon)
        name = EVENTS.get(ev["event"], str(ev["event"]))
        seen.append((name, ev["value"]))
        if name in until:
            break
    return seen


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    ctx = zmq.Context()
    print("libzmq", zmq.zmq_version(), "pyzmq", zmq.__version__, flush=True)
    if mode == "heartbeat":
        port = args[0]
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.HEARTBEAT_IVL, 50)  # a PING every 50 ms
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 300)  # no traffic for 300 ms: drop
        s.setsockopt(zmq.HEARTBEAT_TTL, 2000)  # sent in the PING: 20 tenths
        mon = watch(s)
        s.connect(f"tcp://127.0.0.1:{port}")
        s.send(b"first")
        # The test answers the PINGs and says "go" after enough of them.
        sys.stdin.readline()
        s.send_multipart([b"part one", b"", b"part three"])
        s.send(b"last")
        s.close(linger=5000)
        seen = events(mon, ("EVENT_MONITOR_STOPPED",), 1000)
        drops = sum(1 for name, _ in seen if name == "EVENT_DISCONNECTED")
        print("disconnects", drops, flush=True)
    elif mode == "wrong":
        kind, port = args
        s = ctx.socket(getattr(zmq, kind))
        mon = watch(s)
        s.connect(f"tcp://127.0.0.1:{port}")
        # libzmq 4.3 reports an ERROR command (reason not a ZAP status code)
        # as a plain disconnect.
        for name, value in events(mon, ("EVENT_DISCONNECTED", "EVENT_HANDSHAKE_SUCCEEDED"), 5000):
            print(name, value, flush=True)
        s.close(linger=0)
    elif mode == "mechanism":
        mechanism, port = args
        s = ctx.socket(zmq.PUSH)
        if mechanism == "PLAIN":
            s.plain_username = b"user"
            s.plain_password = b"secret"
        else:
            server_public, _ = zmq.curve_keypair()
            s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
            s.curve_serverkey = server_public
        mon = watch(s)
        s.connect(f"tcp://127.0.0.1:{port}")
        s.send(b"never delivered")
        failed = ("EVENT_HANDSHAKE_FAILED_PROTOCOL", "EVENT_HANDSHAKE_FAILED_NO_DETAIL",
                  "EVENT_HANDSHAKE_FAILED_AUTH", "EVENT_HANDSHAKE_SUCCEEDED")
        for name, value in events(mon, failed, 5000):
            print(name, value, flush=True)
        s.close(linger=0)
    else:
        sys.exit(f"unknown mode {mode}")
    mon.close(linger=0)
    ctx.term()


main()
