// Command kcpvectors dumps golden vectors of kcp-go 5.6.1's segment output for scripted
// scenarios. Each scenario drives kcp-go's KCP struct directly on a fully deterministic
// clock and writes a text transcript (<outdir>/<name>.txt) that tether's Rust KCP replays
// byte for byte (tests/tests/kcp_vectors.rs).
//
// Build it OFFLINE in GOPATH mode against Debian's golang-github-xtaci-kcp-dev:
//
//	cd tests/go/kcpvectors && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o kcpvectors .
//
// Usage: kcpvectors <outdir>
//
// Clock: kcp-go's clock is currentMs() = time.Since(refTime)/ms. We reach the package var
// refTime through go:linkname, set it to now-0.5ms at the start of every scenario (so the
// clock reads 0 for the next 0.5 ms) and implement "advance N" by moving refTime N ms into
// the past. A scenario that takes 0.5 ms or more of real time is re-run (up to 20 times),
// so every reading of the clock is exactly the sum of the advances.
//
// The unexported (*KCP).flush is also reached through go:linkname; the bodyless
// declaration needs the (empty) empty.s in this package.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
	"unsafe" // go:linkname, setStream

	kcp "github.com/xtaci/kcp-go"
)

//go:linkname refTime github.com/xtaci/kcp-go.refTime
var refTime time.Time

//go:linkname kcpFlush github.com/xtaci/kcp-go.(*KCP).flush
func kcpFlush(k *kcp.KCP, ackOnly bool) uint32

const (
	cmdPush = 81
	cmdAck  = 82
	cmdWask = 83
	cmdWins = 84

	defConv = 0x11223344
	budget  = 500 * time.Microsecond
	tries   = 20
)

// config is one scenario's KCP setup; it becomes the transcript's `config` line.
type config struct {
	conv                  uint32
	nodelay, interval     int
	resend, nc            int
	sndwnd, rcvwnd        int
	mtu, reserved, stream int
}

func defaults() config {
	return config{conv: defConv, nodelay: 0, interval: 100, resend: 0, nc: 0,
		sndwnd: 32, rcvwnd: 32, mtu: 1400, reserved: 0, stream: 0}
}

func (c config) line() string {
	return fmt.Sprintf("config conv=0x%08x nodelay=%d interval=%d resend=%d nc=%d sndwnd=%d rcvwnd=%d mtu=%d reserved=%d stream=%d",
		c.conv, c.nodelay, c.interval, c.resend, c.nc, c.sndwnd, c.rcvwnd, c.mtu, c.reserved, c.stream)
}

// rec is one recorded transcript line, formatted only after the timed run.
type rec struct {
	kind    string // send input flush flushack advance recv out note
	data    []byte
	ret     int64
	a, b    int
	comment string
}

// runner drives one kcp-go KCP and records the transcript.
type runner struct {
	cfg   config
	k     *kcp.KCP
	recs  []rec
	last  [][]byte // datagrams emitted by the most recent op
	clock uint32   // expected clock, ms
}

func newRunner(cfg config) *runner {
	r := &runner{cfg: cfg}
	r.k = kcp.NewKCP(cfg.conv, func(buf []byte, size int) {
		d := append([]byte(nil), buf[:size]...)
		r.recs = append(r.recs, rec{kind: "out", data: d})
		r.last = append(r.last, d)
	})
	r.k.NoDelay(cfg.nodelay, cfg.interval, cfg.resend, cfg.nc)
	r.k.WndSize(cfg.sndwnd, cfg.rcvwnd)
	if r.k.SetMtu(cfg.mtu) != 0 {
		panic("SetMtu rejected")
	}
	if !r.k.ReserveBytes(cfg.reserved) {
		panic("ReserveBytes rejected")
	}
	if cfg.stream != 0 {
		// kcp-go has no setter on KCP; the session layer writes the field directly.
		setStream(r.k)
	}
	return r
}

// setStream sets the unexported KCP.stream field (kcp-go's session layer assigns it directly).
func setStream(k *kcp.KCP) {
	f := reflect.ValueOf(k).Elem().FieldByName("stream")
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetInt(1)
}

func (r *runner) begin() { r.last = r.last[:0] }

func (r *runner) note(format string, args ...interface{}) {
	r.recs = append(r.recs, rec{kind: "note", comment: fmt.Sprintf(format, args...)})
}

func (r *runner) send(data []byte) int {
	r.begin()
	n := r.k.Send(data)
	r.insertBeforeOuts(rec{kind: "send", data: append([]byte(nil), data...), ret: int64(n)})
	return n
}

func (r *runner) input(data []byte, regular, ackNoDelay bool) int {
	r.begin()
	mark := len(r.recs)
	n := r.k.Input(data, regular, ackNoDelay)
	r.insertAt(mark, rec{kind: "input", data: append([]byte(nil), data...), ret: int64(n), a: b2i(regular), b: b2i(ackNoDelay)})
	return n
}

func (r *runner) in(data []byte) int { return r.input(data, true, false) }

func (r *runner) flush() uint32 {
	r.begin()
	mark := len(r.recs)
	n := kcpFlush(r.k, false)
	r.insertAt(mark, rec{kind: "flush", ret: int64(n)})
	return n
}

func (r *runner) flushAck() uint32 {
	r.begin()
	mark := len(r.recs)
	n := kcpFlush(r.k, true)
	r.insertAt(mark, rec{kind: "flushack", ret: int64(n)})
	return n
}

func (r *runner) advance(ms uint32) {
	r.begin()
	refTime = refTime.Add(-time.Duration(ms) * time.Millisecond)
	r.clock += ms
	r.recs = append(r.recs, rec{kind: "advance", a: int(ms)})
}

func (r *runner) recv(capacity int) (int, []byte) {
	r.begin()
	buf := make([]byte, capacity)
	n := r.k.Recv(buf)
	var got []byte
	if n > 0 {
		got = append([]byte(nil), buf[:n]...)
	}
	r.recs = append(r.recs, rec{kind: "recv", a: capacity, ret: int64(n), data: got})
	return n, got
}

// insertBeforeOuts / insertAt put the op's own line before the outs it caused.
func (r *runner) insertBeforeOuts(x rec) { r.insertAt(len(r.recs)-len(r.last), x) }

func (r *runner) insertAt(i int, x rec) {
	r.recs = append(r.recs, rec{})
	copy(r.recs[i+1:], r.recs[i:])
	r.recs[i] = x
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- segment helpers (24-byte little-endian header, spec §1) ----

type hdr struct {
	conv        uint32
	cmd, frg    uint8
	wnd         uint16
	ts, sn, una uint32
	length      uint32
	data        []byte
}

func segc(conv uint32, cmd, frg uint8, wnd uint16, ts, sn, una uint32, data []byte) []byte {
	b := make([]byte, 24+len(data))
	binary.LittleEndian.PutUint32(b[0:], conv)
	b[4] = cmd
	b[5] = frg
	binary.LittleEndian.PutUint16(b[6:], wnd)
	binary.LittleEndian.PutUint32(b[8:], ts)
	binary.LittleEndian.PutUint32(b[12:], sn)
	binary.LittleEndian.PutUint32(b[16:], una)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(data)))
	copy(b[24:], data)
	return b
}

func push(wnd uint16, ts, sn, una uint32, data []byte) []byte {
	return segc(defConv, cmdPush, 0, wnd, ts, sn, una, data)
}
func pushFrg(frg uint8, wnd uint16, ts, sn, una uint32, data []byte) []byte {
	return segc(defConv, cmdPush, frg, wnd, ts, sn, una, data)
}
func ack(wnd uint16, ts, sn, una uint32) []byte {
	return segc(defConv, cmdAck, 0, wnd, ts, sn, una, nil)
}
func wask(wnd uint16, una uint32) []byte { return segc(defConv, cmdWask, 0, wnd, 0, 0, una, nil) }
func wins(wnd uint16, una uint32) []byte { return segc(defConv, cmdWins, 0, wnd, 0, 0, una, nil) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// decode splits a datagram (after `reserved` leading bytes) into segments.
func decode(d []byte, reserved int) []hdr {
	d = d[reserved:]
	var hs []hdr
	for len(d) >= 24 {
		h := hdr{
			conv: binary.LittleEndian.Uint32(d[0:]), cmd: d[4], frg: d[5],
			wnd: binary.LittleEndian.Uint16(d[6:]), ts: binary.LittleEndian.Uint32(d[8:]),
			sn: binary.LittleEndian.Uint32(d[12:]), una: binary.LittleEndian.Uint32(d[16:]),
			length: binary.LittleEndian.Uint32(d[20:]),
		}
		h.data = d[24 : 24+h.length]
		d = d[24+h.length:]
		hs = append(hs, h)
	}
	return hs
}

// lastPushTs returns the ts of the PUSH with sequence number sn among the datagrams emitted
// by the most recent op (panics if there is none: the scenario is wrong).
func (r *runner) lastPushTs(sn uint32) uint32 {
	for _, d := range r.last {
		for _, h := range decode(d, r.cfg.reserved) {
			if h.cmd == cmdPush && h.sn == sn {
				return h.ts
			}
		}
	}
	panic(fmt.Sprintf("no PUSH sn=%d in the last op's output", sn))
}

// lastSegs returns all segments emitted by the most recent op.
func (r *runner) lastSegs() []hdr {
	var hs []hdr
	for _, d := range r.last {
		hs = append(hs, decode(d, r.cfg.reserved)...)
	}
	return hs
}

// loopback feeds the datagrams emitted by the most recent op back into the same KCP, which
// then sees them as a peer (same conv) sending that data.
func (r *runner) loopbackDatagrams() [][]byte {
	var ds [][]byte
	for _, d := range r.last {
		ds = append(ds, append([]byte(nil), d[r.cfg.reserved:]...))
	}
	return ds
}

func pat(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// ---- scenarios ----

type scenario struct {
	name, purpose string
	cfg           config
	script        func(r *runner)
}

func scenarios() []scenario {
	var ss []scenario
	add := func(name, purpose string, cfg config, script func(r *runner)) {
		ss = append(ss, scenario{name, purpose, cfg, script})
	}

	// 1
	add("push_one", "default config: nc=0 so the first flush only opens cwnd; one PUSH, its ACK, then slow start", defaults(), func(r *runner) {
		r.send([]byte("A"))
		r.note("cwnd is 0: nothing moves; cwnd becomes 1")
		r.flush()
		r.flush()
		r.advance(100)
		r.flush()
		r.send([]byte("hello"))
		r.send([]byte("world"))
		r.flush()
		r.note("ACK sn 0 after 120 ms: una slides, cwnd 1->2, Input flushes sn 1 and sn 2")
		r.advance(20)
		r.in(ack(32, 0, 0, 1))
		r.advance(100)
		r.flush()
	})

	// 2
	c := defaults()
	c.nc = 1
	add("fragment", "message mode: a 3000-byte Send at mtu 1400 makes frg 2,1,0; loopback reassembly and Recv errors", c, func(r *runner) {
		msg := pat(3000, 3)
		r.send(msg)
		r.flush()
		ds := r.loopbackDatagrams()
		r.recv(4000)
		r.in(ds[0])
		r.in(ds[1])
		r.note("message incomplete: Recv -1")
		r.recv(4000)
		r.in(ds[2])
		r.note("buffer smaller than the message: -2")
		r.recv(2999)
		r.recv(3000)
		r.recv(3000)
		r.note("acklist sn 0,1,2 all below rcv_nxt=3: only the last ACK goes out")
		r.flush()
		r.send([]byte{})
		r.send(pat(1376, 9))
		r.send(pat(1377, 11))
		r.flush()
	})

	// 3
	c = defaults()
	c.nc = 1
	c.stream = 1
	add("stream_merge", "stream mode: small sends merge into one segment, a large send tops it up to mss then splits", c, func(r *runner) {
		r.send([]byte("abc"))
		r.send([]byte("defg"))
		r.send(pat(3000, 1))
		r.flush()
		ds := r.loopbackDatagrams()
		for _, d := range ds {
			r.in(d)
		}
		r.recv(100)
		r.recv(2000)
		r.recv(2000)
		r.recv(2000)
		r.recv(2000)
		r.send([]byte("x"))
		r.flush()
		r.send([]byte("y"))
		r.send([]byte("z"))
		r.flush()
	})

	// 4
	c = defaults()
	c.nc = 1
	c.rcvwnd = 8
	add("ack_batching", "in-order, out-of-order, duplicate, old and beyond-window PUSHes; kcp-go keeps only out-of-order ACKs plus the last", c, func(r *runner) {
		r.in(push(32, 1000, 0, 0, []byte("d0")))
		r.in(push(32, 1001, 1, 0, []byte("d1")))
		r.in(push(32, 1003, 3, 0, []byte("d3")))
		r.in(cat(push(32, 1005, 5, 0, []byte("d5")), push(32, 1011, 1, 0, []byte("d1")), push(32, 1013, 3, 0, []byte("d3"))))
		r.note("sn 12 is beyond rcv_nxt(2)+rcv_wnd(8): dropped, no ACK")
		r.in(push(32, 1012, 12, 0, []byte("d12")))
		r.in(push(32, 1009, 9, 0, []byte("d9")))
		r.in(push(32, 1002, 2, 0, []byte("d2")))
		r.note("rcv_nxt=4: ACKs for 0,1,1,2 are pruned; 3 (dup, 3<4) pruned; 5 and 9 kept; the last entry (2) kept")
		r.flush()
		r.flush()
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.in(cat(push(32, 1004, 4, 0, []byte("d4")), push(32, 1006, 6, 0, []byte("d6"))))
		r.flush()
		for i := 0; i < 5; i++ {
			r.recv(10)
		}
		r.note("wnd field counts rcv_queue only; sn 9 still waits in rcv_buf")
		r.in(push(32, 1007, 7, 0, []byte("d7")))
		r.flush()
	})

	// 5
	c = defaults()
	c.nc = 1
	add("window_probe", "peer window 0: WASK after 7000 ms then backoff 10500, 15750; WASK from peer gets WINS; WINS reopens", c, func(r *runner) {
		r.in(wins(0, 0))
		r.send([]byte("queued"))
		r.flush()
		r.advance(100)
		r.flush()
		r.advance(6900)
		r.note("t=7000: first WASK, next wait 10500")
		r.flush()
		r.advance(10499)
		r.flush()
		r.advance(1)
		r.flush()
		r.advance(15750)
		r.flush()
		r.note("a non-regular (FEC) segment does not update rmt_wnd")
		r.input(cat(wins(9, 0)), false, false)
		r.advance(100)
		r.flush()
		r.note("peer asks: WINS reply carries our window")
		r.in(wask(0, 0))
		r.flush()
		r.note("WINS with wnd 2 reopens the window: probe timers reset, data goes out")
		r.in(wins(2, 0))
		r.flush()
		r.send([]byte("more1"))
		r.send([]byte("more2"))
		r.send([]byte("more3"))
		r.flush()
		r.note("window 0 again, then WASK+WINS in one flush (probe due and peer asked)")
		r.in(ack(0, r.clock, 1, 1))
		r.advance(7000)
		r.flush()
		r.in(wask(0, 1))
		r.advance(10500)
		r.flush()
	})

	// 6
	c = defaults()
	c.nc = 1
	c.rcvwnd = 4
	add("rcv_window_reopen", "rcvwnd 4 filled; Recv that frees the window makes the next flush send WINS", c, func(r *runner) {
		for sn := uint32(0); sn < 4; sn++ {
			r.in(push(32, 500+sn, sn, 0, pat(10, byte(sn))))
		}
		r.in(push(32, 504, 4, 0, pat(10, 4)))
		r.in(push(32, 508, 8, 0, pat(10, 8)))
		r.note("wnd 0 in every segment; sn 4 waits in rcv_buf; sn 8 beyond window")
		r.flush()
		r.recv(100)
		r.flush()
		r.recv(100)
		r.note("queue dropped below rcv_wnd after being full: WINS")
		r.flush()
		r.flush()
		r.recv(100)
		r.recv(100)
		r.recv(100)
		r.recv(100)
		r.flush()
	})

	// 7
	add("timeout_retransmit", "nodelay 0, nc 0: RTO retransmits with backoff rto += rx_rto, cwnd collapses to 1", defaults(), func(r *runner) {
		r.send([]byte("first"))
		r.send([]byte("second"))
		r.flush()
		r.flush()
		r.advance(100)
		r.flush()
		r.advance(99)
		r.flush()
		r.advance(1)
		r.note("t=200: timeout, rto 400")
		r.flush()
		r.advance(399)
		r.flush()
		r.advance(1)
		r.note("t=600: timeout, rto 600")
		r.flush()
		r.advance(600)
		r.flush()
		r.advance(800)
		r.flush()
		r.note("ACK the last transmission (ts=%d): rtt sample, una slides, Input flushes 'second'", r.clock)
		ts := r.clock
		r.advance(50)
		r.in(ack(32, ts, 0, 1))
		r.advance(100)
		r.flush()
		r.advance(200)
		r.flush()
	})

	c = defaults()
	c.nodelay = 1
	c.interval = 10
	c.nc = 1
	add("timeout_retransmit_nodelay", "nodelay 1: backoff rto += rx_rto/2; minrto 30 after an RTT sample", c, func(r *runner) {
		r.send([]byte("a"))
		r.send([]byte("b"))
		r.flush()
		for _, step := range []uint32{10, 190, 300, 400, 500} {
			r.advance(step)
			r.flush()
		}
		ts := r.lastPushTs(0)
		r.advance(5)
		r.note("ACK sn 0 (ts %d) with rtt 5: rto = 5 + max(10, 8) = 15, clamped to 30", ts)
		r.in(ack(32, ts, 0, 1))
		r.note("a new segment now gets rto 30; backoff 30 -> 45 -> 60; sn 1 keeps its old rto 600")
		r.send([]byte("c"))
		r.flush()
		r.advance(29)
		r.flush()
		r.advance(1)
		r.flush()
		r.advance(45)
		r.flush()
		r.advance(60)
		r.flush()
	})

	// 8
	c = defaults()
	c.resend = 2
	c.nc = 1
	add("fast_retransmit", "resend 2: ACKs for sn 3,4,5 give sn 0..2 fastack 3 -> fast retransmit; older-ts ACK does not count", c, func(r *runner) {
		for i := 0; i < 6; i++ {
			r.send(pat(100, byte(i)))
		}
		r.flush()
		ts3, ts4, ts5 := r.lastPushTs(3), r.lastPushTs(4), r.lastPushTs(5)
		r.advance(10)
		r.in(ack(32, ts3, 3, 0))
		r.in(cat(ack(32, ts4, 4, 0), ack(32, ts5, 5, 0)))
		r.flush()
		r.advance(10)
		r.note("ACK with ts older than the retransmissions: no fastack for sn 0..2")
		r.in(ack(32, ts5, 5, 0))
		r.in(ack(32, ts5, 5, 0))
		r.in(ack(32, ts5, 5, 0))
		r.flush()
		r.advance(10)
		r.note("fastack of sn 0..2 stayed 0, so no early retransmit either; ret 90 = time left to their RTO")
		r.flush()
		r.send([]byte("tail"))
		r.in(ack(32, r.clock, 5, 3))
		r.flush()
		r.in(ack(32, r.clock, 6, 7))
		r.flush()
	})

	// 9
	c = defaults()
	c.nc = 1
	add("early_retransmit", "resend 0: an ACK of a later sn retransmits earlier segments on the next flush that moves no new data", c, func(r *runner) {
		r.send([]byte("a"))
		r.send([]byte("b"))
		r.send([]byte("c"))
		r.flush()
		r.advance(5)
		r.in(ack(32, 0, 2, 0))
		r.send([]byte("d"))
		r.note("new data moved this flush: no early retransmit")
		r.flush()
		r.note("no new data: sn 0 and 1 (fastack 1) early-retransmitted")
		r.flush()
		r.flush()
		r.advance(5)
		r.in(ack(32, 5, 3, 0))
		r.flush()
		r.in(ack(32, 10, 3, 4))
		r.flush()
	})

	// 10
	c = defaults()
	c.nc = 1
	add("rtt_rto", "RTT samples (one per datagram, last ACK, regular only) and the resulting RTO seen in retransmit timing", c, func(r *runner) {
		r.send([]byte("s0"))
		r.flush()
		r.advance(30)
		r.note("rtt 30: srtt 30 rttvar 15 rto 130")
		r.in(ack(32, 0, 0, 1))
		r.send([]byte("s1"))
		r.flush()
		r.advance(100)
		r.flush()
		r.advance(30)
		r.flush()
		r.advance(100)
		r.flush()
		r.advance(140)
		r.note("t=400, rtt 240 against the retransmission ts 160")
		r.in(ack(32, 160, 1, 2))
		r.send([]byte("s2"))
		r.flush()
		for i := 0; i < 4; i++ {
			r.advance(100)
			r.flush()
		}
		r.note("two ACKs in one datagram: only the last one's ts is sampled; the first is a future ts")
		r.in(cat(ack(32, r.clock+50, 2, 2), ack(32, r.clock-1, 2, 3)))
		r.send([]byte("s3"))
		r.flush()
		r.note("future ts (negative rtt): no sample; then a non-regular ACK: no sample")
		r.in(ack(32, r.clock+5, 3, 3))
		r.advance(3)
		r.input(ack(32, r.clock-2, 3, 4), false, false)
		r.send([]byte("s4"))
		r.flush()
		r.advance(1)
		r.in(ack(32, r.clock, 4, 5))
		r.send([]byte("s5"))
		r.flush()
		r.advance(70)
		r.in(ack(32, r.clock-70, 5, 6))
		r.send([]byte("s6"))
		r.flush()
		for i := 0; i < 4; i++ {
			r.advance(50)
			r.flush()
		}
	})

	// 11
	add("cwnd_growth", "nc 0: slow start then congestion avoidance limit sends; early retransmit with resend 0 wraps cwnd to ssthresh-1", defaults(), func(r *runner) {
		for i := 0; i < 64; i++ {
			r.send(pat(20, byte(i)))
		}
		r.flush()
		r.flush()
		una := uint32(0)
		inflight := r.lastSegs()
		for round := 0; round < 8; round++ {
			if len(inflight) == 0 {
				panic("cwnd_growth: nothing in flight")
			}
			r.advance(20)
			var acks [][]byte
			for _, h := range inflight {
				if h.cmd == cmdPush {
					if h.sn+1 > una {
						una = h.sn + 1
					}
					acks = append(acks, ack(32, h.ts, h.sn, h.sn+1))
				}
			}
			inflight = nil
			if round%2 == 0 {
				r.note("round %d: ACK everything in flight in one datagram (una -> %d): one cwnd update", round, una)
				r.in(cat(acks...))
				inflight = append(inflight, r.lastSegs()...)
			} else {
				r.note("round %d: one datagram per ACK (una -> %d): one cwnd update each, each Input flushes", round, una)
				for _, a := range acks {
					r.in(a)
					inflight = append(inflight, r.lastSegs()...)
				}
			}
		}
		if len(inflight) == 0 {
			panic("cwnd_growth: nothing in flight after the rounds")
		}
		r.advance(20)
		last := inflight[len(inflight)-1]
		r.note("ACK only sn %d: window stays full, early retransmit of the rest; ssthresh = 8/2 = 4 and cwnd = ssthresh + 0xffffffff wraps to 3", last.sn)
		r.in(ack(32, last.ts, last.sn, una))
		r.flush()
		r.flush()
		r.advance(20)
		una = last.sn + 1
		r.note("ACK all (una %d): slow start from the wrapped cwnd 3 -> 4", una)
		r.in(ack(32, r.clock-20, last.sn, una))
		r.advance(300)
		r.note("timeout: ssthresh = cwnd_eff/2 = 2, cwnd 1; the next ACK grows it to 2")
		r.flush()
		segs := r.lastSegs()
		r.advance(20)
		una = segs[len(segs)-1].sn + 1
		r.in(ack(32, segs[len(segs)-1].ts, segs[len(segs)-1].sn, una))
		r.advance(20)
		r.flush()
		r.advance(100)
		r.flush()
	})

	// 12
	c = config{conv: defConv, nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 1024, rcvwnd: 1024, mtu: 1350, reserved: 28, stream: 1}
	add("fast3_reserved", "kcptun fast3 with crypt+FEC (reserved 28, mss 1298): bulk send of 5000 bytes, reserved bytes left zero", c, func(r *runner) {
		r.send(pat(5000, 5))
		r.flush()
		ds := r.loopbackDatagrams()
		r.advance(10)
		r.flush()
		for _, d := range ds {
			r.in(d)
		}
		r.recv(1298)
		r.recv(1298)
		r.advance(10)
		r.note("ACK sn 3 (ts 0) at t=20: rtt 20, sn 0..2 fastack 1")
		r.in(ack(1024, 0, 3, 0))
		r.flush()
		r.advance(10)
		r.in(ack(1024, 0, 3, 0))
		r.in(ack(1024, 20, 2, 0))
		r.flush()
		r.advance(100)
		r.flush()
		r.advance(200)
		r.flush()
		r.in(ack(1024, r.clock, 0, 4))
		r.flush()
	})

	// 13
	c = defaults()
	c.nc = 1
	add("input_flushes", "Input flushes when una slides (full flush) or, with ackNoDelay, ACK-only; otherwise not", c, func(r *runner) {
		r.send([]byte("one"))
		r.send([]byte("two"))
		r.flush()
		r.send([]byte("three"))
		r.advance(7)
		r.note("peer PUSH + una 1: window slides, Input runs a full flush: ACK + queued 'three'")
		r.in(push(32, 700, 0, 1, []byte("p0")))
		r.send([]byte("four"))
		r.note("ackNoDelay, no slide: ACK-only flush; 'four' stays queued")
		r.input(push(32, 701, 1, 1, []byte("p1")), true, true)
		r.note("ackNoDelay but nothing to ACK: no flush")
		r.input(ack(32, 0, 1, 1), true, true)
		r.note("ackNoDelay and slide: the full flush wins")
		r.input(cat(push(32, 702, 2, 2, []byte("p2"))), true, true)
		r.note("no ackNoDelay, no slide: Input emits nothing; the ACK waits for flushack")
		r.in(push(32, 703, 3, 2, []byte("p3")))
		r.flushAck()
		r.flushAck()
		r.flush()
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.recv(10)
	})

	// 14
	c = defaults()
	c.nc = 1
	add("bad_input", "conv mismatch mid-datagram, bad cmd, truncated len, short datagram: early return keeps earlier segments, skips flush/RTT", c, func(r *runner) {
		r.send([]byte("mine0"))
		r.send([]byte("mine1"))
		r.flush()
		r.advance(10)
		r.in([]byte{})
		r.in(make([]byte, 23))
		r.in(segc(0x11223345, cmdPush, 0, 32, 1, 0, 0, []byte("x")))
		r.note("good PUSH, then a segment with another conv: -1, the PUSH stays processed")
		r.in(cat(push(32, 1, 0, 0, []byte("p0")), segc(0x99999999, cmdPush, 0, 32, 1, 1, 0, []byte("p1"))))
		r.note("ACK that slides una, then a bad cmd: -3, no flush from Input, no RTT sample")
		r.in(cat(ack(32, 0, 0, 1), segc(defConv, 0x55, 0, 32, 0, 0, 0, nil)))
		r.note("len says 10, only 5 bytes follow: -2")
		trunc := segc(defConv, cmdPush, 0, 32, 2, 2, 0, []byte("12345"))
		binary.LittleEndian.PutUint32(trunc[20:], 10)
		r.in(cat(push(32, 2, 1, 1, []byte("p1")), trunc))
		r.note("trailing garbage shorter than 24 bytes is ignored: ret 0")
		r.in(cat(push(32, 3, 2, 1, []byte("p2")), []byte("garbage")))
		r.note("a bad cmd first")
		r.in(segc(defConv, 0, 0, 32, 0, 0, 0, nil))
		r.in(segc(defConv, 80, 0, 32, 0, 0, 0, nil))
		r.in(segc(defConv, 85, 0, 32, 0, 0, 0, nil))
		r.flush()
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.recv(10)
		r.advance(200)
		r.flush()
	})

	// extra: Send errors
	c = defaults()
	c.mtu = 50
	add("send_errors", "mtu 50 (mss 26): empty Send -1, 256 fragments -2, 255 fragments ok; Recv on empty -1", c, func(r *runner) {
		r.recv(100)
		r.send([]byte{})
		r.send(pat(26*256, 1))
		r.send(pat(26*255-3, 2))
		r.send(pat(26, 3))
		r.flush()
		r.flush()
	})

	// extra: 32-bit clock wrap
	c = defaults()
	c.nc = 1
	add("clock_wrap", "the u32 millisecond clock wraps: ts, resendts and RTT use wrapping differences", c, func(r *runner) {
		r.advance(4294967196) // 2^32 - 100
		r.send([]byte("wrap"))
		r.flush()
		r.advance(150)
		r.flush()
		r.advance(49)
		r.flush()
		r.advance(1)
		r.flush()
		r.advance(30)
		r.in(ack(32, 100, 0, 1))
		r.send([]byte("after"))
		r.flush()
		r.in(push(32, 0xfffffff0, 0, 0, []byte("peer")))
		r.flush()
		r.recv(10)
	})

	return ss
}

// ---- formatting ----

func hx(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

func render(s scenario, recs []rec) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# scenario: %s — %s\n", s.name, s.purpose)
	sb.WriteString("# generated by tests/go/kcpvectors (kcp-go 5.6.1 via tests/go/regen.sh); do not edit by hand\n")
	sb.WriteString(s.cfg.line() + "\n")
	for _, x := range recs {
		switch x.kind {
		case "note":
			fmt.Fprintf(&sb, "# %s\n", x.comment)
		case "send":
			fmt.Fprintf(&sb, "send %s ret=%d\n", hx(x.data), x.ret)
		case "input":
			fmt.Fprintf(&sb, "input %s regular=%d acknodelay=%d ret=%d\n", hx(x.data), x.a, x.b, x.ret)
		case "flush":
			fmt.Fprintf(&sb, "flush ret=%d\n", x.ret)
		case "flushack":
			fmt.Fprintf(&sb, "flushack ret=%d\n", x.ret)
		case "advance":
			fmt.Fprintf(&sb, "advance %d\n", x.a)
		case "recv":
			fmt.Fprintf(&sb, "recv %d ret=%d data=%s\n", x.a, x.ret, hx(x.data))
		case "out":
			fmt.Fprintf(&sb, "out %s\n", hx(x.data))
		default:
			panic(x.kind)
		}
	}
	return sb.String()
}

// run executes one scenario on the deterministic clock, retrying while it was too slow.
func run(s scenario) ([]rec, error) {
	for try := 0; try < tries; try++ {
		r := newRunner(s.cfg)
		runtime.GC()
		start := time.Now()
		refTime = start.Add(-budget) // clock reads 0 until start+0.5ms
		s.script(r)
		if time.Since(start) < budget {
			if try > 0 {
				fmt.Fprintf(os.Stderr, "kcpvectors: %s needed %d tries to fit in %v\n", s.name, try+1, budget)
			}
			return r.recs, nil
		}
	}
	return nil, fmt.Errorf("scenario %s: could not finish within %v of real time in %d tries", s.name, budget, tries)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kcpvectors <outdir>")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	debug.SetGCPercent(-1)
	for _, s := range scenarios() {
		recs, err := run(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		path := filepath.Join(dir, s.name+".txt")
		if err := os.WriteFile(path, []byte(render(s, recs)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
