package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
	"github.com/wwebstore/wwebstore/storetest"
)

// TestConformance runs the conformance suite against a single Redis server: a container, or
// WWEBSTORE_REDIS_URL's server, with a key prefix of its own for each subtest. After each
// subtest, the prefix must hold nothing but the archives' keys.
func TestConformance(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t, rdb, nil)
		return st
	})
}

// TestConformanceSmallChunks runs the suite again with 4 KiB chunks, so that every archive but
// the tiny ones spans many chunks (the 64 MiB one, 16,384) and Saves of one session overlap.
func TestConformanceSmallChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite with 4 KiB chunks is long; skipped in -short mode")
	}
	rdb := newClient(t, serverOptions(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t, rdb, &redisstore.Options{ChunkSize: 4 << 10})
		return st
	})
}

// TestConformanceCluster runs the conformance suite against a Redis Cluster of three primaries
// started for the test, through redis.NewClusterClient.
func TestConformanceCluster(t *testing.T) {
	addrs := startCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	// The sessions of the suite must land on all three primaries, or the test proves little.
	sessions := []string{"RemoteAuth-exists", "RemoteAuth-roundtrip", "a", "a-b", "A", "RemoteAuth-contended"}
	seen := map[string]bool{}
	for _, s := range sessions {
		node, err := rdb.MasterForKey(t.Context(), "wwebstore:{"+s+"}:meta")
		if err != nil {
			t.Fatal(err)
		}
		seen[node.Options().Addr] = true
	}
	if len(seen) < 2 {
		t.Fatalf("the suite's sessions all hash to %v", seen)
	}
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t, rdb, &redisstore.Options{ChunkSize: 64 << 10})
		return st
	})
}

// TestConformanceSentinel runs the conformance suite against a primary that a Sentinel
// monitors, started for the test, through redis.NewFailoverClient, which asks the Sentinel for
// the primary's address.
func TestConformanceSentinel(t *testing.T) {
	sentinelAddr, masterAddr := startSentinel(t)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: []string{sentinelAddr}})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING through the Sentinel: %v", err)
	}
	checkReachesPrimary(t, rdb, masterAddr)
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t, rdb, &redisstore.Options{ChunkSize: 64 << 10})
		return st
	})
}

// checkReachesPrimary checks that rdb's commands reach the server on masterAddr, by the port
// that server reports.
func checkReachesPrimary(t testing.TB, rdb redis.UniversalClient, masterAddr string) {
	t.Helper()
	info, err := rdb.Info(t.Context(), "server", "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(masterAddr, ":")
	if !strings.Contains(info, "tcp_port:"+port+"\r\n") || !strings.Contains(info, "role:master\r\n") {
		t.Fatalf("the client does not reach the primary on %s:\n%s", masterAddr, info)
	}
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func extract(t testing.TB, st *redisstore.Store, session string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), session, &buf); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	return buf.Bytes()
}

func save(t testing.TB, st *redisstore.Store, session string, data []byte) {
	t.Helper()
	if err := st.Save(t.Context(), session, bytes.NewReader(data)); err != nil {
		t.Fatalf("Save(%q): %v", session, err)
	}
}

// TestLayout checks the keys of the package documentation: their names, the meta key's
// fields, the chunks' sizes (none over ChunkSize), and that nothing else is left. It keeps no
// history (Keep 1), so each Save leaves only its own archive; TestHistoryLayout checks the
// history list.
func TestLayout(t *testing.T) {
	ctx := t.Context()
	rdb := newClient(t, serverOptions(t))
	const chunkSize = redisstore.MinChunkSize
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: chunkSize, Keep: 1})
	const session = "RemoteAuth-alice"
	for _, size := range []int{0, 1, chunkSize, 3*chunkSize + 5} {
		data := pattern(uint64(size), size)
		save(t, st, session, data)
		tag := prefix + "{" + session + "}:"
		meta, err := rdb.HGetAll(ctx, tag+"meta").Result()
		if err != nil {
			t.Fatal(err)
		}
		gen := meta["gen"]
		n := (size + chunkSize - 1) / chunkSize
		if len(gen) != 16 || meta["chunks"] != strconv.Itoa(n) || meta["size"] != strconv.Itoa(size) ||
			meta["chunk_size"] != strconv.Itoa(chunkSize) || meta["saved_ms"] == "" || len(meta) != 5 {
			t.Fatalf("size %d: meta = %v", size, meta)
		}
		want := []string{tag + "meta"}
		for i := range n {
			k := tag + "chunk:" + gen + ":" + strconv.Itoa(i)
			want = append(want, k)
			v, err := rdb.Get(ctx, k).Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			if len(v) > chunkSize || !bytes.Equal(v, data[i*chunkSize:min(size, (i+1)*chunkSize)]) {
				t.Errorf("%s holds %d bytes that are not chunk %d", k, len(v), i)
			}
			if ttl := rdb.PTTL(ctx, k).Val(); ttl != -1 {
				t.Errorf("%s: PTTL %v, want none", k, ttl)
			}
		}
		got := sessionKeys(t, rdb, prefix, session)
		if strings.Join(got, " ") != strings.Join(sortedCopy(want), " ") {
			t.Errorf("size %d: keys %q, want %q", size, got, want)
		}
		if !bytes.Equal(extract(t, st, session), data) {
			t.Errorf("size %d: Extract differs", size)
		}
	}
	if err := st.Delete(ctx, session); err != nil {
		t.Fatal(err)
	}
	if got := sessionKeys(t, rdb, prefix, session); len(got) != 0 {
		t.Errorf("after Delete: keys %q remain", got)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

// TestTTL checks Options.TTL: every key of an archive expires together, and the session is gone
// once they have.
func TestTTL(t *testing.T) {
	ctx := t.Context()
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10, TTL: 2 * time.Second})
	const session = "RemoteAuth-ttl"
	save(t, st, session, pattern(1, 5000))
	for _, k := range sessionKeys(t, rdb, prefix, session) {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("%s: PTTL %v, want at most 2 s", k, ttl)
		}
	}
	time.Sleep(2500 * time.Millisecond)
	if ok, err := st.SessionExists(ctx, session); ok || err != nil {
		t.Errorf("SessionExists after the TTL = %v, %v; want false, nil", ok, err)
	}
	if err := st.Extract(ctx, session, io.Discard); !errors.Is(err, remoteauth.ErrNotFound) {
		t.Errorf("Extract after the TTL: %v, want ErrNotFound", err)
	}
	if got := sessionKeys(t, rdb, prefix, session); len(got) != 0 {
		t.Errorf("after the TTL: keys %q remain", got)
	}
}

// TestSupersededSavesLeaveNothing saves one session from many goroutines at once, with small
// chunks so that Saves overlap: every Save succeeds, the archive is one of the inputs, and
// nothing of the others is left. With Keep 1, the Saves of one Store overtake each other (with
// more, they all commit: see TestHistoryOverlappingSaves).
func TestSupersededSavesLeaveNothing(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10, Keep: 1})
	const session = "RemoteAuth-many"
	inputs := make([][]byte, 12)
	for i := range inputs {
		inputs[i] = pattern(uint64(100+i), 200<<10+i)
	}
	for round := range 3 {
		var wg sync.WaitGroup
		for _, in := range inputs {
			wg.Go(func() {
				if err := st.Save(t.Context(), session, bytes.NewReader(in)); err != nil {
					t.Errorf("round %d: Save: %v", round, err)
				}
			})
		}
		wg.Wait()
		got := extract(t, st, session)
		found := false
		for _, in := range inputs {
			found = found || bytes.Equal(got, in)
		}
		if !found {
			t.Fatalf("round %d: Extract wrote %d bytes that are none of the inputs", round, len(got))
		}
		checkOnlyArchives(t, rdb, prefix)
	}
}

// TestSaveOvertakenByDelete: a Delete during a Save overtakes it; the Save returns nil (it is
// ordered before the Delete), and the session is gone without a trace.
func TestSaveOvertakenByDelete(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10})
	const session = "RemoteAuth-deleted"
	save(t, st, session, pattern(1, 10<<10))
	r := &hookReader{r: bytes.NewReader(pattern(2, 64<<10)), at: 32 << 10, hook: func() {
		if err := st.Delete(t.Context(), session); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}}
	if err := st.Save(t.Context(), session, r); err != nil {
		t.Fatalf("Save overtaken by a Delete: %v, want nil", err)
	}
	if r.n != 64<<10 {
		t.Errorf("the overtaken Save read %d bytes, want all %d", r.n, 64<<10)
	}
	if ok, err := st.SessionExists(t.Context(), session); ok || err != nil {
		t.Errorf("SessionExists = %v, %v; want false, nil", ok, err)
	}
	if got := sessionKeys(t, rdb, prefix, session); len(got) != 0 {
		t.Errorf("keys %q remain", got)
	}
}

// hookReader reads r, calling hook once when at bytes have been read.
type hookReader struct {
	r    io.Reader
	at   int64
	n    int64
	hook func()
	done bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if !h.done && h.n >= h.at {
		h.done = true
		h.hook()
	}
	if !h.done && h.n+int64(len(p)) > h.at {
		p = p[:h.at-h.n]
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	return n, err
}

// TestExtractOutlivesLease: an Extract into a slow writer, taking three lease periods, while
// Saves replace the archive: the heartbeat keeps the chunks it reads alive, it writes the old
// archive whole, and its end deletes the retired chunks.
func TestExtractOutlivesLease(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 1 << 10})
	redisstore.SetLease(st, time.Second) // heartbeats every 250 ms
	const session = "RemoteAuth-slowreader"
	old := pattern(1, 20<<10)
	save(t, st, session, old)
	var got bytes.Buffer
	saved := make(chan struct{})
	w := writerFunc(func(p []byte) (int, error) {
		if got.Len() == 0 {
			go func() { // replace the archive while the Extract has only begun
				defer close(saved)
				for i := range 3 {
					save(t, st, session, pattern(uint64(10+i), 30<<10))
				}
			}()
		}
		time.Sleep(150 * time.Millisecond) // 20 chunks: 3 s, three leases
		return got.Write(p)
	})
	if err := st.Extract(t.Context(), session, w); err != nil {
		t.Fatalf("slow Extract: %v", err)
	}
	<-saved
	if !bytes.Equal(got.Bytes(), old) {
		t.Fatalf("slow Extract wrote %d bytes that are not the archive it started with", got.Len())
	}
	if !bytes.Equal(extract(t, st, session), pattern(12, 30<<10)) {
		t.Error("after the slow Extract, the archive is not the last one saved")
	}
	checkOnlyArchives(t, rdb, prefix)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestOptions checks New's validation of Options: every refusal happens before the server is
// asked anything, so the client here points nowhere.
func TestOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	for _, tt := range []struct {
		name string
		opts redisstore.Options
		want string // in the error; "" for valid options (which then fail at PING)
	}{
		{"Defaults", redisstore.Options{}, ""},
		{"Prefix", redisstore.Options{KeyPrefix: "app:sessions:"}, ""},
		{"PrefixOpenBrace", redisstore.Options{KeyPrefix: "app{"}, "brace"},
		{"PrefixCloseBrace", redisstore.Options{KeyPrefix: "}app:"}, "brace"},
		{"PrefixHashTag", redisstore.Options{KeyPrefix: "{app}:"}, "brace"},
		{"ChunkMin", redisstore.Options{ChunkSize: redisstore.MinChunkSize}, ""},
		{"ChunkMax", redisstore.Options{ChunkSize: redisstore.MaxChunkSize}, ""},
		{"ChunkTooSmall", redisstore.Options{ChunkSize: redisstore.MinChunkSize - 1}, "chunk size"},
		{"ChunkTooLarge", redisstore.Options{ChunkSize: redisstore.MaxChunkSize + 1}, "chunk size"},
		{"ChunkNegative", redisstore.Options{ChunkSize: -1}, "chunk size"},
		{"TTL", redisstore.Options{TTL: 30 * 24 * time.Hour}, ""},
		{"TTLMin", redisstore.Options{TTL: time.Second}, ""},
		{"TTLTooShort", redisstore.Options{TTL: time.Millisecond}, "TTL"},
		{"TTLNegative", redisstore.Options{TTL: -time.Hour}, "negative"},
		{"KeepOne", redisstore.Options{Keep: 1}, ""},
		{"KeepMax", redisstore.Options{Keep: redisstore.MaxKeep}, ""},
		{"KeepTooMany", redisstore.Options{Keep: redisstore.MaxKeep + 1}, "Keep"},
		{"KeepNegative", redisstore.Options{Keep: -1}, "Keep"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstore.New(t.Context(), rdb, &tt.opts)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "PING") {
					t.Errorf("New: %v, want valid options and a failed PING", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "PING") {
				t.Errorf("New: %v, want an error about %q before any PING", err, tt.want)
			}
		})
	}
	if _, err := redisstore.New(t.Context(), nil, nil); err == nil {
		t.Error("New with a nil client succeeded")
	}
}

// TestNewPings: New fails, wrapping the network error, when the server cannot be reached, and
// honours ctx.
func TestNewPings(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	_, err := redisstore.New(t.Context(), rdb, nil)
	if err == nil || !isNetworkError(err) {
		t.Errorf("New with no server: %v, want a network error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := redisstore.New(ctx, rdb, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("New with a cancelled ctx: %v", err)
	}
}

// TestCloseKeepsCallersClient: Close of a Store made by New leaves the caller's client open.
func TestCloseKeepsCallersClient(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, _ := newStore(t, rdb, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Errorf("the caller's client after Store.Close: %v", err)
	}
	if _, err := st.SessionExists(t.Context(), "a"); err != nil {
		t.Errorf("SessionExists after Close of a Store made by New: %v", err)
	}
}

// TestOpenStore opens the store from the URL of a testservers.Redis namespace, with more
// parameters: the URL's prefix is used, and Close closes the client that OpenStore made.
func TestOpenStore(t *testing.T) {
	srv := testservers.Redis(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	prefix := q.Get("prefix")
	q.Set("chunk_size", "4096")
	q.Set("dial_timeout", "5s")
	u.RawQuery = q.Encode()
	st, err := remoteauth.OpenStore(t.Context(), u.String())
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	closer, ok := st.(io.Closer)
	if !ok {
		t.Fatalf("OpenStore returned a %T, which is no io.Closer", st)
	}
	data := pattern(7, 10000)
	if err := st.Save(t.Context(), "RemoteAuth-url", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rdb := newClient(t, serverOptions(t))
	keys := sessionKeys(t, rdb, prefix, "RemoteAuth-url")
	if len(keys) != 4 { // meta and 3 chunks of 4096 bytes
		t.Errorf("keys under the URL's prefix: %q, want the meta key and 3 chunks", keys)
	}
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), "RemoteAuth-url", &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("Extract: %v, %d bytes", err, buf.Len())
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closer.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := st.SessionExists(t.Context(), "RemoteAuth-url"); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("SessionExists after Close: %v, want redis.ErrClosed (the client is closed)", err)
	}
	if _, err := remoteauth.OpenStore(t.Context(), "redis://127.0.0.1:1/0?dialer_retries=1&max_retries=-1"); err == nil {
		t.Error("OpenStore of a server that does not answer succeeded")
	}
}

// TestOpenStoreSentinel opens the store from a URL with master_name, whose host is the Sentinel:
// the archive lands on the primary that the Sentinel reports.
func TestOpenStoreSentinel(t *testing.T) {
	sentinelAddr, masterAddr := startSentinel(t)
	prefix := testPrefix(t)
	u := "redis://" + sentinelAddr + "/0?master_name=" + sentinelMaster + "&prefix=" + url.QueryEscape(prefix) + "&chunk_size=4096&dial_timeout=5s"
	st, err := remoteauth.OpenStore(t.Context(), u)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	closer, ok := st.(io.Closer)
	if !ok {
		t.Fatalf("OpenStore returned a %T, which is no io.Closer", st)
	}
	defer closer.Close()
	data := pattern(8, 10000)
	if err := st.Save(t.Context(), "RemoteAuth-sentinel", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	primary := newClient(t, &redis.Options{Addr: masterAddr})
	if keys := sessionKeys(t, primary, prefix, "RemoteAuth-sentinel"); len(keys) != 4 { // meta and 3 chunks of 4096 bytes
		t.Errorf("keys on the primary under the URL's prefix: %q, want the meta key and 3 chunks", keys)
	}
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), "RemoteAuth-sentinel", &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("Extract: %v, %d bytes", err, buf.Len())
	}
	if err := st.Delete(t.Context(), "RemoteAuth-sentinel"); err != nil {
		t.Fatal(err)
	}
	if keys := scanKeys(t, context.Background(), primary, prefix+"*"); len(keys) != 0 {
		t.Errorf("keys left after Delete: %q", keys)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	// A Sentinel that does not know the name: OpenStore fails.
	if _, err := remoteauth.OpenStore(t.Context(), "redis://"+sentinelAddr+"/0?master_name=nosuchmaster&dial_timeout=2s&max_retries=-1"); err == nil {
		t.Error("OpenStore with a master_name that the Sentinel does not know succeeded")
	}
}
