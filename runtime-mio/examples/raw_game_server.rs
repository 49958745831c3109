//! A game-server style loop on raw KCP (what C ikcp, and the C#/Unity ports, speak): one UDP
//! socket, many peers, your own `mio` event loop and your own tick. Each player sends input
//! messages; the server answers every input with a state message on that player's session
//! (message mode: each `write_message` arrives whole, as one `recv_message`).
//!
//! The "players" here are raw-KCP client endpoints in the same loop so the example runs on
//! its own; in a real game they are C# or C clients that create their KCP object with any
//! conv (the server takes it from each address's first datagram).
//!
//! ```text
//! cargo run --release -p tether-runtime-mio --example raw_game_server [players] [inputs]
//! ```
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use tether_core::driver::{StreamEvent, StreamId};
use tether_core::kcp::RecvError;
use tether_core::session::{ListenerEvent, SessionId};
use tether_runtime_mio::config::Config;
use tether_runtime_mio::endpoint::{Endpoint, SessionError};

const SERVER: Token = Token(usize::MAX);
/// The game's own tick: inputs go out once per tick.
const TICK: Duration = Duration::from_millis(10);

/// Raw KCP, message mode, ikcp's "turbo" knobs (nodelay 1, interval 10, resend 2, nc 1).
pub fn game_config() -> Config {
    Config::default()
        .raw_kcp()
        .message_mode(true)
        .nodelay(true, 10, 2, true)
        .windows(128, 128)
        .mtu(1400)
}

/// One player: its endpoint (own socket), its session, inputs sent and states received.
struct Player {
    ep: Endpoint,
    id: SessionId,
    sent: u32,
    acked_states: u32,
}

/// Runs `players` players sending `inputs` inputs each; returns the states the players
/// received (must be `players * inputs`).
pub fn run(players: usize, inputs: u32, limit: Duration) -> io::Result<u64> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    let cfg = game_config();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let mut server = Endpoint::bind(any, &cfg, true)?;
    poll.registry()
        .register(&mut server, SERVER, Endpoint::INTEREST)?;
    let start = Instant::now();
    let mut ps = Vec::new();
    for i in 0..players {
        // A C client would pick its conv itself; here each player gets its own.
        let pcfg = cfg.clone().conv(Some(1000 + i as u32));
        let mut ep = Endpoint::bind(any, &pcfg, false)?;
        poll.registry()
            .register(&mut ep, Token(i), Endpoint::INTEREST)?;
        let id = ep.connect(start, server.local_addr()?);
        ps.push(Player {
            ep,
            id,
            sent: 0,
            acked_states: 0,
        });
    }
    // Server state: the last input per session.
    let mut last_input: HashMap<SessionId, u32> = HashMap::new();
    let mut next_tick = start;
    let mut buf = vec![0u8; 64 * 1024];
    let total = players as u64 * u64::from(inputs);
    let mut received = 0u64;
    while received < total {
        let now = Instant::now();
        if now > start + limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{received} of {total} states after {limit:?}"),
            ));
        }
        // Sleep until the next tick or the earliest KCP deadline, whichever comes first.
        let deadline = ps
            .iter()
            .filter_map(|p| p.ep.next_deadline())
            .chain(server.next_deadline())
            .fold(next_tick, Instant::min);
        poll.poll(&mut events, Some(deadline.saturating_duration_since(now)))?;
        let now = Instant::now();
        server.process(now)?;
        for p in &mut ps {
            p.ep.process(now)?;
        }

        // Server: new players, their inputs, one state message back per input.
        while let Some(ev) = server.poll_event() {
            match ev {
                ListenerEvent::Incoming(_) => while server.accept().is_some() {},
                ListenerEvent::Conn(id, StreamEvent::Closed(_)) => {
                    last_input.remove(&id);
                }
                ListenerEvent::Conn(id, StreamEvent::Readable(StreamId::SOLE)) => loop {
                    match server.recv_message(id, &mut buf) {
                        Ok(n) => {
                            let seq = u32::from_le_bytes(buf[..4].try_into().expect("input"));
                            last_input.insert(id, seq);
                            // The state: the input's sequence number and a 200-byte snapshot.
                            let mut state = seq.to_le_bytes().to_vec();
                            state.resize(200 + n, seq as u8);
                            // Blocked only when 128 messages are in flight: drop the state
                            // (the next tick sends a fresher one) rather than queue it.
                            let _ = server.write_message(id, &state);
                        }
                        Err(SessionError::Kcp(RecvError::WouldBlock)) => break,
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                },
                ListenerEvent::Conn(_, _) => {}
            }
        }

        // Players: read states, and send one input per tick.
        let tick = now >= next_tick;
        if tick {
            next_tick += TICK;
        }
        for p in &mut ps {
            while p.ep.poll_event().is_some() {}
            loop {
                match p.ep.recv_message(p.id, &mut buf) {
                    Ok(_) => {
                        p.acked_states += 1;
                        received += 1;
                    }
                    Err(SessionError::Kcp(RecvError::WouldBlock)) => break,
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
            }
            if tick && p.sent < inputs {
                let mut input = p.sent.to_le_bytes().to_vec();
                input.extend_from_slice(&[0x42; 28]); // buttons, stick axes, ...
                if p.ep.write_message(p.id, &input).is_ok() {
                    p.sent += 1;
                }
            }
        }
    }
    Ok(ps.iter().map(|p| u64::from(p.acked_states)).sum())
}

#[allow(dead_code)] // The integration test includes this file for `run` only.
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let players: usize = args.next().map_or(Ok(32), |a| a.parse()).map_err(bad)?;
    let inputs: u32 = args.next().map_or(Ok(100), |a| a.parse()).map_err(bad)?;
    let t = Instant::now();
    let states = run(players, inputs, Duration::from_secs(60))?;
    println!(
        "{players} players x {inputs} inputs: {states} state messages back over one server socket in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bad(e: std::num::ParseIntError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}
