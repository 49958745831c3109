// Command fecvectors prints golden vectors of kcp-go 5.6.1's FEC encoder and decoder
// (fec.go, autotune.go; Reed–Solomon from klauspost/reedsolomon 1.9.13) for tether's
// tests/tests/fec_vectors.rs. The output is tests/vectors/fec.txt; its header documents the
// format. It is deterministic: every input comes from fixed formulas or a fixed-seed PRNG.
//
// Build it OFFLINE in GOPATH mode against Debian's golang-github-xtaci-kcp-dev:
//
//	cd tests/go/fecvectors && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o ../../../target/go-bin/fecvectors .
//
// Usage: fecvectors > tests/vectors/fec.txt
//
// kcp-go's FEC types are unexported. newFECEncoder, newFECDecoder and their encode/decode
// methods are reached through go:linkname (the bodyless declarations need empty.s), and
// the returned pointers are read through mirror structs with the same field layout, which
// also lets a scenario start the encoder at any seqid (fecEncoder.next).
//
// Clock: the decoder stamps and expires shards with currentMs() = time.Since(refTime)/ms.
// refTime is reached through go:linkname and set so that currentMs() reads exactly the
// scripted time during each decode call; a call that takes 0.5 ms or more makes the whole
// scenario run again (up to 20 times), so the recorded times are exact.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	_ "unsafe" // go:linkname

	"github.com/klauspost/reedsolomon"
	kcp "github.com/xtaci/kcp-go"
)

// fecEncoder mirrors kcp-go 5.6.1's fecEncoder field for field.
type fecEncoder struct {
	dataShards    int
	parityShards  int
	shardSize     int
	paws          uint32
	next          uint32
	shardCount    int
	maxSize       int
	headerOffset  int
	payloadOffset int
	shardCache    [][]byte
	encodeCache   [][]byte
	zeros         []byte
	codec         reedsolomon.Encoder
}

type pulse struct {
	bit bool
	seq uint32
}

type fecElement struct {
	pkt []byte
	ts  uint32
}

// fecDecoder mirrors kcp-go 5.6.1's fecDecoder field for field.
type fecDecoder struct {
	rxlimit      int
	dataShards   int
	parityShards int
	shardSize    int
	rx           []fecElement
	decodeCache  [][]byte
	flagCache    []bool
	zeros        []byte
	codec        reedsolomon.Encoder
	pulses       [258]pulse
}

//go:linkname refTime github.com/xtaci/kcp-go.refTime
var refTime time.Time

//go:linkname newFECEncoder github.com/xtaci/kcp-go.newFECEncoder
func newFECEncoder(dataShards, parityShards, offset int) *fecEncoder

//go:linkname fecEncode github.com/xtaci/kcp-go.(*fecEncoder).encode
func fecEncode(enc *fecEncoder, b []byte) [][]byte

//go:linkname newFECDecoder github.com/xtaci/kcp-go.newFECDecoder
func newFECDecoder(dataShards, parityShards int) *fecDecoder

//go:linkname fecDecode github.com/xtaci/kcp-go.(*fecDecoder).decode
func fecDecode(dec *fecDecoder, in []byte) [][]byte

const (
	budget = 500 * time.Microsecond
	tries  = 20
)

func hx(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

func paws(d, p int) uint32 { n := uint32(d + p); return 0xffffffff / n * n }

// packet is datagram k of a scenario: byte i = (i*13+k) mod 256.
func packet(n, k int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*13 + k) % 256)
	}
	return b
}

// shard is one datagram on the encoder's wire, in order.
type shard struct {
	b      []byte
	parity bool
}

// encodeStream runs a fresh encoder over datagrams of the given lengths. With lines != nil
// it also records the enc transcript.
func encodeStream(d, p, off int, next uint32, lens []int, lines *[]string) []shard {
	enc := newFECEncoder(d, p, off)
	enc.next = next
	var wire []shard
	for k, n := range lens {
		b := packet(n, k)
		if lines != nil {
			*lines = append(*lines, "in "+hx(b))
		}
		ps := fecEncode(enc, b)
		wire = append(wire, shard{append([]byte(nil), b...), false})
		if lines != nil {
			*lines = append(*lines, "out "+hx(b))
		}
		for _, q := range ps {
			wire = append(wire, shard{append([]byte(nil), q...), true})
			if lines != nil {
				*lines = append(*lines, "parity "+hx(q))
			}
		}
	}
	return wire
}

func encScenario(name string, d, p, off int, next uint32, lens []int) []string {
	lines := []string{fmt.Sprintf("enc %s data=%d parity=%d offset=%d next=%d", name, d, p, off, next)}
	encodeStream(d, p, off, next, lens, &lines)
	return lines
}

// feed is one scripted decoder input.
type feed struct {
	now uint32
	b   []byte
}

// decScenario runs a fresh (d, p) decoder over the feeds on an exact clock; ok is false if
// a call overran the clock budget.
func decScenario(name string, d, p int, feeds []feed) (lines []string, ok bool) {
	lines = []string{fmt.Sprintf("dec %s data=%d parity=%d", name, d, p)}
	dec := newFECDecoder(d, p)
	short0 := atomic.LoadUint64(&kcp.DefaultSnmp.FECShortShards)
	for _, f := range feeds {
		lines = append(lines, fmt.Sprintf("shard now=%d %s", f.now, hx(f.b)))
		in := append([]byte(nil), f.b...)
		start := time.Now()
		refTime = start.Add(-time.Duration(f.now)*time.Millisecond - budget/2)
		rec := fecDecode(dec, in)
		if time.Since(start) >= budget/2 {
			return nil, false
		}
		for _, r := range rec {
			lines = append(lines, "rec "+hx(r))
		}
		short := atomic.LoadUint64(&kcp.DefaultSnmp.FECShortShards) - short0
		lines = append(lines, stateLine(dec, short))
	}
	return lines, true
}

func stateLine(dec *fecDecoder, short uint64) string {
	var rx []string
	for _, e := range dec.rx {
		kind := "p"
		if e.pkt[4] == 0xf1 {
			kind = "d"
		}
		rx = append(rx, fmt.Sprintf("%d%s", uint32(e.pkt[0])|uint32(e.pkt[1])<<8|uint32(e.pkt[2])<<16|uint32(e.pkt[3])<<24, kind))
	}
	s := strings.Join(rx, ",")
	if s == "" {
		s = "-"
	}
	return fmt.Sprintf("state data=%d parity=%d short=%d rx=%s", dec.dataShards, dec.parityShards, short, s)
}

func runDec(name string, d, p int, feeds []feed) []string {
	for i := 0; i < tries; i++ {
		if lines, ok := decScenario(name, d, p, feeds); ok {
			return lines
		}
	}
	fmt.Fprintf(os.Stderr, "fecvectors: scenario %s overran its clock budget %d times\n", name, tries)
	os.Exit(1)
	return nil
}

// lengths returns n datagram lengths of at least min bytes, varied, with one 1500.
func lengths(n, min, seed int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = min + 1 + (k*389+seed*71)%300
		if k%7 == 3 {
			out[k] = min + 1 + k%5
		}
	}
	if n > 4 {
		out[4] = 1500
	}
	return out
}

// strip drops the crypto header space, as the receiver sees the shard.
func strip(w []shard, off int) [][]byte {
	out := make([][]byte, len(w))
	for i, s := range w {
		out[i] = s.b[off:]
	}
	return out
}

// deliver feeds every shard except the lost indices, dt ms apart.
func deliver(sh [][]byte, lost map[int]bool, dt uint32) []feed {
	var fs []feed
	var now uint32
	for i, b := range sh {
		if !lost[i] {
			fs = append(fs, feed{now, b})
			now += dt
		}
	}
	return fs
}

func set(idx ...int) map[int]bool {
	m := map[int]bool{}
	for _, i := range idx {
		m[i] = true
	}
	return m
}

// rng is a fixed-seed xorshift64*.
type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 2685821657736338717
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// chaos feeds n random FEC datagrams with seqids base+[0, span), random type, length and
// content, and a clock that advances by random steps.
func chaos(seed uint64, n int, base uint32, span int, maxStep int) []feed {
	r := rng(seed)
	var fs []feed
	var now uint32
	for i := 0; i < n; i++ {
		seq := base + uint32(r.intn(span))
		b := make([]byte, 8+r.intn(40))
		for j := range b {
			b[j] = byte(r.next())
		}
		b[0], b[1], b[2], b[3] = byte(seq), byte(seq>>8), byte(seq>>16), byte(seq>>24)
		b[4], b[5] = 0xf1, 0
		if r.intn(3) == 0 {
			b[4] = 0xf2
		}
		fs = append(fs, feed{now, b})
		now += uint32(r.intn(maxStep))
	}
	return fs
}

// lone returns a data shard of group g (seqid g*n) that never completes.
func lone(seq uint32, k int) []byte {
	b := packet(12, k)
	b[0], b[1], b[2], b[3] = byte(seq), byte(seq>>8), byte(seq>>16), byte(seq>>24)
	b[4], b[5], b[6], b[7] = 0xf1, 0, 6, 0
	return b
}

func encScenarios() [][]string {
	return [][]string{
		encScenario("d10p3_crypt", 10, 3, 20, 0, lengths(25, 28, 1)),
		encScenario("d1p1_plain", 1, 1, 0, 0, lengths(6, 8, 2)),
		encScenario("d3p2_crypt", 3, 2, 20, 0, lengths(10, 28, 3)),
		encScenario("d20p5_crypt", 20, 5, 20, 0, lengths(45, 28, 4)),
		encScenario("d10p3_wrap", 10, 3, 0, paws(10, 3)-26, lengths(40, 8, 5)),
		encScenario("d3p2_wrap", 3, 2, 20, paws(3, 2)-10, lengths(12, 28, 6)),
		encScenario("d1p1_wrap", 1, 1, 0, paws(1, 1)-4, lengths(5, 8, 7)),
		encScenario("d2p1_unaligned_wrap", 2, 1, 0, 0xfffffffb, lengths(8, 8, 8)),
	}
}

func decScenarios() [][]string {
	w103 := strip(encodeStream(10, 3, 20, 0, lengths(40, 28, 11), nil), 20)
	w11 := strip(encodeStream(1, 1, 0, 0, lengths(6, 8, 12), nil), 0)
	w32 := strip(encodeStream(3, 2, 20, 0, lengths(12, 28, 13), nil), 20)
	wrap := strip(encodeStream(10, 3, 0, paws(10, 3)-26, lengths(40, 8, 14), nil), 0)
	w32b := strip(encodeStream(3, 2, 0, 0, lengths(60, 8, 15), nil), 0)

	// d3p2: parity first, duplicates, shards arriving after their group resolved.
	reorder := []int{3, 0, 0, 4, 2, 1, 1, 5, 9, 8, 6, 7, 3, 14, 13, 12, 10, 15, 16, 19, 18}
	var fsReorder []feed
	for i, k := range reorder {
		fsReorder = append(fsReorder, feed{uint32(i * 3), w32[k]})
	}

	// expiry: lone shards, then times past fecExpire, and a clock wrapping through 2^32.
	fsExpire := []feed{
		{0, lone(0, 0)}, {100, lone(5, 1)}, {60000, lone(10, 2)}, {60001, lone(15, 3)},
		{60100, lone(20, 4)}, {60101, lone(25, 5)}, {200000, lone(30, 6)},
		{0xfffffff0, lone(35, 7)}, {0xfffffffa, lone(40, 8)}, {60000 - 16, lone(45, 9)},
		{60000 - 15, lone(50, 10)}, {60000 - 5, lone(55, 11)},
	}
	var fsLimit []feed
	for g := 0; g < 30; g++ {
		b := lone(uint32(g*5+g%2*3), g) // data at position 0, parity-typed at position 3
		if g%2 == 1 {
			b[4] = 0xf2
		}
		fsLimit = append(fsLimit, feed{uint32(g), b})
	}

	return [][]string{
		runDec("d10p3_losses", 10, 3, deliver(w103, set(2, 5, 7, 13, 24, 27, 28, 29, 36, 40), 10)),
		runDec("d1p1_losses", 1, 1, deliver(w11, set(2, 6, 9), 5)),
		runDec("d3p2_reorder_dup", 3, 2, fsReorder),
		runDec("d10p3_wrap", 10, 3, deliver(wrap, set(0, 14, 28, 29, 45), 1)),
		runDec("autotune_1_1_to_10_3", 1, 1, deliver(w103, set(1, 30, 41, 44, 50), 2)),
		runDec("autotune_10_3_to_3_2", 10, 3, deliver(w32b, set(23, 31, 40, 62, 77), 2)),
		runDec("expiry", 3, 2, fsExpire),
		runDec("rxlimit", 3, 2, fsLimit),
		runDec("chaos_d3p2", 3, 2, chaos(0x9e3779b97f4a7c15, 400, 0, 40, 2000)),
		runDec("chaos_d10p3_wrap", 10, 3, chaos(0x2545f4914f6cdd1d, 400, 0xffffffe0, 64, 500)),
		runDec("chaos_d1p1_autotune", 1, 1, chaos(0x1234567887654321, 400, 0, 300, 50)),
	}
}

func main() {
	debug.SetGCPercent(-1)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprint(w, header)
	for _, sc := range append(encScenarios(), decScenarios()...) {
		fmt.Fprintln(w)
		for _, l := range sc {
			fmt.Fprintln(w, l)
		}
	}
}

const header = `# kcp-go 5.6.1 FEC vectors for tether (fec.go + autotune.go, klauspost/reedsolomon 1.9.13);
# generated by tests/go/fecvectors, do not edit. Spec: kcp-go-session.md §4.
# One record per line; '#' starts a comment, blank lines separate scenarios. Hex '-' = empty.
#   enc <name> data=<D> parity=<P> offset=<O> next=<seqid>
#         a fresh newFECEncoder(D, P, O) whose next seqid is set to <seqid>
#   in <hex>      a datagram handed to encode(); datagram k of the scenario has
#                 byte i = (i*13 + k) mod 256, header space included
#   out <hex>     that datagram after encode() stamped seqid, type and size at offset O
#   parity <hex>  a parity datagram that call returned, in order
#   dec <name> data=<D> parity=<P>
#         a fresh newFECDecoder(D, P)
#   shard now=<ms> <hex>  decode() of this datagram (from the FEC header on) while
#                 currentMs() reads <ms>
#   rec <hex>     a datagram that call recovered, in order (size field first, zero-padded)
#   state data=<D> parity=<P> short=<n> rx=<seqid><d|p>,...|-
#                 the decoder after that call: its shard counts (autotune), FECShortShards
#                 since the scenario began, and the rx queue in order (d = type 0xf1)
`
