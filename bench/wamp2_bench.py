#!/usr/bin/env python3
"""WAMP v2: sprocket's router against Crossbar (PyPI crossbar, the reference
router), the same load tool and clients, the same run (issue #13).

    bench/peers/setup.sh                 # installs crossbar, builds loadgen
    bench/wamp2_bench.py [--rounds 3] [--out DIR]

Scenarios (loadgen's wamp2-* modes, JSON serializer, realm1, /wamp):
  rpc     one callee echoing `bench.echo`, 10 callers x 16 calls in flight
  fanout  1,000 subscribers on one topic, one publisher as fast as a lag
          bound of 10 events (to the slowest subscriber) allows
  idle    1,000 sessions (HELLO -> WELCOME) held: server RSS per session
Each run starts a fresh server pinned to core 0 (crossbar: the controller
and its router worker, both counted), loadgen pinned to core 1; rounds
interleave sprocket, crossbar, sprocket, crossbar, ... Prints medians and
sprocket/crossbar ratios; writes runs.jsonl, results.md and meta.json to
--out (default target/bench-results/wamp2-STAMP).
"""

import argparse
import datetime
import json
import os
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
CROSSBAR = CACHE / "crossbar" / "bin" / "crossbar"
SERVERS = ["sprocket", "crossbar"]

SCENARIOS = [
    dict(key="rpc", title="RPC: 10 callers x 16 calls in flight, one callee (bench.echo), 32-byte arg",
         args=["wamp2-rpc", "--callers", "10", "--inflight", "16", "--size", "32",
               "--warmup", "1", "--duration", "5"],
         metrics=[("calls_per_s", "calls/s", "high"), ("server_cpu_us_per_call", "server CPU µs/call", "low"),
                  ("rtt_p50_us", "p50 RTT µs", "low"), ("rtt_p99_us", "p99 RTT µs", "low")]),
    dict(key="fanout", title="Fan-out: 1,000 subscribers, one publisher, lag bound 10 events, 32-byte arg",
         args=["wamp2-fanout", "--subs", "1000", "--rate", "0", "--max-lag", "10", "--size", "32",
               "--warmup", "2", "--duration", "5"],
         metrics=[("deliveries_per_s", "deliveries/s", "high"),
                  ("server_cpu_us_per_delivery", "server CPU µs/delivery", "low"),
                  ("lat_p50_us", "p50 delivery µs", "low"), ("lat_p99_us", "p99 delivery µs", "low")]),
    dict(key="idle", title="Idle: 1,000 sessions (HELLO -> WELCOME), held 2 s",
         args=["wamp2-idle", "--sessions", "1000", "--concurrency", "100", "--hold", "2"],
         metrics=[("rss_per_session", "server RSS B/session", "low"),
                  ("server_cpu_us_per_session", "server CPU µs/session open", "low")]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_s():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every process below it (crossbar's controller starts its
    router worker as a child)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def crossbar_config(port):
    """One router worker, realm1, the anonymous role allowed everything,
    WebSocket at /wamp with JSON and MessagePack."""
    allow = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{"uri": "", "match": "prefix", "allow": allow,
                                     "disclose": {"caller": False, "publisher": False}, "cache": True}],
                }],
            }],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port, "backlog": 1024},
                "paths": {"wamp": {"type": "websocket", "serializers": ["json", "msgpack"]}},
            }],
        }],
    }


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """A fresh server pinned to core 0; stopped by its pid."""

    def __init__(self, name, logdir):
        self.name = name
        self.port = free_port()
        self.log = open(logdir / f"server-{name}.log", "ab")
        self.tmp = None
        if name == "sprocket":
            cmd = [str(SPROCKET), "--listen", f"127.0.0.1:{self.port}", "--ping-interval", "0",
                   "--max-connections", "15000"]
            env = dict(os.environ, RUST_LOG="warn")
        else:
            self.tmp = tempfile.TemporaryDirectory(prefix="wamp2-crossbar-")
            cbdir = Path(self.tmp.name) / ".crossbar"
            cbdir.mkdir()
            (cbdir / "config.json").write_text(json.dumps(crossbar_config(self.port), indent=1))
            cmd = [str(CROSSBAR), "start", "--cbdir", str(cbdir), "--loglevel", "warn"]
            env = dict(os.environ)
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, preexec_fn=raise_nofile,
                                     cwd=self.tmp.name if self.tmp else None)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start (see {self.log.name})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} does not listen on {self.port}")
                time.sleep(0.1)
        time.sleep(0.5)
        self.pids = descendants(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in getattr(self, "pids", [])[1:]:
            try:
                os.kill(p, signal.SIGKILL)  # a worker the controller left behind
            except ProcessLookupError:
                pass
        self.log.close()
        if self.tmp:
            self.tmp.cleanup()


def run_one(name, sc, logdir, rnd):
    srv = Server(name, logdir)
    busy0, t0 = cpu_busy_s(), time.time()
    try:
        cmd = ["taskset", "-c", "1", str(LOADGEN)] + sc["args"] + [
            "--addr", f"127.0.0.1:{srv.port}", "--server-pid", ",".join(map(str, srv.pids)),
            "--label", f"{name}/{sc['key']}/{rnd}"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, preexec_fn=raise_nofile)
        with open(logdir / "loadgen.log", "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{p.stderr}\n")
        try:
            r = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            r = {"ok": False, "error": p.stderr[-400:]}
    finally:
        srv.stop()
    wall = time.time() - t0
    # Other work on the machine: busy cores minus what this run used (at
    # most the two pinned cores' worth), as a caveat next to the figures.
    r["machine_busy_cores"] = round((cpu_busy_s() - busy0) / wall, 2)
    r.update(server=name, scenario=sc["key"], round=rnd)
    return r


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def render(runs, meta, scs):
    out = []
    w = out.append
    w(f"Run {meta['date']} on {meta['machine']}; {meta['rounds']} interleaved rounds, fresh server per run, "
      f"server on core 0, loadgen on core 1. Median over valid runs (min–max); ratio = sprocket / crossbar "
      f"of the medians.\n")
    for sc in scs:
        w(f"### {sc['title']}\n")
        w("| metric | sprocket | crossbar | sprocket / crossbar |")
        w("|---|---|---|---|")
        for key, label, better in sc["metrics"]:
            cells, meds = [], {}
            for s in SERVERS:
                vals = [r[key] for r in runs if r["server"] == s and r["scenario"] == sc["key"]
                        and r.get("ok") and r.get(key) is not None]
                if vals:
                    meds[s] = statistics.median(vals)
                    cells.append(f"{fmt(meds[s])} ({fmt(min(vals))}–{fmt(max(vals))}, n={len(vals)})")
                else:
                    cells.append("no valid run")
            ratio = "–"
            if len(meds) == 2 and meds["crossbar"]:
                ratio = f"{meds['sprocket'] / meds['crossbar']:.2f}× ({'higher' if better == 'high' else 'lower'} is better)"
            w(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")
        bad = [r for r in runs if r["scenario"] == sc["key"] and not r.get("ok")]
        for r in bad:
            w(f"\nInvalid run {r['server']} round {r['round']}: {r.get('problems') or r.get('error')}")
        w("")
    busy = [r["machine_busy_cores"] for r in runs]
    w(f"Machine busy (all processes, both cores) during the runs: median {statistics.median(busy):.2f} cores "
      f"(min {min(busy):.2f}, max {max(busy):.2f}) of 2.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", help="comma-separated scenario keys (rpc,fanout,idle)")
    a = ap.parse_args()
    for need, how in [(LOADGEN, "bench/peers/setup.sh (or cargo build --release in bench/loadgen "
                                "with CARGO_TARGET_DIR=target/bench)"),
                      (SPROCKET, "cargo build --release"), (CROSSBAR, "bench/peers/setup.sh")]:
        if not need.exists():
            sys.exit(f"wamp2_bench: {need} is missing: run {how}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = a.out or ROOT / "target" / "bench-results" / f"wamp2-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    scs = [s for s in SCENARIOS if not a.only or s["key"] in a.only.split(",")]
    cb_version = subprocess.run([str(CACHE / "crossbar/bin/python"), "-c",
                                 "import crossbar, autobahn, twisted; print(crossbar.__version__, "
                                 "autobahn.__version__, twisted.__version__)"],
                                capture_output=True, text=True).stdout.split()
    meta = dict(date=stamp, rounds=a.rounds,
                machine=f"{os.cpu_count()} cores, {os.uname().release}",
                crossbar=cb_version, sprocket_commit=subprocess.run(
                    ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
                scenarios={s["key"]: s["args"] for s in scs})
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    runs = []
    with open(out / "runs.jsonl", "w") as f:
        for rnd in range(a.rounds):
            for sc in scs:
                for name in SERVERS:
                    r = run_one(name, sc, out, rnd)
                    runs.append(r)
                    f.write(json.dumps(r) + "\n")
                    f.flush()
                    brief = {k: r.get(k) for k in ["server", "scenario", "round", "ok", "calls_per_s",
                                                   "deliveries_per_s", "rss_per_session", "machine_busy_cores",
                                                   "problems", "error"] if r.get(k) is not None}
                    print(json.dumps(brief), flush=True)
    md = render(runs, meta, scs)
    (out / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
