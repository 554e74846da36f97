package remoteauth_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// Abandon uploads nothing, deletes nothing, and releases the lease at once, so that the next
// instance restores without waiting.
func TestAbandonKeepsArchiveAndReleasesLease(t *testing.T) {
	store := memstore.New()
	opts := &remoteauth.Options{ClientID: "abandon", DataPath: t.TempDir()}
	s, err := remoteauth.NewSession(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(s.ProfileDir(), "Default", "Local Storage", "leveldb", "000003.log")
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, []byte("logged in"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	if err := store.Extract(t.Context(), s.Name(), &saved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, []byte("logged out"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := s.Abandon(t.Context()); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	var after bytes.Buffer
	if err := store.Extract(t.Context(), s.Name(), &after); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.Bytes(), saved.Bytes()) {
		t.Error("Abandon replaced the remote archive")
	}
	if b, err := os.ReadFile(local); err != nil || string(b) != "logged out" {
		t.Errorf("Abandon changed the local profile: %q, %v", b, err)
	}
	if _, err := s.Backup(t.Context()); !errors.Is(err, remoteauth.ErrClosed) {
		t.Errorf("Backup after Abandon = %v, want ErrClosed", err)
	}
	if err := s.Abandon(t.Context()); !errors.Is(err, remoteauth.ErrClosed) {
		t.Errorf("second Abandon = %v, want ErrClosed", err)
	}

	// The lease is free: a new instance that does not wait restores at once.
	next, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: "abandon", DataPath: t.TempDir(), Lease: remoteauth.LeaseOptions{Wait: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := next.Restore(t.Context()); err != nil {
		t.Fatalf("Restore after Abandon: %v", err)
	}
	if err := next.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
