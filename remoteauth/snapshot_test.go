package remoteauth_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"sync/atomic"
	"testing"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/memory"
)

// churnStore is a real store whose first Save lets the browser (profilegen.Churn: a LevelDB
// compaction) rewrite the profile after reading the first bytes of the snapshot.
type churnStore struct {
	remoteauth.Store
	profile string
	churned atomic.Bool
	t       *testing.T
}

func (c *churnStore) Save(ctx context.Context, session string, r io.Reader) error {
	if !c.churned.Swap(true) {
		if _, err := io.CopyN(io.Discard, r, 4096); err != nil {
			return err
		}
		if err := profilegen.Churn(c.profile, 7, 3); err != nil {
			c.t.Error(err)
		}
	}
	return c.Store.Save(ctx, session, r)
}

// TestBackupDuringCompaction: when tables and a MANIFEST come and go under a snapshot, the
// upload is abandoned (the store never commits it) and the snapshot is taken again; the saved
// archive restores to a complete LevelDB, equal to the profile after the compaction.
func TestBackupDuringCompaction(t *testing.T) {
	mem := memstore.New()
	store := &churnStore{Store: mem, t: t}
	s := newSession(t, store, nil)
	store.profile = s.ProfileDir()
	if _, err := profilegen.Generate(t.Context(), s.ProfileDir(), profilegen.Options{Size: 8 << 20, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Backup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2: the snapshot cut by the compaction, then a whole one", res.Attempts)
	}
	want := keptOnly(readTree(t, s.ProfileDir()))
	restored := newSession(t, mem, nil)
	if _, err := restored.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := profilegen.Check(restored.ProfileDir()); err != nil {
		t.Errorf("the restored LevelDB is incomplete: %v", err)
	}
	if got := readTree(t, restored.ProfileDir()); !maps.Equal(got, want) {
		t.Error("the restored profile differs from the profile after the compaction")
	}
}

// TestBackupWhileBrowserWrites backs up again and again while a simulated browser runs 200
// compactions. Whatever the timing, every backup either saves an archive that restores to
// complete databases or gives up with ErrProfileChanged, and never leaves anything else in the
// store.
func TestBackupWhileBrowserWrites(t *testing.T) {
	store := memstore.New()
	s := newSession(t, store, &remoteauth.Options{ClientID: "test", SnapshotAttempts: 3})
	if _, err := profilegen.Generate(t.Context(), s.ProfileDir(), profilegen.Options{Size: 4 << 20, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := profilegen.Churn(s.ProfileDir(), 1, 200); err != nil {
			t.Error(err)
		}
	}()
	check := func() {
		t.Helper()
		// A reader beside the running instance, not a second instance: it takes no lease.
		restored := newSession(t, store, &remoteauth.Options{ClientID: "test", Lease: remoteauth.LeaseOptions{Disabled: true}})
		if _, err := restored.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := profilegen.Check(restored.ProfileDir()); err != nil {
			t.Fatalf("a backup restored an incomplete LevelDB: %v", err)
		}
	}
	var saved, gaveUp int
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		_, err := s.Backup(t.Context())
		switch {
		case err == nil:
			saved++
		case errors.Is(err, remoteauth.ErrProfileChanged):
			gaveUp++
		default:
			t.Fatal(err)
		}
		check()
	}
	t.Logf("during 200 compactions: %d backups saved, %d gave up", saved, gaveUp)
	// Once the browser is quiet, a backup saves the final state.
	if res, err := s.Backup(t.Context()); err != nil || res.Attempts > 1 {
		t.Fatalf("Backup after the writes = %+v, %v", res, err)
	}
	check()
}
