//! `SessionConfig::validate`: kcptun's FEC settings pass, half-off and oversized FEC fail.
use super::{CryptMode, SessionConfig, SessionConfigError};
use crate::kcp::KcpConfig;

fn with_fec(data: usize, parity: usize) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast().with_mtu(1350),
        crypt: CryptMode::Raw,
        key: [0; 32],
        data_shards: data,
        parity_shards: parity,
    }
}

#[test]
fn kcptun_fec_settings_are_valid() {
    for (d, p) in [(0, 0), (10, 3), (1, 1), (128, 128), (255, 1)] {
        assert_eq!(with_fec(d, p).validate(), Ok(()), "{d}/{p}");
    }
}

#[test]
fn half_off_and_oversized_fec_are_errors_not_silently_off() {
    for (d, p) in [(10, 0), (0, 3)] {
        let e = with_fec(d, p).validate().unwrap_err();
        assert_eq!(e, SessionConfigError::FecHalfOff { data: d, parity: p });
        assert!(
            e.to_string().contains("--datashard 0 --parityshard 0"),
            "{e}"
        );
    }
    let e = with_fec(200, 57).validate().unwrap_err();
    assert!(
        matches!(e, SessionConfigError::FecTooManyShards { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("256"), "{e}");
}

#[test]
fn kcp_knobs_are_checked_with_the_header_space_reserved() {
    let mut c = with_fec(10, 3);
    c.kcp.mtu = 40;
    assert!(matches!(c.validate(), Err(SessionConfigError::Kcp(_))));
}
