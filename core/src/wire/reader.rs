//! Bounds-checked cursor over received bytes.

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes remained than the field needs.
    #[error("truncated input: needed {needed} more bytes, {remaining} remain; the datagram was cut short or is not this protocol")]
    Truncated {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
}

/// A cursor that reads little- and big-endian integers and slices without panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unconsumed bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Consumes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(DecodeError::Truncated {
            needed: n,
            remaining: self.buf.len(),
        })?;
        self.buf = tail;
        Ok(head)
    }

    /// Consumes exactly `N` bytes as an array (a fixed-size field: nonce, tag, random).
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated {
                needed: N,
                remaining: self.buf.len(),
            })?;
        self.buf = tail;
        Ok(*head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array().map(u8::from_le_bytes)
    }
    /// Reads a little-endian u16.
    pub fn u16_le(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }
    /// Reads a big-endian u16.
    pub fn u16_be(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }
    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }
    /// Reads a big-endian u32.
    pub fn u32_be(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }
    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }
    /// Reads a big-endian u64.
    pub fn u64_be(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_never_panics() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        assert_eq!(r.u16_le(), Ok(0x0201));
        assert_eq!(
            r.u32_le(),
            Err(DecodeError::Truncated {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(r.u16_be(), Ok(0x0304));
        assert_eq!(r.remaining(), 1);
        assert!(r.take(2).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn arrays_are_all_or_nothing() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        assert_eq!(r.array::<2>(), Ok([1, 2]));
        assert_eq!(
            r.array::<4>(),
            Err(DecodeError::Truncated {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(r.rest(), &[3, 4, 5], "a failed read consumes nothing");
        assert_eq!(r.array::<3>(), Ok([3, 4, 5]));
        assert_eq!(r.array::<0>(), Ok([]));
        assert_eq!(
            r.u8(),
            Err(DecodeError::Truncated {
                needed: 1,
                remaining: 0
            })
        );
    }
}
