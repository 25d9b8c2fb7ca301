#!/usr/bin/env python3
"""Pusher Channels: sprocket's Pusher route next to sockudo (crates.io, a Rust
Pusher server) and next to sprocket's own WAMP v2 route, the same load tool,
the same rounds (issue #14).

    bench/peers/setup.sh                 # builds sockudo into the cache, loadgen
    python3 bench/pusher_bench.py --rt [--rounds 3] [--out DIR]
    python3 bench/pusher_bench.py --rounds 1 --duration 2      # smoke
    python3 bench/pusher_bench.py --rt --only fanout --max-lag 100
    python3 bench/pusher_bench.py --table DIR                   # re-render DIR

Servers (each run a fresh process on 127.0.0.1, a free port):
  sprocket-pusher  target/release/sprocket --pusher-app 1:key:secret, measured
                   on /app/key (WebSocket) and POST /apps/1/events (HTTP API)
  sprocket-wamp    the same binary and flags, measured on /wamp (WAMP v2 JSON)
  sockudo          sockudo --config FILE (written here: one app 1/key/secret,
                   local adapter, memory app manager and cache, no queue, no
                   metrics, no rate limiter)
Scenarios (loadgen modes; Pusher modes for sprocket-pusher and sockudo, the
wamp2-* modes for sprocket-wamp):
  fanout       1,000 subscribers of one channel / topic; publishers as fast as
               a lag bound of 10 events (to the slowest subscriber) allows:
               Pusher: 10 keep-alive HTTP connections POSTing signed events,
               one request in flight each; WAMP: one session PUBLISHing
  fanout-rate  the same at a fixed 100 events/s (100,000 deliveries/s)
  connect      5,000 connections, 100 opening at a time, to
               pusher:connection_established / WAMP WELCOME
  idle         1,000 and 5,000 connections held 2 s (Pusher: each subscribed
               to one channel; WAMP: sessions, no subscription): server RSS
               per connection
The server is pinned to core 1 (taskset -c 1), the load tool to core 0. With
--rt both run SCHED_FIFO 10 (chrt): for sprocket its one thread, for sockudo
every thread of its tokio runtime (set after it listens; threads it starts
later inherit it). Rounds interleave the servers (the order rotates per
round). Reported: medians over rounds (min-max) and the medians of the
per-round ratios sprocket-pusher / sockudo and sprocket-pusher /
sprocket-wamp. Writes runs.jsonl (every loadgen JSON line plus what this
script measured, with the load average before and after each run),
results.md, meta.json and the servers' and load tool's logs to --out
(default target/bench-results/pusher-STAMP). Every process started is stopped
at the end, also on error or Ctrl-C.
"""

import argparse
import datetime
import json
import os
import platform
import resource
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
LOADGEN = ROOT / "target" / "bench" / "release" / "loadgen"
SPROCKET = ROOT / "target" / "release" / "sprocket"
SOCKUDO = CACHE / "sockudo" / "bin" / "sockudo"
SERVERS = ["sprocket-pusher", "sprocket-wamp", "sockudo"]
APP_ID, APP_KEY, APP_SECRET = "1", "key", "secret"
SERVER_CPU, LOADGEN_CPU = "1", "0"

LIVE = []  # processes to stop on the way out


def scenarios(a):
    d = str(a.duration)
    pusher_auth = ["--app-id", APP_ID, "--key", APP_KEY, "--secret", APP_SECRET]
    fan = ["--subs", "1000", "--max-lag", str(a.max_lag), "--size", "32", "--warmup", "2", "--duration", d]
    out = [
        dict(key="fanout", title=f"Fan-out: 1,000 subscribers of one channel, as fast as a lag bound of {a.max_lag} events allows, 32-byte data",
             pusher=["pusher-fanout", "--pubs", "10", "--rate", "0"] + fan + pusher_auth,
             wamp=["wamp2-fanout", "--rate", "0"] + fan,
             metrics=[("deliveries_per_s", "deliveries/s", "high"),
                      ("server_cpu_us_per_delivery", "server CPU µs/delivery", "low"),
                      ("server_cpu_util", "server CPU busy", None),
                      ("loadgen_cpu_util", "loadgen CPU busy", None),
                      ("lat_p50_us", "p50 delivery µs", "low"), ("lat_p99_us", "p99 delivery µs", "low")]),
        dict(key="fanout-rate", title="Fan-out at a fixed 100 events/s to 1,000 subscribers (100,000 deliveries/s), 32-byte data",
             pusher=["pusher-fanout", "--pubs", "10", "--rate", "100"] + fan + pusher_auth,
             wamp=["wamp2-fanout", "--rate", "100"] + fan,
             metrics=[("deliveries_per_s", "deliveries/s", "high"),
                      ("server_cpu_us_per_delivery", "server CPU µs/delivery", "low"),
                      ("server_cpu_util", "server CPU busy", None),
                      ("lat_p50_us", "p50 delivery µs", "low"), ("lat_p99_us", "p99 delivery µs", "low")]),
        dict(key="connect", title="Connect: 5,000 connections, 100 opening at a time (Pusher: to connection_established; WAMP: to WELCOME)",
             pusher=["pusher-connect", "--conns", "5000", "--concurrency", "100", "--hold", "0.5"] + pusher_auth,
             wamp=["wamp2-idle", "--sessions", "5000", "--concurrency", "100", "--hold", "0.5"],
             metrics=[("conns_per_s", "connections/s", "high"),
                      ("cpu_us_per_conn", "server CPU µs/connection", "low"),
                      ("server_cpu_util", "server CPU busy", None),
                      ("loadgen_cpu_util", "loadgen CPU busy", None),
                      ("rss_per_conn", "server RSS B/connection (unsubscribed)", "low")]),
    ]
    for n in (1000, 5000):
        out.append(dict(
            key=f"idle{n // 1000}k",
            title=f"Idle: {n:,} connections held 2 s (Pusher: each subscribed to one channel; WAMP: sessions)",
            pusher=["pusher-idle", "--conns", str(n), "--concurrency", "100", "--hold", "2"] + pusher_auth,
            wamp=["wamp2-idle", "--sessions", str(n), "--concurrency", "100", "--hold", "2"],
            metrics=[("rss_per_conn", "server RSS B/connection", "low"),
                     ("rss_before", "server RSS before, bytes", None),
                     ("rss_open", "server RSS with them open, bytes", None),
                     ("cpu_us_per_conn", "server CPU µs/connection opened", "low")]))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_s():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop(p, timeout=10):
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


def sockudo_config(port):
    """One app (id/key/secret as sprocket's), everything in process: local
    adapter, memory app manager and cache, no queue (webhooks), no metrics
    endpoint, no rate limiter (its defaults: 20 WebSocket connects and 100
    API requests a minute per IP), app limits raised above what is opened."""
    return f"""\
host = "127.0.0.1"
port = {port}
debug = false
mode = "production"

[adapter]
driver = "local"

[app_manager]
driver = "memory"

[[app_manager.array.apps]]
id = "{APP_ID}"
key = "{APP_KEY}"
secret = "{APP_SECRET}"
enabled = true
max_connections = 100000
enable_client_messages = false
max_client_events_per_second = 100

[cache]
driver = "memory"

[queue]
driver = "none"

[metrics]
enabled = false

[rate_limiter]
enabled = false
"""


class Server:
    """A fresh server pinned to SERVER_CPU; stopped by its process group."""

    def __init__(self, name, logdir, a):
        self.name = name
        self.port = free_port()
        self.log = open(logdir / f"server-{name}.log", "ab")
        self.tmp = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKUDO_")}
        env["RUST_LOG"] = "warn"
        cwd = None
        if name.startswith("sprocket"):
            cmd = [str(SPROCKET), "--listen", f"127.0.0.1:{self.port}", "--ping-interval", "0",
                   "--max-connections", "15000", "--pusher-app", f"{APP_ID}:{APP_KEY}:{APP_SECRET}"]
        else:
            self.tmp = tempfile.TemporaryDirectory(prefix="pusher-sockudo-")
            cwd = self.tmp.name
            conf = Path(cwd) / "sockudo.toml"
            conf.write_text(sockudo_config(self.port))
            cmd = [str(SOCKUDO), "--config", str(conf)]
        pre = (["nice", "-n", "-10"] if a.rt and os.geteuid() == 0 else []) + ["taskset", "-c", SERVER_CPU]
        self.log.write(f"$ {' '.join(pre + cmd)}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(pre + cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=raise_nofile, cwd=cwd,
                                     start_new_session=True)
        LIVE.append(self.proc)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{name} exited at start (see {self.log.name})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} does not listen on {self.port}")
                time.sleep(0.05)
        if a.rt:
            # sprocket: its one thread; sockudo: every thread of its runtime.
            flags = ["-a"] if name == "sockudo" else []
            subprocess.run(["chrt", *flags, "-f", "-p", "10", str(self.proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        self.pid = self.proc.pid
        self.threads = len(os.listdir(f"/proc/{self.pid}/task"))

    def stop(self):
        stop(self.proc)
        if self.proc in LIVE:
            LIVE.remove(self.proc)
        self.log.close()
        if self.tmp:
            self.tmp.cleanup()


def loadgen(args, a, logdir, timeout=240):
    pre = (["chrt", "-f", "10"] if a.rt else []) + ["taskset", "-c", LOADGEN_CPU]
    cmd = pre + [str(LOADGEN)] + args
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=raise_nofile, start_new_session=True)
    LIVE.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        out, err = p.communicate()
        err += f"\n(killed after {timeout} s)"
    LIVE.remove(p)
    with open(logdir / "loadgen.log", "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{err}\n")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": f"no JSON from loadgen (exit {p.returncode}): {err[-400:]}"}


def run_one(name, sc, logdir, rnd, a):
    load0 = loadavg()
    busy0, t0 = cpu_busy_s(), time.time()
    srv = Server(name, logdir, a)
    try:
        args = (sc["wamp"] if name == "sprocket-wamp" else sc["pusher"]) + [
            "--addr", f"127.0.0.1:{srv.port}", "--server-pid", str(srv.pid),
            "--label", f"{name}/{sc['key']}/{rnd}"]
        r = loadgen(args, a, logdir)
        r["server_threads"] = srv.threads
    finally:
        srv.stop()
    wall = time.time() - t0
    # Normalised names: WAMP's sessions are the connections here.
    for src, dst in [("sessions_per_s", "conns_per_s"), ("rss_per_session", "rss_per_conn"),
                     ("server_cpu_us_per_session", "cpu_us_per_conn"), ("server_cpu_us_per_conn", "cpu_us_per_conn")]:
        if src in r and dst not in r:
            r[dst] = r[src]
    r["machine_busy_cores"] = round((cpu_busy_s() - busy0) / wall, 2)
    r["loadavg_before"], r["loadavg_after"] = load0, loadavg()
    r.update(server=name, scenario=sc["key"], round=rnd)
    return r


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def ratio_cell(runs, sc, key, num, den):
    """Median over rounds of num/den measured in the same round."""
    rs = []
    for rnd in sorted({r["round"] for r in runs}):
        vals = {}
        for r in runs:
            if r["round"] == rnd and r["scenario"] == sc and r.get("ok") and r.get(key) not in (None, 0):
                vals[r["server"]] = r[key]
        if num in vals and den in vals:
            rs.append(vals[num] / vals[den])
    if not rs:
        return "–", None
    m = statistics.median(rs)
    r = lambda x: f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"
    return f"{r(m)}× ({r(min(rs))}–{r(max(rs))})", m


def render(runs, meta, scs):
    out = []
    w = out.append
    w(f"Run {meta['date']} on {meta['machine']}; {meta['rounds']} interleaved rounds, fresh server per run, "
      f"server on core {SERVER_CPU}, loadgen on core {LOADGEN_CPU}, {'SCHED_FIFO (--rt)' if meta['rt'] else 'ordinary priority'}. "
      f"Median over valid runs (min–max, n); ratios: median of the per-round ratios (min–max).\n")
    for sc in scs:
        w(f"### {sc['title']}\n")
        w("| metric | sprocket Pusher | sprocket WAMP v2 | sockudo | Pusher ÷ sockudo | Pusher ÷ WAMP |")
        w("|---|---|---|---|---|---|")
        for key, label, better in sc["metrics"]:
            cells = []
            for s in SERVERS:
                vals = [r[key] for r in runs if r["server"] == s and r["scenario"] == sc["key"]
                        and r.get("ok") and r.get(key) is not None]
                if vals:
                    m = statistics.median(vals)
                    cells.append(f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))}, n={len(vals)})")
                else:
                    cells.append("no valid run")
            if better:
                r1 = ratio_cell(runs, sc["key"], key, "sprocket-pusher", "sockudo")[0]
                r2 = ratio_cell(runs, sc["key"], key, "sprocket-pusher", "sprocket-wamp")[0]
            else:
                r1 = r2 = ""
            w(f"| {label} | {cells[0]} | {cells[1]} | {cells[2]} | {r1} | {r2} |")
        bad = [r for r in runs if r["scenario"] == sc["key"] and not r.get("ok")]
        for r in bad:
            w(f"\nInvalid run {r['server']} round {r['round']}: {r.get('problems') or r.get('error')}")
        w("")
    busy = [r["machine_busy_cores"] for r in runs]
    la = [r["loadavg_before"][0] for r in runs] + [r["loadavg_after"][0] for r in runs]
    w(f"Machine busy (all processes, both cores) during the runs: median {statistics.median(busy):.2f} cores "
      f"(min {min(busy):.2f}, max {max(busy):.2f}) of {os.cpu_count()}. 1-minute load average before/after "
      f"the runs: min {min(la):.2f}, median {statistics.median(la):.2f}, max {max(la):.2f}.")
    return "\n".join(out)


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def on_sigterm(*_):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="fan-out measured seconds (after 2 s warm-up)")
    ap.add_argument("--only", help="comma-separated: fanout,fanout-rate,connect,idle (idle1k,idle5k)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="subset of " + ",".join(SERVERS))
    ap.add_argument("--rt", action="store_true", help="SCHED_FIFO 10 for the server and the load tool")
    ap.add_argument("--max-lag", type=int, default=10, help="fan-out lag bound, events (default 10)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", type=Path, help="re-render DIR/runs.jsonl (with DIR/meta.json) and exit")
    a = ap.parse_args()
    if a.table:
        meta = json.loads((a.table / "meta.json").read_text())
        runs = [json.loads(l) for l in open(a.table / "runs.jsonl") if l.strip()]
        a.duration, a.max_lag = meta.get("duration", a.duration), meta.get("max_lag", a.max_lag)
        keys = {r["scenario"] for r in runs}
        md = render(runs, meta, [s for s in scenarios(a) if s["key"] in keys])
        (a.table / "results.md").write_text(md + "\n")
        print(md)
        return
    servers = a.servers.split(",")
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"pusher_bench: unknown server {s}")
    needs = [(LOADGEN, "bench/peers/setup.sh (or cargo build --release in bench/loadgen with "
                       "CARGO_TARGET_DIR=target/bench)"), (SPROCKET, "cargo build --release")]
    if "sockudo" in servers:
        needs.append((SOCKUDO, "bench/peers/setup.sh"))
    for need, how in needs:
        if not need.exists():
            sys.exit(f"pusher_bench: {need} is missing: run {how}")
    only = set()
    for k in (a.only.split(",") if a.only else []):
        only |= {"idle1k", "idle5k"} if k == "idle" else {k}
    scs = [s for s in scenarios(a) if not only or s["key"] in only]
    if not scs:
        sys.exit(f"pusher_bench: --only {a.only} names no scenario")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = a.out or ROOT / "target" / "bench-results" / f"pusher-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    git = lambda *c: subprocess.run(["git", "-C", str(ROOT), *c], capture_output=True, text=True).stdout.strip()
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    meta = dict(date=stamp, rounds=a.rounds, duration=a.duration, max_lag=a.max_lag, rt=a.rt, servers=servers,
                machine=f"{os.cpu_count()} cores ({cpu_model}), Linux {platform.release()}",
                sprocket_commit=git("rev-parse", "HEAD"), sprocket_dirty=bool(git("status", "--porcelain")),
                sockudo=version([str(SOCKUDO), "--version"]) if "sockudo" in servers else None,
                sockudo_config=sockudo_config(0), rustc=version(["rustc", "--version"]),
                uptime_before=version(["uptime"]),
                scenarios={s["key"]: {"pusher": s["pusher"], "wamp": s["wamp"]} for s in scs})
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    runs = []
    try:
        with open(out / "runs.jsonl", "w") as f:
            for rnd in range(a.rounds):
                order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
                for sc in scs:
                    for name in order:
                        try:
                            r = run_one(name, sc, out, rnd, a)
                        except RuntimeError as e:  # a server that did not start
                            r = dict(ok=False, error=str(e), server=name, scenario=sc["key"], round=rnd,
                                     machine_busy_cores=0.0, loadavg_before=loadavg(), loadavg_after=loadavg())
                        runs.append(r)
                        f.write(json.dumps(r) + "\n")
                        f.flush()
                        brief = {k: r.get(k) for k in ["server", "scenario", "round", "ok", "deliveries_per_s",
                                                       "lat_p99_us", "conns_per_s", "rss_per_conn",
                                                       "server_cpu_util", "machine_busy_cores", "problems",
                                                       "error"] if r.get(k) not in (None, [])}
                        print(json.dumps(brief), flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started", file=sys.stderr)
    finally:
        stop_all()
    meta["uptime_after"] = version(["uptime"])
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    if not runs:
        sys.exit("pusher_bench: no run finished")
    md = render(runs, meta, scs)
    (out / "results.md").write_text(md + "\n")
    print(md)
    print(f"\n(written to {out})")


if __name__ == "__main__":
    main()
