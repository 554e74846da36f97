package redisstore_test

// Fault tests: the connection is cut (internal/faultproxy) or the server stopped in the middle
// of a Save or an Extract.

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/internal/faultproxy"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// proxied returns a client of the server of o that goes through a fault proxy, a client that
// goes straight to the server (to look at its keys whatever the proxy does), and the proxy.
func proxied(t *testing.T, o *redis.Options) (via, direct *redis.Client, p *faultproxy.Proxy) {
	t.Helper()
	direct = newClient(t, o)
	p = faultproxy.Start(t, o.Addr)
	po := *o
	po.Addr = p.Addr()
	return newClient(t, &po), direct, p
}

// TestSaveConnectionCut cuts the connection in the middle of a Save, and refuses new ones until
// the Save has returned, so that the Save's own cleanup fails too: the Save returns an error
// wrapping the network error, the previous archive stays whole, and the next Save removes what
// the failed one left.
func TestSaveConnectionCut(t *testing.T) {
	via, direct, p := proxied(t, serverOptions(t))
	st, prefix := newStore(t, via, &redisstore.Options{ChunkSize: 64 << 10})
	const session = "RemoteAuth-cut"
	prev := pattern(1, 1<<20+7)
	save(t, st, session, prev)

	p.CutAfter(3 << 20)
	err := st.Save(t.Context(), session, bytes.NewReader(pattern(2, 16<<20)))
	if err == nil {
		t.Fatal("Save through a connection cut after 3 MiB succeeded")
	}
	if !isNetworkError(err) {
		t.Errorf("Save through a cut connection: %v, want an error wrapping the network error", err)
	}
	checkNamed(t, err, session)
	t.Logf("the error: %v", err)
	stray := strayKeys(t, direct, prefix)
	if len(stray) == 0 {
		t.Error("the failed Save left no chunk behind: the test does not test the cleanup by the next Save")
	}
	t.Logf("the failed Save left %d keys behind, such as %s", len(stray), stray[0])

	p.Refuse(false)
	if got := extract(t, st, session); !bytes.Equal(got, prev) {
		t.Fatalf("after the failed Save, Extract wrote %d bytes, not the previous archive (%d)", len(got), len(prev))
	}
	next := pattern(3, 2<<20+1)
	save(t, st, session, next)
	if stray := strayKeys(t, direct, prefix); len(stray) > 0 {
		t.Errorf("after the next Save, %d keys of the failed one remain, such as %s", len(stray), stray[0])
	}
	if !bytes.Equal(extract(t, st, session), next) {
		t.Error("Extract after the next Save differs from it")
	}
}

// TestAbandonedSaveExpires: when a failed Save could not clean up and no other Save of the
// session follows, what it left expires by itself after the lease.
func TestAbandonedSaveExpires(t *testing.T) {
	via, direct, p := proxied(t, serverOptions(t))
	st, prefix := newStore(t, via, &redisstore.Options{ChunkSize: 64 << 10})
	// Long enough for the failed Save's cleanup to give up (go-redis retries its dials) before
	// the lease ends, so that there is something left to expire.
	const lease = 5 * time.Second
	redisstore.SetLease(st, lease)
	const session = "RemoteAuth-abandoned"
	prev := pattern(1, 100<<10)
	save(t, st, session, prev)
	p.CutAfter(2 << 20)
	if err := st.Save(t.Context(), session, bytes.NewReader(pattern(2, 8<<20))); err == nil {
		t.Fatal("Save through a cut connection succeeded")
	}
	p.Refuse(false)
	if len(strayKeys(t, direct, prefix)) == 0 {
		t.Fatal("the failed Save left nothing behind: the test tests nothing")
	}
	time.Sleep(lease + 500*time.Millisecond)
	if stray := strayKeys(t, direct, prefix); len(stray) > 0 {
		t.Errorf("%d keys of the abandoned Save remain after its lease, such as %s", len(stray), stray[0])
	}
	if !bytes.Equal(extract(t, st, session), prev) {
		t.Error("the previous archive changed")
	}
}

// TestExtractConnectionCut cuts the connection in the middle of an Extract: it returns an error
// wrapping the network error, and once connections go through again, an Extract writes the
// archive whole. The first Extract's lease, which it could not drop, expires.
func TestExtractConnectionCut(t *testing.T) {
	via, direct, p := proxied(t, serverOptions(t))
	st, prefix := newStore(t, via, &redisstore.Options{ChunkSize: 64 << 10})
	const lease = 500 * time.Millisecond
	redisstore.SetLease(st, lease)
	const session = "RemoteAuth-cutread"
	data := pattern(1, 8<<20+3)
	save(t, st, session, data)

	var partial bytes.Buffer
	err := st.Extract(t.Context(), session, faultproxy.TripWriter(&partial, 1<<20, func() {
		p.Refuse(true)
		p.Cut()
	}))
	if err == nil {
		t.Fatal("Extract through a connection cut after 1 MiB succeeded")
	}
	if !isNetworkError(err) {
		t.Errorf("Extract through a cut connection: %v, want an error wrapping the network error", err)
	}
	checkNamed(t, err, session)
	t.Logf("the error, after %d bytes: %v", partial.Len(), err)

	p.Refuse(false)
	if got := extract(t, st, session); !bytes.Equal(got, data) {
		t.Fatalf("Extract after the cut wrote %d bytes, not the archive (%d)", len(got), len(data))
	}
	time.Sleep(lease + 300*time.Millisecond)
	checkOnlyArchives(t, direct, prefix)
}

// TestServerRestart stops the server (cleanly, with its append-only file) in the middle of a
// Save, then in the middle of an Extract, and starts it again on the same port: the failed
// operations return errors, the previous archive is whole once the server is back, and the next
// Save removes what the failed one left.
func TestServerRestart(t *testing.T) {
	n := startNode(t, freePorts(t, 1)[0], "--appendonly", "yes", "--appendfsync", "always")
	rdb := newClient(t, &redis.Options{Addr: n.addr()})
	st, prefix := newStore(t, rdb, &redisstore.Options{ChunkSize: 64 << 10})
	const session = "RemoteAuth-restart"
	prev := pattern(1, 2<<20+5)
	save(t, st, session, prev)

	r := &hookReader{r: bytes.NewReader(pattern(2, 16<<20)), at: 4 << 20, hook: func() { n.stop(t) }}
	err := st.Save(t.Context(), session, r)
	if err == nil {
		t.Fatal("Save while the server stops succeeded")
	}
	if !isNetworkError(err) {
		t.Errorf("Save while the server stops: %v, want an error wrapping the network error", err)
	}
	checkNamed(t, err, session)
	t.Logf("Save's error: %v", err)

	n.start(t)
	waitClient(t, rdb)
	if got := extract(t, st, session); !bytes.Equal(got, prev) {
		t.Fatalf("after the restart, Extract wrote %d bytes, not the previous archive (%d)", len(got), len(prev))
	}
	if len(strayKeys(t, rdb, prefix)) == 0 {
		t.Error("the failed Save left nothing behind (or the restart lost it): the next check tests nothing")
	}

	err = st.Extract(t.Context(), session, faultproxy.TripWriter(io.Discard, 1<<20, func() { n.stop(t) }))
	if err == nil {
		t.Fatal("Extract while the server stops succeeded")
	}
	checkNamed(t, err, session)
	t.Logf("Extract's error: %v", err)
	n.start(t)
	waitClient(t, rdb)
	if got := extract(t, st, session); !bytes.Equal(got, prev) {
		t.Fatalf("after the second restart, Extract wrote %d bytes, not the archive (%d)", len(got), len(prev))
	}

	// What is left: the chunks of the failed Save (registered in the saves hash), and the
	// reader lease of the Extract that the second stop interrupted, on the current generation.
	tag := prefix + "{" + session + "}:"
	failed := rdb.HKeys(t.Context(), tag+"saves").Val()
	prevGen := rdb.HGet(t.Context(), tag+"meta", "gen").Val()
	if len(failed) != 1 {
		t.Fatalf("pending Saves after the restarts: %q, want the failed one", failed)
	}
	next := pattern(3, 3<<20)
	save(t, st, session, next)
	if !bytes.Equal(extract(t, st, session), next) {
		t.Error("Extract after the restarts differs from the last Save")
	}
	// The next Save deleted every chunk of the failed one. The interrupted Extract's lease,
	// which it could not drop, keeps the previous generation until the lease expires (a
	// minute): its chunks now expire, and that is all that remains.
	for _, k := range strayKeys(t, rdb, prefix) {
		switch {
		case strings.HasPrefix(k, tag+"chunk:"+failed[0]+":"):
			t.Errorf("after the next Save, chunk %s of the failed Save remains", k)
		case strings.HasPrefix(k, tag+"chunk:"+prevGen+":"):
			if ttl := rdb.PTTL(t.Context(), k).Val(); ttl <= 0 || ttl > time.Minute {
				t.Errorf("retired chunk %s held by a lease: PTTL %v, want at most a minute", k, ttl)
			}
		case k == tag+"readers":
		default:
			t.Errorf("after the next Save, key %s remains", k)
		}
		rdb.Del(t.Context(), k) // not to wait a minute for the lease
	}
}

// waitClient waits until rdb reaches its server again: after failed dials, go-redis's pool
// fails fast for a while, and dials again once a second.
func waitClient(t *testing.T, rdb *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := rdb.Ping(t.Context()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client does not reach the restarted server: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
