package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// newSession returns a Session of clientID over st in dataPath that does not lease the session
// (the tests' readers must not wait for the lease of a process they killed) and retries a failed
// save once, quickly.
func newSession(t testing.TB, st remoteauth.Store, clientID, dataPath string) *remoteauth.Session {
	t.Helper()
	s, err := remoteauth.NewSession(st, &remoteauth.Options{
		ClientID: clientID,
		DataPath: dataPath,
		Lease:    remoteauth.LeaseOptions{Disabled: true},
		Retry:    remoteauth.RetryPolicy{MaxAttempts: 2, InitialDelay: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// restoreTree restores clientID's session from st into a new directory and returns the tree of
// the restored profile. The store must hold an archive of the session, whose newest archive
// passes verification.
func restoreTree(t testing.TB, st remoteauth.Store, clientID string) tree {
	t.Helper()
	tr, err := tryRestoreTree(t.Context(), st, clientID, t.TempDir())
	if err != nil {
		t.Fatalf("restoring %s: %v", clientID, err)
	}
	return tr
}

// tryRestoreTree restores clientID's session from st into dataPath with a new Session that does
// not lease, and returns the tree of the restored profile. No archive, or a fall-back to an older
// archive than the newest, is an error.
func tryRestoreTree(ctx context.Context, st remoteauth.Store, clientID, dataPath string) (tree, error) {
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: clientID, DataPath: dataPath, Lease: remoteauth.LeaseOptions{Disabled: true}})
	if err != nil {
		return nil, err
	}
	res, err := s.Restore(ctx)
	switch {
	case err != nil:
		return nil, err
	case !res.Found:
		return nil, errors.New("Restore found no archive")
	case res.FellBack:
		return nil, fmt.Errorf("Restore fell back to an older archive than the newest: %v", res.Skipped)
	}
	return hashTree(s.ProfileDir())
}

// checkStore checks that st holds, whole, the archive of the SIGKILL test's session in one of
// the states that p allows: p.saved, or p.inFlight when a backup of it was under way. Extract
// must return an archive that InspectArchive and Verify accept, whose content is what a Session
// restores, byte for byte, and is exactly one of those states. It returns that state.
func checkStore(t *testing.T, st remoteauth.Store, ss *states, p progress) int64 {
	t.Helper()
	candidates := []int64{p.saved}
	if p.inFlight != 0 {
		candidates = append(candidates, p.inFlight)
	}
	name, err := remoteauth.SessionName(sigkillClient)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var buf bytes.Buffer
	if err := st.Extract(ctx, name, &buf); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	r := bytes.NewReader(buf.Bytes())
	info, err := remoteauth.InspectArchive(r, r.Size(), remoteauth.ExtractLimits{})
	if err != nil {
		t.Fatalf("InspectArchive of the %d-byte archive that Extract returned: %v", r.Size(), err)
	}
	if err := info.Verify(ctx); err != nil {
		t.Fatalf("Verify of the %d-byte archive that Extract returned: %v", r.Size(), err)
	}
	dir := filepath.Join(t.TempDir(), "extracted")
	if _, err := remoteauth.ExtractArchive(ctx, r, r.Size(), dir, remoteauth.ExtractLimits{}); err != nil {
		t.Fatalf("ExtractArchive: %v", err)
	}
	extracted, err := hashTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	restored := restoreTree(t, st, sigkillClient)
	if !maps.Equal(extracted, restored) {
		t.Fatalf("the archive that Extract returned and the profile that Restore wrote differ: %s", extracted.diff(restored))
	}
	k := ss.which(t, restored, candidates...)
	if k < 0 {
		t.Fatalf("the store holds none of states %v; against state %d: %s", candidates, candidates[0], ss.tree(t, candidates[0]).diff(restored))
	}
	return k
}
