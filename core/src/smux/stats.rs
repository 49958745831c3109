//! Plain counters of a session.

/// Counters of a [`Smux`](super::Smux) session, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmuxStats {
    /// Frames received (headers decoded).
    pub frames_in: u64,
    /// Frames written into the lower stream.
    pub frames_out: u64,
    /// PSH payload bytes delivered into streams.
    pub bytes_in: u64,
    /// PSH payload bytes written.
    pub bytes_out: u64,
    /// Streams this side opened.
    pub streams_opened: u64,
    /// Streams the peer opened and this side took in.
    pub streams_accepted: u64,
    /// Peer SYNs refused with a FIN (backlog full or `max_streams` reached).
    pub streams_refused: u64,
    /// Streams whose queued data was dropped when their linger ran out.
    pub streams_reset: u64,
    /// Frames for streams that do not exist (or the application closed).
    pub frames_unknown_stream: u64,
    /// PSH payload bytes read and discarded (unknown or closed streams).
    pub bytes_discarded: u64,
    /// Keepalive NOPs sent.
    pub keepalives_sent: u64,
    /// Window updates sent (v2 UPD, seed CFM).
    pub window_updates_sent: u64,
    /// VRM probes answered (seed).
    pub probes_answered: u64,
    /// Protocol errors (at most one: the session ends).
    pub protocol_errors: u64,
}
