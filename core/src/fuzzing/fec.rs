//! The FEC decoder target.
use crate::session::fec::{recovered_payload, FecDecoder};

/// Feeds arbitrary shards to an FEC decoder: the first byte picks the shard counts, then
/// each shard is a length byte followed by that many bytes.
pub fn fec_decoder(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let (d, p) = [(10, 3), (1, 1), (3, 2), (20, 5)][sel as usize % 4];
    let Ok(mut dec) = FecDecoder::new(d, p) else {
        return;
    };
    let mut now = 0u32;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (shard, tail) = tail.split_at(n);
        rest = tail;
        now = now.wrapping_add(len as u32 * 100);
        if let Ok(rec) = dec.decode(now, shard) {
            for r in rec.iter() {
                let _ = recovered_payload(r);
            }
        }
        assert!(dec.pending_len() <= 3 * 256 + 1);
    }
}
