// Command smuxpeer is a real xtaci/smux 1.5.16 peer (Debian's golang-github-xtaci-smux-dev)
// for tether's live smux interop tests and `tether bench-smux`. Its command line is the one of
// `tether smux` (issue 16, item 5), so a test or the bench can swap one for the other:
//
//	smuxpeer echo-server -l ADDR [--dialect v1|v2] [--transport tcp|kcp] [KCP flags]
//	smuxpeer client -r ADDR [--dialect v1|v2] [--transport tcp|kcp] --streams K --bytes N
//	         [--runs R] [--timeout SECS] [KCP flags]
//
// Build OFFLINE in GOPATH mode against Debian's packages:
//
//	cd tests/go/smuxpeer && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o ../../../target/go-bin/smuxpeer .
//
// echo-server: after binding it prints exactly one line `listening <ip:port>` to stdout
// (`-l 127.0.0.1:0` picks a port), then accepts sessions until killed. Every accepted stream
// is echoed until the peer's FIN (EOF), then closed.
//
// client: per run, one new session; opens K streams at once; on each it writes N bytes while
// reading the echo concurrently and compares it byte for byte with what it sent; it closes a
// stream only after its whole echo has arrived (smux 1.5.16 has no half-close: a FIN ends
// both directions, smux-xtaci.md §9), then closes the session. It prints exactly one line
// per run to stdout:
//
//	K streams x N bytes match=true X MB/s
//
// where X = K*N / seconds / 1e6 (two decimals) and the seconds run from the dial to the last
// stream's verified echo. A mismatch prints the line with match=false and exits 1; an error or
// a run exceeding --timeout (seconds, default 60) prints a message to stderr and exits 1.
// Bad flags exit 2.
//
// The payload: a pool of 1 MiB + 7 random bytes per run; stream i sends the pool cyclically
// from a random offset. The pool's period is not a multiple of any frame size, so a lost,
// duplicated or reordered frame shows as a mismatch, and checking costs one memcmp per byte
// (cheap next to sha256, so the bench measures the multiplexer, not the checker).
//
// Sessions are configured as kcptun 20210922 configures them (kcptun.md §6): smux defaults
// with Version = the dialect, MaxReceiveBuffer 4194304 (--smuxbuf), MaxStreamBuffer 2097152
// (--streambuf), KeepAliveInterval 10 s. Over KCP: kcptun's crypt names and PBKDF2 key
// (pbkdf2-sha1, salt "kcp-go", 4096 iterations, 32 bytes), FEC shards, mode presets,
// SetStreamMode(true), SetWriteDelay(false), window sizes, mtu and 4 MiB socket buffers.
//
// --dialect raw (TCP only) is the floor the multiplexers are measured against: no smux at
// all, one TCP connection per stream, echoed with a plain 64 KiB read/write loop (not
// io.Copy, which would splice socket to socket inside the kernel). Its CPU is what the
// kernel's loopback TCP costs for the same bytes.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go"
	"github.com/xtaci/smux"
	"golang.org/x/crypto/pbkdf2"
)

const (
	exitFail  = 1
	exitUsage = 2
	chunk     = 64 * 1024
	poolSize  = 1<<20 + 7
	sockbuf   = 4 << 20
)

type options struct {
	addr                string
	dialect, transport  string
	streams             int
	bytes               int64
	runs                int
	timeout             float64
	key, crypt, mode    string
	mtu, sndwnd, rcvwnd int
	datashard, parity   int
	quiet               bool
}

func fatalf(code int, format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "smuxpeer: "+format+"\n", a...)
	os.Exit(code)
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: smuxpeer echo-server -l ADDR [flags]\n       smuxpeer client -r ADDR --streams K --bytes N [--runs R] [flags]\n(see the doc comment of tests/go/smuxpeer/main.go)\n")
	os.Exit(exitUsage)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	role := os.Args[1]
	if role == "-h" || role == "--help" {
		fmt.Println("smuxpeer echo-server|client: tether smux's command line over xtaci/smux 1.5.16 (see the doc comment of tests/go/smuxpeer/main.go)")
		return
	}
	if role != "echo-server" && role != "client" {
		usage()
	}
	var o options
	fs := flag.NewFlagSet("smuxpeer "+role, flag.ExitOnError)
	if role == "echo-server" {
		fs.StringVar(&o.addr, "l", "", "address to listen on (127.0.0.1:0 picks a port)")
	} else {
		fs.StringVar(&o.addr, "r", "", "address of the echo server")
		fs.IntVar(&o.streams, "streams", 1, "streams opened at once per run")
		var size string
		fs.StringVar(&size, "bytes", "1048576", "bytes sent (and echoed) per stream; suffixes KiB MiB GiB allowed")
		fs.IntVar(&o.runs, "runs", 1, "runs, each on a new session")
		fs.Float64Var(&o.timeout, "timeout", 60, "seconds one run may take")
		parseAll(fs, &o)
		n, err := parseSize(size)
		if err != nil {
			fatalf(exitUsage, "--bytes %q: %v", size, err)
		}
		o.bytes = n
		client(&o)
		return
	}
	parseAll(fs, &o)
	server(&o)
}

// parseAll registers the flags both roles share and parses the command line.
func parseAll(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.dialect, "dialect", "v1", "smux version: v1 or v2")
	fs.StringVar(&o.transport, "transport", "tcp", "tcp or kcp")
	fs.StringVar(&o.key, "key", "it's a secrect", "kcp: pre-shared secret")
	fs.StringVar(&o.crypt, "crypt", "aes", "kcp: kcptun crypt name (aes, aes-128, aes-192, salsa20, blowfish, twofish, cast5, 3des, tea, xtea, sm4, xor, none)")
	fs.StringVar(&o.mode, "mode", "fast", "kcp: normal, fast, fast2, fast3")
	fs.IntVar(&o.mtu, "mtu", 1350, "kcp: mtu")
	fs.IntVar(&o.sndwnd, "sndwnd", 1024, "kcp: send window (segments)")
	fs.IntVar(&o.rcvwnd, "rcvwnd", 1024, "kcp: receive window (segments)")
	fs.IntVar(&o.datashard, "datashard", 10, "kcp: FEC data shards")
	fs.IntVar(&o.parity, "parityshard", 3, "kcp: FEC parity shards")
	fs.BoolVar(&o.quiet, "quiet", false, "echo-server: do not log sessions")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(exitUsage)
	}
	if fs.NArg() != 0 {
		fatalf(exitUsage, "unexpected arguments %q", fs.Args())
	}
	if o.addr == "" {
		fatalf(exitUsage, "an address is required (-l for echo-server, -r for client)")
	}
	if o.transport != "tcp" && o.transport != "kcp" {
		fatalf(exitUsage, "--transport %q: want tcp or kcp", o.transport)
	}
	if o.dialect == "raw" {
		if o.transport != "tcp" {
			fatalf(exitUsage, "--dialect raw runs over --transport tcp only")
		}
	} else {
		smuxConfig(o) // validates --dialect
	}
	if o.transport == "kcp" {
		noDelay(o.mode)
	}
}

// parseSize reads a byte count with an optional KiB/MiB/GiB (or K/M/G, binary) suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a byte count")
	}
	return n * mult, nil
}

// smuxConfig is kcptun 20210922's smux configuration (kcptun.md §6.1 step 3).
func smuxConfig(o *options) *smux.Config {
	c := smux.DefaultConfig()
	switch o.dialect {
	case "v1":
		c.Version = 1
	case "v2":
		c.Version = 2
	default:
		fatalf(exitUsage, "--dialect %q: xtaci/smux speaks v1 and v2 only (raw: no multiplexer)", o.dialect)
	}
	c.MaxReceiveBuffer = 4194304
	c.MaxStreamBuffer = 2097152
	c.KeepAliveInterval = 10 * time.Second
	if err := smux.VerifyConfig(c); err != nil {
		fatalf(exitUsage, "smux config: %v", err)
	}
	return c
}

// ---------------------------------------------------------------- KCP, as kcptun

// ciphers maps kcptun's crypt names to kcp-go constructors and key lengths (kcptun.md §3).
var ciphers = map[string]struct {
	keyLen int
	build  func([]byte) (kcp.BlockCrypt, error)
}{
	"aes":      {32, kcp.NewAESBlockCrypt},
	"aes-128":  {16, kcp.NewAESBlockCrypt},
	"aes-192":  {24, kcp.NewAESBlockCrypt},
	"salsa20":  {32, kcp.NewSalsa20BlockCrypt},
	"blowfish": {32, kcp.NewBlowfishBlockCrypt},
	"twofish":  {32, kcp.NewTwofishBlockCrypt},
	"cast5":    {16, kcp.NewCast5BlockCrypt},
	"3des":     {24, kcp.NewTripleDESBlockCrypt},
	"tea":      {16, kcp.NewTEABlockCrypt},
	"xtea":     {16, kcp.NewXTEABlockCrypt},
	"sm4":      {16, kcp.NewSM4BlockCrypt},
	"xor":      {32, kcp.NewSimpleXORBlockCrypt},
	"none":     {32, kcp.NewNoneBlockCrypt},
}

func newBlock(o *options) kcp.BlockCrypt {
	pass := pbkdf2.Key([]byte(o.key), []byte("kcp-go"), 4096, 32, sha1.New)
	c, ok := ciphers[o.crypt]
	if !ok { // kcptun falls back to aes for unknown names
		c = ciphers["aes"]
	}
	b, err := c.build(pass[:c.keyLen])
	if err != nil {
		fatalf(exitUsage, "--crypt %q: %v", o.crypt, err)
	}
	return b
}

// noDelay is kcptun's mode preset (kcptun.md §4).
func noDelay(mode string) (int, int, int, int) {
	switch mode {
	case "normal":
		return 0, 40, 2, 1
	case "fast":
		return 0, 30, 2, 1
	case "fast2":
		return 1, 20, 2, 1
	case "fast3":
		return 1, 10, 2, 1
	}
	fatalf(exitUsage, "--mode %q: want normal, fast, fast2 or fast3", mode)
	return 0, 0, 0, 0
}

// configure applies kcptun's per-session knobs (kcptun.md §6.1 step 2, §6.2 step 2).
func configure(s *kcp.UDPSession, o *options) {
	nd, iv, rs, nc := noDelay(o.mode)
	s.SetStreamMode(true)
	s.SetWriteDelay(false)
	s.SetNoDelay(nd, iv, rs, nc)
	if !s.SetMtu(o.mtu) {
		fatalf(exitUsage, "--mtu %d rejected by kcp-go", o.mtu)
	}
	s.SetWindowSize(o.sndwnd, o.rcvwnd)
	s.SetACKNoDelay(false)
}

// ---------------------------------------------------------------- echo-server

func server(o *options) {
	var cfg *smux.Config
	if o.dialect != "raw" {
		cfg = smuxConfig(o)
	}
	var accept func() (io.ReadWriteCloser, error)
	var local net.Addr
	if o.transport == "tcp" {
		l, err := net.Listen("tcp", o.addr)
		if err != nil {
			fatalf(exitFail, "listen %s: %v", o.addr, err)
		}
		local = l.Addr()
		accept = func() (io.ReadWriteCloser, error) { return l.Accept() }
	} else {
		l, err := kcp.ListenWithOptions(o.addr, newBlock(o), o.datashard, o.parity)
		if err != nil {
			fatalf(exitFail, "listen %s: %v", o.addr, err)
		}
		_ = l.SetReadBuffer(sockbuf)
		_ = l.SetWriteBuffer(sockbuf)
		local = l.Addr()
		accept = func() (io.ReadWriteCloser, error) {
			s, err := l.AcceptKCP()
			if err == nil {
				configure(s, o)
			}
			return s, err
		}
	}
	fmt.Fprintf(os.Stdout, "listening %s\n", local)
	_ = os.Stdout.Sync()
	for {
		conn, err := accept()
		if err != nil {
			fatalf(exitFail, "accept: %v", err)
		}
		if o.dialect == "raw" {
			go echoRaw(conn, o)
			continue
		}
		sess, err := smux.Server(conn, cfg)
		if err != nil {
			fatalf(exitFail, "smux.Server: %v", err)
		}
		go serveSession(sess, o)
	}
}

func serveSession(sess *smux.Session, o *options) {
	defer sess.Close()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if !o.quiet {
				fmt.Fprintf(os.Stderr, "smuxpeer: session from %s ended: %v\n", sess.RemoteAddr(), err)
			}
			return
		}
		go func() {
			defer st.Close()
			// Echo until the peer's FIN: io.Copy returns nil at EOF.
			if _, err := io.Copy(st, st); err != nil && !o.quiet {
				fmt.Fprintf(os.Stderr, "smuxpeer: stream %d: %v\n", st.ID(), err)
			}
		}()
	}
}

// echoRaw echoes one TCP connection (--dialect raw) until EOF with a plain buffer loop.
func echoRaw(conn io.ReadWriteCloser, o *options) {
	defer conn.Close()
	buf := make([]byte, chunk)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				if !o.quiet {
					fmt.Fprintf(os.Stderr, "smuxpeer: raw echo: %v\n", werr)
				}
				return
			}
		}
		if err != nil {
			if err != io.EOF && !o.quiet {
				fmt.Fprintf(os.Stderr, "smuxpeer: raw echo: %v\n", err)
			}
			return
		}
	}
}

// ---------------------------------------------------------------- client

// stream is what a run drives: a smux stream, or a TCP connection under --dialect raw.
type stream interface {
	io.ReadWriteCloser
	ID() uint32
}

// rawStream is one TCP connection standing for a stream (--dialect raw).
type rawStream struct {
	net.Conn
	id uint32
}

func (r rawStream) ID() uint32 { return r.id }

// openStreams opens the run's streams: on one new session, or one TCP connection each under
// --dialect raw; close ends the session (a no-op for raw).
func openStreams(o *options) (streams []stream, close func(), err error) {
	streams = make([]stream, o.streams)
	if o.dialect == "raw" {
		for i := range streams {
			c, err := net.Dial("tcp", o.addr)
			if err != nil {
				return nil, nil, fmt.Errorf("dial %s: %v", o.addr, err)
			}
			streams[i] = rawStream{c, uint32(i)}
		}
		return streams, func() {}, nil
	}
	conn, err := dial(o)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %v", o.addr, err)
	}
	sess, err := smux.Client(conn, smuxConfig(o))
	if err != nil {
		return nil, nil, fmt.Errorf("smux.Client: %v", err)
	}
	for i := range streams {
		if streams[i], err = sess.OpenStream(); err != nil {
			sess.Close()
			return nil, nil, fmt.Errorf("open stream %d: %v", i, err)
		}
	}
	return streams, func() { sess.Close() }, nil
}

func client(o *options) {
	if o.streams < 1 || o.runs < 1 {
		fatalf(exitUsage, "--streams and --runs must be at least 1")
	}
	for r := 0; r < o.runs; r++ {
		timer := time.AfterFunc(time.Duration(o.timeout*float64(time.Second)), func() {
			fatalf(exitFail, "run %d: not finished within --timeout %gs", r+1, o.timeout)
		})
		secs, match, err := run(o)
		timer.Stop()
		if err != nil {
			fatalf(exitFail, "run %d: %v", r+1, err)
		}
		mbps := float64(o.streams) * float64(o.bytes) / secs / 1e6
		fmt.Printf("%d streams x %d bytes match=%t %.2f MB/s\n", o.streams, o.bytes, match, mbps)
		if !match {
			os.Exit(exitFail)
		}
	}
}

func dial(o *options) (io.ReadWriteCloser, error) {
	if o.transport == "tcp" {
		return net.Dial("tcp", o.addr)
	}
	s, err := kcp.DialWithOptions(o.addr, newBlock(o), o.datashard, o.parity)
	if err != nil {
		return nil, err
	}
	configure(s, o)
	_ = s.SetReadBuffer(sockbuf)
	_ = s.SetWriteBuffer(sockbuf)
	return s, nil
}

// run is one session of --streams streams; it returns the seconds taken and whether every
// echo matched.
func run(o *options) (float64, bool, error) {
	pool := make([]byte, poolSize)
	if _, err := rand.Read(pool); err != nil {
		return 0, false, err
	}
	start := time.Now()
	streams, closeAll, err := openStreams(o)
	if err != nil {
		return 0, false, err
	}
	defer closeAll()
	var wg sync.WaitGroup
	errs := make(chan error, 2*o.streams)
	mismatch := make(chan uint32, o.streams)
	for _, st := range streams {
		var b [4]byte
		_, _ = rand.Read(b[:])
		off := int(binary.LittleEndian.Uint32(b[:]) % poolSize)
		wg.Add(2)
		go func(st stream) {
			defer wg.Done()
			if err := send(st, pool, off, o.bytes); err != nil {
				errs <- fmt.Errorf("stream %d: write: %v", st.ID(), err)
			}
		}(st)
		go func(st stream) {
			defer wg.Done()
			defer st.Close() // only after the whole echo: FIN ends both directions
			ok, err := check(st, pool, off, o.bytes)
			if err != nil {
				errs <- fmt.Errorf("stream %d: read: %v", st.ID(), err)
			} else if !ok {
				mismatch <- st.ID()
			}
		}(st)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	close(errs)
	close(mismatch)
	for err := range errs {
		return 0, false, err
	}
	for id := range mismatch {
		fmt.Fprintf(os.Stderr, "smuxpeer: stream %d: the echo differs from what was sent\n", id)
		return secs, false, nil
	}
	return secs, true, nil
}

// send writes n bytes of pool, cyclically from off.
func send(w io.Writer, pool []byte, off int, n int64) error {
	for n > 0 {
		k := len(pool) - off
		if k > chunk {
			k = chunk
		}
		if int64(k) > n {
			k = int(n)
		}
		if _, err := w.Write(pool[off : off+k]); err != nil {
			return err
		}
		off = (off + k) % len(pool)
		n -= int64(k)
	}
	return nil
}

// check reads n bytes and compares them with pool, cyclically from off.
func check(r io.Reader, pool []byte, off int, n int64) (bool, error) {
	buf := make([]byte, chunk)
	ok := true
	for n > 0 {
		want := int64(len(buf))
		if want > n {
			want = n
		}
		got, err := r.Read(buf[:want])
		for b := buf[:got]; len(b) > 0; {
			k := len(pool) - off
			if k > len(b) {
				k = len(b)
			}
			ok = ok && bytes.Equal(b[:k], pool[off:off+k])
			off = (off + k) % len(pool)
			b = b[k:]
		}
		n -= int64(got)
		if err == io.EOF && n > 0 {
			return false, fmt.Errorf("EOF with %d bytes of the echo missing", n)
		}
		if err != nil && err != io.EOF {
			return false, err
		}
	}
	return ok, nil
}
