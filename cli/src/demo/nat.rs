//! The double NAT that makes kernel TCP between two sockets of one network namespace cross
//! the TUN device twice (once each way) instead of `lo`.
//!
//! The TUN has [`HOST`]; the target listens there, and the client dials [`SERVER_ALIAS`],
//! which the kernel routes into the TUN. The relay reads that packet (`HOST` →
//! `SERVER_ALIAS`), rewrites it to `CLIENT_ALIAS` → `HOST` and writes it back, so the
//! kernel delivers it to the target as coming from [`CLIENT_ALIAS`]. The target's answers
//! (`HOST` → `CLIENT_ALIAS`) are routed into the TUN too and become `SERVER_ALIAS` → `HOST`
//! for the client. Checksums are patched in place by RFC 1624's incremental update (the
//! addresses are in the IPv4 header checksum and in TCP's pseudo-header).
use std::net::Ipv4Addr;

/// The TUN device's own address: the client's and the target's.
pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// What the client dials to reach the target through the TUN.
pub const SERVER_ALIAS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Where the target sees the client's connections come from.
pub const CLIENT_ALIAS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
/// The TUN's prefix length (all three addresses on it).
pub const PREFIX: u8 = 24;

/// Which way a rewritten packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From the client toward the target.
    ToTarget,
    /// From the target back toward the client.
    ToClient,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Rewrites `packet` (one IPv4 packet as read from the TUN) in place; `None` (drop it) when
/// it is not one of the two flows above or is malformed.
pub fn rewrite(packet: &mut [u8]) -> Option<Way> {
    let version_ihl = *packet.first()?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl {
        return None;
    }
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(16..20)?).ok()?);
    let (way, new_src, new_dst) = match (src, dst) {
        (HOST, SERVER_ALIAS) => (Way::ToTarget, CLIENT_ALIAS, HOST),
        (HOST, CLIENT_ALIAS) => (Way::ToClient, SERVER_ALIAS, HOST),
        _ => return None,
    };
    let old: [u8; 8] = packet.get(12..20)?.try_into().ok()?;
    let mut new = [0u8; 8];
    new[..4].copy_from_slice(&new_src.octets());
    new[4..].copy_from_slice(&new_dst.octets());
    patch_checksum(packet, 10, &old, &new)?;
    // The transport checksum covers the addresses through the pseudo-header; only the
    // first fragment carries the transport header.
    let fragment_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
    let proto = *packet.get(9)?;
    if fragment_offset == 0 {
        let at = match proto {
            PROTO_TCP => Some(ihl + 16),
            // A zero UDP checksum means "none" and stays zero.
            PROTO_UDP if packet.get(ihl + 6..ihl + 8)? != [0, 0] => Some(ihl + 6),
            _ => None,
        };
        if let Some(at) = at {
            patch_checksum(packet, at, &old, &new)?;
        }
    }
    packet.get_mut(12..20)?.copy_from_slice(&new);
    Some(way)
}

/// RFC 1624 eqn. 3 on the 16-bit checksum at `at`: `HC' = ~(~HC + ~m + m')` for every
/// 16-bit word `m` of `old` replaced by `m'` of `new`.
fn patch_checksum(packet: &mut [u8], at: usize, old: &[u8], new: &[u8]) -> Option<()> {
    let field = packet.get_mut(at..at + 2)?;
    let hc = u16::from_be_bytes([field[0], field[1]]);
    let mut sum = u32::from(!hc);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    field.copy_from_slice(&(!(sum as u16)).to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4Header, PacketBuilder, TcpHeader};

    /// A TCP segment `src:40000 -> dst:5001` with valid checksums, built by etherparse.
    fn segment(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
            .tcp(40000, 5001, 0x1234_5678, 65535)
            .ack(0x0bad_cafe)
            .psh();
        let mut out = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut out, payload).unwrap();
        out
    }

    /// Both checksums recomputed from scratch by etherparse equal the patched ones.
    fn assert_valid(packet: &[u8]) -> (Ipv4Header, TcpHeader) {
        let (ip, rest) = Ipv4Header::from_slice(packet).unwrap();
        assert_eq!(
            ip.header_checksum,
            ip.calc_header_checksum(),
            "IPv4 checksum"
        );
        let (tcp, payload) = TcpHeader::from_slice(rest).unwrap();
        assert_eq!(
            tcp.checksum,
            tcp.calc_checksum_ipv4(&ip, payload).unwrap(),
            "TCP checksum"
        );
        (ip, tcp)
    }

    #[test]
    fn both_ways_are_rewritten_with_valid_checksums() {
        for payload in [&b""[..], b"x", b"hello, tunnel", &[0xff; 1400][..]] {
            let mut p = segment(HOST, SERVER_ALIAS, payload);
            assert_valid(&p);
            assert_eq!(rewrite(&mut p), Some(Way::ToTarget));
            let (ip, tcp) = assert_valid(&p);
            assert_eq!(
                (ip.source, ip.destination),
                (CLIENT_ALIAS.octets(), HOST.octets())
            );
            assert_eq!((tcp.source_port, tcp.destination_port), (40000, 5001));
            assert!(p.ends_with(payload));

            let mut p = segment(HOST, CLIENT_ALIAS, payload);
            assert_eq!(rewrite(&mut p), Some(Way::ToClient));
            let (ip, _) = assert_valid(&p);
            assert_eq!(
                (ip.source, ip.destination),
                (SERVER_ALIAS.octets(), HOST.octets())
            );
        }
    }

    #[test]
    fn other_packets_are_dropped() {
        let mut p = segment(CLIENT_ALIAS, HOST, b"x");
        assert_eq!(rewrite(&mut p), None);
        let mut p = segment(Ipv4Addr::new(10, 77, 0, 9), SERVER_ALIAS, b"x");
        assert_eq!(rewrite(&mut p), None);
        assert_eq!(rewrite(&mut [0x60, 0, 0, 0]), None, "IPv6");
        assert_eq!(rewrite(&mut []), None);
        assert_eq!(rewrite(&mut [0x45, 0, 0]), None, "truncated");
    }
}
