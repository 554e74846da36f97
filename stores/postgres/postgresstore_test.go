package postgresstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
	"github.com/wwebstore/wwebstore/storetest"
)

// TestConformance runs the conformance suite against a real PostgreSQL, each subtest in tables
// of its own.
func TestConformance(t *testing.T) {
	pool := newPool(t, serverURL(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		return newStore(t, pool, pool, nil)
	})
}

// TestConformanceSmallChunks runs the suite with the smallest chunk size, so that every archive
// but the smallest spans many rows and every RoundTrip size straddles a chunk boundary.
func TestConformanceSmallChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a second run of the suite in -short mode")
	}
	pool := newPool(t, serverURL(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		return newStore(t, pool, pool, &postgresstore.Options{ChunkSize: postgresstore.MinChunkSize + 7})
	})
}

// TestConformancePgBouncer runs the suite through a real PgBouncer in transaction pooling mode,
// with three server connections for pools of four clients: a store that kept anything in a
// database session (a prepared statement, a SET, a session lock) would lose it between two
// transactions, and fail.
func TestConformancePgBouncer(t *testing.T) {
	server := serverURL(t)
	admin := newPool(t, server)
	bouncer := startPgBouncer(t, server)
	pool := newPool(t, bouncer)
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		return newStore(t, pool, admin, nil)
	})
}

// TestPgBouncerPreparedStatements shows that the PgBouncer test can fail: pgx's default mode,
// cached prepared statements, breaks through it, while the store's default does not. Without
// this, TestConformancePgBouncer could pass against a pooler that pins sessions.
func TestPgBouncerPreparedStatements(t *testing.T) {
	server := serverURL(t)
	bouncer := startPgBouncer(t, server)
	cfg, err := pgxpool.ParseConfig(bouncer)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool := newPoolConfig(t, cfg)
	// Eight clients run the same prepared statement over three server connections: a client
	// soon lands on a server connection where its statement was never prepared, or was by
	// another client under the same name.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				var n int
				if err := pool.QueryRow(t.Context(), "SELECT $1::int + 0", i*1000+j).Scan(&n); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err, failed := <-errs; !failed {
		t.Log("pgx's cached prepared statements happened to work through PgBouncer this time")
	} else {
		t.Logf("as expected, pgx's cached prepared statements fail through PgBouncer: %v", err)
	}

	admin := newPool(t, server)
	st := newStore(t, pool, admin, nil)
	var wg2 sync.WaitGroup
	for i := range 8 {
		wg2.Go(func() {
			session := fmt.Sprintf("RemoteAuth-%d", i)
			c := content{seed: uint64(i), size: 100_000}
			for range 5 {
				if err := st.Save(t.Context(), session, c.reader()); err != nil {
					t.Errorf("Save(%q) through PgBouncer: %v", session, err)
					return
				}
				if _, err := st.SessionExists(t.Context(), session); err != nil {
					t.Errorf("SessionExists(%q) through PgBouncer: %v", session, err)
					return
				}
			}
		})
	}
	wg2.Wait()
}

// TestLayout checks the rows behind an archive: the schema of the package documentation.
func TestLayout(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	const chunk = 4096
	st := newStore(t, pool, pool, &postgresstore.Options{ChunkSize: chunk})
	sessions, chunks, _ := st.TableNames()

	c := content{seed: 1, size: 2*chunk + 100}
	if err := st.Save(ctx, "RemoteAuth-alice", c.reader()); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, "empty", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	var size, nchunks, chunkSize int64
	if err := pool.QueryRow(ctx, "SELECT size, chunks, chunk_size FROM "+sessions+" WHERE session = 'RemoteAuth-alice'").Scan(&size, &nchunks, &chunkSize); err != nil {
		t.Fatal(err)
	}
	if size != c.size || nchunks != 3 || chunkSize != chunk {
		t.Errorf("session row: size %d, chunks %d, chunk_size %d; want %d, 3, %d", size, nchunks, chunkSize, c.size, chunk)
	}
	rows, err := pool.Query(ctx, "SELECT seq, data FROM "+chunks+" WHERE session = 'RemoteAuth-alice' ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	var seqs []int32
	for rows.Next() {
		var seq int32
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		all = append(all, data...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[0 1 2]" || !bytes.Equal(all, c.bytes(t)) {
		t.Errorf("chunk rows: seqs %v holding %d bytes; want [0 1 2] holding the archive", seqs, len(all))
	}
	if err := pool.QueryRow(ctx, "SELECT size, chunks FROM "+sessions+" WHERE session = 'empty'").Scan(&size, &nchunks); err != nil || size != 0 || nchunks != 0 {
		t.Errorf("empty archive: size %d, chunks %d, %v; want 0, 0", size, nchunks, err)
	}
	var storage string
	if err := pool.QueryRow(ctx, "SELECT attstorage::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'data'", chunks).Scan(&storage); err != nil || storage != "e" {
		t.Errorf("storage of the data column: %q, %v; want e (EXTERNAL)", storage, err)
	}
	// What Schema returns creates the same tables elsewhere.
	other := postgresstore.Options{Table: uniqueTable(), SkipCreateTables: true}
	st2, err := postgresstore.New(ctx, pool, &other)
	if err != nil {
		t.Fatal(err)
	}
	dropTables(t, pool, st2)
	if _, err := pool.Exec(ctx, st2.CreateTablesSQL()); err != nil {
		t.Fatalf("running CreateTablesSQL():\n%s\n%v", st2.CreateTablesSQL(), err)
	}
	if err := st2.Save(ctx, "a", strings.NewReader("archive")); err != nil {
		t.Errorf("Save into tables made by CreateTablesSQL(): %v", err)
	}
}

// TestTableNames checks that table names are quoted, used as given and schema-qualified.
func TestTableNames(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	schema := "Wwebstore Test " + uniqueTable()[len("wwebstore_test_"):] // upper-case and a space
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	base := uniqueTable()
	for _, tt := range []struct {
		name                 string
		opts                 postgresstore.Options
		wantSchema           string
		wantTable, wantChunk string
	}{
		{"Default", postgresstore.Options{Schema: schema}, schema, "wwebstore_sessions", "wwebstore_sessions_chunks"},
		{"UpperCase", postgresstore.Options{Table: "Sessions_" + base}, "", "Sessions_" + base, "Sessions_" + base + "_chunks"},
		{"Quotes", postgresstore.Options{Table: `a"b'c;` + base}, "", `a"b'c;` + base, `a"b'c;` + base + "_chunks"},
		{"Dot", postgresstore.Options{Table: "x.y" + base, ChunkTable: "x.y" + base + ".c"}, "", "x.y" + base, "x.y" + base + ".c"},
		{"Schema", postgresstore.Options{Schema: schema, Table: "S", ChunkTable: "C"}, schema, "S", "C"},
		{"Injection", postgresstore.Options{Schema: schema, Table: `t"; DROP TABLE x; --`}, schema, `t"; DROP TABLE x; --`, `t"; DROP TABLE x; --_chunks`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := postgresstore.New(ctx, pool, &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			dropTables(t, pool, st)
			if err := st.Save(ctx, "RemoteAuth-a", strings.NewReader("archive")); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tt.wantTable, tt.wantChunk} {
				var n int
				q := "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relkind = 'r' AND (n.nspname = $2 OR ($2 = '' AND n.oid = current_schema()::regnamespace))"
				if err := pool.QueryRow(ctx, q, want, tt.wantSchema).Scan(&n); err != nil || n != 1 {
					t.Errorf("tables named %q in schema %q: %d, %v; want 1", want, tt.wantSchema, n, err)
				}
			}
			var buf bytes.Buffer
			if err := st.Extract(ctx, "RemoteAuth-a", &buf); err != nil || buf.String() != "archive" {
				t.Errorf("Extract = %q, %v", buf.String(), err)
			}
			// A second New on existing tables creates nothing and works.
			st2, err := postgresstore.New(ctx, pool, &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := st2.SessionExists(ctx, "RemoteAuth-a"); !ok || err != nil {
				t.Errorf("SessionExists through a second store = %v, %v", ok, err)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	long := strings.Repeat("t", postgresstore.MaxIdentifierLen)
	for _, tt := range []struct {
		name string
		opts postgresstore.Options
		ok   bool
	}{
		{"Defaults", postgresstore.Options{}, true},
		{"MinChunk", postgresstore.Options{ChunkSize: postgresstore.MinChunkSize}, true},
		{"MaxChunk", postgresstore.Options{ChunkSize: postgresstore.MaxChunkSize}, true},
		{"ChunkTooSmall", postgresstore.Options{ChunkSize: postgresstore.MinChunkSize - 1}, false},
		{"ChunkTooLarge", postgresstore.Options{ChunkSize: postgresstore.MaxChunkSize + 1}, false},
		{"NegativeChunk", postgresstore.Options{ChunkSize: -1}, false},
		{"LongestTable", postgresstore.Options{Table: long, ChunkTable: "c", VersionTable: "v", LeaseTable: "l"}, true},
		{"TableTooLong", postgresstore.Options{Table: long + "t", ChunkTable: "c", VersionTable: "v", LeaseTable: "l"}, false},
		{"ChunkTableTooLong", postgresstore.Options{Table: long, VersionTable: "v", LeaseTable: "l"}, false}, // long + "_chunks"
		{"VersionTableTooLong", postgresstore.Options{Table: long, ChunkTable: "c", LeaseTable: "l"}, false}, // long + "_versions"
		{"LeaseTableTooLong", postgresstore.Options{Table: long, ChunkTable: "c", VersionTable: "v"}, false}, // long + "_leases"
		{"LeaseTableNUL", postgresstore.Options{LeaseTable: "a\x00b"}, false},
		{"SameLeaseTable", postgresstore.Options{Table: "x", LeaseTable: "x"}, false},
		{"LeaseTableIsVersionTable", postgresstore.Options{VersionTable: "v", LeaseTable: "v"}, false},
		{"LeaseTableIsChunkTable", postgresstore.Options{ChunkTable: "c", LeaseTable: "c"}, false},
		{"SchemaTooLong", postgresstore.Options{Schema: long + "s"}, false},
		{"NUL", postgresstore.Options{Table: "a\x00b"}, false},
		{"BadUTF8", postgresstore.Options{Table: "a\xffb"}, false},
		{"VersionTableNUL", postgresstore.Options{VersionTable: "a\x00b"}, false},
		{"SameNames", postgresstore.Options{Table: "x", ChunkTable: "x"}, false},
		{"SameVersionTable", postgresstore.Options{Table: "x", VersionTable: "x"}, false},
		{"VersionTableIsChunkTable", postgresstore.Options{ChunkTable: "c", VersionTable: "c"}, false},
		{"Keep1", postgresstore.Options{Keep: 1}, true},
		{"Keep100", postgresstore.Options{Keep: 100}, true},
		{"NegativeKeep", postgresstore.Options{Keep: -1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// No query is made: the options are refused first, or the tables are not created.
			tt.opts.SkipCreateTables = true
			pool, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none")
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			st, err := postgresstore.New(t.Context(), pool, &tt.opts)
			if tt.ok && err != nil {
				t.Errorf("New(%+v): %v", tt.opts, err)
			}
			if !tt.ok && (err == nil || !strings.HasPrefix(err.Error(), "postgresstore: ")) {
				t.Errorf("New(%+v) = %v, %v; want a postgresstore error", tt.opts, st, err)
			}
		})
	}
	if _, err := postgresstore.New(t.Context(), nil, nil); err == nil {
		t.Error("New with a nil pool succeeded")
	}
}

// TestNewConcurrent starts several stores on the same missing tables at once, as replicas of a
// service would: every New succeeds.
func TestNewConcurrent(t *testing.T) {
	pool := newPool(t, serverURL(t))
	opts := postgresstore.Options{Table: uniqueTable()}
	var wg sync.WaitGroup
	stores := make([]*postgresstore.Store, 6)
	for i := range stores {
		wg.Go(func() {
			st, err := postgresstore.New(t.Context(), pool, &opts)
			if err != nil {
				t.Errorf("concurrent New: %v", err)
			}
			stores[i] = st
		})
	}
	wg.Wait()
	for _, st := range stores {
		if st != nil {
			dropTables(t, pool, st)
			break
		}
	}
}

// TestSkipCreateTables checks that a store used without New creating its tables reports the
// missing table as an error, never as a missing session.
func TestSkipCreateTables(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st, err := postgresstore.New(ctx, pool, &postgresstore.Options{Table: uniqueTable(), SkipCreateTables: true})
	if err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	ok, err := st.SessionExists(ctx, "a")
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
		t.Errorf("SessionExists without tables = %v, %v; want an undefined_table error", ok, err)
	}
	err = st.Extract(ctx, "a", io.Discard)
	if errors.Is(err, remoteauth.ErrNotFound) || !errors.As(err, &pgErr) {
		t.Errorf("Extract without tables: %v; want a server error, not ErrNotFound", err)
	}
	if err := st.Save(ctx, "a", strings.NewReader("x")); !errors.As(err, &pgErr) {
		t.Errorf("Save without tables: %v; want a server error", err)
	}
}

// TestErrors checks the shape of errors: the package, the operation, the session, and the
// wrapped cause.
func TestErrors(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, nil)
	err := st.Extract(ctx, "RemoteAuth-bob", io.Discard)
	want := `postgresstore: extract session "RemoteAuth-bob": ` + remoteauth.ErrNotFound.Error()
	if !errors.Is(err, remoteauth.ErrNotFound) || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Extract of a missing session: %q; want it to begin with %q", err, want)
	}
	err = st.Delete(ctx, "../a")
	if !errors.Is(err, remoteauth.ErrInvalidSession) || !strings.HasPrefix(err.Error(), "postgresstore: delete: ") || !strings.Contains(err.Error(), `"../a"`) {
		t.Errorf("Delete with an invalid name: %q, want a postgresstore error wrapping ErrInvalidSession that names the session", err)
	}
	// A server error is a *pgconn.PgError underneath.
	if _, err := pool.Exec(ctx, "ALTER TABLE "+func() string { s, _, _ := st.TableNames(); return s }()+" ADD CONSTRAINT no_x CHECK (session <> 'x')"); err != nil {
		t.Fatal(err)
	}
	err = st.Save(ctx, "x", strings.NewReader("archive"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || !strings.HasPrefix(err.Error(), `postgresstore: save session "x": `) {
		t.Errorf("Save refused by a constraint: %v; want a check_violation PgError named after the session", err)
	}
}

// TestCorruption damages the rows behind an archive: Extract reports ErrCorruptArchive, and
// writes nothing when the damage shows in the counts.
func TestCorruption(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	const chunk = postgresstore.MinChunkSize
	for _, tt := range []struct {
		name, sql string
	}{
		{"MissingChunk", "DELETE FROM %[2]s WHERE session = 's' AND seq = 1"},
		{"MissingLastChunk", "DELETE FROM %[2]s WHERE session = 's' AND seq = 2"},
		{"ShortChunk", "UPDATE %[2]s SET data = substring(data FROM 1 FOR 10) WHERE session = 's' AND seq = 0"},
		{"ExtraChunk", "INSERT INTO %[2]s (session, gen, seq, data) SELECT session, gen, 3, '\\x00' FROM %[1]s WHERE session = 's'"},
		{"RenumberedChunk", "UPDATE %[2]s SET seq = 7 WHERE session = 's' AND seq = 2"},
		{"NoChunks", "DELETE FROM %[2]s WHERE session = 's'"},
		{"WrongSize", "UPDATE %[1]s SET size = size + 1 WHERE session = 's'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t, pool, pool, &postgresstore.Options{ChunkSize: chunk})
			sessions, chunks, _ := st.TableNames()
			if err := st.Save(ctx, "s", content{seed: 2, size: 2*chunk + 1}.reader()); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, fmt.Sprintf(tt.sql, sessions, chunks)); err != nil {
				t.Fatal(err)
			}
			var w bytes.Buffer
			err := st.Extract(ctx, "s", &w)
			if !errors.Is(err, remoteauth.ErrCorruptArchive) || !strings.Contains(err.Error(), `"s"`) {
				t.Errorf("Extract of a damaged archive: %v; want an error wrapping ErrCorruptArchive naming the session", err)
			}
			if w.Len() != 0 {
				t.Errorf("Extract of a damaged archive wrote %d bytes, want none", w.Len())
			}
			t.Log(err)
			// A new Save repairs the session.
			c := content{seed: 3, size: chunk + 5}
			if err := st.Save(ctx, "s", c.reader()); err != nil {
				t.Fatal(err)
			}
			w.Reset()
			if err := st.Extract(ctx, "s", &w); err != nil || !bytes.Equal(w.Bytes(), c.bytes(t)) {
				t.Errorf("Extract after a new Save: %d bytes, %v", w.Len(), err)
			}
		})
	}
}

// TestExtractSnapshot checks that an Extract that began before a Save committed returns the
// archive it began with, although it reads the chunks after the commit.
func TestExtractSnapshot(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	const chunk = postgresstore.MinChunkSize
	st := newStore(t, pool, pool, &postgresstore.Options{ChunkSize: chunk})
	old, next := content{seed: 4, size: 40 * chunk}, content{seed: 5, size: 3*chunk + 1}
	if err := st.Save(ctx, "s", old.reader()); err != nil {
		t.Fatal(err)
	}
	// The writer blocks after the first chunk until a Save has replaced the archive.
	saved := make(chan error, 1)
	w := &hookWriter{after: chunk, hook: func() {
		go func() { saved <- st.Save(ctx, "s", next.reader()) }()
		if err := <-saved; err != nil {
			t.Errorf("Save during Extract: %v", err)
		}
	}}
	if err := st.Extract(ctx, "s", w); err != nil {
		t.Fatalf("Extract during a Save: %v", err)
	}
	if !w.called {
		t.Fatal("the Save did not run during the Extract")
	}
	if !bytes.Equal(w.buf.Bytes(), old.bytes(t)) {
		t.Errorf("Extract that began before a Save wrote %d bytes that are not the archive it began with", w.buf.Len())
	}
	var buf bytes.Buffer
	if err := st.Extract(ctx, "s", &buf); err != nil || !bytes.Equal(buf.Bytes(), next.bytes(t)) {
		t.Errorf("Extract after the Save: %d bytes, %v; want the new archive", buf.Len(), err)
	}
}

// hookWriter buffers what it is given, and calls hook once, after the first write that brings
// it to at least after bytes.
type hookWriter struct {
	buf    bytes.Buffer
	after  int
	hook   func()
	called bool
}

func (w *hookWriter) Write(p []byte) (int, error) {
	n, _ := w.buf.Write(p)
	if !w.called && w.buf.Len() >= w.after {
		w.called = true
		w.hook()
	}
	return n, nil
}

// TestUsePoolExecMode runs a few round trips with pgx's default exec mode, prepared statements,
// on a direct connection.
func TestUsePoolExecMode(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, &postgresstore.Options{UsePoolExecMode: true})
	for i := range 3 {
		c := content{seed: uint64(10 + i), size: 3*postgresstore.DefaultChunkSize + 11}
		if err := st.Save(ctx, "RemoteAuth-a", c.reader()); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := st.Extract(ctx, "RemoteAuth-a", &buf); err != nil || !bytes.Equal(buf.Bytes(), c.bytes(t)) {
			t.Fatalf("Extract: %d bytes, %v", buf.Len(), err)
		}
	}
	if ok, err := st.SessionExists(ctx, "RemoteAuth-a"); !ok || err != nil {
		t.Errorf("SessionExists = %v, %v", ok, err)
	}
	if err := st.Delete(ctx, "RemoteAuth-a"); err != nil {
		t.Error(err)
	}
}

// TestLargeArchive saves and extracts an archive of more than 1 GiB, generated while it is
// streamed and hashed while it is extracted, and checks that the heap never grows by more than
// a few chunks.
func TestLargeArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 1 GiB round trip in -short mode")
	}
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, nil)
	c := content{seed: 1 << 30, size: 1<<30 + 12345}

	const maxHeap = 64 << 20
	heap := peakheap.Start()
	err := st.Save(ctx, "RemoteAuth-large", c.reader())
	saveHeap := heap.Stop()
	if err != nil {
		t.Fatalf("Save(%s): %v", c, err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, c.reader()); err != nil {
		t.Fatal(err)
	}
	got := &countingHash{h: sha256.New()}
	heap = peakheap.Start()
	err = st.Extract(ctx, "RemoteAuth-large", got)
	extractHeap := heap.Stop()
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if got.n != c.size || !bytes.Equal(got.h.Sum(nil), want.Sum(nil)) {
		t.Errorf("Extract wrote %d bytes with SHA-256 %x, want %d bytes with SHA-256 %x", got.n, got.h.Sum(nil), c.size, want.Sum(nil))
	}
	t.Logf("peak heap growth: Save %.1f MiB, Extract %.1f MiB", float64(saveHeap)/(1<<20), float64(extractHeap)/(1<<20))
	if saveHeap > maxHeap || extractHeap > maxHeap {
		t.Errorf("peak heap growth: Save %d bytes, Extract %d bytes; want both under %d", saveHeap, extractHeap, maxHeap)
	}
	if err := st.Delete(ctx, "RemoteAuth-large"); err != nil {
		t.Error(err)
	}
}

type countingHash struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
