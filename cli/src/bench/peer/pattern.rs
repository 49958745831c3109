//! The payload both bench peers send: kcppeer's xorshift64 byte stream.

/// kcppeer's xorshift64 byte stream (tests/src/peer.rs `pattern`).
pub struct Pattern {
    x: u64,
    buf: [u8; 8],
    n: usize,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let x = if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        };
        Pattern {
            x,
            buf: [0; 8],
            n: 0,
        }
    }

    fn step(&mut self) -> [u8; 8] {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x.to_le_bytes()
    }

    pub fn fill(&mut self, mut out: &mut [u8]) {
        while self.n > 0 && !out.is_empty() {
            out[0] = self.buf[8 - self.n];
            self.n -= 1;
            out = &mut out[1..];
        }
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.step());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.buf = self.step();
            self.n = 8;
            for b in tail {
                *b = self.buf[8 - self.n];
                self.n -= 1;
            }
        }
    }
}
