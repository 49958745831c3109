//! Golden-vector transcripts: the text format written by `tests/go/kcpvectors` (kcp-go 5.6.1)
//! and replayed against our KCP by `tests/tests/kcp_vectors.rs`.
//!
//! One file per scenario, one op per line, `#` starts a comment line, blank lines are ignored:
//!
//! ```text
//! # scenario: <name> — <one-line purpose>
//! config conv=0x11223344 nodelay=0 interval=100 resend=0 nc=0 sndwnd=32 rcvwnd=32 mtu=1400 reserved=0 stream=0
//! send <hex> ret=<n>                              kcp.Send(data)
//! input <hex> regular=<0|1> acknodelay=<0|1> ret=<n>   kcp.Input(data, regular, ackNoDelay)
//! flush ret=<n>                                   flush(false); ret is kcp-go's minrto
//! flushack ret=<n>                                flush(true)
//! advance <ms>                                    the clock moves forward by ms milliseconds
//! recv <cap> ret=<n> data=<hex>                   kcp.Recv with a buffer of cap bytes
//! out <hex>                                       a datagram emitted through the output callback
//! ```
//!
//! `out` lines follow, in order, the op that caused them; they include the `reserved` leading
//! bytes (zero). An empty byte string is written `-`. Numbers in `config` may be decimal or
//! `0x` hex.
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};

/// One transcript operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `send <hex> ret=<n>`: kcp-go `Send` (0 on success, -1 empty, -2 too many fragments).
    Send {
        /// Bytes handed to Send.
        data: Vec<u8>,
        /// kcp-go's return value.
        ret: i32,
    },
    /// `input <hex> regular=<b> acknodelay=<b> ret=<n>`: kcp-go `Input`.
    Input {
        /// The datagram.
        data: Vec<u8>,
        /// `regular` (false = rebuilt by FEC).
        regular: bool,
        /// `ackNoDelay`.
        ack_nodelay: bool,
        /// kcp-go's return value (0, -1, -2, -3).
        ret: i32,
    },
    /// `flush ret=<n>`: `flush(false)`; `ret` is the delay until the next flush.
    Flush {
        /// kcp-go's return value.
        ret: u32,
    },
    /// `flushack ret=<n>`: `flush(true)`.
    FlushAck {
        /// kcp-go's return value (the interval).
        ret: u32,
    },
    /// `advance <ms>`: the clock moves forward.
    Advance {
        /// Milliseconds.
        ms: u64,
    },
    /// `recv <cap> ret=<n> data=<hex>`: kcp-go `Recv` with a buffer of `cap` bytes.
    Recv {
        /// Buffer size.
        cap: usize,
        /// Bytes read, or -1 (nothing to read) / -2 (buffer too small).
        ret: i32,
        /// The bytes read (empty when `ret` ≤ 0).
        data: Vec<u8>,
    },
    /// `out <hex>`: a datagram kcp-go emitted, reserved bytes included.
    Out {
        /// The datagram.
        data: Vec<u8>,
    },
}

impl Op {
    /// The op's keyword in the transcript.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Send { .. } => "send",
            Op::Input { .. } => "input",
            Op::Flush { .. } => "flush",
            Op::FlushAck { .. } => "flushack",
            Op::Advance { .. } => "advance",
            Op::Recv { .. } => "recv",
            Op::Out { .. } => "out",
        }
    }
}

/// A short rendering of an op (long byte strings are abbreviated).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Send { data, ret } => write!(f, "send {} ret={ret}", short_hex(data)),
            Op::Input {
                data,
                regular,
                ack_nodelay,
                ret,
            } => write!(
                f,
                "input {} regular={} acknodelay={} ret={ret}",
                short_hex(data),
                u8::from(*regular),
                u8::from(*ack_nodelay)
            ),
            Op::Flush { ret } => write!(f, "flush ret={ret}"),
            Op::FlushAck { ret } => write!(f, "flushack ret={ret}"),
            Op::Advance { ms } => write!(f, "advance {ms}"),
            Op::Recv { cap, ret, data } => {
                write!(f, "recv {cap} ret={ret} data={}", short_hex(data))
            }
            Op::Out { data } => write!(f, "out {}", short_hex(data)),
        }
    }
}

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// File stem, e.g. `push_one`.
    pub name: String,
    /// The purpose from the `# scenario: <name> — <purpose>` line (empty if absent).
    pub purpose: String,
    /// Where it was read from (empty for [`parse`] on a string).
    pub path: PathBuf,
    /// `conv`.
    pub conv: u32,
    /// `nodelay` (kcp-go's int; non-zero means on).
    pub nodelay: u32,
    /// `interval`, ms.
    pub interval: u32,
    /// `resend` (fast-retransmit threshold, 0 = off).
    pub resend: u32,
    /// `nc` (1 = congestion window off).
    pub nc: u32,
    /// `sndwnd`.
    pub snd_wnd: u32,
    /// `rcvwnd`.
    pub rcv_wnd: u32,
    /// `mtu`.
    pub mtu: u32,
    /// `reserved` leading bytes per datagram.
    pub reserved: u32,
    /// `stream` mode.
    pub stream: bool,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// 1-based line number of each op in `ops`.
    pub op_lines: Vec<usize>,
}

impl Scenario {
    /// `path:line` of op `i`, for messages.
    pub fn location(&self, i: usize) -> String {
        format!(
            "{}:{}",
            self.path.display(),
            self.op_lines.get(i).copied().unwrap_or(0)
        )
    }
}

/// Parses one transcript. `name` is the scenario name (normally the file stem).
pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
    let mut sc = Scenario {
        name: name.to_string(),
        purpose: String::new(),
        path: PathBuf::new(),
        conv: 0,
        nodelay: 0,
        interval: 100,
        resend: 0,
        nc: 0,
        snd_wnd: 32,
        rcv_wnd: 32,
        mtu: 1400,
        reserved: 0,
        stream: false,
        ops: Vec::new(),
        op_lines: Vec::new(),
    };
    let mut saw_config = false;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        let err = |msg: String| format!("{name}:{lineno}: {msg}: `{}`", abbreviate(line));
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(rest) = comment.trim().strip_prefix("scenario:") {
                let rest = rest.trim();
                let (n, purpose) = match rest.split_once(" — ") {
                    Some((n, p)) => (n.trim(), p.trim()),
                    None => (rest, ""),
                };
                if n != name {
                    return Err(err(format!(
                        "scenario name `{n}` does not match the file name `{name}`"
                    )));
                }
                sc.purpose = purpose.to_string();
            }
            continue;
        }
        let mut words = line.split_whitespace();
        let kw = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        if kw == "config" {
            if saw_config {
                return Err(err("second config line".into()));
            }
            if !sc.ops.is_empty() {
                return Err(err("config after the first op".into()));
            }
            saw_config = true;
            for kv in &rest {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| err(format!("expected key=value, got `{kv}`")))?;
                let n = parse_u32(v).map_err(|e| err(format!("{k}: {e}")))?;
                match k {
                    "conv" => sc.conv = n,
                    "nodelay" => sc.nodelay = n,
                    "interval" => sc.interval = n,
                    "resend" => sc.resend = n,
                    "nc" => sc.nc = n,
                    "sndwnd" => sc.snd_wnd = n,
                    "rcvwnd" => sc.rcv_wnd = n,
                    "mtu" => sc.mtu = n,
                    "reserved" => sc.reserved = n,
                    "stream" => sc.stream = n != 0,
                    _ => return Err(err(format!("unknown config key `{k}`"))),
                }
            }
            continue;
        }
        if !saw_config {
            return Err(err("op before the config line".into()));
        }
        let op = parse_op(kw, &rest).map_err(err)?;
        sc.ops.push(op);
        sc.op_lines.push(lineno);
    }
    if !saw_config {
        return Err(format!("{name}: no config line"));
    }
    Ok(sc)
}

fn parse_op(kw: &str, rest: &[&str]) -> Result<Op, String> {
    let arity = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!("`{kw}` takes {n} fields, found {}", rest.len()))
        }
    };
    Ok(match kw {
        "send" => {
            arity(2)?;
            Op::Send {
                data: parse_hex(rest[0])?,
                ret: field(rest[1], "ret")?,
            }
        }
        "input" => {
            arity(4)?;
            Op::Input {
                data: parse_hex(rest[0])?,
                regular: parse_bool(field_str(rest[1], "regular")?)?,
                ack_nodelay: parse_bool(field_str(rest[2], "acknodelay")?)?,
                ret: field(rest[3], "ret")?,
            }
        }
        "flush" => {
            arity(1)?;
            Op::Flush {
                ret: field(rest[0], "ret")?,
            }
        }
        "flushack" => {
            arity(1)?;
            Op::FlushAck {
                ret: field(rest[0], "ret")?,
            }
        }
        "advance" => {
            arity(1)?;
            Op::Advance {
                ms: rest[0].parse().map_err(|e| format!("advance: {e}"))?,
            }
        }
        "recv" => {
            arity(3)?;
            Op::Recv {
                cap: rest[0].parse().map_err(|e| format!("recv cap: {e}"))?,
                ret: field(rest[1], "ret")?,
                data: parse_hex(field_str(rest[2], "data")?)?,
            }
        }
        "out" => {
            arity(1)?;
            Op::Out {
                data: parse_hex(rest[0])?,
            }
        }
        _ => return Err(format!("unknown op `{kw}`")),
    })
}

fn field_str<'a>(s: &'a str, key: &str) -> Result<&'a str, String> {
    s.strip_prefix(key)
        .and_then(|r| r.strip_prefix('='))
        .ok_or_else(|| format!("expected `{key}=...`, got `{}`", abbreviate(s)))
}

fn field<T: std::str::FromStr>(s: &str, key: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    field_str(s, key)?
        .parse()
        .map_err(|e| format!("{key}: {e}"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("expected 0 or 1, got `{s}`")),
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).map_err(|e| e.to_string()),
        None => s
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string()),
    }
}

/// Decodes transcript hex (`-` is the empty string).
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    hex::decode(s).map_err(|e| format!("bad hex ({e}) in `{}`", abbreviate(s)))
}

fn abbreviate(s: &str) -> String {
    if s.len() <= 120 {
        s.to_string()
    } else {
        let mut end = 100;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} chars)", &s[..end], s.len())
    }
}

/// Hex of `data`, abbreviated past 48 bytes; `-` when empty.
pub fn short_hex(data: &[u8]) -> String {
    if data.is_empty() {
        "-".into()
    } else if data.len() <= 48 {
        hex::encode(data)
    } else {
        format!("{}…({} bytes)", hex::encode(&data[..40]), data.len())
    }
}

/// Reads every `*.txt` in `dir` (sorted by name). Panics with the file and line on any
/// unreadable or malformed file: a broken vector is a test failure, not a skip.
pub fn load_dir(dir: impl AsRef<Path>) -> Vec<Scenario> {
    let dir = dir.as_ref();
    let rd = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read vector dir {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = rd
        .map(|e| {
            e.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let text = fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let mut sc = parse(&name, &text)
                .unwrap_or_else(|e| panic!("malformed vector {}: {e}", p.display()));
            sc.path = p;
            sc
        })
        .collect()
}

/// One decoded KCP segment header (kcp.md §1), for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegHeader {
    /// conv
    pub conv: u32,
    /// cmd (81 PUSH, 82 ACK, 83 WASK, 84 WINS)
    pub cmd: u8,
    /// frg
    pub frg: u8,
    /// wnd
    pub wnd: u16,
    /// ts
    pub ts: u32,
    /// sn
    pub sn: u32,
    /// una
    pub una: u32,
    /// len
    pub len: u32,
}

impl fmt::Display for SegHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = match self.cmd {
            81 => "PUSH".to_string(),
            82 => "ACK".to_string(),
            83 => "WASK".to_string(),
            84 => "WINS".to_string(),
            c => format!("cmd{c}"),
        };
        write!(
            f,
            "{cmd} conv={:#010x} frg={} wnd={} ts={} sn={} una={} len={}",
            self.conv, self.frg, self.wnd, self.ts, self.sn, self.una, self.len
        )
    }
}

/// Splits a datagram into segment headers after skipping `reserved` bytes. Returns the
/// headers and the number of trailing bytes that did not form a whole segment.
pub fn decode_segments(datagram: &[u8], reserved: usize) -> (Vec<SegHeader>, usize) {
    let mut d = datagram.get(reserved..).unwrap_or_default();
    let mut out = Vec::new();
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    while d.len() >= 24 {
        let h = SegHeader {
            conv: u32_at(d, 0),
            cmd: d[4],
            frg: d[5],
            wnd: u16::from_le_bytes([d[6], d[7]]),
            ts: u32_at(d, 8),
            sn: u32_at(d, 12),
            una: u32_at(d, 16),
            len: u32_at(d, 20),
        };
        out.push(h);
        let end = 24usize.saturating_add(h.len as usize);
        if end > d.len() {
            return (out, d.len() - 24);
        }
        d = &d[end..];
    }
    (out, d.len())
}

/// Multi-line human description of a datagram: length, reserved prefix and each header.
pub fn describe_datagram(datagram: &[u8], reserved: usize) -> String {
    let mut s = format!("{} bytes", datagram.len());
    if reserved > 0 {
        let pre = &datagram[..reserved.min(datagram.len())];
        let _ = write!(s, ", reserved prefix {}", short_hex(pre));
    }
    let (hs, rest) = decode_segments(datagram, reserved);
    for h in hs {
        let _ = write!(s, "\n      {h}");
    }
    if rest > 0 {
        let _ = write!(s, "\n      + {rest} trailing/truncated bytes");
    }
    s
}

/// The first line where `got` and `want` differ, for a readable failure when a regenerated
/// vector file no longer matches the checked-in one.
pub fn first_difference(got: &str, want: &str) -> String {
    let pair = got
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (g, w))| g != w);
    match pair {
        Some((i, (g, w))) => format!("line {}:\n got: {:.200}\nwant: {:.200}", i + 1, g, w),
        None => format!(
            "line counts differ: {} vs {}",
            got.lines().count(),
            want.lines().count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op() {
        let text = "# scenario: t — a test\n\
            config conv=0x11223344 nodelay=1 interval=10 resend=2 nc=1 sndwnd=64 rcvwnd=128 mtu=1350 reserved=28 stream=1\n\
            send 41 ret=0\n\
            send - ret=-1\n\
            # comment\n\
            input 0102 regular=0 acknodelay=1 ret=-1\n\
            flush ret=100\n\
            out 4433\n\
            flushack ret=10\n\
            advance 4294967196\n\
            recv 10 ret=2 data=6430\n\
            recv 10 ret=-1 data=-\n";
        let sc = parse("t", text).unwrap();
        assert_eq!(sc.purpose, "a test");
        assert_eq!(
            (sc.conv, sc.nodelay, sc.interval, sc.resend, sc.nc),
            (0x11223344, 1, 10, 2, 1)
        );
        assert_eq!(
            (sc.snd_wnd, sc.rcv_wnd, sc.mtu, sc.reserved, sc.stream),
            (64, 128, 1350, 28, true)
        );
        assert_eq!(sc.ops.len(), 9);
        assert_eq!(
            sc.ops[1],
            Op::Send {
                data: vec![],
                ret: -1
            }
        );
        assert_eq!(
            sc.ops[2],
            Op::Input {
                data: vec![1, 2],
                regular: false,
                ack_nodelay: true,
                ret: -1
            }
        );
        assert_eq!(sc.ops[6], Op::Advance { ms: 4294967196 });
        assert_eq!(
            sc.ops[7],
            Op::Recv {
                cap: 10,
                ret: 2,
                data: b"d0".to_vec()
            }
        );
        assert_eq!(sc.op_lines[0], 3);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("t", "send 41 ret=0\n").is_err(), "op before config");
        assert!(
            parse("t", "config mtu=1400\nsend 4 ret=0\n").is_err(),
            "odd hex"
        );
        assert!(parse("t", "config mtu=1400\nfrob\n").is_err());
        assert!(
            parse("t", "# scenario: other — x\nconfig\n").is_err(),
            "name mismatch"
        );
    }

    #[test]
    fn decodes_spec_example() {
        // kcp.md §1.2
        let d = hex::decode("4433221151000002360000000000000000000000010000004100").unwrap();
        let (hs, rest) = decode_segments(&d, 0);
        assert_eq!(hs[0].cmd, 81);
        assert_eq!(hs[0].wnd, 512);
        assert_eq!(hs[0].ts, 0x36);
        assert_eq!(rest, 1);
    }
}
