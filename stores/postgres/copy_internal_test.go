package postgresstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// decodeCopy decodes a COPY binary stream of (text, int8, int4, bytea) tuples.
func decodeCopy(t *testing.T, b []byte) (sessions []string, gens []int64, seqs []int32, data [][]byte) {
	t.Helper()
	if !bytes.HasPrefix(b, copyHeader) {
		t.Fatalf("stream begins with %q, want the COPY binary header", b[:min(len(b), len(copyHeader))])
	}
	b = b[len(copyHeader):]
	u16 := func() int16 { v := int16(binary.BigEndian.Uint16(b)); b = b[2:]; return v }
	field := func() []byte {
		n := int(binary.BigEndian.Uint32(b))
		v := b[4 : 4+n]
		b = b[4+n:]
		return v
	}
	for {
		n := u16()
		if n == -1 {
			break
		}
		if n != 4 {
			t.Fatalf("tuple of %d fields", n)
		}
		sessions = append(sessions, string(field()))
		gen := field()
		if len(gen) != 8 {
			t.Fatalf("gen field of %d bytes, want 8", len(gen))
		}
		gens = append(gens, int64(binary.BigEndian.Uint64(gen)))
		seqs = append(seqs, int32(binary.BigEndian.Uint32(field())))
		data = append(data, field())
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the trailer", len(b))
	}
	return sessions, gens, seqs, data
}

func TestCopySource(t *testing.T) {
	for _, tt := range []struct {
		size   int
		chunks int
	}{{0, 0}, {1, 1}, {1024, 1}, {1025, 2}, {2048, 2}, {2500, 3}} {
		archive := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16+1)[:tt.size]
		for name, r := range map[string]io.Reader{
			"plain":   bytes.NewReader(archive),
			"onebyte": iotest.OneByteReader(bytes.NewReader(archive)),
			"dataeof": iotest.DataErrReader(bytes.NewReader(archive)),
		} {
			const gen = 1<<40 + 3 // more than 32 bits, to see all of them
			src := newCopySource("RemoteAuth-a", gen, r, 1024)
			stream, err := io.ReadAll(iotest.HalfReader(src))
			if err != nil {
				t.Fatalf("%d bytes, %s: %v", tt.size, name, err)
			}
			sessions, gens, seqs, data := decodeCopy(t, stream)
			if len(seqs) != tt.chunks || !bytes.Equal(bytes.Join(data, nil), archive) {
				t.Errorf("%d bytes, %s: %d tuples holding %d bytes; want %d holding the archive", tt.size, name, len(seqs), len(bytes.Join(data, nil)), tt.chunks)
			}
			for i := range seqs {
				if seqs[i] != int32(i) || sessions[i] != "RemoteAuth-a" || gens[i] != gen {
					t.Errorf("tuple %d: session %q, gen %d, seq %d; want %q, %d, %d", i, sessions[i], gens[i], seqs[i], "RemoteAuth-a", int64(gen), i)
				}
			}
			chunks, size, err := src.close()
			if chunks != int64(tt.chunks) || size != int64(tt.size) || err != nil {
				t.Errorf("close() = %d, %d, %v; want %d, %d, nil", chunks, size, err, tt.chunks, tt.size)
			}
			if n, err := src.Read(make([]byte, 10)); n != 0 || !errors.Is(err, errSourceClosed) {
				t.Errorf("Read after close = %d, %v", n, err)
			}
		}
	}
}

func TestCopySourceReaderError(t *testing.T) {
	errRead := errors.New("read failed")
	src := newCopySource("a", 1, io.MultiReader(strings.NewReader(strings.Repeat("x", 3000)), iotest.ErrReader(errRead)), 1024)
	_, err := io.ReadAll(src)
	if !errors.Is(err, errRead) {
		t.Fatalf("ReadAll: %v, want %v", err, errRead)
	}
	if _, err := src.Read(make([]byte, 10)); !errors.Is(err, errRead) {
		t.Errorf("Read after the error: %v, want %v again", err, errRead)
	}
	if _, _, err := src.close(); !errors.Is(err, errRead) {
		t.Errorf("close() error %v, want %v", err, errRead)
	}
}
