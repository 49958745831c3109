// Command snappyvectors runs golang/snappy's framing-format writer and reader (the ones
// kcptun 20210922 wraps its KCP session in, kcptun.md §7) for tether's snappy transform
// (core/src/snappy.rs).
//
//	snappyvectors encode   stdin: one frame per line, hex; stdout: the stream, hex, written
//	                       as kcptun does (one Write then one Flush per frame)
//	snappyvectors decode   stdin: a framing-format stream, hex; stdout: the decoded bytes, hex
//
// Build in GOPATH mode against Debian's golang-github-golang-snappy-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build .
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/golang/snappy"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "snappyvectors: "+format+"\n", args...)
	os.Exit(1)
}

func encode() {
	var out bytes.Buffer
	w := snappy.NewBufferedWriter(&out)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		frame, err := hex.DecodeString(strings.TrimSpace(sc.Text()))
		if err != nil {
			die("bad hex frame: %v", err)
		}
		if _, err := w.Write(frame); err != nil {
			die("write: %v", err)
		}
		if err := w.Flush(); err != nil {
			die("flush: %v", err)
		}
	}
	fmt.Println(hex.EncodeToString(out.Bytes()))
}

func decode() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		die("read stdin: %v", err)
	}
	stream, err := hex.DecodeString(strings.TrimSpace(string(in)))
	if err != nil {
		die("bad hex stream: %v", err)
	}
	plain, err := io.ReadAll(snappy.NewReader(bytes.NewReader(stream)))
	if err != nil {
		die("decode: %v", err)
	}
	fmt.Println(hex.EncodeToString(plain))
}

func main() {
	if len(os.Args) != 2 {
		die("usage: snappyvectors encode|decode")
	}
	switch os.Args[1] {
	case "encode":
		encode()
	case "decode":
		decode()
	default:
		die("unknown mode %q", os.Args[1])
	}
}
