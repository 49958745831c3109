//! A toy datagram endpoint for tests: a second, non-KCP implementer of
//! [`DatagramEndpoint`], so the runtimes' UDP socket loop is proven generic over the
//! endpoint (issue 15 item 4) before penet's listener exists.
//!
//! One byte stream ([`StreamId::SOLE`]) per peer, go-back-N over datagrams:
//!
//! * `[HELLO]` opens a connection (the client repeats it every [`RTO`] until answered);
//!   `[WELCOME]` answers it. A server creates the connection on the first `HELLO` from an
//!   unknown address and puts it in the accept backlog.
//! * `[DATA][seq: u32 BE][payload]`: the stream's chunks of at most [`CHUNK`] bytes, at most
//!   [`WINDOW`] unacknowledged; the receiver takes only the next expected `seq` (and only
//!   while its buffer has room) and answers `[ACK][next expected seq: u32 BE]`.
//! * A sender whose oldest chunk stays unacknowledged for [`RTO`] sends the window again.
//!
//! No FIN (as KCP: a finish is `Unsupported`), no close message: a connection ends by
//! [`DatagramEndpoint::close`], or once acknowledged after
//! [`DatagramEndpoint::close_when_acked`]. Close reasons are the KCP listener's
//! [`CloseReason`] (only `Local` and `AcceptTimeout` occur), so runtimes map them alike.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::driver::{
    DatagramConn, DatagramEndpoint, DatagramTransmit, EndpointEvent, StreamError, StreamEvent,
    StreamId, Streams, LINGER_TIMEOUT,
};
use crate::session::snmp::Snmp;
use crate::session::{CloseReason, SessionId};

/// Payload bytes per `DATA` datagram.
pub const CHUNK: usize = 1024;
/// Chunks in flight per connection.
pub const WINDOW: usize = 32;
/// Retransmission timeout (also of `HELLO`).
pub const RTO: Duration = Duration::from_millis(50);
/// Bytes the application may queue per connection before a write is `Blocked`.
pub const SEND_CAP: usize = 64 * 1024;
/// Received bytes held per connection before `DATA` is dropped (and sent again later).
pub const RECV_CAP: usize = 64 * 1024;
/// Un-accepted connections held by a server; further `HELLO`s are dropped.
pub const BACKLOG: usize = 128;
/// An un-accepted connection is dropped after this long.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const DATA: u8 = 3;
const ACK: u8 = 4;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ToyInputError {
    /// Empty, of an unknown kind, or too short for its header.
    #[error("malformed toy datagram: the peer does not speak the toy protocol")]
    Malformed,
    /// From an address with no connection, and not a `HELLO` a server accepts.
    #[error("datagram from an unknown peer: connect to it first, or listen")]
    UnknownPeer,
    /// The accept backlog is full: accept connections faster.
    #[error("the accept backlog is full: accept connections faster")]
    BacklogFull,
}

/// One peer's stream state.
#[derive(Debug)]
pub struct ToyConn {
    /// The handshake is done (client: a `WELCOME` or data came; server: always).
    established: bool,
    /// A `HELLO` (client) or `WELCOME` (server) is due.
    greet: bool,
    /// An `ACK` is due.
    ack: bool,
    /// Application bytes not yet cut into chunks.
    queued: VecDeque<u8>,
    /// Chunks sent and not acknowledged, oldest first, with their sequence numbers.
    inflight: VecDeque<(u32, Vec<u8>)>,
    /// Index into `inflight` of the next chunk to (re)send.
    resend: usize,
    next_seq: u32,
    /// When the oldest unacknowledged chunk (or the unanswered `HELLO`) is sent again.
    rto_at: Option<Instant>,
    recv: VecDeque<u8>,
    recv_next: u32,
    /// A write was refused: `Writable` is owed.
    writable_owed: bool,
    /// Bytes were written since the last `Acknowledged`.
    ack_owed: bool,
    events: VecDeque<StreamEvent<CloseReason>>,
}

impl ToyConn {
    fn new(client: bool) -> ToyConn {
        ToyConn {
            established: !client,
            greet: true,
            ack: false,
            queued: VecDeque::new(),
            inflight: VecDeque::new(),
            resend: 0,
            next_seq: 0,
            rto_at: None,
            recv: VecDeque::new(),
            recv_next: 0,
            writable_owed: false,
            ack_owed: false,
            events: VecDeque::new(),
        }
    }

    fn has_transmit(&self) -> bool {
        self.greet
            || self.ack
            || (self.established
                && (self.resend < self.inflight.len()
                    || (self.inflight.len() < WINDOW && !self.queued.is_empty())))
    }

    /// Writes the next datagram into `buf`; `false` when nothing is due.
    fn poll_datagram(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if std::mem::take(&mut self.greet) {
            buf.push(if self.established { WELCOME } else { HELLO });
            if !self.established {
                self.rto_at = Some(now + RTO);
            }
            return true;
        }
        if std::mem::take(&mut self.ack) {
            buf.push(ACK);
            buf.extend_from_slice(&self.recv_next.to_be_bytes());
            return true;
        }
        if !self.established {
            return false;
        }
        if self.resend == self.inflight.len() && self.inflight.len() < WINDOW {
            let n = self.queued.len().min(CHUNK);
            if n == 0 {
                return false;
            }
            let chunk: Vec<u8> = self.queued.drain(..n).collect();
            self.inflight.push_back((self.next_seq, chunk));
            self.next_seq = self.next_seq.wrapping_add(1);
            if std::mem::take(&mut self.writable_owed) {
                self.events.push_back(StreamEvent::Writable(StreamId::SOLE));
            }
        }
        let Some((seq, chunk)) = self.inflight.get(self.resend) else {
            return false;
        };
        buf.push(DATA);
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(chunk);
        self.resend += 1;
        self.rto_at.get_or_insert(now + RTO);
        true
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.rto_at.is_none_or(|t| t > now) {
            return;
        }
        self.rto_at = None;
        if !self.established {
            self.greet = true;
        } else {
            self.resend = 0; // go back N
        }
    }

    /// Takes one datagram's body (after its kind byte).
    fn handle(&mut self, now: Instant, kind: u8, body: &[u8]) -> Result<(), ToyInputError> {
        match kind {
            // A server answers every HELLO (its WELCOME may have been lost).
            HELLO => self.greet |= self.established,
            WELCOME => self.establish(),
            DATA => {
                let seq = read_u32(body)?;
                let payload = body.get(4..).unwrap_or_default();
                self.establish();
                if seq == self.recv_next && self.recv.len() + payload.len() <= RECV_CAP {
                    self.recv.extend(payload);
                    self.recv_next = self.recv_next.wrapping_add(1);
                    self.events.push_back(StreamEvent::Readable(StreamId::SOLE));
                }
                self.ack = true;
            }
            ACK => self.on_ack(now, read_u32(body)?),
            _ => return Err(ToyInputError::Malformed),
        }
        Ok(())
    }

    fn establish(&mut self) {
        if !self.established {
            self.established = true;
            self.greet = false;
            self.rto_at = None;
        }
    }

    /// Cumulative acknowledgement of every chunk before `next`.
    fn on_ack(&mut self, now: Instant, next: u32) {
        let mut acked = 0;
        while let Some((seq, _)) = self.inflight.front() {
            // Sequence numbers wrap: "before next" is a distance in the window.
            if next.wrapping_sub(*seq).wrapping_sub(1) >= WINDOW as u32 {
                break;
            }
            self.inflight.pop_front();
            acked += 1;
        }
        if acked == 0 {
            return;
        }
        self.resend = self.resend.saturating_sub(acked);
        // Progress: what is still in flight gets a fresh timer.
        self.rto_at = (!self.inflight.is_empty()).then(|| now + RTO);
        if self.all_acked_now() && std::mem::take(&mut self.ack_owed) {
            self.events
                .push_back(StreamEvent::Acknowledged(StreamId::SOLE));
        }
    }

    fn all_acked_now(&self) -> bool {
        self.inflight.is_empty() && self.queued.is_empty()
    }
}

fn read_u32(body: &[u8]) -> Result<u32, ToyInputError> {
    let b: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ToyInputError::Malformed)?;
    Ok(u32::from_be_bytes(b))
}

impl Streams for ToyConn {
    fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        Err(StreamError::Unsupported) // one stream per peer
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        None
    }

    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        if id != StreamId::SOLE {
            return Err(StreamError::Unknown(id));
        }
        let n = data.len().min(SEND_CAP - self.queued.len().min(SEND_CAP));
        if n == 0 && !data.is_empty() {
            self.writable_owed = true;
            return Err(StreamError::Blocked);
        }
        self.queued.extend(data.get(..n).unwrap_or_default());
        self.ack_owed |= n > 0;
        Ok(n)
    }

    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError> {
        if id != StreamId::SOLE {
            return Err(StreamError::Unknown(id));
        }
        if self.recv.is_empty() {
            return Err(StreamError::Blocked);
        }
        let n = buf.len().min(self.recv.len());
        for (d, s) in buf.iter_mut().zip(self.recv.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }

    fn finish(&mut self, _id: StreamId) -> Result<(), StreamError> {
        Err(StreamError::Unsupported)
    }

    fn close_stream(&mut self, _id: StreamId) {
        // The connection closes as a whole (`close_when_acked`).
    }

    fn all_acked(&self, _id: StreamId) -> bool {
        self.all_acked_now()
    }
}

/// No keepalive (the toy has none) and no message mode: the defaults.
impl DatagramConn for ToyConn {}

#[derive(Debug)]
struct Slot {
    addr: SocketAddr,
    conn: ToyConn,
    last_rx: Instant,
    /// Not accepted yet: dropped at this instant.
    accept_by: Option<Instant>,
    /// Closing once acknowledged, at the latest at this instant.
    linger_until: Option<Instant>,
}

/// The toy endpoint: many peers behind one socket, one [`ToyConn`] each.
#[derive(Debug)]
pub struct ToyEndpoint {
    accept_incoming: bool,
    /// Ordered, so output and timers go in a deterministic order.
    conns: BTreeMap<SessionId, Slot>,
    by_addr: HashMap<SocketAddr, SessionId>,
    backlog: VecDeque<SessionId>,
    events: VecDeque<EndpointEvent<SessionId, StreamEvent<CloseReason>>>,
    next_id: u32,
    snmp: Snmp,
}

impl ToyEndpoint {
    /// A server (`accept_incoming`: a `HELLO` from an unknown address opens a connection) or
    /// a client endpoint.
    pub fn new(accept_incoming: bool) -> ToyEndpoint {
        ToyEndpoint {
            accept_incoming,
            conns: BTreeMap::new(),
            by_addr: HashMap::new(),
            backlog: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            snmp: Snmp::default(),
        }
    }

    fn insert(&mut self, now: Instant, addr: SocketAddr, client: bool) -> SessionId {
        // Ids are never reused: a fresh index each time, generation 0.
        let id = SessionId::new(self.next_id, 0);
        self.next_id = self.next_id.wrapping_add(1);
        if let Some(old) = self.by_addr.insert(addr, id) {
            self.remove(old, CloseReason::Replaced);
        }
        let slot = Slot {
            addr,
            conn: ToyConn::new(client),
            last_rx: now,
            accept_by: (!client).then(|| now + ACCEPT_TIMEOUT),
            linger_until: None,
        };
        self.conns.insert(id, slot);
        id
    }

    fn remove(&mut self, id: SessionId, why: CloseReason) {
        if let Some(slot) = self.conns.remove(&id) {
            if self.by_addr.get(&slot.addr) == Some(&id) {
                self.by_addr.remove(&slot.addr);
            }
            self.backlog.retain(|b| *b != id);
            self.move_events(id, slot.conn);
            self.events
                .push_back(EndpointEvent::Conn(id, StreamEvent::Closed(why)));
        }
    }

    fn move_events(&mut self, id: SessionId, mut conn: ToyConn) {
        while let Some(ev) = conn.events.pop_front() {
            self.events.push_back(EndpointEvent::Conn(id, ev));
        }
    }

    /// Moves every connection's events to the endpoint's queue and ends lingering
    /// connections whose bytes are all acknowledged.
    fn collect(&mut self) {
        let mut done = Vec::new();
        for (id, slot) in &mut self.conns {
            while let Some(ev) = slot.conn.events.pop_front() {
                self.events.push_back(EndpointEvent::Conn(*id, ev));
            }
            if slot.linger_until.is_some() && slot.conn.all_acked_now() {
                done.push(*id);
            }
        }
        for id in done {
            self.remove(id, CloseReason::Local);
        }
    }
}

impl DatagramEndpoint for ToyEndpoint {
    type ConnId = SessionId;
    type Conn = ToyConn;
    type Reason = CloseReason;
    type InputError = ToyInputError;
    type Counters = Snmp;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), ToyInputError> {
        let Some((&kind, body)) = data.split_first() else {
            self.snmp.in_errs += 1;
            return Err(ToyInputError::Malformed);
        };
        let id = match self.by_addr.get(&from) {
            Some(&id) => id,
            None if kind == HELLO && self.accept_incoming => {
                if self.backlog.len() >= BACKLOG {
                    return Err(ToyInputError::BacklogFull);
                }
                let id = self.insert(now, from, false);
                self.snmp.passive_opens += 1;
                self.backlog.push_back(id);
                self.events.push_back(EndpointEvent::Incoming(id));
                id
            }
            None => {
                self.snmp.in_errs += 1;
                return Err(ToyInputError::UnknownPeer);
            }
        };
        self.snmp.in_pkts += 1;
        self.snmp.in_bytes += data.len() as u64;
        let Some(slot) = self.conns.get_mut(&id) else {
            return Err(ToyInputError::UnknownPeer);
        };
        slot.last_rx = now;
        let r = slot.conn.handle(now, kind, body);
        self.collect();
        r
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<DatagramTransmit> {
        let start = buf.len();
        let mut sent = None;
        for slot in self.conns.values_mut() {
            if slot.conn.poll_datagram(now, buf) {
                sent = Some(slot.addr);
                break;
            }
        }
        self.collect();
        let to = sent?;
        let len = buf.len() - start;
        self.snmp.out_pkts += 1;
        self.snmp.out_bytes += len as u64;
        Some(DatagramTransmit {
            to,
            len,
            segment_size: None,
        })
    }

    fn has_transmit(&self) -> bool {
        self.conns.values().any(|s| s.conn.has_transmit())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let per_conn =
            (self.conns.values()).flat_map(|s| [s.conn.rto_at, s.accept_by, s.linger_until]);
        per_conn.flatten().min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (id, slot) in &mut self.conns {
            slot.conn.handle_timeout(now);
            // `accept_by` is cleared by `accept`.
            let unaccepted = slot.accept_by.is_some_and(|t| t <= now);
            let lingered = slot.linger_until.is_some_and(|t| t <= now);
            if unaccepted {
                expired.push((*id, CloseReason::AcceptTimeout));
            } else if lingered {
                expired.push((*id, CloseReason::Local));
            }
        }
        for (id, why) in expired {
            self.remove(id, why);
        }
        self.collect();
    }

    fn poll_event(&mut self) -> Option<EndpointEvent<SessionId, StreamEvent<CloseReason>>> {
        self.events.pop_front()
    }

    fn accept(&mut self) -> Option<SessionId> {
        let id = self.backlog.pop_front()?;
        if let Some(slot) = self.conns.get_mut(&id) {
            slot.accept_by = None;
        }
        Some(id)
    }

    fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn connect(&mut self, now: Instant, to: SocketAddr) -> SessionId {
        self.snmp.active_opens += 1;
        self.insert(now, to, true)
    }

    fn close(&mut self, id: SessionId) {
        self.remove(id, CloseReason::Local);
    }

    fn close_when_acked(&mut self, now: Instant, id: SessionId) {
        let Some(slot) = self.conns.get_mut(&id) else {
            return;
        };
        if slot.conn.all_acked_now() {
            self.remove(id, CloseReason::Local);
            return;
        }
        slot.linger_until
            .get_or_insert(now.checked_add(LINGER_TIMEOUT).unwrap_or(now));
    }

    fn conn_mut(&mut self, id: SessionId) -> Option<&mut ToyConn> {
        self.conns.get_mut(&id).map(|s| &mut s.conn)
    }

    fn remote(&self, id: SessionId) -> Option<SocketAddr> {
        self.conns.get(&id).map(|s| s.addr)
    }

    fn last_received(&self, id: SessionId) -> Option<Instant> {
        self.conns.get(&id).map(|s| s.last_rx)
    }

    fn counters(&self) -> Snmp {
        let mut s = self.snmp;
        s.curr_estab = self.conns.len() as u64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves `from`'s datagrams into `to`, losing every fifth of the run (counted in `n`).
    fn deliver(
        now: Instant,
        from: &mut ToyEndpoint,
        at: SocketAddr,
        to: &mut ToyEndpoint,
        n: &mut u64,
    ) {
        let mut buf = Vec::new();
        while let Some(t) = from.poll_transmit(now, &mut buf) {
            *n += 1;
            if !(*n).is_multiple_of(5) {
                let _ = to.handle_datagram(now, at, &buf[..t.len]);
            }
            buf.clear();
        }
    }

    /// Two toy endpoints in memory, every fifth datagram lost: the stream arrives exactly,
    /// and the client closes once acknowledged.
    #[test]
    fn lossy_transfer_arrives_exactly() {
        let (sa, ca): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let mut now = crate::sim::test_start();
        let (mut server, mut client) = (ToyEndpoint::new(true), ToyEndpoint::new(false));
        let id = client.connect(now, sa);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let (mut written, mut got, mut conn, mut n) = (0, Vec::new(), None, 0u64);
        for _ in 0..100_000 {
            if let Ok(k) = client
                .conn_mut(id)
                .unwrap()
                .write(StreamId::SOLE, &sent[written..])
            {
                written += k;
            }
            deliver(now, &mut client, ca, &mut server, &mut n);
            deliver(now, &mut server, sa, &mut client, &mut n);
            while let Some(ev) = server.poll_event() {
                if let EndpointEvent::Incoming(_) = ev {
                    conn = server.accept();
                }
            }
            if let Some(c) = conn {
                let mut b = [0u8; 4096];
                while let Ok(k) = server.conn_mut(c).unwrap().read(StreamId::SOLE, &mut b) {
                    got.extend_from_slice(&b[..k]);
                }
            }
            if got.len() == sent.len() {
                break;
            }
            let next = [server.poll_timeout(), client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if !server.has_transmit() && !client.has_transmit() {
                now = next.expect("a stalled transfer has a timer");
            }
            server.handle_timeout(now);
            client.handle_timeout(now);
        }
        assert!(got == sent, "got {} of {} bytes", got.len(), sent.len());
        client.close_when_acked(now, id);
        for _ in 0..1000 {
            if client.is_empty() {
                break;
            }
            deliver(now, &mut client, ca, &mut server, &mut n);
            deliver(now, &mut server, sa, &mut client, &mut n);
            now += RTO;
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
        assert!(client.is_empty(), "the client lingered forever");
        assert!(client.counters().out_pkts > 0);
    }
}
