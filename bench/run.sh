#!/usr/bin/env bash
# One command from a fresh clone: install the peers, build everything, run
# the interleaved comparison. Arguments go to run.py (--quick, --rounds N,
# --servers a,b, --scenarios echo,fanout, ...).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
bash "$HERE/peers/setup.sh"
exec python3 "$HERE/run.py" "$@"
