#!/bin/bash
# Fixed-rate smooth fan-out: p99 and CPU per delivery at rates in the band.
cd /work/main
for rate in 600 800 1000 1500; do
 for delay in 0 1ms; do
  for rep in 1 2; do
   port=$((20000 + RANDOM % 10000))
   taskset -c 0 chrt -f 10 target/release/sprocket --listen 127.0.0.1:$port --ping-interval 0 --max-connections 15000 --fanout-flush-delay $delay 2>/dev/null &
   pid=$!
   sleep 0.3
   out=$(taskset -c 1 chrt -f 10 target/bench/release/loadgen fanout --addr 127.0.0.1:$port --server-pid $pid --subs 1000 --pubs 10 --size 32 --tick-ms 1 --rate $rate --warmup 0.3 --duration 1.5 2>/dev/null)
   kill $pid; wait $pid 2>/dev/null
   echo "rate=$rate delay=$delay rep=$rep $(echo "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("deliv/s=%.0f p99_us=%s cpu_us=%.3f lost=%s" % (d.get("deliveries_per_s",0), d.get("lat_p99_us"), d.get("server_cpu_us_per_delivery",0), d.get("lost")))' 2>&1)"
  done
 done
done
