#!/usr/bin/env python3
"""ikcppeer: a raw-KCP peer over UDP driven by skywind3000's C ikcp.

The ikcp is the one PyPI's `kcp` 0.1.6 vendors (kcp/ikcp.c, compiled into its extension
module; `pip install kcp==0.1.6`, scripts/install-deps.sh). tether's live interop tests
(tests/tests/interop_ikcp.rs) run it against `tether cat --proto kcp-raw`.

Wire: bare KCP segments in UDP datagrams (no crypto, no FEC), what ikcp's output callback
hands over. Time: milliseconds of a monotonic clock, passed to ikcp_update.

Server: `ikcppeer.py --listen 127.0.0.1:0 --role echo|sink [options]` prints exactly one line
`listening <ip:port>`; each new source address gets its own ikcpcb whose conv is read from
the address's first datagram (bytes 0..4, little endian), like tether's and kcp-go's
listeners.
    echo   every received message is sent back as one message; runs until --timeout.
    sink   reads --bytes N bytes from the first session, prints
           {"received":N,"sha256_received":"<hex>"} and keeps acknowledging for --linger
           seconds (the sender may still be waiting for the last ACK), then exits 0.
Client: `ikcppeer.py --connect HOST:PORT --role source|bulk [--conv N] [options]`.
    source writes --bytes N bytes of pattern(--seed), waits until ikcp_waitsnd() is 0 (all
           acknowledged), prints {"sent":N,"sha256_sent":"<hex>"} and exits 0.
    bulk   against an echo server: writes N bytes while reading N bytes back; prints
           {"sent":N,"received":N,"sha256_sent":"<hex>","sha256_received":"<hex>"}.
Exit codes: 0 done, 1 failure (digest mismatch, conv error), 3 --timeout.

Framing: --framing message (default, ikcp's own default) sends each --chunk bytes as one
ikcp_send message (fragments with frg counting down). --framing stream cuts the data into
mss-sized ikcp_send calls: each becomes one frg-0 segment, byte for byte what ikcp's
`kcp->stream = 1` emits for mss-aligned writes (the Python binding does not expose
`kcp->stream`). Received data is consumed message by message either way (ikcp_recv).

KCP knobs: --mtu (ikcp_setmtu), --sndwnd/--rcvwnd (ikcp_wndsize; ikcp keeps rcv_wnd >= 128),
--nodelay/--interval/--resend/--nc (ikcp_nodelay).

pattern(seed): xorshift64 (x ^= x<<13; x ^= x>>7; x ^= x<<17) from seed (0 means
0x9E3779B97F4A7C15), each new state as 8 little-endian bytes: the same generator as
tests/src/peer.rs `pattern` and tests/go/kcppeer.
"""
import argparse
import hashlib
import json
import os
import select
import socket
import sys
import time

import kcp as pykcp

MASK = (1 << 64) - 1


def pattern(seed, n):
    x = seed or 0x9E3779B97F4A7C15
    out = bytearray()
    while len(out) < n:
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def now_ms():
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def parse_addr(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Conn:
    """One ikcpcb bound to one remote address."""

    def __init__(self, args, sock, addr, conv):
        self.addr = addr
        # The binding declares conv as a C int; ikcp_create takes it as IUINT32.
        self.k = pykcp.KCP(
            conv - (1 << 32) if conv >= 1 << 31 else conv,
            max_transmission=args.mtu,
            no_delay=bool(args.nodelay),
            update_interval=args.interval,
            resend_count=args.resend,
            no_congestion_control=bool(args.nc),
            send_window_size=args.sndwnd,
            receive_window_size=args.rcvwnd,
        )
        self.k.include_outbound_handler(lambda _k, data: sock.sendto(data, addr))
        self.mss = args.mtu - 24
        self.framing = args.framing
        self.chunk = args.chunk
        self.sndwnd = args.sndwnd
        self.k.update(now_ms())

    def can_send(self):
        return self.k.get_outbound_packets() < 2 * self.sndwnd

    def send(self, data):
        step = self.mss if self.framing == "stream" else self.chunk
        for i in range(0, len(data), step):
            self.k.enqueue(bytes(data[i : i + step]))

    def received(self):
        return list(self.k.get_all_received())


def run(args):
    family = socket.AF_INET6 if ":" in (args.listen or args.connect).rsplit(":", 1)[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    deadline = time.monotonic() + args.timeout
    conns = {}
    if args.listen:
        sock.bind(parse_addr(args.listen))
        host, port = sock.getsockname()[:2]
        print(f"listening {host}:{port}", flush=True)
    else:
        remote = parse_addr(args.connect)
        sock.connect(remote)
        remote = sock.getpeername()
        conns[remote] = Conn(args, sock, remote, args.conv)
    sock.setblocking(False)

    data = pattern(args.seed, args.bytes) if args.role in ("source", "bulk") else b""
    sent = 0
    got = hashlib.sha256()
    n_got = 0
    finished_at = None  # sink: when the last byte came
    while True:
        t = time.monotonic()
        if t > deadline:
            sys.stderr.write(f"ikcppeer: timeout after {args.timeout}s (sent {sent}, received {n_got})\n")
            return 3
        if finished_at is not None and t - finished_at >= args.linger:
            return 0
        r, _, _ = select.select([sock], [], [], args.interval / 1000.0)
        if r:
            while True:
                try:
                    pkt, addr = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                c = conns.get(addr)
                if c is None:
                    if not args.listen or len(pkt) < 24:
                        continue
                    c = conns[addr] = Conn(args, sock, addr, int.from_bytes(pkt[:4], "little"))
                try:
                    c.k.receive(pkt)
                except Exception as e:  # a conv mismatch or bad segment: ikcp drops it too
                    sys.stderr.write(f"ikcppeer: input from {addr}: {e}\n")
        ms = now_ms()
        for c in conns.values():
            for msg in c.received():
                if args.role == "echo":
                    c.send(msg)
                else:
                    got.update(msg)
                    n_got += len(msg)
            if args.role in ("source", "bulk"):
                while sent < len(data) and c.can_send():
                    end = min(len(data), sent + max(c.chunk, c.mss))
                    c.send(data[sent:end])
                    sent = end
            c.k.update(ms)
        if args.role == "sink" and finished_at is None and n_got >= args.bytes:
            print(json.dumps({"received": n_got, "sha256_received": got.hexdigest()}), flush=True)
            finished_at = time.monotonic()
        if args.role in ("source", "bulk") and sent == len(data):
            c = next(iter(conns.values()))
            done = c.k.get_outbound_packets() == 0
            if args.role == "bulk":
                done = done and n_got >= len(data)
            if done:
                out = {"sent": sent, "sha256_sent": hashlib.sha256(data).hexdigest()}
                if args.role == "bulk":
                    out.update(received=n_got, sha256_received=got.hexdigest())
                print(json.dumps(out), flush=True)
                return 0 if args.role == "source" or out["sha256_received"] == out["sha256_sent"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--listen")
    g.add_argument("--connect")
    p.add_argument("--role", default=None, choices=["echo", "sink", "source", "bulk"])
    p.add_argument("--conv", type=int, default=1, help="client conv (server: from the first datagram)")
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--framing", choices=["message", "stream"], default="message")
    p.add_argument("--chunk", type=int, default=16384, help="message size in message framing")
    p.add_argument("--mtu", type=int, default=1400)
    p.add_argument("--sndwnd", type=int, default=1024)
    p.add_argument("--rcvwnd", type=int, default=1024)
    p.add_argument("--nodelay", type=int, default=1)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--resend", type=int, default=2)
    p.add_argument("--nc", type=int, default=1)
    p.add_argument("--linger", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    if args.role is None:
        args.role = "echo" if args.listen else "source"
    if args.listen and args.role not in ("echo", "sink"):
        p.error("a server's role is echo or sink")
    if args.connect and args.role not in ("source", "bulk"):
        p.error("a client's role is source or bulk")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
