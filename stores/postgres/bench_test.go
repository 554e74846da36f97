package postgresstore_test

// Benchmarks: Save and Extract of 256 MiB streamed, and, side by side on the same server, the
// server's native bulk path: pgx's CopyFrom of the same bytes in the same chunk size into a
// plain table. Each reports MB/s (b.SetBytes) and the peak growth of the live heap
// (peak-heap-MiB). Between iterations, with the timer stopped, tables are vacuumed so that every
// iteration starts from the same state.
//
//	WWEBSTORE_POSTGRES_URL=postgres://… go test -run '^$' -bench . -benchtime 5x
//
// or without the URL, against a container (see serverURL).

import (
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

const benchSize = 256 << 20

func reportHeap(b *testing.B, peak uint64) {
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// vacuum vacuums tables outside of the timer.
func vacuum(b *testing.B, pool *pgxpool.Pool, tables ...string) {
	b.Helper()
	for _, t := range tables {
		if _, err := pool.Exec(context.Background(), "VACUUM "+t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSave saves 256 MiB: /New into a session that has no archive, /Replace over a
// previous archive of the same size (the usual periodic backup: the old rows are deleted in the
// same transaction).
func BenchmarkSave(b *testing.B) {
	pool := newPool(b, serverURL(b))
	st := newStore(b, pool, pool, nil)
	sessions, chunks, _ := st.TableNames()
	ctx := context.Background()
	c := content{seed: 1, size: benchSize}
	for _, replace := range []bool{false, true} {
		name := "New"
		if replace {
			name = "Replace"
		}
		b.Run(name, func(b *testing.B) {
			if replace {
				if err := st.Save(ctx, "bench", c.reader()); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(benchSize)
			var peak uint64
			for b.Loop() {
				b.StopTimer()
				if !replace {
					if err := st.Delete(ctx, "bench"); err != nil {
						b.Fatal(err)
					}
				}
				vacuum(b, pool, sessions, chunks)
				b.StartTimer()
				heap := peakheap.Start()
				err := st.Save(ctx, "bench", c.reader())
				peak = max(peak, heap.Stop())
				if err != nil {
					b.Fatal(err)
				}
			}
			reportHeap(b, peak)
		})
	}
}

func BenchmarkExtract(b *testing.B) {
	pool := newPool(b, serverURL(b))
	st := newStore(b, pool, pool, nil)
	ctx := context.Background()
	if err := st.Save(ctx, "bench", content{seed: 1, size: benchSize}.reader()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		err := st.Extract(ctx, "bench", io.Discard)
		peak = max(peak, heap.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}

// chunkSource is a pgx.CopyFromSource of (seq, data) rows of one chunk each, read from r.
type chunkSource struct {
	r    io.Reader
	buf  []byte
	n    int
	seq  int32
	err  error
	done bool
}

func (s *chunkSource) Next() bool {
	if s.done {
		return false
	}
	n, err := io.ReadFull(s.r, s.buf)
	switch {
	case err == io.EOF:
		s.done = true
		return false
	case err == io.ErrUnexpectedEOF:
		s.done = true
	case err != nil:
		s.err, s.done = err, true
		return false
	}
	s.n = n
	return true
}

func (s *chunkSource) Values() ([]any, error) {
	v := []any{s.seq, s.buf[:s.n]}
	s.seq++
	return v, nil
}

func (s *chunkSource) Err() error { return s.err }

// BenchmarkNativeCopy is the server's own bulk path: pgx CopyFrom of the same 256 MiB in rows of
// DefaultChunkSize into a plain table (seq integer, data bytea), emptied by TRUNCATE between
// iterations. /External sets the data column's storage to EXTERNAL, as the store does.
func BenchmarkNativeCopy(b *testing.B) {
	pool := newPool(b, serverURL(b))
	ctx := context.Background()
	for _, external := range []bool{false, true} {
		name := "Default"
		if external {
			name = "External"
		}
		b.Run(name, func(b *testing.B) {
			table := uniqueTable()
			if _, err := pool.Exec(ctx, "CREATE TABLE "+table+" (seq integer NOT NULL, data bytea NOT NULL)"); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { pool.Exec(context.Background(), "DROP TABLE "+table) })
			if external {
				if _, err := pool.Exec(ctx, "ALTER TABLE "+table+" ALTER COLUMN data SET STORAGE EXTERNAL"); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(benchSize)
			var peak uint64
			for b.Loop() {
				b.StopTimer()
				if _, err := pool.Exec(ctx, "TRUNCATE "+table); err != nil {
					b.Fatal(err)
				}
				vacuum(b, pool, table)
				b.StartTimer()
				heap := peakheap.Start()
				src := &chunkSource{r: content{seed: 1, size: benchSize}.reader(), buf: make([]byte, postgresstore.DefaultChunkSize)}
				n, err := pool.CopyFrom(ctx, pgx.Identifier{table}, []string{"seq", "data"}, src)
				peak = max(peak, heap.Stop())
				if err != nil {
					b.Fatal(err)
				}
				if n != benchSize/postgresstore.DefaultChunkSize {
					b.Fatalf("COPY stored %d rows", n)
				}
			}
			reportHeap(b, peak)
		})
	}
}

// BenchmarkNativeSelect reads the same rows back with a plain SELECT: the native counterpart of
// Extract.
func BenchmarkNativeSelect(b *testing.B) {
	pool := newPool(b, serverURL(b))
	ctx := context.Background()
	table := uniqueTable()
	if _, err := pool.Exec(ctx, "CREATE TABLE "+table+" (seq integer PRIMARY KEY, data bytea NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Exec(context.Background(), "DROP TABLE "+table) })
	src := &chunkSource{r: content{seed: 1, size: benchSize}.reader(), buf: make([]byte, postgresstore.DefaultChunkSize)}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{table}, []string{"seq", "data"}, src); err != nil {
		b.Fatal(err)
	}
	vacuum(b, pool, table)
	b.SetBytes(benchSize)
	var peak uint64
	for b.Loop() {
		heap := peakheap.Start()
		rows, err := pool.Query(ctx, "SELECT data FROM "+table+" ORDER BY seq")
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			if _, err := io.Discard.Write(rows.RawValues()[0]); err != nil {
				b.Fatal(err)
			}
		}
		rows.Close()
		peak = max(peak, heap.Stop())
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
	}
	reportHeap(b, peak)
}
