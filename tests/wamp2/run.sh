#!/usr/bin/env bash
# WAMP v2 interop: Autobahn|Python (suite.py) and AutobahnJS (suite.js),
# clients this project did not write, against Crossbar (the reference
# router) and against sprocket, on ephemeral 127.0.0.1 ports.
#
# Usage: bash tests/wamp2/run.sh [crossbar|sprocket|both]   (default: both)
#
# Each router's JSON lines go to $WAMP2_OUT/ROUTER.jsonl. With `both`, a
# per-case table crossbar vs sprocket is printed and the run fails if a case
# passed on Crossbar and failed (or is missing) on sprocket. With one router,
# the run fails if any case failed.
#
# Environment:
#   SPROCKET_BIN   server binary (default: target/release/sprocket, built here
#                  with `cargo build --release`; when set, nothing is built)
#   WAMP2_CACHE    where the virtualenvs live (default ~/.cache/sprocket-wamp2)
#   WAMP2_PYTHON   a Python 3.11 interpreter (default: python3.11)
#   WAMP2_OUT      results and logs (default: target/wamp2)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AUTOBAHN_VERSION=26.10.2
CROSSBAR_VERSION=26.10.1
REALM=realm1
CACHE=${WAMP2_CACHE:-$HOME/.cache/sprocket-wamp2}
OUT=${WAMP2_OUT:-$ROOT/target/wamp2}

die() { echo "wamp2: $*" >&2; exit 1; }
log() { echo "wamp2: $*" >&2; }

MODE=${1:-both}
case $MODE in
    crossbar) ROUTERS=(crossbar) ;;
    sprocket) ROUTERS=(sprocket) ;;
    both) ROUTERS=(crossbar sprocket) ;;
    *) die "usage: run.sh [crossbar|sprocket|both]" ;;
esac

# --- 1. Prerequisites --------------------------------------------------------
command -v node >/dev/null || die "node not found (Node.js 20 or later is needed)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
    || die "Node.js 20 or later is needed, found $(node --version)"
PY=${WAMP2_PYTHON:-$(command -v python3.11 || true)}
[ -n "$PY" ] || die "python3.11 not found (Autobahn|Python 26 and Crossbar 26 are installed for 3.11); set WAMP2_PYTHON"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "$PY is not Python 3.11"

# A virtualenv with PACKAGE installed under the pins of CONSTRAINTS. The
# stamp is a copy of the constraints file, written after a successful
# install: a changed pin or an interrupted install installs again.
venv() {
    local dir=$1 constraints=$2; shift 2
    local stamp=$dir/.sprocket-installed-constraints
    if cmp -s "$constraints" "$stamp" 2>/dev/null; then return 0; fi
    log "installing $* into $dir (a few minutes for crossbar)"
    rm -rf "$dir"
    mkdir -p "$CACHE"
    if ! {
        "$PY" -m venv "$dir" &&
        "$dir/bin/pip" install -q --disable-pip-version-check -c "$constraints" "$@"
    } >"$dir.install.log" 2>&1; then
        tail -n 30 "$dir.install.log" >&2
        die "installing $* failed (see $dir.install.log)"
    fi
    cp "$constraints" "$stamp"
}

# msgpack is a plain dependency of autobahn 26.10.2 (on CPython); the
# `serialization` extra only adds bjdata (UBJSON), which fails to import
# against numpy 2 and prints a traceback on every start: not installed.
CLIENT_VENV=$CACHE/venv-autobahn-$AUTOBAHN_VERSION
venv "$CLIENT_VENV" "$HERE/client-constraints.txt" "autobahn[asyncio]==$AUTOBAHN_VERSION"
"$CLIENT_VENV/bin/python" -c 'import autobahn.asyncio.wamp, msgpack; from autobahn.wamp.serializer import MsgPackSerializer' \
    || die "the client virtualenv $CLIENT_VENV is broken (remove it)"

CROSSBAR_VENV=$CACHE/venv-crossbar-$CROSSBAR_VERSION
if [[ " ${ROUTERS[*]} " == *" crossbar "* ]]; then
    venv "$CROSSBAR_VENV" "$HERE/crossbar-constraints.txt" "crossbar==$CROSSBAR_VERSION"
    [ -x "$CROSSBAR_VENV/bin/crossbar" ] || die "no crossbar in $CROSSBAR_VENV (remove it)"
fi

STAMP=$HERE/node_modules/.sprocket-installed-lock
if ! cmp -s "$HERE/package-lock.json" "$STAMP" 2>/dev/null; then
    log "installing autobahn (npm ci)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp "$HERE/package-lock.json" "$STAMP"
fi

if [[ " ${ROUTERS[*]} " == *" sprocket "* ]] && [ -z "${SPROCKET_BIN:-}" ]; then
    log "building sprocket (cargo build --release)"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    SPROCKET_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sprocket
fi

mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wamp2.XXXXXX")

# --- 2. Processes and cleanup ------------------------------------------------
ROUTER_PID=   # a process group leader (started with setsid)
CLIENT_PID=
# Stop process group $1: TERM, up to 10 s grace, then KILL.
# shellcheck disable=SC2317  # runs from the trap too
stop_group() {
    kill -0 -- "-$1" 2>/dev/null || return 0
    kill -TERM -- "-$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    if [ -n "$CLIENT_PID" ]; then kill "$CLIENT_PID" 2>/dev/null || true; fi
    if [ -n "$ROUTER_PID" ]; then stop_group "$ROUTER_PID"; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds once ws://127.0.0.1:$1/wamp answers a WebSocket handshake asking
# for subprotocol $2 with 101; prints the subprotocol the server selected.
handshake() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
    s.settimeout(2)
    s.sendall(b"GET /wamp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + sys.argv[2].encode() +
              b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
except OSError:
    sys.exit(1)
if not head.startswith(b"HTTP/1.1 101"):
    sys.exit(1)
for line in head.split(b"\r\n")[1:]:
    name, _, value = line.partition(b":")
    if name.strip().lower() == b"sec-websocket-protocol":
        print(value.strip().decode("latin-1"))
        break
else:
    print("(none)")
EOF
}

start_crossbar() {
    local port=$1 dir=$TMP/crossbar/.crossbar
    mkdir -p "$dir"
    # One router worker, realm1, the anonymous role allowed everything and
    # disclosing callers and publishers (Autobahn|Python 26 cannot ask for it
    # with disclose_me), WebSocket at /wamp with JSON and MessagePack.
    # The meta API (wamp.session.*, wamp.subscription.on_*) is on by default
    # and covered by the "" prefix permission.
    cat >"$dir/config.json" <<EOF
{
  "version": 2,
  "controller": {},
  "workers": [{
    "type": "router",
    "realms": [{
      "name": "$REALM",
      "roles": [{
        "name": "anonymous",
        "permissions": [{
          "uri": "", "match": "prefix",
          "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
          "disclose": {"caller": true, "publisher": true},
          "cache": true
        }]
      }]
    }],
    "transports": [{
      "type": "web",
      "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": $port},
      "paths": {"wamp": {"type": "websocket", "serializers": ["json", "msgpack"]}}
    }]
  }]
}
EOF
    setsid "$CROSSBAR_VENV/bin/crossbar" start --cbdir "$dir" >"$OUT/crossbar.log" 2>&1 &
    ROUTER_PID=$!
}

start_sprocket() {
    [ -x "$SPROCKET_BIN" ] || die "server binary not executable: $SPROCKET_BIN"
    RUST_LOG=${RUST_LOG:-info} setsid "$SPROCKET_BIN" --listen "127.0.0.1:$1" >"$OUT/sprocket.log" 2>&1 &
    ROUTER_PID=$!
}

# --- 3. One router: start, both suites, stop ---------------------------------
failed=()
run_router() {
    local router=$1 port
    port=$(free_port)
    local results=$OUT/$router.jsonl
    : >"$results"
    local t0=$SECONDS
    "start_$router" "$port"
    local deadline=$((SECONDS + 90))
    until handshake "$port" wamp.2.json >/dev/null; do
        if ! kill -0 "$ROUTER_PID" 2>/dev/null; then
            tail -n 20 "$OUT/$router.log" >&2
            log "FAIL: $router exited before accepting WAMP v2 on /wamp (log: $OUT/$router.log)"
            failed+=("$router did not start"); ROUTER_PID=; return
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$OUT/$router.log" >&2
            log "FAIL: $router did not accept WAMP v2 on /wamp within 90 s"
            failed+=("$router did not start"); stop_group "$ROUTER_PID"; ROUTER_PID=; return
        fi
        sleep 0.2
    done
    local url=ws://127.0.0.1:$port/wamp
    log "$router at $url (realm $REALM) after $((SECONDS - t0)) s; log: $OUT/$router.log"
    # A router that does not select the v2 subprotocols fails at once,
    # rather than in every case after its timeout.
    local want got
    for want in wamp.2.json wamp.2.msgpack; do
        got=$(handshake "$port" "$want" || echo "(no 101)")
        if [ "$got" != "$want" ]; then
            log "FAIL: $router answered a handshake for $want with subprotocol $got: no WAMP v2 on /wamp; suites not run"
            failed+=("$router does not speak $want"); stop_group "$ROUTER_PID"; ROUTER_PID=; return
        fi
    done
    local name rc
    for name in suite.py suite.js; do
        local cmd=("$CLIENT_VENV/bin/python" "$HERE/suite.py")
        [ "$name" = suite.py ] || cmd=(node "$HERE/suite.js")
        # In the background and `wait`ed, so INT/TERM reach the traps at once.
        timeout 600 "${cmd[@]}" "$url" "$REALM" >>"$results" 2>"$OUT/$router.$name.log" &
        CLIENT_PID=$!
        rc=0; wait "$CLIENT_PID" || rc=$?; CLIENT_PID=
        tail -n 1 "$OUT/$router.$name.log" >&2
        if [ "$rc" -ne 0 ]; then
            [ "$rc" -ne 124 ] || log "$name timed out after 600 s"
            log "FAIL: $name against $router (exit status $rc; stderr: $OUT/$router.$name.log)"
            failed+=("$name against $router")
        fi
    done
    if ! kill -0 "$ROUTER_PID" 2>/dev/null; then
        failed+=("$router died during the run")
    fi
    stop_group "$ROUTER_PID"; ROUTER_PID=
    if [ "$router" = sprocket ] && grep -q panicked "$OUT/sprocket.log"; then
        failed+=("sprocket's log shows a panic")
    fi
    grep '"ok": *false' "$results" | cut -c1-400 >&2 || true
    log "$router: $(grep -c '"ok": *true' "$results" || true) of $(grep -c '"case"' "$results" || true) cases passed ($((SECONDS - t0)) s)"
}

for r in "${ROUTERS[@]}"; do run_router "$r"; done

# --- 4. Comparison -----------------------------------------------------------
if [ "$MODE" = both ]; then
    rc=0
    "$PY" - "$OUT/crossbar.jsonl" "$OUT/sprocket.jsonl" <<'EOF' || rc=$?
import json, sys

def load(path):
    out = {}
    try:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                out[d["case"]] = d
    except FileNotFoundError:
        pass
    return out

cb, sp = load(sys.argv[1]), load(sys.argv[2])
mark = lambda d: "-" if d is None else ("pass" if d["ok"] else "FAIL")
regressions = []
print(f"{'case':<58} {'crossbar':<9} {'sprocket':<9} got")
for case in sorted(set(cb) | set(sp)):
    a, b = cb.get(case), sp.get(case)
    same = ""
    if a and b and a["ok"] and b["ok"]:
        same = "same" if a.get("got") == b.get("got") else "differs: %s vs %s" % (
            json.dumps(a.get("got")), json.dumps(b.get("got")))
    print(f"{case:<58} {mark(a):<9} {mark(b):<9} {same}"[:400])
    if a and a["ok"] and not (b and b["ok"]):
        regressions.append(case)
if not cb:
    print("no Crossbar results", file=sys.stderr)
    sys.exit(1)
if regressions:
    more = f" and {len(regressions) - 20} more" if len(regressions) > 20 else ""
    print(f"{len(regressions)} cases pass on Crossbar and fail on sprocket: "
          + ", ".join(regressions[:20]) + more, file=sys.stderr)
    sys.exit(1)
print(f"sprocket passes every case Crossbar passes ({sum(1 for d in cb.values() if d['ok'])})")
EOF
    [ "$rc" -eq 0 ] || failed+=("sprocket differs from Crossbar")
fi

if [ "${#failed[@]}" -ne 0 ]; then
    die "FAILED: $(printf '%s; ' "${failed[@]}")"
fi
log "passed (${ROUTERS[*]})"
