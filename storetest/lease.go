package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/internal/leasetest"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// runLease runs the Lease group: see the package documentation.
func runLease(t *testing.T, newStore func(t *testing.T) remoteauth.Store) {
	t.Run("Lease", func(t *testing.T) {
		st := newStore(t)
		l, ok := st.(remoteauth.Leaser)
		if !ok {
			t.Skipf("%T does not implement remoteauth.Leaser", st)
		}
		probe, err := l.AcquireLease(t.Context(), "RemoteAuth-probe", "storetest-probe", longTTL)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("%T implements remoteauth.Leaser but its AcquireLease says it grants no leases (a wrapper of a store without Leaser): %v", st, err)
		}
		if err == nil {
			if err := probe.Release(t.Context()); err != nil {
				t.Fatalf("Release of the probe lease: %v", err)
			}
		}
		for _, s := range []struct {
			name string
			test func(t *testing.T, st remoteauth.Store, l remoteauth.Leaser)
		}{
			{"Exclusive", testLeaseExclusive},
			{"Tokens", testLeaseTokens},
			{"Expiry", testLeaseExpiry},
			{"Renew", testLeaseRenew},
			{"RenewAfterTakeover", testLeaseRenewAfterTakeover},
			{"Release", testLeaseRelease},
			{"StaleSave", testLeaseStaleSave},
			{"StaleSaveInFlight", testLeaseStaleSaveInFlight},
			{"Delete", testLeaseDelete},
			{"SaveFails", testLeaseSaveFails},
			{"Isolation", testLeaseIsolation},
			{"Concurrent", testLeaseConcurrent},
			{"InvalidArguments", testLeaseInvalidArguments},
			{"CanceledContext", testLeaseCanceledContext},
			{"SessionHandover", testLeaseSessionHandover},
		} {
			t.Run(s.name, func(t *testing.T) {
				st := newStore(t)
				s.test(t, st, st.(remoteauth.Leaser))
			})
		}
	})
}

const (
	// shortTTL is the TTL of leases that a test lets expire.
	shortTTL = 250 * time.Millisecond
	// longTTL is the TTL of leases that must not expire during a test.
	longTTL = time.Hour
)

// checkHeld checks that owner cannot acquire session because holder holds it: the error wraps
// ErrLeaseHeld, is a *LeaseHeldError naming session, holder and a plausible expiry, and names the
// session. It returns the LeaseHeldError, or stops the test.
func checkHeld(t *testing.T, l remoteauth.Leaser, session, owner, holder string) *remoteauth.LeaseHeldError {
	t.Helper()
	lease, err := l.AcquireLease(t.Context(), session, owner, longTTL)
	if err == nil {
		t.Fatalf("AcquireLease(%q, %q) granted token %d while %q holds the session, want an error wrapping ErrLeaseHeld", session, owner, lease.Token(), holder)
	}
	what := fmt.Sprintf("AcquireLease(%q, %q) while %q holds it", session, owner, holder)
	checkError(t, err, remoteauth.ErrLeaseHeld, what, session)
	var held *remoteauth.LeaseHeldError
	if !errors.As(err, &held) {
		t.Fatalf("%s: error %q is not a *remoteauth.LeaseHeldError", what, err)
	}
	if held.Session != session || held.Owner != holder {
		t.Errorf("%s: LeaseHeldError names session %q and owner %q, want %q and %q", what, held.Session, held.Owner, session, holder)
	}
	// Not a timing assertion: an expiry a day off means a wrong field or unit.
	if now := time.Now(); held.Expires.Before(now.Add(-24*time.Hour)) || held.Expires.After(now.Add(longTTL+24*time.Hour)) {
		t.Errorf("%s: LeaseHeldError says it expires at %v, want a time near now (%v)", what, held.Expires, now)
	}
	return held
}

// checkLost checks that err, returned by what, wraps ErrLeaseLost and names session.
func checkLost(t *testing.T, err error, what, session string) {
	t.Helper()
	checkError(t, err, remoteauth.ErrLeaseLost, what, session)
}

// leaseSave saves c under lease, and stops the test if it fails.
func leaseSave(t *testing.T, lease remoteauth.Lease, session string, c content) {
	t.Helper()
	if err := lease.Save(t.Context(), c.reader()); err != nil {
		t.Fatalf("Lease(%q, token %d).Save(%s): %v", session, lease.Token(), c, err)
	}
}

func testLeaseExclusive(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-exclusive"
	a := leasetest.Acquire(t, l, session, "owner-a", longTTL)
	checkHeld(t, l, session, "owner-b", "owner-a")
	checkHeld(t, l, session, "owner-a", "owner-a") // the owner is no key: asking again is refused too
	c := content{seed: 800, size: 300*kiB + 1}
	leaseSave(t, a, session, c)
	checkArchive(t, st, session, c)
	if err := a.Renew(t.Context()); err != nil {
		t.Errorf("Renew of the live lease: %v", err)
	}
	checkHeld(t, l, session, "owner-b", "owner-a")
}

// testLeaseTokens checks that tokens increase with every grant, across releases and deletes.
func testLeaseTokens(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-tokens"
	var last uint64
	for i := range 4 {
		lease := leasetest.Acquire(t, l, session, fmt.Sprintf("owner-%d", i), longTTL)
		if lease.Token() <= last {
			t.Errorf("grant %d has token %d, not above the previous grant's %d", i+1, lease.Token(), last)
		}
		last = lease.Token()
		switch i {
		case 1:
			leaseSave(t, lease, session, content{seed: 801, size: 1000})
			if err := lease.Delete(t.Context()); err != nil {
				t.Fatalf("Lease.Delete: %v", err)
			}
		case 2:
			save(t, st, session, content{seed: 802, size: 1000})
			del(t, st, session) // Store.Delete must not reset the tokens
		}
		if err := lease.Release(t.Context()); err != nil {
			t.Fatalf("Release of token %d: %v", lease.Token(), err)
		}
	}
}

func testLeaseExpiry(t *testing.T, _ remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-expiry"
	a := leasetest.Acquire(t, l, session, "owner-a", shortTTL)
	b := leasetest.TakeOver(t, l, session, "owner-b", longTTL)
	if b.Token() <= a.Token() {
		t.Errorf("the lease granted after expiry has token %d, not above the expired lease's %d", b.Token(), a.Token())
	}
	checkHeld(t, l, session, "owner-c", "owner-b")
}

// testLeaseRenew checks that Renew moves the expiry later, and that a renewed lease is still
// held after its first expiry.
func testLeaseRenew(t *testing.T, _ remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-renew"
	a := leasetest.Acquire(t, l, session, "owner-a", time.Minute)
	before := checkHeld(t, l, session, "owner-b", "owner-a").Expires
	time.Sleep(100 * time.Millisecond) // more than any store's clock resolution
	if err := a.Renew(t.Context()); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if after := checkHeld(t, l, session, "owner-b", "owner-a").Expires; !after.After(before) {
		t.Errorf("after Renew the lease expires at %v, not after %v as before it", after, before)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}

	// A lease of ttl renewed at half its life must outlive its first expiry. The check is made
	// only if the machine was quick enough for it to mean something (see below).
	const ttl = 2 * time.Second
	start := time.Now()
	r := leasetest.Acquire(t, l, session, "owner-r", ttl)
	time.Sleep(ttl / 2)
	renewStart := time.Now()
	if err := r.Renew(t.Context()); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	time.Sleep(time.Until(start.Add(ttl + ttl/4))) // past the first expiry
	attempt := time.Now()
	lease, err := l.AcquireLease(t.Context(), session, "owner-s", longTTL)
	switch {
	case err != nil:
		checkError(t, err, remoteauth.ErrLeaseHeld, fmt.Sprintf("AcquireLease(%q) after the renewed lease's first expiry", session), session)
	case attempt.Sub(renewStart) < ttl-ttl/4:
		// The renewed lease expires ttl after the store saw Renew, so after renewStart+ttl.
		t.Errorf("AcquireLease(%q) granted token %d %v after Renew of a lease of %v: Renew did not extend it", session, lease.Token(), attempt.Sub(renewStart), ttl)
	default:
		t.Logf("the machine was too slow to check that Renew extends a lease (%v between Renew and the check)", attempt.Sub(renewStart))
	}
}

func testLeaseRenewAfterTakeover(t *testing.T, _ remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-renewlost"
	a := leasetest.Acquire(t, l, session, "owner-a", shortTTL)
	b := leasetest.TakeOver(t, l, session, "owner-b", longTTL)
	checkLost(t, a.Renew(t.Context()), fmt.Sprintf("Renew of token %d after token %d was granted", a.Token(), b.Token()), session)
	if err := a.Release(t.Context()); err != nil {
		t.Errorf("Release of a superseded lease: %v, want nil", err)
	}
	checkHeld(t, l, session, "owner-c", "owner-b") // neither the Renew nor the Release ended b
	if err := b.Renew(t.Context()); err != nil {
		t.Errorf("Renew of the newer lease: %v", err)
	}
}

func testLeaseRelease(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-release"
	a := leasetest.Acquire(t, l, session, "owner-a", longTTL)
	c := content{seed: 810, size: 100*kiB + 3}
	leaseSave(t, a, session, c)
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	b := leasetest.Acquire(t, l, session, "owner-b", longTTL) // at once: no waiting for the expiry
	if b.Token() <= a.Token() {
		t.Errorf("the lease granted after Release has token %d, not above the released lease's %d", b.Token(), a.Token())
	}
	what := fmt.Sprintf("of released token %d", a.Token())
	checkLost(t, a.Renew(t.Context()), "Renew "+what, session)
	checkLost(t, a.Save(t.Context(), content{seed: 811, size: 1000}.reader()), "Save "+what, session)
	checkLost(t, a.Delete(t.Context()), "Delete "+what, session)
	if err := a.Release(t.Context()); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
	checkHeld(t, l, session, "owner-c", "owner-b")
	checkArchive(t, st, session, c)

	// A released lease stays lost even when no one else took the session.
	if err := b.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	checkLost(t, b.Save(t.Context(), content{seed: 812, size: 1000}.reader()), fmt.Sprintf("Save of released token %d", b.Token()), session)
	checkArchive(t, st, session, c)
}

func testLeaseStaleSave(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-stale"
	a := leasetest.Acquire(t, l, session, "owner-a", shortTTL)
	leaseSave(t, a, session, content{seed: 820, size: 200 * kiB})
	b := leasetest.TakeOver(t, l, session, "owner-b", longTTL)
	newer := content{seed: 821, size: miB + 5}
	leaseSave(t, b, session, newer)
	what := fmt.Sprintf("of token %d after token %d saved", a.Token(), b.Token())
	checkLost(t, a.Save(t.Context(), content{seed: 822, size: 2*miB + 1}.reader()), "Save "+what, session)
	checkArchive(t, st, session, newer)
	checkLost(t, a.Delete(t.Context()), "Delete "+what, session)
	checkArchive(t, st, session, newer)
}

// testLeaseStaleSaveInFlight starts a Save under a lease, lets the lease expire while the Save
// is reading, has a newer holder save, then lets the first Save finish: the token must be
// checked when the archive is switched, not when the Save starts.
func testLeaseStaleSaveInFlight(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-staleflight"
	a := leasetest.Acquire(t, l, session, "owner-a", shortTTL)
	leaseSave(t, a, session, content{seed: 830, size: 200 * kiB})
	gated := &gatedReader{r: content{seed: 831, size: failAfter + miB}.reader(), n: failAfter, reached: make(chan struct{}), open: make(chan struct{})}
	saved := make(chan error, 1)
	go func() { saved <- a.Save(t.Context(), gated) }()
	select {
	case <-gated.reached:
	case err := <-saved:
		t.Fatalf("Save returned %v before reading %d bytes", err, failAfter)
	}
	b := leasetest.TakeOver(t, l, session, "owner-b", longTTL)
	newer := content{seed: 832, size: miB + 9}
	leaseSave(t, b, session, newer)
	close(gated.open)
	checkLost(t, <-saved, fmt.Sprintf("Save of token %d that was reading when token %d saved", a.Token(), b.Token()), session)
	checkArchive(t, st, session, newer)
}

func testLeaseDelete(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-leasedelete"
	a := leasetest.Acquire(t, l, session, "owner-a", longTTL)
	leaseSave(t, a, session, content{seed: 840, size: 1000})
	if err := a.Delete(t.Context()); err != nil {
		t.Fatalf("Lease.Delete: %v", err)
	}
	checkMissing(t, st, session)
	if err := a.Delete(t.Context()); err != nil {
		t.Errorf("Lease.Delete of a missing session: %v, want nil", err)
	}
	checkHeld(t, l, session, "owner-b", "owner-a") // Delete does not end the lease
	c := content{seed: 841, size: 1000}
	leaseSave(t, a, session, c)
	checkArchive(t, st, session, c)
}

func testLeaseSaveFails(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-leasesavefails"
	a := leasetest.Acquire(t, l, session, "owner-a", longTTL)
	prev := content{seed: 850, size: miB + 7}
	leaseSave(t, a, session, prev)
	r := &failingReader{r: content{seed: 851, size: failAfter + miB}.reader(), n: failAfter, err: errRead}
	checkError(t, a.Save(t.Context(), r), errRead, fmt.Sprintf("Lease.Save(%q) with a reader failing after %d bytes", session, failAfter), session)
	checkArchive(t, st, session, prev)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cr := &cancelingReader{r: content{seed: 852, size: failAfter + miB}.reader(), n: failAfter, cancel: cancel}
	checkError(t, a.Save(ctx, cr), context.Canceled, fmt.Sprintf("Lease.Save(%q) with ctx cancelled after %d bytes", session, failAfter), session)
	checkArchive(t, st, session, prev)
	c := content{seed: 853, size: 1000}
	leaseSave(t, a, session, c) // the lease is still good
	checkArchive(t, st, session, c)
}

func testLeaseIsolation(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	names := []string{"a", "a-b", "A", "RemoteAuth-a"}
	leases := map[string]remoteauth.Lease{}
	archives := map[string]content{}
	for i, name := range names {
		leases[name] = leasetest.Acquire(t, l, name, "owner-"+name, longTTL)
		archives[name] = content{seed: 860 + uint64(i), size: 1000 + int64(i)*37}
		leaseSave(t, leases[name], name, archives[name])
	}
	for _, name := range names {
		checkHeld(t, l, name, "someone", "owner-"+name)
		checkArchive(t, st, name, archives[name])
	}
	// "a" changes hands; the others' leases are untouched.
	if err := leases["a"].Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	next := leasetest.Acquire(t, l, "a", "owner-a-2", longTTL)
	archives["a"] = content{seed: 870, size: 2000}
	leaseSave(t, next, "a", archives["a"])
	for i, name := range names[1:] {
		checkHeld(t, l, name, "someone", "owner-"+name)
		archives[name] = content{seed: 871 + uint64(i), size: 3000 + int64(i)}
		leaseSave(t, leases[name], name, archives[name])
	}
	for _, name := range names {
		checkArchive(t, st, name, archives[name])
	}
}

// testLeaseConcurrent has 8 goroutines acquire one session at once, for several rounds: exactly
// one wins each round, with a token above the previous round's, and the others are told who
// holds it. The winner then saves while renewing from another goroutine, and releases.
func testLeaseConcurrent(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session, n, rounds = "RemoteAuth-contended-lease", 8, 3
	var last uint64
	for round := range rounds {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			won    []remoteauth.Lease
			owners []string
			held   []*remoteauth.LeaseHeldError
		)
		start := make(chan struct{})
		for i := range n {
			owner := fmt.Sprintf("owner-%d-%d", round, i)
			wg.Go(func() {
				<-start
				lease, err := l.AcquireLease(t.Context(), session, owner, longTTL)
				mu.Lock()
				defer mu.Unlock()
				var h *remoteauth.LeaseHeldError
				switch {
				case err == nil:
					won, owners = append(won, lease), append(owners, owner)
				case errors.As(err, &h):
					held = append(held, h)
				default:
					t.Errorf("concurrent AcquireLease(%q, %q): %v", session, owner, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d concurrent AcquireLease calls won (%q), want exactly 1", round+1, len(won), n, owners)
		}
		for _, h := range held {
			if h.Owner != owners[0] {
				t.Errorf("round %d: a loser was told %q holds the session, but %q won", round+1, h.Owner, owners[0])
			}
		}
		lease := won[0]
		if lease.Token() <= last {
			t.Errorf("round %d: token %d, not above the previous round's %d", round+1, lease.Token(), last)
		}
		last = lease.Token()
		c := content{seed: 880 + uint64(round), size: 2*miB + int64(round)}
		wg.Go(func() {
			for range 5 {
				if err := lease.Renew(t.Context()); err != nil {
					t.Errorf("Renew during Save: %v", err)
				}
			}
		})
		leaseSave(t, lease, session, c)
		wg.Wait()
		checkArchive(t, st, session, c)
		if err := lease.Release(t.Context()); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
}

func testLeaseInvalidArguments(t *testing.T, _ remoteauth.Store, l remoteauth.Leaser) {
	ctx := t.Context()
	for _, name := range []string{"", "..", "a/b", "a.b", "é", strings.Repeat("a", remoteauth.MaxSessionNameLen+1)} {
		if lease, err := l.AcquireLease(ctx, name, "owner", longTTL); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("AcquireLease(%q): %v, %v; want an error wrapping remoteauth.ErrInvalidSession", name, lease, err)
		}
	}
	const session = "RemoteAuth-leaseargs"
	for _, tt := range []struct {
		owner string
		ttl   time.Duration
	}{
		{"", longTTL},
		{strings.Repeat("o", remoteauth.MaxLeaseOwnerLen+1), longTTL},
		{"bad \xff utf-8", longTTL},
		{"owner", 0},
		{"owner", -time.Second},
		{"owner", remoteauth.MinStoreLeaseTTL - 1},
	} {
		lease, err := l.AcquireLease(ctx, session, tt.owner, tt.ttl)
		if err == nil || errors.Is(err, remoteauth.ErrLeaseHeld) {
			t.Errorf("AcquireLease(%q, owner %.20q, ttl %v) = %v, %v; want an error saying what is wrong", session, tt.owner, tt.ttl, lease, err)
		}
	}
	// Nothing was granted, and the longest owner is accepted.
	owner := strings.Repeat("é", remoteauth.MaxLeaseOwnerLen/2)
	leasetest.Acquire(t, l, session, owner, longTTL)
	checkHeld(t, l, session, "owner", owner)
}

func testLeaseCanceledContext(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const session = "RemoteAuth-leasecanceled"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	lease, err := l.AcquireLease(ctx, session, "owner-x", longTTL)
	checkError(t, err, context.Canceled, fmt.Sprintf("AcquireLease(%q) with a cancelled ctx", session), session)
	if err == nil {
		t.Fatalf("AcquireLease with a cancelled ctx granted token %d", lease.Token())
	}
	a := leasetest.Acquire(t, l, session, "owner-a", longTTL) // nothing was granted to owner-x
	c := content{seed: 890, size: 10 * kiB}
	leaseSave(t, a, session, c)
	what := func(op string) string { return fmt.Sprintf("Lease(%q).%s with a cancelled ctx", session, op) }
	checkError(t, a.Renew(ctx), context.Canceled, what("Renew"), session)
	checkError(t, a.Save(ctx, content{seed: 891, size: 10 * kiB}.reader()), context.Canceled, what("Save"), session)
	checkError(t, a.Delete(ctx), context.Canceled, what("Delete"), session)
	checkError(t, a.Release(ctx), context.Canceled, what("Release"), session)
	checkHeld(t, l, session, "owner-b", "owner-a")
	checkArchive(t, st, session, c)
	leaseSave(t, a, session, content{seed: 892, size: 10 * kiB}) // the lease is still good
}

// testLeaseSessionHandover is a rolling deploy of one client over st: Session A backs up;
// Session B of the same client starts Restore, which waits for A's lease (B logs that it waits)
// and is still waiting after A's lease would have expired unrenewed, while A backs up again; A's
// Close takes a final backup of new content and releases the lease; B's Restore then returns
// that final backup's files, and B holds the lease until its Close releases it.
func testLeaseSessionHandover(t *testing.T, st remoteauth.Store, l remoteauth.Leaser) {
	const ownerA, ownerB = "storetest-instance-a", "storetest-instance-b"
	noise, err := io.ReadAll(content{seed: 900, size: 30 * kiB}.reader())
	if err != nil {
		t.Fatal(err)
	}
	const localStorage = "Default/Local Storage/leveldb/000004.log"
	files := map[string]string{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": string(noise),
		localStorage: "before the deploy",
	}
	a := newHandoverSession(t, st, ownerA, nil)
	filetree.Write(t, a.ProfileDir(), files)
	if res, err := a.Backup(t.Context()); err != nil || res.Unchanged {
		t.Fatalf("Backup of instance A = %+v, %v; want an upload", res, err)
	}
	// A's lease was granted before this instant, so it expires, unless renewed, before
	// renewDue: a B still waiting after renewDue shows that A renews it.
	renewDue := time.Now().Add(remoteauth.MinLeaseTTL + remoteauth.MinLeaseTTL/3)

	waiting := &logWatch{want: "waiting for another instance", seen: make(chan struct{})}
	b := newHandoverSession(t, st, ownerB, slog.New(slog.NewTextHandler(waiting, nil)))
	type restored struct {
		res remoteauth.RestoreResult
		err error
	}
	done := make(chan restored, 1)
	go func() {
		res, err := b.Restore(t.Context())
		done <- restored{res, err}
	}()
	// B's Restore returns (with an error wrapping ErrLeaseHeld) once its Wait ends, so this
	// select ends too.
	select {
	case <-waiting.seen:
	case r := <-done:
		t.Fatalf("instance B's Restore returned %+v, %v while instance A held the session's lease; want it to wait for A", r.res, r.err)
	}
	files[localStorage] = "while B waits"
	filetree.Write(t, a.ProfileDir(), files)
	if res, err := a.Backup(t.Context()); err != nil || res.Unchanged {
		t.Fatalf("Backup of instance A while B waits = %+v, %v; want an upload under A's lease", res, err)
	}
	time.Sleep(time.Until(renewDue))
	select {
	case r := <-done:
		t.Fatalf("instance B's Restore returned %+v, %v after A's lease TTL while A ran; want it to wait for A (does the store's Renew extend the lease?)", r.res, r.err)
	default:
	}

	files[localStorage] = "instance A's final state"
	filetree.Write(t, a.ProfileDir(), files)
	if err := a.Close(t.Context()); err != nil {
		t.Fatalf("Close of instance A (final backup, lease released): %v", err)
	}
	r := <-done
	if r.err != nil || !r.res.Found {
		t.Fatalf("instance B's Restore = %+v, %v; want instance A's final backup", r.res, r.err)
	}
	if got := filetree.Read(t, b.ProfileDir()); !maps.Equal(got, files) {
		t.Errorf("instance B restored %d files %q (%s: %.40q), want instance A's final backup (%s: %q)",
			len(got), slices.Sorted(maps.Keys(got)), localStorage, got[localStorage], localStorage, files[localStorage])
	}
	checkHeld(t, l, b.Name(), "storetest-third", ownerB)
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close of instance B: %v", err)
	}
	// B's Close released the lease: a third owner acquires at once, without waiting for a TTL.
	if err := leasetest.Acquire(t, l, b.Name(), "storetest-third", longTTL).Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
}

// newHandoverSession returns a Session of client ID "handover" over st, in a new DataPath, that
// leases as owner with a lease of MinLeaseTTL (renewed every second) and waits for another
// instance's lease for up to leasetest.TakeOverDeadline. It logs to logger (nil: slog.Default()). The test
// ends it with Abandon, unless it was closed before.
func newHandoverSession(t *testing.T, st remoteauth.Store, owner string, logger *slog.Logger) *remoteauth.Session {
	t.Helper()
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "handover", DataPath: t.TempDir(), Logger: logger,
		Lease: remoteauth.LeaseOptions{Owner: owner, TTL: remoteauth.MinLeaseTTL, Wait: leasetest.TakeOverDeadline}})
	if err != nil {
		t.Fatalf("remoteauth.NewSession: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Abandon(context.Background()); err != nil && !errors.Is(err, remoteauth.ErrClosed) {
			t.Errorf("Abandon of the Session of %s: %v", owner, err)
		}
	})
	return s
}

// logWatch is the io.Writer of a log handler: it closes seen once a write holds want.
type logWatch struct {
	want string
	seen chan struct{}
	once sync.Once
}

func (w *logWatch) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// gatedReader reads r; once n bytes have been read, it closes reached and waits for open to be
// closed before reading on.
type gatedReader struct {
	r       io.Reader
	n       int64
	reached chan struct{}
	open    chan struct{}
	once    sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.n <= 0 {
		g.once.Do(func() { close(g.reached) })
		<-g.open
		return g.r.Read(p)
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	k, err := g.r.Read(p)
	g.n -= int64(k)
	return k, err
}
