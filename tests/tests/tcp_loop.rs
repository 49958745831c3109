//! The TCP socket loop of the runtime base (`tether_runtime_mio::tcp_loop`) carrying a toy
//! byte-stream protocol on tokio and on smol, and the mio `TcpEndpoint` carrying it on the
//! test's own `mio::Poll`: length-prefixed frames over loopback TCP, a client that sends
//! 1 MiB and an echo server, the bytes compared.
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use tether_core::driver::{ByteStream, Machine, StreamError, Transmit, Transport};
use tether_runtime_mio::runtime::Runtime;
use tether_runtime_mio::tcp_loop::{spawn, TcpStreamHandle};
use tether_tests::scenarios::payload;

/// Largest frame payload.
const MAX_FRAME: usize = 16 * 1024;
/// Bytes the toy queues before `write` blocks.
const QUEUE: usize = 256 * 1024;

/// A toy TCP-carried protocol: each write becomes frames of a 4-byte big-endian length and
/// up to [`MAX_FRAME`] bytes; received frames are reassembled into the byte stream.
#[derive(Default)]
struct Framed {
    outbound: VecDeque<u8>,
    inbound: Vec<u8>,
    readable: VecDeque<u8>,
}

#[derive(Debug)]
struct Oversized;

impl Machine for Framed {
    type Event = ();
    type InputError = Oversized;

    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), Oversized> {
        self.inbound.extend_from_slice(data);
        let mut at = 0;
        while let Some(head) = self.inbound.get(at..at + 4) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len > MAX_FRAME {
                return Err(Oversized);
            }
            let Some(body) = self.inbound.get(at + 4..at + 4 + len) else {
                break;
            };
            self.readable.extend(body);
            at += 4 + len;
        }
        self.inbound.drain(..at);
        Ok(())
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.outbound.is_empty() {
            return None;
        }
        let len = self.outbound.len();
        buf.extend(self.outbound.drain(..));
        Some(Transmit { len })
    }

    fn has_transmit(&self) -> bool {
        !self.outbound.is_empty()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

impl ByteStream for Framed {
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        if self.outbound.len() >= QUEUE || data.is_empty() {
            return Err(StreamError::Blocked);
        }
        let n = data.len().min(MAX_FRAME);
        self.outbound.extend((n as u32).to_be_bytes());
        self.outbound.extend(&data[..n]);
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if self.readable.is_empty() {
            return Err(StreamError::Blocked);
        }
        let n = buf.len().min(self.readable.len());
        for (d, s) in buf.iter_mut().zip(self.readable.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        Err(StreamError::Unsupported)
    }

    fn all_acked(&self) -> bool {
        self.outbound.is_empty()
    }
}

/// The single-stream loop reports the peer's close itself; the mio endpoint tells the
/// machine, which has nothing to do about it.
impl Transport for Framed {
    fn handle_disconnect(&mut self, _now: Instant) {}
    fn handle_reconnect(&mut self, _now: Instant) {}
}

async fn write_all(h: &TcpStreamHandle, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| h.poll_write(cx, data)).await?;
        data = &data[n..];
    }
    poll_fn(|cx| h.poll_flush(cx)).await
}

async fn read_exact(h: &TcpStreamHandle, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match poll_fn(|cx| h.poll_read(cx, &mut buf[got..])).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

/// Echoes every byte until the peer closes.
async fn echo(h: TcpStreamHandle) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match poll_fn(|cx| h.poll_read(cx, &mut buf)).await? {
            0 => return Ok(()),
            n => write_all(&h, &buf[..n]).await?,
        }
    }
}

/// A loopback TCP pair, each end driven by a `Framed` machine on `R`; `serve` runs the
/// server side's echo on the runtime's executor.
async fn echo_one_mib<R: Runtime>(serve: impl FnOnce(TcpStreamHandle)) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    serve(spawn::<R, _>(Framed::default(), server)?);
    let client = spawn::<R, _>(Framed::default(), client)?;
    let data = payload(1 << 20, 77);
    let mut got = vec![0u8; data.len()];
    let (w, r) =
        futures_lite::future::zip(write_all(&client, &data), read_exact(&client, &mut got)).await;
    w?;
    r?;
    assert!(got == data, "echoed bytes differ");
    Ok(())
}

#[test]
fn toy_protocol_over_tcp_on_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(echo_one_mib::<tether_runtime_tokio::Tokio>(|h| {
        tokio::spawn(echo(h));
    }))
    .expect("1 MiB echoed over TCP on tokio");
}

#[test]
fn toy_protocol_over_tcp_on_smol() {
    let ex = smol::Executor::new();
    smol::block_on(ex.run(echo_one_mib::<tether_runtime_smol::Smol>(|h| {
        ex.spawn(echo(h)).detach();
    })))
    .expect("1 MiB echoed over TCP on smol");
}

/// mio: both ends as `TcpEndpoint`s on one `mio::Poll` in this thread; the server echoes
/// what its machine reads, the client writes 1 MiB and reads it back.
#[test]
fn toy_protocol_over_tcp_on_mio() {
    use mio::{Events, Poll, Token};
    use tether_runtime_mio::tcp_endpoint::TcpEndpoint;

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(16);
    let mut client = TcpEndpoint::new(client, Framed::default()).expect("client");
    let mut server = TcpEndpoint::new(server, Framed::default()).expect("server");
    let interest = TcpEndpoint::<Framed>::INTEREST;
    poll.registry()
        .register(&mut client, Token(0), interest)
        .unwrap();
    poll.registry()
        .register(&mut server, Token(1), interest)
        .unwrap();
    let data = payload(1 << 20, 78);
    let (mut sent, mut got) = (0, Vec::with_capacity(data.len()));
    let mut echo: VecDeque<u8> = VecDeque::new();
    let mut buf = vec![0u8; 64 * 1024];
    let give_up = Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < data.len() {
        assert!(
            Instant::now() < give_up,
            "echoed {} of {} bytes",
            got.len(),
            data.len()
        );
        let now = Instant::now();
        let next = [client.next_deadline(), server.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        let wait = next.map_or(std::time::Duration::from_millis(100), |d| {
            d.saturating_duration_since(now)
        });
        poll.poll(&mut events, Some(wait)).expect("poll");
        let now = Instant::now();
        client.process(now).expect("client socket");
        server.process(now).expect("server socket");
        // The server's application: echo what its machine delivers.
        while let Ok(n) = server.machine().read(&mut buf) {
            echo.extend(&buf[..n]);
        }
        while !echo.is_empty() {
            let (a, _) = echo.as_slices();
            match server.machine().write(a) {
                Ok(n) => drop(echo.drain(..n)),
                Err(_) => break,
            }
        }
        // The client's application: write what fits, read what came back.
        while sent < data.len() {
            match client.machine().write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = client.machine().read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        client.process(now).expect("client socket");
        server.process(now).expect("server socket");
    }
    assert!(got == data, "echoed bytes differ");
}
