package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"testing"
)

// Binary size units.
const (
	kiB = 1 << 10
	miB = 1 << 20
)

// content names a deterministic test archive: size bytes of the ChaCha8 stream seeded with seed.
// The same content yields the same bytes however it is read, so a test can stream it into Save,
// regenerate it to check what Extract returns, and never hold a large archive in memory.
type content struct {
	seed uint64
	size int64
}

// String describes c in failure messages.
func (c content) String() string {
	return fmt.Sprintf("%d bytes (seed %d)", c.size, c.seed)
}

// reader returns a new reader of c's bytes.
func (c content) reader() io.Reader {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], c.seed)
	return io.LimitReader(rand.NewChaCha8(seed), c.size)
}

// sum returns the SHA-256 of c's bytes.
func (c content) sum() [sha256.Size]byte {
	h := sha256.New()
	if _, err := io.Copy(h, c.reader()); err != nil {
		panic(err) // unreachable: neither side of the copy returns errors
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// verifier is an io.Writer that compares what is written to it with want, byte for byte,
// without holding either side in memory. It never fails a Write, so that the store under test
// sees an ordinary writer.
type verifier struct {
	want    io.Reader
	buf     []byte
	written int64 // bytes written so far
	diff    int64 // offset of the first byte that differs from want, or -1
}

func newVerifier(want content) *verifier {
	return &verifier{want: want.reader(), diff: -1}
}

func (v *verifier) Write(p []byte) (int, error) {
	if v.diff < 0 {
		if cap(v.buf) < len(p) {
			v.buf = make([]byte, len(p))
		}
		exp := v.buf[:len(p)]
		n, _ := io.ReadFull(v.want, exp) // short only at the end of want
		if i := firstDiff(p[:n], exp[:n]); i >= 0 {
			v.diff = v.written + int64(i)
		} else if n < len(p) {
			v.diff = v.written + int64(n) // longer than want
		}
	}
	v.written += int64(len(p))
	return len(p), nil
}

// check reports, through t, how what was written differs from want.
func (v *verifier) check(t *testing.T, session string, want content) {
	t.Helper()
	switch {
	case v.written != want.size:
		t.Errorf("Extract(%q) wrote %d bytes, want %s", session, v.written, want)
	case v.diff >= 0:
		t.Errorf("Extract(%q) wrote %d bytes that differ from the saved %s at byte %d", session, v.written, want, v.diff)
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1 // unreachable for slices of equal length
}

// hashWriter is an io.Writer that hashes and counts what is written to it.
type hashWriter struct {
	h hash.Hash
	n int64
}

func newHashWriter() *hashWriter { return &hashWriter{h: sha256.New()} }

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (w *hashWriter) sum() [sha256.Size]byte { return [sha256.Size]byte(w.h.Sum(nil)) }

// countWriter counts the bytes written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// failingReader reads r until n bytes have been read, then fails with err. r must hold more
// than n bytes.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	k, err := f.r.Read(p)
	f.n -= int64(k)
	return k, err
}

// cancelingReader reads r and calls cancel once n bytes have been read. It goes on reading
// without error: noticing that the context ended is the store's job.
type cancelingReader struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n > 0 {
		c.n -= int64(k)
		if c.n <= 0 {
			c.cancel()
		}
	}
	return k, err
}

// failingWriter accepts n bytes, then fails with err.
type failingWriter struct {
	n   int64
	err error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= f.n {
		f.n -= int64(len(p))
		return len(p), nil
	}
	k := int(f.n)
	f.n = 0
	return k, f.err
}
