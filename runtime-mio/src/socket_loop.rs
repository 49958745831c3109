//! The UDP socket loop, written once for every async runtime and every datagram endpoint
//! ([`LoopEndpoint`]: the KCP listener, a toy protocol's, later penet's): it owns a
//! [`Driver`], reads
//! until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg` batches,
//! waits for writability instead of queueing without bound, and arms a single timer at the
//! core's deadline (none at all when every session is idle). The runtime supplies only
//! readiness, the timer, a yield and the spawn ([`Runtime`]).
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use crate::driver::{Driver, LoopEndpoint};
use crate::hub::Hub;
use crate::runtime::{Alarm, Runtime, SocketIo};

/// Runs `driver` on `sock` until every handle is dropped and every session closed, or the
/// socket fails. However the loop ends (error, finish, panic), streams learn the endpoint is
/// gone.
pub async fn run<R: Runtime, E: LoopEndpoint>(mut driver: Driver<E>, sock: R::Socket) {
    let _shutdown = ShutdownOnDrop(Arc::clone(&driver.hub));
    if let Err(e) = run_loop::<R, E>(&mut driver, &sock).await {
        tracing::warn!("UDP endpoint stopped: {e}");
    }
}

async fn run_loop<R: Runtime, E: LoopEndpoint>(
    driver: &mut Driver<E>,
    sock: &R::Socket,
) -> io::Result<()> {
    let hub = Arc::clone(&driver.hub);
    let mut alarm = Alarm::<R>::default();
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
        alarm.set(driver.deadline());
        std::future::poll_fn(|cx| {
            // Biased: input first, then output, then the application, then the timer.
            let now = Instant::now();
            if let Poll::Ready(r) = sock.poll_read_with(cx, &mut |s| driver.recv(s, now)) {
                return Poll::Ready(r);
            }
            if blocked {
                if let Poll::Ready(r) = sock.poll_write_with(cx, &mut |s| driver.transmit(s, now)) {
                    return Poll::Ready(r);
                }
            }
            if hub.driver_should_wake(cx.waker()) {
                return Poll::Ready(Ok(()));
            }
            alarm.poll(cx).map(Ok)
        })
        .await?;
    }
}

/// Marks every stream gone when the loop ends, so no application task waits forever.
struct ShutdownOnDrop(Arc<Hub>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.lock().shut_down();
    }
}
