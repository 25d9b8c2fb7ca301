#!/usr/bin/env python3
"""WAMP v1 fan-out next to chat fan-out: 1,000 subscribers, 10 publishers,
32-byte events in 10 ms ticks, fixed total publish rates, a fresh server per
run (pinned to core 0, the load tool to core 1), 3 interleaved rounds.
Needs `cargo build --release` and the load tool built by bench/run.sh
(target/bench/release/loadgen). Prints one JSON line per run; writes all of
them to the file named by the first argument (default wamp-fanout.json)."""
import subprocess, json, socket, time, os, sys
ROOT=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN=os.path.join(ROOT,"target/release/sprocket"); LG=os.path.join(ROOT,"target/bench/release/loadgen")
def port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
def run(flavour, rate):
    p=port()
    srv=subprocess.Popen(["taskset","-c","0",BIN,"--listen",f"127.0.0.1:{p}","--ping-interval","0","--max-connections","20000"],stderr=subprocess.DEVNULL)
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1",p)).close(); break
        except OSError: time.sleep(0.05)
    path="/wamp" if flavour=="wamp1" else "/chat"
    args=["taskset","-c","1",LG,"fanout","--addr",f"127.0.0.1:{p}","--path",path,"--flavour",flavour,"--subs","1000","--pubs","10","--size","32","--tick-ms","10","--rate",str(rate),"--warmup","1","--duration","3","--server-pid",str(srv.pid),"--quiet"]
    if flavour=="wamp1": args+=["--topic","http://example.com/bench"]
    out=subprocess.run(args,capture_output=True,text=True)
    srv.terminate(); srv.wait()
    try: return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception: return {"error": out.stderr[-300:]}
res=[]
for rnd in range(3):
    for rate in [500,1000,2000,3000]:
        for fl in ["chat","wamp1"]:
            r=run(fl,rate); r["flavour"]=fl; r["rate"]=rate; r["round"]=rnd; res.append(r)
            print(json.dumps({k:r.get(k) for k in ["flavour","rate","round","ok","deliveries_per_s","lat_p99_us","lost","server_cpu_us_per_delivery","error"]}),flush=True)
json.dump(res,open(sys.argv[1] if len(sys.argv) > 1 else "wamp-fanout.json","w"))
