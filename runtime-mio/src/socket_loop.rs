//! The UDP socket loop, written once for every async runtime: it owns a [`Driver`], reads
//! until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg` batches,
//! waits for writability instead of queueing without bound, and arms a single timer at the
//! core's deadline (none at all when every session is idle). The runtime supplies only
//! readiness, the timer, a yield and the spawn ([`Runtime`]).
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use crate::driver::Driver;
use crate::hub::Hub;
use crate::runtime::{Runtime, SocketIo};

/// Runs `driver` on `sock` until every handle is dropped and every session closed, or the
/// socket fails. However the loop ends (error, finish, panic), streams learn the endpoint is
/// gone.
pub async fn run<R: Runtime>(mut driver: Driver, sock: R::Socket) {
    let _shutdown = ShutdownOnDrop(Arc::clone(&driver.hub));
    if let Err(e) = run_loop::<R>(&mut driver, &sock).await {
        tracing::warn!("KCP endpoint stopped: {e}");
    }
}

async fn run_loop<R: Runtime>(driver: &mut Driver, sock: &R::Socket) -> io::Result<()> {
    let hub = Arc::clone(&driver.hub);
    // One timer, re-armed only when the core's deadline moves; `armed` is the instant it is
    // set for, `None` while it is spent or unused (a spent timer is not polled: some
    // runtimes' timers stay ready once fired).
    let mut timer: Option<R::Timer> = None;
    let mut armed: Option<Instant> = None;
    loop {
        let blocked = match driver.process(sock.socket(), Instant::now()) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) => return Err(e),
        };
        if driver.finished() {
            return Ok(());
        }
        if driver.accept_pending() {
            // Let the accepting task run before reading more.
            R::yield_now().await;
        }
        if !blocked && driver.due(Instant::now()) {
            // Due again at once: yield (the runtime polls its I/O and timers before resuming
            // a yielded task) and read what came in: a loop that never waits never hears
            // about readability, and a busy loop must not starve input.
            R::yield_now().await;
            driver.recv_pending(sock.socket(), Instant::now())?;
            continue;
        }
        let deadline = driver.deadline();
        if deadline != armed {
            if let Some(at) = deadline {
                match timer.as_mut() {
                    Some(t) => R::reset(t, at),
                    None => timer = Some(R::timer(at)),
                }
            }
            armed = deadline;
        }
        let woke = std::future::poll_fn(|cx| {
            // Biased: input first, then output, then the application, then the timer.
            let now = Instant::now();
            if let Poll::Ready(r) = sock.poll_read_with(cx, &mut |s| driver.recv(s, now)) {
                return Poll::Ready(r.map(|()| Wake::Io));
            }
            if blocked {
                if let Poll::Ready(r) = sock.poll_write_with(cx, &mut |s| driver.transmit(s, now)) {
                    return Poll::Ready(r.map(|()| Wake::Io));
                }
            }
            if hub.driver_should_wake(cx.waker()) {
                return Poll::Ready(Ok(Wake::App));
            }
            let live = timer.as_mut().filter(|_| armed.is_some());
            match live.map(|t| R::poll_timer(t, cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Ok(Wake::Timer)),
                _ => Poll::Pending,
            }
        })
        .await?;
        if woke == Wake::Timer {
            // The timer is spent: arm it again next round even if the deadline is equal.
            armed = None;
        }
    }
}

/// What ended a wait.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Io,
    App,
    Timer,
}

/// Marks every stream gone when the loop ends, so no application task waits forever.
struct ShutdownOnDrop(Arc<Hub>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.lock().shut_down();
    }
}
