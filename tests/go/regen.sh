#!/usr/bin/env bash
# Regenerate the kcp-go golden vectors in tests/vectors/kcp/ from kcp-go 5.6.1.
#
# Builds tests/go/kcpvectors OFFLINE in GOPATH mode against Debian's packaged sources
# (golang-github-xtaci-kcp-dev and its dependencies under /usr/share/gocode) into
# target/go-bin/kcpvectors, then runs it into tests/vectors/kcp/.
#
#   tests/go/regen.sh            # rewrite the checked-in vectors
#   tests/go/regen.sh <outdir>   # write them somewhere else (e.g. to diff)
#
# Fails loudly if `go` or the kcp-go package is missing (use it in CI as is).
# Environment: GOPATH_DEB (default /usr/share/gocode) overrides where the sources live.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gopath="${GOPATH_DEB:-/usr/share/gocode}"
out="${1:-$root/tests/vectors/kcp}"

die() { echo "regen.sh: error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "'go' not found in PATH (install Debian's golang-go)"
[ -f "$gopath/src/github.com/xtaci/kcp-go/kcp.go" ] ||
	die "kcp-go sources not found at $gopath/src/github.com/xtaci/kcp-go (install golang-github-xtaci-kcp-dev)"

bindir="$root/target/go-bin"
mkdir -p "$bindir"
export GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOFLAGS= GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-$root/target/go-cache}"

echo "regen.sh: $(go version)"
(cd "$here/kcpvectors" && go build -o "$bindir/kcpvectors" .) || die "building tests/go/kcpvectors failed"

mkdir -p "$out"
rm -f "$out"/*.txt
"$bindir/kcpvectors" "$out" || die "kcpvectors failed"
echo "regen.sh: wrote $(ls "$out"/*.txt | wc -l) scenarios to $out"
