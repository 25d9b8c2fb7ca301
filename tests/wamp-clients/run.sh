#!/usr/bin/env bash
# Interoperability: real WAMP v1 clients this project did not write, against
# the sprocket binary's broker at /wamp.
#   node/client.js    npm wamp1 0.0.3 over npm ws (Node.js 20+)
#   python/client.py  PyPI autobahn 0.8.15 (autobahn.wamp1, Twisted; Python 2.7)
# Both run (even if the first fails); the exit status is 1 if either failed.
#
# Usage: bash tests/wamp-clients/run.sh
# Environment:
#   SPROCKET_BIN        server binary (default: target/release/sprocket, built
#                       with `cargo build --release`; when set, nothing is built)
#   WAMP_CLIENTS_CACHE  where the Python 2.7 virtualenv lives
#                       (default: ~/.cache/sprocket-wamp-clients)
#   WAMP_PYTHON2        Python 2.7 interpreter used to make that virtualenv
#   WAMP_OUT            logs (default: target/wamp-clients)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AUTOBAHN_VERSION=0.8.15
TWISTED_VERSION=20.3.0
CACHE=${WAMP_CLIENTS_CACHE:-$HOME/.cache/sprocket-wamp-clients}
OUT=${WAMP_OUT:-$ROOT/target/wamp-clients}

die() { echo "wamp clients: $*" >&2; exit 1; }
log() { echo "wamp clients: $*" >&2; }

# --- 1. Node client: wamp1 + ws from package-lock.json -----------------------
command -v node >/dev/null || die "node not found (Node.js 20 or later is needed)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
    || die "Node.js 20 or later is needed, found $(node --version)"
NODE_DIR=$HERE/node
# Written after a successful `npm ci`: a changed lock or an interrupted
# install installs again.
STAMP=$NODE_DIR/node_modules/.sprocket-installed-lock
if ! cmp -s "$NODE_DIR/package-lock.json" "$STAMP" 2>/dev/null; then
    log "installing wamp1 and ws (npm ci)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp "$NODE_DIR/package-lock.json" "$STAMP"
fi

# --- 2. Python client: autobahn 0.8.15 in a Python 2.7 virtualenv ------------
VENV=$CACHE/venv-autobahn-$AUTOBAHN_VERSION-twisted-$TWISTED_VERSION
if [ ! -f "$VENV/.installed" ]; then
    P2=${WAMP_PYTHON2:-}
    if [ -z "$P2" ]; then
        for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python \
                    "$(command -v python2.7 || true)"; do
            if [ -x "$cand" ]; then P2=$cand; break; fi
        done
    fi
    [ -n "$P2" ] || die "Python 2.7 not found (autobahn 0.8.15 needs it); set WAMP_PYTHON2"
    "$P2" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' || die "$P2 is not Python 2.7"
    log "installing autobahn $AUTOBAHN_VERSION and Twisted $TWISTED_VERSION into $VENV (using $P2)"
    rm -rf "$VENV" "$CACHE/py2tools"
    mkdir -p "$CACHE"
    # virtualenv < 20.22 is the last line that still makes 2.7 environments.
    if ! {
        "$P2" -m pip install -q --target "$CACHE/py2tools" 'virtualenv<20.22' &&
        PYTHONPATH="$CACHE/py2tools" "$P2" -m virtualenv -q "$VENV" &&
        "$VENV/bin/pip" install -q "autobahn[twisted]==$AUTOBAHN_VERSION" "Twisted==$TWISTED_VERSION" &&
        "$VENV/bin/python" -c 'import autobahn.wamp1.protocol, autobahn.twisted.websocket'
    } >"$CACHE/install.log" 2>&1; then
        tail -n 30 "$CACHE/install.log" >&2
        die "installing autobahn failed (see $CACHE/install.log)"
    fi
    touch "$VENV/.installed"
fi

# --- 3. The server -----------------------------------------------------------
if [ -z "${SPROCKET_BIN:-}" ]; then
    log "building sprocket (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
    SPROCKET_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sprocket
fi
[ -x "$SPROCKET_BIN" ] || die "server binary not executable: $SPROCKET_BIN"
mkdir -p "$OUT"
SERVER_LOG=$OUT/server.log

SERVER_PID=
CLIENT_PID=
# Stop a child: TERM, up to 5 s grace, then KILL.
# shellcheck disable=SC2317  # runs from the trap too
stop() {
    kill -0 "$1" 2>/dev/null || return 0
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    if [ -n "$CLIENT_PID" ]; then stop "$CLIENT_PID"; fi
    if [ -n "$SERVER_PID" ]; then stop "$SERVER_PID"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port 0: the server picks a free port and logs it.
# Pushes from the backend come in through POST /publish on the admin port.
PUBLISH_SECRET=interop-$$-$RANDOM
export PUBLISH_SECRET
SPROCKET_PUBLISH_SECRET=$PUBLISH_SECRET RUST_LOG=${RUST_LOG:-info} \
    "$SPROCKET_BIN" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
ADDR=
deadline=$((SECONDS + 20))
while [ -z "$ADDR" ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 20 "$SERVER_LOG" >&2
        die "server exited before listening"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "server did not report its address within 20 s"
    ADDR=$(sed -n 's|.*listening on ws://\([^ ]*\).*|\1|p' "$SERVER_LOG" | head -n 1)
    [ -n "$ADDR" ] || sleep 0.05
done
URL=ws://$ADDR/wamp
ADMIN=$(sed -n 's|.*admin on http://\([^ ]*\).*|\1|p' "$SERVER_LOG" | head -n 1)
[ -n "$ADMIN" ] || die "server did not report its admin address"
export PUBLISH_URL=http://$ADMIN/publish
log "sprocket at $URL, pushes to $PUBLISH_URL (log: $SERVER_LOG)"

# --- 4. The clients ----------------------------------------------------------
failed=()
run_client() {
    local name=$1; shift
    log "--- $name"
    # In the background and `wait`ed, so INT/TERM reach the traps at once.
    timeout 120 "$@" "$URL" &
    CLIENT_PID=$!
    local rc=0
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -ne 124 ] || log "$name timed out after 120 s"
        log "FAIL: $name (exit status $rc)"
        failed+=("$name")
    fi
}
run_client "npm wamp1 0.0.3 (Node $(node --version))" node "$HERE/node/client.js"
run_client "PyPI autobahn $AUTOBAHN_VERSION (Python 2.7, Twisted $TWISTED_VERSION)" \
    "$VENV/bin/python" "$HERE/python/client.py"

# --- 5. The server must have survived, and stop cleanly -----------------------
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    failed+=("server died during the run")
else
    kill "$SERVER_PID"
    rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    [ "$rc" -eq 0 ] || failed+=("server exited with $rc on SIGTERM")
fi
if grep -q "panicked" "$SERVER_LOG"; then
    failed+=("server log shows a panic")
fi
if [ "${#failed[@]}" -ne 0 ]; then
    tail -n 20 "$SERVER_LOG" >&2
    die "FAILED: $(printf '%s; ' "${failed[@]}")"
fi
log "both clients passed"
