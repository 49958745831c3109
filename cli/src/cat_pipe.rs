//! Pipes on `tether cat`'s stdin and stdout (Linux). A pipe is grown to 1 MiB, and a
//! stdout pipe is written without blocking from the runtime's own thread, through a write
//! end of our own, instead of by a writer thread (issue 15 item 8): with a thread, every
//! batch costs a wake-up there and one back, and the thread competes for the cores with the
//! socket task it serves.
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use tether_runtime_tokio::Bytes;
use tokio::net::unix::pipe;

use crate::cat_stdio::write_chunks;

/// Pipe capacity asked for (Linux's default ceiling for unprivileged users,
/// `/proc/sys/fs/pipe-max-size`).
const PIPE_BYTES: i32 = 1 << 20;

/// Grows `fd`'s pipe from the default 64 KiB to [`PIPE_BYTES`]: the two ends of a 64 KiB
/// pipe take turns every 64 KiB, each turn a sleep and a wake-up on both sides (4 000 per
/// 256 MiB). Best effort: a file, a terminal or a refused size keeps what it has.
pub fn grow(fd: &impl AsFd) {
    use nix::fcntl::{fcntl, FcntlArg};
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
}

/// A non-blocking write end of `fd`'s pipe that is ours alone, or `None` if `fd` is not a
/// pipe (or the system will not reopen it). The non-blocking flag belongs to an open file
/// description, which stdout shares with whoever else holds it (a shell, the next command
/// of a group): setting it there could make their writes fail with `EAGAIN`. Reopening the
/// pipe through `/proc/self/fd` makes a description of our own on the same pipe.
pub fn own_write_end(fd: &impl AsFd) -> Option<File> {
    let raw = fd.as_fd().as_raw_fd();
    let meta = std::fs::metadata(format!("/proc/self/fd/{raw}")).ok()?;
    if !meta.file_type().is_fifo() {
        return None;
    }
    File::options()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{raw}"))
        .ok()
}

/// Batches of chunks for a non-blocking pipe, written in order from the runtime's thread.
pub struct PipeSink {
    pipe: pipe::Sender,
    /// Batches not yet fully written, each with the index of its first unwritten chunk.
    queue: VecDeque<(Vec<Bytes>, usize)>,
}

impl PipeSink {
    /// Takes `file`, a non-blocking pipe write end ([`own_write_end`]); must be called
    /// within the tokio runtime.
    pub fn new(file: File) -> io::Result<PipeSink> {
        Ok(PipeSink {
            pipe: pipe::Sender::from_file(file)?,
            queue: VecDeque::new(),
        })
    }

    /// Batches queued and not yet fully written.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues `batch` and writes what the pipe takes now. A failed write leaves the batch
    /// queued: a pipe's errors persist (no reader left), so [`PipeSink::written`] reports
    /// it, as the writer thread's channel would.
    pub fn push(&mut self, batch: Vec<Bytes>) {
        self.queue.push_back((batch, 0));
        let _ = self.write_front();
    }

    /// Writes as much of the oldest batch as the pipe takes without blocking; true once it
    /// is all written (or none is queued).
    fn write_front(&mut self) -> io::Result<bool> {
        let Some((batch, first)) = self.queue.front_mut() else {
            return Ok(true);
        };
        match write_chunks(batch, first, |s| self.pipe.try_write_vectored(s)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the oldest batch is written and returns it (its chunks, for the caller
    /// to drop); pending forever while nothing is queued.
    pub async fn written(&mut self) -> io::Result<Vec<Bytes>> {
        if self.queue.is_empty() {
            return std::future::pending().await;
        }
        while !self.write_front()? {
            self.pipe.writable().await?;
        }
        Ok(self.queue.pop_front().map(|(b, _)| b).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::OwnedFd;

    use super::*;

    #[test]
    fn own_write_end_is_non_blocking_and_leaves_the_original_blocking() {
        let (_r, w) = io::pipe().unwrap();
        let w = OwnedFd::from(w);
        let own = own_write_end(&w).expect("a pipe is reopened");
        let flags = |fd: &dyn AsFd| {
            nix::fcntl::OFlag::from_bits_truncate(
                nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap(),
            )
        };
        assert!(flags(&own).contains(nix::fcntl::OFlag::O_NONBLOCK));
        assert!(!flags(&w).contains(nix::fcntl::OFlag::O_NONBLOCK));
        let file = File::from(tempfile_fd());
        assert!(
            own_write_end(&file).is_none(),
            "a regular file is not a pipe"
        );
    }

    fn tempfile_fd() -> OwnedFd {
        let path = std::env::temp_dir().join(format!("tether-cat-pipe-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f.into()
    }

    /// A full pipe makes the sink wait, and every byte still arrives once, in order.
    #[test]
    fn a_full_pipe_waits_and_keeps_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, w) = io::pipe().unwrap();
        let expect = data.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut sink = PipeSink::new(own_write_end(&OwnedFd::from(w)).unwrap()).unwrap();
                let all = Bytes::from(data);
                for start in (0..all.len()).step_by(100_000) {
                    let end = (start + 100_000).min(all.len());
                    let mid = (start + end) / 2;
                    sink.push(vec![all.slice(start..mid), all.slice(mid..end)]);
                    while sink.queued() > 2 {
                        sink.written().await.unwrap();
                    }
                }
                while sink.queued() > 0 {
                    sink.written().await.unwrap();
                }
            });
        assert_eq!(reader.join().unwrap(), expect);
    }

    /// With the reader gone, the batch stays queued and `written` reports the broken pipe.
    #[test]
    fn a_closed_pipe_is_reported_by_written() {
        let (r, w) = io::pipe().unwrap();
        drop(r);
        let err = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut sink = PipeSink::new(own_write_end(&OwnedFd::from(w)).unwrap()).unwrap();
                sink.push(vec![Bytes::from_static(b"x")]);
                assert_eq!(sink.queued(), 1);
                sink.written().await.unwrap_err()
            });
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
