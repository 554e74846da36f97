package redisstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/internal/randstream"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// The benchmarks stream 256 MiB through the store, and, for comparison, through the server's
// own bulk path: pipelined SETs and GETs of the same chunk size. Run them with
//
//	WWEBSTORE_REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench . -benchtime 5x
//
// (or without the URL, against a container). "peak-heap-MiB" is the growth of the live heap
// during one operation (internal/peakheap).
const (
	benchSize  = 256 << 20
	benchChunk = redisstore.DefaultChunkSize
)

// benchBlock is repeated to make an archive: a little more than a chunk, so that no two chunks
// are alike.
var benchBlock = randstream.Block(benchChunk + 4099)

func newStream(n int64) *randstream.Reader { return randstream.New(benchBlock, n) }

func benchStore(b *testing.B) (*redisstore.Store, *redis.Client) {
	rdb := newClient(b, serverOptions(b))
	st, _ := newStore(b, rdb, &redisstore.Options{ChunkSize: benchChunk})
	return st, rdb
}

// reportPeak reports the largest heap growth seen over the iterations.
func reportPeak(b *testing.B, peak uint64) {
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

func BenchmarkSave(b *testing.B) {
	st, _ := benchStore(b)
	const session = "RemoteAuth-bench"
	b.SetBytes(benchSize)
	var peak uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := peakheap.Start()
		b.StartTimer()
		if err := st.Save(b.Context(), session, newStream(benchSize)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		peak = max(peak, s.Stop())
		b.StartTimer()
	}
	reportPeak(b, peak)
}

func BenchmarkExtract(b *testing.B) {
	st, _ := benchStore(b)
	const session = "RemoteAuth-bench"
	if err := st.Save(b.Context(), session, newStream(benchSize)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	var peak uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := peakheap.Start()
		b.StartTimer()
		w := &countWriter{}
		if err := st.Extract(b.Context(), session, w); err != nil {
			b.Fatal(err)
		}
		if w.n != benchSize {
			b.Fatalf("Extract wrote %d bytes", w.n)
		}
		b.StopTimer()
		peak = max(peak, s.Stop())
		b.StartTimer()
	}
	reportPeak(b, peak)
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// The server's native bulk path: the same bytes as SETs of benchChunk bytes, 16 to a pipeline
// on one connection (as redis-benchmark -t set -d 1048576 -P 16 -c 1), and read back with
// pipelined GETs.
const nativePipeline = 16

func nativeKeys(prefix string) []string {
	keys := make([]string, benchSize/benchChunk)
	for i := range keys {
		keys[i] = prefix + "native:" + strconv.Itoa(i)
	}
	return keys
}

func nativeSet(b *testing.B, rdb *redis.Client, keys []string) {
	val := benchBlock[:benchChunk]
	for i := 0; i < len(keys); i += nativePipeline {
		p := rdb.Pipeline()
		for _, k := range keys[i:min(len(keys), i+nativePipeline)] {
			p.Set(b.Context(), k, val, 0)
		}
		if _, err := p.Exec(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNativeSET(b *testing.B) {
	rdb := newClient(b, serverOptions(b))
	keys := nativeKeys(testPrefix(b))
	b.Cleanup(func() { rdb.Del(context.Background(), keys...) })
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		nativeSet(b, rdb, keys)
	}
}

// BenchmarkNativeSETNewKeys writes the same bytes into new keys at each iteration, then deletes
// the previous iteration's keys: the memory pattern of any atomic replace, which must hold the
// old archive until the new one is whole. BenchmarkNativeSET overwrites the same keys, and the
// server reuses the memory it has just freed.
func BenchmarkNativeSETNewKeys(b *testing.B) {
	rdb := newClient(b, serverOptions(b))
	prefix := testPrefix(b)
	var prev []string
	b.Cleanup(func() {
		if prev != nil {
			rdb.Del(context.Background(), prev...)
		}
	})
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := range b.N {
		keys := nativeKeys(prefix + strconv.Itoa(i) + ":")
		nativeSet(b, rdb, keys)
		if prev != nil {
			if err := rdb.Del(b.Context(), prev...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		prev = keys
	}
}

func BenchmarkNativeGET(b *testing.B) {
	rdb := newClient(b, serverOptions(b))
	keys := nativeKeys(testPrefix(b))
	b.Cleanup(func() { rdb.Del(context.Background(), keys...) })
	nativeSet(b, rdb, keys)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		var n int
		for i := 0; i < len(keys); i += nativePipeline {
			p := rdb.Pipeline()
			var cmds []*redis.StringCmd
			for _, k := range keys[i:min(len(keys), i+nativePipeline)] {
				cmds = append(cmds, p.Get(b.Context(), k))
			}
			if _, err := p.Exec(b.Context()); err != nil {
				b.Fatal(err)
			}
			for _, c := range cmds {
				n += len(c.Val())
			}
		}
		if n != benchSize {
			b.Fatalf("read %d bytes", n)
		}
	}
}
