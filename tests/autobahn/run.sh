#!/usr/bin/env bash
# Run the Autobahn|Testsuite "fuzzingclient" against a sprocket server.
#
# Usage: bash tests/autobahn/run.sh [CASES...]
#   CASES   Autobahn case ids or globs (default: sections 1-11, e.g. "1.*").
# Environment:
#   SPROCKET_BIN   server binary (default: target/release/sprocket, built with
#                  `cargo build --release`; when set, nothing is built)
#   SPROCKET_ARGS  extra arguments for the server (word-split)
#   AB_DIR         tool cache (default: ~/.cache/sprocket-autobahn)
#   AB_OUT         output dir (default: target/autobahn)
#   AB_PYTHON2     Python 2.7 interpreter used to install the testsuite
#   AB_TIMEOUT     overall limit for wstest in seconds (default: 1800)
#   AB_STRICT_COMPRESSION  1: compression cases (sections 12, 13) must be OK,
#                  UNIMPLEMENTED (no permessage-deflate) fails them
# Exit status: that of check.py (0 = all cases acceptable), or 1 on setup errors.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AB_VERSION=25.10.1

AB_DIR=${AB_DIR:-$HOME/.cache/sprocket-autobahn}
AB_OUT=${AB_OUT:-$ROOT/target/autobahn}
SPROCKET_ARGS=${SPROCKET_ARGS:-}
AB_TIMEOUT=${AB_TIMEOUT:-1800}
CHECK_ARGS=()
if [ "${AB_STRICT_COMPRESSION:-0}" = 1 ]; then CHECK_ARGS+=(--strict-compression); fi

die() { echo "autobahn: $*" >&2; exit 1; }
log() { echo "autobahn: $*" >&2; }

# Default cases: sections 1-11 (there is no section 8; 12/13 are compression).
if [ $# -eq 0 ]; then
    set -- "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "9.*" "10.*" "11.*"
fi

# --- 1. The server binary ----------------------------------------------------
if [ -z "${SPROCKET_BIN:-}" ]; then
    log "building sprocket (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
    SPROCKET_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sprocket
fi
[ -x "$SPROCKET_BIN" ] || die "server binary not executable: $SPROCKET_BIN"

# --- 2. The testsuite (Python 2.7 only), cached in AB_DIR --------------------
VENV=$AB_DIR/venv-$AB_VERSION
WSTEST=$VENV/bin/wstest
# The marker is written last, so a half-finished install is redone.
if [ ! -f "$VENV/.installed" ]; then
    P2=${AB_PYTHON2:-}
    if [ -z "$P2" ]; then
        # Prefer pyenv's 2.7.x, then a python2.7 on PATH.
        for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python \
                    "$(command -v python2.7 || true)"; do
            if [ -x "$cand" ]; then P2=$cand; break; fi
        done
    fi
    [ -n "$P2" ] || die "Python 2.7 not found (needed by autobahntestsuite); set AB_PYTHON2"
    "$P2" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' \
        || die "$P2 is not Python 2.7"
    log "installing autobahntestsuite $AB_VERSION into $VENV (using $P2)"
    rm -rf "$VENV" "$AB_DIR/py2tools"
    mkdir -p "$AB_DIR"
    # virtualenv < 20.22 is the last line that can still create 2.7 envs.
    # pip's Python 2 deprecation noise goes to the log; shown on failure.
    if ! {
        "$P2" -m pip install -q --target "$AB_DIR/py2tools" 'virtualenv<20.22' &&
        PYTHONPATH="$AB_DIR/py2tools" "$P2" -m virtualenv -q "$VENV" &&
        "$VENV/bin/pip" install -q "autobahntestsuite==$AB_VERSION" &&
        "$WSTEST" --autobahnversion
    } >"$AB_DIR/install.log" 2>&1; then
        tail -n 30 "$AB_DIR/install.log" >&2
        die "installing autobahntestsuite failed (see $AB_DIR/install.log)"
    fi
    touch "$VENV/.installed"
fi

# --- 3. Spec and the list of cases it selects --------------------------------
mkdir -p "$AB_OUT"
AB_OUT=$(cd "$AB_OUT" && pwd)
rm -rf "$AB_OUT/reports"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Cases go through argv into python3, which does the JSON quoting.
python3 - "$AB_OUT" "$PORT" "$@" >"$AB_OUT/spec.json" <<'EOF'
import json, sys
out, port, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
json.dump({
    "options": {"failByDrop": False},
    "outdir": out + "/reports",
    "servers": [{"agent": "sprocket", "url": "ws://127.0.0.1:%s/echo" % port}],
    "cases": cases,
    "exclude-cases": [],
    "exclude-agent-cases": {},
}, sys.stdout, indent=2)
print()
EOF

# Expand the patterns with the testsuite's own matcher, so that the checker
# notices cases that never ran (wstest stops early if a connection fails).
"$VENV/bin/python" - "$AB_OUT/spec.json" >"$AB_OUT/cases.json" <<'EOF'
import json, sys
from autobahntestsuite.caseset import CaseSet
from autobahntestsuite.case import (CaseSetname, CaseBasename, Cases,
                                    CaseCategories, CaseSubCategories)
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
json.dump(cs.parseSpecCases(json.load(open(sys.argv[1]))), sys.stdout)
EOF
# wstest hangs forever when no case matches, so refuse that here.
[ "$(cat "$AB_OUT/cases.json")" != "[]" ] || die "no Autobahn case matches: $*"

# --- 4. Start the server -----------------------------------------------------
SERVER_PID=
WSTEST_PID=
# Stop a child: TERM, up to 5 s grace, then KILL. (Both run from the trap.)
# shellcheck disable=SC2317
stop() {
    kill -0 "$1" 2>/dev/null || return 0
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    if [ -n "$WSTEST_PID" ]; then stop "$WSTEST_PID"; fi
    if [ -n "$SERVER_PID" ]; then stop "$SERVER_PID"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $SPROCKET_BIN on 127.0.0.1:$PORT (log: $AB_OUT/server.log)"
# shellcheck disable=SC2086  # SPROCKET_ARGS is meant to be word-split
"$SPROCKET_BIN" --listen "127.0.0.1:$PORT" $SPROCKET_ARGS >"$AB_OUT/server.log" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + 20))
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 20 "$AB_OUT/server.log" >&2
        die "server exited before accepting connections"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "server did not listen on port $PORT within 20 s"
    sleep 0.1
done

# --- 5. Run the fuzzing client -----------------------------------------------
log "running wstest on cases: $* (log: $AB_OUT/wstest.log)"
# Run in the background and `wait`, so INT/TERM reach our traps at once
# (cleanup then stops wstest too). cwd is AB_OUT to keep any stray files there.
(cd "$AB_OUT" && exec timeout "$AB_TIMEOUT" "$WSTEST" -m fuzzingclient -s spec.json) \
    >"$AB_OUT/wstest.log" 2>&1 &
WSTEST_PID=$!
rc=0
wait "$WSTEST_PID" || rc=$?
WSTEST_PID=
if [ "$rc" -ne 0 ]; then
    tail -n 30 "$AB_OUT/wstest.log" >&2
    [ "$rc" -ne 124 ] || die "wstest timed out after ${AB_TIMEOUT}s (AB_TIMEOUT)"
    die "wstest failed with status $rc (see $AB_OUT/wstest.log)"
fi

# --- 6. Judge the results ----------------------------------------------------
# wstest exits 0 even when cases fail, so the checker decides.
status=0
python3 "$HERE/check.py" "$AB_OUT/reports" --expect "$AB_OUT/cases.json" \
    --markdown "$AB_OUT/summary.md" "${CHECK_ARGS[@]}" || status=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 20 "$AB_OUT/server.log" >&2
    log "FAIL: the server died during the run"
    status=1
fi
log "HTML report: $AB_OUT/reports/index.html"
exit "$status"
