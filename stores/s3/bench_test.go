package s3store_test

// Benchmarks: Save and Extract of 256 MiB streamed with the default options (parts of 8 MiB,
// 4 at once), and, side by side on the same server, a single PutObject of the same bytes from
// memory and a plain GetObject. Each reports MB/s (b.SetBytes) and the peak growth of the live
// heap (peak-heap-MiB); the 256 MiB buffer of BenchmarkPutObject is allocated before the
// measurement starts.
//
//	WWEBSTORE_S3_URL=http://127.0.0.1:9000 go test -run '^$' -bench . -benchtime 3x
//
// or without the URL, against a container (see s3Server).

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

const benchSize = 256 << 20

func benchReader() io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{1}), benchSize)
}

func reportHeap(b *testing.B, peak uint64) {
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkSave saves with the default Keep (2): each Save after the first also copies the
// previous archive into the history server-side and evicts the oldest.
func BenchmarkSave(b *testing.B) { benchSave(b, 0) }

// BenchmarkSaveNoHistory saves with Keep 1, as s3store did before it kept history.
func BenchmarkSaveNoHistory(b *testing.B) { benchSave(b, 1) }

func benchSave(b *testing.B, keep int) {
	s := s3Server(b)
	c := s.client(nil)
	st, _ := newStore(b, s, c, &s3store.Options{Keep: keep})
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		err := st.Save(b.Context(), "bench", benchReader())
		peak = max(peak, heap.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}

func BenchmarkExtract(b *testing.B) {
	s := s3Server(b)
	c := s.client(nil)
	st, _ := newStore(b, s, c, &s3store.Options{})
	if err := st.Save(b.Context(), "bench", benchReader()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		err := st.Extract(b.Context(), "bench", io.Discard)
		peak = max(peak, heap.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}

// BenchmarkPutObject is the plain path: one PutObject of the same 256 MiB from memory.
func BenchmarkPutObject(b *testing.B) {
	s := s3Server(b)
	c := s.client(nil)
	bucket, prefix := newBucket(b, s, c)
	key := prefix + "/plain.zip"
	data, err := io.ReadAll(benchReader())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		_, err := c.PutObject(b.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize)})
		peak = max(peak, heap.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}

// BenchmarkGetObject is the plain GetObject of 256 MiB into io.Discard.
func BenchmarkGetObject(b *testing.B) {
	s := s3Server(b)
	c := s.client(nil)
	bucket, prefix := newBucket(b, s, c)
	key := prefix + "/plain.zip"
	data, err := io.ReadAll(benchReader())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.PutObject(b.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize)}); err != nil {
		b.Fatal(err)
	}
	data = nil
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		out, err := c.GetObject(b.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err == nil {
			_, err = io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
		peak = max(peak, heap.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}
