#!/usr/bin/env bash
# The Pusher protocol tests with the real clients: every tests/pusher/*.test.js
# under node's test runner (pusher-js, laravel-echo and npm pusher, installed
# from package-lock.json). Each file starts its own sprocket.
#
# Usage: bash tests/pusher/run.sh [TEST_FILE...]
# Environment: SPROCKET_BIN (default target/release/sprocket, built here
# with `cargo build --release` when unset); PUSHER_LOG=1 logs pusher-js's
# traffic.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
die() { echo "pusher tests: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found (Node.js 20 or later is needed)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
    || die "Node.js 20 or later is needed, found $(node --version)"

# npm ci when the lock changed since the last install (the stamp is shared
# with tests/pusher_sdk.rs, which installs the same way).
STAMP=$HERE/node_modules/.sprocket-installed-lock
if ! cmp -s "$HERE/package-lock.json" "$STAMP"; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$HERE/package-lock.json" "$STAMP"
fi

if [ -z "${SPROCKET_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q)
fi

if [ $# -eq 0 ]; then
    set -- "$HERE"/*.test.js
fi
# --test-force-exit: pusher-js's WebSocket client (faye-websocket) arms a
# 30 s close timer even when closing a socket the server already closed,
# and never clears it; the process would idle that long after the tests.
exec node --test --test-concurrency=1 --test-force-exit "$@"
