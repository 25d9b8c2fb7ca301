#!/usr/bin/env bash
# Browser tests: runs every tests/browser/*.test.js (node's test runner) in
# headless Chromium driven by playwright-core. Each test file starts its own
# sprocket and browser through lib/harness.js.
#
# Usage: bash tests/browser/run.sh [TEST_FILE...]
# Environment:
#   SPROCKET_BIN   server binary (default: target/release/sprocket, built with
#                  `cargo build --release`; when set, nothing is built)
#   CHROMIUM       browser binary (default: /usr/bin/chromium, from Debian's
#                  `chromium` package; .ci/run installs it)
# Exit status: 0 when every test passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
die() { echo "browser tests: $*" >&2; exit 1; }
log() { echo "browser tests: $*" >&2; }

# --- 1. Tools ----------------------------------------------------------------
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || die "Chromium not found at $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)"
command -v node >/dev/null || die "node not found (Node.js 20 or later is needed)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
    || die "Node.js 20 or later is needed, found $(node --version)"

# --- 2. playwright-core, from package-lock.json (node_modules is gitignored) --
# The stamp is written after a successful `npm ci`, so a lock change or a
# half-finished install installs again.
STAMP=$HERE/node_modules/.sprocket-installed-lock
if ! cmp -s "$HERE/package-lock.json" "$STAMP" 2>/dev/null; then
    log "installing playwright-core (npm ci)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp "$HERE/package-lock.json" "$STAMP"
fi

# --- 3. The server binary ----------------------------------------------------
if [ -z "${SPROCKET_BIN:-}" ]; then
    log "building sprocket (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
    SPROCKET_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sprocket
fi
[ -x "$SPROCKET_BIN" ] || die "server binary not executable: $SPROCKET_BIN"
SPROCKET_BIN=$(cd "$(dirname "$SPROCKET_BIN")" && pwd)/$(basename "$SPROCKET_BIN")
export SPROCKET_BIN

# --- 4. Run ------------------------------------------------------------------
if [ $# -eq 0 ]; then
    set -- "$HERE"/*.test.js
    [ -e "$1" ] || die "no test files in $HERE (*.test.js)"
fi

# node runs in its own process group, so whatever it started (servers,
# Chromium and its helpers) can be stopped together if it dies or we are
# interrupted.
NODE_PID=
# shellcheck disable=SC2317  # runs from the trap
cleanup() {
    [ -n "$NODE_PID" ] || return 0
    kill -TERM -- "-$NODE_PID" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 -- "-$NODE_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$NODE_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "running $# file(s) with $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null | head -n 1))"
setsid node --test --test-concurrency=1 --test-timeout=120000 "$@" &
NODE_PID=$!
status=0
wait "$NODE_PID" || status=$?
[ "$status" -eq 0 ] || die "FAILED (node --test exited with $status)"
log "all passed"
