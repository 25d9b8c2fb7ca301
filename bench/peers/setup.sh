#!/usr/bin/env bash
# Installs the peer servers from their registries into a cache directory
# outside the repository (default ~/.cache/sprocket-bench, or
# $SPROCKET_BENCH_CACHE) and builds the Rust peers and the load tool.
# Idempotent: a second run only checks what is there.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${SPROCKET_BENCH_CACHE:-$HOME/.cache/sprocket-bench}"
mkdir -p "$CACHE"

# Exact versions, so a rerun measures the same peers.
WS_VERSION=8.23.0
UWS_PACKAGE=uwebsockets@3.0.6      # npm repackaging of uWebSockets.js v20 binaries
PY_WEBSOCKETS=17.4

log() { printf '[setup] %s\n' "$*" >&2; }

# Node peers: ws and uWebSockets.js. --ignore-scripts: neither needs an
# install script (uwebsockets ships prebuilt addons, ws is plain JS).
if [ ! -f "$CACHE/node/.done-$WS_VERSION-${UWS_PACKAGE//[@\/]/_}" ]; then
  log "npm: ws@$WS_VERSION $UWS_PACKAGE"
  mkdir -p "$CACHE/node"
  [ -f "$CACHE/node/package.json" ] || echo '{"private":true}' > "$CACHE/node/package.json"
  npm install --prefix "$CACHE/node" --no-audit --no-fund --ignore-scripts \
    --loglevel=error "ws@$WS_VERSION" "$UWS_PACKAGE" >&2
  touch "$CACHE/node/.done-$WS_VERSION-${UWS_PACKAGE//[@\/]/_}"
fi
NODE_PATH="$CACHE/node/node_modules" node -e "require('ws'); require('uwebsockets')" \
  || { log "node peers do not load"; exit 1; }

# Python peer: websockets in its own virtualenv.
if [ ! -f "$CACHE/py/.done-$PY_WEBSOCKETS" ]; then
  log "pip: websockets==$PY_WEBSOCKETS"
  python3 -m venv "$CACHE/py"
  "$CACHE/py/bin/pip" install -q "websockets==$PY_WEBSOCKETS" >&2
  touch "$CACHE/py/.done-$PY_WEBSOCKETS"
fi
"$CACHE/py/bin/python" -c "import websockets" || { log "python peer does not load"; exit 1; }

# WAMP v2 peer: Crossbar (the reference router) in its own Python 3.11
# virtualenv (bench/wamp2_bench.py; about 4 minutes and 380 MB the first time).
CROSSBAR_VERSION=26.10.1
if [ ! -f "$CACHE/crossbar/.done-$CROSSBAR_VERSION" ]; then
  log "pip: crossbar==$CROSSBAR_VERSION"
  command -v python3.11 >/dev/null || { log "crossbar needs python3.11"; exit 1; }
  python3.11 -m venv "$CACHE/crossbar"
  "$CACHE/crossbar/bin/pip" install -q "crossbar==$CROSSBAR_VERSION" >&2
  touch "$CACHE/crossbar/.done-$CROSSBAR_VERSION"
fi
"$CACHE/crossbar/bin/crossbar" version >/dev/null 2>&1 || { log "crossbar does not run"; exit 1; }

# Pusher peer: sockudo (crates.io, a Rust Pusher Channels server;
# bench/pusher_bench.py), built from source with `cargo install --locked`:
# the `local` feature only (in-process adapter; memory app manager, cache and
# rate limiter; no Redis, no OpenTelemetry). Niced: it is a long build. One
# build script (metrics-exporter-tcp, a dependency whatever the features)
# needs protoc, from Debian's protobuf-compiler.
SOCKUDO_VERSION=5.2.0
SOCKUDO_FEATURES=local
if [ ! -f "$CACHE/sockudo/.done-$SOCKUDO_VERSION-$SOCKUDO_FEATURES" ]; then
  if ! command -v protoc >/dev/null; then
    log "apt-get install protobuf-compiler (protoc, for sockudo's build)"
    apt-get install -y -q protobuf-compiler >&2 \
      || { log "sockudo's build needs protoc: apt-get install protobuf-compiler"; exit 1; }
  fi
  log "cargo install sockudo@$SOCKUDO_VERSION --features $SOCKUDO_FEATURES"
  nice -n 19 cargo install sockudo --version "$SOCKUDO_VERSION" --locked \
    --root "$CACHE/sockudo" --no-default-features --features "$SOCKUDO_FEATURES" >&2
  touch "$CACHE/sockudo/.done-$SOCKUDO_VERSION-$SOCKUDO_FEATURES"
fi
"$CACHE/sockudo/bin/sockudo" --help >/dev/null 2>&1 || { log "sockudo does not run"; exit 1; }

# Rust: sprocket itself (target/release/sprocket), then the load tool and the
# tokio-tungstenite and mio-raw peers, which share one target dir under the
# (git-ignored) /target.
log "cargo build --release (sprocket)"
(cd "$ROOT" && cargo build --release -q)
export CARGO_TARGET_DIR="$ROOT/target/bench"
for crate in loadgen peers/tokio-tungstenite peers/mio-raw; do
  log "cargo build --release ($crate)"
  (cd "$ROOT/bench/$crate" && cargo build --release -q)
done
log "ready: cache $CACHE, binaries $CARGO_TARGET_DIR/release"
