// Command sessionbench runs kcp-go 5.6.1's own session-layer benchmarks (crypt_test.go's
// benchCrypt and the per-cipher Benchmark* functions, fec_test.go's BenchmarkFECEncode and
// BenchmarkFECDecode) through testing.Benchmark, so scripts/bench-session.sh can compare
// them with tether's core/benches/session.rs in the same job. kcp-go's test package cannot
// be `go test`ed offline (testify is not packaged), hence this copy of the loops.
//
// Differences from kcp-go's files, all deliberate and shared with core/benches/session.rs:
//   - packets are 1400 bytes (kcp-go's tests use mtuLimit = 1500); `-size 1500` restores
//     kcp-go's figure;
//   - ciphers are keyed like kcptun: pass = PBKDF2-HMAC-SHA1("it's a secrect", "kcp-go",
//     4096, 32), sliced per cipher (kcp-go-session.md §3.1).
//
// Build OFFLINE in GOPATH mode against Debian's golang-github-xtaci-kcp-dev:
//
//	cd tests/go/sessionbench && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o ../../../target/go-bin/sessionbench .
//
// Flags: -size N (packet bytes), -only SUBSTR, -test.benchtime D (per benchmark).
//
// Output: one line per benchmark, `name MB/s` (testing.BenchmarkResult's MB/s: bytes set
// with SetBytes × N / elapsed, 1 MB = 1e6 bytes). Names match core/benches/session.rs:
// crypt/<kcptun name>, fec/encode, fec/decode.
//
// newFECEncoder / newFECDecoder and their methods are unexported; they are reached with
// go:linkname (the bodyless declarations need empty.s). The returned pointers are only
// passed back to kcp-go, so opaque types stand in for them.
package main

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"os"
	"strings"
	"testing"
	_ "unsafe" // go:linkname

	kcp "github.com/xtaci/kcp-go"
	"golang.org/x/crypto/pbkdf2"
)

// fecEncoder and fecDecoder are opaque stand-ins for kcp-go's unexported types.
type fecEncoder struct{}
type fecDecoder struct{}

//go:linkname newFECEncoder github.com/xtaci/kcp-go.newFECEncoder
func newFECEncoder(dataShards, parityShards, offset int) *fecEncoder

//go:linkname fecEncode github.com/xtaci/kcp-go.(*fecEncoder).encode
func fecEncode(enc *fecEncoder, b []byte) [][]byte

//go:linkname newFECDecoder github.com/xtaci/kcp-go.newFECDecoder
func newFECDecoder(dataShards, parityShards int) *fecDecoder

//go:linkname fecDecode github.com/xtaci/kcp-go.(*fecDecoder).decode
func fecDecode(dec *fecDecoder, in []byte) [][]byte

// fec.go's typeData / typeParity.
const (
	typeData   = 0xf1
	typeParity = 0xf2
)

type cipherSpec struct {
	name   string
	keyLen int
	build  func(key []byte) (kcp.BlockCrypt, error)
}

// kcptun 20210922's --crypt switch (kcp-go-session.md §3.1).
var ciphers = []cipherSpec{
	{"aes", 32, kcp.NewAESBlockCrypt},
	{"aes-128", 16, kcp.NewAESBlockCrypt},
	{"aes-192", 24, kcp.NewAESBlockCrypt},
	{"salsa20", 32, kcp.NewSalsa20BlockCrypt},
	{"blowfish", 32, kcp.NewBlowfishBlockCrypt},
	{"twofish", 32, kcp.NewTwofishBlockCrypt},
	{"cast5", 16, kcp.NewCast5BlockCrypt},
	{"3des", 24, kcp.NewTripleDESBlockCrypt},
	{"tea", 16, kcp.NewTEABlockCrypt},
	{"xtea", 16, kcp.NewXTEABlockCrypt},
	{"sm4", 16, kcp.NewSM4BlockCrypt},
	{"xor", 32, kcp.NewSimpleXORBlockCrypt},
	{"none", 32, kcp.NewNoneBlockCrypt},
}

// benchCrypt is crypt_test.go's benchCrypt with the packet size as a parameter.
func benchCrypt(b *testing.B, bc kcp.BlockCrypt, size int) {
	data := make([]byte, size)
	io.ReadFull(rand.Reader, data)
	dec := make([]byte, size)
	enc := make([]byte, size)

	b.ReportAllocs()
	b.SetBytes(int64(len(enc) * 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.Encrypt(enc, data)
		bc.Decrypt(dec, enc)
	}
}

// benchFECDecode is fec_test.go's BenchmarkFECDecode with the packet size as a parameter.
func benchFECDecode(b *testing.B, payLoad int) {
	const dataSize = 10
	const paritySize = 3
	decoder := newFECDecoder(dataSize, paritySize)
	b.ReportAllocs()
	b.SetBytes(int64(payLoad))
	for i := 0; i < b.N; i++ {
		if mrand.Int()%(dataSize+paritySize) == 0 { // random loss
			continue
		}
		pkt := make([]byte, payLoad)
		binary.LittleEndian.PutUint32(pkt, uint32(i))
		if i%(dataSize+paritySize) >= dataSize {
			binary.LittleEndian.PutUint16(pkt[4:], typeParity)
		} else {
			binary.LittleEndian.PutUint16(pkt[4:], typeData)
		}
		fecDecode(decoder, pkt)
	}
}

// benchFECEncode is fec_test.go's BenchmarkFECEncode with the packet size as a parameter.
func benchFECEncode(b *testing.B, payLoad int) {
	const dataSize = 10
	const paritySize = 3

	b.ReportAllocs()
	b.SetBytes(int64(payLoad))
	encoder := newFECEncoder(dataSize, paritySize, 0)
	for i := 0; i < b.N; i++ {
		data := make([]byte, payLoad)
		fecEncode(encoder, data)
	}
}

func report(name string, r testing.BenchmarkResult) {
	if r.N == 0 {
		fmt.Fprintf(os.Stderr, "sessionbench: %s did not run\n", name)
		os.Exit(1)
	}
	mbs := float64(r.Bytes) * float64(r.N) / 1e6 / r.T.Seconds()
	fmt.Printf("%s %.2f\n", name, mbs)
	fmt.Fprintf(os.Stderr, "%-14s %10d iters %10d ns/op %9.2f MB/s %4d allocs/op\n",
		name, r.N, r.NsPerOp(), mbs, r.AllocsPerOp())
}

func main() {
	size := flag.Int("size", 1400, "packet size in bytes (kcp-go's own tests use 1500)")
	only := flag.String("only", "", "run only benchmarks whose name contains this")
	testing.Init() // registers -test.benchtime, which testing.Benchmark honours (default 1s)
	flag.Parse()
	pass := pbkdf2.Key([]byte("it's a secrect"), []byte("kcp-go"), 4096, 32, sha1.New)

	for _, c := range ciphers {
		name := "crypt/" + c.name
		if !strings.Contains(name, *only) {
			continue
		}
		bc, err := c.build(pass[:c.keyLen])
		if err != nil {
			fmt.Fprintf(os.Stderr, "sessionbench: %s: %v\n", c.name, err)
			os.Exit(1)
		}
		report(name, testing.Benchmark(func(b *testing.B) { benchCrypt(b, bc, *size) }))
	}
	if strings.Contains("fec/encode", *only) {
		report("fec/encode", testing.Benchmark(func(b *testing.B) { benchFECEncode(b, *size) }))
	}
	if strings.Contains("fec/decode", *only) {
		report("fec/decode", testing.Benchmark(func(b *testing.B) { benchFECDecode(b, *size) }))
	}
}
