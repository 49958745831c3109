//! Reads from a file descriptor (a socket, a pipe, stdin) straight into a [`BytesMut`]'s
//! spare capacity: `std::io::Read` wants an initialised `&mut [u8]`, so every fresh or
//! reused read block would be zeroed first only to be overwritten (4–7 % of the smux echo
//! server's CPU before this; issue 16). Stable std has no uninitialised read yet
//! (`Read::read_buf` is unstable), and tokio's `read_buf` serves only its own async types.
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use bytes::BytesMut;

/// Reads at most `max` bytes from `fd` (one `read(2)`) and appends them to `buf`, reserving
/// room first (nothing is allocated when `buf` has `max` bytes of spare capacity). Returns
/// how many bytes were read: 0 at the end of the file (or when `max` is 0). Errors are
/// `read(2)`'s, `Interrupted` and `WouldBlock` included, for the caller to handle.
pub fn read_uninit(fd: impl AsFd, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: `spare` is `buf`'s own writable, unaliased memory of at least `want` bytes,
    // and `read(2)` writes at most `want` bytes into it (it never reads from it).
    let got = unsafe { libc::read(fd.as_fd().as_raw_fd(), spare.as_mut_ptr().cast(), want) };
    // A negative return is an error (errno); anything else fits a usize.
    let Ok(got) = usize::try_from(got) else {
        return Err(io::Error::last_os_error());
    };
    let got = got.min(want);
    // SAFETY: `read(2)` initialised the first `got` bytes of the spare capacity (`got` is
    // at most `want`, which is within the capacity).
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Bytes land after what the buffer held, in its capacity, and a closed writer reads 0.
    #[test]
    fn appends_what_was_read_then_zero_at_eof() {
        let (r, mut w) = io::pipe().unwrap();
        w.write_all(b"hello world").unwrap();
        let mut buf = BytesMut::from(&b">"[..]);
        assert_eq!(read_uninit(&r, &mut buf, 5).unwrap(), 5);
        assert_eq!(&buf[..], b">hello");
        assert_eq!(read_uninit(&r, &mut buf, 64).unwrap(), 6);
        assert_eq!(&buf[..], b">hello world");
        drop(w);
        assert_eq!(read_uninit(&r, &mut buf, 64).unwrap(), 0);
        assert_eq!(buf.len(), 12);
    }
}
