//! Golden vectors from kcp-go 5.6.1's FEC encoder and decoder (tests/vectors/fec.txt, written
//! by tests/go/fecvectors; its header documents the format) replayed byte for byte against
//! tether's `FecEncoder` / `FecDecoder` (kcp-go-session.md §4).

use std::path::{Path, PathBuf};
use std::process::Command;
use tether_tests::vectors::first_difference;

use tether_core::session::fec::{FecDecoder, FecEncoder};
use tether_tests::go::{build_go, require_peer};

/// The checked-in vector file.
fn vector_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/fec.txt")
}

/// One `in` record with the `out` / `parity` lines that follow it.
struct EncStep {
    line: usize,
    input: Vec<u8>,
    out: Vec<u8>,
    parity: Vec<Vec<u8>>,
}

/// One `shard` record with the `rec` lines and the `state` line that follow it.
struct DecStep {
    line: usize,
    now: u32,
    shard: Vec<u8>,
    rec: Vec<Vec<u8>>,
    state: String,
}

enum Scenario {
    Enc {
        name: String,
        data: usize,
        parity: usize,
        offset: usize,
        next: u32,
        steps: Vec<EncStep>,
    },
    Dec {
        name: String,
        data: usize,
        parity: usize,
        steps: Vec<DecStep>,
    },
}

fn unhex(s: &str, line: usize) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    hex::decode(s).unwrap_or_else(|e| panic!("fec.txt:{line}: bad hex: {e}"))
}

/// The value of `key=` among the words of a header line.
fn kv<T: std::str::FromStr>(words: &[&str], key: &str, line: usize) -> T {
    let prefix = format!("{key}=");
    words
        .iter()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("fec.txt:{line}: missing or bad {key}="))
}

fn start_scenario(kw: &str, words: &[&str], line: usize) -> Scenario {
    let name = words.first().copied().unwrap_or_default().to_string();
    let (data, parity) = (kv(words, "data", line), kv(words, "parity", line));
    if kw == "enc" {
        Scenario::Enc {
            name,
            data,
            parity,
            offset: kv(words, "offset", line),
            next: kv(words, "next", line),
            steps: Vec::new(),
        }
    } else {
        Scenario::Dec {
            name,
            data,
            parity,
            steps: Vec::new(),
        }
    }
}

fn add_enc_record(steps: &mut Vec<EncStep>, kw: &str, rest: &str, line: usize) {
    if kw == "in" {
        steps.push(EncStep {
            line,
            input: unhex(rest, line),
            out: Vec::new(),
            parity: Vec::new(),
        });
        return;
    }
    let step = steps
        .last_mut()
        .unwrap_or_else(|| panic!("fec.txt:{line}: `{kw}` before `in`"));
    match kw {
        "out" => step.out = unhex(rest, line),
        "parity" => step.parity.push(unhex(rest, line)),
        _ => panic!("fec.txt:{line}: unexpected `{kw}` in an enc scenario"),
    }
}

fn add_dec_record(steps: &mut Vec<DecStep>, kw: &str, rest: &str, line: usize) {
    if kw == "shard" {
        let (now, hex) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("fec.txt:{line}: shard needs now= and hex"));
        steps.push(DecStep {
            line,
            now: kv(&[now], "now", line),
            shard: unhex(hex, line),
            rec: Vec::new(),
            state: String::new(),
        });
        return;
    }
    let step = steps
        .last_mut()
        .unwrap_or_else(|| panic!("fec.txt:{line}: `{kw}` before `shard`"));
    match kw {
        "rec" => step.rec.push(unhex(rest, line)),
        "state" => step.state = format!("state {rest}"),
        _ => panic!("fec.txt:{line}: unexpected `{kw}` in a dec scenario"),
    }
}

fn load() -> Vec<Scenario> {
    let text = std::fs::read_to_string(vector_path()).expect("read tests/vectors/fec.txt");
    let mut out: Vec<Scenario> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let (kw, rest) = raw.split_once(' ').unwrap_or((raw, ""));
        if kw == "enc" || kw == "dec" {
            let words: Vec<&str> = rest.split(' ').collect();
            out.push(start_scenario(kw, &words, line));
            continue;
        }
        match out.last_mut() {
            Some(Scenario::Enc { steps, .. }) => add_enc_record(steps, kw, rest, line),
            Some(Scenario::Dec { steps, .. }) => add_dec_record(steps, kw, rest, line),
            None => panic!("fec.txt:{line}: record before any scenario"),
        }
    }
    out
}

/// Our decoder's state in the vector file's `state` syntax.
fn state_line(dec: &FecDecoder) -> String {
    let rx: Vec<String> = dec
        .pending()
        .map(|(s, d)| format!("{s}{}", if d { "d" } else { "p" }))
        .collect();
    let rx = if rx.is_empty() {
        "-".into()
    } else {
        rx.join(",")
    };
    format!(
        "state data={} parity={} short={} rx={rx}",
        dec.data_shards(),
        dec.parity_shards(),
        dec.stats().fec_short_shards
    )
}

fn replay_enc(name: &str, mut enc: FecEncoder, steps: &[EncStep]) -> usize {
    for s in steps {
        let mut pkt = s.input.clone();
        let mut parity = Vec::new();
        let n = enc
            .encode(&mut pkt, |p| parity.push(p.to_vec()))
            .unwrap_or_else(|e| panic!("{name} fec.txt:{}: encode: {e}", s.line));
        assert_eq!(
            hex::encode(&pkt),
            hex::encode(&s.out),
            "{name} fec.txt:{}: stamped datagram",
            s.line
        );
        assert_eq!(n, parity.len());
        let got: Vec<String> = parity.iter().map(hex::encode).collect();
        let want: Vec<String> = s.parity.iter().map(hex::encode).collect();
        assert_eq!(got, want, "{name} fec.txt:{}: parity datagrams", s.line);
    }
    steps.len()
}

fn replay_dec(name: &str, mut dec: FecDecoder, steps: &[DecStep]) -> usize {
    let mut recovered = 0;
    for s in steps {
        let rec = dec
            .decode(s.now, &s.shard)
            .unwrap_or_else(|e| panic!("{name} fec.txt:{}: decode: {e}", s.line));
        let got: Vec<String> = rec.iter().map(hex::encode).collect();
        let want: Vec<String> = s.rec.iter().map(hex::encode).collect();
        assert_eq!(got, want, "{name} fec.txt:{}: recovered datagrams", s.line);
        recovered += got.len();
        assert_eq!(state_line(&dec), s.state, "{name} fec.txt:{}", s.line);
    }
    recovered
}

/// Replays every encoder scenario, with `kernel` computing the parity when given; returns
/// the steps checked.
fn replay_encoders(
    scenarios: &[Scenario],
    kernel: Option<&'static dyn tether_core::session::galois::GaloisKernel>,
) -> usize {
    let mut steps_checked = 0;
    for sc in scenarios {
        if let Scenario::Enc {
            name,
            data,
            parity,
            offset,
            next,
            steps,
        } = sc
        {
            let mut enc = FecEncoder::new(*data, *parity, *offset).expect("encoder");
            if let Some(k) = kernel {
                enc = enc.with_kernel(k);
            }
            enc.set_next_seqid(*next);
            steps_checked += replay_enc(name, enc, steps);
        }
    }
    steps_checked
}

// kcp-go-session.md §4
#[test]
fn our_fec_matches_kcp_go_vectors() {
    let (mut dec_steps, mut recovered, mut autotuned) = (0, 0, 0);
    let scenarios = load();
    let enc_steps = replay_encoders(&scenarios, None);
    for sc in &scenarios {
        if let Scenario::Dec {
            name,
            data,
            parity,
            steps,
        } = sc
        {
            let dec = FecDecoder::new(*data, *parity).expect("decoder");
            recovered += replay_dec(name, dec, steps);
            dec_steps += steps.len();
            let initial = format!("data={data} parity={parity} ");
            autotuned += usize::from(steps.iter().any(|s| !s.state.contains(&initial)));
        }
    }
    assert!(scenarios.len() >= 15, "only {} scenarios", scenarios.len());
    assert!(
        enc_steps >= 100 && dec_steps >= 1000,
        "{enc_steps} / {dec_steps} steps"
    );
    assert!(recovered >= 50, "only {recovered} recoveries exercised");
    assert!(
        autotuned >= 2,
        "only {autotuned} scenarios exercise autotune"
    );
}

/// The encoder scenarios again with runtime-mio's GFNI kernel computing the parity (the
/// socket loops install it where the CPU has GFNI and AVX-512): the same bytes as kcp-go's
/// klauspost parity. A CPU without it has nothing to check.
#[test]
fn kcp_go_parity_through_the_gfni_kernel() {
    let Some(kernel) = tether_runtime_mio::gfni::kernel() else {
        eprintln!("no GFNI + AVX-512 on this CPU: the kernel is never installed here");
        return;
    };
    let enc_steps = replay_encoders(&load(), Some(kernel));
    assert!(enc_steps >= 100, "{enc_steps} steps");
}

/// The checked-in file must be exactly what the Go dumper prints today (skips without Go
/// unless CI=true).
#[test]
fn vector_file_is_what_the_go_dumper_prints() {
    if !require_peer("kcp-go 5.6.1 (fecvectors dumper)") {
        return;
    }
    let bin = build_go("fecvectors");
    let out = Command::new(&bin)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "fecvectors failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).expect("utf-8 output");
    let want = std::fs::read_to_string(vector_path()).expect("read fec.txt");
    assert!(
        got == want,
        "tests/vectors/fec.txt is stale; regenerate with target/go-bin/fecvectors > tests/vectors/fec.txt\n{}",
        first_difference(&got, &want)
    );
}
