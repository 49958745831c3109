#!/usr/bin/env bash
# Long fuzzing runs (NOT run in CI): every cargo-fuzz target, at nice 19, until RUNS
# executions or MAX_TIME seconds, whichever comes first, then one summary line per target
# (executions, exec/s, libFuzzer's final cov/ft, crashes).
#
#   scripts/fuzz.sh                              # every target, 10 million executions each
#   RUNS=100000 scripts/fuzz.sh listener         # one target, a quick run
#   MAX_TIME=3600 JOBS=2 scripts/fuzz.sh         # two targets at a time, at most 1 h each
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Built without a
# sanitizer (core forbids unsafe code; the sanitizer only slows safe Rust) but with debug
# assertions, so integer overflow panics. New inputs go to $OUT/corpus/<target> (default
# target/fuzz-runs), seeded from fuzz/corpus/<target>, which stays small and is replayed on
# stable by tests/tests/fuzz_corpus.rs; crashes go to fuzz/artifacts/<target>/. To keep a
# crash as a regression input: copy it to fuzz/corpus/<target>/ and add a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
MAX_TIME="${MAX_TIME:-7200}"
JOBS="${JOBS:-1}"
OUT="${OUT:-target/fuzz-runs}"
ALL=(kcp_segment_decode kcp_machine fec_decoder session_packet session_sequence listener smux_frame_decode smux_session snappy_stream)
[ "$#" -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL[@]}")

# Longer inputs only slow the scripted targets down (a 64 KiB segment takes ~30 script bytes).
max_len() {
    case "$1" in
    session_sequence | listener | kcp_machine | fec_decoder | smux_session) echo 1024 ;;
    *) echo 4096 ;;
    esac
}

(cd fuzz && cargo +nightly fuzz build --sanitizer none --debug-assertions)
bin_dir="fuzz/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$OUT/bin"

run_one() {
    local t="$1"
    # A private copy, so a rebuild during the run cannot touch the running binary.
    cp "$bin_dir/$t" "$OUT/bin/$t.new"
    mv -f "$OUT/bin/$t.new" "$OUT/bin/$t"
    mkdir -p "$OUT/corpus/$t" "fuzz/artifacts/$t"
    nice -n 19 "$OUT/bin/$t" "$OUT/corpus/$t" "fuzz/corpus/$t" \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len="$(max_len "$t")" \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        >"$OUT/$t.log" 2>&1 || true
    summary "$t"
}

summary() {
    local t="$1" log="$OUT/$1.log" last execs rate
    last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
    execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)"
    rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)"
    local crashes
    crashes="$(find "fuzz/artifacts/$t" -type f | wc -l)"
    printf '%-20s executions %-10s exec/s %-7s %s crashes %s\n' "$t" "${execs:-?}" "${rate:-?}" \
        "$(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+')" "$crashes"
}

running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
