#!/usr/bin/env python3
"""Runs the sprocket benchmark: every server, every scenario, interleaved
round by round, server pinned to core 0 and load tool to core 1.

    bench/run.sh            # setup + 3 rounds (about 15 minutes)
    bench/run.sh --quick    # setup + 1 short round (smoke run)
    bench/run.py --table target/bench-results/STAMP   # redo the table

Each run starts a fresh server, runs `loadgen` once against it, stops it.
Results (one JSON line per run) go to target/bench-results/STAMP/runs.jsonl,
the markdown report to .../results.md (also printed).
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SPROCKET_BENCH_CACHE", Path.home() / ".cache" / "sprocket-bench"))
BIN = ROOT / "target" / "bench" / "release"
LOADGEN = BIN / "loadgen"
PEERS = ROOT / "bench" / "peers"
HIGH, LOW = "high", "low"  # which way is better

# Servers in the order each round runs them. "raw" is the TCP ceiling: it
# only runs the echo scenarios, in loadgen's --raw mode.
SERVERS = {
    "sprocket": lambda p: [str(ROOT / "target/release/sprocket"), "--listen", f"127.0.0.1:{p}",
                           "--ping-interval", "0", "--max-connections", "15000"],
    "uWS.js": lambda p: ["node", str(PEERS / "node/uws-server.js"), str(p)],
    "node-ws": lambda p: ["node", str(PEERS / "node/ws-server.js"), str(p)],
    "tokio-tungstenite": lambda p: [str(BIN / "peer-tokio-tungstenite"), str(p)],
    "py-websockets": lambda p: [str(CACHE / "py/bin/python"), str(PEERS / "python/ws_server.py"), str(p)],
    "mio-raw": lambda p: [str(BIN / "peer-mio-raw"), str(p)],
}
RAW = "mio-raw"
SUBJECT = "sprocket"
REFERENCE = "uWS.js"


def scenarios(quick):
    ew, ed = ("0.5", "2") if quick else ("1", "4")
    fw, fd, steps = ("0.3", "1", "7") if quick else ("0.3", "1.2", "8")
    return [
        dict(key="echo", title="Echo: 100 connections, window 16, 32-byte text messages",
             args=["echo", "--conns", "100", "--window", "16", "--size", "32", "--warmup", ew, "--duration", ed],
             raw=True,
             metrics=[("msgs_per_s", "msgs/s", HIGH), ("server_cpu_us_per_msg", "server CPU µs/msg", LOW),
                      ("rtt_p99_us", "p99 RTT µs", LOW)]),
        dict(key="latency", title="Echo, latency-bound: 100 connections, window 1, 32-byte text",
             args=["echo", "--conns", "100", "--window", "1", "--size", "32", "--warmup", ew, "--duration", ed],
             raw=True,
             metrics=[("rtt_p99_us", "p99 RTT µs", LOW), ("rtt_p50_us", "p50 RTT µs", LOW),
                      ("msgs_per_s", "msgs/s", HIGH)]),
        dict(key="big", title="Echo, large: 10 connections, window 4, 64 KiB binary messages",
             args=["echo", "--conns", "10", "--window", "4", "--size", "64K", "--binary", "--warmup", ew,
                   "--duration", ed],
             raw=True,
             metrics=[("mb_per_s", "MB/s", HIGH), ("server_cpu_us_per_mb", "server CPU µs/MB", LOW),
                      ("rtt_p99_us", "p99 RTT µs", LOW)]),
        dict(key="big-latency", title="Echo, large and latency-bound: 10 connections, window 1, 64 KiB binary",
             args=["echo", "--conns", "10", "--window", "1", "--size", "64K", "--binary", "--warmup", ew,
                   "--duration", ed],
             raw=True,
             metrics=[("msgs_per_s", "msgs/s", HIGH), ("server_cpu_us_per_msg", "server CPU µs/msg", LOW),
                      ("rtt_p99_us", "p99 RTT µs", LOW)]),
        dict(key="fanout", title="Fan-out, bursts: 1,000 subscribers on /chat, 10 publishers, 32-byte text, "
                                 "sent in 10 ms ticks; highest rate with no loss and p99 < 50 ms",
             args=["fanout", "--subs", "1000", "--pubs", "10", "--size", "32", "--tick-ms", "10",
                   "--max-p99-ms", "50", "--warmup", fw, "--duration", fd],
             search_steps=int(steps),
             raw=False,
             metrics=[("deliveries_per_s", "deliveries/s", HIGH),
                      ("server_cpu_us_per_delivery", "server CPU µs/delivery", LOW),
                      ("lat_p99_us", "p99 latency µs", LOW)]),
        dict(key="fanout-smooth", title="Fan-out, smooth: as above, sent in 1 ms ticks",
             args=["fanout", "--subs", "1000", "--pubs", "10", "--size", "32", "--tick-ms", "1",
                   "--max-p99-ms", "50", "--warmup", fw, "--duration", fd],
             search_steps=int(steps),
             raw=False,
             metrics=[("deliveries_per_s", "deliveries/s", HIGH),
                      ("server_cpu_us_per_delivery", "server CPU µs/delivery", LOW),
                      ("lat_p99_us", "p99 latency µs", LOW)]),
        dict(key="connect", title="Connect: 10,000 idle connections (100 handshakes in flight)",
             args=["connect", "--conns", "10000", "--concurrency", "100", "--hold", "1"],
             raw=False,
             metrics=[("handshakes_per_s", "handshakes/s", HIGH), ("rss_per_conn", "RSS bytes/conn", LOW),
                      ("server_cpu_us_per_handshake", "server CPU µs/handshake", LOW)]),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy_s():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Server:
    """One server process, started pinned to core 0, stopped by its pid."""

    def __init__(self, name, nice, logdir):
        self.name = name
        self.port = free_port()
        cmd = SERVERS[name](self.port)
        env = dict(os.environ, NODE_PATH=str(CACHE / "node/node_modules"), RUST_LOG="warn")
        prefix = sched_prefix(nice, server=True)
        self.log = open(logdir / f"server-{name}.log", "ab")
        self.proc = subprocess.Popen(prefix + ["taskset", "-c", "0"] + cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
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
                time.sleep(0.05)
        if nice == "rt":
            # The main thread only (no -a): that is the event loop.
            subprocess.run(["chrt", "-f", "-p", "10", str(self.proc.pid)], check=True)
        time.sleep(0.2)  # let it finish starting after the probe connection

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def sched_prefix(sched, server=False):
    """How to start a process: `sched` is a nice value, or "rt" for
    SCHED_FIFO. A server starts with nice -10 and only its main thread (the
    event loop) is made real-time once it listens (see Server): helper
    threads of a runtime (V8's, for instance) must not become real-time
    threads that spin on the same core."""
    if sched == "rt":
        return ["nice", "-n", "-10"] if server else ["chrt", "-f", "10"]
    return ["nice", "-n", str(sched)] if sched else []


def search(name, sc, nice, logdir, hint):
    """The highest passing fan-out rate: doubling (or halving) from `hint`,
    then bisecting to within 15 %. Every step runs against a fresh server
    process with fresh connections, so an overloaded step cannot leave a
    server degraded for the next one."""
    rate, best, fail, steps = float(hint or 500), None, None, []
    for _ in range(sc["search_steps"]):
        res = run_one(name, sc, nice, logdir, extra=["--rate", f"{rate:g}"])
        st = (res.get("steps") or [{}])[0]
        passed = bool(res.get("ok")) and bool(st.get("pass"))
        why = st.get("why") or res.get("error") or "; ".join(res.get("problems", []))
        steps.append({"rate": rate, "pass": passed, "why": why, "deliveries_per_s": st.get("deliveries_per_s"),
                      "lat_p99_us": st.get("lat_p99_us"), "lost": st.get("lost"), "reordered": st.get("reordered"),
                      "server_cpu_us_per_delivery": st.get("server_cpu_us_per_delivery")})
        if passed:
            best = res
        else:
            fail = rate
        lo = best["max_rate"] if best else None
        if lo is not None and fail is None:
            rate = lo * 2
        elif lo is None:
            if fail / 2 < 10:
                break
            rate = fail / 2
        else:
            if fail / lo <= 1.15:
                break
            rate = (lo + fail) / 2
    out = dict(best) if best else {"ok": False, "error": "no rate passed: " + steps[-1]["why"]}
    out["found"] = best is not None
    out["steps"] = steps
    out["lost"] = sum(s["lost"] or 0 for s in steps)
    out["reordered"] = sum(s["reordered"] or 0 for s in steps)
    if out["lost"] or out["reordered"]:
        out["lost_or_reordered_in_failed_steps"] = True
    return out


def run_one(name, sc, nice, logdir, hint=None, extra=()):
    if sc.get("search_steps") and not extra:
        return search(name, sc, nice, logdir, hint)
    args = list(sc["args"]) + list(extra)
    if name == RAW:
        args.append("--raw")
    srv = Server(name, nice, logdir)
    try:
        prefix = sched_prefix(nice)
        cmd = prefix + ["taskset", "-c", "1", str(LOADGEN)] + args + [
            "--addr", f"127.0.0.1:{srv.port}", "--server-pid", str(srv.proc.pid), "--label", name]
        busy0, srv0, kids0, t0 = cpu_busy_s(), proc_cpu_s(srv.proc.pid), children_cpu_s(), time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        busy1, srv1, kids1, t1 = cpu_busy_s(), proc_cpu_s(srv.proc.pid), children_cpu_s(), time.time()
    finally:
        srv.stop()
    with open(logdir / "loadgen.log", "a") as f:
        f.write(f"### {name} {sc['key']}: {' '.join(args)}\n{p.stderr}\n")
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"ok": False, "error": f"no JSON from loadgen (exit {p.returncode}): {p.stderr[-300:]}"}
    other = (busy1 - busy0) - (srv1 - srv0) - (kids1 - kids0)
    res["others_cores"] = round(max(other, 0.0) / max(t1 - t0, 1e-9), 3)
    return res


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f} M"
    if a >= 1e4:
        return f"{v / 1e3:.0f} k"
    if a >= 1e3:
        return f"{v / 1e3:.1f} k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(v, ref):
    if v is None or not ref:
        return "–"
    return f"{v / ref:.2f}×"


def summarize(runs, quick):
    """Medians and spreads per (scenario, server, metric) over valid runs."""
    table = {}
    for r in runs:
        key = (r["scenario"], r["server"])
        table.setdefault(key, {"runs": 0, "valid": 0, "vals": {}, "problems": []})
        t = table[key]
        t["runs"] += 1
        if not r.get("ok"):
            t["problems"].append(r.get("error") or "; ".join(r.get("problems", [])) or "failed")
            continue
        t["valid"] += 1
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                t["vals"].setdefault(k, []).append(v)
    out = {}
    for key, t in table.items():
        med = {k: statistics.median(v) for k, v in t["vals"].items()}
        spread = {k: (min(v), max(v)) for k, v in t["vals"].items()}
        out[key] = dict(t, med=med, spread=spread)
    return out


def render(runs, meta, quick):
    stats = summarize(runs, quick)
    order = [s for s in SERVERS if any(r["server"] == s for r in runs)]
    lines = []
    w = lines.append
    w(f"Rounds: {meta['rounds']} ({'quick' if quick else 'full'}), started {meta['started']}, "
      f"took {meta.get('minutes', '?')} min, scheduling: {meta.get('sched')}. "
      "Each cell: median over the valid runs (min–max); ratios are of medians.")
    w("")
    for sc in scenarios(quick):
        names = [s for s in order if (sc["key"], s) in stats]
        if not names:
            continue
        peers = [s for s in names if s not in (SUBJECT, RAW)]
        w(f"### {sc['title']}")
        w("")
        head = ["server"]
        for _, label, better in sc["metrics"]:
            head += [label, "÷ best peer"] + (["÷ raw"] if sc["raw"] else [])
        head += ["server CPU busy", "loadgen CPU busy", "others' CPU (cores)", "valid runs"]
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        best = {}
        for m, _, better in sc["metrics"]:
            vals = [(stats[(sc["key"], s)]["med"].get(m), s) for s in peers]
            vals = [v for v in vals if v[0] is not None]
            if vals:
                best[m] = (max if better == HIGH else min)(vals)
        for s in names:
            st = stats[(sc["key"], s)]
            row = [f"**{s}**" if s == SUBJECT else s]
            for m, _, better in sc["metrics"]:
                v = st["med"].get(m)
                lo_hi = st["spread"].get(m)
                cell = fmt(v)
                if lo_hi and st["valid"] > 1:
                    cell += f" ({fmt(lo_hi[0])}–{fmt(lo_hi[1])})"
                row.append(cell)
                row.append(ratio(v, best.get(m, (None,))[0]))
                if sc["raw"]:
                    rv = stats.get((sc["key"], RAW), {}).get("med", {}).get(m)
                    row.append(ratio(v, rv))
            for m in ("server_cpu_util", "loadgen_cpu_util"):
                v = st["med"].get(m)
                row.append("–" if v is None else f"{100 * v:.0f} %")
            oc = st["med"].get("others_cores")
            row.append("–" if oc is None else f"{oc:.2f}")
            row.append(f"{st['valid']}/{st['runs']}")
            w("| " + " | ".join(row) + " |")
        w("")
        bp = ", ".join(f"{label}: {best[m][1]}" for m, label, _ in sc["metrics"] if m in best)
        if bp:
            w(f"Best peer per column — {bp}.")
        if sc["key"].startswith("fanout"):
            rates = {s: stats[(sc["key"], s)]["med"].get("max_rate") for s in names}
            w("Highest passing publish rate (median, msgs/s to 1,000 subscribers): "
              + ", ".join(f"{s} {fmt(v)}" for s, v in rates.items()) + ".")
        for s in names:
            for p in stats[(sc["key"], s)]["problems"][:2]:
                w(f"- {s}: invalid run: {p[:300]}")
        w("")
    # The connect scenario idles while it holds connections: others fill that.
    busy = [r["others_cores"] for r in runs if "others_cores" in r and r.get("scenario") != "connect"]
    if busy and statistics.median(busy) > 0.2:
        if meta.get("sched") == "rt":
            w(f"**Note:** other processes used a median {statistics.median(busy):.2f} cores during these runs "
              "(connect excluded): they ran whenever the server or the load tool waited. Compare ratios.")
        else:
            w(f"**Warning:** other processes used a median {statistics.median(busy):.2f} cores during these "
              "runs (connect excluded): wake-up delays then dominate latency and throughput. Rerun with --rt.")
        w("")
    w("### Targets (sprocket vs the issue's targets; medians)")
    w("")
    w("| target | sprocket | reference | ratio | met |")
    w("|---|---|---|---|---|")

    def med(sc, s, m):
        return stats.get((sc, s), {}).get("med", {}).get(m)

    def fastest_peer(sc, m):
        vals = [(med(sc, s, m), s) for s in order if s not in (SUBJECT, RAW) and med(sc, s, m) is not None]
        return max(vals) if vals else (None, None)

    checks = [
        ("echo msgs/s ≥ uWS", "echo", "msgs_per_s", REFERENCE, 1.0, HIGH),
        ("echo CPU/msg ≤ 0.8× uWS", "echo", "server_cpu_us_per_msg", REFERENCE, 0.8, LOW),
        ("echo CPU/msg ≤ 2× raw mio", "echo", "server_cpu_us_per_msg", RAW, 2.0, LOW),
        ("window-1 p99 RTT ≤ uWS", "latency", "rtt_p99_us", REFERENCE, 1.0, LOW),
        ("64 KiB MB/s ≥ uWS", "big", "mb_per_s", REFERENCE, 1.0, HIGH),
        ("64 KiB window-1 msgs/s ≥ uWS", "big-latency", "msgs_per_s", REFERENCE, 1.0, HIGH),
        ("64 KiB window-1 CPU/msg ≤ uWS", "big-latency", "server_cpu_us_per_msg", REFERENCE, 1.0, LOW),
        ("64 KiB window-1 p99 RTT ≤ uWS", "big-latency", "rtt_p99_us", REFERENCE, 1.0, LOW),
        ("fan-out deliveries/s ≥ uWS (bursts; no loss, p99 < 50 ms)", "fanout", "deliveries_per_s", REFERENCE, 1.0,
         HIGH),
        ("fan-out deliveries/s ≥ uWS (smooth; no loss, p99 < 50 ms)", "fanout-smooth", "deliveries_per_s", REFERENCE,
         1.0, HIGH),
        ("handshakes/s ≥ fastest peer", "connect", "handshakes_per_s", None, 1.0, HIGH),
        ("RSS per idle connection ≤ uWS", "connect", "rss_per_conn", REFERENCE, 1.0, LOW),
    ]
    for label, sc, m, ref, factor, better in checks:
        v = med(sc, SUBJECT, m)
        if ref is None:
            rv, ref = fastest_peer(sc, m)
        else:
            rv = med(sc, ref, m)
        if v is None or rv is None:
            w(f"| {label} | {fmt(v)} | {ref}: {fmt(rv)} | – | no data |")
            continue
        r = v / rv if rv else float("inf")
        ok = r >= factor if better == HIGH else r <= factor
        w(f"| {label} | {fmt(v)} | {ref}: {fmt(rv)} | {r:.2f}× | {'yes' if ok else '**no**'} |")
    w("")
    return "\n".join(lines)


def machine_info():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            return "?"

    def pkg(name):
        try:
            return json.load(open(CACHE / "node/node_modules" / name / "package.json"))["version"]
        except OSError:
            return "?"

    def lock(crate, name):
        text = (ROOT / "bench" / crate / "Cargo.lock").read_text()
        m = re.search(rf'name = "{name}"\nversion = "([^"]+)"', text)
        return m.group(1) if m else "?"

    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "sprocket": sh(f"git -C {ROOT} rev-parse --short HEAD") + (" (dirty)" if sh(f"git -C {ROOT} status --porcelain src") else ""),
        "rustc": sh("rustc --version"),
        "node": sh("node --version"),
        "ws": pkg("ws"),
        "uwebsockets": pkg("uwebsockets"),
        "python": sh(f"{CACHE}/py/bin/python --version"),
        "websockets": sh(f"{CACHE}/py/bin/python -c 'import websockets; print(websockets.__version__)'"),
        "tokio-tungstenite": lock("peers/tokio-tungstenite", "tokio-tungstenite"),
        "tokio": lock("peers/tokio-tungstenite", "tokio"),
        "mio (raw peer)": lock("peers/mio-raw", "mio"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short round (smoke run)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3, --quick 1)")
    ap.add_argument("--servers", help="comma-separated subset of " + ",".join(SERVERS))
    ap.add_argument("--scenarios", help="comma-separated subset of echo,latency,big,big-latency,fanout,fanout-smooth,connect")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="nice value for server and load tool (default -10 as root)")
    ap.add_argument("--rt", action="store_true",
                    help="run the load tool and the server's event-loop thread SCHED_FIFO (chrt -f 10): "
                         "other work on the machine then cannot delay their wake-ups, but gets little CPU "
                         "on both cores while the benchmark runs")
    ap.add_argument("--out", help="results directory (default target/bench-results/STAMP)")
    ap.add_argument("--table", metavar="DIR", help="only re-render DIR/runs.jsonl")
    a = ap.parse_args()

    if a.table:
        d = Path(a.table)
        meta = json.loads((d / "meta.json").read_text())
        runs = [json.loads(x) for x in (d / "runs.jsonl").read_text().splitlines() if x.strip()]
        md = render(runs, meta, meta["quick"])
        (d / "results.md").write_text(md + "\n")
        print(md)
        return 0

    rounds = a.rounds or (1 if a.quick else 3)
    servers = a.servers.split(",") if a.servers else list(SERVERS)
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}")
    scs = [s for s in scenarios(a.quick) if not a.scenarios or s["key"] in a.scenarios.split(",")]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(a.out) if a.out else ROOT / "target" / "bench-results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    sched = "rt" if a.rt else a.nice
    meta = {"started": stamp, "rounds": rounds, "quick": a.quick, "sched": sched, "machine": machine_info(),
            "load_before": open("/proc/loadavg").read().split()[:3]}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"results in {out}", file=sys.stderr)
    runs = []
    hints = {}
    t0 = time.time()
    for rnd in range(1, rounds + 1):
        for sc in scs:
            for s in servers:
                if s == RAW and not sc["raw"]:
                    continue
                try:
                    res = run_one(s, sc, sched, out, hints.get((s, sc["key"])))
                except Exception as e:  # noqa: BLE001 - a broken server is a result too
                    res = {"ok": False, "error": str(e)}
                res.update(round=rnd, scenario=sc["key"], server=s)
                runs.append(res)
                with open(out / "runs.jsonl", "a") as f:
                    f.write(json.dumps(res) + "\n")
                if sc["key"].startswith("fanout") and res.get("found"):
                    hints[(s, sc["key"])] = res["max_rate"]
                main_m = sc["metrics"][0][0]
                print(f"[{time.time() - t0:6.0f}s] round {rnd} {sc['key']:8} {s:18} "
                      f"{sc['metrics'][0][1]}={fmt(res.get(main_m))} "
                      f"{'ok' if res.get('ok') else 'INVALID: ' + (res.get('error') or '; '.join(res.get('problems', [])))[:200]}",
                      file=sys.stderr, flush=True)
    meta["minutes"] = round((time.time() - t0) / 60, 1)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    md = render(runs, meta, a.quick)
    (out / "results.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
