//! The client's KCP sessions (kcptun.md §8): `--conn` slots used round-robin by new TCP
//! connections, each holding a KCP + snappy + smux session created lazily and re-created
//! when it closed or (with `--autoexpire`) expired; expired sessions keep their streams and
//! are closed by the scavenger `--scavengettl` seconds after expiry.
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tether_core::session::snmp::Snmp;
use tether_runtime_tokio::{KcpConnection, KcpStream};

use super::config::Settings;

/// One KCP + snappy + smux session of the pool.
#[derive(Debug)]
pub struct Session {
    conn: KcpConnection,
}

impl Session {
    /// Opens a stream (concurrent opens on one session are fine: the hub parks every
    /// waiting task).
    pub async fn open_stream(&self) -> io::Result<KcpStream> {
        self.conn.open_stream().await
    }
}

impl std::ops::Deref for Session {
    type Target = KcpConnection;
    fn deref(&self) -> &KcpConnection {
        &self.conn
    }
}

/// One live session and when it stops taking new streams.
#[derive(Debug, Clone)]
struct Slot {
    conn: Arc<Session>,
    expires: Option<Instant>,
}

impl Slot {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Option<Slot>>,
    next: usize,
    /// Expired sessions still carrying streams, with the time they must be gone by.
    expired: Vec<(Arc<Session>, Instant)>,
    /// Counters of the sessions no longer held (kcptun.md §10: process-wide, cumulative).
    retired: Snmp,
}

impl State {
    fn retire(&mut self, conn: &KcpConnection) {
        let s = conn.snmp();
        self.retired.merge(&s);
    }
}

/// The session pool.
#[derive(Debug, Clone)]
pub struct Pool {
    state: Arc<Mutex<State>>,
    remote: String,
    settings: Settings,
    autoexpire: Option<Duration>,
    ttl: Duration,
}

impl Pool {
    /// `conn` slots to `remote`; `autoexpire` 0 means never; a negative ttl closes at expiry.
    pub fn new(remote: &str, settings: Settings, conn: u32, autoexpire: u64, ttl: i64) -> Pool {
        let state = State {
            slots: vec![None; conn.max(1) as usize],
            ..State::default()
        };
        Pool {
            state: Arc::new(Mutex::new(state)),
            remote: remote.to_owned(),
            settings,
            autoexpire: (autoexpire > 0).then(|| Duration::from_secs(autoexpire)),
            ttl: Duration::from_secs(ttl.max(0) as u64),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session for the next TCP connection: the next slot's, replaced first if it is
    /// missing, closed or expired. Fails only when a session cannot be created (the
    /// address does not resolve, no socket); the caller retries.
    pub async fn pick(&self) -> io::Result<Arc<Session>> {
        let now = Instant::now();
        let i = {
            let mut st = self.lock();
            let i = st.next % st.slots.len();
            st.next = st.next.wrapping_add(1);
            match st.slots[i].take() {
                Some(slot) if !slot.conn.is_closed() && !slot.expired(now) => {
                    let conn = Arc::clone(&slot.conn);
                    st.slots[i] = Some(slot);
                    return Ok(conn);
                }
                Some(slot) if slot.conn.is_closed() => st.retire(&slot.conn),
                Some(slot) => {
                    // Expired: no new streams; the scavenger closes it later.
                    let deadline = slot.expires.unwrap_or(now) + self.ttl;
                    st.expired.push((slot.conn, deadline));
                }
                None => {}
            }
            i
        };
        let conn = KcpConnection::connect_with(
            self.remote.as_str(),
            self.settings.kcp.clone(),
            self.settings.stack(),
        )
        .await?;
        tracing::info!(
            "smux version: {} on connection: -> {}",
            self.settings.smux.dialect.version(),
            conn.peer_addr()
        );
        let slot = Slot {
            conn: Arc::new(Session { conn }),
            expires: self.autoexpire.map(|d| now + d),
        };
        let conn = Arc::clone(&slot.conn);
        self.lock().slots[i] = Some(slot);
        Ok(conn)
    }

    /// One scavenger pass (kcptun.md §8): drops expired sessions that closed by themselves,
    /// closes those past expiry + ttl.
    pub fn scavenge(&self, now: Instant) {
        let mut st = self.lock();
        let expired = std::mem::take(&mut st.expired);
        for (conn, deadline) in expired {
            if conn.is_closed() {
                tracing::info!("scavenger: session normally closed: {}", conn.peer_addr());
                st.retire(&conn);
            } else if now >= deadline {
                tracing::info!("scavenger: session closed due to ttl: {}", conn.peer_addr());
                conn.close();
                st.retire(&conn);
            } else {
                st.expired.push((conn, deadline));
            }
        }
    }

    /// Runs the scavenger once a second, forever (only with `--autoexpire`).
    pub async fn scavenger(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.scavenge(Instant::now());
        }
    }

    /// Whether sessions expire (the scavenger is needed).
    pub fn expires(&self) -> bool {
        self.autoexpire.is_some()
    }

    /// kcp-go's counters over every session this pool ever made.
    pub fn snmp(&self) -> Snmp {
        let st = self.lock();
        let mut sum = st.retired;
        for slot in st.slots.iter().flatten() {
            sum.merge(&slot.conn.snmp());
        }
        for (conn, _) in &st.expired {
            sum.merge(&conn.snmp());
        }
        sum
    }

    /// Closes every session now (shutdown, after the drain).
    pub fn close_all(&self) {
        let st = self.lock();
        for slot in st.slots.iter().flatten() {
            slot.conn.close();
        }
        for (conn, _) in &st.expired {
            conn.close();
        }
    }
}
