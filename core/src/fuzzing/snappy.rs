//! snappy target: the framing decoder (kcptun.md §7) on hostile chunks and on the encoder's
//! own output, fed and read in pieces of every size.
use crate::snappy::{max_chunk_len, Decoder, Encoder, SnappyError, MAX_BLOCK, STREAM_IDENTIFIER};

/// Byte 0 picks the mode (bit 0) and the size of the pieces fed (the rest), byte 1 the
/// read buffer's size. Mode 0: the stream identifier, then the remaining bytes as the peer's
/// chunks: no panic, reading stops at the first error, and the decoder never holds more than
/// one chunk plus one piece. Mode 1: the remaining bytes become frames (two length bytes,
/// then that many bytes cycled from the input, so frames span several 64 KiB blocks), which
/// the encoder writes and the decoder must give back exactly.
pub fn snappy_stream(data: &[u8]) {
    let [sel, read_sel, rest @ ..] = data else {
        return;
    };
    let piece = usize::from(sel >> 1) * 131 % 8192 + 1;
    let read = usize::from(*read_sel) * 263 % 70_000 + 1;
    if sel & 1 == 0 {
        let mut wire = STREAM_IDENTIFIER.to_vec();
        wire.extend_from_slice(rest);
        let _ = decode(&wire, piece, read);
    } else {
        let (wire, frames) = encode_frames(rest);
        let got = decode(&wire, piece, read).expect("the encoder's output decodes");
        assert!(got == frames, "snappy round trip changed the bytes");
    }
}

/// Encodes frames described by `script` (see [`snappy_stream`]) until they hold 256 KiB;
/// returns the wire bytes and the frames' concatenation.
pub(super) fn encode_frames(script: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut enc = Encoder::default();
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    let mut rest = script;
    // Bounded, so an input costs at most a few blocks' work.
    while let ([hi, lo, tail @ ..], true) = (rest, plain.len() < 4 * MAX_BLOCK) {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])) * 3;
        let frame: Vec<u8> = tail.iter().copied().cycle().take(len).collect();
        let split = frame.len().min(usize::from(*lo));
        let (a, b) = frame.split_at(split);
        enc.encode(&[a, b], &mut wire);
        plain.extend_from_slice(&frame);
        rest = tail.get(usize::from(*hi)..).unwrap_or_default();
    }
    (wire, plain)
}

/// Feeds `wire` in `piece`-byte pieces and reads with a `read`-byte buffer after each; the
/// bytes read, or the first corruption the decoder reported. Asserts after each piece that
/// the decoder holds no more than one chunk plus that piece. (Also `snappy_tests`' decoder.)
pub(crate) fn decode(wire: &[u8], piece: usize, read: usize) -> Result<Vec<u8>, SnappyError> {
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; read];
    for p in wire.chunks(piece) {
        dec.feed(p);
        loop {
            match dec.read(&mut buf)? {
                0 => break,
                n => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        assert!(
            dec.buffered() <= max_chunk_len() + piece,
            "the snappy decoder holds {} bytes, past one chunk and one piece",
            dec.buffered()
        );
    }
    Ok(out)
}
