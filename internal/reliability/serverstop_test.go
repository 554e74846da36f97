package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/faultproxy"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// URL parameters of TestServerStopped: client timeouts, so that a server that is away makes an
// operation fail within seconds rather than after a driver's default (MongoDB's server selection
// waits 30 s); and for Redis and PostgreSQL, chunks of 64 KiB rather than 1 MiB, so that
// less of the archive is read ahead (Redis reads six chunks ahead; PostgreSQL streams every
// chunk in one query) before the server goes away.
var stoppedParams = map[string]url.Values{
	"redis":    {"dial_timeout": {"2s"}, "chunk_size": {"65536"}},
	"postgres": {"connect_timeout": {"5"}, "chunk_size": {"65536"}},
	"mongo":    {"serverSelectionTimeoutMS": {"5000"}, "connectTimeoutMS": {"2000"}},
	"s3":       {},
}

// viaProxy returns srv's URL with its server's address replaced by a fault proxy's (for S3, the
// endpoint parameter's), the client timeouts of stoppedParams added, and the proxy.
func viaProxy(t *testing.T, srv testservers.Server) (string, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	server := u
	if srv.Name == "s3" {
		if server, err = url.Parse(q.Get("endpoint")); err != nil {
			t.Fatalf("the S3 URL's endpoint: %v", err)
		}
	}
	p := faultproxy.Start(t, server.Host)
	server.Host = p.Addr()
	if srv.Name == "s3" {
		q.Set("endpoint", server.String())
	}
	for k, v := range stoppedParams[srv.Name] {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), p
}

// trippingStore is a store whose Extract and ExtractVersion call trip once the given number of
// bytes of the archive have been written: the test stops the server there.
type trippingStore struct {
	remoteauth.Store
	history remoteauth.History
	after   int64
	trip    func()
}

func (s *trippingStore) Extract(ctx context.Context, session string, w io.Writer) error {
	return s.Store.Extract(ctx, session, faultproxy.TripWriter(w, s.after, s.trip))
}

func (s *trippingStore) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	return s.history.Versions(ctx, session)
}

func (s *trippingStore) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	return s.history.ExtractVersion(ctx, session, id, faultproxy.TripWriter(w, s.after, s.trip))
}

// eventually calls f until it returns nil, every 200 ms for at most a minute, and returns how
// long that took: a client reconnects at its own pace after its server came back.
func eventually(t *testing.T, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("%s: still failing a minute after the server came back: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestServerStopped stops each real server, as far as its clients can tell (every connection
// cut and new ones refused by a fault proxy in front of it), in the middle of a Session's backup
// and then in the middle of its restore, and brings it back:
//
//   - the backup fails with an error; the store keeps the previous archive whole;
//   - a restore while the server is away fails (it is not "no session"), and leaves the local
//     profile byte for byte as it was, with nothing else in DataPath;
//   - a restore cut half-way does the same;
//   - once the server is back, the same store value restores the previous archive byte for
//     byte, and backs up the new profile.
//
// The stores' own fault_test.go files check the same faults on Store.Save and Store.Extract
// alone, with the details of each store (what a failed Save leaves, how it is cleaned up).
func TestServerStopped(t *testing.T) {
	const (
		size   = 16 << 20 // 6.9 MiB in the kept directories, a 4.8 MiB archive
		cutAt  = 1 << 20  // bytes of the backup sent before the server goes away
		tripAt = 1 << 20  // bytes of the restore received before the server goes away
	)
	ss := newStates(t, size)
	for _, s := range realStores {
		t.Run(s.name, func(t *testing.T) {
			srv := s.open(t)
			rawURL, p := viaProxy(t, srv)
			st := openStore(t, srv, rawURL)
			ctx := t.Context()

			// The profile in state 1 is backed up; state 2 replaces it.
			a := newSession(t, st, "stop", t.TempDir())
			setProfile(t, ss, a, 1)
			if _, err := a.Backup(ctx); err != nil {
				t.Fatalf("the first backup: %v", err)
			}
			setProfile(t, ss, a, 2)

			// The server goes away after cutAt bytes of the backup of state 2.
			p.CutAfter(cutAt)
			_, err := a.Backup(ctx)
			switch {
			case err == nil:
				t.Fatal("Backup succeeded while the server was away")
			case ctx.Err() != nil:
				t.Fatalf("Backup did not return before the test's deadline: %v", err)
			}
			t.Logf("backup while the server is away: %v", err)

			// While it is away, a restore fails and changes nothing.
			b := newSession(t, st, "stop", t.TempDir())
			setProfile(t, ss, b, 100)
			if !restoreFails(t, ctx, b, "restore while the server is away") {
				t.Fatal("a restore succeeded while the server was away")
			}

			// Back: the store holds state 1, whole.
			p.Refuse(false)
			var got tree
			took := eventually(t, "restore once the server is back", func() error {
				var err error
				got, err = tryRestoreTree(ctx, st, "stop", t.TempDir())
				return err
			})
			if want := ss.tree(t, 1); !maps.Equal(want, got) {
				t.Fatalf("after the failed backup, the store does not hold the previous state 1: %s", want.diff(got))
			}
			t.Logf("the store value answered again %v after the server came back", took.Round(time.Millisecond))
			eventually(t, "backup once the server is back", func() error { _, err := a.Backup(ctx); return err })
			if want, got := ss.tree(t, 2), restoreTree(t, st, "stop"); !maps.Equal(want, got) {
				t.Fatalf("after the backup of state 2, the store holds something else: %s", want.diff(got))
			}

			// The server goes away after tripAt bytes of a restore of state 2, over state 1.
			h, ok := st.(remoteauth.History)
			if !ok {
				t.Fatalf("the %s store does not implement remoteauth.History; trippingStore assumes that it does", srv.Name)
			}
			// The bytes that the server sent before the cut may all have reached the client
			// already (socket buffers, a driver's read-ahead): then the restore is whole, which is
			// right, but tests nothing. So the cut comes earlier each time, tripAt bytes at first.
			cutShort := false
			for _, after := range []int64{tripAt, tripAt / 4, 0} {
				trip := &trippingStore{Store: st, history: h, after: after, trip: func() { p.Cut(); p.Refuse(true) }}
				c := newSession(t, trip, "stop", t.TempDir())
				setProfile(t, ss, c, 1)
				if cutShort = restoreFails(t, ctx, c, fmt.Sprintf("restore cut after %d bytes", after)); cutShort {
					break
				}
				if want, got := ss.tree(t, 2), treeOf(t, c); !maps.Equal(want, got) {
					t.Fatalf("a restore that received the whole archive before the cut restored something else than state 2: %s", want.diff(got))
				}
				p.Refuse(false)
			}
			if !cutShort {
				t.Fatalf("every restore received the whole archive before the server went away, even when it went away at the first byte written")
			}
			p.Refuse(false)
			eventually(t, "restore once the server is back", func() error {
				var err error
				got, err = tryRestoreTree(ctx, st, "stop", t.TempDir())
				return err
			})
			if want := ss.tree(t, 2); !maps.Equal(want, got) {
				t.Fatalf("after the cut restore, the store does not hold state 2: %s", want.diff(got))
			}
		})
	}
}

// setProfile replaces s's profile with the whole state k (kept directories and the rest).
func setProfile(t *testing.T, ss *states, s *remoteauth.Session, k int64) {
	t.Helper()
	if err := os.RemoveAll(s.ProfileDir()); err != nil {
		t.Fatal(err)
	}
	if err := ss.generate(t.Context(), s.ProfileDir(), k); err != nil {
		t.Fatal(err)
	}
}

// restoreFails checks that s.Restore fails without touching s's profile: the whole profile is
// byte for byte as it was, and DataPath holds nothing else. It returns false, after logging it,
// if Restore succeeded: the caller decides whether that is right.
func restoreFails(t *testing.T, ctx context.Context, s *remoteauth.Session, what string) bool {
	t.Helper()
	before, err := hashTree(s.ProfileDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Restore(ctx)
	switch {
	case err == nil:
		t.Logf("%s succeeded (found %t)", what, res.Found)
		return false
	case errors.Is(err, remoteauth.ErrNotFound):
		t.Fatalf("%s: %v; want a failure, not a missing session", what, err)
	case ctx.Err() != nil:
		t.Fatalf("%s did not return before the test's deadline: %v", what, err)
	}
	t.Logf("%s: %v", what, err)
	after, err := hashTree(s.ProfileDir())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(before, after) {
		t.Errorf("%s changed the local profile: %s", what, before.diff(after))
	}
	if got, want := listDir(t, filepath.Dir(s.ProfileDir())), []string{filepath.Base(s.ProfileDir())}; !slices.Equal(got, want) {
		t.Errorf("%s left %q in DataPath; want only %q", what, got, want)
	}
	return true
}

// treeOf returns the tree of s's profile.
func treeOf(t *testing.T, s *remoteauth.Session) tree {
	t.Helper()
	tr, err := hashTree(s.ProfileDir())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
