//! Stream id allocation: xtaci's odd/even counters (smux-xtaci.md §3) and the seed's shared
//! 65536-bit bitmap (smux-seed.md §3), allocated round-robin so a just-freed id is not handed
//! out again at once (the spec's stale-`Close` note).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use crate::stack::Side;

/// xtaci ids: the client opens 3, 5, 7…, the server 2, 4, 6…; at the wrap opens are refused
/// (`ErrGoAway`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct XtaciIds {
    next: u32,
    exhausted: bool,
}

impl XtaciIds {
    pub fn new(side: Side) -> Self {
        XtaciIds {
            next: match side {
                Side::Client => 1,
                Side::Server => 0,
            },
            exhausted: false,
        }
    }

    /// The next id of this side, skipping ids `taken` (a misbehaving peer may have used one
    /// of ours); `None` once the id space wrapped.
    pub fn alloc(&mut self, taken: impl Fn(u32) -> bool) -> Option<u32> {
        loop {
            if self.exhausted {
                return None;
            }
            let id = self.next.wrapping_add(2);
            if id < self.next {
                self.exhausted = true;
                return None;
            }
            self.next = id;
            if !taken(id) {
                return Some(id);
            }
        }
    }

    /// Moves the counter (tests of the wrap).
    #[cfg(test)]
    pub fn set_next(&mut self, next: u32) {
        self.next = next;
    }
}

const IDS: usize = 1 << 16;

/// The seed's one id space for both sides: a bit per id, id 0 reserved.
#[derive(Debug, Clone)]
pub(crate) struct SeedIds {
    bits: Vec<u64>,
    /// The last id handed out (the scan starts after it).
    cursor: u16,
    used: usize,
}

impl SeedIds {
    pub fn new() -> Self {
        let mut ids = SeedIds {
            bits: vec![0; IDS / 64],
            cursor: 0,
            used: 0,
        };
        ids.set(0); // smux-seed.md §3: id 0 is never allocated
        ids
    }

    pub fn is_set(&self, id: u16) -> bool {
        let (w, b) = (usize::from(id) / 64, id % 64);
        self.bits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Marks `id` used (a local open, or a peer's SYN).
    pub fn set(&mut self, id: u16) {
        let (w, b) = (usize::from(id) / 64, id % 64);
        if let Some(x) = self.bits.get_mut(w) {
            if *x & (1 << b) == 0 {
                *x |= 1 << b;
                self.used += 1;
            }
        }
    }

    /// Frees `id` (never the reserved 0).
    pub fn clear(&mut self, id: u16) {
        let (w, b) = (usize::from(id) / 64, id % 64);
        if id == 0 {
            return;
        }
        if let Some(x) = self.bits.get_mut(w) {
            if *x & (1 << b) != 0 {
                *x &= !(1 << b);
                self.used -= 1;
            }
        }
    }

    /// The first free id after the last one handed out, wrapping; `None` when all are used.
    pub fn alloc(&mut self) -> Option<u16> {
        if self.used >= IDS {
            return None;
        }
        let mut id = self.cursor;
        for _ in 0..IDS {
            id = id.wrapping_add(1);
            let word = self.bits.get(usize::from(id) / 64).copied().unwrap_or(!0);
            if word == !0 {
                id |= 63; // skip the full word
                continue;
            }
            if !self.is_set(id) {
                self.set(id);
                self.cursor = id;
                return Some(id);
            }
        }
        None
    }

    /// Ids in use, the reserved 0 included.
    pub fn used(&self) -> usize {
        self.used
    }
}
