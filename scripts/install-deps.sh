#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: Debian's Go toolchain and the
# real Go peers (kcp-go, smux, reedsolomon, x/crypto, kcptun) that the interop and golden-vector
# tests build against offline, and skywind3000's C ikcp as PyPI's `kcp` 0.1.6 vendors it (built
# from source by pip; tests/py/ikcppeer.py drives it). Idempotent; needs root (as CI and the
# dev machines run).
set -euo pipefail
pkgs=(golang-go golang-github-xtaci-kcp-dev golang-github-xtaci-smux-dev
      golang-github-klauspost-reedsolomon-dev golang-golang-x-crypto-dev kcptun
      golang-github-golang-snappy-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
go version
# The C ikcp peer of tests/tests/interop_ikcp.rs (python3 is pyenv's on CI and dev machines).
if ! python3 -c "import kcp, sys; sys.exit(kcp.__version__ != '0.1.6')" 2>/dev/null; then
  echo "installing: python kcp==0.1.6 (skywind3000's ikcp.c)"
  python3 -m pip install --quiet "kcp==0.1.6"
fi
python3 -c "import kcp; print('python kcp', kcp.__version__)"
