#!/usr/bin/env bash
# The Pusher protocol tests with the real clients: every tests/pusher/*.test.js
# under node's test runner (pusher-js, laravel-echo and npm pusher, installed
# from package-lock.json), then sdk_python.py (PyPI pusher, installed from
# requirements.txt with pip into target/pusher-python). Each file starts its
# own sprocket.
#
# Usage: bash tests/pusher/run.sh [TEST_FILE...]  (*.test.js or sdk_python.py)
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
    set -- "$HERE"/*.test.js "$HERE"/sdk_python.py
fi
js=() py=()
for f in "$@"; do
    case $f in
        *.py) py+=("$f") ;;
        *) js+=("$f") ;;
    esac
done

status=0
if [ ${#js[@]} -gt 0 ]; then
    # --test-force-exit: pusher-js's WebSocket client (faye-websocket) arms a
    # 30 s close timer even when closing a socket the server already closed,
    # and never clears it; the process would idle that long after the tests.
    node --test --test-concurrency=1 --test-force-exit "${js[@]}" || status=1
fi

if [ ${#py[@]} -gt 0 ]; then
    command -v python3 >/dev/null || die "python3 not found (for sdk_python.py)"
    # pip install --target when requirements.txt changed since the last one.
    PYDIR=${CARGO_TARGET_DIR:-$ROOT/target}/pusher-python
    if ! cmp -s "$HERE/requirements.txt" "$PYDIR/.sprocket-installed-requirements"; then
        rm -rf "$PYDIR"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
            --target "$PYDIR" -r "$HERE/requirements.txt" \
            || die "pip install -r requirements.txt failed"
        cp "$HERE/requirements.txt" "$PYDIR/.sprocket-installed-requirements"
    fi
    for f in "${py[@]}"; do
        PYTHONPATH="$PYDIR" python3 "$f" || status=1
    done
fi
[ "$status" -eq 0 ] || die "FAILED"
