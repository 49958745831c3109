//! The harness itself: hand-written scripts reach delivery in every mode, so the fuzzer
//! starts from deep states (the same scripts are seeds in `fuzz/corpus/`).
use super::listener::run_listener;
use super::session::run_sequence;
use crate::sim::test_start;

/// Every selector's protection (low three bits) with FEC off, 3/2 and 2/1.
fn selectors() -> impl Iterator<Item = u8> {
    (0..8u8).flat_map(|mode| [0u8, 2, 3].map(|fec| mode | fec << 3))
}

/// `session_sequence`: a 385-byte write at the client, the handshake's first round trip
/// (the authenticated mode's hellos; an ACK-less no-op elsewhere), delivered, read,
/// acknowledged.
pub(crate) fn sequence_script(sel: u8) -> Vec<u8> {
    let mut s = vec![sel, 0x00, 0x60, 0x02, 0x00, 0x03, 0x00];
    s.extend([0x02, 0x00].repeat(4));
    s.push(0x0A);
    s.extend([0x03, 0x00].repeat(2));
    s
}

/// `listener`: client 0 connects and writes 385 bytes, one round trip (the authenticated
/// mode's hellos), the datagrams go up, the server accepts and reads.
pub(crate) fn listener_script(sel: u8) -> Vec<u8> {
    let mut s = vec![sel, 0x00, 0x00, 0x01, 0x00, 0x60, 0x00];
    s.extend([0x07, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00]);
    s.extend([0x07, 0x00, 0x00, 0x00].repeat(4));
    s.extend([0x02, 0x00, 0x04, 0x00]);
    s
}

#[test]
fn a_session_script_delivers_in_every_mode() {
    for sel in selectors() {
        let d = run_sequence(test_start(), &sequence_script(sel));
        assert_eq!(d.by_server, 385, "selector {sel:#04x}");
    }
}

#[test]
fn a_listener_script_accepts_and_delivers_in_every_mode() {
    for sel in selectors() {
        assert_eq!(
            run_listener(test_start(), &listener_script(sel)),
            385,
            "selector {sel:#04x}"
        );
    }
}

/// A run that crosses the pattern's period reads the same as runs cut anywhere else (the
/// smux_session fuzzer found readers failing at stream byte 65 536 when it did not).
#[test]
fn pattern_is_continuous_across_its_period() {
    use super::script::pattern_bytes;
    let long = pattern_bytes(65_000, 1_000);
    assert_eq!(&long[521..], pattern_bytes(65_521, 479));
    assert_eq!(&long[536..], pattern_bytes(65_536, 464));
}

/// `snappy_stream`'s round-trip mode builds a frame past one 64 KiB block, which comes back
/// whatever the piece and read sizes; a flipped byte in a chunk's data stops the reading.
#[test]
fn a_snappy_script_round_trips_and_stops_at_corruption() {
    use super::snappy::{decode, encode_frames};
    let (mut wire, plain) = encode_frames(&[0xff, 0xff, b'a', b'b', b'c']);
    assert_eq!(plain.len(), 65_535 * 3);
    for (piece, read) in [(1, 7), (4096, 70_000), (wire.len(), 1)] {
        assert_eq!(decode(&wire, piece, read).as_deref(), Ok(&plain[..]));
    }
    // Identifier (10 bytes), the first chunk's header (4) and CRC (4): byte 20 is its data.
    wire[20] ^= 0x40;
    assert!(decode(&wire, 4096, 4096).is_err());
}
