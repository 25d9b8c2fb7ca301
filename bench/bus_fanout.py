#!/usr/bin/env python3
"""WAMP v1 fan-out through the Redis bus (`--bus redis://...`).

Three setups, each at a few fixed total publish rates:

    one        one sprocket process, no Redis (the bus is the process)
    one-redis  one process with --bus to a local redis-server: every
               publish also goes to Redis, comes back on the topic's
               channel and is dropped as the process's own
    two-redis  two processes with --bus to the same Redis; subscribers and
               publishers spread over both round robin (the load tool's
               --addr A,B), so half of each subscriber's events come
               through Redis from the other process

1,000 subscribers, 10 publishers, 32-byte events in 10 ms ticks, a fresh
redis-server and fresh sprocket processes for every run. sprocket (both
processes) and redis-server are pinned to core 0, the load tool to core 1:
on a 2-core machine the two processes of two-redis share one core, so it
measures the bus's cost and correctness across processes, not a speed-up.
Rounds interleave every setup and rate (the order of the setups rotates).

Per run: the load tool's JSON line (deliveries/s, latency, lost /
reordered, sprocket CPU per delivery summed over the processes, Redis CPU
over the same window via --aux-pid), plus the bus counters of each
process's /metrics, Redis's own CPU accounting (INFO cpu, microseconds)
over the whole load-tool run, and the machine's other work.

    python3 bench/bus_fanout.py --rt                  # 3 rounds, about 4 minutes
    python3 bench/bus_fanout.py --rounds 1 --rates 1000 --duration 2   # smoke
    python3 bench/bus_fanout.py --table DIR           # re-render DIR/runs.jsonl

Builds sprocket (cargo build --release) and the load tool
(target/bench/release/loadgen, as bench/peers/setup.sh does) first unless
--no-build. Writes DIR/runs.jsonl, DIR/meta.json and DIR/results.md
(default DIR: target/bench-results/bus-fanout-STAMP) and prints the table.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPROCKET = ROOT / "target/release/sprocket"
LOADGEN = ROOT / "target/bench/release/loadgen"
TOPIC = "http://example.com/bench"
SETUPS = {"one": (1, False), "one-redis": (1, True), "two-redis": (2, True)}
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{what} does not listen on {port}")
            time.sleep(0.05)


def cpu_busy_s():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK


def proc_cpu_s(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK


def switches(pid):
    """(voluntary, involuntary) context switches of a process's main thread:
    for an event loop, voluntary ones are roughly its waits in epoll (loop
    turns); involuntary ones are preemptions by other work on its core."""
    v = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, x = line.partition(":")
            v[k] = x.strip()
    except OSError:
        return (0, 0)
    return (int(v.get("voluntary_ctxt_switches", 0)), int(v.get("nonvoluntary_ctxt_switches", 0)))


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def redis_info(port, section):
    """`INFO section` from the Redis at `port`, as a dict (inline command,
    one bulk reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"INFO {section}\r\n".encode())
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        while len(rest) < n:
            rest += s.recv(65536)
    out = {}
    for line in rest[:n].decode().splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v
    return out


def metrics(port):
    """The bus and Redis lines of a sprocket's /metrics, summed by name."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    out = {}
    for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1].splitlines():
        if line.startswith(("sprocket_bus_", "sprocket_redis_")):
            name, _, v = line.rpartition(" ")
            out[name] = float(v)
    return out


def prefix(sched, server):
    """nice -N, or for --rt: the load tool under chrt, servers made
    real-time once they listen (their main thread: the event loop)."""
    if sched == "rt":
        return ["nice", "-n", "-10"] if server else ["chrt", "-f", "10"]
    return ["nice", "-n", str(sched)] if sched else []


class Proc:
    """A process pinned to core 0, stopped by its pid."""

    def __init__(self, cmd, port, what, sched, log):
        self.what = what
        self.proc = subprocess.Popen(prefix(sched, True) + ["taskset", "-c", "0"] + cmd,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=dict(os.environ, RUST_LOG="warn"))
        self.pid = self.proc.pid  # nice and taskset exec: the same pid
        try:
            wait_port(port, self.proc, what)
            if sched == "rt":
                subprocess.run(["chrt", "-f", "-p", "10", str(self.pid)], check=True)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_one(setup, rate, a, sched, logdir):
    n, bus = SETUPS[setup]
    log = open(logdir / "servers.log", "ab")
    log.write(f"### {setup} {rate}\n".encode())
    log.flush()
    procs, redis = [], None
    try:
        if bus:
            rport = free_port()
            redis = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], rport, "redis-server", sched, log)
            procs.append(redis)
        servers = []
        for _ in range(n):
            port, admin = free_port(), free_port()
            cmd = [str(SPROCKET), "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                   "--ping-interval", "0", "--max-connections", "15000"]
            if bus:
                cmd += ["--bus", f"redis://127.0.0.1:{rport}"]
            p = Proc(cmd, port, "sprocket", sched, log)
            procs.append(p)
            servers.append((p, port, admin))
        if bus:
            # Each process holds two Redis connections (commands, pub/sub).
            deadline = time.time() + 10
            while int(redis_info(rport, "clients").get("connected_clients", 0)) < 2 * n:
                if time.time() > deadline:
                    raise RuntimeError("sprocket did not connect to Redis")
                time.sleep(0.05)
        time.sleep(0.2)
        pids = ",".join(str(p.pid) for p, _, _ in servers)
        cmd = prefix(sched, False) + [
            "taskset", "-c", "1", str(LOADGEN), "fanout",
            "--addr", ",".join(f"127.0.0.1:{port}" for _, port, _ in servers),
            "--path", "/wamp", "--flavour", "wamp1", "--topic", TOPIC,
            "--subs", str(a.subs), "--pubs", str(a.pubs), "--size", "32", "--tick-ms", "10",
            "--rate", str(rate), "--warmup", str(a.warmup), "--duration", str(a.duration),
            "--server-pid", pids, "--label", setup, "--quiet"]
        if redis:
            cmd += ["--aux-pid", str(redis.pid)]
        rcpu0 = redis_info(rport, "cpu") if redis else None
        watched = [p.pid for p in procs]
        sw0 = [switches(p.pid) for p, _, _ in servers]
        busy0, own0, kids0, t0 = cpu_busy_s(), sum(map(proc_cpu_s, watched)), children_cpu_s(), time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        busy1, own1, kids1, t1 = cpu_busy_s(), sum(map(proc_cpu_s, watched)), children_cpu_s(), time.time()
        sw1 = [switches(p.pid) for p, _, _ in servers]
        try:
            res = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            res = {"ok": False, "error": f"no JSON from loadgen (exit {out.returncode}): {out.stderr[-300:]}"}
        # Everything on the machine but these processes and the load tool.
        res["others_cores"] = round(max((busy1 - busy0) - (own1 - own0) - (kids1 - kids0), 0) / (t1 - t0), 3)
        res["run_s"] = round(t1 - t0, 2)
        # Over the whole load-tool run, all sprocket processes together.
        res["sprocket_voluntary_switches"] = sum(b[0] - a[0] for a, b in zip(sw0, sw1))
        res["sprocket_involuntary_switches"] = sum(b[1] - a[1] for a, b in zip(sw0, sw1))
        bus_m = {}
        for _, _, admin in servers:
            for k, v in metrics(admin).items():
                bus_m[k] = bus_m.get(k, 0) + v
        res["bus_metrics"] = bus_m
        if redis:
            rcpu1 = redis_info(rport, "cpu")
            used = sum(float(rcpu1[k]) - float(rcpu0[k]) for k in ("used_cpu_user", "used_cpu_sys"))
            pubs = bus_m.get('sprocket_bus_publishes_total{outcome="ok"}', 0)
            res["redis_info_cpu_s"] = round(used, 6)
            res["redis_publishes"] = pubs
            res["redis_us_per_publish_run"] = round(used * 1e6 / pubs, 3) if pubs else None
            stats = redis_info(rport, "stats")
            res["redis_commands"] = int(stats.get("total_commands_processed", 0))
    finally:
        for p in reversed(procs):
            p.stop()
        log.close()
    with open(logdir / "loadgen.log", "a") as f:
        f.write(f"### {setup} {rate}: {' '.join(cmd)}\n{out.stderr}\n")
    st = (res.get("steps") or [{}])[0]
    res.update(setup=setup, rate=rate, processes=n, bus=bus, step_pass=bool(st.get("pass")))
    return res


# --- the table ----------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def fmt(v, digits=2):
    if v is None:
        return "—"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def cell(m, scale=1.0, digits=2, spread=True):
    if m is None:
        return "—"
    s = fmt(m[0] * scale, digits)
    return f"{s} ({fmt(m[1] * scale, digits)}–{fmt(m[2] * scale, digits)})" if spread else s


def step(r, key):
    return (r.get("steps") or [{}])[0].get(key)


def render(runs, meta):
    rates = sorted({r["rate"] for r in runs})
    setups = [s for s in SETUPS if any(r["setup"] == s for r in runs)]
    rounds = sorted({r["round"] for r in runs})
    by = {(r["setup"], r["rate"], r["round"]): r for r in runs}
    head = ["total publish rate", "setup", "deliveries/s", "p99 ms", "sprocket CPU µs/delivery",
            "÷ `one` (same round)", "Redis CPU µs/delivery", "Redis CPU µs/publish (INFO, whole run)",
            "sprocket busy", "Redis busy", "loadgen busy", "others' cores", "lost / reordered",
            "runs with no loss and p99 < 50 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rate in rates:
        for s in setups:
            rs = [by[(s, rate, k)] for k in rounds if (s, rate, k) in by]
            ratios = []
            for k in rounds:
                x, base = by.get((s, rate, k)), by.get(("one", rate, k))
                if x and base and step(x, "server_cpu_us_per_delivery") and step(base, "server_cpu_us_per_delivery"):
                    ratios.append(step(x, "server_cpu_us_per_delivery") / step(base, "server_cpu_us_per_delivery"))
            lost = sum((step(r, "lost") or 0) for r in rs)
            reord = sum((step(r, "reordered") or 0) for r in rs)
            errors = [r for r in rs if "error" in r]
            row = [f"{rate:,} msgs/s", f"`{s}`",
                   cell(med([step(r, "deliveries_per_s") for r in rs]), 1e-6, 3, False) + " M",
                   cell(med([step(r, "lat_p99_us") for r in rs]), 1e-3, 0),
                   cell(med([step(r, "server_cpu_us_per_delivery") for r in rs]), 1, 3),
                   "—" if s == "one" else cell(med(ratios), 1, 2),
                   cell(med([step(r, "aux_cpu_us_per_delivery") for r in rs]), 1, 3) if SETUPS[s][1] else "—",
                   cell(med([r.get("redis_us_per_publish_run") for r in rs]), 1, 1) if SETUPS[s][1] else "—",
                   cell(med([step(r, "server_cpu_util") for r in rs]), 100, 0, False) + " %",
                   (cell(med([r.get("aux_cpu_util") for r in rs]), 100, 1, False) + " %") if SETUPS[s][1] else "—",
                   cell(med([step(r, "loadgen_cpu_util") for r in rs]), 100, 0, False) + " %",
                   cell(med([r.get("others_cores") for r in rs]), 1, 2, False),
                   f"{lost} / {reord}" + (f" ({len(errors)} errors)" if errors else ""),
                   f"{sum(1 for r in rs if r.get('step_pass'))}/{len(rs)}"]
            lines.append("| " + " | ".join(row) + " |")
    gaps = sum(r.get("bus_metrics", {}).get("sprocket_bus_gaps_total", 0) for r in runs)
    missed = sum(r.get("bus_metrics", {}).get("sprocket_bus_missed_total", 0) for r in runs)
    failed = sum(r.get("bus_metrics", {}).get('sprocket_bus_publishes_total{outcome="failed"}', 0) for r in runs)
    lines += ["", f"{len(runs)} runs, {len(rounds)} rounds, {meta.get('minutes', '?')} minutes; "
              f"cells: median (min–max) over rounds; bus counters over all runs: gaps {gaps:.0f}, "
              f"missed {missed:.0f}, failed publishes {failed:.0f}."]
    return "\n".join(lines)


def machine_info():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            return "?"
    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "sprocket": sh(f"git -C {ROOT} rev-parse --short HEAD")
        + (" (dirty)" if sh(f"git -C {ROOT} status --porcelain src") else ""),
        "rustc": sh("rustc --version"),
        "redis": sh("redis-server --version"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="500,1000,2000,3000", help="total publish rates, msgs/s")
    ap.add_argument("--setups", default=",".join(SETUPS), help="subset of " + ",".join(SETUPS))
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--pubs", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="nice value of every process (default -10 as root)")
    ap.add_argument("--rt", action="store_true",
                    help="SCHED_FIFO 10 for the load tool and the main thread of sprocket and redis-server")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", help="results directory (default target/bench-results/bus-fanout-STAMP)")
    ap.add_argument("--table", metavar="DIR", help="only re-render DIR/runs.jsonl")
    a = ap.parse_args()

    if a.table:
        d = Path(a.table)
        meta = json.loads((d / "meta.json").read_text())
        runs = [json.loads(x) for x in (d / "runs.jsonl").read_text().splitlines() if x.strip()]
        md = render(runs, meta)
        (d / "results.md").write_text(md + "\n")
        print(md)
        return 0

    setups = a.setups.split(",")
    for s in setups:
        if s not in SETUPS:
            sys.exit(f"unknown setup {s}")
    rates = [int(x) for x in a.rates.split(",")]
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", "bench/loadgen/Cargo.toml"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target/bench")))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(a.out) if a.out else ROOT / "target" / "bench-results" / f"bus-fanout-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    sched = "rt" if a.rt else a.nice
    meta = {"started": stamp, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "rounds": a.rounds,
            "rates": rates, "setups": setups, "subs": a.subs, "pubs": a.pubs, "warmup": a.warmup,
            "duration": a.duration, "sched": sched,
            "pinning": "sprocket process(es) and redis-server on core 0, loadgen on core 1",
            "machine": machine_info(), "load_before": open("/proc/loadavg").read().split()[:3]}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"results in {out}", file=sys.stderr)
    runs, t0 = [], time.time()
    for rnd in range(1, a.rounds + 1):
        for rate in rates:
            # Rotate the setups' order from round to round.
            k = (rnd - 1) % len(setups)
            for s in setups[k:] + setups[:k]:
                try:
                    res = run_one(s, rate, a, sched, out)
                except Exception as e:  # noqa: BLE001 - a failed run is a result too
                    res = {"ok": False, "error": str(e), "setup": s, "rate": rate}
                res["round"] = rnd
                runs.append(res)
                with open(out / "runs.jsonl", "a") as f:
                    f.write(json.dumps(res) + "\n")
                print(f"[{time.time() - t0:5.0f}s] round {rnd} {rate:>5}/s {s:9} "
                      f"deliveries/s={fmt(step(res, 'deliveries_per_s'))} p99={fmt(step(res, 'lat_p99_us'))} µs "
                      f"cpu/delivery={fmt(step(res, 'server_cpu_us_per_delivery'), 3)} "
                      f"redis/delivery={fmt(step(res, 'aux_cpu_us_per_delivery'), 3)} "
                      f"lost={step(res, 'lost')} "
                      f"{'ok' if res.get('ok') else 'INVALID: ' + (res.get('error') or '; '.join(res.get('problems', [])))[:200]}",
                      file=sys.stderr, flush=True)
    meta["minutes"] = round((time.time() - t0) / 60, 1)
    meta["load_after"] = open("/proc/loadavg").read().split()[:3]
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    md = render(runs, meta)
    (out / "results.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
