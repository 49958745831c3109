//! Replays a KCP transcript (tests/vectors/kcp from kcp-go, tests/vectors/ikcp from ikcp.c)
//! against tether's KCP: every emitted datagram and return value must match byte for byte.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tether_core::kcp::{Kcp, KcpConfig};

use crate::vectors::{self, describe_datagram, short_hex, Op, Scenario};

/// Who recorded a transcript, and what of it can be compared.
#[derive(Debug, Clone, Copy)]
pub struct Recorder {
    /// Named in mismatch messages.
    pub name: &'static str,
    /// Whether `flush` lines carry the recorder's return value (kcp-go's next interval;
    /// ikcp_flush returns nothing).
    pub flush_returns: bool,
}

/// kcp-go 5.6.1 (tests/go/kcpvectors).
pub const KCP_GO: Recorder = Recorder {
    name: "kcp-go",
    flush_returns: true,
};

/// skywind3000's ikcp.c (tests/ikcp/ikcpvectors.c).
pub const IKCP: Recorder = Recorder {
    name: "ikcp",
    flush_returns: false,
};

/// The KCP config a transcript's `config` line describes (kcp-go flavour).
pub fn config_of(sc: &Scenario) -> KcpConfig {
    KcpConfig {
        nodelay: sc.nodelay != 0,
        interval: sc.interval,
        resend: sc.resend,
        nocwnd: sc.nc != 0,
        snd_wnd: sc.snd_wnd,
        rcv_wnd: sc.rcv_wnd,
        mtu: sc.mtu,
        reserved: sc.reserved,
        stream: sc.stream,
        ack_nodelay: false,
        dead_link: 20,
        quick_recovery: false,
        ack_when_full: false,
        flavor: tether_core::kcp::KcpFlavor::KcpGo,
    }
}

/// A datagram side by side: hex (abbreviated) and decoded headers.
fn show(label: &str, d: &[u8], reserved: usize) -> String {
    format!(
        "  {label}: {}\n    {}",
        short_hex(d),
        describe_datagram(d, reserved)
    )
}

/// First differing byte offset of two datagrams, with the field it falls in.
fn first_diff(exp: &[u8], act: &[u8], reserved: usize) -> String {
    let i = exp
        .iter()
        .zip(act)
        .position(|(a, b)| a != b)
        .unwrap_or(exp.len().min(act.len()));
    if i < reserved {
        return format!("first difference at byte {i} (reserved prefix)");
    }
    // Walk the expected segments to name the field.
    let mut off = reserved;
    let (hs, _) = vectors::decode_segments(exp, reserved);
    for (k, h) in hs.iter().enumerate() {
        let end = off + 24 + h.len as usize;
        if i < end {
            let rel = i - off;
            let field = match rel {
                0..=3 => "conv",
                4 => "cmd",
                5 => "frg",
                6..=7 => "wnd",
                8..=11 => "ts",
                12..=15 => "sn",
                16..=19 => "una",
                20..=23 => "len",
                _ => "data",
            };
            return format!("first difference at byte {i}: segment #{k}, field {field}");
        }
        off = end;
    }
    format!(
        "first difference at byte {i} (lengths {} vs {})",
        exp.len(),
        act.len()
    )
}

/// Replays one scenario against `cfg`; `Err` describes the first divergence.
pub fn replay(sc: &Scenario, cfg: KcpConfig, rec: &Recorder) -> Result<(), String> {
    let peer = rec.name;
    let start = Instant::now();
    let mut clock_ms: u64 = 0;
    let reserved = sc.reserved as usize;
    let mut kcp = Kcp::new(sc.conv, cfg, start);
    // Datagrams our KCP emitted for the latest op that the transcript has not consumed yet.
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut last_op: Option<usize> = None;

    let fail = |i: usize, what: String| -> String {
        let op = &sc.ops[i];
        format!(
            "scenario `{}` ({}), op #{i} at {}:\n  op: {op}\n{what}",
            sc.name,
            sc.purpose,
            sc.location(i)
        )
    };
    let drain = |kcp: &mut Kcp, pending: &mut VecDeque<Vec<u8>>| {
        let mut buf = Vec::new();
        while kcp.pop_output(&mut buf).is_some() {
            pending.push_back(std::mem::take(&mut buf));
        }
    };

    for (i, op) in sc.ops.iter().enumerate() {
        let now = start + Duration::from_millis(clock_ms);
        if !matches!(op, Op::Out { .. }) {
            // Everything the previous op emitted must have been matched by `out` lines.
            if let Some(extra) = pending.front() {
                let prev = last_op.unwrap_or(i);
                let mut msg = format!(
                    "  tether emitted {} more datagram(s) than {peer} after op #{prev} ({}):\n",
                    pending.len(),
                    sc.ops[prev]
                );
                msg += &show("unexpected", extra, reserved);
                return Err(fail(prev, msg));
            }
            last_op = Some(i);
        }
        match op {
            Op::Send { data, ret } => {
                let got = match kcp.send(data) {
                    Ok(_) => 0,
                    Err(e) => e.code(),
                };
                if got != *ret {
                    return Err(fail(
                        i,
                        format!("  send returned {got}, {peer} returned {ret}"),
                    ));
                }
            }
            Op::Input {
                data,
                regular,
                ack_nodelay,
                ret,
            } => {
                let got = match kcp.input(now, data, *regular, *ack_nodelay) {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                };
                if got != *ret {
                    return Err(fail(
                        i,
                        format!(
                            "  input returned {got}, {peer} returned {ret}\n  datagram: {}",
                            describe_datagram(data, 0)
                        ),
                    ));
                }
            }
            Op::Flush { ret } | Op::FlushAck { ret } => {
                let ack_only = matches!(op, Op::FlushAck { .. });
                let got = kcp.flush(now, ack_only);
                if rec.flush_returns && got != *ret {
                    return Err(fail(
                        i,
                        format!("  flush returned {got}, {peer} returned {ret}"),
                    ));
                }
            }
            Op::Advance { ms } => clock_ms += ms,
            Op::Recv { cap, ret, data } => {
                let mut buf = vec![0u8; *cap];
                let (got, got_data) = match kcp.recv(&mut buf) {
                    Ok(n) => (n as i32, buf[..n].to_vec()),
                    Err(e) => (e.code(), Vec::new()),
                };
                if got != *ret || got_data != *data {
                    return Err(fail(
                        i,
                        format!(
                            "  recv returned {got} data={}\n  {peer} returned {ret} data={}",
                            short_hex(&got_data),
                            short_hex(data)
                        ),
                    ));
                }
            }
            Op::Out { data: expected } => match pending.pop_front() {
                None => {
                    let prev = last_op.unwrap_or(0);
                    return Err(fail(
                        i,
                        format!(
                            "  {peer} emitted a datagram after op #{prev} ({}) that tether did not:\n{}",
                            sc.ops[prev],
                            show("expected", expected, reserved)
                        ),
                    ));
                }
                Some(actual) if actual != *expected => {
                    return Err(fail(
                        i,
                        format!(
                            "  datagram differs ({}):\n{}\n{}",
                            first_diff(expected, &actual, reserved),
                            show(&format!("expected ({peer})"), expected, reserved),
                            show("actual (tether)", &actual, reserved)
                        ),
                    ));
                }
                Some(_) => {}
            },
        }
        if !matches!(op, Op::Out { .. }) {
            drain(&mut kcp, &mut pending);
        }
    }
    if let Some(extra) = pending.front() {
        let prev = last_op.unwrap_or(0);
        return Err(fail(
            prev,
            format!(
                "  tether emitted {} more datagram(s) than {peer} after the last op:\n{}",
                pending.len(),
                show("unexpected", extra, reserved)
            ),
        ));
    }
    Ok(())
}
