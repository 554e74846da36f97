package reliability

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/testservers"
)

// TestCloseWithDeadline takes the final backup as a process does on SIGTERM, for every store:
// Session.Close with a context that has a deadline (a Heroku dyno has 30 s). Drivers turn a
// deadline into server-side time limits (MongoDB's maxTimeMS), which a server may refuse; the
// backup must succeed, and restore byte for byte.
func TestCloseWithDeadline(t *testing.T) {
	const size = 2 << 20
	ss := newStates(t, size)
	forEachStore(t, true, func(t *testing.T, srv testservers.Server) {
		st := openStore(t, srv, srv.URL)
		s := newSession(t, st, "sigterm", t.TempDir())
		setProfile(t, ss, s, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close with a 30 s deadline: %v", err)
		}
		if want, got := ss.tree(t, 1), restoreTree(t, st, "sigterm"); !maps.Equal(want, got) {
			t.Fatalf("the final backup restores something else: %s", want.diff(got))
		}
	})
}
