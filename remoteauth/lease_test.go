package remoteauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// leaseStore is a store that grants leases, as both root-module stores do.
type leaseStore interface {
	remoteauth.Store
	remoteauth.Leaser
}

// leaseStores makes an empty store of each kind that implements Leaser.
var leaseStores = []struct {
	name string
	new  func(t *testing.T) leaseStore
}{
	{"memstore", func(*testing.T) leaseStore { return memstore.New() }},
	{"filestore", func(t *testing.T) leaseStore {
		st, err := filestore.New(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// forEachLeaseStore runs test in a synctest bubble for each kind of leaseStore: lease expiry,
// renewals and waits run on the bubble's fake clock, so the tests take no real time.
func forEachLeaseStore(t *testing.T, test func(t *testing.T, st leaseStore)) {
	for _, kind := range leaseStores {
		t.Run(kind.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { test(t, kind.new(t)) })
		})
	}
}

// smallProfile is a profile of a few kept files, saying what it is in its Local Storage.
func smallProfile(state string) map[string]string {
	return map[string]string{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT":    "MANIFEST-000001\n",
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": strings.Repeat("log ", 100),
		"Default/Local Storage/leveldb/000003.log":                                state,
	}
}

// instance returns a Session of "RemoteAuth-test" with its own DataPath, leasing as owner.
func instance(t *testing.T, st remoteauth.Store, owner string, lease remoteauth.LeaseOptions, onBackup func(remoteauth.BackupResult)) *remoteauth.Session {
	t.Helper()
	lease.Owner = owner
	s := newSession(t, st, &remoteauth.Options{ClientID: "test", Lease: lease, BackupInterval: time.Hour, OnBackup: onBackup})
	// A test that stops early must still stop the Session's renewals before its bubble ends;
	// a Session the test closed already returns ErrClosed.
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// archive returns the store's archive of session.
func archive(t *testing.T, st remoteauth.Store, session string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := st.Extract(t.Context(), session, &b); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	return b.Bytes()
}

// TestLeaseRollingDeployHandover starts a second instance of a session while the first runs, as
// a rolling deploy does: the second waits, and once the first has closed (final backup, lease
// released) it restores that final backup.
func TestLeaseRollingDeployHandover(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, st leaseStore) {
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, nil)
		filetree.Write(t, old.ProfileDir(), smallProfile("logged in"))
		if _, err := old.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		runErr := make(chan error, 1)
		go func() { runErr <- old.Run(t.Context()) }()
		synctest.Wait() // the first backup is taken

		next := instance(t, st, "new-dyno", remoteauth.LeaseOptions{}, nil)
		type restored struct {
			res remoteauth.RestoreResult
			err error
		}
		done := make(chan restored, 1)
		go func() {
			res, err := next.Restore(t.Context())
			done <- restored{res, err}
		}()
		// A minute later (longer than the lease's 30 s TTL, shorter than the 2 minutes the new
		// instance waits), the old instance still holds the session: it renews its lease.
		time.Sleep(time.Minute)
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("the new instance restored (%+v, %v) while the old one ran", r.res, r.err)
		default:
		}

		// SIGTERM: the old instance saves its last state and releases the session.
		filetree.Write(t, old.ProfileDir(), smallProfile("the final state"))
		if err := old.Close(t.Context()); err != nil {
			t.Fatalf("Close of the old instance: %v", err)
		}
		if err := <-runErr; err != nil {
			t.Errorf("Run of the old instance returned %v after Close, want nil", err)
		}
		r := <-done
		if r.err != nil || !r.res.Found {
			t.Fatalf("Restore of the new instance = %+v, %v; want the old instance's final backup", r.res, r.err)
		}
		if got := readTree(t, next.ProfileDir()); !maps.Equal(got, readTree(t, old.ProfileDir())) {
			t.Errorf("the new instance restored %v, want the old one's final profile", got)
		}
		// The new instance now owns the session, and hands it over in turn.
		filetree.Write(t, next.ProfileDir(), smallProfile("the new instance's state"))
		if _, err := next.Backup(t.Context()); err != nil {
			t.Fatalf("Backup of the new instance: %v", err)
		}
		if err := next.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		lease, err := st.AcquireLease(t.Context(), next.Name(), "check", time.Minute)
		if err != nil {
			t.Fatalf("AcquireLease after both instances closed: %v", err)
		}
		if lease.Token() != 3 {
			t.Errorf("token %d after two instances, want 3", lease.Token())
		}
	})
}

// TestLeaseFailFast: with a negative Wait, a second instance fails at once, naming the holder,
// and neither its local profile nor the store changes.
func TestLeaseFailFast(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, st leaseStore) {
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, nil)
		filetree.Write(t, old.ProfileDir(), smallProfile("old"))
		if _, err := old.Backup(t.Context()); err != nil {
			t.Fatal(err)
		}
		saved := archive(t, st, old.Name())

		var events []remoteauth.BackupResult
		next := instance(t, st, "new-dyno", remoteauth.LeaseOptions{Wait: -1}, func(r remoteauth.BackupResult) { events = append(events, r) })
		filetree.Write(t, next.ProfileDir(), smallProfile("local"))
		local := readTree(t, next.ProfileDir())
		start := time.Now()
		_, err := next.Restore(t.Context())
		var held *remoteauth.LeaseHeldError
		if !errors.Is(err, remoteauth.ErrLeaseHeld) || !errors.As(err, &held) || held.Owner != "old-dyno" || !strings.Contains(err.Error(), `"old-dyno"`) {
			t.Fatalf("Restore while another instance holds the session: %v; want ErrLeaseHeld naming \"old-dyno\"", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Restore with a negative Wait waited %v", waited)
		}
		if _, err := next.Backup(t.Context()); !errors.Is(err, remoteauth.ErrLeaseHeld) {
			t.Errorf("Backup while another instance holds the session: %v; want ErrLeaseHeld", err)
		}
		if len(events) != 1 || !errors.Is(events[0].Err, remoteauth.ErrLeaseHeld) {
			t.Errorf("OnBackup events = %+v; want the refused backup", events)
		}
		if got := readTree(t, next.ProfileDir()); !maps.Equal(got, local) {
			t.Errorf("the refused instance's profile changed: %v", got)
		}
		if got := archive(t, st, old.Name()); !bytes.Equal(got, saved) {
			t.Error("the store's archive changed")
		}
		if err := next.Close(t.Context()); !errors.Is(err, remoteauth.ErrLeaseHeld) {
			t.Errorf("Close of the refused instance: %v; want ErrLeaseHeld (no final backup)", err)
		}
		if err := old.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaseWaitGivesUp: a second instance waits Options.Lease.Wait, then fails naming the holder.
func TestLeaseWaitGivesUp(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, st leaseStore) {
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, nil)
		if _, err := old.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		next := instance(t, st, "new-dyno", remoteauth.LeaseOptions{Wait: time.Minute}, nil)
		start := time.Now()
		_, err := next.Restore(t.Context())
		var held *remoteauth.LeaseHeldError
		if !errors.As(err, &held) || held.Owner != "old-dyno" {
			t.Fatalf("Restore: %v; want ErrLeaseHeld naming \"old-dyno\"", err)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Errorf("Restore gave up after %v (fake time), want Wait, 1m0s", waited)
		}
		if err := old.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := next.Close(t.Context()); err != nil {
			t.Fatal(err) // no profile: nothing to back up, no lease needed
		}
	})
}

// partitionStore wraps a real leaseStore: while cut, the Renew of its leases fails as if the
// network were down, so that the lease expires at the store. It counts the saves made under its
// leases.
type partitionStore struct {
	leaseStore
	cut   atomic.Bool
	saves atomic.Int32
}

var errPartition = errors.New("partition: the store is unreachable")

func (p *partitionStore) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	l, err := p.leaseStore.AcquireLease(ctx, session, owner, ttl)
	if err != nil {
		return nil, err
	}
	return &partitionLease{Lease: l, p: p}, nil
}

type partitionLease struct {
	remoteauth.Lease
	p *partitionStore
}

func (l *partitionLease) Renew(ctx context.Context) error {
	if l.p.cut.Load() {
		return errPartition
	}
	return l.Lease.Renew(ctx)
}

func (l *partitionLease) Save(ctx context.Context, r io.Reader) error {
	l.p.saves.Add(1)
	return l.Lease.Save(ctx, r)
}

// TestLeaseLostStopsBackups cuts an instance off the store for longer than its lease's TTL while
// another instance takes the session over: once the first can renew again and learns that its
// lease is lost, it stops at once (Run returns, Backup and Close refuse), writes nothing more,
// and deletes nothing.
func TestLeaseLostStopsBackups(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, real leaseStore) {
		st := &partitionStore{leaseStore: real}
		var mu sync.Mutex
		var events []remoteauth.BackupResult
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, func(r remoteauth.BackupResult) {
			mu.Lock()
			events = append(events, r)
			mu.Unlock()
		})
		filetree.Write(t, old.ProfileDir(), smallProfile("old"))
		runErr := make(chan error, 1)
		go func() { runErr <- old.Run(t.Context()) }()
		synctest.Wait() // the first backup is taken
		if n := st.saves.Load(); n != 1 {
			t.Fatalf("%d saves after Run started, want 1", n)
		}

		st.cut.Store(true)
		time.Sleep(remoteauth.DefaultLeaseTTL + time.Second) // the old lease expires at the store
		newer, err := real.AcquireLease(t.Context(), old.Name(), "new-dyno", time.Hour)
		if err != nil {
			t.Fatalf("AcquireLease once the old lease expired: %v", err)
		}
		newArchive := []byte("the new instance's archive")
		if err := newer.Save(t.Context(), bytes.NewReader(newArchive)); err != nil {
			t.Fatal(err)
		}
		st.cut.Store(false)
		time.Sleep(remoteauth.DefaultLeaseTTL / 3) // the old instance's next renewal
		synctest.Wait()
		select {
		case err := <-runErr:
			if !errors.Is(err, remoteauth.ErrLeaseLost) {
				t.Errorf("Run returned %v once the lease was lost, want an error wrapping ErrLeaseLost", err)
			}
		default:
			t.Fatal("Run is still running after the lease was lost")
		}

		filetree.Write(t, old.ProfileDir(), smallProfile("old, changed"))
		if _, err := old.Backup(t.Context()); !errors.Is(err, remoteauth.ErrLeaseLost) {
			t.Errorf("Backup after the lease was lost: %v, want ErrLeaseLost", err)
		}
		if err := old.Close(t.Context()); !errors.Is(err, remoteauth.ErrLeaseLost) {
			t.Errorf("Close after the lease was lost: %v, want ErrLeaseLost", err)
		}
		if n := st.saves.Load(); n != 1 {
			t.Errorf("%d saves, want 1: nothing may be written after the lease is lost", n)
		}
		if got := archive(t, real, old.Name()); !bytes.Equal(got, newArchive) {
			t.Errorf("the store holds %q, want the new instance's archive", got)
		}
		if _, err := os.Stat(old.ProfileDir()); err != nil {
			t.Errorf("the old instance's local profile: %v; losing the lease must delete nothing", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 3 || events[0].Err != nil || !errors.Is(events[1].Err, remoteauth.ErrLeaseLost) || !errors.Is(events[2].Err, remoteauth.ErrLeaseLost) {
			t.Errorf("OnBackup events = %+v; want the first backup, then the Backup and Close refused with ErrLeaseLost", events)
		}
		if err := newer.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaseStaleWriterRefused: an instance cut off from the store past its TTL does not know yet
// that another instance took the session over and saved; its next backup is refused by the
// store's fencing, is not retried, and leaves the newer archive byte for byte.
func TestLeaseStaleWriterRefused(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, real leaseStore) {
		st := &partitionStore{leaseStore: real}
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, nil)
		filetree.Write(t, old.ProfileDir(), smallProfile("old"))
		if _, err := old.Backup(t.Context()); err != nil {
			t.Fatal(err)
		}
		st.cut.Store(true)
		time.Sleep(remoteauth.DefaultLeaseTTL + time.Second)

		next := instance(t, st, "new-dyno", remoteauth.LeaseOptions{}, nil)
		if res, err := next.Restore(t.Context()); err != nil || !res.Found {
			t.Fatalf("Restore of the new instance = %+v, %v", res, err)
		}
		filetree.Write(t, next.ProfileDir(), smallProfile("new"))
		if _, err := next.Backup(t.Context()); err != nil {
			t.Fatal(err)
		}
		newer := archive(t, real, old.Name())
		saves := st.saves.Load()

		filetree.Write(t, old.ProfileDir(), smallProfile("old, changed"))
		res, err := old.Backup(t.Context())
		if !errors.Is(err, remoteauth.ErrLeaseLost) || res.Attempts != 1 {
			t.Fatalf("Backup of the stale instance = %+v, %v; want one attempt refused with ErrLeaseLost", res, err)
		}
		if n := st.saves.Load() - saves; n != 1 {
			t.Errorf("the stale instance made %d saves, want 1 (refused, not retried)", n)
		}
		if got := archive(t, real, old.Name()); !bytes.Equal(got, newer) {
			t.Error("the stale instance's backup replaced the newer archive")
		}
		if _, err := old.Backup(t.Context()); !errors.Is(err, remoteauth.ErrLeaseLost) || st.saves.Load()-saves != 1 {
			t.Errorf("a second Backup of the stale instance: %v after %d saves; want ErrLeaseLost without a save", err, st.saves.Load()-saves)
		}
		st.cut.Store(false)
		if err := next.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := old.Close(t.Context()); !errors.Is(err, remoteauth.ErrLeaseLost) {
			t.Errorf("Close of the stale instance: %v, want ErrLeaseLost", err)
		}
	})
}

// TestLeaseDelete: Delete (logout) holds the lease: it fails while another instance holds the
// session, deleting nothing, and once it gets the lease it deletes and releases.
func TestLeaseDelete(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, st leaseStore) {
		old := instance(t, st, "old-dyno", remoteauth.LeaseOptions{}, nil)
		filetree.Write(t, old.ProfileDir(), smallProfile("old"))
		if _, err := old.Backup(t.Context()); err != nil {
			t.Fatal(err)
		}
		other := instance(t, st, "other", remoteauth.LeaseOptions{Wait: -1}, nil)
		if err := other.Delete(t.Context()); !errors.Is(err, remoteauth.ErrLeaseHeld) {
			t.Fatalf("Delete while another instance holds the session: %v, want ErrLeaseHeld", err)
		}
		if ok, err := st.SessionExists(t.Context(), old.Name()); !ok || err != nil {
			t.Fatalf("SessionExists after a refused Delete = %v, %v", ok, err)
		}
		if err := old.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		logout := instance(t, st, "logout", remoteauth.LeaseOptions{}, nil)
		if err := logout.Delete(t.Context()); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if ok, err := st.SessionExists(t.Context(), old.Name()); ok || err != nil {
			t.Errorf("SessionExists after Delete = %v, %v", ok, err)
		}
		if _, err := st.AcquireLease(t.Context(), old.Name(), "after", time.Minute); err != nil {
			t.Errorf("AcquireLease after Delete: %v; Delete must release the lease", err)
		}
	})
}

// TestLeaseDisabled: with Lease.Disabled, two instances write as RemoteAuth's do, and the store
// sees no lease.
func TestLeaseDisabled(t *testing.T) {
	forEachLeaseStore(t, func(t *testing.T, st leaseStore) {
		off := remoteauth.LeaseOptions{Disabled: true}
		a, b := instance(t, st, "a", off, nil), instance(t, st, "b", off, nil)
		for _, s := range []*remoteauth.Session{a, b} {
			filetree.Write(t, s.ProfileDir(), smallProfile(s.ProfileDir()))
			if _, err := s.Restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Backup(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		lease, err := st.AcquireLease(t.Context(), a.Name(), "check", time.Minute)
		if err != nil || lease.Token() != 1 {
			t.Fatalf("AcquireLease = %v, %v; want the first lease of the session", lease, err)
		}
		for _, s := range []*remoteauth.Session{a, b} {
			if err := s.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLeaseOptions(t *testing.T) {
	store := memstore.New()
	for _, tt := range []struct {
		name    string
		lease   remoteauth.LeaseOptions
		wantErr string
	}{
		{"short TTL", remoteauth.LeaseOptions{TTL: 2 * time.Second}, "Lease.TTL 2s is shorter than the minimum 3s"},
		{"long owner", remoteauth.LeaseOptions{Owner: strings.Repeat("o", remoteauth.MaxLeaseOwnerLen+1)}, "must be 1 to 200 bytes"},
		{"bad owner", remoteauth.LeaseOptions{Owner: "\xff"}, "must be 1 to 200 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := remoteauth.NewSession(store, &remoteauth.Options{Lease: tt.lease})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewSession: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
	t.Run("default owner", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newSession(t, store, nil)
			if _, err := s.Restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			_, err := store.AcquireLease(t.Context(), s.Name(), "other", time.Minute)
			var held *remoteauth.LeaseHeldError
			if !errors.As(err, &held) {
				t.Fatalf("AcquireLease: %v, want ErrLeaseHeld", err)
			}
			host, _ := os.Hostname()
			re := regexp.MustCompile(`^` + regexp.QuoteMeta(host) + `/` + strconv.Itoa(os.Getpid()) + `/[0-9a-f]{8}$`)
			if !re.MatchString(held.Owner) {
				t.Errorf("default owner %q, want <hostname>/<pid>/<8 hex digits>", held.Owner)
			}
			if err := s.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// ExampleLeaser shows the capability at the store level: a second owner is refused while a lease
// is live, the holder saves its last archive and releases, and the lease it held can no longer
// write once the next owner holds a newer token.
func ExampleLeaser() {
	ctx := context.Background()
	store := memstore.New()
	old, err := store.AcquireLease(ctx, "RemoteAuth-alice", "web.1", 30*time.Second)
	if err != nil {
		panic(err)
	}
	_, err = store.AcquireLease(ctx, "RemoteAuth-alice", "web.2", 30*time.Second)
	var held *remoteauth.LeaseHeldError
	if errors.As(err, &held) {
		fmt.Println("held by", held.Owner)
	}
	if err := old.Save(ctx, strings.NewReader("final backup")); err != nil {
		panic(err)
	}
	if err := old.Release(ctx); err != nil {
		panic(err)
	}
	next, err := store.AcquireLease(ctx, "RemoteAuth-alice", "web.2", 30*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println("token", next.Token(), "after", old.Token())
	err = old.Save(ctx, strings.NewReader("stale"))
	fmt.Println("stale save refused:", errors.Is(err, remoteauth.ErrLeaseLost))
	// Output:
	// held by web.1
	// token 2 after 1
	// stale save refused: true
}
