//! A byte ring for the hub's per-stream buffers: the stack reads received bytes straight
//! into its free space ([`ByteRing::fill_with`]) instead of into a scratch buffer that is
//! then copied in, so a received byte is copied once on its way from KCP's segment to the
//! application's buffer (issue 15 item 8). It grows on demand up to its caller's bound and
//! gives its memory back once drained ([`ByteRing::release`]), as the `VecDeque` it replaces.

/// Smallest allocation, and the free space [`ByteRing::fill_with`] makes room for.
const MIN_ROOM: usize = 64 * 1024;

/// Drained storages kept per thread for the next burst (a bound independent of the number of
/// streams, so an idle stream still costs only its struct).
const SPARES: usize = 2;

thread_local! {
    /// Storage given back by drained rings on this thread: a stream that drains and refills
    /// on every pass (a bulk transfer whose reader keeps up) would otherwise allocate,
    /// zero and fault in a fresh buffer each time.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A spare storage of at least `need` bytes, else a fresh zeroed one of `cap`.
fn storage(need: usize, cap: usize) -> Vec<u8> {
    let spare = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|b| b.len() >= need)?;
        Some(s.swap_remove(i))
    });
    spare.unwrap_or_else(|| vec![0u8; cap])
}

/// Keeps `buf` for a later [`storage`] call if there is room among the spares.
fn recycle(buf: Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARES {
            s.push(buf);
        } else if let Some(small) = s.iter_mut().min_by_key(|b| b.len()) {
            if small.len() < buf.len() {
                *small = buf;
            }
        }
    });
}

/// A growable ring buffer of bytes.
#[derive(Debug, Default)]
pub struct ByteRing {
    /// The storage, all of it initialised (its length is the ring's capacity).
    buf: Vec<u8>,
    /// Index of the oldest byte.
    head: usize,
    /// Bytes held.
    len: usize,
}

impl ByteRing {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage allocated.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The bytes held, oldest first, as the ring's two contiguous pieces.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        let first = self.len.min(cap - self.head);
        let (a, b) = (
            &self.buf[self.head..self.head + first],
            &self.buf[..self.len - first],
        );
        (a, b)
    }

    /// Drops the oldest `n` bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }

    /// Empties the ring (keeping its storage).
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Gives the storage back when the ring is empty (to this thread's few spares, for the
    /// next burst of any stream, or to the allocator).
    pub fn release(&mut self) {
        if self.len == 0 {
            recycle(std::mem::take(&mut self.buf));
            self.head = 0;
        }
    }

    /// Copies the oldest bytes into `out` and drops them; returns how many.
    pub fn read_into(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.as_slices();
        let from_a = out.len().min(a.len());
        out[..from_a].copy_from_slice(&a[..from_a]);
        let from_b = (out.len() - from_a).min(b.len());
        out[from_a..from_a + from_b].copy_from_slice(&b[..from_b]);
        self.consume(from_a + from_b);
        from_a + from_b
    }

    /// Appends `data`, growing the storage as needed.
    pub fn extend(&mut self, data: &[u8]) {
        self.reserve(data.len(), usize::MAX);
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.free_mut();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
        }
    }

    /// The oldest `n` bytes as one slice (rotating the storage if they wrap).
    pub fn front_contiguous(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.len);
        if self.head + n > self.buf.len() {
            self.buf.rotate_left(self.head);
            self.head = 0;
        }
        &self.buf[self.head..self.head + n]
    }

    /// Appends bytes written by `fill` straight into the free space, while the ring holds
    /// fewer than `limit` bytes: `fill` gets a contiguous free region (at most the room left
    /// under `limit`) and returns how many bytes it wrote; `0` stops. Returns the bytes
    /// appended.
    pub fn fill_with(&mut self, limit: usize, mut fill: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut total = 0;
        while self.len < limit {
            let want = (limit - self.len).min(MIN_ROOM);
            if self.buf.len() - self.len < want {
                self.reserve(want, limit);
            }
            let left = limit - self.len;
            let room = self.free_mut();
            let cap = room.len().min(left);
            let n = fill(&mut room[..cap]).min(cap);
            if n == 0 {
                break;
            }
            self.len += n;
            total += n;
        }
        total
    }

    /// The free region after the newest byte, up to the end of the storage or the oldest
    /// byte.
    fn free_mut(&mut self) -> &mut [u8] {
        let cap = self.buf.len();
        if cap == 0 {
            return &mut [];
        }
        let tail = (self.head + self.len) % cap;
        // Unwrapped data: free to the end of the storage (then again before `head`);
        // wrapped or full: free up to the oldest byte.
        let end = if tail >= self.head && self.len < cap {
            cap
        } else {
            self.head
        };
        &mut self.buf[tail..end]
    }

    /// Makes room for `extra` more bytes: a new, larger storage (doubling, but not past
    /// `bound` unless `extra` needs it) with the held bytes moved to its start.
    fn reserve(&mut self, extra: usize, bound: usize) {
        let need = self.len + extra;
        if need <= self.buf.len() {
            return;
        }
        let cap = need.max((self.buf.len() * 2).max(MIN_ROOM).min(bound));
        let mut grown = storage(need, cap);
        let (a, b) = self.as_slices();
        grown[..a.len()].copy_from_slice(a);
        grown[a.len()..a.len() + b.len()].copy_from_slice(b);
        recycle(std::mem::replace(&mut self.buf, grown));
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Random extends, fills, reads and consumes agree with a `VecDeque` model.
    #[test]
    fn agrees_with_vecdeque() {
        let mut r = ByteRing::default();
        let mut m: VecDeque<u8> = VecDeque::new();
        let mut x: u32 = 12345;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut byte = 0u8;
        for _ in 0..3_000 {
            match next() % 5 {
                0 => {
                    let n = (next() % 7_000) as usize;
                    let d: Vec<u8> = (0..n)
                        .map(|_| {
                            byte = byte.wrapping_add(1);
                            byte
                        })
                        .collect();
                    r.extend(&d);
                    m.extend(&d);
                }
                1 => {
                    let limit = (next() % 30_000) as usize;
                    let mut budget = (next() % 20_000) as usize;
                    r.fill_with(limit, |room| {
                        let n = room.len().min(budget).min(1400);
                        for b in &mut room[..n] {
                            byte = byte.wrapping_add(1);
                            *b = byte;
                            m.push_back(byte);
                        }
                        budget -= n;
                        n
                    });
                    assert!(r.len() <= limit.max(m.len()));
                }
                2 => {
                    let mut out = vec![0u8; (next() % 10_000) as usize];
                    let n = r.read_into(&mut out);
                    let want: Vec<u8> = m.drain(..n.min(m.len())).collect();
                    assert_eq!(&out[..n], &want[..]);
                }
                3 => {
                    let n = (next() % 5_000) as usize;
                    let got = r.front_contiguous(n).to_vec();
                    let want: Vec<u8> = m.iter().take(n).copied().collect();
                    assert_eq!(got, want);
                    r.consume(n);
                    m.drain(..n.min(m.len()));
                }
                _ => r.release(),
            }
            assert_eq!(r.len(), m.len());
            let (a, b) = r.as_slices();
            assert_eq!(a.len() + b.len(), m.len());
            assert!(a.iter().chain(b).eq(m.iter()));
        }
    }

    #[test]
    fn drained_ring_releases_its_storage() {
        let mut r = ByteRing::default();
        r.extend(&[1; 100]);
        assert!(r.capacity() >= 100);
        r.release();
        assert!(r.capacity() >= 100, "not empty: kept");
        r.consume(100);
        r.release();
        assert_eq!(r.capacity(), 0);
    }
}
