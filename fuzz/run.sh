#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each,
# prints how many inputs each one executed, and exits non-zero if any target
# found a crash, a timeout or an OOM (the input lands in fuzz/artifacts/T/).
#
#   FUZZ_SECONDS=300 fuzz/run.sh            # all targets
#   FUZZ_TARGETS="frames utf8" fuzz/run.sh  # some of them
#   FUZZ_JOBS=1 fuzz/run.sh                 # one at a time (default: nproc)
#
# libFuzzer writes the inputs it finds into the first corpus directory given;
# that is a temporary one, so only the committed seeds in fuzz/corpus/T/
# (read, never written) stay in the tree.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# cargo-fuzz needs nightly (-Zsanitizer); without a nightly toolchain, let
# the stable one accept nightly flags. (Asking rustup rather than trying
# `cargo +nightly`, which some rustup versions answer by installing it.)
if command -v rustup >/dev/null && rustup toolchain list | grep '^nightly' >/dev/null; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

targets="${FUZZ_TARGETS:-$("${fuzz[@]}" list)}"
"${fuzz[@]}" build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Targets run side by side, FUZZ_JOBS at a time (the number of cores by
# default): each libFuzzer process is single-threaded, so on N cores N
# targets take the time of one.
jobs="${FUZZ_JOBS:-$(nproc)}"

one() {
    local t="$1" log="$work/$1.log"
    mkdir -p "$work/corpus-$t" fuzz/corpus/"$t"
    if "${fuzz[@]}" run "$t" "$work/corpus-$t" fuzz/corpus/"$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        echo ok >"$work/$t.rc"
    else
        echo failed >"$work/$t.rc"
    fi
    echo "== $t: done ($(cat "$work/$t.rc"))"
}

echo "== ${seconds}s per target, $jobs at a time"
running=0
for t in $targets; do
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
    one "$t" &
    running=$((running + 1))
done
wait

failed=()
summary=()
for t in $targets; do
    log="$work/$t.log"
    if [ "$(cat "$work/$t.rc" 2>/dev/null)" != ok ]; then
        failed+=("$t")
        echo "== $t FAILED; the end of its log:"
        tail -n 60 "$log"
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    summary+=("$(printf '%-14s %12s execs %10s exec/s %6s corpus' \
        "$t" "${runs:-?}" "${rate:-?}" "$(find "$work/corpus-$t" -type f | wc -l)")")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
