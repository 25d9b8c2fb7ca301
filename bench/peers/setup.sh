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
