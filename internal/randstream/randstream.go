// Package randstream makes archives for the store benchmarks: n bytes generated as they are read,
// so that a benchmark never holds its input in memory.
package randstream

import (
	"io"
	"math/rand/v2"
)

// Block returns size pseudo-random bytes, the same for every call with the same size.
func Block(size int) []byte {
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}

// Reader reads n bytes: block, repeated. Make block a little longer than the chunks a store cuts
// (a chunk plus a few KiB), so that no two chunks are alike while generating costs a memcpy.
type Reader struct {
	block []byte
	off   int
	left  int64
}

// New returns a Reader of n bytes of block, repeated.
func New(block []byte, n int64) *Reader { return &Reader{block: block, left: n} }

func (r *Reader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	r.left -= int64(n)
	return n, nil
}
