//! Header codecs: the spec's worked frames, round trips (proptest), verify_code's table.
use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .flat_map(|w| {
            (0..w.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
        })
        .collect()
}

#[test]
fn xtaci_worked_frames() {
    // smux-xtaci.md §2 examples.
    let syn = XtaciHeader {
        version: 1,
        cmd: Cmd::Syn,
        length: 0,
        sid: 3,
    };
    assert_eq!(syn.to_bytes().to_vec(), hex("01 00 0000 03000000"));
    let psh = XtaciHeader {
        version: 1,
        cmd: Cmd::Psh,
        length: 1300,
        sid: 3,
    };
    assert_eq!(psh.to_bytes().to_vec(), hex("01 02 1405 03000000"));
    let nop = XtaciHeader {
        version: 1,
        cmd: Cmd::Nop,
        length: 0,
        sid: 0,
    };
    assert_eq!(nop.to_bytes().to_vec(), hex("01 03 0000 00000000"));
    let upd = XtaciHeader {
        version: 2,
        cmd: Cmd::Upd,
        length: 8,
        sid: 3,
    };
    let mut wire = upd.to_bytes().to_vec();
    wire.extend(
        Upd {
            consumed: 1300,
            window: 2_097_152,
        }
        .to_bytes(),
    );
    assert_eq!(wire, hex("02 04 0800 03000000 14050000 00002000"));
    assert_eq!(XtaciHeader::decode(&wire, 2), Ok(upd));
    assert_eq!(
        Upd::decode(&wire[8..]),
        Ok(Upd {
            consumed: 1300,
            window: 2_097_152
        })
    );
}

#[test]
fn xtaci_rejects_version_and_unknown_cmd() {
    assert_eq!(
        XtaciHeader::decode(&hex("02 00 0000 03000000"), 1),
        Err(FrameError::Version { got: 2, want: 1 })
    );
    assert_eq!(
        XtaciHeader::decode(&hex("01 05 0000 03000000"), 1),
        Err(FrameError::UnknownCmd(5))
    );
    assert_eq!(
        XtaciHeader::decode(&hex("01 00 00"), 1),
        Err(FrameError::Truncated)
    );
}

#[test]
fn seed_worked_frames() {
    // smux-seed.md §10.
    let cases = [
        (
            SeedHeader {
                cmd: Cmd::Syn,
                id: 1,
                length: 0,
            },
            "00 01 00 00 00 00 00",
        ),
        (
            SeedHeader {
                cmd: Cmd::Psh,
                id: 1,
                length: 4,
            },
            "02 01 00 04 00 00 00",
        ),
        (
            SeedHeader {
                cmd: Cmd::Cfm,
                id: 1,
                length: 262_144,
            },
            "03 01 00 00 00 04 00",
        ),
        (
            SeedHeader {
                cmd: Cmd::Fin,
                id: 1,
                length: 0,
            },
            "01 01 00 00 00 00 00",
        ),
        (
            SeedHeader {
                cmd: Cmd::Vrm,
                id: 0x1234,
                length: 0xAABB_CCDD,
            },
            "04 34 12 DD CC BB AA",
        ),
        (
            SeedHeader {
                cmd: Cmd::Vrm,
                id: 0x3420,
                length: 0xAADD_BBCC,
            },
            "04 20 34 CC BB DD AA",
        ),
    ];
    for (h, bytes) in cases {
        assert_eq!(h.to_bytes().to_vec(), hex(bytes));
        assert_eq!(SeedHeader::decode(&hex(bytes)), Ok(h));
    }
    assert_eq!(
        SeedHeader::decode(&hex("05 00 00 00 00 00 00")),
        Err(FrameError::UnknownCmd(5)),
        "[HEAD]'s PIN is not the seed dialect"
    );
}

#[test]
fn verify_code_matches_upstream_table() {
    // smux-seed.md §7.1, computed by running the upstream function.
    assert_eq!(verify_code(0x1234, 0xAABB_CCDD), (0x3420, 0xAADD_BBCC));
    assert_eq!(verify_code(0xFFFF, 0x0102_0304), (0xFFF0, 0x0104_0203));
    assert_eq!(verify_code(0xABCD, 0xFFFF_FFFF), (0xCDB0, 0xFFFF_FFFF));
    assert_eq!(verify_code(0, 0), (0, 0));
}

fn xtaci_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        Just(Cmd::Syn),
        Just(Cmd::Fin),
        Just(Cmd::Psh),
        Just(Cmd::Nop),
        Just(Cmd::Upd)
    ]
}

fn seed_cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        Just(Cmd::Syn),
        Just(Cmd::Fin),
        Just(Cmd::Psh),
        Just(Cmd::Cfm),
        Just(Cmd::Vrm)
    ]
}

proptest! {
    #[test]
    fn xtaci_round_trips(version in 1u8..=2, cmd in xtaci_cmd(), length: u16, sid: u32) {
        let h = XtaciHeader { version, cmd, length, sid };
        prop_assert_eq!(XtaciHeader::decode(&h.to_bytes(), version), Ok(h));
    }

    #[test]
    fn seed_round_trips(cmd in seed_cmd(), id: u16, length: u32) {
        let h = SeedHeader { cmd, id, length };
        let mut v = Vec::new();
        h.encode(&mut v);
        prop_assert_eq!(&v[..], &h.to_bytes()[..]);
        prop_assert_eq!(SeedHeader::decode(&v), Ok(h));
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16), ver in 0u8..4) {
        let _ = XtaciHeader::decode(&bytes, ver);
        let _ = SeedHeader::decode(&bytes);
        let _ = Upd::decode(&bytes);
    }
}
