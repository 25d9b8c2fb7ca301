#!/usr/bin/env python3
"""GRIP / WebSocket-over-HTTP: sprocket's --grip-route next to Pushpin 1.36.

Three measurements, each on a fresh server, rounds interleaving sprocket and
Pushpin (the order alternates per round):

    echo    closed-loop round trips through the backend: 100 WebSocket
            clients on /gecho, each sends a 32-byte text and waits for its
            echo (loadgen echo --window 1); msgs/s, proxy CPU per message
    fanout  1,000 clients on /gsub, subscribed to channel `bench` by the
            backend's OPEN answer (c:{"type":"subscribe",...}); GRIP publishes
            over HTTP at a fixed rate to the server's publish endpoint
            (loadgen fanout --flavour grip --publish-url); deliveries/s,
            loss, latency, proxy CPU per delivery
    idle    RSS of the proxy (all its processes) before and with 5,000 idle
            GRIP connections on /gecho (loadgen connect); bytes per connection

The backend is bench/grip/backend.rs (std-only Rust, keep-alive, a thread
per connection), the same binary for both servers, pinned with the load tool
to core 1; the proxy (sprocket, or all of Pushpin's processes: the pushpin
runner, condure, pushpin-proxy, pushpin-handler, and zurl) to core 0. With
--rt (default) everything runs SCHED_FIFO 10 (started under chrt, so every
thread and child inherits it): the machine is shared with other work.

    python3 bench/grip_bench.py                 # 3 rounds, about 6 minutes
    python3 bench/grip_bench.py --rounds 1 --duration 2   # smoke
    python3 bench/grip_bench.py --table DIR     # re-render DIR/runs.jsonl

Writes DIR/runs.jsonl (one JSON object per run, the load tool's line plus
what this script measured), DIR/runs.csv, DIR/meta.json and DIR/results.md;
default DIR docs/benchmarks-data/grip-20261202/. Every process started is
stopped at the end, also on error or Ctrl-C.
"""

import argparse
import csv
import datetime
import json
import os
import platform
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
SPROCKET = ROOT / "target/release/sprocket"
LOADGEN = ROOT / "target/bench/release/loadgen"
BACKEND_SRC = ROOT / "bench/grip/backend.rs"
BACKEND = ROOT / "target/bench/grip-backend"
OUT = ROOT / "docs/benchmarks-data/grip-20261202"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVERS = ("sprocket", "pushpin")
# Pushpin's handler [handler] message_rate / message_hwm. Debian ships
# 2500 / 25000: at most 2,500 messages a second go out to clients (every
# delivery counts), the rest wait, up to 25,000, 10 s at that rate. The
# benchmark raises both (--pushpin-message-rate) so that fan-out measures
# Pushpin's capacity, not its throttle.
MESSAGE_RATE = [1_000_000, 10_000_000]

LIVE = []  # every Popen started, stopped in reverse order at the end


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, procs, what, limit=20):
    deadline = time.time() + limit
    while True:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited at start (rc {p.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{what} does not listen on {port}")
            time.sleep(0.05)


def start(cmd, core, rt, log, env=None):
    pre = (["chrt", "-f", "10"] if rt else []) + ["taskset", "-c", str(core)]
    p = subprocess.Popen(pre + cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         env=env or os.environ, start_new_session=True)
    LIVE.append(p)
    return p


def children(pid):
    """Pids of all descendants of `pid` (from /proc/*/stat ppid)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
                kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return "?"


def rss(pid):
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE
    except OSError:
        return 0


def proc_cpu_s(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK


def cpu_busy_s():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK


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
    # Children that outlived their parent are in the same group.
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


# --- the servers ----------------------------------------------------------

class Sprocket:
    name = "sprocket"

    def __init__(self, backend_port, rt, log):
        self.port, self.admin = free_port(), free_port()
        be = f"http://127.0.0.1:{backend_port}"
        self.proc = start([str(SPROCKET), "--listen", f"127.0.0.1:{self.port}",
                           "--admin-listen", f"127.0.0.1:{self.admin}",
                           "--ping-interval", "0", "--max-connections", "15000",
                           "--grip-route", f"/gecho={be}/gecho", "--grip-route", f"/gsub={be}/gsub"],
                          0, rt, log, env=dict(os.environ, RUST_LOG="warn"))
        wait_port(self.port, [self.proc], "sprocket")
        wait_port(self.admin, [self.proc], "sprocket admin")
        self.publish_url = f"http://127.0.0.1:{self.admin}/publish/"

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        stop(self.proc)


class Pushpin:
    """zurl + pushpin (runner, condure, pushpin-proxy, pushpin-handler) with
    a private rundir and ports, Debian's settings otherwise."""
    name = "pushpin"

    def __init__(self, backend_port, rt, log):
        self.dir = Path(tempfile.mkdtemp(prefix="grip-pushpin-"))
        d = self.dir
        (d / "run").mkdir()
        (d / "log").mkdir()
        internal = Path("/usr/lib/pushpin/internal.conf").read_text()
        (d / "internal.conf").write_text(internal.replace("/var/run/zurl", str(d / "run")))
        (d / "zurl.conf").write_text(f"""[General]
instance_id=grip-bench
in_spec=ipc://{d}/run/zurl-in
in_stream_spec=ipc://{d}/run/zurl-in-stream
out_spec=ipc://{d}/run/zurl-out
in_req_spec=ipc://{d}/run/zurl-req
ipc_file_mode=600
defpolicy=allow
allow=
deny=
max_open_requests=2000
buffer_size=200000
timeout=600
in_hwm=1000
out_hwm=1000
""")
        self.port, self.pub = free_port(), free_port()
        # The handler's push_in (ZeroMQ PULL), SUB and command ports: moved.
        push_in, push_sub, command = free_port(), free_port(), free_port()
        # Debian's /etc/pushpin/pushpin.conf, with paths and ports moved and
        # client_maxconn raised for the idle run.
        (d / "pushpin.conf").write_text(f"""[global]
include={d}/internal.conf
rundir={d}/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120
[runner]
services=condure,pushpin-proxy,pushpin-handler
http_port={self.port}
logdir={d}/log
log_level=2
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl
[proxy]
routesfile={d}/routes
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
sig_iss=pushpin
sig_key=changeme
upstream_key=
updates_check=off
organization_name=
[handler]
push_in_spec=tcp://127.0.0.1:{push_in}
push_in_sub_specs=tcp://127.0.0.1:{push_sub}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={self.pub}
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{d}/run/pushpin-stats
command_spec=tcp://127.0.0.1:{command}
message_rate={MESSAGE_RATE[0]}
message_hwm={MESSAGE_RATE[1]}
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
""")
        (d / "routes").write_text(f"* 127.0.0.1:{backend_port},over_http\n")
        self.zurl = start(["zurl", f"--config={d}/zurl.conf"], 0, rt, log)
        self.proc = start(["pushpin", "--config", str(d / "pushpin.conf"),
                           "--port", f"127.0.0.1:{self.port}", "-m"], 0, rt, log)
        wait_port(self.port, [self.proc, self.zurl], "pushpin")
        wait_port(self.pub, [self.proc, self.zurl], "pushpin publish")
        self.publish_url = f"http://127.0.0.1:{self.pub}/publish/"
        # The runner starts its services as children; wait for all three.
        deadline = time.time() + 10
        while True:
            names = sorted(comm(p) for p in children(self.proc.pid))
            if all(any(n.startswith(w) for n in names) for w in ("condure", "pushpin-proxy", "pushpin-handl")):
                break
            if time.time() > deadline:
                raise RuntimeError(f"pushpin services did not start: {names}")
            time.sleep(0.1)
        time.sleep(0.5)

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid) + [self.zurl.pid]

    def stop(self):
        stop(self.proc)
        stop(self.zurl)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- runs -----------------------------------------------------------------

def loadgen(args, rt, timeout=300):
    pre = (["chrt", "-f", "10"] if rt else []) + ["taskset", "-c", "1"]
    out = subprocess.run(pre + [str(LOADGEN)] + args, capture_output=True, text=True, timeout=timeout)
    try:
        res = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"ok": False, "error": f"no JSON from loadgen (exit {out.returncode}): {out.stderr[-400:]}"}
    return res, out.stderr


def run_one(server_cls, scenario, a, backend, logdir):
    log = open(logdir / "servers.log", "ab")
    log.write(f"### {server_cls.name} {scenario}\n".encode())
    log.flush()
    srv = None
    try:
        srv = server_cls(backend["port"], a.rt, log)
        pids = srv.pids()
        names = {str(p): comm(p) for p in pids}
        common = ["--server-pid", ",".join(map(str, pids)), "--aux-pid", str(backend["pid"]),
                  "--label", f"{server_cls.name}/{scenario}", "--quiet"]
        rss0 = {str(p): rss(p) for p in pids}
        busy0, own0, t0 = cpu_busy_s(), sum(map(proc_cpu_s, pids)), time.time()
        be0 = backend_stats(backend["port"])
        if scenario == "echo":
            res, err = loadgen(["echo", "--addr", f"127.0.0.1:{srv.port}", "--path", "/gecho",
                                "--conns", str(a.echo_conns), "--window", "1", "--size", "32",
                                "--warmup", "1", "--duration", str(a.duration)] + common, a.rt)
        elif scenario.startswith("fanout"):
            rate = int(scenario.split("@")[1])
            res, err = loadgen(["fanout", "--addr", f"127.0.0.1:{srv.port}", "--path", "/gsub",
                                "--flavour", "grip", "--channel", "bench",
                                "--publish-url", srv.publish_url, "--subs", str(a.subs),
                                "--pubs", str(a.pubs), "--publish-batch", str(a.batch),
                                "--rate", str(rate), "--size", "32", "--tick-ms", "10",
                                "--max-p99-ms", "1000",
                                "--warmup", "1", "--duration", str(a.duration)] + common, a.rt)
        elif scenario == "idle":
            # Peak RSS of each process while the load tool holds them open.
            res, err = idle_run(srv, pids, common, a)
        else:
            raise ValueError(scenario)
        busy1, own1, t1 = cpu_busy_s(), sum(map(proc_cpu_s, pids)), time.time()
        be1 = backend_stats(backend["port"])
        res["proc_names"] = names
        res["rss_start_each"] = rss0
        res["backend_requests"] = be1[0] - be0[0]
        res["backend_events"] = be1[1] - be0[1]
        res["others_cores"] = round(max((busy1 - busy0) - (own1 - own0), 0) / (t1 - t0), 3)
        res["run_s"] = round(t1 - t0, 2)
    finally:
        if srv:
            srv.stop()
        log.close()
    with open(logdir / "loadgen.log", "a") as f:
        f.write(f"### {server_cls.name} {scenario}\n{err}\n")
    res.update(server=server_cls.name, scenario=scenario)
    return res


def idle_run(srv, pids, common, a):
    pre = (["chrt", "-f", "10"] if a.rt else []) + ["taskset", "-c", "1"]
    cmd = pre + [str(LOADGEN), "connect", "--addr", f"127.0.0.1:{srv.port}", "--path", "/gecho",
                 "--conns", str(a.idle_conns), "--concurrency", "100", "--hold", "3"] + common
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    LIVE.append(p)
    peak = {str(x): 0 for x in pids}
    while p.poll() is None:
        for x in pids:
            peak[str(x)] = max(peak[str(x)], rss(x))
        time.sleep(0.1)
    LIVE.remove(p)
    out, err = p.communicate()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"ok": False, "error": f"no JSON from loadgen: {err[-400:]}"}
    res["rss_peak_each"] = peak
    return res, err


def backend_stats(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        j = json.loads(data.split(b"\r\n\r\n", 1)[1])
        return j["requests"], j["events"]
    except (OSError, ValueError, KeyError, IndexError):
        return 0, 0


# --- the table ------------------------------------------------------------

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


def cell(m, digits=2):
    if m is None:
        return "—"
    return f"{fmt(m[0], digits)} ({fmt(m[1], digits)}–{fmt(m[2], digits)})"


def metric(r, key):
    sc = r["scenario"]
    # A fan-out run that failed its p99 bound still measured what was
    # delivered (an overloaded server); other failed runs measured nothing.
    overloaded = sc.startswith("fanout") and r.get("steps")
    if not r.get("ok", False) and not overloaded and key not in ("lost", "ok"):
        return None
    if sc == "echo":
        return {"rate": r.get("msgs_per_s"), "cpu": r.get("server_cpu_us_per_msg"),
                "aux": r.get("aux_cpu_us_per_msg"), "p99": r.get("rtt_p99_us"),
                "p50": r.get("rtt_p50_us"), "util": r.get("server_cpu_util")}.get(key)
    if sc.startswith("fanout"):
        st = (r.get("steps") or [{}])[0]
        return {"rate": st.get("deliveries_per_s"), "cpu": st.get("server_cpu_us_per_delivery"),
                "p99": st.get("lat_p99_us"), "p50": st.get("lat_p50_us"), "lost": st.get("lost"),
                "pub": st.get("publish_per_s"), "util": st.get("server_cpu_util")}.get(key)
    if sc == "idle":
        if key == "rss":
            return r.get("rss_per_conn")
        if key == "rss0":
            return r.get("rss_before")
        if key == "rss1":
            return r.get("rss_open")
        if key == "hs":
            return r.get("handshakes_per_s")
    return None


def ratio_cells(runs, scenario, key):
    """Median over rounds of sprocket ÷ Pushpin, each round's pair."""
    by = {}
    for r in runs:
        if r["scenario"] == scenario:
            by.setdefault(r["round"], {})[r["server"]] = metric(r, key)
    rs = [v["sprocket"] / v["pushpin"] for v in by.values()
          if v.get("sprocket") is not None and v.get("pushpin")]
    m = med(rs)
    return f"{m[0]:.2f}× ({m[1]:.2f}–{m[2]:.2f})" if m else "—"


def render(runs, meta):
    out = [f"GRIP benchmark, {meta.get('stamp', '?')}: {meta.get('rounds', '?')} rounds, "
           f"{meta.get('duration', '?')} s measured per run. Cells: median (min–max) over rounds; "
           "÷: sprocket over Pushpin in the same round, median (min–max) of the rounds' ratios.", ""]
    scen = [s for s in dict.fromkeys(r["scenario"] for r in runs)]
    valid = lambda s, sv: sum(1 for r in runs if r["scenario"] == s and r["server"] == sv and r.get("ok"))
    total = lambda s, sv: sum(1 for r in runs if r["scenario"] == s and r["server"] == sv)
    def col(s, sv, key, digits=2):
        return cell(med([metric(r, key) for r in runs if r["scenario"] == s and r["server"] == sv]), digits)
    if "echo" in scen:
        out += ["#### Round trips: closed loop, 32-byte text, through the backend", "",
                "| server | msgs/s | proxy CPU µs/msg | backend CPU µs/msg | RTT p50 µs | RTT p99 µs | proxy CPU busy | valid runs |",
                "|---|---|---|---|---|---|---|---|"]
        for sv in SERVERS:
            out.append(f"| {sv} | {col('echo', sv, 'rate')} | {col('echo', sv, 'cpu')} | {col('echo', sv, 'aux')} | "
                       f"{col('echo', sv, 'p50')} | {col('echo', sv, 'p99')} | {col('echo', sv, 'util')} | "
                       f"{valid('echo', sv)}/{total('echo', sv)} |")
        out.append(f"| **sprocket ÷ Pushpin** | {ratio_cells(runs, 'echo', 'rate')} | {ratio_cells(runs, 'echo', 'cpu')} | "
                   f"{ratio_cells(runs, 'echo', 'aux')} | {ratio_cells(runs, 'echo', 'p50')} | "
                   f"{ratio_cells(runs, 'echo', 'p99')} | | |")
        out.append("")
    for s in scen:
        if not s.startswith("fanout"):
            continue
        rate = s.split("@")[1]
        out += [f"#### Fan-out: GRIP publishes at {rate}/s to 1,000 subscribers", "",
                "| server | deliveries/s | publishes/s done | lost | proxy CPU µs/delivery | p50 ms | p99 ms | proxy CPU busy | runs with p99 < 1 s, no loss |",
                "|---|---|---|---|---|---|---|---|---|"]
        for sv in SERVERS:
            lost = [metric(r, "lost") for r in runs if r["scenario"] == s and r["server"] == sv]
            p50 = med([metric(r, "p50") for r in runs if r["scenario"] == s and r["server"] == sv])
            p99 = med([metric(r, "p99") for r in runs if r["scenario"] == s and r["server"] == sv])
            ms = lambda m: cell((m[0] / 1e3, m[1] / 1e3, m[2] / 1e3), 1) if m else "—"
            out.append(f"| {sv} | {col(s, sv, 'rate')} | {col(s, sv, 'pub')} | "
                       f"{sum(x or 0 for x in lost)} | {col(s, sv, 'cpu')} | {ms(p50)} | {ms(p99)} | "
                       f"{col(s, sv, 'util')} | {valid(s, sv)}/{total(s, sv)} |")
        out.append(f"| **sprocket ÷ Pushpin** | {ratio_cells(runs, s, 'rate')} | | | {ratio_cells(runs, s, 'cpu')} | "
                   f"{ratio_cells(runs, s, 'p50')} | {ratio_cells(runs, s, 'p99')} | | |")
        out.append("")
    if "idle" in scen:
        out += [f"#### Idle GRIP connections: RSS of the proxy (all its processes)", "",
                "| server | RSS before | RSS with the connections open | bytes per connection | handshakes/s | valid runs |",
                "|---|---|---|---|---|---|"]
        for sv in SERVERS:
            mb = lambda k: (lambda m: cell((m[0] / 2**20, m[1] / 2**20, m[2] / 2**20), 1) + " MiB" if m else "—")(
                med([metric(r, k) for r in runs if r["scenario"] == "idle" and r["server"] == sv]))
            out.append(f"| {sv} | {mb('rss0')} | {mb('rss1')} | {col('idle', sv, 'rss', 0)} | {col('idle', sv, 'hs')} | "
                       f"{valid('idle', sv)}/{total('idle', sv)} |")
        out.append(f"| **sprocket ÷ Pushpin** | {ratio_cells(runs, 'idle', 'rss0')} | {ratio_cells(runs, 'idle', 'rss1')} | "
                   f"{ratio_cells(runs, 'idle', 'rss')} | {ratio_cells(runs, 'idle', 'hs')} | |")
        out.append("")
        # Per process (Pushpin): peak RSS growth during the idle run.
        per = {}
        for r in runs:
            if r["scenario"] == "idle" and r["server"] == "pushpin" and r.get("rss_peak_each"):
                for pid, peak in r["rss_peak_each"].items():
                    name = r["proc_names"].get(pid, "?")
                    per.setdefault(name, []).append((peak - r["rss_start_each"].get(pid, 0)) / max(r.get("opened", 1), 1))
        if per:
            out.append("Pushpin's growth per connection by process (peak RSS during the run − RSS at start, "
                       "÷ connections; median): " + ", ".join(
                           f"{n} {statistics.median(v):,.0f} B" for n, v in sorted(per.items())) + ".")
            out.append("")
    return "\n".join(out)


def write_csv(runs, path):
    keys = ["round", "server", "scenario", "ok"]
    extra = ["rate", "cpu", "aux", "p50", "p99", "lost", "pub", "util", "rss", "rss0", "rss1", "hs"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + extra + ["others_cores"])
        for r in runs:
            w.writerow([r.get(k) for k in keys] + [metric(r, k) for k in extra] + [r.get("others_cores")])


def meta_info(a):
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
    return {
        "stamp": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "rounds": a.rounds, "duration": a.duration, "rt": a.rt,
        "pushpin_message_rate": MESSAGE_RATE, "pushpin_max_rate": a.pushpin_max_rate, "subs": a.subs, "pubs": a.pubs, "publish_batch": a.batch, "fanout_rates": a.rates,
        "echo_conns": a.echo_conns, "idle_conns": a.idle_conns,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu[0] if cpu else None, "kernel": platform.release()},
        "sprocket_commit": ver(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "pushpin": ver(["dpkg-query", "-W", "-f", "${Version}\n", "pushpin"]),
        "condure": ver(["dpkg-query", "-W", "-f", "${Version}\n", "condure"]),
        "zurl": ver(["dpkg-query", "-W", "-f", "${Version}\n", "zurl"]),
        "rustc": ver(["rustc", "--version"]),
    }


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", "bench/loadgen/Cargo.toml"],
                   cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target/bench")))
    BACKEND.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rustc", "-O", "--edition", "2021", str(BACKEND_SRC), "-o", str(BACKEND)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    ap.add_argument("--scenarios", default="echo,fanout,idle")
    ap.add_argument("--rates", default="5,20,1000", help="fan-out publish rates (msgs/s)")
    ap.add_argument("--pushpin-max-rate", type=int, default=20,
                    help="fan-out rates above this run against sprocket only (Pushpin 1.36 "
                         "stops accepting connections after being overloaded far past its capacity)")
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--pubs", type=int, default=4, help="HTTP publish connections")
    ap.add_argument("--batch", type=int, default=10, help="most items per publish request")
    ap.add_argument("--echo-conns", type=int, default=100)
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--pushpin-message-rate", type=int, default=MESSAGE_RATE[0],
                    help="Pushpin's message_rate (Debian: 2500); message_hwm is 10 times it")
    ap.add_argument("--no-rt", dest="rt", action="store_false")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", type=Path, help="re-render DIR/runs.jsonl and exit")
    a = ap.parse_args()
    if a.table:
        runs = [json.loads(l) for l in open(a.table / "runs.jsonl")]
        meta = json.load(open(a.table / "meta.json"))
        print(render(runs, meta))
        return 0
    MESSAGE_RATE[:] = [a.pushpin_message_rate, 10 * a.pushpin_message_rate]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if not a.no_build:
            build()
        a.out.mkdir(parents=True, exist_ok=True)
        logdir = a.out
        for f in ("servers.log", "loadgen.log", "runs.jsonl"):
            (logdir / f).unlink(missing_ok=True)
        meta = meta_info(a)
        blog = open(logdir / "servers.log", "ab")
        bport = free_port()
        bproc = start([str(BACKEND), f"127.0.0.1:{bport}", "bench"], 1, a.rt, blog)
        wait_port(bport, [bproc], "backend")
        backend = {"port": bport, "pid": bproc.pid}
        scenarios = []
        for s in a.scenarios.split(","):
            if s == "fanout":
                scenarios += [f"fanout@{r}" for r in a.rates.split(",")]
            else:
                scenarios.append(s)
        runs = []
        t_start = time.time()
        for rnd in range(1, a.rounds + 1):
            for sc in scenarios:
                order = [Sprocket, Pushpin] if rnd % 2 else [Pushpin, Sprocket]
                for cls in order:
                    if cls is Pushpin and sc.startswith("fanout") and int(sc.split("@")[1]) > a.pushpin_max_rate:
                        continue
                    r = run_one(cls, sc, a, backend, logdir)
                    r["round"] = rnd
                    runs.append(r)
                    with open(logdir / "runs.jsonl", "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(f"round {rnd} {cls.name:8} {sc:12} ok={r.get('ok')} rate={metric(r, 'rate')} "
                          f"cpu={metric(r, 'cpu')} rss={metric(r, 'rss')} {r.get('problems') or r.get('error') or ''}",
                          flush=True)
        meta["run_minutes"] = round((time.time() - t_start) / 60, 1)
        json.dump(meta, open(logdir / "meta.json", "w"), indent=1)
        write_csv(runs, logdir / "runs.csv")
        table = render(runs, meta)
        (logdir / "results.md").write_text(table + "\n")
        # Pushpin logs an INFO line per subscription and request (MBs a
        # run): keep the other lines only.
        blog.close()
        with open(logdir / "servers.log", errors="replace") as f, open(logdir / "servers-noninfo.log", "w") as g:
            g.writelines(l for l in f if not l.startswith("[INFO]"))
        (logdir / "servers.log").unlink()
        print(table)
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
