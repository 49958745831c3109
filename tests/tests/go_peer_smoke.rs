//! Smoke tests of the kcp-go peer (`tests/go/kcppeer`, driven by `tether_tests::peer`):
//! a Go client and a Go server, kcptun-configured (crypt aes, FEC 10/3, mode fast3), move
//! 4 MiB full duplex over loopback, directly and through `tether netem` (5% loss, 30 ms
//! one-way delay), and the echoed bytes must hash like the sent ones.
//!
//! The `tether` binary is found next to this test's executable (`target/<profile>/tether`)
//! and built with `cargo build -p tether-cli` first, as in `netem_cli.rs`; set
//! `TETHER_BIN=/path/to/tether` to use another one.
use std::net::SocketAddr;
use std::time::Instant;

use tether_tests::peer::{go_peer_available, json_f64, json_field, json_u64, GoPeer};
use tether_tests::tether_bin::Netem;

/// 4 MiB.
const BULK_BYTES: &str = "4194304";
/// kcptun settings shared by both peers.
const KCPTUN: &[&str] = &[
    "-crypt",
    "aes",
    "-datashard",
    "10",
    "-parityshard",
    "3",
    "-mode",
    "fast3",
];

/// Runs the bulk client against `to`, checks the digests, and returns the client's output.
fn bulk(label: &str, to: SocketAddr, extra: &[&str]) -> String {
    let to = to.to_string();
    let mut args = vec![
        "-connect",
        to.as_str(),
        "-role",
        "bulk",
        "-bytes",
        BULK_BYTES,
    ];
    args.extend_from_slice(KCPTUN);
    args.extend_from_slice(extra);
    let start = Instant::now();
    let out = GoPeer::run_client(&args);
    let wall = start.elapsed();
    println!(
        "{label}: wall {:.3} s (process), transfer {:.3} s (after the hello): {}",
        wall.as_secs_f64(),
        json_f64(&out, "seconds").unwrap_or(f64::NAN),
        out.trim()
    );
    assert_eq!(json_u64(&out, "sent"), Some(4 << 20), "{out}");
    assert_eq!(json_u64(&out, "received"), Some(4 << 20), "{out}");
    let sent = json_field(&out, "sha256_sent").expect("sha256_sent");
    assert_eq!(sent.len(), 64, "{out}");
    assert_eq!(json_field(&out, "sha256_received"), Some(sent), "{out}");
    out
}

#[test]
fn go_client_and_go_server_move_4mib_over_loopback() {
    if !go_peer_available() {
        return;
    }
    let server = GoPeer::server(KCPTUN);
    bulk("loopback", server.addr(), &[]);
}

#[test]
fn go_client_and_go_server_move_4mib_through_netem_with_loss_and_delay() {
    if !go_peer_available() {
        return;
    }
    let server = GoPeer::server(KCPTUN);
    let netem = Netem::spawn(
        server.addr(),
        &["--loss", "5%", "--delay", "30ms", "--seed", "1", "--quiet"],
    );
    bulk(
        "netem 5% loss, 30 ms delay",
        netem.listen,
        &["-timeout", "120s"],
    );
    drop(netem);
}
