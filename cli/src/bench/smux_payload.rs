//! The payload of the multiplexer echo clients (the scheme of `tests/go/smuxpeer`): a pool of
//! 1 MiB + 7 random bytes per run, which every stream sends cyclically from its own offset.
//! The period is no multiple of any frame size, so a lost, duplicated or reordered frame shows
//! as a mismatch, and checking costs one `memcmp` per byte (the bench measures the
//! multiplexer, not a hash).
use std::time::{SystemTime, UNIX_EPOCH};

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tether_runtime_tokio::{Bytes, KcpStream};

use super::peer::Pattern;

/// Read and write size of the clients and echo servers.
pub const CHUNK: usize = 64 * 1024;
/// The pool's period (smuxpeer's `poolSize`).
const POOL_SIZE: usize = (1 << 20) + 7;

/// One run's random bytes (cheap to clone: shared; its slices are shared, not copied).
#[derive(Clone)]
pub struct Pool {
    bytes: Bytes,
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
            bytes: Bytes::from(bytes),
            seed,
        }
    }

    /// Where stream number `i` starts in the pool.
    pub fn offset(&self, i: usize) -> usize {
        let mut b = [0u8; 8];
        Pattern::new(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).fill(&mut b);
        (u64::from_le_bytes(b) % POOL_SIZE as u64) as usize
    }

    /// Where the next at most `max` bytes of the pool from `off` end, without wrapping.
    fn end(&self, off: usize, max: u64) -> usize {
        off + (self.bytes.len() - off).min(max.min(CHUNK as u64) as usize)
    }

    /// The next at most `max` bytes of the pool from `off`, without wrapping.
    fn slice(&self, off: usize, max: u64) -> &[u8] {
        &self.bytes[off..self.end(off, max)]
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

    /// [`Pool::send`] on a tether stream, as shared slices of the pool (`write_chunk`: not
    /// copied on the way in), then waits until the peer acknowledged them.
    pub async fn send_chunks(
        &self,
        stream: &KcpStream,
        mut off: usize,
        mut n: u64,
    ) -> std::io::Result<()> {
        while n > 0 {
            let s = self.bytes.slice(off..self.end(off, n));
            off = (off + s.len()) % POOL_SIZE;
            n -= s.len() as u64;
            stream.write_chunk(s).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut &*stream).await
    }

    /// Whether `data` is the pool's bytes from `*off` (cyclically), moving `*off` past them.
    fn matches(&self, off: &mut usize, mut data: &[u8]) -> bool {
        let mut matched = true;
        while !data.is_empty() {
            let s = self.slice(*off, data.len() as u64);
            matched &= data[..s.len()] == *s;
            *off = (*off + s.len()) % POOL_SIZE;
            data = &data[s.len()..];
        }
        matched
    }

    /// [`Pool::check`] on a tether stream, comparing the received chunks in place
    /// (`read_chunk`: not copied on the way out).
    pub async fn check_chunks(
        &self,
        stream: &KcpStream,
        mut off: usize,
        mut n: u64,
    ) -> std::io::Result<bool> {
        let mut matched = true;
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX);
            let Some(c) = stream.read_chunk(want).await? else {
                return Err(early_eof(n));
            };
            matched &= self.matches(&mut off, &c);
            n -= c.len() as u64;
        }
        Ok(matched)
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
                return Err(early_eof(n));
            }
            matched &= self.matches(&mut off, &buf[..got]);
            n -= got as u64;
        }
        Ok(matched)
    }
}

/// The error of an echo that ended `n` bytes short.
fn early_eof(n: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("EOF with {n} bytes of the echo missing"),
    )
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
