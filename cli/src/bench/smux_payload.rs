//! The payload of the multiplexer echo clients (the scheme of `tests/go/smuxpeer`): a pool of
//! 1 MiB + 7 random bytes per run, which every stream sends cyclically from its own offset.
//! The period is no multiple of any frame size, so a lost, duplicated or reordered frame shows
//! as a mismatch, and checking costs one `memcmp` per byte (the bench measures the
//! multiplexer, not a hash).
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::peer::Pattern;

/// Read and write size of the clients and echo servers.
pub const CHUNK: usize = 64 * 1024;
/// The pool's period (smuxpeer's `poolSize`).
const POOL_SIZE: usize = (1 << 20) + 7;

/// One run's random bytes (cheap to clone: shared).
#[derive(Clone)]
pub struct Pool {
    bytes: Arc<Vec<u8>>,
    seed: u64,
}

impl Pool {
    /// A fresh pool, seeded from the clock and the process id.
    pub fn random() -> Pool {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32);
        let mut bytes = vec![0u8; POOL_SIZE];
        Pattern::new(seed).fill(&mut bytes);
        Pool {
            bytes: Arc::new(bytes),
            seed,
        }
    }

    /// Where stream number `i` starts in the pool.
    pub fn offset(&self, i: usize) -> usize {
        let mut b = [0u8; 8];
        Pattern::new(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).fill(&mut b);
        (u64::from_le_bytes(b) % POOL_SIZE as u64) as usize
    }

    /// The next at most `max` bytes of the pool from `off`, without wrapping.
    fn slice(&self, off: usize, max: u64) -> &[u8] {
        let end = off + (self.bytes.len() - off).min(max.min(CHUNK as u64) as usize);
        &self.bytes[off..end]
    }

    /// Writes `n` bytes of the pool, cyclically from `off`.
    pub async fn send<W: AsyncWrite + Unpin>(
        &self,
        w: &mut W,
        mut off: usize,
        mut n: u64,
    ) -> std::io::Result<()> {
        while n > 0 {
            let s = self.slice(off, n);
            w.write_all(s).await?;
            off = (off + s.len()) % POOL_SIZE;
            n -= s.len() as u64;
        }
        w.flush().await
    }

    /// Reads `n` bytes and tells whether they are the pool's, cyclically from `off`; an EOF
    /// before `n` bytes is an error.
    pub async fn check<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        mut off: usize,
        mut n: u64,
    ) -> std::io::Result<bool> {
        let mut buf = vec![0u8; CHUNK];
        let mut matched = true;
        while n > 0 {
            let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            let got = r.read(&mut buf[..want]).await?;
            if got == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("EOF with {n} bytes of the echo missing"),
                ));
            }
            let mut rest = &buf[..got];
            while !rest.is_empty() {
                let s = self.slice(off, rest.len() as u64);
                matched &= rest[..s.len()] == *s;
                off = (off + s.len()) % POOL_SIZE;
                rest = &rest[s.len()..];
            }
            n -= got as u64;
        }
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn what_is_sent_checks_and_a_swapped_or_shifted_byte_does_not() {
        let pool = Pool::random();
        let n = 3 * POOL_SIZE as u64 + 12_345; // wraps around the pool three times
        let off = pool.offset(5);
        let mut sent = Vec::new();
        run(pool.send(&mut sent, off, n)).expect("send to a Vec");
        assert_eq!(sent.len() as u64, n);
        let check = |bytes: &[u8]| run(pool.check(&mut &bytes[..], off, n)).expect("check");
        assert!(check(&sent));
        let mut swapped = sent.clone();
        swapped.swap(100_000, 2_000_000);
        assert!(!check(&swapped));
        let mut shifted = sent.clone();
        shifted.rotate_left(CHUNK);
        assert!(!check(&shifted));
        let short = run(pool.check(&mut &sent[..10], off, n));
        assert!(short.is_err(), "an early EOF is an error");
    }

    #[test]
    fn streams_start_at_different_offsets() {
        let pool = Pool::random();
        assert_ne!(pool.offset(0), pool.offset(1));
    }
}
