//! `tether cat`'s stdin and stdout: one thread each, exchanging large buffers with the async
//! side over bounded channels. `tokio::io::stdin()`/`stdout()` run every read and write as
//! a task on tokio's blocking pool; at bulk rates those hand-offs (spawns, futex wake-ups,
//! a contended pool mutex) cost more CPU than the protocol (issue 15 item 8).
//!
//! Both threads use the file descriptors unbuffered (duplicates of 0 and 1): a read takes
//! what the pipe or file has, up to [`CHUNK`] bytes, and a write goes to the kernel at once,
//! so interactive use sees no extra latency.
use std::fs::File;
use std::io::{self, Read, Write};
use std::thread;

use tokio::sync::mpsc;

/// Bytes per buffer: one read from stdin, or one write to stdout.
pub const CHUNK: usize = 256 * 1024;

/// Buffers in flight between a thread and the async side (bounds memory to a few MiB).
const DEPTH: usize = 4;

/// A buffer whose first `len` bytes are data.
pub struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

impl Chunk {
    /// The data.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// stdin, read by its own thread.
pub struct StdinReader {
    chunks: mpsc::Receiver<io::Result<Chunk>>,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
}

impl StdinReader {
    /// Starts the reader thread. It reads ahead at most [`DEPTH`] buffers and stops at EOF,
    /// at the first error, or when the reader is dropped (after its next read returns).
    pub fn spawn() -> io::Result<StdinReader> {
        StdinReader::on(File::from(dup_stdin()?))
    }

    /// [`StdinReader::spawn`] on any source.
    fn on(file: impl Read + Send + 'static) -> io::Result<StdinReader> {
        let (tx, chunks) = mpsc::channel(DEPTH);
        let (spare, spare_rx) = std::sync::mpsc::channel();
        thread::Builder::new()
            .name("cat-stdin".into())
            .spawn(move || read_loop(file, &tx, &spare_rx))?;
        Ok(StdinReader { chunks, spare })
    }

    /// The next chunk of stdin; `None` at EOF.
    pub async fn next(&mut self) -> Option<io::Result<Chunk>> {
        self.chunks.recv().await
    }

    /// Gives a chunk's buffer back to the reader thread for a later read.
    pub fn recycle(&self, c: Chunk) {
        let _ = self.spare.send(c.buf);
    }
}

fn read_loop(
    mut file: impl Read,
    tx: &mpsc::Sender<io::Result<Chunk>>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let r = loop {
            match file.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let msg = match r {
            Ok(0) => return, // EOF: the closed channel says so
            Ok(len) => Ok(Chunk { buf, len }),
            Err(e) => Err(e),
        };
        let failed = msg.is_err();
        if tx.blocking_send(msg).is_err() || failed {
            return;
        }
    }
}

/// stdout, written by its own thread.
pub struct StdoutWriter {
    chunks: std::sync::mpsc::Sender<Chunk>,
    done: mpsc::UnboundedReceiver<io::Result<Vec<u8>>>,
    in_flight: usize,
    spare: Vec<Vec<u8>>,
}

impl StdoutWriter {
    /// Starts the writer thread; it ends when the writer is dropped or a write fails.
    pub fn spawn() -> io::Result<StdoutWriter> {
        StdoutWriter::on(File::from(dup_stdout()?))
    }

    /// [`StdoutWriter::spawn`] on any sink.
    fn on(file: impl Write + Send + 'static) -> io::Result<StdoutWriter> {
        let (chunks, rx) = std::sync::mpsc::channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name("cat-stdout".into())
            .spawn(move || write_loop(file, &rx, &done_tx))?;
        Ok(StdoutWriter {
            chunks,
            done,
            in_flight: 0,
            spare: Vec::new(),
        })
    }

    /// A buffer of [`CHUNK`] bytes to receive into (a written one when available).
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| vec![0; CHUNK])
    }

    /// Whether another write may be queued ([`DEPTH`] in flight at most).
    pub fn can_write(&self) -> bool {
        self.in_flight < DEPTH
    }

    /// Whether everything queued was written.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    /// Queues the first `len` bytes of `buf` for stdout.
    pub fn write(&mut self, buf: Vec<u8>, len: usize) -> io::Result<()> {
        self.chunks
            .send(Chunk { buf, len })
            .map_err(|_| io::Error::other("the stdout thread stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for the oldest queued write: `Ok` once it reached stdout, or stdout's error.
    /// Pending forever while nothing is queued.
    pub async fn written(&mut self) -> io::Result<()> {
        if self.in_flight == 0 {
            return std::future::pending().await;
        }
        let r = self.done.recv().await;
        self.in_flight -= 1;
        let buf = r.unwrap_or_else(|| Err(io::Error::other("the stdout thread stopped")))?;
        self.spare.push(buf);
        Ok(())
    }

    /// Waits until everything queued was written or failed (before exiting on an error, so
    /// what arrived is not lost).
    pub async fn drain(&mut self) {
        while self.in_flight > 0 {
            if self.written().await.is_err() {
                return;
            }
        }
    }
}

fn write_loop(
    mut file: impl Write,
    chunks: &std::sync::mpsc::Receiver<Chunk>,
    done: &mpsc::UnboundedSender<io::Result<Vec<u8>>>,
) {
    while let Ok(c) = chunks.recv() {
        let r = file.write_all(c.bytes()).map(|()| c.buf);
        let failed = r.is_err();
        if done.send(r).is_err() || failed {
            return;
        }
    }
}

#[cfg(unix)]
fn dup_stdin() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    io::stdin().as_fd().try_clone_to_owned()
}

#[cfg(unix)]
fn dup_stdout() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    io::stdout().as_fd().try_clone_to_owned()
}

#[cfg(windows)]
fn dup_stdin() -> io::Result<std::os::windows::io::OwnedHandle> {
    use std::os::windows::io::AsHandle;
    io::stdin().as_handle().try_clone_to_owned()
}

#[cfg(windows)]
fn dup_stdout() -> io::Result<std::os::windows::io::OwnedHandle> {
    use std::os::windows::io::AsHandle;
    io::stdout().as_handle().try_clone_to_owned()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::{StdinReader, StdoutWriter, CHUNK};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn stdin_arrives_in_order_in_chunks_then_eof() {
        let data = pattern(5 * CHUNK + 123);
        let (r, mut w) = std::io::pipe().unwrap();
        let d2 = data.clone();
        let feeder = std::thread::spawn(move || w.write_all(&d2).unwrap());
        let got = block_on(async {
            let mut stdin = StdinReader::on(r).unwrap();
            let mut got = Vec::new();
            while let Some(c) = stdin.next().await {
                let c = c.unwrap();
                assert!(!c.bytes().is_empty() && c.bytes().len() <= CHUNK);
                got.extend_from_slice(c.bytes());
                stdin.recycle(c);
            }
            got
        });
        feeder.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn stdout_gets_every_queued_byte_and_reports_a_closed_pipe() {
        let data = pattern(3 * CHUNK + 7);
        let (mut r, w) = std::io::pipe().unwrap();
        let drain = std::thread::spawn(move || {
            let mut got = vec![0u8; data.len()];
            r.read_exact(&mut got).unwrap();
            (got, data) // then the read end closes
        });
        let expected = pattern(3 * CHUNK + 7);
        let err = block_on(async {
            let mut out = StdoutWriter::on(w).unwrap();
            for part in expected.chunks(CHUNK) {
                let mut buf = out.buffer();
                buf[..part.len()].copy_from_slice(part);
                assert!(out.can_write());
                out.write(buf, part.len()).unwrap();
            }
            while !out.is_idle() {
                out.written().await.unwrap();
            }
            let (got, data) = drain.join().unwrap();
            assert_eq!(got, data);
            // The reader is gone: the next write fails with the pipe's error.
            let buf = out.buffer();
            out.write(buf, 1).unwrap();
            out.written().await.unwrap_err()
        });
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
