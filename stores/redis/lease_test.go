package redisstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/leasetest"
	"github.com/wwebstore/wwebstore/remoteauth"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// checkLeaseLost checks that err wraps remoteauth.ErrLeaseLost and names the store and session.
func checkLeaseLost(t *testing.T, err error, what, session string) {
	t.Helper()
	if !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Errorf("%s: %v, want an error wrapping ErrLeaseLost", what, err)
	}
	checkNamed(t, err, session)
}

// TestLeaseLayout checks the lease hash of the package documentation: its fields, the server's
// clock for the expiry, no TTL, and that neither leased Saves (which keep history as Store.Save
// does) nor Delete remove it, so that tokens never go back.
func TestLeaseLayout(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	st, prefix := newStore(t, rdb, nil)
	const session = "RemoteAuth-leaselayout"
	key := prefix + "{" + session + "}:lease"
	ctx := t.Context()

	l := leasetest.Acquire(t, st, session, "owner-1", time.Hour)
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["token"] != "1" || h["owner"] != "owner-1" || h["released"] != "0" || len(h) != 4 {
		t.Errorf("lease hash %s = %v, want token 1, owner owner-1, released 0 and expires_ms", key, h)
	}
	expires, err := strconv.ParseInt(h["expires_ms"], 10, 64)
	// Not a timing assertion: the expiry is the server's TIME plus an hour, and a minute off
	// means the wrong clock or unit.
	if want := now.Add(time.Hour).UnixMilli(); err != nil || expires < want-60_000 || expires > want+60_000 {
		t.Errorf("expires_ms = %q, want about %d (the server's TIME plus the TTL)", h["expires_ms"], want)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl != -1 {
		t.Errorf("PTTL %s = %v, want -1 (no expiry)", key, ttl)
	}

	first, second := pattern(1, 3000), pattern(2, 5000)
	for _, data := range [][]byte{first, second} {
		if err := l.Save(ctx, bytes.NewReader(data)); err != nil {
			t.Fatalf("Lease.Save: %v", err)
		}
	}
	if v, err := st.Versions(ctx, session); err != nil || len(v) != 2 {
		t.Errorf("Versions after two leased Saves = %v, %v; want 2 (the previous archive kept)", v, err)
	}
	if !bytes.Equal(extract(t, st, session), second) {
		t.Error("Extract after the leased Saves differs from the last one")
	}
	if err := st.Delete(ctx, session); err != nil {
		t.Fatal(err)
	}
	if keys := sessionKeys(t, rdb, prefix, session); len(keys) != 1 || keys[0] != key {
		t.Errorf("keys of the session after Delete: %q, want the lease hash %s alone", keys, key)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGet(ctx, key, "released").Val(); got != "1" {
		t.Errorf("released = %q after Release, want 1", got)
	}
	if l2 := leasetest.Acquire(t, st, session, "owner-2", time.Hour); l2.Token() != 2 {
		t.Errorf("the lease after a Delete and a Release has token %d, want 2", l2.Token())
	}
}

// TestLeaseFenceConnectionCut cuts the connection of a lease's holder in the middle of a leased
// Save: the Save fails with the network error and the previous archive stays; once the
// connection is back, the lease still writes although it expired meanwhile (nobody took the
// session over); once another Store took it over and saved, the holder's Save, Renew and Delete
// are refused and the newer archive stays, and nothing of the failed Saves is left.
func TestLeaseFenceConnectionCut(t *testing.T) {
	via, direct, p := proxied(t, serverOptions(t))
	st, prefix := newStore(t, via, &redisstore.Options{ChunkSize: 64 << 10})
	other, _ := newStore(t, direct, &redisstore.Options{KeyPrefix: prefix})
	const session = "RemoteAuth-leasecut"
	const ttl = 300 * time.Millisecond
	a := leasetest.Acquire(t, st, session, "cut-holder", ttl)
	prev := pattern(1, 1<<20+3)
	if err := a.Save(t.Context(), bytes.NewReader(prev)); err != nil {
		t.Fatal(err)
	}

	p.CutAfter(1 << 20)
	err := a.Save(t.Context(), bytes.NewReader(pattern(2, 8<<20)))
	if err == nil || !isNetworkError(err) || errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("leased Save through a connection cut after 1 MiB: %v, want the network error", err)
	}
	checkNamed(t, err, session)
	if !bytes.Equal(extract(t, other, session), prev) {
		t.Fatal("after the cut Save, the archive is not the previous one")
	}
	p.Refuse(false)
	time.Sleep(2 * ttl) // past the expiry, so that the next Save shows an expired lease still writes
	mid := pattern(3, 200<<10)
	if err := a.Save(t.Context(), bytes.NewReader(mid)); err != nil {
		t.Fatalf("leased Save after the connection came back, nobody having taken the session over: %v", err)
	}

	b := leasetest.TakeOver(t, other, session, "taker", time.Hour)
	newer := pattern(4, 300<<10)
	if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("of token %d after token %d saved", a.Token(), b.Token())
	checkLeaseLost(t, a.Save(t.Context(), bytes.NewReader(pattern(5, 1<<20))), "Save "+what, session)
	checkLeaseLost(t, a.Renew(t.Context()), "Renew "+what, session)
	checkLeaseLost(t, a.Delete(t.Context()), "Delete "+what, session)
	if !bytes.Equal(extract(t, other, session), newer) {
		t.Error("the stale holder changed the newer holder's archive")
	}
	if stray := strayKeys(t, direct, prefix); len(stray) > 0 {
		t.Errorf("%d keys of the failed or refused Saves remain, such as %s", len(stray), stray[0])
	}
}

// TestLeaseAcrossStores has Stores on clients of their own (as processes would be) acquire one
// session at once: exactly one wins and the others are told who; after its Release, another
// Store acquires at once with a higher token, and the first one's writes are refused.
func TestLeaseAcrossStores(t *testing.T) {
	const n, session = 6, "RemoteAuth-procs"
	prefix := testPrefix(t)
	stores := make([]*redisstore.Store, n)
	for i := range stores {
		stores[i], _ = newStore(t, newClient(t, serverOptions(t)), &redisstore.Options{KeyPrefix: prefix})
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  = map[int]remoteauth.Lease{}
		held []*remoteauth.LeaseHeldError
	)
	start := make(chan struct{})
	for i, st := range stores {
		wg.Go(func() {
			<-start
			l, err := st.AcquireLease(t.Context(), session, fmt.Sprintf("store-%d", i), time.Hour)
			mu.Lock()
			defer mu.Unlock()
			var h *remoteauth.LeaseHeldError
			switch {
			case err == nil:
				won[i] = l
			case errors.As(err, &h):
				held = append(held, h)
			default:
				t.Errorf("AcquireLease through store %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d of %d Stores acquired the session at once, want exactly 1", len(won), n)
	}
	var winner int
	for i := range won {
		winner = i
	}
	first := won[winner]
	for _, h := range held {
		if h.Owner != fmt.Sprintf("store-%d", winner) {
			t.Errorf("a loser was told %q holds the session, but store-%d does", h.Owner, winner)
		}
	}
	data := pattern(1, 100<<10)
	if err := first.Save(t.Context(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := first.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	next := leasetest.Acquire(t, stores[(winner+1)%n], session, "next", time.Hour)
	if next.Token() <= first.Token() {
		t.Errorf("token %d after Release, not above %d", next.Token(), first.Token())
	}
	checkLeaseLost(t, first.Save(t.Context(), bytes.NewReader(pattern(2, 1000))), "Save of a released lease", session)
	if !bytes.Equal(extract(t, stores[winner], session), data) {
		t.Error("a released lease's Save changed the archive")
	}
}

// TestLeaseStaleWriterInFlight: a holder's Save is reading when its lease expires; another Store
// takes the session over and saves, which overtakes the first Save (its registration is
// deleted by the commit). The first Save, once its reader goes on, must not return nil as an
// overtaken Store.Save does, but ErrLeaseLost; the archive and its history are the newer
// holder's, and the stale Save left nothing.
func TestLeaseStaleWriterInFlight(t *testing.T) {
	prefix := testPrefix(t)
	rdb := newClient(t, serverOptions(t))
	stale, _ := newStore(t, newClient(t, serverOptions(t)), &redisstore.Options{KeyPrefix: prefix, ChunkSize: 64 << 10})
	fresh, _ := newStore(t, rdb, &redisstore.Options{KeyPrefix: prefix})
	const session = "RemoteAuth-staleinflight"
	a := leasetest.Acquire(t, stale, session, "stale", 200*time.Millisecond)
	old := pattern(1, 10<<10)
	if err := a.Save(t.Context(), bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	gate := &gate{reached: make(chan struct{}), open: make(chan struct{})}
	r := io.MultiReader(bytes.NewReader(pattern(2, 1<<20)), gate, bytes.NewReader(pattern(3, 1<<20)))
	saved := make(chan error, 1)
	go func() { saved <- a.Save(t.Context(), r) }()
	select {
	case <-gate.reached:
	case err := <-saved:
		t.Fatalf("the leased Save returned %v before reading its first MiB", err)
	}
	b := leasetest.TakeOver(t, fresh, session, "fresh", time.Hour)
	newer := pattern(4, 50<<10)
	if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	checkLeaseLost(t, <-saved, "the stale holder's Save in flight", session)
	if !bytes.Equal(extract(t, fresh, session), newer) {
		t.Error("the stale Save replaced the newer archive")
	}
	v, err := fresh.Versions(t.Context(), session)
	if err != nil || len(v) != 2 {
		t.Fatalf("Versions = %v, %v; want the newer archive and the one before it", v, err)
	}
	var prev bytes.Buffer
	if err := fresh.ExtractVersion(t.Context(), session, v[1].ID, &prev); err != nil || !bytes.Equal(prev.Bytes(), old) {
		t.Errorf("the kept archive is not the stale holder's last good Save (%v)", err)
	}
	if stray := strayKeys(t, rdb, prefix); len(stray) > 0 {
		t.Errorf("%d keys of the stale Save remain, such as %s", len(stray), stray[0])
	}
}

// gate is a reader that closes reached at its first Read, waits for open to be closed, and
// then reports its end.
type gate struct {
	reached, open chan struct{}
	once          sync.Once
}

func (g *gate) Read([]byte) (int, error) {
	g.once.Do(func() { close(g.reached) })
	<-g.open
	return 0, io.EOF
}
