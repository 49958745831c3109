#!/usr/bin/env bash
# One-way bulk throughput and CPU cost of `tether cat`: a baseline revision and the current
# tree side by side in one run (issue 15 item 8 measures its data-path work with this).
#
#   scripts/cat-throughput.sh                        # 256 MiB, 3 rounds, baseline 0ace1cd
#   BASELINE=HEAD~2 RUNS=5 BYTES=64MiB scripts/cat-throughput.sh
#   CAT_ARGS="--datashard 0 --parityshard 0" scripts/cat-throughput.sh   # without FEC
#
# 1. builds the current tree (`cargo build --release -p tether-cli`, uncommitted changes
#    included) and the baseline revision, exported with `git archive` into
#    <target>/cat-throughput/baseline-<rev>/src and built into its own target dir beside it
#    (seeded with a copy of the current release dependencies, so only tether's own crates
#    compile); a baseline already built is reused;
# 2. writes BYTES random bytes once to <target>/cat-throughput/input-<BYTES>.bin (reused);
# 3. runs RUNS rounds; each round runs one transfer per build, the order alternating between
#    rounds (base, current, current, base, ...) so drifting background load hits both alike.
#    A transfer: `tether cat -q --listen 127.0.0.1:0` (stdin at EOF, stdout hashed) and
#    `tether cat -q --connect` (stdin = the input file), both with
#    `--mode fast3 --sndwnd 8192 --rcvwnd 8192 --crypt none` (FEC at its 10/3 default)
#    plus CAT_ARGS;
# 4. prints per transfer and per build (median over the rounds):
#    - MB/s = bytes / (sender spawned -> receiver's last output byte), MB = 10^6 bytes. Both
#      processes then linger (`--linger`, 1 s) before exiting; that idle tail is not timed;
#    - CPU ms/MB = user + sys CPU of sender + receiver (getrusage of each child through
#      wait4, whole process lifetime) per MB, and each side's CPU seconds;
#    - the ratios current/baseline of both medians.
#    The receiver's output must equal the input byte for byte, or the script stops with an
#    error: a build that corrupts data gets no numbers. The script's reader hashes each
#    chunk as it arrives (READER=sha256, the default, ≈ 0.5 ms/MB of CPU) or compares it with
#    the input file (READER=compare, ≈ 0.13 ms/MB). The reader shares the two cores with the
#    two processes measured; the README's tables use the default unless they say otherwise.
#
# Issue 15's target (the README's, not checked here): throughput ratio >= 2, CPU ratio <= 0.5
# vs 0ace1cd. The machine's load average is printed before and after: on a shared machine the
# absolute numbers are noisy; the interleaved ratios less so.
#
# Environment: BASELINE (git revision, default 0ace1cd), RUNS (default 3), BYTES (default
# 256MiB; plain bytes or a KiB/MiB/GiB suffix), CAT_ARGS (extra `tether cat` flags for both
# sides), READER (sha256 or compare), TIMEOUT (seconds per transfer, default 300),
# BASELINE_ENV (space-separated NAME=value pairs set for the baseline's processes only: with
# BASELINE=HEAD, `BASELINE_ENV=TETHER_NO_GFNI=1` compares one build with and without a
# switch), CARGO_TARGET_DIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
work="$target_dir/cat-throughput"
baseline="${BASELINE:-0ace1cd}"
runs="${RUNS:-3}"
timeout="${TIMEOUT:-300}"

die() { echo "cat-throughput.sh: error: $*" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || die "'python3' not found in PATH"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"

bytes_spec="${BYTES:-256MiB}"
case "$bytes_spec" in
*GiB) bytes=$((${bytes_spec%GiB} << 30)) ;;
*MiB) bytes=$((${bytes_spec%MiB} << 20)) ;;
*KiB) bytes=$((${bytes_spec%KiB} << 10)) ;;
*) bytes=$((bytes_spec)) ;;
esac
((bytes > 0)) || die "BYTES must be positive, got '$bytes_spec'"

base_rev="$(git rev-parse --verify --quiet "$baseline^{commit}")" ||
	die "baseline '$baseline' is not a commit of this repository"
base_short="$(git rev-parse --short "$base_rev")"
cur_label="$(git rev-parse --short HEAD)"
[ -z "$(git status --porcelain --untracked-files=no)" ] || cur_label="$cur_label+changes"
mkdir -p "$work"

# 1. Builds: the current tree first, so its release dependencies can seed the baseline's.
echo "cat-throughput.sh: building the current tree ($cur_label)" >&2
CARGO_TARGET_DIR="$target_dir" cargo build --release -p tether-cli --bin tether >&2 ||
	die "building the current tree failed"
cur_bin="$target_dir/release/tether"

base_dir="$work/baseline-$base_short"
base_bin="$base_dir/target/release/tether"
if [ -x "$base_bin" ] && [ "$(cat "$base_dir/rev" 2>/dev/null)" = "$base_rev" ]; then
	echo "cat-throughput.sh: reusing the baseline build $base_bin" >&2
else
	echo "cat-throughput.sh: building baseline $base_short into $base_dir" >&2
	rm -rf "$base_dir"
	mkdir -p "$base_dir/src" "$base_dir/target"
	# -m: the sources get the extraction time, newer than every artifact copied below, so
	# cargo rebuilds tether's own crates (it names them by their path relative to the
	# workspace and checks freshness by mtime: with git's commit times it would take the
	# current tree's copied artifacts for the baseline's).
	git archive "$base_rev" | tar -x -m -C "$base_dir/src"
	# Registry dependencies do not depend on the tree: a copy saves compiling them again.
	[ -d "$target_dir/release" ] && cp -a "$target_dir/release" "$base_dir/target/"
	CARGO_TARGET_DIR="$base_dir/target" cargo build --release --manifest-path "$base_dir/src/Cargo.toml" \
		-p tether-cli --bin tether >&2 || die "building baseline $base_short failed"
	echo "$base_rev" >"$base_dir/rev"
fi

if cmp -s "$base_bin" "$cur_bin"; then
	echo "cat-throughput.sh: warning: the baseline and current binaries are identical" >&2
fi

# 2. Input.
input="$work/input-$bytes.bin"
if [ "$(stat -c %s "$input" 2>/dev/null || echo 0)" != "$bytes" ]; then
	echo "cat-throughput.sh: writing $bytes random bytes to $input" >&2
	head -c "$bytes" /dev/urandom >"$input.tmp"
	mv "$input.tmp" "$input"
fi

# 3. + 4. Transfers and the summary.
base_label="baseline $base_short"
[ -z "${BASELINE_ENV:-}" ] || base_label="$base_label ${BASELINE_ENV}"
python3 - "$base_bin" "$base_label" "$cur_bin" "current $cur_label" \
	"$input" "$runs" "$timeout" "${CAT_ARGS:-}" "${READER:-sha256}" "${BASELINE_ENV:-}" <<'PY'
import hashlib, os, re, shlex, statistics, subprocess, sys, threading, time

(base_bin, base_label, cur_bin, cur_label, input_path, runs, timeout, extra, reader,
 base_env) = sys.argv[1:]
runs, timeout = int(runs), float(timeout)
flags = ["--mode", "fast3", "--sndwnd", "8192", "--rcvwnd", "8192", "--crypt", "none"]
flags += shlex.split(extra)
size = os.path.getsize(input_path)
if reader not in ("compare", "sha256"):
    print(f"cat-throughput.sh: error: READER must be compare or sha256, got '{reader}'",
          file=sys.stderr)
    sys.exit(1)


def die(msg):
    print(f"cat-throughput.sh: error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def drain(pipe, sink):
    for line in pipe:
        sink.append(line.decode(errors="replace").rstrip())


def reap(p):
    """wait4 for one child: (exit status, CPU seconds of its whole lifetime)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime


def transfer(binary, env):
    recv = subprocess.Popen([binary, "cat", "-q", "--listen", "127.0.0.1:0", *flags],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    procs = [recv]
    timer = threading.Timer(timeout, lambda: [p.kill() for p in procs if p.poll() is None])
    timer.start()
    recv_err, send_err = [], []
    addr = None
    for raw in recv.stderr:
        line = raw.decode(errors="replace").rstrip()
        recv_err.append(line)
        m = re.search(r"listening on (\S+)", line)
        if m:
            addr = m.group(1)
            break
    threading.Thread(target=drain, args=(recv.stderr, recv_err), daemon=True).start()
    if addr is None:
        timer.cancel()
        reap(recv)
        die(f"{binary}: the receiver never said where it listens: {recv_err}")
    with open(input_path, "rb") as f:
        t0 = time.monotonic()
        send = subprocess.Popen([binary, "cat", "-q", "--connect", addr, *flags], stdin=f,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    procs.append(send)
    threading.Thread(target=drain, args=(send.stderr, send_err), daemon=True).start()
    h, got, t_last, same = hashlib.sha256(), 0, t0, True
    fd = recv.stdout.fileno()
    with open(input_path, "rb", buffering=0) as ref:
        while chunk := os.read(fd, 1 << 20):
            if reader == "sha256":
                h.update(chunk)
            else:
                same = same and ref.read(len(chunk)) == chunk
            got += len(chunk)
            t_last = time.monotonic()
    recv_code, recv_cpu = reap(recv)
    send_code, send_cpu = reap(send)
    timer.cancel()
    if recv_code != 0 or send_code != 0:
        die(f"{binary}: receiver exited {recv_code}, sender {send_code} "
            f"(timeout {timeout:.0f} s)\n receiver: {recv_err}\n sender: {send_err}")
    intact = h.hexdigest() == want if reader == "sha256" else same
    if got != size or not intact:
        die(f"{binary}: received {got} of {size} bytes, "
            f"{'sha256 ' + h.hexdigest() if reader == 'sha256' else 'different from the input'}"
            f" (want the input, sha256 {want}): the bytes did not arrive intact")
    secs = max(t_last - t0, 1e-9)
    return {"mbps": size / 1e6 / secs, "secs": secs, "send_cpu": send_cpu,
            "recv_cpu": recv_cpu, "cpu_ms_per_mb": (send_cpu + recv_cpu) * 1e3 / (size / 1e6)}


def load():
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


want = sha256_file(input_path)
pairs = [kv.split("=", 1) for kv in shlex.split(base_env)]
if any(len(kv) != 2 or not kv[0] for kv in pairs):
    die(f"BASELINE_ENV must be NAME=value pairs, got '{base_env}'")
builds = [(base_label, base_bin, {**os.environ, **dict(pairs)}), (cur_label, cur_bin, None)]
results = {label: [] for label, _, _ in builds}
print(f"cat-throughput: {size} bytes ({size / 2**20:.0f} MiB) one-way through `tether cat "
      f"{' '.join(flags)}`, {runs} interleaved rounds, {os.cpu_count()} CPUs, "
      f"load average {load()} at start")
print(f"input sha256 {want}; the reader checks the output by {reader}")
for r in range(runs):
    order = builds if r % 2 == 0 else builds[::-1]
    for label, binary, env in order:
        x = transfer(binary, env)
        results[label].append(x)
        print(f"round {r + 1} {label:<24} {x['mbps']:8.1f} MB/s in {x['secs']:6.2f} s, CPU "
              f"sender {x['send_cpu']:5.2f} s + receiver {x['recv_cpu']:5.2f} s = "
              f"{x['cpu_ms_per_mb']:6.2f} ms/MB, intact", flush=True)

print(f"load average {load()} at end")
print()
print(f"| build | MB/s (median of {runs}; min-max) | CPU ms/MB, sender+receiver (median; min-max) "
      "| sender / receiver CPU s (medians) |")
print("|---|---|---|---|")
med = {}
for label, _, _ in builds:
    mb = [x["mbps"] for x in results[label]]
    cpu = [x["cpu_ms_per_mb"] for x in results[label]]
    send = statistics.median(x["send_cpu"] for x in results[label])
    recv = statistics.median(x["recv_cpu"] for x in results[label])
    med[label] = (statistics.median(mb), statistics.median(cpu))
    print(f"| {label} | {med[label][0]:.1f} ({min(mb):.1f}-{max(mb):.1f}) | "
          f"{med[label][1]:.2f} ({min(cpu):.2f}-{max(cpu):.2f}) | {send:.2f} / {recv:.2f} |")
(b_mb, b_cpu), (c_mb, c_cpu) = med[base_label], med[cur_label]
print()
print(f"current/baseline: throughput {c_mb / b_mb:.2f}x, CPU per MB {c_cpu / b_cpu:.2f}x")
PY
