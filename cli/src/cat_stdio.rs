//! `tether cat`'s stdin and stdout: stdin has a thread of its own, as has stdout unless it
//! is a pipe (on Linux a pipe is written from the runtime's thread without blocking,
//! [`crate::cat_pipe`]); they exchange owned chunks ([`Bytes`]) with the async side over
//! bounded channels. `tokio::io::stdin()`/`stdout()` run every read and write as a task on
//! tokio's blocking pool; at bulk rates those hand-offs (spawns, futex wake-ups, a contended
//! pool mutex) cost more CPU than the protocol (issue 15 item 8).
//!
//! Neither side copies: stdin is read into the spare capacity of pooled blocks (not zeroed
//! first, [`read_uninit`]) and each read travels on as a slice of its block, which the stream
//! queues as it is (`write_chunk`); stdout gets the stream's received chunks (`read_chunk`)
//! and writes them with one gathered `writev` per batch.
//!
//! Both sides use the file descriptors unbuffered (duplicates of 0 and 1): a read takes
//! what the pipe or file has, up to [`CHUNK`] bytes, and a write goes to the kernel at once,
//! so interactive use sees no extra latency.
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::thread;

use bytes::Buf;
use tether_runtime_mio::blocks::BlockPool;
use tether_runtime_mio::uninit_read::read_uninit;
use tether_runtime_tokio::Bytes;
use tokio::sync::mpsc;

/// Bytes per read from stdin, and per batch written to stdout.
pub const CHUNK: usize = 256 * 1024;

/// Reads or batches in flight between a thread and the async side (bounds memory to a few
/// MiB).
const DEPTH: usize = 4;

/// Chunks gathered into one `writev` at most (a batch of KCP segments; under Linux's
/// `IOV_MAX` of 1024).
const IOVECS: usize = 512;

/// stdin, read by its own thread.
pub struct StdinReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
}

impl StdinReader {
    /// Starts the reader thread. It reads ahead at most [`DEPTH`] chunks and stops at EOF,
    /// at the first error, or when the reader is dropped (after its next read returns).
    pub fn spawn() -> io::Result<StdinReader> {
        let fd = dup_stdin()?;
        #[cfg(target_os = "linux")]
        crate::cat_pipe::grow(&fd);
        StdinReader::on(File::from(fd))
    }

    /// [`StdinReader::spawn`] on any descriptor.
    fn on(file: impl AsFd + Send + 'static) -> io::Result<StdinReader> {
        let (tx, chunks) = mpsc::channel(DEPTH);
        thread::Builder::new()
            .name("cat-stdin".into())
            .spawn(move || read_loop(file, &tx))?;
        Ok(StdinReader { chunks })
    }

    /// The next chunk of stdin (at most [`CHUNK`] bytes, never empty); `None` at EOF.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        self.chunks.recv().await
    }
}

/// Reads `file` into blocks of a pool, each read a slice of its block: one block takes
/// several short reads (a pipe gives 64 KiB at a time), and a block whose slices are all
/// dropped (sent) is written again, so a long transfer neither allocates nor faults in
/// memory per read.
fn read_loop(file: impl AsFd, tx: &mpsc::Sender<io::Result<Bytes>>) {
    let mut pool = BlockPool::default();
    let mut block = pool.get(CHUNK);
    loop {
        if block.capacity() < CHUNK / 4 {
            let fresh = pool.get(CHUNK);
            pool.recycle(std::mem::replace(&mut block, fresh));
        }
        let room = block.capacity().min(CHUNK);
        let r = loop {
            match read_uninit(&file, &mut block, room) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let msg = match r {
            Ok(0) => return, // EOF: the closed channel says so
            Ok(_) => Ok(block.split().freeze()),
            Err(e) => Err(e),
        };
        let failed = msg.is_err();
        if tx.blocking_send(msg).is_err() || failed {
            return;
        }
    }
}

/// stdout, written a batch of chunks at a time: a pipe straight from the runtime's thread
/// (Linux, [`crate::cat_pipe`]), anything else (a file, a terminal) by a thread of its own.
pub struct StdoutWriter {
    sink: Sink,
    /// Batches queued and not yet reported written.
    in_flight: usize,
    spare: Vec<Vec<Bytes>>,
}

enum Sink {
    #[cfg(target_os = "linux")]
    Pipe(crate::cat_pipe::PipeSink),
    Thread {
        batches: std::sync::mpsc::Sender<Vec<Bytes>>,
        done: mpsc::UnboundedReceiver<io::Result<Vec<Bytes>>>,
    },
}

impl StdoutWriter {
    /// Opens stdout: a pipe is written directly, anything else by a writer thread, which
    /// ends when the writer is dropped or a write fails. Call within the tokio runtime.
    pub fn spawn() -> io::Result<StdoutWriter> {
        let fd = dup_stdout()?;
        #[cfg(target_os = "linux")]
        if let Some(own) = crate::cat_pipe::own_write_end(&fd) {
            crate::cat_pipe::grow(&own);
            let sink = crate::cat_pipe::PipeSink::new(own)?;
            return Ok(StdoutWriter::with(Sink::Pipe(sink)));
        }
        StdoutWriter::on(File::from(fd))
    }

    /// [`StdoutWriter::spawn`] with a writer thread on any sink.
    fn on(file: impl Write + Send + 'static) -> io::Result<StdoutWriter> {
        let (batches, rx) = std::sync::mpsc::channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name("cat-stdout".into())
            .spawn(move || write_loop(file, &rx, &done_tx))?;
        Ok(StdoutWriter::with(Sink::Thread { batches, done }))
    }

    fn with(sink: Sink) -> StdoutWriter {
        StdoutWriter {
            sink,
            in_flight: 0,
            spare: Vec::new(),
        }
    }

    /// An empty batch to gather chunks in (a written one when available, so its vector's
    /// storage is reused).
    pub fn batch(&mut self) -> Vec<Bytes> {
        self.spare.pop().unwrap_or_default()
    }

    /// Whether another batch may be queued ([`DEPTH`] in flight at most).
    pub fn can_write(&self) -> bool {
        self.in_flight < DEPTH
    }

    /// Whether everything queued was written.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    /// Queues `batch`'s chunks, in order, for stdout (a pipe takes what it can at once).
    pub fn write(&mut self, batch: Vec<Bytes>) -> io::Result<()> {
        match &mut self.sink {
            #[cfg(target_os = "linux")]
            Sink::Pipe(p) => p.push(batch),
            Sink::Thread { batches, .. } => batches
                .send(batch)
                .map_err(|_| io::Error::other("the stdout thread stopped"))?,
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for the oldest queued batch: `Ok` once it reached stdout, or stdout's error.
    /// Pending forever while nothing is queued.
    pub async fn written(&mut self) -> io::Result<()> {
        if self.in_flight == 0 {
            return std::future::pending().await;
        }
        let r = match &mut self.sink {
            #[cfg(target_os = "linux")]
            Sink::Pipe(p) => p.written().await,
            Sink::Thread { done, .. } => done
                .recv()
                .await
                .unwrap_or_else(|| Err(io::Error::other("the stdout thread stopped"))),
        };
        self.in_flight -= 1;
        let mut batch = r?;
        // The chunks are dropped here, on the thread that cut them from their blocks, so a
        // writer thread never touches the blocks' shared counts that this thread increments
        // with every new slice (no cache line bouncing between the two).
        batch.clear();
        self.spare.push(batch);
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
    batches: &std::sync::mpsc::Receiver<Vec<Bytes>>,
    done: &mpsc::UnboundedSender<io::Result<Vec<Bytes>>>,
) {
    while let Ok(mut batch) = batches.recv() {
        // The written batch goes back with its chunks (see `StdoutWriter::written`).
        let r = write_chunks(&mut batch, &mut 0, |s| file.write_vectored(s)).map(|()| batch);
        let failed = r.is_err();
        if done.send(r).is_err() || failed {
            return;
        }
    }
}

/// Writes `batch`'s chunks from index `*first` on, in order, with gathered writes through
/// `write`, until all are written or `write` fails (`Interrupted` is retried; after a
/// would-block error, `*first` and the chunks say where to go on). Written chunks stay in
/// the batch (`*first` moves past them; a partly written one loses its written front): no
/// chunk is cloned or dropped here, so a writer thread never touches the blocks' shared
/// counts.
pub fn write_chunks(
    batch: &mut [Bytes],
    first: &mut usize,
    mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<()> {
    while *first < batch.len() {
        let rest = batch.get_mut(*first..).unwrap_or_default();
        let slices: Vec<IoSlice<'_>> = rest.iter().take(IOVECS).map(|c| IoSlice::new(c)).collect();
        let mut n = match write(&slices) {
            Ok(0) if slices.iter().any(|s| !s.is_empty()) => {
                return Err(io::ErrorKind::WriteZero.into())
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Skip what was written: whole chunks, then the front of a partly written one.
        for c in rest {
            if n < c.len() {
                c.advance(n); // in place: no new reference to the block
                break;
            }
            n -= c.len();
            *first += 1;
        }
    }
    Ok(())
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

    use super::{write_chunks, Bytes, StdinReader, StdoutWriter, CHUNK};

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
                assert!(!c.is_empty() && c.len() <= CHUNK);
                got.extend_from_slice(&c);
            }
            got
        });
        feeder.join().unwrap();
        assert_eq!(got, data);
    }

    /// A writer that takes at most 1000 bytes per call: batches still arrive whole, in order.
    #[test]
    fn short_gathered_writes_keep_every_byte_in_order() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = b.len().min(1000);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let data = pattern(300_000);
        let mut batch: Vec<Bytes> = [0, 7, 1500, 2000, 100_000, 300_000]
            .windows(2)
            .map(|w| Bytes::copy_from_slice(&data[w[0]..w[1]]))
            .collect();
        batch.extend((0..100).map(|_| Bytes::new()));
        let mut out = Trickle(Vec::new());
        write_chunks(&mut batch, &mut 0, |s| out.write_vectored(s)).unwrap();
        assert_eq!(out.0, data);
        assert_eq!(
            batch.len(),
            105,
            "the chunks go back to the caller, who drops them"
        );
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
        let expected = Bytes::from(pattern(3 * CHUNK + 7));
        let err = block_on(async {
            let mut out = StdoutWriter::on(w).unwrap();
            for start in (0..expected.len()).step_by(CHUNK) {
                let mut batch = out.batch();
                let end = (start + CHUNK).min(expected.len());
                batch.push(expected.slice(start..(start + end) / 2));
                batch.push(expected.slice((start + end) / 2..end));
                assert!(out.can_write());
                out.write(batch).unwrap();
            }
            while !out.is_idle() {
                out.written().await.unwrap();
            }
            let (got, data) = drain.join().unwrap();
            assert_eq!(got, data);
            // The reader is gone: the next write fails with the pipe's error.
            let mut batch = out.batch();
            batch.push(Bytes::from_static(b"x"));
            out.write(batch).unwrap();
            out.written().await.unwrap_err()
        });
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
