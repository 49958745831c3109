// Command kcppeer is a real kcp-go 5.6.1 peer for tether's live interop tests and
// side-by-side benchmarks (tests/src/peer.rs spawns it). It speaks plain KCP sessions
// (no smux, no snappy) configured exactly as kcptun 20210922 configures its sessions:
// kcptun's crypt names, PBKDF2 key, FEC shards, mode presets and knobs (kcptun.md §2–§5,
// kcp-go-session.md §8).
//
// Build OFFLINE in GOPATH mode against Debian's golang-github-xtaci-kcp-dev:
//
//	cd tests/go/kcppeer && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o ../../../target/go-bin/kcppeer .
//
// Raw KCP (`-raw`): a nil BlockCrypt and no FEC, so kcp-go sends bare 24-byte KCP segments
// in UDP datagrams, the wire of skywind3000's C ikcp (tether's `--proto kcp-raw`).
//
// Server: `kcppeer -listen 127.0.0.1:0 [-role echo|sink|source] [-bytes N] [options]`.
// After binding it prints exactly one line `listening <ip:port>` to stdout, then serves
// every accepted session until -timeout (exit 0) or, with -parentwatch, until stdin closes.
//
//	echo   (default) every byte read on a session is written back to it.
//	sink   reads the 1-byte hello and echoes it (unless -hello=false), then reads -bytes N
//	       bytes, writes back the 32-byte SHA-256 of those N bytes, and keeps the session.
//	source reads the 1-byte hello and echoes it (unless -hello=false), then writes -bytes N
//	       bytes of pattern(-seed), and keeps the session.
//
// Client: `kcppeer -connect HOST:PORT -role bulk|rtt|idle|source|sink [options]`. Every role
// prints exactly one JSON line to stdout at the end (formats below) and exits 0, or prints a
// message on stderr and exits non-zero (1: failure/mismatch, 2: bad flags, 3: -timeout).
//
//	bulk   -bytes N: full duplex against an echo server; writes N bytes of pattern(-seed)
//	       while reading N bytes back.
//	       {"sent":N,"received":N,"sha256_sent":"<hex>","sha256_received":"<hex>","seconds":F}
//	       (exit 1 when the digests differ).
//	rtt    -count K -size S: K messages of S bytes, one at a time, each waiting for its echo.
//	       {"count":K,"size":S,"min_us":U,"p50_us":U,"p90_us":U,"p99_us":U,"max_us":U,"mean_us":U,"seconds":F}
//	idle   -sessions N -hold D: opens N sessions (one UDP socket each), exchanges the hello
//	       on each, holds them idle for D, closes them.
//	       {"sessions":N,"established":N,"setup_seconds":F,"hold_seconds":F}
//	       (stderr gets `holding N sessions` when the hold starts, for external samplers).
//	source -bytes N: against a sink server: writes N bytes of pattern(-seed) and waits for the
//	       server's 32-byte digest.
//	       {"sent":N,"sha256_sent":"<hex>","sha256_reply":"<hex>","seconds":F} (exit 1 on mismatch).
//	sink   -bytes N: against a source server: reads until N bytes (N = 0: no limit), or until
//	       no byte arrives for -idle D (if D > 0).
//	       {"received":n,"sha256_received":"<hex>","sha256_expected":"<hex of the first n bytes of pattern(seed)>","seconds":F}
//	       (exit 1 when fewer than N bytes came).
//
// "seconds" counts from the end of the hello exchange to the end of the role's work.
//
// Resource fields: every client JSON line above additionally ends with
// "cpu_seconds":F (user+system CPU of the whole process so far, getrusage RUSAGE_SELF) and
// "max_rss_kb":K (peak resident set size, ru_maxrss, KiB); idle also has
// "hold_cpu_seconds":F (the CPU used during the hold only). tether bench reads them.
//
// The hello: every client role first writes the single byte 'h' and waits until it comes
// back (echo servers echo it like everything else; sink/source servers echo it explicitly).
// This avoids a start-up stall of kcp-go 5.6.1 (kcp-go-session.md, appendix): a listener
// creates the session with the default 32-segment windows and SetWindowSize can only be
// applied after Accept returns; if the client's first burst fills that small receive window,
// the server advertises wnd = 0, no window update follows when it reopens, and the client
// waits ~7 s for its window probe. Once the hello has come back, the server has accepted and
// configured the session, so the bulk phase starts against the full window.
//
// pattern(seed): the byte stream of xorshift64 (x ^= x<<13; x ^= x>>7; x ^= x<<17), state
// starting at seed (0 is replaced by 0x9E3779B97F4A7C15), each step's new state emitted as 8
// little-endian bytes. tests/src/peer.rs has the same generator (`pattern`).
package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kcp "github.com/xtaci/kcp-go"
	"golang.org/x/crypto/pbkdf2"
)

const (
	exitFail    = 1
	exitUsage   = 2
	exitTimeout = 3
	helloByte   = 'h'
	chunk       = 64 * 1024
)

type config struct {
	listen, connect    string
	crypt, key         string
	datashard, parity  int
	mode               string
	nodelay, interval  int
	resend, nc         int
	mtu                int
	sndwnd, rcvwnd     int
	acknodelay         bool
	sockbuf            int
	streammode         bool
	role               string
	bytes              int64
	seed               uint64
	count, size        int
	sessions           int
	hold, idle         time.Duration
	timeout            time.Duration
	hello, parentwatch bool
	raw                bool
	quiet              bool
}

var cfg config

// progress, reported when -timeout fires.
var (
	progSent, progRecv int64
	progNote           atomic.Value // string
)

func fatalf(code int, format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcppeer: "+format+"\n", a...)
	os.Exit(code)
}

func logf(format string, a ...interface{}) {
	if !cfg.quiet {
		fmt.Fprintf(os.Stderr, "kcppeer: "+format+"\n", a...)
	}
}

func main() {
	flag.StringVar(&cfg.listen, "listen", "", "server: UDP address to listen on (127.0.0.1:0 picks a port)")
	flag.StringVar(&cfg.connect, "connect", "", "client: UDP address of the server")
	flag.StringVar(&cfg.crypt, "crypt", "aes", "kcptun crypt name: aes, aes-128, aes-192, salsa20, blowfish, twofish, cast5, 3des, tea, xtea, sm4, xor, none (unknown = aes)")
	flag.BoolVar(&cfg.raw, "raw", false, "raw KCP: nil BlockCrypt and no FEC (bare segments in UDP, as skywind3000's ikcp); -crypt, -key, -datashard, -parityshard are ignored")
	flag.StringVar(&cfg.key, "key", "it's a secrect", "pre-shared secret (PBKDF2-SHA1, salt kcp-go, 4096 iterations, 32 bytes)")
	flag.IntVar(&cfg.datashard, "datashard", 10, "FEC data shards")
	flag.IntVar(&cfg.parity, "parityshard", 3, "FEC parity shards")
	flag.StringVar(&cfg.mode, "mode", "fast", "normal, fast, fast2, fast3, or manual (uses -nodelay -interval -resend -nc)")
	flag.IntVar(&cfg.nodelay, "nodelay", 0, "manual mode: nodelay")
	flag.IntVar(&cfg.interval, "interval", 50, "manual mode: interval (ms)")
	flag.IntVar(&cfg.resend, "resend", 0, "manual mode: fast resend")
	flag.IntVar(&cfg.nc, "nc", 0, "manual mode: no congestion control")
	flag.IntVar(&cfg.mtu, "mtu", 1350, "KCP mtu")
	flag.IntVar(&cfg.sndwnd, "sndwnd", 1024, "send window (segments)")
	flag.IntVar(&cfg.rcvwnd, "rcvwnd", 1024, "receive window (segments)")
	flag.BoolVar(&cfg.acknodelay, "acknodelay", false, "flush ACKs immediately")
	flag.IntVar(&cfg.sockbuf, "sockbuf", 4194304, "SO_RCVBUF/SO_SNDBUF bytes")
	flag.BoolVar(&cfg.streammode, "streammode", true, "KCP stream mode (kcptun uses it)")
	flag.StringVar(&cfg.role, "role", "", "server: echo (default), sink, source; client: bulk, rtt, idle, source, sink")
	flag.Int64Var(&cfg.bytes, "bytes", 4<<20, "bytes for bulk/sink/source")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the xorshift64 payload pattern")
	flag.IntVar(&cfg.count, "count", 1000, "rtt: number of messages")
	flag.IntVar(&cfg.size, "size", 64, "rtt: message size")
	flag.IntVar(&cfg.sessions, "sessions", 100, "idle: number of sessions")
	flag.DurationVar(&cfg.hold, "hold", 10*time.Second, "idle: how long to hold the sessions")
	flag.DurationVar(&cfg.idle, "idle", 0, "client sink: stop after this long without data (0 = never)")
	flag.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "overall deadline (client: exit 3; server: exit 0); 0 = none")
	flag.BoolVar(&cfg.hello, "hello", true, "1-byte hello exchange before the work (see the doc comment)")
	flag.BoolVar(&cfg.parentwatch, "parentwatch", false, "exit when stdin reaches EOF (the parent died)")
	flag.BoolVar(&cfg.quiet, "quiet", false, "server: do not log sessions")
	flag.Parse()
	if flag.NArg() != 0 {
		fatalf(exitUsage, "unexpected arguments %q", flag.Args())
	}
	if (cfg.listen == "") == (cfg.connect == "") {
		fatalf(exitUsage, "exactly one of -listen and -connect is required")
	}
	if cfg.parentwatch {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	var block kcp.BlockCrypt // raw: nil, so kcp-go sends bare KCP segments
	if cfg.raw {
		cfg.datashard, cfg.parity = 0, 0
	} else {
		block = newBlock(cfg.crypt, cfg.key)
	}
	if cfg.listen != "" {
		server(block)
	} else {
		client(block)
	}
}

// newBlock maps kcptun's crypt names to kcp-go ciphers (kcptun.md §3).
func newBlock(name, key string) kcp.BlockCrypt {
	pass := pbkdf2.Key([]byte(key), []byte("kcp-go"), 4096, 32, sha1.New)
	var b kcp.BlockCrypt
	var err error
	switch name {
	case "sm4":
		b, err = kcp.NewSM4BlockCrypt(pass[:16])
	case "tea":
		b, err = kcp.NewTEABlockCrypt(pass[:16])
	case "xor":
		b, err = kcp.NewSimpleXORBlockCrypt(pass)
	case "none":
		b, err = kcp.NewNoneBlockCrypt(pass)
	case "aes-128":
		b, err = kcp.NewAESBlockCrypt(pass[:16])
	case "aes-192":
		b, err = kcp.NewAESBlockCrypt(pass[:24])
	case "blowfish":
		b, err = kcp.NewBlowfishBlockCrypt(pass)
	case "twofish":
		b, err = kcp.NewTwofishBlockCrypt(pass)
	case "cast5":
		b, err = kcp.NewCast5BlockCrypt(pass[:16])
	case "3des":
		b, err = kcp.NewTripleDESBlockCrypt(pass[:24])
	case "xtea":
		b, err = kcp.NewXTEABlockCrypt(pass[:16])
	case "salsa20":
		b, err = kcp.NewSalsa20BlockCrypt(pass)
	default: // "aes" and anything unrecognised, like kcptun
		b, err = kcp.NewAESBlockCrypt(pass)
	}
	if err != nil {
		fatalf(exitUsage, "crypt %q: %v", name, err)
	}
	return b
}

// noDelay returns kcptun's mode preset (kcptun.md §4).
func noDelay() (int, int, int, int) {
	switch cfg.mode {
	case "normal":
		return 0, 40, 2, 1
	case "fast":
		return 0, 30, 2, 1
	case "fast2":
		return 1, 20, 2, 1
	case "fast3":
		return 1, 10, 2, 1
	case "manual":
		return cfg.nodelay, cfg.interval, cfg.resend, cfg.nc
	}
	fatalf(exitUsage, "unknown -mode %q (normal, fast, fast2, fast3, manual)", cfg.mode)
	return 0, 0, 0, 0
}

// configure applies the session knobs the way kcptun does (both sides).
func configure(s *kcp.UDPSession) {
	nd, iv, rs, nc := noDelay()
	s.SetStreamMode(cfg.streammode)
	s.SetWriteDelay(false)
	s.SetNoDelay(nd, iv, rs, nc)
	if !s.SetMtu(cfg.mtu) {
		fatalf(exitUsage, "-mtu %d rejected by kcp-go", cfg.mtu)
	}
	s.SetWindowSize(cfg.sndwnd, cfg.rcvwnd)
	s.SetACKNoDelay(cfg.acknodelay)
}

// ---------------------------------------------------------------- payload pattern

// pattern is the xorshift64 byte stream described in the doc comment.
type pattern struct {
	x   uint64
	buf [8]byte
	n   int // unread bytes left in buf (taken from its end)
}

func newPattern(seed uint64) *pattern {
	if seed == 0 {
		seed = 0x9E3779B97F4A7C15
	}
	return &pattern{x: seed}
}

func (p *pattern) fill(b []byte) {
	for i := range b {
		if p.n == 0 {
			p.x ^= p.x << 13
			p.x ^= p.x >> 7
			p.x ^= p.x << 17
			binary.LittleEndian.PutUint64(p.buf[:], p.x)
			p.n = 8
		}
		b[i] = p.buf[8-p.n]
		p.n--
	}
}

func patternDigest(seed uint64, n int64) string {
	p, h, buf := newPattern(seed), sha256.New(), make([]byte, chunk)
	for n > 0 {
		k := int64(len(buf))
		if n < k {
			k = n
		}
		p.fill(buf[:k])
		h.Write(buf[:k])
		n -= k
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ---------------------------------------------------------------- server

func server(block kcp.BlockCrypt) {
	role := cfg.role
	if role == "" {
		role = "echo"
	}
	if role != "echo" && role != "sink" && role != "source" {
		fatalf(exitUsage, "unknown server -role %q (echo, sink, source)", role)
	}
	noDelay() // validate -mode before binding
	l, err := kcp.ListenWithOptions(cfg.listen, block, cfg.datashard, cfg.parity)
	if err != nil {
		fatalf(exitFail, "listen %s: %v", cfg.listen, err)
	}
	if err := l.SetReadBuffer(cfg.sockbuf); err != nil {
		logf("SetReadBuffer: %v", err)
	}
	if err := l.SetWriteBuffer(cfg.sockbuf); err != nil {
		logf("SetWriteBuffer: %v", err)
	}
	if cfg.timeout > 0 {
		time.AfterFunc(cfg.timeout, func() {
			logf("-timeout %v reached, exiting", cfg.timeout)
			os.Exit(0)
		})
	}
	fmt.Fprintf(os.Stdout, "listening %s\n", l.Addr())
	_ = os.Stdout.Sync()
	for {
		s, err := l.AcceptKCP()
		if err != nil {
			fatalf(exitFail, "accept: %v", err)
		}
		configure(s)
		logf("session %08x from %s", s.GetConv(), s.RemoteAddr())
		switch role {
		case "echo":
			go serveEcho(s)
		case "sink":
			go serveSink(s)
		case "source":
			go serveSource(s)
		}
	}
}

func serveEcho(s *kcp.UDPSession) {
	buf := make([]byte, chunk)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				logf("session %08x: write: %v", s.GetConv(), werr)
				return
			}
		}
		if err != nil {
			logf("session %08x: read: %v", s.GetConv(), err)
			return
		}
	}
}

// serverHello reads the client's 1-byte hello and echoes it.
func serverHello(s *kcp.UDPSession) bool {
	if !cfg.hello {
		return true
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		logf("session %08x: hello: %v", s.GetConv(), err)
		return false
	}
	if _, err := s.Write(b[:]); err != nil {
		logf("session %08x: hello: %v", s.GetConv(), err)
		return false
	}
	return true
}

func serveSink(s *kcp.UDPSession) {
	if !serverHello(s) {
		return
	}
	h := sha256.New()
	if _, err := io.CopyN(h, s, cfg.bytes); err != nil {
		logf("session %08x: sink: %v", s.GetConv(), err)
		return
	}
	if _, err := s.Write(h.Sum(nil)); err != nil {
		logf("session %08x: digest: %v", s.GetConv(), err)
		return
	}
	logf("session %08x: sank %d bytes", s.GetConv(), cfg.bytes)
	holdOpen(s)
}

func serveSource(s *kcp.UDPSession) {
	if !serverHello(s) {
		return
	}
	if _, err := writePattern(s, cfg.seed, cfg.bytes, nil, nil); err != nil {
		logf("session %08x: source: %v", s.GetConv(), err)
		return
	}
	logf("session %08x: sourced %d bytes", s.GetConv(), cfg.bytes)
	holdOpen(s)
}

// holdOpen keeps a session alive (and its ACKs flowing) by draining it until it fails.
func holdOpen(s *kcp.UDPSession) {
	_, _ = io.Copy(io.Discard, s)
}

// writePattern writes n bytes of pattern(seed) to w, hashing them into h if non-nil and
// counting them in *progress if non-nil.
func writePattern(w io.Writer, seed uint64, n int64, h hash.Hash, progress *int64) (int64, error) {
	p, buf := newPattern(seed), make([]byte, chunk)
	var done int64
	for done < n {
		k := n - done
		if k > int64(len(buf)) {
			k = int64(len(buf))
		}
		p.fill(buf[:k])
		if h != nil {
			h.Write(buf[:k])
		}
		m, err := w.Write(buf[:k])
		done += int64(m)
		if progress != nil {
			atomic.AddInt64(progress, int64(m))
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// ---------------------------------------------------------------- client

func client(block kcp.BlockCrypt) {
	noDelay() // validate -mode
	switch cfg.role {
	case "bulk", "rtt", "idle", "source", "sink":
	default:
		fatalf(exitUsage, "client needs -role bulk, rtt, idle, source or sink (got %q)", cfg.role)
	}
	if cfg.timeout > 0 {
		time.AfterFunc(cfg.timeout, func() {
			note, _ := progNote.Load().(string)
			fatalf(exitTimeout, "-timeout %v reached in role %s: sent %d, received %d bytes %s",
				cfg.timeout, cfg.role, atomic.LoadInt64(&progSent), atomic.LoadInt64(&progRecv), note)
		})
	}
	switch cfg.role {
	case "bulk":
		runBulk(block)
	case "rtt":
		runRTT(block)
	case "idle":
		runIdle(block)
	case "source":
		runSource(block)
	case "sink":
		runSink(block)
	}
}

func dial(block kcp.BlockCrypt) *kcp.UDPSession {
	s, err := kcp.DialWithOptions(cfg.connect, block, cfg.datashard, cfg.parity)
	if err != nil {
		fatalf(exitFail, "dial %s: %v", cfg.connect, err)
	}
	configure(s)
	if err := s.SetReadBuffer(cfg.sockbuf); err != nil {
		logf("SetReadBuffer: %v", err)
	}
	if err := s.SetWriteBuffer(cfg.sockbuf); err != nil {
		logf("SetWriteBuffer: %v", err)
	}
	return s
}

// clientHello writes the 1-byte hello and waits for its echo (see the doc comment for why).
func clientHello(s *kcp.UDPSession) {
	if !cfg.hello {
		return
	}
	progNote.Store("(waiting for the hello echo)")
	if _, err := s.Write([]byte{helloByte}); err != nil {
		fatalf(exitFail, "hello: write: %v", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		fatalf(exitFail, "hello: read: %v", err)
	}
	if b[0] != helloByte {
		fatalf(exitFail, "hello: got byte %#x back, want %#x", b[0], helloByte)
	}
	progNote.Store("")
}

func printJSON(fields ...interface{}) {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := 0; i < len(fields); i += 2 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%q:", fields[i])
		switch v := fields[i+1].(type) {
		case string:
			fmt.Fprintf(&sb, "%q", v)
		case float64:
			fmt.Fprintf(&sb, "%.6f", v)
		default:
			fmt.Fprintf(&sb, "%v", v)
		}
	}
	sb.WriteString("}\n")
	_, _ = os.Stdout.WriteString(sb.String())
	_ = os.Stdout.Sync()
}

// cpuSeconds is the process's user+system CPU time so far (getrusage RUSAGE_SELF).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// maxRSSKB is the process's peak resident set size in KiB (ru_maxrss; Linux reports KiB).
func maxRSSKB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}

func runBulk(block kcp.BlockCrypt) {
	s := dial(block)
	clientHello(s)
	n := cfg.bytes
	start := time.Now()
	hs := sha256.New()
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, werr = writePattern(s, cfg.seed, n, hs, &progSent)
	}()
	hr := sha256.New()
	buf := make([]byte, chunk)
	var got int64
	for got < n {
		k := n - got
		if k > int64(len(buf)) {
			k = int64(len(buf))
		}
		m, err := s.Read(buf[:k])
		hr.Write(buf[:m])
		got += int64(m)
		atomic.AddInt64(&progRecv, int64(m))
		if err != nil {
			fatalf(exitFail, "bulk: read after %d of %d bytes: %v", got, n, err)
		}
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if werr != nil {
		fatalf(exitFail, "bulk: write: %v", werr)
	}
	sent, recv := hex.EncodeToString(hs.Sum(nil)), hex.EncodeToString(hr.Sum(nil))
	printJSON("sent", n, "received", got, "sha256_sent", sent, "sha256_received", recv, "seconds", secs,
		"cpu_seconds", cpuSeconds(), "max_rss_kb", maxRSSKB())
	s.Close()
	if sent != recv {
		fatalf(exitFail, "bulk: the echoed bytes differ from the sent ones")
	}
}

func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	// nearest rank
	i := int(p*float64(len(sorted))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func runRTT(block kcp.BlockCrypt) {
	if cfg.count <= 0 || cfg.size <= 0 {
		fatalf(exitUsage, "rtt: -count and -size must be positive")
	}
	s := dial(block)
	clientHello(s)
	p := newPattern(cfg.seed)
	msg, back := make([]byte, cfg.size), make([]byte, cfg.size)
	rtts := make([]int64, 0, cfg.count)
	start := time.Now()
	var sum int64
	for i := 0; i < cfg.count; i++ {
		p.fill(msg)
		t0 := time.Now()
		if _, err := s.Write(msg); err != nil {
			fatalf(exitFail, "rtt: write %d: %v", i, err)
		}
		if _, err := io.ReadFull(s, back); err != nil {
			fatalf(exitFail, "rtt: read %d: %v", i, err)
		}
		us := time.Since(t0).Microseconds()
		if string(back) != string(msg) {
			fatalf(exitFail, "rtt: echo %d differs from the message", i)
		}
		rtts = append(rtts, us)
		sum += us
		atomic.AddInt64(&progSent, int64(cfg.size))
		atomic.AddInt64(&progRecv, int64(cfg.size))
	}
	secs := time.Since(start).Seconds()
	sort.Slice(rtts, func(a, b int) bool { return rtts[a] < rtts[b] })
	printJSON("count", cfg.count, "size", cfg.size,
		"min_us", rtts[0], "p50_us", percentile(rtts, 0.50), "p90_us", percentile(rtts, 0.90),
		"p99_us", percentile(rtts, 0.99), "max_us", rtts[len(rtts)-1],
		"mean_us", sum/int64(len(rtts)), "seconds", secs,
		"cpu_seconds", cpuSeconds(), "max_rss_kb", maxRSSKB())
	s.Close()
}

func runIdle(block kcp.BlockCrypt) {
	if cfg.sessions <= 0 {
		fatalf(exitUsage, "idle: -sessions must be positive")
	}
	start := time.Now()
	sessions := make([]*kcp.UDPSession, cfg.sessions)
	for i := range sessions {
		sessions[i] = dial(block)
	}
	// Exchange the hello on all of them concurrently (one at a time would cost N RTTs).
	var established int64
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func(s *kcp.UDPSession) {
			defer wg.Done()
			if _, err := s.Write([]byte{helloByte}); err != nil {
				fatalf(exitFail, "idle: hello: write: %v", err)
			}
			var b [1]byte
			if _, err := io.ReadFull(s, b[:]); err != nil || b[0] != helloByte {
				fatalf(exitFail, "idle: hello: read: %v (byte %#x)", err, b[0])
			}
			atomic.AddInt64(&established, 1)
			atomic.AddInt64(&progRecv, 1)
		}(s)
	}
	wg.Wait()
	setup := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "holding %d sessions\n", len(sessions))
	holdStart, holdCPU := time.Now(), cpuSeconds()
	time.Sleep(cfg.hold)
	hold, holdCPU := time.Since(holdStart).Seconds(), cpuSeconds()-holdCPU
	for _, s := range sessions {
		s.Close()
	}
	printJSON("sessions", cfg.sessions, "established", established,
		"setup_seconds", setup, "hold_seconds", hold,
		"cpu_seconds", cpuSeconds(), "max_rss_kb", maxRSSKB(), "hold_cpu_seconds", holdCPU)
}

func runSource(block kcp.BlockCrypt) {
	s := dial(block)
	clientHello(s)
	start := time.Now()
	h := sha256.New()
	if _, err := writePattern(s, cfg.seed, cfg.bytes, h, &progSent); err != nil {
		fatalf(exitFail, "source: write: %v", err)
	}
	progNote.Store("(waiting for the 32-byte digest)")
	reply := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, reply); err != nil {
		fatalf(exitFail, "source: digest: %v", err)
	}
	secs := time.Since(start).Seconds()
	sent, got := hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(reply)
	printJSON("sent", cfg.bytes, "sha256_sent", sent, "sha256_reply", got, "seconds", secs,
		"cpu_seconds", cpuSeconds(), "max_rss_kb", maxRSSKB())
	s.Close()
	if sent != got {
		fatalf(exitFail, "source: the server's digest differs from the sent bytes'")
	}
}

func runSink(block kcp.BlockCrypt) {
	s := dial(block)
	clientHello(s)
	start := time.Now()
	h := sha256.New()
	buf := make([]byte, chunk)
	var got int64
	for cfg.bytes == 0 || got < cfg.bytes {
		k := int64(len(buf))
		if cfg.bytes > 0 && cfg.bytes-got < k {
			k = cfg.bytes - got
		}
		if cfg.idle > 0 {
			_ = s.SetReadDeadline(time.Now().Add(cfg.idle))
		}
		m, err := s.Read(buf[:k])
		h.Write(buf[:m])
		got += int64(m)
		atomic.AddInt64(&progRecv, int64(m))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			if strings.Contains(err.Error(), "timeout") || err == io.EOF {
				break
			}
			fatalf(exitFail, "sink: read after %d bytes: %v", got, err)
		}
	}
	secs := time.Since(start).Seconds()
	printJSON("received", got, "sha256_received", hex.EncodeToString(h.Sum(nil)),
		"sha256_expected", patternDigest(cfg.seed, got), "seconds", secs,
		"cpu_seconds", cpuSeconds(), "max_rss_kb", maxRSSKB())
	s.Close()
	if cfg.bytes > 0 && got < cfg.bytes {
		fatalf(exitFail, "sink: received %d of %d bytes", got, cfg.bytes)
	}
}
