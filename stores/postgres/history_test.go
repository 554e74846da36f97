package postgresstore_test

// Store-specific tests of History: the rows behind kept archives, Keep, eviction, a kept archive
// through a cut Save, the upgrade of tables made before the store kept history, and the keep URL
// parameter. (The conformance suite checks the History contract itself, Session.Restore falling
// back over this store included, directly and through PgBouncer.)

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// saveString saves data as session's archive.
func saveString(t *testing.T, st remoteauth.Store, session, data string) {
	t.Helper()
	if err := st.Save(t.Context(), session, strings.NewReader(data)); err != nil {
		t.Fatalf("Save(%q, %q): %v", session, data, err)
	}
}

// kept returns the kept archives of session, newest first, as strings, and their IDs.
func kept(t *testing.T, h remoteauth.History, session string) (data, ids []string) {
	t.Helper()
	list, err := h.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	for _, v := range list {
		var buf bytes.Buffer
		if err := h.ExtractVersion(t.Context(), session, v.ID, &buf); err != nil {
			t.Fatalf("ExtractVersion(%q, %q): %v", session, v.ID, err)
		}
		data = append(data, buf.String())
		ids = append(ids, v.ID)
	}
	return data, ids
}

// genRows returns, for each generation of session's chunk rows, ascending, the bytes its rows
// hold in seq order; and the generations of the session row and of the version rows (newest
// first).
func genRows(t *testing.T, pool *pgxpool.Pool, st *postgresstore.Store, session string) (chunks map[int64]string, current int64, versions []int64) {
	t.Helper()
	ctx := t.Context()
	sessions, chunkTable, versionTable := st.TableNames()
	chunks = map[int64]string{}
	rows, err := pool.Query(ctx, "SELECT gen, data FROM "+chunkTable+" WHERE session = $1 ORDER BY gen, seq", session)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var gen int64
		var data []byte
		if err := rows.Scan(&gen, &data); err != nil {
			t.Fatal(err)
		}
		chunks[gen] += string(data)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT coalesce((SELECT gen FROM "+sessions+" WHERE session = $1), 0)", session).Scan(&current); err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, "SELECT gen FROM "+versionTable+" WHERE session = $1 ORDER BY gen DESC", session)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var gen int64
		if err := rows.Scan(&gen); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, gen)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return chunks, current, versions
}

// TestHistoryLayout checks the rows behind kept archives: the session row describes the current
// archive, the version table the previous ones, every archive's chunk rows carry its generation,
// and the IDs are those generations.
func TestHistoryLayout(t *testing.T) {
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, &postgresstore.Options{ChunkSize: postgresstore.MinChunkSize})
	const session = "RemoteAuth-alice"
	saved := []string{strings.Repeat("1", 2500), strings.Repeat("2", 1500), strings.Repeat("3", 10)}
	for _, s := range saved {
		saveString(t, st, session, s)
	}
	saveString(t, st, "RemoteAuth-bob", "bob's archive") // rows of another session stay apart

	data, ids := kept(t, st, session)
	if want := []string{saved[2], saved[1]}; !slices.Equal(data, want) {
		t.Fatalf("Versions lists %d archives %.20q, want the last two", len(data), data)
	}
	chunks, current, versions := genRows(t, pool, st, session)
	if got := strconv.FormatInt(current, 10); got != ids[0] {
		t.Errorf("the session row has gen %s, want the current archive's ID %s", got, ids[0])
	}
	if len(versions) != 1 || strconv.FormatInt(versions[0], 10) != ids[1] {
		t.Errorf("the version table holds gens %v, want only the previous archive's ID %s", versions, ids[1])
	}
	if len(chunks) != 2 || chunks[current] != saved[2] || chunks[versions[0]] != saved[1] {
		t.Errorf("chunk rows hold %d generations; want 2: the current archive under gen %d and the previous under its gen", len(chunks), current)
	}
	if current <= versions[0] {
		t.Errorf("the current gen %d is not above the previous one %d", current, versions[0])
	}
	sessions, _, versionTable := st.TableNames()
	var size, nchunks, chunkSize int64
	q := "SELECT size, chunks, chunk_size FROM " + versionTable + " WHERE session = $1 AND gen = $2"
	if err := pool.QueryRow(t.Context(), q, session, versions[0]).Scan(&size, &nchunks, &chunkSize); err != nil ||
		size != int64(len(saved[1])) || nchunks != 2 || chunkSize != postgresstore.MinChunkSize {
		t.Errorf("version row: size %d, chunks %d, chunk_size %d, %v; want %d, 2, %d", size, nchunks, chunkSize, err, len(saved[1]), postgresstore.MinChunkSize)
	}
	// List shows sessions, never kept archives.
	list, err := st.List(t.Context())
	if err != nil || len(list) != 2 || list[0].Name != "RemoteAuth-alice" || list[0].Size != int64(len(saved[2])) {
		t.Errorf("List = %+v, %v; want the two sessions, alice with her current archive", list, err)
	}
	// Delete removes every row of the session, the kept archives' too, and no other session's.
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	chunks, current, versions = genRows(t, pool, st, session)
	if len(chunks) != 0 || current != 0 || len(versions) != 0 {
		t.Errorf("after Delete: %d generations of chunk rows, session row gen %d, version rows %v; want none", len(chunks), current, versions)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM "+sessions).Scan(&n); err != nil || n != 1 {
		t.Errorf("session rows after deleting alice: %d, %v; want bob's", n, err)
	}
	// Saved again, the session starts a new history, with IDs its former archives never had.
	saveString(t, st, session, "again")
	_, again := kept(t, st, session)
	if len(again) != 1 || slices.Contains(ids, again[0]) {
		t.Errorf("after Delete and Save, IDs %q; want one new ID, not one of %q", again, ids)
	}
}

// TestHistoryKeep saves five archives with several values of Keep: Versions lists the last
// Keep, and the tables hold the rows of those and no others.
func TestHistoryKeep(t *testing.T) {
	pool := newPool(t, serverURL(t))
	saved := []string{"v1", "v2", "v3", "v4", "v5"}
	for _, keep := range []int{1, 2, 3, 5, 7} {
		t.Run(fmt.Sprint("Keep=", keep), func(t *testing.T) {
			st := newStore(t, pool, pool, &postgresstore.Options{Keep: keep})
			for _, s := range saved {
				saveString(t, st, "a", s)
			}
			want := slices.Clone(saved[max(0, len(saved)-keep):])
			slices.Reverse(want)
			data, ids := kept(t, st, "a")
			if !slices.Equal(data, want) {
				t.Errorf("Versions = %q, want %q", data, want)
			}
			chunks, _, versions := genRows(t, pool, st, "a")
			if len(chunks) != len(want) || len(versions) != len(want)-1 {
				t.Errorf("rows: %d generations of chunks, %d version rows; want %d and %d", len(chunks), len(versions), len(want), len(want)-1)
			}
			for i, v := range versions[:min(len(versions), max(0, len(ids)-1))] {
				if strconv.FormatInt(v, 10) != ids[i+1] {
					t.Errorf("version row %d has gen %d, want ID %s", i, v, ids[i+1])
				}
			}
		})
	}
}

// TestHistoryKeepChanged opens the same tables with a smaller Keep: the listing is cut at once,
// what is beyond it cannot be extracted, and the next Save evicts its rows.
func TestHistoryKeepChanged(t *testing.T) {
	pool := newPool(t, serverURL(t))
	st3 := newStore(t, pool, pool, &postgresstore.Options{Keep: 3})
	for _, s := range []string{"v1", "v2", "v3"} {
		saveString(t, st3, "a", s)
	}
	_, ids := kept(t, st3, "a")
	sessions, _ := tableNames(st3)
	st2, err := postgresstore.New(t.Context(), pool, &postgresstore.Options{Table: sessions, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := kept(t, st2, "a"); !slices.Equal(data, []string{"v3", "v2"}) {
		t.Errorf("Versions with Keep 2 = %q, want [v3 v2]", data)
	}
	err = st2.ExtractVersion(t.Context(), "a", ids[2], io.Discard)
	if !errors.Is(err, remoteauth.ErrNotFound) {
		t.Errorf("ExtractVersion of the third archive through a store with Keep 2: %v; want ErrNotFound", err)
	}
	saveString(t, st2, "a", "v4")
	if chunks, _, versions := genRows(t, pool, st2, "a"); len(chunks) != 2 || len(versions) != 1 {
		t.Errorf("after a Save with Keep 2: %d generations of chunks, version rows %v; want 2 and 1", len(chunks), versions)
	}
	st1, err := postgresstore.New(t.Context(), pool, &postgresstore.Options{Table: sessions, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	saveString(t, st1, "a", "v5")
	if chunks, _, versions := genRows(t, pool, st1, "a"); len(chunks) != 1 || len(versions) != 0 {
		t.Errorf("after a Save with Keep 1: %d generations of chunks, version rows %v; want 1 and none", len(chunks), versions)
	}
	if data, _ := kept(t, st3, "a"); !slices.Equal(data, []string{"v5"}) {
		t.Errorf("Versions with Keep 3 after a Save with Keep 1 = %q, want [v5]", data)
	}
}

// TestHistoryExtractVersionSnapshot checks that an ExtractVersion that began before a Save
// evicted its archive writes it whole, from its snapshot.
func TestHistoryExtractVersionSnapshot(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	const chunk = postgresstore.MinChunkSize
	st := newStore(t, pool, pool, &postgresstore.Options{ChunkSize: chunk})
	oldest := content{seed: 20, size: 40 * chunk}
	for _, c := range []content{oldest, {seed: 21, size: 10}} {
		if err := st.Save(ctx, "s", c.reader()); err != nil {
			t.Fatal(err)
		}
	}
	versions, err := st.Versions(ctx, "s")
	if err != nil || len(versions) != 2 {
		t.Fatalf("Versions = %v, %v", versions, err)
	}
	id := versions[1].ID
	// The writer blocks after the first chunk until a Save has evicted the archive.
	w := &hookWriter{after: chunk, hook: func() {
		if err := st.Save(ctx, "s", content{seed: 22, size: 3 * chunk}.reader()); err != nil {
			t.Errorf("Save during ExtractVersion: %v", err)
		}
	}}
	if err := st.ExtractVersion(ctx, "s", id, w); err != nil {
		t.Fatalf("ExtractVersion during a Save that evicts its archive: %v", err)
	}
	if !w.called || !bytes.Equal(w.buf.Bytes(), oldest.bytes(t)) {
		t.Errorf("ExtractVersion that began before the eviction wrote %d bytes that are not its archive (Save ran: %v)", w.buf.Len(), w.called)
	}
	err = st.ExtractVersion(ctx, "s", id, io.Discard)
	if !errors.Is(err, remoteauth.ErrNotFound) || !strings.Contains(err.Error(), id) {
		t.Errorf("ExtractVersion after the eviction: %v; want ErrNotFound naming archive %s", err, id)
	}
}

// TestHistoryFaultSaveCut cuts the connection in the middle of a Save of a session with kept
// archives: every kept archive stays, with its ID, whole, and no row of the failed Save remains.
func TestHistoryFaultSaveCut(t *testing.T) {
	ctx := t.Context()
	cut, direct, admin, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-cut"
	older, newer := content{seed: 30, size: 3<<20 + 5}, content{seed: 31, size: 2<<20 + 7}
	for _, c := range []content{older, newer} {
		if err := cut.Save(ctx, session, c.reader()); err != nil {
			t.Fatal(err)
		}
	}
	before, err := direct.Versions(ctx, session)
	if err != nil || len(before) != 2 {
		t.Fatalf("Versions = %v, %v; want 2 archives", before, err)
	}

	proxy.CutAfter(5 << 20)
	err = cut.Save(ctx, session, content{seed: 32, size: 16 << 20}.reader())
	proxy.Refuse(false)
	if err == nil || !isNetworkError(err) {
		t.Fatalf("Save through a cut connection: %v; want a network error", err)
	}
	waitGone(t, admin)
	checkRows(t, admin, direct, session, newer.size)
	for name, st := range map[string]*postgresstore.Store{"direct": direct, "through the proxy again": cut} {
		after, err := st.Versions(ctx, session)
		if err != nil || !slices.Equal(after, before) {
			t.Errorf("Versions %s after the cut Save = %v, %v; want %v", name, after, err, before)
			continue
		}
		for i, c := range []content{newer, older} {
			var buf bytes.Buffer
			if err := st.ExtractVersion(ctx, session, after[i].ID, &buf); err != nil || !bytes.Equal(buf.Bytes(), c.bytes(t)) {
				t.Errorf("ExtractVersion %s of %s after the cut Save: %d bytes, %v; want %s whole", name, after[i].ID, buf.Len(), err, c)
			}
		}
	}
	// The next Save keeps the newer archive and evicts the older.
	next := content{seed: 33, size: 1 << 20}
	if err := cut.Save(ctx, session, next.reader()); err != nil {
		t.Fatalf("Save after the cut: %v", err)
	}
	checkRows(t, admin, direct, session, next.size)
	if after, err := direct.Versions(ctx, session); err != nil || len(after) != 2 || after[1] != before[0] {
		t.Errorf("Versions after the next Save = %v, %v; want the new archive, then %v", after, err, before[0])
	}
}

// The schema before the store kept history, as New created it: the tables that the upgrade
// starts from.
const legacySchema = `
CREATE TABLE %[1]s (
	session    text COLLATE "C" PRIMARY KEY,
	size       bigint NOT NULL CHECK (size >= 0),
	chunks     integer NOT NULL CHECK (chunks >= 0),
	chunk_size integer NOT NULL CHECK (chunk_size > 0),
	saved_at   timestamptz NOT NULL
);
CREATE TABLE %[2]s (
	session text COLLATE "C" NOT NULL REFERENCES %[1]s (session) ON DELETE CASCADE,
	seq     integer NOT NULL CHECK (seq >= 0),
	data    bytea NOT NULL,
	PRIMARY KEY (session, seq)
);
ALTER TABLE %[2]s ALTER COLUMN data SET STORAGE EXTERNAL;
INSERT INTO %[1]s VALUES ('RemoteAuth-old', 2500, 3, 1024, '2024-05-01 12:00:00+00'), ('empty', 0, 0, 1024, '2024-05-01 12:00:00+00');
INSERT INTO %[2]s SELECT 'RemoteAuth-old', i, decode(repeat('0' || to_hex(i + 10), CASE WHEN i < 2 THEN 1024 ELSE 452 END), 'hex') FROM generate_series(0, 2) i;
`

// legacyArchive is the archive of RemoteAuth-old in legacySchema.
var legacyArchive = strings.Repeat("\x0a", 1024) + strings.Repeat("\x0b", 1024) + strings.Repeat("\x0c", 452)

// TestHistoryUpgrade makes tables as the store made them before it kept history, with archives
// in them, and checks that New upgrades them (and that CreateTablesSQL does, for a store used with
// SkipCreateTables): the archives stay readable, each as the current one with ID 1, the next
// Save keeps it, and a second upgrade changes nothing.
func TestHistoryUpgrade(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	for _, byNew := range []bool{true, false} {
		name := "New"
		if !byNew {
			name = "CreateTablesSQL"
		}
		t.Run(name, func(t *testing.T) {
			opts := postgresstore.Options{Table: uniqueTable(), SkipCreateTables: true}
			plain, err := postgresstore.New(ctx, pool, &opts)
			if err != nil {
				t.Fatal(err)
			}
			dropTables(t, pool, plain)
			sessions, chunks, versions := plain.TableNames()
			if _, err := pool.Exec(ctx, fmt.Sprintf(legacySchema, sessions, chunks)); err != nil {
				t.Fatal(err)
			}
			upgrade := func() *postgresstore.Store {
				t.Helper()
				if byNew {
					o := opts
					o.SkipCreateTables = false
					st, err := postgresstore.New(ctx, pool, &o)
					if err != nil {
						t.Fatalf("New on tables of the former layout: %v", err)
					}
					return st
				}
				if _, err := pool.Exec(ctx, plain.CreateTablesSQL()); err != nil {
					t.Fatalf("running CreateTablesSQL() on tables of the former layout:\n%s\n%v", plain.CreateTablesSQL(), err)
				}
				return plain
			}
			st := upgrade()
			var pk string
			q := "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'"
			if err := pool.QueryRow(ctx, q, chunks).Scan(&pk); err != nil || pk != "PRIMARY KEY (session, gen, seq)" {
				t.Errorf("primary key of the chunk table after the upgrade: %q, %v", pk, err)
			}
			var buf bytes.Buffer
			if err := st.Extract(ctx, "RemoteAuth-old", &buf); err != nil || buf.String() != legacyArchive {
				t.Fatalf("Extract of an archive saved before the upgrade: %d bytes, %v; want it whole", buf.Len(), err)
			}
			list, err := st.Versions(ctx, "RemoteAuth-old")
			if err != nil || len(list) != 1 || list[0].ID != "1" || list[0].Size != int64(len(legacyArchive)) || list[0].Saved.Year() != 2024 {
				t.Errorf("Versions of an archive saved before the upgrade = %+v, %v; want one, ID 1, as saved", list, err)
			}
			if data, _ := kept(t, st, "empty"); !slices.Equal(data, []string{""}) {
				t.Errorf("Versions of an empty archive saved before the upgrade = %q, want it", data)
			}
			// A second upgrade, as a restart runs, succeeds and keeps the archives as they are.
			st = upgrade()
			saveString(t, st, "RemoteAuth-old", "new archive")
			if data, ids := kept(t, st, "RemoteAuth-old"); !slices.Equal(data, []string{"new archive", legacyArchive}) || ids[1] != "1" {
				t.Errorf("after a Save: Versions = %.20q with IDs %q; want the new archive, then the former one as ID 1", data, ids)
			}
			// A store from before the upgrade writes no gen: the server refuses its rows rather
			// than let it mix generations.
			_, err = pool.Exec(ctx, "INSERT INTO "+chunks+" (session, seq, data) VALUES ('RemoteAuth-old', 9, '\\x00')")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23502" { // not_null_violation
				t.Errorf("a chunk row without gen: %v; want a not_null_violation", err)
			}
			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+versions).Scan(&n); err != nil || n != 1 {
				t.Errorf("rows in the version table: %d, %v; want 1", n, err)
			}
		})
	}
}

// TestHistoryURLKeep opens stores with the keep parameter: it sets how many archives are kept.
func TestHistoryURLKeep(t *testing.T) {
	ctx := t.Context()
	server := serverURL(t)
	admin := newPool(t, server)
	for _, keep := range []int{1, 3} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			table := uniqueTable()
			st, err := remoteauth.OpenStore(ctx, withParams(t, server, fmt.Sprintf("keep=%d&table=%s&version_table=%s", keep, table, table+"_kept")))
			if err != nil {
				t.Fatal(err)
			}
			defer st.(io.Closer).Close()
			pst := st.(*postgresstore.Store)
			dropTables(t, admin, pst)
			if _, _, versions := pst.TableNames(); versions != `"`+table+`_kept"` {
				t.Errorf("version table %s, want %q", versions, table+"_kept")
			}
			for i := range 4 {
				saveString(t, st, "a", fmt.Sprint("v", i))
			}
			data, _ := kept(t, pst, "a")
			want := []string{"v3", "v2", "v1"}[:keep]
			if !slices.Equal(data, want) {
				t.Errorf("Versions = %q, want %q", data, want)
			}
		})
	}
}
