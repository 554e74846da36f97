package randstream

import (
	"bytes"
	"io"
	"testing"
)

func TestReader(t *testing.T) {
	block := Block(1000)
	if !bytes.Equal(block, Block(1000)) {
		t.Fatal("Block is not deterministic")
	}
	got, err := io.ReadAll(New(block, 2500))
	if err != nil || len(got) != 2500 {
		t.Fatalf("read %d bytes, %v; want 2500", len(got), err)
	}
	want := append(append(append([]byte{}, block...), block...), block[:500]...)
	if !bytes.Equal(got, want) {
		t.Error("the stream is not the block repeated")
	}
}
