package postgresstore_test

// Lease tests specific to this store: the lease table's rows, the fence when the connection is
// cut, two Stores (two processes) contending, and a stale writer refused. The contract itself,
// and a Session's rolling-deploy handover, are checked by the storetest Lease group
// (TestConformance and its variants).

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/leasetest"
	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// leaseRow is a row of the lease table.
type leaseRow struct {
	token    int64
	owner    string
	released bool
	live     bool // expires_at > clock_timestamp(), by the server's clock
}

// readLease reads session's row of st's lease table through admin.
func readLease(t *testing.T, admin *pgxpool.Pool, st *postgresstore.Store, session string) leaseRow {
	t.Helper()
	var r leaseRow
	err := admin.QueryRow(t.Context(), `SELECT token, owner, released, expires_at > clock_timestamp() FROM `+st.LeaseTableName()+` WHERE session = $1`, session).
		Scan(&r.token, &r.owner, &r.released, &r.live)
	if err != nil {
		t.Fatalf("reading the lease row of %q: %v", session, err)
	}
	return r
}

// extractBytes returns session's archive.
func extractBytes(t *testing.T, st remoteauth.Store, session string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), session, &buf); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	return buf.Bytes()
}

// TestLeaseLayout checks the lease table's rows: one per session, created by the first grant with
// token 1 and an expiry by the server's clock, marked released by Release, taken over with the
// next token, and kept by Store.Delete and Lease.Delete. A fenced Save leaves no chunk row of a
// provisional (negative) generation.
func TestLeaseLayout(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, &postgresstore.Options{Keep: 2})
	const session = "RemoteAuth-layout"

	a := leasetest.Acquire(t, st, session, "owner-a", time.Hour)
	if got, want := readLease(t, pool, st, session), (leaseRow{token: 1, owner: "owner-a", live: true}); got != want {
		t.Errorf("lease row after the first grant = %+v, want %+v", got, want)
	}
	var within bool // the expiry is the server's clock plus the TTL
	if err := pool.QueryRow(ctx, `SELECT expires_at <= clock_timestamp() + interval '1 hour' FROM `+st.LeaseTableName()+` WHERE session = $1`, session).Scan(&within); err != nil || !within {
		t.Errorf("expires_at within the server's clock plus the TTL: %v, %v; want true", within, err)
	}
	for i, size := range []int64{3<<20 + 1, 2 << 20} {
		if err := a.Save(ctx, content{seed: uint64(100 + i), size: size}.reader()); err != nil {
			t.Fatalf("Lease.Save %d: %v", i+1, err)
		}
		checkRows(t, pool, st, session, size)
	}
	versions, err := st.Versions(ctx, session)
	if err != nil || len(versions) != 2 {
		t.Fatalf("Versions after two fenced Saves = %v, %v; want 2", versions, err)
	}
	_, chunks, _ := st.TableNames()
	var negative int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+chunks+` WHERE gen < 0`).Scan(&negative); err != nil || negative != 0 {
		t.Errorf("chunk rows of a provisional generation: %d, %v; want 0", negative, err)
	}

	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readLease(t, pool, st, session); !got.released || got.token != 1 {
		t.Errorf("lease row after Release = %+v, want token 1, released", got)
	}
	b := leasetest.Acquire(t, st, session, "owner-b", time.Hour)
	if got, want := readLease(t, pool, st, session), (leaseRow{token: 2, owner: "owner-b", live: true}); got != want || b.Token() != 2 {
		t.Errorf("lease row after a grant following Release = %+v (token %d), want %+v", got, b.Token(), want)
	}
	if err := st.Delete(ctx, session); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readLease(t, pool, st, session); got.token != 2 || got.released {
		t.Errorf("lease row after Store.Delete and Lease.Delete = %+v, want token 2, held", got)
	}
}

// TestLeaseFenceConnectionCut cuts the connection of a fenced Save half-way: the server rolls
// back, the previous archive stays whole, no chunk of the cut Save (of any generation) remains,
// the lease row is not left locked, and the lease is still good. Then the holder loses its
// connection for longer than its TTL: another owner takes over and saves, and the first
// holder's Save, once it can reach the server again, is refused (ErrLeaseLost).
func TestLeaseFenceConnectionCut(t *testing.T) {
	ctx := t.Context()
	cut, direct, admin, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-leasecut"
	a := leasetest.Acquire(t, cut, session, "owner-a", time.Hour)
	prev := content{seed: 200, size: 3<<20 + 5}
	if err := a.Save(ctx, prev.reader()); err != nil {
		t.Fatal(err)
	}

	proxy.CutAfter(5 << 20)
	err := a.Save(ctx, content{seed: 201, size: 16 << 20}.reader())
	proxy.Refuse(false)
	if err == nil || !isNetworkError(err) || errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("Lease.Save through a connection cut half-way: %v; want a network error, not ErrLeaseLost", err)
	}
	waitGone(t, admin)
	checkRows(t, admin, direct, session, prev.size)
	if !bytes.Equal(extractBytes(t, direct, session), prev.bytes(t)) {
		t.Errorf("the archive after the cut Save is not the previous one")
	}
	// The row lock went with the connection: another owner is told at once who holds it, and
	// the holder renews and saves through the proxy again.
	if _, err := direct.AcquireLease(ctx, session, "owner-b", time.Hour); !errors.Is(err, remoteauth.ErrLeaseHeld) {
		t.Fatalf("AcquireLease by another owner after the cut: %v; want ErrLeaseHeld", err)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("Renew after the cut: %v", err)
	}
	next := content{seed: 202, size: 2<<20 + 1}
	if err := a.Save(ctx, next.reader()); err != nil {
		t.Fatalf("Lease.Save after the cut: %v", err)
	}
	checkRows(t, admin, direct, session, next.size)
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A holder cut off for longer than its TTL.
	old := leasetest.Acquire(t, cut, session, "owner-old", 200*time.Millisecond)
	proxy.Cut()
	proxy.Refuse(true)
	if err := old.Renew(ctx); err == nil {
		t.Fatal("Renew through a refused connection succeeded")
	}
	b := leasetest.TakeOver(t, direct, session, "owner-new", time.Hour)
	newer := content{seed: 203, size: miB + 3}
	if err := b.Save(ctx, newer.reader()); err != nil {
		t.Fatal(err)
	}
	proxy.Refuse(false)
	err = old.Save(ctx, content{seed: 204, size: 4 << 20}.reader())
	if !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("Lease.Save of the cut-off holder after the takeover: %v; want ErrLeaseLost", err)
	}
	checkRows(t, admin, direct, session, newer.size)
	if !bytes.Equal(extractBytes(t, direct, session), newer.bytes(t)) {
		t.Errorf("the archive after the refused Save is not the new holder's")
	}
}

// miB is a mebibyte.
const miB = 1 << 20

// TestLeaseTwoStores has two Stores with pools of their own (two processes) on the same tables
// contend for one session, several goroutines each, for several rounds: exactly one grant per
// round, the others told who holds it, tokens increasing; each round's winner saves, and the
// previous round's lease can no longer save.
func TestLeaseTwoStores(t *testing.T) {
	url := serverURL(t)
	admin := newPool(t, url)
	first := newStore(t, newPool(t, url), admin, nil)
	sessions, chunks, versions := first.TableNames()
	unquote := func(s string) string { return strings.Trim(s, `"`) }
	second, err := postgresstore.New(t.Context(), newPool(t, url), &postgresstore.Options{
		Table: unquote(sessions), ChunkTable: unquote(chunks), VersionTable: unquote(versions), LeaseTable: unquote(first.LeaseTableName()),
	})
	if err != nil {
		t.Fatal(err)
	}
	stores := []*postgresstore.Store{first, second}
	const session, perStore, rounds = "RemoteAuth-twostores", 4, 4
	var previous remoteauth.Lease
	for round := range rounds {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			won    []remoteauth.Lease
			owners []string
			held   []string
		)
		start := make(chan struct{})
		for i, st := range stores {
			for j := range perStore {
				owner := fmt.Sprintf("store%d-%d-%d", i, round, j)
				wg.Go(func() {
					<-start
					l, err := st.AcquireLease(t.Context(), session, owner, time.Hour)
					mu.Lock()
					defer mu.Unlock()
					var h *remoteauth.LeaseHeldError
					switch {
					case err == nil:
						won, owners = append(won, l), append(owners, owner)
					case errors.As(err, &h):
						held = append(held, h.Owner)
					default:
						t.Errorf("AcquireLease(%q, %q): %v", session, owner, err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d grants (%q), want exactly 1", round+1, len(won), owners)
		}
		for _, h := range held {
			if h != owners[0] {
				t.Errorf("round %d: a loser was told %q holds the session; %q won", round+1, h, owners[0])
			}
		}
		c := content{seed: 300 + uint64(round), size: miB + int64(round)}
		if err := won[0].Save(t.Context(), c.reader()); err != nil {
			t.Fatalf("round %d: Save: %v", round+1, err)
		}
		if previous != nil {
			if won[0].Token() <= previous.Token() {
				t.Errorf("round %d: token %d, not above %d", round+1, won[0].Token(), previous.Token())
			}
			if err := previous.Save(t.Context(), content{seed: 399, size: 1000}.reader()); !errors.Is(err, remoteauth.ErrLeaseLost) {
				t.Errorf("round %d: Save of the previous round's lease: %v; want ErrLeaseLost", round+1, err)
			}
		}
		for _, st := range stores {
			if !bytes.Equal(extractBytes(t, st, session), c.bytes(t)) {
				t.Errorf("round %d: the archive is not the winner's", round+1)
			}
		}
		if err := won[0].Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		previous = won[0]
	}
}

// TestLeaseStaleWriter has a holder whose lease expired and was taken over try to save and
// delete: both are refused with ErrLeaseLost, the new holder's archive stays current, and
// History is untouched (the refused Save neither adds nor evicts a kept archive).
func TestLeaseStaleWriter(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, &postgresstore.Options{Keep: 3})
	const session = "RemoteAuth-stalewriter"
	stale := leasetest.Acquire(t, st, session, "owner-stale", 100*time.Millisecond)
	if err := stale.Save(ctx, content{seed: 400, size: 1000}.reader()); err != nil {
		t.Fatal(err)
	}
	fresh := leasetest.TakeOver(t, st, session, "owner-fresh", time.Hour)
	newer := content{seed: 401, size: 2*miB + 9}
	if err := fresh.Save(ctx, newer.reader()); err != nil {
		t.Fatal(err)
	}
	before, err := st.Versions(ctx, session)
	if err != nil || len(before) != 2 {
		t.Fatalf("Versions = %v, %v; want 2", before, err)
	}
	err = stale.Save(ctx, content{seed: 402, size: 3 * miB}.reader())
	if !errors.Is(err, remoteauth.ErrLeaseLost) || !strings.Contains(err.Error(), session) {
		t.Errorf("Save of the stale lease: %v; want ErrLeaseLost naming the session", err)
	}
	if err := stale.Delete(ctx); !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Errorf("Delete of the stale lease: %v; want ErrLeaseLost", err)
	}
	if err := stale.Renew(ctx); !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Errorf("Renew of the stale lease: %v; want ErrLeaseLost", err)
	}
	after, err := st.Versions(ctx, session)
	if err != nil || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("Versions after the refused writes = %v, %v; want %v", after, err, before)
	}
	checkRows(t, pool, st, session, newer.size)
	if !bytes.Equal(extractBytes(t, st, session), newer.bytes(t)) {
		t.Errorf("the archive is not the new holder's")
	}
}
