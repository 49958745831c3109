#!/usr/bin/env bash
# Re-records tests/vectors/ikcp/ with skywind3000's ikcp.c as PyPI's kcp 0.1.6 vendors it:
# builds tests/ikcp/ikcpvectors.c against that ikcp.c, replays the inputs of every kcp-go
# golden scenario (tests/vectors/kcp/*.txt) and of the ikcp-only scenarios
# (tests/ikcp/scenarios/*.txt), and writes ikcp's transcripts to OUT (default
# tests/vectors/ikcp). Scenarios ikcp cannot express (exit 2: reserved bytes, FEC-recovered
# input, ack-only flush) are listed in OUT/unsupported.list with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-tests/vectors/ikcp}
kcpdir=$(python3 -c "import kcp, os; print(os.path.dirname(kcp.__file__))")
[ -f "$kcpdir/ikcp.c" ] || { echo "no ikcp.c in $kcpdir: pip install kcp==0.1.6" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -I"$kcpdir" -o "$tmp/ikcpvectors" tests/ikcp/ikcpvectors.c "$kcpdir/ikcp.c"
mkdir -p "$out"
rm -f "$out"/*.txt
: > "$tmp/unsupported"
for f in tests/vectors/kcp/*.txt tests/ikcp/scenarios/*.txt; do
  name=$(basename "$f" .txt)
  set +e
  "$tmp/ikcpvectors" "$f" > "$tmp/$name.txt" 2> "$tmp/$name.err"
  rc=$?
  set -e
  case $rc in
    0) mv "$tmp/$name.txt" "$out/$name.txt" ;;
    2) echo "$name: $(cat "$tmp/$name.err")" >> "$tmp/unsupported" ;;
    *) cat "$tmp/$name.err" >&2; exit 1 ;;
  esac
done
mv "$tmp/unsupported" "$out/unsupported.list"
