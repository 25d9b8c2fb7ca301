#!/bin/bash
# wamp2-fanout against sprocket with and without the fan-out flush delay
cd /work/wt-wamp2bench
LG=target/bench/release/loadgen
for rep in 1 2; do for fd in 1ms 0; do
  P=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  taskset -c 0 target/release/sprocket --listen 127.0.0.1:$P --ping-interval 0 --max-connections 15000 --fanout-flush-delay $fd 2>/dev/null & SP=$!
  sleep 0.5
  echo "flush-delay=$fd rep=$rep"
  taskset -c 1 $LG wamp2-fanout --addr 127.0.0.1:$P --subs 1000 --max-lag 10 --warmup 2 --duration 5 --server-pid $SP --quiet --label "flush-delay=$fd"
  kill $SP; wait $SP 2>/dev/null
done; done
