#!/usr/bin/env bash
# A real browser talks permessage-deflate to sprocket: headless Chromium
# (which always offers the extension) loads a page from a small local HTTP
# server, opens ws://127.0.0.1:PORT/echo and exchanges messages; the page
# checks the echoes and the negotiated extension, and the server's debug
# log must show compressed messages in both directions.
#
# Usage: bash tests/browser/run.sh
# Environment:
#   SPROCKET_BIN  server binary (default: target/release/sprocket, built)
#   BROWSER_DIR   npm cache for playwright-core (default: ~/.cache/sprocket-browser)
#   CHROMIUM      browser binary (default: /usr/bin/chromium, installed with
#                 apt-get when missing)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROWSER_DIR=${BROWSER_DIR:-$HOME/.cache/sprocket-browser}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PLAYWRIGHT_VERSION=1.65.1

log() { echo "browser: $*" >&2; }
die() { log "$*"; exit 1; }

if [ ! -x "$CHROMIUM" ]; then
    log "installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM"
command -v node >/dev/null || die "node not found"

if [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
    log "installing playwright-core $PLAYWRIGHT_VERSION into $BROWSER_DIR"
    mkdir -p "$BROWSER_DIR"
    (cd "$BROWSER_DIR" && npm install --silent --no-audit --no-fund \
        "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null)
fi

if [ -z "${SPROCKET_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    SPROCKET_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sprocket
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=sprocket=debug "$SPROCKET_BIN" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "server exited"; }
    sleep 0.05
done

status=0
NODE_PATH="$BROWSER_DIR/node_modules" CHROMIUM="$CHROMIUM" WS_PORT="$PORT" \
    PROFILE_DIR="$WORK/profile" timeout 120 node "$HERE/deflate.js" || status=$?

kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
if [ "$status" -ne 0 ]; then
    tail -n 20 "$WORK/server.log" >&2
    die "FAIL: browser exchange failed"
fi

# The server's own account: negotiated, and compressed both ways.
grep -q "open at /echo (permessage-deflate" "$WORK/server.log" \
    || { cat "$WORK/server.log" >&2; die "FAIL: server did not negotiate permessage-deflate"; }
line=$(grep -o "permessage-deflate: [0-9]* compressed messages in, [0-9]* out" "$WORK/server.log" | tail -n 1)
[ -n "$line" ] || { cat "$WORK/server.log" >&2; die "FAIL: no close summary in the server log"; }
read -r msgs_in msgs_out < <(echo "$line" | sed -E 's/.*: ([0-9]+) compressed messages in, ([0-9]+) out/\1 \2/')
log "server: $line"
[ "$msgs_in" -gt 0 ] || die "FAIL: the browser sent no compressed message"
[ "$msgs_out" -gt 0 ] || die "FAIL: the server sent no compressed message"
log "PASS: Chromium and sprocket exchanged compressed messages"
