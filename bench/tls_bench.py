#!/usr/bin/env python3
"""TLS: sprocket's native TLS (--tls-cert/--tls-key) next to uWebSockets.js's
SSLApp (npm uwebsockets, BoringSSL inside the addon).

Four measurements, each run on a fresh server, rounds interleaving sprocket
and uWS (the order alternates per round); each TLS measurement has its
plain-TCP twin in the same round, so the TLS overhead of each server shows:

    echo32    100 connections, window 16, 32-byte texts on /echo
              (loadgen echo): msgs/s, server CPU µs/msg, RTT
    echo16k   10 connections, window 4, 16 KiB binary messages: msgs/s,
              MB/s, server CPU µs/msg
    handshake 2,000 connections, 100 handshakes in flight (loadgen connect):
              handshakes/s, server CPU per handshake (TCP + TLS + WebSocket
              upgrade), per key type (EC P-256, RSA-2048) and plain; the load
              tool's CPU is reported too (client TLS work is heavy: which
              side saturates is said in the table)
    idle      5,000 idle connections held (loadgen connect --hold): server
              RSS before and with them open, bytes per connection

Certificates are made fresh in a temporary directory with the openssl CLI,
one chain per key type: a CA (CA:TRUE) and a leaf for IP 127.0.0.1
(CA:FALSE, signed by the CA, same key type). The servers get the leaf
followed by the CA (full chain) and the leaf's key; the load tool trusts the
CA. The load tool offers ALPN http/1.1 and never resumes a session: every
connection is a full handshake. Echo and idle use the EC chain.

The server is pinned to core 0 (taskset -c 0), the load tool to core 1. With
--rt (default) the load tool runs SCHED_FIFO 10 and so does the server's
main (event-loop) thread, set once it listens; a runtime's helper threads
(V8's) stay ordinary, at nice -10 when run as root (as bench/run.py does).

    python3 bench/tls_bench.py --sprocket /work/wt-tls/target/release/sprocket
                                                  # 3 rounds, about 5 minutes
    python3 bench/tls_bench.py --rounds 1 --duration 2      # smoke
    python3 bench/tls_bench.py --transports plain           # no TLS (dry run)
    python3 bench/tls_bench.py --table DIR        # re-render DIR/runs.jsonl

Needs bench/peers/setup.sh run once (uWS in ~/.cache/sprocket-bench, the
load tool in target/bench/release/loadgen) and a sprocket built with TLS.
Writes DIR/runs.jsonl (one JSON object per run: the load tool's line plus
what this script measured), DIR/runs.csv, DIR/meta.json, DIR/results.md and
the servers' and load tool's logs; default DIR
docs/benchmarks-data/tls-20261202/. Every process started is stopped at the
end, also on error or Ctrl-C.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SPROCKET_BENCH_CACHE", Path.home() / ".cache" / "sprocket-bench"))
SPROCKET = ROOT / "target/release/sprocket"
LOADGEN = ROOT / "target/bench/release/loadgen"
UWS_JS = ROOT / "bench/peers/node/uws-server.js"
OUT = ROOT / "docs/benchmarks-data/tls-20261202"
SERVERS = ("sprocket", "uWS")
KINDS = ("echo32", "echo16k", "handshake", "idle")
KEYS = {
    # name: (openssl genpkey options, label)
    "ec": (["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], "EC P-256"),
    "rsa": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "RSA-2048"),
}
# What the load tool offers (rustls 0.23, ring provider, default order): the
# TLS probe with openssl s_client offers the same, to see what each server
# picks.
CLIENT_SUITES = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
CLIENT_GROUPS = "X25519:P-256:P-384"

LIVE = []  # every Popen started, stopped in reverse order at the end


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, limit=20):
    deadline = time.time() + limit
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start (rc {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{what} does not listen on {port}")
            time.sleep(0.05)


def rss(pid):
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def proc_cpu_s(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy_s():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def stop(p, timeout=8):
    """SIGTERM the process group, wait, then SIGKILL it."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def stop_all():
    while LIVE:
        stop(LIVE.pop())


# --- certificates -----------------------------------------------------------

def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr.strip()[-400:]}")


def make_chain(d, key):
    """A CA and a leaf for IP 127.0.0.1 signed by it, both `key`'s type, in
    directory d: ca.pem (for the load tool), chain.pem (leaf + CA) and
    key.pem (the leaf's key, PKCS#8) for the servers."""
    d.mkdir(parents=True)
    gen = KEYS[key][0]
    openssl("genpkey", *gen, "-out", "ca.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "30", "-sha256",
            "-subj", f"/CN=sprocket tls bench CA ({key})",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("genpkey", *gen, "-out", "key.pem", cwd=d)
    openssl("req", "-new", "-key", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    usage = "digitalSignature" + (",keyEncipherment" if key == "rsa" else "")
    (d / "leaf.ext").write_text("basicConstraints=critical,CA:FALSE\n"
                                "subjectAltName=IP:127.0.0.1\n"
                                f"keyUsage=critical,{usage}\n"
                                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30", "-sha256",
            "-extfile", "leaf.ext", "-out", "leaf.pem", cwd=d)
    (d / "chain.pem").write_text((d / "leaf.pem").read_text() + (d / "ca.pem").read_text())
    return {"ca": str(d / "ca.pem"), "cert": str(d / "chain.pem"), "key": str(d / "key.pem")}


# --- the servers ------------------------------------------------------------

class Server:
    """One server process on core 0, with TLS when `chain` is given."""

    def __init__(self, name, chain, a, log):
        self.name, self.port = name, free_port()
        if name == "sprocket":
            cmd = [str(a.sprocket), "--listen", f"127.0.0.1:{self.port}", "--ping-interval", "0",
                   "--max-connections", "15000"]
            if chain:
                cmd += ["--tls-cert", chain["cert"], "--tls-key", chain["key"]]
        else:
            cmd = ["node", str(UWS_JS), str(self.port)]
            if chain:
                cmd += [chain["cert"], chain["key"]]
        pre = (["nice", "-n", "-10"] if a.rt and os.geteuid() == 0 else []) + ["taskset", "-c", "0"]
        env = dict(os.environ, NODE_PATH=str(CACHE / "node/node_modules"), RUST_LOG="warn")
        self.proc = subprocess.Popen(pre + cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=env, start_new_session=True)
        LIVE.append(self.proc)
        wait_port(self.port, self.proc, name)
        if a.rt:
            # The main thread only (no -a): that is the event loop.
            subprocess.run(["chrt", "-f", "-p", "10", str(self.proc.pid)], check=True)
        time.sleep(0.2)  # let it finish starting after the probe connection
        self.pid = self.proc.pid

    def stop(self):
        stop(self.proc)
        if self.proc in LIVE:
            LIVE.remove(self.proc)


def probe(srv, chain):
    """What a TLS handshake with the load tool's offer negotiates (openssl
    s_client -brief): protocol, suite, group, signature, verification."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-brief",
                        "-CAfile", chain["ca"], "-verify_ip", "127.0.0.1", "-verify_return_error",
                        "-alpn", "http/1.1", "-ciphersuites", CLIENT_SUITES, "-groups", CLIENT_GROUPS],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    out = {}
    for line in (p.stderr + p.stdout).splitlines():
        if ":" in line and not line.startswith(("CONNECTION", "DONE")):
            k, v = line.split(":", 1)
            if k.strip() in ("Protocol version", "Ciphersuite", "Peer certificate", "Hash used",
                             "Signature type", "Verification", "Server Temp Key", "Negotiated TLS1.3 group",
                             "ALPN protocol"):
                out[k.strip()] = v.strip()
    out["rc"] = p.returncode
    return out


# --- runs -------------------------------------------------------------------

def loadgen(cmd, a, timeout=300):
    pre = (["chrt", "-f", "10"] if a.rt else []) + ["taskset", "-c", "1"]
    p = subprocess.Popen(pre + [str(a.loadgen)] + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    LIVE.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        out, err = p.communicate()
        err += f"\n(killed after {timeout} s)"
    LIVE.remove(p)
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"ok": False, "error": f"no JSON from loadgen (exit {p.returncode}): {err[-400:]}"}
    return res, err


def variants(kind, a):
    """(transport, key) pairs measured for `kind`, TLS first."""
    keys = a.keys if kind == "handshake" else a.keys[:1]
    out = [("tls", k) for k in keys] if "tls" in a.transports else []
    if "plain" in a.transports:
        out.append(("plain", None))
    return out


def loadgen_args(kind, a):
    d = ["--warmup", str(a.warmup), "--duration", str(a.duration)]
    if kind == "echo32":
        return ["echo", "--path", "/echo", "--conns", "100", "--window", "16", "--size", "32"] + d
    if kind == "echo16k":
        return ["echo", "--path", "/echo", "--conns", "10", "--window", "4", "--size", "16K", "--binary"] + d
    if kind == "handshake":
        return ["connect", "--path", "/echo", "--conns", str(a.handshakes), "--concurrency", "100",
                "--hold", "0.2"]
    if kind == "idle":
        return ["connect", "--path", "/echo", "--conns", str(a.idle_conns), "--concurrency", "100",
                "--hold", "3"]
    raise ValueError(kind)


def run_one(name, kind, transport, key, chains, a, logdir):
    chain = chains[key] if transport == "tls" else None
    label = f"{name}/{kind}/{transport}" + (f"-{key}" if key else "")
    with open(logdir / "servers.log", "ab") as log:
        log.write(f"### {label}\n".encode())
        log.flush()
        srv = None
        try:
            srv = Server(name, chain, a, log)
            args = loadgen_args(kind, a) + ["--addr", f"127.0.0.1:{srv.port}", "--server-pid", str(srv.pid),
                                            "--label", label, "--quiet"]
            if chain:
                args += ["--tls-ca", chain["ca"]]
            nthreads = threads(srv.pid)
            busy0, own0, t0 = cpu_busy_s(), proc_cpu_s(srv.pid), time.time()
            res, err = loadgen(args, a)
            busy1, own1, t1 = cpu_busy_s(), proc_cpu_s(srv.pid), time.time()
            # What the load tool did (about one core at most) is in busy too.
            lg = (res.get("loadgen_cpu_util") or 0) * (res.get("window_s") or 0)
            res["others_cores"] = round(max((busy1 - busy0) - (own1 - own0) - lg, 0) / (t1 - t0), 3)
            res["run_s"] = round(t1 - t0, 2)
            res["server_threads"] = nthreads
        except Exception as e:  # noqa: BLE001 - a server that fails is a result too
            res, err = {"ok": False, "error": str(e)}, str(e)
        finally:
            if srv:
                srv.stop()
    with open(logdir / "loadgen.log", "a") as f:
        f.write(f"### {label}\n{err}\n")
    res.update(server=name, kind=kind, transport=transport, key=key, variant=variant_name(transport, key))
    return res


def variant_name(transport, key):
    return f"tls-{key}" if transport == "tls" else "plain"


# --- the tables -------------------------------------------------------------

METRICS = {
    "rate": "msgs_per_s", "mb": "mb_per_s", "cpu": "server_cpu_us_per_msg", "p50": "rtt_p50_us",
    "p99": "rtt_p99_us", "util": "server_cpu_util", "lgutil": "loadgen_cpu_util",
    "hs": "handshakes_per_s", "hscpu": "server_cpu_us_per_handshake", "rss": "rss_per_conn",
    "rss0": "rss_before", "rss1": "rss_open",
}


def metric(r, key):
    if not r.get("ok"):
        return None
    return r.get(METRICS[key])


def med(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def fmt(v, digits=2):
    if v is None:
        return "—"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.0f} k"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def cell(m, digits=2, unit=""):
    if m is None:
        return "—"
    if m[1] == m[2]:
        return f"{fmt(m[0], digits)}{unit}"
    return f"{fmt(m[0], digits)} ({fmt(m[1], digits)}–{fmt(m[2], digits)}){unit}"


def pct(m):
    return "—" if m is None else f"{100 * m[0]:.0f} %"


def pick(runs, kind, server, variant):
    return [r for r in runs if r["kind"] == kind and r["server"] == server and r["variant"] == variant]


def col(runs, kind, server, variant, key, digits=2, scale=1.0, unit=""):
    m = med([metric(r, key) for r in pick(runs, kind, server, variant)])
    return cell(m and tuple(x * scale for x in m), digits, unit)


def per_round(runs, kind, a_sel, b_sel, key, op):
    """Median (min–max) over rounds of op(a, b), a and b the runs picked by
    (server, variant) in the same round."""
    by = {}
    for r in runs:
        if r["kind"] != kind:
            continue
        for tag, (sv, va) in (("a", a_sel), ("b", b_sel)):
            if r["server"] == sv and r["variant"] == va:
                by.setdefault(r["round"], {})[tag] = metric(r, key)
    vals = [op(v["a"], v["b"]) for v in by.values() if v.get("a") is not None and v.get("b")]
    return med(vals)


def ratio(runs, kind, a_sel, b_sel, key):
    m = per_round(runs, kind, a_sel, b_sel, key, lambda x, y: x / y)
    if m is None:
        return "—"
    return f"{m[0]:.2f}×" if m[1] == m[2] else f"{m[0]:.2f}× ({m[1]:.2f}–{m[2]:.2f})"


def valid(runs, kind, server, variant):
    rs = pick(runs, kind, server, variant)
    return f"{sum(1 for r in rs if r.get('ok'))}/{len(rs)}"


def present(runs, kind):
    vs = list(dict.fromkeys(r["variant"] for r in runs if r["kind"] == kind))
    return sorted(vs, key=lambda v: (v == "plain", v))


def ratio_rows(runs, kind, keys):
    """sprocket ÷ uWS per variant, then TLS ÷ plain per server."""
    rows = []
    vs = present(runs, kind)
    have = [sv for sv in SERVERS if any(r["kind"] == kind and r["server"] == sv for r in runs)]
    for v in (vs if len(have) == len(SERVERS) else []):
        rows.append([f"**sprocket ÷ uWS**, {v}",
                     *[ratio(runs, kind, ("sprocket", v), ("uWS", v), k) for k in keys]])
    if "plain" in vs:
        for v in vs:
            if v == "plain":
                continue
            for sv in have:
                rows.append([f"{sv}: {v} ÷ plain",
                             *[ratio(runs, kind, (sv, v), (sv, "plain"), k) for k in keys]])
    return rows


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r + [""] * (len(head) - len(r))) + " |" for r in rows]
    return out + [""]


def saturation(runs, kind, sv, v):
    lg = med([metric(r, "lgutil") for r in pick(runs, kind, sv, v)])
    su = med([metric(r, "util") for r in pick(runs, kind, sv, v)])
    if lg is None or su is None:
        return "—"
    if lg[0] >= 0.85 and lg[0] >= su[0]:
        return "load tool"
    if su[0] >= 0.85:
        return "server"
    return "neither"


def render(runs, meta):
    out = [f"TLS benchmark, {meta.get('stamp', '?')}: {meta.get('rounds', '?')} rounds, "
           f"{meta.get('duration', '?')} s measured per echo run, scheduling "
           f"{'SCHED_FIFO (--rt)' if meta.get('rt') else 'normal'}. Cells: median (min–max) over rounds; "
           "÷: the same round's pair, median (min–max) of the rounds' ratios. Variants: tls-ec "
           "(EC P-256 chain), tls-rsa (RSA-2048 chain), plain (no TLS, same server).", ""]
    for p in meta.get("tls_probe", []):
        out.append(f"- {p['server']} {p['variant']}: " + ", ".join(
            f"{k} {v}" for k, v in p.items() if k not in ("server", "variant", "rc")))
    if meta.get("tls_probe"):
        out.append("")
    kinds = list(dict.fromkeys(r["kind"] for r in runs))
    for kind in ("echo32", "echo16k"):
        if kind not in kinds:
            continue
        big = kind == "echo16k"
        out.append("#### Echo: 10 connections, window 4, 16 KiB binary messages" if big else
                   "#### Echo: 100 connections, window 16, 32-byte text messages")
        out.append("")
        keys = ["rate"] + (["mb"] if big else []) + ["cpu", "p50", "p99"]
        head = ["server", "variant", "msgs/s"] + (["MB/s"] if big else []) + \
               ["server CPU µs/msg", "RTT p50 µs", "RTT p99 µs", "server CPU busy", "load tool CPU busy",
                "valid runs"]
        rows = []
        for v in present(runs, kind):
            for sv in SERVERS:
                rs = pick(runs, kind, sv, v)
                if not rs:
                    continue
                rows.append([sv, v] + [col(runs, kind, sv, v, k) for k in keys] +
                            [pct(med([metric(r, "util") for r in rs])),
                             pct(med([metric(r, "lgutil") for r in rs])), valid(runs, kind, sv, v)])
        rows += [[r[0], ""] + r[1:] for r in ratio_rows(runs, kind, keys)]
        out += table(head, rows)
    if "handshake" in kinds:
        n = meta.get("handshakes", "?")
        out += [f"#### Handshakes: {n:,} connections, 100 in flight (TCP + TLS + WebSocket upgrade)"
                if isinstance(n, int) else "#### Handshakes", ""]
        keys = ["hs", "hscpu"]
        head = ["server", "variant", "handshakes/s", "server CPU µs/handshake", "server CPU busy",
                "load tool CPU busy", "saturated", "valid runs"]
        rows = []
        for v in present(runs, "handshake"):
            for sv in SERVERS:
                rs = pick(runs, "handshake", sv, v)
                if not rs:
                    continue
                rows.append([sv, v] + [col(runs, "handshake", sv, v, k) for k in keys] +
                            [pct(med([metric(r, "util") for r in rs])),
                             pct(med([metric(r, "lgutil") for r in rs])),
                             saturation(runs, "handshake", sv, v), valid(runs, "handshake", sv, v)])
        rows += [[r[0], ""] + r[1:] for r in ratio_rows(runs, "handshake", keys)]
        out += table(head, rows)
        out += ["\"saturated\": the side whose CPU was at least 85 % busy (the load tool first). When it is "
                "the load tool (client TLS work: key exchange and verifying the chain for every "
                "connection), handshakes/s is the load tool's ceiling, not the server's: server CPU per "
                "handshake is then the figure to compare. CPU is read in 10 ms ticks: plain handshakes finish "
                "in about 0.1 s, so their CPU per handshake is only good to a few µs.", ""]
    if "idle" in kinds:
        n = meta.get("idle_conns", "?")
        out += [f"#### Idle connections: {n:,} held open, server RSS" if isinstance(n, int)
                else "#### Idle connections", ""]
        head = ["server", "variant", "RSS before", "RSS with the connections open", "bytes per connection",
                "handshakes/s", "valid runs"]
        rows = []
        for v in present(runs, "idle"):
            for sv in SERVERS:
                if not pick(runs, "idle", sv, v):
                    continue
                rows.append([sv, v, col(runs, "idle", sv, v, "rss0", 1, 2 ** -20, " MiB"),
                             col(runs, "idle", sv, v, "rss1", 1, 2 ** -20, " MiB"),
                             col(runs, "idle", sv, v, "rss", 0), col(runs, "idle", sv, v, "hs"),
                             valid(runs, "idle", sv, v)])
        rows += [[r[0], ""] + r[1:] for r in ratio_rows(runs, "idle", ["rss0", "rss1", "rss", "hs"])]
        vs = present(runs, "idle")
        if "plain" in vs:
            for v in vs:
                if v != "plain":
                    for sv in (x for x in SERVERS if pick(runs, "idle", x, v)):
                        m = per_round(runs, "idle", (sv, v), (sv, "plain"), "rss", lambda x, y: x - y)
                        rows.append([f"{sv}: {v} − plain", "", "", "", cell(m, 0), "", ""])
        out += table(head, rows)
    busy = [r["others_cores"] for r in runs if r.get("others_cores") is not None and r["kind"] != "idle"]
    if busy and statistics.median(busy) > 0.2:
        out += [f"Other processes used a median {statistics.median(busy):.2f} cores during these runs "
                "(idle excluded): " + ("they ran whenever the server or the load tool waited; compare "
                                       "ratios." if meta.get("rt") else "figures measure the scheduler "
                                                                         "too; rerun with --rt."), ""]
    bad = [r for r in runs if not r.get("ok")]
    for r in bad[:6]:
        out.append(f"- invalid run: round {r.get('round')} {r['server']} {r['kind']} {r['variant']}: "
                   f"{(r.get('error') or '; '.join(r.get('problems') or []))[:300]}")
    if bad:
        out.append("")
    return "\n".join(out)


def write_csv(runs, path):
    keys = ["round", "server", "kind", "variant", "ok"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + list(METRICS) + ["others_cores"])
        for r in runs:
            w.writerow([r.get(k) for k in keys] + [metric(r, k) for k in METRICS] + [r.get("others_cores")])


def meta_info(a):
    def sh(cmd, cwd=None):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                  cwd=cwd).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    def pkg(name):
        try:
            return json.load(open(CACHE / "node/node_modules" / name / "package.json"))["version"]
        except (OSError, ValueError, KeyError):
            return None

    def lock(name):
        try:
            text = (ROOT / "bench/loadgen/Cargo.lock").read_text()
        except OSError:
            return None
        m = re.search(rf'name = "{name}"\nversion = "([^"]+)"', text)
        return m.group(1) if m else None

    sp = Path(a.sprocket).resolve()
    tree = sh(["git", "rev-parse", "--show-toplevel"], cwd=sp.parent)
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
    return {
        "stamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": a.rounds, "duration": a.duration, "warmup": a.warmup, "rt": a.rt,
        "kinds": a.kinds, "transports": a.transports, "keys": a.keys,
        "handshakes": a.handshakes, "idle_conns": a.idle_conns,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu[0] if cpu else None, "kernel": platform.release()},
        "load_before": open("/proc/loadavg").read().split()[:3],
        "sprocket": str(sp),
        "sprocket_commit": tree and sh(["git", "-C", tree, "describe", "--always", "--dirty", "--abbrev=10"]),
        "sprocket_branch": tree and sh(["git", "-C", tree, "rev-parse", "--abbrev-ref", "HEAD"]),
        "node": sh(["node", "--version"]), "uwebsockets": pkg("uwebsockets"),
        "loadgen_rustls": lock("rustls"), "loadgen_ring": lock("ring"),
        "openssl": sh(["openssl", "version"]), "rustc": sh(["rustc", "--version"]),
    }


def check(a):
    for p, what in ((a.loadgen, "the load tool (bench/peers/setup.sh builds it)"), (a.sprocket, "sprocket")):
        if not Path(p).is_file():
            sys.exit(f"no {what} at {p}")
    if "uWS" in a.servers and not (CACHE / "node/node_modules/uwebsockets").is_dir():
        sys.exit(f"uWebSockets.js is not installed in {CACHE}: run bench/peers/setup.sh")
    if "tls" in a.transports and "sprocket" in a.servers:
        h = subprocess.run([str(a.sprocket), "--help"], capture_output=True, text=True)
        if "--tls-cert" not in h.stdout + h.stderr:
            sys.exit(f"{a.sprocket} has no --tls-cert: build the tls branch and pass --sprocket PATH, "
                     "or run with --transports plain")
    for tool in ("taskset", "openssl") + (("chrt",) if a.rt else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per echo run")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each echo run")
    ap.add_argument("--kinds", default=",".join(KINDS), help="subset of " + ",".join(KINDS))
    ap.add_argument("--transports", default="tls,plain", help="tls, plain or both")
    ap.add_argument("--keys", default="ec,rsa",
                    help="key types for handshakes (the first one also for echo and idle)")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--handshakes", type=int, default=2000, help="connections in the handshake run")
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--sprocket", type=Path, default=SPROCKET, help="the sprocket binary (with TLS)")
    ap.add_argument("--loadgen", type=Path, default=LOADGEN)
    ap.add_argument("--no-rt", dest="rt", action="store_false")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", type=Path, metavar="DIR", help="re-render DIR/runs.jsonl and exit")
    a = ap.parse_args()
    if a.table:
        runs = [json.loads(l) for l in open(a.table / "runs.jsonl") if l.strip()]
        meta = json.load(open(a.table / "meta.json"))
        md = render(runs, meta)
        (a.table / "results.md").write_text(md + "\n")
        print(md)
        return 0
    for opt in ("kinds", "transports", "keys", "servers"):
        setattr(a, opt, [x for x in getattr(a, opt).split(",") if x])
    allowed = {"kinds": KINDS, "transports": ("tls", "plain"), "keys": tuple(KEYS), "servers": SERVERS}
    for opt, ok in allowed.items():
        for x in getattr(a, opt):
            if x not in ok:
                sys.exit(f"--{opt}: unknown {x!r} (one of {', '.join(ok)})")
    check(a)
    # Children inherit it: uWS must hold the idle run's connections too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if max(a.idle_conns, a.handshakes) + 100 > hard:
        sys.exit(f"the open-file limit {hard} is below the connections asked for")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="tls-bench-"))
    try:
        chains = {k: make_chain(tmp / k, k) for k in a.keys} if "tls" in a.transports else {}
        a.out.mkdir(parents=True, exist_ok=True)
        for f in ("servers.log", "loadgen.log", "runs.jsonl", "results.md", "runs.csv"):
            (a.out / f).unlink(missing_ok=True)
        meta = meta_info(a)
        # What each server negotiates with the load tool's offer, once.
        meta["tls_probe"] = []
        for k in (a.keys if "tls" in a.transports else []):
            for sv in a.servers:
                with open(a.out / "servers.log", "ab") as log:
                    srv = Server(sv, chains[k], a, log)
                    try:
                        pr = probe(srv, chains[k])
                    finally:
                        srv.stop()
                if pr.get("rc") or pr.get("Verification") != "OK":
                    raise RuntimeError(f"TLS probe of {sv} with the {k} chain failed: {pr}")
                meta["tls_probe"].append({"server": sv, "variant": f"tls-{k}", **pr})
        runs = []
        t_start = time.time()
        for rnd in range(1, a.rounds + 1):
            for kind in a.kinds:
                for transport, key in variants(kind, a):
                    order = a.servers if rnd % 2 else a.servers[::-1]
                    for sv in order:
                        r = run_one(sv, kind, transport, key, chains, a, a.out)
                        r["round"] = rnd
                        runs.append(r)
                        with open(a.out / "runs.jsonl", "a") as f:
                            f.write(json.dumps(r) + "\n")
                        main_m = "hs" if kind in ("handshake",) else "rss" if kind == "idle" else "rate"
                        print(f"[{time.time() - t_start:5.0f}s] round {rnd} {sv:8} {kind:9} {r['variant']:7} "
                              f"ok={r.get('ok')} {METRICS[main_m]}={fmt(metric(r, main_m))} "
                              f"cpu={fmt(metric(r, 'hscpu' if kind in ('handshake', 'idle') else 'cpu'))} "
                              f"{r.get('error') or '; '.join(r.get('problems') or [])}", flush=True)
        meta["run_minutes"] = round((time.time() - t_start) / 60, 1)
        json.dump(meta, open(a.out / "meta.json", "w"), indent=1)
        write_csv(runs, a.out / "runs.csv")
        md = render(runs, meta)
        (a.out / "results.md").write_text(md + "\n")
        print(md)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
