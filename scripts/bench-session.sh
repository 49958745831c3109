#!/usr/bin/env bash
# Session-layer throughput, tether vs kcp-go 5.6.1 on this machine, in one job:
# per-cipher encrypt+decrypt of a 1400-byte packet, FEC 10/3 encode and decode.
#
#   scripts/bench-session.sh            # markdown table on stdout, progress on stderr
#
# 1. builds tests/go/sessionbench OFFLINE in GOPATH mode against Debian's kcp-go sources
#    (golang-github-xtaci-kcp-dev under /usr/share/gocode) and builds core/benches/session.rs;
# 2. runs kcp-go's own benchmark loops (testing.Benchmark), then `cargo bench --bench
#    session` — one after the other, so neither competes with the other for cores;
# 3. reads criterion's target/criterion/<group>/<bench>/new/estimates.json (mean point
#    estimate, ns per iteration) and prints
#    | path | tether MB/s | kcp-go MB/s | ratio |   (MB = 10^6 bytes, ratio = tether/kcp-go).
#
# Targets (the issue): every ratio >= 1.00, AES (aes, aes-128, aes-192) >= 1.50; rows that
# miss are listed after the table. The exit status is 0 either way (it measures, it does not
# gate). Environment: GOPATH_DEB (default /usr/share/gocode); GO_BENCHTIME (default 1s,
# per Go benchmark); CARGO_BENCH_ARGS (extra args for the criterion binary, e.g.
# "crypt/aes" to filter).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
gopath="${GOPATH_DEB:-/usr/share/gocode}"
benchtime="${GO_BENCHTIME:-1s}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
crit="$target_dir/criterion"

die() { echo "bench-session.sh: error: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "'go' not found in PATH (install Debian's golang-go)"
command -v jq >/dev/null 2>&1 || die "'jq' not found in PATH"
[ -f "$gopath/src/github.com/xtaci/kcp-go/kcp.go" ] ||
	die "kcp-go sources not found at $gopath/src/github.com/xtaci/kcp-go (install golang-github-xtaci-kcp-dev)"

# Build both first.
bindir="$target_dir/go-bin"
mkdir -p "$bindir"
echo "bench-session.sh: $(go version)" >&2
(
	cd tests/go/sessionbench
	GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
		GOCACHE="${GOCACHE:-$target_dir/go-cache}" go build -o "$bindir/sessionbench" .
) || die "building tests/go/sessionbench failed"
cargo bench -p tether-core --bench session --no-run >&2 || die "building the session bench failed"

# kcp-go: "name MB/s" lines.
gofile="$(mktemp)"
trap 'rm -f "$gofile"' EXIT
echo "bench-session.sh: running kcp-go's benchmarks (-test.benchtime=$benchtime each)" >&2
"$bindir/sessionbench" -test.benchtime="$benchtime" >"$gofile" || die "sessionbench failed"

# tether: criterion. Stale results must not be mistaken for this run's.
rm -rf "$crit/crypt" "$crit/fec"
echo "bench-session.sh: running cargo bench -p tether-core --bench session" >&2
# shellcheck disable=SC2086
cargo bench -p tether-core --bench session -- ${CARGO_BENCH_ARGS:-} >&2 || die "cargo bench failed"

# Bytes per iteration, as both sides count them (SetBytes / Throughput::Bytes).
bytes_for() {
	case "$1" in
	crypt/*) echo 2800 ;; # encrypt + decrypt of 1400 bytes
	fec/*) echo 1400 ;;
	*) die "unknown path $1" ;;
	esac
}

echo "| path | tether MB/s | kcp-go MB/s | ratio |"
echo "|---|---:|---:|---:|"
misses=()
while read -r path gombs; do
	est="$crit/$path/new/estimates.json"
	if [ ! -f "$est" ]; then
		echo "| $path | – | $gombs | – |"
		continue
	fi
	ns="$(jq '.mean.point_estimate' "$est")"
	bytes="$(bytes_for "$path")"
	row="$(awk -v b="$bytes" -v ns="$ns" -v g="$gombs" 'BEGIN {
		m = b * 1000 / ns; r = m / g
		printf "%.1f %.1f %.2f", m, g, r }')"
	read -r ours theirs ratio <<<"$row"
	echo "| $path | $ours | $theirs | ${ratio}× |"
	need=1.00
	case "$path" in crypt/aes | crypt/aes-128 | crypt/aes-192) need=1.50 ;; esac
	if awk -v r="$ratio" -v n="$need" 'BEGIN { exit !(r < n) }'; then
		misses+=("$path (${ratio}× < ${need}×)")
	fi
done <"$gofile"

echo
if [ "${#misses[@]}" -eq 0 ]; then
	echo "All paths meet the target (>= 1.00×, AES >= 1.50×)."
else
	echo "Below target: ${misses[*]}"
fi
