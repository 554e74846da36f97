package redisstore_test

// Tests of History beyond the conformance suite's History group: the keys it uses, Keep, the
// TTL, a Save that fails or is overtaken, archives written before history existed, and the URL
// parameter. (Session.Restore falling back over this store is the suite's
// History/RestoreFallsBack.)

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// versions returns session's kept archives, newest first: their IDs and their bytes.
func versions(t testing.TB, st *redisstore.Store, session string) (ids []string, data [][]byte) {
	t.Helper()
	list, err := st.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	for _, v := range list {
		var buf bytes.Buffer
		if err := st.ExtractVersion(t.Context(), session, v.ID, &buf); err != nil {
			t.Fatalf("ExtractVersion(%q, %q): %v", session, v.ID, err)
		}
		if int64(buf.Len()) != v.Size {
			t.Errorf("ExtractVersion(%q, %q) wrote %d bytes; Versions says %d", session, v.ID, buf.Len(), v.Size)
		}
		ids = append(ids, v.ID)
		data = append(data, buf.Bytes())
	}
	return ids, data
}

// checkVersions checks that session keeps want, newest first, byte for byte, and returns their IDs.
func checkVersions(t testing.TB, st *redisstore.Store, session string, want ...[]byte) []string {
	t.Helper()
	ids, got := versions(t, st, session)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("Versions(%q): %d archives of %v bytes, want %d of %v bytes", session, len(got), lens(got), len(want), lens(want))
	}
	return ids
}

func lens(list [][]byte) []int {
	n := make([]int, len(list))
	for i, b := range list {
		n[i] = len(b)
	}
	return n
}

// TestHistoryLayout checks the keys of the package documentation: the previous archive moves,
// chunks untouched, from the meta key to the head of the history list, as
// "<gen>:<chunks>:<size>:<chunk_size>:<saved_ms>", and its ID is its generation.
func TestHistoryLayout(t *testing.T) {
	ctx := t.Context()
	rdb := newClient(t, serverOptions(t))
	const chunkSize = redisstore.MinChunkSize
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: chunkSize})
	const session = "RemoteAuth-alice"
	tag := prefix + "{" + session + "}:"
	inputs := [][]byte{pattern(1, 3*chunkSize+5), pattern(2, chunkSize), pattern(3, 10)}
	var metas []map[string]string
	for _, in := range inputs {
		save(t, st, session, in)
		meta, err := rdb.HGetAll(ctx, tag+"meta").Result()
		if err != nil {
			t.Fatal(err)
		}
		metas = append(metas, meta)
	}
	// Keep 2: the third Save kept the second archive and evicted the first.
	entry := func(m map[string]string) string {
		return strings.Join([]string{m["gen"], m["chunks"], m["size"], m["chunk_size"], m["saved_ms"]}, ":")
	}
	hist, err := rdb.LRange(ctx, tag+"history", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{entry(metas[1])}; !slices.Equal(hist, want) {
		t.Errorf("history list %q, want %q", hist, want)
	}
	want := []string{tag + "chunk:" + metas[1]["gen"] + ":0", tag + "chunk:" + metas[2]["gen"] + ":0", tag + "history", tag + "meta"}
	slices.Sort(want)
	if got := sessionKeys(t, rdb, prefix, session); !slices.Equal(got, want) {
		t.Errorf("keys %q, want %q", got, want)
	}
	for _, k := range want {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl != -1 {
			t.Errorf("%s: PTTL %v, want none", k, ttl)
		}
	}
	if ids := checkVersions(t, st, session, inputs[2], inputs[1]); !slices.Equal(ids, []string{metas[2]["gen"], metas[1]["gen"]}) {
		t.Errorf("IDs %q, want the generations %s and %s", ids, metas[2]["gen"], metas[1]["gen"])
	}
	list, err := st.Versions(ctx, session)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range list {
		if ms, _ := strconv.ParseInt(metas[2-i]["saved_ms"], 10, 64); !v.Saved.Equal(time.UnixMilli(ms)) {
			t.Errorf("Versions[%d].Saved = %v, want saved_ms %d", i, v.Saved, ms)
		}
	}
	// A List shows the session once, not its kept archives.
	if infos, err := st.List(ctx); err != nil || len(infos) != 1 || infos[0].Name != session || infos[0].Size != int64(len(inputs[2])) {
		t.Errorf("List = %+v, %v; want the session once, with the current archive's size", infos, err)
	}
	if err := st.Delete(ctx, session); err != nil {
		t.Fatal(err)
	}
	if got := sessionKeys(t, rdb, prefix, session); len(got) != 0 {
		t.Errorf("after Delete: keys %q remain", got)
	}
}

// TestHistoryKeep saves five archives with each Keep: the last Keep are kept, the history list
// holds Keep-1 entries (none, and no key, with Keep 1), and the evicted archives' chunks are gone.
func TestHistoryKeep(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	inputs := make([][]byte, 5)
	for i := range inputs {
		inputs[i] = pattern(uint64(20+i), 3000+i)
	}
	for _, keep := range []int{1, 2, 3, 5, 7} {
		t.Run(fmt.Sprint("Keep=", keep), func(t *testing.T) {
			st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: redisstore.MinChunkSize, Keep: keep})
			for _, in := range inputs {
				save(t, st, "a", in)
			}
			want := slices.Clone(inputs[max(0, len(inputs)-keep):])
			slices.Reverse(want)
			checkVersions(t, st, "a", want...)
			n, err := rdb.LLen(t.Context(), prefix+"{a}:history").Result()
			if err != nil || n != int64(len(want)-1) {
				t.Errorf("history list: %d entries, %v; want %d", n, err, len(want)-1)
			}
			chunks := 0
			for _, in := range want {
				chunks += (len(in) + redisstore.MinChunkSize - 1) / redisstore.MinChunkSize
			}
			wantKeys := 1 + chunks // the meta key and the kept chunks
			if keep > 1 {
				wantKeys++ // the history list
			}
			if got := sessionKeys(t, rdb, prefix, "a"); len(got) != wantKeys {
				t.Errorf("%d keys %q, want %d", len(got), got, wantKeys)
			}
		})
	}
}

// TestHistoryKeepChanged reopens a prefix with a smaller Keep: Versions lists that many at once,
// and the next Save evicts the rest; with Keep 1 it removes the history list.
func TestHistoryKeepChanged(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st3, prefix := newStore(t, rdb, &redisstore.Options{Keep: 3})
	v := [][]byte{pattern(1, 100), pattern(2, 200), pattern(3, 300), pattern(4, 400), pattern(5, 500)}
	for _, in := range v[:3] {
		save(t, st3, "a", in)
	}
	st2, _ := newStore(t, rdb, &redisstore.Options{KeyPrefix: prefix, Keep: 2})
	checkVersions(t, st2, "a", v[2], v[1])
	ids := checkVersions(t, st3, "a", v[2], v[1], v[0])
	var w bytes.Buffer
	if err := st2.ExtractVersion(t.Context(), "a", ids[2], &w); !errors.Is(err, remoteauth.ErrNotFound) || w.Len() != 0 {
		t.Errorf("ExtractVersion of the third archive with Keep 2: %v, %d bytes; want ErrNotFound, nothing", err, w.Len())
	}
	save(t, st2, "a", v[3])
	checkVersions(t, st3, "a", v[3], v[2])
	st1, _ := newStore(t, rdb, &redisstore.Options{KeyPrefix: prefix, Keep: 1})
	save(t, st1, "a", v[4])
	checkVersions(t, st3, "a", v[4])
	if got := sessionKeys(t, rdb, prefix, "a"); len(got) != 2 {
		t.Errorf("after a Save with Keep 1: keys %q, want the meta key and one chunk", got)
	}
}

// TestHistoryExistingArchive writes a session as the store did before it kept history (the meta
// key and the chunks, no history list): it is listed under its generation, and a Save keeps it.
func TestHistoryExistingArchive(t *testing.T) {
	ctx := t.Context()
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, nil)
	const session, gen = "RemoteAuth-old", "0123456789abcdef"
	tag := prefix + "{" + session + "}:"
	old := pattern(1, 2500)
	rdb.Set(ctx, tag+"chunk:"+gen+":0", old[:2000], 0)
	rdb.Set(ctx, tag+"chunk:"+gen+":1", old[2000:], 0)
	rdb.HSet(ctx, tag+"meta", "gen", gen, "chunks", 2, "size", len(old), "chunk_size", 2000, "saved_ms", 1700000000000)
	if ids := checkVersions(t, st, session, old); !slices.Equal(ids, []string{gen}) {
		t.Errorf("IDs %q, want the generation %s", ids, gen)
	}
	list, err := st.Versions(ctx, session)
	if err != nil {
		t.Fatal(err)
	}
	if !list[0].Saved.Equal(time.UnixMilli(1700000000000)) {
		t.Errorf("Versions = %+v; want saved_ms as the time", list)
	}
	next := pattern(2, 5000)
	save(t, st, session, next)
	if ids := checkVersions(t, st, session, next, old); len(ids) == 2 && ids[1] != gen {
		t.Errorf("the archive written before history has ID %q once kept, want %s", ids[1], gen)
	}
}

// TestHistoryTTL: with Options.TTL, every Save gives the kept archives the current one's expiry,
// so a session's archives expire together; a store without TTL makes them persistent again.
func TestHistoryTTL(t *testing.T) {
	ctx := t.Context()
	rdb := newClient(t, serverOptions(t))
	const ttl = 2 * time.Second
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10, TTL: ttl, Keep: 3})
	check := func(session string, persistent bool) {
		t.Helper()
		keys := sessionKeys(t, rdb, prefix, session)
		if len(keys) < 6 {
			t.Fatalf("keys %q: want a meta key, a history list and chunks of three archives", keys)
		}
		for _, k := range keys {
			pttl := rdb.PTTL(ctx, k).Val()
			if persistent && pttl != -1 {
				t.Errorf("%s: PTTL %v, want none", k, pttl)
			}
			if !persistent && (pttl <= 0 || pttl > ttl) {
				t.Errorf("%s: PTTL %v, want at most %v", k, pttl, ttl)
			}
		}
	}
	for i := range 3 {
		save(t, st, "a", pattern(uint64(i), 2000))
		save(t, st, "b", pattern(uint64(i), 2000))
	}
	check("a", false)
	noTTL, _ := newStore(t, rdb, &redisstore.Options{KeyPrefix: prefix, ChunkSize: 1 << 10, Keep: 3})
	save(t, noTTL, "b", pattern(9, 2000))
	check("b", true)
	time.Sleep(ttl + 500*time.Millisecond)
	if list, err := st.Versions(ctx, "a"); err != nil || len(list) != 0 {
		t.Errorf("Versions after the TTL = %v, %v; want none", list, err)
	}
	if got := sessionKeys(t, rdb, prefix, "a"); len(got) != 0 {
		t.Errorf("after the TTL: keys %q remain", got)
	}
	checkVersions(t, st, "b", pattern(9, 2000), pattern(2, 2000), pattern(1, 2000))
}

// TestHistorySaveConnectionCut: a Save cut off mid-way (whose cleanup cannot reach the server
// either) neither adds nor evicts a kept archive; the next Save evicts the oldest as usual and
// removes what the failed one left.
func TestHistorySaveConnectionCut(t *testing.T) {
	via, direct, p := proxied(t, serverOptions(t))
	st, prefix := newStore(t, via, &redisstore.Options{ChunkSize: 64 << 10})
	const session = "RemoteAuth-cut"
	v1, v2 := pattern(1, 1<<20+7), pattern(2, 300<<10)
	save(t, st, session, v1)
	save(t, st, session, v2)
	before := checkVersions(t, st, session, v2, v1)

	p.CutAfter(3 << 20)
	if err := st.Save(t.Context(), session, bytes.NewReader(pattern(3, 16<<20))); err == nil {
		t.Fatal("Save through a connection cut after 3 MiB succeeded")
	}
	if len(strayKeys(t, direct, prefix)) == 0 {
		t.Error("the failed Save left nothing behind: the test does not test that the next Save removes it")
	}
	p.Refuse(false)
	if after := checkVersions(t, st, session, v2, v1); !slices.Equal(after, before) {
		t.Errorf("after a failed Save the IDs are %q, want %q as before", after, before)
	}
	v4 := pattern(4, 100<<10)
	save(t, st, session, v4)
	if ids := checkVersions(t, st, session, v4, v2); len(ids) == 2 && ids[1] != before[0] {
		t.Errorf("the kept archive's ID changed from %s to %s", before[0], ids[1])
	}
	if stray := strayKeys(t, direct, prefix); len(stray) > 0 {
		t.Errorf("after the next Save, %d keys are no kept archive's, such as %s", len(stray), stray[0])
	}
}

// TestHistoryOverlappingSaves overlaps two Saves of a session: the second starts and commits
// while the first is half-way. Through one Store, both commit, in the order they completed, and
// both are kept; through two Stores (as two processes would), the first is overtaken, returns
// nil, and is not kept.
func TestHistoryOverlappingSaves(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	prev, first, second := pattern(1, 10<<10), pattern(2, 64<<10), pattern(3, 20<<10)
	for _, tt := range []struct {
		name       string
		sameStore  bool
		wantStored [][]byte
	}{
		{"OneStore", true, [][]byte{first, second, prev}},
		{"TwoStores", false, [][]byte{second, prev}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10, Keep: 3})
			other := st
			if !tt.sameStore {
				other, _ = newStore(t, rdb, &redisstore.Options{KeyPrefix: prefix, ChunkSize: 1 << 10, Keep: 3})
			}
			const session = "RemoteAuth-overlap"
			save(t, st, session, prev)
			r := &hookReader{r: bytes.NewReader(first), at: 32 << 10, hook: func() { save(t, other, session, second) }}
			if err := st.Save(t.Context(), session, r); err != nil {
				t.Fatalf("the first Save: %v", err)
			}
			checkVersions(t, st, session, tt.wantStored...)
			checkOnlyArchives(t, rdb, prefix)
		})
	}
}

// TestHistoryExtractVersionOutlivesEviction: an ExtractVersion into a slow writer, while Saves
// evict the archive it reads: it writes that archive whole, and its end deletes the evicted
// chunks.
func TestHistoryExtractVersionOutlivesEviction(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10})
	redisstore.SetLease(st, time.Second)
	const session = "RemoteAuth-slowversion"
	old := pattern(1, 10<<10)
	save(t, st, session, old)
	save(t, st, session, pattern(2, 10<<10))
	ids, _ := versions(t, st, session)
	var got bytes.Buffer
	saved := make(chan struct{})
	w := writerFunc(func(p []byte) (int, error) {
		if got.Len() == 0 {
			go func() {
				defer close(saved)
				for i := range 3 {
					save(t, st, session, pattern(uint64(10+i), 5<<10))
				}
			}()
			<-saved // the archive is evicted before the first chunk is written
		}
		time.Sleep(200 * time.Millisecond) // 10 chunks: 2 s, two leases
		return got.Write(p)
	})
	if err := st.ExtractVersion(t.Context(), session, ids[1], w); err != nil {
		t.Fatalf("slow ExtractVersion: %v", err)
	}
	if !bytes.Equal(got.Bytes(), old) {
		t.Fatalf("slow ExtractVersion wrote %d bytes that are not the archive it started with", got.Len())
	}
	var buf bytes.Buffer
	if err := st.ExtractVersion(t.Context(), session, ids[1], &buf); !errors.Is(err, remoteauth.ErrNotFound) || buf.Len() != 0 {
		t.Errorf("ExtractVersion of the evicted archive: %v, %d bytes; want ErrNotFound, nothing", err, buf.Len())
	}
	checkOnlyArchives(t, rdb, prefix)
}

// TestHistoryExtractEndsAfterKeep: an Extract of the current archive that ends after a Save has
// moved its generation to the history list leaves that kept archive whole.
func TestHistoryExtractEndsAfterKeep(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10})
	const session = "RemoteAuth-extractkept"
	old, next := pattern(1, 10<<10), pattern(2, 3<<10)
	save(t, st, session, old)
	var got bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		if got.Len() == 0 {
			save(t, st, session, next)
		}
		return got.Write(p)
	})
	if err := st.Extract(t.Context(), session, w); err != nil || !bytes.Equal(got.Bytes(), old) {
		t.Fatalf("Extract during a Save: %v, %d bytes; want the archive it started on", err, got.Len())
	}
	checkVersions(t, st, session, next, old)
	checkOnlyArchives(t, rdb, prefix)
}

// TestOpenStoreKeep opens the store with keep=3 in its URL.
func TestOpenStoreKeep(t *testing.T) {
	srv := testservers.Redis(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("keep", "3")
	u.RawQuery = q.Encode()
	store, err := remoteauth.OpenStore(t.Context(), u.String())
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	defer store.(io.Closer).Close()
	st := store.(*redisstore.Store)
	v := [][]byte{pattern(1, 10), pattern(2, 20), pattern(3, 30), pattern(4, 40)}
	for _, in := range v {
		save(t, st, "RemoteAuth-keep", in)
	}
	checkVersions(t, st, "RemoteAuth-keep", v[3], v[2], v[1])
	if err := st.Delete(t.Context(), "RemoteAuth-keep"); err != nil {
		t.Fatal(err)
	}
}

// newSession serves the Session round trip of grants_test.go.
func newSession(t *testing.T, st remoteauth.Store) *remoteauth.Session {
	t.Helper()
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "fallback", DataPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
