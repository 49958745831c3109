#!/usr/bin/env bash
# tether vs kcp-go 5.6.1 side by side on loopback: bulk throughput, CPU s per GiB, 64-byte echo
# RTT p50/p99, and idle sessions' CPU and RSS, as markdown tables with ratios (the targets they
# are held against are in the README).
#
#   scripts/bench-kcp.sh                                   # defaults: 256MiB, 2000 echoes, 5000 idle sessions, 10s hold
#   scripts/bench-kcp.sh --bytes 32MiB --idle-sessions 500 --hold 3s   # quick check
#   scripts/bench-kcp.sh --json                            # one JSON object instead of tables
#   scripts/bench-kcp.sh --kcppeer /path/to/kcppeer        # use a prebuilt Go peer
#
# Builds the release `tether` binary, which builds tests/go/kcppeer OFFLINE (GOPATH mode against
# Debian's golang-github-xtaci-kcp-dev) into target/go-bin/kcppeer unless --kcppeer is given;
# without Go it exits 2. See `tether bench --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tether-cli
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/tether" bench "$@"
